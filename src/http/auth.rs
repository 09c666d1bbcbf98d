//! Bearer-token checks: ADMIN_TOKEN guards writes, CHECK_TOKEN (or the admin token) guards
//! reads. Tokens are compared in constant time, so response timing reveals nothing about them.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// The tokens this instance accepts, per role; several per role during a rotation. A role
/// without tokens is open.
#[derive(Default)]
pub struct Tokens {
    pub admin: Vec<String>,
    pub check: Vec<String>,
}

impl Tokens {
    /// Whether writes need a token at all.
    pub fn guards_writes(&self) -> bool {
        !self.admin.is_empty()
    }

    /// Whether reads need a token at all.
    pub fn guards_reads(&self) -> bool {
        !self.check.is_empty()
    }

    fn may_write(&self, presented: Option<&str>) -> bool {
        !self.guards_writes() || presented.is_some_and(|p| any_equal(p, &self.admin))
    }

    fn may_read(&self, presented: Option<&str>) -> bool {
        !self.guards_reads()
            || presented.is_some_and(|p| any_equal(p, &self.check) | any_equal(p, &self.admin))
    }
}

/// Compares with every token, without stopping at a match: the time taken says nothing about
/// which token matched or how much of one.
fn any_equal(presented: &str, tokens: &[String]) -> bool {
    tokens
        .iter()
        .fold(false, |found, token| found | equal(presented, token))
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
    fn during_a_rotation_every_listed_token_is_accepted() {
        let tokens = Tokens {
            admin: vec!["new-admin".into(), "old-admin".into()],
            check: vec!["new-check".into(), "old-check".into()],
        };
        for token in ["new-admin", "old-admin"] {
            assert!(tokens.may_write(Some(token)));
            assert!(tokens.may_read(Some(token)));
        }
        for token in ["new-check", "old-check"] {
            assert!(!tokens.may_write(Some(token)));
            assert!(tokens.may_read(Some(token)));
        }
        assert!(!tokens.may_read(Some("new-admin,old-admin")));
        assert!(!tokens.may_read(Some("")));
    }

    #[test]
    fn without_tokens_everything_is_open() {
        let tokens = Tokens::default();
        assert!(tokens.may_write(None));
        assert!(tokens.may_read(None));
    }

    #[test]
    fn the_admin_token_guards_writes_only_when_no_check_token_is_set() {
        let tokens = Tokens {
            admin: vec!["adm".into()],
            check: vec![],
        };
        assert!(tokens.may_write(Some("adm")));
        assert!(!tokens.may_write(Some("ad")));
        assert!(!tokens.may_write(None));
        assert!(tokens.may_read(None));
    }

    #[test]
    fn reads_accept_the_check_token_or_the_admin_token() {
        let tokens = Tokens {
            admin: vec!["adm".into()],
            check: vec!["chk".into()],
        };
        assert!(tokens.may_read(Some("chk")));
        assert!(tokens.may_read(Some("adm")));
        assert!(!tokens.may_read(Some("nope")));
        assert!(!tokens.may_read(None));
        assert!(!tokens.may_write(Some("chk")));
    }
}
