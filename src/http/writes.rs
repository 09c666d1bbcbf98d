//! The write endpoints. Each parses its body into names, hands one change to the app and
//! reports what the store did.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::policy::{Action, Change, GroupName, Permission, Resource, TenantName, UserName};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    tenant: String,
    group: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionRequest {
    tenant: String,
    group: String,
    resource: String,
    action: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequest {
    tenant: String,
    user: String,
    group: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    tenant: String,
}

#[derive(Serialize)]
pub struct CreatedResponse {
    success: bool,
    created: bool,
    revision: u64,
    message: String,
}

#[derive(Serialize)]
pub struct ChangedResponse {
    success: bool,
    changed: bool,
    revision: u64,
}

#[derive(Serialize)]
pub struct RefreshedResponse {
    success: bool,
    revision: u64,
}

pub async fn create_group(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<GroupRequest>,
) -> Result<(StatusCode, Json<CreatedResponse>), ApiError> {
    let tenant = TenantName::parse("tenant", &req.tenant)?;
    let group = GroupName::parse("group", &req.group)?;
    let message = format!("Group '{group}' is ready to use");
    let outcome = state
        .app
        .write(&tenant, Change::CreateGroup { group })
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

pub async fn delete_group(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<GroupRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let tenant = TenantName::parse("tenant", &req.tenant)?;
    let group = GroupName::parse("group", &req.group)?;
    changed(&state, &tenant, Change::DeleteGroup { group }).await
}

pub async fn add_permission(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PermissionRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let (tenant, group, permission) = req.parse()?;
    changed(&state, &tenant, Change::AddPermission { group, permission }).await
}

pub async fn remove_permission(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PermissionRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let (tenant, group, permission) = req.parse()?;
    changed(
        &state,
        &tenant,
        Change::RemovePermission { group, permission },
    )
    .await
}

pub async fn assign_user(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<MembershipRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let (tenant, group, user) = req.parse()?;
    changed(&state, &tenant, Change::AssignUser { group, user }).await
}

pub async fn unassign_user(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<MembershipRequest>,
) -> Result<Json<ChangedResponse>, ApiError> {
    let (tenant, group, user) = req.parse()?;
    changed(&state, &tenant, Change::UnassignUser { group, user }).await
}

pub async fn refresh_tenant(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<TenantRequest>,
) -> Result<Json<RefreshedResponse>, ApiError> {
    let tenant = TenantName::parse("tenant", &req.tenant)?;
    let revision = state.app.refresh(&tenant).await?;
    Ok(Json(RefreshedResponse {
        success: true,
        revision,
    }))
}

async fn changed(
    state: &AppState,
    tenant: &TenantName,
    change: Change,
) -> Result<Json<ChangedResponse>, ApiError> {
    let outcome = state.app.write(tenant, change).await?;
    Ok(Json(ChangedResponse {
        success: true,
        changed: outcome.changed,
        revision: outcome.revision,
    }))
}

impl PermissionRequest {
    fn parse(&self) -> Result<(TenantName, GroupName, Permission), ApiError> {
        Ok((
            TenantName::parse("tenant", &self.tenant)?,
            GroupName::parse("group", &self.group)?,
            Permission {
                resource: Resource::parse("resource", &self.resource)?,
                action: Action::parse("action", &self.action)?,
            },
        ))
    }
}

impl MembershipRequest {
    fn parse(&self) -> Result<(TenantName, GroupName, UserName), ApiError> {
        Ok((
            TenantName::parse("tenant", &self.tenant)?,
            GroupName::parse("group", &self.group)?,
            UserName::parse("user", &self.user)?,
        ))
    }
}
