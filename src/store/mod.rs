//! The source of truth: where writes commit and where the cache loads tenants from.
//!
//! The [`Store`] trait is the whole contract between the server and a storage engine; the
//! HTTP layer never sees SQL. [`postgres::PgStore`] is the backend for several instances on
//! several machines; [`sqlite::SqliteStore`] is the embedded default, one file on one machine.
//! Both pass the same conformance suite (`tests/store_conformance.rs`).

pub mod postgres;
pub mod sqlite;
mod sqlite_file;
mod write_health;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{Stream, TryFutureExt, TryStreamExt};

use crate::keys::{KeyId, KeyRecord, NewKey, Revocation, Role, Scope};
use crate::policy::{
    Action, Change, GroupName, NameError, Operation, Permission, Resource, TenantName,
    TenantPolicy, UserName,
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

/// A change as the changelog recorded it, with the revision it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub revision: u64,
    pub change: Change,
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
        each: &mut (dyn FnMut(TenantName) + Send),
    ) -> Result<Position, StoreError>;

    /// Every tenant written since `position`, with its current revision, and the position to
    /// ask from next time; one consistent read. A tenant may be reported that did not change
    /// since (the answer errs on the side of more), never left out. Its cost follows the
    /// number of changes since `position`, not the number of tenants.
    ///
    /// `None` when the store can no longer tell: retention ([`Store::prune_changelog`]) may
    /// have deleted the trace of changes made after `position`. The caller then compares
    /// every tenant it holds, and lists the tenants afresh.
    async fn changed_since(&self, position: Position) -> Result<Option<Changed>, StoreError>;

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
    ) -> Result<Option<Vec<Recorded>>, StoreError>;

    /// Deletes changelog entries older than `age`, across all tenants; returns how many went.
    /// Tenants' current state is never affected: only the history used for incremental
    /// refreshes and auditing.
    async fn prune_changelog(&self, age: Duration) -> Result<u64, StoreError>;

    /// Stores a new key, stamped with the store's clock.
    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError>;

    /// Marks a key revoked, now. Revoked keys are kept, so that the changelog's actors stay
    /// readable.
    async fn revoke_key(&self, id: &KeyId) -> Result<Revocation, StoreError>;

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

/// Builds a tenant's groups and permissions from the rows of one consistent read; the
/// memberships follow, row by row, through [`assign_row`].
pub(crate) fn build_policy(
    revision: u64,
    groups: Vec<String>,
    permissions: Vec<(String, String, String)>,
) -> Result<TenantPolicy, StoreError> {
    let mut policy = TenantPolicy::at_revision(revision);
    for group in groups {
        policy.apply(&Change::CreateGroup {
            group: stored(GroupName::parse("group", &group))?,
        });
    }
    for (group, resource, action) in permissions {
        policy.apply(&Change::AddPermission {
            group: stored(GroupName::parse("group", &group))?,
            permission: Permission {
                resource: stored(Resource::parse("resource", &resource))?,
                action: stored(Action::parse("action", &action))?,
            },
        });
    }
    Ok(policy)
}

/// Adds one membership row to a policy being loaded. Memberships are by far the most rows of
/// a large tenant, so the backends stream them in rather than collect them first: a million
/// of them collected took some 100 MB more at the peak of a load, and left it resident.
pub(crate) fn assign_row(
    policy: &mut TenantPolicy,
    group: &str,
    user: &str,
) -> Result<(), StoreError> {
    policy.apply(&Change::AssignUser {
        group: stored(GroupName::parse("group", group))?,
        user: stored(UserName::parse("user", user))?,
    });
    Ok(())
}

/// A revision as stored (a signed integer, kept non-negative by the schema's CHECK).
pub(crate) fn to_revision(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// (tenant, revision) rows as [`Store::revisions`] answers them.
pub(crate) fn revisions_by_tenant(
    rows: Vec<(String, i64)>,
) -> Result<Vec<TenantRevision>, StoreError> {
    rows.into_iter()
        .map(|(name, revision)| {
            Ok(TenantRevision {
                tenant: stored(TenantName::parse("tenant", &name))?,
                revision: to_revision(revision),
            })
        })
        .collect()
}

/// A row of [`Store::tenants`] or [`Store::changed_since`] as both backends answer them: a
/// tenant and its revision; or, in one row with neither, the position the read was made at
/// and whether the store's history still reaches back to the position asked from. One
/// statement reads both, so that they come from one snapshot.
pub(crate) type ChangedRow = (Option<String>, Option<i64>, Option<i64>, Option<bool>);

/// The position a read was made at, and whether the history reached back far enough.
type Sentinel = (Position, bool);

/// Reads one [`ChangedRow`]: a tenant, handed to `each`, or the sentinel, returned.
fn read_changed_row(
    row: ChangedRow,
    each: &mut dyn FnMut(TenantName, u64),
) -> Result<Option<Sentinel>, StoreError> {
    match row {
        (Some(name), Some(revision), None, None) => {
            each(
                stored(TenantName::parse("tenant", &name))?,
                to_revision(revision),
            );
            Ok(None)
        }
        (None, None, Some(position), Some(complete)) => Ok(Some((
            Position(u64::try_from(position).unwrap_or_default()),
            complete,
        ))),
        other => Err(StoreError::Internal(
            format!("a list of tenants has a malformed row {other:?}").into(),
        )),
    }
}

/// A listing of every tenant, handed to `each` as its rows stream in; the position it was
/// read at. However many tenants there are, the listing takes as long as it takes: what is
/// bounded is each wait for the store.
pub(crate) async fn read_listing(
    timeout: Duration,
    mut rows: impl Stream<Item = Result<ChangedRow, sqlx::Error>> + Unpin,
    classify: fn(sqlx::Error) -> StoreError,
    each: &mut (dyn FnMut(TenantName) + Send),
) -> Result<Position, StoreError> {
    let mut sentinel = None;
    while let Some(row) = within(timeout, rows.try_next().map_err(classify)).await? {
        sentinel = sentinel.or(read_changed_row(row, &mut |tenant, _| each(tenant))?);
    }
    sentinel
        .map(|(position, _)| position)
        .ok_or_else(|| StoreError::Internal("the list of tenants has no position".into()))
}

/// The tenants and the position of [`ChangedRow`]s; None if the history did not reach back.
pub(crate) fn changed_from_rows(rows: Vec<ChangedRow>) -> Result<Option<Changed>, StoreError> {
    let mut changed = Changed::default();
    let mut sentinel = None;
    for row in rows {
        let mut add = |tenant, revision| changed.tenants.push(TenantRevision { tenant, revision });
        sentinel = sentinel.or(read_changed_row(row, &mut add)?);
    }
    match sentinel {
        Some((position, true)) => {
            changed.position = position;
            Ok(Some(changed))
        }
        Some((_, false)) => Ok(None),
        None => Err(StoreError::Internal(
            "a list of changes has no position".into(),
        )),
    }
}

/// An `api_keys` row as both backends read it. The timestamps are decoded by sqlx from each
/// store's own type (PostgreSQL's `timestamptz`, SQLite's RFC 3339 text).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub id: String,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub role: String,
    pub secret_hash: Vec<u8>,
    pub created_at: time::OffsetDateTime,
    pub created_by: Option<String>,
    pub revoked_at: Option<time::OffsetDateTime>,
}

impl KeyRow {
    pub fn into_record(self) -> Result<KeyRecord, StoreError> {
        let id = KeyId::parse("id", &self.id).map_err(|_| {
            StoreError::Internal(
                format!("the store holds a key id {:?} of the wrong shape", self.id).into(),
            )
        })?;
        let scope = match &self.tenant {
            None => Scope::All,
            Some(tenant) => Scope::Tenant(stored(TenantName::parse("tenant", tenant))?),
        };
        let role = Role::parse(&self.role).ok_or_else(|| {
            StoreError::Internal(
                format!("key {} has an unknown role {:?}", self.id, self.role).into(),
            )
        })?;
        let secret_hash = self.secret_hash.as_slice().try_into().map_err(|_| {
            StoreError::Internal(format!("key {} has a malformed hash", self.id).into())
        })?;
        Ok(KeyRecord {
            id,
            name: self.name,
            scope,
            role,
            secret_hash,
            created_at: self.created_at,
            created_by: self.created_by,
            revoked_at: self.revoked_at,
        })
    }
}

/// A changelog row as both backends read it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChangelogRow {
    pub revision: i64,
    pub operation: String,
    pub group_name: String,
    pub user_name: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
}

/// The changes after `after` up to `current`, from the changelog rows read in the same
/// snapshot; `None` when retention removed some of them.
pub(crate) fn replay(
    after: u64,
    current: u64,
    rows: Vec<ChangelogRow>,
) -> Result<Option<Vec<Recorded>>, StoreError> {
    let complete = rows.len() as u64 == current.saturating_sub(after)
        && rows
            .iter()
            .zip(after + 1..)
            .all(|(row, expected)| u64::try_from(row.revision) == Ok(expected));
    if !complete {
        return Ok(None);
    }
    rows.iter()
        .map(|row| {
            let operation = row.operation.parse().map_err(|_| {
                StoreError::Internal(
                    format!(
                        "the changelog holds an unknown operation {:?}",
                        row.operation
                    )
                    .into(),
                )
            })?;
            let change = ChangeRow {
                operation,
                group: &row.group_name,
                user: row.user_name.as_deref(),
                resource: row.resource.as_deref(),
                action: row.action.as_deref(),
            }
            .to_change()?;
            Ok(Recorded {
                revision: u64::try_from(row.revision).unwrap_or_default(),
                change,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()
        .map(Some)
}

/// A change as the changelog stores it: the operation's name and the entities it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow<'a> {
    pub operation: Operation,
    pub group: &'a str,
    pub user: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub action: Option<&'a str>,
}

impl<'a> ChangeRow<'a> {
    pub fn of(change: &'a Change) -> Self {
        let (user, resource, action) = match change {
            Change::CreateGroup { .. } | Change::DeleteGroup { .. } => (None, None, None),
            Change::AddPermission { permission, .. }
            | Change::RemovePermission { permission, .. } => (
                None,
                Some(permission.resource.as_str()),
                Some(permission.action.as_str()),
            ),
            Change::AssignUser { user, .. } | Change::UnassignUser { user, .. } => {
                (Some(user.as_str()), None, None)
            }
        };
        Self {
            operation: change.operation(),
            group: change.group().as_str(),
            user,
            resource,
            action,
        }
    }

    /// The change this row records.
    pub fn to_change(&self) -> Result<Change, StoreError> {
        let group = stored(GroupName::parse("group", self.group))?;
        let user = || stored(UserName::parse("user", self.user.unwrap_or_default()));
        let permission = || {
            Ok::<_, StoreError>(Permission {
                resource: stored(Resource::parse(
                    "resource",
                    self.resource.unwrap_or_default(),
                ))?,
                action: stored(Action::parse("action", self.action.unwrap_or_default()))?,
            })
        };
        Ok(match self.operation {
            Operation::CreateGroup => Change::CreateGroup { group },
            Operation::DeleteGroup => Change::DeleteGroup { group },
            Operation::AddPermission => Change::AddPermission {
                group,
                permission: permission()?,
            },
            Operation::RemovePermission => Change::RemovePermission {
                group,
                permission: permission()?,
            },
            Operation::AssignUser => Change::AssignUser {
                group,
                user: user()?,
            },
            Operation::UnassignUser => Change::UnassignUser {
                group,
                user: user()?,
            },
            other @ (Operation::RefreshTenant
            | Operation::CreateApiKey
            | Operation::RevokeApiKey) => {
                return Err(StoreError::Internal(
                    format!("the changelog holds {other}, which is never recorded").into(),
                ));
            }
        })
    }
}

/// Names come back from the store as they went in, already validated; one that no longer
/// parses means the data was changed behind the server's back.
pub(crate) fn stored<T>(parsed: Result<T, NameError>) -> Result<T, StoreError> {
    parsed.map_err(|e| StoreError::Internal(format!("the store holds an invalid name: {e}").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_survives_the_changelog_row_round_trip() {
        let group = GroupName::parse("group", "g").unwrap();
        let user = UserName::parse("user", "u").unwrap();
        let permission = Permission {
            resource: Resource::parse("resource", "docs/*").unwrap(),
            action: Action::parse("action", "*").unwrap(),
        };
        for change in [
            Change::CreateGroup {
                group: group.clone(),
            },
            Change::DeleteGroup {
                group: group.clone(),
            },
            Change::AddPermission {
                group: group.clone(),
                permission: permission.clone(),
            },
            Change::RemovePermission {
                group: group.clone(),
                permission,
            },
            Change::AssignUser {
                group: group.clone(),
                user: user.clone(),
            },
            Change::UnassignUser { group, user },
        ] {
            assert_eq!(ChangeRow::of(&change).to_change().unwrap(), change);
        }
    }

    #[test]
    fn a_row_with_an_unknown_operation_or_a_missing_entity_is_an_error() {
        let row = |operation: &str| ChangelogRow {
            revision: 1,
            operation: operation.to_owned(),
            group_name: "g".to_owned(),
            user_name: None,
            resource: None,
            action: None,
        };
        assert!(replay(0, 1, vec![row("grant-everything")]).is_err());
        assert!(replay(0, 1, vec![row("refresh-tenant")]).is_err());
        assert!(replay(0, 1, vec![row("create-group")]).unwrap().is_some());
        let row = ChangeRow {
            operation: Operation::AssignUser,
            group: "g",
            user: None,
            resource: None,
            action: None,
        };
        assert!(row.to_change().is_err());
    }
}
