//! The SQL both backends run alike, written once.
//!
//! Both stores keep the same tables, and where PostgreSQL and SQLite agree on a statement only
//! the driver differs. sqlx's query functions are generic over the driver, so [`Sql`] is
//! implemented for both, and its provided methods run those statements. One text serves both:
//! SQLite reads `$N` as the N-th parameter, as PostgreSQL does.
//!
//! What differs on purpose stays in each backend, with a comment there saying why: how a write
//! is made (PostgreSQL in a PL/pgSQL function in the database, SQLite in a transaction that
//! takes the write lock first), how a key is revoked, which tenants changed since a position
//! (each has its own kind of position), how a small tenant loads, what snapshot a read sees,
//! and which of each engine's error codes mean an outage.

use futures_util::TryStreamExt;
use sqlx::error::DatabaseError;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type};

use super::rows::{ChangedRow, KeyRow, assign_row, build_policy, changed_from_rows, revision_of};
use super::{BoxError, Changed, Position, StoreError, TenantSummary};
use crate::keys::{KeyId, KeyRecord, NewKey};
use crate::policy::{MAX_NAME_BYTES, TenantName, TenantPolicy};

/// An `api_keys` row as [`KeyRow`] reads it. A macro, not a const, so that the statements
/// stay `&'static str` literals.
macro_rules! key_columns {
    () => {
        "id, name, tenant, role, secret_hash, created_at, created_by, revoked_at, last_used_at"
    };
}

/// A driver, and the statements both drivers run alike.
///
/// The bounds say what the statements need of the driver: to run on a connection (and so on a
/// pool), to bind text, bytes and integers, and to read the rows below. Rust does not carry a
/// trait's `where` clauses to code generic over it, only to the trait's own methods: so the
/// shared statements are provided methods here rather than free functions.
pub(crate) trait Sql: Database
where
    for<'c> &'c mut Self::Connection: Executor<'c, Database = Self>,
    Self::Arguments: IntoArguments<Self>,
    for<'a> &'a str: Encode<'a, Self> + Type<Self>,
    for<'a> Option<&'a str>: Encode<'a, Self> + Type<Self>,
    for<'a> &'a [u8]: Encode<'a, Self> + Type<Self>,
    for<'a> i64: Encode<'a, Self> + Type<Self>,
    for<'r> (i64,): FromRow<'r, Self::Row>,
    for<'r> (String,): FromRow<'r, Self::Row>,
    for<'r> (String, String): FromRow<'r, Self::Row>,
    for<'r> (String, String, String): FromRow<'r, Self::Row>,
    for<'r> (String, String, Option<i64>): FromRow<'r, Self::Row>,
    for<'a> Option<i64>: Encode<'a, Self> + Type<Self>,
    for<'r> ChangedRow: FromRow<'r, Self::Row>,
    for<'r> KeyRow: FromRow<'r, Self::Row>,
    for<'r> (String, i64, i64, i64, i64): FromRow<'r, Self::Row>,
{
    /// The statement of [`Sql::tenant_page`]: the engines order text in bytes differently.
    const TENANT_PAGE: &'static str;

    /// Whether a database error means the store is not there, or cannot be used now (a retry
    /// later may succeed), rather than that something is wrong with the statement or the data.
    /// Each engine says so with codes of its own.
    fn is_outage(error: &dyn DatabaseError) -> bool;

    /// Whether an error says that the store cannot take writes while it may still answer
    /// queries (a full disk, say), rather than that a write was merely refused or the store
    /// is busy: what a health check needs to know beyond a query's answer.
    fn refuses_writes(error: &sqlx::Error) -> bool;

    /// A transaction whose reads all see one consistent snapshot of the store.
    async fn begin_snapshot(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, StoreError>;

    /// Sorts a database error into "the store is not there" ([`StoreError::Unavailable`]) and
    /// everything else ([`StoreError::Internal`]).
    fn classify(error: sqlx::Error) -> StoreError {
        let unavailable = match &error {
            // The connection, or the pool of them, failed: no fault of the statement.
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => Self::is_outage(e.as_ref()),
            _ => false,
        };
        let source: BoxError = Box::new(error);
        if unavailable {
            StoreError::Unavailable(source)
        } else {
            StoreError::Internal(source)
        }
    }

    /// [`Sql::refuses_writes`] of a store error's source, as [`super::write_health`] asks it.
    fn is_fault(error: &(dyn std::error::Error + 'static)) -> bool {
        error
            .downcast_ref::<sqlx::Error>()
            .is_some_and(Self::refuses_writes)
    }

    /// The tenant's revision as `connection` sees it; 0 for a tenant never written.
    async fn revision_in(
        connection: &mut Self::Connection,
        tenant: &TenantName,
    ) -> Result<u64, StoreError> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM tenants WHERE name = $1")
                .bind(tenant.as_str())
                .fetch_optional(connection)
                .await
                .map_err(Self::classify)?;
        revision.map_or(Ok(0), |revision| revision_of(tenant, revision))
    }

    /// Loads the whole of `tenant` in one snapshot ([`Sql::begin_snapshot`]), so that the
    /// revision matches the rows exactly; the memberships stream in ([`assign_row`]).
    async fn load_whole(
        pool: &Pool<Self>,
        tenant: &TenantName,
    ) -> Result<TenantPolicy, StoreError> {
        let mut tx = Self::begin_snapshot(pool).await?;
        let revision = Self::revision_in(&mut tx, tenant).await?;
        let groups: Vec<String> = sqlx::query_scalar("SELECT name FROM groups WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(Self::classify)?;
        let permissions: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT group_name, resource, action FROM permissions WHERE tenant = $1",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(Self::classify)?;
        let nestings: Vec<(String, String)> =
            sqlx::query_as("SELECT group_name, parent_name FROM nestings WHERE tenant = $1")
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(Self::classify)?;
        let mut policy = build_policy(revision, groups, permissions, nestings)?;
        let mut assignments = sqlx::query_as::<_, (String, String, Option<i64>)>(
            "SELECT group_name, user_name, expires_at_ms FROM assignments WHERE tenant = $1",
        )
        .bind(tenant.as_str())
        .fetch(&mut *tx);
        while let Some((group, user, ends)) =
            assignments.try_next().await.map_err(Self::classify)?
        {
            assign_row(&mut policy, &group, &user, ends)?;
        }
        drop(assignments);
        tx.rollback().await.map_err(Self::classify)?;
        Ok(policy)
    }

    /// What changed since `position`, as `sql` (each backend's own: each has its own kind of
    /// position) reports it in [`ChangedRow`]s, given the position as its one parameter.
    async fn read_changed(
        pool: &Pool<Self>,
        sql: &'static str,
        position: Position,
    ) -> Result<Option<Changed>, StoreError> {
        let rows: Vec<ChangedRow> = sqlx::query_as(sql)
            .bind(i64::try_from(position.0).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(Self::classify)?;
        changed_from_rows(rows)
    }

    /// Stores a new key; the store stamps it with its clock.
    async fn insert_key(
        connection: &mut Self::Connection,
        key: &NewKey,
    ) -> Result<KeyRecord, StoreError> {
        let row: KeyRow = sqlx::query_as(concat!(
            "INSERT INTO api_keys (id, name, tenant, role, secret_hash, created_by)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            key_columns!()
        ))
        .bind(key.id.as_str())
        .bind(key.name.as_deref())
        .bind(key.scope.tenant().map(TenantName::as_str))
        .bind(key.role.as_str())
        .bind(&key.secret_hash[..])
        .bind(key.created_by.as_deref())
        .fetch_one(connection)
        .await
        .map_err(Self::classify)?;
        row.into_record()
    }

    /// See [`super::Store::key_page`].
    async fn key_page(
        pool: &Pool<Self>,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        // The CAST gives PostgreSQL the parameter's type where it cannot tell it alone.
        let rows: Vec<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys
             WHERE CAST($1 AS TEXT) IS NULL
                OR (created_at, id) > (SELECT k.created_at, k.id FROM api_keys k WHERE k.id = $1)
             ORDER BY created_at, id
             LIMIT $2"
        ))
        .bind(after.map(KeyId::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(Self::classify)?;
        rows.into_iter().map(KeyRow::into_record).collect()
    }

    /// See [`super::Store::tenant_page`].
    async fn tenant_page(
        pool: &Pool<Self>,
        prefix: &str,
        after: Option<&TenantName>,
        limit: usize,
    ) -> Result<Vec<TenantSummary>, StoreError> {
        // Bounds the index scan can start and stop at: every name is greater than "", and
        // the names starting with the prefix are those below its successor.
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(Self::TENANT_PAGE)
            .bind(prefix)
            .bind(after.map_or("", TenantName::as_str))
            .bind(
                successor(prefix)
                    .unwrap_or_else(|| ABOVE_EVERY_NAME.clone())
                    .as_str(),
            )
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(Self::classify)?;
        rows.into_iter()
            .map(|(name, revision, groups, permissions, assignments)| {
                let count = |n: i64| u64::try_from(n).unwrap_or_default();
                let tenant = TenantName::parse("tenant", &name).map_err(|e| {
                    StoreError::Internal(format!("a stored tenant name: {e}").into())
                })?;
                Ok(TenantSummary {
                    revision: revision_of(&tenant, revision)?,
                    tenant,
                    groups: count(groups),
                    permissions: count(permissions),
                    assignments: count(assignments),
                })
            })
            .collect()
    }

    /// Succeeds if the store answers a query.
    async fn answers(pool: &Pool<Self>) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop)
            .map_err(Self::classify)
    }
}

/// The first string after every string that starts with `prefix`, in the order of bytes (which
/// for UTF-8 is the order of characters): the prefix with its last character that can be made
/// greater made so, and what follows it dropped. None for an empty prefix, or one of nothing
/// but the greatest character.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next character, past the surrogates, which are not characters.
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A string greater than every name: longer than a name may be, of the greatest character.
static ABOVE_EVERY_NAME: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| char::MAX.to_string().repeat(MAX_NAME_BYTES / 4 + 1));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_of_a_prefix_follows_every_name_it_starts_and_nothing_else() {
        assert_eq!(successor(""), None);
        assert_eq!(successor("acme").as_deref(), Some("acmf"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}"), None);
        // Past the surrogates.
        assert_eq!(successor("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        for name in ["acme", "acme corp", "acme\u{10FFFF}", "acmezzz"] {
            assert!(name < successor("acme").unwrap().as_str(), "{name}");
        }
        assert!("acmf" >= successor("acme").unwrap().as_str());
        let longest = "\u{10FFFF}".repeat(MAX_NAME_BYTES / 4);
        assert!(longest.as_str() < ABOVE_EVERY_NAME.as_str());
    }
}
