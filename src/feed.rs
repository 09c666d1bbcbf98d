//! Watching changes: one tenant's, in revision order, none missed and none twice (a revision
//! is resumed after only once its last change is sent, so a stream cut off inside a write of
//! many gives that write's first changes again); or every tenant's, as this instance learns
//! of them.
//!
//! Both follow the revisions the directory announces ([`crate::cache::directory::Advance`]):
//! this instance's own writes, refreshes after bus messages, first loads, lookups, the sweep's
//! findings. The changes themselves always come from the store's changelog. A change is sent
//! only once this instance answers from its revision ([`App::hold`]), so a check sent here
//! after the event reflects it.
//!
//! A tenant's watcher hears only its tenant's newest revision ([`Following`]), which wakes it
//! for that tenant's changes alone, and reads the changelog after the last change it sent:
//! revisions learned while it was busy fold into one read covering every revision in between.
//! It can start from any revision the changelog still has. An every-tenant watcher has no
//! revision to start from or resume after: it sends the ranges announced after it opened,
//! each exactly once, and a watcher that lost some cannot know which, and is cut off.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppError};
use crate::cache::directory::{Advance, Following};
use crate::policy::TenantName;
use crate::store::Recorded;

/// How many changes a watcher reads from the store at once.
const PAGE: usize = 256;

/// How long a watcher waits for its client to make room for the next change before it cuts
/// the client off.
const SLOW_CLIENT: Duration = Duration::from_secs(5);

/// How long a watcher waits before it asks the store again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Whose changes to watch.
pub enum Subject {
    /// One tenant's, from the revision after `after`.
    Tenant { tenant: TenantName, after: u64 },
    /// Every tenant's, from those this instance learns of after the watch opens.
    Every,
}

/// What to watch, and whether the credential still allows it.
pub struct Watch {
    pub subject: Subject,
    /// Asked again whenever the keys in force change: false ends the watch.
    pub allowed: Box<dyn Fn() -> bool + Send + Sync>,
}

/// A change sent to a watcher, with the tenant it belongs to.
#[derive(Debug)]
pub struct Sent {
    pub tenant: TenantName,
    pub change: Recorded,
    /// Whether it is the last change of its revision (a write of many makes several under
    /// one): only then has the watcher had the whole revision, and may resume after it.
    pub ends_revision: bool,
}

/// Why a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The client went away, or the server is shutting down.
    Closed,
    /// The credential went out of force.
    Revoked,
    /// The client did not take the changes as fast as they came. A tenant's watcher may
    /// resume after `after`, the last change it was given; an every-tenant watcher has
    /// nothing to resume after.
    Overrun { after: Option<u64> },
    /// Retention deleted changes of `tenant` the watcher had yet to send: the client reads the
    /// tenant's state afresh and follows from there.
    Expired { tenant: TenantName, oldest: u64 },
}

/// Sends `watch`'s changes into `out` (boxed: a channel keeps room for 32 of its items from
/// the start, and a watcher that is idle should cost little) until the client goes, `stop`
/// is cancelled, the credential goes out of force, or `out` stays full for [`SLOW_CLIENT`]
/// (the client does not keep up).
pub async fn follow(
    app: Arc<App>,
    watch: Watch,
    out: mpsc::Sender<Box<Sent>>,
    stop: CancellationToken,
) -> Ending {
    // Subscribed before the first read of the store: whatever is learned after that read is
    // heard.
    let mut keys = app.keys.changes();
    let mut feed = match watch.subject {
        Subject::Tenant { tenant, after } => Feed::Tenant {
            following: app.cache.directory.follow(&tenant),
            tenant,
            sent: after,
            wanted: after,
            ask_store: true,
        },
        Subject::Every => Feed::Every {
            advances: app.cache.directory.advances(),
            pending: None,
        },
    };
    let courier = Courier { app, out };
    let mut failing = false;
    loop {
        match feed.catch_up(&courier).await {
            Ok(()) => failing = false,
            Err(Stop::Ended(ending)) => return ending,
            Err(Stop::Failed(tenant, e)) => {
                if !failing {
                    tracing::warn!(%tenant, error = %crate::error_chain(&e),
                        "a watch cannot read the changes; trying again");
                }
                failing = true;
            }
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ending::Closed,
            () = courier.out.closed() => return Ending::Closed,
            changed = keys.changed() => {
                if changed.is_err() || !(watch.allowed)() {
                    return Ending::Revoked;
                }
            }
            ended = feed.hear(), if feed.listens() => {
                if let Some(ending) = ended {
                    return ending;
                }
            }
            () = tokio::time::sleep(RETRY), if failing => {}
        }
    }
}

enum Stop {
    Ended(Ending),
    Failed(TenantName, AppError),
}

enum Feed {
    Tenant {
        following: Following,
        tenant: TenantName,
        /// The revision of the last change sent.
        sent: u64,
        /// The newest revision announced.
        wanted: u64,
        /// Whether the store must be asked even though nothing newer was announced: at the
        /// start, after announcements were lost, and after a failure.
        ask_store: bool,
    },
    Every {
        advances: broadcast::Receiver<Advance>,
        /// The range being sent; the next is not taken before it is.
        pending: Option<Advance>,
    },
}

impl Feed {
    /// Whether to take the next announcement now.
    fn listens(&self) -> bool {
        match self {
            Feed::Tenant { .. } => true,
            Feed::Every { pending, .. } => pending.is_none(),
        }
    }

    /// Waits for the next announcement; what ends the watch, if one does.
    async fn hear(&mut self) -> Option<Ending> {
        match self {
            Feed::Tenant {
                following, wanted, ..
            } => {
                *wanted = (*wanted).max(following.changed().await);
                None
            }
            Feed::Every { advances, pending } => match advances.recv().await {
                Ok(advance) => {
                    *pending = Some(advance);
                    None
                }
                // Ranges were dropped, and nothing says which: the client must start over.
                Err(RecvError::Lagged(_)) => Some(Ending::Overrun { after: None }),
                Err(RecvError::Closed) => Some(Ending::Closed),
            },
        }
    }

    /// Sends every change announced (or, for a tenant's watcher asked to, every change the
    /// store has), page by page.
    async fn catch_up(&mut self, courier: &Courier) -> Result<(), Stop> {
        match self {
            Feed::Tenant {
                tenant,
                sent,
                wanted,
                ask_store,
                ..
            } => {
                while *ask_store || sent < wanted {
                    // Asked again after a failure, whatever was announced meanwhile.
                    *ask_store = true;
                    let page = courier.page(tenant, *sent, u64::MAX).await?;
                    *ask_store = false;
                    *wanted = (*wanted).max(page.current);
                    if page.changes.is_empty() {
                        // Announced, but not in the store: nothing to send. Only a message
                        // that promised a revision the store never had does this.
                        *wanted = *sent;
                        return Ok(());
                    }
                    courier
                        .deliver(tenant, page.changes, sent)
                        .await
                        .map_err(|slow| slow.overrun(Some(*sent)))?;
                }
            }
            Feed::Every { pending, .. } => {
                while let Some(advance) = pending {
                    if advance.from >= advance.to {
                        *pending = None;
                        break;
                    }
                    let page = courier
                        .page(&advance.tenant, advance.from, advance.to)
                        .await?;
                    if page.changes.is_empty() {
                        *pending = None;
                        break;
                    }
                    let tenant = advance.tenant.clone();
                    courier
                        .deliver(&tenant, page.changes, &mut advance.from)
                        .await
                        .map_err(|slow| slow.overrun(None))?;
                }
            }
        }
        Ok(())
    }
}

/// Reads changes from the store and hands them to the client.
struct Courier {
    app: Arc<App>,
    out: mpsc::Sender<Box<Sent>>,
}

struct Page {
    changes: Vec<Recorded>,
    /// The tenant's revision in the store.
    current: u64,
}

/// What made a delivery stop short.
enum Short {
    /// The client went away.
    Gone,
    /// The client did not make room in time.
    Slow,
    /// This instance could not catch up to the changes, so they were not sent.
    Behind(TenantName, AppError),
}

impl Short {
    /// Why the watch stops, `after` being where its client may resume.
    fn overrun(self, after: Option<u64>) -> Stop {
        match self {
            Short::Gone => Stop::Ended(Ending::Closed),
            Short::Slow => Stop::Ended(Ending::Overrun { after }),
            Short::Behind(tenant, e) => Stop::Failed(tenant, e),
        }
    }
}

impl Courier {
    /// The next page of `tenant`'s changes after `after`, none past `until`.
    async fn page(&self, tenant: &TenantName, after: u64, until: u64) -> Result<Page, Stop> {
        let mut log = match self.app.changes(tenant, after, PAGE, None).await {
            Ok(log) => log,
            Err(AppError::ChangesExpired { oldest, .. }) => {
                return Err(Stop::Ended(Ending::Expired {
                    tenant: tenant.clone(),
                    oldest,
                }));
            }
            Err(e) => return Err(Stop::Failed(tenant.clone(), e)),
        };
        log.changes.retain(|change| change.revision <= until);
        Ok(Page {
            changes: log.changes,
            current: log.revision,
        })
    }

    /// Sends `changes`, once this instance answers from the last of them, recording in `sent`
    /// the revision of each as it goes.
    async fn deliver(
        &self,
        tenant: &TenantName,
        changes: Vec<Recorded>,
        sent: &mut u64,
    ) -> Result<(), Short> {
        let Some(last) = changes.last().map(|change| change.revision) else {
            return Ok(());
        };
        self.app
            .hold(tenant, last)
            .await
            .map_err(|e| Short::Behind(tenant.clone(), e))?;
        let mut changes = changes.into_iter().peekable();
        while let Some(change) = changes.next() {
            let revision = change.revision;
            // A page holds whole revisions, so the last change of the page ends one too.
            let ends_revision = changes.peek().is_none_or(|next| next.revision != revision);
            // A full buffer is a client reading slower than changes come, or one taking a long
            // replay: it has SLOW_CLIENT to make room before it is cut off.
            match tokio::time::timeout(SLOW_CLIENT, self.out.reserve()).await {
                Ok(Ok(room)) => {
                    room.send(Box::new(Sent {
                        tenant: tenant.clone(),
                        change,
                        ends_revision,
                    }));
                    if ends_revision {
                        *sent = revision;
                    }
                }
                Ok(Err(_)) => return Err(Short::Gone),
                Err(_) => return Err(Short::Slow),
            }
        }
        Ok(())
    }
}
