//! The HTTP API: routes, auth, extractors and the error format. See docs/API.md.

mod auth;
mod error;
mod extract;
mod keys;
pub mod metrics;
mod openapi;
mod ops;
mod page;
mod reads;
pub mod request;
pub mod serve;
mod writes;

use std::sync::Arc;
use std::time::Duration;

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

/// What every handler gets. axum clones it for every request, more than once: behind one
/// pointer, that is one shared counter to touch rather than one per field.
pub type AppState = Arc<Services>;

/// The parts of [`AppState`].
pub struct Services {
    pub app: Arc<App>,
    pub tokens: Arc<Tokens>,
    /// Renders /metrics; without it requests are not measured and /metrics is 404.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// How long a request may take before it is answered 503 and abandoned.
    pub request_timeout: Duration,
}

/// The whole API, ready to serve or to drive directly in a test.
///
/// Nothing runs per request that the request does not need: the credential checks are layered
/// on only when a token is configured, and everything else per request is one layer,
/// [`request::RequestLayer`]. Each layer costs a measurable share of check-access throughput
/// (docs/PERFORMANCE.md).
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
        writes = writes.route_layer(from_fn_with_state(state.clone(), auth::require_writer));
    }
    let mut reads = Router::new()
        .route(
            "/check-access",
            get(reads::check_get).post(reads::check_post),
        )
        .route("/groups", get(reads::groups))
        .route("/group-permissions", get(reads::group_permissions))
        .route("/group-members", get(reads::group_members))
        .route("/user-permissions", get(reads::user_permissions));
    let mut instance_views = Router::new()
        .route("/cache-stats", get(ops::cache_stats))
        .route("/metrics", get(metrics::render));
    if state.tokens.guards_reads() {
        reads = reads.route_layer(from_fn_with_state(state.clone(), auth::require_reader));
        instance_views = instance_views.route_layer(from_fn_with_state(
            state.clone(),
            auth::require_instance_reader,
        ));
    }
    let key_management = Router::new()
        .route("/create-api-key", post(keys::create))
        .route("/revoke-api-key", post(keys::revoke))
        .route("/api-keys", get(keys::list))
        .route_layer(from_fn_with_state(state.clone(), auth::require_key_manager));
    let api = Router::new()
        .merge(writes)
        .merge(reads)
        .merge(instance_views)
        .merge(key_management)
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/openapi.json", get(openapi::document))
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(request::RequestLayer {
            timeout: state.request_timeout,
            measure: state.metrics.is_some(),
        });
    api.with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}
