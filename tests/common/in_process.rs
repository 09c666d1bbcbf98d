//! The server started in this process, as a library user starts it: a [`Config`] from flags,
//! [`Server::bind`] on port 0, and [`Server::run_until`] a shutdown future. For tests where a
//! real process is not what is being tested; a process's logs, exit status and signals are
//! [`super::Instance`]'s.
//!
//! Two things are shared by every server in one test binary, whichever starts first: the
//! metrics recorder (only the first server has /metrics) and, under TEST_LOG, the log output.

use std::sync::{Arc, Once};

use rbac_server::config::Config;
use rbac_server::http::{self, Tokens};
use rbac_server::server::{Server, StartError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Api;
use super::process::configuration_flags;

/// One server running in this process, and its API ([`Api`]'s methods, one per endpoint).
/// Dropping it starts its shutdown, as [`InProcess::shut_down`] does.
pub struct InProcess {
    api: Api,
    /// Sending on it, or dropping it, resolves the future `run_until` serves until.
    shutdown: oneshot::Sender<()>,
    serving: JoinHandle<Result<(), StartError>>,
}

impl InProcess {
    /// Binds a server configured by `args` (flags, as on the command line) on a free loopback
    /// port and serves it in a task of its own. Without `--database-url` or `--data-dir`, its
    /// store is an embedded one in a new folder.
    pub async fn start(args: &[&str]) -> Self {
        let mut args = args.to_vec();
        let data_dir;
        if !flag_given(&args, "--database-url") && !flag_given(&args, "--data-dir") {
            data_dir = super::temp_dir("rbac-in-process");
            args.extend(["--data-dir", data_dir.to_str().expect("a UTF-8 temp dir")]);
        }
        let config = config(&args);
        let server_id = config.server_id();
        let token = config
            .admin_token
            .as_ref()
            .and_then(|tokens| tokens.0.first().cloned());
        let server = bind(config).await;
        let base = format!("http://{}", server.local_addr());
        let (shutdown, shutdown_requested) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.run_until(async {
            let _ = shutdown_requested.await;
        }));
        Self {
            api: Api::new(base, &server_id, token),
            shutdown,
            serving,
        }
    }

    /// Resolves the shutdown future; the handle finishes when `run_until` returns, once the
    /// requests in flight are answered.
    pub fn shut_down(self) -> JoinHandle<Result<(), StartError>> {
        let _ = self.shutdown.send(());
        self.serving
    }
}

impl std::ops::Deref for InProcess {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The whole API in this process, on an in-memory SQLite store and without a bus, for tests
/// that drive the router directly (`tower::ServiceExt::oneshot`) rather than a server: the
/// application a server binds, with `tokens` in place of the configured ones. The AuthZEN
/// endpoints at the root answer for the tenant `t`.
pub async fn in_process_api(server_id: &str, tokens: Tokens) -> axum::Router {
    // One connection: each connection to `sqlite::memory:` is a database of its own.
    let config = config(&[
        "--server-id",
        server_id,
        "--database-url",
        "sqlite::memory:",
        "--database-pool-size",
        "1",
        "--cache-memory-mb",
        "64",
        "--authzen-default-tenant",
        "t",
    ]);
    let request_timeout = config.request_timeout();
    let policy_max_bytes = config.policy_max_bytes as usize;
    let authzen = http::AuthzenSettings {
        public_url: config.public_url.clone(),
        default_tenant: config.authzen_default_tenant.clone(),
    };
    let server = bind(config).await;
    http::router(Arc::new(http::Services {
        app: server.app().clone(),
        tokens: Arc::new(tokens),
        metrics: None,
        request_timeout,
        policy_max_bytes,
        watching: http::Watching::new(16, Default::default()),
        authzen,
    }))
}

/// The configuration of `args` on a free loopback port, as the binary reads its flags. Clap
/// reads the environment as well: a configuration variable of this test process's that no
/// flag in `args` overrides fails the test, rather than configure the server unseen.
fn config(args: &[&str]) -> Config {
    let mut full = vec!["rbac-server", "--port", "0", "--host", "127.0.0.1"];
    full.extend_from_slice(args);
    for (variable, flag) in configuration_flags() {
        if std::env::var_os(&variable).is_some() && !flag_given(&full, &flag) {
            panic!(
                "{variable} is set in the tests' environment and would configure an in-process \
                 server: unset it, or give the server {flag}"
            );
        }
    }
    Config::from_args(full).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn flag_given(args: &[&str], flag: &str) -> bool {
    args.iter()
        .any(|a| *a == flag || a.strip_prefix(flag).is_some_and(|v| v.starts_with('=')))
}

/// [`Server::bind`], logging to the test's output under TEST_LOG.
async fn bind(config: Config) -> Server {
    static LOGS: Once = Once::new();
    if std::env::var_os("TEST_LOG").is_some() {
        LOGS.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,rbac_server=debug,sqlx=warn")
                .with_test_writer()
                .try_init();
        });
    }
    let server_id = config.server_id();
    Server::bind(config)
        .await
        .unwrap_or_else(|e| panic!("{server_id} did not start: {e}"))
}
