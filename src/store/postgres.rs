//! The PostgreSQL backend. Schema and the reasons behind it: `migrations/postgres/`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::rows::{
    ChangeRow, ChangedRow, ChangelogRow, KeyRow, assign_row, build_policy, changed_from_rows,
    non_negative, read_listing, replay, revision_of, revisions_by_tenant,
};
use super::write_health::WriteHealth;
use super::{
    BoxError, Changed, OpenError, Position, Recorded, Store, StoreError, TenantRevision,
    WriteOutcome, answer_of_write, within,
};
use crate::keys::{KeyId, KeyRecord, NewKey, Revocation};
use crate::policy::{Change, TenantName, TenantPolicy};
use crate::redact::{redact_url, scrub_passwords};

/// An `api_keys` row as [`KeyRow`] reads it.
/// A macro, not a const, so that the queries stay `&'static str` literals.
macro_rules! key_columns {
    () => {
        "id, name, tenant, role, secret_hash, created_at, created_by, revoked_at"
    };
}

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
        // server has given up on can commit later: see [`PgStore::write_on_connection`].
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
        sqlx::migrate!("./migrations/postgres")
            .run(&mut migrating)
            .await
            .map_err(OpenError::from_migration)?;
        let _ = migrating.close().await;
        Ok(Self {
            pool,
            timeout,
            write_health: WriteHealth::default(),
        })
    }

    /// A read-only transaction that sees one consistent snapshot of the store.
    async fn begin_snapshot(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(classify)
    }

    /// Runs `write` on a connection of its own, waiting for PostgreSQL's answer rather than
    /// giving up first ([`answer_of_write`]): PostgreSQL ends the statement at the store
    /// timeout. A connection that failed (lost, timed out, PostgreSQL going away) is closed
    /// rather than handed to the next operation.
    async fn write_with<T>(
        &self,
        write: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(classify)?;
        let answer = answer_of_write(self.timeout, write(&mut connection)).await;
        if matches!(answer, Err(StoreError::Unavailable(_))) {
            connection.close_on_drop();
        }
        self.write_health.record(&answer, is_fault);
        answer
    }

    async fn write_once(
        connection: &mut PgConnection,
        tenant: &TenantName,
        change: &Change,
        server_id: &str,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        // One statement, so one transaction and one round trip: see rbac_write in
        // migrations/postgres/.
        let row = ChangeRow::of(change);
        let (outcome, revision): (String, i64) = sqlx::query_as(
            "SELECT o_outcome, o_revision FROM rbac_write($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant.as_str())
        .bind(row.operation.as_str())
        .bind(row.group)
        .bind(row.user)
        .bind(row.resource)
        .bind(row.action)
        .bind(server_id)
        .bind(actor)
        .fetch_one(connection)
        .await
        .map_err(classify)?;
        let revision = revision_of(tenant, revision)?;
        match outcome.as_str() {
            "changed" => Ok(WriteOutcome {
                changed: true,
                revision,
            }),
            "unchanged" => Ok(WriteOutcome {
                changed: false,
                revision,
            }),
            "group_not_found" => Err(StoreError::GroupNotFound(change.group().clone())),
            other => Err(StoreError::Internal(
                format!("rbac_write answered {other:?}").into(),
            )),
        }
    }

    /// A small tenant in one statement (so one snapshot) and one round trip: its rows as JSON
    /// arrays beside its revision. None if the tenant has [`AT_ONCE_ROWS`] rows of a kind or
    /// more: a large tenant is streamed by [`PgStore::load_in_transaction`] instead, rather
    /// than held whole as text. Most tenants are small, and a first load of one was six round
    /// trips, which bounded how fast an instance could load many.
    async fn load_at_once(&self, tenant: &TenantName) -> Result<Option<TenantPolicy>, StoreError> {
        /// The revision, then groups, permissions and memberships as JSON arrays (null if
        /// none).
        #[derive(sqlx::FromRow)]
        struct Rows {
            revision: i64,
            groups: Option<String>,
            permissions: Option<String>,
            assignments: Option<String>,
        }
        let row: Option<Rows> = sqlx::query_as(
            "SELECT t.revision,
                    (SELECT json_agg(g.name)::text
                     FROM (SELECT name FROM groups WHERE tenant = t.name LIMIT $2) g) AS groups,
                    (SELECT json_agg(json_build_array(p.group_name, p.resource, p.action))::text
                     FROM (SELECT group_name, resource, action FROM permissions
                           WHERE tenant = t.name LIMIT $2) p) AS permissions,
                    (SELECT json_agg(json_build_array(a.group_name, a.user_name))::text
                     FROM (SELECT group_name, user_name FROM assignments
                           WHERE tenant = t.name LIMIT $2) a) AS assignments
             FROM tenants t WHERE t.name = $1",
        )
        .bind(tenant.as_str())
        .bind(AT_ONCE_ROWS as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        let Some(Rows {
            revision,
            groups,
            permissions,
            assignments,
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
        let assignments: Vec<(String, String)> = rows(assignments)?;
        if [groups.len(), permissions.len(), assignments.len()]
            .iter()
            .any(|&count| count >= AT_ONCE_ROWS)
        {
            return Ok(None);
        }
        let mut policy = build_policy(revision_of(tenant, revision)?, groups, permissions)?;
        for (group, user) in assignments {
            assign_row(&mut policy, &group, &user)?;
        }
        Ok(Some(policy))
    }

    async fn load_in_transaction(&self, tenant: &TenantName) -> Result<TenantPolicy, StoreError> {
        // One snapshot for all four reads, so the revision matches the rows exactly.
        let mut tx = self.begin_snapshot().await?;
        let revision = revision_in(&mut tx, tenant).await?;
        let groups: Vec<String> = sqlx::query_scalar("SELECT name FROM groups WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        let permissions: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT group_name, resource, action FROM permissions WHERE tenant = $1",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let mut policy = build_policy(revision, groups, permissions)?;
        let mut assignments = sqlx::query_as::<_, (String, String)>(
            "SELECT group_name, user_name FROM assignments WHERE tenant = $1",
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
}

impl PgStore {
    async fn changes_in_one_query(
        &self,
        tenant: &TenantName,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<Recorded>>, StoreError> {
        // One statement sees one snapshot: the changes end exactly at the revision beside
        // them. One more than the limit tells "too many" from "exactly enough".
        #[derive(sqlx::FromRow)]
        struct Row {
            current: i64,
            revision: Option<i64>,
            operation: Option<String>,
            group_name: Option<String>,
            user_name: Option<String>,
            resource: Option<String>,
            action: Option<String>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT t.revision AS current, c.revision, c.operation, c.group_name, c.user_name,
                    c.resource, c.action
             FROM tenants t
             LEFT JOIN LATERAL (
                 SELECT * FROM changelog
                 WHERE tenant = t.name AND revision > $2
                 ORDER BY revision LIMIT $3
             ) c ON TRUE
             WHERE t.name = $1
             ORDER BY c.revision",
        )
        .bind(tenant.as_str())
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let current = match rows.first() {
            Some(row) => revision_of(tenant, row.current)?,
            None => 0,
        };
        if current <= after {
            return Ok(Some(Vec::new()));
        }
        if current - after > limit as u64 {
            return Ok(None);
        }
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
                })
            })
            .collect();
        replay(after, current, changes)
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

    async fn load(&self, tenant: &TenantName) -> Result<TenantPolicy, StoreError> {
        within(self.timeout, async {
            match self.load_at_once(tenant).await? {
                Some(policy) => Ok(policy),
                None => self.load_in_transaction(tenant).await,
            }
        })
        .await
    }

    async fn revisions(&self, tenants: &[TenantName]) -> Result<Vec<TenantRevision>, StoreError> {
        let names: Vec<&str> = tenants.iter().map(TenantName::as_str).collect();
        let rows: Vec<(String, i64)> = within(self.timeout, async {
            sqlx::query_as("SELECT name, revision FROM tenants WHERE name = ANY($1)")
                .bind(&names)
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
        // However many tenants there are, the listing takes as long as it takes (each wait for
        // a row is bounded instead), so the connection's statement timeout is lifted for it.
        let mut tx = within(self.timeout, async {
            self.pool.begin().await.map_err(classify)
        })
        .await?;
        within(self.timeout, async {
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut *tx)
                .await
                .map_err(classify)
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
        let position = read_listing(self.timeout, rows, classify, each).await?;
        within(self.timeout, async {
            tx.rollback().await.map_err(classify)
        })
        .await?;
        Ok(position)
    }

    async fn changed_since(&self, position: Position) -> Result<Option<Changed>, StoreError> {
        // Complete unless retention deleted a change made at or after the position.
        let rows: Vec<ChangedRow> = within(self.timeout, async {
            sqlx::query_as(
                "SELECT NULL::text, NULL::bigint,
                        pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                        NOT EXISTS (SELECT 1 FROM changelog_pruned WHERE xid >= $1::text::xid8)
                 UNION ALL
                 SELECT t.name, t.revision, NULL, NULL FROM tenants t
                 WHERE t.name IN (SELECT c.tenant FROM changelog c WHERE c.xid >= $1::text::xid8)",
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
            self.changes_in_one_query(tenant, after, limit),
        )
        .await
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
            .map_err(classify)?;
            non_negative("a count of changelog entries deleted", deleted)
        })
        .await
    }

    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let row: KeyRow = self
            .write_with(async |connection| {
                sqlx::query_as(concat!(
                    "INSERT INTO api_keys (id, name, tenant, role, secret_hash, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
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
        // One statement: whether the key exists, and whether this call revoked it.
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
                .map_err(classify)
            })
            .await?;
        Ok(match found {
            None => Revocation::NoSuchKey,
            Some(true) => Revocation::Revoked,
            Some(false) => Revocation::AlreadyRevoked,
        })
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
                 WHERE $1::text IS NULL
                    OR (created_at, id) > (SELECT k.created_at, k.id FROM api_keys k WHERE k.id = $1)
                 ORDER BY created_at, id
                 LIMIT $2"
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
        within(self.timeout, async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map(drop)
                .map_err(classify)
        })
        .await?;
        let probe = self.write_with(async |connection| {
            sqlx::query(
                "INSERT INTO health_probe (id, at) VALUES (1, now())
                 ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
            )
            .execute(connection)
            .await
            .map(drop)
            .map_err(classify)
        });
        self.write_health.check(probe).await
    }
}

/// Whether a store error says PostgreSQL cannot take writes while it may still answer
/// queries.
fn is_fault(error: &(dyn std::error::Error + 'static)) -> bool {
    match error.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(e)) => refuses_writes(e.as_ref()),
        _ => false,
    }
}

/// SQLSTATE classes 53 (insufficient resources: disk full, out of memory) and 58 (system
/// error: an I/O error), and 25006 (read-only: a standby after a failover, or a database set
/// read-only).
fn refuses_writes(error: &dyn sqlx::error::DatabaseError) -> bool {
    error
        .code()
        .is_some_and(|c| c.starts_with("53") || c.starts_with("58") || c == "25006")
}

/// The tenant's revision as `tx` sees it; 0 for a tenant never written.
async fn revision_in(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &TenantName,
) -> Result<u64, StoreError> {
    let revision: Option<i64> = sqlx::query_scalar("SELECT revision FROM tenants WHERE name = $1")
        .bind(tenant.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(classify)?;
    revision.map_or(Ok(0), |revision| revision_of(tenant, revision))
}

/// Sorts a database error into "the store is not there" and everything else.
fn classify(error: sqlx::Error) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE classes 08 (connection exception) and 57 (operator intervention:
        // shutdown, restart) are outages, not bugs, and so is a store that cannot take writes.
        sqlx::Error::Database(e) => {
            e.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57"))
                || refuses_writes(e.as_ref())
        }
        _ => false,
    };
    let source: BoxError = Box::new(error);
    if unavailable {
        StoreError::Unavailable(source)
    } else {
        StoreError::Internal(source)
    }
}
