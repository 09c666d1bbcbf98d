//! `GET /credential`: what the credential a request presents may do on this instance, so that
//! a console or a script can offer only that, and tell a mistyped token at once.

use axum::Json;
use axum::extract::{Request, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Guard, presented};
use super::error::ApiError;
use super::responses::Unauthorized;
use super::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct CredentialResponse {
    /// The credential presented; null when the request had none.
    #[schema(required = true)]
    credential: Option<CredentialBody>,
    /// What a request with it (or with none) may do here, by the configured tokens.
    may: MayBody,
}

#[derive(Serialize, ToSchema)]
pub struct CredentialBody {
    /// As the changelog records its writes: `key:<id>` or `token:<fingerprint>`.
    actor: String,
    /// `admin` or `check`.
    role: &'static str,
    /// The tenant it reaches, or `*` for every tenant.
    tenant: String,
}

#[derive(Serialize, ToSchema)]
pub struct MayBody {
    /// The writes, for `credential.tenant`.
    write: bool,
    /// The reads of a tenant, for `credential.tenant`.
    read: bool,
    /// `GET /tenants`.
    list_tenants: bool,
    /// `/cache-stats` and `/metrics`.
    view_instance: bool,
    /// The API-key endpoints.
    manage_keys: bool,
}

#[utoipa::path(
    get,
    path = "/credential",
    tag = "operations",
    summary = "what the credential presented may do on this instance",
    responses(
        (status = 200, description = "The credential, if any, and what it may do", body = CredentialResponse),
        (status = 401, response = Unauthorized),
    )
)]
pub async fn credential(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<CredentialResponse>, ApiError> {
    let grant = presented(&state, &request)?;
    let may = |guard: Guard| guard.lets_in(&state.tokens, grant.as_ref());
    Ok(Json(CredentialResponse {
        may: MayBody {
            write: may(Guard::Writes),
            read: may(Guard::Reads),
            list_tenants: may(Guard::Administration),
            view_instance: may(Guard::Instance),
            manage_keys: may(Guard::Keys),
        },
        credential: grant.map(|grant| CredentialBody {
            actor: grant.actor.clone(),
            role: grant.role.as_str(),
            tenant: grant.scope.to_string(),
        }),
    }))
}
