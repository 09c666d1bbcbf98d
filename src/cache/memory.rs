//! What the held tenants take, the budget they must fit in, and which of them to evict when
//! they do not.
//!
//! Each held tenant's size is an estimate ([`crate::policy::TenantPolicy::estimated_bytes`]
//! plus the cache's own bookkeeping), updated whenever its snapshot is replaced. Recency is a
//! logical clock that moves at every eviction round; a check stamps its tenant with the
//! current tick, writing only when the stamp differs, so that the cores checking one tenant
//! do not all write to it on every check. Every tenant used since the last round counts as
//! equally recent; what was not used since an older round is evicted first.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// Eviction frees down to this share of the budget (15/16), not just below it, so that the
/// next few loads do not each start a round of their own.
const LOW_WATER_SIXTEENTHS: u64 = 15;

pub struct Memory {
    budget: u64,
    /// The estimated bytes of every tenant held.
    held: AtomicU64,
    /// How many tenants are held.
    count: AtomicU64,
    /// Read by every check: on a cache line of its own, not one that every load and
    /// replacement writes to, as `held` and `count` are.
    clock: Padded<AtomicU64>,
    over_budget: Notify,
}

/// A value alone on its cache line (two, for CPUs that fetch lines in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// How many spans of the recency clock eviction tells apart: tenants last used within one
/// span are equally recent to it.
const SPANS: usize = 256;

/// The span of a tick. Clamped: checks go on while eviction reads the stamps, so a stamp may
/// be newer than the newest, or (stamped with a tick read a moment before) older than the
/// oldest, that an earlier pass saw.
fn span(last_used: u64, oldest: u64, width: u64) -> usize {
    ((last_used.saturating_sub(oldest) / width) as usize).min(SPANS - 1)
}

/// Which tenants to evict, decided from every held tenant's recency and size in two passes
/// over them and a fixed-size table: a list of a few million tenants, sorted, would itself
/// take hundreds of megabytes just when memory is short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    oldest: u64,
    /// Ticks per span.
    width: u64,
    /// Every tenant in an older span goes.
    cutoff: usize,
    /// Of the cutoff span, tenants go until this many bytes are freed.
    from_cutoff: u64,
    /// (last used, bytes) of the tenant that stays however large: the most recently used,
    /// the largest if several were used in the same tick.
    keep: (u64, u64),
}

impl Plan {
    fn span(&self, last_used: u64) -> usize {
        span(last_used, self.oldest, self.width)
    }

    /// Whether a tenant last used at `last_used`, of `bytes`, goes, given the bytes already
    /// freed from the cutoff span.
    pub fn evicts(&self, last_used: u64, bytes: u64, freed_from_cutoff: u64) -> bool {
        if (last_used, bytes) == self.keep {
            return false;
        }
        let span = self.span(last_used);
        span < self.cutoff || (span == self.cutoff && freed_from_cutoff < self.from_cutoff)
    }

    /// Whether a tenant evicted at `last_used` counts against [`Plan::from_cutoff`].
    pub fn in_cutoff(&self, last_used: u64) -> bool {
        self.span(last_used) == self.cutoff
    }
}

impl Memory {
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            held: AtomicU64::new(0),
            count: AtomicU64::new(0),
            clock: Padded(AtomicU64::new(0)),
            over_budget: Notify::new(),
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// How many tenants are held.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The current tick of the recency clock.
    pub fn now(&self) -> u64 {
        self.clock.0.load(Ordering::Relaxed)
    }

    /// Moves the clock on: whatever is used from now on is newer than anything used before.
    pub fn tick(&self) -> u64 {
        self.clock.0.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records that a held tenant went from `old` to `new` estimated bytes (0 for a tenant not
    /// held before, or no longer held: no tenant held weighs nothing), and wakes the evictor
    /// if that is over the budget.
    pub fn resize(&self, old: u64, new: u64) {
        match (old, new) {
            (0, 0) => {}
            (0, _) => {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            (_, 0) => {
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let held = if new >= old {
            self.held.fetch_add(new - old, Ordering::Relaxed) + (new - old)
        } else {
            self.held.fetch_sub(old - new, Ordering::Relaxed) - (old - new)
        };
        if held > self.budget {
            self.over_budget.notify_one();
        }
    }

    /// Resolves once the held tenants are over the budget (at once, if they were when last
    /// resized and nobody has waited since).
    pub async fn over_budget(&self) {
        self.over_budget.notified().await;
    }

    /// What to evict, least recently used first, to bring the tenants held down to the
    /// low-water mark; None while they fit. `held` gives every held tenant's (last used,
    /// bytes); it is called twice, and checks may stamp tenants in between. The most recently
    /// used tenant stays whatever it weighs, so that a tenant larger than the whole budget is
    /// still served from memory rather than loaded again for every read.
    pub fn plan<I>(&self, held: impl Fn() -> I) -> Option<Plan>
    where
        I: Iterator<Item = (u64, u64)>,
    {
        let (mut oldest, mut newest, mut total, mut keep) = (u64::MAX, 0, 0u64, (0, 0));
        for (last_used, bytes) in held() {
            oldest = oldest.min(last_used);
            newest = newest.max(last_used);
            total += bytes;
            keep = keep.max((last_used, bytes));
        }
        if total <= self.budget {
            return None;
        }
        let excess = total - self.budget / 16 * LOW_WATER_SIXTEENTHS;
        let width = (newest - oldest) / SPANS as u64 + 1;
        let mut spans = [0u64; SPANS];
        for (last_used, bytes) in held() {
            if (last_used, bytes) != keep {
                spans[span(last_used, oldest, width)] += bytes;
            }
        }
        let mut older = 0;
        let cutoff = spans
            .iter()
            .position(|&bytes| {
                let enough = older + bytes >= excess;
                if !enough {
                    older += bytes;
                }
                enough
            })
            .unwrap_or(SPANS - 1);
        Some(Plan {
            oldest,
            width,
            cutoff,
            from_cutoff: excess.saturating_sub(older),
            keep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tenants `plan` evicts of `held` (name, last used, bytes), visited in the given
    /// order, as the cache does.
    fn evicted(memory: &Memory, held: &[(&'static str, u64, u64)]) -> Vec<&'static str> {
        let Some(plan) = memory.plan(|| held.iter().map(|&(_, used, bytes)| (used, bytes))) else {
            return Vec::new();
        };
        let mut freed = 0;
        let mut gone = Vec::new();
        for &(name, used, bytes) in held {
            if plan.evicts(used, bytes, freed) {
                if plan.in_cutoff(used) {
                    freed += bytes;
                }
                gone.push(name);
            }
        }
        gone.sort_unstable();
        gone
    }

    #[test]
    fn nothing_is_evicted_while_everything_fits() {
        let memory = Memory::new(1000);
        assert!(evicted(&memory, &[("a", 1, 600), ("b", 2, 400)]).is_empty());
    }

    #[test]
    fn the_least_recently_used_go_first_until_below_the_low_water_mark() {
        let memory = Memory::new(1600);
        // 2000 held, low water 1500: evicting "older" (300) leaves 1700, then "old" too.
        let held = [
            ("new", 9, 400),
            ("old", 5, 300),
            ("older", 3, 300),
            ("newer", 7, 1000),
        ];
        assert_eq!(evicted(&memory, &held), ["old", "older"]);
    }

    #[test]
    fn within_the_oldest_span_only_as_much_goes_as_needed() {
        let memory = Memory::new(1600);
        // All last used in the same tick but the newest: 2100 held, 600 must go, and each of
        // those weighs 100, whichever order they come in.
        let mut held: Vec<(&'static str, u64, u64)> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .into_iter()
            .map(|name| (name, 4, 100))
            .collect();
        held.push(("recent", 5, 1300));
        assert_eq!(evicted(&memory, &held).len(), 6);
        held.reverse();
        assert_eq!(evicted(&memory, &held).len(), 6);
    }

    #[test]
    fn the_most_recently_used_tenant_stays_even_larger_than_the_budget() {
        let memory = Memory::new(100);
        let held = [("huge", 5, 5000), ("small", 1, 10)];
        assert_eq!(evicted(&memory, &held), ["small"]);
        assert!(evicted(&memory, &[("huge", 5, 5000)]).is_empty());
        // Used in the same tick as others: the largest of them stays.
        let held = [("huge", 5, 5000), ("small", 5, 10), ("old", 1, 10)];
        assert_eq!(evicted(&memory, &held), ["old", "small"]);
    }

    #[test]
    fn a_wide_range_of_ticks_still_evicts_oldest_first() {
        let memory = Memory::new(10_000);
        // A thousand tenants of 20 bytes, last used at ticks 0, 1000, 2000, ...: 20,000 held,
        // 10,625 must go; the oldest 532 or so go, in spans of four ticks' worth of tenants.
        let held: Vec<(&'static str, u64, u64)> = (0..1000u64)
            .map(|n| {
                (
                    &*Box::leak(format!("t{n:04}").into_boxed_str()),
                    n * 1000,
                    20,
                )
            })
            .collect();
        let gone = evicted(&memory, &held);
        let freed: u64 = gone.len() as u64 * 20;
        assert!((10_625..10_625 + 20).contains(&freed), "{freed}");
        // Sorted by name is sorted by age: the evicted are a prefix.
        assert_eq!(
            gone,
            held.iter()
                .take(gone.len())
                .map(|h| h.0)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn resizing_keeps_the_total() {
        let memory = Memory::new(100);
        memory.resize(0, 70);
        memory.resize(0, 20);
        memory.resize(70, 50);
        assert_eq!(memory.held(), 70);
        assert_eq!(memory.count(), 2);
        memory.resize(50, 0);
        assert_eq!(memory.held(), 20);
        assert_eq!(memory.count(), 1);
    }

    #[test]
    fn stamps_outside_the_range_first_seen_fall_in_the_nearest_span() {
        assert_eq!(span(u64::MAX, 10, 1), SPANS - 1);
        assert_eq!(span(0, 10, 1), 0);
        // 200 held, 110 to free: "old" (100) is not enough, so the cutoff is the last span,
        // and 10 more bytes must come from it.
        let memory = Memory::new(100);
        let plan = memory.plan(|| [(10, 100), (20, 100)].into_iter()).unwrap();
        // Stamped between the passes: older than the oldest, newer than the newest.
        assert!(plan.evicts(0, 100, 0) && !plan.in_cutoff(0));
        assert!(plan.evicts(1_000, 50, 0) && plan.in_cutoff(1_000));
        assert!(!plan.evicts(1_000, 50, 10));
    }
}
