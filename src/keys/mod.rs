//! API keys: credentials issued per tenant and role, kept by the store only as hashes.
//!
//! A key reads `rbac_<id>_<secret>`. The id is public: it names the key in listings and in
//! the changelog. The secret is 256 random bits, shown once when the key is created and never
//! stored: the store keeps its SHA-256. A slow password hash would buy nothing against 256
//! random bits, and a check authenticated by a key has to stay within microseconds.
//!
//! [`Grant`] is what any credential (a key, or a global ADMIN_TOKEN or CHECK_TOKEN) allows;
//! [`ring::KeyRing`] holds the keys in force on this instance.

pub mod ring;

use std::fmt;

use compact_str::CompactString;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::policy::{NameError, TenantName};

/// What every key starts with, so that secret scanners and people can recognise one.
pub const PREFIX: &str = "rbac_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// The SHA-256 of a key's secret.
pub type SecretHash = [u8; 32];

/// What a credential may do within its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes and reads.
    Admin,
    /// Reads only.
    Check,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Check => "check",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Role::Admin),
            "check" => Some(Role::Check),
            _ => None,
        }
    }
}

/// Which tenants a credential reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant, and the instance-wide views (/cache-stats, /metrics).
    All,
    Tenant(TenantName),
}

/// How the API writes "every tenant": `*` can never be a tenant's name.
pub const ALL_TENANTS: &str = "*";

impl Scope {
    /// `*` for every tenant, else a tenant name.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, NameError> {
        if value == ALL_TENANTS {
            Ok(Scope::All)
        } else {
            TenantName::parse(field, value).map(Scope::Tenant)
        }
    }

    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(own) => own.as_str() == tenant,
        }
    }

    /// The tenant, or `None` for every tenant: how the store keeps it.
    pub fn tenant(&self) -> Option<&TenantName> {
        match self {
            Scope::All => None,
            Scope::Tenant(tenant) => Some(tenant),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str(ALL_TENANTS),
            Scope::Tenant(tenant) => f.write_str(tenant.as_str()),
        }
    }
}

/// What one credential allows, and how writes made with it are signed in the changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
    /// `key:<id>` for a key; `token:<fingerprint>` for a global token.
    pub actor: String,
}

impl Grant {
    /// A global ADMIN_TOKEN or CHECK_TOKEN. The fingerprint (the start of the token's
    /// SHA-256) tells rotated tokens apart in the changelog without revealing them.
    pub fn global_token(role: Role, token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        Self {
            role,
            scope: Scope::All,
            actor: format!("token:{}", hex::encode(&digest[..4])),
        }
    }

    /// The key behind the grant; none for a global token.
    pub fn key_id(&self) -> Option<KeyId> {
        let id = self.actor.strip_prefix("key:")?;
        KeyId::parse("id", id).ok()
    }

    pub fn key(id: &str, role: Role, scope: Scope) -> Self {
        Self {
            role,
            scope,
            actor: format!("key:{id}"),
        }
    }

    pub fn may_write(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A key's public id: 8 random bytes as 16 lowercase hex digits. It names the key in its
/// token, in listings and in the changelog (`key:<id>`); parsed wherever it comes in (a
/// presented token, a request, a store row), so that a `KeyId` always has that shape.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(CompactString);

/// Why a string is not a key id. The `field` is where it came from, so the message tells the
/// caller what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` must be a key's id: 16 lowercase hexadecimal digits")]
pub struct KeyIdError {
    pub field: &'static str,
}

impl KeyId {
    /// Parses `value`, naming `field` in the error when it does not have the shape of a key id.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, KeyIdError> {
        if value.len() == 2 * ID_BYTES && is_lower_hex(value) {
            // Inline: an id is shorter than a CompactString's inline capacity, so parsing the
            // id of every presented token allocates nothing.
            Ok(Self(CompactString::new(value)))
        } else {
            Err(KeyIdError { field })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

/// A freshly made key.
pub struct Minted {
    pub id: KeyId,
    /// The whole key, for the caller to keep: the server forgets it once it has answered.
    pub token: String,
    pub secret_hash: SecretHash,
}

impl fmt::Debug for Minted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minted")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Makes a new key from the operating system's random source.
pub fn mint() -> Result<Minted, getrandom::Error> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = KeyId(hex::encode(id).into());
    let secret = hex::encode(secret);
    Ok(Minted {
        token: format!("{PREFIX}{id}_{secret}"),
        secret_hash: hash_secret(&secret),
        id,
    })
}

pub fn hash_secret(secret: &str) -> SecretHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// The id and secret of a presented token, if it has the shape of a key.
pub fn split(token: &str) -> Option<(KeyId, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    let id = KeyId::parse("token", id).ok()?;
    (secret.len() == 2 * SECRET_BYTES && is_lower_hex(secret)).then_some((id, secret))
}

fn is_lower_hex(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A key as the store keeps it (everything but the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub name: Option<String>,
    pub scope: Scope,
    pub role: Role,
    pub secret_hash: SecretHash,
    /// When the store made the key, by its own clock.
    pub created_at: OffsetDateTime,
    /// The actor that created the key.
    pub created_by: Option<String>,
    /// When the key was revoked, by the store's clock; a revoked key is kept so that the
    /// changelog's `key:<id>` stays readable.
    pub revoked_at: Option<OffsetDateTime>,
    /// When an instance last saw the key presented, to the minute or so; None if never.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A key about to be stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: KeyId,
    pub name: Option<String>,
    pub scope: Scope,
    pub role: Role,
    pub secret_hash: SecretHash,
    pub created_by: Option<String>,
}

/// What revoking a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    AlreadyRevoked,
    NoSuchKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_splits_back_into_its_id_and_a_secret_matching_the_hash() {
        let minted = mint().unwrap();
        let (id, secret) = split(&minted.token).expect("a minted key has the shape of a key");
        assert_eq!(id, minted.id);
        assert_eq!(hash_secret(secret), minted.secret_hash);
        assert!(!format!("{minted:?}").contains(secret));
        assert_ne!(mint().unwrap().token, minted.token);
    }

    #[test]
    fn tokens_without_the_shape_of_a_key_do_not_split() {
        let secret = "0".repeat(64);
        for token in [
            String::new(),
            "admin-token".into(),
            format!("rbac_0123456789abcdef{secret}"),
            format!("rbac_0123456789abcde_{secret}"),
            format!("rbac_0123456789ABCDEF_{secret}"),
            format!("rbac_0123456789abcdef_{secret}0"),
            format!("RBAC_0123456789abcdef_{secret}"),
            format!("rbac_0123456789abcdef_{}", "g".repeat(64)),
        ] {
            assert_eq!(split(&token), None, "{token}");
        }
        assert!(split(&format!("rbac_0123456789abcdef_{secret}")).is_some());
    }

    #[test]
    fn a_key_id_is_sixteen_lowercase_hex_digits_and_the_error_names_its_field() {
        let id = KeyId::parse("id", "0123456789abcdef").unwrap();
        assert_eq!(id.as_str(), "0123456789abcdef");
        assert_eq!(id.to_string(), "0123456789abcdef");
        for bad in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789ABCDEF",
            "g123456789abcdef",
        ] {
            assert_eq!(
                KeyId::parse("id", bad),
                Err(KeyIdError { field: "id" }),
                "{bad}"
            );
        }
        assert_eq!(
            KeyId::parse("cursor", "x").unwrap_err().to_string(),
            "`cursor` must be a key's id: 16 lowercase hexadecimal digits"
        );
    }

    #[test]
    fn a_scope_covers_its_tenant_only_and_star_covers_all() {
        let acme = TenantName::parse("tenant", "acme").unwrap();
        let other = TenantName::parse("tenant", "other").unwrap();
        let scope = Scope::parse("tenant", "acme").unwrap();
        assert!(scope.covers(acme.as_str()));
        assert!(!scope.covers(other.as_str()));
        let all = Scope::parse("tenant", "*").unwrap();
        assert_eq!(all, Scope::All);
        assert!(all.covers(other.as_str()));
        assert_eq!(all.to_string(), "*");
        assert!(Scope::parse("tenant", "a*").is_err());
        assert!(Scope::parse("tenant", "").is_err());
    }

    #[test]
    fn a_global_token_is_named_by_a_fingerprint_that_does_not_reveal_it() {
        let grant = Grant::global_token(Role::Admin, "s3cret-admin-token");
        assert!(grant.actor.starts_with("token:"));
        assert_eq!(grant.actor.len(), "token:".len() + 8);
        assert!(!grant.actor.contains("s3cret"));
        assert_ne!(
            grant.actor,
            Grant::global_token(Role::Admin, "another").actor
        );
        assert!(grant.may_write());
        assert!(!Grant::global_token(Role::Check, "c").may_write());
    }
}
