//! Keeping every instance's cache in step with the store: reactions to bus messages, and the
//! resync that catches whatever messages never arrived.
//!
//! A message is only a hint. An instance that holds the tenant at an older revision reloads it
//! from the store; nothing in a message is ever applied as policy, so a forged, duplicated or
//! reordered message can cost a reload but never change an answer away from the store's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::bus::{Message, Notice};
use crate::policy::TenantName;
use crate::stats::bump;

/// How often the sweep applies changelog retention.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Handles one payload from the channel. Never blocks the subscriber: a needed reload runs in
/// its own task.
pub fn on_message(app: &Arc<App>, payload: &[u8]) {
    bump(&app.stats.messages_received);
    let notice = match Message::parse(payload) {
        Ok(notice) => notice,
        Err(e) => {
            bump(&app.stats.malformed_messages);
            tracing::warn!(error = %e, bytes = payload.len(), "dropping malformed bus message");
            return;
        }
    };
    if notice.server_id() == app.server_id {
        bump(&app.stats.own_messages_ignored);
        tracing::debug!(?notice, "ignoring own message");
        return;
    }
    let (tenant, revision, from) = match notice {
        Notice::Keys { .. } => {
            // Key messages carry no revision to compare: every one reloads, and the
            // reloading task folds a burst into one reload.
            app.keys.request_reload();
            return;
        }
        Notice::Tenant {
            tenant,
            revision,
            server_id,
        } => (tenant, revision, server_id),
    };
    if !app.cache.is_behind(tenant.as_str(), revision) {
        bump(&app.stats.stale_messages_ignored);
        return;
    }
    if !app.cache.schedule(tenant.as_str(), revision) {
        bump(&app.stats.coalesced_messages);
        return;
    }
    tracing::debug!(%tenant, revision, %from, "tenant behind; refreshing");
    let app = app.clone();
    tokio::spawn(async move {
        match app.cache.run_scheduled(&tenant).await {
            Ok(true) => bump(&app.stats.refreshes_applied),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%tenant, error = %crate::error_chain(&e),
                    "refresh failed; the next sweep retries");
            }
        }
    });
}

/// Reloads the API keys, then compares every cached tenant's revision with the store's in one
/// query and refreshes those behind.
pub async fn resync(app: Arc<App>, reason: &'static str) {
    app.reload_keys(reason).await;
    let held = app.cache.held();
    if held.is_empty() {
        app.resynced();
        return;
    }
    let tenants: Vec<TenantName> = held.iter().map(|(tenant, _)| tenant.clone()).collect();
    let current = match app.store.revisions(&tenants).await {
        Ok(current) => current,
        Err(e) => {
            bump(&app.stats.sweep_failures);
            tracing::warn!(reason, error = %crate::error_chain(&e), "resync could not read revisions");
            return;
        }
    };
    for (tenant, snapshot) in held {
        let revision = current.get(&tenant).copied().unwrap_or(0);
        let lag = revision.saturating_sub(snapshot.revision());
        metrics::gauge!("rbac_tenant_revision_lag", "tenant" => tenant.to_string()).set(lag as f64);
        if revision > snapshot.revision() {
            tracing::info!(%tenant, held = snapshot.revision(), revision, reason, "tenant behind the store");
            catch_up(&app, &tenant, revision, reason).await;
            if !app.cache.is_behind(tenant.as_str(), revision) {
                metrics::gauge!("rbac_tenant_revision_lag", "tenant" => tenant.to_string())
                    .set(0.0);
            }
        }
    }
    app.resynced();
}

/// Runs [`resync`] every `interval` until shutdown: the bound on staleness when messages are
/// lost while the bus looks healthy, or when there is no bus at all. Also applies changelog
/// retention, at most once per [`PRUNE_EVERY`].
pub async fn sweep(
    app: Arc<App>,
    interval: Duration,
    retention: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut pruned_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        bump(&app.stats.sweeps);
        resync(app.clone(), "sweep").await;
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            match app.store.prune_changelog(retention).await {
                Ok(0) => {}
                Ok(count) => {
                    app.stats.changelog_pruned.add(count);
                    tracing::info!(count, "changelog entries past retention deleted");
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "changelog retention failed")
                }
            }
        }
    }
}

/// Reloads the keys whenever a key message asks, until shutdown.
pub async fn key_reloads(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = app.keys.reload_requested() => {}
            _ = shutdown.cancelled() => return,
        }
        app.reload_keys("message").await;
    }
}

async fn catch_up(app: &App, tenant: &TenantName, revision: u64, reason: &'static str) {
    match app.cache.catch_up(tenant, revision).await {
        Ok(true) => bump(&app.stats.refreshes_applied),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(%tenant, revision, reason, error = %crate::error_chain(&e),
                "refresh failed; the next sweep retries");
        }
    }
}
