//! What an operator watches: /health, /ready and /cache-stats.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::openapi::ObjectBuilder;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::error::ApiError;
use super::extract::QueryParams;
use super::responses::Unavailable;
use super::state::AppState;
use crate::cache::HeldTenant;
use crate::policy::TenantName;
use crate::stats::{Counts, Stats};

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    status: &'static str,
    server_id: String,
    database: &'static str,
    redis: &'static str,
    /// Whether messages from another process with this SERVER_ID have arrived.
    server_id_shared: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CacheStatsResponse {
    server_id: String,
    redis: &'static str,
    /// Tenants held in memory.
    tenants_cached: u64,
    /// Tenants that exist, as far as this instance knows.
    tenants_known: usize,
    /// Estimated bytes of the tenants held.
    cache_bytes: u64,
    /// The bytes the tenants held may take (`CACHE_MEMORY_MB`).
    cache_budget_bytes: u64,
    /// API keys in force; null until the keys could first be loaded.
    #[schema(required = true)]
    api_keys: Option<usize>,
    #[serde(flatten)]
    #[schema(schema_with = counters)]
    counts: Counts,
    /// The held tenants of the largest estimated size, largest first; at most 10.
    largest_tenants: Vec<TenantStats>,
    /// The tenant named by `?tenant=` as held here; null when none is named or it is not
    /// held.
    #[schema(required = true)]
    tenant: Option<TenantStats>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantStats {
    tenant: String,
    revision: u64,
    groups: usize,
    permissions: usize,
    assignments: usize,
    /// What the memory budget counts for it.
    estimated_bytes: u64,
    #[schema(format = DateTime)]
    loaded_at: String,
    #[schema(format = DateTime)]
    refreshed_at: String,
    refreshed_by: &'static str,
}

impl From<HeldTenant> for TenantStats {
    fn from(held: HeldTenant) -> Self {
        let snapshot = &held.snapshot;
        let policy = &snapshot.policy;
        Self {
            tenant: held.tenant.to_string(),
            revision: policy.revision(),
            groups: policy.group_count(),
            permissions: policy.permission_count(),
            assignments: policy.assignment_count(),
            estimated_bytes: held.bytes,
            loaded_at: rfc3339(snapshot.loaded_at),
            refreshed_at: rfc3339(snapshot.refreshed_at),
            refreshed_by: snapshot.origin.as_str(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CacheStatsQuery {
    /// A tenant to show as held here (`tenant` in the answer).
    #[serde(default)]
    tenant: Option<String>,
}

/// How many of the largest tenants /cache-stats shows.
const LARGEST: usize = 10;

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
        server_id_shared: state.app.stats.server_id_clashes.get() > 0,
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
        (status = 503, response = Unavailable),
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
    summary = "counters, memory, and the largest tenants held in memory",
    params(CacheStatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counters since the process started, what the tenants held take, and the largest of them", body = CacheStatsResponse),
        (status = 503, response = Unavailable),
    )
)]
pub async fn cache_stats(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<CacheStatsQuery>,
) -> Result<Json<CacheStatsResponse>, ApiError> {
    let app = &state.app;
    let tenant = query
        .tenant
        .map(|tenant| TenantName::parse("tenant", &tenant))
        .transpose()?;
    let (cache_bytes, cache_budget_bytes) = app.cache.memory();
    Ok(Json(CacheStatsResponse {
        server_id: app.server_id.clone(),
        redis: app.bus.state().as_str(),
        tenants_cached: app.cache.held_count(),
        tenants_known: app.cache.directory.len(),
        cache_bytes,
        cache_budget_bytes,
        api_keys: app.keys.count(),
        counts: app.stats.counts(),
        largest_tenants: app
            .cache
            .largest(LARGEST)
            .into_iter()
            .map(TenantStats::from)
            .collect(),
        tenant: tenant
            .and_then(|tenant| app.cache.held(tenant.as_str()))
            .map(TenantStats::from),
    }))
}

fn rfc3339(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("unknown"))
}

/// The counters of /cache-stats, by the names [`Stats::each`] gives them, so that a counter
/// added there is documented too.
fn counters() -> ObjectBuilder {
    let mut counters = ObjectBuilder::new();
    Stats::default().each(|name, _| {
        counters = std::mem::take(&mut counters)
            .property(name, u64::schema())
            .required(name);
    });
    counters
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::{RefOr, Schema};

    use super::*;

    #[test]
    fn every_counter_is_a_required_property() {
        let RefOr::T(Schema::Object(counters)) = counters().into() else {
            panic!("the counters are an object");
        };
        let mut names = Vec::new();
        Stats::default().each(|name, _| names.push(name.to_owned()));
        assert_eq!(counters.required, names);
        assert_eq!(counters.properties.len(), names.len());
    }
}
