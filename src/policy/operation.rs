//! The names of the server's writes, as clients, the changelog, the bus and the logs spell
//! them: one enum, so that a name is checked once, where it enters, and matched exhaustively
//! everywhere else.
//!
//! The PostgreSQL write functions (migrations/postgres) repeat the eight policy names in
//! PL/pgSQL on purpose: it runs inside the database, where this enum cannot reach, and the
//! store conformance suite runs every operation through it.

use std::fmt;
use std::str::FromStr;

macro_rules! operations {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A write the server records or announces.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($(#[$doc])* $variant,)*
        }

        impl Operation {
            /// Every operation, in the order the API documents them.
            pub const ALL: &[Operation] = &[$(Operation::$variant,)*];

            /// The names of [`Operation::ALL`], for serde's error message.
            const NAMES: &[&str] = &[$($name,)*];

            /// The documented name: also the route of the write (`/` + name).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$variant => $name,)*
                }
            }
        }

        impl FromStr for Operation {
            type Err = UnknownOperation;

            fn from_str(name: &str) -> Result<Self, UnknownOperation> {
                match name {
                    $($name => Ok(Operation::$variant),)*
                    _ => Err(UnknownOperation),
                }
            }
        }
    };
}

operations! {
    CreateGroup = "create-group",
    /// Takes the group's permissions and memberships with it.
    DeleteGroup = "delete-group",
    AddPermission = "add-permission",
    RemovePermission = "remove-permission",
    AssignUser = "assign-user",
    UnassignUser = "unassign-user",
    /// Makes a group a member of another, whose permissions its members then have.
    NestGroup = "nest-group",
    UnnestGroup = "unnest-group",
    /// Many of the changes above, in order, all or none, as one revision.
    Write = "write",
    /// An operator's reload of a tenant: announced, never recorded in the changelog.
    RefreshTenant = "refresh-tenant",
    /// Announced with neither tenant nor revision: keys are not a tenant's policy.
    CreateApiKey = "create-api-key",
    RevokeApiKey = "revoke-api-key",
}

/// A name that is none of [`Operation::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an operation of this release")]
pub struct UnknownOperation;

impl Operation {
    /// Whether it changes the API keys rather than a tenant.
    pub fn is_key_operation(self) -> bool {
        matches!(self, Operation::CreateApiKey | Operation::RevokeApiKey)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse()
            .map_err(|_| serde::de::Error::unknown_variant(&name, Operation::NAMES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_operation() {
        for &operation in Operation::ALL {
            assert_eq!(operation.as_str().parse(), Ok(operation));
            let json = serde_json::to_string(&operation).unwrap();
            assert_eq!(json, format!("\"{operation}\""));
            assert_eq!(serde_json::from_str::<Operation>(&json).unwrap(), operation);
        }
        assert_eq!(
            "grant-everything".parse::<Operation>(),
            Err(UnknownOperation)
        );
        assert!(serde_json::from_str::<Operation>("\"Create-Group\"").is_err());
    }
}
