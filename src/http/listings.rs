//! The paged listings of a tenant: its groups, a group's permissions and members, who can do
//! an action on a resource, and what one user gets. Each page is read from one snapshot.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::QueryParams;
use super::page::Paging;
use super::responses::NotFound;
use super::state::AppState;
use super::timestamp::instant;
use crate::cache::Snapshot;
use crate::clock;
use crate::policy::{
    Action, GroupName, NameError, Nestings, Page, Permission, Resource, TenantName, UserItem,
    UserName,
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GroupsQuery {
    tenant: String,
    /// Groups per page, 1 to 1000; 100 if absent.
    #[serde(default)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`, to resume after it; absent for the first page.
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupsResponse {
    tenant: String,
    revision: u64,
    /// Sorted by name.
    groups: Vec<GroupSummaryBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupSummaryBody {
    name: String,
    permission_count: usize,
    member_count: usize,
}

/// The query of the listings of one group's contents.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GroupQuery {
    tenant: String,
    group: String,
    /// Items per page, 1 to 1000; 100 if absent.
    #[serde(default)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`, to resume after it; absent for the first page.
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupPermissionsResponse {
    tenant: String,
    group: String,
    revision: u64,
    /// Sorted by resource, then action.
    permissions: Vec<PermissionBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PermissionBody {
    resource: String,
    action: String,
}

#[derive(Serialize, ToSchema)]
pub struct GroupMembersResponse {
    tenant: String,
    group: String,
    revision: u64,
    /// User names, sorted: every member, those whose membership has ended included.
    members: Vec<String>,
    /// Those of `members` whose membership ends, with when, and whether it has ended (checks
    /// deny what it granted from that instant on, until it is assigned again or removed).
    expiring: Vec<MemberEnd>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A membership that ends.
#[derive(Serialize, ToSchema)]
pub struct MemberEnd {
    user: String,
    /// When it ends: RFC 3339 in UTC, to the millisecond.
    #[schema(format = DateTime)]
    expires_at: String,
    /// Whether that is past, by this instance's clock.
    expired: bool,
}

/// One of a user's memberships that ends.
#[derive(Serialize, ToSchema)]
pub struct GroupEnd {
    group: String,
    /// When it ends: RFC 3339 in UTC, to the millisecond.
    #[schema(format = DateTime)]
    expires_at: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    tenant: String,
    user: String,
    /// Groups and permissions per page, together, 1 to 1000; 100 if absent.
    #[serde(default)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`, to resume after it; absent for the first page.
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    tenant: String,
    user: String,
    revision: u64,
    /// The user's groups on this page, sorted, those the user is in through nesting only
    /// included; every group comes before any permission.
    groups: Vec<String>,
    /// Those of `groups` that the user is in through nesting only: a member of a group
    /// nested in them, directly or not, and not of them.
    inherited_groups: Vec<String>,
    /// Those of `groups` the user is a member of until a given instant.
    expiring: Vec<GroupEnd>,
    /// The permissions on this page, sorted by resource, action, then group.
    permissions: Vec<GrantBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GrantBody {
    resource: String,
    action: String,
    group: String,
}

#[utoipa::path(
    get,
    path = "/groups",
    tag = "reads",
    summary = "a page of a tenant's groups, with their sizes",
    params(GroupsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` groups, sorted by name", body = GroupsResponse),
    )
)]
pub async fn groups(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<GroupsQuery>,
) -> Result<Json<GroupsResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &query.tenant)?;
    let scope = ["/groups", tenant.as_str()];
    let paging = Paging::new(&scope, query.limit, query.cursor.as_deref(), |[group]| {
        GroupName::parse("cursor", group)
    })?;
    let page = async |snapshot: Arc<Snapshot>, after: Option<GroupName>, limit| {
        Ok(snapshot.policy.group_page(after.as_ref(), limit))
    };
    let listed = listing(&state, &tenant, query.min_revision, paging, page, |last| {
        [last.name.as_str()]
    })
    .await?;
    Ok(Json(GroupsResponse {
        tenant: tenant.to_string(),
        revision: listed.revision,
        groups: listed
            .items
            .into_iter()
            .map(|g| GroupSummaryBody {
                name: g.name,
                permission_count: g.permission_count,
                member_count: g.member_count,
            })
            .collect(),
        next_cursor: listed.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/group-permissions",
    tag = "reads",
    summary = "a page of one group's permissions",
    params(GroupQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` permissions, sorted by resource, then action", body = GroupPermissionsResponse),
        (status = 404, response = NotFound),
    )
)]
pub async fn group_permissions(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<GroupQuery>,
) -> Result<Json<GroupPermissionsResponse>, ApiError> {
    let (tenant, group) = query.names(&caller)?;
    let scope = ["/group-permissions", tenant.as_str(), group.as_str()];
    let cursor = query.cursor.as_deref();
    let paging = Paging::new(&scope, query.limit, cursor, |[resource, action]| {
        Ok::<_, NameError>(Permission {
            resource: Resource::parse("cursor", resource)?,
            action: Action::parse("cursor", action)?,
        })
    })?;
    let page = async |snapshot: Arc<Snapshot>, after: Option<Permission>, limit| {
        (snapshot.policy)
            .permission_page(&group, after.as_ref(), limit)
            .ok_or_else(|| ApiError::no_group(&group))
    };
    let listed = listing(
        &state,
        &tenant,
        query.min_revision,
        paging,
        page,
        |(r, a)| [r.as_str(), a.as_str()],
    )
    .await?;
    Ok(Json(GroupPermissionsResponse {
        tenant: tenant.to_string(),
        group: group.to_string(),
        revision: listed.revision,
        permissions: listed
            .items
            .into_iter()
            .map(|(resource, action)| PermissionBody { resource, action })
            .collect(),
        next_cursor: listed.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/group-members",
    tag = "reads",
    summary = "a page of one group's members",
    params(GroupQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` user names, sorted", body = GroupMembersResponse),
        (status = 404, response = NotFound),
    )
)]
pub async fn group_members(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<GroupQuery>,
) -> Result<Json<GroupMembersResponse>, ApiError> {
    let (tenant, group) = query.names(&caller)?;
    let scope = ["/group-members", tenant.as_str(), group.as_str()];
    let paging = Paging::new(&scope, query.limit, query.cursor.as_deref(), |[user]| {
        UserName::parse("cursor", user)
    })?;
    let page = async |snapshot: Arc<Snapshot>, after: Option<UserName>, limit| {
        let group_name = group.clone();
        off_the_checks(move || {
            let policy = &snapshot.policy;
            let page = policy.member_page(&group_name, after.as_ref(), limit)?;
            // Each member with the end of its membership, if it ends.
            Some(page.map(|user| {
                let end = policy.membership_end(&user, group_name.as_str());
                (user, end)
            }))
        })
        .await?
        .ok_or_else(|| ApiError::no_group(&group))
    };
    let listed = listing(
        &state,
        &tenant,
        query.min_revision,
        paging,
        page,
        |(last, _)| [last.as_str()],
    )
    .await?;
    let now = clock::now();
    let expiring = listed
        .items
        .iter()
        .filter_map(|(user, end)| {
            let end = (*end)?;
            Some(MemberEnd {
                user: user.clone(),
                expires_at: instant(end),
                expired: end <= now,
            })
        })
        .collect();
    Ok(Json(GroupMembersResponse {
        tenant: tenant.to_string(),
        group: group.to_string(),
        revision: listed.revision,
        members: listed.items.into_iter().map(|(user, _)| user).collect(),
        expiring,
        next_cursor: listed.next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct GroupParentsResponse {
    tenant: String,
    group: String,
    revision: u64,
    /// The groups `group` is nested in directly, sorted.
    parents: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupChildrenResponse {
    tenant: String,
    group: String,
    revision: u64,
    /// The groups nested in `group` directly, sorted.
    children: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/group-parents",
    tag = "reads",
    summary = "a page of the groups one group is nested in",
    params(GroupQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` group names, sorted", body = GroupParentsResponse),
        (status = 404, response = NotFound),
    )
)]
pub async fn group_parents(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<GroupQuery>,
) -> Result<Json<GroupParentsResponse>, ApiError> {
    let (tenant, group) = query.names(&caller)?;
    let listed = nesting_page(
        &state,
        &query,
        &tenant,
        &group,
        "/group-parents",
        Nestings::Parents,
    )
    .await?;
    Ok(Json(GroupParentsResponse {
        tenant: tenant.to_string(),
        group: group.to_string(),
        revision: listed.revision,
        parents: listed.items,
        next_cursor: listed.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/group-children",
    tag = "reads",
    summary = "a page of the groups nested in one group",
    params(GroupQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` group names, sorted", body = GroupChildrenResponse),
        (status = 404, response = NotFound),
    )
)]
pub async fn group_children(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<GroupQuery>,
) -> Result<Json<GroupChildrenResponse>, ApiError> {
    let (tenant, group) = query.names(&caller)?;
    let listed = nesting_page(
        &state,
        &query,
        &tenant,
        &group,
        "/group-children",
        Nestings::Children,
    )
    .await?;
    Ok(Json(GroupChildrenResponse {
        tenant: tenant.to_string(),
        group: group.to_string(),
        revision: listed.revision,
        children: listed.items,
        next_cursor: listed.next_cursor,
    }))
}

/// A page of a group's parents or children.
async fn nesting_page(
    state: &AppState,
    query: &GroupQuery,
    tenant: &TenantName,
    group: &GroupName,
    route: &str,
    which: Nestings,
) -> Result<Listed<String>, ApiError> {
    let scope = [route, tenant.as_str(), group.as_str()];
    let paging = Paging::new(&scope, query.limit, query.cursor.as_deref(), |[name]| {
        GroupName::parse("cursor", name)
    })?;
    let page = async |snapshot: Arc<Snapshot>, after: Option<GroupName>, limit| {
        (snapshot.policy)
            .nesting_page(group, which, after.as_ref(), limit)
            .ok_or_else(|| ApiError::no_group(group))
    };
    listing(state, tenant, query.min_revision, paging, page, |last| {
        [last.as_str()]
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WhoCanQuery {
    tenant: String,
    /// The resource, taken literally, as in a check.
    resource: String,
    /// The action, taken literally, as in a check.
    action: String,
    /// Users per page, 1 to 1000; 100 if absent.
    #[serde(default)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`, to resume after it; absent for the first page.
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct WhoCanResponse {
    tenant: String,
    revision: u64,
    /// The users a check allows, sorted.
    users: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/who-can",
    tag = "reads",
    summary = "a page of the users allowed an action on a resource",
    params(WhoCanQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` user names, sorted: every user a check allows", body = WhoCanResponse),
    )
)]
pub async fn who_can(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<WhoCanQuery>,
) -> Result<Json<WhoCanResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &query.tenant)?;
    let resource = Resource::parse("resource", &query.resource)?;
    let action = Action::parse("action", &query.action)?;
    let scope = [
        "/who-can",
        tenant.as_str(),
        resource.as_str(),
        action.as_str(),
    ];
    let paging = Paging::new(&scope, query.limit, query.cursor.as_deref(), |[user]| {
        UserName::validate("cursor", user).map(str::to_owned)
    })?;
    let (asked_resource, asked_action) = (resource.clone(), action.clone());
    let page = async |snapshot: Arc<Snapshot>, after: Option<String>, limit| {
        off_the_checks(move || {
            let (resource, action) = (asked_resource.as_str(), asked_action.as_str());
            let now = clock::now();
            (snapshot.policy).who_can(resource, action, "", after.as_deref(), limit, now)
        })
        .await
    };
    let listed = listing(&state, &tenant, query.min_revision, paging, page, |last| {
        [last.as_str()]
    })
    .await?;
    Ok(Json(WhoCanResponse {
        tenant: tenant.to_string(),
        revision: listed.revision,
        users: listed.items,
        next_cursor: listed.next_cursor,
    }))
}

/// Runs `list` on a thread for blocking work: a listing that reads the members of a group of a
/// million would hold up the checks queued behind it on this worker thread for milliseconds.
pub(super) async fn off_the_checks<T: Send + 'static>(
    list: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(list).await.map_err(|e| {
        tracing::error!(error = %e, "a listing failed");
        ApiError::Internal
    })
}

#[utoipa::path(
    get,
    path = "/user-permissions",
    tag = "reads",
    summary = "a page of one user's groups and permissions",
    params(UserQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` of the user's groups, then of the permissions they give", body = UserResponse),
    )
)]
pub async fn user_permissions(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<UserQuery>,
) -> Result<Json<UserResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &query.tenant)?;
    let user = UserName::parse("user", &query.user)?;
    let scope = ["/user-permissions", tenant.as_str(), user.as_str()];
    let paging = Paging::new(&scope, query.limit, query.cursor.as_deref(), |names| {
        resumed_user_item(names)
    })?;
    let page = async |snapshot: Arc<Snapshot>, after: Option<UserItem<String>>, limit| {
        let after = after.as_ref().map(|item| match item {
            UserItem::Group(group) => UserItem::Group(group.as_str()),
            UserItem::Permission {
                resource,
                action,
                group,
            } => UserItem::Permission {
                resource: resource.as_str(),
                action: action.as_str(),
                group: group.as_str(),
            },
        });
        let policy = &snapshot.policy;
        let now = clock::now();
        let page = policy.user_page(user.as_str(), after.as_ref(), limit, now);
        // Whether each group on the page comes through nesting only, and when the user's
        // own membership in it ends, if it does.
        Ok(page.map(|item| {
            let (inherited, end) = match &item {
                UserItem::Group(group) => {
                    let inherited = !policy.is_direct_member(user.as_str(), group, now);
                    let end = policy.membership_end(user.as_str(), group);
                    (inherited, end.filter(|_| !inherited))
                }
                UserItem::Permission { .. } => (false, None),
            };
            (item, inherited, end)
        }))
    };
    let listed = listing(
        &state,
        &tenant,
        query.min_revision,
        paging,
        page,
        |(last, _, _)| match last {
            UserItem::Group(group) => ["group", group.as_str(), "", ""],
            UserItem::Permission {
                resource,
                action,
                group,
            } => [
                "permission",
                resource.as_str(),
                action.as_str(),
                group.as_str(),
            ],
        },
    )
    .await?;
    let mut groups = Vec::new();
    let mut inherited_groups = Vec::new();
    let mut expiring = Vec::new();
    let mut permissions = Vec::new();
    for (item, inherited, end) in listed.items {
        match item {
            UserItem::Group(group) => {
                if inherited {
                    inherited_groups.push(group.clone());
                }
                if let Some(end) = end {
                    expiring.push(GroupEnd {
                        group: group.clone(),
                        expires_at: instant(end),
                    });
                }
                groups.push(group);
            }
            UserItem::Permission {
                resource,
                action,
                group,
            } => permissions.push(GrantBody {
                resource,
                action,
                group,
            }),
        }
    }
    Ok(Json(UserResponse {
        tenant: tenant.to_string(),
        user: user.to_string(),
        revision: listed.revision,
        groups,
        inherited_groups,
        expiring,
        permissions,
        next_cursor: listed.next_cursor,
    }))
}

/// The item of a user's listing that a cursor names: `group` and a group's name, or
/// `permission` and the resource, action and group.
fn resumed_user_item([kind, a, b, c]: [&str; 4]) -> Result<UserItem<String>, Option<NameError>> {
    let group = |name: &str| GroupName::parse("cursor", name).map(|g| g.to_string());
    match kind {
        "group" => Ok(UserItem::Group(group(a)?)),
        "permission" => Ok(UserItem::Permission {
            resource: Resource::parse("cursor", a)?.to_string(),
            action: Action::parse("cursor", b)?.to_string(),
            group: group(c)?,
        }),
        _ => Err(None),
    }
}

/// One page of a listing, at the revision it was read at.
struct Listed<T> {
    revision: u64,
    items: Vec<T>,
    /// Resumes after the page's last item; None on the last page.
    next_cursor: Option<String>,
}

/// What every listing does: reads the tenant at the requested revision, lets `page` make the
/// page after the cursor's item from that one snapshot, and names the page's last item (with
/// `names`) in the cursor of the next.
async fn listing<C, T, const N: usize>(
    state: &AppState,
    tenant: &TenantName,
    min_revision: Option<u64>,
    mut paging: Paging<'_, C>,
    page: impl AsyncFnOnce(Arc<Snapshot>, Option<C>, usize) -> Result<Page<T>, ApiError>,
    names: impl FnOnce(&T) -> [&str; N],
) -> Result<Listed<T>, ApiError> {
    let snapshot = state.app.read(tenant, min_revision).await?;
    let revision = snapshot.revision();
    let page = page(snapshot, paging.after.take(), paging.limit).await?;
    let next_cursor = paging.next_cursor(&page, names);
    Ok(Listed {
        revision,
        items: page.items,
        next_cursor,
    })
}

impl GroupQuery {
    /// The tenant, which the caller must reach, and the group.
    fn names(&self, caller: &Caller) -> Result<(TenantName, GroupName), ApiError> {
        Ok((
            caller.tenant("tenant", &self.tenant)?,
            GroupName::parse("group", &self.group)?,
        ))
    }
}
