//! What the server does, independent of HTTP: writes that commit, update the cache and
//! publish; reads from the cache with read-your-writes; and the refresh an operator asks for.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::admission::Admission;
use crate::bus::BusState;
use crate::clock;

use crate::bus::{Bus, Message};
use crate::cache::{Snapshot, TenantCache};
use crate::keys::ring::KeyRing;
use crate::keys::{KeyId, KeyRecord, NewKey, Revocation};
use crate::policy::{
    Because, Change, Desired, NestingRefused, Operation, TenantName, counts, difference,
};
use crate::refresh::Refresher;
use crate::stats::{Stats, bump};
use crate::store::{ChangeLog, Store, StoreError, TenantSummary, WriteOutcome, WrittenMany};

/// How long an instance waits on the store, and how often it sweeps.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long one store operation, or a first load with its lock wait, may take.
    pub store: Duration,
    /// The sweep's period.
    pub resync_interval: Duration,
}

/// How long /health waits for the store before calling it down.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// One instance: its store, cache, bus and counters. Shared by every request and task.
pub struct App {
    /// This instance's name on the bus.
    pub server_id: String,
    pub store: Arc<dyn Store>,
    /// Shared with the task that evicts from it.
    pub cache: Arc<TenantCache>,
    /// The API keys in force.
    pub keys: Arc<KeyRing>,
    pub bus: Bus,
    pub stats: Arc<Stats>,
    /// Keeps the cache and the keys in step with the store.
    pub refresher: Arc<Refresher>,
    /// The sweep's period: with the bus down, how stale a cached tenant may get.
    pub resync_interval: Duration,
    /// How many writes of one tenant may be at the store at once.
    admission: Admission,
    store_timeout: Duration,
}

/// What applying a document did, or on a dry run would do.
#[derive(Debug)]
pub struct Applied {
    /// Whether the tenant changed (never on a dry run).
    pub changed: bool,
    /// The revision the tenant is at after the write; on a dry run, the one the difference
    /// was worked out from.
    pub revision: u64,
    /// How many changes of each operation the difference holds, in the order applied.
    pub counts: Vec<(Operation, usize)>,
    /// On a dry run, the difference, in the order it would be applied; empty otherwise.
    pub changes: Vec<Change>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read asked for a revision that the store has not reached.
    #[error("tenant '{tenant}' is at revision {current}, older than the requested {requested}")]
    RevisionNotReached {
        tenant: TenantName,
        requested: u64,
        current: u64,
    },
    /// Retention deleted changes the tenant made after the revision a reader asked from.
    #[error(
        "the changes of tenant '{tenant}' after revision {after} are no longer kept: the oldest kept is revision {oldest}; list the tenant (it is at revision {current}) and follow its changes from there"
    )]
    ChangesExpired {
        tenant: TenantName,
        after: u64,
        /// The oldest revision whose change can still be read: the tenant's next one when
        /// none of its changes is kept.
        oldest: u64,
        current: u64,
    },
    /// A document's nestings would make a cycle or a chain too deep.
    #[error("a document's nestings are refused")]
    Document(NestingRefused),
    /// The task a write or key change ran in did not finish: a bug (it panicked).
    #[error("the task of a write did not finish")]
    Task(#[source] tokio::task::JoinError),
}

impl App {
    /// An instance on `store`, publishing on `bus` (which says who it is), whose cache fits `cache_budget` bytes.
    /// It knows no tenant until [`App::load_tenants`].
    pub fn new(
        store: Arc<dyn Store>,
        bus: Bus,
        stats: Arc<Stats>,
        timeouts: Timeouts,
        cache_budget: u64,
        store_connections: u32,
    ) -> Self {
        let cache = Arc::new(TenantCache::new(
            store.clone(),
            stats.clone(),
            timeouts.store,
            cache_budget,
        ));
        let keys = Arc::new(KeyRing::default());
        let refresher = Arc::new(Refresher::new(
            bus.identity().clone(),
            store.clone(),
            cache.clone(),
            keys.clone(),
            stats.clone(),
        ));
        Self {
            server_id: bus.identity().server_id.clone(),
            cache,
            keys,
            store,
            bus,
            stats,
            refresher,
            resync_interval: timeouts.resync_interval,
            admission: Admission::for_pool(store_connections),
            store_timeout: timeouts.store,
        }
    }

    /// Learns which tenants exist, before serving: see [`Refresher::load_tenants`].
    pub async fn load_tenants(&self) -> Result<usize, StoreError> {
        self.refresher.load_tenants().await
    }

    /// Commits `change` on behalf of `actor`, then brings this instance's cache up to date
    /// and tells the others. The outcome is returned only after the commit; a failed publish
    /// never fails the write.
    ///
    /// Runs as a task of its own: the caller may be dropped at any await (the client hangs
    /// up, the request's deadline passes), and a committed change must still reach this
    /// instance's cache and the bus, not wait for the next sweep.
    pub async fn write(
        self: &Arc<Self>,
        tenant: &TenantName,
        change: Change,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, AppError> {
        let app = self.clone();
        let tenant = tenant.clone();
        let actor = actor.map(str::to_owned);
        detached(async move { app.commit(&tenant, change, actor.as_deref()).await }).await
    }

    async fn commit(
        &self,
        tenant: &TenantName,
        change: Change,
        actor: Option<&str>,
    ) -> Result<WriteOutcome, AppError> {
        let _admitted = self.admit(tenant).await?;
        let outcome = self
            .store
            .write(tenant, &change, &self.server_id, actor)
            .await?;
        let operation = change.operation();
        self.committed(tenant, outcome, &[change], operation, actor)
            .await;
        Ok(outcome)
    }

    /// Commits `changes` as one write ([`Store::write_many`]), then, as for one change,
    /// brings the cache up to date and tells the other instances, once.
    pub async fn write_many(
        self: &Arc<Self>,
        tenant: &TenantName,
        changes: Vec<Change>,
        if_revision: Option<u64>,
        actor: Option<&str>,
    ) -> Result<WrittenMany, AppError> {
        let app = self.clone();
        let tenant = tenant.clone();
        let actor = actor.map(str::to_owned);
        detached(async move {
            let _admitted = app.admit(&tenant).await?;
            let written = app
                .store
                .write_many(
                    &tenant,
                    &changes,
                    if_revision,
                    &app.server_id,
                    actor.as_deref(),
                )
                .await?;
            let outcome = WriteOutcome {
                changed: written.changed,
                revision: written.revision,
            };
            let made: Vec<Change> = changes
                .into_iter()
                .zip(&written.results)
                .filter_map(|(change, &changed)| changed.then_some(change))
                .collect();
            app.committed(&tenant, outcome, &made, Operation::Write, actor.as_deref())
                .await;
            Ok(written)
        })
        .await
    }

    /// Makes `tenant` hold exactly what `desired` describes, as one write of the difference
    /// from what it holds, or on a dry run works that difference out only.
    ///
    /// The difference is worked out from a snapshot, so it is written only if the tenant is
    /// still at the snapshot's revision: with `if_revision`, the caller's, and a tenant
    /// elsewhere is a mismatch; without, a tenant that moved (or a snapshot behind the store)
    /// is read again and the difference worked out anew, a few times before giving up.
    /// `writing` is called just before the store is asked to write: from then on the outcome
    /// is the store's to give (the HTTP layer lifts the request's deadline).
    pub async fn apply_document(
        self: &Arc<Self>,
        tenant: &TenantName,
        desired: Arc<Desired>,
        if_revision: Option<u64>,
        dry_run: bool,
        actor: Option<&str>,
        writing: impl Fn(),
    ) -> Result<Applied, AppError> {
        const ATTEMPTS: usize = 3;
        let mut at_least = if_revision;
        let mut attempt = 1;
        loop {
            let snapshot = match self.read(tenant, at_least).await {
                // A write for a revision the tenant has not reached is made for another one.
                Err(AppError::RevisionNotReached { current, .. }) => {
                    return Err(StoreError::RevisionMismatch {
                        expected: at_least.unwrap_or_default(),
                        current,
                    }
                    .into());
                }
                read => read?,
            };
            let revision = snapshot.revision();
            if let Some(expected) = if_revision.filter(|&expected| expected != revision) {
                return Err(StoreError::RevisionMismatch {
                    expected,
                    current: revision,
                }
                .into());
            }
            // A pass over every group and member the tenant holds: off the threads that serve
            // requests.
            let wanted = desired.clone();
            let changes =
                tokio::task::spawn_blocking(move || difference(&snapshot.policy, &wanted))
                    .await
                    .map_err(AppError::Task)?
                    .map_err(AppError::Document)?;
            let counts = counts(&changes);
            if dry_run {
                return Ok(Applied {
                    changed: false,
                    revision,
                    counts,
                    changes,
                });
            }
            writing();
            match self
                .write_many(tenant, changes, Some(revision), actor)
                .await
            {
                Err(AppError::Store(StoreError::RevisionMismatch { current, .. }))
                    if if_revision.is_none() && attempt < ATTEMPTS =>
                {
                    at_least = Some(current);
                    attempt += 1;
                }
                // The document's changes, not a list the caller sent: no index to name.
                Err(AppError::Store(StoreError::InChange { error, .. })) => {
                    return Err(AppError::Store(*error));
                }
                written => {
                    return written.map(|written| Applied {
                        changed: written.changed,
                        revision: written.revision,
                        counts,
                        changes: Vec::new(),
                    });
                }
            }
        }
    }

    /// A place among the writes of `tenant` at the store, or `unavailable` once the wait is
    /// over.
    async fn admit(&self, tenant: &TenantName) -> Result<crate::admission::Admitted<'_>, AppError> {
        Ok(self
            .admission
            .admit(tenant, self.store_timeout)
            .await
            .map_err(|crowded| StoreError::Unavailable(Box::new(crowded)))?)
    }

    /// What follows a committed write, of one change or many: the directory learns the
    /// revision; when something changed (`made`, the changes that did), the cache applies
    /// them and the other instances are told; otherwise a cache behind the store's revision
    /// catches up now rather than at the next sweep.
    async fn committed(
        &self,
        tenant: &TenantName,
        outcome: WriteOutcome,
        made: &[Change],
        operation: Operation,
        actor: Option<&str>,
    ) {
        // The tenant exists (created by this write, or known to the store before it), and its
        // watchers hear of the revision, held here or not.
        self.cache.directory.learn(tenant, outcome.revision);
        if !outcome.changed {
            if let Err(e) = self.cache.catch_up(tenant, outcome.revision).await {
                tracing::warn!(%tenant, error = %crate::error_chain(&e), "cache catch-up failed");
            }
            return;
        }
        tracing::info!(%tenant, revision = outcome.revision, %operation, changes = made.len(),
            actor, "write committed");
        if let Err(e) = self.cache.record_write(tenant, made, outcome).await {
            tracing::warn!(%tenant, revision = outcome.revision, error = %crate::error_chain(&e),
                "cache not updated after write; the next sweep will");
        }
        self.bus.publish(Message::new(
            tenant,
            operation,
            self.bus.identity(),
            outcome.revision,
        ));
    }

    /// The tenant's snapshot, at `min_revision` or newer when given: a cache behind it catches
    /// up from the store first, and a store behind it is an error. A tenant that does not
    /// exist as far as this instance knows reads as empty at revision 0, and is held by
    /// nothing.
    pub async fn read(
        &self,
        tenant: &TenantName,
        min_revision: Option<u64>,
    ) -> Result<Arc<Snapshot>, AppError> {
        let snapshot = self.cache.get(tenant).await?;
        // Every answer is at revision 0 or newer.
        let Some(requested) = min_revision.filter(|&requested| requested > 0) else {
            return Ok(snapshot.unwrap_or_else(|| self.cache.empty()));
        };
        let not_reached = |current| AppError::RevisionNotReached {
            tenant: tenant.clone(),
            requested,
            current,
        };
        match snapshot {
            Some(snapshot) if snapshot.revision() >= requested => return Ok(snapshot),
            // Held, or just loaded, at an older revision: catching up reads the store after this
            // read began, and holds what it has, up to the revision asked for or short of it.
            Some(_) => {
                self.cache.catch_up(tenant, requested).await?;
            }
            // Not known here, but perhaps created on another instance a moment ago: only the
            // store can say. The lookup makes it known if it exists, and it loads below.
            None => {
                let current = self.cache.directory.lookup(tenant).await?;
                if current < requested {
                    return Err(not_reached(current));
                }
            }
        }
        let snapshot = self.cache.get(tenant).await?;
        let snapshot = snapshot.unwrap_or_else(|| self.cache.empty());
        if snapshot.revision() < requested {
            // The store is not there yet; nor is any answer older than asked given.
            return Err(not_reached(snapshot.revision()));
        }
        Ok(snapshot)
    }

    /// Makes sure that what this instance answers for `tenant` reflects `revision`, which the
    /// store has: a held tenant behind it catches up; one not held is loaded fresh by its next
    /// read, once it is known to exist.
    pub async fn hold(&self, tenant: &TenantName, revision: u64) -> Result<(), AppError> {
        self.cache.directory.learn(tenant, revision);
        self.cache.catch_up(tenant, revision).await?;
        Ok(())
    }

    /// Up to `limit` of the changes `tenant` made after revision `after`, oldest first, from
    /// the store, with the tenant's revision there. An error if `min_revision` is newer than
    /// that revision, or if retention deleted any change after `after`.
    pub async fn changes(
        &self,
        tenant: &TenantName,
        after: u64,
        limit: usize,
        min_revision: Option<u64>,
    ) -> Result<ChangeLog, AppError> {
        let log = self.store.change_log(tenant, after, limit).await?;
        if let Some(requested) = min_revision.filter(|&requested| requested > log.revision) {
            return Err(AppError::RevisionNotReached {
                tenant: tenant.clone(),
                requested,
                current: log.revision,
            });
        }
        if !log.continues(after) {
            return Err(AppError::ChangesExpired {
                tenant: tenant.clone(),
                after,
                oldest: log.changes.first().map_or(log.revision + 1, |c| c.revision),
                current: log.revision,
            });
        }
        Ok(log)
    }

    /// May `user` do `action` on `resource` in `tenant`? With the revision answered from, if
    /// that needs no waiting: the tenant is held at `min_revision` or newer, or it does not
    /// exist as far as this instance knows and no revision is asked for (it is the empty
    /// tenant at revision 0). Answered without waiting on any I/O, nor by allocating. None if
    /// the tenant must be loaded or caught up first.
    pub fn check_cached(
        &self,
        tenant: &str,
        question: Question<'_>,
        min_revision: Option<u64>,
    ) -> Option<Answer> {
        let held = self.cache.with_cached(tenant, |snapshot| {
            min_revision
                .is_none_or(|min| snapshot.revision() >= min)
                .then(|| Answer::from(snapshot, question))
        });
        match held {
            Some(answered) => {
                if answered.is_some() {
                    bump(&self.stats.hits);
                }
                answered
            }
            None if min_revision.unwrap_or(0) == 0 && !self.cache.directory.contains(tenant) => {
                bump(&self.stats.unknown_tenant_reads);
                Some(Answer {
                    allowed: false,
                    revision: 0,
                })
            }
            None => None,
        }
    }

    /// The answer once the tenant is loaded, or caught up to `min_revision`: what a check
    /// takes when [`App::check_cached`] has none.
    pub async fn check_loaded(
        &self,
        tenant: &TenantName,
        question: Question<'_>,
        min_revision: Option<u64>,
    ) -> Result<Answer, AppError> {
        Ok(Answer::from(
            &*self.read(tenant, min_revision).await?,
            question,
        ))
    }

    /// The check's answer with the permissions it comes from ([`TenantPolicy::explain`]):
    /// apart from [`App::check_cached`], so that checks that do not ask pay nothing for it.
    pub async fn explain(
        &self,
        tenant: &TenantName,
        question: Question<'_>,
        min_revision: Option<u64>,
    ) -> Result<(Answer, Vec<Because>), AppError> {
        Ok(Answer::explained(
            &*self.read(tenant, min_revision).await?,
            question,
        ))
    }

    /// One snapshot of `tenant` for many checks: at `min_revision` or newer if the store has
    /// it, else the newest there is (whose revision tells which checks it cannot answer).
    pub async fn snapshot_for_checks(
        &self,
        tenant: &TenantName,
        min_revision: Option<u64>,
    ) -> Result<Arc<Snapshot>, AppError> {
        match self.read(tenant, min_revision).await {
            Err(AppError::RevisionNotReached { current, .. }) => {
                self.read(tenant, Some(current)).await
            }
            read => read,
        }
    }

    /// Reloads the tenant from the store and tells the other instances to check theirs. A
    /// tenant the store does not have is at revision 0, and there is nothing to tell.
    pub async fn refresh(&self, tenant: &TenantName) -> Result<u64, AppError> {
        let Some(snapshot) = self.cache.reload(tenant).await? else {
            return Ok(0);
        };
        self.bus.publish(Message::new(
            tenant,
            Operation::RefreshTenant,
            self.bus.identity(),
            snapshot.revision(),
        ));
        Ok(snapshot.revision())
    }

    /// Stores a new key and puts it in force here at once; the other instances are told.
    /// A task of its own, like [`App::write`].
    pub async fn create_key(self: &Arc<Self>, key: NewKey) -> Result<KeyRecord, AppError> {
        let app = self.clone();
        detached(async move {
            let record = app.store.create_key(&key).await?;
            tracing::info!(id = %record.id, scope = %record.scope, role = record.role.as_str(),
                created_by = record.created_by.as_deref(), "API key created");
            app.keys_changed(Operation::CreateApiKey).await;
            Ok(record)
        })
        .await
    }

    /// Revokes a key: once this returns, the key no longer works on this instance, and the
    /// other instances are told. A task of its own, like [`App::write`]: a revocation that
    /// committed must take effect even if the caller is gone.
    pub async fn revoke_key(self: &Arc<Self>, id: &KeyId) -> Result<Revocation, AppError> {
        let app = self.clone();
        let id = id.clone();
        detached(async move {
            let outcome = app.store.revoke_key(&id).await?;
            if outcome == Revocation::Revoked {
                tracing::info!(%id, "API key revoked");
                app.keys.forget(&id).await;
                app.keys_changed(Operation::RevokeApiKey).await;
            }
            Ok(outcome)
        })
        .await
    }

    /// A page of the tenants that exist, read from the store so that every instance gives the
    /// same answer: see [`Store::tenant_page`].
    pub async fn tenant_page(
        &self,
        prefix: &str,
        after: Option<&TenantName>,
        limit: usize,
    ) -> Result<Vec<TenantSummary>, AppError> {
        Ok(self.store.tenant_page(prefix, after, limit).await?)
    }

    /// Up to `limit` keys after the key `after`, revoked ones included, oldest first, as the
    /// store has them now.
    pub async fn list_keys(
        &self,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, AppError> {
        Ok(self.store.key_page(after, limit).await?)
    }

    /// Reloads the keys here, then tells the other instances to reload theirs. A failed
    /// reload is retried by the sweep; the change is committed either way.
    async fn keys_changed(&self, operation: Operation) {
        self.refresher.reload_keys("key change").await;
        self.bus
            .publish(Message::keys_changed(operation, self.bus.identity()));
    }

    /// Why this instance cannot serve fresh answers now, if it cannot: the store does not
    /// answer (tenants not cached cannot load), or the bus is down and no resync has succeeded
    /// for longer than the sweep should take (cached tenants may be stale past the bound).
    pub async fn unready_because(&self) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        if !self.database_ok().await {
            reasons.push("the store does not answer");
        }
        let since_resync = self.refresher.since_last_resync();
        if self.bus.state() == BusState::Disconnected && since_resync > 2 * self.resync_interval {
            reasons
                .push("the bus is down and no resync succeeded within twice RESYNC_INTERVAL_SECS");
        }
        reasons
    }

    /// Whether the store answers, within a short bound.
    pub async fn database_ok(&self) -> bool {
        matches!(
            tokio::time::timeout(HEALTH_TIMEOUT, self.store.ping()).await,
            Ok(Ok(()))
        )
    }
}

/// Runs `work` as a task of its own, in the caller's span, and waits for it: dropping the
/// wait does not stop the work.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, AppError>> + Send + 'static,
) -> Result<T, AppError> {
    tokio::spawn(work.instrument(tracing::Span::current()))
        .await
        .unwrap_or_else(|e| Err(AppError::Task(e)))
}

/// The question a check asks of a tenant, its names already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question<'a> {
    pub user: &'a str,
    pub resource: &'a str,
    pub action: &'a str,
}

/// A check's answer, with the revision of the snapshot it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub allowed: bool,
    pub revision: u64,
}

impl Answer {
    /// The answer now.
    pub fn from(snapshot: &Snapshot, question: Question<'_>) -> Self {
        let policy = &snapshot.policy;
        let now = clock::for_questions_of(policy);
        Self {
            allowed: policy.allows(question.user, question.resource, question.action, now),
            revision: snapshot.revision(),
        }
    }

    /// The answer now, with the permissions it comes from ([`TenantPolicy::explain`]).
    pub fn explained(snapshot: &Snapshot, question: Question<'_>) -> (Self, Vec<Because>) {
        let policy = &snapshot.policy;
        let now = clock::for_questions_of(policy);
        let because = policy.explain(question.user, question.resource, question.action, now);
        let answer = Self {
            allowed: !because.is_empty(),
            revision: snapshot.revision(),
        };
        (answer, because)
    }
}
