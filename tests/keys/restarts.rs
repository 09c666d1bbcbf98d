//! Keys outlive a restart; the key listing pages.

use super::*;

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
    let whole_keys: Vec<Value> = whole["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(without_last_use)
        .collect();
    assert_eq!(listing(node).await["keys"], json!(whole_keys));
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
