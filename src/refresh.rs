//! Keeping this instance's copies (tenants and API keys) in step with the store: the reaction
//! to what the bus hears, and the resync that catches whatever messages never arrived.
//!
//! The path of a change made on another instance runs one way: [`crate::bus::redis`] turns a
//! message into a [`Heard`] and sends it into the inbox; [`run`] takes it out and reacts here,
//! through the cache ([`crate::cache`]) and the key ring ([`crate::keys::ring`]), which read the
//! store. Nothing here is called back by the bus.
//!
//! A message is only a hint. An instance that holds the tenant at an older revision reloads it
//! from the store; nothing in a message is ever applied as policy, so a forged, duplicated or
//! reordered message can cost a reload but never change an answer away from the store's. A
//! message about a tenant this instance has not heard of makes it ask the store whether the
//! tenant exists. A key message reloads the keys in force.
//!
//! A resync asks the store which tenants changed since the previous one, so that its cost
//! follows the changes, not the tenants held: an instance holding 100,000 quiet tenants
//! sweeps with one small query.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus::{Heard, Identity, Notice, Origin};
use crate::cache::TenantCache;
use crate::keys::ring::KeyRing;
use crate::policy::TenantName;
use crate::stats::{Stats, bump};
use crate::store::{Changed, Position, Store, StoreError, TenantRevision};

/// How often the sweep applies changelog retention.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Tenants asked about in one query when a resync compares every tenant held.
const WHOLE_RESYNC_BATCH: usize = 10_000;

/// What keeps this instance in step: the copies it refreshes and where its next resync starts.
pub struct Refresher {
    /// Who this instance is, to tell its own messages.
    identity: Identity,
    store: Arc<dyn Store>,
    cache: Arc<TenantCache>,
    keys: Arc<KeyRing>,
    stats: Arc<Stats>,
    /// Where the next resync starts; also keeps resyncs from running two at once.
    resync_from: tokio::sync::Mutex<ResyncPoint>,
    /// Whether a resync waits for the one running, which other requests fold into.
    resync_queued: AtomicBool,
    /// Keeps key reloads asked for by messages to one at a time.
    keys_reloading: tokio::sync::Mutex<()>,
    /// Whether a key reload waits for the one running, which other messages fold into.
    keys_queued: AtomicBool,
    /// When this instance last resynced with the store successfully (at start-up: when it
    /// started, holding nothing yet). A std mutex: held for a read or a write of the instant,
    /// never across an await.
    last_resync: Mutex<Instant>,
}

/// Where the next resync starts.
#[derive(Debug, Default)]
struct ResyncPoint {
    /// The store's position as of the last resync (or the start-up list of tenants).
    position: Position,
    /// Held tenants that were behind at the last resync and failed to catch up: asked about
    /// again, since the store's changes since `position` will not name them.
    retry: BTreeSet<TenantName>,
}

impl Refresher {
    pub fn new(
        identity: Identity,
        store: Arc<dyn Store>,
        cache: Arc<TenantCache>,
        keys: Arc<KeyRing>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            identity,
            store,
            cache,
            keys,
            stats,
            resync_from: tokio::sync::Mutex::default(),
            resync_queued: AtomicBool::new(false),
            keys_reloading: tokio::sync::Mutex::new(()),
            keys_queued: AtomicBool::new(false),
            last_resync: Mutex::new(Instant::now()),
        }
    }

    /// Learns which tenants exist, before serving: until then, every tenant would read as
    /// never written. The next resync asks the store only for what changed after this.
    pub async fn load_tenants(&self) -> Result<usize, StoreError> {
        let mut resync_from = self.resync_from.lock().await;
        let (listed, position) = self.list_tenants().await?;
        resync_from.position = position;
        Ok(listed)
    }

    /// Makes every tenant of the store known; returns how many there are, and the position
    /// the listing was read at.
    async fn list_tenants(&self) -> Result<(usize, Position), StoreError> {
        let mut listed = 0;
        let mut batch = Vec::with_capacity(1024);
        let directory = &self.cache.directory;
        let position = self
            .store
            .tenants(&mut |tenant| {
                listed += 1;
                batch.push(tenant);
                if batch.len() == batch.capacity() {
                    directory.extend(batch.drain(..));
                }
            })
            .await?;
        directory.extend(batch);
        Ok((listed, position))
    }

    /// How long ago the last successful resync was.
    pub fn since_last_resync(&self) -> Duration {
        self.last_resync
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    fn resynced(&self) {
        *self
            .last_resync
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Replaces the keys in force with the store's.
    /// A failure is counted and logged here, whoever asked: the keys held stay in force, and
    /// the next sweep tries again.
    pub async fn reload_keys(&self, reason: &'static str) {
        match self.keys.reload(async || self.store.keys().await).await {
            Ok(count) => {
                bump(&self.stats.key_reloads);
                tracing::debug!(count, reason, "API keys reloaded");
            }
            Err(e) => {
                bump(&self.stats.key_reload_failures);
                tracing::warn!(reason, error = %crate::error_chain(&e),
                    "API keys could not be reloaded; the keys held stay in force until the next try");
            }
        }
    }

    /// Reacts to one thing the bus heard. Never waits: a needed reload runs in its own task.
    fn on_heard(self: &Arc<Self>, heard: Heard) {
        match heard {
            Heard::Subscribed => {
                // Whatever was published while unsubscribed is lost: only the store can say.
                tokio::spawn(self.clone().resync("bus connected"));
            }
            Heard::Notice(notice) => self.on_notice(notice),
        }
    }

    fn on_notice(self: &Arc<Self>, notice: Notice) {
        match notice.sender().origin(&self.identity) {
            Origin::Own => {
                bump(&self.stats.own_messages_ignored);
                tracing::debug!(?notice, "ignoring own message");
                return;
            }
            Origin::SharedServerId => {
                if self.stats.server_id_clashes.get() == 0 {
                    tracing::warn!(
                        server_id = self.identity.server_id.as_str(),
                        from = %notice.sender(),
                        "another instance publishes with this instance's SERVER_ID: give each \
                         instance its own; their messages are acted on meanwhile"
                    );
                }
                bump(&self.stats.server_id_clashes);
            }
            Origin::Other => {}
        }
        match notice {
            // Key messages carry no revision to compare: every one reloads, and a burst folds
            // into one reload.
            Notice::Keys { .. } => self.reload_keys_soon(),
            Notice::Tenant {
                tenant,
                revision,
                from,
            } => self.on_tenant(tenant, revision, &from),
        }
    }

    fn on_tenant(self: &Arc<Self>, tenant: TenantName, revision: u64, from: &crate::bus::Sender) {
        if !self.cache.is_behind(tenant.as_str(), revision) {
            // Not held here: created on another instance, perhaps, or followed by a watch
            // stream, which hears of it once the store confirms it. Worth a look in the store.
            if revision > 0
                && (!self.cache.directory.contains(tenant.as_str())
                    || self.cache.directory.watched()
                        && self.cache.held_revision(tenant.as_str()).is_none())
            {
                self.cache.directory.discover(&tenant);
            }
            bump(&self.stats.stale_messages_ignored);
            return;
        }
        if !self.cache.schedule(tenant.as_str(), revision) {
            bump(&self.stats.coalesced_messages);
            return;
        }
        tracing::debug!(%tenant, revision, %from, "tenant behind; refreshing");
        let this = self.clone();
        tokio::spawn(async move {
            match this.cache.run_scheduled(&tenant).await {
                Ok(true) => bump(&this.stats.refreshes_applied),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(%tenant, error = %crate::error_chain(&e),
                        "refresh failed; the next sweep retries");
                }
            }
        });
    }

    /// Writes when keys were last presented here, for those presented since the last time:
    /// at each sweep and at shutdown, never on a request's path. A failure is retried at the
    /// next sweep.
    pub async fn record_key_uses(&self) {
        let uses = self.keys.uses_to_record();
        if uses.is_empty() {
            return;
        }
        match self.store.record_key_uses(&uses).await {
            Ok(()) => self.keys.recorded(&uses),
            Err(e) => tracing::warn!(keys = uses.len(), error = %crate::error_chain(&e),
                "the last use of API keys could not be recorded; the next sweep tries again"),
        }
    }

    /// Reloads the keys in a task of its own. A message that arrives while a reload waits to
    /// start needs no other: that reload reads the store after the message.
    fn reload_keys_soon(self: &Arc<Self>) {
        if self.keys_queued.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let _one_at_a_time = this.keys_reloading.lock().await;
            this.keys_queued.store(false, Ordering::SeqCst);
            this.reload_keys("message").await;
        });
    }

    /// Reloads the API keys, then asks the store which tenants changed since the last resync
    /// and catches up those held here that are behind; tenants created elsewhere become known.
    ///
    /// One resync runs at a time; those asked for while it runs (a sweep and a reconnection,
    /// or a flapping connection's many) fold into one more after it.
    pub async fn resync(self: Arc<Self>, reason: &'static str) {
        if self.resync_queued.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut from = self.resync_from.lock().await;
        self.resync_queued.store(false, Ordering::SeqCst);
        self.reload_keys(reason).await;
        let asked = Instant::now();
        let changed = self.store.changed_since(from.position).await;
        let retried = if from.retry.is_empty() {
            Ok(Default::default())
        } else {
            let retry: Vec<TenantName> = from.retry.iter().cloned().collect();
            self.store.revisions(&retry).await
        };
        metrics::histogram!("rbac_resync_query_seconds").record(asked.elapsed().as_secs_f64());
        let changed = match (changed, retried) {
            // A position that went back is a store that went back in time (a restored
            // backup): what it says changed since the old position is no guide.
            (Ok(Some(changed)), Ok(retried)) if changed.position >= from.position => {
                Ok((changed, retried))
            }
            (Ok(_), Ok(_)) => {
                bump(&self.stats.full_resyncs);
                tracing::warn!(
                    reason,
                    "the store cannot say what changed since the last resync; comparing every tenant held"
                );
                self.resync_whole()
                    .await
                    .map(|changed| (changed, Default::default()))
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let (changed, retried) = match changed {
            Ok(changed) => changed,
            Err(e) => {
                bump(&self.stats.sweep_failures);
                tracing::warn!(reason, error = %crate::error_chain(&e), "resync could not read revisions");
                return;
            }
        };
        let mut behind = 0u64;
        let mut lag_max = 0u64;
        let mut failed = BTreeSet::new();
        for TenantRevision { tenant, revision } in changed.tenants.into_iter().chain(retried) {
            self.cache.directory.learn(&tenant, revision);
            // Behind counts a tenant whose first load is under way: that load may have read
            // the store before this change, and no later resync will name the tenant again.
            if !self.cache.is_behind(tenant.as_str(), revision) {
                continue;
            }
            behind += 1;
            let held = self.cache.held_revision(tenant.as_str());
            if let Some(held) = held {
                lag_max = lag_max.max(revision.saturating_sub(held));
            }
            tracing::info!(%tenant, held, revision, reason, "tenant behind the store");
            if !self.catch_up(&tenant, revision, reason).await {
                failed.insert(tenant);
            }
        }
        metrics::gauge!("rbac_tenants_behind").set(behind as f64);
        metrics::gauge!("rbac_tenant_revision_lag_max").set(lag_max as f64);
        from.position = changed.position;
        from.retry = failed;
        self.resynced();
    }

    /// What a resync compares when the store cannot say what changed since its position:
    /// every tenant listed afresh (made known), and every tenant held with its revision in the
    /// store, as at start-up. Costs in proportion to the tenants; only after retention outran
    /// the sweep or the store went back in time.
    async fn resync_whole(&self) -> Result<Changed, StoreError> {
        let (_, position) = self.list_tenants().await?;
        let held = self.cache.held_tenants();
        let mut tenants = Vec::with_capacity(held.len());
        for chunk in held.chunks(WHOLE_RESYNC_BATCH) {
            tenants.extend(self.store.revisions(chunk).await?);
        }
        Ok(Changed { tenants, position })
    }

    /// Catches a held tenant up; false if that failed (the next resync tries again).
    async fn catch_up(&self, tenant: &TenantName, revision: u64, reason: &'static str) -> bool {
        match self.cache.catch_up(tenant, revision).await {
            Ok(moved) => {
                if moved {
                    bump(&self.stats.refreshes_applied);
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
}

/// Reacts to everything the bus hears, in order, until shutdown. Without a bus the inbox has
/// no sender, and this only waits for shutdown.
pub async fn run(
    refresher: Arc<Refresher>,
    mut inbox: mpsc::Receiver<Heard>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            heard = inbox.recv() => match heard {
                Some(heard) => refresher.on_heard(heard),
                None => break,
            },
            _ = shutdown.cancelled() => return,
        }
    }
    shutdown.cancelled().await;
}

/// Runs [`Refresher::resync`] every `interval` until shutdown: the bound on staleness when
/// messages are lost while the bus looks healthy, or when there is no bus at all. Also
/// applies changelog retention, at most once per [`PRUNE_EVERY`].
pub async fn sweep(
    refresher: Arc<Refresher>,
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
            _ = shutdown.cancelled() => {
                refresher.record_key_uses().await;
                return;
            }
        }
        bump(&refresher.stats.sweeps);
        refresher.clone().resync("sweep").await;
        refresher.record_key_uses().await;
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            match refresher.store.prune_changelog(retention).await {
                Ok(0) => {}
                Ok(count) => {
                    refresher.stats.changelog_pruned.add(count);
                    tracing::info!(count, "changelog entries past retention deleted");
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "changelog retention failed")
                }
            }
        }
    }
}
