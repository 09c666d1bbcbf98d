//! The source of truth: where writes commit and where the cache loads tenants from.
//!
//! The [`Store`] trait is the whole contract between the server and a storage engine; the
//! HTTP layer never sees SQL. [`postgres::PgStore`] is the production backend.

pub mod postgres;

use std::collections::HashMap;

use async_trait::async_trait;

use crate::policy::{Change, GroupName, TenantName, TenantPolicy};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a committed write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Whether the write changed the tenant. A write that changed nothing leaves the revision
    /// as it was and records nothing in the changelog.
    pub changed: bool,
    /// The tenant's revision after the write.
    pub revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change adds to a group that does not exist (404 not_found).
    #[error("group '{0}' does not exist")]
    GroupNotFound(GroupName),
    /// The store cannot be reached or did not answer in time (503 unavailable). Nothing was
    /// committed, or the caller cannot know: a retry is safe because every write is idempotent.
    #[error("the store is unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else (500 internal).
    #[error("the store failed")]
    Internal(#[source] BoxError),
}

/// A storage engine for tenants' policies.
///
/// Every method either does all of its work or none of it, and gives up with
/// [`StoreError::Unavailable`] after the store's timeout instead of waiting forever.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies `change` to `tenant` in one transaction, checking its preconditions against the
    /// store itself (never against a cache).
    ///
    /// The writes of one tenant are serialized across every server sharing the store. A write
    /// that changes something increments the tenant's revision by exactly one and records the
    /// change in the changelog under that revision with `server_id`; a write that changes
    /// nothing leaves both alone. Adding a permission or a member to a group that does not
    /// exist must fail with [`StoreError::GroupNotFound`] and change nothing. A tenant never
    /// written has revision 0.
    async fn write(
        &self,
        tenant: &TenantName,
        change: &Change,
        server_id: &str,
    ) -> Result<WriteOutcome, StoreError>;

    /// Loads the whole of `tenant` as one consistent snapshot: the policy returned is exactly
    /// the state at the revision it carries. A tenant never written loads as empty at
    /// revision 0.
    async fn load(&self, tenant: &TenantName) -> Result<TenantPolicy, StoreError>;

    /// The current revision of each of `tenants`, in one round trip. Tenants never written are
    /// absent from the map (their revision is 0).
    async fn revisions(
        &self,
        tenants: &[TenantName],
    ) -> Result<HashMap<TenantName, u64>, StoreError>;

    /// Succeeds if the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
