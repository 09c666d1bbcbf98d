//! The per-tenant cache: an immutable snapshot per tenant, swapped whole.
//!
//! A check loads the current snapshot with one atomic read and never waits on a writer, a
//! reload or any I/O. Updates of one tenant (its first load, reloads, own writes) are
//! serialized by that tenant's update lock, and a snapshot is only ever replaced by one at the
//! same or a newer revision, so nothing rolls back, whatever order messages arrive in.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use crate::policy::{Change, TenantName, TenantPolicy};
use crate::stats::{Stats, bump};
use crate::store::{Store, StoreError, WriteOutcome};

/// How a snapshot came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the store on first use.
    Load,
    /// Reloaded whole from the store.
    Reload,
    /// One of this instance's own writes applied to the previous snapshot.
    Write,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Load => "load",
            Origin::Reload => "reload",
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
}

#[derive(Default)]
struct Slot {
    /// Set once, by the first load.
    current: OnceLock<ArcSwap<Snapshot>>,
    /// Held while the first load runs and while the snapshot is replaced. Concurrent first
    /// uses wait for the one load; replacements never race; a burst of refresh requests for
    /// one tenant turns into one reload; and a write or message that arrives while the first
    /// load is in flight waits for it and then checks the revision it got, since that load's
    /// read of the store may predate the write.
    update: Mutex<()>,
}

pub struct TenantCache {
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    /// A std lock, not tokio's: it is held only to find or insert a slot, never across an
    /// `.await`, and a check must not yield to take it.
    slots: RwLock<HashMap<TenantName, Arc<Slot>>>,
}

impl TenantCache {
    pub fn new(store: Arc<dyn Store>, stats: Arc<Stats>) -> Self {
        Self {
            store,
            stats,
            slots: RwLock::default(),
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

    /// Reloads the tenant from the store, loading it if it was not cached.
    pub async fn reload(&self, tenant: &TenantName) -> Result<Arc<Snapshot>, StoreError> {
        let slot = self.slot(tenant);
        let update = slot.update.lock().await;
        let Some(current) = slot.current.get() else {
            drop(update);
            return self.get(tenant).await;
        };
        self.reload_locked(tenant, current).await
    }

    /// Brings a cached tenant up to at least `revision` if it is behind; tenants not cached
    /// are left alone, since their first use loads them fresh. Returns whether the snapshot
    /// moved forward.
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
        let Some(current) = slot.current.get() else {
            // The first load failed; the next use loads afresh.
            return Ok(false);
        };
        // Whoever held the lock before may have brought the tenant far enough already.
        let before = current.load().revision();
        if before >= revision {
            return Ok(false);
        }
        let after = self.reload_locked(tenant, current).await?.revision();
        Ok(after > before)
    }

    /// Brings the cache up to date with one of this instance's own committed writes: applies
    /// it to the snapshot when it is the very next revision, reloads when revisions are
    /// missing in between.
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
                current.store(Arc::new(Snapshot {
                    policy,
                    loaded_at: held.loaded_at,
                    refreshed_at: SystemTime::now(),
                    origin: Origin::Write,
                }));
                Ok(())
            }
            Err(reason) => {
                tracing::debug!(%tenant, %reason, "reloading instead of applying own write");
                self.reload_locked(tenant, current).await.map(drop)
            }
        }
    }

    /// Every cached tenant with the revision held.
    pub fn held(&self) -> Vec<(TenantName, Arc<Snapshot>)> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots
            .iter()
            .filter_map(|(tenant, slot)| {
                let current = slot.current.get()?;
                Some((tenant.clone(), current.load_full()))
            })
            .collect()
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
        bump(&self.stats.reloads);
        tracing::info!(%tenant, from = held.revision(), revision = policy.revision(), "tenant reloaded");
        let snapshot = Arc::new(Snapshot {
            policy,
            loaded_at: held.loaded_at,
            refreshed_at: SystemTime::now(),
            origin: Origin::Reload,
        });
        current.store(snapshot.clone());
        Ok(snapshot)
    }

    fn existing_slot(&self, tenant: &str) -> Option<Arc<Slot>> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots.get(tenant).cloned()
    }

    fn slot(&self, tenant: &TenantName) -> Arc<Slot> {
        if let Some(slot) = self.existing_slot(tenant.as_str()) {
            return slot;
        }
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        slots.entry(tenant.clone()).or_default().clone()
    }
}
