//! The PostgreSQL backend. Schema and the reasons behind it: `migrations/postgres/`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Pool, Postgres, Transaction};
use time::OffsetDateTime;

use super::rows::{
    ChangeRow, ChangedRow, ChangelogRow, assign_row, build_policy, change_log, changelog_columns,
    logged_changes, non_negative, read_listing, revision_of, revisions_by_tenant,
};
use super::sql::Sql;
use super::write_health::WriteHealth;
use super::{
    CHANGE_PAGE_BYTES, ChangeLog, Changed, OpenError, Position, Store, StoreError, TenantRevision,
    TenantSummary, WriteOutcome, WrittenMany, answer_of_write, nesting_refused, within,
};
use crate::keys::{KeyId, KeyRecord, NewKey, Revocation};
use crate::policy::{Change, MAX_NESTING_DEPTH, NestingProblem, TenantName, TenantPolicy};
use crate::redact::{redact_url, scrub_passwords};

/// A tenant with fewer rows than this of each kind (groups, permissions, memberships) loads
/// in one statement: see [`PgStore::load_at_once`].
const AT_ONCE_ROWS: usize = 1000;

/// Connections per instance unless DATABASE_POOL_SIZE says otherwise. Checks never touch the
/// database, so this only bounds concurrent writes and tenant loads.
pub const DEFAULT_POOL_SIZE: u32 = 16;

pub struct PgStore {
    pool: PgPool,
    /// How long any one store operation may take, connection included, before it fails as
    /// unavailable: a PostgreSQL outage must turn into a quick 503, never a hung request.
    timeout: Duration,
    /// Whether writes fail while PostgreSQL still answers queries (a full disk, say).
    write_health: WriteHealth,
}

/// The advisory lock instances take turns on to migrate (the bytes of "rbac-mig").
const MIGRATION_TURN: i64 = 0x7262_6163_2d6d_6967;

/// Waits for this instance's turn to migrate, asking for the lock every 100 ms.
async fn take_turn(connection: &mut PgConnection) -> Result<(), OpenError> {
    loop {
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(MIGRATION_TURN)
            .fetch_one(&mut *connection)
            .await
            .map_err(|e| {
                OpenError::Invalid(format!("cannot lock the database to migrate it: {e}"))
            })?;
        if taken {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl PgStore {
    /// Connects to `url` and brings the schema up to date. TLS is whatever the URL's
    /// `sslmode` asks for.
    pub async fn connect(url: &str, timeout: Duration, pool_size: u32) -> Result<Self, OpenError> {
        // The errors end up in a log line and on stderr, and the URL holds the password.
        let scrubbed = |e: sqlx::Error| scrub_passwords(&e.to_string(), url);
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            OpenError::Invalid(format!("DATABASE_URL is not usable: {}", scrubbed(e)))
        })?;
        // PostgreSQL ends any statement that runs past the store timeout, so that nothing the
        // server has given up on can commit later: see [`PgStore::write_with`].
        let bounded = options
            .clone()
            .options([("statement_timeout", format!("{}ms", timeout.as_millis()))]);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(timeout)
            .connect_with(bounded)
            .await
            .map_err(|e| {
                OpenError::Unreachable(format!(
                    "cannot connect to PostgreSQL at {}: {}",
                    redact_url(url),
                    scrubbed(e)
                ))
            })?;
        // On a connection of their own, without the statement timeout: building an index on a
        // large changelog takes as long as it takes. Instances starting together all run
        // this; sqlx serializes them with an advisory lock.
        let mut migrating = PgConnection::connect_with(&options).await.map_err(|e| {
            OpenError::Unreachable(format!(
                "cannot connect to PostgreSQL at {}: {}",
                redact_url(url),
                scrubbed(e)
            ))
        })?;
        // A concurrent index build waits for every statement running when it starts: were
        // the other instances blocked in sqlx's wait for its migration lock, the build and
        // their wait would wait for each other, and PostgreSQL would fail one as a deadlock.
        // So they take turns on a lock of this server's first, asking for it again and again
        // rather than waiting inside a statement.
        take_turn(&mut migrating).await?;
        let migrated = sqlx::migrate!("./migrations/postgres")
            .run(&mut migrating)
            .await
            .map_err(OpenError::from_migration);
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_TURN)
            .execute(&mut migrating)
            .await;
        migrated?;
        let _ = migrating.close().await;
        Ok(Self {
            pool,
            timeout,
            write_health: WriteHealth::default(),
        })
    }

    /// Runs `write` on a connection of its own, waiting for PostgreSQL's answer rather than
    /// giving up first ([`answer_of_write`]): PostgreSQL ends the statement at the store
    /// timeout. A connection that failed (lost, timed out, PostgreSQL going away) is closed
    /// rather than handed to the next operation.
    async fn write_with<T>(
        &self,
        write: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(Postgres::classify)?;
        let answer = answer_of_write(self.timeout, write(&mut connection)).await;
        if matches!(answer, Err(StoreError::Unavailable(_))) {
            connection.close_on_drop();
        }
        self.write_health.record(&answer, Postgres::is_fault);
        answer
    }

    async fn write_once(
        connection: &mut PgConnection,
        tenant: &TenantName,
        change: &Change,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        // One statement, so one transaction and one round trip: see rbac_write_change in
        // migrations/postgres/. The tenant row's lock, taken in the database, serializes the
        // writes of one tenant across instances; SQLite has no stored functions and one
        // write lock for the whole file, so it runs the same steps as statements instead.
        let row = ChangeRow::of(change);
        let (outcome, revision): (String, i64) = sqlx::query_as(
            "SELECT o_outcome, o_revision
             FROM rbac_write_change($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(tenant.as_str())
        .bind(row.operation.as_str())
        .bind(row.group)
        .bind(row.user)
        .bind(row.resource)
        .bind(row.action)
        .bind(row.parent)
        .bind(row.expires_at_ms)
        .bind(server_id)
        .bind(actor)
        .bind(MAX_NESTING_DEPTH as i32)
        .fetch_one(connection)
        .await
        .map_err(Postgres::classify)?;
        let revision = revision_of(tenant, revision)?;
        match outcome.as_str() {
            "changed" | "unchanged" => Ok(WriteOutcome {
                changed: outcome == "changed",
                revision,
            }),
            refused => Err(refusal(refused, change)),
        }
    }

    /// A small tenant in one statement (so one snapshot) and one round trip: its rows as JSON
    /// arrays beside its revision. None if the tenant has [`AT_ONCE_ROWS`] rows of a kind or
    /// more: a large tenant is streamed by [`Sql::load_whole`] instead, rather than held whole
    /// as text. Most tenants are small, and a first load of one was six round trips, which
    /// bounded how fast an instance could load many. SQLite, in process, has no round trips to
    /// save, and always streams.
    async fn load_at_once(&self, tenant: &TenantName) -> Result<Option<TenantPolicy>, StoreError> {
        /// The revision, then groups, permissions, memberships and nestings as JSON arrays (null if
        /// none).
        #[derive(sqlx::FromRow)]
        struct Rows {
            revision: i64,
            groups: Option<String>,
            permissions: Option<String>,
            assignments: Option<String>,
            nestings: Option<String>,
        }
        let row: Option<Rows> = sqlx::query_as(
            "SELECT t.revision,
                    (SELECT json_agg(g.name)::text
                     FROM (SELECT name FROM groups WHERE tenant = t.name LIMIT $2) g) AS groups,
                    (SELECT json_agg(json_build_array(p.group_name, p.resource, p.action))::text
                     FROM (SELECT group_name, resource, action FROM permissions
                           WHERE tenant = t.name LIMIT $2) p) AS permissions,
                    (SELECT json_agg(json_build_array(a.group_name, a.user_name, a.expires_at_ms))::text
                     FROM (SELECT group_name, user_name, expires_at_ms FROM assignments
                           WHERE tenant = t.name LIMIT $2) a) AS assignments,
                    (SELECT json_agg(json_build_array(n.group_name, n.parent_name))::text
                     FROM (SELECT group_name, parent_name FROM nestings
                           WHERE tenant = t.name LIMIT $2) n) AS nestings
             FROM tenants t WHERE t.name = $1",
        )
        .bind(tenant.as_str())
        .bind(AT_ONCE_ROWS as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(Postgres::classify)?;
        let Some(Rows {
            revision,
            groups,
            permissions,
            assignments,
            nestings,
        }) = row
        else {
            return Ok(Some(TenantPolicy::default()));
        };
        // Made by the query above from rows read as text: one that does not parse is a bug.
        fn rows<T: serde::de::DeserializeOwned>(
            json: Option<String>,
        ) -> Result<Vec<T>, StoreError> {
            json.map_or(Ok(Vec::new()), |json| {
                serde_json::from_str(&json).map_err(|e| StoreError::Internal(Box::new(e)))
            })
        }
        let groups: Vec<String> = rows(groups)?;
        let permissions: Vec<(String, String, String)> = rows(permissions)?;
        let assignments: Vec<(String, String, Option<i64>)> = rows(assignments)?;
        let nestings: Vec<(String, String)> = rows(nestings)?;
        if [
            groups.len(),
            permissions.len(),
            assignments.len(),
            nestings.len(),
        ]
        .iter()
        .any(|&count| count >= AT_ONCE_ROWS)
        {
            return Ok(None);
        }
        let revision = revision_of(tenant, revision)?;
        let mut policy = build_policy(revision, groups, permissions, nestings)?;
        for (group, user, ends) in assignments {
            assign_row(&mut policy, &group, &user, ends)?;
        }
        Ok(Some(policy))
    }
}

#[async_trait]
impl Store for PgStore {
    #[tracing::instrument(skip_all, fields(tenant = %tenant, operation = %change.operation()))]
    async fn write(
        &self,
        tenant: &TenantName,
        change: &Change,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        self.write_with(async |connection| {
            Self::write_once(connection, tenant, change, server_id, actor).await
        })
        .await
    }

    async fn write_many(
        &self,
        tenant: &TenantName,
        changes: &[Change],
        if_revision: Option<u64>,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WrittenMany, StoreError> {
        let logged = logged_changes(&changes.iter().collect::<Vec<_>>());
        self.write_with(async |connection| {
            // One statement, so one transaction and one round trip, as every write: see
            // rbac_write_many in migrations/postgres/, which undoes the changes before a
            // refused one itself.
            let (outcome, index, revision, made): (String, Option<i32>, i64, String) =
                sqlx::query_as(
                    "SELECT o_outcome, o_index, o_revision, o_changed
                     FROM rbac_write_many($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant.as_str())
                .bind(&logged)
                .bind(if_revision.map(|r| i64::try_from(r).unwrap_or(i64::MAX)))
                .bind(server_id)
                .bind(actor)
                .bind(MAX_NESTING_DEPTH as i32)
                .fetch_one(connection)
                .await
                .map_err(Postgres::classify)?;
            let revision = revision_of(tenant, revision)?;
            if outcome == "changed" || outcome == "unchanged" {
                return Ok(WrittenMany {
                    changed: outcome == "changed",
                    revision,
                    results: made.chars().map(|c| c == '1').collect(),
                });
            }
            if outcome == "revision_mismatch" {
                return Err(StoreError::RevisionMismatch {
                    expected: if_revision.unwrap_or_default(),
                    current: revision,
                });
            }
            let index = usize::try_from(index.unwrap_or_default()).unwrap_or_default();
            let error = match changes.get(index) {
                Some(change) => refusal(&outcome, change),
                None => {
                    StoreError::Internal(format!("rbac_write_many answered {outcome:?}").into())
                }
            };
            Err(StoreError::InChange {
                index,
                error: Box::new(error),
            })
        })
        .await
    }

    async fn load(&self, tenant: &TenantName) -> Result<TenantPolicy, StoreError> {
        within(self.timeout, async {
            match self.load_at_once(tenant).await? {
                Some(policy) => Ok(policy),
                None => Postgres::load_whole(&self.pool, tenant).await,
            }
        })
        .await
    }

    async fn revisions(&self, tenants: &[TenantName]) -> Result<Vec<TenantRevision>, StoreError> {
        // The names travel as one array parameter, which SQLite does not have.
        let names: Vec<&str> = tenants.iter().map(TenantName::as_str).collect();
        let rows: Vec<(String, i64)> = within(self.timeout, async {
            sqlx::query_as("SELECT name, revision FROM tenants WHERE name = ANY($1)")
                .bind(&names)
                .fetch_all(&self.pool)
                .await
                .map_err(Postgres::classify)
        })
        .await?;
        revisions_by_tenant(rows)
    }

    async fn tenants(
        &self,
        each: &mut (dyn FnMut(TenantRevision) + Send),
    ) -> Result<Position, StoreError> {
        // However many tenants there are, the listing takes as long as it takes (each wait for
        // a row is bounded instead), so the connection's statement timeout is lifted for it.
        let mut tx = within(self.timeout, async {
            self.pool.begin().await.map_err(Postgres::classify)
        })
        .await?;
        within(self.timeout, async {
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut *tx)
                .await
                .map_err(Postgres::classify)
        })
        .await?;
        // The position is the xmin of the statement's own snapshot: see the migration
        // 20261130000001_change_positions.sql.
        let rows = sqlx::query_as::<_, ChangedRow>(
            "SELECT NULL::text, NULL::bigint,
                    pg_snapshot_xmin(pg_current_snapshot())::text::bigint, TRUE
             UNION ALL
             SELECT name, revision, NULL, NULL FROM tenants WHERE revision > 0",
        )
        .fetch(&mut *tx);
        let position = read_listing(self.timeout, rows, Postgres::classify, each).await?;
        within(self.timeout, async {
            tx.rollback().await.map_err(Postgres::classify)
        })
        .await?;
        Ok(position)
    }

    async fn changed_since(&self, position: Position) -> Result<Option<Changed>, StoreError> {
        // The tenants that have a changelog entry from a transaction at or after the position:
        // complete unless retention deleted one of those entries.
        let changed = Postgres::read_changed(
            &self.pool,
            "SELECT NULL::text, NULL::bigint,
                    pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                    NOT EXISTS (SELECT 1 FROM changelog_pruned WHERE xid >= $1::text::xid8)
             UNION ALL
             SELECT t.name, t.revision, NULL, NULL FROM tenants t
             WHERE t.name IN (SELECT c.tenant FROM changelog c WHERE c.xid >= $1::text::xid8)",
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
        // One statement sees one snapshot: the changes end exactly at the revision beside
        // them. One round trip, where SQLite runs two statements in a transaction: a round
        // trip to PostgreSQL costs what SQLite's do not, and SQLite has no LATERAL join to
        // read both at once. The join leaves the changelog's columns null when there is no
        // change to show.
        #[derive(sqlx::FromRow)]
        struct Row {
            current: i64,
            revision: Option<i64>,
            operation: Option<String>,
            group_name: Option<String>,
            user_name: Option<String>,
            resource: Option<String>,
            action: Option<String>,
            parent: Option<String>,
            expires_at_ms: Option<i64>,
            changes: Option<String>,
            server_id: Option<String>,
            actor: Option<String>,
            created_at: Option<time::OffsetDateTime>,
        }
        let rows: Vec<Row> = within(self.timeout, async {
            sqlx::query_as(concat!(
                "SELECT t.revision AS current, ",
                changelog_columns!("c."),
                " FROM tenants t
                 LEFT JOIN LATERAL (
                     SELECT * FROM (
                         SELECT *,
                                row_number() OVER (ORDER BY revision) AS place,
                                sum(coalesce(length(changes), 0)) OVER (ORDER BY revision)
                                    AS weight
                         FROM changelog
                         WHERE tenant = t.name AND revision > $2
                         ORDER BY revision LIMIT $3
                     ) page
                     WHERE place = 1 OR weight <= $4
                 ) c ON TRUE
                 WHERE t.name = $1
                 ORDER BY c.revision"
            ))
            .bind(tenant.as_str())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(CHANGE_PAGE_BYTES as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(Postgres::classify)
        })
        .await?;
        let current = match rows.first() {
            Some(row) => revision_of(tenant, row.current)?,
            None => 0,
        };
        let changes = rows
            .into_iter()
            .filter_map(|row| {
                Some(ChangelogRow {
                    revision: row.revision?,
                    operation: row.operation?,
                    group_name: row.group_name?,
                    user_name: row.user_name,
                    resource: row.resource,
                    action: row.action,
                    parent: row.parent,
                    expires_at_ms: row.expires_at_ms,
                    changes: row.changes,
                    server_id: row.server_id?,
                    actor: row.actor,
                    created_at: row.created_at?,
                })
            })
            .collect();
        change_log(current, changes)
    }

    async fn prune_changelog(&self, age: Duration) -> Result<u64, StoreError> {
        let seconds = age.as_secs_f64();
        within(self.timeout, async {
            // Notes the newest transaction id deleted, for changed_since to know what it can
            // no longer tell.
            let deleted: i64 = sqlx::query_scalar(
                "WITH gone AS (
                     DELETE FROM changelog WHERE created_at < now() - make_interval(secs => $1)
                     RETURNING xid),
                 noted AS (
                     INSERT INTO changelog_pruned (xid)
                     SELECT max(xid) FROM gone HAVING max(xid) IS NOT NULL
                     ON CONFLICT (singleton)
                     DO UPDATE SET xid = GREATEST(changelog_pruned.xid, EXCLUDED.xid))
                 SELECT count(*) FROM gone",
            )
            .bind(seconds)
            .fetch_one(&self.pool)
            .await
            .map_err(Postgres::classify)?;
            non_negative("a count of changelog entries deleted", deleted)
        })
        .await
    }

    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        self.write_with(async |connection| Postgres::insert_key(connection, key).await)
            .await
    }

    async fn revoke_key(&self, id: &KeyId) -> Result<Revocation, StoreError> {
        // One statement, so one round trip: whether the key exists, and whether this call
        // revoked it. SQLite cannot update inside a WITH, and asks in a transaction instead.
        let found: Option<bool> = self
            .write_with(async |connection| {
                sqlx::query_scalar(
                    "WITH revoked AS (
                     UPDATE api_keys SET revoked_at = now()
                     WHERE id = $1 AND revoked_at IS NULL RETURNING id)
                 SELECT EXISTS (SELECT 1 FROM revoked) FROM api_keys WHERE id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(connection)
                .await
                .map_err(Postgres::classify)
            })
            .await?;
        Ok(match found {
            None => Revocation::NoSuchKey,
            Some(true) => Revocation::Revoked,
            Some(false) => Revocation::AlreadyRevoked,
        })
    }

    async fn record_key_uses(&self, uses: &[(KeyId, OffsetDateTime)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        // Every key in one statement: the ids and times travel as two arrays.
        let ids: Vec<&str> = uses.iter().map(|(id, _)| id.as_str()).collect();
        let times: Vec<OffsetDateTime> = uses.iter().map(|&(_, at)| at).collect();
        self.write_with(async |connection| {
            sqlx::query(
                "UPDATE api_keys k SET last_used_at = GREATEST(k.last_used_at, u.at)
                 FROM UNNEST($1::text[], $2::timestamptz[]) AS u(id, at)
                 WHERE k.id = u.id",
            )
            .bind(&ids)
            .bind(&times)
            .execute(connection)
            .await
            .map(drop)
            .map_err(Postgres::classify)
        })
        .await
    }

    async fn key_page(
        &self,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        within(self.timeout, Postgres::key_page(&self.pool, after, limit)).await
    }

    async fn tenant_page(
        &self,
        prefix: &str,
        after: Option<&TenantName>,
        limit: usize,
    ) -> Result<Vec<TenantSummary>, StoreError> {
        within(
            self.timeout,
            Postgres::tenant_page(&self.pool, prefix, after, limit),
        )
        .await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn ping(&self) -> Result<(), StoreError> {
        within(self.timeout, Postgres::answers(&self.pool)).await?;
        let probe = self.write_with(async |connection| {
            sqlx::query(
                "INSERT INTO health_probe (id, at) VALUES (1, now())
                 ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
            )
            .execute(connection)
            .await
            .map(drop)
            .map_err(Postgres::classify)
        });
        self.write_health.check(probe).await
    }
}

/// The error of a change the write functions refused, by the outcome they answered (see
/// rbac_apply in migrations/postgres/).
fn refusal(outcome: &str, change: &Change) -> StoreError {
    let (group, parent) = (change.group(), change.parent());
    match (outcome, parent) {
        ("group_not_found", _) => StoreError::GroupNotFound(group.clone()),
        ("parent_not_found", Some(parent)) => StoreError::GroupNotFound(parent.clone()),
        ("cycle", Some(parent)) => nesting_refused(NestingProblem::Cycle, group, parent),
        ("too_deep", Some(parent)) => nesting_refused(NestingProblem::TooDeep, group, parent),
        _ => StoreError::Internal(format!("the store answered {outcome:?} to a write").into()),
    }
}

impl Sql for Postgres {
    // In the order of bytes whatever the database's collation, along the index of the
    // migration 20261202000001_tenants_in_byte_order.sql.
    const TENANT_PAGE: &'static str = r#"
        SELECT t.name, t.revision,
               (SELECT count(*) FROM groups g WHERE g.tenant = t.name),
               (SELECT count(*) FROM permissions p WHERE p.tenant = t.name),
               (SELECT count(*) FROM assignments a WHERE a.tenant = t.name)
        FROM tenants t
        WHERE t.name COLLATE "C" >= $1 AND t.name COLLATE "C" > $2
          AND t.name COLLATE "C" < $3 AND t.revision > 0
        ORDER BY t.name COLLATE "C"
        LIMIT $4"#;

    /// SQLSTATE classes 08 (connection exception) and 57 (operator intervention: shutdown,
    /// restart) are outages, not bugs, and so is a store that cannot take writes.
    fn is_outage(error: &dyn DatabaseError) -> bool {
        error
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57"))
            || cannot_write(error)
    }

    /// Only what PostgreSQL says of itself: an I/O error here is a lost connection, an
    /// outage that a query would meet too (for SQLite, it is the disk).
    fn refuses_writes(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Database(e) => cannot_write(e.as_ref()),
            _ => false,
        }
    }

    /// Read only, and at REPEATABLE READ, where PostgreSQL's default READ COMMITTED would give
    /// each statement a snapshot of its own.
    async fn begin_snapshot(
        pool: &Pool<Postgres>,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(Postgres::classify)
    }
}

/// SQLSTATE classes 53 (insufficient resources: disk full, out of memory) and 58 (system
/// error: an I/O error), and 25006 (read-only: a standby after a failover, or a database set
/// read-only).
fn cannot_write(error: &dyn DatabaseError) -> bool {
    error
        .code()
        .is_some_and(|c| c.starts_with("53") || c.starts_with("58") || c == "25006")
}
