//! A tenant's policy as one document: `GET /tenant-policy` exports it, every group with its
//! permissions, members (and when their memberships end) and the groups it is nested in, at
//! one revision.
//!
//! The body is written group by group as the client reads it, from the one snapshot: a
//! tenant of a million memberships is never copied whole into a second structure, nor into
//! one string.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::QueryParams;
use super::state::AppState;
use super::timestamp::instant;
use crate::policy::GroupView;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    tenant: String,
    #[serde(default)]
    min_revision: Option<u64>,
}

/// A whole tenant.
#[derive(Serialize, ToSchema)]
pub struct PolicyDocument {
    tenant: String,
    /// The revision the document was read at.
    revision: u64,
    /// Every group, sorted by name.
    groups: Vec<GroupDocument>,
}

/// A group, whole.
#[derive(Serialize, ToSchema)]
pub struct GroupDocument {
    name: String,
    /// Sorted by resource, then action.
    permissions: Vec<PermissionDocument>,
    /// Sorted by user.
    members: Vec<MemberDocument>,
    /// The groups it is nested in, sorted.
    parents: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PermissionDocument {
    resource: String,
    action: String,
}

#[derive(Serialize, ToSchema)]
pub struct MemberDocument {
    user: String,
    /// When the membership ends, if it does: RFC 3339 in UTC, to the millisecond.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

impl From<GroupView> for GroupDocument {
    fn from(view: GroupView) -> Self {
        let mut endings = view.endings.into_iter().peekable();
        let members = view
            .members
            .into_iter()
            .map(|user| {
                // Both are sorted by user: the end of a member's membership, if any, is next.
                let end = endings
                    .next_if(|(ending, _)| *ending == user)
                    .map(|(_, end)| instant(end));
                MemberDocument {
                    user,
                    expires_at: end,
                }
            })
            .collect();
        Self {
            name: view.name,
            permissions: view
                .permissions
                .into_iter()
                .map(|(resource, action)| PermissionDocument { resource, action })
                .collect(),
            members,
            parents: view.parents,
        }
    }
}

#[utoipa::path(
    get,
    path = "/tenant-policy",
    tag = "reads",
    summary = "a whole tenant as one document, at one revision",
    params(DocumentQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every group, whole, written as it is read", body = PolicyDocument),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<DocumentQuery>,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant("tenant", &query.tenant)?;
    let snapshot = state.app.read(&tenant, query.min_revision).await?;
    // `{"tenant":..,"revision":..,"groups":[`, each group, then `]}`.
    let opening = format!(
        "{{\"tenant\":{},\"revision\":{},\"groups\":[",
        serde_json::Value::from(tenant.as_str()),
        snapshot.revision()
    );
    let names = snapshot.policy.group_names();
    let views = names
        .into_iter()
        .filter_map(move |name| snapshot.policy.group_view(&name));
    let groups = futures_util::stream::iter(views.enumerate())
        .map(|(at, view)| Ok::<_, Infallible>(group_chunk(view, at)));
    let body = futures_util::stream::once(async move { Ok(Bytes::from(opening)) })
        .chain(groups)
        .chain(futures_util::stream::once(async {
            Ok(Bytes::from_static(b"]}"))
        }));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// One group of the document, with the comma before it but for the first.
fn group_chunk(view: GroupView, at: usize) -> Bytes {
    let mut chunk = if at == 0 { Vec::new() } else { vec![b','] };
    // Strings and arrays of them: nothing that fails to serialize.
    let _ = serde_json::to_writer(&mut chunk, &GroupDocument::from(view));
    Bytes::from(chunk)
}
