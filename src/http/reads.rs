//! The read endpoints, answered from the cache.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::openapi;
use crate::policy::{Action, Resource, UserName};

#[derive(Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    tenant: String,
    user: String,
    resource: String,
    action: String,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckResponse {
    allowed: bool,
    revision: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GroupsQuery {
    tenant: String,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupsResponse {
    tenant: String,
    revision: u64,
    groups: Vec<GroupBody>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupBody {
    name: String,
    permissions: Vec<PermissionBody>,
    members: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PermissionBody {
    resource: String,
    action: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    tenant: String,
    user: String,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    tenant: String,
    user: String,
    revision: u64,
    groups: Vec<String>,
    permissions: Vec<GrantBody>,
}

#[derive(Serialize, ToSchema)]
pub struct GrantBody {
    resource: String,
    action: String,
    group: String,
}

#[utoipa::path(
    post,
    path = "/check-access",
    tag = "reads",
    summary = "may this user do this action on this resource?",
    request_body = CheckRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer, allowed or not", body = CheckResponse),
        (status = 409, response = openapi::RevisionNotReached),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn check_post(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    check(&state, &caller, req).await
}

#[utoipa::path(
    get,
    path = "/check-access",
    tag = "reads",
    summary = "may this user do this action on this resource?",
    params(CheckRequest),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer, allowed or not", body = CheckResponse),
        (status = 409, response = openapi::RevisionNotReached),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn check_get(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(req): QueryParams<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    check(&state, &caller, req).await
}

async fn check(
    state: &AppState,
    caller: &Caller,
    req: CheckRequest,
) -> Result<Json<CheckResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &req.tenant)?;
    let user = UserName::validate("user", &req.user)?;
    let resource = Resource::validate("resource", &req.resource)?;
    let action = Action::validate("action", &req.action)?;
    let (allowed, revision) = state
        .app
        .check(&tenant, (user, resource, action), req.min_revision)
        .await?;
    Ok(Json(CheckResponse { allowed, revision }))
}

#[utoipa::path(
    get,
    path = "/groups",
    tag = "reads",
    summary = "a tenant's groups, permissions and members",
    params(GroupsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every group of the tenant, sorted by name", body = GroupsResponse),
        (status = 409, response = openapi::RevisionNotReached),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn groups(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<GroupsQuery>,
) -> Result<Json<GroupsResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &query.tenant)?;
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

#[utoipa::path(
    get,
    path = "/user-permissions",
    tag = "reads",
    summary = "one user's groups and permissions",
    params(UserQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's groups and the permissions they give", body = UserResponse),
        (status = 409, response = openapi::RevisionNotReached),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn user_permissions(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<UserQuery>,
) -> Result<Json<UserResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &query.tenant)?;
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
