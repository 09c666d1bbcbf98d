//! Names are counted in bytes, and strange but valid names round-trip verbatim.

use super::*;

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
        ("parent", group.as_str()),
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
                       "inherited_groups": [], "expiring": [],
                       "permissions": [{"resource": name, "action": name, "group": name}],
                       "next_cursor": null}),
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
