//! Accepting connections and serving HTTP/1.1 and HTTP/2 on them, within limits that no client
//! can push past: a cap on open connections, a time a connection may stay without a request
//! in flight (idle, or sending a head too slowly), and a cap on a head's size.
//! Everything here happens before authentication, so none of it may grow with what a client
//! sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// The largest request head (request line and headers) accepted; a larger one is answered
/// `431`. Four names of 256 bytes, percent-encoded three times over, fit with room to spare.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The first and the longest pause after an `accept` error such as running out of file
/// descriptors, which would otherwise fail again at once, in a busy loop.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The limits every connection is served within.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; past it the listener waits for one to close before it
    /// accepts the next (which waits in the kernel's backlog meanwhile).
    pub max_connections: usize,
    /// How long a connection may go without a request in flight, from when it opened or from
    /// its last answer, before it is closed: idle, or sending its next head too slowly.
    pub idle_timeout: Duration,
}

/// Serves `router` on `listener` until `draining` is cancelled, then stops accepting and asks
/// every connection to close once its request in flight is answered; an idle one closes at
/// once. Returns the tracker of the connections still open, to wait on.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    draining: CancellationToken,
) -> TaskTracker {
    let connections = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff: Option<Duration> = None;
    loop {
        let permit = tokio::select! {
            biased;
            _ = draining.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = draining.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                if backoff.take().is_some() {
                    tracing::info!("accepting connections again");
                }
                connections.spawn(connection(
                    stream,
                    router.clone(),
                    limits,
                    draining.clone(),
                    permit,
                ));
            }
            // The peer gave up before it was accepted: nothing is wrong here.
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                let pause = backoff.map_or(ACCEPT_BACKOFF_MIN, |b| (b * 2).min(ACCEPT_BACKOFF_MAX));
                if backoff.is_none() {
                    tracing::warn!(error = %e, "cannot accept connections; retrying with backoff");
                }
                backoff = Some(pause);
                tokio::select! {
                    _ = draining.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    connections.close();
    connections
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    )
}

/// What a connection is doing, as its requests begin and end: enough to tell when it has
/// been idle for the idle timeout, whatever its protocol.
struct Activity {
    opened: Instant,
    /// Whether any request has begun.
    began: AtomicBool,
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `opened`.
    last_ended_ms: AtomicU64,
}

/// A request in flight on its connection, until dropped (answered, or abandoned).
struct InFlight(Arc<Activity>);

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.began.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// How much longer the connection may stay idle before it is closed: zero once it has
    /// been idle for `timeout`, the whole timeout while a request is in flight.
    fn idle_left(&self, timeout: Duration) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return timeout;
        }
        let ended = Duration::from_millis(self.last_ended_ms.load(Ordering::Relaxed));
        let idle = self.opened.elapsed().saturating_sub(ended);
        timeout.saturating_sub(idle)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let at = self.0.opened.elapsed().as_millis() as u64;
        self.0.last_ended_ms.store(at, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection, holding its permit until it closes.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    draining: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    // Responses are written whole; waiting to coalesce them only adds latency.
    let _ = stream.set_nodelay(true);
    // hyper times an HTTP/1 request head (and the idle wait before it) only once it knows
    // the protocol, which waits for the client's first bytes without any timer; and nothing
    // in hyper closes an HTTP/2 connection that stays idle while it answers pings. So every
    // connection is also timed here: idle, with no request in flight, for the idle timeout,
    // and it is closed.
    let activity = Arc::new(Activity {
        opened: Instant::now(),
        began: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        last_ended_ms: AtomicU64::new(0),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = activity.begin();
            let answer = router.clone().call(request);
            async move {
                let response = answer.await;
                drop(in_flight);
                response
            }
        })
    };
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        // A peer that stopped answering pings is gone: its connection closes.
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.idle_timeout);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = &mut idle, if !closing => {
                let left = activity.idle_left(limits.idle_timeout);
                if left.is_zero() {
                    // Still finding out its protocol: nothing to close gracefully.
                    if !activity.began.load(Ordering::Relaxed) {
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                } else {
                    idle.as_mut().reset(tokio::time::Instant::now() + left);
                }
            }
            _ = draining.cancelled(), if !closing => {
                if !activity.began.load(Ordering::Relaxed) {
                    return;
                }
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}
