//! The HTTP API: routes, auth, extractors and the error format. See docs/API.md.

mod auth;
mod error;
mod extract;
pub mod metrics;
mod ops;
mod reads;
mod writes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::app::App;
pub use auth::Tokens;
pub use error::ApiError;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    pub tokens: Arc<Tokens>,
    /// Renders /metrics; without it requests are not measured and /metrics is 404.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// The whole API, ready to serve or to drive directly in a test.
///
/// Nothing runs per request that the request does not need: the token checks are layered on
/// only when a token is configured, and there is no per-request tracing layer. Each layer
/// costs a measurable share of check-access throughput (docs/PERFORMANCE.md).
pub fn router(state: AppState) -> Router {
    let mut writes = Router::new()
        .route("/create-group", post(writes::create_group))
        .route("/delete-group", post(writes::delete_group))
        .route("/add-permission", post(writes::add_permission))
        .route("/remove-permission", post(writes::remove_permission))
        .route("/assign-user", post(writes::assign_user))
        .route("/unassign-user", post(writes::unassign_user))
        .route("/refresh-tenant", post(writes::refresh_tenant));
    if state.tokens.guards_writes() {
        writes = writes.route_layer(from_fn_with_state(state.clone(), auth::require_admin));
    }
    let mut reads = Router::new()
        .route(
            "/check-access",
            get(reads::check_get).post(reads::check_post),
        )
        .route("/groups", get(reads::groups))
        .route("/user-permissions", get(reads::user_permissions))
        .route("/cache-stats", get(ops::cache_stats))
        .route("/metrics", get(metrics::render));
    if state.tokens.guards_reads() {
        reads = reads.route_layer(from_fn_with_state(state.clone(), auth::require_reader));
    }
    let mut api = Router::new()
        .merge(writes)
        .merge(reads)
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    if state.metrics.is_some() {
        api = api.layer(metrics::RecordLayer);
    }
    api.with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}
