//! A typed client of rbac-server's HTTP API (docs/API.md), one method per endpoint.
//!
//! Answers are typed as the API documents them; a refusal is an [`Error::Api`] with the
//! server's status, `code` and `message`. Fields the server adds later are ignored, as the API
//! changes by addition.
//!
//! ```no_run
//! # async fn run() -> Result<(), rbac_client::Error> {
//! let client = rbac_client::Client::new("http://localhost:3000", None)?;
//! client.create_group("acme", "editors").await?;
//! client.add_permission("acme", "editors", "docs/*", "read").await?;
//! client.assign_user("acme", "editors", "alice", None).await?;
//! assert!(client.check(&rbac_client::Check::new("acme", "alice", "docs/readme", "read")).await?.allowed);
//! # Ok(()) }
//! ```

mod model;

use std::time::Duration;

use futures_util::{Stream, TryStreamExt};
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use model::*;

/// Why a call did not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request: its status and its error's `code` and `message`.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// The whole error object, for the fields some errors add (`oldest_revision`).
        body: Value,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the server: {}", causes(.0))]
    Transport(#[from] reqwest::Error),
    /// The server answered something this client does not read as the API documents.
    #[error("unexpected answer ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
    /// The base URL is not one.
    #[error("`{0}` is not an http or https URL")]
    BadUrl(String),
}

impl Error {
    /// The server's error code, if it refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One server (or a load balancer in front of several), called with one credential.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A page request of a listing: how many items, and the `next_cursor` of the page before.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The query string of a listing: its own parameters, then the page's.
    fn with(&self, parameters: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut query: Vec<(String, String)> = (parameters.iter())
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        if let Some(limit) = self.limit {
            query.push(("limit".into(), limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            query.push(("cursor".into(), cursor.clone()));
        }
        query
    }
}

/// A check: may `user` do `action` on `resource` in `tenant`?
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub tenant: String,
    pub user: String,
    pub resource: String,
    pub action: String,
    /// Answer with the permissions the answer comes from.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_revision: Option<u64>,
}

impl Check {
    pub fn new(tenant: &str, user: &str, resource: &str, action: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            resource: resource.to_owned(),
            action: action.to_owned(),
            explain: false,
            min_revision: None,
        }
    }
}

/// How a policy document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// YAML for a file named `.yaml` or `.yml`, JSON otherwise.
    pub fn of_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => {
                Format::Yaml
            }
            _ => Format::Json,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
        }
    }
}

impl Client {
    /// A client of the server at `base` (`http://host:port`), sending `token` as its bearer
    /// credential when given.
    pub fn new(base: &str, token: Option<&str>) -> Result<Self, Error> {
        let base = base.trim_end_matches('/');
        let scheme = base
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("http") => {}
            Some("https") if cfg!(feature = "tls") => {}
            Some("https") => {
                return Err(Error::BadUrl(format!(
                    "{base} (this build of rbac-client has no TLS: its `tls` feature is off)"
                )));
            }
            _ => return Err(Error::BadUrl(base.to_owned())),
        }
        // rustls needs its cryptography chosen once per process; another caller may have.
        #[cfg(feature = "tls")]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            base: base.to_owned(),
            token: token.map(str::to_owned),
            http,
        })
    }

    /// The same server, with another credential (none: without one).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, Error> {
        answer(self.request(Method::POST, path).json(body).send().await?).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &(impl Serialize + ?Sized),
    ) -> Result<T, Error> {
        answer(self.request(Method::GET, path).query(query).send().await?).await
    }

    // ---- writes -------------------------------------------------------------------------

    pub async fn create_group(&self, tenant: &str, group: &str) -> Result<Created, Error> {
        self.post("/create-group", &json!({"tenant": tenant, "group": group}))
            .await
    }

    pub async fn delete_group(&self, tenant: &str, group: &str) -> Result<Changed, Error> {
        self.post("/delete-group", &json!({"tenant": tenant, "group": group}))
            .await
    }

    pub async fn add_permission(
        &self,
        tenant: &str,
        group: &str,
        resource: &str,
        action: &str,
    ) -> Result<Changed, Error> {
        let body =
            json!({"tenant": tenant, "group": group, "resource": resource, "action": action});
        self.post("/add-permission", &body).await
    }

    pub async fn remove_permission(
        &self,
        tenant: &str,
        group: &str,
        resource: &str,
        action: &str,
    ) -> Result<Changed, Error> {
        let body =
            json!({"tenant": tenant, "group": group, "resource": resource, "action": action});
        self.post("/remove-permission", &body).await
    }

    /// Makes `user` a member of `group`, until `expires_at` (RFC 3339) if given.
    pub async fn assign_user(
        &self,
        tenant: &str,
        group: &str,
        user: &str,
        expires_at: Option<&str>,
    ) -> Result<Changed, Error> {
        let mut body = json!({"tenant": tenant, "group": group, "user": user});
        if let Some(at) = expires_at {
            body["expires_at"] = json!(at);
        }
        self.post("/assign-user", &body).await
    }

    pub async fn unassign_user(
        &self,
        tenant: &str,
        group: &str,
        user: &str,
    ) -> Result<Changed, Error> {
        let body = json!({"tenant": tenant, "group": group, "user": user});
        self.post("/unassign-user", &body).await
    }

    pub async fn nest_group(
        &self,
        tenant: &str,
        group: &str,
        parent: &str,
    ) -> Result<Changed, Error> {
        let body = json!({"tenant": tenant, "group": group, "parent": parent});
        self.post("/nest-group", &body).await
    }

    pub async fn unnest_group(
        &self,
        tenant: &str,
        group: &str,
        parent: &str,
    ) -> Result<Changed, Error> {
        let body = json!({"tenant": tenant, "group": group, "parent": parent});
        self.post("/unnest-group", &body).await
    }

    /// Many changes at once (`{"op": "create-group", "group": "g"}`, ...), all or none.
    pub async fn write(
        &self,
        tenant: &str,
        changes: &[Value],
        if_revision: Option<u64>,
    ) -> Result<Written, Error> {
        let mut body = json!({"tenant": tenant, "changes": changes});
        if let Some(revision) = if_revision {
            body["if_revision"] = json!(revision);
        }
        self.post("/write", &body).await
    }

    /// Applies a policy document as it is written (JSON or YAML): the body is sent as it is,
    /// so a document kept in a file keeps its comments and order.
    pub async fn apply(&self, document: Vec<u8>, format: Format) -> Result<Applied, Error> {
        let request = self
            .request(Method::PUT, "/tenant-policy")
            .header(header::CONTENT_TYPE, format.media_type())
            .body(document);
        answer(request.send().await?).await
    }

    // ---- reads --------------------------------------------------------------------------

    pub async fn check(&self, check: &Check) -> Result<CheckAnswer, Error> {
        let body = serde_json::to_value(check).map_err(|e| unexpected(0, e))?;
        self.post("/check-access", &body).await
    }

    pub async fn groups(&self, tenant: &str, page: &PageRequest) -> Result<GroupsPage, Error> {
        self.get("/groups", &page.with(&[("tenant", tenant)])).await
    }

    pub async fn group_permissions(
        &self,
        tenant: &str,
        group: &str,
        page: &PageRequest,
    ) -> Result<PermissionsPage, Error> {
        let query = page.with(&[("tenant", tenant), ("group", group)]);
        self.get("/group-permissions", &query).await
    }

    pub async fn group_members(
        &self,
        tenant: &str,
        group: &str,
        page: &PageRequest,
    ) -> Result<MembersPage, Error> {
        let query = page.with(&[("tenant", tenant), ("group", group)]);
        self.get("/group-members", &query).await
    }

    pub async fn who_can(
        &self,
        tenant: &str,
        resource: &str,
        action: &str,
        page: &PageRequest,
    ) -> Result<WhoCanPage, Error> {
        let query = page.with(&[
            ("tenant", tenant),
            ("resource", resource),
            ("action", action),
        ]);
        self.get("/who-can", &query).await
    }

    /// A page of the tenant's changes after revision `after`.
    pub async fn changes(
        &self,
        tenant: &str,
        after: u64,
        limit: Option<u32>,
    ) -> Result<ChangesPage, Error> {
        let query = [
            ("tenant", tenant.to_owned()),
            ("after", after.to_string()),
            ("limit", limit.unwrap_or(100).to_string()),
        ];
        self.get("/changes", &query).await
    }

    /// The tenant's changes after revision `after`, as they happen (`GET /watch`, Server-Sent
    /// Events), and why the stream ends when the server says; it also ends without a word
    /// (the server stopped, the key was revoked), to be opened again after the last revision
    /// received whole.
    pub async fn watch(
        &self,
        tenant: &str,
        after: u64,
    ) -> Result<impl Stream<Item = Result<WatchEvent, Error>> + use<>, Error> {
        let response = self
            .request(Method::GET, "/watch")
            .query(&[("tenant", tenant), ("after", &after.to_string())])
            .header(header::ACCEPT, "text/event-stream")
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(response).await);
        }
        let events = eventsource_stream::EventStream::new(response.bytes_stream());
        let read = move |data: &str| {
            serde_json::from_str::<Value>(data).map_err(|e| unexpected(status.as_u16(), e))
        };
        Ok(events
            .map_err(move |e| unexpected(status.as_u16(), e))
            .try_filter_map(move |event| {
                let parsed = match event.event.as_str() {
                    "change" => read(&event.data).and_then(|data| {
                        serde_json::from_value(data)
                            .map(|change| Some(WatchEvent::Change(Box::new(change))))
                            .map_err(|e| unexpected(status.as_u16(), e))
                    }),
                    "reset" => read(&event.data).map(|data| {
                        Some(WatchEvent::Reset {
                            after: data["after"].as_u64().unwrap_or_default(),
                        })
                    }),
                    "expired" => read(&event.data).map(|data| {
                        Some(WatchEvent::Expired {
                            oldest_revision: data["oldest_revision"].as_u64().unwrap_or_default(),
                        })
                    }),
                    // Events of later versions are left to clients that know them.
                    _ => Ok(None),
                };
                std::future::ready(parsed)
            }))
    }

    /// A tenant's whole policy, as the server writes it.
    pub async fn export(&self, tenant: &str, format: Format) -> Result<String, Error> {
        let response = self
            .request(Method::GET, "/tenant-policy")
            .query(&[("tenant", tenant)])
            .header(header::ACCEPT, format.media_type())
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(refusal(response).await);
        }
        Ok(response.text().await?)
    }

    // ---- the instance and its tenants ---------------------------------------------------

    pub async fn tenants(&self, prefix: &str, page: &PageRequest) -> Result<TenantsPage, Error> {
        self.get("/tenants", &page.with(&[("prefix", prefix)]))
            .await
    }

    /// The credential this client sends, and what it may do on the server.
    pub async fn credential(&self) -> Result<CredentialInfo, Error> {
        self.get("/credential", &()).await
    }

    pub async fn health(&self) -> Result<Health, Error> {
        self.get("/health", &()).await
    }

    /// Whether the instance is ready: the server's refusal (`503 unavailable`, saying why)
    /// when it is not.
    pub async fn ready(&self) -> Result<Ready, Error> {
        self.get("/ready", &()).await
    }

    /// The instance's counters and largest tenants, as the server gives them.
    pub async fn cache_stats(&self) -> Result<Value, Error> {
        self.get("/cache-stats", &()).await
    }

    // ---- API keys -----------------------------------------------------------------------

    /// Issues a key for `tenant` (`*`: every tenant) with `role` (`admin` or `check`).
    pub async fn create_key(
        &self,
        tenant: &str,
        role: &str,
        name: Option<&str>,
    ) -> Result<NewKey, Error> {
        let mut body = json!({"tenant": tenant, "role": role});
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        self.post("/create-api-key", &body).await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<Revoked, Error> {
        self.post("/revoke-api-key", &json!({"id": id})).await
    }

    pub async fn keys(&self, page: &PageRequest) -> Result<KeysPage, Error> {
        self.get("/api-keys", &page.with(&[])).await
    }
}

/// The answer as `T`, or the server's refusal.
async fn answer<T: DeserializeOwned>(response: Response) -> Result<T, Error> {
    let status = response.status();
    if !status.is_success() {
        return Err(refusal(response).await);
    }
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| unexpected(status.as_u16(), e))
}

/// The error a refused request was answered with.
async fn refusal(response: Response) -> Error {
    let status = response.status();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return Error::Transport(e),
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => Error::Api {
            status: status.as_u16(),
            code: code.to_owned(),
            message: message.to_owned(),
            body: error.clone(),
        },
        _ => Error::Unexpected {
            status: status.as_u16(),
            detail: describe(status, &text),
        },
    }
}

/// An error and what caused it, down to the first cause (`connection refused`).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn describe(status: StatusCode, text: &str) -> String {
    let text: String = text.chars().take(200).collect();
    format!("{status}: {text}")
}

fn unexpected(status: u16, error: impl std::fmt::Display) -> Error {
    Error::Unexpected {
        status,
        detail: error.to_string(),
    }
}
