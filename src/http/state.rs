//! What every handler is given.

use std::sync::Arc;
use std::time::Duration;

use super::tokens::Tokens;
use super::watch::Watching;
use crate::app::App;

/// What every handler gets. axum clones it for every request, more than once: behind one
/// pointer, that is one shared counter to touch rather than one per field.
pub type AppState = Arc<Services>;

/// The parts of [`AppState`].
pub struct Services {
    pub app: Arc<App>,
    pub tokens: Arc<Tokens>,
    /// Renders /metrics; without it requests are not measured and /metrics is 404.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// How long a request may take before it is answered 503 and abandoned.
    pub request_timeout: Duration,
    /// The largest policy document a request may send, in bytes.
    pub policy_max_bytes: usize,
    /// The watch streams: how many may be open, and what ends them.
    pub watching: Watching,
    /// How the AuthZEN endpoints present themselves and which tenant the root ones serve.
    pub authzen: super::authzen::Settings,
}
