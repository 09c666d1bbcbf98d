//! The write endpoints. Each parses its body into names, hands one change to the app and
//! reports what the store did.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::JsonBody;
use super::responses::{NestingRefused, NotFound};
use super::state::AppState;
use super::timestamp::parse_instant;
use crate::policy::{
    Action, Change, GroupName, Permission, Resource, TenantName, UnixMillis, UserName,
};

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
pub struct AssignRequest {
    tenant: String,
    user: String,
    group: String,
    /// When the membership ends (RFC 3339); absent or null: it does not. Assigning a member
    /// again with another end, or none, changes it.
    #[serde(default)]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NestingRequest {
    tenant: String,
    /// The group that becomes (or stops being) a member.
    group: String,
    /// The group it is nested in.
    parent: String,
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
    )
)]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<GroupRequest>,
) -> Result<(StatusCode, Json<CreatedResponse>), ApiError> {
    let (tenant, group) = req.parse(&caller)?;
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

/// A write route that hands one change to the app and answers whether it changed anything:
/// its handler and its documentation, which differ only in these words.
macro_rules! change_route {
    (
        $(#[$doc:meta])*
        $handler:ident: POST $path:literal, $body:ty => $change:expr,
        $summary:literal, $answer:literal $(, $status:literal => $error:ident)*
    ) => {
        $(#[$doc])*
        #[utoipa::path(
            post,
            path = $path,
            tag = "writes",
            summary = $summary,
            request_body = $body,
            security(("bearer" = [])),
            responses(
                (status = 200, description = $answer, body = ChangedResponse),
                $((status = $status, response = $error),)*
            )
        )]
        pub async fn $handler(
            State(state): State<AppState>,
            caller: Caller,
            JsonBody(req): JsonBody<$body>,
        ) -> Result<Json<ChangedResponse>, ApiError> {
            let (tenant, parts) = req.parse(&caller)?;
            let change: fn(<$body as ChangeRequest>::Parts) -> Change = $change;
            changed(&state, &caller, &tenant, change(parts)).await
        }
    };
}

change_route! {
    delete_group: POST "/delete-group", GroupRequest => |group| Change::DeleteGroup { group },
    "delete a group with its permissions and memberships",
    "The group is gone; `changed` says whether it existed"
}

change_route! {
    add_permission: POST "/add-permission", PermissionRequest =>
        |(group, permission)| Change::AddPermission { group, permission },
    "give a group a permission",
    "The group holds the permission; `changed` says whether it is new", 404 => NotFound
}

change_route! {
    remove_permission: POST "/remove-permission", PermissionRequest =>
        |(group, permission)| Change::RemovePermission { group, permission },
    "take a permission from a group",
    "The group does not hold the permission; `changed` says whether it did"
}

change_route! {
    assign_user: POST "/assign-user", AssignRequest =>
        |(group, user, expires_at)| Change::AssignUser { group, user, expires_at },
    "make a user a member of a group",
    "The user is a member, until `expires_at` if given; `changed` says whether the membership or its end is new", 404 => NotFound
}

change_route! {
    unassign_user: POST "/unassign-user", MembershipRequest => |(group, user)| Change::UnassignUser { group, user },
    "remove a user from a group",
    "The user is not a member; `changed` says whether it was"
}

change_route! {
    nest_group: POST "/nest-group", NestingRequest =>
        |(group, parent)| Change::NestGroup { group, parent },
    "make a group a member of another, whose permissions its members then have",
    "The group is nested in the parent; `changed` says whether it is new",
    404 => NotFound, 409 => NestingRefused
}

change_route! {
    unnest_group: POST "/unnest-group", NestingRequest =>
        |(group, parent)| Change::UnnestGroup { group, parent },
    "take a group out of another",
    "The group is not nested in the parent; `changed` says whether it was"
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

/// A body that names a tenant and what one change touches in it; which change, the route
/// says.
trait ChangeRequest {
    /// What the change touches besides the tenant.
    type Parts;

    fn parse(&self, caller: &Caller) -> Result<(TenantName, Self::Parts), ApiError>;
}

impl ChangeRequest for GroupRequest {
    type Parts = GroupName;

    fn parse(&self, caller: &Caller) -> Result<(TenantName, GroupName), ApiError> {
        Ok((
            caller.tenant("tenant", &self.tenant)?,
            GroupName::parse("group", &self.group)?,
        ))
    }
}

impl ChangeRequest for PermissionRequest {
    type Parts = (GroupName, Permission);

    fn parse(&self, caller: &Caller) -> Result<(TenantName, Self::Parts), ApiError> {
        Ok((
            caller.tenant("tenant", &self.tenant)?,
            (
                GroupName::parse("group", &self.group)?,
                Permission {
                    resource: Resource::parse("resource", &self.resource)?,
                    action: Action::parse("action", &self.action)?,
                },
            ),
        ))
    }
}

impl ChangeRequest for AssignRequest {
    type Parts = (GroupName, UserName, Option<UnixMillis>);

    fn parse(&self, caller: &Caller) -> Result<(TenantName, Self::Parts), ApiError> {
        Ok((
            caller.tenant("tenant", &self.tenant)?,
            (
                GroupName::parse("group", &self.group)?,
                UserName::parse("user", &self.user)?,
                self.expires_at
                    .as_deref()
                    .map(|at| parse_instant("expires_at", at))
                    .transpose()?,
            ),
        ))
    }
}

impl ChangeRequest for NestingRequest {
    type Parts = (GroupName, GroupName);

    fn parse(&self, caller: &Caller) -> Result<(TenantName, Self::Parts), ApiError> {
        Ok((
            caller.tenant("tenant", &self.tenant)?,
            (
                GroupName::parse("group", &self.group)?,
                GroupName::parse("parent", &self.parent)?,
            ),
        ))
    }
}

impl ChangeRequest for MembershipRequest {
    type Parts = (GroupName, UserName);

    fn parse(&self, caller: &Caller) -> Result<(TenantName, Self::Parts), ApiError> {
        Ok((
            caller.tenant("tenant", &self.tenant)?,
            (
                GroupName::parse("group", &self.group)?,
                UserName::parse("user", &self.user)?,
            ),
        ))
    }
}
