//! The OpenAPI document served at /openapi.json, held to the code and to docs/API.md.
//!
//! The annotations it is generated from sit beside the handlers, but nothing makes them true:
//! a route can be added without one, a method changed, a field accepted that the document does
//! not name. So the document is checked against the router itself, driven in-process: every
//! route it serves is documented with exactly the methods it answers, every documented field is
//! one the handler takes (and no other is), every answer to a valid request has a documented
//! status and the documented fields; and the routes are those of the table atop docs/API.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use rbac_server::http::Tokens;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const ADMIN: &str = "adm";

/// Every method a client could try; [`Method::HEAD`] is answered wherever GET is, by axum.
const METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

/// The whole API on an in-memory store, with both global tokens set, so that every guarded
/// route is guarded and the admin token passes them all.
async fn api() -> Router {
    common::in_process_api(
        "openapi",
        Tokens::new(vec![ADMIN.into()], vec!["chk".into()]),
    )
    .await
}

struct Answer {
    status: StatusCode,
    content_type: String,
    allow: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.status, self.body))
    }

    /// Answered by the router's fallbacks: no such route, or not with this method. A handler
    /// may answer 404 too (a group that does not exist), but never with this message.
    fn unrouted(&self) -> bool {
        self.status == StatusCode::METHOD_NOT_ALLOWED
            || (self.status == StatusCode::NOT_FOUND && self.body.contains("no route for"))
    }
}

/// Sends one request with the admin token; `body` is sent as JSON. A tenant in the path
/// (`{tenant}`) is the tenant `t`, as in the samples; a console file (`{asset}`), its script.
async fn call(router: &Router, method: Method, uri: &str, body: Option<&Value>) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(uri.replace("{tenant}", "t").replace("{asset}", "app.js"))
        .header(header::HOST, "rbac.test")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header(header::CONTENT_TYPE).unwrap_or_default();
    let allow = header(header::ALLOW);
    let status = response.status();
    // A watch stream never ends by itself: its head is the answer; dropping it ends it.
    let body = if content_type == "text/event-stream" {
        Default::default()
    } else {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
    };
    Answer {
        status,
        content_type,
        allow,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// The document as served, anonymously: /openapi.json needs no credential.
async fn document(router: &Router) -> Value {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Every (METHOD, path) the document describes, with its operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let mut operations = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if METHODS
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
            {
                operations.insert((method.to_uppercase(), path.clone()), operation);
            }
        }
    }
    operations
}

/// Follows a local `$ref` to what it names.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            resolve(doc, doc.pointer(pointer).expect("a $ref that resolves"))
        }
        None => value,
    }
}

/// The properties of an object schema, with those of the schemas it is `allOf`: a flattened
/// field's schema is one of them.
fn properties<'a>(doc: &'a Value, schema: &'a Value) -> BTreeMap<&'a str, (&'a Value, bool)> {
    let schema = resolve(doc, schema);
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|n| n.as_str().unwrap()).collect())
        .unwrap_or_default();
    let mut found = BTreeMap::new();
    if let Some(own) = schema["properties"].as_object() {
        for (name, property) in own {
            found.insert(
                name.as_str(),
                (resolve(doc, property), required.contains(name.as_str())),
            );
        }
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        found.extend(properties(doc, part));
    }
    found
}

/// What a route takes: the properties of its JSON body, or its query parameters; each with
/// its schema and whether it is required.
fn inputs<'a>(doc: &'a Value, operation: &'a Value) -> BTreeMap<&'a str, (&'a Value, bool)> {
    if let Some(body) = operation.get("requestBody") {
        let body = resolve(doc, body);
        assert_eq!(body["required"], true, "a body is required: {body}");
        let content = body["content"].as_object().unwrap();
        // JSON always; a policy document, YAML as well, of the same schema.
        let types: Vec<&String> = content.keys().collect();
        if types.len() == 2 {
            assert_eq!(types, ["application/json", "application/yaml"]);
            assert_eq!(
                content["application/json"]["schema"],
                content["application/yaml"]["schema"]
            );
        } else {
            assert_eq!(types, ["application/json"]);
        }
        return properties(doc, &content["application/json"]["schema"]);
    }
    let mut found = BTreeMap::new();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let parameter = resolve(doc, parameter);
        if parameter["in"] == "header" {
            // The one header a route reads for itself: an SSE client's resumption point.
            assert_eq!(parameter["name"], "Last-Event-ID", "{parameter}");
            continue;
        }
        if parameter["in"] == "path" {
            // The parameters of paths, which `call` fills in: a tenant, a console file.
            assert!(
                ["tenant", "asset"].contains(&parameter["name"].as_str().unwrap()),
                "{parameter}"
            );
            continue;
        }
        assert_eq!(parameter["in"], "query", "{parameter}");
        found.insert(
            parameter["name"].as_str().unwrap(),
            (
                resolve(doc, &parameter["schema"]),
                parameter["required"] == true,
            ),
        );
    }
    found
}

/// A valid value for a documented field, so that a request made of them is refused, if at
/// all, for some reason other than its fields.
fn sample(path: &str, name: &str, schema: &Value) -> Value {
    // The AuthZEN entities, as the specification shapes them.
    if path.contains("/access/v1/") {
        match name {
            "subject" => return json!({"type": "user", "id": "u"}),
            "resource" => return json!({"type": "docs", "id": "readme"}),
            "action" => return json!({"name": "read"}),
            "context" => return json!({"time": "2026-01-01T00:00:00Z"}),
            "evaluations" => return json!([{}]),
            "options" => return json!({"evaluations_semantic": "deny_on_first_deny"}),
            "page" => return json!({"limit": 1}),
            _ => {}
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
        other => panic!("`{name}` has no type: {other}"),
    };
    if types.contains(&"integer") {
        return json!(if name == "limit" { 1 } else { 0 });
    }
    if types.contains(&"boolean") {
        return json!(true);
    }
    if name == "changes" {
        return json!([{"op": "create-group", "group": "g"}, {"op": "add-permission", "group": "g",
                       "resource": "docs/readme", "action": "read"}]);
    }
    if name == "if_revision" {
        // Not the tenant's revision: refused with the 409 the route documents.
        return json!(1_000_000);
    }
    if name == "groups" {
        return json!([{"name": "g", "permissions": [{"resource": "docs/readme", "action": "read"}],
                       "members": [{"user": "u"}], "parents": []}]);
    }
    if name == "checks" {
        return json!([{"tenant": "t", "user": "u", "resource": "docs/readme", "action": "read"}]);
    }
    assert!(types.contains(&"string"), "`{name}`: {schema}");
    json!(match name {
        "tenant" => "t",
        "group" => "g",
        // The group itself: a nesting refused as a cycle, which its 409 documents.
        "parent" => "g",
        "user" => "u",
        "resource" => "docs/readme",
        "action" => "read",
        "role" => "check",
        "expires_at" => "2031-01-01T00:00:00Z",
        "name" => "a key",
        "id" => "0123456789abcdef",
        "prefix" => "t",
        // The hex of the listing's scope and of the names of the item a page resumes after.
        "cursor" => match path {
            "/groups" => "2f67726f7570730a740a67",
            "/group-permissions" =>
                "2f67726f75702d7065726d697373696f6e730a740a670a646f63732f726561646d650a72656164",
            "/api-keys" => "2f6170692d6b6579730a30313233343536373839616263646566",
            "/group-members" => "2f67726f75702d6d656d626572730a740a670a75",
            "/group-parents" => "2f67726f75702d706172656e74730a740a670a68",
            "/group-children" => "2f67726f75702d6368696c6472656e0a740a670a68",
            "/who-can" => "2f77686f2d63616e0a740a646f63732f726561646d650a726561640a75",
            "/user-permissions" => "2f757365722d7065726d697373696f6e730a740a750a67726f75700a670a0a",
            "/tenants" => "2f74656e616e74730a740a74",
            other => panic!("no sample cursor for {other}"),
        },
        _ => panic!("no sample value for the new field `{name}`: add one here"),
    })
}

/// Sends `fields` as the route's body or query string.
async fn send(router: &Router, method: &str, path: &str, fields: &Map<String, Value>) -> Answer {
    if method == "POST" || method == "PUT" {
        let body = Value::Object(fields.clone());
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        return call(router, method, path, Some(&body)).await;
    }
    let query: Vec<String> = fields
        .iter()
        .map(|(name, value)| match value {
            Value::String(s) => format!("{name}={s}"),
            other => format!("{name}={other}"),
        })
        .collect();
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&").replace(' ', "+"))
    };
    call(router, Method::GET, &uri, None).await
}

/// The answer has a status the operation documents, and a body with exactly the properties
/// that status documents (when it documents an object).
fn assert_documented(doc: &Value, operation: &Value, what: &str, answer: &Answer) {
    let status = answer.status.as_str();
    let Some(response) = operation["responses"].get(status) else {
        panic!("{what}: {status} is not documented: {}", answer.body);
    };
    let response = resolve(doc, response);
    let content = response["content"].as_object().unwrap();
    let media = answer.content_type.split(';').next().unwrap();
    let Some((_, documented)) = content
        .iter()
        .find(|(documented, _)| documented.split(';').next().unwrap() == media)
    else {
        panic!("{what}: {status} as {media} is not documented");
    };
    let fields = properties(doc, &documented["schema"]);
    if fields.is_empty() {
        return;
    }
    let json = answer.json();
    let sent: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let documented: BTreeSet<&str> = fields.keys().copied().collect();
    assert!(
        sent.is_subset(&documented),
        "{what}: {status} sends undocumented fields: {}",
        answer.body
    );
    // A field sent only when asked for (`because`) is documented as optional; every other
    // field is always sent, and documented as required.
    for (name, (_, required)) in fields {
        // (And an AuthZEN decision's `context`, sent only with an evaluation's error, and the
        // `changes` of a policy document, sent only on a dry run.)
        let optional = name == "because"
            || name == "context"
            || (name == "changes" && what.contains(" /tenant-policy "));
        assert_eq!(
            required,
            !optional,
            "{what}: `{name}` is documented as {}required",
            if required { "" } else { "not " },
        );
        assert!(
            !required || sent.contains(name),
            "{what}: {status} lacks `{name}`: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn the_document_is_open_and_valid_openapi_3_1() {
    let router = api().await;
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "no credential needed");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = std::str::from_utf8(&body).unwrap();

    let spec = oas3::from_json(text).unwrap();
    let version = spec.validate_version().unwrap();
    assert_eq!((version.major, version.minor), (3, 1));
    let ids: Vec<_> = spec
        .operations()
        .map(|(path, method, operation)| {
            let id = operation.operation_id.clone();
            id.unwrap_or_else(|| panic!("{method} {path} has no operationId"))
        })
        .collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<BTreeSet<_>>().len(),
        "{ids:?}"
    );

    // Every reference names something in the document.
    let doc: Value = serde_json::from_str(text).unwrap();
    let mut pending = vec![&doc];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(object) => {
                if object.contains_key("$ref") {
                    resolve(&doc, value);
                }
                pending.extend(object.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn the_document_has_exactly_the_routes_and_methods_the_router_serves() {
    let router = api().await;
    let doc = document(&router).await;
    let operations = operations(&doc);

    let documented_paths: BTreeSet<&str> = operations.keys().map(|(_, p)| p.as_str()).collect();
    let paths = rbac_server::http::paths();
    let routes: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
    assert_eq!(documented_paths, routes);

    for route in routes {
        let documented: BTreeSet<&str> = operations
            .keys()
            .filter(|(_, p)| p == route)
            .map(|(m, _)| m.as_str())
            .collect();
        let mut served = documented.clone();
        if served.contains("GET") {
            served.insert("HEAD");
        }
        for method in METHODS {
            let body = (method != Method::GET && method != Method::HEAD).then(|| json!({}));
            let answer = call(&router, method.clone(), route, body.as_ref()).await;
            if served.contains(method.as_str()) {
                assert!(
                    !answer.unrouted(),
                    "{method} {route} is documented, but answered {} {}",
                    answer.status,
                    answer.body
                );
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {route} is not documented, but answered: {}",
                    answer.body
                );
                let allow = answer
                    .allow
                    .as_deref()
                    .unwrap_or_else(|| panic!("{method} {route}: a 405 without an Allow header"));
                let allowed: BTreeSet<&str> = allow.split(',').map(str::trim).collect();
                assert_eq!(allowed, served, "the Allow header of {route}");
            }
        }
    }
}

/// A row of the endpoint table atop docs/API.md.
struct Row {
    credential: String,
    purpose: String,
}

/// The endpoint table atop docs/API.md, by (METHOD, path).
fn endpoint_table() -> BTreeMap<(String, String), Row> {
    let api_md = include_str!("../docs/API.md");
    let top = api_md.split("\n## ").next().unwrap();
    let mut rows = BTreeMap::new();
    for line in top.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (methods, path, credential, purpose) = (cells[1], cells[2], cells[3], cells[4]);
        if !methods.split(", ").all(|m| METHODS.iter().any(|k| k == m)) {
            continue; // the header and its rule
        }
        let path = path.split('`').nth(1).expect("a path in backquotes");
        for method in methods.split(", ") {
            let row = Row {
                credential: credential.to_owned(),
                purpose: purpose.to_owned(),
            };
            rows.insert((method.to_owned(), path.to_owned()), row);
        }
    }
    rows
}

#[tokio::test]
async fn the_document_has_exactly_the_routes_of_the_table_in_api_md_with_their_credentials() {
    let doc = document(&api().await).await;
    let operations = operations(&doc);
    let table = endpoint_table();
    assert_eq!(
        operations.keys().collect::<BTreeSet<_>>(),
        table.keys().collect::<BTreeSet<_>>()
    );
    for (route, row) in &table {
        let operation = operations[route];
        assert_eq!(operation["summary"], row.purpose.as_str(), "{route:?}");
        let security = operation.get("security");
        if row.credential == "never" {
            assert_eq!(security, None, "{route:?} needs no credential");
        } else {
            assert_eq!(
                security,
                Some(&json!([{ "bearer": [] }])),
                "{route:?} needs {}",
                row.credential
            );
        }
    }
}

#[tokio::test]
async fn every_documented_field_is_one_the_handler_takes_and_no_other() {
    let router = api().await;
    let doc = document(&router).await;
    // Writes first, so that the reads after them find something.
    let mut operations: Vec<_> = operations(&doc).into_iter().collect();
    operations.sort_by_key(|((method, _), _)| method != "POST");

    for ((method, path), operation) in operations {
        let fields = inputs(&doc, operation);
        let required: Map<String, Value> = fields
            .iter()
            .filter(|(_, (_, required))| *required)
            .map(|(name, (schema, _))| (name.to_string(), sample(&path, name, schema)))
            .collect();
        let every: Map<String, Value> = fields
            .iter()
            .map(|(name, (schema, _))| (name.to_string(), sample(&path, name, schema)))
            .collect();

        // An AuthZEN batch needs its entities at the top or in every evaluation: none is
        // required on its own, and the required fields alone are not a request.
        let alone: &[&Map<String, Value>] = if path.ends_with("/access/v1/evaluations") {
            &[&every]
        } else {
            &[&required, &every]
        };
        for fields in alone.iter().copied() {
            let what = format!("{method} {path} with {}", Value::Object(fields.clone()));
            let answer = send(&router, &method, &path, fields).await;
            assert_ne!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{what}: {}",
                answer.body
            );
            assert_documented(&doc, operation, &what, &answer);
        }

        // Routes without inputs may ignore a query string; those with some must refuse more.
        if method != "GET" || !fields.is_empty() {
            for name in required.keys() {
                let mut missing = required.clone();
                missing.remove(name);
                let answer = send(&router, &method, &path, &missing).await;
                assert_eq!(
                    answer.status,
                    StatusCode::BAD_REQUEST,
                    "{method} {path} without the required `{name}`: {}",
                    answer.body
                );
            }
            let mut extra = required.clone();
            extra.insert("zzz".into(), json!("z"));
            let answer = send(&router, &method, &path, &extra).await;
            // AuthZEN ignores fields it does not know, as its specification requires.
            let expected = if path.contains("/access/v1/") && !required.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(
                answer.status, expected,
                "{method} {path} with the undocumented `zzz`: {}",
                answer.body
            );
            assert_documented(&doc, operation, "an unknown field", &answer);
        }
    }
}
