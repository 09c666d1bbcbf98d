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
//!
//! It is also where this instance's knowledge of revisions is announced to the watch streams
//! ([`Directory::advances`]): each tenant's entry keeps the revision announced through, so
//! that every revision the instance learns of is announced exactly once, in a range that
//! starts where the previous one ended, whichever path learned it (a write here, a refresh, a
//! first load, a lookup, the sweep). Only what the store said is learned: a bus message is
//! only a reason to ask it.

use std::collections::{HashMap as StdHashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use compact_str::CompactString;
use hashbrown::HashMap;
use tokio::sync::{broadcast, oneshot, watch};

use crate::policy::TenantName;
use crate::stats::{Stats, bump};
use crate::store::{Store, StoreError, TenantRevision};

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

/// How many announced ranges wait for the slowest watcher before it is told it lagged.
pub const ADVANCES_BUFFERED: usize = 4096;

/// Revisions of a tenant this instance has just learned of: every one after `from`, up to
/// and including `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    pub tenant: TenantName,
    pub from: u64,
    pub to: u64,
}

/// Cheap to share: the task that drains lookups holds it too, to record what it finds.
pub struct Directory(Arc<Inner>);

struct Inner {
    /// Every tenant known to exist, with the revision announced through and whether it was
    /// evicted since it was last loaded (to count the loads that eviction cost). Every tenant
    /// of the store is here, so it must be
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
    /// Every range learned, for the watchers of every tenant.
    advances: broadcast::Sender<Advance>,
    /// The newest revision learned of each tenant that has watchers of its own, spread over
    /// tables as `known` is: a change wakes its tenant's watchers, not every watcher.
    followed: Box<[Mutex<Followed>]>,
    /// How many watchers of one tenant there are: none, and learning takes no lock for them.
    followers: AtomicUsize,
}

type Followed = StdHashMap<TenantName, watch::Sender<u64>>;

type Known = HashMap<CompactString, Entry, foldhash::fast::RandomState>;

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    /// The newest revision announced: what this instance learned the tenant reached.
    announced: u64,
    evicted: bool,
}

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
            advances: broadcast::Sender::new(ADVANCES_BUFFERED),
            followed: (0..SHARDS).map(|_| Mutex::default()).collect(),
            followers: AtomicUsize::new(0),
        }))
    }

    pub fn contains(&self, tenant: &str) -> bool {
        self.0.read(tenant).contains_key(tenant)
    }

    /// Records that the store has `tenant` at `revision` (a revision read from the store, or
    /// made here: never one a message merely claims), and announces the revisions that are
    /// new to this instance. Revision 0 is a tenant never written, which is not recorded.
    pub fn learn(&self, tenant: &TenantName, revision: u64) {
        self.0.learn(tenant, revision);
    }

    /// Records every one of `tenants` at its revision.
    pub fn extend(&self, tenants: impl IntoIterator<Item = TenantRevision>) {
        for TenantRevision { tenant, revision } in tenants {
            self.0.learn(&tenant, revision);
        }
    }

    /// The revisions this instance learns of from now on ([`Directory::learn`]), in order
    /// for each tenant. A receiver that falls more than [`ADVANCES_BUFFERED`] behind is told
    /// it lagged.
    pub fn advances(&self) -> broadcast::Receiver<Advance> {
        self.0.advances.subscribe()
    }

    /// The revisions of `tenant` learned from now on: the newest, whenever it moves.
    pub fn follow(&self, tenant: &TenantName) -> Following {
        self.0.followers.fetch_add(1, Ordering::SeqCst);
        let receiver = lock(self.0.followed(tenant.as_str()))
            .entry(tenant.clone())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe();
        Following {
            directory: self.0.clone(),
            tenant: tenant.clone(),
            receiver: Some(receiver),
        }
    }

    /// Whether anyone watches changes: then a tenant not held here is worth a store lookup
    /// when a message names it.
    pub fn watched(&self) -> bool {
        self.0.advances.receiver_count() > 0 || self.0.followers.load(Ordering::SeqCst) > 0
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
        if let Some(entry) = self.0.write(tenant).get_mut(tenant) {
            entry.evicted = true;
        }
    }

    /// Whether `tenant` was evicted since it was last loaded; forgets it.
    pub fn take_evicted(&self, tenant: &str) -> bool {
        if !self
            .0
            .read(tenant)
            .get(tenant)
            .is_some_and(|entry| entry.evicted)
        {
            return false;
        }
        self.0
            .write(tenant)
            .get_mut(tenant)
            .is_some_and(|entry| std::mem::replace(&mut entry.evicted, false))
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

    /// Asks the store, in the background, for `tenant`'s revision, and learns it if the tenant
    /// exists. A name that cannot be queued now is left to the next sweep.
    pub fn discover(&self, tenant: &TenantName) {
        self.0.enqueue(tenant, None);
    }
}

/// What one watcher of a tenant hears: see [`Directory::follow`].
pub struct Following {
    directory: Arc<Inner>,
    tenant: TenantName,
    /// Taken only when dropped.
    receiver: Option<watch::Receiver<u64>>,
}

impl Following {
    /// The newest revision learned, once one newer than the last seen is.
    pub async fn changed(&mut self) -> u64 {
        let Some(receiver) = self.receiver.as_mut() else {
            return std::future::pending().await;
        };
        // The sender lives as long as a receiver does: it never closes under one.
        if receiver.changed().await.is_err() {
            return std::future::pending().await;
        }
        *receiver.borrow_and_update()
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut followed = lock(self.directory.followed(self.tenant.as_str()));
        drop(self.receiver.take());
        // Under the table's lock, as a new watcher subscribes: none is left with a sender
        // that is no longer in the table.
        if followed
            .get(&self.tenant)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            followed.remove(&self.tenant);
        }
        self.directory.followers.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock(table: &Mutex<Followed>) -> std::sync::MutexGuard<'_, Followed> {
    // Each change to a table is one insertion, removal or value.
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read(shard: &RwLock<Known>) -> RwLockReadGuard<'_, Known> {
    // A poisoned lock still guards a whole table: every change to it is one insertion or one
    // flag.
    shard.read().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn shard(&self, tenant: &str) -> &RwLock<Known> {
        &self.known[self.shard_index(tenant)]
    }

    fn followed(&self, tenant: &str) -> &Mutex<Followed> {
        &self.followed[self.shard_index(tenant)]
    }

    fn shard_index(&self, tenant: &str) -> usize {
        self.shard_hasher.hash_one(tenant) as usize % SHARDS
    }

    fn read(&self, tenant: &str) -> RwLockReadGuard<'_, Known> {
        read(self.shard(tenant))
    }

    fn write(&self, tenant: &str) -> RwLockWriteGuard<'_, Known> {
        self.shard(tenant)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn learn(&self, tenant: &TenantName, revision: u64) {
        if revision == 0
            || self
                .read(tenant.as_str())
                .get(tenant.as_str())
                .is_some_and(|entry| entry.announced >= revision)
        {
            return;
        }
        let mut known = self.write(tenant.as_str());
        let entry = known.entry(tenant.as_str().into()).or_default();
        if entry.announced >= revision {
            return;
        }
        let from = std::mem::replace(&mut entry.announced, revision);
        if self.followers.load(Ordering::SeqCst) > 0
            && let Some(sender) = lock(self.followed(tenant.as_str())).get(tenant)
        {
            sender.send_replace(revision);
        }
        // Sent under the table's lock, so that a tenant's ranges are queued in their order.
        if self.advances.receiver_count() > 0 {
            let _ = self.advances.send(Advance {
                tenant: tenant.clone(),
                from,
                to: revision,
            });
        }
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
                if let Ok(revision) = answer {
                    self.learn(&name, revision);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::broadcast::error::TryRecvError;

    use super::*;
    use crate::store::sqlite::SqliteStore;

    async fn directory() -> Directory {
        let store = SqliteStore::open_url("sqlite::memory:", Duration::from_secs(5), 1)
            .await
            .unwrap();
        Directory::new(Arc::new(store), Arc::default())
    }

    fn tenant(name: &str) -> TenantName {
        TenantName::parse("tenant", name).unwrap()
    }

    fn advance(name: &str, from: u64, to: u64) -> Advance {
        Advance {
            tenant: tenant(name),
            from,
            to,
        }
    }

    #[tokio::test]
    async fn every_revision_learned_is_announced_once_in_ranges_that_follow_each_other() {
        let directory = directory().await;
        // Learned before anyone listens: known, and where the next range starts.
        directory.extend([TenantRevision {
            tenant: tenant("a"),
            revision: 3,
        }]);
        let mut advances = directory.advances();
        assert!(directory.watched());
        directory.learn(&tenant("a"), 5);
        directory.learn(&tenant("a"), 4);
        directory.learn(&tenant("a"), 5);
        directory.learn(&tenant("b"), 2);
        directory.learn(&tenant("c"), 0);
        directory.learn(&tenant("a"), 6);
        let mut heard = Vec::new();
        while let Ok(advance) = advances.try_recv() {
            heard.push(advance);
        }
        assert_eq!(
            heard,
            [advance("a", 3, 5), advance("b", 0, 2), advance("a", 5, 6)]
        );
        assert!(directory.contains("b"));
        assert!(
            !directory.contains("c"),
            "revision 0 is a tenant never written"
        );
        drop(advances);
        assert!(!directory.watched());
        directory.learn(&tenant("a"), 8);
        let mut late = directory.advances();
        directory.learn(&tenant("a"), 9);
        assert_eq!(late.try_recv().unwrap(), advance("a", 8, 9));
        assert_eq!(late.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    #[tokio::test]
    async fn a_tenants_watchers_hear_its_newest_revision_and_nothing_of_others() {
        let directory = directory().await;
        let mut first = directory.follow(&tenant("a"));
        let mut second = directory.follow(&tenant("a"));
        let mut other = directory.follow(&tenant("b"));
        assert!(directory.watched());
        directory.learn(&tenant("a"), 2);
        directory.learn(&tenant("a"), 1);
        directory.learn(&tenant("a"), 4);
        // Folded: the newest, once.
        assert_eq!(first.changed().await, 4);
        assert_eq!(second.changed().await, 4);
        let nothing = tokio::time::timeout(Duration::from_millis(20), other.changed()).await;
        assert!(nothing.is_err(), "b heard {nothing:?}");
        let quiet = tokio::time::timeout(Duration::from_millis(20), first.changed()).await;
        assert!(quiet.is_err(), "heard twice: {quiet:?}");

        // The last watcher of a tenant takes its entry with it; a new one starts afresh.
        drop((first, second));
        // (Its shard may hold b's entry too: which shard a name falls in is random.)
        assert!(!lock(directory.0.followed("a")).contains_key("a"));
        let mut again = directory.follow(&tenant("a"));
        directory.learn(&tenant("a"), 5);
        assert_eq!(again.changed().await, 5);
        drop((again, other));
        assert!(!directory.watched());
    }
}
