//! Key management: creating, revoking and listing API keys, with a global ADMIN_TOKEN only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::page::Paging;
use super::responses::{InvalidRequest, NotFound};
use super::state::AppState;
use super::timestamp::timestamp;
use crate::keys::{self, KeyId, KeyRecord, NewKey, Revocation, Role, Scope};
use crate::policy::{self, KeyName};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    tenant: String,
    role: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKeyRequest {
    id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListKeysQuery {
    /// Keys per page, 1 to 1000; 100 if absent.
    #[serde(default)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`, to resume after it; absent for the first page.
    #[serde(default)]
    cursor: Option<String>,
}

/// A key as the API shows it: everything but the secret.
#[derive(Serialize, ToSchema)]
pub struct KeyBody {
    id: String,
    #[schema(required = true)]
    name: Option<String>,
    tenant: String,
    role: &'static str,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(required = true)]
    created_by: Option<String>,
    #[schema(required = true, format = DateTime)]
    revoked_at: Option<String>,
    /// When an instance last saw the key presented, to the minute or so (see docs/API.md);
    /// null if never.
    #[schema(required = true, format = DateTime)]
    last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKeyResponse {
    success: bool,
    /// The whole key. It is shown this once: the server keeps only a hash of it.
    key: String,
    #[serde(flatten)]
    details: KeyBody,
}

#[derive(Serialize, ToSchema)]
pub struct RevokedKeyResponse {
    success: bool,
    revoked: bool,
}

#[derive(Serialize, ToSchema)]
pub struct KeysResponse {
    /// Oldest first.
    keys: Vec<KeyBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[utoipa::path(
    post,
    path = "/create-api-key",
    operation_id = "create_api_key",
    tag = "API keys",
    summary = "issue an API key for one tenant or all, with a role",
    request_body = CreateKeyRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The key, shown this once", body = CreatedKeyResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKeyResponse>), ApiError> {
    let scope = Scope::parse("tenant", &req.tenant)?;
    let role = Role::parse(&req.role)
        .ok_or_else(|| ApiError::InvalidRequest("`role` must be \"admin\" or \"check\"".into()))?;
    let name = match &req.name {
        Some(name) => Some(KeyName::parse("name", name)?.to_string()),
        None => None,
    };
    let minted = keys::mint().map_err(|e| {
        tracing::error!(error = %e, "no randomness for a new key");
        ApiError::Internal
    })?;
    super::request::write_begun();
    let record = state
        .app
        .create_key(NewKey {
            id: minted.id,
            name,
            scope,
            role,
            secret_hash: minted.secret_hash,
            created_by: caller.actor().map(str::to_owned),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyResponse {
            success: true,
            key: minted.token,
            details: KeyBody::from(record),
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/revoke-api-key",
    operation_id = "revoke_api_key",
    tag = "API keys",
    summary = "revoke an API key, on every instance",
    request_body = RevokeKeyRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key is revoked; `revoked` says whether it was in force", body = RevokedKeyResponse),
        (status = 404, response = NotFound),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RevokeKeyRequest>,
) -> Result<Json<RevokedKeyResponse>, ApiError> {
    let id = KeyId::parse("id", &req.id).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    super::request::write_begun();
    let revoked = match state.app.revoke_key(&id).await? {
        Revocation::Revoked => true,
        Revocation::AlreadyRevoked => false,
        Revocation::NoSuchKey => {
            return Err(ApiError::NotFound(format!("API key '{id}' does not exist")));
        }
    };
    Ok(Json(RevokedKeyResponse {
        success: true,
        revoked,
    }))
}

#[utoipa::path(
    get,
    path = "/api-keys",
    operation_id = "list_api_keys",
    tag = "API keys",
    summary = "a page of the API keys, without their secrets",
    params(ListKeysQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Up to `limit` keys, revoked ones included, oldest first", body = KeysResponse),
        (status = 400, response = InvalidRequest),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListKeysQuery>,
) -> Result<Json<KeysResponse>, ApiError> {
    let scope = ["/api-keys"];
    let paging = Paging::new(&scope, query.limit, query.cursor.as_deref(), |[id]| {
        KeyId::parse("cursor", id)
    })?;
    let records = state
        .app
        .list_keys(paging.after.as_ref(), paging.limit.saturating_add(1))
        .await?;
    let listed = policy::page::first(records, paging.limit);
    let next_cursor = paging.next_cursor(&listed, |last| [last.id.as_str()]);
    Ok(Json(KeysResponse {
        keys: listed.items.into_iter().map(KeyBody::from).collect(),
        next_cursor,
    }))
}

impl From<KeyRecord> for KeyBody {
    fn from(record: KeyRecord) -> Self {
        Self {
            id: record.id.to_string(),
            name: record.name,
            tenant: record.scope.to_string(),
            role: record.role.as_str(),
            created_at: timestamp(record.created_at),
            created_by: record.created_by,
            revoked_at: record.revoked_at.map(timestamp),
            last_used_at: record.last_used_at.map(timestamp),
        }
    }
}
