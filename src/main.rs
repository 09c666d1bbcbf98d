use std::process::ExitCode;

use rbac_server::config::Config;
use rbac_server::{server, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("rbac-server: {message}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    tracing::info!(?config, "starting");
    match server::run(config, server::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            eprintln!("rbac-server: {e}");
            ExitCode::FAILURE
        }
    }
}
