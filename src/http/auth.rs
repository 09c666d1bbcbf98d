//! Who is calling, and what they may do.
//!
//! A credential is a bearer token: one of the global tokens (ADMIN_TOKEN, CHECK_TOKEN; each a
//! comma-separated list, so that a token can be rotated), or an API key, which is scoped to
//! one tenant or to all and has the role `admin` or `check`. Global tokens are compared in
//! constant time, every one of them on every request, so response timing reveals nothing
//! about them; keys are verified by [`crate::keys::ring::KeyRing`].
//!
//! The middleware here answers 401 for a missing or unknown credential and 403 for one that
//! lacks the route's role; it leaves a [`Caller`] for the handler, which checks the tenant
//! scope once it has parsed the tenant.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::state::AppState;
use super::tokens::Tokens;
use crate::keys::ring::Verdict;
use crate::keys::{Grant, Scope};
use crate::policy::TenantName;

/// The credential a request was let in with; none when its route is open.
#[derive(Clone, Default)]
pub struct Caller(Option<Arc<Grant>>);

impl Caller {
    /// Parses the request's tenant, checks that the credential reaches it (403 if not), and
    /// names the request's span after it.
    pub fn tenant(&self, field: &'static str, value: &str) -> Result<TenantName, ApiError> {
        let tenant = TenantName::parse(field, value)?;
        self.reach(tenant.as_str())?;
        super::request::record_tenant(tenant.as_str());
        Ok(tenant)
    }

    /// The same checks for a tenant only looked up, without keeping a copy of its name: the
    /// check's, whose span, if it ever gets one, is made later.
    pub fn tenant_str<'a>(&self, field: &'static str, value: &'a str) -> Result<&'a str, ApiError> {
        let tenant = TenantName::validate(field, value)?;
        self.reach(tenant)?;
        Ok(tenant)
    }

    fn reach(&self, tenant: &str) -> Result<(), ApiError> {
        match &self.0 {
            Some(grant) if !grant.scope.covers(tenant) => Err(ApiError::Forbidden(format!(
                "this credential is for tenant '{}' only",
                grant.scope
            ))),
            _ => Ok(()),
        }
    }

    /// The credential's grant; none where the route is open.
    pub fn grant(&self) -> Option<&Grant> {
        self.0.as_deref()
    }

    /// Who to record as the author of a write.
    pub fn actor(&self) -> Option<&str> {
        self.0.as_ref().map(|grant| grant.actor.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Taken, not cloned: nothing else reads it, and a clone would touch the grant's
        // reference count, which every core shares when one key carries all the traffic.
        Ok(parts.extensions.remove::<Caller>().unwrap_or_default())
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The grant of the request's credential: 401 without a valid one, 503 when it has the shape
/// of a key but the keys could not be loaded yet.
///
/// Keys first: [`crate::keys::ring::KeyRing::verify`] hashes only what has the shape of a key,
/// so every credential costs one SHA-256, a key its secret's and a global token its own.
fn identify(state: &AppState, request: &Request) -> Result<Arc<Grant>, ApiError> {
    let presented = bearer(request).ok_or(ApiError::Unauthorized)?;
    let as_key = state.app.keys.verify(presented);
    if let Verdict::Valid(grant) = as_key {
        return Ok(grant);
    }
    if let Some(grant) = state.tokens.global(presented) {
        return Ok(grant.clone());
    }
    match as_key {
        Verdict::Unknown => Err(ApiError::Unavailable),
        Verdict::Valid(_) | Verdict::Invalid => Err(ApiError::Unauthorized),
    }
}

fn let_in(mut request: Request, grant: Arc<Grant>) -> Request {
    request.extensions_mut().insert(Caller(Some(grant)));
    request
}

/// What a group of routes asks of a credential. The rules of docs/API.md's Authentication, in
/// one place: the routes are guarded by them, and `GET /credential` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Writes: an admin credential.
    Writes,
    /// Reads of one tenant: any credential.
    Reads,
    /// Views of the whole instance (/cache-stats, /metrics), which name every tenant held: a
    /// credential for every tenant.
    Instance,
    /// The list of every tenant: an admin credential for every tenant, as a write to any of
    /// them would need; with no admin credential configured, a credential for every tenant.
    Administration,
    /// Key management: a global ADMIN_TOKEN, never a key, so that a leaked key cannot make
    /// more.
    Keys,
}

impl Guard {
    /// Whether the routes need a credential at all, with the tokens configured.
    pub fn applies(self, tokens: &Tokens) -> bool {
        match self {
            Guard::Writes => tokens.guards_writes(),
            Guard::Reads | Guard::Instance => tokens.guards_reads(),
            Guard::Administration => tokens.guards_writes() || tokens.guards_reads(),
            Guard::Keys => true,
        }
    }

    /// Why `grant` may not pass, if it may not.
    fn refuses(self, tokens: &Tokens, grant: &Arc<Grant>) -> Option<ApiError> {
        let refused = |why: &str| Some(ApiError::Forbidden(why.into()));
        match self {
            Guard::Writes if !grant.may_write() => {
                refused("this credential may read but not write")
            }
            Guard::Instance if grant.scope != Scope::All => {
                refused("this view covers every tenant; this credential is for one")
            }
            Guard::Administration
                if grant.scope != Scope::All || (tokens.guards_writes() && !grant.may_write()) =>
            {
                refused("the list of tenants needs an admin credential for every tenant")
            }
            Guard::Keys if !tokens.is_admin_token(grant) => {
                refused("only ADMIN_TOKEN may manage API keys")
            }
            _ => None,
        }
    }

    /// Why no credential may pass, if none may: the key endpoints of an instance without
    /// ADMIN_TOKEN.
    fn closed(self, tokens: &Tokens) -> Option<ApiError> {
        (self == Guard::Keys && !tokens.guards_writes()).then(|| {
            ApiError::Forbidden(
                "API keys are managed with ADMIN_TOKEN, which this instance does not have".into(),
            )
        })
    }

    /// Whether a request with `grant` (none: no credential) gets past the guard.
    pub fn lets_in(self, tokens: &Tokens, grant: Option<&Arc<Grant>>) -> bool {
        if self.closed(tokens).is_some() {
            return false;
        }
        !self.applies(tokens) || grant.is_some_and(|grant| self.refuses(tokens, grant).is_none())
    }
}

/// The middleware of a guarded group of routes: 401 without a credential in force, 403 with
/// one the guard refuses; the handler gets the [`Caller`].
pub async fn require(
    State((state, guard)): State<(AppState, Guard)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(closed) = guard.closed(&state.tokens) {
        return Err(closed);
    }
    let grant = identify(&state, &request)?;
    if let Some(refusal) = guard.refuses(&state.tokens, &grant) {
        return Err(refusal);
    }
    Ok(next.run(let_in(request, grant)).await)
}

/// The credential a request presents: none without an `Authorization` header; 401 for one
/// not in force, as on a guarded route.
pub fn presented(state: &AppState, request: &Request) -> Result<Option<Arc<Grant>>, ApiError> {
    if request.headers().get(header::AUTHORIZATION).is_none() {
        return Ok(None);
    }
    identify(state, request).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Role;

    #[test]
    fn a_scoped_caller_reaches_its_tenant_only() {
        let acme = TenantName::parse("tenant", "acme").unwrap();
        let caller = Caller(Some(Arc::new(Grant::key(
            "0123456789abcdef",
            Role::Check,
            Scope::Tenant(acme),
        ))));
        assert!(caller.tenant("tenant", "acme").is_ok());
        assert!(matches!(
            caller.tenant("tenant", "other"),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            caller.tenant("tenant", ""),
            Err(ApiError::InvalidRequest(_))
        ));
        assert_eq!(caller.actor(), Some("key:0123456789abcdef"));
        let open = Caller::default();
        assert!(open.tenant("tenant", "other").is_ok());
        assert_eq!(open.actor(), None);
    }
}
