//! Start-up and shutdown: connect the store, start the bus and the sweep, serve HTTP until a
//! signal, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Timeouts};
use crate::bus::{self, Bus, BusLink, Identity};
use crate::cache;
use crate::config::{Config, Database};
use crate::http::{self, Tokens};
use crate::redact::redact_url;
use crate::refresh;
use crate::stats::Stats;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{OpenError, Store, StoreError};

/// How long shutdown waits for the bus tasks once HTTP has drained.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The embedded database's file name inside DATA_DIR.
pub const EMBEDDED_DATABASE_FILE: &str = "rbac.db";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use the database: {0}")]
    Database(#[from] OpenError),
    #[error("cannot use DATA_DIR {path:?}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot use REDIS_URL: {0}")]
    Redis(#[from] crate::bus::target::TargetError),
    #[error("cannot list the tenants in the database: {}", crate::error_chain(.0))]
    Tenants(#[source] StoreError),
}

/// Runs the server until `shutdown` resolves (a signal, in the binary).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    Server::bind(config).await?.run_until(shutdown).await
}

/// A server ready to serve: its store open, the tenants that exist listed, the keys loaded,
/// and its listener bound (connections wait in the backlog until [`Server::run_until`]).
/// Tests and benchmarks start one in process on port 0 and ask [`Server::local_addr`].
pub struct Server {
    config: Config,
    app: Arc<App>,
    /// The link to Redis, if the bus is enabled: its tasks start with serving.
    bus: Option<BusLink>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let server_id = config.server_id();
        let stats = Arc::new(Stats::default());
        let (store, store_connections) = open_store(&config).await?;
        let identity = Identity::new(server_id.clone());
        let (bus, link) = match &config.redis_url {
            Some(_) => {
                let (bus, link) = Bus::enabled(identity, stats.clone());
                (bus, Some(link))
            }
            None => {
                tracing::info!("REDIS_URL is not set: no bus, this instance runs alone");
                (Bus::disabled(identity, stats.clone()), None)
            }
        };
        let cache_budget = config.cache_budget();
        let app = Arc::new(App::new(
            store,
            bus,
            stats,
            Timeouts {
                store: config.store_timeout(),
                resync_interval: config.resync_interval(),
            },
            cache_budget,
            store_connections,
        ));
        let tenants = app.load_tenants().await.map_err(StartError::Tenants)?;
        tracing::info!(
            tenants,
            cache_budget_mib = cache_budget >> 20,
            "tenants listed"
        );

        let address = format!("{}:{}", config.host, config.port);
        let listen_error = |source| StartError::Listen {
            address: address.clone(),
            source,
        };
        let listener = listen(&address).await.map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        // Before serving, so that a key works from the first request; if the store fails now,
        // the sweep tries again and key-authenticated requests get 503 meanwhile.
        app.refresher.reload_keys("start-up").await;
        tracing::info!(addr = %local_addr, server_id, "listening");
        Ok(Self {
            config,
            app,
            bus: link,
            listener,
            local_addr,
        })
    }

    /// The address it listens on: the port chosen, when the configuration said 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What it serves, for a test or benchmark to look inside.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Starts the bus, the refresh and the sweep, serves HTTP until `shutdown` resolves, then
    /// drains in-flight requests (up to SHUTDOWN_TIMEOUT_SECS) and stops.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Self {
            config,
            app,
            bus,
            listener,
            local_addr: _,
        } = self;
        let stopping = CancellationToken::new();
        let mut tasks = Vec::new();
        let (heard, inbox) = bus::inbox();
        if let (Some(link), Some(url)) = (bus, &config.redis_url) {
            tasks.extend(bus::redis::spawn(
                app.stats.clone(),
                link,
                heard,
                url,
                config.redis_channel.clone(),
                stopping.clone(),
            )?);
        }
        tasks.push(tokio::spawn(refresh::run(
            app.refresher.clone(),
            inbox,
            stopping.clone(),
        )));
        tasks.push(tokio::spawn(cache::evictions(
            app.cache.clone(),
            stopping.clone(),
        )));
        tasks.push(tokio::spawn(refresh::sweep(
            app.refresher.clone(),
            config.resync_interval(),
            config.changelog_retention(),
            stopping.clone(),
        )));

        let metrics = http::metrics::install();
        if let Some(handle) = &metrics {
            tasks.push(tokio::spawn(http::metrics::upkeep(
                handle.clone(),
                stopping.clone(),
            )));
        }
        let store = app.store.clone();
        // Cancelled when shutdown begins: watch streams would otherwise hold the drain open.
        let draining = CancellationToken::new();
        let state = Arc::new(http::Services {
            app,
            tokens: Arc::new(Tokens::new(
                config.admin_token.clone().map(|t| t.0).unwrap_or_default(),
                config.check_token.clone().map(|t| t.0).unwrap_or_default(),
            )),
            metrics,
            request_timeout: config.request_timeout(),
            policy_max_bytes: usize::try_from(config.policy_max_bytes).unwrap_or(usize::MAX),
            watching: http::Watching::new(config.watch_max_clients as usize, draining.clone()),
            authzen: http::AuthzenSettings {
                public_url: config.public_url.clone(),
                default_tenant: config.authzen_default_tenant.clone(),
            },
        });
        let router = http::router(state);

        let signalled = draining.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            signalled.cancel();
        });
        let limits = config.connection_limits(crate::host::raise_open_files_limit());
        tracing::info!(
            max_connections = limits.max_connections,
            idle_timeout_secs = limits.idle_timeout.as_secs(),
            "connection limits"
        );
        let connections = http::serve::serve(listener, router, limits, draining.clone()).await;
        let drain_timeout = config.shutdown_timeout();
        if tokio::time::timeout(drain_timeout, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_secs = drain_timeout.as_secs(),
                "drain timed out; closing remaining connections"
            );
        }

        stopping.cancel();
        for task in tasks {
            let _ = tokio::time::timeout(TASK_STOP_TIMEOUT, task).await;
        }
        // Closing the pool lets SQLite checkpoint its WAL now, not while the process exits.
        let _ = tokio::time::timeout(TASK_STOP_TIMEOUT, store.close()).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Connections past MAX_CONNECTIONS wait in the listener's backlog until one closes; the
/// usual 128 would turn a burst away sooner than it needs to.
const LISTEN_BACKLOG: u32 = 1024;

async fn listen(address: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for address in tokio::net::lookup_host(address).await? {
        let socket = match address {
            std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(address)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no address to listen on",
        )
    }))
}

/// The store, and how many connections its pool may open.
async fn open_store(config: &Config) -> Result<(Arc<dyn Store>, u32), StartError> {
    let timeout = config.store_timeout();
    let database = config.database();
    let pool_size = config.database_pool_size.unwrap_or(match database {
        Database::Postgres(_) => crate::store::postgres::DEFAULT_POOL_SIZE,
        _ => crate::store::sqlite::DEFAULT_POOL_SIZE,
    });
    let store: Arc<dyn Store> = match database {
        Database::Postgres(url) => {
            let store = PgStore::connect(&url, timeout, pool_size).await?;
            tracing::info!(url = %redact_url(&url), "store: PostgreSQL");
            Arc::new(store)
        }
        Database::Sqlite(url) => {
            let store = SqliteStore::open_url(&url, timeout, pool_size).await?;
            tracing::info!(url, "store: SQLite");
            Arc::new(store)
        }
        Database::Embedded(dir) => {
            let path = dir.join(EMBEDDED_DATABASE_FILE);
            // Say which folder is wrong, rather than SQLite's "unable to open database file".
            let data_dir_error = |source| StartError::DataDir {
                path: dir.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(data_dir_error)?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(data_dir_error)?;
            let store = SqliteStore::open_file(&path, timeout, pool_size).await?;
            tracing::info!(path = %path.display(), "store: embedded SQLite (set DATABASE_URL for PostgreSQL)");
            Arc::new(store)
        }
    };
    Ok((store, pool_size))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
