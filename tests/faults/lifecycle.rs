//! Shutting down on SIGTERM, and readiness following what an instance can serve.

use super::*;

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
