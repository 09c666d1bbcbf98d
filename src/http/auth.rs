//! Bearer-token checks: ADMIN_TOKEN guards writes, CHECK_TOKEN (or the admin token) guards
//! reads. Tokens are compared in constant time, so response timing reveals nothing about them.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// The tokens this instance accepts. A role without a token is open.
#[derive(Default)]
pub struct Tokens {
    pub admin: Option<String>,
    pub check: Option<String>,
}

impl Tokens {
    /// Whether writes need a token at all.
    pub fn guards_writes(&self) -> bool {
        self.admin.is_some()
    }

    /// Whether reads need a token at all.
    pub fn guards_reads(&self) -> bool {
        self.check.is_some()
    }

    fn may_write(&self, presented: Option<&str>) -> bool {
        match &self.admin {
            None => true,
            Some(admin) => presented.is_some_and(|p| equal(p, admin)),
        }
    }

    fn may_read(&self, presented: Option<&str>) -> bool {
        match &self.check {
            None => true,
            Some(check) => presented.is_some_and(|p| {
                equal(p, check) || self.admin.as_deref().is_some_and(|admin| equal(p, admin))
            }),
        }
    }
}

fn equal(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
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

pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !state.tokens.may_write(bearer(&request)) {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}

pub async fn require_reader(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !state.tokens.may_read(bearer(&request)) {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tokens_everything_is_open() {
        let tokens = Tokens::default();
        assert!(tokens.may_write(None));
        assert!(tokens.may_read(None));
    }

    #[test]
    fn the_admin_token_guards_writes_only_when_no_check_token_is_set() {
        let tokens = Tokens {
            admin: Some("adm".into()),
            check: None,
        };
        assert!(tokens.may_write(Some("adm")));
        assert!(!tokens.may_write(Some("ad")));
        assert!(!tokens.may_write(None));
        assert!(tokens.may_read(None));
    }

    #[test]
    fn reads_accept_the_check_token_or_the_admin_token() {
        let tokens = Tokens {
            admin: Some("adm".into()),
            check: Some("chk".into()),
        };
        assert!(tokens.may_read(Some("chk")));
        assert!(tokens.may_read(Some("adm")));
        assert!(!tokens.may_read(Some("nope")));
        assert!(!tokens.may_read(None));
        assert!(!tokens.may_write(Some("chk")));
    }
}
