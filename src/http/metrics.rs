//! GET /metrics in the Prometheus text format, and the per-request measurements behind it.
//!
//! The `metrics` facade records; `metrics-exporter-prometheus` formats. Requests are counted
//! and timed per route and status by [`super::request::RequestLayer`]; the instance's counters (cache, bus,
//! refreshes) are read from [`crate::stats`] at scrape time, so they cost nothing per request.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::responses::{NotFound, Unavailable};
use super::state::AppState;

/// Request latency buckets, in seconds: a cached check answers in tens of microseconds, a
/// write in about a millisecond, a request that hits a store timeout in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// How often the latency samples are folded into the histograms. The exporter keeps every
/// sample until then: without this, an instance that nobody scrapes grows with every request
/// it serves (some 20 bytes each, over a gigabyte an hour at full load).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Folds the pending samples in every [`UPKEEP_INTERVAL`] until `stopping`.
pub async fn upkeep(handle: PrometheusHandle, stopping: CancellationToken) {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = ticks.tick() => handle.run_upkeep(),
        }
    }
}

/// Installs the process-wide recorder and returns the handle that renders it; `None` when a
/// recorder is installed already (only one per process).
pub fn install() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .ok()?
        .install_recorder()
        .ok()?;
    metrics::describe_histogram!(
        "rbac_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from the request's arrival to its response, by route and status; its _count is the number of requests."
    );
    metrics::describe_gauge!(
        "rbac_tenant_revision_lag_max",
        "The most revisions a held tenant was behind the store at the last resync."
    );
    metrics::describe_gauge!(
        "rbac_tenants_behind",
        "Held tenants that were behind the store at the last resync."
    );
    metrics::describe_histogram!(
        "rbac_resync_query_seconds",
        metrics::Unit::Seconds,
        "Time a resync spent asking the store which tenants changed since the previous one."
    );
    Some(handle)
}

/// The statuses the API answers with; anything else is "other".
const STATUSES: &[&str] = &[
    "200", "201", "400", "401", "403", "404", "405", "409", "413", "415", "500", "503", "other",
];

/// The label a request that matched no route is recorded under.
pub const UNMATCHED: &str = "unmatched";

/// The labels requests are recorded under: every route's pattern (never the raw path, so the
/// labels stay few), then [`UNMATCHED`]; and the latency histogram of each (route, status).
///
/// A histogram is made on first use and kept: looking a metric up by name and labels on every
/// request hashed and locked, and cost the check a tenth of its throughput. Its `_count` is
/// the number of requests: a separate counter would only add a second contended write per
/// request.
pub struct RouteLabels {
    routes: Vec<String>,
    histograms: Vec<OnceLock<metrics::Histogram>>,
}

impl RouteLabels {
    /// The labels of a router's routes. Kept for the life of the process, as the recorder
    /// they feed is: a router is made once per process, a few times in a test.
    pub fn new(routes: impl IntoIterator<Item = String>) -> &'static Self {
        let mut routes: Vec<String> = routes.into_iter().collect();
        routes.push(UNMATCHED.to_owned());
        let histograms = (0..routes.len() * STATUSES.len())
            .map(|_| OnceLock::new())
            .collect();
        Box::leak(Box::new(Self { routes, histograms }))
    }

    /// The index of the route whose pattern is `matched`, or of [`UNMATCHED`].
    pub fn index(&self, matched: Option<&str>) -> usize {
        matched
            .and_then(|matched| self.routes.iter().position(|r| r == matched))
            .unwrap_or(self.routes.len() - 1)
    }

    pub fn name(&self, route: usize) -> &str {
        &self.routes[route]
    }

    /// Records one answered request; called by [`super::request::RequestLayer`].
    pub fn record(&self, route: usize, status: StatusCode, elapsed: Duration) {
        let status = STATUSES
            .iter()
            .position(|s| *s == status.as_str())
            .unwrap_or(STATUSES.len() - 1);
        self.histograms[route * STATUSES.len() + status]
            .get_or_init(|| {
                let labels = [
                    ("route", self.routes[route].clone()),
                    ("status", STATUSES[status].to_owned()),
                ];
                metrics::histogram!("rbac_http_request_duration_seconds", &labels)
            })
            .record(elapsed.as_secs_f64());
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "the same counters and request metrics, in the Prometheus text format",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The Prometheus text exposition format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(handle) = &state.metrics else {
        return Err(ApiError::NotFound(
            "metrics are not recorded by this server".into(),
        ));
    };
    state.app.stats.each(|name, value| {
        metrics::counter!(format!("rbac_{name}_total")).absolute(value);
    });
    let bus = state.app.bus.state();
    metrics::gauge!("rbac_bus_connected")
        .set(f64::from(u8::from(bus == crate::bus::BusState::Connected)));
    let cache = &state.app.cache;
    metrics::gauge!("rbac_tenants_cached").set(cache.held_count() as f64);
    metrics::gauge!("rbac_tenants_known").set(cache.directory.len() as f64);
    let (held, budget) = cache.memory();
    metrics::gauge!("rbac_cache_bytes").set(held as f64);
    metrics::gauge!("rbac_cache_budget_bytes").set(budget as f64);
    handle.run_upkeep();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}
