//! The AuthZEN Authorization API from outside, against real server processes: the
//! certification scenario's Core levels and its Discovery level, run at a tenant's base and at
//! the root; every bad request refused on every route; how the root finds its tenant; and what
//! the API promises beyond the scenario: the evaluations semantics, search pages, wildcard
//! grants in search results, subjects of other types, and tenants whose names need
//! percent-encoding.
//!
//! Each check of the scenario is named by its id in the scenario's text (`c-2-4-1` and so on);
//! a run collects every failure under its id and fails listing all of them, so that one broken
//! check never hides another.

#[path = "../common/mod.rs"]
mod common;

mod behaviour;
mod requests;
mod scenario;

use std::collections::BTreeSet;
use std::time::Duration;

use common::process::{Environment, Process};
use common::reply::{Reply, assert_no_failures, error_mismatch};
use common::{Api, Cluster};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use serde_json::{Map, Value, json};

const ADMIN: &str = "admin-secret";
const CHECKER: &str = "check-secret";
/// What the servers that stand behind a TLS proxy advertise.
const PUBLIC_URL: &str = "https://pdp.example.test";
const REQUEST_ID: &str = "x-request-id";

const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";
const SUBJECT_SEARCH: &str = "/access/v1/search/subject";
const RESOURCE_SEARCH: &str = "/access/v1/search/resource";
const ACTION_SEARCH: &str = "/access/v1/search/action";
const ENDPOINTS: [&str; 5] = [
    EVALUATION,
    EVALUATIONS,
    SUBJECT_SEARCH,
    RESOURCE_SEARCH,
    ACTION_SEARCH,
];
/// Each endpoint under the key the metadata gives it.
const METADATA_ENDPOINTS: [(&str, &str); 5] = [
    ("access_evaluation_endpoint", EVALUATION),
    ("access_evaluations_endpoint", EVALUATIONS),
    ("search_subject_endpoint", SUBJECT_SEARCH),
    ("search_resource_endpoint", RESOURCE_SEARCH),
    ("search_action_endpoint", ACTION_SEARCH),
];
/// The body limits: every route's, and the larger one of the evaluations route.
const BODY_LIMIT: usize = 64 * 1024;
const EVALUATIONS_BODY_LIMIT: usize = 2 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// A PDP as its clients call it
// ---------------------------------------------------------------------------------------------

/// One PDP of a server: the server's address, the PDP's path on it (`/tenants/acme`, or empty
/// for the root), the origin the server advertises (a TLS proxy in front of it would serve that
/// one) and the credential its calls carry.
#[derive(Clone)]
struct Pdp {
    client: reqwest::Client,
    origin: String,
    path: String,
    public_origin: String,
    token: Option<String>,
}

impl Pdp {
    /// The PDP at `path` on `node`, advertised under the node's own address.
    fn new(node: &Api, path: &str, token: Option<&str>) -> Self {
        Self {
            client: node.client.clone(),
            origin: node.base.clone(),
            path: path.to_owned(),
            public_origin: node.base.clone(),
            token: token.map(str::to_owned),
        }
    }

    /// The same PDP, advertised under `public_origin` (the server's PUBLIC_URL).
    fn advertised_as(mut self, public_origin: &str) -> Self {
        self.public_origin = public_origin.to_owned();
        self
    }

    fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// The PDP identifier: what its metadata must name as `policy_decision_point`.
    fn identifier(&self) -> String {
        format!("{}{}", self.public_origin, self.path)
    }

    fn url(&self, endpoint: &str) -> String {
        format!("{}{}{endpoint}", self.origin, self.path)
    }

    /// POSTs `body` as it is, with this content type (or none) and request id (or none).
    async fn send(
        &self,
        endpoint: &str,
        body: impl Into<Vec<u8>>,
        content_type: Option<&str>,
        request_id: Option<&str>,
    ) -> Reply {
        send_to(
            &self.client,
            &self.url(endpoint),
            self.token.as_deref(),
            body.into(),
            content_type,
            request_id,
        )
        .await
    }

    /// POSTs `body` as JSON.
    async fn post(&self, endpoint: &str, body: &Value) -> Reply {
        self.send(
            endpoint,
            serde_json::to_vec(body).unwrap(),
            Some("application/json"),
            None,
        )
        .await
    }

    /// GETs the metadata at the well-known URI of this PDP, without a credential.
    async fn metadata(&self, host: Option<&str>) -> Reply {
        let url = format!(
            "{}/.well-known/authzen-configuration{}",
            self.origin, self.path
        );
        let mut request = self.client.get(url);
        if let Some(host) = host {
            request = request.header(HOST, host);
        }
        Reply::read(request.send().await.expect("request reaches the server")).await
    }
}

/// POSTs `body` to `url`, bearing `token` when there is one.
async fn send_to(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
    content_type: Option<&str>,
    request_id: Option<&str>,
) -> Reply {
    // A server that refuses a body without reading it closes the connection after answering,
    // so such a request must not leave a connection in the shared pool for the next one.
    let client = if body.len() > BODY_LIMIT {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    } else {
        client.clone()
    };
    let mut request = client.post(url).body(body);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    if let Some(id) = request_id {
        request = request.header(REQUEST_ID, id);
    }
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} did not reach the server: {e}"));
    Reply::read(response).await
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

fn entity(kind: &str, id: &str) -> Value {
    json!({"type": kind, "id": id})
}

fn user(id: &str) -> Value {
    entity("user", id)
}

fn record(id: &str) -> Value {
    entity("record", id)
}

fn action(name: &str) -> Value {
    json!({ "name": name })
}

fn kind(kind: &str) -> Value {
    json!({ "type": kind })
}

fn evaluation(subject: Value, action_name: &str, resource: Value) -> Value {
    json!({"subject": subject, "action": action(action_name), "resource": resource})
}

fn subject_search(subject_type: &str, action_name: &str, resource: Value) -> Value {
    json!({"subject": kind(subject_type), "action": action(action_name), "resource": resource})
}

fn resource_search(subject: Value, action_name: &str, resource_type: &str) -> Value {
    json!({"subject": subject, "action": action(action_name), "resource": kind(resource_type)})
}

fn action_search(subject: Value, resource: Value) -> Value {
    json!({"subject": subject, "resource": resource})
}

/// A context of the kind a PEP sends: nothing the policy reads.
fn context() -> Value {
    json!({"at": "2031-02-03T04:05:06Z", "client_ip": "10.1.2.3"})
}

/// `body` with `key` set to `value` (added if absent).
fn with(body: &Value, key: &str, value: Value) -> Value {
    let mut body = body.clone();
    body[key] = value;
    body
}

/// `body` without `key`.
fn without(body: &Value, key: &str) -> Value {
    let mut body = body.clone();
    body.as_object_mut().unwrap().remove(key);
    body
}

/// `body` with `entity`'s `field` set to `value`.
fn with_field(body: &Value, entity: &str, field: &str, value: Value) -> Value {
    let mut body = body.clone();
    body[entity][field] = value;
    body
}

/// `body` without `entity`'s `field`.
fn without_field(body: &Value, entity: &str, field: &str) -> Value {
    let mut body = body.clone();
    body[entity].as_object_mut().unwrap().remove(field);
    body
}

// ---------------------------------------------------------------------------------------------
// Reading answers: each returns what is wrong with the answer, if anything
// ---------------------------------------------------------------------------------------------

type Outcome<T = ()> = Result<T, String>;

/// A success as every AuthZEN route answers one: 200, a JSON content type and a JSON object.
fn success(reply: &Reply) -> Outcome<Value> {
    if reply.status != StatusCode::OK {
        return Err(format!("{} {}", reply.status.as_u16(), reply.text));
    }
    let content_type = reply
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(format!("content type {content_type:?}: {}", reply.text));
    }
    match reply.json() {
        Some(body @ Value::Object(_)) => Ok(body),
        _ => Err(format!("not a JSON object: {:?}", reply.text)),
    }
}

/// An evaluation's answer: `{"decision": bool}` and nothing else.
fn decision(reply: &Reply) -> Outcome<bool> {
    let body = success(reply)?;
    match (body.as_object().unwrap().len(), &body["decision"]) {
        (1, Value::Bool(decision)) => Ok(*decision),
        _ => Err(format!("not a lone boolean `decision`: {body}")),
    }
}

fn expect_decision(reply: &Reply, expected: bool) -> Outcome {
    let got = decision(reply)?;
    same(&got, &expected, "decision")
}

/// The items of an evaluations answer: `{"evaluations": [...]}` alone, each item an object with
/// a boolean `decision` and nothing else but, maybe, a `context` object.
fn evaluation_items(reply: &Reply) -> Outcome<Vec<Value>> {
    let body = success(reply)?;
    let items = match (body.as_object().unwrap().len(), &body["evaluations"]) {
        (1, Value::Array(items)) => items.clone(),
        _ => return Err(format!("not a lone `evaluations` array: {body}")),
    };
    for item in &items {
        let Some(fields) = item.as_object() else {
            return Err(format!("an item is not an object: {body}"));
        };
        let well_formed = fields["decision"].is_boolean()
            && fields
                .iter()
                .all(|(k, v)| k == "decision" || (k == "context" && v.is_object()));
        if !well_formed {
            return Err(format!(
                "an item is not {{\"decision\", \"context\"?}}: {body}"
            ));
        }
    }
    Ok(items)
}

/// The decisions of an evaluations answer whose items are all plain `{"decision": bool}`.
fn plain_decisions(reply: &Reply) -> Outcome<Vec<bool>> {
    let items = evaluation_items(reply)?;
    items
        .iter()
        .map(|item| match item.as_object().unwrap().len() {
            1 => Ok(item["decision"].as_bool().unwrap()),
            _ => Err(format!(
                "an answered item carries more than its decision: {item}"
            )),
        })
        .collect()
}

/// Whether `item` is a refused item: a false decision with a 400 `invalid_request` error.
fn is_item_error(item: &Value) -> bool {
    let error = &item["context"]["error"];
    item.as_object().is_some_and(|o| o.len() == 2)
        && item["decision"] == false
        && item["context"].as_object().is_some_and(|o| o.len() == 1)
        && error.as_object().is_some_and(|o| o.len() == 3)
        && error["status"] == 400
        && error["code"] == "invalid_request"
        && error["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty())
}

/// One page of a search answer.
struct Page {
    results: Vec<Value>,
    next_token: String,
}

/// A search answer: `{"page": {"next_token": string, "count": n}, "results": [...]}` with `n`
/// the number of results.
fn page(reply: &Reply) -> Outcome<Page> {
    let body = success(reply)?;
    let shape = body.as_object().unwrap().len() == 2
        && body["results"].is_array()
        && body["page"].as_object().is_some_and(|p| p.len() == 2)
        && body["page"]["next_token"].is_string()
        && body["page"]["count"].is_u64();
    if !shape {
        return Err(format!(
            "not {{\"page\": {{\"next_token\", \"count\"}}, \"results\"}}: {body}"
        ));
    }
    let results = body["results"].as_array().unwrap().clone();
    if body["page"]["count"] != results.len() {
        return Err(format!("`count` is not the number of results: {body}"));
    }
    Ok(Page {
        results,
        next_token: body["page"]["next_token"].as_str().unwrap().to_owned(),
    })
}

/// Every result of a search, following `next_token` page by page; `limit`, when given, goes
/// into every request.
async fn search_all(
    pdp: &Pdp,
    endpoint: &str,
    body: &Value,
    limit: Option<u64>,
) -> Outcome<Vec<Value>> {
    let mut results = Vec::new();
    let mut token: Option<String> = None;
    let mut tokens_seen = BTreeSet::new();
    loop {
        let mut page_request = Map::new();
        if let Some(limit) = limit {
            page_request.insert("limit".into(), json!(limit));
        }
        if let Some(token) = &token {
            page_request.insert("token".into(), json!(token));
        }
        let request = if page_request.is_empty() {
            body.clone()
        } else {
            with(body, "page", Value::Object(page_request))
        };
        let page = page(&pdp.post(endpoint, &request).await)?;
        if let Some(limit) = limit
            && page.results.len() as u64 > limit
        {
            return Err(format!(
                "{} results in a page of {limit}",
                page.results.len()
            ));
        }
        results.extend(page.results);
        if page.next_token.is_empty() {
            return Ok(results);
        }
        if !tokens_seen.insert(page.next_token.clone()) {
            return Err(format!("`next_token` {:?} came twice", page.next_token));
        }
        token = Some(page.next_token);
    }
}

/// The ids of subject or resource results, each of which must be `{"type": kind, "id": ...}`.
fn ids(results: &[Value], kind: &str) -> Outcome<Vec<String>> {
    results
        .iter()
        .map(|result| {
            let well_formed = result.as_object().is_some_and(|o| o.len() == 2)
                && result["type"] == kind
                && result["id"].is_string();
            if well_formed {
                Ok(result["id"].as_str().unwrap().to_owned())
            } else {
                Err(format!(
                    "a result is not {{\"type\": {kind:?}, \"id\"}}: {result}"
                ))
            }
        })
        .collect()
}

/// The names of action results, each of which must be `{"name": ...}`.
fn names(results: &[Value]) -> Outcome<Vec<String>> {
    results
        .iter()
        .map(|result| match result.as_object().map(|o| o.len()) {
            Some(1) if result["name"].is_string() => {
                Ok(result["name"].as_str().unwrap().to_owned())
            }
            _ => Err(format!("a result is not {{\"name\"}}: {result}")),
        })
        .collect()
}

/// What is wrong with `reply` as the error `status`/`code`, if anything.
fn refused(reply: &Reply, status: u16, code: &str) -> Outcome {
    match error_mismatch(reply, status, code) {
        None => Ok(()),
        Some(problem) => Err(problem),
    }
}

fn same<T: PartialEq + std::fmt::Debug>(got: &T, expected: &T, what: &str) -> Outcome {
    if got == expected {
        Ok(())
    } else {
        Err(format!("{what} is {got:?}, expected {expected:?}"))
    }
}

fn includes(got: &[String], wanted: &[&str], what: &str) -> Outcome {
    let missing: Vec<&&str> = wanted
        .iter()
        .filter(|w| !got.iter().any(|g| g == **w))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{what} {got:?} lack {missing:?}"))
    }
}

/// Whether `url` is an absolute URL of `scheme` with a host and no query or fragment.
fn absolute_url(url: &str, scheme: &str) -> Outcome {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let fine = parsed.scheme() == scheme
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    if fine {
        Ok(())
    } else {
        Err(format!(
            "{url:?} is not an {scheme} URL without query and fragment"
        ))
    }
}

/// The checks of one run, each failure under the check's id.
#[derive(Default)]
struct Findings {
    failures: Vec<String>,
    checks: usize,
}

impl Findings {
    fn note(&mut self, id: &str, outcome: Outcome) {
        self.checks += 1;
        if let Err(problem) = outcome {
            self.failures.push(format!("{id}: {problem}"));
        }
    }

    fn assert_passed(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} checks failed:\n  {}",
            self.failures.len(),
            self.checks,
            self.failures.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Policies, through the native API
// ---------------------------------------------------------------------------------------------

/// The scenario's fixture in the native model: alice may read and write record-1; bob may read
/// every record, so not write record-1; carol reads a document, a resource of another type for
/// the searches to leave out.
async fn load_fixture(native: &Api, tenant: &str) {
    native.create_group(tenant, "editors").await;
    native
        .add_permission(tenant, "editors", "record/record-1", "read")
        .await;
    native
        .add_permission(tenant, "editors", "record/record-1", "write")
        .await;
    native.assign_user(tenant, "alice", "editors").await;
    native.create_group(tenant, "readers").await;
    native
        .add_permission(tenant, "readers", "record/*", "read")
        .await;
    native.assign_user(tenant, "bob", "readers").await;
    native.create_group(tenant, "archivists").await;
    native
        .add_permission(tenant, "archivists", "document/d-1", "read")
        .await;
    native.assign_user(tenant, "carol", "archivists").await;
}

/// Puts `user` in a group of its own holding `grants` (resource, action).
async fn grant(native: &Api, tenant: &str, user: &str, grants: &[(&str, &str)]) {
    let group = format!("own-{user}");
    native.create_group(tenant, &group).await;
    for (resource, action) in grants {
        native
            .add_permission(tenant, &group, resource, action)
            .await;
    }
    native.assign_user(tenant, user, &group).await;
}

async fn create_key(native: &Api, tenant: &str, role: &str) -> String {
    let (status, key) = native
        .post("/create-api-key", json!({"tenant": tenant, "role": role}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    key["key"].as_str().expect("a created key").to_owned()
}

/// The users of `users` that a native check allows `action` on `resource`, in order.
async fn natively_allowed(
    native: &Api,
    tenant: &str,
    users: &[String],
    resource: &str,
    action: &str,
) -> Vec<String> {
    let mut allowed = Vec::new();
    for chunk in users.chunks(1000) {
        let checks: Vec<Value> = chunk
            .iter()
            .map(|u| json!({"tenant": tenant, "user": u, "resource": resource, "action": action}))
            .collect();
        let (status, body) = native
            .post("/check-access/batch", json!({ "checks": checks }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (user, result) in chunk.iter().zip(body["results"].as_array().unwrap()) {
            if result["allowed"].as_bool().expect("allowed is a boolean") {
                allowed.push(user.clone());
            }
        }
    }
    allowed
}

/// A valid request of the scenario's fixture for `endpoint`.
fn valid_request(endpoint: &str) -> Value {
    match endpoint {
        EVALUATION | EVALUATIONS => evaluation(user("alice"), "read", record("record-1")),
        SUBJECT_SEARCH => subject_search("user", "read", record("record-1")),
        RESOURCE_SEARCH => resource_search(user("alice"), "read", "record"),
        ACTION_SEARCH => action_search(user("alice"), record("record-1")),
        _ => unreachable!("{endpoint}"),
    }
}
