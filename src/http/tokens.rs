//! The global tokens: ADMIN_TOKEN and CHECK_TOKEN, each a comma-separated list so that a
//! token can be rotated. Compared in constant time, every one of them on every request, so
//! response timing reveals nothing about them.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::keys::{Grant, Role, SecretHash, hash_secret};

/// The global tokens this instance accepts, per role; several per role during a rotation. A
/// role without tokens is open.
#[derive(Default)]
pub struct Tokens {
    /// Each token's SHA-256, not the token: comparing digests of equal length leaks not even a
    /// token's length, and the tokens themselves are not kept in memory.
    admin: Vec<(SecretHash, Arc<Grant>)>,
    check: Vec<(SecretHash, Arc<Grant>)>,
}

impl Tokens {
    pub fn new(admin: Vec<String>, check: Vec<String>) -> Self {
        let grants = |role, tokens: Vec<String>| {
            tokens
                .into_iter()
                .map(|token| {
                    let grant = Arc::new(Grant::global_token(role, &token));
                    (hash_secret(&token), grant)
                })
                .collect()
        };
        Self {
            admin: grants(Role::Admin, admin),
            check: grants(Role::Check, check),
        }
    }

    /// Whether writes need a credential at all.
    pub fn guards_writes(&self) -> bool {
        !self.admin.is_empty()
    }

    /// Whether reads need a credential at all.
    pub fn guards_reads(&self) -> bool {
        !self.check.is_empty()
    }

    /// Whether `grant` is that of one of the ADMIN_TOKENs.
    pub fn is_admin_token(&self, grant: &Arc<Grant>) -> bool {
        self.admin
            .iter()
            .any(|(_, admin)| Arc::ptr_eq(admin, grant))
    }

    /// The global token `presented` is, if any. Compares with every token, without stopping
    /// at a match: the time taken says nothing about which token matched or how much of one.
    pub(super) fn global(&self, presented: &str) -> Option<&Arc<Grant>> {
        let presented = hash_secret(presented);
        self.admin
            .iter()
            .chain(&self.check)
            .fold(None, |found, (token, grant)| {
                let equal = bool::from(presented.ct_eq(token));
                if equal && found.is_none() {
                    Some(grant)
                } else {
                    found
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Scope;

    fn tokens(admin: &[&str], check: &[&str]) -> Tokens {
        let owned = |tokens: &[&str]| tokens.iter().map(|t| t.to_string()).collect();
        Tokens::new(owned(admin), owned(check))
    }

    fn role(tokens: &Tokens, presented: &str) -> Option<Role> {
        tokens.global(presented).map(|grant| grant.role)
    }

    #[test]
    fn during_a_rotation_every_listed_token_is_accepted_with_its_role() {
        let tokens = tokens(&["new-admin", "old-admin"], &["new-check", "old-check"]);
        for token in ["new-admin", "old-admin"] {
            assert_eq!(role(&tokens, token), Some(Role::Admin));
        }
        for token in ["new-check", "old-check"] {
            assert_eq!(role(&tokens, token), Some(Role::Check));
        }
        for wrong in ["new-admin,old-admin", "", "new-admi", "new-adminx"] {
            assert_eq!(role(&tokens, wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn rotated_tokens_are_told_apart_in_the_changelog() {
        let tokens = tokens(&["new-admin", "old-admin"], &[]);
        let new = tokens.global("new-admin").unwrap();
        let old = tokens.global("old-admin").unwrap();
        assert_ne!(new.actor, old.actor);
        assert_eq!(new.scope, Scope::All);
    }

    #[test]
    fn a_role_without_tokens_is_open() {
        let both = tokens(&["adm"], &["chk"]);
        assert!(both.guards_writes() && both.guards_reads());
        let admin_only = tokens(&["adm"], &[]);
        assert!(admin_only.guards_writes() && !admin_only.guards_reads());
        let none = Tokens::default();
        assert!(!none.guards_writes() && !none.guards_reads());
    }
}
