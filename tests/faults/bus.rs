//! Redis stopped, restarted or down at start, messages forged, reordered or lost: the instances
//! still converge to the store.

use super::*;

#[tokio::test]
async fn while_redis_is_down_writes_succeed_and_peers_converge_by_the_sweep() {
    let mut redis = PrivateRedis::start();
    let mut cluster = Cluster::on(
        3,
        fresh_database().await,
        Some(redis.url()),
        &[("RESYNC_INTERVAL_SECS", "2")],
    )
    .await;
    grant(&cluster[0], "t", "g", "alice", "doc").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), true).await;

    redis.stop();
    for instance in &cluster.instances {
        let down = eventually(Duration::from_secs(10), || async {
            instance.health().await["redis"] == "disconnected"
        })
        .await;
        assert!(
            down.is_some(),
            "{} still reports Redis connected",
            instance.server_id
        );
    }

    // Writes keep succeeding on every instance, and revocations reach the others through
    // the sweep alone.
    let revoked = cluster[1].remove_permission("t", "g", "doc", "read").await;
    assert_eq!(revoked["changed"], true);
    cluster[2].assign_user("t", "bob", "g").await;
    let bound = Duration::from_secs(2 + 5);
    for instance in &cluster.instances {
        let took = eventually(bound, || async {
            !instance.check("t", "alice", "doc", "read").await
        })
        .await;
        assert!(
            took.is_some(),
            "{} still allows a revoked permission",
            instance.server_id
        );
    }
    let truth = store_truth(&mut cluster, "t").await;
    assert_converged(&cluster, "t", &truth, bound).await;
    let stats = cluster[1].cache_stats().await;
    assert!(stats["publish_failures"].as_u64().unwrap() >= 1, "{stats}");

    // Redis back on the same port: the bus reconnects and carries changes again.
    redis.resume();
    for instance in &cluster.instances {
        let up = eventually(Duration::from_secs(10), || async {
            instance.health().await["redis"] == "connected"
        })
        .await;
        assert!(up.is_some(), "{} did not reconnect", instance.server_id);
        assert!(instance.cache_stats().await["reconnects"].as_u64().unwrap() >= 1);
    }
    cluster[0].add_permission("t", "g", "doc", "read").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), true).await;
}

#[tokio::test]
async fn instances_catch_up_at_once_when_redis_returns() {
    let mut redis = PrivateRedis::start();
    // No sweep within the test's time: only the resync on reconnect can bring peers up.
    let mut cluster = Cluster::on(
        3,
        fresh_database().await,
        Some(redis.url()),
        &[("RESYNC_INTERVAL_SECS", "3600")],
    )
    .await;
    grant(&cluster[0], "t", "g", "alice", "doc").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), true).await;

    redis.stop();
    // Writes go on while Redis is away, on several instances at once.
    let writers = (0..3).map(|i| {
        let instance = &cluster[i];
        async move {
            for n in 0..10 {
                let group = format!("g{i}-{n}");
                instance.create_group("t", &group).await;
                instance.assign_user("t", "alice", &group).await;
            }
        }
    });
    futures_util::future::join_all(writers).await;
    cluster[0].unassign_user("t", "alice", "g").await;
    // Nothing can tell the peers yet.
    assert!(cluster[1].check("t", "alice", "doc", "read").await);

    let restarted = Instant::now();
    redis.resume();
    let truth = store_truth(&mut cluster, "t").await;
    // Reconnect backoff is capped at 5 s; resync follows the subscription at once.
    assert_converged(&cluster, "t", &truth, Duration::from_secs(8)).await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), false).await;
    eprintln!("converged {:?} after Redis returned", restarted.elapsed());
    for instance in &cluster.instances {
        let stats = instance.cache_stats().await;
        assert_eq!(stats["sweeps"], 0, "{stats}");
        assert!(stats["reconnects"].as_u64().unwrap() >= 1, "{stats}");
    }
}

#[tokio::test]
async fn a_change_whose_changelog_entry_retention_deleted_unseen_is_still_caught_up() {
    let mut redis = PrivateRedis::start();
    // PostgreSQL: its resync positions live in the changelog, which retention deletes.
    let mut cluster = Cluster::on(
        2,
        common::fresh_postgres_database().await,
        Some(redis.url()),
        &[("RESYNC_INTERVAL_SECS", "3600")],
    )
    .await;
    grant(&cluster[0], "t", "g", "alice", "doc").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), true).await;

    // The revocation's message is lost, and its changelog entry deleted by retention, before
    // instance 1 resyncs: what changed since its last resync is gone from the store's history.
    redis.stop();
    cluster[0].unassign_user("t", "alice", "g").await;
    let store = PgStore::connect(&cluster.database_url, Duration::from_secs(5), 16)
        .await
        .unwrap();
    assert!(store.prune_changelog(Duration::ZERO).await.unwrap() > 0);
    assert!(cluster[1].check("t", "alice", "doc", "read").await);

    // The resync on reconnection finds the history short, and compares every tenant held.
    redis.resume();
    let truth = store_truth(&mut cluster, "t").await;
    assert_converged(&cluster, "t", &truth, Duration::from_secs(8)).await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), false).await;
    let stats = cluster[1].cache_stats().await;
    assert!(stats["full_resyncs"].as_u64().unwrap() >= 1, "{stats}");
}

#[tokio::test]
async fn forged_reordered_and_malformed_messages_never_change_an_answer() {
    let mut cluster = Cluster::start(2).await;
    grant(&cluster[0], "t", "g", "alice", "doc").await;
    cluster[0].create_group("t", "h").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), true).await;
    let truth = store_truth(&mut cluster, "t").await;
    assert_converged(&cluster, "t", &truth, PROPAGATION).await;

    let client = redis::Client::open(cluster.redis_url.clone().unwrap()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let message = |tenant: &str, server: &str, revision: i64| {
        json!({"tenant": tenant, "operation": "add-permission", "serverId": server,
               "timestamp": "2026-01-01T00:00:00Z", "revision": revision})
        .to_string()
    };
    let huge = format!("{{\"tenant\":\"t\",\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    let payloads = vec![
        message("t", "intruder", 1_000_000), // another server, from the future
        message("t", "intruder", 1),         // out of order
        message("t", "intruder", 1),         // duplicated
        message("t", "test-2", 2),           // a peer's own ID, stale
        message("unknown-tenant", "x", 5),   // a tenant nobody holds
        message("t*", "x", 5),               // an invalid tenant name
        message("t", "x", -1),               // a negative revision
        "not json".to_string(),
        "{}".to_string(),
        "[1,2,3]".to_string(),
        huge,
    ];
    // Let the four real messages land first, so the counts below are the forgeries' alone.
    for instance in &cluster.instances {
        let settled = eventually(PROPAGATION, || async {
            instance.cache_stats().await["messages_received"] == 4
        })
        .await;
        assert!(settled.is_some(), "{}", instance.cache_stats().await);
    }
    let mut before = Vec::new();
    for instance in &cluster.instances {
        before.push(instance.cache_stats().await);
    }
    let count = payloads.len() as u64;
    for payload in payloads {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&cluster.channel)
            .arg(payload)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let counter = |stats: &Value, name: &str| stats[name].as_u64().unwrap();
    for (instance, before) in cluster.instances.iter().zip(&before) {
        let received = eventually(PROPAGATION, || async {
            counter(&instance.cache_stats().await, "messages_received")
                >= counter(before, "messages_received") + count
        })
        .await;
        assert!(received.is_some(), "{}", instance.cache_stats().await);
        let stats = instance.cache_stats().await;
        assert_eq!(
            counter(&stats, "malformed_messages") - counter(before, "malformed_messages"),
            6,
            "{stats}"
        );
        assert_eq!(instance.health().await["status"], "ok");
        assert!(instance.check("t", "alice", "doc", "read").await);
        assert_eq!(instance.groups("t").await, truth);
    }

    // The store's truth still flows after the forgeries: a real revocation propagates, and
    // the forged future revision did not make anyone skip it.
    cluster[1].remove_permission("t", "g", "doc", "read").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), false).await;
}

#[tokio::test]
async fn an_instance_a_few_revisions_behind_refreshes_incrementally() {
    let mut cluster = Cluster::without_bus(2, &[("RESYNC_INTERVAL_SECS", "1")]).await;
    cluster[0].create_group("t", "g").await;
    cluster[0].assign_user("t", "alice", "g").await;
    // Instance 1 holds the tenant at revision 2, once its sweep told it the tenant exists.
    let held = eventually(Duration::from_secs(5), || async {
        cluster[1].revision("t").await == 2
    })
    .await;
    assert!(held.is_some(), "{}", cluster[1].cache_stats().await);

    cluster[0].add_permission("t", "g", "docs/*", "read").await;
    cluster[0].assign_user("t", "bob", "g").await;
    cluster[0].unassign_user("t", "alice", "g").await;

    let truth = store_truth(&mut cluster, "t").await;
    assert_eq!(truth["revision"], 5);
    assert_converged(&cluster, "t", &truth, Duration::from_secs(5)).await;
    let stats = cluster[1].cache_stats().await;
    assert!(
        stats["incremental_refreshes"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(stats["full_reloads"], 0, "{stats}");
    assert_eq!(
        stats["largest_tenants"][0]["refreshed_by"], "incremental",
        "{stats}"
    );
    assert!(cluster[1].check("t", "bob", "docs/x", "read").await);
    assert!(!cluster[1].check("t", "alice", "docs/x", "read").await);
}

#[tokio::test]
async fn redis_down_at_start_up_is_not_fatal() {
    let mut redis = PrivateRedis::start();
    redis.stop();
    let cluster = Cluster::on(2, fresh_database().await, Some(redis.url()), &[]).await;
    for instance in &cluster.instances {
        let health = instance.health().await;
        assert_eq!(health["redis"], "disconnected", "{health}");
        assert_eq!(health["database"], "ok", "{health}");
    }
    // Writes work without the bus, and another instance reads them with min_revision.
    grant(&cluster[0], "t", "g", "alice", "doc").await;
    assert_eq!(
        cluster[1].check_at("t", "alice", "doc", "read", 3).await,
        json!({"allowed": true, "revision": 3})
    );

    redis.resume();
    for instance in &cluster.instances {
        let up = eventually(Duration::from_secs(10), || async {
            instance.health().await["redis"] == "connected"
        })
        .await;
        assert!(up.is_some(), "{} never connected", instance.server_id);
    }
    cluster[0].remove_permission("t", "g", "doc", "read").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), false).await;
}
