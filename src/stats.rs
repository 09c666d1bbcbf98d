//! Counters an operator reads at /cache-stats. Relaxed atomics: each is a tally, never used
//! to order anything.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Stripes per counter. A counter bumped by every check on every core would otherwise be one
/// cache line passed from core to core on each request.
const STRIPES: usize = 8;

/// A tally that threads add to without contending: each thread has its own stripe.
#[derive(Debug, Default)]
pub struct Counter {
    stripes: [Stripe; STRIPES],
}

/// One cache line (two, for CPUs that fetch lines in pairs) per stripe.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.stripes[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// This thread's stripe, handed out round robin on first use.
fn stripe() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    STRIPE.with(|stripe| match stripe.get() {
        Some(index) => index,
        None => {
            let index = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % STRIPES;
            stripe.set(Some(index));
            index
        }
    })
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: Counter,)*
        }

        /// The counters' values at one moment.
        #[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
        pub struct Counts {
            $(pub $name: u64,)*
        }

        impl Stats {
            pub fn counts(&self) -> Counts {
                Counts { $($name: self.$name.get(),)* }
            }

            /// Every counter's name and value, for exporters.
            pub fn each(&self, mut visit: impl FnMut(&'static str, u64)) {
                $(visit(stringify!($name), self.$name.get());)*
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
    /// Reads of tenants that do not exist as far as this instance knows, answered as empty at
    /// revision 0 without the store.
    unknown_tenant_reads,
    /// Store queries asking whether tenants not known here exist (each for up to 1,000 names).
    tenant_lookups,
    /// Tenants evicted to keep those held within the cache's memory budget.
    evictions,
    /// First loads of tenants that had been evicted before.
    reloads_after_eviction,
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
    /// Messages this instance published itself (by its instance id; by its server ID from
    /// earlier releases, which send none).
    own_messages_ignored,
    /// Messages from another process with this instance's SERVER_ID (acted on all the same).
    server_id_clashes,
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
    /// Resyncs that compared every tenant held, because the store could no longer say what
    /// changed since the previous one (retention deleted it, or the store went back in time).
    full_resyncs,
    /// Changelog entries deleted by retention.
    changelog_pruned,
    /// Times the API keys in force were reloaded from the store.
    key_reloads,
    /// Key reloads that failed (the keys held stay in force until one succeeds).
    key_reload_failures,
}

/// Adds one to a counter.
pub fn bump(counter: &Counter) {
    counter.add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_sums_what_every_thread_added() {
        let counter = Counter::default();
        std::thread::scope(|scope| {
            for _ in 0..16 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        bump(&counter);
                    }
                });
            }
        });
        counter.add(5);
        assert_eq!(counter.get(), 16_005);
    }
}
