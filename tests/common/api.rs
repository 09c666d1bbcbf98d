//! One server's HTTP API as the tests call it.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

/// One server's HTTP API as a test calls it, one method per endpoint, with the server's first
/// admin token when it has one; an [`super::Instance`] or an [`super::InProcess`] server.
pub struct Api {
    pub base: String,
    pub server_id: String,
    pub client: reqwest::Client,
    pub token: Option<String>,
    /// The typed client of the API, as a program would call it; the raw `client` is for the
    /// requests a test makes by hand, malformed ones included.
    pub rbac: rbac_client::Client,
}

impl Api {
    /// The API at `base` (`http://address`), called with `token` when there is one.
    pub(super) fn new(base: String, server_id: &str, token: Option<String>) -> Self {
        Self {
            rbac: rbac_client::Client::new(&base, token.as_deref()).expect("an http URL"),
            base,
            server_id: server_id.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            token,
        }
    }

    /// The same server, called with `token` instead (none: without a credential).
    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            base: self.base.clone(),
            server_id: self.server_id.clone(),
            client: self.client.clone(),
            token: token.map(str::to_owned),
            rbac: self.rbac.with_token(token),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// POSTs `body` as JSON; returns the status and the parsed body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .authorize(self.client.post(self.url(path)).json(&body))
            .send()
            .await
            .expect("request reaches the server");
        read(response).await
    }

    /// GETs `path` with query parameters; returns the status and the parsed body.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .authorize(self.client.get(self.url(path)).query(query))
            .send()
            .await
            .expect("request reaches the server");
        read(response).await
    }

    /// PUTs `body` as JSON; returns the status and the parsed body.
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .authorize(self.client.put(self.url(path)).json(&body))
            .send()
            .await
            .expect("request reaches the server");
        read(response).await
    }

    /// Sends `body` as it is, with `content_type`, and extra `headers`; returns the status,
    /// the response's content type and its body as text.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, String, String) {
        let mut request = self.client.request(method, self.url(path)).query(query);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = self
            .authorize(request)
            .send()
            .await
            .expect("request reaches the server");
        let status = response.status();
        let content_type = (response.headers().get("content-type"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            content_type,
            response.text().await.unwrap_or_default(),
        )
    }

    /// The answer of a write that must succeed, as JSON.
    fn written<T: serde::Serialize>(
        &self,
        what: &str,
        answer: Result<T, rbac_client::Error>,
    ) -> Value {
        match answer {
            Ok(answer) => serde_json::to_value(answer).expect("an answer is JSON"),
            Err(e) => panic!("{what} on {}: {e}", self.server_id),
        }
    }

    pub async fn create_group(&self, tenant: &str, group: &str) -> Value {
        let answer = self.rbac.create_group(tenant, group).await;
        self.written(&format!("create-group {tenant}/{group}"), answer)
    }

    pub async fn delete_group(&self, tenant: &str, group: &str) -> Value {
        let answer = self.rbac.delete_group(tenant, group).await;
        self.written(&format!("delete-group {tenant}/{group}"), answer)
    }

    pub async fn add_permission(
        &self,
        tenant: &str,
        group: &str,
        resource: &str,
        action: &str,
    ) -> Value {
        let answer = self
            .rbac
            .add_permission(tenant, group, resource, action)
            .await;
        self.written(
            &format!("add-permission {tenant}/{group} {resource} {action}"),
            answer,
        )
    }

    pub async fn remove_permission(
        &self,
        tenant: &str,
        group: &str,
        resource: &str,
        action: &str,
    ) -> Value {
        let answer = self
            .rbac
            .remove_permission(tenant, group, resource, action)
            .await;
        self.written(
            &format!("remove-permission {tenant}/{group} {resource} {action}"),
            answer,
        )
    }

    pub async fn assign_user(&self, tenant: &str, user: &str, group: &str) -> Value {
        let answer = self.rbac.assign_user(tenant, group, user, None).await;
        self.written(&format!("assign-user {tenant}/{group} {user}"), answer)
    }

    pub async fn unassign_user(&self, tenant: &str, user: &str, group: &str) -> Value {
        let answer = self.rbac.unassign_user(tenant, group, user).await;
        self.written(&format!("unassign-user {tenant}/{group} {user}"), answer)
    }

    pub async fn nest_group(&self, tenant: &str, group: &str, parent: &str) -> Value {
        let answer = self.rbac.nest_group(tenant, group, parent).await;
        self.written(&format!("nest-group {tenant}/{group} in {parent}"), answer)
    }

    pub async fn unnest_group(&self, tenant: &str, group: &str, parent: &str) -> Value {
        let answer = self.rbac.unnest_group(tenant, group, parent).await;
        self.written(
            &format!("unnest-group {tenant}/{group} from {parent}"),
            answer,
        )
    }

    /// POST /check-access; the whole response body.
    pub async fn check_body(
        &self,
        tenant: &str,
        user: &str,
        resource: &str,
        action: &str,
    ) -> Value {
        let (status, body) = self
            .post(
                "/check-access",
                json!({"tenant": tenant, "user": user, "resource": resource, "action": action}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// POST /check-access with `min_revision`; the whole response body.
    pub async fn check_at(
        &self,
        tenant: &str,
        user: &str,
        resource: &str,
        action: &str,
        min_revision: u64,
    ) -> Value {
        let (status, body) = self
            .post(
                "/check-access",
                json!({"tenant": tenant, "user": user, "resource": resource, "action": action,
                       "min_revision": min_revision}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn check(&self, tenant: &str, user: &str, resource: &str, action: &str) -> bool {
        let check = rbac_client::Check::new(tenant, user, resource, action);
        match self.rbac.check(&check).await {
            Ok(answer) => answer.allowed,
            Err(e) => panic!("check {check:?} on {}: {e}", self.server_id),
        }
    }

    /// The whole of `tenant` at one revision: every group with its permissions and members,
    /// `{"tenant", "revision", "groups": [{"name", "permissions", "members"}]}`, read through
    /// the paged listings a few items at a time so that every listing pages.
    pub async fn groups(&self, tenant: &str) -> Value {
        // A write landing between two pages shows as two revisions: read again, a few times.
        let mut seen = Vec::new();
        for _ in 0..20 {
            let mut revisions = BTreeSet::new();
            let mut groups = Vec::new();
            let mut counts = Vec::new();
            for summary in self
                .pages("/groups", &[("tenant", tenant)], "groups", &mut revisions)
                .await
            {
                let name = summary["name"].as_str().expect("a group has a name");
                let query = [("tenant", tenant), ("group", name)];
                let permissions = self
                    .pages("/group-permissions", &query, "permissions", &mut revisions)
                    .await;
                let members = self
                    .pages("/group-members", &query, "members", &mut revisions)
                    .await;
                counts.push((
                    name.to_owned(),
                    (
                        summary["permission_count"].as_u64(),
                        summary["member_count"].as_u64(),
                    ),
                    (Some(permissions.len() as u64), Some(members.len() as u64)),
                ));
                groups.push(json!({"name": name, "permissions": permissions, "members": members}));
            }
            if let [revision] = *Vec::from_iter(revisions.iter().copied()) {
                for (name, counted, listed) in counts {
                    assert_eq!(counted, listed, "the counts /groups gives for {name}");
                }
                return json!({"tenant": tenant, "revision": revision, "groups": groups});
            }
            seen.push(revisions);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{tenant} never read at one revision; the pages' revisions were {seen:?}");
    }

    /// The revision this instance holds `tenant` at, from one small page of /groups.
    pub async fn revision(&self, tenant: &str) -> u64 {
        let (status, body) = self
            .get("/groups", &[("tenant", tenant), ("limit", "1")])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["revision"].as_u64().expect("a page has a revision")
    }

    /// Every item of a paged listing, following `next_cursor` from page to page; the revision
    /// of each page goes into `revisions`.
    async fn pages(
        &self,
        path: &str,
        query: &[(&str, &str)],
        items: &str,
        revisions: &mut BTreeSet<u64>,
    ) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            // A first page of two makes any listing of three or more follow a cursor; the
            // largest pages after it keep a tenant of thousands to a few requests.
            let limit = if cursor.is_none() { "2" } else { "1000" };
            let mut page_query = query.to_vec();
            page_query.push(("limit", limit));
            if let Some(cursor) = &cursor {
                page_query.push(("cursor", cursor));
            }
            let (status, body) = self.get(path, &page_query).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            revisions.insert(body["revision"].as_u64().expect("a page has a revision"));
            let page = body[items].as_array().expect("a page has its items");
            assert!(
                page.len() <= limit.parse().unwrap(),
                "{path} gave more than `limit` items: {body}"
            );
            all.extend(page.iter().cloned());
            match &body["next_cursor"] {
                Value::String(next) => cursor = Some(next.clone()),
                Value::Null => return all,
                other => panic!("{path}: next_cursor is {other}"),
            }
        }
    }

    /// GET /metrics, as text.
    pub async fn metrics(&self) -> String {
        let response = self
            .authorize(self.client.get(self.url("/metrics")))
            .send()
            .await
            .expect("request reaches the server");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    pub async fn cache_stats(&self) -> Value {
        let (status, body) = self.get("/cache-stats", &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn health(&self) -> Value {
        let (status, body) = self.get("/health", &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("read the response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response is not JSON: {status} {text:?}"));
    (status, body)
}
