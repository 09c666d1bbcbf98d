//! Bearer tokens guard what they are documented to guard.

use super::*;

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
    assert_eq!(reply.body(), json!({"allowed": true, "revision": 6}));

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
