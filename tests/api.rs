//! The HTTP contract, from outside: every bad request gets the documented status, code and
//! error body and changes nothing; names are checked byte for byte and otherwise kept
//! verbatim; wildcards, tenant isolation and bearer tokens behave as documented; and the
//! binary refuses a bad configuration with one line on stderr.
//!
//! Bad requests are table-driven: each table is sent in full, every mismatch is collected, and
//! the test fails listing all of them, so one broken case never hides another.

mod common;

use std::time::Duration;

use common::process::{Environment, Process};
use common::reply::{Reply, assert_no_failures, error_mismatch};
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

fn assert_error(reply: &Reply, status: u16, code: &str, what: &str) {
    if let Some(problem) = error_mismatch(reply, status, code) {
        panic!("{what}: {problem}");
    }
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

/// A single instance holding tenant `acme`: group `g` with `docs/a:read`, `alice` in `g`, and an
/// empty group `spare`. Revision 4.
async fn seeded(cluster: Cluster) -> Cluster {
    let node = &cluster[0];
    node.create_group("acme", "g").await;
    node.add_permission("acme", "g", "docs/a", "read").await;
    node.assign_user("acme", "alice", "g").await;
    node.create_group("acme", "spare").await;
    assert_eq!(node.revision("acme").await, 4);
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
            "/user-permissions",
            &[("tenant", "acme"), ("user", "alice")],
        ),
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

// ---------------------------------------------------------------------------------------------
// 1. Bad requests get their documented error and change nothing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_name_rule_is_enforced_in_every_field_of_every_endpoint_and_changes_nothing() {
    let cluster = seeded(Cluster::without_bus(1, &[]).await).await;
    let node = &cluster[0];
    let mut cases = Vec::new();
    for endpoint in endpoints() {
        for (field, base) in &endpoint.fields {
            for (what, value) in bad_names(field, base) {
                cases.push(bad_request(
                    endpoint.with(&format!("`{field}` {what}: {value:?}"), |f| {
                        set(f, field, json!(value))
                    }),
                ));
            }
        }
    }
    let before = observe(&cluster, "acme").await;
    let failures = run_cases(node, &cases, None).await;
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, cases.len(), &before, &after, "a bad name");
}

#[tokio::test]
async fn missing_unknown_and_ill_typed_fields_are_refused_and_change_nothing() {
    let cluster = seeded(Cluster::without_bus(1, &[]).await).await;
    let node = &cluster[0];
    let mut cases = Vec::new();
    for endpoint in endpoints() {
        for (field, base) in &endpoint.fields {
            cases.push(bad_request(
                endpoint.with(&format!("without `{field}`"), |f| {
                    f.retain(|(k, _)| k != field)
                }),
            ));
            let capitalized = format!("{}{}", field[..1].to_uppercase(), &field[1..]);
            cases.push(bad_request(endpoint.with(
                &format!("with `{capitalized}` instead of `{field}`"),
                |f| {
                    for (k, _) in f.iter_mut().filter(|(k, _)| k == field) {
                        *k = capitalized.clone();
                    }
                },
            )));
            if endpoint.takes_json() {
                let ill_typed = [
                    json!(null),
                    json!(7),
                    json!(1.5),
                    json!(true),
                    json!([base]),
                    json!({ "name": base }),
                ];
                for value in ill_typed {
                    cases.push(bad_request(
                        endpoint.with(&format!("with `{field}`: {value}"), |f| {
                            set(f, field, value.clone())
                        }),
                    ));
                }
                // The same key twice.
                let json = endpoint.base_json();
                let twice = format!("{{\"{field}\":\"{base}\",{}", &json[1..]);
                cases.push(bad_request(endpoint.raw(
                    &format!("with `{field}` twice: {twice}"),
                    twice.clone(),
                    Some("application/json"),
                )));
            } else {
                let mut request = endpoint.with(&format!("with `{field}` twice"), |_| ());
                request.query.push((field.to_string(), base.to_string()));
                cases.push(bad_request(request));
            }
        }
        cases.push(bad_request(
            endpoint.with("with an unknown field `extra`", |f| {
                set(f, "extra", json!("x"))
            }),
        ));
        cases.push(bad_request(endpoint.with("with nothing", |f| f.clear())));
    }

    // min_revision, where it is accepted, must be a non-negative integer.
    let check_post = &endpoints()[7];
    assert_eq!(check_post.name(), "POST /check-access");
    for value in [
        json!(-1),
        json!(1.5),
        json!("3"),
        json!(true),
        json!([3]),
        json!({"revision": 3}),
        json!(1e2),
        json!(18446744073709551616_f64),
    ] {
        cases.push(bad_request(
            check_post.with(&format!("with min_revision: {value}"), |f| {
                set(f, "min_revision", value.clone())
            }),
        ));
    }
    let raw_overflow = format!(
        "{},\"min_revision\":18446744073709551616}}",
        check_post.base_json().trim_end_matches('}')
    );
    cases.push(bad_request(check_post.raw(
        "with min_revision 2^64",
        raw_overflow,
        Some("application/json"),
    )));
    for endpoint in endpoints().iter().filter(|e| e.method == Method::GET) {
        for value in ["-1", "1.5", "abc", "0x10", "18446744073709551616"] {
            cases.push(bad_request(
                endpoint.with(&format!("with min_revision={value}"), |f| {
                    set(f, "min_revision", json!(value))
                }),
            ));
        }
    }

    let before = observe(&cluster, "acme").await;
    let failures = run_cases(node, &cases, None).await;
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, cases.len(), &before, &after, "a bad field");
}

/// Percent-encoded bytes that are not UTF-8 must be refused, not decoded lossily into U+FFFD:
/// a read would then answer for a name the client never sent. Here that name exists, so a
/// lossy decoder would tell `user=%FF` it is allowed.
#[tokio::test]
async fn invalid_utf8_in_a_query_string_is_refused_rather_than_replaced() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    let replacement = "\u{fffd}";
    node.create_group(replacement, "g").await;
    node.add_permission(replacement, "g", replacement, replacement)
        .await;
    node.assign_user(replacement, replacement, "g").await;
    assert!(
        node.check(replacement, replacement, replacement, replacement)
            .await
    );

    let mut cases = Vec::new();
    for endpoint in endpoints().iter().filter(|e| e.method == Method::GET) {
        let fields: Vec<&str> = endpoint.fields.iter().map(|(f, _)| *f).collect();
        for field in &fields {
            for bad in ["%FF", "%C3", "%ED%A0%80", "%C0%AF"] {
                let query: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        let value = if f == field {
                            bad.to_string()
                        } else {
                            percent_encode(replacement)
                        };
                        format!("{f}={value}")
                    })
                    .collect();
                let path = format!("{}?{}", endpoint.path, query.join("&"));
                cases.push(bad_request(Request {
                    label: format!("GET {path} (`{field}` is not UTF-8)"),
                    method: Method::GET,
                    path,
                    query: Vec::new(),
                    body: Body::None,
                }));
            }
        }
    }
    let before = observe(&cluster, replacement).await;
    let failures = run_cases(node, &cases, None).await;
    let after = observe(&cluster, replacement).await;
    assert_refused_and_unchanged(
        &failures,
        cases.len(),
        &before,
        &after,
        "a query that is not UTF-8",
    );
}

/// `{...valid fields...}` padded with spaces inside the object to exactly `total` bytes.
fn padded(json: &str, total: usize) -> Vec<u8> {
    let open = json.strip_suffix('}').expect("a JSON object");
    let body = format!("{open}{}}}", " ".repeat(total - json.len()));
    assert_eq!(body.len(), total);
    body.into_bytes()
}

#[tokio::test]
async fn malformed_bodies_are_refused_with_400_413_or_415_and_change_nothing() {
    let cluster = seeded(Cluster::without_bus(1, &[]).await).await;
    let node = &cluster[0];
    const JSON: Option<&str> = Some("application/json");
    let mut cases = Vec::new();
    for endpoint in endpoints().iter().filter(|e| e.takes_json()) {
        let json = endpoint.base_json();
        let values: Vec<Value> = endpoint.fields.iter().map(|(_, v)| json!(v)).collect();
        let mut bad = |what: &str, bytes: Vec<u8>| {
            cases.push(bad_request(endpoint.raw(what, bytes, JSON)));
        };
        bad("with a truncated body", json[..json.len() - 1].into());
        bad(
            "with the body cut in a string",
            json[..json.len() / 2].into(),
        );
        bad("with an empty body", Vec::new());
        bad("with a body of whitespace", b"  \n ".to_vec());
        // serde would read a struct from an array of its fields in order: the API must not.
        bad(
            "with the values as a JSON array",
            Value::Array(values.clone()).to_string().into(),
        );
        bad(
            "with the object inside a JSON array",
            format!("[{json}]").into(),
        );
        bad("with a JSON string", b"\"acme\"".to_vec());
        bad("with JSON null", b"null".to_vec());
        bad("with a JSON number", b"42".to_vec());
        bad("with trailing garbage", format!("{json} x").into());
        bad("with two objects", format!("{json}{json}").into());
        bad("with single quotes", json.replace('"', "'").into());
        bad(
            "with a trailing comma",
            format!("{},}}", &json[..json.len() - 1]).into(),
        );
        let mut invalid_utf8 = json.clone().into_bytes();
        let at = invalid_utf8
            .windows(6)
            .position(|w| w == b"\"acme\"")
            .expect("the tenant value")
            + 3;
        invalid_utf8.insert(at, 0xff);
        bad("with an invalid UTF-8 byte in a name", invalid_utf8);
        bad(
            "with a lone surrogate escape in a name",
            json.replacen("\"acme\"", "\"ac\\ud800me\"", 1).into(),
        );
        bad(
            "with UTF-16 text",
            json.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        );

        let mut refused = |what: &str, bytes: Vec<u8>, content_type, status, code| {
            cases.push(Case {
                request: endpoint.raw(what, bytes, content_type),
                status,
                code,
            });
        };
        refused(
            "with a body of 64 KiB + 1",
            padded(&json, BODY_LIMIT + 1),
            JSON,
            413,
            "payload_too_large",
        );
        refused(
            "with a body of 1 MiB",
            padded(&json, 1024 * 1024),
            JSON,
            413,
            "payload_too_large",
        );
        let unsupported = "unsupported_media_type";
        refused(
            "as text/plain",
            json.clone().into(),
            Some("text/plain"),
            415,
            unsupported,
        );
        refused(
            "without a content type",
            json.clone().into(),
            None,
            415,
            unsupported,
        );
        refused(
            "as a form",
            b"tenant=acme&group=h".to_vec(),
            Some("application/x-www-form-urlencoded"),
            415,
            unsupported,
        );
        refused(
            "with no body and no content type",
            Vec::new(),
            None,
            415,
            unsupported,
        );
    }

    let before = observe(&cluster, "acme").await;
    let failures = run_cases(node, &cases, None).await;
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, cases.len(), &before, &after, "a malformed body");
}

#[tokio::test]
async fn unknown_routes_wrong_methods_missing_groups_and_future_revisions_are_refused() {
    let cluster = seeded(Cluster::without_bus(1, &[]).await).await;
    let node = &cluster[0];
    let raw = |what: &str, method: Method, path: &str, body: Body| Request {
        label: format!("{method} {path} {what}"),
        method,
        path: path.to_string(),
        query: Vec::new(),
        body,
    };
    let case = |request, status, code| Case {
        request,
        status,
        code,
    };
    let json_body = || Body::Json(json!({"tenant": "acme", "group": "h"}));
    let mut cases = Vec::new();

    for path in [
        "/",
        "/nope",
        "/groups/acme",
        "/Groups?tenant=acme",
        "/health/",
        "/check-access/x",
        "/v1/check-access",
    ] {
        cases.push(case(
            raw("", Method::GET, path, Body::None),
            404,
            "not_found",
        ));
    }
    for path in [
        "/nope",
        "/create-group/",
        "/Create-Group",
        "/create_group",
        "/",
    ] {
        cases.push(case(
            raw("", Method::POST, path, json_body()),
            404,
            "not_found",
        ));
    }

    for endpoint in write_endpoints() {
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
            let body = if method == Method::GET {
                Body::None
            } else {
                Body::Json(Value::Object(endpoint.base().into_iter().collect()))
            };
            cases.push(case(
                raw("(POST only)", method, endpoint.path, body),
                405,
                "method_not_allowed",
            ));
        }
    }
    for path in [
        "/groups?tenant=acme",
        "/user-permissions?tenant=acme&user=alice",
        "/cache-stats",
        "/health",
    ] {
        for method in [Method::POST, Method::DELETE, Method::PUT] {
            cases.push(case(
                raw("(GET only)", method, path, json_body()),
                405,
                "method_not_allowed",
            ));
        }
    }
    for method in [Method::DELETE, Method::PUT, Method::PATCH] {
        cases.push(case(
            raw("(GET and POST only)", method, "/check-access", json_body()),
            405,
            "method_not_allowed",
        ));
    }

    // Adding to a group that does not exist: in a tenant that has groups, and in a tenant that
    // was never written (which must not come into being either).
    let add = |tenant: &str, group: &str| {
        Body::Json(
            json!({"tenant": tenant, "group": group, "resource": "docs/a", "action": "read"}),
        )
    };
    let assign = |tenant: &str, group: &str| {
        Body::Json(json!({"tenant": tenant, "user": "bob", "group": group}))
    };
    for (tenant, group) in [
        ("acme", "nope"),
        ("acme", "G"),
        ("acme", "g2"),
        ("ghost", "g"),
    ] {
        let what = format!("to missing group {tenant:?}/{group:?}");
        cases.push(case(
            raw(&what, Method::POST, "/add-permission", add(tenant, group)),
            404,
            "not_found",
        ));
        cases.push(case(
            raw(&what, Method::POST, "/assign-user", assign(tenant, group)),
            404,
            "not_found",
        ));
    }

    // A revision the store has not reached.
    cases.push(case(
        raw(
            "min_revision 5",
            Method::POST,
            "/check-access",
            Body::Json(
                json!({"tenant": "acme", "user": "alice", "resource": "docs/a",
                              "action": "read", "min_revision": 5}),
            ),
        ),
        409,
        "revision_not_reached",
    ));
    for path in [
        "/check-access?tenant=acme&user=alice&resource=docs%2Fa&action=read&min_revision=5",
        "/groups?tenant=acme&min_revision=5",
        "/user-permissions?tenant=acme&user=alice&min_revision=18446744073709551615",
        "/groups?tenant=ghost&min_revision=1",
    ] {
        cases.push(case(
            raw("", Method::GET, path, Body::None),
            409,
            "revision_not_reached",
        ));
    }

    let before = observe(&cluster, "acme").await;
    let ghost_before = cluster[0].groups("ghost").await;
    assert_eq!(
        ghost_before,
        json!({"tenant": "ghost", "revision": 0, "groups": []})
    );
    let failures = run_cases(node, &cases, None).await;
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, cases.len(), &before, &after, "a refused request");
    assert_eq!(cluster[0].groups("ghost").await, ghost_before);
    assert!(
        !after.stored.contains("ghost"),
        "a write to a missing group created its tenant: {}",
        after.stored
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Names are counted in bytes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_name_of_256_bytes_is_accepted_everywhere_and_257_is_rejected_everywhere() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    // Multi-byte characters throughout, so that counting characters would get every one wrong.
    let tenant = "é".repeat(128);
    let group = "ж".repeat(128);
    let user = "🦀".repeat(64);
    let resource = format!("{}x", "€".repeat(85));
    let action = format!("{}abcd", "日本".repeat(42));
    for name in [&tenant, &group, &user, &resource, &action] {
        assert_eq!(name.len(), 256);
        assert!(name.chars().count() < 256);
    }

    let (status, body) = node
        .post("/create-group", json!({"tenant": tenant, "group": group}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["created"], true);
    let permission =
        json!({"tenant": tenant, "group": group, "resource": resource, "action": action});
    let (status, body) = node.post("/add-permission", permission).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"success": true, "changed": true, "revision": 2})
        )
    );
    let membership = json!({"tenant": tenant, "user": user, "group": group});
    let (status, body) = node.post("/assign-user", membership).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"success": true, "changed": true, "revision": 3})
        )
    );
    let check = json!({"tenant": tenant, "user": user, "resource": resource, "action": action});
    let (status, body) = node.post("/check-access", check).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"allowed": true, "revision": 3}))
    );
    let (status, body) = node
        .get(
            "/check-access",
            &[
                ("tenant", &tenant),
                ("user", &user),
                ("resource", &resource),
                ("action", &action),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"allowed": true, "revision": 3}))
    );
    let listing = node.groups(&tenant).await;
    assert_eq!(
        listing,
        json!({"tenant": tenant, "revision": 3, "groups": [
            {"name": group, "permissions": [{"resource": resource, "action": action}],
             "members": [user]}
        ]})
    );
    let (status, body) = node
        .get("/user-permissions", &[("tenant", &tenant), ("user", &user)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["groups"], json!([group]));
    assert_eq!(
        body["permissions"],
        json!([{"resource": resource, "action": action, "group": group}])
    );

    // One byte more, in each field of each endpoint, is refused with a message naming it.
    let valid = [
        ("tenant", tenant.as_str()),
        ("group", group.as_str()),
        ("user", user.as_str()),
        ("resource", resource.as_str()),
        ("action", action.as_str()),
    ];
    let value_of = |field: &str| valid.iter().find(|(f, _)| *f == field).unwrap().1;
    let before = observe(&cluster, &tenant).await;
    let mut failures = Vec::new();
    let mut total = 0;
    for endpoint in endpoints() {
        for (field, _) in &endpoint.fields {
            let mut fields: Fields = endpoint
                .fields
                .iter()
                .map(|(f, _)| (f.to_string(), json!(value_of(f))))
                .collect();
            let long = format!("{}x", value_of(field));
            assert_eq!(long.len(), 257);
            set(&mut fields, field, json!(long));
            let request = endpoint.request(&format!("with a 257-byte `{field}`"), fields);
            let reply = send(node, &request, None).await;
            total += 1;
            if let Some(problem) = error_mismatch(&reply, 400, "invalid_request") {
                failures.push(format!("{}: {problem}", request.label));
            } else {
                let message = reply.body()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .to_string();
                if !message.contains(&format!("`{field}`")) {
                    failures.push(format!(
                        "{}: the message does not name `{field}`: {message:?}",
                        request.label
                    ));
                }
            }
        }
    }
    let after = observe(&cluster, &tenant).await;
    assert_refused_and_unchanged(&failures, total, &before, &after, "a 257-byte name");
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_accepted_and_one_byte_more_is_refused() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    let create = Endpoint {
        method: Method::POST,
        path: "/create-group",
        fields: vec![("tenant", "acme"), ("group", "h")],
    };
    let json = create.base_json();

    let too_big = create.raw(
        "64 KiB + 1",
        padded(&json, BODY_LIMIT + 1),
        Some("application/json"),
    );
    let reply = send(node, &too_big, None).await;
    assert_error(&reply, 413, "payload_too_large", &too_big.label);
    assert_eq!(node.groups("acme").await["groups"], json!([]));

    let at_limit = create.raw(
        "64 KiB",
        padded(&json, BODY_LIMIT),
        Some("application/json"),
    );
    let reply = send(node, &at_limit, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        node.groups("acme").await["groups"],
        json!([{"name": "h", "permissions": [], "members": []}])
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Strange but valid names round-trip verbatim
// ---------------------------------------------------------------------------------------------

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

const STRANGE: &[&str] = &[
    "O'Brien \"the\" admin",
    "'; DROP TABLE groups; --",
    "Robert'); DELETE FROM tenants; --",
    "🦀 rustaceans 🦀",
    "מנהלים",
    "مدير النظام",
    "a\u{200f}b\u{202e}c",
    "back\\slash\\",
    "100% _sure_",
    "a&b=c?d#e/f+g;h",
    "%2F%00%zz",
    "<script>alert(1)</script>",
    "null",
    "{\"json\": [1, 2]}",
    "inner\u{a0}no-break  double  spaces",
    "e\u{301}",
    "ﬁ",
    "x",
];

#[tokio::test]
async fn strange_but_valid_names_round_trip_verbatim_through_every_endpoint() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    for &name in STRANGE {
        // The same name as tenant, group, user, resource and action.
        let (status, body) = node
            .post("/create-group", json!({"tenant": name, "group": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name:?}: {body}");
        assert_eq!(
            body,
            json!({"success": true, "created": true, "revision": 1,
                   "message": format!("Group '{name}' is ready to use")}),
            "{name:?}"
        );
        let body = node.add_permission(name, name, name, name).await;
        assert_eq!(body["changed"], true, "{name:?}: {body}");
        let body = node.assign_user(name, name, name).await;
        assert_eq!(body["revision"], 3, "{name:?}: {body}");

        // Read back as the writes left the cache, then as reloaded from the store.
        for phase in ["as written", "reloaded from the store"] {
            if phase != "as written" {
                let (status, body) = node.post("/refresh-tenant", json!({"tenant": name})).await;
                assert_eq!(
                    (status, body),
                    (StatusCode::OK, json!({"success": true, "revision": 3}))
                );
            }
            assert_eq!(
                node.groups(name).await,
                json!({"tenant": name, "revision": 3, "groups": [
                    {"name": name, "permissions": [{"resource": name, "action": name}],
                     "members": [name]}
                ]}),
                "{name:?} {phase}"
            );
            let (status, body) = node
                .get("/user-permissions", &[("tenant", name), ("user", name)])
                .await;
            assert_eq!(status, StatusCode::OK, "{name:?} {phase}: {body}");
            assert_eq!(
                body,
                json!({"tenant": name, "user": name, "revision": 3, "groups": [name],
                       "permissions": [{"resource": name, "action": name, "group": name}]}),
                "{name:?} {phase}"
            );

            let allowed = json!({"allowed": true, "revision": 3});
            assert_eq!(
                node.check_body(name, name, name, name).await,
                allowed,
                "{name:?} {phase}"
            );
            let (status, body) = node
                .get(
                    "/check-access",
                    &[
                        ("tenant", name),
                        ("user", name),
                        ("resource", name),
                        ("action", name),
                    ],
                )
                .await;
            assert_eq!(
                (status, body),
                (StatusCode::OK, allowed.clone()),
                "{name:?} {phase} (form-encoded)"
            );
            let e = percent_encode(name);
            let path = format!("/check-access?tenant={e}&user={e}&resource={e}&action={e}");
            let (status, body) = node.get(&path, &[]).await;
            assert_eq!(
                (status, body),
                (StatusCode::OK, allowed),
                "{name:?} {phase} ({path})"
            );
            // A near miss is not the same name.
            let other = format!("{name}x");
            assert!(
                !node.check(name, name, &other, name).await,
                "{name:?} {phase}"
            );
            assert!(
                !node.check(name, &other, name, name).await,
                "{name:?} {phase}"
            );
        }
    }
    for &name in STRANGE {
        let (status, stats) = node.get("/cache-stats", &[("tenant", name)]).await;
        assert_eq!(status, StatusCode::OK, "{name:?}: {stats}");
        assert_eq!(stats["tenant"]["tenant"], name, "{name:?} in {stats}");
        assert_eq!(stats["tenant"]["revision"], 3, "{name:?} in {stats}");
    }
}

#[tokio::test]
async fn names_are_compared_byte_for_byte_without_case_folding_normalization_or_like_patterns() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    // Pairs that a case-insensitive, normalizing or LIKE-based comparison would confuse.
    let groups = [
        "abc", "a_c", "a%c", "ABC", "é", "e\u{301}", "ﬁ", "fi", "a\\c",
    ];
    for (i, group) in groups.iter().enumerate() {
        node.create_group("t", group).await;
        node.add_permission("t", group, group, "read").await;
        node.assign_user("t", &format!("user-{i}"), group).await;
    }
    let listing = node.groups("t").await;
    let mut names: Vec<&str> = groups.to_vec();
    names.sort_unstable();
    let listed: Vec<&str> = listing["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, names);
    for (i, _) in groups.iter().enumerate() {
        for (j, resource) in groups.iter().enumerate() {
            assert_eq!(
                node.check("t", &format!("user-{i}"), resource, "read")
                    .await,
                i == j,
                "user-{i} ({:?}) on {resource:?}",
                groups[i]
            );
        }
        let (_, body) = node
            .get(
                "/user-permissions",
                &[("tenant", "t"), ("user", &format!("user-{i}"))],
            )
            .await;
        assert_eq!(body["groups"], json!([groups[i]]));
    }
    // Removing one of a pair leaves the other, in the store too.
    node.delete_group("t", "a_c").await;
    node.remove_permission("t", "é", "é", "read").await;
    node.unassign_user("t", "user-2", "a%c").await;
    let (status, _) = node.post("/refresh-tenant", json!({"tenant": "t"})).await;
    assert_eq!(status, StatusCode::OK);
    let listing = node.groups("t").await;
    let listed: Vec<&str> = listing["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    names.retain(|n| *n != "a_c");
    assert_eq!(listed, names);
    for (i, group) in groups.iter().enumerate() {
        let expected = !matches!(*group, "a_c" | "é" | "a%c");
        assert_eq!(
            node.check("t", &format!("user-{i}"), group, "read").await,
            expected,
            "user-{i} on {group:?} after the removals"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Wildcards
// ---------------------------------------------------------------------------------------------

/// Asks both POST and GET /check-access, which must agree.
async fn allowed(node: &Instance, tenant: &str, user: &str, resource: &str, action: &str) -> bool {
    let by_post = node.check(tenant, user, resource, action).await;
    let (status, body) = node
        .get(
            "/check-access",
            &[
                ("tenant", tenant),
                ("user", user),
                ("resource", resource),
                ("action", action),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["allowed"].as_bool(),
        Some(by_post),
        "GET and POST disagree on {user}/{resource}/{action}"
    );
    by_post
}

#[tokio::test]
async fn wildcards_match_as_documented_over_http() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    for (group, resource, action) in [
        ("prefix", "docs/*", "read"),
        ("everything", "*", "list"),
        ("any-action", "reports/q3", "*"),
        ("literal-star", "a*b", "write"),
        ("underscore", "logs_*", "tail"),
        ("action-prefix", "x", "re*"),
    ] {
        node.create_group("w", group).await;
        node.add_permission("w", group, resource, action).await;
        node.assign_user("w", "u", group).await;
    }
    let expectations = [
        // A trailing `*` is a prefix pattern.
        ("docs/a", "read", true),
        ("docs/a/b/c", "read", true),
        ("docs/🦀", "read", true),
        ("doc", "read", false),
        ("docs", "read", false),
        ("Docs/a", "read", false),
        ("xdocs/a", "read", false),
        ("docs/a", "write", false),
        // `*` alone matches every resource, for its action only.
        ("anything at all", "list", true),
        ("docs/a", "list", true),
        ("anything at all", "read", false),
        // Action `*` matches every action, for its resource only.
        ("reports/q3", "delete", true),
        ("reports/q3", "read", true),
        ("reports/q4", "delete", false),
        ("reports/q", "delete", false),
        // A `*` anywhere but at the end of a resource is literal.
        ("a*b", "write", true),
        ("axb", "write", false),
        ("ab", "write", false),
        ("a*bc", "write", false),
        ("a*", "write", false),
        // `_` in a prefix is literal (no LIKE pattern).
        ("logs_x", "tail", true),
        ("logsXx", "tail", false),
        // In an action, only `*` alone is a wildcard.
        ("x", "re*", true),
        ("x", "read", false),
        // In a check, `*` is literal: it is not a wildcard for the asker.
        ("docs/*", "read", true),
        ("*", "read", false),
        ("doc*", "read", false),
        ("docs/a", "*", false),
        ("reports/*", "delete", false),
    ];
    let mut wrong = Vec::new();
    // As the writes left the cache, then as reloaded from the store.
    for phase in ["as written", "reloaded from the store"] {
        if phase != "as written" {
            let (status, body) = node.post("/refresh-tenant", json!({"tenant": "w"})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        for (resource, action, expected) in expectations {
            if allowed(node, "w", "u", resource, action).await != expected {
                wrong.push(format!(
                    "{phase}: {resource:?} {action:?}: expected allowed={expected}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n  {}", wrong.join("\n  "));
    // Nobody else gets anything from those patterns.
    assert!(!allowed(node, "w", "v", "docs/a", "read").await);
    assert!(!allowed(node, "w", "v", "anything", "list").await);

    let (_, body) = node
        .get("/user-permissions", &[("tenant", "w"), ("user", "u")])
        .await;
    assert_eq!(
        body["permissions"],
        json!([
            {"resource": "*", "action": "list", "group": "everything"},
            {"resource": "a*b", "action": "write", "group": "literal-star"},
            {"resource": "docs/*", "action": "read", "group": "prefix"},
            {"resource": "logs_*", "action": "tail", "group": "underscore"},
            {"resource": "reports/q3", "action": "*", "group": "any-action"},
            {"resource": "x", "action": "re*", "group": "action-prefix"},
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Tenant isolation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenants_with_the_same_group_and_user_names_do_not_leak_into_each_other() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    node.create_group("acme", "admins").await;
    node.add_permission("acme", "admins", "docs/*", "read")
        .await;
    node.assign_user("acme", "alice", "admins").await;
    node.create_group("acme", "only-acme").await;

    node.create_group("globex", "admins").await;
    node.add_permission("globex", "admins", "billing", "pay")
        .await;
    node.assign_user("globex", "bob", "admins").await;

    // Names differing only in case are other tenants.
    node.create_group("Acme", "admins").await;

    assert!(allowed(node, "acme", "alice", "docs/a", "read").await);
    assert!(!allowed(node, "globex", "alice", "docs/a", "read").await);
    assert!(!allowed(node, "Acme", "alice", "docs/a", "read").await);
    assert!(allowed(node, "globex", "bob", "billing", "pay").await);
    assert!(!allowed(node, "acme", "bob", "billing", "pay").await);
    assert!(!allowed(node, "acme", "alice", "billing", "pay").await);

    assert_eq!(
        node.groups("globex").await,
        json!({"tenant": "globex", "revision": 3, "groups": [
            {"name": "admins", "permissions": [{"resource": "billing", "action": "pay"}],
             "members": ["bob"]}
        ]})
    );
    assert_eq!(node.revision("acme").await, 4);
    assert_eq!(
        node.groups("Acme").await,
        json!({"tenant": "Acme", "revision": 1, "groups": [
            {"name": "admins", "permissions": [], "members": []}
        ]})
    );
    let (_, body) = node
        .get(
            "/user-permissions",
            &[("tenant", "globex"), ("user", "alice")],
        )
        .await;
    assert_eq!(
        body,
        json!({"tenant": "globex", "user": "alice", "revision": 3, "groups": [], "permissions": []})
    );

    // A group of one tenant is missing in another.
    let (status, body) = node
        .post(
            "/add-permission",
            json!({"tenant": "globex", "group": "only-acme", "resource": "r", "action": "a"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = node
        .post(
            "/assign-user",
            json!({"tenant": "globex", "user": "alice", "group": "only-acme"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");

    // Changing one tenant's group leaves the other's alone.
    let acme = node.groups("acme").await;
    node.unassign_user("globex", "alice", "admins").await;
    node.remove_permission("globex", "admins", "docs/*", "read")
        .await;
    node.delete_group("globex", "admins").await;
    // As the writes left the cache, then as reloaded from the store.
    for phase in ["as written", "reloaded from the store"] {
        if phase != "as written" {
            for tenant in ["acme", "globex", "Acme"] {
                let (status, body) = node
                    .post("/refresh-tenant", json!({"tenant": tenant}))
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        }
        assert_eq!(node.groups("acme").await, acme, "{phase}");
        assert!(
            allowed(node, "acme", "alice", "docs/a", "read").await,
            "{phase}"
        );
        assert!(
            !allowed(node, "globex", "bob", "billing", "pay").await,
            "{phase}"
        );
        assert_eq!(node.groups("globex").await["groups"], json!([]), "{phase}");
        assert_eq!(
            node.groups("Acme").await["groups"][0]["name"],
            "admins",
            "{phase}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Bearer tokens
// ---------------------------------------------------------------------------------------------

/// Authorization headers that must not pass as `token`.
fn not_quite(token: &str) -> Vec<String> {
    let mut cut = token.to_string();
    cut.pop();
    vec![
        "Bearer wrong".to_string(),
        format!("Bearer {cut}"),
        format!("Bearer {token}x"),
        format!("Bearer {}", token.to_uppercase()),
        format!("Bearer x{token}"),
        format!("Basic {token}"),
        format!("Token {token}"),
        format!("Bearer{token}"),
        token.to_string(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
    ]
}

/// Writes with valid bodies, and a few with bad bodies, that must all be refused with
/// `status` and `code` with each of `authorizations`; returns the failures.
async fn writes_are_refused(
    node: &Instance,
    authorizations: &[Option<String>],
    (status, code): (u16, &str),
) -> (Vec<String>, usize) {
    let mut requests = Vec::new();
    for endpoint in write_endpoints() {
        requests.push(endpoint.valid());
        // The credential comes first: a bad body from a stranger is still 401 (403).
        requests.push(endpoint.raw(
            "with truncated JSON",
            "{\"tenant\":",
            Some("application/json"),
        ));
        requests.push(endpoint.raw("as text/plain", endpoint.base_json(), Some("text/plain")));
        requests.push(endpoint.raw(
            "with a body of 64 KiB + 1",
            padded(&endpoint.base_json(), BODY_LIMIT + 1),
            Some("application/json"),
        ));
        requests.push(endpoint.with("with an unknown field", |f| set(f, "extra", json!(1))));
        requests.push(endpoint.with("with an empty tenant", |f| set(f, "tenant", json!(""))));
    }
    let mut failures = Vec::new();
    let mut total = 0;
    for authorization in authorizations {
        for request in &requests {
            total += 1;
            let reply = send(node, request, authorization.as_deref()).await;
            if let Some(problem) = error_mismatch(&reply, status, code) {
                failures.push(format!(
                    "{} with Authorization {authorization:?}: {problem}",
                    request.label
                ));
            }
        }
    }
    (failures, total)
}

/// A sequence of writes, each of which must succeed with `authorization`, and that leaves
/// the seeded state as it found it.
async fn writes_succeed(node: &Instance, authorization: &str) {
    let steps = [
        (
            "/create-group",
            json!({"tenant": "acme", "group": "h"}),
            201,
        ),
        (
            "/add-permission",
            json!({"tenant": "acme", "group": "h", "resource": "r", "action": "a"}),
            200,
        ),
        (
            "/assign-user",
            json!({"tenant": "acme", "user": "bob", "group": "h"}),
            200,
        ),
        (
            "/unassign-user",
            json!({"tenant": "acme", "user": "bob", "group": "h"}),
            200,
        ),
        (
            "/remove-permission",
            json!({"tenant": "acme", "group": "h", "resource": "r", "action": "a"}),
            200,
        ),
        (
            "/delete-group",
            json!({"tenant": "acme", "group": "h"}),
            200,
        ),
        ("/refresh-tenant", json!({"tenant": "acme"}), 200),
    ];
    for (path, body, status) in steps {
        let request = Request {
            label: format!("POST {path}"),
            method: Method::POST,
            path: path.to_string(),
            query: Vec::new(),
            body: Body::Json(body),
        };
        let reply = send(node, &request, Some(authorization)).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{} with {authorization:?}: {}",
            request.label,
            reply.text
        );
        if path != "/refresh-tenant" {
            let changed = if path == "/create-group" {
                "created"
            } else {
                "changed"
            };
            assert_eq!(
                reply.body()[changed],
                true,
                "{}: {}",
                request.label,
                reply.text
            );
        }
    }
}

#[tokio::test]
async fn with_an_admin_token_writes_need_it_and_reads_stay_open() {
    let cluster = seeded(Cluster::start_with(1, &[("ADMIN_TOKEN", ADMIN)]).await).await;
    let node = &cluster[0];
    let before = observe(&cluster, "acme").await;

    let mut authorizations = vec![None];
    authorizations.extend(not_quite(ADMIN).into_iter().map(Some));
    let (failures, total) = writes_are_refused(node, &authorizations, (401, "unauthorized")).await;
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, total, &before, &after, "a 401'd write");

    // Reads are open to anyone, whatever they present.
    for endpoint in read_endpoints() {
        for authorization in [None, Some("Bearer wrong"), Some("Basic xyz")] {
            let reply = send(node, &endpoint.valid(), authorization).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{} with {authorization:?}: {}",
                endpoint.name(),
                reply.text
            );
        }
    }
    let health = Request {
        label: "GET /health".into(),
        method: Method::GET,
        path: "/health".into(),
        query: Vec::new(),
        body: Body::None,
    };
    assert_eq!(send(node, &health, None).await.status, StatusCode::OK);

    // The scheme is case-insensitive; the token is not.
    writes_succeed(node, &format!("bearer {ADMIN}")).await;
    writes_succeed(node, &format!("Bearer {ADMIN}")).await;
}

#[tokio::test]
async fn with_a_check_token_reads_need_it_or_the_admin_token_and_it_may_not_write() {
    let cluster =
        seeded(Cluster::start_with(1, &[("ADMIN_TOKEN", ADMIN), ("CHECK_TOKEN", CHECKER)]).await)
            .await;
    let node = &cluster[0];
    let before = observe(&cluster, "acme").await;

    // Anything but the admin token may not write: the check token is a valid credential
    // without the role (403), anything else is no credential (401).
    let mut authorizations = vec![None];
    authorizations.extend(not_quite(ADMIN).into_iter().map(Some));
    let (mut failures, mut total) =
        writes_are_refused(node, &authorizations, (401, "unauthorized")).await;
    let (forbidden, count) = writes_are_refused(
        node,
        &[Some(format!("Bearer {CHECKER}"))],
        (403, "forbidden"),
    )
    .await;
    failures.extend(forbidden);
    total += count;
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, total, &before, &after, "a refused write");

    // Reads need one of the two tokens, before their query is even looked at.
    let mut cases = Vec::new();
    let mut refused = vec![None];
    refused.extend(not_quite(CHECKER).into_iter().map(Some));
    for endpoint in read_endpoints() {
        for authorization in &refused {
            for request in [
                endpoint.valid(),
                endpoint.with("with an empty tenant", |f| set(f, "tenant", json!(""))),
                endpoint.with("with an unknown field", |f| set(f, "extra", json!("x"))),
            ] {
                cases.push((authorization.clone(), request));
            }
        }
        cases.push((
            None,
            endpoint.raw("as text/plain", endpoint.base_json(), Some("text/plain")),
        ));
    }
    let mut failures = Vec::new();
    for (authorization, request) in &cases {
        let reply = send(node, request, authorization.as_deref()).await;
        if let Some(problem) = error_mismatch(&reply, 401, "unauthorized") {
            failures.push(format!(
                "{} with Authorization {authorization:?}: {problem}",
                request.label
            ));
        }
    }
    assert_no_failures(&failures, cases.len());

    for endpoint in read_endpoints() {
        for token in [CHECKER, ADMIN] {
            let authorization = format!("Bearer {token}");
            let reply = send(node, &endpoint.valid(), Some(&authorization)).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{} with {authorization:?}: {}",
                endpoint.name(),
                reply.text
            );
        }
    }
    let check = &read_endpoints()[0];
    let reply = send(node, &check.valid(), Some(&format!("Bearer {CHECKER}"))).await;
    assert_eq!(reply.body(), json!({"allowed": true, "revision": 4}));

    // /health is always open.
    for authorization in [None, Some("Bearer wrong")] {
        let health = Request {
            label: "GET /health".into(),
            method: Method::GET,
            path: "/health".into(),
            query: Vec::new(),
            body: Body::None,
        };
        let reply = send(node, &health, authorization).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{authorization:?}: {}",
            reply.text
        );
        assert_eq!(reply.body()["status"], "ok");
    }

    assert_unchanged(&before, &observe(&cluster, "acme").await, "the reads");
    writes_succeed(node, &format!("Bearer {ADMIN}")).await;
}

// ---------------------------------------------------------------------------------------------
// 7. Bad configuration
// ---------------------------------------------------------------------------------------------

/// The environment every configuration case starts from: valid, with a database that refuses
/// connections, so that a bad value that slipped through still ends the process quickly.
fn base_env() -> Vec<(String, String)> {
    [
        (
            "DATABASE_URL",
            format!("postgres://127.0.0.1:{}/rbac", common::servers::free_port()),
        ),
        ("STORE_TIMEOUT_SECS", "1".to_string()),
        ("PORT", "0".to_string()),
        ("HOST", "127.0.0.1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A variable set to a value, or unset.
type EnvChange<'a> = (&'a str, Option<&'a str>);

fn with_env(changes: &[EnvChange]) -> Vec<(String, String)> {
    let mut env = base_env();
    for (key, value) in changes {
        env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            env.push((key.to_string(), value.to_string()));
        }
    }
    env
}

#[test]
fn bad_configuration_is_refused_with_one_line_naming_the_setting_and_no_panic() {
    let cases: &[(&[EnvChange], &str)] = &[
        (&[("PORT", Some("abc"))], "PORT"),
        (&[("PORT", Some("70000"))], "PORT"),
        (&[("DATABASE_URL", Some(""))], "DATABASE_URL"),
        (&[("DATABASE_URL", Some("mysql://x/y"))], "DATABASE_URL"),
        (&[("DATABASE_URL", Some("not a url"))], "DATABASE_URL"),
        (
            &[("RESYNC_INTERVAL_SECS", Some("0"))],
            "RESYNC_INTERVAL_SECS",
        ),
        (
            &[("RESYNC_INTERVAL_SECS", Some("-5"))],
            "RESYNC_INTERVAL_SECS",
        ),
        (&[("STORE_TIMEOUT_SECS", Some("0"))], "STORE_TIMEOUT_SECS"),
        (&[("LOG_FORMAT", Some("xml"))], "LOG_FORMAT"),
        (&[("ADMIN_TOKEN", Some(""))], "ADMIN_TOKEN"),
        (&[("CHECK_TOKEN", Some(""))], "CHECK_TOKEN"),
        (&[("REDIS_URL", Some("http://x"))], "REDIS_URL"),
        (&[("HOST", Some("nope"))], "HOST"),
    ];
    let mut failures = Vec::new();
    for (changes, names) in cases {
        let exit = Process::run(
            Environment::PathOnly,
            &with_env(changes),
            Duration::from_secs(10),
        );
        let problems = exit.refusal_problems(names);
        if !problems.is_empty() {
            failures.push(format!(
                "{changes:?}: {} (exit {:?}, stderr {:?})",
                problems.join("; "),
                exit.status,
                exit.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}

#[test]
fn an_unreachable_database_is_refused_within_seconds_with_one_line() {
    let exit = Process::run(Environment::PathOnly, &base_env(), Duration::from_secs(15));
    let problems = exit.refusal_problems("database");
    assert!(
        problems.is_empty(),
        "{} (exit {:?}, stderr {:?})",
        problems.join("; "),
        exit.status,
        exit.stderr
    );
    assert!(
        exit.took < Duration::from_secs(5),
        "took {:?} to give up with STORE_TIMEOUT_SECS=1",
        exit.took
    );
}

// ---------------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------------

/// One page of `path`: its items (under `items`) and its `next_cursor`.
async fn page(
    node: &Instance,
    path: &str,
    query: &[(&str, &str)],
    items: &str,
) -> (Vec<Value>, Option<String>) {
    let (status, body) = node.get(path, query).await;
    assert_eq!(status, StatusCode::OK, "{path} {query:?}: {body}");
    let next = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("{path}: next_cursor is {other}"),
    };
    (body[items].as_array().unwrap().clone(), next)
}

#[tokio::test]
async fn listings_page_by_limit_and_cursor_and_a_cursor_outlives_the_item_it_names() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    for g in ["g3", "g1", "g4", "g0", "g2"] {
        node.create_group("p", g).await;
    }
    for u in ["u4", "u2", "u0", "u3", "u1"] {
        node.assign_user("p", u, "g0").await;
    }
    for (resource, action) in [("b", "write"), ("a", "*"), ("b", "read"), ("a/*", "read")] {
        node.add_permission("p", "g0", resource, action).await;
    }

    // Pages of two, in order, ending with a null cursor.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("tenant", "p"), ("limit", "2")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.as_str()));
        }
        let (items, next) = page(node, "/groups", &query, "groups").await;
        assert!(items.len() <= 2);
        names.extend(
            items
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_string()),
        );
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["g0", "g1", "g2", "g3", "g4"]);
    // The default page holds them all; a page that fills exactly says there is no more.
    let (items, next) = page(node, "/groups", &[("tenant", "p")], "groups").await;
    assert_eq!((items.len(), next), (5, None));
    let (items, next) = page(
        node,
        "/groups",
        &[("tenant", "p"), ("limit", "5")],
        "groups",
    )
    .await;
    assert_eq!((items.len(), next), (5, None));
    assert_eq!(
        items[0],
        json!({"name": "g0", "permission_count": 4, "member_count": 5})
    );
    assert_eq!(
        items[1],
        json!({"name": "g1", "permission_count": 0, "member_count": 0})
    );

    let query = [("tenant", "p"), ("group", "g0"), ("limit", "3")];
    let (permissions, permission_cursor) =
        page(node, "/group-permissions", &query, "permissions").await;
    assert_eq!(
        permissions,
        [
            json!({"resource": "a", "action": "*"}),
            json!({"resource": "a/*", "action": "read"}),
            json!({"resource": "b", "action": "read"}),
        ]
    );
    let permission_cursor = permission_cursor.expect("a fourth permission follows");
    let (members, member_cursor) = page(node, "/group-members", &query, "members").await;
    assert_eq!(members, ["u0", "u1", "u2"]);
    let member_cursor = member_cursor.expect("more members follow");

    // The items a cursor names may go; the listing resumes after them all the same.
    node.remove_permission("p", "g0", "b", "read").await;
    node.unassign_user("p", "u2", "g0").await;
    node.unassign_user("p", "u3", "g0").await;
    let (permissions, next) = page(
        node,
        "/group-permissions",
        &[
            ("tenant", "p"),
            ("group", "g0"),
            ("cursor", &permission_cursor),
        ],
        "permissions",
    )
    .await;
    assert_eq!(
        (permissions, next),
        (vec![json!({"resource": "b", "action": "write"})], None)
    );
    let (members, next) = page(
        node,
        "/group-members",
        &[("tenant", "p"), ("group", "g0"), ("cursor", &member_cursor)],
        "members",
    )
    .await;
    assert_eq!((members, next), (vec![json!("u4")], None));

    // A tenant never written lists nothing; so does an empty group.
    let (status, body) = node.get("/groups", &[("tenant", "nobody")]).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"tenant": "nobody", "revision": 0, "groups": [], "next_cursor": null})
        )
    );
    let (members, next) = page(
        node,
        "/group-members",
        &[("tenant", "p"), ("group", "g1")],
        "members",
    )
    .await;
    assert_eq!((members.len(), next), (0, None));
}

#[tokio::test]
async fn bad_limits_bad_cursors_and_missing_groups_are_refused() {
    let cluster = seeded(Cluster::without_bus(1, &[]).await).await;
    let node = &cluster[0];
    node.add_permission("acme", "g", "docs/b", "read").await;
    node.assign_user("acme", "bob", "g").await;
    let one = [("tenant", "acme"), ("group", "g"), ("limit", "1")];
    let (_, group_cursor) = page(
        node,
        "/groups",
        &[("tenant", "acme"), ("limit", "1")],
        "groups",
    )
    .await;
    let (_, permission_cursor) = page(node, "/group-permissions", &one, "permissions").await;
    let (_, member_cursor) = page(node, "/group-members", &one, "members").await;
    let [group_cursor, permission_cursor, member_cursor] =
        [group_cursor, permission_cursor, member_cursor].map(|c| c.expect("a second page"));

    let before = observe(&cluster, "acme").await;
    let mut failures = Vec::new();
    let expect = |path: &str, query: Vec<(&str, &str)>, status: u16, code: &str| {
        let what = format!("{path} {query:?}");
        let query: Vec<(String, String)> = query
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (what, path.to_string(), query, status, code.to_string())
    };
    let mut cases = Vec::new();
    for path in ["/groups", "/group-permissions", "/group-members"] {
        let base = vec![("tenant", "acme"), ("group", "g")];
        let base = if path == "/groups" {
            base[..1].to_vec()
        } else {
            base
        };
        for limit in ["0", "1001", "-1", "1.5", "abc", "", "99999999999"] {
            let mut query = base.clone();
            query.push(("limit", limit));
            cases.push(expect(path, query, 400, "invalid_request"));
        }
        let flipped = group_cursor.replace('6', "f");
        for cursor in ["", "zz", "abc", "0a", "ff", "2a", flipped.as_str()] {
            let mut query = base.clone();
            query.push(("cursor", cursor));
            cases.push(expect(path, query, 400, "invalid_request"));
        }
    }
    // A cursor is good only for the listing, tenant and group that handed it out, even where
    // its names would parse: a group's name is a valid user name, and the reverse.
    let with = |base: &[(&'static str, &'static str)], cursor: &'static str| {
        let mut query = base.to_vec();
        query.push(("cursor", cursor));
        query
    };
    let [group_cursor, permission_cursor, member_cursor]: [&'static str; 3] =
        [group_cursor, permission_cursor, member_cursor].map(|c| &*String::leak(c));
    let groups: &[(&str, &str)] = &[("tenant", "acme")];
    let in_g: &[(&str, &str)] = &[("tenant", "acme"), ("group", "g")];
    let in_spare: &[(&str, &str)] = &[("tenant", "acme"), ("group", "spare")];
    let in_globex: &[(&str, &str)] = &[("tenant", "globex"), ("group", "g")];
    for (path, base, cursor) in [
        ("/groups", groups, permission_cursor),
        ("/groups", groups, member_cursor),
        ("/groups", &[("tenant", "globex")][..], group_cursor),
        ("/group-permissions", in_g, member_cursor),
        ("/group-permissions", in_g, group_cursor),
        ("/group-permissions", in_spare, permission_cursor),
        ("/group-members", in_g, permission_cursor),
        ("/group-members", in_g, group_cursor),
        ("/group-members", in_spare, member_cursor),
        ("/group-members", in_globex, member_cursor),
    ] {
        cases.push(expect(path, with(base, cursor), 400, "invalid_request"));
    }
    for path in ["/group-permissions", "/group-members"] {
        cases.push(expect(
            path,
            vec![("tenant", "acme"), ("group", "nope")],
            404,
            "not_found",
        ));
        cases.push(expect(
            path,
            vec![("tenant", "acme"), ("group", "a*")],
            400,
            "invalid_request",
        ));
        cases.push(expect(
            path,
            vec![("tenant", "acme")],
            400,
            "invalid_request",
        ));
    }
    let total = cases.len();
    for (what, path, query, status, code) in cases {
        let query: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (got, body) = node.get(&path, &query).await;
        if got.as_u16() != status || body["error"]["code"] != code.as_str() {
            failures.push(format!("{what}: {got} {body}, not {status} {code}"));
        }
    }
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, total, &before, &after, "refused listings");
}
