//! Property-based fuzzing of everything that parses outside input: request bodies and query
//! strings on every route (through the real router, on an in-memory store), names, and bus
//! messages. Whatever comes in, the server answers with a documented status and a JSON body in
//! the documented shape, and never panics.
//!
//! The test command runs a short round (proptest's default cases); a longer run:
//!   PROPTEST_CASES=20000 cargo test --release --test fuzz

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use rbac_server::bus::{Identity, Message, Notice, Sender};
use rbac_server::http::{self, Tokens, metrics};
use rbac_server::policy::{GroupName, NameProblem, Operation, Resource, TenantName};
use serde_json::Value;
use tower::ServiceExt;

const FIELDS: &[&str] = &[
    "tenant",
    "group",
    "parent",
    "expires_at",
    "changes",
    "op",
    "if_revision",
    "user",
    "resource",
    "action",
    "min_revision",
    "explain",
    "checks",
    "after",
    "limit",
    "cursor",
    "role",
    "name",
    "id",
    "Tenant",
    "extra",
    // AuthZEN's, at the top and inside its entities.
    "subject",
    "type",
    "properties",
    "context",
    "evaluations",
    "options",
    "evaluations_semantic",
    "page",
    "token",
];

/// The documented statuses with their codes.
fn documented(status: StatusCode, code: &str) -> bool {
    matches!(
        (status.as_u16(), code),
        (400, "invalid_request")
            | (401, "unauthorized")
            | (403, "forbidden")
            | (404, "not_found")
            | (405, "method_not_allowed")
            | (
                409,
                "revision_not_reached" | "cycle" | "nesting_too_deep" | "revision_mismatch"
            )
            | (410, "changes_expired")
            | (413, "payload_too_large")
            | (415, "unsupported_media_type")
            | (503, "unavailable")
    )
}

const ADMIN: &str = "fuzz-admin";

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let router = runtime.block_on(async {
            // Writes and key management guarded, reads open: every kind of route.
            let router =
                common::in_process_api("fuzz", Tokens::new(vec![ADMIN.into()], Vec::new())).await;
            // Something to find: a group with a permission and a member.
            for (path, body) in [
                ("/create-group", r#"{"tenant":"t","group":"g"}"#),
                (
                    "/add-permission",
                    r#"{"tenant":"t","group":"g","resource":"docs/*","action":"read"}"#,
                ),
                ("/assign-user", r#"{"tenant":"t","user":"u","group":"g"}"#),
            ] {
                let request = Request::post(path)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {ADMIN}"))
                    .body(Body::from(body))
                    .unwrap();
                let response = router.clone().oneshot(request).await.unwrap();
                assert!(response.status().is_success());
            }
            router
        });
        Self { runtime, router }
    }

    /// Sends the request and checks the answer's shape; returns the status.
    fn send(&self, request: Request<Body>) -> Result<StatusCode, TestCaseError> {
        let description = format!("{} {}", request.method(), request.uri());
        let (status, body, content_type) = self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let streamed = content_type == "text/event-stream";
            if streamed {
                // A watch stream never ends by itself: dropping it ends the watch.
                return (status, None, content_type);
            }
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, Some(body), content_type)
        });
        let Some(body) = body else {
            prop_assert!(
                status == StatusCode::OK && description.contains("/watch"),
                "{description}: a stream answered {status}"
            );
            return Ok(status);
        };
        // The console's page and files, the one success that is not JSON.
        if status.is_success() && description.contains(" /console") {
            prop_assert!(
                !content_type.contains("json") && !body.is_empty(),
                "{description}: {content_type}"
            );
            return Ok(status);
        }
        let json: Value = serde_json::from_slice(&body).map_err(|_| {
            TestCaseError::fail(format!(
                "{description}: {status} with a body that is not JSON: {:?}",
                String::from_utf8_lossy(&body)
            ))
        })?;
        if status.is_success() {
            prop_assert!(json.is_object(), "{description}: {json}");
        } else {
            let code = json["error"]["code"].as_str().unwrap_or_default();
            let message = json["error"]["message"].as_str().unwrap_or_default();
            prop_assert!(
                documented(status, code) && !message.is_empty(),
                "{description}: undocumented answer {status} {json}"
            );
            prop_assert_eq!(json.as_object().map(|o| o.len()), Some(1));
        }
        Ok(status)
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z*/ ]{0,12}",
        // Numbers and hex, as `limit` and `cursor` take.
        1 => "[0-9a-f]{0,12}",
        1 => any::<String>(),
        1 => prop::collection::vec(any::<char>(), 250..260).prop_map(|c| c.into_iter().collect()),
        1 => Just("'; DROP TABLE groups; --".to_string()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => text().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(FIELDS).prop_map(String::from),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects with the routes' field names most of the time, so that requests get past the
/// first check often enough to reach the store.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let object = prop::collection::btree_map(
        prop::sample::select(FIELDS).prop_map(String::from),
        json_value(),
        0..7,
    )
    .prop_map(|m| serde_json::to_vec(&Value::Object(m.into_iter().collect())).unwrap());
    prop_oneof![
        4 => object,
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec((prop::sample::select(FIELDS), text()), 0..6).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={}", urlencode(&v)))
                .collect::<Vec<_>>()
                .join("&")
        }),
        1 => "[a-z=&%0-9A-F+]{0,40}",
    ]
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every route of the API, and "unmatched" standing for any other path.
fn every_route() -> Vec<String> {
    let mut routes = http::paths();
    routes.push(metrics::UNMATCHED.to_owned());
    routes
}

proptest! {
    #[test]
    fn any_request_gets_a_documented_answer_and_no_panic(
        // Every route of the API ("unmatched" standing for any other path).
        route in prop::sample::select(every_route()),
        // The tenant of a path that names one (`/tenants/{tenant}/...`), encoded as sent.
        tenant in prop::sample::select(&["t", "acme%20corp", "a%2Fb", "%FF", "a*b", "%20t", "x"][..]),
        // The file of a console path (`/console/{asset}`), encoded as sent.
        asset in prop::sample::select(&["app.js", "index.html", "..%2FCargo.toml", "%2e%2e", "%00", "a%20b", "%FF"][..]),
        method in prop::sample::select(&[Method::GET, Method::POST, Method::DELETE][..]),
        content_type in prop::sample::select(&["application/json", "text/plain", ""][..]),
        body in body(),
        query in query(),
        authorization in prop::sample::select(&[
            "",
            "Bearer fuzz-admin",
            "Bearer fuzz-admin ",
            "Bearer rbac_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Basic fuzz-admin",
        ][..]),
    ) {
        thread_local! { static HARNESS: Harness = Harness::new(); }
        let route = if route.starts_with('/') { route.replace("{tenant}", tenant).replace("{asset}", asset) } else { "/no-such-route".to_owned() };
        let uri = if query.is_empty() { route.to_string() } else { format!("{route}?{query}") };
        let mut request = Request::builder().method(method).uri(uri);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        if !authorization.is_empty() {
            request = request.header("authorization", authorization);
        }
        let Ok(request) = request.body(Body::from(body)) else {
            // Not a request an HTTP server could receive (the URI did not parse).
            return Ok(());
        };
        HARNESS.with(|harness| harness.send(request))?;
    }

    #[test]
    fn a_name_is_valid_exactly_when_the_rules_say(value in text()) {
        let expected = if value.is_empty() {
            Some(NameProblem::Empty)
        } else if value.len() > 256 {
            Some(NameProblem::TooLong)
        } else if value.chars().any(char::is_control) {
            Some(NameProblem::ControlCharacter)
        } else if value.trim() != value {
            Some(NameProblem::SurroundingWhitespace)
        } else {
            None
        };
        let resource = Resource::parse("resource", &value);
        prop_assert_eq!(resource.as_ref().err().map(|e| e.problem), expected);
        if let Ok(resource) = resource {
            prop_assert_eq!(resource.as_str(), value.as_str());
        }
        let group = GroupName::parse("group", &value).err().map(|e| e.problem);
        let expected_group = expected.or((value.contains('*')).then_some(NameProblem::Wildcard));
        prop_assert_eq!(group, expected_group);
    }

    #[test]
    fn any_bus_payload_parses_or_is_refused_without_panic(payload in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]) {
        let _ = Message::parse(&payload);
    }

    #[test]
    fn every_valid_message_round_trips(tenant in "[a-zA-Z0-9 _-]{1,40}", revision in any::<u64>()) {
        let tenant = tenant.trim();
        prop_assume!(!tenant.is_empty());
        let name = TenantName::parse("tenant", tenant).unwrap();
        let sender = Identity::new("s".into());
        let message = Message::new(&name, Operation::AssignUser, &sender, revision);
        let notice = Message::parse(&serde_json::to_vec(&message).unwrap()).unwrap();
        let from = Sender { server_id: "s".into(), instance_id: Some(sender.instance_id) };
        prop_assert_eq!(notice, Notice::Tenant { tenant: name, from, revision });
    }
}
