//! Fault injection against real processes: Redis and PostgreSQL stopped and restarted under
//! running instances, concurrent writers on several instances, forged and reordered bus
//! messages, and instances killed mid-write. The store is the truth every instance must
//! converge to.

mod common;

use std::time::{Duration, Instant};

use common::servers::{PrivatePostgres, PrivateRedis};
use common::{
    Cluster, Instance, PROPAGATION, assert_converged, assert_everywhere, eventually,
    fresh_database, store_truth,
};
use rbac_server::store::Store;
use rbac_server::store::postgres::PgStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn grant(instance: &Instance, tenant: &str, group: &str, user: &str, resource: &str) {
    instance.create_group(tenant, group).await;
    instance
        .add_permission(tenant, group, resource, "read")
        .await;
    instance.assign_user(tenant, user, group).await;
}

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
async fn while_postgres_is_down_cached_checks_answer_and_writes_fail_fast() {
    let mut pg = PrivatePostgres::start();
    let mut cluster = Cluster::on(
        3,
        pg.url(),
        Some(common::redis_url()),
        &[("STORE_TIMEOUT_SECS", "2"), ("RESYNC_INTERVAL_SECS", "1")],
    )
    .await;
    grant(&cluster[0], "t", "g", "alice", "docs/*").await;
    assert_everywhere(&cluster, ("t", "alice", "docs/a", "read"), true).await;
    // A tenant every instance knows exists, but none holds.
    cluster[0].create_group("uncached", "g").await;
    for instance in &cluster.instances {
        let known = eventually(PROPAGATION, || async {
            instance.cache_stats().await["tenants_known"] == 2
        })
        .await;
        assert!(known.is_some(), "{}", instance.cache_stats().await);
    }

    pg.stop();
    for instance in &cluster.instances {
        // Cached tenants keep answering, correctly, from memory.
        assert!(instance.check("t", "alice", "docs/a", "read").await);
        assert!(!instance.check("t", "alice", "docs/a", "write").await);
        assert!(!instance.check("t", "bob", "docs/a", "read").await);
        assert_eq!(instance.health().await["database"], "down");
        // So does a tenant nobody ever wrote: there is nothing to load.
        assert_eq!(
            instance.check_body("never-written", "u", "r", "a").await,
            json!({"allowed": false, "revision": 0})
        );

        // A tenant that needs a load, and every write, fail with 503 in bounded time.
        let started = Instant::now();
        let (status, body) = instance
            .post(
                "/check-access",
                json!({"tenant": "uncached", "user": "u", "resource": "r", "action": "a"}),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
        let (status, body) = instance
            .post(
                "/remove-permission",
                json!({"tenant": "t", "group": "g", "resource": "docs/*", "action": "read"}),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    pg.resume();
    let writer = &cluster[1];
    let recovered = eventually(Duration::from_secs(15), || async {
        let (status, _) = writer
            .post(
                "/remove-permission",
                json!({"tenant": "t", "group": "g", "resource": "docs/*", "action": "read"}),
            )
            .await;
        status == StatusCode::OK
    })
    .await;
    assert!(
        recovered.is_some(),
        "writes did not recover after PostgreSQL returned"
    );
    assert_everywhere(&cluster, ("t", "alice", "docs/a", "read"), false).await;
    for instance in &cluster.instances {
        assert_eq!(instance.health().await["database"], "ok");
    }
    let truth = store_truth(&mut cluster, "t").await;
    assert_converged(&cluster, "t", &truth, PROPAGATION).await;
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
async fn an_instance_killed_mid_write_leaves_no_half_written_change() {
    // The killed instance may die between its commit and its publish: that message is lost
    // for good, and the sweep is what brings the peer up to date.
    let mut cluster = Cluster::start_with(2, &[("RESYNC_INTERVAL_SECS", "2")]).await;
    cluster[0].create_group("t", "g").await;
    let target = cluster[0].base.clone();
    let client = cluster[0].client.clone();
    // A stream of writes, cut short by SIGKILL.
    let flood = tokio::spawn(async move {
        for n in 0..10_000 {
            let body = json!({"tenant": "t", "user": format!("u{n}"), "group": "g"});
            if client
                .post(format!("{target}/assign-user"))
                .json(&body)
                .send()
                .await
                .is_err()
            {
                return n;
            }
        }
        10_000
    });
    eventually(Duration::from_secs(10), || async {
        cluster[1].revision("t").await >= 20
    })
    .await
    .expect("writes are flowing");
    let victim = cluster.instances.remove(0);
    drop(victim); // SIGKILL
    let sent = flood.await.unwrap();
    assert!(sent < 10_000, "the kill did not interrupt the writes");

    // Every committed change is whole: the revision counts the changelog, the changelog
    // counts the memberships, and every instance agrees with the store.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.database_url)
        .await
        .unwrap();
    let (revision, logged, members): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT revision FROM tenants WHERE name = 't'),
                (SELECT count(*) FROM changelog WHERE tenant = 't'),
                (SELECT count(*) FROM assignments WHERE tenant = 't')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(revision, logged);
    assert_eq!(
        members,
        revision - 1,
        "one create-group, then one assignment per revision"
    );
    let truth = store_truth(&mut cluster, "t").await;
    assert_eq!(truth["revision"].as_i64().unwrap(), revision);
    assert_eq!(
        truth["groups"][0]["members"].as_array().unwrap().len() as i64,
        members
    );
    assert_converged(&cluster, "t", &truth, Duration::from_secs(2 + 5)).await;
}

#[tokio::test]
async fn sigterm_stops_an_instance_cleanly() {
    let mut cluster = Cluster::start(1).await;
    cluster[0].create_group("t", "g").await;
    let instance = cluster.instances.remove(0);
    let started = Instant::now();
    let logs = {
        let status = instance_stop(instance);
        assert!(status.0.success(), "exit status {:?}", status.0);
        status.1
    };
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        logs.iter()
            .any(|line| line.contains("bus subscriber stopped")),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|line| line.contains("\"stopped\"")),
        "{logs:#?}"
    );
}

fn instance_stop(instance: Instance) -> (std::process::ExitStatus, Vec<String>) {
    let logs = instance.logs_handle();
    let status = instance.stop();
    // The reader thread may still be draining the last lines.
    std::thread::sleep(Duration::from_millis(100));
    let lines = logs.lock().unwrap().clone();
    (status, lines)
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

#[tokio::test]
async fn sigterm_waits_for_in_flight_requests_to_finish() {
    let mut pg = PrivatePostgres::start();
    let mut cluster = Cluster::on(
        1,
        pg.url(),
        None,
        &[("STORE_TIMEOUT_SECS", "3"), ("SHUTDOWN_TIMEOUT_SECS", "10")],
    )
    .await;
    cluster[0].create_group("t", "g").await;
    // With the store down, a check that needs a load stays in flight for the store timeout.
    pg.stop();
    let instance = cluster.instances.remove(0);
    let request = instance
        .client
        .post(instance.url("/check-access"))
        .json(&json!({"tenant": "t", "user": "u", "resource": "r", "action": "a"}))
        .send();
    let in_flight = tokio::spawn(async move {
        let response = request.await.expect("the in-flight request gets an answer");
        response.status()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || instance.stop())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(in_flight.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    // It waited for the request (about 2.5 s more), not for the whole drain timeout.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "stopped after {waited:?} without draining"
    );
    assert!(waited < Duration::from_secs(9), "stopped after {waited:?}");
}

#[tokio::test]
async fn ready_follows_what_the_instance_can_serve_while_health_stays_up() {
    let mut pg = PrivatePostgres::start();
    let mut redis = PrivateRedis::start();
    let cluster = Cluster::on(
        1,
        pg.url(),
        Some(redis.url()),
        &[("STORE_TIMEOUT_SECS", "1"), ("RESYNC_INTERVAL_SECS", "2")],
    )
    .await;
    let node = &cluster[0];
    let ready = || async { node.get("/ready", &[]).await };
    let is_ready = || async { ready().await.0 == StatusCode::OK };
    assert!(
        eventually(Duration::from_secs(10), is_ready)
            .await
            .is_some()
    );
    let (_, body) = ready().await;
    assert_eq!(
        body,
        json!({"status": "ready", "server_id": node.server_id})
    );
    grant(node, "t", "g", "alice", "doc").await;
    // Held in the cache: from now on it can go stale.
    assert!(node.check("t", "alice", "doc", "read").await);

    // Redis down, store up: the sweep still bounds staleness, so the instance stays ready.
    redis.stop();
    let down = eventually(Duration::from_secs(10), || async {
        node.health().await["redis"] == "disconnected"
    })
    .await;
    assert!(down.is_some());
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let (status, body) = ready().await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // The store down as well: not ready, and soon for both reasons; alive all along.
    pg.stop();
    let both = eventually(Duration::from_secs(15), || async {
        let (status, body) = ready().await;
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        status == StatusCode::SERVICE_UNAVAILABLE
            && body["error"]["code"] == "unavailable"
            && message.contains("store")
            && message.contains("bus")
    })
    .await;
    assert!(both.is_some(), "{}", ready().await.1);
    let health = node.health().await;
    assert_eq!(
        (health["status"].as_str(), health["database"].as_str()),
        (Some("ok"), Some("down"))
    );
    assert!(
        node.check("t", "alice", "doc", "read").await,
        "cached answers go on"
    );

    pg.resume();
    redis.resume();
    assert!(
        eventually(Duration::from_secs(15), is_ready)
            .await
            .is_some(),
        "{}",
        ready().await.1
    );
}

#[tokio::test]
async fn a_write_answered_503_never_commits_later_and_other_tenants_go_on() {
    use futures_util::future::join_all;
    use sqlx::Connection;

    let database = common::fresh_postgres_database().await;
    let cluster = Cluster::on(1, database.clone(), None, &[("STORE_TIMEOUT_SECS", "2")]).await;
    let node = &cluster[0];
    node.create_group("locked", "g").await;
    node.create_group("free", "g").await;

    // Another session holds the tenant's lock, as a long transaction would.
    let mut holder = sqlx::PgConnection::connect(&database).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM tenants WHERE name = 'locked' FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let started = Instant::now();
    let locked_writes = join_all((0..20).map(|i| {
        node.post(
            "/assign-user",
            json!({"tenant": "locked", "group": "g", "user": format!("u{i}")}),
        )
    }));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut answers = Vec::new();
        for i in 0..5 {
            let (status, body) = node
                .post(
                    "/assign-user",
                    json!({"tenant": "free", "group": "g", "user": format!("u{i}")}),
                )
                .await;
            answers.push((status, body, started.elapsed()));
        }
        let (ready, _) = node.get("/ready", &[]).await;
        (answers, ready)
    };
    let (locked, (free, ready)) = tokio::join!(locked_writes, meanwhile);
    let answered_in = started.elapsed();

    for (status, body) in &locked {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
    }
    // The store timeout, twice at most (a wait for a place, then the statement), and some.
    assert!(answered_in < Duration::from_secs(8), "{answered_in:?}");
    for (status, body, at) in &free {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert!(
            *at < Duration::from_secs(2),
            "a write of another tenant took until {at:?}"
        );
    }
    assert_eq!(
        ready,
        StatusCode::OK,
        "ready while one tenant's lock is held"
    );

    // Held well past the server's wait for an answer, then let go: nothing answered 503 may
    // commit now.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(started.elapsed())).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let committed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM assignments WHERE tenant = 'locked'")
            .fetch_one(&mut holder)
            .await
            .unwrap();
    assert_eq!(committed, 0, "writes answered 503 committed later");
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM tenants WHERE name = 'locked'")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert_eq!(revision, 1);
    // And the tenant takes writes again.
    let (status, body) = node
        .post(
            "/assign-user",
            json!({"tenant": "locked", "group": "g", "user": "late"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_postgres_that_answers_reads_but_refuses_writes_is_reported_and_recovers() {
    use sqlx::Connection;

    let database = common::fresh_postgres_database().await;
    let cluster = Cluster::on(1, database.clone(), None, &[]).await;
    let node = &cluster[0];
    node.create_group("acme", "g").await;
    let name: String = database.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&database).await.unwrap();
    // Every new session read-only, as on a standby after a failover; the instance's current
    // sessions end, so that it opens new ones.
    let read_only = async |admin: &mut sqlx::PgConnection, on: bool| {
        let setting = if on {
            "SET default_transaction_read_only = on"
        } else {
            "RESET default_transaction_read_only"
        };
        // The name is one the tests made (rbac_ and hex digits).
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{name}\" {setting}"
        )))
        .execute(&mut *admin)
        .await
        .unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut *admin)
        .await
        .unwrap();
    };
    read_only(&mut admin, true).await;

    let mut refused = 0;
    for i in 0..10 {
        let (status, body) = node
            .post(
                "/assign-user",
                json!({"tenant": "acme", "group": "g", "user": format!("u{i}")}),
            )
            .await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
        } else {
            // The first may meet a connection that was just ended (a connection error,
            // also 503); nothing else is acceptable.
            panic!("write {i} answered {status}: {body}");
        }
    }
    assert_eq!(refused, 10);
    assert_eq!(node.health().await["database"], "down");
    let (ready, _) = node.get("/ready", &[]).await;
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
    // Reads go on.
    assert_eq!(node.revision("acme").await, 1);

    read_only(&mut admin, false).await;
    let recovered = eventually(Duration::from_secs(10), || async {
        node.health().await["database"] == "ok"
    })
    .await;
    assert!(recovered.is_some(), "health never recovered");
    let (status, body) = node
        .post(
            "/assign-user",
            json!({"tenant": "acme", "group": "g", "user": "late"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_write_that_reached_the_store_is_answered_by_it_not_by_the_request_timeout() {
    use sqlx::Connection;

    let database = common::fresh_postgres_database().await;
    let cluster = Cluster::on(
        1,
        database.clone(),
        None,
        &[("REQUEST_TIMEOUT_SECS", "1"), ("STORE_TIMEOUT_SECS", "5")],
    )
    .await;
    let node = &cluster[0];
    node.create_group("locked", "g").await;
    let mut holder = sqlx::PgConnection::connect(&database).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM tenants WHERE name = 'locked' FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    // Let go of the lock after the request timeout has passed, within the store timeout.
    let release = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    };
    let started = Instant::now();
    let ((status, body), ()) = tokio::join!(
        node.post(
            "/assign-user",
            json!({"tenant": "locked", "group": "g", "user": "alice"}),
        ),
        release
    );
    // Answered 503 at the request timeout, it would have committed all the same a second
    // later: the answer waits for the store instead, and is the truth.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revision"], 2, "{body}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(body["changed"], true, "{body}");
}
