//! Every bad request refused on every route, and which credential reaches which tenant, at a
//! tenant's base and at the root.

use super::*;

// ---------------------------------------------------------------------------------------------
// 2. Bad requests
// ---------------------------------------------------------------------------------------------

/// A request that must be refused, and how.
struct Case {
    label: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    status: u16,
    code: &'static str,
}

fn bad_json(what: impl Into<String>, body: &Value) -> Case {
    Case {
        label: what.into(),
        body: serde_json::to_vec(body).unwrap(),
        content_type: Some("application/json"),
        status: 400,
        code: "invalid_request",
    }
}

fn bad_raw(what: &str, body: impl Into<Vec<u8>>, content_type: Option<&'static str>) -> Case {
    Case {
        label: what.to_owned(),
        body: body.into(),
        content_type,
        status: 400,
        code: "invalid_request",
    }
}

/// The entities an endpoint's request must have.
fn required_entities(endpoint: &str) -> &'static [&'static str] {
    match endpoint {
        ACTION_SEARCH => &["subject", "resource"],
        _ => &["subject", "action", "resource"],
    }
}

/// The fields an endpoint's request must have in its entities: all of them but the searched
/// entity's id.
fn required_fields(endpoint: &str) -> Vec<(&'static str, &'static str)> {
    let all = [
        ("subject", "type"),
        ("subject", "id"),
        ("action", "name"),
        ("resource", "type"),
        ("resource", "id"),
    ];
    all.into_iter()
        .filter(|field| match endpoint {
            SUBJECT_SEARCH => *field != ("subject", "id"),
            RESOURCE_SEARCH => *field != ("resource", "id"),
            ACTION_SEARCH => field.0 != "action",
            _ => true,
        })
        .collect()
}

/// The entities of an endpoint's request whose names the server looks up: all but the
/// searched one.
fn input_entities(endpoint: &str) -> Vec<&'static str> {
    let searched = match endpoint {
        SUBJECT_SEARCH => "subject",
        RESOURCE_SEARCH => "resource",
        ACTION_SEARCH => "action",
        _ => "",
    };
    ["subject", "action", "resource"]
        .into_iter()
        .filter(|entity| *entity != searched)
        .collect()
}

/// Entities whose names, once mapped to the native model, are not valid names.
fn invalid_entities(which: &str) -> Vec<(String, Value)> {
    let long = "x".repeat(300);
    match which {
        "subject" => vec![
            ("a user with `*`".into(), user("ali*ce")),
            ("a 300-byte user".into(), user(&long)),
            ("a user with a leading space".into(), user(" alice")),
            ("a user with a trailing space".into(), user("alice ")),
            ("a user with a control character".into(), user("ali\u{7}ce")),
            // The user is "service/c*i".
            (
                "a service whose id has `*`".into(),
                entity("service", "c*i"),
            ),
            ("a type with `*`".into(), entity("svc*", "ci")),
            // Each part is short, the user they make is 257 bytes.
            (
                "a type and id of 257 bytes together".into(),
                entity("team", &"x".repeat(252)),
            ),
        ],
        "resource" => vec![
            ("a 300-byte resource id".into(), record(&long)),
            (
                "a type and id of 301 bytes together".into(),
                entity(&"r".repeat(200), &"x".repeat(100)),
            ),
            (
                "a resource id with a trailing space".into(),
                record("record-1 "),
            ),
            (
                "a resource type with a newline".into(),
                entity("rec\nord", "record-1"),
            ),
        ],
        "action" => vec![
            ("a 300-byte action".into(), action(&long)),
            ("an action with a leading space".into(), action(" read")),
            ("an action with a NUL".into(), action("re\u{0}ad")),
        ],
        _ => unreachable!("{which}"),
    }
}

/// Every bad request for `endpoint`, with a valid request of the fixture as the base.
fn bad_requests(endpoint: &'static str) -> Vec<Case> {
    let valid = valid_request(endpoint);
    let valid_bytes = serde_json::to_vec(&valid).unwrap();
    let mut cases = vec![
        bad_raw("text/plain", valid_bytes.clone(), Some("text/plain")),
        bad_raw(
            "a form",
            valid_bytes.clone(),
            Some("application/x-www-form-urlencoded"),
        ),
        bad_raw("xml", valid_bytes.clone(), Some("application/xml")),
        bad_raw("no content type", valid_bytes.clone(), None),
        bad_raw("an empty body", "", Some("application/json")),
        bad_raw(
            "truncated JSON",
            &valid_bytes[..valid_bytes.len() - 1],
            Some("application/json"),
        ),
        bad_raw("not JSON", "subject=alice", Some("application/json")),
        bad_raw(
            "a trailing comma",
            r#"{"subject": {"type": "user", "id": "alice"},}"#,
            Some("application/json"),
        ),
    ];
    for body in [
        json!([]),
        json!([valid]),
        json!("text"),
        json!(42),
        json!(null),
        json!(true),
    ] {
        cases.push(bad_json(format!("a body of {body}"), &body));
    }
    for entity in required_entities(endpoint) {
        cases.push(bad_json(
            format!("without {entity}"),
            &without(&valid, entity),
        ));
        // The entity's own values in an array, in either order: an object is required, not
        // something a lenient reader could take field by field.
        let values: Vec<Value> = valid[entity]
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect();
        let reversed: Vec<Value> = values.iter().rev().cloned().collect();
        let mut ill_typed = vec![
            json!("alice"),
            json!(7),
            json!([]),
            json!(null),
            json!(true),
        ];
        ill_typed.push(json!(values));
        if reversed != values {
            ill_typed.push(json!(reversed));
        }
        for value in ill_typed {
            cases.push(bad_json(
                format!("{entity}: {value}"),
                &with(&valid, entity, value),
            ));
        }
    }
    for (entity, field) in required_fields(endpoint) {
        cases.push(bad_json(
            format!("{entity} without {field}"),
            &without_field(&valid, entity, field),
        ));
        for value in [
            json!(""),
            json!(123),
            json!(null),
            json!(true),
            json!({}),
            json!(["x"]),
        ] {
            cases.push(bad_json(
                format!("{entity}.{field}: {value}"),
                &with_field(&valid, entity, field, value),
            ));
        }
    }
    for entity in ["subject", "action", "resource"] {
        if !valid[entity].is_object() {
            continue;
        }
        for value in [json!("x"), json!([1]), json!(1)] {
            cases.push(bad_json(
                format!("{entity}.properties: {value}"),
                &with_field(&valid, entity, "properties", value),
            ));
        }
    }
    for value in [json!("x"), json!([1]), json!(1)] {
        cases.push(bad_json(
            format!("context: {value}"),
            &with(&valid, "context", value),
        ));
    }
    for entity in input_entities(endpoint) {
        for (what, value) in invalid_entities(entity) {
            cases.push(bad_json(
                format!("{entity}: {what}"),
                &with(&valid, entity, value),
            ));
        }
    }
    match endpoint {
        EVALUATIONS => {
            let batch = json!({
                "subject": user("alice"), "action": action("read"),
                "evaluations": [{"resource": record("record-1")}],
            });
            for value in [json!("x"), json!({}), json!(5)] {
                cases.push(bad_json(
                    format!("evaluations: {value}"),
                    &with(&batch, "evaluations", value),
                ));
            }
            for value in [
                json!("execute_all"),
                json!(["execute_all"]),
                json!({"evaluations_semantic": "all_at_once"}),
                json!({"evaluations_semantic": "Execute_All"}),
                json!({"evaluations_semantic": 1}),
                json!({"evaluations_semantic": ["execute_all"]}),
            ] {
                cases.push(bad_json(
                    format!("options: {value}"),
                    &with(&batch, "options", value),
                ));
            }
            let items = vec![json!({"resource": record("record-1")}); 1001];
            cases.push(bad_json(
                "1001 evaluations",
                &with(&batch, "evaluations", json!(items)),
            ));
            // Without items, the top-level entities are the evaluation: they must be there.
            for entity in ["subject", "action", "resource"] {
                cases.push(bad_json(
                    format!("empty evaluations without {entity}"),
                    &with(&without(&valid, entity), "evaluations", json!([])),
                ));
            }
        }
        SUBJECT_SEARCH | RESOURCE_SEARCH | ACTION_SEARCH => {
            for value in [
                json!("x"),
                json!([]),
                json!([5]),
                json!(5),
                json!({"limit": 0}),
                json!({"limit": -1}),
                json!({"limit": 1.5}),
                json!({"limit": "10"}),
                json!({"limit": true}),
                json!({"token": 5}),
                json!({"token": {}}),
                json!({"token": "not-a-token"}),
            ] {
                cases.push(bad_json(
                    format!("page: {value}"),
                    &with(&valid, "page", value),
                ));
            }
            let searched = match endpoint {
                SUBJECT_SEARCH => "subject",
                RESOURCE_SEARCH => "resource",
                _ => "",
            };
            if !searched.is_empty() {
                cases.push(bad_json(
                    format!("searched {searched} without type"),
                    &with(&valid, searched, json!({})),
                ));
                cases.push(bad_json(
                    format!("searched {searched} with an empty type"),
                    &with(&valid, searched, kind("")),
                ));
            }
        }
        _ => {}
    }
    cases
}

#[tokio::test]
async fn every_route_refuses_bad_requests_with_invalid_request() {
    let cluster = Cluster::start_with(
        1,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("CHECK_TOKEN", CHECKER),
            ("AUTHZEN_DEFAULT_TENANT", "acme"),
        ],
    )
    .await;
    let native = &cluster[0];
    load_fixture(native, "acme").await;
    let globex_key = create_key(native, "globex", "check").await;
    let bases = [
        Pdp::new(native, "/tenants/acme", Some(CHECKER)),
        Pdp::new(native, "", Some(CHECKER)),
    ];
    let mut failures = Vec::new();
    let mut total = 0;
    for pdp in &bases {
        for endpoint in ENDPOINTS {
            // Unless the valid request is answered, its bad variants prove nothing.
            let reply = pdp.post(endpoint, &valid_request(endpoint)).await;
            total += 1;
            if let Err(problem) = success(&reply) {
                failures.push(format!("{} valid: {problem}", pdp.url(endpoint)));
            }
            for case in bad_requests(endpoint) {
                let reply = pdp
                    .send(endpoint, case.body.clone(), case.content_type, None)
                    .await;
                total += 1;
                if let Err(problem) = refused(&reply, case.status, case.code) {
                    failures.push(format!("{} {}: {problem}", pdp.url(endpoint), case.label));
                }
            }
            let body = serde_json::to_vec(&valid_request(endpoint)).unwrap();
            let mut credentials = vec![
                ("no credential", None, 401, "unauthorized"),
                ("a wrong token", Some("not-a-token"), 401, "unauthorized"),
            ];
            // At the root, a key for one tenant picks that tenant: only a base names another.
            if !pdp.path.is_empty() {
                credentials.push((
                    "another tenant's key",
                    Some(globex_key.as_str()),
                    403,
                    "forbidden",
                ));
            }
            for (what, token, status, code) in credentials {
                let reply = pdp
                    .with_token(token)
                    .send(endpoint, body.clone(), Some("application/json"), None)
                    .await;
                total += 1;
                if let Err(problem) = refused(&reply, status, code) {
                    failures.push(format!("{} {what}: {problem}", pdp.url(endpoint)));
                }
            }
            // The body limits: a context long enough to pass the limit, around valid entities.
            let limit = if endpoint == EVALUATIONS {
                EVALUATIONS_BODY_LIMIT
            } else {
                BODY_LIMIT
            };
            let oversized = with(
                &valid_request(endpoint),
                "context",
                json!({ "pad": "x".repeat(limit) }),
            );
            let reply = pdp.post(endpoint, &oversized).await;
            total += 1;
            if reply.status != StatusCode::PAYLOAD_TOO_LARGE
                || reply.json().is_none_or(|b| !b["error"]["code"].is_string())
            {
                failures.push(format!(
                    "{} over {limit} bytes: {} {}",
                    pdp.url(endpoint),
                    reply.status,
                    reply.text.chars().take(200).collect::<String>()
                ));
            }
        }
        // The evaluations route takes bodies past the others' limit.
        let large = with(
            &valid_request(EVALUATIONS),
            "context",
            json!({ "pad": "x".repeat(EVALUATIONS_BODY_LIMIT / 2) }),
        );
        total += 1;
        if let Err(problem) = expect_decision(&pdp.post(EVALUATIONS, &large).await, true) {
            failures.push(format!("{} a 1 MiB body: {problem}", pdp.url(EVALUATIONS)));
        }
    }
    assert_no_failures(&failures, total);
}

// ---------------------------------------------------------------------------------------------
// Credentials and the root's tenant
// ---------------------------------------------------------------------------------------------

/// Which tenant answered, or the error that came instead.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expected {
    Tenant(&'static str),
    Refused(u16, &'static str),
    /// 400, and the message says the root has no tenant.
    NoTenant,
}

#[tokio::test]
async fn credentials_and_the_roots_tenant_are_resolved_as_documented() {
    let mut cluster =
        Cluster::start_with(1, &[("ADMIN_TOKEN", ADMIN), ("CHECK_TOKEN", CHECKER)]).await;
    let native = &cluster[0];
    load_fixture(native, "acme").await;
    // globex answers every valid request differently from acme.
    grant(native, "globex", "bob", &[("record/record-1", "write")]).await;
    grant(native, "globex", "dave", &[("record/record-1", "read")]).await;
    let acme_key = create_key(native, "acme", "check").await;
    let acme_admin_key = create_key(native, "acme", "admin").await;
    let globex_key = create_key(native, "globex", "check").await;
    let every_tenant_key = create_key(native, "*", "check").await;
    let defaulted = cluster
        .add_instance_with(&[("AUTHZEN_DEFAULT_TENANT", "acme")])
        .await;
    let (plain, defaulted) = (&cluster[0], &cluster[defaulted]);

    let batch = json!({"evaluations": [
        evaluation(user("alice"), "read", record("record-1")),
        evaluation(user("bob"), "write", record("record-1")),
    ]});
    let request = |endpoint: &str| match endpoint {
        EVALUATIONS => batch.clone(),
        _ => valid_request(endpoint),
    };
    let mut reference = Vec::new();
    for tenant in ["acme", "globex"] {
        let pdp = Pdp::new(plain, &format!("/tenants/{tenant}"), Some(CHECKER));
        for endpoint in ENDPOINTS {
            let body = success(&pdp.post(endpoint, &request(endpoint)).await)
                .unwrap_or_else(|problem| panic!("{tenant} {endpoint}: {problem}"));
            reference.push(((tenant, endpoint), body));
        }
    }
    let answer_of = |tenant: &str, endpoint: &str| {
        reference
            .iter()
            .find(|((t, e), _)| *t == tenant && *e == endpoint)
            .map(|(_, body)| body.clone())
            .unwrap()
    };
    for endpoint in ENDPOINTS {
        assert_ne!(
            answer_of("acme", endpoint),
            answer_of("globex", endpoint),
            "{endpoint} cannot tell the tenants apart"
        );
    }

    use Expected::*;
    let unauthorized = Refused(401, "unauthorized");
    let forbidden = Refused(403, "forbidden");
    let cases: Vec<(&str, &Api, &str, Option<&str>, Expected)> = vec![
        (
            "root, acme's key",
            plain,
            "",
            Some(acme_key.as_str()),
            Tenant("acme"),
        ),
        (
            "root, acme's admin key",
            plain,
            "",
            Some(acme_admin_key.as_str()),
            Tenant("acme"),
        ),
        (
            "root, globex's key",
            plain,
            "",
            Some(globex_key.as_str()),
            Tenant("globex"),
        ),
        ("root, CHECK_TOKEN", plain, "", Some(CHECKER), NoTenant),
        ("root, ADMIN_TOKEN", plain, "", Some(ADMIN), NoTenant),
        (
            "root, a key for every tenant",
            plain,
            "",
            Some(every_tenant_key.as_str()),
            NoTenant,
        ),
        ("root, no credential", plain, "", None, unauthorized),
        ("root, a wrong token", plain, "", Some("nope"), unauthorized),
        (
            "acme, CHECK_TOKEN",
            plain,
            "/tenants/acme",
            Some(CHECKER),
            Tenant("acme"),
        ),
        (
            "acme, ADMIN_TOKEN",
            plain,
            "/tenants/acme",
            Some(ADMIN),
            Tenant("acme"),
        ),
        (
            "acme, acme's key",
            plain,
            "/tenants/acme",
            Some(acme_key.as_str()),
            Tenant("acme"),
        ),
        (
            "acme, acme's admin key",
            plain,
            "/tenants/acme",
            Some(acme_admin_key.as_str()),
            Tenant("acme"),
        ),
        (
            "acme, a key for every tenant",
            plain,
            "/tenants/acme",
            Some(every_tenant_key.as_str()),
            Tenant("acme"),
        ),
        (
            "acme, globex's key",
            plain,
            "/tenants/acme",
            Some(globex_key.as_str()),
            forbidden,
        ),
        (
            "acme, no credential",
            plain,
            "/tenants/acme",
            None,
            unauthorized,
        ),
        (
            "acme, a wrong token",
            plain,
            "/tenants/acme",
            Some("nope"),
            unauthorized,
        ),
        (
            "globex, globex's key",
            plain,
            "/tenants/globex",
            Some(globex_key.as_str()),
            Tenant("globex"),
        ),
        (
            "globex, acme's key",
            plain,
            "/tenants/globex",
            Some(acme_key.as_str()),
            forbidden,
        ),
        (
            "default root, CHECK_TOKEN",
            defaulted,
            "",
            Some(CHECKER),
            Tenant("acme"),
        ),
        (
            "default root, ADMIN_TOKEN",
            defaulted,
            "",
            Some(ADMIN),
            Tenant("acme"),
        ),
        (
            "default root, a key for every tenant",
            defaulted,
            "",
            Some(every_tenant_key.as_str()),
            Tenant("acme"),
        ),
        // The key's own tenant comes before the default.
        (
            "default root, globex's key",
            defaulted,
            "",
            Some(globex_key.as_str()),
            Tenant("globex"),
        ),
        (
            "default root, no credential",
            defaulted,
            "",
            None,
            unauthorized,
        ),
        (
            "default globex, acme's key",
            defaulted,
            "/tenants/globex",
            Some(acme_key.as_str()),
            forbidden,
        ),
    ];
    let mut failures = Vec::new();
    for (what, node, path, token, expected) in &cases {
        let pdp = Pdp::new(node, path, *token);
        for endpoint in ENDPOINTS {
            let reply = pdp.post(endpoint, &request(endpoint)).await;
            let outcome = match expected {
                Tenant(tenant) => success(&reply)
                    .and_then(|body| same(&body, &answer_of(tenant, endpoint), "the answer")),
                Refused(status, code) => refused(&reply, *status, code),
                NoTenant => refused(&reply, 400, "invalid_request").and_then(|()| {
                    let message = reply.body()["error"]["message"].to_string();
                    if message.contains("AUTHZEN_DEFAULT_TENANT") {
                        Ok(())
                    } else {
                        Err(format!(
                            "the message does not name AUTHZEN_DEFAULT_TENANT: {message}"
                        ))
                    }
                }),
            };
            if let Err(problem) = outcome {
                failures.push(format!("{what} {endpoint}: {problem}"));
            }
        }
    }
    assert_no_failures(&failures, cases.len() * ENDPOINTS.len());
}
