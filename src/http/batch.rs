//! `POST /check-access/batch`: up to 1,000 checks in one request, each answered as the single
//! check would be, the checks of one tenant from one snapshot.
//!
//! A check that cannot be answered (a bad name, a tenant out of the credential's reach, a
//! `min_revision` the store has not reached) gets an error in its place and the others are
//! answered; only a body that is not a list of check objects is refused whole. Each check is
//! read on its own from the raw list, so that one check's missing field is that check's error.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorDetail};
use super::extract::JsonObject;
use super::reads::{BecauseBody, CheckRequest, CheckResponse};
use super::state::AppState;
use crate::app::{Answer, AppError, Question};
use crate::policy::{Action, Resource, TenantName, UserName};

/// The most checks in one batch.
pub const MAX_CHECKS: usize = 1000;

/// The body limit of a batch: 1,000 checks whose four names are each of the longest allowed
/// (256 bytes), with room for their JSON.
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// The most permissions the explanations of one batch list in all. Each check's list is
/// whole or absent, and its size is the tenant's to make: without a bound, a user in
/// thousands of groups that share a grant would make a thousand checks an answer of
/// millions of entries.
pub const MAX_EXPLAINED: usize = 10_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest<'a> {
    /// 1 to 1,000 checks, each as the body of `POST /check-access`.
    #[serde(borrow)]
    #[schema(value_type = Vec<CheckRequest>)]
    checks: Vec<&'a RawValue>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    /// One per check, in the order of the checks.
    results: Vec<BatchResult>,
}

/// A check's answer, as `POST /check-access` gives it; or, for a check that could not be
/// answered, `allowed: false` and the error it would have had on its own.
#[derive(Serialize, ToSchema)]
pub struct BatchResult {
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    because: Option<Vec<BecauseBody>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

impl BatchResult {
    fn answered(answer: Answer, because: Option<Vec<crate::policy::Because>>) -> Self {
        let CheckResponse {
            allowed,
            revision,
            because,
        } = CheckResponse::new(answer, because);
        Self {
            allowed,
            revision: Some(revision),
            because,
            error: None,
        }
    }

    fn failed(error: &ApiError) -> Self {
        Self {
            allowed: false,
            revision: None,
            because: None,
            error: Some(error.detail()),
        }
    }
}

/// One check as the batch lists it; its names are borrowed from the body where they need no
/// unescaping.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    #[serde(borrow)]
    tenant: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    user: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    resource: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    #[serde(default)]
    min_revision: Option<u64>,
    #[serde(default)]
    explain: bool,
}

/// A check that parsed and whose names are valid, with its place in the batch.
struct Placed<'i, 'a> {
    at: usize,
    item: &'i Item<'a>,
    question: Question<'i>,
}

impl Item<'_> {
    fn question(&self) -> Result<Question<'_>, ApiError> {
        Ok(Question {
            user: UserName::validate("user", &self.user)?,
            resource: Resource::validate("resource", &self.resource)?,
            action: Action::validate("action", &self.action)?,
        })
    }
}

#[utoipa::path(
    post,
    path = "/check-access/batch",
    tag = "reads",
    summary = "many checks at once, each tenant's from one snapshot",
    request_body = BatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One result per check, in order", body = BatchResponse),
    )
)]
pub async fn check_batch(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject<MAX_BATCH_BYTES>,
) -> Result<Json<BatchResponse>, ApiError> {
    let request: BatchRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    if request.checks.is_empty() || request.checks.len() > MAX_CHECKS {
        return Err(ApiError::InvalidRequest(format!(
            "`checks` must list 1 to {MAX_CHECKS} checks, not {}",
            request.checks.len()
        )));
    }
    if let Some(at) = request
        .checks
        .iter()
        .position(|raw| !raw.get().starts_with('{'))
    {
        return Err(ApiError::InvalidRequest(format!(
            "`checks[{at}]` must be a JSON object"
        )));
    }
    let items: Vec<Result<Item, ApiError>> = request
        .checks
        .iter()
        .map(|raw| {
            serde_json::from_str::<Item>(raw.get())
                .map_err(|e| ApiError::InvalidRequest(format!("invalid check: {e}")))
        })
        .collect();

    // The checks of each tenant, in the order the tenants first appear; the others' errors.
    // Each check is validated here, once.
    let mut tenants: Vec<(TenantName, Vec<Placed>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(items.len());
    for (at, item) in items.iter().enumerate() {
        let placed = item.as_ref().map_err(BatchResult::failed).and_then(|item| {
            let question = item.question().map_err(|e| BatchResult::failed(&e))?;
            let placed = Placed { at, item, question };
            let tenant = caller
                .tenant_str("tenant", &item.tenant)
                .map_err(|e| BatchResult::failed(&e))?;
            if let Some(&slot) = index.get(tenant) {
                return Ok((slot, placed));
            }
            let name =
                TenantName::parse("tenant", tenant).map_err(|e| BatchResult::failed(&e.into()))?;
            tenants.push((name, Vec::new()));
            index.insert(tenant, tenants.len() - 1);
            Ok((tenants.len() - 1, placed))
        });
        match placed {
            Ok((slot, placed)) => {
                tenants[slot].1.push(placed);
                results.push(None);
            }
            Err(failed) => results.push(Some(failed)),
        }
    }

    let mut explained = 0;
    for (tenant, checks) in &tenants {
        let wanted = checks
            .iter()
            .filter_map(|check| check.item.min_revision)
            .max();
        let snapshot = match state.app.snapshot_for_checks(tenant, wanted).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                let error = ApiError::from(e);
                for check in checks {
                    results[check.at] = Some(BatchResult::failed(&error));
                }
                continue;
            }
        };
        for &Placed { at, item, question } in checks {
            if let Some(requested) = item.min_revision.filter(|&r| r > snapshot.revision()) {
                let error = ApiError::from(AppError::RevisionNotReached {
                    tenant: tenant.clone(),
                    requested,
                    current: snapshot.revision(),
                });
                results[at] = Some(BatchResult::failed(&error));
                continue;
            }
            let result = if item.explain {
                let (answer, because) = Answer::explained(&snapshot, question);
                if explained + because.len() > MAX_EXPLAINED {
                    BatchResult::failed(&ApiError::InvalidRequest(format!(
                        "the explanations of one batch list at most {MAX_EXPLAINED} permissions \
                         in all, and this check's would pass that: ask for it on its own"
                    )))
                } else {
                    explained += because.len();
                    BatchResult::answered(answer, Some(because))
                }
            } else {
                BatchResult::answered(Answer::from(&snapshot, question), None)
            };
            results[at] = Some(result);
        }
    }
    Ok(Json(BatchResponse {
        results: results
            .into_iter()
            // Every check was given a result above: either its error, or its tenant's answer.
            .map(|result| result.unwrap_or_else(|| BatchResult::failed(&ApiError::Internal)))
            .collect(),
    }))
}
