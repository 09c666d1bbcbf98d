//! TLS and credentials against real servers: a PostgreSQL that refuses connections without
//! TLS and a Redis that speaks nothing but TLS, both behind passwords, used by real
//! rbac-server processes through nothing but their URLs. And the passwords in those URLs
//! never reach the servers' output, right or wrong, in either log format.
//!
//! The PostgreSQL and Redis are private to each test (see `common::servers`: they need
//! TEST_PG_BIN and TEST_REDIS_SERVER, or Debian's paths), with certificates made by the
//! `openssl` command line tool. Nothing is skipped: a machine that cannot run TLS servers
//! fails these tests, and the failure says which part is missing.

mod common;

use std::time::Duration;

use common::process::{Environment, Process};
use common::servers::{PrivatePostgres, PrivateRedis, TestCertificates};
use common::{Instance, PROPAGATION, eventually, grant_reaches};
use serde_json::json;
use sqlx::Connection;

/// A password that must be percent-encoded in a URL (it holds a `/`), around a marker no
/// output may contain, whether the password shows up as written in the URL or decoded.
struct Password {
    plain: String,
    marker: String,
}

impl Password {
    fn new() -> Self {
        let marker = uuid::Uuid::new_v4().simple().to_string();
        Self {
            plain: format!("pw/{marker}"),
            marker,
        }
    }

    fn in_url(&self) -> String {
        self.plain.replace('/', "%2F")
    }
}

/// A PostgreSQL that takes TCP connections over TLS only and a Redis that listens on a TLS
/// port only, each with its own password, and the authority that signed their certificate.
struct TlsServers {
    certs: TestCertificates,
    postgres: PrivatePostgres,
    redis: PrivateRedis,
    postgres_password: Password,
    redis_password: Password,
}

impl TlsServers {
    fn start() -> Self {
        let certs = TestCertificates::generate();
        let postgres_password = Password::new();
        let redis_password = Password::new();
        let postgres = PrivatePostgres::start_tls(&certs, &postgres_password.plain);
        let redis = PrivateRedis::start_tls(&certs, &redis_password.plain);
        Self {
            certs,
            postgres,
            redis,
            postgres_password,
            redis_password,
        }
    }

    /// DATABASE_URL with the right password, on 127.0.0.1, with `query`.
    fn database_url(&self, query: &str) -> String {
        self.database_url_with(&self.postgres_password, "127.0.0.1", query)
    }

    fn database_url_with(&self, password: &Password, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{}@{host}:{}/postgres?{query}",
            password.in_url(),
            self.postgres.port()
        )
    }

    /// REDIS_URL with the right password, taking the server's certificate without checking
    /// it (`#insecure`), as for a managed Redis with a self-signed certificate.
    fn redis_url(&self) -> String {
        self.redis_url_with(&self.redis_password)
    }

    fn redis_url_with(&self, password: &Password) -> String {
        format!(
            "rediss://:{}@127.0.0.1:{}/#insecure",
            password.in_url(),
            self.redis.port()
        )
    }

    /// REDIS_URL with the right password, for a client that verifies the certificate: by the
    /// name in it, with the test's authority as the trusted one (SSL_CERT_FILE).
    fn verified_redis_url(&self) -> String {
        format!(
            "rediss://:{}@localhost:{}",
            self.redis_password.in_url(),
            self.redis.port()
        )
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_postgresql_that_refuses_plain_connections_serves_writes_and_checks_over_tls() {
    let servers = TlsServers::start();
    // Unless plain connections really are refused, the rest proves nothing.
    let plain = sqlx::PgConnection::connect(&servers.database_url("sslmode=disable")).await;
    let refused = plain.expect_err("PostgreSQL accepted a connection without TLS");
    assert!(refused.to_string().contains("no encryption"), "{refused}");

    let database_url = servers.database_url("sslmode=require");
    let instance = Instance::spawn(&env(&[("DATABASE_URL", &database_url)])).await;
    instance.create_group("acme", "editors").await;
    let added = instance
        .add_permission("acme", "editors", "docs/*", "read")
        .await;
    assert_eq!(added["changed"], true, "{added}");
    instance.assign_user("acme", "alice", "editors").await;
    assert!(instance.check("acme", "alice", "docs/readme", "read").await);
    assert!(
        !instance
            .check("acme", "alice", "docs/readme", "write")
            .await
    );
    assert_eq!(instance.health().await["database"], "ok");

    // verify-full: the certificate checked against the authority given as sslrootcert, and
    // against the host name.
    let verified_url = servers.database_url_with(
        &servers.postgres_password,
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            servers.certs.ca.display()
        ),
    );
    let verified = Instance::spawn(&env(&[("DATABASE_URL", &verified_url)])).await;
    assert!(verified.check("acme", "alice", "docs/readme", "read").await);
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_from_an_authority_it_does_not_trust() {
    let servers = TlsServers::start();
    // The test's authority is in no trust store of this machine.
    let database_url = servers.database_url_with(
        &servers.postgres_password,
        "localhost",
        "sslmode=verify-full",
    );
    let server = Process::start(
        Environment::Inherited,
        &[
            ("DATABASE_URL", database_url.as_str()),
            ("STORE_TIMEOUT_SECS", "2"),
        ],
    );
    let (status, lines) = server.wait_for_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{lines:#?}");
    let refusal = lines
        .iter()
        .find(|line| line.starts_with("rbac-server: cannot use the database"))
        .unwrap_or_else(|| panic!("no start-up error line: {lines:#?}"));
    assert!(refusal.contains("certificate"), "{refusal}");
}

#[tokio::test]
async fn a_write_on_one_instance_reaches_the_other_through_redis_over_tls() {
    let servers = TlsServers::start();
    let database_url = servers.database_url("sslmode=require");
    let channel = format!("tenant-refresh-{}", uuid::Uuid::new_v4().simple());
    // A sweep an hour away: only the bus can tell the second instance of the write.
    let shared = [
        ("DATABASE_URL", database_url.as_str()),
        ("REDIS_CHANNEL", channel.as_str()),
        ("RESYNC_INTERVAL_SECS", "3600"),
    ];
    let insecure_url = servers.redis_url();
    let mut first_env = env(&shared);
    first_env.extend(env(&[("SERVER_ID", "tls-1"), ("REDIS_URL", &insecure_url)]));
    let first = Instance::spawn(&first_env).await;
    // The second verifies the certificate instead of taking it as it comes.
    let verified_url = servers.verified_redis_url();
    let ca = servers.certs.ca.display().to_string();
    let mut second_env = env(&shared);
    second_env.extend(env(&[
        ("SERVER_ID", "tls-2"),
        ("REDIS_URL", &verified_url),
        ("SSL_CERT_FILE", &ca),
    ]));
    let second = Instance::spawn(&second_env).await;
    for instance in [&first, &second] {
        let connected = eventually(Duration::from_secs(10), || async {
            instance.health().await["redis"] == "connected"
        })
        .await;
        assert!(
            connected.is_some(),
            "{} never connected to Redis over TLS:\n{}",
            instance.server_id,
            instance.logs().join("\n")
        );
    }

    let took = grant_reaches(&first, &second).await;
    assert!(
        took.is_some(),
        "the write on {} did not reach {} over Redis:\n{}",
        first.server_id,
        second.server_id,
        second.logs().join("\n")
    );
    // The counter moves once Redis has acknowledged a publish, which may be after the peer
    // already acted on the message.
    let published = eventually(PROPAGATION, || async {
        first.cache_stats().await["messages_published"].as_u64() >= Some(3)
    })
    .await;
    assert!(
        published.is_some(),
        "{}",
        first.cache_stats().await["messages_published"]
    );
}

#[tokio::test]
async fn the_passwords_in_both_urls_never_reach_the_logs_in_either_format() {
    let servers = TlsServers::start();
    let database_url = servers.database_url("sslmode=require");
    let redis_url = servers.redis_url();
    for format in ["text", "json"] {
        let server = Process::start(
            Environment::Inherited,
            &[
                ("DATABASE_URL", database_url.as_str()),
                ("REDIS_URL", redis_url.as_str()),
                ("LOG_FORMAT", format),
                ("RUST_LOG", "debug"),
            ],
        );
        let base = format!("http://{}", server.listening_address().await);
        let client = reqwest::Client::new();
        let post = |path: &str, body: serde_json::Value| {
            client.post(format!("{base}{path}")).json(&body).send()
        };
        // A tenant of its own per format: the same write again would change nothing.
        let written = post(
            "/create-group",
            json!({"tenant": format!("acme-{format}"), "group": "editors"}),
        )
        .await
        .unwrap();
        assert!(written.status().is_success(), "{written:?}");
        // The write's bus message went out over TLS, and was logged.
        server
            .wait_for(Duration::from_secs(10), |line| line.contains("published"))
            .await;
        let (_, lines) = server.stop();

        assert_no_password(
            &lines,
            &[&servers.postgres_password, &servers.redis_password],
        );
        // The URLs are shown, their passwords replaced.
        let postgres_shown = format!("postgres:***@127.0.0.1:{}", servers.postgres.port());
        let redis_shown = format!(":***@127.0.0.1:{}", servers.redis.port());
        for shown in [postgres_shown, redis_shown] {
            assert!(
                lines.iter().any(|line| line.contains(&shown)),
                "{format}: no line shows {shown}:\n{}",
                lines.join("\n")
            );
        }
    }
}

#[tokio::test]
async fn wrong_passwords_never_reach_the_logs_in_either_format() {
    let servers = TlsServers::start();
    let wrong = Password::new();
    let all = [&servers.postgres_password, &servers.redis_password, &wrong];
    for format in ["text", "json"] {
        // A wrong PostgreSQL password stops the start, with one line on stderr.
        let database_url = servers.database_url_with(&wrong, "127.0.0.1", "sslmode=require");
        let server = Process::start(
            Environment::Inherited,
            &[
                ("DATABASE_URL", database_url.as_str()),
                ("REDIS_URL", servers.redis_url().as_str()),
                ("LOG_FORMAT", format),
                ("RUST_LOG", "debug"),
                ("STORE_TIMEOUT_SECS", "2"),
            ],
        );
        let (status, lines) = server.wait_for_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{lines:#?}");
        let refusal = lines
            .iter()
            .find(|line| line.starts_with("rbac-server: cannot use the database"))
            .unwrap_or_else(|| panic!("{format}: no start-up error line: {lines:#?}"));
        assert!(
            refusal.contains("password authentication failed"),
            "{refusal}"
        );
        assert_no_password(&lines, &all);

        // A wrong Redis password does not stop the start; every retry says why it failed.
        let server = Process::start(
            Environment::Inherited,
            &[
                (
                    "DATABASE_URL",
                    servers.database_url("sslmode=require").as_str(),
                ),
                ("REDIS_URL", servers.redis_url_with(&wrong).as_str()),
                ("LOG_FORMAT", format),
                ("RUST_LOG", "debug"),
            ],
        );
        server.listening_address().await;
        let failed = server
            .wait_for(Duration::from_secs(10), |line| {
                line.contains("cannot subscribe to Redis")
            })
            .await;
        assert!(failed.contains("AuthenticationFailed"), "{failed}");
        let (_, lines) = server.stop();
        assert_no_password(&lines, &all);
    }
}

fn assert_no_password(lines: &[String], passwords: &[&Password]) {
    for password in passwords {
        let leaks: Vec<&String> = lines
            .iter()
            .filter(|line| line.contains(&password.marker))
            .collect();
        assert!(
            leaks.is_empty(),
            "a password reached the output: {leaks:#?}"
        );
    }
}
