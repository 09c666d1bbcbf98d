//! The one list of routes. It yields the router, the OpenAPI document (each handler's
//! `#[utoipa::path]` travels with its route) and the labels requests are measured under, so
//! that a route is added in one place.
//!
//! Nothing runs per request that the request does not need: the credential checks are layered
//! on a group only when a token is configured, and everything else per request is one layer,
//! [`super::request::RequestLayer`]. Each layer costs a measurable share of check-access
//! throughput (docs/PERFORMANCE.md).

use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri, header};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Guard;
use super::authzen::{evaluate, metadata, search};
use super::error::ApiError;
use super::extract::MAX_BODY_BYTES;
use super::metrics::RouteLabels;
use super::request::RequestLayer;
use super::state::AppState;
use super::{
    auth, batch, changes, console, credential, document, keys, listings, metrics, openapi, ops,
    reads, tenants, watch, writes,
};

/// Every route, in groups by the credential it needs. With `state`, each group is guarded as
/// the configured tokens require; without, it is the list as the document describes it.
fn api(state: Option<&AppState>) -> OpenApiRouter<AppState> {
    // A write of many changes takes bodies as large as a batch of checks.
    let write_many = OpenApiRouter::new()
        .routes(routes!(writes::write))
        .layer(DefaultBodyLimit::max(batch::MAX_BATCH_BYTES));
    // A policy document may be as large as the configuration allows.
    let policy_max_bytes = state.map_or(MAX_BODY_BYTES, |state| state.policy_max_bytes);
    let apply_document = OpenApiRouter::new()
        .routes(routes!(document::apply))
        .layer(DefaultBodyLimit::max(policy_max_bytes));
    let mut writes = OpenApiRouter::new()
        .routes(routes!(writes::create_group))
        .routes(routes!(writes::delete_group))
        .routes(routes!(writes::add_permission))
        .routes(routes!(writes::remove_permission))
        .routes(routes!(writes::assign_user))
        .routes(routes!(writes::unassign_user))
        .routes(routes!(writes::nest_group))
        .routes(routes!(writes::unnest_group))
        .merge(write_many)
        .merge(apply_document)
        .routes(routes!(writes::refresh_tenant));
    // Larger bodies than any other route: a batch of checks.
    let batch = OpenApiRouter::new()
        .routes(routes!(batch::check_batch))
        .layer(DefaultBodyLimit::max(batch::MAX_BATCH_BYTES));
    // The AuthZEN API, at each tenant's base URL and at the root; its batches as large as
    // the native ones.
    let authzen_batches = OpenApiRouter::new()
        .routes(routes!(evaluate::evaluations))
        .routes(routes!(evaluate::evaluations_at_root))
        .layer(DefaultBodyLimit::max(batch::MAX_BATCH_BYTES));
    let authzen = OpenApiRouter::new()
        .routes(routes!(evaluate::evaluation))
        .routes(routes!(evaluate::evaluation_at_root))
        .merge(authzen_batches)
        .routes(routes!(search::subject))
        .routes(routes!(search::subject_at_root))
        .routes(routes!(search::resource))
        .routes(routes!(search::resource_at_root))
        .routes(routes!(search::action))
        .routes(routes!(search::action_at_root));
    let mut reads = OpenApiRouter::new()
        .routes(routes!(reads::check_get, reads::check_post))
        .merge(batch)
        .merge(authzen)
        .routes(routes!(listings::groups))
        .routes(routes!(listings::group_permissions))
        .routes(routes!(listings::group_members))
        .routes(routes!(listings::group_parents))
        .routes(routes!(listings::group_children))
        .routes(routes!(listings::who_can))
        .routes(routes!(listings::user_permissions))
        .routes(routes!(document::export))
        .routes(routes!(changes::changes))
        .routes(routes!(watch::watch));
    // Every tenant's name: for those who administer them all.
    let mut administration = OpenApiRouter::new().routes(routes!(tenants::tenants));
    let mut instance_views = OpenApiRouter::new()
        .routes(routes!(ops::cache_stats))
        .routes(routes!(metrics::render));
    let mut key_management = OpenApiRouter::new()
        .routes(routes!(keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(keys::list));
    let open = OpenApiRouter::new()
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(credential::credential))
        .routes(routes!(metadata::tenant))
        .routes(routes!(metadata::root))
        .routes(routes!(document))
        .routes(routes!(console::page))
        .routes(routes!(console::asset))
        .route("/console/", axum::routing::get(console::folder));
    if let Some(state) = state {
        let guarded = |router: OpenApiRouter<AppState>, guard: Guard| {
            if guard.applies(&state.tokens) {
                router.route_layer(from_fn_with_state((state.clone(), guard), auth::require))
            } else {
                router
            }
        };
        writes = guarded(writes, Guard::Writes);
        administration = guarded(administration, Guard::Administration);
        reads = guarded(reads, Guard::Reads);
        instance_views = guarded(instance_views, Guard::Instance);
        key_management = guarded(key_management, Guard::Keys);
    }
    OpenApiRouter::with_openapi(openapi::base())
        .merge(writes)
        .merge(reads)
        .merge(administration)
        .merge(instance_views)
        .merge(key_management)
        .merge(open)
}

/// The whole API, ready to serve or to drive directly in a test.
pub fn router(state: AppState) -> Router {
    let (router, document) = api(Some(&state)).split_for_parts();
    let layer = RequestLayer {
        timeout: state.request_timeout,
        measure: state.metrics.is_some(),
        routes: RouteLabels::new(document.paths.paths.into_keys()),
    };
    router
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(layer)
        .with_state(state)
}

/// The path of every route, sorted.
pub fn paths() -> Vec<String> {
    api(None).into_openapi().paths.paths.into_keys().collect()
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// The document, serialized once: it depends on nothing but the code.
fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| openapi::finish(api(None).into_openapi()))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "this API as an OpenAPI 3.1 document",
    responses(
        (status = 200, description = "This document", content_type = "application/json", body = serde_json::Value),
    )
)]
async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Operation;

    #[test]
    fn the_document_is_json_and_served_as_is() {
        let document: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert!(std::ptr::eq(json(), json()), "serialized once");
    }

    #[test]
    fn every_operation_is_a_route_of_its_name() {
        let paths = paths();
        for operation in Operation::ALL {
            let path = format!("/{operation}");
            assert!(paths.contains(&path), "{path} is not a route");
        }
    }
}
