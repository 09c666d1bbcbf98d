//! PostgreSQL stopped, refusing writes or slow, and instances killed mid-write: nothing
//! acknowledged is lost, nothing half-written is seen.

use super::*;

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
