//! The read endpoints, answered from the cache.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use crate::policy::{Action, Resource, TenantName, UserName};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    tenant: String,
    user: String,
    resource: String,
    action: String,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize)]
pub struct CheckResponse {
    allowed: bool,
    revision: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsQuery {
    tenant: String,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize)]
pub struct GroupsResponse {
    tenant: String,
    revision: u64,
    groups: Vec<GroupBody>,
}

#[derive(Serialize)]
pub struct GroupBody {
    name: String,
    permissions: Vec<PermissionBody>,
    members: Vec<String>,
}

#[derive(Serialize)]
pub struct PermissionBody {
    resource: String,
    action: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    tenant: String,
    user: String,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize)]
pub struct UserResponse {
    tenant: String,
    user: String,
    revision: u64,
    groups: Vec<String>,
    permissions: Vec<GrantBody>,
}

#[derive(Serialize)]
pub struct GrantBody {
    resource: String,
    action: String,
    group: String,
}

pub async fn check_post(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    check(&state, req).await
}

pub async fn check_get(
    State(state): State<AppState>,
    QueryParams(req): QueryParams<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    check(&state, req).await
}

async fn check(state: &AppState, req: CheckRequest) -> Result<Json<CheckResponse>, ApiError> {
    let tenant = TenantName::parse("tenant", &req.tenant)?;
    let user = UserName::validate("user", &req.user)?;
    let resource = Resource::validate("resource", &req.resource)?;
    let action = Action::validate("action", &req.action)?;
    let (allowed, revision) = state
        .app
        .check(&tenant, (user, resource, action), req.min_revision)
        .await?;
    Ok(Json(CheckResponse { allowed, revision }))
}

pub async fn groups(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<GroupsQuery>,
) -> Result<Json<GroupsResponse>, ApiError> {
    let tenant = TenantName::parse("tenant", &query.tenant)?;
    let snapshot = state.app.read(&tenant, query.min_revision).await?;
    let groups = snapshot
        .policy
        .groups()
        .into_iter()
        .map(|g| GroupBody {
            name: g.name,
            permissions: g
                .permissions
                .into_iter()
                .map(|(resource, action)| PermissionBody { resource, action })
                .collect(),
            members: g.members,
        })
        .collect();
    Ok(Json(GroupsResponse {
        tenant: tenant.to_string(),
        revision: snapshot.revision(),
        groups,
    }))
}

pub async fn user_permissions(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<UserQuery>,
) -> Result<Json<UserResponse>, ApiError> {
    let tenant = TenantName::parse("tenant", &query.tenant)?;
    let user = UserName::parse("user", &query.user)?;
    let snapshot = state.app.read(&tenant, query.min_revision).await?;
    let view = snapshot.policy.user(user.as_str());
    Ok(Json(UserResponse {
        tenant: tenant.to_string(),
        user: user.to_string(),
        revision: snapshot.revision(),
        groups: view.groups,
        permissions: view
            .permissions
            .into_iter()
            .map(|(resource, action, group)| GrantBody {
                resource,
                action,
                group,
            })
            .collect(),
    }))
}
