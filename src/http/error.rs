//! The API's errors and the one place they become responses.
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}`. Internal causes are logged
//! here, inside the request's span, and never sent to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppError;
use crate::policy::{GroupName, NameError, NestingProblem, NestingRefused};
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 400 invalid_request: bad JSON, a missing, unknown or ill-typed field, a bad name.
    InvalidRequest(String),
    /// 401 unauthorized: the bearer token is missing or wrong.
    Unauthorized,
    /// 403 forbidden: a valid credential without the role, tenant or scope the request needs.
    Forbidden(String),
    /// 404 not_found: no such route, or the group a write adds to does not exist.
    NotFound(String),
    /// 405 method_not_allowed: the route exists, the method does not.
    MethodNotAllowed,
    /// 409 revision_not_reached: min_revision is newer than the store.
    RevisionNotReached(String),
    /// 409 cycle: a nesting that would put a group inside itself.
    Cycle(String),
    /// 409 nesting_too_deep: a nesting that would make a chain of groups too long.
    NestingTooDeep(String),
    /// 409 revision_mismatch: a conditional write (`if_revision`) to a tenant that has moved.
    RevisionMismatch(String),
    /// 410 changes_expired: retention deleted changes after the revision asked from.
    ChangesExpired { message: String, oldest: u64 },
    /// 413 payload_too_large: the body is over the route's limit (64 KiB, or what it says).
    PayloadTooLarge(usize),
    /// 415 unsupported_media_type: a body of another type than the route takes, which this
    /// says (`JSON with ...`).
    UnsupportedMediaType(&'static str),
    /// 503 unavailable: the store cannot be reached, or (SQLite) its write lock could not be
    /// had in time; retrying later is safe.
    Unavailable,
    /// 503 unavailable: the request did not finish within REQUEST_TIMEOUT_SECS.
    TimedOut(std::time::Duration),
    /// 503 unavailable: WATCH_MAX_CLIENTS streams are open on this instance.
    TooManyWatchers(usize),
    /// 503 unavailable from /ready, saying why.
    NotReady(String),
    /// 500 internal: a bug or a broken store; the cause is in the log.
    Internal,
}

// Error responses are serialized from this struct, so that the schema /openapi.json gives for
// them is the body's own and cannot drift from it.
/// Every error: a stable `code` for programs and a `message` for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, meant for programs; each error response names the one it carries.
    code: &'static str,
    /// For people; may change.
    message: String,
    /// With `changes_expired` only: the oldest revision whose change can still be read (the
    /// tenant's next revision when none is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_revision: Option<u64>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::InvalidRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.clone()),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required".into(),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method".into(),
            ),
            ApiError::RevisionNotReached(m) => {
                (StatusCode::CONFLICT, "revision_not_reached", m.clone())
            }
            ApiError::Cycle(m) => (StatusCode::CONFLICT, "cycle", m.clone()),
            ApiError::NestingTooDeep(m) => (StatusCode::CONFLICT, "nesting_too_deep", m.clone()),
            ApiError::RevisionMismatch(m) => (StatusCode::CONFLICT, "revision_mismatch", m.clone()),
            ApiError::ChangesExpired { message, .. } => {
                (StatusCode::GONE, "changes_expired", message.clone())
            }
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {} KiB", limit / 1024),
            ),
            ApiError::UnsupportedMediaType(wanted) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the request body must be {wanted}"),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the policy store is unreachable or busy; retry later".into(),
            ),
            ApiError::TimedOut(timeout) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "the request did not finish within {} s; retry later",
                    timeout.as_secs()
                ),
            ),
            ApiError::TooManyWatchers(limit) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "this instance serves its maximum of {limit} watch streams \
                     (WATCH_MAX_CLIENTS); retry later or on another instance"
                ),
            ),
            ApiError::NotReady(reasons) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("not ready: {reasons}"),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong".into(),
            ),
        }
    }
}

impl ApiError {
    /// The status the error is answered with on its own.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The code and message, for an error reported inside a response that succeeded (one
    /// check of a batch).
    pub fn detail(&self) -> ErrorDetail {
        let (_, code, message) = self.parts();
        ErrorDetail {
            code,
            message,
            oldest_revision: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let oldest_revision = match self {
            ApiError::ChangesExpired { oldest, .. } => Some(oldest),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                oldest_revision,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read, so the connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl ApiError {
    /// The same error, saying which change of a write of many it is about; the write as a
    /// whole is refused with it.
    pub fn of_change(self, index: usize) -> Self {
        self.at(&format!("changes[{index}]"))
    }

    /// The same error, saying where in the request's body it is (`groups[3].members[0]`).
    pub fn at(self, place: &str) -> Self {
        let about = |message: String| format!("`{place}`: {message}");
        match self {
            ApiError::InvalidRequest(m) => ApiError::InvalidRequest(about(m)),
            ApiError::NotFound(m) => ApiError::NotFound(about(m)),
            ApiError::Cycle(m) => ApiError::Cycle(about(m)),
            ApiError::NestingTooDeep(m) => ApiError::NestingTooDeep(about(m)),
            other => other,
        }
    }

    /// 404 for a request about a group the tenant does not have.
    pub fn no_group(group: &GroupName) -> Self {
        ApiError::NotFound(format!("group '{group}' does not exist"))
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        ApiError::InvalidRequest(e.to_string())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Store(StoreError::GroupNotFound(group)) => ApiError::no_group(&group),
            AppError::Store(e @ StoreError::NestingCycle { .. }) => ApiError::Cycle(e.to_string()),
            AppError::Store(e @ StoreError::NestingTooDeep { .. }) => {
                ApiError::NestingTooDeep(e.to_string())
            }
            AppError::Store(e @ StoreError::RevisionMismatch { .. }) => {
                ApiError::RevisionMismatch(e.to_string())
            }
            AppError::Store(StoreError::InChange { index, error }) => {
                ApiError::from(AppError::Store(*error)).of_change(index)
            }
            AppError::Store(e @ StoreError::Unavailable(_)) => {
                tracing::warn!(error = %crate::error_chain(&e), "store unavailable");
                ApiError::Unavailable
            }
            AppError::Store(e @ StoreError::Internal(_)) => {
                tracing::error!(error = %crate::error_chain(&e), "store failed");
                ApiError::Internal
            }
            e @ AppError::RevisionNotReached { .. } => ApiError::RevisionNotReached(e.to_string()),
            e @ AppError::ChangesExpired { oldest, .. } => ApiError::ChangesExpired {
                message: e.to_string(),
                oldest,
            },
            AppError::Document(NestingRefused {
                group,
                parent,
                problem,
            }) => ApiError::from(AppError::Store(match problem {
                NestingProblem::Cycle => StoreError::NestingCycle { group, parent },
                NestingProblem::TooDeep => StoreError::NestingTooDeep { group, parent },
            })),
            e @ AppError::Task(_) => {
                tracing::error!(error = %crate::error_chain(&e), "write failed");
                ApiError::Internal
            }
        }
    }
}
