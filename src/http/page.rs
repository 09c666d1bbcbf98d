//! Paging of the listings: how many items a page holds, and the cursor it resumes from.
//!
//! A cursor names the last item of the previous page, so a page resumes at the same place in
//! the sort order whatever changed in between: an item that exists throughout the paging is
//! listed exactly once. It is opaque to clients (the hex of the listing's scope and the item's
//! names, joined by a newline, which no name may hold), so that its form can change without
//! breaking them.

use super::error::ApiError;
use crate::policy::Page;

/// Items per page when the request does not say.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most items a page holds, so that an answer stays small however large the tenant.
pub const MAX_LIMIT: u32 = 1000;

const SEPARATOR: char = '\n';

/// Where a request is in one listing: how many items it wants, the item its cursor resumes
/// after, and the scope (route, tenant, group) every cursor of that listing carries.
pub struct Paging<'a, T> {
    scope: &'a [&'a str],
    pub limit: usize,
    pub after: Option<T>,
}

impl<'a, T> Paging<'a, T> {
    /// A request's `limit` and `cursor` for the listing `scope`; `parse` makes the item to
    /// resume after from the names in the cursor.
    pub fn new<E, const N: usize>(
        scope: &'a [&'a str],
        limit: Option<u32>,
        cursor: Option<&str>,
        parse: impl FnOnce([&str; N]) -> Result<T, E>,
    ) -> Result<Self, ApiError> {
        let after = resume(cursor, scope, parse).map_err(|()| {
            ApiError::InvalidRequest(
                "`cursor` is not one this listing handed out: pass a page's `next_cursor` \
                 unchanged, with the same tenant and group"
                    .into(),
            )
        })?;
        Ok(Self {
            scope,
            limit: self::limit(limit)?,
            after,
        })
    }

    /// The same from an AuthZEN search's `page.limit` and `page.token`. A limit past
    /// [`MAX_LIMIT`] is taken as that, since a page may always hold fewer results than asked;
    /// 0 is refused; an empty token is the first page.
    pub fn from_token<E, const N: usize>(
        scope: &'a [&'a str],
        limit: Option<u64>,
        token: Option<&str>,
        parse: impl FnOnce([&str; N]) -> Result<T, E>,
    ) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT as usize,
            Some(0) => {
                return Err(ApiError::InvalidRequest(
                    "`page.limit` must be at least 1".into(),
                ));
            }
            Some(limit) => limit.min(u64::from(MAX_LIMIT)) as usize,
        };
        let after = resume(token.filter(|t| !t.is_empty()), scope, parse).map_err(|()| {
            ApiError::InvalidRequest(
                "`page.token` is not one this search handed out: pass a page's `next_token` \
                 unchanged, with the rest of the request as it was"
                    .into(),
            )
        })?;
        Ok(Self {
            scope,
            limit,
            after,
        })
    }

    /// The cursor of the page after `page`, made of the names of its last item; None on the
    /// last page.
    pub fn next_cursor<U, const N: usize>(
        &self,
        page: &Page<U>,
        names: impl FnOnce(&U) -> [&str; N],
    ) -> Option<String> {
        page.resume_after()
            .map(|last| cursor(self.scope, names(last)))
    }
}

/// The page size a request asked for, checked against [`MAX_LIMIT`]; the default if absent.
pub fn limit(requested: Option<u32>) -> Result<usize, ApiError> {
    match requested.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => Ok(limit as usize),
        _ => Err(ApiError::InvalidRequest(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// The cursor that resumes the listing `scope` after the item with these names. The scope (the
/// route, the tenant and, for a group's contents, the group) goes into the cursor, so that a
/// cursor of one listing cannot silently skip or repeat items of another.
fn cursor<const N: usize>(scope: &[&str], names: [&str; N]) -> String {
    let parts: Vec<&str> = scope.iter().copied().chain(names).collect();
    hex::encode(parts.join(&SEPARATOR.to_string()))
}

/// The item a request's `cursor` for the listing `scope` resumes after, parsed by `parse` from
/// the names in it; None without a cursor; an error for a cursor the listing did not make.
fn resume<T, E, const N: usize>(
    cursor: Option<&str>,
    scope: &[&str],
    parse: impl FnOnce([&str; N]) -> Result<T, E>,
) -> Result<Option<T>, ()> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let text = hex::decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(())?;
    let mut parts = text.split(SEPARATOR);
    if !scope.iter().all(|expected| parts.next() == Some(expected)) {
        return Err(());
    }
    let names: [&str; N] = parts.collect::<Vec<_>>().try_into().map_err(|_| ())?;
    parse(names).map(Some).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, GroupName, Resource};

    const GROUPS: &[&str] = &["/groups", "acme"];
    const PERMISSIONS: &[&str] = &["/group-permissions", "acme", "editors"];

    use crate::policy::NameError;

    fn group(cursor: Option<&str>) -> Result<Option<GroupName>, ApiError> {
        Paging::new(GROUPS, None, cursor, |[name]| {
            GroupName::parse("cursor", name)
        })
        .map(|paging| paging.after)
    }

    fn permission(cursor: &str) -> Result<Option<(Resource, Action)>, ()> {
        resume(Some(cursor), PERMISSIONS, |[resource, action]| {
            Ok::<_, NameError>((
                Resource::parse("cursor", resource)?,
                Action::parse("cursor", action)?,
            ))
        })
    }

    #[test]
    fn a_cursor_resumes_after_the_names_it_was_made_from() {
        let made = cursor(GROUPS, ["editors é"]);
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
        assert_eq!(group(Some(&made)).unwrap().unwrap().as_str(), "editors é");
        assert!(group(None).unwrap().is_none());

        let (resource, action) = permission(&cursor(PERMISSIONS, ["docs/*", "read"]))
            .unwrap()
            .unwrap();
        assert_eq!((resource.as_str(), action.as_str()), ("docs/*", "read"));
    }

    #[test]
    fn anything_else_is_an_invalid_request() {
        let not_utf8 = hex::encode([0xff, 0xfe]);
        let wildcard_group = cursor(GROUPS, ["a*"]);
        let two_names = cursor(GROUPS, ["a", "b"]);
        let other_tenant = cursor(&["/groups", "globex"], ["a"]);
        let other_listing = cursor(&["/group-members", "acme"], ["a"]);
        let no_scope = cursor(&[], ["a"]);
        let bad_cursors = [
            "",
            "zz",
            "abc",
            &not_utf8,
            &wildcard_group,
            &two_names,
            &other_tenant,
            &other_listing,
            &no_scope,
        ];
        for bad in bad_cursors {
            let Err(ApiError::InvalidRequest(message)) = group(Some(bad)) else {
                panic!("{bad:?} was taken as a cursor");
            };
            assert!(message.contains("`cursor`"), "{message}");
        }
        assert!(permission(&cursor(PERMISSIONS, ["docs/*"])).is_err());
        assert!(permission(&cursor(PERMISSIONS, ["docs/*", "read", "x"])).is_err());
        let other_group = cursor(
            &["/group-permissions", "acme", "admins"],
            ["docs/*", "read"],
        );
        assert!(permission(&other_group).is_err());
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT as usize);
        assert_eq!(limit(Some(1)).unwrap(), 1);
        assert_eq!(limit(Some(MAX_LIMIT)).unwrap(), MAX_LIMIT as usize);
        for bad in [0, MAX_LIMIT + 1, u32::MAX] {
            assert!(matches!(limit(Some(bad)), Err(ApiError::InvalidRequest(_))));
        }
    }
}
