//! The per-tenant cache: an immutable snapshot per tenant held, swapped whole.
//!
//! A check loads the current snapshot with one atomic read and never waits on a writer, a
//! refresh or any I/O. Updates of one tenant (its first load, refreshes, own writes) are
//! serialized by that tenant's update lock, and a snapshot is only ever replaced by one at the
//! same or a newer revision, so nothing rolls back, whatever order messages arrive in.
//!
//! A tenant a few revisions behind is refreshed incrementally: the store's changelog entries
//! since the revision held are applied to a copy of the snapshot, which then replaces it. A
//! tenant further behind, or whose changelog no longer reaches back, is reloaded whole.
//!
//! Only tenants that exist are held ([`directory`]): a read of any other name is answered as
//! the empty tenant at revision 0 and leaves nothing behind. The tenants held fit a memory
//! budget ([`memory`]): past it the least recently used are evicted, and the next read of one
//! loads it again like a first use.

pub mod directory;
pub mod memory;

use std::mem::size_of;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::policy::{Change, TenantName, TenantPolicy};
use crate::stats::{Stats, bump};
use crate::store::{Store, StoreError, WriteOutcome};
use directory::Directory;
use memory::Memory;

/// The most changes replayed in one incremental refresh; beyond that a full reload is cheaper
/// than fetching and applying them one by one.
pub const MAX_INCREMENTAL_CHANGES: usize = 1000;

/// How a snapshot came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the store on first use.
    Load,
    /// Reloaded whole from the store.
    Reload,
    /// The previous snapshot plus the store's changelog entries since.
    Incremental,
    /// The previous snapshot plus one of this instance's own writes.
    Write,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Load => "load",
            Origin::Reload => "reload",
            Origin::Incremental => "incremental",
            Origin::Write => "write",
        }
    }
}

/// A tenant's policy as this instance holds it.
#[derive(Debug)]
pub struct Snapshot {
    pub policy: TenantPolicy,
    /// When the tenant was first loaded into this instance.
    pub loaded_at: SystemTime,
    /// When this snapshot replaced the previous one.
    pub refreshed_at: SystemTime,
    pub origin: Origin,
}

impl Snapshot {
    pub fn revision(&self) -> u64 {
        self.policy.revision()
    }

    fn next(&self, policy: TenantPolicy, origin: Origin) -> Self {
        Self {
            policy,
            loaded_at: self.loaded_at,
            refreshed_at: SystemTime::now(),
            origin,
        }
    }
}

#[derive(Default)]
struct Slot {
    /// Set once, by the first load.
    current: OnceLock<ArcSwap<Snapshot>>,
    /// Held while the first load runs and while the snapshot is replaced. Concurrent first
    /// uses wait for the one load; replacements never race; and a write or message that
    /// arrives while the first load is in flight waits for it and then checks the revision it
    /// got, since that load's read of the store may predate the write.
    update: Mutex<()>,
    /// The newest revision that messages said exists, for [`TenantCache::schedule`].
    wanted: AtomicU64,
    /// Whether a scheduled refresh is waiting for the update lock. With the one holding the
    /// lock, a flood of messages costs at most one refresh in flight plus one queued.
    queued: AtomicBool,
    /// The recency clock's tick when the tenant was last read.
    last_used: AtomicU64,
    /// The estimated bytes of the snapshot held, as counted in the budget; set under the
    /// update lock.
    bytes: AtomicU64,
    /// Set under the update lock when the slot leaves the map: evicted, or given up by a first
    /// load that failed. Whoever still holds the slot may read its last snapshot (a valid
    /// answer as of a moment ago), but nothing replaces it any more: the next read loads the
    /// tenant afresh into a new slot.
    retired: AtomicBool,
}

impl Slot {
    /// Stamps the slot with the clock's tick, writing only when the stamp changes.
    fn touch(&self, now: u64) {
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// What one held tenant is, for /cache-stats.
#[derive(Debug, Clone)]
pub struct HeldTenant {
    pub tenant: TenantName,
    pub snapshot: Arc<Snapshot>,
    /// The bytes the budget counts for it.
    pub bytes: u64,
}

pub struct TenantCache {
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    /// Bounds a first load, lock wait included: a read that needs the store while it is down
    /// fails after this long rather than queueing behind other failing loads.
    timeout: Duration,
    /// The tenants held or being loaded. A concurrent map whose reads take no lock and write
    /// no shared memory: with every check of every tenant looking here, a lock's shared
    /// counter was a cache line that all cores fought over.
    slots: papaya::HashMap<TenantName, Arc<Slot>, foldhash::fast::RandomState>,
    /// The tenants that exist.
    pub directory: Directory,
    memory: Memory,
    /// What a tenant never written reads as.
    empty: Arc<Snapshot>,
}

impl TenantCache {
    /// A cache of the tenants of `store` that fits `budget` bytes (estimated).
    pub fn new(store: Arc<dyn Store>, stats: Arc<Stats>, timeout: Duration, budget: u64) -> Self {
        let now = SystemTime::now();
        Self {
            directory: Directory::new(store.clone(), stats.clone()),
            store,
            stats,
            timeout,
            // Resizes block the writers (first loads, which wait on the store anyway) until
            // done. The default, incremental, leaves a resize half done until later writes
            // finish it, and meanwhile every look-up probes both tables: with 100,000 tenants
            // loaded and none after, checks ran at a twentieth of their speed.
            slots: papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            memory: Memory::new(budget),
            empty: Arc::new(Snapshot {
                policy: TenantPolicy::default(),
                loaded_at: now,
                refreshed_at: now,
                origin: Origin::Load,
            }),
        }
    }

    /// What a tenant never written reads as: empty, at revision 0. Shared, never held.
    pub fn empty(&self) -> Arc<Snapshot> {
        self.empty.clone()
    }

    /// The tenant's snapshot, loading it from the store on first use; None if the tenant does
    /// not exist as far as this instance knows (it reads as [`TenantCache::empty`]).
    pub async fn get(&self, tenant: &TenantName) -> Result<Option<Arc<Snapshot>>, StoreError> {
        if let Some(snapshot) = self.hit(tenant.as_str()) {
            return Ok(Some(snapshot));
        }
        if !self.directory.contains(tenant.as_str()) {
            bump(&self.stats.unknown_tenant_reads);
            return Ok(None);
        }
        bump(&self.stats.misses);
        let loading = async {
            loop {
                if let Some(snapshot) = self.first_load(tenant, &self.slot(tenant)).await? {
                    return Ok(snapshot);
                }
                // The slot waited on was given up by a load that failed: wait on a new one.
            }
        };
        match tokio::time::timeout(self.timeout, loading).await {
            Ok(loaded) => loaded.map(Some),
            // The load may have finished while this waited behind a refresh of it.
            Err(_) => self
                .hit(tenant.as_str())
                .map(Some)
                .ok_or_else(|| StoreError::Unavailable("timed out loading the tenant".into())),
        }
    }

    /// The tenant's snapshot if it is held.
    fn hit(&self, tenant: &str) -> Option<Arc<Snapshot>> {
        let slot = self.existing_slot(tenant)?;
        let current = slot.current.get()?;
        bump(&self.stats.hits);
        slot.touch(self.memory.now());
        Some(current.load_full())
    }

    /// Loads the slot's tenant, unless someone did while this waited for the slot; None if the
    /// slot was given up meanwhile.
    async fn first_load(
        &self,
        tenant: &TenantName,
        slot: &Arc<Slot>,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let _update = slot.update.lock().await;
        if let Some(current) = slot.current.get() {
            // Loaded by the caller we waited for.
            return Ok(Some(current.load_full()));
        }
        if slot.retired.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // A load that fails, or is abandoned when its caller gives up, leaves no slot without
        // a snapshot behind: a store that does not answer must not make an instance keep a
        // slot for every tenant read meanwhile.
        let mut give_up = GiveUp {
            cache: self,
            tenant,
            slot,
            armed: true,
        };
        let policy = self.store.load(tenant).await?;
        give_up.armed = false;
        bump(&self.stats.loads);
        if self.directory.take_evicted(tenant.as_str()) {
            bump(&self.stats.reloads_after_eviction);
        }
        tracing::info!(%tenant, revision = policy.revision(), "tenant loaded");
        let now = SystemTime::now();
        let snapshot = Arc::new(Snapshot {
            policy,
            loaded_at: now,
            refreshed_at: now,
            origin: Origin::Load,
        });
        slot.last_used.store(self.memory.now(), Ordering::Relaxed);
        self.account(tenant, slot, &snapshot);
        // Under the update lock, nobody else can have set it.
        let _ = slot.current.set(ArcSwap::new(snapshot.clone()));
        self.directory.learn(tenant, snapshot.revision());
        Ok(Some(snapshot))
    }

    /// Takes `slot` out of the map, under its update lock: whoever still holds it may read its
    /// last snapshot, if it has one, but nothing changes it any more.
    fn retire(&self, tenant: &TenantName, slot: &Arc<Slot>) {
        slot.retired.store(true, Ordering::Relaxed);
        let _ = self
            .slots
            .pin()
            .remove_if(tenant, |_, held| Arc::ptr_eq(held, slot));
        self.memory.resize(slot.bytes.swap(0, Ordering::Relaxed), 0);
    }

    /// The revision held for `tenant`, if it is held.
    pub fn held_revision(&self, tenant: &str) -> Option<u64> {
        let slot = self.existing_slot(tenant)?;
        Some(slot.current.get()?.load().revision())
    }

    /// Whether the tenant is held (or being loaded) at a revision older than `revision`.
    /// Tenants not held are never behind: their first use loads them fresh.
    pub fn is_behind(&self, tenant: &str, revision: u64) -> bool {
        self.existing_slot(tenant).is_some_and(|slot| {
            slot.current
                .get()
                .is_none_or(|current| current.load().revision() < revision)
        })
    }

    /// Records that `revision` of a held tenant exists. Returns true when the caller should
    /// run [`TenantCache::run_scheduled`] for it; false when a refresh is already queued,
    /// which will catch up to this revision too.
    pub fn schedule(&self, tenant: &str, revision: u64) -> bool {
        let Some(slot) = self.existing_slot(tenant) else {
            return false;
        };
        slot.wanted.fetch_max(revision, Ordering::SeqCst);
        !slot.queued.swap(true, Ordering::SeqCst)
    }

    /// Catches a tenant up to the newest revision scheduled for it.
    pub async fn run_scheduled(&self, tenant: &TenantName) -> Result<bool, StoreError> {
        let Some(slot) = self.existing_slot(tenant.as_str()) else {
            return Ok(false);
        };
        let _update = slot.update.lock().await;
        // From here on this refresh is in flight; a newer message may queue one more.
        slot.queued.store(false, Ordering::SeqCst);
        let wanted = slot.wanted.load(Ordering::SeqCst);
        self.catch_up_locked(tenant, &slot, wanted).await
    }

    /// Brings a held tenant up to at least `revision` if it is behind, incrementally where it
    /// can. Returns whether the snapshot moved forward.
    pub async fn catch_up(&self, tenant: &TenantName, revision: u64) -> Result<bool, StoreError> {
        let Some(slot) = self.existing_slot(tenant.as_str()) else {
            return Ok(false);
        };
        if slot
            .current
            .get()
            .is_some_and(|current| current.load().revision() >= revision)
        {
            return Ok(false);
        }
        let _update = slot.update.lock().await;
        self.catch_up_locked(tenant, &slot, revision).await
    }

    async fn catch_up_locked(
        &self,
        tenant: &TenantName,
        slot: &Slot,
        revision: u64,
    ) -> Result<bool, StoreError> {
        let Some(current) = slot.current.get() else {
            // The first load failed; the next use loads afresh.
            return Ok(false);
        };
        if slot.retired.load(Ordering::Relaxed) {
            return Ok(false);
        }
        // Whoever held the lock before may have brought the tenant far enough already.
        let held = current.load_full();
        if held.revision() >= revision {
            return Ok(false);
        }
        let replay = match self
            .store
            .changes_since(tenant, held.revision(), MAX_INCREMENTAL_CHANGES)
            .await
        {
            Ok(replay) => replay,
            // A changelog this release cannot read (written by a newer one, or broken): the
            // tables still say what is true, so load them rather than keep answering from
            // what is held.
            Err(e @ StoreError::Internal(_)) => {
                tracing::warn!(%tenant, error = %crate::error_chain(&e),
                    "changelog unreadable; reloading whole");
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(changes) = replay {
            let mut policy = held.policy.clone();
            // A write of many changes records them all under one revision: applied together.
            let applied = changes
                .chunk_by(|a, b| a.revision == b.revision)
                .try_for_each(|revision| {
                    policy.advance_all(revision[0].revision, revision.iter().map(|r| &r.change))
                });
            match applied {
                Ok(()) if policy.revision() > held.revision() => {
                    bump(&self.stats.incremental_refreshes);
                    tracing::info!(%tenant, from = held.revision(), revision = policy.revision(),
                        changes = changes.len(), "tenant refreshed incrementally");
                    self.replace(
                        tenant,
                        slot,
                        current,
                        held.next(policy, Origin::Incremental),
                    );
                    return Ok(true);
                }
                // The store is not past what is held: a message promised a revision that does
                // not exist (yet). Nothing to do.
                Ok(()) => return Ok(false),
                Err(reason) => {
                    tracing::warn!(%tenant, %reason, "changelog does not apply; reloading whole");
                }
            }
        }
        let after = self.reload_locked(tenant, slot, current).await?;
        Ok(after.revision() > held.revision())
    }

    /// Reloads the tenant whole from the store, loading it if it was not held; None if the
    /// store has no such tenant. A tenant not known here is asked of the store first: it may
    /// have been created on another instance, and this is how an operator makes sure.
    pub async fn reload(&self, tenant: &TenantName) -> Result<Option<Arc<Snapshot>>, StoreError> {
        if !self.directory.contains(tenant.as_str()) && self.directory.lookup(tenant).await? == 0 {
            return Ok(None);
        }
        let slot = self.slot(tenant);
        let update = slot.update.lock().await;
        match slot.current.get() {
            Some(current) if !slot.retired.load(Ordering::Relaxed) => {
                self.reload_locked(tenant, &slot, current).await.map(Some)
            }
            // Not loaded yet, or given up meanwhile: a first load is a reload.
            _ => {
                drop(update);
                self.get(tenant).await
            }
        }
    }

    /// Brings the cache up to date with one of this instance's own committed writes: applies
    /// it to the snapshot when it is the very next revision, catches up from the store when
    /// revisions are missing in between.
    pub async fn record_write(
        &self,
        tenant: &TenantName,
        changes: &[Change],
        outcome: WriteOutcome,
    ) -> Result<(), StoreError> {
        let Some(slot) = self.existing_slot(tenant.as_str()) else {
            return Ok(());
        };
        let _update = slot.update.lock().await;
        let Some(current) = slot.current.get() else {
            // Not loaded, or its load failed: the next use loads a store that has the write.
            return Ok(());
        };
        if slot.retired.load(Ordering::Relaxed) {
            return Ok(());
        }
        let held = current.load_full();
        if held.revision() >= outcome.revision {
            return Ok(());
        }
        let mut policy = held.policy.clone();
        match policy.advance_all(outcome.revision, changes) {
            Ok(()) => {
                bump(&self.stats.writes_applied);
                self.replace(tenant, &slot, current, held.next(policy, Origin::Write));
                Ok(())
            }
            Err(reason) => {
                tracing::debug!(%tenant, %reason, "catching up instead of applying own write");
                self.catch_up_locked(tenant, &slot, outcome.revision)
                    .await
                    .map(drop)
            }
        }
    }

    /// Runs `read` on the tenant's snapshot if the tenant is held: the check's fast path,
    /// which takes no lock, no reference count and no `.await`, and writes no shared memory
    /// but the tenant's recency stamp, and that only when the clock moved.
    pub fn with_cached<R>(&self, tenant: &str, read: impl FnOnce(&Snapshot) -> R) -> Option<R> {
        let slots = self.slots.pin();
        let slot = slots.get(tenant)?;
        let current = slot.current.get()?;
        slot.touch(self.memory.now());
        Some(read(&current.load()))
    }

    /// Every tenant held or being loaded.
    pub fn held_tenants(&self) -> Vec<TenantName> {
        self.slots.pin().keys().cloned().collect()
    }

    /// How many tenants are held.
    pub fn held_count(&self) -> u64 {
        self.memory.count()
    }

    /// The estimated bytes of the tenants held, and the budget they must fit.
    pub fn memory(&self) -> (u64, u64) {
        (self.memory.held(), self.memory.budget())
    }

    /// The `count` held tenants of the largest estimated size, largest first.
    pub fn largest(&self, count: usize) -> Vec<HeldTenant> {
        let slots = self.slots.pin();
        let sizes = slots.iter().filter_map(|(tenant, slot)| {
            slot.current.get()?;
            Some((
                std::cmp::Reverse(slot.bytes.load(Ordering::Relaxed)),
                tenant,
            ))
        });
        crate::policy::page::smallest(sizes, count)
            .items
            .into_iter()
            .filter_map(|(_, tenant)| self.held(tenant.as_str()))
            .collect()
    }

    /// One held tenant, if it is held.
    pub fn held(&self, tenant: &str) -> Option<HeldTenant> {
        let slots = self.slots.pin();
        let (tenant, slot) = slots.get_key_value(tenant)?;
        Some(HeldTenant {
            tenant: tenant.clone(),
            snapshot: slot.current.get()?.load_full(),
            bytes: slot.bytes.load(Ordering::Relaxed),
        })
    }

    /// Evicts the least recently used tenants until those held fit the budget again. The
    /// work is a few passes over the tenants held: for a background task, off the async
    /// workers.
    pub fn evict_over_budget(&self) -> usize {
        if self.memory.held() <= self.memory.budget() {
            return 0;
        }
        // From here on every use is newer than anything weighed below.
        self.memory.tick();
        let slots = self.slots.pin();
        let held = || {
            slots
                .values()
                .filter(|slot| slot.current.get().is_some())
                .map(|slot| {
                    (
                        slot.last_used.load(Ordering::Relaxed),
                        slot.bytes.load(Ordering::Relaxed),
                    )
                })
        };
        let Some(plan) = self.memory.plan(held) else {
            return 0;
        };
        let (mut evicted, mut freed_from_cutoff) = (0, 0);
        for (tenant, slot) in slots.iter() {
            let (last_used, bytes) = (
                slot.last_used.load(Ordering::Relaxed),
                slot.bytes.load(Ordering::Relaxed),
            );
            if slot.current.get().is_none() || !plan.evicts(last_used, bytes, freed_from_cutoff) {
                continue;
            }
            // A tenant being loaded, refreshed or written right now is in use: it stays.
            let Ok(_update) = slot.update.try_lock() else {
                continue;
            };
            self.retire(tenant, slot);
            self.directory.mark_evicted(tenant.as_str());
            if plan.in_cutoff(last_used) {
                freed_from_cutoff += bytes;
            }
            bump(&self.stats.evictions);
            tracing::debug!(%tenant, "tenant evicted");
            evicted += 1;
        }
        evicted
    }

    async fn reload_locked(
        &self,
        tenant: &TenantName,
        slot: &Slot,
        current: &ArcSwap<Snapshot>,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let policy = self.store.load(tenant).await?;
        let held = current.load_full();
        if policy.revision() < held.revision() {
            // The store cannot go back in time, but a read from a lagging replica or a restored
            // backup could; never roll the cache back.
            tracing::warn!(%tenant, held = held.revision(), store = policy.revision(),
                "store is behind the cache; keeping the cached snapshot");
            return Ok(held);
        }
        bump(&self.stats.full_reloads);
        tracing::info!(%tenant, from = held.revision(), revision = policy.revision(), "tenant reloaded");
        Ok(self.replace(tenant, slot, current, held.next(policy, Origin::Reload)))
    }

    /// Puts `snapshot` in place of the slot's current one, under the slot's update lock.
    fn replace(
        &self,
        tenant: &TenantName,
        slot: &Slot,
        current: &ArcSwap<Snapshot>,
        snapshot: Snapshot,
    ) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        self.account(tenant, slot, &snapshot);
        current.store(snapshot.clone());
        self.directory.learn(tenant, snapshot.revision());
        snapshot
    }

    /// Counts the slot's new snapshot in the budget, under the slot's update lock.
    fn account(&self, tenant: &TenantName, slot: &Slot, snapshot: &Snapshot) {
        let bytes = (snapshot.policy.estimated_bytes() + held_overhead(tenant)) as u64;
        self.memory
            .resize(slot.bytes.swap(bytes, Ordering::Relaxed), bytes);
    }

    fn existing_slot(&self, tenant: &str) -> Option<Arc<Slot>> {
        self.slots.pin().get(tenant).cloned()
    }

    fn slot(&self, tenant: &TenantName) -> Arc<Slot> {
        self.slots
            .pin()
            .get_or_insert_with(tenant.clone(), Arc::default)
            .clone()
    }
}

/// Gives a slot up when dropped armed: a first load that failed, or was abandoned.
struct GiveUp<'a> {
    cache: &'a TenantCache,
    tenant: &'a TenantName,
    slot: &'a Arc<Slot>,
    armed: bool,
}

impl Drop for GiveUp<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cache.retire(self.tenant, self.slot);
        }
    }
}

/// Evicts tenants whenever those held grow past the cache's budget, until shutdown.
pub async fn evictions(cache: Arc<TenantCache>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = cache.memory.over_budget() => {}
            _ = shutdown.cancelled() => return,
        }
        // A pass over every tenant held: off the async workers, so that no check waits on it.
        let cache = cache.clone();
        match tokio::task::spawn_blocking(move || cache.evict_over_budget()).await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "tenants evicted to fit the cache budget"),
            Err(e) => tracing::error!(error = %e, "eviction failed"),
        }
    }
}

/// What holding a tenant costs beyond its policy: the slot, the snapshot around the policy,
/// the map's entry and the tenant's name.
fn held_overhead(tenant: &TenantName) -> usize {
    const ARC: usize = 2 * size_of::<usize>();
    const MAP_ENTRY: usize = 64;
    ARC + size_of::<Slot>()
        + ARC
        + size_of::<Snapshot>()
        + MAP_ENTRY
        + (ARC + tenant.as_str().len()).next_multiple_of(8)
}
