//! Configuration: one struct, read once at start-up from flags or the environment.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Parser, ValueEnum};

use crate::bus::target::Target;
use crate::policy::TenantName;
use crate::redact::{redact_url, scrub_passwords};

/// A multi-tenant RBAC policy server.
///
/// Every option is also read from the environment variable named beside it; a flag wins over
/// the environment.
#[derive(Clone, Parser)]
#[command(name = "rbac-server", version, about)]
pub struct Config {
    /// TCP port to listen on. 0 picks a free port (the log line "listening" tells which).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// This instance's name on the bus and in /health; messages carrying it are its own and
    /// are ignored. Default: server-$PORT.
    #[arg(long, env = "SERVER_ID", value_parser = NonEmptyStringValueParser::new())]
    server_id: Option<String>,

    /// The source of truth: postgres://user:password@host:port/database for PostgreSQL (add
    /// ?sslmode=require or ?sslmode=verify-full for TLS), or sqlite:path for an SQLite file.
    /// Unset: an embedded SQLite database in DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = NonEmptyStringValueParser::new())]
    database_url: Option<String>,

    /// Folder of the embedded SQLite database (rbac.db) used when DATABASE_URL is unset;
    /// created on first start.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,

    /// Redis URL: redis://[:password@]host:port, or rediss:// for TLS;
    /// redis+sentinel://[user:password@]host:port,host:port/<service>[/<db>] for the master of a
    /// Sentinel service; redis+cluster://[user:password@]host:port,host:port for a Redis
    /// Cluster (rediss+ for TLS). Unset: no bus, for a single instance.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = NonEmptyStringValueParser::new())]
    pub redis_url: Option<String>,

    /// Redis pub/sub channel that carries tenant-refresh messages.
    #[arg(long, env = "REDIS_CHANNEL", default_value = "tenant-refresh",
          value_parser = NonEmptyStringValueParser::new())]
    pub redis_channel: String,

    /// When set, writes need `Authorization: Bearer <token>` with this token. Several tokens,
    /// comma-separated, are all accepted: add the new one, move clients over, drop the old.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = parse_tokens)]
    pub admin_token: Option<TokenList>,

    /// When set, reads need one of these tokens (comma-separated) or an admin token.
    #[arg(long, env = "CHECK_TOKEN", hide_env_values = true, value_parser = parse_tokens)]
    pub check_token: Option<TokenList>,

    /// Seconds between sweeps that ask the store which tenants changed since the last one, and
    /// catch up those held here: changes whose bus message was lost, tenants created elsewhere.
    #[arg(long, env = "RESYNC_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub resync_interval_secs: u64,

    /// Hours of changelog kept, for incremental refreshes and for reading who changed what.
    /// Older entries are deleted by the sweep; an instance further behind reloads whole.
    #[arg(long, env = "CHANGELOG_RETENTION_HOURS", default_value_t = 720,
          value_parser = clap::value_parser!(u64).range(1..=876_000))]
    pub changelog_retention_hours: u64,

    /// Seconds any one store operation may take before the request fails with 503.
    #[arg(long, env = "STORE_TIMEOUT_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub store_timeout_secs: u64,

    /// Connections to the store each instance may open: 16 for PostgreSQL, 8 for SQLite
    /// unless set. Checks never use one; writes and tenant loads do. With PostgreSQL, the
    /// instances' pools together must fit its `max_connections`.
    #[arg(long, env = "DATABASE_POOL_SIZE",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool_size: Option<u32>,

    /// Seconds that shutdown waits for in-flight requests.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub shutdown_timeout_secs: u64,

    /// Seconds a request may take before it is answered 503 and abandoned: a slow client,
    /// a store that answers slowly several times over. A write that has reached the store is
    /// answered when the store answers instead, which STORE_TIMEOUT_SECS bounds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// Bytes a policy document sent to `PUT /tenant-policy` may take; a larger one is refused
    /// with 413 before it is read. Parsing a document takes a few times its size in memory,
    /// for as long as it is applied.
    #[arg(long, env = "POLICY_MAX_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(65_536..=1_073_741_824))]
    pub policy_max_bytes: u64,

    /// Watch streams (`GET /watch`) open at once on this instance; past it, a new one is
    /// refused with 503.
    #[arg(long, env = "WATCH_MAX_CLIENTS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub watch_max_clients: u64,

    /// Seconds a connection may go without a request in flight, from when it opened or from
    /// its last answer, before it is closed: idle, or sending its next request head too
    /// slowly. Behind a load balancer, make it longer than the balancer's own idle timeout.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout_secs: u64,

    /// Connections open at once; past it, new ones wait to be accepted until one closes.
    /// Default: 10,000, or fewer when the limit on open files is lower (a quarter of that
    /// limit is kept for the store, the bus and files).
    #[arg(long, env = "MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: Option<u64>,

    /// Megabytes (MiB) of memory the tenants held in memory may take, by estimate; past it
    /// the least recently used are evicted and loaded again when next read. Default: half
    /// of the memory limit of the process's container (its cgroup), or of the machine; 1024
    /// when neither can be read.
    #[arg(long, env = "CACHE_MEMORY_MB",
          value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub cache_memory_mb: Option<u64>,

    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The URL clients reach this service at (https://authz.example.com), an absolute http or
    /// https URL without query or fragment: the AuthZEN metadata names its endpoints under
    /// it. Unset: http:// and the host each request was sent to.
    #[arg(long, env = "PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// The tenant the AuthZEN endpoints at the root (/access/v1/...) answer for when the
    /// request's credential is not an API key for one tenant. Unset: such a request is a 400.
    #[arg(long, env = "AUTHZEN_DEFAULT_TENANT",
          value_parser = |value: &str| TenantName::parse("AUTHZEN_DEFAULT_TENANT", value))]
    pub authzen_default_tenant: Option<TenantName>,
}

/// Why PUBLIC_URL is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "must be an absolute http:// or https:// URL without query or fragment, such as https://authz.example.com"
)]
pub struct PublicUrlError;

/// PUBLIC_URL, checked, without a trailing `/`.
fn parse_public_url(value: &str) -> Result<String, PublicUrlError> {
    let uri: axum::http::Uri = value.parse().map_err(|_| PublicUrlError)?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let authority_ok = uri
        .authority()
        .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'));
    if !scheme_ok || !authority_ok || uri.query().is_some() || value.contains('#') {
        return Err(PublicUrlError);
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// The share of the memory limit the cache takes when CACHE_MEMORY_MB is not set: the rest is
/// for the list of tenants, requests in flight, and the copies a refresh makes while it
/// replaces a tenant.
const DEFAULT_CACHE_SHARE: u64 = 2;

/// Connections open at once when MAX_CONNECTIONS is not set and open files allow.
const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// The cache budget when not even the machine's memory can be read.
const FALLBACK_CACHE_BYTES: u64 = 1 << 30;

/// One or more bearer tokens, any of which is accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenList(pub Vec<String>);

/// Tokens never reach a log line.
impl fmt::Debug for TokenList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} redacted>", self.0.len())
    }
}

/// Why a configuration cannot be used; each says so in one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag or variable that does not parse, in clap's words.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "DATABASE_URL has an unknown scheme {0:?}: use postgres://user:password@host:port/database or sqlite:path"
    )]
    DatabaseScheme(String),
    /// The client's reason, passwords removed.
    #[error("REDIS_URL is not a valid Redis URL: {0}")]
    RedisUrl(String),
}

/// Why a token list is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// An empty token would turn authentication off for whoever sends an empty one.
    #[error("tokens must not be empty (a comma-separated list of non-empty tokens)")]
    Empty,
    #[error("tokens must not contain whitespace at either end or control characters")]
    Untrimmed,
}

fn parse_tokens(value: &str) -> Result<TokenList, TokenError> {
    let tokens: Vec<String> = value.split(',').map(str::to_owned).collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return Err(TokenError::Empty);
    }
    if tokens
        .iter()
        .any(|t| t.trim() != t || t.chars().any(char::is_control))
    {
        return Err(TokenError::Untrimmed);
    }
    Ok(TokenList(tokens))
}

/// Where the policies are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A PostgreSQL URL: the setup for several instances on several machines.
    Postgres(String),
    /// A `sqlite:` URL.
    Sqlite(String),
    /// No DATABASE_URL: the file `rbac.db` in this folder.
    Embedded(PathBuf),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Postgres(url) => write!(f, "Postgres({:?})", redact_url(url)),
            Database::Sqlite(url) => write!(f, "Sqlite({url:?})"),
            Database::Embedded(dir) => write!(f, "Embedded({dir:?})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Reads the configuration from the command line and the environment. On a bad value,
    /// returns one line saying what is wrong; `--help` and `--version` are printed here.
    pub fn load() -> Result<Self, ConfigError> {
        Self::checked(Self::try_parse().map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                e.exit()
            }
            _ => e,
        }))
    }

    /// The configuration of these arguments (the first is the program's name) and the
    /// environment, as [`Config::load`] reads it; for starting a server in process.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::checked(Self::try_parse_from(args))
    }

    fn checked(parsed: Result<Self, clap::Error>) -> Result<Self, ConfigError> {
        let config = parsed.map_err(|e| ConfigError::Invalid(first_line(&e.to_string())))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url {
            let scheme = url.split_once(':').map(|(scheme, _)| scheme);
            if !matches!(scheme, Some("postgres" | "postgresql" | "sqlite")) {
                return Err(ConfigError::DatabaseScheme(
                    scheme.unwrap_or(url).to_owned(),
                ));
            }
        }
        if let Some(url) = &self.redis_url {
            Target::parse(url)
                .map_err(|e| ConfigError::RedisUrl(scrub_passwords(&e.to_string(), url)))?;
        }
        Ok(())
    }

    pub fn database(&self) -> Database {
        match &self.database_url {
            Some(url) if url.starts_with("sqlite:") => Database::Sqlite(url.clone()),
            Some(url) => Database::Postgres(url.clone()),
            None => Database::Embedded(self.data_dir.clone()),
        }
    }

    pub fn server_id(&self) -> String {
        self.server_id
            .clone()
            .unwrap_or_else(|| format!("server-{}", self.port))
    }

    pub fn resync_interval(&self) -> Duration {
        Duration::from_secs(self.resync_interval_secs)
    }

    pub fn changelog_retention(&self) -> Duration {
        Duration::from_secs(self.changelog_retention_hours * 3600)
    }

    pub fn store_timeout(&self) -> Duration {
        Duration::from_secs(self.store_timeout_secs)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The limits every HTTP connection is served within, given the process's limit on open
    /// files.
    pub fn connection_limits(&self, open_files: Option<u64>) -> crate::http::serve::Limits {
        let files = open_files.unwrap_or(1024);
        crate::http::serve::Limits {
            max_connections: self
                .max_connections
                .unwrap_or((files - files / 4).clamp(1, DEFAULT_MAX_CONNECTIONS))
                as usize,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
        }
    }

    /// The bytes the tenants held may take: CACHE_MEMORY_MB, or by default half of the
    /// memory limit (see [`crate::host::memory_limit`]).
    pub fn cache_budget(&self) -> u64 {
        match self.cache_memory_mb {
            Some(mb) => mb << 20,
            None => crate::host::memory_limit()
                .map_or(FALLBACK_CACHE_BYTES, |limit| limit / DEFAULT_CACHE_SHARE),
        }
    }
}

/// Clap's message on one line: the error and its details, without the usage and help hints.
fn first_line(message: &str) -> String {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    message
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Secrets (URLs carry passwords, tokens are keys) never reach a log line.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("host", &self.host)
            .field("server_id", &self.server_id())
            .field("database", &self.database())
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_channel", &self.redis_channel)
            .field("admin_token", &self.admin_token)
            .field("check_token", &self.check_token)
            .field("resync_interval_secs", &self.resync_interval_secs)
            .field("changelog_retention_hours", &self.changelog_retention_hours)
            .field("store_timeout_secs", &self.store_timeout_secs)
            .field("database_pool_size", &self.database_pool_size)
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("watch_max_clients", &self.watch_max_clients)
            .field("max_connections", &self.max_connections)
            .field("cache_memory_mb", &self.cache_memory_mb)
            .field("log_format", &self.log_format)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::from_args(std::iter::once("rbac-server").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn connections_default_to_three_quarters_of_the_open_files_at_most_ten_thousand() {
        let config = parse(&[]).unwrap();
        let max = |files| config.connection_limits(files).max_connections;
        assert_eq!(max(Some(1024)), 768);
        assert_eq!(max(Some(1_048_576)), 10_000);
        assert_eq!(max(Some(1)), 1);
        assert_eq!(
            max(None),
            768,
            "the usual 1,024 when the limit cannot be read"
        );
        let config = parse(&["--max-connections", "50000", "--idle-timeout-secs", "7"]).unwrap();
        let limits = config.connection_limits(Some(1024));
        assert_eq!(limits.max_connections, 50_000, "set, it is taken as is");
        assert_eq!(limits.idle_timeout, Duration::from_secs(7));
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--idle-timeout-secs", "0"]).is_err());
    }

    #[test]
    fn a_public_url_is_an_absolute_http_url_kept_without_its_trailing_slash() {
        let url = |value: &str| parse(&["--public-url", value]).map(|c| c.public_url.unwrap());
        assert_eq!(
            url("https://authz.example.com/").unwrap(),
            "https://authz.example.com"
        );
        assert_eq!(
            url("http://10.0.0.1:8080/rbac").unwrap(),
            "http://10.0.0.1:8080/rbac"
        );
        for bad in [
            "authz.example.com",
            "/rbac",
            "ftp://authz.example.com",
            "https://authz.example.com/?x=1",
            "https://authz.example.com/#x",
            "https://user@authz.example.com",
            "",
        ] {
            assert!(url(bad).is_err(), "{bad} was accepted");
        }
        let tenant = parse(&["--authzen-default-tenant", "acme"]).unwrap();
        assert_eq!(tenant.authzen_default_tenant.unwrap().as_str(), "acme");
        assert!(parse(&["--authzen-default-tenant", "a*"]).is_err());
    }

    #[test]
    fn defaults_follow_the_port() {
        let config = parse(&[
            "--database-url",
            "postgres://localhost/db",
            "--port",
            "3001",
        ])
        .unwrap();
        assert_eq!(config.server_id(), "server-3001");
        assert_eq!(config.redis_channel, "tenant-refresh");
        assert_eq!(config.resync_interval_secs, 30);
    }

    #[test]
    fn the_cache_budget_is_the_megabytes_given_or_half_the_memory_limit() {
        assert_eq!(
            parse(&["--cache-memory-mb", "3"]).unwrap().cache_budget(),
            3 << 20
        );
        let limit = crate::host::memory_limit().unwrap();
        assert_eq!(parse(&[]).unwrap().cache_budget(), limit / 2);
        assert!(parse(&["--cache-memory-mb", "0"]).is_err());
    }

    #[test]
    fn a_bad_value_is_one_clear_line() {
        let err = parse(&["--database-url", "postgres://x/y", "--port", "abc"]).unwrap_err();
        assert!(!err.contains('\n'));
        assert!(err.contains("--port"), "{err}");
    }

    #[test]
    fn without_a_database_url_the_store_is_the_embedded_file() {
        assert_eq!(
            parse(&[]).unwrap().database(),
            Database::Embedded(PathBuf::from("./data"))
        );
        assert_eq!(
            parse(&["--data-dir", "/var/lib/rbac"]).unwrap().database(),
            Database::Embedded(PathBuf::from("/var/lib/rbac"))
        );
        assert_eq!(
            parse(&["--database-url", "sqlite:x.db"])
                .unwrap()
                .database(),
            Database::Sqlite("sqlite:x.db".into())
        );
        assert_eq!(
            parse(&["--database-url", "postgresql://h/db"])
                .unwrap()
                .database(),
            Database::Postgres("postgresql://h/db".into())
        );
    }

    #[test]
    fn a_database_url_of_another_engine_is_rejected() {
        let err = parse(&["--database-url", "mysql://x/y"]).unwrap_err();
        assert!(
            err.starts_with("DATABASE_URL has an unknown scheme \"mysql\""),
            "{err}"
        );
    }

    #[test]
    fn sentinel_and_cluster_urls_are_checked_at_start_up_and_shown_redacted() {
        let err = parse(&[
            "--redis-url",
            "redis+sentinel://:hunter2@s1:26379,s2:x/mymaster",
        ])
        .unwrap_err();
        assert!(
            err.starts_with("REDIS_URL is not a valid Redis URL: \"s2:x\""),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let config = parse(&[
            "--redis-url",
            "redis+cluster://rbac:hunter2@n1:7000,n2:7001",
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            debug.contains("redis+cluster://rbac:***@n1:7000,n2:7001"),
            "{debug}"
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn an_empty_token_is_rejected_rather_than_disabling_auth() {
        assert!(parse(&["--database-url", "postgres://x/y", "--admin-token", ""]).is_err());
    }

    #[test]
    fn several_comma_separated_tokens_are_accepted_and_empty_ones_refused() {
        let config = parse(&["--admin-token", "new,old"]).unwrap();
        assert_eq!(
            config.admin_token,
            Some(TokenList(vec!["new".into(), "old".into()]))
        );
        for bad in ["a,", ",a", "a,,b", " a", "a\tb"] {
            assert!(parse(&["--check-token", bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_redacts_secrets_and_shows_where_the_servers_are() {
        let config = parse(&[
            "--database-url",
            "postgres://user:hunter2@db.internal:5433/y?sslmode=require",
            "--redis-url",
            "rediss://:swordfish@cache.internal:6380/#insecure",
            "--admin-token",
            "sekret",
        ])
        .unwrap();
        let debug = format!("{config:?}");
        for secret in ["hunter2", "swordfish", "sekret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(
            debug.contains("postgres://user:***@db.internal:5433/y?sslmode=require"),
            "{debug}"
        );
        assert!(
            debug.contains("rediss://:***@cache.internal:6380/#insecure"),
            "{debug}"
        );
    }
}
