//! `GET /tenants`: the tenants that exist, a page at a time, with their sizes, as the store
//! holds them.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::QueryParams;
use super::page::Paging;
use super::state::AppState;
use crate::policy::{self, MAX_NAME_BYTES, TenantName};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantsQuery {
    /// Only the tenants whose names start with this (compared byte for byte); all of them
    /// when absent or empty.
    #[serde(default)]
    prefix: Option<String>,
    /// Tenants per page, 1 to 1000 (default 100).
    #[serde(default)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantsResponse {
    /// Sorted by name, byte for byte.
    tenants: Vec<TenantBody>,
    /// Pass it as `cursor` for the next page; null on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A tenant, with its revision and size in the store.
#[derive(Serialize, ToSchema)]
pub struct TenantBody {
    name: String,
    revision: u64,
    group_count: u64,
    permission_count: u64,
    /// Memberships, of users in groups; ended ones are counted until they are removed.
    assignment_count: u64,
}

#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    summary = "a page of the tenants that exist, with their revisions and sizes",
    params(TenantsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` tenants, sorted by name", body = TenantsResponse),
    )
)]
pub async fn tenants(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<TenantsQuery>,
) -> Result<Json<TenantsResponse>, ApiError> {
    let prefix = query.prefix.unwrap_or_default();
    if prefix.len() > MAX_NAME_BYTES || prefix.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(format!(
            "`prefix` must be at most {MAX_NAME_BYTES} bytes, without control characters"
        )));
    }
    // The prefix is part of the listing: a cursor of one prefix's pages resumes no other's.
    let scope = ["/tenants", prefix.as_str()];
    let paging = Paging::new(&scope, query.limit, query.cursor.as_deref(), |[tenant]| {
        TenantName::parse("cursor", tenant)
    })?;
    let summaries = state
        .app
        .tenant_page(
            &prefix,
            paging.after.as_ref(),
            paging.limit.saturating_add(1),
        )
        .await?;
    let listed = policy::page::first(summaries, paging.limit);
    let next_cursor = paging.next_cursor(&listed, |last| [last.tenant.as_str()]);
    Ok(Json(TenantsResponse {
        tenants: (listed.items.into_iter())
            .map(|summary| TenantBody {
                name: summary.tenant.to_string(),
                revision: summary.revision,
                group_count: summary.groups,
                permission_count: summary.permissions,
                assignment_count: summary.assignments,
            })
            .collect(),
        next_cursor,
    }))
}
