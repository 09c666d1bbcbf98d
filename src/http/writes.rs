//! The write endpoints. Each parses its body into names, hands one change to the app and
//! reports what the store did.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use serde_json::value::RawValue;

use super::batch::MAX_BATCH_BYTES;
use super::extract::{JsonBody, JsonObject};
use super::responses::{NestingRefused, NotFound, WriteRefused};
use super::state::AppState;
use super::timestamp::{instant, parse_instant};
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

/// The most changes in one `/write`.
pub const MAX_CHANGES: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest<'a> {
    tenant: String,
    /// 1 to 1,000 changes, applied in order, all or none.
    #[serde(borrow)]
    #[schema(value_type = Vec<WriteChange>)]
    changes: Vec<&'a RawValue>,
    /// Make the write only if the tenant is at this revision (`409 revision_mismatch`
    /// otherwise, and nothing is written).
    #[serde(default)]
    if_revision: Option<u64>,
}

/// One change of a `/write`: `op` names the write, the other fields are its body's, without
/// `tenant`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WriteChange {
    CreateGroup {
        group: String,
    },
    DeleteGroup {
        group: String,
    },
    AddPermission {
        group: String,
        resource: String,
        action: String,
    },
    RemovePermission {
        group: String,
        resource: String,
        action: String,
    },
    AssignUser {
        group: String,
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(format = DateTime)]
        expires_at: Option<String>,
    },
    UnassignUser {
        group: String,
        user: String,
    },
    NestGroup {
        group: String,
        parent: String,
    },
    UnnestGroup {
        group: String,
        parent: String,
    },
}

impl From<&Change> for WriteChange {
    fn from(change: &Change) -> Self {
        let name = |name: &GroupName| name.as_str().to_owned();
        match change {
            Change::CreateGroup { group } => WriteChange::CreateGroup { group: name(group) },
            Change::DeleteGroup { group } => WriteChange::DeleteGroup { group: name(group) },
            Change::AddPermission { group, permission } => WriteChange::AddPermission {
                group: name(group),
                resource: permission.resource.as_str().to_owned(),
                action: permission.action.as_str().to_owned(),
            },
            Change::RemovePermission { group, permission } => WriteChange::RemovePermission {
                group: name(group),
                resource: permission.resource.as_str().to_owned(),
                action: permission.action.as_str().to_owned(),
            },
            Change::AssignUser {
                group,
                user,
                expires_at,
            } => WriteChange::AssignUser {
                group: name(group),
                user: user.as_str().to_owned(),
                expires_at: expires_at.map(instant),
            },
            Change::UnassignUser { group, user } => WriteChange::UnassignUser {
                group: name(group),
                user: user.as_str().to_owned(),
            },
            Change::NestGroup { group, parent } => WriteChange::NestGroup {
                group: name(group),
                parent: name(parent),
            },
            Change::UnnestGroup { group, parent } => WriteChange::UnnestGroup {
                group: name(group),
                parent: name(parent),
            },
        }
    }
}

impl WriteChange {
    fn change(&self) -> Result<Change, ApiError> {
        let group = |name: &str| GroupName::parse("group", name);
        Ok(match self {
            WriteChange::CreateGroup { group: g } => Change::CreateGroup { group: group(g)? },
            WriteChange::DeleteGroup { group: g } => Change::DeleteGroup { group: group(g)? },
            WriteChange::AddPermission {
                group: g,
                resource,
                action,
            } => Change::AddPermission {
                group: group(g)?,
                permission: permission(resource, action)?,
            },
            WriteChange::RemovePermission {
                group: g,
                resource,
                action,
            } => Change::RemovePermission {
                group: group(g)?,
                permission: permission(resource, action)?,
            },
            WriteChange::AssignUser {
                group: g,
                user,
                expires_at,
            } => Change::AssignUser {
                group: group(g)?,
                user: UserName::parse("user", user)?,
                expires_at: end(expires_at.as_deref())?,
            },
            WriteChange::UnassignUser { group: g, user } => Change::UnassignUser {
                group: group(g)?,
                user: UserName::parse("user", user)?,
            },
            WriteChange::NestGroup { group: g, parent } => Change::NestGroup {
                group: group(g)?,
                parent: GroupName::parse("parent", parent)?,
            },
            WriteChange::UnnestGroup { group: g, parent } => Change::UnnestGroup {
                group: group(g)?,
                parent: GroupName::parse("parent", parent)?,
            },
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct WriteResponse {
    success: bool,
    /// Whether any change changed the tenant; its revision moved by one if so.
    changed: bool,
    revision: u64,
    /// One per change, in order.
    results: Vec<WriteResult>,
}

#[derive(Serialize, ToSchema)]
pub struct WriteResult {
    /// Whether this change changed something.
    changed: bool,
}

#[utoipa::path(
    post,
    path = "/write",
    tag = "writes",
    summary = "many changes at once, in order, all or none, as one revision",
    request_body = WriteRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every change made, or none", body = WriteResponse),
        (status = 404, response = NotFound),
        (status = 409, response = WriteRefused),
    )
)]
pub async fn write(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject<MAX_BATCH_BYTES>,
) -> Result<Json<WriteResponse>, ApiError> {
    let request: WriteRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    let tenant = caller.tenant("tenant", &request.tenant)?;
    if request.changes.is_empty() || request.changes.len() > MAX_CHANGES {
        return Err(ApiError::InvalidRequest(format!(
            "`changes` must list 1 to {MAX_CHANGES} changes, not {}",
            request.changes.len()
        )));
    }
    let changes = request
        .changes
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            // serde would also read a change from an array led by its op.
            if !raw.get().starts_with('{') {
                return Err(
                    ApiError::InvalidRequest("a change must be a JSON object".into())
                        .of_change(index),
                );
            }
            serde_json::from_str::<WriteChange>(raw.get())
                .map_err(|e| ApiError::InvalidRequest(e.to_string()))
                .and_then(|change| change.change())
                .map_err(|e| e.of_change(index))
        })
        .collect::<Result<Vec<Change>, ApiError>>()?;
    super::request::write_begun();
    let written = state
        .app
        .write_many(&tenant, changes, request.if_revision, caller.actor())
        .await?;
    Ok(Json(WriteResponse {
        success: true,
        changed: written.changed,
        revision: written.revision,
        results: written
            .results
            .into_iter()
            .map(|changed| WriteResult { changed })
            .collect(),
    }))
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

/// A permission as a request names it, in its fields `resource` and `action`.
pub(super) fn permission(resource: &str, action: &str) -> Result<Permission, ApiError> {
    Ok(Permission {
        resource: Resource::parse("resource", resource)?,
        action: Action::parse("action", action)?,
    })
}

/// When a membership ends, as a request's `expires_at` says (RFC 3339), if it does.
pub(super) fn end(expires_at: Option<&str>) -> Result<Option<UnixMillis>, ApiError> {
    expires_at
        .map(|at| parse_instant("expires_at", at))
        .transpose()
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
                permission(&self.resource, &self.action)?,
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
                end(self.expires_at.as_deref())?,
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
