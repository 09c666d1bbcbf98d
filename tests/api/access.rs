//! Wildcards match as documented, and tenants do not leak into each other.

use super::*;

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
        json!({"tenant": "globex", "user": "alice", "revision": 3, "groups": [],
               "inherited_groups": [], "expiring": [], "permissions": [], "next_cursor": null})
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
