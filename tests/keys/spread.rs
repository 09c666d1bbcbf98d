//! How soon a creation or a revocation reaches the other instances, with the bus and without it.

use super::*;

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
