//! API keys, from outside: which credential reaches which route and which tenant on every
//! endpoint; how keys are issued, listed and revoked without their secret ever being kept; how
//! soon a creation or a revocation reaches the other instances, with the bus and without it;
//! who the changelog names as the author of each change; and that keys outlive a restart.
//!
//! The credential matrix is table-driven like tests/api.rs: every case is sent, every mismatch
//! is collected, and the test fails listing all of them, so one broken case never hides
//! another. What each credential may do is worked out from the rules of docs/API.md
//! ("Authentication") by [`allowed`], not written out case by case.

mod common;

use std::time::{Duration, Instant};

use common::reply::{Reply, assert_no_failures, error_mismatch};
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

#[track_caller]
fn assert_error(reply: &Reply, status: u16, code: &str, what: &str) {
    if let Some(problem) = error_mismatch(reply, status, code) {
        panic!("{what}: {problem}");
    }
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
        keys.extend(page.iter().cloned());
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

// ---------------------------------------------------------------------------------------------
// The routes, and who may call them
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    /// The seven write routes: an admin credential for the tenant.
    Write,
    /// Reads of one tenant: any credential for the tenant.
    Read,
    /// /cache-stats and /metrics: any credential for every tenant.
    Instance,
    /// The API-key endpoints: ADMIN_TOKEN only.
    Keys,
}

/// A route with a valid request. Write requests are chosen so that one let in by mistake would
/// change the store: a new group, permission or member, or a seeded one removed.
struct Route {
    guard: Guard,
    method: Method,
    path: &'static str,
    fields: Value,
}

impl Route {
    /// The request, aimed at `tenant` if the route names one.
    fn call(&self, tenant: &str) -> Call {
        let mut fields = self.fields.clone();
        if matches!(self.guard, Guard::Write | Guard::Read) {
            fields["tenant"] = json!(tenant);
        }
        Call {
            method: self.method.clone(),
            path: self.path,
            payload: Payload::Fields(fields),
        }
    }

    /// The tenants to aim the route at: both for routes that name one, else just one.
    fn tenants(&self) -> &'static [&'static str] {
        match self.guard {
            Guard::Write | Guard::Read => &["acme", "globex"],
            Guard::Instance | Guard::Keys => &["-"],
        }
    }
}

/// Every route but /health and /ready. `revocable` is the id /revoke-api-key names.
fn routes(revocable: &str) -> Vec<Route> {
    let route = |guard, method, path, fields| Route {
        guard,
        method,
        path,
        fields,
    };
    use Guard::*;
    vec![
        route(
            Write,
            Method::POST,
            "/create-group",
            json!({"group": "intruders"}),
        ),
        route(
            Write,
            Method::POST,
            "/delete-group",
            json!({"group": "spare"}),
        ),
        route(
            Write,
            Method::POST,
            "/add-permission",
            json!({"group": "g", "resource": "secrets/*", "action": "*"}),
        ),
        route(
            Write,
            Method::POST,
            "/remove-permission",
            json!({"group": "g", "resource": "docs/a", "action": "read"}),
        ),
        route(
            Write,
            Method::POST,
            "/assign-user",
            json!({"user": "mallory", "group": "g"}),
        ),
        route(
            Write,
            Method::POST,
            "/unassign-user",
            json!({"user": "alice", "group": "g"}),
        ),
        route(Write, Method::POST, "/refresh-tenant", json!({})),
        route(
            Read,
            Method::GET,
            "/check-access",
            json!({"user": "alice", "resource": "docs/a", "action": "read"}),
        ),
        route(
            Read,
            Method::POST,
            "/check-access",
            json!({"user": "alice", "resource": "docs/a", "action": "read"}),
        ),
        route(Read, Method::GET, "/groups", json!({})),
        route(
            Read,
            Method::GET,
            "/group-permissions",
            json!({"group": "g"}),
        ),
        route(Read, Method::GET, "/group-members", json!({"group": "g"})),
        route(
            Read,
            Method::GET,
            "/user-permissions",
            json!({"user": "alice"}),
        ),
        route(Instance, Method::GET, "/cache-stats", json!({})),
        route(Instance, Method::GET, "/metrics", json!({})),
        route(
            Keys,
            Method::POST,
            "/create-api-key",
            json!({"tenant": "acme", "role": "admin"}),
        ),
        route(
            Keys,
            Method::POST,
            "/revoke-api-key",
            json!({"id": revocable}),
        ),
        route(Keys, Method::GET, "/api-keys", json!({})),
    ]
}

/// A valid credential, as the server should see it.
struct Credential {
    label: &'static str,
    bearer: String,
    admin: bool,
    /// None: every tenant.
    tenant: Option<&'static str>,
    /// ADMIN_TOKEN itself, the only credential that manages keys.
    admin_token: bool,
}

/// What docs/API.md's Authentication section says `credential` may do on `route` for
/// `tenant`, with both ADMIN_TOKEN and CHECK_TOKEN set.
fn allowed(credential: &Credential, guard: Guard, tenant: &str) -> bool {
    let reaches = credential.tenant.is_none_or(|own| own == tenant);
    match guard {
        Guard::Write => credential.admin && reaches,
        Guard::Read => reaches,
        Guard::Instance => credential.tenant.is_none(),
        Guard::Keys => credential.admin_token,
    }
}

/// A tenant with group `g` (`docs/a` + `read`, member `alice`) and an empty group `spare`, at
/// revision 4.
async fn seed(node: &Instance, tenant: &str) {
    node.create_group(tenant, "g").await;
    node.add_permission(tenant, "g", "docs/a", "read").await;
    node.assign_user(tenant, "alice", "g").await;
    node.create_group(tenant, "spare").await;
}

/// What a read let in must answer for the seeded tenant `tenant`, if it does not.
fn read_mismatch(path: &str, tenant: &str, reply: &Reply) -> Option<String> {
    if reply.status != StatusCode::OK {
        return Some(format!("{} {}", reply.status, reply.text));
    }
    let ok = match path {
        "/metrics" => reply.text.contains("rbac_key_reloads_total"),
        _ => {
            let body = reply.body();
            match path {
                "/check-access" => body == json!({"allowed": true, "revision": 4}),
                "/groups" => {
                    body["tenant"] == tenant && body["groups"].as_array().unwrap().len() == 2
                }
                "/group-permissions" => {
                    body["group"] == "g" && body["permissions"].as_array().unwrap().len() == 1
                }
                "/group-members" => body["group"] == "g" && body["members"] == json!(["alice"]),
                "/user-permissions" => body["groups"] == json!(["g"]),
                "/cache-stats" => body["api_keys"].is_u64() && body["key_reloads"].is_u64(),
                other => unreachable!("{other} is not a read"),
            }
        }
    };
    (!ok).then(|| format!("unexpected answer: {}", reply.text))
}

/// The seven writes, each of which must succeed with `credential` on `tenant` and change it,
/// leaving the seeded state as it found it: six changes, and a refresh.
async fn writes_succeed(node: &Instance, credential: &str, tenant: &str) -> Vec<String> {
    let steps = [
        ("/create-group", json!({"group": "h"}), 201, "created"),
        (
            "/add-permission",
            json!({"group": "h", "resource": "r", "action": "a"}),
            200,
            "changed",
        ),
        (
            "/assign-user",
            json!({"user": "bob", "group": "h"}),
            200,
            "changed",
        ),
        (
            "/unassign-user",
            json!({"user": "bob", "group": "h"}),
            200,
            "changed",
        ),
        (
            "/remove-permission",
            json!({"group": "h", "resource": "r", "action": "a"}),
            200,
            "changed",
        ),
        ("/delete-group", json!({"group": "h"}), 200, "changed"),
        ("/refresh-tenant", json!({}), 200, "success"),
    ];
    let mut failures = Vec::new();
    for (path, mut fields, status, flag) in steps {
        fields["tenant"] = json!(tenant);
        let reply = send(node, &Call::post(path, fields.clone()), Some(credential)).await;
        if reply.status.as_u16() != status || reply.body()[flag] != true {
            failures.push(format!(
                "POST {path} {fields}: {} {}",
                reply.status, reply.text
            ));
        }
    }
    failures
}

// ---------------------------------------------------------------------------------------------
// 1. Every route, every kind of credential
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_route_lets_in_exactly_the_credentials_that_reach_it_and_refusals_change_nothing() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    seed(node, "acme").await;
    seed(node, "globex").await;
    let acme_admin = create_key(node, "acme", "admin").await;
    let acme_check = create_key(node, "acme", "check").await;
    let all_admin = create_key(node, "*", "admin").await;
    let all_check = create_key(node, "*", "check").await;
    // What /revoke-api-key names: revoking it by mistake shows in the store.
    let revocable = create_key(node, "acme", "check").await;
    let revoked = create_key(node, "*", "admin").await;
    assert_eq!(revoke(node, &revoked.id).await["revoked"], true);

    let credential = |label, key: &Key, admin, tenant| Credential {
        label,
        bearer: key.token.clone(),
        admin,
        tenant,
        admin_token: false,
    };
    let credentials = [
        credential("an admin key for acme", &acme_admin, true, Some("acme")),
        credential("a check key for acme", &acme_check, false, Some("acme")),
        credential("an admin key for every tenant", &all_admin, true, None),
        credential("a check key for every tenant", &all_check, false, None),
        Credential {
            label: "CHECK_TOKEN",
            bearer: CHECKER.into(),
            admin: false,
            tenant: None,
            admin_token: false,
        },
        Credential {
            label: "ADMIN_TOKEN",
            bearer: ADMIN.into(),
            admin: true,
            tenant: None,
            admin_token: true,
        },
    ];
    let routes = routes(&revocable.id);
    let strangers = not_in_force(&all_admin, &revoked);
    let before = common::stored_rows(&cluster.database_url).await;

    // Refusals: every route with every credential not in force (401), and every valid
    // credential on every route and tenant it does not reach (403).
    let mut failures = Vec::new();
    let mut total = 0;
    for route in &routes {
        for tenant in route.tenants() {
            let call = route.call(tenant);
            for (label, bearer) in &strangers {
                total += 1;
                let reply = send(node, &call, bearer.as_deref()).await;
                if let Some(problem) = error_mismatch(&reply, 401, "unauthorized") {
                    failures.push(format!("{} with {label}: {problem}", call.label()));
                }
            }
            for credential in &credentials {
                if allowed(credential, route.guard, tenant) {
                    continue;
                }
                total += 1;
                let reply = send(node, &call, Some(&credential.bearer)).await;
                if let Some(problem) = error_mismatch(&reply, 403, "forbidden") {
                    failures.push(format!(
                        "{} with {}: {problem}",
                        call.label(),
                        credential.label
                    ));
                }
            }
        }
    }

    // The order of the checks: the credential, then the body, then the tenant name, then
    // whether the credential reaches the tenant, then the other names.
    let truncated = "{\"tenant\":";
    let checker = CHECKER.to_string();
    let ordered = [
        (
            Call::raw("/create-group", truncated, "application/json"),
            None,
            (401, "unauthorized"),
        ),
        (
            Call::raw("/create-group", truncated, "application/json"),
            Some(&acme_check.token),
            (403, "forbidden"),
        ),
        (
            Call::raw("/create-group", "{}", "text/plain"),
            Some(&acme_check.token),
            (403, "forbidden"),
        ),
        (
            Call::raw("/create-group", truncated, "application/json"),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::post(
                "/create-group",
                json!({"tenant": "globex", "group": "x", "extra": 1}),
            ),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::post("/create-group", json!({"tenant": "", "group": "x"})),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::post("/create-group", json!({"tenant": "a*b", "group": "x"})),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::post("/create-group", json!({"tenant": "globex", "group": "a*b"})),
            Some(&acme_admin.token),
            (403, "forbidden"),
        ),
        (
            Call::post("/create-group", json!({"tenant": "acme", "group": "a*b"})),
            Some(&acme_admin.token),
            (400, "invalid_request"),
        ),
        (
            Call::get("/groups", json!({"tenant": "globex", "extra": "1"})),
            Some(&acme_check.token),
            (400, "invalid_request"),
        ),
        (
            Call::get(
                "/user-permissions",
                json!({"tenant": "globex", "user": " padded"}),
            ),
            Some(&acme_check.token),
            (403, "forbidden"),
        ),
        (
            Call::raw("/create-api-key", truncated, "application/json"),
            Some(&all_admin.token),
            (403, "forbidden"),
        ),
        (
            Call::post("/revoke-api-key", json!({"id": "not an id"})),
            Some(&checker),
            (403, "forbidden"),
        ),
        (
            Call::post("/revoke-api-key", json!({"id": "not an id"})),
            None,
            (401, "unauthorized"),
        ),
    ];
    for (call, credential, (status, code)) in &ordered {
        total += 1;
        let reply = send(node, call, credential.map(String::as_str)).await;
        if let Some(problem) = error_mismatch(&reply, *status, code) {
            failures.push(format!("{} with {credential:?}: {problem}", call.label()));
        }
    }
    let after = common::stored_rows(&cluster.database_url).await;
    assert_no_failures(&failures, total);
    assert_eq!(before, after, "a refused request changed the store");

    // What is allowed and changes nothing: reads of the tenants a credential reaches, the
    // instance-wide views for credentials of every tenant, and /health and /ready for anyone.
    let mut failures = Vec::new();
    let mut total = 0;
    for route in routes
        .iter()
        .filter(|r| matches!(r.guard, Guard::Read | Guard::Instance))
    {
        for tenant in route.tenants() {
            for credential in credentials
                .iter()
                .filter(|c| allowed(c, route.guard, tenant))
            {
                total += 1;
                let reply = send(node, &route.call(tenant), Some(&credential.bearer)).await;
                if let Some(problem) = read_mismatch(route.path, tenant, &reply) {
                    failures.push(format!(
                        "{} with {}: {problem}",
                        route.call(tenant).label(),
                        credential.label
                    ));
                }
            }
        }
    }
    let anyone = strangers
        .iter()
        .map(|(label, bearer)| (label.clone(), bearer.clone()))
        .chain(
            credentials
                .iter()
                .map(|c| (c.label.to_string(), Some(c.bearer.clone()))),
        );
    for (label, bearer) in anyone {
        for path in ["/health", "/ready"] {
            total += 1;
            let reply = send(node, &Call::get(path, json!({})), bearer.as_deref()).await;
            if reply.status != StatusCode::OK {
                failures.push(format!(
                    "GET {path} with {label}: {} {}",
                    reply.status, reply.text
                ));
            }
        }
    }
    assert_no_failures(&failures, total);
    assert_eq!(
        before,
        common::stored_rows(&cluster.database_url).await,
        "a read changed the store"
    );

    // Admin keys write to the tenants they reach: acme's own key to acme, the key for every
    // tenant to globex.
    let mut failures = writes_succeed(node, &acme_admin.token, "acme").await;
    failures.extend(writes_succeed(node, &all_admin.token, "globex").await);
    assert!(
        failures.is_empty(),
        "writes refused:\n  {}",
        failures.join("\n  ")
    );
    for tenant in ["acme", "globex"] {
        assert_eq!(node.revision(tenant).await, 10, "{tenant}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Issuing, listing and revoking keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_key_requests_are_refused_with_400_404_or_415_and_store_nothing() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    let existing = create_key(node, "acme", "check").await;
    let before = common::stored_rows(&cluster.database_url).await;
    let listed = listing(node).await;

    let create = |fields: Value| Call::post("/create-api-key", fields);
    let with = |field: &str, value: Value| {
        let mut fields = json!({"tenant": "acme", "role": "check", "name": "web app"});
        fields[field] = value;
        create(fields)
    };
    let mut bad = Vec::new();
    for role in [
        json!("owner"),
        json!("Admin"),
        json!(""),
        json!(" admin"),
        json!(1),
        json!(null),
    ] {
        bad.push(with("role", role));
    }
    for tenant in [
        json!(""),
        json!("a*b"),
        json!("**"),
        json!("acme*"),
        json!(" acme"),
        json!("a\u{1}b"),
        json!("x".repeat(257)),
        json!(["acme"]),
        json!(null),
    ] {
        bad.push(with("tenant", tenant));
    }
    for name in [
        json!(""),
        json!(" padded"),
        json!("padded "),
        json!("tab\there"),
        json!("x".repeat(257)),
        json!(7),
    ] {
        bad.push(with("name", name));
    }
    for (field, value) in [
        ("scope", json!("all")),
        ("secret", json!("0".repeat(64))),
        ("id", json!("0123456789abcdef")),
        ("key", json!(existing.token)),
    ] {
        bad.push(with(field, value));
    }
    bad.push(create(json!({"role": "admin"})));
    bad.push(create(json!({"tenant": "acme"})));
    bad.push(create(json!({"name": "web app"})));
    bad.push(create(json!({})));
    bad.push(Call::raw("/create-api-key", "[]", "application/json"));
    bad.push(Call::raw(
        "/create-api-key",
        "{\"tenant\":\"acme\",\"role\":",
        "application/json",
    ));
    bad.push(Call::raw(
        "/create-api-key",
        "{\"tenant\":\"acme\",\"role\":\"admin\",\"role\":\"check\"}",
        "application/json",
    ));

    let revoke_call = |id: Value| Call::post("/revoke-api-key", json!({"id": id}));
    let id = &existing.id;
    for malformed in [
        json!(""),
        json!("0123"),
        json!(id.to_uppercase().replace(|c: char| c.is_ascii_digit(), "A")),
        json!(format!("{}A", &id[..15])),
        json!(format!("{id}0")),
        json!(&id[1..]),
        json!(format!("{}g", &id[..15])),
        json!(format!(" {id}")),
        json!(format!("rbac_{id}")),
        json!(existing.token),
        json!(12345),
        json!(null),
    ] {
        bad.push(revoke_call(malformed));
    }
    bad.push(Call::post("/revoke-api-key", json!({})));
    bad.push(Call::post("/revoke-api-key", json!({"id": id, "extra": 1})));
    bad.push(Call::get("/api-keys", json!({"tenant": "acme"})));

    let mut failures = Vec::new();
    let mut cases: Vec<(Call, u16, &str)> = bad
        .into_iter()
        .map(|call| (call, 400, "invalid_request"))
        .collect();
    cases.push((
        Call::raw(
            "/create-api-key",
            "{\"tenant\":\"acme\",\"role\":\"admin\"}",
            "text/plain",
        ),
        415,
        "unsupported_media_type",
    ));
    cases.push((revoke_call(json!(change_digit(id, 15))), 404, "not_found"));
    cases.push((revoke_call(json!("0000000000000000")), 404, "not_found"));
    for (call, status, code) in &cases {
        let reply = send(node, call, Some(ADMIN)).await;
        if let Some(problem) = error_mismatch(&reply, *status, code) {
            failures.push(format!("{}: {problem}", call.label()));
        }
    }
    assert_no_failures(&failures, cases.len());
    assert_eq!(
        before,
        common::stored_rows(&cluster.database_url).await,
        "a refused key request changed the store"
    );
    assert_eq!(listed, listing(node).await);
    // The existing key was not revoked by any of the malformed ids that resemble its own.
    let reply = send(
        node,
        &Call::get("/groups", json!({"tenant": "acme"})),
        Some(&existing.token),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_key_is_shown_once_then_listed_and_stored_without_its_secret() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    let stats = node.cache_stats().await;
    assert_eq!(stats["api_keys"], 0, "{stats}");
    let reloads = stats["key_reloads"]
        .as_u64()
        .expect("key_reloads is a number");
    assert!(reloads >= 1, "the keys are loaded at start-up: {stats}");

    let started = OffsetDateTime::now_utc();
    let named = create_key_with(
        node,
        ADMIN,
        json!({"tenant": "acme", "role": "check", "name": "acme web app *"}),
    )
    .await;
    let everywhere = create_key(node, "*", "admin").await;
    let finished = OffsetDateTime::now_utc();

    for (key, name, tenant, role) in [
        (&named, json!("acme web app *"), "acme", "check"),
        (&everywhere, Value::Null, "*", "admin"),
    ] {
        let body = &key.body;
        let fields: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = fields.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "created_at",
                "created_by",
                "id",
                "key",
                "name",
                "revoked_at",
                "role",
                "success",
                "tenant"
            ],
            "{body}"
        );
        assert_eq!(body["success"], true);
        assert_eq!(body["name"], name);
        assert_eq!(body["tenant"], tenant);
        assert_eq!(body["role"], role);
        assert_eq!(body["created_by"], fingerprint(ADMIN));
        assert_eq!(body["revoked_at"], Value::Null);
        assert!(is_lower_hex(&key.id, 16), "{body}");
        let rest = key
            .token
            .strip_prefix("rbac_")
            .expect("a key starts with rbac_");
        let (id, secret) = rest.split_once('_').expect("rbac_<id>_<secret>");
        assert_eq!(id, key.id, "{body}");
        assert!(is_lower_hex(secret, 64), "{body}");
        let created_at = body["created_at"].as_str().expect("created_at is a string");
        assert!(created_at.ends_with('Z'), "{created_at} is not UTC");
        let created_at = OffsetDateTime::parse(created_at, &Rfc3339)
            .unwrap_or_else(|e| panic!("{created_at} is not RFC 3339: {e}"));
        let slack = Duration::from_secs(5);
        assert!(
            created_at >= started - slack && created_at <= finished + slack,
            "{created_at} is not when the key was made"
        );
    }
    assert_ne!(named.id, everywhere.id);
    assert_ne!(named.secret(), everywhere.secret());

    // Listed oldest first, as created, with neither the key nor its secret.
    let listed = listing(node).await;
    assert_eq!(
        listed,
        json!({"keys": [named.listed(), everywhere.listed()]})
    );
    let text = listed.to_string();
    for key in [&named, &everywhere] {
        assert!(
            !text.contains(key.secret()),
            "the listing shows a secret: {text}"
        );
    }

    // The store keeps the SHA-256 of the secret and nothing from which the secret can be read.
    let rows = common::stored_rows(&cluster.database_url).await;
    let stored = common::stored_keys(&cluster.database_url).await;
    let dump = format!("{rows}\n{stored:?}");
    for (key, tenant, role) in [
        (&named, Some("acme"), "check"),
        (&everywhere, None, "admin"),
    ] {
        assert!(
            !dump.contains(key.secret()),
            "the store holds a secret:\n{dump}"
        );
        assert!(!dump.contains(&key.token), "the store holds a key:\n{dump}");
        let row = stored
            .iter()
            .find(|row| row.id == key.id)
            .unwrap_or_else(|| panic!("key {} is not stored: {stored:?}", key.id));
        let digest = Sha256::digest(key.secret().as_bytes());
        assert_eq!(row.secret_hash, digest.as_slice(), "{row:?}");
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&key.secret()[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_ne!(row.secret_hash, raw, "the store holds the secret's bytes");
        assert_eq!(row.tenant.as_deref(), tenant);
        assert_eq!(row.role, role);
        assert_eq!(row.created_by.as_deref(), Some(fingerprint(ADMIN).as_str()));
        assert_eq!(row.revoked_at, None);
    }
    assert_eq!(stored.len(), 2, "{stored:?}");
    let logs = node.logs().join("\n");
    for key in [&named, &everywhere] {
        assert!(!logs.contains(key.secret()), "the log shows a secret");
    }

    // Both keys work at once; /cache-stats counts them and the reload that put each in force.
    for key in [&named, &everywhere] {
        let reply = send(
            node,
            &Call::get("/groups", json!({"tenant": "acme"})),
            Some(&key.token),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let stats = node.cache_stats().await;
    assert_eq!(stats["api_keys"], 2, "{stats}");
    assert!(
        stats["key_reloads"].as_u64().unwrap() >= reloads + 2,
        "{stats}"
    );
}

#[tokio::test]
async fn a_revoked_key_stops_at_once_stays_listed_and_revoking_it_again_changes_nothing() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    let kept = create_key(node, "acme", "admin").await;
    let key = create_key(node, "acme", "admin").await;
    let groups = Call::get("/groups", json!({"tenant": "acme"}));
    assert_eq!(
        send(node, &groups, Some(&key.token)).await.status,
        StatusCode::OK
    );
    let reloads = node.cache_stats().await["key_reloads"].as_u64().unwrap();

    assert_eq!(
        revoke(node, &key.id).await,
        json!({"success": true, "revoked": true})
    );
    assert_error(
        &send(node, &groups, Some(&key.token)).await,
        401,
        "unauthorized",
        "the revoked key, on the very next request",
    );
    let write = Call::post("/create-group", json!({"tenant": "acme", "group": "late"}));
    assert_error(
        &send(node, &write, Some(&key.token)).await,
        401,
        "unauthorized",
        "a write with the revoked key",
    );
    let stats = node.cache_stats().await;
    assert_eq!(stats["api_keys"], 1, "{stats}");
    assert!(stats["key_reloads"].as_u64().unwrap() > reloads, "{stats}");

    let listed = listing(node).await;
    let entries = listed["keys"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{listed}");
    assert_eq!(entries[0], kept.listed());
    let revoked_entry = &entries[1];
    let mut expected = key.listed();
    expected["revoked_at"] = revoked_entry["revoked_at"].clone();
    assert_eq!(revoked_entry, &expected);
    let revoked_at = revoked_entry["revoked_at"]
        .as_str()
        .unwrap_or_else(|| panic!("revoked_at is not set: {listed}"));
    let revoked_at = OffsetDateTime::parse(revoked_at, &Rfc3339).unwrap();
    let created_at =
        OffsetDateTime::parse(key.body["created_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(revoked_at >= created_at, "{listed}");

    let before = common::stored_rows(&cluster.database_url).await;
    assert_eq!(
        revoke(node, &key.id).await,
        json!({"success": true, "revoked": false})
    );
    assert_eq!(
        listing(node).await,
        listed,
        "revoking again moved revoked_at"
    );
    assert_eq!(before, common::stored_rows(&cluster.database_url).await);
    assert_eq!(
        send(node, &groups, Some(&key.token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(node, &groups, Some(&kept.token)).await.status,
        StatusCode::OK
    );
    assert_eq!(node.revision("acme").await, 0, "no write got through");
}

#[tokio::test]
async fn on_an_instance_without_admin_token_the_key_endpoints_are_forbidden() {
    // Keys issued by an instance that has ADMIN_TOKEN, on the store the others share.
    let database_url = common::fresh_database().await;
    let issuer = Cluster::on(1, database_url.clone(), None, &[("ADMIN_TOKEN", ADMIN)]).await;
    let acme_admin = create_key(&issuer[0], "acme", "admin").await;
    let all_check = create_key(&issuer[0], "*", "check").await;
    let open = Cluster::on(1, database_url.clone(), None, &[]).await;
    let check_only = Cluster::on(1, database_url.clone(), None, &[("CHECK_TOKEN", CHECKER)]).await;
    let before = common::stored_rows(&database_url).await;

    let calls = [
        Call::post(
            "/create-api-key",
            json!({"tenant": "acme", "role": "admin"}),
        ),
        Call::post("/revoke-api-key", json!({"id": acme_admin.id})),
        Call::get("/api-keys", json!({})),
    ];
    let credentials = [
        None,
        Some("wrong"),
        Some(ADMIN),
        Some(CHECKER),
        Some(acme_admin.token.as_str()),
        Some(all_check.token.as_str()),
    ];
    let mut failures = Vec::new();
    let mut total = 0;
    for (config, node) in [
        ("no tokens", &open[0]),
        ("CHECK_TOKEN only", &check_only[0]),
    ] {
        for call in &calls {
            for credential in credentials {
                total += 1;
                let reply = send(node, call, credential).await;
                if let Some(problem) = error_mismatch(&reply, 403, "forbidden") {
                    failures.push(format!(
                        "{} with {credential:?} on an instance with {config}: {problem}",
                        call.label()
                    ));
                }
            }
        }
    }
    assert_no_failures(&failures, total);
    assert_eq!(before, common::stored_rows(&database_url).await);

    // With CHECK_TOKEN alone, a key is a credential for reads, and its tenant still bounds it.
    let node = &check_only[0];
    let groups = |tenant| Call::get("/groups", json!({"tenant": tenant}));
    assert_eq!(
        send(node, &groups("acme"), Some(&acme_admin.token))
            .await
            .status,
        StatusCode::OK
    );
    assert_error(
        &send(node, &groups("globex"), Some(&acme_admin.token)).await,
        403,
        "forbidden",
        "an acme key reading globex with CHECK_TOKEN only",
    );
    assert_eq!(
        send(node, &groups("globex"), Some(&all_check.token))
            .await
            .status,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Propagation across instances
// ---------------------------------------------------------------------------------------------

/// The status a read of acme with `key` gets on `node`.
async fn status_with(node: &Instance, key: &str) -> StatusCode {
    send(
        node,
        &Call::get("/groups", json!({"tenant": "acme"})),
        Some(key),
    )
    .await
    .status
}

#[tokio::test]
async fn a_key_created_or_revoked_on_one_instance_reaches_the_others_through_the_bus() {
    let cluster = Cluster::start_with(3, &BOTH_TOKENS).await;
    for node in &cluster.instances {
        let subscribed = eventually(Duration::from_secs(10), || async {
            node.health().await["redis"] == "connected"
        })
        .await;
        assert!(subscribed.is_some(), "{} never subscribed", node.server_id);
    }

    let key = create_key(&cluster[0], "acme", "admin").await;
    let created = Instant::now();
    assert_eq!(
        status_with(&cluster[0], &key.token).await,
        StatusCode::OK,
        "on the creating instance"
    );
    for i in [1, 2] {
        let node = &cluster[i];
        let took = eventually(PROPAGATION, || async {
            status_with(node, &key.token).await == StatusCode::OK
        })
        .await;
        assert!(
            took.is_some(),
            "the new key does not work on {} after {PROPAGATION:?}",
            node.server_id
        );
        eprintln!(
            "key created on {} works on {} after {:?}",
            cluster[0].server_id,
            node.server_id,
            created.elapsed()
        );
    }
    let write = Call::post("/create-group", json!({"tenant": "acme", "group": "g"}));
    let reply = send(&cluster[2], &write, Some(&key.token)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let body = revoke(&cluster[1], &key.id).await;
    let revoked = Instant::now();
    assert_eq!(body["revoked"], true);
    assert_error(
        &send(
            &cluster[1],
            &Call::get("/groups", json!({"tenant": "acme"})),
            Some(&key.token),
        )
        .await,
        401,
        "unauthorized",
        "the very next request on the revoking instance",
    );
    for i in [0, 2] {
        let node = &cluster[i];
        let took = eventually(PROPAGATION, || async {
            status_with(node, &key.token).await == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(
            took.is_some(),
            "the revoked key still works on {} after {PROPAGATION:?}",
            node.server_id
        );
        eprintln!(
            "key revoked on {} refused on {} after {:?}",
            cluster[1].server_id,
            node.server_id,
            revoked.elapsed()
        );
    }
    let before = common::stored_rows(&cluster.database_url).await;
    let late = Call::post("/create-group", json!({"tenant": "acme", "group": "late"}));
    for node in &cluster.instances {
        assert_error(
            &send(node, &late, Some(&key.token)).await,
            401,
            "unauthorized",
            &node.server_id,
        );
        assert_eq!(
            node.cache_stats().await["api_keys"],
            0,
            "{}",
            node.server_id
        );
    }
    assert_eq!(before, common::stored_rows(&cluster.database_url).await);
}

#[tokio::test]
async fn without_a_bus_the_sweep_carries_keys_and_revocations_to_the_other_instances() {
    let cluster = Cluster::without_bus(
        2,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("CHECK_TOKEN", CHECKER),
            ("RESYNC_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    let (issuer, other) = (&cluster[0], &cluster[1]);

    let key = create_key(issuer, "acme", "check").await;
    let created = Instant::now();
    assert_eq!(status_with(issuer, &key.token).await, StatusCode::OK);
    let took = eventually(SWEEP_BOUND, || async {
        status_with(other, &key.token).await == StatusCode::OK
    })
    .await;
    assert!(
        took.is_some(),
        "the new key does not work on the other instance after {SWEEP_BOUND:?}"
    );
    eprintln!(
        "without a bus, a new key works on the other instance after {:?}",
        created.elapsed()
    );

    assert_eq!(revoke(issuer, &key.id).await["revoked"], true);
    let revoked = Instant::now();
    assert_eq!(
        status_with(issuer, &key.token).await,
        StatusCode::UNAUTHORIZED
    );
    let took = eventually(SWEEP_BOUND, || async {
        status_with(other, &key.token).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        took.is_some(),
        "the revoked key still works on the other instance after {SWEEP_BOUND:?}"
    );
    eprintln!(
        "without a bus, a revoked key is refused on the other instance after {:?}",
        revoked.elapsed()
    );
    assert_eq!(other.cache_stats().await["api_keys"], 0);
}

// ---------------------------------------------------------------------------------------------
// 4. Who changed what
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_changelog_names_the_token_or_key_behind_every_change() {
    const ROTATED_OUT: &str = "admin-rotated-out";
    let admin_tokens = format!("{ADMIN},{ROTATED_OUT}");
    let cluster = Cluster::start_with(1, &[("ADMIN_TOKEN", admin_tokens.as_str())]).await;
    let node = &cluster[0];
    for token in [ADMIN, ROTATED_OUT] {
        let print = fingerprint(token);
        assert!(is_lower_hex(print.strip_prefix("token:").unwrap(), 8));
        assert!(!print.contains(token));
    }
    assert_ne!(fingerprint(ADMIN), fingerprint(ROTATED_OUT));

    let key = create_key(node, "acme", "admin").await;
    let older = create_key_with(node, ROTATED_OUT, json!({"tenant": "*", "role": "admin"})).await;
    let check = create_key(node, "acme", "check").await;
    assert_eq!(key.body["created_by"], fingerprint(ADMIN));
    assert_eq!(older.body["created_by"], fingerprint(ROTATED_OUT));

    let write = |path, fields: Value, credential: &str| {
        let call = Call::post(path, fields);
        let credential = credential.to_owned();
        async move { send(node, &call, Some(&credential)).await }
    };
    let steps = [
        (
            "/create-group",
            json!({"tenant": "acme", "group": "g"}),
            ADMIN,
            201,
        ),
        (
            "/create-group",
            json!({"tenant": "acme", "group": "h"}),
            ROTATED_OUT,
            201,
        ),
        (
            "/add-permission",
            json!({"tenant": "acme", "group": "g", "resource": "r", "action": "a"}),
            key.token.as_str(),
            200,
        ),
        (
            "/assign-user",
            json!({"tenant": "acme", "user": "u", "group": "g"}),
            older.token.as_str(),
            200,
        ),
        // Changes nothing: no changelog entry.
        (
            "/create-group",
            json!({"tenant": "acme", "group": "g"}),
            key.token.as_str(),
            200,
        ),
        // Refused: no changelog entry.
        (
            "/delete-group",
            json!({"tenant": "acme", "group": "h"}),
            check.token.as_str(),
            403,
        ),
        (
            "/delete-group",
            json!({"tenant": "acme", "group": "h"}),
            "wrong",
            401,
        ),
        (
            "/unassign-user",
            json!({"tenant": "acme", "user": "u", "group": "g"}),
            key.token.as_str(),
            200,
        ),
    ];
    for (path, fields, credential, status) in steps {
        let reply = write(path, fields.clone(), credential).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{path} {fields}: {}",
            reply.text
        );
    }
    let actors = common::changelog_actors(&cluster.database_url, "acme").await;
    assert_eq!(
        actors,
        vec![
            (1, Some(fingerprint(ADMIN))),
            (2, Some(fingerprint(ROTATED_OUT))),
            (3, Some(format!("key:{}", key.id))),
            (4, Some(format!("key:{}", older.id))),
            (5, Some(format!("key:{}", key.id))),
        ]
    );

    // The creator is recorded the same way, in the listing and in the store.
    let stored = common::stored_keys(&cluster.database_url).await;
    let listed = listing(node).await;
    for (key, creator) in [(&key, ADMIN), (&older, ROTATED_OUT), (&check, ADMIN)] {
        let row = stored.iter().find(|row| row.id == key.id).unwrap();
        assert_eq!(row.created_by, Some(fingerprint(creator)), "{row:?}");
        let entry = listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["id"] == key.id.as_str())
            .unwrap();
        assert_eq!(entry["created_by"], fingerprint(creator), "{entry}");
    }
}

#[tokio::test]
async fn open_writes_are_recorded_without_an_actor_whatever_credential_they_carry() {
    let database_url = common::fresh_database().await;
    let issuer = Cluster::on(1, database_url.clone(), None, &[("ADMIN_TOKEN", ADMIN)]).await;
    let key = create_key(&issuer[0], "acme", "admin").await;
    let open = Cluster::on(1, database_url.clone(), None, &[]).await;
    let node = &open[0];

    // An open route ignores the credential, even a key in force: the write is not its.
    let steps = [
        (json!({"tenant": "acme", "group": "g"}), None),
        (json!({"tenant": "acme", "group": "h"}), Some("wrong")),
        (
            json!({"tenant": "acme", "group": "i"}),
            Some(key.token.as_str()),
        ),
        (json!({"tenant": "acme", "group": "j"}), Some(ADMIN)),
    ];
    for (fields, credential) in steps {
        let reply = send(
            node,
            &Call::post("/create-group", fields.clone()),
            credential,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{fields} with {credential:?}: {}",
            reply.text
        );
    }
    // The same store, written through the instance that guards writes, names the key.
    let reply = send(
        &issuer[0],
        &Call::post("/create-group", json!({"tenant": "acme", "group": "k"})),
        Some(&key.token),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        common::changelog_actors(&database_url, "acme").await,
        vec![
            (1, None),
            (2, None),
            (3, None),
            (4, None),
            (5, Some(format!("key:{}", key.id))),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Restarts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn keys_survive_a_restart_of_every_instance() {
    let mut cluster = Cluster::start_with(2, &BOTH_TOKENS).await;
    let acme_admin = create_key(&cluster[0], "acme", "admin").await;
    let all_check = create_key(&cluster[1], "*", "check").await;
    let revoked = create_key(&cluster[0], "acme", "admin").await;
    assert_eq!(revoke(&cluster[1], &revoked.id).await["revoked"], true);
    let listed = listing(&cluster[0]).await;

    cluster.restart_all().await;

    for (i, node) in cluster.instances.iter().enumerate() {
        assert_eq!(listing(node).await, listed, "{}", node.server_id);
        assert_eq!(
            node.cache_stats().await["api_keys"],
            2,
            "{}",
            node.server_id
        );
        let group = format!("after-restart-{i}");
        let write = Call::post("/create-group", json!({"tenant": "acme", "group": group}));
        let reply = send(node, &write, Some(&acme_admin.token)).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}: {}",
            node.server_id,
            reply.text
        );
        let stats = send(
            node,
            &Call::get("/cache-stats", json!({})),
            Some(&all_check.token),
        )
        .await;
        assert_eq!(
            stats.status,
            StatusCode::OK,
            "{}: {}",
            node.server_id,
            stats.text
        );
        let reply = send(node, &write, Some(&revoked.token)).await;
        assert_error(
            &reply,
            401,
            "unauthorized",
            &format!("the revoked key on {}", node.server_id),
        );
    }
    assert_eq!(revoke(&cluster[0], &revoked.id).await["revoked"], false);
    assert_eq!(cluster[1].revision("acme").await, 2);
}

#[tokio::test]
async fn the_key_listing_pages_oldest_first_and_refuses_bad_limits_and_cursors() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    let mut created = Vec::new();
    for tenant in ["a", "b", "c", "d", "e"] {
        created.push(create_key(node, tenant, "check").await.id);
        // Apart by more than SQLite's millisecond timestamps, so that oldest first is one order.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // One page of all of them, then pages of two by cursor (the helper), list the same keys.
    let get = |query: Value| Call::get("/api-keys", query);
    let whole = send(node, &get(json!({})), Some(ADMIN)).await.body();
    assert_eq!(whole["next_cursor"], Value::Null, "{whole}");
    let ids = |listing: &Value| -> Vec<String> {
        listing["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&whole), created, "oldest first");
    assert_eq!(listing(node).await["keys"], whole["keys"]);
    let first = send(node, &get(json!({"limit": "4"})), Some(ADMIN))
        .await
        .body();
    assert_eq!(ids(&first), created[..4]);
    let cursor = first["next_cursor"].as_str().expect("a fifth key follows");
    let rest = send(node, &get(json!({"cursor": cursor})), Some(ADMIN))
        .await
        .body();
    assert_eq!(
        (ids(&rest), &rest["next_cursor"]),
        (created[4..].to_vec(), &Value::Null)
    );

    let before = common::stored_rows(&cluster.database_url).await;
    let not_an_id = hex_of(&["/api-keys", "not-an-id"]);
    let groups_cursor = hex_of(&["/groups", "acme", "g"]);
    let mut failures = Vec::new();
    let mut bad = vec![
        json!({"limit": "0"}),
        json!({"limit": "1001"}),
        json!({"limit": "x"}),
        json!({"cursor": "zz"}),
        json!({"cursor": not_an_id}),
        json!({"cursor": groups_cursor}),
    ];
    bad.push(json!({"cursor": cursor, "tenant": "a"}));
    for query in &bad {
        let reply = send(node, &get(query.clone()), Some(ADMIN)).await;
        if let Some(problem) = error_mismatch(&reply, 400, "invalid_request") {
            failures.push(format!("{query}: {problem}"));
        }
    }
    assert_no_failures(&failures, bad.len());
    assert_eq!(common::stored_rows(&cluster.database_url).await, before);
}

/// A cursor made the way the server makes them, to show that the scope in it is checked.
fn hex_of(parts: &[&str]) -> String {
    parts
        .join("\n")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}
