//! The integration-test harness: rbac-server instances against the real PostgreSQL and
//! Redis that `scripts/test.sh` starts (it exports TEST_DATABASE_URL and TEST_REDIS_URL).
//!
//! An instance is a process, an [`Instance`] (started by [`process`], the one way the tests
//! start the binary), or a server in this test process, an [`InProcess`] ([`in_process`]);
//! either is called through [`Api`], one method per endpoint. Each [`Cluster`] of instances
//! gets a fresh database named by a UUID and its own Redis channel, so tests run in parallel
//! without seeing each other. Processes listen on port 0 and report the port they got in
//! their "listening" log line, so nothing sleeps waiting for start-up. Set TEST_LOG=1 to see
//! the servers' logs.
#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod in_process;
pub mod process;
pub mod reply;
pub mod servers;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

pub use api::Api;
// Not every test file starts a server in process.
#[allow(unused_imports)]
pub use in_process::{InProcess, in_process_api};
use process::{Environment, Process};

/// How long a propagation may take before a test calls it lost.
pub const PROPAGATION: Duration = Duration::from_secs(2);

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts PostgreSQL and Redis")
    })
}

pub fn redis_url() -> String {
    required_env("TEST_REDIS_URL")
}

/// The store the HTTP tests run against: TEST_STORE=sqlite for the embedded SQLite backend,
/// PostgreSQL otherwise. `scripts/test.sh` runs the HTTP tests once with each.
pub fn sqlite_under_test() -> bool {
    std::env::var("TEST_STORE").is_ok_and(|store| store == "sqlite")
}

/// A new, empty database of the store under test, as a DATABASE_URL.
pub async fn fresh_database() -> String {
    if sqlite_under_test() {
        fresh_sqlite_database()
    } else {
        fresh_postgres_database().await
    }
}

/// A new SQLite file's URL, in a folder of its own under the temp dir.
pub fn fresh_sqlite_database() -> String {
    let dir = temp_dir("rbac-test");
    format!("sqlite://{}", dir.join("rbac.db").display())
}

/// A new, empty folder under the temp dir, its name `prefix` and a UUID.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// Creates an empty database on the test PostgreSQL server and returns its URL.
pub async fn fresh_postgres_database() -> String {
    let admin_url = required_env("TEST_DATABASE_URL");
    let name = format!("rbac_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let (base, _) = admin_url.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{name}")
}

/// Every row a store holds, sorted, as text: equal before and after means nothing changed.
pub async fn stored_rows(database_url: &str) -> String {
    macro_rules! read_all {
        ($db:expr) => {{
            let db = &mut $db;
            let mut tenants: Vec<(String, i64)> =
                sqlx::query_as("SELECT name, revision FROM tenants")
                    .fetch_all(&mut *db)
                    .await
                    .unwrap();
            let mut groups: Vec<(String, String)> =
                sqlx::query_as("SELECT tenant, name FROM groups")
                    .fetch_all(&mut *db)
                    .await
                    .unwrap();
            let mut permissions: Vec<(String, String, String, String)> =
                sqlx::query_as("SELECT tenant, group_name, resource, action FROM permissions")
                    .fetch_all(&mut *db)
                    .await
                    .unwrap();
            let mut assignments: Vec<(String, String, String)> =
                sqlx::query_as("SELECT tenant, group_name, user_name FROM assignments")
                    .fetch_all(&mut *db)
                    .await
                    .unwrap();
            let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM changelog")
                .fetch_one(&mut *db)
                .await
                .unwrap();
            let mut keys: Vec<(String, Option<String>, String, Option<String>, bool)> =
                sqlx::query_as(
                    "SELECT id, tenant, role, name, revoked_at IS NOT NULL FROM api_keys",
                )
                .fetch_all(&mut *db)
                .await
                .unwrap();
            tenants.sort();
            groups.sort();
            permissions.sort();
            assignments.sort();
            keys.sort();
            format!(
                "tenants: {tenants:?}\ngroups: {groups:?}\npermissions: {permissions:?}\n\
                 assignments: {assignments:?}\nchangelog entries: {changes}\napi keys: {keys:?}"
            )
        }};
    }
    if database_url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        read_all!(db)
    } else {
        let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
        read_all!(db)
    }
}

/// Several instances sharing one database and one Redis channel.
pub struct Cluster {
    pub database_url: String,
    pub channel: String,
    pub instances: Vec<Instance>,
    /// Extra environment given to every instance started by this cluster.
    env: Vec<(String, String)>,
    /// The Redis every instance uses; none: no bus.
    pub redis_url: Option<String>,
    next_id: usize,
}

impl Cluster {
    /// `count` instances with Redis.
    pub async fn start(count: usize) -> Self {
        Self::start_with(count, &[]).await
    }

    /// `count` instances without Redis: each stands alone and only the store connects them.
    pub async fn without_bus(count: usize, env: &[(&str, &str)]) -> Self {
        Self::on(count, fresh_database().await, None, env).await
    }

    pub async fn start_with(count: usize, env: &[(&str, &str)]) -> Self {
        Self::on(count, fresh_database().await, Some(redis_url()), env).await
    }

    /// `count` instances on the given database and Redis.
    pub async fn on(
        count: usize,
        database_url: String,
        redis_url: Option<String>,
        env: &[(&str, &str)],
    ) -> Self {
        let mut cluster = Self {
            redis_url,
            database_url,
            channel: format!("tenant-refresh-{}", uuid::Uuid::new_v4().simple()),
            instances: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            next_id: 1,
        };
        for _ in 0..count {
            cluster.add_instance().await;
        }
        cluster
    }

    /// Starts one more instance and returns its index.
    pub async fn add_instance(&mut self) -> usize {
        self.add_instance_with(&[]).await
    }

    /// Starts one more instance with `env` on top of the cluster's (a REDIS_URL of its own,
    /// say) and returns its index.
    pub async fn add_instance_with(&mut self, env_overrides: &[(&str, &str)]) -> usize {
        let server_id = format!("test-{}", self.next_id);
        self.next_id += 1;
        let mut env = vec![
            ("DATABASE_URL".to_string(), self.database_url.clone()),
            ("REDIS_CHANNEL".to_string(), self.channel.clone()),
            ("SERVER_ID".to_string(), server_id.clone()),
        ];
        if let Some(url) = &self.redis_url {
            env.push(("REDIS_URL".to_string(), url.clone()));
        }
        env.extend(self.env.iter().cloned());
        // Later entries win.
        env.extend(
            env_overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let instance = Instance::spawn(&env).await;
        if self.redis_url.as_deref() == Some(redis_url().as_str()) {
            // Listening comes before subscribing: a write made in between would not be heard.
            // Only on the shared Redis, which is always up (fault tests start instances on
            // one that is down).
            let subscribed = eventually(Duration::from_secs(10), || async {
                instance.health().await["redis"] == "connected"
            })
            .await;
            assert!(
                subscribed.is_some(),
                "{} never subscribed",
                instance.server_id
            );
        }
        self.instances.push(instance);
        self.instances.len() - 1
    }

    /// Stops every instance gracefully and starts as many new ones on the same database.
    pub async fn restart_all(&mut self) {
        let count = self.instances.len();
        for instance in self.instances.drain(..) {
            instance.stop();
        }
        for _ in 0..count {
            self.add_instance().await;
        }
    }

    pub fn get(&self, index: usize) -> &Instance {
        &self.instances[index]
    }

    /// Takes an instance out of the cluster, to stop it by hand.
    pub fn remove(&mut self, index: usize) -> Instance {
        self.instances.remove(index)
    }
}

impl std::ops::Index<usize> for Cluster {
    type Output = Instance;
    fn index(&self, index: usize) -> &Instance {
        &self.instances[index]
    }
}

/// One running rbac-server process, and its API ([`Api`]'s methods, one per endpoint).
pub struct Instance {
    process: Process,
    api: Api,
}

impl Instance {
    /// Starts the binary with `env` (on top of PORT=0, HOST=127.0.0.1, LOG_FORMAT=json, which
    /// `env` may change) and waits for its "listening" line.
    pub async fn spawn(env: &[(String, String)]) -> Self {
        let mut full_env = vec![
            ("LOG_FORMAT".to_string(), "json".to_string()),
            (
                "RUST_LOG".to_string(),
                "info,rbac_server=debug,sqlx=warn".to_string(),
            ),
        ];
        full_env.extend(env.iter().cloned());
        let process = Process::start(Environment::Inherited, &full_env);
        let address = process.listening_address().await;
        let setting = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        // The first admin token, when several are configured for a rotation.
        let token = setting("ADMIN_TOKEN")
            .and_then(|tokens| tokens.split(',').next())
            .map(str::to_owned);
        Self {
            process,
            api: Api::new(
                format!("http://{address}"),
                setting("SERVER_ID").unwrap_or_default(),
                token,
            ),
        }
    }

    /// Stops the process with SIGTERM and waits for it to exit, and for its last log lines.
    pub fn stop(self) -> std::process::ExitStatus {
        self.process.stop().0
    }

    pub fn logs(&self) -> Vec<String> {
        self.process.lines()
    }

    /// The log lines as they keep arriving, readable after the instance is gone.
    pub fn logs_handle(&self) -> Arc<Mutex<Vec<String>>> {
        self.process.lines_handle()
    }

    /// The process id, to act on the process from outside.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Sets the process's limit on the size of a file it writes, or lifts it (None).
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        self.process.limit_file_size(bytes)
    }

    /// The process's resident set size, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the instance is running");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("a VmRSS line")
            * 1024
    }
}

impl std::ops::Deref for Instance {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// Polls `check` until it returns true or `within` passes; returns how long it took, or None.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Grants alice `docs/*` read in tenant acme on `writer`, after `reader` has loaded acme
/// without it, so that only a bus message can tell `reader`; returns how long `reader` took
/// to allow it, or None if it did not within [`PROPAGATION`].
pub async fn grant_reaches(writer: &Api, reader: &Api) -> Option<Duration> {
    writer.create_group("acme", "editors").await;
    assert!(!reader.check("acme", "alice", "docs/readme", "read").await);
    writer
        .add_permission("acme", "editors", "docs/*", "read")
        .await;
    writer.assign_user("acme", "alice", "editors").await;
    eventually(PROPAGATION, || async {
        reader.check("acme", "alice", "docs/readme", "read").await
    })
    .await
}

/// Asserts that every instance answers `expected` for the check within [`PROPAGATION`].
pub async fn assert_everywhere(
    cluster: &Cluster,
    (tenant, user, resource, action): (&str, &str, &str, &str),
    expected: bool,
) {
    for instance in &cluster.instances {
        let took = eventually(PROPAGATION, || async {
            instance.check(tenant, user, resource, action).await == expected
        })
        .await;
        assert!(
            took.is_some(),
            "{} still answers allowed={} for {tenant}/{user}/{resource}/{action} after {PROPAGATION:?}",
            instance.server_id,
            !expected
        );
    }
}

/// The tenant as the store has it: what a newly started instance loads.
pub async fn store_truth(cluster: &mut Cluster, tenant: &str) -> Value {
    let index = cluster.add_instance().await;
    let truth = cluster[index].groups(tenant).await;
    cluster.instances.pop();
    truth
}

/// Waits until every instance lists `tenant` exactly as `expected`.
pub async fn assert_converged(cluster: &Cluster, tenant: &str, expected: &Value, within: Duration) {
    for instance in &cluster.instances {
        let took = eventually(within, || async {
            &instance.groups(tenant).await == expected
        })
        .await;
        assert!(
            took.is_some(),
            "{} did not converge within {within:?}:\n  has  {}\n  want {expected}",
            instance.server_id,
            instance.groups(tenant).await
        );
    }
}

/// Who made each change of `tenant`, in revision order: the changelog's `actor` column.
pub async fn changelog_actors(database_url: &str, tenant: &str) -> Vec<(i64, Option<String>)> {
    // `?` placeholders are SQLite's, `$1` PostgreSQL's; `$1` is valid SQLite as well, which
    // lets one query serve both.
    let query = "SELECT revision, actor FROM changelog WHERE tenant = $1 ORDER BY revision";
    if database_url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query_as(query)
            .bind(tenant)
            .fetch_all(&mut db)
            .await
            .unwrap()
    } else {
        let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query_as(query)
            .bind(tenant)
            .fetch_all(&mut db)
            .await
            .unwrap()
    }
}

/// An `api_keys` row exactly as the store holds it, timestamps as the store's own text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredKey {
    pub id: String,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub role: String,
    pub secret_hash: Vec<u8>,
    pub created_at: String,
    pub created_by: Option<String>,
    pub revoked_at: Option<String>,
}

/// Every row of the `api_keys` table, by id.
pub async fn stored_keys(database_url: &str) -> Vec<StoredKey> {
    let query = "SELECT id, name, tenant, role, secret_hash, \
                 CAST(created_at AS TEXT) AS created_at, created_by, \
                 CAST(revoked_at AS TEXT) AS revoked_at FROM api_keys ORDER BY id";
    if database_url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query_as(query).fetch_all(&mut db).await.unwrap()
    } else {
        let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query_as(query).fetch_all(&mut db).await.unwrap()
    }
}

/// The tenant's changelog rows through `revision` deleted, as retention deletes old ones.
pub async fn forget_changes_through(database_url: &str, tenant: &str, revision: i64) {
    // `$1` is valid SQLite as well as PostgreSQL.
    let statement = "DELETE FROM changelog WHERE tenant = $1 AND revision <= $2";
    if database_url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query(statement)
            .bind(tenant)
            .bind(revision)
            .execute(&mut db)
            .await
            .unwrap();
    } else {
        let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query(statement)
            .bind(tenant)
            .bind(revision)
            .execute(&mut db)
            .await
            .unwrap();
    }
}
