//! What happens around every request, seen from outside: the `x-request-id` each answer
//! carries, the id, route and tenant on the log lines written while serving it, and the
//! answer to a request that takes longer than REQUEST_TIMEOUT_SECS.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, PROPAGATION, eventually, stored_rows};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQUEST_ID: &str = "x-request-id";

fn is_new_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn every_answer_carries_the_clients_request_id_unless_too_long_and_a_new_one_otherwise() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    let id_of = |path: &'static str, sent: Option<String>| {
        let mut request = node.client.get(node.url(path));
        if let Some(sent) = sent {
            request = request.header(REQUEST_ID, sent);
        }
        async move {
            let response = request.send().await.unwrap();
            let id = response.headers().get(REQUEST_ID).map(|v| {
                v.to_str()
                    .expect("a request id is printable ASCII")
                    .to_owned()
            });
            (
                response.status(),
                id.expect("every answer has an x-request-id"),
            )
        }
    };

    let longest = "r".repeat(1024);
    for kept in ["trace-42", "a", "two words", longest.as_str()] {
        for path in ["/health", "/no-such-route"] {
            let (_, id) = id_of(path, Some(kept.to_owned())).await;
            assert_eq!(id, kept, "{path}");
        }
    }
    let (status, _) = id_of("/no-such-route", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut seen = Vec::new();
    for replaced in [None, Some("r".repeat(1025))] {
        let (_, id) = id_of("/health", replaced.clone()).await;
        assert!(is_new_id(&id), "{replaced:?} answered with id {id:?}");
        assert!(!seen.contains(&id), "{id} given twice");
        seen.push(id);
    }
}

/// The JSON log lines of `lines` whose message is `message` and whose request span has `id`.
fn lines_of(lines: &[String], message: &str, id: &str) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == message && event["span"]["id"] == id)
        .collect()
}

#[tokio::test]
async fn log_lines_written_while_serving_a_request_carry_its_id_route_and_tenant() {
    let mut cluster = Cluster::without_bus(1, &[]).await;
    let write = cluster[0]
        .client
        .post(cluster[0].url("/create-group"))
        .header(REQUEST_ID, "write-1")
        .json(&json!({"tenant": "acme", "group": "editors"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::CREATED);
    let committed = eventually(PROPAGATION, || async {
        !lines_of(&cluster[0].logs(), "write committed", "write-1").is_empty()
    })
    .await;
    let logs = cluster[0].logs();
    assert!(
        committed.is_some(),
        "no `write committed` line in request write-1:\n{}",
        logs.join("\n")
    );
    let line = &lines_of(&logs, "write committed", "write-1")[0];
    assert_eq!(line["span"]["name"], "request", "{line}");
    assert_eq!(line["span"]["route"], "/create-group", "{line}");
    assert_eq!(line["span"]["method"], "POST", "{line}");
    assert_eq!(line["span"]["tenant"], "acme", "{line}");

    // A check on an instance that does not hold the tenant waits for it to load, and the load
    // is logged in the check's span.
    let reader = cluster.add_instance().await;
    let check = cluster[reader]
        .client
        .get(cluster[reader].url("/check-access"))
        .header(REQUEST_ID, "check-1")
        .query(&[
            ("tenant", "acme"),
            ("user", "u"),
            ("resource", "r"),
            ("action", "a"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), StatusCode::OK);
    let loaded = eventually(PROPAGATION, || async {
        !lines_of(&cluster[reader].logs(), "tenant loaded", "check-1").is_empty()
    })
    .await;
    assert!(
        loaded.is_some(),
        "no `tenant loaded` line in request check-1:\n{}",
        cluster[reader].logs().join("\n")
    );
    let line = &lines_of(&cluster[reader].logs(), "tenant loaded", "check-1")[0];
    assert_eq!(line["span"]["route"], "/check-access", "{line}");
    assert_eq!(line["tenant"], "acme", "{line}");
}

#[tokio::test]
async fn a_request_not_answered_within_request_timeout_secs_is_a_503_and_changes_nothing() {
    let cluster = Cluster::without_bus(1, &[("REQUEST_TIMEOUT_SECS", "1")]).await;
    let node = &cluster[0];
    let before = stored_rows(&cluster.database_url).await;
    let address = node.base.trim_start_matches("http://").to_owned();

    // A client that announces a body and sends only its first byte.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST /create-group HTTP/1.1\r\nHost: rbac\r\nContent-Type: application/json\r\n\
              Content-Length: 40\r\nx-request-id: slow-1\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            answer.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&answer);
            if n == 0 || text.contains("\"message\"") && text.ends_with("}}") {
                break;
            }
        }
    })
    .await;
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(read.is_ok(), "no answer within 10 s; got {text:?}");
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-request-id: slow-1"),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}, with a timeout of 1 s"
    );
    assert_eq!(stored_rows(&cluster.database_url).await, before);

    // The instance goes on serving.
    assert_eq!(node.health().await["status"], "ok");
}

#[tokio::test]
async fn a_tenant_name_cannot_forge_fields_in_either_log_format() {
    let forged = "evil revision=999 actor=token:x";
    for format in ["text", "json"] {
        let cluster = Cluster::without_bus(1, &[("LOG_FORMAT", format)]).await;
        let node = &cluster[0];
        let created = node.create_group(forged, "g").await;
        assert_eq!(created["revision"], 1, "{created}");
        let committed = || {
            node.logs()
                .into_iter()
                .find(|line| line.contains("write committed"))
        };
        eventually(PROPAGATION, || async { committed().is_some() }).await;
        let line = &committed().unwrap_or_else(|| panic!("no write committed line"));
        if format == "json" {
            let event: Value = serde_json::from_str(line).unwrap();
            assert_eq!(event["tenant"], forged, "{line}");
            assert_eq!(event["revision"], 1, "{line}");
        } else {
            assert!(line.contains(&format!("tenant={forged:?}")), "{line}");
            assert!(line.contains(" revision=1 "), "{line}");
            let rest = line.replace(&format!("{forged:?}"), "");
            assert!(!rest.contains("revision=999"), "{line}");
            assert!(!rest.contains("actor=token:x"), "{line}");
        }
    }
}
