//! Names as they cross the API boundary, parsed once into types that cannot hold a bad value.
//!
//! Every name (tenant, group, user, resource, action) is 1..=256 bytes of UTF-8 with no control
//! characters and no leading or trailing whitespace. Tenant, group and user names may not
//! contain `*`, because `*` is a wildcard inside a permission and nowhere else. Anything else is
//! a valid name and is kept verbatim.

use std::fmt;
use std::sync::Arc;

/// The longest name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Why a string is not a valid name. The `field` is the JSON field or query parameter it came
/// from, so the message tells the caller exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct NameError {
    pub field: &'static str,
    pub problem: NameProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_NAME_BYTES} bytes long")]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("must not start or end with whitespace")]
    SurroundingWhitespace,
    #[error(
        "must not contain `*` (a wildcard is only allowed in a permission's resource or action)"
    )]
    Wildcard,
}

fn check(field: &'static str, value: &str, allow_wildcard: bool) -> Result<(), NameError> {
    let problem = if value.is_empty() {
        Some(NameProblem::Empty)
    } else if value.len() > MAX_NAME_BYTES {
        Some(NameProblem::TooLong)
    } else if value.chars().any(char::is_control) {
        Some(NameProblem::ControlCharacter)
    } else if value.trim() != value {
        Some(NameProblem::SurroundingWhitespace)
    } else if !allow_wildcard && value.contains('*') {
        Some(NameProblem::Wildcard)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(NameError { field, problem }),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, wildcard: $wildcard:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(Arc<str>);

        impl $ty {
            /// Parses `value`, naming `field` in the error when it is not a valid name.
            pub fn parse(field: &'static str, value: &str) -> Result<Self, NameError> {
                Self::validate(field, value)?;
                Ok(Self(Arc::from(value)))
            }

            /// Checks `value` by the same rules without keeping it, for a name that is only
            /// looked up (the check's user, resource and action).
            pub fn validate<'a>(field: &'static str, value: &'a str) -> Result<&'a str, NameError> {
                check(field, value, $wildcard)?;
                Ok(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A name the policy already holds, so was checked when it came in: a difference
            /// worked out from a policy names what it holds without checking it again.
            #[allow(dead_code, reason = "not every kind of name is held by a policy")]
            pub(crate) fn held(value: &str) -> Self {
                Self(Arc::from(value))
            }

            /// The shared string, so indexes can hold the name without copying it.
            pub fn as_arc(&self) -> &Arc<str> {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A tenant: the unit of isolation. Nothing in one tenant ever affects another.
    TenantName, wildcard: false
);
name_type!(
    /// A group of one tenant: holds permissions and has users as members.
    GroupName, wildcard: false
);
name_type!(
    /// A user of one tenant, known only by name.
    UserName, wildcard: false
);
name_type!(
    /// A resource. In a permission, a trailing `*` makes it a prefix pattern; in a check it is
    /// always taken literally.
    Resource, wildcard: true
);
name_type!(
    /// An action. In a permission, `*` alone matches every action; in a check it is literal.
    Action, wildcard: true
);
name_type!(
    /// An API key's label, for the people who manage keys.
    KeyName, wildcard: true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_name_round_trips_verbatim() {
        for value in [
            "alice",
            "O'Brien \"the\" admin",
            "'; DROP TABLE groups; --",
            "🦀 rustaceans",
            "מנהלים",
            "a b",
        ] {
            assert_eq!(GroupName::parse("group", value).unwrap().as_str(), value);
        }
    }

    #[test]
    fn an_empty_name_is_rejected() {
        let err = TenantName::parse("tenant", "").unwrap_err();
        assert_eq!(err.problem, NameProblem::Empty);
        assert_eq!(err.to_string(), "`tenant` must not be empty");
    }

    #[test]
    fn a_name_of_256_bytes_is_accepted_and_257_is_rejected() {
        let ok = "é".repeat(128);
        assert_eq!(ok.len(), 256);
        assert!(UserName::parse("user", &ok).is_ok());
        let too_long = format!("{ok}x");
        assert_eq!(
            UserName::parse("user", &too_long).unwrap_err().problem,
            NameProblem::TooLong
        );
    }

    #[test]
    fn control_characters_are_rejected() {
        for value in ["a\nb", "a\0b", "tab\there", "\u{7f}del", "\u{85}next"] {
            assert_eq!(
                UserName::parse("user", value).unwrap_err().problem,
                NameProblem::ControlCharacter,
                "{value:?}"
            );
        }
    }

    #[test]
    fn surrounding_whitespace_is_rejected_but_inner_whitespace_is_kept() {
        for value in [" a", "a ", "\u{a0}a", "a\u{3000}"] {
            assert_eq!(
                GroupName::parse("group", value).unwrap_err().problem,
                NameProblem::SurroundingWhitespace,
                "{value:?}"
            );
        }
        assert!(GroupName::parse("group", "a b").is_ok());
    }

    #[test]
    fn a_wildcard_is_allowed_in_resources_and_actions_only() {
        assert!(Resource::parse("resource", "docs/*").is_ok());
        assert!(Action::parse("action", "*").is_ok());
        for err in [
            TenantName::parse("tenant", "t*").unwrap_err(),
            GroupName::parse("group", "*").unwrap_err(),
            UserName::parse("user", "a*b").unwrap_err(),
        ] {
            assert_eq!(err.problem, NameProblem::Wildcard);
        }
    }
}
