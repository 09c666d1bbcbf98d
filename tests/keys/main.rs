//! API keys, from outside: which credential reaches which route and which tenant on every
//! endpoint; how keys are issued, listed and revoked without their secret ever being kept; how
//! soon a creation or a revocation reaches the other instances, with the bus and without it;
//! who the changelog names as the author of each change; and that keys outlive a restart.
//!
//! The credential matrix is table-driven like tests/api/: every case is sent, every mismatch
//! is collected, and the test fails listing all of them, so one broken case never hides
//! another. What each credential may do is worked out from the rules of docs/API.md
//! ("Authentication") by [`allowed`], not written out case by case.

#[path = "../common/mod.rs"]
mod common;

mod actors;
mod issuing;
mod matrix;
mod restarts;
mod spread;

use std::time::{Duration, Instant};

use common::reply::{Reply, assert_error, assert_no_failures, error_mismatch};
use common::{Cluster, Instance, PROPAGATION, eventually};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ADMIN: &str = "admin-secret";
const CHECKER: &str = "check-secret";
const BOTH_TOKENS: [(&str, &str); 2] = [("ADMIN_TOKEN", ADMIN), ("CHECK_TOKEN", CHECKER)];

/// How long, with RESYNC_INTERVAL_SECS=1 and no bus, a key change may take to reach another
/// instance: one sweep interval, the reload, and room for a busy two-core machine.
const SWEEP_BOUND: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------------------------
// Requests and replies
// ---------------------------------------------------------------------------------------------

enum Payload {
    /// A JSON object: the body of a POST, the query string of a GET (values as text).
    Fields(Value),
    /// A POST body sent as it is, with this content type.
    Raw(&'static str, &'static str),
}

struct Call {
    method: Method,
    path: &'static str,
    payload: Payload,
}

impl Call {
    fn get(path: &'static str, fields: Value) -> Self {
        Self {
            method: Method::GET,
            path,
            payload: Payload::Fields(fields),
        }
    }

    fn post(path: &'static str, fields: Value) -> Self {
        Self {
            method: Method::POST,
            path,
            payload: Payload::Fields(fields),
        }
    }

    fn raw(path: &'static str, body: &'static str, content_type: &'static str) -> Self {
        Self {
            method: Method::POST,
            path,
            payload: Payload::Raw(body, content_type),
        }
    }

    fn label(&self) -> String {
        match &self.payload {
            Payload::Fields(fields) => format!("{} {} {fields}", self.method, self.path),
            Payload::Raw(body, content_type) => {
                format!("{} {} {body:?} as {content_type}", self.method, self.path)
            }
        }
    }
}

/// Sends `call` with `credential` as the bearer token, or with no Authorization header at all.
async fn send(node: &Instance, call: &Call, credential: Option<&str>) -> Reply {
    let url = node.url(call.path);
    let mut request = match &call.payload {
        Payload::Fields(fields) if call.method == Method::GET => {
            let query: Vec<(String, String)> = fields
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, value)| {
                    let text = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    (name.clone(), text)
                })
                .collect();
            node.client.get(url).query(&query)
        }
        Payload::Fields(fields) => node
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(fields.to_string()),
        Payload::Raw(body, content_type) => node
            .client
            .post(url)
            .header(CONTENT_TYPE, *content_type)
            .body(*body),
    };
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    let response = request.send().await.unwrap_or_else(|e| {
        panic!(
            "{}: the request did not reach the server: {e}",
            call.label()
        )
    });
    Reply::read(response).await
}

// ---------------------------------------------------------------------------------------------
// Keys and credentials
// ---------------------------------------------------------------------------------------------

/// A key as /create-api-key answered it.
struct Key {
    /// The whole key, `rbac_<id>_<secret>`.
    token: String,
    id: String,
    /// The whole 201 response.
    body: Value,
}

impl Key {
    fn secret(&self) -> &str {
        self.token
            .rsplit_once('_')
            .expect("a key has two underscores")
            .1
    }

    /// What GET /api-keys lists for this key: the creation response without `success` and
    /// `key`.
    fn listed(&self) -> Value {
        let mut entry = self.body.clone();
        let fields = entry.as_object_mut().unwrap();
        fields.remove("success");
        fields.remove("key");
        // Moves with use; see `listing`.
        fields.remove("last_used_at");
        entry
    }
}

/// Issues a key with the instance's ADMIN_TOKEN.
async fn create_key(node: &Instance, tenant: &str, role: &str) -> Key {
    create_key_with(node, ADMIN, json!({"tenant": tenant, "role": role})).await
}

async fn create_key_with(node: &Instance, admin: &str, fields: Value) -> Key {
    let reply = send(
        node,
        &Call::post("/create-api-key", fields.clone()),
        Some(admin),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{fields}: {}",
        reply.text
    );
    let body = reply.body();
    let token = body["key"]
        .as_str()
        .expect("the key is a string")
        .to_owned();
    let id = body["id"].as_str().expect("the id is a string").to_owned();
    Key { token, id, body }
}

async fn revoke(node: &Instance, id: &str) -> Value {
    let reply = send(
        node,
        &Call::post("/revoke-api-key", json!({"id": id})),
        Some(ADMIN),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "revoke {id}: {}", reply.text);
    reply.body()
}

/// A listed key without its last use, which moves whenever a sweep records it: checked on its
/// own (issuing.rs), and left out elsewhere so that listings compare whole.
fn without_last_use(entry: &Value) -> Value {
    let mut entry = entry.clone();
    let used = entry.as_object_mut().unwrap().remove("last_used_at");
    assert!(
        used.as_ref()
            .is_some_and(|used| used.is_null() || used.is_string()),
        "last_used_at: {entry}"
    );
    entry
}

/// Every key GET /api-keys lists, `{"keys": [...]}`, read two at a time so that the listing
/// follows its cursor.
async fn listing(node: &Instance) -> Value {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = json!({"limit": "2"});
        if let Some(cursor) = &cursor {
            query["cursor"] = json!(cursor);
        }
        let reply = send(node, &Call::get("/api-keys", query), Some(ADMIN)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let body = reply.body();
        let page = body["keys"].as_array().expect("a page of keys");
        assert!(page.len() <= 2, "{body}");
        keys.extend(page.iter().map(without_last_use));
        match &body["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => return json!({ "keys": keys }),
            other => panic!("next_cursor is {other}"),
        }
    }
}

fn is_lower_hex(value: &str, digits: usize) -> bool {
    value.len() == digits
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `token:<first 8 hex digits of the token's SHA-256>`, worked out here independently.
fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("token:{hex}")
}

/// Replaces the character at `index` with another one of the same class (hex digit).
fn change_digit(value: &str, index: usize) -> String {
    let mut bytes = value.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

/// Bearer credentials that are no global token and no key in force: each must get 401. They
/// are made from `key`, a key for every tenant, so that any of them let in by mistake would
/// reach everything.
fn not_in_force(key: &Key, revoked: &Key) -> Vec<(String, Option<String>)> {
    let (id, secret) = (&key.id, key.secret());
    let last = secret.len() - 1;
    let stranger = |label: &str, credential: String| (label.to_string(), Some(credential));
    vec![
        ("no credential".to_string(), None),
        stranger("a wrong token", "wrong".into()),
        stranger("ADMIN_TOKEN with one more letter", format!("{ADMIN}x")),
        stranger(
            "the key with the last digit of its secret changed",
            format!("rbac_{id}_{}", change_digit(secret, last)),
        ),
        stranger(
            "the key with the first digit of its secret changed",
            format!("rbac_{id}_{}", change_digit(secret, 0)),
        ),
        stranger(
            "the secret under another well-formed id",
            format!("rbac_{}_{secret}", change_digit(id, 0)),
        ),
        stranger(
            "the key with an uppercase letter in its id",
            format!("rbac_A{}_{secret}", &id[1..]),
        ),
        stranger(
            "the key with a 15-digit id",
            format!("rbac_{}_{secret}", &id[1..]),
        ),
        stranger("the key with a 17-digit id", format!("rbac_{id}0_{secret}")),
        stranger(
            "the key with an uppercase letter in its secret",
            format!("rbac_{id}_F{}", &secret[1..]),
        ),
        stranger(
            "the key with a secret one digit short",
            format!("rbac_{id}_{}", &secret[1..]),
        ),
        stranger(
            "the key with an uppercase prefix",
            format!("RBAC_{id}_{secret}"),
        ),
        stranger("the key without its prefix", format!("{id}_{secret}")),
        stranger("the key's secret alone", secret.to_string()),
        stranger("the key's id alone", id.clone()),
        stranger("a revoked key", revoked.token.clone()),
    ]
}
