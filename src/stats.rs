//! Counters an operator reads at /cache-stats. Relaxed atomics: each is a tally, never used
//! to order anything.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// The counters' values at one moment.
        #[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
        pub struct Counts {
            $(pub $name: u64,)*
        }

        impl Stats {
            pub fn counts(&self) -> Counts {
                Counts { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Reads answered from a tenant already cached.
    hits,
    /// Reads that found the tenant not cached yet.
    misses,
    /// Tenants loaded from the store on first use.
    loads,
    /// Cached tenants brought forward by replaying the store's changelog.
    incremental_refreshes,
    /// Cached tenants reloaded whole: too far behind, changelog pruned or not applying, or
    /// /refresh-tenant.
    full_reloads,
    /// Own writes applied to the cached tenant without a reload.
    writes_applied,
    /// Messages handed to Redis.
    messages_published,
    /// Messages that could not be published (the sweep makes up for them).
    publish_failures,
    /// Messages received on the channel, valid or not.
    messages_received,
    /// Messages that carried this instance's own server ID.
    own_messages_ignored,
    /// Messages about a revision this instance already holds, or a tenant it does not hold.
    stale_messages_ignored,
    /// Messages for a tenant whose refresh was already queued, folded into that refresh.
    coalesced_messages,
    /// Messages that could not be parsed.
    malformed_messages,
    /// Refreshes, by bus message or resync (sweep or reconnect), that moved a tenant to a
    /// newer revision.
    refreshes_applied,
    /// Times the subscriber connected again after losing Redis.
    reconnects,
    /// Periodic comparisons of cached revisions with the store's.
    sweeps,
    /// Resyncs (sweep or reconnect) that could not read the store's revisions.
    sweep_failures,
    /// Changelog entries deleted by retention.
    changelog_pruned,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
