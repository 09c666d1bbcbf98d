//! The change feed: a tenant's changelog, page by page, with who made each change and when.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::QueryParams;
use super::page;
use super::responses::ChangesExpired;
use super::state::AppState;
use super::timestamp::{instant, timestamp};
use crate::policy::{Change, Operation, TenantName};
use crate::store::Recorded;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    tenant: String,
    /// The changes after this revision; 0 (every change kept) if absent.
    #[serde(default)]
    after: u64,
    /// Revisions per page (a `/write`'s changes are one), 1 to 1000; 100 if absent.
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    min_revision: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ChangesResponse {
    tenant: String,
    /// The tenant's current revision.
    revision: u64,
    /// Oldest first, the changes of each revision after `after`: one, or those of a `/write`.
    changes: Vec<ChangeBody>,
    /// Pass as `after` for the next page; null when this page reaches `revision`.
    #[schema(required = true)]
    next_after: Option<u64>,
}

/// One change: the revision it made, what it did, and who made it when. The fields an
/// operation does not touch are absent.
#[derive(Serialize, ToSchema)]
pub struct ChangeBody {
    /// Present in `tenant=*` watch streams only.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    revision: u64,
    #[schema(value_type = String, example = "add-permission")]
    operation: Operation,
    group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    /// With `nest-group` and `unnest-group`: the group `group` was nested in or taken out of.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    /// With `assign-user`, when the membership it made ends, if it does: RFC 3339 in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// In watch streams only: whether this is the last change of its revision (a `/write`
    /// makes several under one). A client resumes after the last revision it had whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_revision: Option<bool>,
    /// The credential behind the change: `key:<id>` or `token:<fingerprint>`; null when
    /// writes were open.
    #[schema(required = true)]
    actor: Option<String>,
    /// The `SERVER_ID` of the instance that made it.
    server_id: String,
    /// When it committed, by the store's clock: RFC 3339 in UTC, to the millisecond.
    #[schema(format = DateTime)]
    at: String,
}

impl ChangeBody {
    pub fn new(recorded: Recorded) -> Self {
        let (user, resource, action) = match recorded.change {
            Change::CreateGroup { .. } | Change::DeleteGroup { .. } => (None, None, None),
            Change::AddPermission { ref permission, .. }
            | Change::RemovePermission { ref permission, .. } => (
                None,
                Some(permission.resource.to_string()),
                Some(permission.action.to_string()),
            ),
            Change::AssignUser { ref user, .. } | Change::UnassignUser { ref user, .. } => {
                (Some(user.to_string()), None, None)
            }
            Change::NestGroup { .. } | Change::UnnestGroup { .. } => (None, None, None),
        };
        Self {
            tenant: None,
            revision: recorded.revision,
            operation: recorded.change.operation(),
            group: recorded.change.group().to_string(),
            user,
            resource,
            action,
            parent: recorded.change.parent().map(ToString::to_string),
            ends_revision: None,
            expires_at: match recorded.change {
                Change::AssignUser { expires_at, .. } => expires_at.map(instant),
                _ => None,
            },
            actor: recorded.actor,
            server_id: recorded.server_id,
            at: timestamp(recorded.at),
        }
    }

    /// The change as a watch stream sends it: saying whether it ends its revision.
    pub fn in_stream(self, ends_revision: bool) -> Self {
        Self {
            ends_revision: Some(ends_revision),
            ..self
        }
    }

    /// The change, naming its tenant.
    pub fn of(self, tenant: &TenantName) -> Self {
        Self {
            tenant: Some(tenant.to_string()),
            ..self
        }
    }
}

#[utoipa::path(
    get,
    path = "/changes",
    tag = "reads",
    summary = "a page of a tenant's changes, oldest first, with who made each",
    params(ChangesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changes of up to `limit` revisions after `after`, oldest first", body = ChangesResponse),
        (status = 410, response = ChangesExpired),
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ChangesQuery>,
) -> Result<Json<ChangesResponse>, ApiError> {
    let tenant = caller.tenant("tenant", &query.tenant)?;
    let limit = page::limit(query.limit)?;
    let log = state
        .app
        .changes(&tenant, query.after, limit, query.min_revision)
        .await?;
    let last = log.changes.last().map_or(query.after, |c| c.revision);
    Ok(Json(ChangesResponse {
        tenant: tenant.to_string(),
        revision: log.revision,
        next_after: (last < log.revision).then_some(last),
        changes: log.changes.into_iter().map(ChangeBody::new).collect(),
    }))
}
