//! Access evaluation: one decision, or a batch of them from one snapshot of the tenant.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::model::{self, EvaluationRequest, EvaluationsRequest, Semantic};
use super::{AtRoot, Body, InTenant, TAG};
use crate::app::Answer;
use crate::http::batch::{MAX_BATCH_BYTES, MAX_CHECKS};
use crate::http::error::{ApiError, ErrorDetail};
use crate::http::extract::MAX_BODY_BYTES;
use crate::http::reads;
use crate::http::state::AppState;
use crate::policy::TenantName;

/// A decision: `true` permits the request, `false` denies it.
#[derive(Serialize, ToSchema)]
pub struct Decision {
    decision: bool,
    /// Only on an evaluation of a batch that could not be made: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Failure>,
}

#[derive(Serialize, ToSchema)]
pub struct Failure {
    error: ItemError,
}

/// The error the evaluation would have had on its own: its status, code and message.
#[derive(Serialize, ToSchema)]
pub struct ItemError {
    status: u16,
    #[serde(flatten)]
    detail: ErrorDetail,
}

impl Decision {
    fn of(answer: Answer) -> Self {
        Self {
            decision: answer.allowed,
            context: None,
        }
    }

    fn failed(error: &ApiError) -> Self {
        Self {
            decision: false,
            context: Some(Failure {
                error: ItemError {
                    status: error.status().as_u16(),
                    detail: error.detail(),
                },
            }),
        }
    }
}

/// The decisions of a batch in the order of its evaluations, or one decision when the body
/// was one evaluation.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Decisions {
    Each { evaluations: Vec<Decision> },
    One(Decision),
}

#[utoipa::path(
    post,
    path = "/tenants/{tenant}/access/v1/evaluation",
    tag = TAG,
    summary = "may this subject do this action on this resource?",
    params(("tenant" = String, Path, description = "The tenant: the policy decision point")),
    request_body = EvaluationRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "The decision", body = Decision))
)]
pub async fn evaluation(
    State(state): State<AppState>,
    InTenant(tenant): InTenant,
    Body(body): Body<MAX_BODY_BYTES>,
) -> Result<Json<Decision>, ApiError> {
    one(&state, &tenant, &model::parse(&body)?).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/access/v1/evaluation",
    tag = TAG,
    summary = "an evaluation for the tenant of the credential, or the default tenant",
    request_body = EvaluationRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "The decision", body = Decision))
)]
pub async fn evaluation_at_root(
    State(state): State<AppState>,
    AtRoot(tenant): AtRoot,
    Body(body): Body<MAX_BODY_BYTES>,
) -> Result<Json<Decision>, ApiError> {
    one(&state, &tenant, &model::parse(&body)?).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/tenants/{tenant}/access/v1/evaluations",
    tag = TAG,
    summary = "many evaluations at once, from one snapshot of the tenant",
    params(("tenant" = String, Path, description = "The tenant: the policy decision point")),
    request_body = EvaluationsRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "One decision per evaluation, in order", body = Decisions))
)]
pub async fn evaluations(
    State(state): State<AppState>,
    InTenant(tenant): InTenant,
    Body(body): Body<MAX_BATCH_BYTES>,
) -> Result<Json<Decisions>, ApiError> {
    many(&state, &tenant, &body).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/access/v1/evaluations",
    tag = TAG,
    summary = "evaluations for the tenant of the credential, or the default tenant",
    request_body = EvaluationsRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "One decision per evaluation, in order", body = Decisions))
)]
pub async fn evaluations_at_root(
    State(state): State<AppState>,
    AtRoot(tenant): AtRoot,
    Body(body): Body<MAX_BATCH_BYTES>,
) -> Result<Json<Decisions>, ApiError> {
    many(&state, &tenant, &body).await.map(Json)
}

/// One evaluation, answered as the native check answers it.
async fn one(
    state: &AppState,
    tenant: &TenantName,
    request: &EvaluationRequest,
) -> Result<Decision, ApiError> {
    let asked = model::asked(
        request.subject.as_ref(),
        request.action.as_ref(),
        request.resource.as_ref(),
    )?;
    let answer = reads::answer(state, tenant.as_str(), asked.question(), None).await?;
    Ok(Decision::of(answer))
}

/// A batch: each evaluation with the request's entities as defaults, in order, until the
/// semantic says to stop.
async fn many(state: &AppState, tenant: &TenantName, body: &[u8]) -> Result<Decisions, ApiError> {
    let request: EvaluationsRequest = model::parse(body)?;
    let items = request.evaluations.as_deref().unwrap_or_default();
    if items.is_empty() {
        let single = EvaluationRequest {
            subject: request.subject,
            action: request.action,
            resource: request.resource,
            context: None,
        };
        return Ok(Decisions::One(one(state, tenant, &single).await?));
    }
    if items.len() > MAX_CHECKS {
        return Err(ApiError::InvalidRequest(format!(
            "`evaluations` may list at most {MAX_CHECKS} evaluations, not {}",
            items.len()
        )));
    }
    let semantic = request
        .options
        .as_ref()
        .and_then(|options| options.evaluations_semantic)
        .unwrap_or_default();
    let snapshot = state.app.snapshot_for_checks(tenant, None).await?;
    let mut evaluations = Vec::with_capacity(items.len());
    for raw in items {
        // serde would also read a struct from an array, its elements as the fields in order.
        let item = match raw.get().starts_with('{') {
            true => serde_json::from_str::<EvaluationRequest>(raw.get()).map_err(|e| e.to_string()),
            false => Err("an evaluation must be a JSON object".to_owned()),
        };
        let decision = match item {
            Err(e) => Decision::failed(&ApiError::InvalidRequest(format!(
                "invalid evaluation: {e}"
            ))),
            Ok(item) => match model::asked(
                item.subject.as_ref().or(request.subject.as_ref()),
                item.action.as_ref().or(request.action.as_ref()),
                item.resource.as_ref().or(request.resource.as_ref()),
            ) {
                Ok(asked) => Decision::of(Answer::from(&snapshot, asked.question())),
                Err(e) => Decision::failed(&e),
            },
        };
        let last = match semantic {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !decision.decision,
            Semantic::PermitOnFirstPermit => decision.decision,
        };
        evaluations.push(decision);
        if last {
            break;
        }
    }
    Ok(Decisions::Each { evaluations })
}
