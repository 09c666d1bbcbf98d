//! Redis pub/sub: one task publishes the outbox, one task subscribes and sends what it hears,
//! parsed, into the inbox.
//!
//! Neither task ever gives up. The subscriber reconnects with capped exponential backoff,
//! pings to notice a connection that died without closing, and asks for a resync each time it
//! (re)subscribes, since messages sent while it was away are gone for good. Both find the node
//! to use through an [`Endpoint`] each time they connect: one node, the master that Redis
//! Sentinel names now, or a node of a Redis Cluster.
//!
//! The URL may carry a password: it is shown only through [`redact_url`], and the client's
//! errors only through [`scrub_passwords`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSub};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::endpoint::{Endpoint, connection_config};
use super::target::{Target, TargetError};
use super::{BusLink, BusState, Heard, Message, store_state};
use crate::policy::Operation;
use crate::redact::{redact_url, scrub_passwords};
use crate::stats::{Stats, bump};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A subscribed connection is silent when nobody writes; a ping this often tells a quiet
/// connection from a dead one.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long shutdown waits for queued messages to go out.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts the publisher and the subscriber, which sends what it hears into `inbox`.
pub fn spawn(
    stats: Arc<Stats>,
    link: BusLink,
    inbox: mpsc::Sender<Heard>,
    url: &str,
    channel: String,
    shutdown: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, TargetError> {
    let (publishing, subscriber) = Endpoint::pair(&Target::parse(url)?)?;
    // Nothing connects yet: Redis being down at start-up must not stop the server.
    let publisher = Publisher {
        endpoint: publishing,
        connection: None,
        url: url.to_owned(),
    };
    tracing::info!(url = %redact_url(url), %channel, "bus: Redis");
    Ok(vec![
        tokio::spawn(publish(
            stats.clone(),
            publisher,
            channel.clone(),
            link.outbox,
            shutdown.clone(),
        )),
        tokio::spawn(subscribe(
            stats,
            inbox,
            subscriber,
            channel,
            url.to_owned(),
            link.state,
            shutdown,
        )),
    ])
}

/// The publishing side: a connection made when first needed, and again after a failure.
///
/// It does not check the node's ROLE from time to time. A master that Sentinel demotes has
/// its clients killed by Sentinel (`CLIENT KILL TYPE normal` and `pubsub`), and one that
/// crashed closes them, so the next PUBLISH fails and goes again to the master named then.
/// Until that kill, an old master still answers "master" to ROLE: Sentinel demotes a live old
/// master some seconds after promoting the new one, or, cut off from it, only once it can
/// reach it again. Asking the sentinels instead would move the publisher early, away from the
/// subscribers, which stay on the old master until the same kill moves them all at once. What
/// an instance that resubscribes in between misses, the sweep makes up for.
struct Publisher {
    endpoint: Endpoint,
    connection: Option<MultiplexedConnection>,
    /// For scrubbing the password out of the client's errors.
    url: String,
}

impl Publisher {
    /// Publishes `payload` on `channel`; says how many subscribers received it.
    ///
    /// A PUBLISH that fails on an open connection goes once more through a new connection to
    /// the node the endpoint names now: after a failover the old node is gone or a replica,
    /// which accepts PUBLISH but delivers only to its own subscribers. A retry whose first
    /// reply alone was lost delivers twice, which receivers shrug off (they hold that
    /// revision). A message that finds no node to connect to is not tried again: the publisher
    /// would hold up every message behind it, and the peers' resync when they resubscribe, or
    /// their sweep, makes up for it.
    async fn publish(&mut self, channel: &str, payload: &str) -> redis::RedisResult<i64> {
        if let Some(connection) = &mut self.connection {
            match publish_on(connection, channel, payload).await {
                Ok(receivers) => return Ok(receivers),
                Err(e) => {
                    self.connection = None;
                    tracing::info!(error = %scrub_passwords(&e.to_string(), &self.url),
                        "publish failed; publishing again through a new connection");
                }
            }
        }
        let client = self.endpoint.client().await?;
        let connection = client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await?;
        let connection = self.connection.insert(connection);
        let sent = publish_on(connection, channel, payload).await;
        if sent.is_err() {
            self.connection = None;
        }
        sent
    }
}

async fn publish_on(
    connection: &mut MultiplexedConnection,
    channel: &str,
    payload: &str,
) -> redis::RedisResult<i64> {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(connection)
        .await
}

async fn publish(
    stats: Arc<Stats>,
    mut publisher: Publisher,
    channel: String,
    mut outbox: tokio::sync::mpsc::Receiver<Message>,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = outbox.recv() => message,
            _ = shutdown.cancelled() => break,
        };
        let Some(message) = message else { return };
        send(&stats, &mut publisher, &channel, message).await;
    }
    // Let what is already queued go out, briefly: peers would otherwise wait for a sweep.
    outbox.close();
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
        while let Some(message) = outbox.recv().await {
            send(&stats, &mut publisher, &channel, message).await;
        }
    })
    .await;
}

async fn send(stats: &Stats, publisher: &mut Publisher, channel: &str, message: Message) {
    let payload = match serde_json::to_string(&message) {
        Ok(payload) => payload,
        Err(e) => {
            bump(&stats.publish_failures);
            tracing::error!(error = %e, "cannot encode bus message");
            return;
        }
    };
    match publisher.publish(channel, &payload).await {
        Ok(receivers) => {
            bump(&stats.messages_published);
            tracing::info!(
                tenant = message.tenant.as_deref(),
                revision = message.revision,
                operation = message.operation.map(Operation::as_str),
                receivers,
                "published"
            );
        }
        Err(e) => {
            bump(&stats.publish_failures);
            tracing::warn!(tenant = message.tenant.as_deref(), revision = message.revision,
                error = %scrub_passwords(&e.to_string(), &publisher.url),
                "publish failed; peers will catch up at their next sweep");
        }
    }
}

async fn subscribe(
    stats: Arc<Stats>,
    inbox: mpsc::Sender<Heard>,
    mut endpoint: Endpoint,
    channel: String,
    url: String,
    state: Arc<std::sync::atomic::AtomicU8>,
    shutdown: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let mut subscribed_before = false;
    while !shutdown.is_cancelled() {
        match connect(&mut endpoint, &channel).await {
            Ok((pubsub, node)) => {
                store_state(&state, BusState::Connected);
                if subscribed_before {
                    bump(&stats.reconnects);
                    tracing::info!(%channel, %node, "bus reconnected");
                } else {
                    tracing::info!(%channel, %node, "bus subscribed");
                }
                subscribed_before = true;
                backoff = MIN_BACKOFF;
                // Subscribed first, resync second: a change committed in between is then
                // either in the store's answer or in a message still to come.
                if inbox.send(Heard::Subscribed).await.is_err() {
                    break;
                }
                let reason = listen(&stats, &inbox, pubsub, &shutdown).await;
                store_state(&state, BusState::Disconnected);
                if shutdown.is_cancelled() {
                    break;
                }
                tracing::warn!(%channel, %node, reason, "bus connection lost");
            }
            Err(e) => {
                tracing::warn!(%channel, error = %scrub_passwords(&e.to_string(), &url),
                    retry_in_ms = backoff.as_millis() as u64, "cannot subscribe to Redis");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::info!("bus subscriber stopped");
}

/// A subscription on the node the endpoint names now, and that node's address.
async fn connect(endpoint: &mut Endpoint, channel: &str) -> redis::RedisResult<(PubSub, String)> {
    let client = endpoint.client().await?;
    let node = client.get_connection_info().addr().to_string();
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok((pubsub, node))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out connecting to Redis",
            )))
        })
}

/// Sends every message that makes sense into the inbox until the connection fails; says why
/// it stopped.
async fn listen(
    stats: &Stats,
    inbox: &mpsc::Sender<Heard>,
    pubsub: PubSub,
    shutdown: &CancellationToken,
) -> &'static str {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => {
                    if let Some(notice) = parse(stats, message.get_payload_bytes()) {
                        // Waits while the inbox is full: see INBOX_CAPACITY.
                        if inbox.send(Heard::Notice(notice)).await.is_err() {
                            return "shutdown";
                        }
                    }
                }
                None => return "connection closed",
            },
            _ = ping.tick() => {
                let pong = tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return "ping failed";
                }
            }
            _ = shutdown.cancelled() => return "shutdown",
        }
    }
}

/// A payload as a notice; a malformed one is counted, logged and dropped.
fn parse(stats: &Stats, payload: &[u8]) -> Option<super::Notice> {
    bump(&stats.messages_received);
    match Message::parse(payload) {
        Ok(notice) => Some(notice),
        Err(e) => {
            bump(&stats.malformed_messages);
            tracing::warn!(error = %e, bytes = payload.len(), "dropping malformed bus message");
            None
        }
    }
}
