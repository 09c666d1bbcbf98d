//! The watch streams' figures: how soon a write on one instance reaches a watcher on another,
//! and idle watchers held open while the rest of the suite measures what they cost.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

type Events = futures_util::stream::BoxStream<'static, eventsource_stream::Event>;

/// A client without a total timeout: a watch stream lasts as long as it is read.
fn streaming_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Opens a watch stream of `tenant` on `base`, after its current revision; returns the
/// events and that revision.
async fn open(client: &reqwest::Client, base: &str, tenant: &str) -> (Events, u64) {
    // From a listing, as a client does: the seeded tenants have no changelog to replay.
    let page: Value = client
        .get(format!("{base}/groups"))
        .query(&[("tenant", tenant), ("limit", "1")])
        .send()
        .await
        .expect("/groups")
        .json()
        .await
        .expect("a JSON answer");
    let revision = page["revision"]
        .as_u64()
        .unwrap_or_else(|| panic!("no revision: {page}"));
    let response = client
        .get(format!("{base}/watch"))
        .query(&[("tenant", tenant), ("after", &revision.to_string())])
        .send()
        .await
        .expect("/watch");
    assert!(response.status().is_success(), "{}", response.status());
    let events = response
        .bytes_stream()
        .eventsource()
        .map(|event| event.expect("a well-formed stream"));
    (events.boxed(), revision)
}

/// `trials` writes on `writer`, each timed from its answer to the arrival of its event on a
/// watcher of `reader`.
pub async fn propagation(writer: &str, reader: &str, tenant: &str, trials: usize) {
    let client = streaming_client();
    let (mut events, _) = open(&client, reader, tenant).await;
    let user = "watch-probe";
    let group = crate::dataset::group(1);
    let mut samples = Vec::with_capacity(trials);
    let mut lost = 0;
    let mut assigned = false;
    for _ in 0..trials {
        let path = if assigned {
            "unassign-user"
        } else {
            "assign-user"
        };
        assigned = !assigned;
        let answer: Value = client
            .post(format!("{writer}/{path}"))
            .json(&json!({"tenant": tenant, "user": user, "group": group}))
            .send()
            .await
            .expect("write")
            .json()
            .await
            .expect("a JSON answer");
        let written = Instant::now();
        let revision = answer["revision"].as_u64().expect("a revision");
        let arrived = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(event) = events.next().await {
                if event.event == "change" && event.id.parse() == Ok(revision) {
                    return true;
                }
            }
            false
        })
        .await;
        match arrived {
            Ok(true) => samples.push(written.elapsed()),
            _ => lost += 1,
        }
    }
    crate::print_latencies("watch_propagation", tenant, trials, samples, lost);
}

/// Holds `count` watch streams of `tenant` open on `target` for `seconds`, reading what
/// comes; prints a line once they are all open.
pub async fn idle(target: &str, tenant: &str, count: usize, seconds: u64) {
    let client = streaming_client();
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        streams.push(open(&client, target, tenant).await.0);
    }
    println!("idle_watchers open={count}");
    let readers = streams
        .into_iter()
        .map(|mut events| tokio::spawn(async move { while events.next().await.is_some() {} }));
    let readers: Vec<_> = readers.collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    for reader in readers {
        reader.abort();
    }
}
