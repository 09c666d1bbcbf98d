//! Start-up and shutdown: connect the store, start the bus and the sweep, serve HTTP until a
//! signal, then drain.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{App, Timeouts};
use crate::bus::{self, Bus};
use crate::cache;
use crate::config::{Config, Database};
use crate::http::{self, Tokens};
use crate::redact::redact_url;
use crate::stats::Stats;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{OpenError, Store, StoreError};
use crate::sync;

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
    Redis(#[from] redis::RedisError),
    #[error("cannot list the tenants in the database: {}", crate::error_chain(.0))]
    Tenants(#[source] StoreError),
}

/// Runs the server until `shutdown` resolves (a signal, in the binary).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let server_id = config.server_id();
    let stats = Arc::new(Stats::default());
    let store = open_store(&config).await?;
    let stopping = CancellationToken::new();
    let (bus, link) = match &config.redis_url {
        Some(_) => {
            let (bus, link) = Bus::enabled(stats.clone());
            (bus, Some(link))
        }
        None => {
            tracing::info!("REDIS_URL is not set: no bus, this instance runs alone");
            (Bus::disabled(stats.clone()), None)
        }
    };
    let cache_budget = config.cache_budget();
    let app = Arc::new(App::new(
        server_id.clone(),
        store.clone(),
        bus,
        stats,
        Timeouts {
            store: config.store_timeout(),
            resync_interval: config.resync_interval(),
        },
        cache_budget,
    ));
    let tenants = app.load_tenants().await.map_err(StartError::Tenants)?;
    tracing::info!(
        tenants,
        cache_budget_mib = cache_budget >> 20,
        "tenants listed"
    );

    let address = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|source| StartError::Listen {
            address: address.clone(),
            source,
        })?;

    // Before serving, so that a key works from the first request; if the store fails now,
    // the sweep tries again and key-authenticated requests get 503 meanwhile.
    app.reload_keys("start-up").await;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(sync::key_reloads(
        app.clone(),
        stopping.clone(),
    )));
    if let (Some(link), Some(url)) = (link, &config.redis_url) {
        tasks.extend(bus::redis::spawn(
            app.clone(),
            link,
            url,
            config.redis_channel.clone(),
            stopping.clone(),
        )?);
    }
    tasks.push(tokio::spawn(cache::evictions(
        app.cache.clone(),
        stopping.clone(),
    )));
    tasks.push(tokio::spawn(sync::sweep(
        app.clone(),
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
    let state = Arc::new(http::Services {
        app,
        tokens: Arc::new(Tokens::new(
            config.admin_token.clone().map(|t| t.0).unwrap_or_default(),
            config.check_token.clone().map(|t| t.0).unwrap_or_default(),
        )),
        metrics,
        request_timeout: config.request_timeout(),
    });
    let local = listener.local_addr().map_err(|source| StartError::Listen {
        address: address.clone(),
        source,
    })?;
    tracing::info!(addr = %local, server_id, "listening");

    let draining = CancellationToken::new();
    let signalled = draining.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        signalled.cancel();
    });
    let serve = axum::serve(listener, http::router(state))
        .with_graceful_shutdown(draining.clone().cancelled_owned());
    let drain_timeout = config.shutdown_timeout();
    tokio::select! {
        result = serve => {
            if let Err(e) = result {
                tracing::error!(error = %e, "server error");
            }
        }
        _ = async { draining.cancelled().await; tokio::time::sleep(drain_timeout).await } => {
            tracing::warn!(timeout_secs = drain_timeout.as_secs(), "drain timed out; closing remaining connections");
        }
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

async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    let timeout = config.store_timeout();
    Ok(match config.database() {
        Database::Postgres(url) => {
            let store = PgStore::connect(&url, timeout).await?;
            tracing::info!(url = %redact_url(&url), "store: PostgreSQL");
            Arc::new(store)
        }
        Database::Sqlite(url) => {
            let store = SqliteStore::open_url(&url, timeout).await?;
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
            let store = SqliteStore::open_file(&path, timeout).await?;
            tracing::info!(path = %path.display(), "store: embedded SQLite (set DATABASE_URL for PostgreSQL)");
            Arc::new(store)
        }
    })
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
