//! `GET /watch` from outside, over Server-Sent Events and over a WebSocket: every revision
//! once, in order, whichever instance wrote it, each as `/changes` shows it, and only once
//! the instance serving the stream holds it; resumption without gap or repeat; lost bus
//! messages losing no event; slow clients cut off with a reset; the stream limit; revoked
//! keys ending their streams.

mod common;

use std::time::Duration;

use common::servers::PrivateRedis;
use common::{Api, Cluster, Instance, fresh_database};
use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long a test waits for an event it expects.
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// An SSE stream of `/watch`, as a client reads it.
async fn sse(
    api: &Api,
    tenant: &str,
    after: Option<u64>,
    last_event_id: Option<u64>,
) -> impl Stream<Item = Event> + Unpin + use<> {
    let mut query = vec![("tenant", tenant.to_owned())];
    if let Some(after) = after {
        query.push(("after", after.to_string()));
    }
    let mut request = api.client.get(api.url("/watch")).query(&query);
    if let Some(token) = &api.token {
        request = request.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.expect("reach the server");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{:?}",
        response.headers()
    );
    Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|event| event.expect("a well-formed event stream")),
    )
}

/// A change of a stream as `/changes` shows it: a stream says too whether the change ends its
/// revision, which every change of these tests' single writes does.
fn whole(mut change: Value) -> Value {
    if let Some(object) = change.as_object_mut()
        && object.contains_key("operation")
    {
        assert_eq!(
            object.remove("ends_revision"),
            Some(json!(true)),
            "{object:?}"
        );
    }
    change
}

/// The next `change` event's revision and change, skipping nothing else: any other event is
/// a failure.
async fn next_change(events: &mut (impl Stream<Item = Event> + Unpin)) -> (u64, Value) {
    let event = tokio::time::timeout(EVENT_WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on");
    assert_eq!(event.event, "change", "{event:?}");
    let change = whole(serde_json::from_str(&event.data).unwrap());
    let revision: u64 = event.id.parse().unwrap();
    assert_eq!(
        change["revision"], revision,
        "the id is the revision: {event:?}"
    );
    (revision, change)
}

/// The next `change` event of a stream of every tenant's changes: no id, and the change
/// names its tenant. Any other event is a failure.
async fn next_of_every(events: &mut (impl Stream<Item = Event> + Unpin)) -> Value {
    let event = tokio::time::timeout(EVENT_WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on");
    assert_eq!(event.event, "change", "{event:?}");
    assert_eq!(event.id, "", "no revision to resume after: {event:?}");
    let change = whole(serde_json::from_str(&event.data).unwrap());
    assert!(change["tenant"].is_string(), "{change}");
    change
}

type WebSocketClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn websocket(api: &Api, tenant: &str, after: u64) -> WebSocketClient {
    websocket_to(api, &format!("tenant={tenant}&after={after}")).await
}

async fn websocket_to(api: &Api, query: &str) -> WebSocketClient {
    let url = format!("{}/watch?{query}", api.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = &api.token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("a WebSocket");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// The next text message of a WebSocket, as JSON (pings are answered by the client).
async fn next_message(socket: &mut WebSocketClient) -> Value {
    loop {
        let message = tokio::time::timeout(EVENT_WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket stays open")
            .expect("a well-formed message");
        match message {
            tungstenite::Message::Text(text) => return whole(serde_json::from_str(&text).unwrap()),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Every change of `tenant` after `after`, as `/changes` shows them.
async fn changes_after(api: &Api, tenant: &str, after: u64) -> Vec<Value> {
    let (status, page) = api
        .get(
            "/changes",
            &[
                ("tenant", tenant),
                ("after", &after.to_string()),
                ("limit", "1000"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["changes"].as_array().unwrap().clone()
}

/// 200 changing writes of mixed kinds, spread over the instances, concurrently.
async fn write_concurrently(cluster: &Cluster, tenant: &str) {
    let mut writers = Vec::new();
    for (w, node) in cluster.instances.iter().enumerate() {
        let api = node.with_token(node.token.as_deref());
        let tenant = tenant.to_owned();
        let count = 200 / cluster.instances.len() + usize::from(w < 200 % cluster.instances.len());
        writers.push(tokio::spawn(async move {
            for n in 0..count {
                let answer = match n % 3 {
                    0 => api.assign_user(&tenant, &format!("u{w}-{n}"), "g").await,
                    1 => {
                        api.add_permission(&tenant, "g", &format!("docs/{w}/{n}"), "read")
                            .await
                    }
                    _ => api.create_group(&tenant, &format!("g{w}-{n}")).await,
                };
                assert!(answer["revision"].is_u64(), "{answer}");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn a_watcher_gets_every_revision_once_in_order_from_writes_on_every_instance() {
    let cluster = Cluster::start(3).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    a.create_group("acme", "g").await;
    a.add_permission("acme", "g", "docs/*", "read").await;
    // A wrote them, so A holds them; B may not have heard yet.
    let base = a.revision("acme").await;
    let mut events = sse(b, "acme", Some(base), None).await;
    let mut socket = websocket(b, "acme", base).await;

    write_concurrently(&cluster, "acme").await;

    let expected = changes_after(a, "acme", base).await;
    assert_eq!(expected.len(), 200);
    for (n, change) in expected.iter().enumerate() {
        let revision = base + 1 + n as u64;
        let (received, sent) = next_change(&mut events).await;
        assert_eq!(received, revision);
        assert_eq!(&sent, change, "SSE, revision {revision}");
        // Sent only once B holds it: a check on B now is answered at that revision or later.
        let answer = b.check_body("acme", "nobody", "docs/x", "read").await;
        assert!(answer["revision"].as_u64().unwrap() >= revision, "{answer}");
        assert_eq!(
            &next_message(&mut socket).await,
            change,
            "WebSocket, revision {revision}"
        );
    }
    // Nothing more: no repeat.
    a.create_group("acme", "last").await;
    let (received, _) = next_change(&mut events).await;
    assert_eq!(received, base + 201);
    assert_eq!(next_message(&mut socket).await["revision"], base + 201);
}

#[tokio::test]
async fn every_tenant_changes_learned_after_the_stream_opens_come_once_each_in_order() {
    let cluster = Cluster::start(3).await;
    let (a, b, c) = (&cluster[0], &cluster[1], &cluster[2]);
    for tenant in ["acme", "initech"] {
        a.create_group(tenant, "g").await;
        a.add_permission(tenant, "g", "docs/*", "read").await;
    }
    // Every instance knows them before the stream opens: what came before is not sent.
    for node in &cluster.instances {
        for tenant in ["acme", "initech"] {
            node.check_at(tenant, "u", "docs/x", "read", 2).await;
        }
    }
    let mut events = sse(b, "*", None, None).await;
    let mut socket = websocket_to(b, "tenant=*").await;

    // Concurrent writes on every instance to acme, one on C to a tenant created now, and one
    // to initech.
    let others = async {
        c.create_group("globex", "g").await;
        c.assign_user("globex", "alice", "g").await;
        a.assign_user("initech", "bob", "g").await;
    };
    tokio::join!(write_concurrently(&cluster, "acme"), others);

    let mut expected = std::collections::BTreeMap::new();
    for (tenant, after) in [("acme", 2), ("initech", 2), ("globex", 0)] {
        for mut change in changes_after(a, tenant, after).await {
            change["tenant"] = tenant.into();
            expected.insert(
                (tenant.to_owned(), change["revision"].as_u64().unwrap()),
                change,
            );
        }
    }
    assert_eq!(expected.len(), 203);
    let mut received = std::collections::BTreeMap::new();
    let mut newest = std::collections::HashMap::<String, u64>::new();
    for _ in 0..expected.len() {
        let change = next_of_every(&mut events).await;
        let tenant = change["tenant"].as_str().unwrap().to_owned();
        let revision = change["revision"].as_u64().unwrap();
        // Each tenant's in order, with no gap.
        let before = newest.insert(tenant.clone(), revision);
        let first = if tenant == "globex" { 0 } else { 2 };
        assert_eq!(before.unwrap_or(first) + 1, revision, "{change}");
        // Sent only once B answers from it.
        let answer = b.check_body(&tenant, "nobody", "docs/x", "read").await;
        assert!(answer["revision"].as_u64().unwrap() >= revision, "{answer}");
        // The WebSocket stream sends the same, in the same order.
        let message = next_message(&mut socket).await;
        assert_eq!(message, change);
        assert!(received.insert((tenant, revision), change).is_none());
    }
    assert_eq!(received, expected);
    // Nothing more, and nothing twice.
    a.create_group("initech", "last").await;
    let last = next_of_every(&mut events).await;
    assert_eq!(
        (last["tenant"].as_str(), last["revision"].as_u64()),
        (Some("initech"), Some(4))
    );
}

#[tokio::test]
async fn a_watcher_resumes_after_the_last_change_it_got_with_no_gap_and_no_repeat() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    a.create_group("acme", "g").await;
    for n in 0..10 {
        a.assign_user("acme", &format!("u{n}"), "g").await;
    }
    // From the start: the history replays, then the stream goes on live.
    let mut events = sse(b, "acme", None, None).await;
    for revision in 1..=5 {
        assert_eq!(next_change(&mut events).await.0, revision);
    }
    drop(events);
    // A replay longer than what a stream buffers is paced by the client, not cut off.
    a.create_group("globex", "g").await;
    for n in 0..199 {
        a.assign_user("globex", &format!("u{n}"), "g").await;
    }
    let mut long = sse(b, "globex", None, None).await;
    for revision in 1..=200 {
        assert_eq!(next_change(&mut long).await.0, revision);
    }
    drop(long);
    let mut socket = websocket(b, "acme", 0).await;
    for revision in 1..=3 {
        assert_eq!(next_message(&mut socket).await["revision"], revision);
    }
    socket.close(None).await.unwrap();
    drop(socket);

    for n in 10..15 {
        a.assign_user("acme", &format!("u{n}"), "g").await;
    }
    // Last-Event-ID wins over `after`, as a browser's EventSource sends both.
    let mut events = sse(b, "acme", Some(0), Some(5)).await;
    let mut socket = websocket(b, "acme", 3).await;
    for revision in 6..=16 {
        assert_eq!(next_change(&mut events).await.0, revision);
    }
    for revision in 4..=16 {
        assert_eq!(next_message(&mut socket).await["revision"], revision);
    }
    a.unassign_user("acme", "u0", "g").await;
    let (revision, change) = next_change(&mut events).await;
    assert_eq!(
        (revision, change["operation"].as_str()),
        (17, Some("unassign-user"))
    );
    assert_eq!(next_message(&mut socket).await["revision"], 17);
}

#[tokio::test]
async fn a_watcher_whose_instance_missed_the_bus_messages_still_gets_every_revision() {
    let mut redis = PrivateRedis::start();
    let cluster = Cluster::on(
        2,
        fresh_database().await,
        Some(redis.url()),
        &[("RESYNC_INTERVAL_SECS", "1")],
    )
    .await;
    let (a, b) = (&cluster[0], &cluster[1]);
    a.create_group("acme", "g").await;
    let mut events = sse(b, "acme", Some(0), None).await;
    assert_eq!(next_change(&mut events).await.0, 1);
    let mut every = sse(b, "*", None, None).await;

    redis.stop();
    for n in 0..20 {
        a.assign_user("acme", &format!("u{n}"), "g").await;
    }
    // B learns of them from its sweep alone.
    for revision in 2..=21 {
        let (received, change) = next_change(&mut events).await;
        assert_eq!(received, revision);
        assert_eq!(change["operation"], "assign-user");
        let change = next_of_every(&mut every).await;
        assert_eq!(
            (change["tenant"].as_str(), change["revision"].as_u64()),
            (Some("acme"), Some(revision))
        );
    }
    redis.resume();
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_off_with_a_reset_and_the_stream_limit_holds() {
    let cluster = Cluster::start_with(1, &[("WATCH_MAX_CLIENTS", "2")]).await;
    let node = &cluster[0];
    node.create_group("acme", "g").await;

    // A client that sends its request and reads nothing, with a small receive window.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address = node.base.trim_start_matches("http://").parse().unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    stalled
        .write_all(b"GET /watch?tenant=acme&after=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let other = sse(node, "acme", Some(0), None).await;
    let both = common::eventually(Duration::from_secs(5), || async {
        watch_streams(node).await == 2
    })
    .await;
    assert!(both.is_some(), "two streams open");

    // One stream more than WATCH_MAX_CLIENTS is refused.
    let (status, body) = node.get("/watch", &[("tenant", "acme")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    drop(other);
    let freed = common::eventually(Duration::from_secs(5), || async {
        watch_streams(node).await == 1
    })
    .await;
    assert!(freed.is_some(), "a closed stream frees its place");

    // Write until the stalled watcher is cut off; the instance holds only what it buffers.
    let mut written = 0;
    while watch_streams(node).await == 1 {
        assert!(written < 20_000, "the stalled watcher was never cut off");
        for _ in 0..50 {
            written += 1;
            node.assign_user("acme", &format!("user-with-a-longish-name-{written}"), "g")
                .await;
        }
    }
    // Once it reads, it gets the changes buffered for it, in order, then the reset that
    // says where to resume.
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Until the chunked body ends (the connection itself stays open for another request).
    while !received.ends_with(b"\r\n0\r\n\r\n") {
        let read = tokio::time::timeout(EVENT_WAIT, stalled.read(&mut chunk))
            .await
            .expect("the rest of the stream in time")
            .unwrap();
        assert!(read > 0, "the connection closed before the stream ended");
        received.extend_from_slice(&chunk[..read]);
    }
    let text = String::from_utf8_lossy(&received);
    let body = &text[text.find("\r\n\r\n").expect("a response head") + 4..];
    let events: Vec<Event> =
        futures_util::stream::iter([Ok::<_, std::io::Error>(dechunk(body).into_bytes())])
            .eventsource()
            .map(Result::unwrap)
            .collect()
            .await;
    let (reset, changes) = events.split_last().expect("events");
    assert_eq!(reset.event, "reset", "{reset:?}");
    let ids: Vec<u64> = changes.iter().map(|e| e.id.parse().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    let resume: Value = serde_json::from_str(&reset.data).unwrap();
    assert_eq!(resume, json!({"after": ids.len()}));
    assert!(
        ids.len() < written,
        "cut off before the end: {} of {written}",
        ids.len()
    );
}

/// The body of a chunked HTTP/1.1 response, as far as it came.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The instance's open watch streams, from /metrics.
async fn watch_streams(node: &Instance) -> u64 {
    let metrics = node.metrics().await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("rbac_watch_streams "))
        .map_or(0, |value| value.trim().parse::<f64>().unwrap() as u64)
}

#[tokio::test]
async fn bad_watch_requests_are_refused_and_a_revoked_key_ends_its_streams() {
    let tokens = [
        ("ADMIN_TOKEN", "admin-secret"),
        ("CHECK_TOKEN", "check-secret"),
    ];
    let cluster = Cluster::start_with(2, &tokens).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    a.create_group("acme", "g").await;
    let (status, key) = a
        .post(
            "/create-api-key",
            json!({"tenant": "acme", "role": "check"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let with_key = b.with_token(key["key"].as_str());
    let known = common::eventually(common::PROPAGATION, || async {
        with_key.get("/groups", &[("tenant", "acme")]).await.0 == StatusCode::OK
    })
    .await;
    assert!(known.is_some(), "the key reaches B");

    for (query, status, code) in [
        (
            vec![("tenant", "acme"), ("after", "-1")],
            400,
            "invalid_request",
        ),
        (
            vec![("tenant", "acme"), ("after", "x")],
            400,
            "invalid_request",
        ),
        (
            vec![("tenant", "acme"), ("limit", "5")],
            400,
            "invalid_request",
        ),
        (vec![("after", "0")], 400, "invalid_request"),
        (vec![("tenant", "globex")], 403, "forbidden"),
    ] {
        let (got, body) = with_key.get("/watch", &query).await;
        assert_eq!(
            (got.as_u16(), body["error"]["code"].as_str()),
            (status, Some(code)),
            "{query:?}: {body}"
        );
    }
    let response = with_key
        .client
        .get(with_key.url("/watch"))
        .query(&[("tenant", "acme")])
        .bearer_auth(key["key"].as_str().unwrap())
        .header("last-event-id", "not-a-revision")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _) = b
        .with_token(None)
        .get("/watch", &[("tenant", "acme")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Every tenant's changes: an admin credential for every tenant, from the present only.
    let (status, admin_key) = a
        .post(
            "/create-api-key",
            json!({"tenant": "acme", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{admin_key}");
    let check_token = b.with_token(Some("check-secret"));
    let tenant_admin = b.with_token(admin_key["key"].as_str());
    let admin = b.with_token(Some("admin-secret"));
    let known = common::eventually(common::PROPAGATION, || async {
        tenant_admin.get("/groups", &[("tenant", "acme")]).await.0 == StatusCode::OK
    })
    .await;
    assert!(known.is_some(), "the admin key reaches B");
    for (api, query, status) in [
        (&with_key, vec![("tenant", "*")], 403),
        (&check_token, vec![("tenant", "*")], 403),
        (&tenant_admin, vec![("tenant", "*")], 403),
        (&admin, vec![("tenant", "*"), ("after", "0")], 400),
    ] {
        let (got, body) = api.get("/watch", &query).await;
        assert_eq!(got.as_u16(), status, "{query:?}: {body}");
    }
    let response = b
        .client
        .get(b.url("/watch"))
        .query(&[("tenant", "*")])
        .bearer_auth("admin-secret")
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let mut every = sse(&admin, "*", None, None).await;
    a.create_group("initech", "g").await;
    let change = next_of_every(&mut every).await;
    assert_eq!(
        (change["tenant"].as_str(), change["revision"].as_u64()),
        (Some("initech"), Some(1))
    );
    drop(every);

    // The key's streams on B end when it is revoked on A.
    let mut events = sse(&with_key, "acme", Some(0), None).await;
    let mut socket = websocket(&with_key, "acme", 0).await;
    assert_eq!(next_change(&mut events).await.0, 1);
    assert_eq!(next_message(&mut socket).await["revision"], 1);
    let (status, body) = a.post("/revoke-api-key", json!({"id": key["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended = tokio::time::timeout(common::PROPAGATION * 2, events.next())
        .await
        .expect("the stream ends in time");
    assert!(ended.is_none(), "{ended:?}");
    let closed = tokio::time::timeout(common::PROPAGATION * 2, async {
        loop {
            match socket.next().await {
                Some(Ok(tungstenite::Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("the socket closes in time");
    assert_eq!(closed.map(|frame| u16::from(frame.code)), Some(1008));
}

#[tokio::test]
async fn changes_deleted_by_retention_are_refused_before_the_stream_starts() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    node.create_group("acme", "g").await;
    node.assign_user("acme", "u", "g").await;
    common::forget_changes_through(&cluster.database_url, "acme", 1).await;
    let (status, body) = node
        .get("/watch", &[("tenant", "acme"), ("after", "0")])
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["oldest_revision"], 2);
    let mut events = sse(node, "acme", Some(1), None).await;
    assert_eq!(next_change(&mut events).await.0, 2);
}

#[tokio::test]
async fn changes_deleted_before_an_open_stream_sends_them_end_it_with_expired() {
    // No bus and no sweep in the test's time: B learns of A's writes when told to reload.
    let cluster = Cluster::without_bus(2, &[("RESYNC_INTERVAL_SECS", "3600")]).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    a.create_group("acme", "g").await;
    a.create_group("acme", "h").await;
    b.check_at("acme", "u", "r", "read", 1).await;
    // Each stream of the tenant has read the store once (it sent revision 2), so that B
    // learns of nothing more until told to reload.
    let mut events = sse(b, "acme", Some(1), None).await;
    assert_eq!(next_change(&mut events).await.0, 2);
    let mut socket = websocket(b, "acme", 1).await;
    assert_eq!(next_message(&mut socket).await["revision"], 2);
    let mut every = sse(b, "*", None, None).await;
    for n in 0..4 {
        a.assign_user("acme", &format!("u{n}"), "g").await;
    }
    // Retention deletes them before B learns of them.
    common::forget_changes_through(&cluster.database_url, "acme", 6).await;
    let (status, body) = b.post("/refresh-tenant", json!({"tenant": "acme"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for events in [&mut events, &mut every] {
        let last = tokio::time::timeout(EVENT_WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("the expiry is told");
        assert_eq!(last.event, "expired", "{last:?}");
        let data: Value = serde_json::from_str(&last.data).unwrap();
        assert_eq!(data, json!({"tenant": "acme", "oldest_revision": 7}));
        let end = tokio::time::timeout(EVENT_WAIT, events.next()).await;
        assert!(matches!(end, Ok(None)), "the stream ends: {end:?}");
    }
    assert_eq!(
        next_message(&mut socket).await,
        json!({"event": "expired", "tenant": "acme", "oldest_revision": 7})
    );
}

#[tokio::test]
async fn an_idle_stream_carries_a_comment_every_15_seconds() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    let mut response = node
        .client
        .get(node.url("/watch"))
        .query(&[("tenant", "quiet")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
        .await
        .expect("something within 20 s")
        .unwrap()
        .expect("the stream goes on");
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.starts_with(':'), "a comment line: {text:?}");
    assert!(waited >= Duration::from_secs(14), "only after {waited:?}");
}

#[tokio::test]
async fn shutting_down_ends_the_watch_streams_rather_than_waiting_on_them() {
    let mut cluster = Cluster::start(1).await;
    cluster[0].create_group("acme", "g").await;
    let mut events = sse(&cluster[0], "acme", Some(0), None).await;
    let mut socket = websocket(&cluster[0], "acme", 0).await;
    assert_eq!(next_change(&mut events).await.0, 1);
    assert_eq!(next_message(&mut socket).await["revision"], 1);
    let instance = cluster.remove(0);
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || instance.stop())
        .await
        .unwrap();
    // Well before SHUTDOWN_TIMEOUT_SECS (10 s), which open streams would otherwise run out.
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let ended = tokio::time::timeout(EVENT_WAIT, events.next())
        .await
        .unwrap();
    assert!(ended.is_none(), "{ended:?}");
}

#[tokio::test]
async fn the_changes_of_a_write_of_many_come_together_and_only_the_last_carries_the_revision() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    a.create_group("acme", "g").await;
    let changes: Vec<Value> = (0..5)
        .map(|i| json!({"op": "assign-user", "group": "g", "user": format!("u{i}")}))
        .collect();
    let mut events = sse(b, "acme", Some(1), None).await;
    let mut socket = websocket(b, "acme", 1).await;
    let (status, body) = a
        .post("/write", json!({"tenant": "acme", "changes": changes}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    a.create_group("acme", "after").await;

    // Five changes of revision 2: the last alone carries the id, and says it ends it.
    for i in 0..5 {
        let event = tokio::time::timeout(EVENT_WAIT, events.next())
            .await
            .unwrap()
            .unwrap();
        let change: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(
            (change["revision"].as_u64(), change["user"].as_str()),
            (Some(2), Some(format!("u{i}").as_str()))
        );
        let last = i == 4;
        assert_eq!(change["ends_revision"], json!(last), "{event:?}");
        // An event without an id leaves the last id as it was: 1 before the write's last.
        assert_eq!(event.id, if last { "2" } else { "" }, "{event:?}");
        let message = tokio::time::timeout(EVENT_WAIT, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let message: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        assert_eq!(message, change);
    }
    assert_eq!(next_change(&mut events).await.0, 3);

    // Resuming after revision 1 gives the whole write again, then what came after.
    let mut resumed = sse(b, "acme", None, Some(1)).await;
    for _ in 0..4 {
        let event = tokio::time::timeout(EVENT_WAIT, resumed.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.id, "", "{event:?}");
    }
    assert_eq!(next_change(&mut resumed).await.0, 2);
    assert_eq!(next_change(&mut resumed).await.0, 3);
}
