//! The per-tenant cache: an immutable snapshot per tenant, swapped whole.
//!
//! A check loads the current snapshot with one atomic read and never waits on a writer, a
//! refresh or any I/O. Updates of one tenant (its first load, refreshes, own writes) are
//! serialized by that tenant's update lock, and a snapshot is only ever replaced by one at the
//! same or a newer revision, so nothing rolls back, whatever order messages arrive in.
//!
//! A tenant a few revisions behind is refreshed incrementally: the store's changelog entries
//! since the revision held are applied to a copy of the snapshot, which then replaces it. A
//! tenant further behind, or whose changelog no longer reaches back, is reloaded whole.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use crate::policy::{Change, TenantName, TenantPolicy};
use crate::stats::{Stats, bump};
use crate::store::{Store, StoreError, WriteOutcome};

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
}

pub struct TenantCache {
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    /// Bounds a first load, lock wait included: a read that needs the store while it is down
    /// fails after this long rather than queueing behind other failing loads.
    timeout: Duration,
    /// A concurrent map whose reads take no lock and write no shared memory: with every
    /// check of every tenant looking here, a lock's shared counter was a cache line that all
    /// cores fought over.
    slots: papaya::HashMap<TenantName, Arc<Slot>, foldhash::fast::RandomState>,
}

impl TenantCache {
    pub fn new(store: Arc<dyn Store>, stats: Arc<Stats>, timeout: Duration) -> Self {
        Self {
            store,
            stats,
            timeout,
            slots: papaya::HashMap::with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// The tenant's snapshot, loading it from the store on first use.
    pub async fn get(&self, tenant: &TenantName) -> Result<Arc<Snapshot>, StoreError> {
        let slot = self.slot(tenant);
        if let Some(current) = slot.current.get() {
            bump(&self.stats.hits);
            return Ok(current.load_full());
        }
        bump(&self.stats.misses);
        tokio::time::timeout(self.timeout, self.first_load(tenant, &slot))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "timed out loading the tenant".into(),
                ))
            })
    }

    async fn first_load(
        &self,
        tenant: &TenantName,
        slot: &Slot,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let _update = slot.update.lock().await;
        if let Some(current) = slot.current.get() {
            // Loaded by the caller we waited for.
            return Ok(current.load_full());
        }
        let policy = self.store.load(tenant).await?;
        bump(&self.stats.loads);
        tracing::info!(%tenant, revision = policy.revision(), "tenant loaded");
        let now = SystemTime::now();
        let snapshot = Arc::new(Snapshot {
            policy,
            loaded_at: now,
            refreshed_at: now,
            origin: Origin::Load,
        });
        // Under the update lock, nobody else can have set it.
        let _ = slot.current.set(ArcSwap::new(snapshot.clone()));
        Ok(snapshot)
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
        // Whoever held the lock before may have brought the tenant far enough already.
        let held = current.load_full();
        if held.revision() >= revision {
            return Ok(false);
        }
        if let Some(changes) = self
            .store
            .changes_since(tenant, held.revision(), MAX_INCREMENTAL_CHANGES)
            .await?
        {
            let mut policy = held.policy.clone();
            let applied = changes
                .iter()
                .try_for_each(|(revision, change)| policy.advance(*revision, change));
            match applied {
                Ok(()) if policy.revision() > held.revision() => {
                    bump(&self.stats.incremental_refreshes);
                    tracing::info!(%tenant, from = held.revision(), revision = policy.revision(),
                        changes = changes.len(), "tenant refreshed incrementally");
                    current.store(Arc::new(held.next(policy, Origin::Incremental)));
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
        let after = self.reload_locked(tenant, current).await?;
        Ok(after.revision() > held.revision())
    }

    /// Reloads the tenant whole from the store, loading it if it was not cached.
    pub async fn reload(&self, tenant: &TenantName) -> Result<Arc<Snapshot>, StoreError> {
        let slot = self.slot(tenant);
        let update = slot.update.lock().await;
        let Some(current) = slot.current.get() else {
            drop(update);
            return self.get(tenant).await;
        };
        self.reload_locked(tenant, current).await
    }

    /// Brings the cache up to date with one of this instance's own committed writes: applies
    /// it to the snapshot when it is the very next revision, catches up from the store when
    /// revisions are missing in between.
    pub async fn record_write(
        &self,
        tenant: &TenantName,
        change: &Change,
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
        let held = current.load_full();
        if held.revision() >= outcome.revision {
            return Ok(());
        }
        let mut policy = held.policy.clone();
        match policy.advance(outcome.revision, change) {
            Ok(()) => {
                bump(&self.stats.writes_applied);
                current.store(Arc::new(held.next(policy, Origin::Write)));
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

    /// Every cached tenant with its snapshot.
    pub fn held(&self) -> Vec<(TenantName, Arc<Snapshot>)> {
        self.slots
            .pin()
            .iter()
            .filter_map(|(tenant, slot)| {
                let current = slot.current.get()?;
                Some((tenant.clone(), current.load_full()))
            })
            .collect()
    }

    /// Runs `read` on the tenant's snapshot if the tenant is cached: the check's fast path,
    /// which takes no lock, no reference count and no `.await`.
    pub fn with_cached<R>(&self, tenant: &str, read: impl FnOnce(&Snapshot) -> R) -> Option<R> {
        let slots = self.slots.pin();
        let current = slots.get(tenant)?.current.get()?;
        Some(read(&current.load()))
    }

    async fn reload_locked(
        &self,
        tenant: &TenantName,
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
        let snapshot = Arc::new(held.next(policy, Origin::Reload));
        current.store(snapshot.clone());
        Ok(snapshot)
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
