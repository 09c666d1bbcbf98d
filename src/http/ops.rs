//! What an operator watches: /health and /cache-stats.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::openapi;
use crate::stats::Counts;

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    status: &'static str,
    server_id: String,
    database: &'static str,
    redis: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct CacheStatsResponse {
    server_id: String,
    redis: &'static str,
    tenants_cached: usize,
    /// API keys in force; null until the keys could first be loaded.
    #[schema(required = true)]
    api_keys: Option<usize>,
    #[serde(flatten)]
    #[schema(schema_with = openapi::counters)]
    counts: Counts,
    tenants: BTreeMap<String, TenantStats>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantStats {
    revision: u64,
    groups: usize,
    permissions: usize,
    assignments: usize,
    #[schema(format = DateTime)]
    loaded_at: String,
    #[schema(format = DateTime)]
    refreshed_at: String,
    refreshed_by: &'static str,
}

/// Liveness: answers 200 while the process serves HTTP, and says what it can reach.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "liveness and what the instance can reach",
    responses(
        (status = 200, description = "The process serves HTTP", body = HealthResponse),
    )
)]
pub async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    let database = if state.app.database_ok().await {
        "ok"
    } else {
        "down"
    };
    Json(HealthResponse {
        status: "ok",
        server_id: state.app.server_id.clone(),
        database,
        redis: state.app.bus.state().as_str(),
    })
}

/// Readiness: 200 while this instance can serve fresh answers, 503 with the reasons while it
/// cannot, so that a load balancer sends requests elsewhere. Liveness is /health.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    summary = "readiness: can this instance serve fresh answers now?",
    responses(
        (status = 200, description = "Ready", body = ReadyResponse),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<ReadyResponse>, ApiError> {
    let reasons = state.app.unready_because().await;
    if reasons.is_empty() {
        Ok(Json(ReadyResponse {
            status: "ready",
            server_id: state.app.server_id.clone(),
        }))
    } else {
        Err(ApiError::NotReady(reasons.join("; ")))
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    status: &'static str,
    server_id: String,
}

#[utoipa::path(
    get,
    path = "/cache-stats",
    tag = "operations",
    summary = "counters and the tenants held in memory",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counters since the process started, and every tenant held", body = CacheStatsResponse),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn cache_stats(State(state): State<AppState>) -> Json<CacheStatsResponse> {
    let app = &state.app;
    let tenants: BTreeMap<String, TenantStats> = app
        .cache
        .held()
        .into_iter()
        .map(|(tenant, snapshot)| {
            let policy = &snapshot.policy;
            let stats = TenantStats {
                revision: policy.revision(),
                groups: policy.group_count(),
                permissions: policy.permission_count(),
                assignments: policy.assignment_count(),
                loaded_at: rfc3339(snapshot.loaded_at),
                refreshed_at: rfc3339(snapshot.refreshed_at),
                refreshed_by: snapshot.origin.as_str(),
            };
            (tenant.to_string(), stats)
        })
        .collect();
    Json(CacheStatsResponse {
        server_id: app.server_id.clone(),
        redis: app.bus.state().as_str(),
        tenants_cached: tenants.len(),
        api_keys: app.keys.count(),
        counts: app.stats.counts(),
        tenants,
    })
}

fn rfc3339(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("unknown"))
}
