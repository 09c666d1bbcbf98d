//! The embedded backend: one SQLite file, the default when no DATABASE_URL is given.
//! Schema and the reasons behind it: `migrations/sqlite/`.
//!
//! Several instances on one machine may share the file. WAL mode lets reads go on while one
//! write commits; writes take the write lock when they begin (BEGIN IMMEDIATE), and wait for
//! it up to the store timeout (busy_timeout) instead of failing with "database is locked".

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Pool, Sqlite, SqliteConnection, Transaction};
use time::OffsetDateTime;

use super::rows::{
    ChangeRow, ChangedRow, ChangelogRow, change_log, changelog_columns, logged_changes,
    read_listing, revision_of, revisions_by_tenant,
};
use super::sql::Sql;
use super::sqlite_file::FileGuard;
use super::write_health::WriteHealth;
use super::{
    CHANGE_PAGE_BYTES, ChangeLog, Changed, OpenError, Position, Store, StoreError, TenantRevision,
    TenantSummary, WriteOutcome, WrittenMany, answer_of_write, nesting_refused, within,
};
use crate::keys::{KeyId, KeyRecord, NewKey, Revocation};
use crate::policy::{
    Change, GroupName, MAX_NESTING_DEPTH, NestingProblem, TenantName, TenantPolicy, UnixMillis,
    UserName,
};

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

/// An exclusive lock on `<database>-migration-lock`, held while the value lives; waits for
/// another process's.
async fn migration_lock(database: &Path) -> Result<std::fs::File, OpenError> {
    let mut path = database.as_os_str().to_owned();
    path.push("-migration-lock");
    let path = PathBuf::from(path);
    let locking = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    });
    locking
        .await
        .map_err(|e| {
            OpenError::Invalid(format!(
                "cannot lock the SQLite database to migrate it: {e}"
            ))
        })?
        .map_err(|e| {
            OpenError::Unreachable(format!(
                "cannot lock the SQLite database to migrate it: {e}"
            ))
        })
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
        // sqlx takes no lock around SQLite migrations: instances sharing a file that start
        // together would each apply the same migration. A lock on a file beside it makes
        // them take turns; the lock goes with the process if it dies.
        let _migrating = match in_memory {
            true => None,
            false => Some(migration_lock(&filename).await?),
        };
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
        let mut connection = self.pool.acquire().await.map_err(Sqlite::classify)?;
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
        self.write_health.record(&answer, Sqlite::is_fault);
        answer
    }

    /// A write of the health-probe row: does the store take writes again?
    async fn probe(&self) -> Result<(), StoreError> {
        self.write_with(async |connection| {
            let mut tx = connection
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(Sqlite::classify)?;
            sqlx::query(
                "INSERT INTO health_probe (id, at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ'))
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .execute(&mut *tx)
            .await
            .map_err(Sqlite::classify)?;
            tx.commit().await.map_err(Sqlite::classify)
        })
        .await
    }

    /// A write of `tenant` begun: the transaction, with the write lock taken now rather than
    /// at the first write (a deferred transaction that has read cannot wait for the lock, and
    /// would fail with "database is locked"), and the tenant's revision, its row made if it
    /// is new (a rollback takes the row back).
    async fn begin_write<'c>(
        connection: &'c mut SqliteConnection,
        tenant: &TenantName,
    ) -> Result<(Transaction<'c, Sqlite>, u64), StoreError> {
        let mut tx = connection
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(Sqlite::classify)?;
        let held: i64 = sqlx::query_scalar(
            "INSERT INTO tenants (name) VALUES (?1)
             ON CONFLICT (name) DO UPDATE SET revision = revision
             RETURNING revision",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(Sqlite::classify)?;
        Ok((tx, revision_of(tenant, held)?))
    }

    /// The steps of PostgreSQL's rbac_write_many, as statements, under the write lock: each
    /// change through [`apply`], in order; the first that fails rolls back the others.
    async fn write_many_in_transaction(
        connection: &mut SqliteConnection,
        tenant: &TenantName,
        changes: &[Change],
        if_revision: Option<u64>,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WrittenMany, StoreError> {
        let (mut tx, held) = Self::begin_write(connection, tenant).await?;
        if let Some(expected) = if_revision.filter(|&expected| expected != held) {
            tx.rollback().await.map_err(Sqlite::classify)?;
            return Err(StoreError::RevisionMismatch {
                expected,
                current: held,
            });
        }
        let mut results = Vec::with_capacity(changes.len());
        for (index, change) in changes.iter().enumerate() {
            match apply(&mut tx, tenant, change).await {
                Ok(changed) => results.push(changed),
                Err(error) => {
                    tx.rollback().await.map_err(Sqlite::classify)?;
                    // A refusal is the change's; an outage or a fault is the store's, and is
                    // reported as such (write health sees it).
                    return Err(match error {
                        refusal @ (StoreError::GroupNotFound(_)
                        | StoreError::NestingCycle { .. }
                        | StoreError::NestingTooDeep { .. }) => StoreError::InChange {
                            index,
                            error: Box::new(refusal),
                        },
                        other => other,
                    });
                }
            }
        }
        let made: Vec<&Change> = changes
            .iter()
            .zip(&results)
            .filter_map(|(change, &changed)| changed.then_some(change))
            .collect();
        if made.is_empty() {
            tx.rollback().await.map_err(Sqlite::classify)?;
            return Ok(WrittenMany {
                changed: false,
                revision: held,
                results,
            });
        }
        let revision = next_revision(&mut tx, tenant).await?;
        sqlx::query(
            "INSERT INTO changelog
                 (tenant, revision, operation, group_name, server_id, actor, changes)
             VALUES (?1, ?2, 'write', '', ?3, ?4, ?5)",
        )
        .bind(tenant.as_str())
        .bind(revision)
        .bind(server_id)
        .bind(actor)
        .bind(logged_changes(&made))
        .execute(&mut *tx)
        .await
        .map_err(Sqlite::classify)?;
        tx.commit().await.map_err(Sqlite::classify)?;
        Ok(WrittenMany {
            changed: true,
            revision: revision_of(tenant, revision)?,
            results,
        })
    }

    async fn write_in_transaction(
        connection: &mut SqliteConnection,
        tenant: &TenantName,
        change: &Change,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        // The steps PostgreSQL runs in its rbac_write function, as statements: SQLite has no
        // stored functions, and a round trip to it costs no network.
        let (mut tx, held) = Self::begin_write(connection, tenant).await?;
        let changed = apply(&mut tx, tenant, change).await?;
        if !changed {
            tx.rollback().await.map_err(Sqlite::classify)?;
            return Ok(WriteOutcome {
                changed: false,
                revision: held,
            });
        }
        let revision = next_revision(&mut tx, tenant).await?;
        let row = ChangeRow::of(change);
        sqlx::query(
            "INSERT INTO changelog
                 (tenant, revision, operation, group_name, user_name, resource, action, parent,
                  expires_at_ms, server_id, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .bind(tenant.as_str())
        .bind(revision)
        .bind(row.operation.as_str())
        .bind(row.group)
        .bind(row.user)
        .bind(row.resource)
        .bind(row.action)
        .bind(row.parent)
        .bind(row.expires_at_ms)
        .bind(server_id)
        .bind(actor)
        .execute(&mut *tx)
        .await
        .map_err(Sqlite::classify)?;
        tx.commit().await.map_err(Sqlite::classify)?;
        Ok(WriteOutcome {
            changed: true,
            revision: revision_of(tenant, revision)?,
        })
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

    #[tracing::instrument(skip_all, fields(tenant = %tenant, changes = changes.len()))]
    async fn write_many(
        &self,
        tenant: &TenantName,
        changes: &[Change],
        if_revision: Option<u64>,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WrittenMany, StoreError> {
        self.write_with(async |connection| {
            Self::write_many_in_transaction(
                connection,
                tenant,
                changes,
                if_revision,
                server_id,
                actor,
            )
            .await
        })
        .await
    }

    async fn load(&self, tenant: &TenantName) -> Result<TenantPolicy, StoreError> {
        within(self.timeout, Sqlite::load_whole(&self.pool, tenant)).await
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
            .map_err(Sqlite::classify)
        })
        .await?;
        revisions_by_tenant(rows)
    }

    async fn tenants(
        &self,
        each: &mut (dyn FnMut(TenantRevision) + Send),
    ) -> Result<Position, StoreError> {
        // One statement reads one snapshot. The position is the number of the latest change:
        // see the migration 20261130000001_change_positions.sql.
        let rows = sqlx::query_as::<_, ChangedRow>(
            "SELECT NULL, NULL, (SELECT COALESCE(MAX(changed_seq), 0) FROM tenants), TRUE
             UNION ALL
             SELECT name, revision, NULL, NULL FROM tenants WHERE revision > 0",
        )
        .fetch(&self.pool);
        read_listing(self.timeout, rows, Sqlite::classify, each).await
    }

    async fn changed_since(&self, position: Position) -> Result<Option<Changed>, StoreError> {
        // The tenants whose change number is past the position: always complete, since the
        // numbers live on the tenants, which retention does not touch.
        let changed = Sqlite::read_changed(
            &self.pool,
            "SELECT NULL, NULL, (SELECT COALESCE(MAX(changed_seq), 0) FROM tenants), TRUE
             UNION ALL
             SELECT name, revision, NULL, NULL FROM tenants WHERE changed_seq > ?1",
            position,
        );
        within(self.timeout, changed).await
    }

    async fn change_log(
        &self,
        tenant: &TenantName,
        after: u64,
        limit: usize,
    ) -> Result<ChangeLog, StoreError> {
        // Two statements in one snapshot where PostgreSQL runs one: SQLite has no LATERAL join
        // to read both at once, and a round trip to it costs no network.
        within(self.timeout, async {
            let mut tx = Sqlite::begin_snapshot(&self.pool).await?;
            let current = Sqlite::revision_in(&mut tx, tenant).await?;
            let rows: Vec<ChangelogRow> = if current <= after {
                Vec::new()
            } else {
                sqlx::query_as(concat!(
                    "SELECT ",
                    changelog_columns!(""),
                    " FROM (
                         SELECT *,
                                row_number() OVER (ORDER BY revision) AS place,
                                sum(coalesce(length(changes), 0)) OVER (ORDER BY revision)
                                    AS weight
                         FROM changelog WHERE tenant = ?1 AND revision > ?2
                         ORDER BY revision LIMIT ?3
                     )
                     WHERE place = 1 OR weight <= ?4
                     ORDER BY revision"
                ))
                .bind(tenant.as_str())
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(CHANGE_PAGE_BYTES as i64)
                .fetch_all(&mut *tx)
                .await
                .map_err(Sqlite::classify)?
            };
            tx.rollback().await.map_err(Sqlite::classify)?;
            change_log(current, rows)
        })
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
            .map_err(Sqlite::classify)
        })
        .await
    }

    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        self.write_with(async |connection| Sqlite::insert_key(connection, key).await)
            .await
    }

    async fn revoke_key(&self, id: &KeyId) -> Result<Revocation, StoreError> {
        // A read, then perhaps an update, under the write lock: SQLite cannot update inside a
        // WITH, as PostgreSQL's one statement does.
        self.write_with(async |connection| {
            let mut tx = connection
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(Sqlite::classify)?;
            let revoked_at: Option<Option<String>> =
                sqlx::query_scalar("SELECT revoked_at FROM api_keys WHERE id = ?1")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(Sqlite::classify)?;
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
                    .map_err(Sqlite::classify)?;
                    Revocation::Revoked
                }
            };
            tx.commit().await.map_err(Sqlite::classify)?;
            Ok(outcome)
        })
        .await
    }

    async fn record_key_uses(&self, uses: &[(KeyId, OffsetDateTime)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // One statement a key, in one transaction: SQLite has no arrays. The time is written
        // as the other times are (UTC, RFC 3339 with milliseconds), so that text compares as
        // time does.
        self.write_with(async |connection| {
            let mut tx = connection
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(Sqlite::classify)?;
            for (id, at) in uses {
                sqlx::query(
                    "UPDATE api_keys SET last_used_at = max(
                         COALESCE(last_used_at, ''),
                         strftime('%Y-%m-%dT%H:%M:%fZ', ?2, 'unixepoch'))
                     WHERE id = ?1",
                )
                .bind(id.as_str())
                .bind(at.unix_timestamp())
                .execute(&mut *tx)
                .await
                .map_err(Sqlite::classify)?;
            }
            tx.commit().await.map_err(Sqlite::classify)
        })
        .await
    }

    async fn key_page(
        &self,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        within(self.timeout, Sqlite::key_page(&self.pool, after, limit)).await
    }

    async fn tenant_page(
        &self,
        prefix: &str,
        after: Option<&TenantName>,
        limit: usize,
    ) -> Result<Vec<TenantSummary>, StoreError> {
        within(
            self.timeout,
            Sqlite::tenant_page(&self.pool, prefix, after, limit),
        )
        .await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.file_usable().await?;
        within(self.timeout, Sqlite::answers(&self.pool)).await?;
        self.write_health.check(self.probe()).await
    }
}

/// Moves the tenant's revision on by one, in the write `tx`; the new revision.
async fn next_revision(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantName,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "UPDATE tenants SET revision = revision + 1 WHERE name = ?1 RETURNING revision",
    )
    .bind(tenant.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(Sqlite::classify)
}

/// Applies the change's rows; returns whether any row changed.
async fn apply(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantName,
    change: &Change,
) -> Result<bool, StoreError> {
    if let Change::NestGroup { group, parent } = change {
        check_nesting(tx, tenant, group, parent).await?;
    }
    // One statement per operation; its parameters are the tenant, then the change's names.
    let (statement, names): (&str, Vec<&str>) = match change {
        Change::CreateGroup { group } => (
            "INSERT INTO groups (tenant, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            vec![group.as_str()],
        ),
        Change::DeleteGroup { group } => (
            "DELETE FROM groups WHERE tenant = ?1 AND name = ?2",
            vec![group.as_str()],
        ),
        Change::AddPermission { group, permission } => (
            "INSERT INTO permissions (tenant, group_name, resource, action)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            vec![
                group.as_str(),
                permission.resource.as_str(),
                permission.action.as_str(),
            ],
        ),
        Change::RemovePermission { group, permission } => (
            "DELETE FROM permissions
             WHERE tenant = ?1 AND group_name = ?2 AND resource = ?3 AND action = ?4",
            vec![
                group.as_str(),
                permission.resource.as_str(),
                permission.action.as_str(),
            ],
        ),
        Change::AssignUser {
            group,
            user,
            expires_at,
        } => return assign(tx, tenant, group, user, *expires_at).await,
        Change::UnassignUser { group, user } => (
            "DELETE FROM assignments WHERE tenant = ?1 AND group_name = ?2 AND user_name = ?3",
            vec![group.as_str(), user.as_str()],
        ),
        Change::NestGroup { group, parent } => (
            "INSERT INTO nestings (tenant, group_name, parent_name)
             VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            vec![group.as_str(), parent.as_str()],
        ),
        Change::UnnestGroup { group, parent } => (
            "DELETE FROM nestings WHERE tenant = ?1 AND group_name = ?2 AND parent_name = ?3",
            vec![group.as_str(), parent.as_str()],
        ),
    };
    let query = names.into_iter().fold(
        sqlx::query(statement).bind(tenant.as_str()),
        |query, name| query.bind(name),
    );
    let result = query.execute(&mut **tx).await;
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
        Err(e) => Err(Sqlite::classify(e)),
    }
}

/// Makes `user` a member of `group` until `end`, or changes when the membership ends;
/// returns whether anything changed.
async fn assign(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantName,
    group: &GroupName,
    user: &UserName,
    end: Option<UnixMillis>,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO assignments (tenant, group_name, user_name, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, group_name, user_name) DO UPDATE
             SET expires_at_ms = excluded.expires_at_ms
             WHERE assignments.expires_at_ms IS NOT excluded.expires_at_ms",
    )
    .bind(tenant.as_str())
    .bind(group.as_str())
    .bind(user.as_str())
    .bind(end.map(|end| end.0))
    .execute(&mut **tx)
    .await;
    match result {
        Ok(done) => Ok(done.rows_affected() > 0),
        // Checked by the foreign key inside the write-locked transaction, as for the others.
        Err(sqlx::Error::Database(e))
            if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
        {
            Err(StoreError::GroupNotFound(group.clone()))
        }
        Err(e) => Err(Sqlite::classify(e)),
    }
}

/// Refuses to nest `group` in `parent` if either is missing, or if the nesting would make a
/// cycle or a chain too deep: the checks PostgreSQL's rbac_nest makes, under the write lock
/// this transaction holds. The walks use UNION, so that a graph with many paths between two
/// groups is walked once per group and depth.
async fn check_nesting(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantName,
    group: &GroupName,
    parent: &GroupName,
) -> Result<(), StoreError> {
    let (group_exists, parent_exists, cycle, depth): (bool, bool, bool, Option<i64>) =
        sqlx::query_as(
            "WITH RECURSIVE
                 up (name) AS (
                     SELECT parent_name FROM nestings WHERE tenant = ?1 AND group_name = ?3
                     UNION
                     SELECT n.parent_name FROM nestings n JOIN up ON n.group_name = up.name
                     WHERE n.tenant = ?1),
                 above (name, depth) AS (
                     SELECT ?3, 1
                     UNION
                     SELECT n.parent_name, above.depth + 1
                     FROM nestings n JOIN above ON n.group_name = above.name
                     WHERE n.tenant = ?1 AND above.depth <= ?4),
                 below (name, depth) AS (
                     SELECT ?2, 1
                     UNION
                     SELECT n.group_name, below.depth + 1
                     FROM nestings n JOIN below ON n.parent_name = below.name
                     WHERE n.tenant = ?1 AND below.depth <= ?4)
             SELECT EXISTS (SELECT 1 FROM groups WHERE tenant = ?1 AND name = ?2),
                    EXISTS (SELECT 1 FROM groups WHERE tenant = ?1 AND name = ?3),
                    ?2 = ?3 OR EXISTS (SELECT 1 FROM up WHERE name = ?2),
                    (SELECT max(depth) FROM above) + (SELECT max(depth) FROM below)",
        )
        .bind(tenant.as_str())
        .bind(group.as_str())
        .bind(parent.as_str())
        .bind(MAX_NESTING_DEPTH as i64)
        .fetch_one(&mut **tx)
        .await
        .map_err(Sqlite::classify)?;
    if !group_exists {
        return Err(StoreError::GroupNotFound(group.clone()));
    }
    if !parent_exists {
        return Err(StoreError::GroupNotFound(parent.clone()));
    }
    if cycle {
        return Err(nesting_refused(NestingProblem::Cycle, group, parent));
    }
    if depth.is_some_and(|depth| depth > MAX_NESTING_DEPTH as i64) {
        return Err(nesting_refused(NestingProblem::TooDeep, group, parent));
    }
    Ok(())
}

impl Sql for Sqlite {
    // SQLite compares text by its bytes unless told otherwise.
    const TENANT_PAGE: &'static str = "
        SELECT t.name, t.revision,
               (SELECT count(*) FROM groups g WHERE g.tenant = t.name),
               (SELECT count(*) FROM permissions p WHERE p.tenant = t.name),
               (SELECT count(*) FROM assignments a WHERE a.tenant = t.name)
        FROM tenants t
        WHERE t.name >= $1 AND t.name > $2 AND t.name < $3 AND t.revision > 0
        ORDER BY t.name
        LIMIT $4";

    /// A file that cannot be used, or SQLITE_BUSY (5) and SQLITE_LOCKED (6): the write lock
    /// not had within busy_timeout. Retrying later is the answer, as it is for a file an
    /// operator mends.
    fn is_outage(error: &dyn DatabaseError) -> bool {
        unusable_file(error) || matches!(primary_code(error), Some(5 | 6))
    }

    /// An I/O error, or a file that cannot be used; not a busy write lock.
    fn refuses_writes(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Io(_) => true,
            sqlx::Error::Database(e) => unusable_file(e.as_ref()),
            _ => false,
        }
    }

    /// A deferred transaction: in WAL mode it sees one snapshot from its first read on, and
    /// leaves the write lock to writers.
    async fn begin_snapshot(
        pool: &Pool<Sqlite>,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        pool.begin().await.map_err(Sqlite::classify)
    }
}

/// A primary result code (the low byte of an extended one) of a file that cannot be used:
/// SQLITE_PERM (3), SQLITE_READONLY (8), SQLITE_IOERR (10), SQLITE_CORRUPT (11), SQLITE_FULL
/// (13), SQLITE_CANTOPEN (14), SQLITE_NOTADB (26).
fn unusable_file(error: &dyn DatabaseError) -> bool {
    matches!(primary_code(error), Some(3 | 8 | 10 | 11 | 13 | 14 | 26))
}

fn primary_code(error: &dyn DatabaseError) -> Option<i32> {
    error
        .code()
        .and_then(|c| c.parse::<i32>().ok())
        .map(|code| code & 0xff)
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
