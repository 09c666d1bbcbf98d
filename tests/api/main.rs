//! The HTTP contract, from outside: every bad request gets the documented status, code and
//! error body and changes nothing; names are checked byte for byte and otherwise kept
//! verbatim; wildcards, tenant isolation and bearer tokens behave as documented; and the
//! binary refuses a bad configuration with one line on stderr.
//!
//! Bad requests are table-driven: each table is sent in full, every mismatch is collected, and
//! the test fails listing all of them, so one broken case never hides another.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod bad_requests;
mod configuration;
mod names;
mod tokens;

use std::time::Duration;

use common::process::{Environment, Process};
use common::reply::{Reply, assert_error, assert_no_failures, error_mismatch};
use common::{Cluster, Instance};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

const ADMIN: &str = "admin-secret";
const CHECKER: &str = "check-secret";
/// The body limit the API documents: 64 KiB.
const BODY_LIMIT: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Requests and replies
// ---------------------------------------------------------------------------------------------

enum Body {
    None,
    /// Serialized and sent with `Content-Type: application/json`.
    Json(Value),
    /// Sent as is, with this content type (or none).
    Raw(Vec<u8>, Option<&'static str>),
}

struct Request {
    label: String,
    method: Method,
    /// May carry a raw query string of its own.
    path: String,
    query: Vec<(String, String)>,
    body: Body,
}

/// Sends `request` with exactly the given Authorization header value (none when `None`),
/// bypassing the token the harness would add.
async fn send(node: &Instance, request: &Request, authorization: Option<&str>) -> Reply {
    // A server that refuses a body without reading it closes the connection after answering
    // (hyper does, without a `Connection: close`), so such a request must not leave a
    // connection in the shared pool for the next request to fail on.
    let large = match &request.body {
        Body::Raw(bytes, _) => bytes.len() > BODY_LIMIT,
        _ => false,
    };
    let client = if large {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    } else {
        node.client.clone()
    };
    let mut builder = client.request(request.method.clone(), node.url(&request.path));
    if !request.query.is_empty() {
        builder = builder.query(&request.query);
    }
    builder = match &request.body {
        Body::None => builder,
        Body::Json(value) => builder
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(value).unwrap()),
        Body::Raw(bytes, content_type) => {
            let builder = builder.body(bytes.clone());
            match content_type {
                Some(content_type) => builder.header(CONTENT_TYPE, *content_type),
                None => builder,
            }
        }
    };
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value);
    }
    let response = builder.send().await.unwrap_or_else(|e| {
        panic!(
            "{}: the request did not reach the server: {e}",
            request.label
        )
    });
    Reply::read(response).await
}

/// A bad request and the error it must get.
struct Case {
    request: Request,
    status: u16,
    code: &'static str,
}

/// Sends every case; returns one line per case that did not get its documented error.
async fn run_cases(node: &Instance, cases: &[Case], authorization: Option<&str>) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let reply = send(node, &case.request, authorization).await;
        if let Some(problem) = error_mismatch(&reply, case.status, case.code) {
            failures.push(format!("{}: {problem}", case.request.label));
        }
    }
    failures
}

// ---------------------------------------------------------------------------------------------
// What the server holds, to prove a request changed nothing
// ---------------------------------------------------------------------------------------------

/// GET /groups for `tenant` (with the harness's token) plus every stored row.
#[derive(Debug, PartialEq)]
struct Observed {
    groups: Value,
    stored: String,
}

async fn observe(cluster: &Cluster, tenant: &str) -> Observed {
    Observed {
        groups: cluster[0].groups(tenant).await,
        stored: common::stored_rows(&cluster.database_url).await,
    }
}

/// One report for a battery: the requests that did not get their error, and whether the state
/// changed, so that a request wrongly accepted shows both what it answered and what it did.
fn assert_refused_and_unchanged(
    failures: &[String],
    total: usize,
    before: &Observed,
    after: &Observed,
    what: &str,
) {
    let mut report = Vec::new();
    if !failures.is_empty() {
        report.push(format!(
            "{} of {total} requests did not get their documented error:\n  {}",
            failures.len(),
            failures.join("\n  ")
        ));
    }
    if before.groups != after.groups {
        report.push(format!(
            "{what} changed GET /groups:\n  before: {}\n  after:  {}",
            before.groups, after.groups
        ));
    }
    if before.stored != after.stored {
        report.push(format!(
            "{what} changed the store:\n  before: {}\n  after:  {}",
            before.stored, after.stored
        ));
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

fn assert_unchanged(before: &Observed, after: &Observed, what: &str) {
    assert_eq!(
        before.groups, after.groups,
        "{what} changed GET /groups (revision included)"
    );
    assert_eq!(before.stored, after.stored, "{what} changed the store");
}

/// A single instance holding tenant `acme`: group `g` with `docs/a:read`, `alice` in `g`, an
/// empty group `spare`, and `g` nested in an empty group `outer`. Revision 6.
async fn seeded(cluster: Cluster) -> Cluster {
    let node = &cluster[0];
    node.create_group("acme", "g").await;
    node.add_permission("acme", "g", "docs/a", "read").await;
    node.assign_user("acme", "alice", "g").await;
    node.create_group("acme", "spare").await;
    node.create_group("acme", "outer").await;
    let (status, body) = node
        .post(
            "/nest-group",
            json!({"tenant": "acme", "group": "g", "parent": "outer"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(node.revision("acme").await, 6);
    cluster
}

// ---------------------------------------------------------------------------------------------
// The endpoints that take names
// ---------------------------------------------------------------------------------------------

/// An endpoint with a valid request: fields and values that, sent as they are, succeed. Values
/// are chosen so that a bad variant accepted by mistake would change something (a new group, a
/// new permission, a new member, or the removal of a seeded one).
struct Endpoint {
    method: Method,
    path: &'static str,
    fields: Vec<(&'static str, &'static str)>,
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method: Method, path, fields: &[(&'static str, &'static str)]| Endpoint {
        method,
        path,
        fields: fields.to_vec(),
    };
    let check = [
        ("tenant", "acme"),
        ("user", "alice"),
        ("resource", "docs/a"),
        ("action", "read"),
    ];
    vec![
        e(
            Method::POST,
            "/create-group",
            &[("tenant", "acme"), ("group", "h")],
        ),
        e(
            Method::POST,
            "/delete-group",
            &[("tenant", "acme"), ("group", "g")],
        ),
        e(
            Method::POST,
            "/add-permission",
            &[
                ("tenant", "acme"),
                ("group", "g"),
                ("resource", "docs/new"),
                ("action", "write"),
            ],
        ),
        e(
            Method::POST,
            "/remove-permission",
            &[
                ("tenant", "acme"),
                ("group", "g"),
                ("resource", "docs/a"),
                ("action", "read"),
            ],
        ),
        e(
            Method::POST,
            "/assign-user",
            &[("tenant", "acme"), ("user", "bob"), ("group", "g")],
        ),
        e(
            Method::POST,
            "/unassign-user",
            &[("tenant", "acme"), ("user", "alice"), ("group", "g")],
        ),
        e(
            Method::POST,
            "/nest-group",
            &[("tenant", "acme"), ("group", "spare"), ("parent", "g")],
        ),
        e(
            Method::POST,
            "/unnest-group",
            &[("tenant", "acme"), ("group", "g"), ("parent", "outer")],
        ),
        e(Method::POST, "/refresh-tenant", &[("tenant", "acme")]),
        e(Method::POST, "/check-access", &check),
        e(Method::GET, "/check-access", &check),
        e(Method::GET, "/groups", &[("tenant", "acme")]),
        e(
            Method::GET,
            "/group-permissions",
            &[("tenant", "acme"), ("group", "g")],
        ),
        e(
            Method::GET,
            "/group-members",
            &[("tenant", "acme"), ("group", "g")],
        ),
        e(
            Method::GET,
            "/group-parents",
            &[("tenant", "acme"), ("group", "g")],
        ),
        e(
            Method::GET,
            "/group-children",
            &[("tenant", "acme"), ("group", "outer")],
        ),
        e(
            Method::GET,
            "/user-permissions",
            &[("tenant", "acme"), ("user", "alice")],
        ),
        e(Method::GET, "/tenant-policy", &[("tenant", "acme")]),
    ]
}

/// The write endpoints with their valid requests.
fn write_endpoints() -> Vec<Endpoint> {
    endpoints()
        .into_iter()
        .filter(|e| e.method == Method::POST && e.path != "/check-access")
        .collect()
}

/// The read endpoints that CHECK_TOKEN guards, with valid requests.
fn read_endpoints() -> Vec<Endpoint> {
    let mut reads: Vec<Endpoint> = endpoints()
        .into_iter()
        .filter(|e| e.method == Method::GET || e.path == "/check-access")
        .collect();
    reads.push(Endpoint {
        method: Method::GET,
        path: "/cache-stats",
        fields: Vec::new(),
    });
    reads
}

type Fields = Vec<(String, Value)>;

impl Endpoint {
    fn takes_json(&self) -> bool {
        self.method == Method::POST
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn base(&self) -> Fields {
        self.fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    }

    /// The request with these fields: a JSON object for POST, query parameters for GET (where a
    /// non-string value is sent as its JSON text).
    fn request(&self, what: &str, fields: Fields) -> Request {
        let label = format!("{} {what}", self.name());
        if self.takes_json() {
            let object: Map<String, Value> = fields.into_iter().collect();
            Request {
                label,
                method: self.method.clone(),
                path: self.path.to_string(),
                query: Vec::new(),
                body: Body::Json(Value::Object(object)),
            }
        } else {
            let query = fields
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect();
            Request {
                label,
                method: self.method.clone(),
                path: self.path.to_string(),
                query,
                body: Body::None,
            }
        }
    }

    fn valid(&self) -> Request {
        self.request("(valid)", self.base())
    }

    fn with(&self, what: &str, edit: impl FnOnce(&mut Fields)) -> Request {
        let mut fields = self.base();
        edit(&mut fields);
        self.request(what, fields)
    }

    fn raw(
        &self,
        what: &str,
        bytes: impl Into<Vec<u8>>,
        content_type: Option<&'static str>,
    ) -> Request {
        Request {
            label: format!("{} {what}", self.name()),
            method: self.method.clone(),
            path: self.path.to_string(),
            query: Vec::new(),
            body: Body::Raw(bytes.into(), content_type),
        }
    }

    /// The valid request's JSON object as text.
    fn base_json(&self) -> String {
        let object: Map<String, Value> = self.base().into_iter().collect();
        Value::Object(object).to_string()
    }
}

fn set(fields: &mut Fields, field: &str, value: Value) {
    match fields.iter_mut().find(|(k, _)| k == field) {
        Some((_, v)) => *v = value,
        None => fields.push((field.to_string(), value)),
    }
}

fn bad_request(request: Request) -> Case {
    Case {
        request,
        status: 400,
        code: "invalid_request",
    }
}

fn forbids_wildcard(field: &str) -> bool {
    matches!(field, "tenant" | "group" | "user")
}

/// `base` padded with two-byte characters to exactly 257 bytes.
fn too_long(base: &str) -> String {
    let mut name = base.to_string();
    while name.len() + 2 <= 257 {
        name.push('é');
    }
    if name.len() < 257 {
        name.push('x');
    }
    assert_eq!(name.len(), 257);
    name
}

/// Variants of a valid name `base` that break one name rule each, with what they break.
fn bad_names(field: &str, base: &str) -> Vec<(String, String)> {
    let mut names = vec![
        ("empty".to_string(), String::new()),
        ("of 257 bytes".to_string(), too_long(base)),
        (
            "of 65 four-byte chars (260 bytes)".to_string(),
            "🦀".repeat(65),
        ),
        ("with a trailing newline".to_string(), format!("{base}\n")),
        ("with a CR LF".to_string(), format!("{base}\r\n")),
        ("with a NUL".to_string(), format!("{base}\u{0}x")),
        ("with a tab inside".to_string(), format!("{base}\tx")),
        ("with an ESC".to_string(), format!("{base}\u{1b}[31m")),
        ("with a DEL".to_string(), format!("{base}\u{7f}x")),
        (
            "with a C1 control (NEL)".to_string(),
            format!("{base}\u{85}x"),
        ),
        ("with a leading space".to_string(), format!(" {base}")),
        ("with a trailing space".to_string(), format!("{base} ")),
        ("of spaces only".to_string(), "   ".to_string()),
        (
            "with a leading no-break space".to_string(),
            format!("\u{a0}{base}"),
        ),
        (
            "with a trailing ideographic space".to_string(),
            format!("{base}\u{3000}"),
        ),
    ];
    if forbids_wildcard(field) {
        names.push(("with a trailing `*`".to_string(), format!("{base}*")));
        names.push(("with an inner `*`".to_string(), format!("{base}*x")));
        names.push(("that is `*`".to_string(), "*".to_string()));
    }
    names
}

/// `{...valid fields...}` padded with spaces inside the object to exactly `total` bytes.
fn padded(json: &str, total: usize) -> Vec<u8> {
    let open = json.strip_suffix('}').expect("a JSON object");
    let body = format!("{open}{}}}", " ".repeat(total - json.len()));
    assert_eq!(body.len(), total);
    body.into_bytes()
}

/// Every byte but the unreserved ones as %XX: spaces as %20, not the form encoding's `+`.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
