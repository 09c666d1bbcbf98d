//! What happens around every request, in one layer: an id (the client's `x-request-id` if it
//! sent one of a sane length, else a new one; returned either way), a tracing span carrying the id,
//! route and tenant, a deadline, and the latency histogram of /metrics.
//!
//! One hand-written layer rather than a stack of tower-http ones: every layer costs a share of
//! check-access throughput. For the same reason two things wait until a request does not
//! finish at its first poll, which a check of a cached tenant always does: the deadline's
//! timer, and, for /check-access only, the span. A span formats its fields when it is made,
//! and that cost a seventh of check throughput; a check that finishes at once logs nothing,
//! and one that waits (its tenant loading) gets its span from then on.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tracing::Span;

use super::error::ApiError;
use super::metrics::RouteLabels;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route whose span is made only once a request waits.
const HOT_ROUTE: &str = "/check-access";

/// The longest client-given request id kept; a longer one is replaced. Any shorter one is
/// returned as sent (AuthZEN requires the same identifier back), and logged escaped when it
/// holds anything but visible ASCII.
const MAX_REQUEST_ID_BYTES: usize = 1024;

#[derive(Clone, Copy)]
pub struct RequestLayer {
    /// How long a request may take before it is answered `503` and its handler dropped.
    pub timeout: Duration,
    /// Whether to feed the /metrics latency histogram.
    pub measure: bool,
    /// The routes, as requests are labelled.
    pub routes: &'static RouteLabels,
}

impl<S> tower::Layer<S> for RequestLayer {
    type Service = PerRequest<S>;

    fn layer(&self, inner: S) -> PerRequest<S> {
        PerRequest {
            inner,
            settings: *self,
        }
    }
}

#[derive(Clone)]
pub struct PerRequest<S> {
    inner: S,
    settings: RequestLayer,
}

impl<S, B> tower::Service<Request<B>> for PerRequest<S>
where
    S: tower::Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Handled<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let matched = request.extensions().get::<MatchedPath>();
        let route = self.settings.routes.index(matched.map(MatchedPath::as_str));
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .filter(|value| usable_id(value.as_bytes()))
            .cloned()
            .unwrap_or_else(new_id);
        let method = request.method().clone();
        let (span, inner, committing) = if self.settings.routes.name(route) == HOT_ROUTE {
            (None, self.inner.call(request), None)
        } else {
            let span = request_span(&id, &method, self.settings.routes.name(route));
            // Only a POST or a PUT writes.
            let writes = method == Method::POST || method == Method::PUT;
            let committing = writes.then(|| Arc::new(AtomicBool::new(false)));
            let inner = match &committing {
                Some(flag) => COMMITTING
                    .sync_scope(flag.clone(), || span.in_scope(|| self.inner.call(request))),
                None => span.in_scope(|| self.inner.call(request)),
            };
            (Some(span), inner, committing)
        };
        Handled {
            inner,
            span,
            method,
            id,
            route,
            started,
            settings: self.settings,
            deadline: None,
            committing,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Handled<F> {
        #[pin]
        inner: F,
        // None until made, for the hot route.
        span: Option<Span>,
        method: Method,
        id: HeaderValue,
        route: usize,
        started: Instant,
        settings: RequestLayer,
        deadline: Option<Pin<Box<Sleep>>>,
        // Set once the handler has handed a write to the store (None for the hot route and
        // for reads, which write nothing).
        committing: Option<Arc<AtomicBool>>,
    }
}

impl<F, E> Future for Handled<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = {
            let _entered = this.span.as_ref().map(Span::enter);
            // A panic answers this request 500 rather than dropping its connection. Not polled
            // again after one: the answer is ready.
            let inner = this.inner.as_mut();
            let poll = || match this.committing {
                Some(flag) => COMMITTING.sync_scope(flag.clone(), || inner.poll(cx)),
                None => inner.poll(cx),
            };
            match std::panic::catch_unwind(AssertUnwindSafe(poll)) {
                Ok(polled) => polled,
                Err(panic) => {
                    tracing::error!(
                        request_id = %Logged(this.id),
                        panic = panic_message(panic.as_ref()),
                        "request handler panicked"
                    );
                    Poll::Ready(Ok(ApiError::Internal.into_response()))
                }
            }
        };
        if polled.is_pending() && this.span.is_none() {
            *this.span = Some(request_span(
                this.id,
                this.method,
                this.settings.routes.name(*this.route),
            ));
        }
        let _entered = this.span.as_ref().map(Span::enter);
        let result = match polled {
            Poll::Ready(result) => result,
            Poll::Pending => {
                let deadline = this.deadline.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until(
                        (*this.started + this.settings.timeout).into(),
                    ))
                });
                if deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if this
                    .committing
                    .as_ref()
                    .is_some_and(|flag| flag.load(Ordering::Relaxed))
                {
                    // Answering now would say the write failed while it may yet commit; the
                    // store bounds it instead.
                    return Poll::Pending;
                }
                tracing::warn!(
                    timeout_secs = this.settings.timeout.as_secs(),
                    "request timed out; its handler is dropped"
                );
                Ok(ApiError::TimedOut(this.settings.timeout).into_response())
            }
        };
        let result = result.map(|mut response| {
            let elapsed = this.started.elapsed();
            if this.settings.measure {
                this.settings
                    .routes
                    .record(*this.route, response.status(), elapsed);
            }
            tracing::debug!(
                status = response.status().as_u16(),
                micros = elapsed.as_micros() as u64,
                "answered"
            );
            // Moved, not cloned: the future is done with it.
            let id = std::mem::replace(this.id, HeaderValue::from_static(""));
            response.headers_mut().insert(REQUEST_ID, id);
            response
        });
        Poll::Ready(result)
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

fn request_span(id: &HeaderValue, method: &Method, route: &str) -> Span {
    tracing::info_span!(
        "request",
        id = %Logged(id),
        method = %method,
        route,
        tenant = tracing::field::Empty,
    )
}

/// Whether a client's request id is kept: any that is not empty and not too long. What a
/// header value may hold (no line breaks) is the HTTP parser's to enforce.
fn usable_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&value.len())
}

/// A request id as a log line shows it: as is when it is visible ASCII, else quoted and
/// escaped, so that a client's id with spaces or other bytes cannot pass for other fields.
struct Logged<'a>(&'a HeaderValue);

impl std::fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0.as_bytes();
        match self.0.to_str() {
            Ok(id) if bytes.iter().all(|b| (0x21..=0x7e).contains(b)) => f.write_str(id),
            _ => write!(f, "{:?}", String::from_utf8_lossy(bytes)),
        }
    }
}

/// A new request id: 16 hex digits from a per-thread sequence that starts at a random point,
/// unique across threads and instances without any shared counter.
fn new_id() -> HeaderValue {
    thread_local! {
        static NEXT: std::cell::Cell<u64> = std::cell::Cell::new({
            let mut seed = [0u8; 8];
            // Without randomness ids are still unique within the thread; only the spread
            // across instances suffers.
            let _ = getrandom::fill(&mut seed);
            u64::from_le_bytes(seed)
        });
    }
    let n = NEXT.with(|next| {
        let n = next.get();
        next.set(n.wrapping_add(1));
        n
    });
    let mut text = [0u8; 16];
    hex::encode_to_slice(n.to_be_bytes(), &mut text).expect("8 bytes fill 16 hex digits");
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

tokio::task_local! {
    /// The flag of the request being handled on this task, if its route may write.
    static COMMITTING: Arc<AtomicBool>;
}

/// Marks the request being handled as one whose write the store has begun: from now on its
/// deadline (REQUEST_TIMEOUT_SECS) no longer answers it `503`, since the write may still
/// commit; the store's own timeouts bound it instead. Called just before a handler hands a
/// change to the store.
pub fn write_begun() {
    let _ = COMMITTING.try_with(|flag| flag.store(true, Ordering::Relaxed));
}

/// Names the request's span after its tenant, once a handler has parsed it. A check whose span
/// is not made yet has nothing to name; the span it may get later goes without.
pub fn record_tenant(tenant: &str) {
    Span::current().record("tenant", tenant);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_with_its_request_id() {
        use axum::routing::get;
        use tower::ServiceExt;

        let layer = RequestLayer {
            timeout: Duration::from_secs(5),
            measure: false,
            routes: RouteLabels::new(["/groups".to_owned()]),
        };
        let router = axum::Router::new()
            .route(
                "/groups",
                get(|| async {
                    if std::hint::black_box(true) {
                        panic!("deliberately");
                    }
                    "unreachable"
                }),
            )
            .layer(layer);
        let response = router
            .oneshot(
                Request::get("/groups")
                    .header(REQUEST_ID, "req-7")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(response.headers()[REQUEST_ID], "req-7");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
    }

    #[test]
    fn the_hot_route_is_a_route() {
        assert!(crate::http::paths().iter().any(|path| path == HOT_ROUTE));
    }

    #[test]
    fn client_request_ids_are_kept_unless_empty_or_too_long_and_logged_escaped_when_odd() {
        for kept in [
            &b"req-42"[..],
            &[b'a'; MAX_REQUEST_ID_BYTES],
            b"two words",
            b"tab\there",
            "é".as_bytes(),
        ] {
            assert!(usable_id(kept), "{kept:?}");
        }
        assert!(!usable_id(b""));
        assert!(!usable_id(&[b'a'; MAX_REQUEST_ID_BYTES + 1]));
        let logged = |id: &[u8]| Logged(&HeaderValue::from_bytes(id).unwrap()).to_string();
        assert_eq!(logged(b"req-42"), "req-42");
        assert_eq!(logged(b"two words"), "\"two words\"");
        assert_eq!(logged(b"a\tb"), "\"a\\tb\"");
        assert_eq!(logged("é".as_bytes()), "\"é\"");
    }

    #[test]
    fn new_request_ids_are_sixteen_hex_digits_and_differ() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        for id in [a, b] {
            let text = id.to_str().unwrap();
            assert_eq!(text.len(), 16);
            assert!(text.bytes().all(|c| c.is_ascii_hexdigit()), "{text}");
        }
    }
}
