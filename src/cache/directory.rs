//! The tenants that exist, as far as this instance knows: so that a read of a name nobody
//! ever wrote is answered at once, as the empty tenant it is, and leaves nothing behind (no
//! slot, no snapshot, no store query).
//!
//! It is filled at start-up from the store's list of tenants, then kept up to date by what
//! keeps held tenants up to date: this instance's own writes, bus messages, and the sweep,
//! which asks the store what changed since its last look. A bus message about a tenant not
//! known here is checked against the store before it counts, since anyone who can publish on
//! the channel could name any tenant; so is a read that must see a revision (`min_revision`)
//! of a tenant not known here, which may have been created on another instance a moment ago.
//! Those checks are [`Directory::lookup`]s: many names per store query, never more than one
//! query in flight, however many names arrive at once.

use std::collections::HashMap as StdHashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use compact_str::CompactString;
use hashbrown::HashMap;
use tokio::sync::oneshot;

use crate::policy::TenantName;
use crate::stats::{Stats, bump};
use crate::store::{Store, StoreError};

/// The most names one lookup query asks about.
const LOOKUP_BATCH: usize = 1000;

/// The most names waiting for a lookup. Past this a lookup fails at once as unavailable: the
/// store is not keeping up, and the waiters would only grow.
const LOOKUPS_WAITING_MAX: usize = 10_000;

/// Cheap to share: the task that drains lookups holds it too, to record what it finds.
pub struct Directory(Arc<Inner>);

struct Inner {
    /// Every tenant known to exist, with whether it was evicted since it was last loaded (to
    /// count the loads that eviction cost). Every tenant of the store is here, so it must be
    /// compact: a plain table with names inline, rather than a concurrent map of separately
    /// allocated entries. Checks of held tenants never look here, only first reads and reads
    /// of names that do not exist, so one lock does.
    known: RwLock<Known>,
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    /// Names waiting to be looked up in the store.
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Each name, with whoever waits for its revision (nobody, for a bus message's name).
    waiting: StdHashMap<TenantName, Vec<oneshot::Sender<Result<u64, Failure>>>>,
    /// Whether the task that drains the queue is running.
    running: bool,
}

/// Tenant name -> whether it was evicted since it was last loaded.
type Known = HashMap<CompactString, bool, foldhash::fast::RandomState>;

/// Why a lookup failed, told to every waiter of the query that failed.
#[derive(Debug, Clone)]
struct Failure {
    unavailable: bool,
    message: String,
}

impl Directory {
    pub fn new(store: Arc<dyn Store>, stats: Arc<Stats>) -> Self {
        Self(Arc::new(Inner {
            known: RwLock::default(),
            store,
            stats,
            queue: Mutex::default(),
        }))
    }

    pub fn contains(&self, tenant: &str) -> bool {
        self.0.read().contains_key(tenant)
    }

    /// Records that `tenant` exists in the store.
    pub fn insert(&self, tenant: &TenantName) {
        self.0.insert(tenant);
    }

    /// Records that every one of `tenants` exists, at once.
    pub fn extend(&self, tenants: impl IntoIterator<Item = TenantName>) {
        let mut known = self.0.write();
        for tenant in tenants {
            known.entry(tenant.as_str().into()).or_insert(false);
        }
    }

    /// How many tenants are known to exist.
    pub fn len(&self) -> usize {
        self.0.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that `tenant` was evicted from the cache.
    pub fn mark_evicted(&self, tenant: &str) {
        if let Some(evicted) = self.0.write().get_mut(tenant) {
            *evicted = true;
        }
    }

    /// Whether `tenant` was evicted since it was last loaded; forgets it.
    pub fn take_evicted(&self, tenant: &str) -> bool {
        if !self.0.read().get(tenant).is_some_and(|evicted| *evicted) {
            return false;
        }
        self.0
            .write()
            .get_mut(tenant)
            .is_some_and(|evicted| std::mem::replace(evicted, false))
    }

    /// The tenant's revision in the store, read after this call began (so that a write
    /// acknowledged before it is seen); if the tenant exists, it is known from then on.
    pub async fn lookup(&self, tenant: &TenantName) -> Result<u64, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.0.enqueue(tenant, Some(answer))?;
        answered
            .await
            .map_err(|_| StoreError::Internal("the tenant lookup task ended".into()))?
            .map_err(|failure| {
                let message = failure.message.into();
                if failure.unavailable {
                    StoreError::Unavailable(message)
                } else {
                    StoreError::Internal(message)
                }
            })
    }

    /// Asks the store, in the background, whether `tenant` exists, and records it if it
    /// does. A name that cannot be queued now is left to the next sweep.
    pub fn discover(&self, tenant: &TenantName) {
        if let Err(e) = self.0.enqueue(tenant, None) {
            tracing::debug!(%tenant, error = %e, "tenant lookup not queued; the sweep will find it");
        }
    }
}

impl Inner {
    /// The tenants known. A poisoned lock still guards a whole table: every change to it is
    /// one insertion or one flag.
    fn read(&self) -> RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Known> {
        self.known.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, tenant: &TenantName) {
        if self.read().contains_key(tenant.as_str()) {
            return;
        }
        self.write().entry(tenant.as_str().into()).or_insert(false);
    }

    /// Queues `tenant`, and starts the task that drains the queue if it is not running.
    fn enqueue(
        self: &Arc<Self>,
        tenant: &TenantName,
        answer: Option<oneshot::Sender<Result<u64, Failure>>>,
    ) -> Result<(), StoreError> {
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.waiting.len() >= LOOKUPS_WAITING_MAX && !queue.waiting.contains_key(tenant) {
                return Err(StoreError::Unavailable(
                    "too many tenant lookups waiting for the store".into(),
                ));
            }
            queue
                .waiting
                .entry(tenant.clone())
                .or_default()
                .extend(answer);
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(self.clone().drain());
        }
        Ok(())
    }

    /// Looks up what is queued, a batch per query, until nothing is. A name queued while a
    /// query runs waits for the next one: its answer is always read after it was asked.
    async fn drain(self: Arc<Self>) {
        loop {
            let batch: Vec<_> = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.running = false;
                    return;
                }
                let names: Vec<TenantName> =
                    queue.waiting.keys().take(LOOKUP_BATCH).cloned().collect();
                names
                    .into_iter()
                    .map(|name| {
                        let waiters = queue.waiting.remove(&name).unwrap_or_default();
                        (name, waiters)
                    })
                    .collect()
            };
            let names: Vec<TenantName> = batch.iter().map(|(name, _)| name.clone()).collect();
            bump(&self.stats.tenant_lookups);
            let found = self.store.revisions(&names).await.map_err(|e| Failure {
                unavailable: matches!(e, StoreError::Unavailable(_)),
                message: crate::error_chain(&e),
            });
            if let Err(failure) = &found {
                tracing::warn!(
                    names = names.len(),
                    error = failure.message,
                    "tenant lookup failed"
                );
            }
            for (name, waiters) in batch {
                let answer = found
                    .as_ref()
                    .map(|revisions| revisions.get(&name).copied().unwrap_or(0))
                    .map_err(Clone::clone);
                if matches!(answer, Ok(revision) if revision > 0) {
                    self.insert(&name);
                }
                for waiter in waiters {
                    let _ = waiter.send(answer.clone());
                }
            }
        }
    }
}
