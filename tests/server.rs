//! The server as a program embedding it starts it: `Server::bind` on port 0 in this process,
//! which tells the address it got, then `run_until` a shutdown future, which drains the
//! requests in flight before it returns. No process, no log line to scrape for the port.

mod common;

use std::time::Duration;

use common::{InProcess, PROPAGATION, eventually, fresh_database, grant_reaches, redis_url};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test]
async fn in_process_on_port_zero_a_server_answers_with_its_id_and_serves_writes_and_checks() {
    let database_url = fresh_database().await;
    let server = InProcess::start(&[
        "--database-url",
        &database_url,
        "--server-id",
        "in-process",
        "--admin-token",
        "in-process-secret",
    ])
    .await;
    let port = server.base.rsplit_once(':').unwrap().1;
    assert_ne!(
        port, "0",
        "the address is the one bound, not the one asked for"
    );

    let health = server.health().await;
    assert_eq!(health["server_id"], "in-process", "{health}");
    assert_eq!(health["database"], "ok", "{health}");
    assert_eq!(health["redis"], "disabled", "{health}");

    server.create_group("acme", "editors").await;
    server
        .add_permission("acme", "editors", "docs/*", "read")
        .await;
    let assigned = server.assign_user("acme", "alice", "editors").await;
    assert_eq!(assigned["revision"], 3, "{assigned}");
    assert_eq!(
        server
            .check_body("acme", "alice", "docs/readme", "read")
            .await,
        json!({"allowed": true, "revision": 3})
    );
    assert!(!server.check("acme", "alice", "docs/readme", "write").await);
    // The admin token of the flags guards the writes.
    let anonymous = server
        .client
        .post(server.url("/create-group"))
        .json(&json!({"tenant": "acme", "group": "writers"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn servers_in_one_process_share_a_store_and_hear_each_other_through_redis() {
    let database_url = fresh_database().await;
    let redis_url = redis_url();
    let channel = format!("tenant-refresh-{}", uuid::Uuid::new_v4().simple());
    // A sweep an hour away: only the bus can tell the second server of the write.
    let flags = |id| {
        vec![
            "--database-url",
            &database_url,
            "--redis-url",
            &redis_url,
            "--redis-channel",
            &channel,
            "--resync-interval-secs",
            "3600",
            "--server-id",
            id,
        ]
    };
    let first = InProcess::start(&flags("first")).await;
    let second = InProcess::start(&flags("second")).await;
    for server in [&first, &second] {
        let connected = eventually(Duration::from_secs(10), || async {
            server.health().await["redis"] == "connected"
        })
        .await;
        assert!(connected.is_some(), "{} never subscribed", server.server_id);
    }

    let took = grant_reaches(&first, &second).await;
    assert!(took.is_some(), "the write on first did not reach second");
    // A resync when the second subscribed may have caught it up as well: that it acted on
    // every message of the first's three writes is what shows the bus at work.
    let heard = eventually(PROPAGATION, || async {
        second.cache_stats().await["messages_received"].as_u64() >= Some(3)
    })
    .await;
    assert!(heard.is_some(), "{}", second.cache_stats().await);
    let stats = second.cache_stats().await;
    assert_eq!(stats["own_messages_ignored"], 0, "{stats}");
}

#[tokio::test]
async fn run_until_returns_after_shutdown_once_the_request_in_flight_is_answered() {
    let data_dir = common::temp_dir("rbac-server");
    let data_dir = data_dir.to_str().unwrap();
    let server = InProcess::start(&["--data-dir", data_dir]).await;
    let address = server.base.trim_start_matches("http://").to_owned();

    // A write whose body is held back: the server invites it with `100 Continue` once the
    // handler reads the body, which makes the request one in flight.
    let body = json!({"tenant": "acme", "group": "editors"}).to_string();
    let mut connection = BufReader::new(TcpStream::connect(&address).await.unwrap());
    let head = format!(
        "POST /create-group HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    let mut invitation = String::new();
    for _ in 0..2 {
        connection.read_line(&mut invitation).await.unwrap();
    }
    assert_eq!(invitation, "HTTP/1.1 100 Continue\r\n\r\n");

    let stopping = server.shut_down();
    let closed = eventually(Duration::from_secs(5), || async {
        TcpStream::connect(&address).await.is_err()
    })
    .await;
    assert!(
        closed.is_some(),
        "still accepting connections after shutdown"
    );
    assert!(
        !stopping.is_finished(),
        "run_until returned with a request in flight"
    );

    connection.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        connection.read_to_string(&mut answer),
    )
    .await
    .expect("the connection closes once the request is answered")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201 Created\r\n"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("run_until returns once the request is answered")
        .unwrap()
        .expect("run_until returns Ok");

    // The write answered during the drain was committed.
    let restarted = InProcess::start(&["--data-dir", data_dir]).await;
    assert_eq!(restarted.revision("acme").await, 1);
}
