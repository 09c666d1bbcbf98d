//! The check: may this user do this action on this resource, and why. Answered from the
//! cache; see `batch.rs` for many at once and `listings.rs` for what a tenant holds.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::state::AppState;
use crate::app::{Answer, Question};
use crate::policy::{Action, Because, Resource, TenantName, UserName};

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
    /// Also say why: the permissions the answer comes from.
    #[serde(default)]
    explain: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CheckResponse {
    pub(super) allowed: bool,
    pub(super) revision: u64,
    /// With `explain` only: every permission of a group of the user that matches the
    /// request, sorted by group, resource and action; empty when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) because: Option<Vec<BecauseBody>>,
}

/// A permission an allowed check comes from: the user's group that holds it, and its
/// patterns.
#[derive(Serialize, ToSchema)]
pub struct BecauseBody {
    group: String,
    resource: String,
    action: String,
    /// Only when the user has `group` through nesting: the shortest chain of groups from one
    /// the user is a member of up to `group`, both included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    through: Vec<String>,
}

impl From<Because> for BecauseBody {
    fn from(because: Because) -> Self {
        Self {
            group: because.group.to_string(),
            resource: because.resource,
            action: because.action,
            through: because.through.iter().map(ToString::to_string).collect(),
        }
    }
}

impl CheckResponse {
    pub fn new(answer: Answer, because: Option<Vec<Because>>) -> Self {
        Self {
            allowed: answer.allowed,
            revision: answer.revision,
            because: because.map(|because| because.into_iter().map(BecauseBody::from).collect()),
        }
    }
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
    let tenant = caller.tenant_str("tenant", &req.tenant)?;
    let question = Question {
        user: UserName::validate("user", &req.user)?,
        resource: Resource::validate("resource", &req.resource)?,
        action: Action::validate("action", &req.action)?,
    };
    if req.explain {
        let tenant = TenantName::parse("tenant", tenant)?;
        let (answer, because) = state
            .app
            .explain(&tenant, question, req.min_revision)
            .await?;
        return Ok(Json(CheckResponse::new(answer, Some(because))));
    }
    let answer = answer(state, tenant, question, req.min_revision).await?;
    Ok(Json(CheckResponse::new(answer, None)))
}

/// The answer to a valid question about a tenant the caller reaches: from the cache when it
/// holds the tenant at `min_revision`, else once the tenant is loaded.
pub(super) async fn answer(
    state: &AppState,
    tenant: &str,
    question: Question<'_>,
    min_revision: Option<u64>,
) -> Result<Answer, ApiError> {
    if let Some(answered) = state.app.check_cached(tenant, question, min_revision) {
        return Ok(answered);
    }
    let tenant = TenantName::parse("tenant", tenant)?;
    // A check gets its span when it first waits (request.rs), and a load from a store that
    // answers at once may never wait: wait once on purpose, so that what the load logs is in
    // the span of the check it holds up.
    tokio::task::yield_now().await;
    Ok(state
        .app
        .check_loaded(&tenant, question, min_revision)
        .await?)
}
