//! The embedded backend: one SQLite file, the default when no DATABASE_URL is given.
//! Schema and the reasons behind it: `migrations/sqlite/`.
//!
//! Several instances on one machine may share the file. WAL mode lets reads go on while one
//! write commits; writes take the write lock when they begin (BEGIN IMMEDIATE), and wait for
//! it up to the store timeout (busy_timeout) instead of failing with "database is locked".

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqliteConnection, Transaction};

use super::rows::{
    ChangeRow, ChangedRow, ChangelogRow, KeyRow, assign_row, build_policy, changed_from_rows,
    read_listing, replay, revision_of, revisions_by_tenant,
};
use super::sqlite_file::FileGuard;
use super::write_health::WriteHealth;
use super::{
    BoxError, Changed, OpenError, Position, Recorded, Store, StoreError, TenantRevision,
    WriteOutcome, answer_of_write, within,
};
use crate::keys::{KeyId, KeyRecord, NewKey, Revocation};
use crate::policy::{Change, TenantName, TenantPolicy};

/// An `api_keys` row as [`KeyRow`] reads it (timestamps are stored as RFC 3339 already).
/// A macro, not a const, so that the queries stay `&'static str` literals.
macro_rules! key_columns {
    () => {
        "id, name, tenant, role, secret_hash, created_at, created_by, revoked_at"
    };
}

/// Connections per instance unless DATABASE_POOL_SIZE says otherwise: reads run side by side
/// in WAL mode; writes queue for the one write lock whatever this is.
pub const DEFAULT_POOL_SIZE: u32 = 8;

pub struct SqliteStore {
    pool: SqlitePool,
    /// How long any one store operation may take, waiting for the write lock included.
    timeout: Duration,
    /// The file written, watched for being deleted, replaced or truncated; None in memory.
    file: Option<Arc<FileGuard>>,
    /// Whether writes fail for want of a usable file (a full disk, an I/O error).
    write_health: WriteHealth,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open_file(
        path: &Path,
        timeout: Duration,
        pool_size: u32,
    ) -> Result<Self, OpenError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::open(options, timeout, pool_size).await
    }

    /// Opens the database a `sqlite:` URL names, creating the file if missing.
    pub async fn open_url(url: &str, timeout: Duration, pool_size: u32) -> Result<Self, OpenError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| OpenError::Invalid(format!("DATABASE_URL is not usable: {e}")))?
            .create_if_missing(true);
        Self::open(options, timeout, pool_size).await
    }

    async fn open(
        options: SqliteConnectOptions,
        timeout: Duration,
        pool_size: u32,
    ) -> Result<Self, OpenError> {
        let filename = options.get_filename().to_owned();
        // sqlx names a database in memory `file:sqlx-in-memory-N`.
        let in_memory = filename == Path::new(":memory:")
            || filename
                .to_string_lossy()
                .starts_with("file:sqlx-in-memory-");
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across process crashes in WAL mode; only a power loss can
            // take back the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(timeout);
        let pool = SqlitePoolOptions::new()
            // An in-memory database lives and dies with its one connection.
            .max_connections(if in_memory { 1 } else { pool_size })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| OpenError::Unreachable(format!("cannot open the SQLite database: {e}")))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(OpenError::from_migration)?;
        // A database in memory has no file to watch.
        let file = match in_memory {
            true => None,
            false => Some(Arc::new(FileGuard::new(&filename).map_err(|e| {
                OpenError::Unreachable(format!(
                    "cannot look at the SQLite database file {}: {e}",
                    filename.display()
                ))
            })?)),
        };
        Ok(Self {
            pool,
            timeout,
            file,
            write_health: WriteHealth::default(),
        })
    }

    /// Refuses to go on if the file is no longer the one opened. Looking is a few system
    /// calls on the file, made off the runtime's threads: a stalled disk must not stall
    /// checks.
    async fn file_usable(&self) -> Result<(), StoreError> {
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || file.check().map_err(str::to_owned))
            .await
            .map_err(|e| StoreError::Internal(Box::new(e)))?
            .map_err(|reason| StoreError::Unavailable(reason.into()))
    }

    /// Runs `write` on a connection of its own, waiting for SQLite's answer rather than
    /// giving up first (it stops waiting for the write lock at the busy timeout), and
    /// acknowledges it only if the file is still the one opened: else the write went where
    /// nobody will read it. A connection whose write failed is closed, not reused: one whose
    /// COMMIT failed (a full disk) can be left believing it is still in a transaction, and
    /// would refuse every later write. The outcome also tells whether the store takes writes.
    async fn write_with<T>(
        &self,
        write: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.file_usable().await?;
        let mut connection = self.pool.acquire().await.map_err(classify)?;
        let mut answer = answer_of_write(self.timeout, write(&mut connection)).await;
        if matches!(
            answer,
            Err(StoreError::Unavailable(_) | StoreError::Internal(_))
        ) {
            connection.close_on_drop();
        }
        if answer.is_ok()
            && let Err(lost) = self.file_usable().await
        {
            answer = Err(lost);
        }
        self.write_health.record(&answer, is_fault);
        answer
    }

    /// A write of the health-probe row: does the store take writes again?
    async fn probe(&self) -> Result<(), StoreError> {
        self.write_with(async |connection| {
            let mut tx = connection
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(classify)?;
            sqlx::query(
                "INSERT INTO health_probe (id, at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ'))
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            tx.commit().await.map_err(classify)
        })
        .await
    }

    async fn write_in_transaction(
        connection: &mut SqliteConnection,
        tenant: &TenantName,
        change: &Change,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        // The write lock now, not at the first write: a deferred transaction that has read
        // cannot wait for the lock and would fail with "database is locked".
        let mut tx = connection
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        let held: i64 = sqlx::query_scalar(
            "INSERT INTO tenants (name) VALUES (?1)
             ON CONFLICT (name) DO UPDATE SET revision = revision
             RETURNING revision",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;

        let changed = apply(&mut tx, tenant, change).await?;
        if !changed {
            tx.rollback().await.map_err(classify)?;
            return Ok(WriteOutcome {
                changed: false,
                revision: revision_of(tenant, held)?,
            });
        }
        let revision: i64 = sqlx::query_scalar(
            "UPDATE tenants SET revision = revision + 1 WHERE name = ?1 RETURNING revision",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let row = ChangeRow::of(change);
        sqlx::query(
            "INSERT INTO changelog
                 (tenant, revision, operation, group_name, user_name, resource, action,
                  server_id, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(tenant.as_str())
        .bind(revision)
        .bind(row.operation.as_str())
        .bind(row.group)
        .bind(row.user)
        .bind(row.resource)
        .bind(row.action)
        .bind(server_id)
        .bind(actor)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(WriteOutcome {
            changed: true,
            revision: revision_of(tenant, revision)?,
        })
    }

    async fn load_in_transaction(&self, tenant: &TenantName) -> Result<TenantPolicy, StoreError> {
        // In WAL mode a read transaction sees one snapshot from its first read on.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let revision = revision_in(&mut tx, tenant).await?;
        let groups: Vec<String> = sqlx::query_scalar("SELECT name FROM groups WHERE tenant = ?1")
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        let permissions: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT group_name, resource, action FROM permissions WHERE tenant = ?1",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let mut policy = build_policy(revision, groups, permissions)?;
        let mut assignments = sqlx::query_as::<_, (String, String)>(
            "SELECT group_name, user_name FROM assignments WHERE tenant = ?1",
        )
        .bind(tenant.as_str())
        .fetch(&mut *tx);
        while let Some((group, user)) = assignments.try_next().await.map_err(classify)? {
            assign_row(&mut policy, &group, &user)?;
        }
        drop(assignments);
        tx.rollback().await.map_err(classify)?;
        Ok(policy)
    }

    async fn changes_in_transaction(
        &self,
        tenant: &TenantName,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<Recorded>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let current = revision_in(&mut tx, tenant).await?;
        if current <= after {
            tx.rollback().await.map_err(classify)?;
            return Ok(Some(Vec::new()));
        }
        if current - after > limit as u64 {
            tx.rollback().await.map_err(classify)?;
            return Ok(None);
        }
        let rows: Vec<ChangelogRow> = sqlx::query_as(
            "SELECT revision, operation, group_name, user_name, resource, action
             FROM changelog WHERE tenant = ?1 AND revision > ?2 ORDER BY revision",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        tx.rollback().await.map_err(classify)?;
        replay(after, current, rows)
    }
}

#[async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(skip_all, fields(tenant = %tenant, operation = %change.operation()))]
    async fn write(
        &self,
        tenant: &TenantName,
        change: &Change,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        self.write_with(async |connection| {
            Self::write_in_transaction(connection, tenant, change, server_id, actor).await
        })
        .await
    }

    async fn load(&self, tenant: &TenantName) -> Result<TenantPolicy, StoreError> {
        within(self.timeout, self.load_in_transaction(tenant)).await
    }

    async fn revisions(&self, tenants: &[TenantName]) -> Result<Vec<TenantRevision>, StoreError> {
        // SQLite has no arrays; the names travel as one JSON array.
        let names =
            serde_json::to_string(&tenants.iter().map(TenantName::as_str).collect::<Vec<_>>())
                .map_err(|e| StoreError::Internal(Box::new(e)))?;
        let rows: Vec<(String, i64)> = within(self.timeout, async {
            sqlx::query_as(
                "SELECT name, revision FROM tenants
                 WHERE name IN (SELECT value FROM json_each(?1))",
            )
            .bind(names)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
        })
        .await?;
        revisions_by_tenant(rows)
    }

    async fn tenants(
        &self,
        each: &mut (dyn FnMut(TenantName) + Send),
    ) -> Result<Position, StoreError> {
        // One statement reads one snapshot. The position is the number of the latest change:
        // see the migration 20261130000001_change_positions.sql.
        let rows = sqlx::query_as::<_, ChangedRow>(
            "SELECT NULL, NULL, (SELECT COALESCE(MAX(changed_seq), 0) FROM tenants), TRUE
             UNION ALL
             SELECT name, revision, NULL, NULL FROM tenants WHERE revision > 0",
        )
        .fetch(&self.pool);
        read_listing(self.timeout, rows, classify, each).await
    }

    async fn changed_since(&self, position: Position) -> Result<Option<Changed>, StoreError> {
        // Always complete: the numbers live on the tenants, which retention does not touch.
        let rows: Vec<ChangedRow> = within(self.timeout, async {
            sqlx::query_as(
                "SELECT NULL, NULL, (SELECT COALESCE(MAX(changed_seq), 0) FROM tenants), TRUE
                 UNION ALL
                 SELECT name, revision, NULL, NULL FROM tenants WHERE changed_seq > ?1",
            )
            .bind(i64::try_from(position.0).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
        })
        .await?;
        changed_from_rows(rows)
    }

    async fn changes_since(
        &self,
        tenant: &TenantName,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<Recorded>>, StoreError> {
        within(
            self.timeout,
            self.changes_in_transaction(tenant, after, limit),
        )
        .await
    }

    async fn prune_changelog(&self, age: Duration) -> Result<u64, StoreError> {
        let modifier = format!("-{} seconds", age.as_secs());
        within(self.timeout, async {
            sqlx::query(
                "DELETE FROM changelog
                 WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1)",
            )
            .bind(modifier)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(classify)
        })
        .await
    }

    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let row: KeyRow = self
            .write_with(async |connection| {
                sqlx::query_as(concat!(
                    "INSERT INTO api_keys (id, name, tenant, role, secret_hash, created_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING ",
                    key_columns!()
                ))
                .bind(key.id.as_str())
                .bind(&key.name)
                .bind(key.scope.tenant().map(TenantName::as_str))
                .bind(key.role.as_str())
                .bind(&key.secret_hash[..])
                .bind(&key.created_by)
                .fetch_one(connection)
                .await
                .map_err(classify)
            })
            .await?;
        row.into_record()
    }

    async fn revoke_key(&self, id: &KeyId) -> Result<Revocation, StoreError> {
        self.write_with(async |connection| {
            let mut tx = connection
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(classify)?;
            let revoked_at: Option<Option<String>> =
                sqlx::query_scalar("SELECT revoked_at FROM api_keys WHERE id = ?1")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(classify)?;
            let outcome = match revoked_at {
                None => Revocation::NoSuchKey,
                Some(Some(_)) => Revocation::AlreadyRevoked,
                Some(None) => {
                    sqlx::query(
                        "UPDATE api_keys SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                         WHERE id = ?1",
                    )
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                    Revocation::Revoked
                }
            };
            tx.commit().await.map_err(classify)?;
            Ok(outcome)
        })
        .await
    }

    async fn key_page(
        &self,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows: Vec<KeyRow> = within(self.timeout, async {
            sqlx::query_as(concat!(
                "SELECT ",
                key_columns!(),
                " FROM api_keys
                 WHERE ?1 IS NULL
                    OR (created_at, id) > (SELECT k.created_at, k.id FROM api_keys k WHERE k.id = ?1)
                 ORDER BY created_at, id
                 LIMIT ?2"
            ))
            .bind(after.map(KeyId::as_str))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
        })
        .await?;
        rows.into_iter().map(KeyRow::into_record).collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.file_usable().await?;
        within(self.timeout, async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map(drop)
                .map_err(classify)
        })
        .await?;
        self.write_health.check(self.probe()).await
    }
}

/// The tenant's revision as `tx` sees it; 0 for a tenant never written.
async fn revision_in(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &TenantName,
) -> Result<u64, StoreError> {
    let revision: Option<i64> = sqlx::query_scalar("SELECT revision FROM tenants WHERE name = ?1")
        .bind(tenant.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(classify)?;
    revision.map_or(Ok(0), |revision| revision_of(tenant, revision))
}

/// Applies the change's rows; returns whether any row changed.
async fn apply(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantName,
    change: &Change,
) -> Result<bool, StoreError> {
    let t = tenant.as_str();
    let result = match change {
        Change::CreateGroup { group } => {
            sqlx::query("INSERT INTO groups (tenant, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
                .bind(t)
                .bind(group.as_str())
                .execute(&mut **tx)
                .await
        }
        Change::DeleteGroup { group } => {
            sqlx::query("DELETE FROM groups WHERE tenant = ?1 AND name = ?2")
                .bind(t)
                .bind(group.as_str())
                .execute(&mut **tx)
                .await
        }
        Change::AddPermission { group, permission } => {
            sqlx::query(
                "INSERT INTO permissions (tenant, group_name, resource, action)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .bind(t)
            .bind(group.as_str())
            .bind(permission.resource.as_str())
            .bind(permission.action.as_str())
            .execute(&mut **tx)
            .await
        }
        Change::RemovePermission { group, permission } => {
            sqlx::query(
                "DELETE FROM permissions
                 WHERE tenant = ?1 AND group_name = ?2 AND resource = ?3 AND action = ?4",
            )
            .bind(t)
            .bind(group.as_str())
            .bind(permission.resource.as_str())
            .bind(permission.action.as_str())
            .execute(&mut **tx)
            .await
        }
        Change::AssignUser { group, user } => {
            sqlx::query(
                "INSERT INTO assignments (tenant, group_name, user_name)
                 VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )
            .bind(t)
            .bind(group.as_str())
            .bind(user.as_str())
            .execute(&mut **tx)
            .await
        }
        Change::UnassignUser { group, user } => {
            sqlx::query(
                "DELETE FROM assignments WHERE tenant = ?1 AND group_name = ?2 AND user_name = ?3",
            )
            .bind(t)
            .bind(group.as_str())
            .bind(user.as_str())
            .execute(&mut **tx)
            .await
        }
    };
    match result {
        Ok(done) => Ok(done.rows_affected() > 0),
        // Checked by the foreign key inside the write-locked transaction, so the group cannot
        // go away between the check and the insert.
        Err(sqlx::Error::Database(e))
            if change.requires_group()
                && e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
        {
            Err(StoreError::GroupNotFound(change.group().clone()))
        }
        Err(e) => Err(classify(e)),
    }
}

/// Whether a store error says the file cannot take writes (rather than that its write lock is
/// busy): an I/O error, or a result code of a file that cannot be used.
fn is_fault(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<sqlx::Error>().is_some_and(unusable)
}

/// An I/O error, or a primary result code (the low byte of an extended one) of a file that
/// cannot be used: SQLITE_PERM (3), SQLITE_READONLY (8), SQLITE_IOERR (10), SQLITE_CORRUPT
/// (11), SQLITE_FULL (13), SQLITE_CANTOPEN (14), SQLITE_NOTADB (26).
fn unusable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(e) => primary_code(e.as_ref())
            .is_some_and(|code| matches!(code, 3 | 8 | 10 | 11 | 13 | 14 | 26)),
        _ => false,
    }
}

fn primary_code(error: &dyn sqlx::error::DatabaseError) -> Option<i32> {
    error
        .code()
        .and_then(|c| c.parse::<i32>().ok())
        .map(|code| code & 0xff)
}

/// Sorts a database error into "the store is not there (or too busy)" and everything else.
fn classify(error: sqlx::Error) -> StoreError {
    let unavailable = unusable(&error)
        || match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                true
            }
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6): the write lock taken past busy_timeout.
            // Retrying later is the answer, as it is for a file an operator mends.
            sqlx::Error::Database(e) => matches!(primary_code(e.as_ref()), Some(5 | 6)),
            _ => false,
        };
    let source: BoxError = Box::new(error);
    if unavailable {
        StoreError::Unavailable(source)
    } else {
        StoreError::Internal(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::GroupName;

    #[tokio::test]
    async fn a_revision_broken_behind_the_servers_back_fails_every_read_of_it() {
        let store = SqliteStore::open_url("sqlite::memory:", Duration::from_secs(5), 1)
            .await
            .unwrap();
        let acme = TenantName::parse("tenant", "acme").unwrap();
        let create = Change::CreateGroup {
            group: GroupName::parse("group", "g").unwrap(),
        };
        store.write(&acme, &create, "test", None).await.unwrap();
        // What the schema's CHECK refuses, done as someone editing the file by hand could.
        for statement in [
            "PRAGMA ignore_check_constraints = ON",
            "UPDATE tenants SET revision = -1",
        ] {
            sqlx::query(statement).execute(&store.pool).await.unwrap();
        }
        let reads = [
            store.load(&acme).await.map(drop),
            store.revisions(std::slice::from_ref(&acme)).await.map(drop),
            store.changed_since(Position::default()).await.map(drop),
            store.changes_since(&acme, 0, 10).await.map(drop),
            store.write(&acme, &create, "test", None).await.map(drop),
        ];
        for read in reads {
            match read {
                Err(error @ StoreError::Internal(_)) => {
                    let message = crate::error_chain(&error);
                    assert!(
                        message.contains("the revision of tenant 'acme' below zero: -1"),
                        "{message}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
