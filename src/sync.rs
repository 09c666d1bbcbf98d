//! Keeping every instance's cache in step with the store: reactions to bus messages, and the
//! resync that catches whatever messages never arrived.
//!
//! A message is only a hint. An instance that holds the tenant at an older revision reloads it
//! from the store; nothing in a message is ever applied as policy, so a forged, duplicated or
//! reordered message can cost a reload but never change an answer away from the store's. A
//! message about a tenant this instance has not heard of makes it ask the store whether the
//! tenant exists.
//!
//! A resync asks the store which tenants changed since the previous one, so that its cost
//! follows the changes, not the tenants held: an instance holding 100,000 quiet tenants
//! sweeps with one small query.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::bus::{Message, Notice, Origin};
use crate::policy::TenantName;
use crate::stats::bump;
use crate::store::{Changed, Position, StoreError, TenantRevision};

/// How often the sweep applies changelog retention.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Tenants asked about in one query when a resync compares every tenant held.
const WHOLE_RESYNC_BATCH: usize = 10_000;

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
    match notice.sender().origin(&app.server_id) {
        Origin::Own => {
            bump(&app.stats.own_messages_ignored);
            tracing::debug!(?notice, "ignoring own message");
            return;
        }
        Origin::SharedServerId => {
            if app.stats.server_id_clashes.get() == 0 {
                tracing::warn!(
                    server_id = app.server_id.as_str(),
                    from = %notice.sender(),
                    "another instance publishes with this instance's SERVER_ID: give each \
                     instance its own; their messages are acted on meanwhile"
                );
            }
            bump(&app.stats.server_id_clashes);
        }
        Origin::Other => {}
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
            from,
        } => (tenant, revision, from),
    };
    if !app.cache.is_behind(tenant.as_str(), revision) {
        if revision > 0 && !app.cache.directory.contains(tenant.as_str()) {
            // Created on another instance, perhaps: worth a look in the store.
            app.cache.directory.discover(&tenant);
        }
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

/// Where the next resync starts.
#[derive(Debug, Default)]
pub struct ResyncPoint {
    /// The store's position as of the last resync (or the start-up list of tenants).
    pub position: Position,
    /// Held tenants that were behind at the last resync and failed to catch up: asked about
    /// again, since the store's changes since `position` will not name them.
    pub retry: BTreeSet<TenantName>,
}

/// Reloads the API keys, then asks the store which tenants changed since the last resync and
/// catches up those held here that are behind; tenants created elsewhere become known.
///
/// One resync runs at a time; those asked for while it runs (a sweep and a reconnection, or a
/// flapping connection's many) fold into one more after it.
pub async fn resync(app: Arc<App>, reason: &'static str) {
    if app.resync_queued.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut from = app.resync_from.lock().await;
    app.resync_queued.store(false, Ordering::SeqCst);
    app.reload_keys(reason).await;
    let asked = Instant::now();
    let changed = app.store.changed_since(from.position).await;
    let retried = if from.retry.is_empty() {
        Ok(Default::default())
    } else {
        let retry: Vec<TenantName> = from.retry.iter().cloned().collect();
        app.store.revisions(&retry).await
    };
    metrics::histogram!("rbac_resync_query_seconds").record(asked.elapsed().as_secs_f64());
    let changed = match (changed, retried) {
        // A position that went back is a store that went back in time (a restored backup):
        // what it says changed since the old position is no guide.
        (Ok(Some(changed)), Ok(retried)) if changed.position >= from.position => {
            Ok((changed, retried))
        }
        (Ok(_), Ok(_)) => {
            bump(&app.stats.full_resyncs);
            tracing::warn!(
                reason,
                "the store cannot say what changed since the last resync; comparing every tenant held"
            );
            resync_whole(&app)
                .await
                .map(|changed| (changed, Default::default()))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let (changed, retried) = match changed {
        Ok(changed) => changed,
        Err(e) => {
            bump(&app.stats.sweep_failures);
            tracing::warn!(reason, error = %crate::error_chain(&e), "resync could not read revisions");
            return;
        }
    };
    let mut behind = 0u64;
    let mut lag_max = 0u64;
    let mut failed = BTreeSet::new();
    for TenantRevision { tenant, revision } in changed.tenants.into_iter().chain(retried) {
        app.cache.directory.insert(&tenant);
        // Behind counts a tenant whose first load is under way: that load may have read the
        // store before this change, and no later resync will name the tenant again.
        if !app.cache.is_behind(tenant.as_str(), revision) {
            continue;
        }
        behind += 1;
        let held = app.cache.held_revision(tenant.as_str());
        if let Some(held) = held {
            lag_max = lag_max.max(revision.saturating_sub(held));
        }
        tracing::info!(%tenant, held, revision, reason, "tenant behind the store");
        if !catch_up(&app, &tenant, revision, reason).await {
            failed.insert(tenant);
        }
    }
    metrics::gauge!("rbac_tenants_behind").set(behind as f64);
    metrics::gauge!("rbac_tenant_revision_lag_max").set(lag_max as f64);
    from.position = changed.position;
    from.retry = failed;
    app.resynced();
}

/// What a resync compares when the store cannot say what changed since its position: every
/// tenant listed afresh (made known), and every tenant held with its revision in the store,
/// as at start-up. Costs in proportion to the tenants; only after retention outran the sweep
/// or the store went back in time.
async fn resync_whole(app: &App) -> Result<Changed, StoreError> {
    let (_, position) = app.list_tenants().await?;
    let held = app.cache.held_tenants();
    let mut tenants = Vec::with_capacity(held.len());
    for chunk in held.chunks(WHOLE_RESYNC_BATCH) {
        tenants.extend(app.store.revisions(chunk).await?);
    }
    Ok(Changed { tenants, position })
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

/// Catches a held tenant up; false if that failed (the next resync tries again).
async fn catch_up(app: &App, tenant: &TenantName, revision: u64, reason: &'static str) -> bool {
    match app.cache.catch_up(tenant, revision).await {
        Ok(moved) => {
            if moved {
                bump(&app.stats.refreshes_applied);
            }
            true
        }
        Err(e) => {
            tracing::warn!(%tenant, revision, reason, error = %crate::error_chain(&e),
                "refresh failed; the next sweep retries");
            false
        }
    }
}
