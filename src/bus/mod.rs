//! The bus: how instances tell each other that a tenant changed.
//!
//! A message only says "tenant T reached revision R"; it is never trusted as policy. [`Bus`]
//! is the publishing handle the rest of the server uses; [`redis`] carries messages over Redis
//! pub/sub, to the node that [`endpoint`] finds where [`target`] (REDIS_URL) says, and
//! without Redis the bus is disabled and publishing does nothing. What the
//! subscriber hears goes into an inbox as [`Heard`], for whoever reacts to it
//! ([`crate::refresh`]): nothing here knows what a receiver does with a message.

mod endpoint;
pub mod redis;
pub mod target;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::policy::{NameError, Operation, TenantName};
use crate::stats::{Stats, bump};

/// Messages larger than this are dropped unread: a real one is a few hundred bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// What the subscriber has heard and the reacting side not yet taken. Reacting takes
/// microseconds (a reload runs in a task of its own), so a full inbox means a flood: the
/// subscriber then waits, and Redis buffers or, past its limit, drops the connection, after
/// which the resubscription's resync catches up.
const INBOX_CAPACITY: usize = 4096;

/// Messages waiting to be published. A write never waits for Redis: when this is full the
/// message is dropped and counted, and the periodic sweep makes up for it.
const OUTBOX_CAPACITY: usize = 4096;

/// A message as it travels on the channel: a `tenant-refresh` message ("tenant T reached
/// revision R"), or, for a key operation ([`Operation::is_key_operation`]), word that the API
/// keys changed, with neither tenant nor revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Received: `None` for an operation a later release added. Its message still says that
    /// a tenant moved, which is all a receiver acts on, so that instances of two releases
    /// side by side (a rolling upgrade) keep hearing each other.
    #[serde(serialize_with = "announced", deserialize_with = "received")]
    pub operation: Option<Operation>,
    pub server_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The instance that published it, unique to each start ([`Identity`]): instances that
    /// share a `serverId` (the `server-$PORT` default on several hosts) still tell their own
    /// messages from each other's. Absent from the messages of earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// Who this instance is on the bus: its SERVER_ID, which operators choose, and an instance
/// id drawn at each start, which tells apart two instances given the same SERVER_ID (or two
/// servers in one process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub server_id: String,
    /// 16 hex digits.
    pub instance_id: String,
}

impl Identity {
    /// The identity of an instance starting now as `server_id`.
    pub fn new(server_id: String) -> Self {
        let mut bytes = [0u8; 8];
        // Without randomness the clock and the process still tell two instances apart, if
        // not two in one process started in the same nanosecond.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |t| t.as_nanos() as u64);
            bytes = (nanos ^ u64::from(std::process::id())).to_le_bytes();
        }
        Self {
            server_id,
            instance_id: hex::encode(bytes),
        }
    }
}

/// Who sent a message, as the receiving instance sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This process.
    Own,
    /// Another process with this instance's SERVER_ID: a misconfiguration to report, and a
    /// message to act on all the same.
    SharedServerId,
    /// Another instance.
    Other,
}

/// A received message that made sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The tenant reached the revision in the store.
    Tenant {
        tenant: TenantName,
        from: Sender,
        revision: u64,
    },
    /// A key was created or revoked.
    Keys { from: Sender },
}

/// What the subscriber hands on, in the order it heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A message that made sense.
    Notice(Notice),
    /// Subscribed (again): whatever was published while not subscribed is lost, and only the
    /// store can say what changed meanwhile.
    Subscribed,
}

/// The receiving end of what the subscriber hears.
pub type Inbox = mpsc::Receiver<Heard>;

/// An inbox, and the sending end the subscriber takes.
pub fn inbox() -> (mpsc::Sender<Heard>, Inbox) {
    mpsc::channel(INBOX_CAPACITY)
}

/// The instance that published a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub server_id: String,
    pub instance_id: Option<String>,
}

impl Notice {
    pub fn sender(&self) -> &Sender {
        match self {
            Notice::Tenant { from, .. } | Notice::Keys { from } => from,
        }
    }
}

impl Sender {
    /// Who this is, to the instance `me`.
    pub fn origin(&self, me: &Identity) -> Origin {
        match &self.instance_id {
            Some(id) if *id == me.instance_id => Origin::Own,
            Some(_) if self.server_id == me.server_id => Origin::SharedServerId,
            // An earlier release names no instance: its server ID is all there is to go by.
            None if self.server_id == me.server_id => Origin::Own,
            _ => Origin::Other,
        }
    }
}

impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.instance_id {
            Some(id) => write!(f, "{} ({id})", self.server_id),
            None => f.write_str(&self.server_id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message of {0} bytes is larger than {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("message is not a tenant-refresh message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("message names an invalid tenant: {0}")]
    Tenant(#[from] NameError),
    #[error("a tenant message must carry a tenant and a revision")]
    MissingTenant,
    #[error("a {0} message must carry neither tenant nor revision")]
    UnexpectedTenant(Operation),
}

impl Message {
    pub fn new(tenant: &TenantName, operation: Operation, from: &Identity, revision: u64) -> Self {
        Self {
            tenant: Some(tenant.to_string()),
            operation: Some(operation),
            server_id: from.server_id.clone(),
            timestamp: OffsetDateTime::now_utc(),
            revision: Some(revision),
            instance_id: Some(from.instance_id.clone()),
        }
    }

    /// Word that a key was created or revoked (`operation` is a key operation).
    pub fn keys_changed(operation: Operation, from: &Identity) -> Self {
        debug_assert!(operation.is_key_operation());
        Self {
            tenant: None,
            operation: Some(operation),
            server_id: from.server_id.clone(),
            timestamp: OffsetDateTime::now_utc(),
            revision: None,
            instance_id: Some(from.instance_id.clone()),
        }
    }

    /// Parses a payload from the channel, which anyone with access to Redis can write to.
    pub fn parse(payload: &[u8]) -> Result<Notice, MessageError> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge(payload.len()));
        }
        let message: Message = serde_json::from_slice(payload)?;
        let from = Sender {
            server_id: message.server_id,
            instance_id: message.instance_id,
        };
        if let Some(operation) = message.operation.filter(|o| o.is_key_operation()) {
            if message.tenant.is_some() || message.revision.is_some() {
                return Err(MessageError::UnexpectedTenant(operation));
            }
            return Ok(Notice::Keys { from });
        }
        let (Some(tenant), Some(revision)) = (&message.tenant, message.revision) else {
            return Err(MessageError::MissingTenant);
        };
        Ok(Notice::Tenant {
            tenant: TenantName::parse("tenant", tenant)?,
            from,
            revision,
        })
    }
}

fn announced<S: serde::Serializer>(
    operation: &Option<Operation>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match operation {
        Some(operation) => operation.serialize(serializer),
        None => serializer.serialize_str("unknown"),
    }
}

/// An operation this release knows, or `None` for any other string: see [`Message::operation`].
fn received<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Operation>, D::Error> {
    let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    Ok(name.parse().ok())
}

/// What /health and /cache-stats say about the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BusState {
    Disabled = 0,
    Disconnected = 1,
    Connected = 2,
}

impl BusState {
    pub fn as_str(self) -> &'static str {
        match self {
            BusState::Disabled => "disabled",
            BusState::Disconnected => "disconnected",
            BusState::Connected => "connected",
        }
    }
}

/// The publishing side of the bus, cheap to clone.
#[derive(Clone)]
pub struct Bus {
    /// Who this instance is on the bus.
    identity: Arc<Identity>,
    outbox: Option<mpsc::Sender<Message>>,
    state: Arc<AtomicU8>,
    stats: Arc<Stats>,
}

/// The other ends of an enabled bus's handle, for the tasks that talk to Redis.
pub struct BusLink {
    pub outbox: mpsc::Receiver<Message>,
    pub state: Arc<AtomicU8>,
}

impl Bus {
    /// A bus that publishes nothing: one instance alone.
    pub fn disabled(identity: Identity, stats: Arc<Stats>) -> Self {
        Self {
            identity: Arc::new(identity),
            outbox: None,
            state: Arc::new(AtomicU8::new(BusState::Disabled as u8)),
            stats,
        }
    }

    /// A bus whose messages go out through the returned link.
    pub fn enabled(identity: Identity, stats: Arc<Stats>) -> (Self, BusLink) {
        let (sender, receiver) = mpsc::channel(OUTBOX_CAPACITY);
        let state = Arc::new(AtomicU8::new(BusState::Disconnected as u8));
        let bus = Self {
            identity: Arc::new(identity),
            outbox: Some(sender),
            state: state.clone(),
            stats,
        };
        (
            bus,
            BusLink {
                outbox: receiver,
                state,
            },
        )
    }

    /// Queues a message; never waits and never fails the caller.
    pub fn publish(&self, message: Message) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        if let Err(e) = outbox.try_send(message) {
            bump(&self.stats.publish_failures);
            tracing::warn!(error = %e, "bus outbox full; message dropped, the sweep will catch up");
        }
    }

    pub fn state(&self) -> BusState {
        load_state(&self.state)
    }

    /// Who this instance is on the bus.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

fn load_state(state: &AtomicU8) -> BusState {
    match state.load(Ordering::Relaxed) {
        2 => BusState::Connected,
        1 => BusState::Disconnected,
        _ => BusState::Disabled,
    }
}

fn store_state(state: &AtomicU8, value: BusState) {
    state.store(value as u8, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(server_id: &str) -> Identity {
        Identity::new(server_id.to_owned())
    }

    #[test]
    fn a_message_round_trips_through_json() {
        let tenant = TenantName::parse("tenant", "acme 🦀").unwrap();
        let from = me("server-3000");
        let message = Message::new(&tenant, Operation::AddPermission, &from, 7);
        let json = serde_json::to_vec(&message).unwrap();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.contains("\"serverId\":\"server-3000\""), "{text}");
        assert_eq!(
            Message::parse(&json).unwrap(),
            Notice::Tenant {
                tenant,
                from: Sender {
                    server_id: "server-3000".into(),
                    instance_id: Some(from.instance_id),
                },
                revision: 7
            }
        );
    }

    #[test]
    fn own_messages_are_told_by_instance_and_a_shared_server_id_is_noticed() {
        let tenant = TenantName::parse("tenant", "acme").unwrap();
        let receiver = me("server-3000");
        let sent = |server_id: &str, instance: Option<&str>| {
            let mut message = Message::new(&tenant, Operation::AddPermission, &me(server_id), 1);
            message.instance_id = instance.map(str::to_owned);
            Message::parse(&serde_json::to_vec(&message).unwrap())
                .unwrap()
                .sender()
                .origin(&receiver)
        };
        assert_eq!(
            sent("server-3000", Some(&receiver.instance_id)),
            Origin::Own
        );
        assert_eq!(
            sent("server-3000", Some("0123456789abcdef")),
            Origin::SharedServerId
        );
        assert_eq!(sent("server-3001", Some("0123456789abcdef")), Origin::Other);
        // Earlier releases send no instance id.
        assert_eq!(sent("server-3000", None), Origin::Own);
        assert_eq!(sent("server-3001", None), Origin::Other);
        assert_eq!(receiver.instance_id.len(), 16);
        // Two servers in one process, or started as one SERVER_ID, are two instances.
        assert_ne!(me("server-3000").instance_id, receiver.instance_id);
    }

    #[test]
    fn a_keys_message_carries_no_tenant_and_round_trips() {
        let from = me("server-3001");
        let message = Message::keys_changed(Operation::RevokeApiKey, &from);
        let json = serde_json::to_vec(&message).unwrap();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(
            !text.contains("tenant") && !text.contains("revision"),
            "{text}"
        );
        assert_eq!(
            Message::parse(&json).unwrap(),
            Notice::Keys {
                from: Sender {
                    server_id: "server-3001".into(),
                    instance_id: Some(from.instance_id),
                }
            }
        );
    }

    #[test]
    fn malformed_messages_are_rejected() {
        let too_large = vec![b' '; MAX_MESSAGE_BYTES + 1];
        for payload in [
            &b"not json"[..],
            b"{}",
            br#"{"tenant":"t","operation":"x","serverId":"s","timestamp":"yesterday","revision":1}"#,
            br#"{"tenant":"t","operation":"x","serverId":"s","timestamp":"2026-01-01T00:00:00Z","revision":-1}"#,
            br#"{"tenant":"","operation":"x","serverId":"s","timestamp":"2026-01-01T00:00:00Z","revision":1}"#,
            br#"{"tenant":"t*","operation":"x","serverId":"s","timestamp":"2026-01-01T00:00:00Z","revision":1}"#,
            br#"{"operation":"x","serverId":"s","timestamp":"2026-01-01T00:00:00Z","revision":1}"#,
            br#"{"tenant":"t","operation":"x","serverId":"s","timestamp":"2026-01-01T00:00:00Z"}"#,
            br#"{"tenant":"t","operation":"revoke-api-key","serverId":"s","timestamp":"2026-01-01T00:00:00Z"}"#,
            br#"{"operation":"create-api-key","serverId":"s","timestamp":"2026-01-01T00:00:00Z","revision":3}"#,
            &too_large,
        ] {
            assert!(Message::parse(payload).is_err(), "{:?}", String::from_utf8_lossy(payload));
        }
    }
}
