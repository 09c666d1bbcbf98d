//! Watching a tenant: its changes, in revision order, none missed and none twice, as this
//! instance comes to hold them.
//!
//! A watcher first sends the changes after its starting revision, then follows the revisions
//! the cache announces ([`crate::cache::TenantCache::advances`]): this instance's own writes,
//! the bus's messages, the sweep's findings. The changes themselves always come from the
//! store's changelog, read after the last one sent, so an announcement folded into a later
//! one (a lagging receiver) or never made (a bus message lost, found by the sweep) loses
//! nothing: the next read covers every revision in between. A change is sent only once this
//! instance holds its revision ([`App::read`] brings the tenant there first), so a check sent
//! here after the event reflects it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppError};
use crate::policy::TenantName;
use crate::store::{Recorded, TenantRevision};

/// How many changes a watcher reads from the store at once.
const PAGE: usize = 256;

/// How long a watcher waits for its client to make room for the next change before it cuts
/// the client off.
const SLOW_CLIENT: Duration = Duration::from_secs(5);

/// How long a watcher waits before it asks the store again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// What to watch, from where, and whether the credential still allows it.
pub struct Watch {
    pub tenant: TenantName,
    /// The revision whose successors come first.
    pub after: u64,
    /// Asked again whenever the keys in force change: false ends the watch.
    pub allowed: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client went away, or the server is shutting down.
    Closed,
    /// The credential went out of force.
    Revoked,
    /// The client did not take the changes as fast as they came: it may resume after `after`,
    /// the last change it was given.
    Overrun { after: u64 },
    /// Retention deleted changes the watcher had yet to send: the client reads the tenant's
    /// state afresh and follows from there.
    Expired { oldest: u64 },
}

/// Sends `watch`'s changes into `out` (boxed: a channel keeps room for 32 of its items from
/// the start, and a watcher that is idle should cost little) until the client goes, `stop`
/// is cancelled, the credential goes out of force, or `out` stays full for [`SLOW_CLIENT`]
/// (the client does not keep up).
pub async fn follow(
    app: Arc<App>,
    watch: Watch,
    out: mpsc::Sender<Box<Recorded>>,
    stop: CancellationToken,
) -> Ending {
    // Subscribed before the first read of the store: whatever is announced after that read
    // is heard.
    let mut advances = app.cache.advances();
    let mut keys = app.keys.changes();
    let mut follower = Follower {
        app,
        tenant: watch.tenant,
        out,
        sent: watch.after,
        wanted: watch.after,
        ask_store: true,
    };
    let mut failing = false;
    loop {
        match follower.catch_up().await {
            Ok(()) => failing = false,
            Err(Stop::Ended(ending)) => return ending,
            Err(Stop::Failed(e)) => {
                if !failing {
                    tracing::warn!(tenant = %follower.tenant, error = %crate::error_chain(&e),
                        "a watch cannot read the changes; trying again");
                }
                failing = true;
                follower.ask_store = true;
            }
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ending::Closed,
            () = follower.out.closed() => return Ending::Closed,
            changed = keys.changed() => {
                if changed.is_err() || !(watch.allowed)() {
                    return Ending::Revoked;
                }
            }
            heard = advances.recv() => match heard {
                Ok(TenantRevision { tenant, revision }) => {
                    if tenant == follower.tenant {
                        follower.wanted = follower.wanted.max(revision);
                    }
                }
                // Announcements were dropped: the store says what they said.
                Err(RecvError::Lagged(_)) => follower.ask_store = true,
                Err(RecvError::Closed) => return Ending::Closed,
            },
            () = tokio::time::sleep(RETRY), if failing => {}
        }
    }
}

enum Stop {
    Ended(Ending),
    Failed(AppError),
}

struct Follower {
    app: Arc<App>,
    tenant: TenantName,
    out: mpsc::Sender<Box<Recorded>>,
    /// The revision of the last change sent.
    sent: u64,
    /// The newest revision announced.
    wanted: u64,
    /// Whether the store must be asked even though nothing newer was announced: at the
    /// start, and after announcements were lost.
    ask_store: bool,
}

impl Follower {
    /// Sends every change up to the newest revision announced (or the store's, when asked),
    /// page by page.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        while self.ask_store || self.sent < self.wanted {
            let log = match self.app.changes(&self.tenant, self.sent, PAGE, None).await {
                Ok(log) => log,
                Err(AppError::ChangesExpired { oldest, .. }) => {
                    return Err(Stop::Ended(Ending::Expired { oldest }));
                }
                Err(e) => return Err(Stop::Failed(e)),
            };
            self.ask_store = false;
            self.wanted = self.wanted.max(log.revision);
            let Some(last) = log.changes.last().map(|change| change.revision) else {
                // Announced, but not in the store: nothing to send. Only a message that
                // promised a revision the store never had does this.
                self.wanted = self.sent;
                return Ok(());
            };
            // Hold what is about to be sent, so that a check that follows the event sees it.
            self.app
                .read(&self.tenant, Some(last))
                .await
                .map_err(Stop::Failed)?;
            for change in log.changes {
                let revision = change.revision;
                // A full buffer is a client reading slower than changes come, or one taking a
                // long replay: it has SLOW_CLIENT to make room before it is cut off.
                match tokio::time::timeout(SLOW_CLIENT, self.out.reserve()).await {
                    Ok(Ok(room)) => {
                        room.send(Box::new(change));
                        self.sent = revision;
                    }
                    Ok(Err(_)) => return Err(Stop::Ended(Ending::Closed)),
                    Err(_) => return Err(Stop::Ended(Ending::Overrun { after: self.sent })),
                }
            }
        }
        Ok(())
    }
}
