//! Accepting connections and serving HTTP/1.1 and HTTP/2 on them, within limits that no client
//! can push past: a cap on open connections, a time within which each request's head must
//! arrive whole (which also closes idle keep-alive connections), and a cap on a head's size.
//! Everything here happens before authentication, so none of it may grow with what a client
//! sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    /// How long a request's head may take to arrive whole, counted from when the connection
    /// opened or from the previous response: a connection that is idle, or sends its head
    /// too slowly, for this long is closed.
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
    // hyper times a request head only once it knows the protocol, and finding that out waits
    // for the client's first bytes without any timer: until a first request begins, this
    // connection is timed here instead.
    let began = Arc::new(AtomicBool::new(false));
    let service = {
        let began = began.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            began.store(true, Ordering::Relaxed);
            router.clone().call(request)
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
    let first_request = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(first_request);
    let mut waiting_for_first = true;
    let mut closing = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = &mut first_request, if waiting_for_first => {
                if !began.load(Ordering::Relaxed) {
                    return;
                }
                waiting_for_first = false;
            }
            _ = draining.cancelled(), if !closing => {
                if !began.load(Ordering::Relaxed) {
                    return;
                }
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}
