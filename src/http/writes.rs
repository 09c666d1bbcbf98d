//! The write endpoints. Each parses its body into names, hands one change to the app and
//! reports what the store did.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::openapi;
use crate::policy::{Action, Change, GroupName, Permission, Resource, TenantName, UserName};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    tenant: String,
    group: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionRequest {
    tenant: String,
    group: String,
    resource: String,
    action: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequest {
    tenant: String,
    user: String,
    group: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    tenant: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedResponse {
    success: bool,
    created: bool,
    revision: u64,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChangedResponse {
    success: bool,
    changed: bool,
    revision: u64,
}

#[derive(Serialize, ToSchema)]
pub struct RefreshedResponse {
    success: bool,
    revision: u64,
}

#[utoipa::path(
    post,
    path = "/create-group",
    tag = "writes",
    summary = "create a group",
    request_body = GroupRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The group was created", body = CreatedResponse),
        (status = 200, description = "The group existed already", body = CreatedResponse),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<GroupRequest>,
) -> Result<(StatusCode, Json<CreatedResponse>), ApiError> {
    let tenant = caller.tenant("tenant", &req.tenant)?;
    let group = GroupName::parse("group", &req.group)?;
    let message = format!("Group '{group}' is ready to use");
    super::request::write_begun();
    let outcome = state
        .app
        .write(&tenant, Change::CreateGroup { group }, caller.actor())
        .await?;
    let status = if outcome.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(CreatedResponse {
            success: true,
            created: outcome.changed,
            revision: outcome.revision,
            message,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/delete-group",
    tag = "writes",
    summary = "delete a group with its permissions and memberships",
    request_body = GroupRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The group is gone; `changed` says whether it existed", body = ChangedResponse),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<GroupRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &req.tenant)?;
    let group = GroupName::parse("group", &req.group)?;
    changed(&state, &caller, &tenant, Change::DeleteGroup { group }).await
}

#[utoipa::path(
    post,
    path = "/add-permission",
    tag = "writes",
    summary = "give a group a permission",
    request_body = PermissionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The group holds the permission; `changed` says whether it is new", body = ChangedResponse),
        (status = 404, response = openapi::NotFound),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn add_permission(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<PermissionRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let (tenant, group, permission) = req.parse(&caller)?;
    changed(
        &state,
        &caller,
        &tenant,
        Change::AddPermission { group, permission },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/remove-permission",
    tag = "writes",
    summary = "take a permission from a group",
    request_body = PermissionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The group does not hold the permission; `changed` says whether it did", body = ChangedResponse),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn remove_permission(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<PermissionRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let (tenant, group, permission) = req.parse(&caller)?;
    changed(
        &state,
        &caller,
        &tenant,
        Change::RemovePermission { group, permission },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/assign-user",
    tag = "writes",
    summary = "make a user a member of a group",
    request_body = MembershipRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user is a member; `changed` says whether it is new", body = ChangedResponse),
        (status = 404, response = openapi::NotFound),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn assign_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<MembershipRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let (tenant, group, user) = req.parse(&caller)?;
    changed(&state, &caller, &tenant, Change::AssignUser { group, user }).await
}

#[utoipa::path(
    post,
    path = "/unassign-user",
    tag = "writes",
    summary = "remove a user from a group",
    request_body = MembershipRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user is not a member; `changed` says whether it was", body = ChangedResponse),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn unassign_user(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<MembershipRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let (tenant, group, user) = req.parse(&caller)?;
    changed(
        &state,
        &caller,
        &tenant,
        Change::UnassignUser { group, user },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/refresh-tenant",
    tag = "writes",
    summary = "reload a tenant from the store and tell the other instances",
    request_body = TenantRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reloaded, with the revision now held", body = RefreshedResponse),
        (status = 500, response = openapi::Internal),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn refresh_tenant(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<TenantRequest>,
) -> Result<Json<RefreshedResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &req.tenant)?;
    let revision = state.app.refresh(&tenant).await?;
    Ok(Json(RefreshedResponse {
        success: true,
        revision,
    }))
}

async fn changed(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantName,
    change: Change,
) -> Result<Json<ChangedResponse>, ApiError> {
    super::request::write_begun();
    let outcome = state.app.write(tenant, change, caller.actor()).await?;
    Ok(Json(ChangedResponse {
        success: true,
        changed: outcome.changed,
        revision: outcome.revision,
    }))
}

impl PermissionRequest {
    fn parse(&self, caller: &Caller) -> Result<(TenantName, GroupName, Permission), ApiError> {
        Ok((
            caller.tenant("tenant", &self.tenant)?,
            GroupName::parse("group", &self.group)?,
            Permission {
                resource: Resource::parse("resource", &self.resource)?,
                action: Action::parse("action", &self.action)?,
            },
        ))
    }
}

impl MembershipRequest {
    fn parse(&self, caller: &Caller) -> Result<(TenantName, GroupName, UserName), ApiError> {
        Ok((
            caller.tenant("tenant", &self.tenant)?,
            GroupName::parse("group", &self.group)?,
            UserName::parse("user", &self.user)?,
        ))
    }
}
