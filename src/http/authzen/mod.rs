//! The OpenID AuthZEN Authorization API 1.0: the standard shape in which gateways, identity
//! providers and other policy enforcement points ask an authorization server. See docs/API.md.
//!
//! Each tenant is a policy decision point of its own, with the base URL `/tenants/{tenant}`;
//! the same endpoints at the root answer for the tenant of a one-tenant API key, or for
//! AUTHZEN_DEFAULT_TENANT. The requests are mapped onto the native check and listings
//! ([`model`]), and answered from the same snapshots with the same credentials: evaluations
//! ([`evaluate`]), searches ([`search`]) and the metadata that names the endpoints
//! ([`metadata`]).
//!
//! Where the specification differs from the native API, it is followed here: unknown fields
//! are ignored, a body that is not `application/json` is a 400 rather than a 415, and an
//! evaluation inside a batch that is malformed is denied with its error beside it.

pub mod evaluate;
pub mod metadata;
mod model;
pub mod search;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{JsonObject, PathParam};
use super::state::AppState;
use crate::keys::Scope;
use crate::policy::TenantName;

/// The tag of the AuthZEN operations in the OpenAPI document.
pub const TAG: &str = "AuthZEN";

/// How this instance presents itself to AuthZEN clients.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The URL clients reach the service at (PUBLIC_URL), without a trailing `/`; the
    /// metadata's URLs are made from it, else from the request's `Host`.
    pub public_url: Option<String>,
    /// The tenant the root endpoints answer for when the credential does not name one.
    pub default_tenant: Option<TenantName>,
}

/// A request body that is a JSON object of at most `LIMIT` bytes. A body of another type is a
/// 400 here, as the specification has it, rather than the native API's 415.
pub struct Body<const LIMIT: usize>(pub Bytes);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for Body<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match JsonObject::<LIMIT>::from_request(req, state).await {
            Ok(JsonObject(body)) => Ok(Self(body)),
            Err(ApiError::UnsupportedMediaType(wanted)) => Err(ApiError::InvalidRequest(format!(
                "the request body must be {wanted}"
            ))),
            Err(other) => Err(other),
        }
    }
}

/// The tenant a request under `/tenants/{tenant}` names, which its credential must reach.
pub struct InTenant(pub TenantName);

impl FromRequestParts<AppState> for InTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let PathParam(tenant) = PathParam::<String>::from_request_parts(parts, state).await?;
        Ok(Self(caller(parts).tenant("tenant", &tenant)?))
    }
}

/// The tenant a request at the root answers for: that of the credential when it is an API key
/// for one tenant, else AUTHZEN_DEFAULT_TENANT.
pub struct AtRoot(pub TenantName);

impl FromRequestParts<AppState> for AtRoot {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = caller(parts);
        let named = match caller.grant().map(|grant| &grant.scope) {
            Some(Scope::Tenant(tenant)) => tenant.as_str(),
            _ => match &state.authzen.default_tenant {
                Some(tenant) => tenant.as_str(),
                None => {
                    return Err(ApiError::InvalidRequest(
                        "the AuthZEN endpoints at the root answer for one tenant, and this \
                         request names none: call /tenants/{tenant}/access/v1/..., use an API \
                         key for one tenant, or set AUTHZEN_DEFAULT_TENANT on the server"
                            .into(),
                    ));
                }
            },
        };
        Ok(Self(caller.tenant("tenant", named)?))
    }
}

/// The credential the request was let in with, left in place for anything after.
fn caller(parts: &Parts) -> Caller {
    parts
        .extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_default()
}
