//! Bad requests get their documented error and change nothing.

use super::*;

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
    let endpoints = endpoints();
    let check_post = endpoints
        .iter()
        .find(|e| e.name() == "POST /check-access")
        .unwrap();
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
    // expires_at, where it is accepted, must be an RFC 3339 date and time (or null).
    let assign = endpoints
        .iter()
        .find(|e| e.name() == "POST /assign-user")
        .unwrap();
    for value in [
        json!("tomorrow"),
        json!("2031-01-01"),
        json!("2031-01-01T00:00:00"),
        json!("2031-13-01T00:00:00Z"),
        json!(""),
        json!(1_924_992_000),
        json!(true),
        json!(["2031-01-01T00:00:00Z"]),
        json!({"at": "2031-01-01T00:00:00Z"}),
    ] {
        cases.push(bad_request(
            assign.with(&format!("with expires_at: {value}"), |f| {
                set(f, "expires_at", value.clone())
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
    for endpoint in endpoints.iter().filter(|e| e.method == Method::GET) {
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
        // Nesting the group, or nesting a group that exists in it.
        for (child, parent) in [(group, "spare"), ("spare", group)] {
            let nesting = json!({"tenant": tenant, "group": child, "parent": parent});
            cases.push(case(
                raw(&what, Method::POST, "/nest-group", Body::Json(nesting)),
                404,
                "not_found",
            ));
        }
    }

    // Nestings that would put a group inside itself.
    for (child, parent) in [("g", "g"), ("outer", "g")] {
        let nesting = json!({"tenant": "acme", "group": child, "parent": parent});
        cases.push(case(
            raw(
                &format!("{child} in {parent}"),
                Method::POST,
                "/nest-group",
                Body::Json(nesting),
            ),
            409,
            "cycle",
        ));
    }

    // A revision the store has not reached.
    cases.push(case(
        raw(
            "min_revision 7",
            Method::POST,
            "/check-access",
            Body::Json(
                json!({"tenant": "acme", "user": "alice", "resource": "docs/a",
                              "action": "read", "min_revision": 7}),
            ),
        ),
        409,
        "revision_not_reached",
    ));
    for path in [
        "/check-access?tenant=acme&user=alice&resource=docs%2Fa&action=read&min_revision=7",
        "/groups?tenant=acme&min_revision=7",
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

#[tokio::test]
async fn a_write_of_many_with_any_bad_change_is_refused_whole_and_changes_nothing() {
    let cluster = seeded(Cluster::without_bus(1, &[]).await).await;
    let node = &cluster[0];
    let write = |what: &str, body: Value| Request {
        label: format!("POST /write {what}"),
        method: Method::POST,
        path: "/write".to_string(),
        query: Vec::new(),
        body: Body::Json(body),
    };
    let case = |request, status, code| Case {
        request,
        status,
        code,
    };
    // Valid changes that would each change something, so that one accepted by mistake shows.
    let good = || {
        vec![
            json!({"op": "create-group", "group": "fresh"}),
            json!({"op": "add-permission", "group": "fresh", "resource": "docs/*", "action": "read"}),
            json!({"op": "assign-user", "group": "g", "user": "newcomer"}),
        ]
    };
    let with = |bad: Value| {
        let mut changes = good();
        changes.push(bad);
        json!({"tenant": "acme", "changes": changes})
    };
    let mut cases = Vec::new();
    let invalid = [
        (
            "an unknown op",
            json!({"op": "grant-everything", "group": "g"}),
        ),
        ("no op", json!({"group": "g"})),
        (
            "an op of another case",
            json!({"op": "Create-Group", "group": "g"}),
        ),
        ("a change that is not an object", json!("create-group g")),
        (
            "a change as an array led by its op",
            json!(["delete-group", "g"]),
        ),
        (
            "an unknown field",
            json!({"op": "create-group", "group": "g", "extra": 1}),
        ),
        (
            "a missing field",
            json!({"op": "add-permission", "group": "g", "resource": "r"}),
        ),
        (
            "a field of another change",
            json!({"op": "create-group", "group": "g", "user": "u"}),
        ),
        (
            "a bad name",
            json!({"op": "assign-user", "group": "g", "user": "a*"}),
        ),
        (
            "a name too long",
            json!({"op": "create-group", "group": "x".repeat(257)}),
        ),
        (
            "a bad end",
            json!({"op": "assign-user", "group": "g", "user": "u", "expires_at": "soon"}),
        ),
        (
            "expires_at on unassign",
            json!({"op": "unassign-user", "group": "g", "user": "u", "expires_at": null}),
        ),
    ];
    for (what, bad) in invalid {
        cases.push(case(write(what, with(bad)), 400, "invalid_request"));
    }
    let many = |n: usize| json!({"tenant": "acme", "changes": vec![json!({"op": "create-group", "group": "h"}); n]});
    cases.push(case(
        write("with no changes", many(0)),
        400,
        "invalid_request",
    ));
    cases.push(case(
        write("with 1001 changes", many(1001)),
        400,
        "invalid_request",
    ));
    for (what, body) in [
        ("without changes", json!({"tenant": "acme"})),
        (
            "with changes not a list",
            json!({"tenant": "acme", "changes": {"op": "create-group"}}),
        ),
        ("without tenant", json!({"changes": good()})),
        (
            "with a bad tenant",
            json!({"tenant": "a*", "changes": good()}),
        ),
        (
            "with an unknown field",
            json!({"tenant": "acme", "changes": good(), "dry": true}),
        ),
        (
            "with if_revision -1",
            json!({"tenant": "acme", "changes": good(), "if_revision": -1}),
        ),
        (
            "with if_revision \"6\"",
            json!({"tenant": "acme", "changes": good(), "if_revision": "6"}),
        ),
    ] {
        cases.push(case(write(what, body), 400, "invalid_request"));
    }
    // Refused by the store, after the changes before it were made in the transaction.
    let mut thirtieth: Vec<Value> = (0..29)
        .map(|i| json!({"op": "create-group", "group": format!("batch-{i}")}))
        .collect();
    thirtieth
        .push(json!({"op": "add-permission", "group": "missing", "resource": "r", "action": "a"}));
    cases.push(case(
        write(
            "whose 30th change adds to a missing group",
            json!({"tenant": "acme", "changes": thirtieth}),
        ),
        404,
        "not_found",
    ));
    cases.push(case(
        write(
            "nesting a group inside itself",
            with(json!({"op": "nest-group", "group": "outer", "parent": "g"})),
        ),
        409,
        "cycle",
    ));
    for stale in [0, 5, 7] {
        let body = json!({"tenant": "acme", "changes": good(), "if_revision": stale});
        cases.push(case(
            write(&format!("at if_revision {stale}"), body),
            409,
            "revision_mismatch",
        ));
    }

    let before = observe(&cluster, "acme").await;
    let failures = run_cases(node, &cases, None).await;
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, cases.len(), &before, &after, "a refused write");
    // The message says which change it was about.
    let (_, body) = node
        .post(
            "/write",
            with(json!({"op": "assign-user", "group": "g", "user": "a*"})),
        )
        .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("`changes[3]`: "), "{message}");
    // And the same request, at the right revision and without the bad change, is made whole.
    let body = json!({"tenant": "acme", "changes": good(), "if_revision": 6});
    let (status, body) = node.post("/write", body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "changed": true, "revision": 7,
               "results": [{"changed": true}, {"changed": true}, {"changed": true}]})
    );
}
