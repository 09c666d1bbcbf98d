//! `GET /watch`: a tenant's changes as a live stream, as Server-Sent Events or over a
//! WebSocket. What is sent, and in what order, is [`crate::feed`]'s; this is the wire.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;

use super::auth::Caller;
use super::changes::ChangeBody;
use super::error::ApiError;
use super::extract::QueryParams;
use super::responses::ChangesExpired;
use super::state::AppState;
use crate::feed::{self, Ending, Sent, Subject, Watch};
use crate::keys::{ALL_TENANTS, Grant, Role, Scope};

/// How often an idle stream carries something (an SSE comment, a WebSocket ping), so that
/// proxies do not close it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Changes waiting for a client: a client further behind than this is cut off with a reset
/// rather than buffered for without limit.
const BUFFERED: usize = 64;

/// The watch streams of one instance: how many may be open, and what ends them at shutdown.
pub struct Watching {
    slots: Arc<Semaphore>,
    limit: usize,
    stop: CancellationToken,
}

impl Watching {
    /// At most `limit` streams at once; every one ends when `stop` is cancelled.
    pub fn new(limit: usize, stop: CancellationToken) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            stop,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// A tenant, or `*` for every tenant's changes (an admin credential for every tenant).
    tenant: String,
    /// The changes after this revision come first; 0 (every change kept) if absent. An SSE
    /// client's `Last-Event-ID` takes its place when it reconnects. Not for `tenant=*`.
    #[serde(default)]
    after: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/watch",
    tag = "reads",
    summary = "a tenant's changes as they happen, as Server-Sent Events or over a WebSocket",
    params(
        WatchQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "SSE only: resume after this revision (the `id` of the last event received)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A stream of `text/event-stream` events: `change` (id: the revision; data: a change, as in /changes, with `tenant` in a `tenant=*` stream, whose events have no id), then, if the stream is cut off, `reset` (data: `{\"after\": N}`, null for `tenant=*`) or `expired` (data: `{\"tenant\": T, \"oldest_revision\": N}`)", content_type = "text/event-stream", body = String),
        (status = 101, description = "A WebSocket (the request was an upgrade): one text message per change, as in /changes (with `tenant` for `tenant=*`); a final `{\"event\": \"reset\", \"after\": N}` or `{\"event\": \"expired\", \"tenant\": T, \"oldest_revision\": N}` before the close when the stream is cut off"),
        (status = 410, response = ChangesExpired),
    )
)]
pub async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<WatchQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let every = query.tenant == ALL_TENANTS;
    let tenant = if every {
        every_tenant(&caller)?;
        None
    } else {
        Some(caller.tenant("tenant", &query.tenant)?)
    };
    let (mut parts, _) = request.into_parts();
    let upgrade = if wants_websocket(&parts.headers) {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|rejection| ApiError::InvalidRequest(rejection.body_text()))?;
        Some(upgrade)
    } else {
        None
    };
    let resumed = last_event_id(&parts.headers)?.filter(|_| upgrade.is_none());
    let subject = match tenant {
        Some(tenant) => {
            let after = resumed.or(query.after).unwrap_or(0);
            // History that retention deleted is refused before the stream starts.
            state.app.changes(&tenant, after, 1, None).await?;
            Subject::Tenant { tenant, after }
        }
        None if query.after.is_some() || resumed.is_some() => {
            return Err(ApiError::InvalidRequest(
                "a watch of every tenant starts with the changes made after it opens: it takes \
                 no `after` or `Last-Event-ID`"
                    .into(),
            ));
        }
        None => Subject::Every,
    };
    let slot = state
        .watching
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyWatchers(state.watching.limit))?;

    let (changes, received) = mpsc::channel(BUFFERED);
    let (ended, ending) = oneshot::channel();
    let watch = Watch {
        subject,
        allowed: still_allowed(&state, caller.grant()),
    };
    let app = state.app.clone();
    let stop = state.watching.stop.clone();
    tokio::spawn(async move {
        metrics::gauge!("rbac_watch_streams").increment(1);
        let ending = feed::follow(app, watch, changes, stop).await;
        metrics::gauge!("rbac_watch_streams").decrement(1);
        drop(slot);
        let _ = ended.send(ending);
    });
    Ok(match upgrade {
        Some(upgrade) => upgrade
            .on_upgrade(move |socket| websocket(socket, received, ending, every))
            .into_response(),
        None => Sse::new(events(received, ending, every))
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response(),
    })
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// The revision an SSE client that reconnects resumes after.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::InvalidRequest("`Last-Event-ID` must be a revision: a whole number".into())
        })
}

/// Whether the credential still allows the watch: an API key until it is revoked; a global
/// token, or none where reads are open, for as long as the process runs.
fn still_allowed(state: &AppState, grant: Option<&Grant>) -> Box<dyn Fn() -> bool + Send + Sync> {
    match grant.and_then(Grant::key_id) {
        Some(id) => {
            let keys = state.app.keys.clone();
            Box::new(move || keys.holds(&id))
        }
        None => Box::new(|| true),
    }
}

/// Only an admin credential for every tenant (or none, where reads are open) sees every
/// tenant's changes.
fn every_tenant(caller: &Caller) -> Result<(), ApiError> {
    match caller.grant() {
        Some(grant) if grant.role != Role::Admin || grant.scope != Scope::All => {
            Err(ApiError::Forbidden(
                "a watch of every tenant (`tenant=*`) needs an admin credential for every tenant"
                    .into(),
            ))
        }
        _ => Ok(()),
    }
}

/// A change as JSON; naming its tenant in a stream of every tenant's.
fn change_json(sent: Sent, every: bool) -> String {
    let mut body = ChangeBody::new(sent.change).in_stream(sent.ends_revision);
    if every {
        body = body.of(&sent.tenant);
    }
    serde_json::to_string(&body).unwrap_or_default()
}

/// What the client is told when the stream is cut off, if anything: the event's name, and
/// what it carries.
fn last_word(ending: Ending) -> Option<(&'static str, serde_json::Value)> {
    match ending {
        Ending::Overrun { after } => Some(("reset", json!({"after": after}))),
        Ending::Expired { tenant, oldest } => Some((
            "expired",
            json!({"tenant": tenant.as_str(), "oldest_revision": oldest}),
        )),
        Ending::Revoked | Ending::Closed => None,
    }
}

/// The SSE events: each change as it comes, then what ended the watch, if the client must
/// know. A change of one tenant's stream has its revision for id; every tenant's changes
/// have no id, since there is no one revision to resume after.
fn events(
    received: mpsc::Receiver<Box<Sent>>,
    ending: oneshot::Receiver<Ending>,
    every: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(
        (received, Some(ending)),
        move |(mut received, ending)| async move {
            if let Some(sent) = received.recv().await {
                let mut event = Event::default().event("change");
                // Only the last change of a revision carries it, so that a client cut off
                // inside a write of many resumes before that write, not after it.
                if !every && sent.ends_revision {
                    event = event.id(sent.change.revision.to_string());
                }
                let event = event.data(change_json(*sent, every));
                return Some((Ok(event), (received, ending)));
            }
            let (name, data) = last_word(ending?.await.ok()?)?;
            let last = Event::default().event(name).data(data.to_string());
            Some((Ok(last), (received, None)))
        },
    )
}

/// The WebSocket session: each change as a text message, pings to keep it open, and a
/// close that says why the watch ended.
async fn websocket(
    mut socket: WebSocket,
    mut received: mpsc::Receiver<Box<Sent>>,
    ending: oneshot::Receiver<Ending>,
    every: bool,
) {
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        tokio::select! {
            sent = received.recv() => match sent {
                Some(sent) => {
                    let text = change_json(*sent, every);
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // The stream goes one way; what the client sends is not read.
                Some(Ok(_)) => {}
            },
            _ = keep_alive.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
    let ending = ending.await.unwrap_or(Ending::Closed);
    let (code, reason) = match &ending {
        Ending::Overrun { .. } => (
            close_code::AGAIN,
            "the client did not keep up; resume after the revision given",
        ),
        Ending::Expired { .. } => (
            close_code::POLICY,
            "changes to send were deleted by retention",
        ),
        Ending::Revoked => (close_code::POLICY, "the credential was revoked"),
        Ending::Closed => (close_code::AWAY, "the server is shutting down"),
    };
    if let Some((name, mut data)) = last_word(ending) {
        data["event"] = name.into();
        let _ = socket.send(Message::Text(data.to_string().into())).await;
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}
