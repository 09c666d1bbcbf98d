//! The source of truth: where writes commit and where the cache loads tenants from.
//!
//! The [`Store`] trait is the whole contract between the server and a storage engine; the
//! HTTP layer never sees SQL. [`postgres::PgStore`] is the backend for several instances on
//! several machines; [`sqlite::SqliteStore`] is the embedded default, one file on one machine.
//! Both pass the same conformance suite (`tests/store_conformance/`). What they share is
//! written once: the rows they read and the values those become (`rows`), and the statements
//! they run alike (`sql`); each backend keeps only what differs, saying why.

pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;
mod sqlite_file;
mod write_health;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::keys::{KeyId, KeyRecord, NewKey, Revocation};
use crate::policy::{
    Change, GroupName, MAX_NESTING_DEPTH, NestingProblem, TenantName, TenantPolicy,
};

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

/// About how much of the changes of writes of many one page of the changelog holds (the
/// length of their JSON), besides its limit of revisions: a write makes up to a thousand
/// changes under one revision, and a page of a thousand such would be a million. A page
/// holds at least one revision, however large.
pub const CHANGE_PAGE_BYTES: usize = 1 << 20;

/// What a committed write of many changes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenMany {
    /// Whether any change changed the tenant; the revision moved by one if so.
    pub changed: bool,
    /// The tenant's revision after the write.
    pub revision: u64,
    /// For each change, in order, whether it changed something.
    pub results: Vec<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change adds to a group that does not exist, or nests in one (404 not_found).
    #[error("group '{0}' does not exist")]
    GroupNotFound(GroupName),
    /// The nesting would put a group inside itself (409 cycle).
    #[error("nesting '{group}' in '{parent}' would put '{group}' inside itself")]
    NestingCycle { group: GroupName, parent: GroupName },
    /// The nesting would make a chain of more than [`MAX_NESTING_DEPTH`] groups (409
    /// nesting_too_deep).
    #[error(
        "nesting '{group}' in '{parent}' would make a chain of more than {MAX_NESTING_DEPTH} \
         groups, each nested in the next"
    )]
    NestingTooDeep { group: GroupName, parent: GroupName },
    /// A change of a write of many could not be made (its own error, `index` from 0), so
    /// none was.
    #[error("change {index}: {error}")]
    InChange {
        index: usize,
        error: Box<StoreError>,
    },
    /// The tenant is not at the revision a conditional write was made for (409
    /// revision_mismatch); nothing was written.
    #[error("the tenant is at revision {current}, not {expected}")]
    RevisionMismatch { expected: u64, current: u64 },
    /// The store cannot be reached or did not answer in time (503 unavailable). Nothing was
    /// committed, or the caller cannot know: a retry is safe because every write is idempotent.
    #[error("the store is unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else (500 internal).
    #[error("the store failed")]
    Internal(#[source] BoxError),
}

/// A point in the store's history of changes, from which [`Store::changed_since`] reports
/// what came after. Opaque: each backend has its own meaning for the number, and the smallest
/// position comes before every change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(pub u64);

/// A tenant and its current revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRevision {
    pub tenant: TenantName,
    pub revision: u64,
}

/// A tenant as a page of tenants lists it: its revision and its size, as the store holds
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    pub tenant: TenantName,
    pub revision: u64,
    pub groups: u64,
    pub permissions: u64,
    /// Memberships, ended ones included.
    pub assignments: u64,
}

/// A change as the changelog recorded it: the revision it made, and who made it when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub revision: u64,
    pub change: Change,
    /// The `SERVER_ID` of the instance that committed it.
    pub server_id: String,
    /// The credential behind it ([`crate::keys::Grant::actor`]); `None` when writes are open.
    pub actor: Option<String>,
    /// When it committed, by the store's clock.
    pub at: OffsetDateTime,
}

/// A page of one tenant's changelog, read in one snapshot with the tenant's revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeLog {
    /// The tenant's current revision (0 for a tenant never written).
    pub revision: u64,
    /// Oldest first, each with the revision it made.
    pub changes: Vec<Recorded>,
}

impl ChangeLog {
    /// Whether the page holds every revision after `after`, up to its last change or to the
    /// current revision: false when retention deleted some of them
    /// ([`Store::prune_changelog`]).
    pub fn continues(&self, after: u64) -> bool {
        // A write of many changes records them all under one revision.
        let revisions = self.changes.chunk_by(|a, b| a.revision == b.revision);
        let gapless = revisions
            .zip(after + 1..)
            .all(|(changes, expected)| changes[0].revision == expected);
        gapless && (self.revision <= after || !self.changes.is_empty())
    }
}

/// Tenants with their current revisions, as of `position`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    pub tenants: Vec<TenantRevision>,
    /// Where the next [`Store::changed_since`] starts.
    pub position: Position,
}

/// Why a store could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Unreachable(String),
    /// The database was migrated by a newer release: running this one against it could
    /// misread the data.
    #[error(
        "the database schema is newer than this rbac-server (it has migration {0}, unknown to this release); run a newer release"
    )]
    NewerSchema(i64),
    #[error("{0}")]
    Invalid(String),
}

impl OpenError {
    fn from_migration(error: sqlx::migrate::MigrateError) -> Self {
        match error {
            sqlx::migrate::MigrateError::VersionMissing(version) => OpenError::NewerSchema(version),
            other => OpenError::Invalid(format!("cannot migrate the database: {other}")),
        }
    }
}

/// A storage engine for tenants' policies.
///
/// Every method either does all of its work or none of it, and gives up with
/// [`StoreError::Unavailable`] after the store's timeout instead of waiting forever.
///
/// What a method reads back is what the server wrote, kept valid by the schema. A row that
/// breaks an invariant all the same (a name that no longer parses; a revision, position or
/// count below zero; an unknown role or operation; a key id, hash or time of the wrong shape:
/// data changed behind the server's back, or by a newer release) is never read as something
/// else, nor skipped: the method fails with [`StoreError::Internal`], whose message names
/// what was wrong.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies `change` to `tenant` in one transaction, checking its preconditions against the
    /// store itself (never against a cache).
    ///
    /// The writes of one tenant are serialized across every server sharing the store. A write
    /// that changes something increments the tenant's revision by exactly one and records the
    /// change in the changelog under that revision with `server_id` and `actor` (the
    /// credential's [`crate::keys::Grant::actor`], `None` when writes are open); a write that
    /// changes nothing leaves both alone. Adding a permission or a member to a group that does not
    /// exist must fail with [`StoreError::GroupNotFound`] and change nothing. A tenant never
    /// written has revision 0.
    async fn write(
        &self,
        tenant: &TenantName,
        change: &Change,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, StoreError>;

    /// Makes `changes`, in order, in one transaction, all or none, as one revision when any
    /// changes something: what [`Store::write`] does for one, for many. With `if_revision`,
    /// only if the tenant is at that revision ([`StoreError::RevisionMismatch`]). A change
    /// that cannot be made fails the whole write with [`StoreError::InChange`]. The
    /// changelog records the changes that changed something under the one revision.
    async fn write_many(
        &self,
        tenant: &TenantName,
        changes: &[Change],
        if_revision: Option<u64>,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WrittenMany, StoreError>;

    /// Loads the whole of `tenant` as one consistent snapshot: the policy returned is exactly
    /// the state at the revision it carries. A tenant never written loads as empty at
    /// revision 0.
    async fn load(&self, tenant: &TenantName) -> Result<TenantPolicy, StoreError>;

    /// The current revision of each of `tenants`, in one round trip, each tenant at most once
    /// and in no particular order. Tenants never written are absent (their revision is 0).
    async fn revisions(&self, tenants: &[TenantName]) -> Result<Vec<TenantRevision>, StoreError>;

    /// Every tenant that exists (has been written), each handed to `each` as it is read (there
    /// may be millions), and the position from which [`Store::changed_since`] reports every
    /// later change: one consistent read.
    async fn tenants(
        &self,
        each: &mut (dyn FnMut(TenantRevision) + Send),
    ) -> Result<Position, StoreError>;

    /// Up to `limit` tenants whose names start with `prefix` (every tenant when it is empty)
    /// and come after `after`, in the order of their names' bytes, with their sizes.
    async fn tenant_page(
        &self,
        prefix: &str,
        after: Option<&TenantName>,
        limit: usize,
    ) -> Result<Vec<TenantSummary>, StoreError>;

    /// Every tenant written since `position`, with its current revision, and the position to
    /// ask from next time; one consistent read. A tenant may be reported that did not change
    /// since (the answer errs on the side of more), never left out. Its cost follows the
    /// number of changes since `position`, not the number of tenants.
    ///
    /// `None` when the store can no longer tell: retention ([`Store::prune_changelog`]) may
    /// have deleted the trace of changes made after `position`. The caller then compares
    /// every tenant it holds, and lists the tenants afresh.
    async fn changed_since(&self, position: Position) -> Result<Option<Changed>, StoreError>;

    /// The changes of up to `limit` of the revisions `tenant` made after revision `after`
    /// (fewer once writes of many among them pass [`CHANGE_PAGE_BYTES`], but at least one
    /// revision, and each revision whole), oldest first, and the tenant's current revision,
    /// read in one snapshot. What retention deleted is missing:
    /// the changes kept are every revision from the oldest kept to the current one.
    async fn change_log(
        &self,
        tenant: &TenantName,
        after: u64,
        limit: usize,
    ) -> Result<ChangeLog, StoreError>;

    /// The changes that took `tenant` from revision `after` to its current revision, oldest
    /// first, each with the revision it made; empty when the tenant is not past `after`.
    ///
    /// Returns `None` when replaying is not possible or not worth it: the changelog no longer
    /// reaches back to revision `after + 1` (see [`Store::prune_changelog`]), or there are
    /// more than `limit` changes. The caller then loads the tenant whole.
    async fn changes_since(
        &self,
        tenant: &TenantName,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<Recorded>>, StoreError> {
        let log = self.change_log(tenant, after, limit).await?;
        // `limit` counts revisions as read and changes as replayed: a write of many can make
        // a thousand changes under one revision, and a tenant that far behind loads whole.
        let reached = log.changes.last().map_or(after, |last| last.revision);
        if log.revision.saturating_sub(after) > limit as u64
            || log.changes.len() > limit
            || reached < log.revision
            || !log.continues(after)
        {
            return Ok(None);
        }
        Ok(Some(log.changes))
    }

    /// Deletes changelog entries older than `age`, across all tenants; returns how many went.
    /// Tenants' current state is never affected: only the history used for incremental
    /// refreshes and auditing.
    async fn prune_changelog(&self, age: Duration) -> Result<u64, StoreError>;

    /// Stores a new key, stamped with the store's clock; fails if its id is taken.
    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError>;

    /// Marks a key revoked, now. Revoked keys are kept, so that the changelog's actors stay
    /// readable.
    async fn revoke_key(&self, id: &KeyId) -> Result<Revocation, StoreError>;

    /// Records when keys were last presented: each key's time becomes the later of the one
    /// stored and the one given. Keys that do not exist are passed over.
    async fn record_key_uses(&self, uses: &[(KeyId, OffsetDateTime)]) -> Result<(), StoreError>;

    /// Every key, revoked ones included, oldest first.
    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.key_page(None, usize::MAX).await
    }

    /// The first `limit` keys, revoked ones included, oldest first (ties by id), that come
    /// after the key `after` (from the first key without one). A key id that does not exist is
    /// after every key.
    async fn key_page(
        &self,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError>;

    /// Succeeds if the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the store's connections at shutdown, waiting for the ones in use to be returned.
    async fn close(&self);
}

/// Runs one store operation, failing it as unavailable after `timeout`.
/// The error of a nesting of `group` in `parent` that the store refused for `problem`.
pub(crate) fn nesting_refused(
    problem: NestingProblem,
    group: &GroupName,
    parent: &GroupName,
) -> StoreError {
    let (group, parent) = (group.clone(), parent.clone());
    match problem {
        NestingProblem::Cycle => StoreError::NestingCycle { group, parent },
        NestingProblem::TooDeep => StoreError::NestingTooDeep { group, parent },
    }
}

pub(crate) async fn within<T>(
    timeout: Duration,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())))
}

/// How much longer than the store timeout the server waits for the store's answer to a
/// write: the store ends the write first (PostgreSQL's `statement_timeout`, SQLite's busy
/// timeout) and answers, unless the connection is lost or the disk stalls, the one case in
/// which the server cannot know whether the write committed.
const WRITE_ANSWER_GRACE: Duration = Duration::from_secs(2);

/// A write's answer from the store, waited for rather than given up on first, so that a write
/// answered as failed has not committed and never will. Only if no answer comes at all is the
/// outcome unknown.
pub(crate) async fn answer_of_write<T>(
    timeout: Duration,
    write: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout + WRITE_ANSWER_GRACE, write)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the store did not answer a write: whether it committed is unknown".into(),
            ))
        })
}
