//! The policy decision point's metadata: where its endpoints are. Served at the well-known
//! URI of each base URL, which the specification derives by putting
//! `/.well-known/authzen-configuration` between the host and the base URL's path.
//!
//! Open to anyone, like a discovery document: it says nothing but the URLs derived from the
//! request itself and PUBLIC_URL, and whether a tenant exists is not among them.

use axum::Json;
use axum::extract::State;
use axum::http::uri::Authority;
use axum::http::{HeaderMap, Uri, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use utoipa::ToSchema;

use super::TAG;
use crate::http::error::ApiError;
use crate::http::extract::PathParam;
use crate::http::state::AppState;
use crate::policy::TenantName;

/// What a path segment keeps as it is: letters, digits and RFC 3986's other unreserved
/// characters. Anything else in a tenant's name is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The metadata of one policy decision point.
#[derive(Serialize, ToSchema)]
pub struct Metadata {
    /// The base URL, which the metadata was derived from.
    policy_decision_point: String,
    access_evaluation_endpoint: String,
    access_evaluations_endpoint: String,
    search_subject_endpoint: String,
    search_resource_endpoint: String,
    search_action_endpoint: String,
}

impl Metadata {
    fn of(base: String) -> Self {
        Self {
            access_evaluation_endpoint: format!("{base}/access/v1/evaluation"),
            access_evaluations_endpoint: format!("{base}/access/v1/evaluations"),
            search_subject_endpoint: format!("{base}/access/v1/search/subject"),
            search_resource_endpoint: format!("{base}/access/v1/search/resource"),
            search_action_endpoint: format!("{base}/access/v1/search/action"),
            policy_decision_point: base,
        }
    }
}

#[utoipa::path(
    get,
    path = "/.well-known/authzen-configuration/tenants/{tenant}",
    tag = TAG,
    summary = "where a tenant's AuthZEN endpoints are",
    params(("tenant" = String, Path, description = "The tenant: the policy decision point")),
    responses((status = 200, description = "The tenant's metadata", body = Metadata))
)]
pub async fn tenant(
    State(state): State<AppState>,
    PathParam(tenant): PathParam<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Metadata>, ApiError> {
    let tenant = TenantName::parse("tenant", &tenant)?;
    let origin = origin(&state, &uri, &headers)?;
    let tenant = utf8_percent_encode(tenant.as_str(), SEGMENT);
    Ok(Json(Metadata::of(format!("{origin}/tenants/{tenant}"))))
}

#[utoipa::path(
    get,
    path = "/.well-known/authzen-configuration",
    tag = TAG,
    summary = "where the AuthZEN endpoints at the root are",
    responses((status = 200, description = "The root's metadata", body = Metadata))
)]
pub async fn root(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Metadata>, ApiError> {
    Ok(Json(Metadata::of(origin(&state, &uri, &headers)?)))
}

/// Where clients reach this service: PUBLIC_URL, else `http://` and the host the request was
/// sent to. (The server speaks plain HTTP; behind a proxy that adds TLS, PUBLIC_URL says so.)
fn origin(state: &AppState, uri: &Uri, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(public) = &state.authzen.public_url {
        return Ok(public.clone());
    }
    let host = uri
        .authority()
        .map(Authority::as_str)
        .or_else(|| headers.get(header::HOST)?.to_str().ok())
        .ok_or_else(|| {
            ApiError::InvalidRequest("the request names no host (`Host` header)".into())
        })?;
    let host: Authority = host.parse().map_err(|_| {
        ApiError::InvalidRequest("the `Host` header is not a valid host and port".into())
    })?;
    if host.as_str().contains('@') {
        return Err(ApiError::InvalidRequest(
            "the `Host` header must not carry user information".into(),
        ));
    }
    Ok(format!("http://{host}"))
}
