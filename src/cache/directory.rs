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
//! Those checks are lookups: many names per store query, never more than one query in flight,
//! however many names arrive at once, and answered in the order they were asked.

use std::collections::{HashMap as StdHashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use compact_str::CompactString;
use hashbrown::HashMap;
use tokio::sync::oneshot;

use crate::policy::TenantName;
use crate::stats::{Stats, bump};
use crate::store::{Store, StoreError};

/// The most names one lookup query asks about.
const LOOKUP_BATCH: usize = 1000;

/// The most names queued for discovery (from bus messages, which nobody waits for). Past this
/// they are left to the sweep, so that a burst of new tenants elsewhere, or forged messages,
/// cannot crowd out the lookups that reads wait for; those are bounded by the requests in
/// flight, and always queued.
const DISCOVERIES_MAX: usize = 5_000;

/// The tables the known tenants are spread over, each behind a lock of its own: a first read
/// waits at most for one table's insertion, however many tenants there are.
const SHARDS: usize = 64;

/// Cheap to share: the task that drains lookups holds it too, to record what it finds.
pub struct Directory(Arc<Inner>);

struct Inner {
    /// Every tenant known to exist, with whether it was evicted since it was last loaded (to
    /// count the loads that eviction cost). Every tenant of the store is here, so it must be
    /// compact: plain tables with names inline, rather than a concurrent map of separately
    /// allocated entries. Checks of held tenants never look here, only first reads and reads
    /// of names that do not exist.
    known: Box<[RwLock<Known>]>,
    /// Picks a name's table.
    shard_hasher: foldhash::fast::RandomState,
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    /// Names waiting to be looked up in the store.
    queue: Mutex<Queue>,
}

/// Tenant name -> whether it was evicted since it was last loaded.
type Known = HashMap<CompactString, bool, foldhash::fast::RandomState>;

#[derive(Default)]
struct Queue {
    /// The names, in the order they were first asked about.
    order: VecDeque<TenantName>,
    /// Each name, with whoever waits for its revision (nobody, for a bus message's name).
    waiting: StdHashMap<TenantName, Vec<oneshot::Sender<Result<u64, Failure>>>>,
    /// Whether the task that drains the queue is running.
    running: bool,
}

/// Why a lookup failed, told to every waiter of the query that failed.
#[derive(Debug, Clone)]
struct Failure {
    unavailable: bool,
    message: String,
}

impl Directory {
    pub fn new(store: Arc<dyn Store>, stats: Arc<Stats>) -> Self {
        Self(Arc::new(Inner {
            known: (0..SHARDS).map(|_| RwLock::default()).collect(),
            shard_hasher: foldhash::fast::RandomState::default(),
            store,
            stats,
            queue: Mutex::default(),
        }))
    }

    pub fn contains(&self, tenant: &str) -> bool {
        self.0.read(tenant).contains_key(tenant)
    }

    /// Records that `tenant` exists in the store.
    pub fn insert(&self, tenant: &TenantName) {
        self.0.insert(tenant);
    }

    /// Records that every one of `tenants` exists.
    pub fn extend(&self, tenants: impl IntoIterator<Item = TenantName>) {
        for tenant in tenants {
            self.0.insert(&tenant);
        }
    }

    /// How many tenants are known to exist.
    pub fn len(&self) -> usize {
        self.0.known.iter().map(|shard| read(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that `tenant` was evicted from the cache.
    pub fn mark_evicted(&self, tenant: &str) {
        if let Some(evicted) = self.0.write(tenant).get_mut(tenant) {
            *evicted = true;
        }
    }

    /// Whether `tenant` was evicted since it was last loaded; forgets it.
    pub fn take_evicted(&self, tenant: &str) -> bool {
        if !self
            .0
            .read(tenant)
            .get(tenant)
            .is_some_and(|evicted| *evicted)
        {
            return false;
        }
        self.0
            .write(tenant)
            .get_mut(tenant)
            .is_some_and(|evicted| std::mem::replace(evicted, false))
    }

    /// The tenant's revision in the store, read after this call began (so that a write
    /// acknowledged before it is seen); if the tenant exists, it is known from then on.
    pub async fn lookup(&self, tenant: &TenantName) -> Result<u64, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.0.enqueue(tenant, Some(answer));
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
        self.0.enqueue(tenant, None);
    }
}

fn read(shard: &RwLock<Known>) -> RwLockReadGuard<'_, Known> {
    // A poisoned lock still guards a whole table: every change to it is one insertion or one
    // flag.
    shard.read().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn shard(&self, tenant: &str) -> &RwLock<Known> {
        &self.known[self.shard_hasher.hash_one(tenant) as usize % SHARDS]
    }

    fn read(&self, tenant: &str) -> RwLockReadGuard<'_, Known> {
        read(self.shard(tenant))
    }

    fn write(&self, tenant: &str) -> RwLockWriteGuard<'_, Known> {
        self.shard(tenant)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, tenant: &TenantName) {
        if self.read(tenant.as_str()).contains_key(tenant.as_str()) {
            return;
        }
        self.write(tenant.as_str())
            .entry(tenant.as_str().into())
            .or_insert(false);
    }

    /// Queues `tenant`, and starts the task that drains the queue if it is not running. A name
    /// nobody waits for is dropped when too many are queued already.
    fn enqueue(
        self: &Arc<Self>,
        tenant: &TenantName,
        answer: Option<oneshot::Sender<Result<u64, Failure>>>,
    ) {
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let queued = queue.waiting.len();
            match queue.waiting.get_mut(tenant) {
                Some(waiters) => waiters.extend(answer),
                None if answer.is_none() && queued >= DISCOVERIES_MAX => {
                    tracing::debug!(%tenant, "too many tenant lookups queued; the sweep will find it");
                    return;
                }
                None => {
                    queue.order.push_back(tenant.clone());
                    queue
                        .waiting
                        .insert(tenant.clone(), answer.into_iter().collect());
                }
            }
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(self.clone().drain());
        }
    }

    /// Looks up what is queued, a batch per query, oldest first, until nothing is. A name
    /// queued while a query runs waits for the next one: its answer is always read after it
    /// was asked.
    async fn drain(self: Arc<Self>) {
        // If this task dies (a panic, a runtime shutting down), the next lookup starts another,
        // and those waiting now are told rather than left waiting.
        let mut stopped = Stopped {
            inner: &self,
            armed: true,
        };
        loop {
            let batch: Vec<_> = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.order.is_empty() {
                    queue.running = false;
                    stopped.armed = false;
                    return;
                }
                let count = queue.order.len().min(LOOKUP_BATCH);
                let names: Vec<TenantName> = queue.order.drain(..count).collect();
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
            let found = self
                .store
                .revisions(&names)
                .await
                .map(|found| {
                    found
                        .into_iter()
                        .map(|each| (each.tenant, each.revision))
                        .collect::<StdHashMap<_, _>>()
                })
                .map_err(|e| Failure {
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

/// When the drain ends other than by finding the queue empty, marks it stopped and drops the
/// waiters, whose lookups then fail.
struct Stopped<'a> {
    inner: &'a Inner,
    armed: bool,
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut queue = self
                .inner
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            queue.running = false;
            queue.order.clear();
            queue.waiting.clear();
        }
    }
}
