//! Pages of a sorted listing, so that an answer stays bounded however large the list.

use std::collections::BinaryHeap;

/// At most `limit` items, in order, and whether more follow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

impl<T> Default for Page<T> {
    /// The page of an empty listing.
    fn default() -> Self {
        Self {
            items: Vec::new(),
            more: false,
        }
    }
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            more: self.more,
        }
    }

    /// The item the next page starts after, if there is a next page.
    pub fn resume_after(&self) -> Option<&T> {
        self.items.last().filter(|_| self.more)
    }
}

/// The `limit` smallest of `items`, in order, and whether any is left over.
///
/// The items of a hash map come in no order; a heap of the best `limit + 1` seen so far finds
/// the page in O(n log limit) without sorting (or copying) the whole list.
pub fn smallest<T: Ord>(items: impl IntoIterator<Item = T>, limit: usize) -> Page<T> {
    let mut best = BinaryHeap::with_capacity(limit.saturating_add(1).min(1024));
    for item in items {
        if best.len() <= limit {
            best.push(item);
        } else if best.peek().is_some_and(|largest| item < *largest) {
            best.pop();
            best.push(item);
        }
    }
    let mut items = best.into_sorted_vec();
    let more = items.len() > limit;
    items.truncate(limit);
    Page { items, more }
}

/// The first `limit` items of an already sorted iterator, and whether any is left over.
pub fn first<T>(items: impl IntoIterator<Item = T>, limit: usize) -> Page<T> {
    let mut items = items.into_iter();
    let page: Vec<T> = items.by_ref().take(limit).collect();
    Page {
        items: page,
        more: items.next().is_some(),
    }
}

/// The `limit` smallest distinct items of several runs, each already sorted, in order, and
/// whether any is left over. A run is read only while its items could still make the page,
/// so a page costs about `limit` items of each run after its start, not the runs' lengths.
pub fn smallest_of_runs<T: Ord, R: IntoIterator<Item = T>>(
    runs: impl IntoIterator<Item = R>,
    limit: usize,
) -> Page<T> {
    let mut best = std::collections::BTreeSet::new();
    for run in runs {
        for item in run {
            if best.len() > limit && best.last().is_some_and(|largest| item >= *largest) {
                break;
            }
            best.insert(item);
            if best.len() > limit + 1 {
                best.pop_last();
            }
        }
    }
    let more = best.len() > limit;
    let mut items: Vec<T> = best.into_iter().collect();
    items.truncate(limit);
    Page { items, more }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_pages_through_unordered_items_in_order() {
        let items = [7, 3, 9, 1, 5, 8, 2];
        let page = smallest(items, 3);
        assert_eq!(page.items, [1, 2, 3]);
        assert!(page.more);
        assert_eq!(page.resume_after(), Some(&3));

        let after = 3;
        let page = smallest(items.into_iter().filter(|i| *i > after), 3);
        assert_eq!(page.items, [5, 7, 8]);
        assert!(page.more);

        let page = smallest(items.into_iter().filter(|i| *i > 8), 3);
        assert_eq!(page.items, [9]);
        assert!(!page.more);
        assert_eq!(page.resume_after(), None);
    }

    #[test]
    fn smallest_says_no_more_when_the_list_fills_the_page_exactly() {
        let page = smallest([2, 1, 3], 3);
        assert_eq!(page.items, [1, 2, 3]);
        assert!(!page.more);
        assert_eq!(
            smallest(Vec::<u8>::new(), 3),
            Page {
                items: vec![],
                more: false
            }
        );
    }

    #[test]
    fn smallest_agrees_with_a_full_sort() {
        // A fixed permutation of 0..1000, so that the heap sees every order of arrival.
        let items: Vec<u32> = (0..1000u32).map(|i| (i * 7919) % 1000).collect();
        for limit in [1, 2, 10, 999, 1000, 5000] {
            let mut after = None;
            let mut seen: Vec<u32> = Vec::new();
            loop {
                let page = smallest(
                    items
                        .iter()
                        .copied()
                        .filter(|i| after.is_none_or(|a| *i > a)),
                    limit,
                );
                assert!(page.items.len() <= limit);
                seen.extend(&page.items);
                match page.resume_after() {
                    Some(last) => after = Some(*last),
                    None => break,
                }
            }
            assert_eq!(seen, (0..1000).collect::<Vec<u32>>(), "limit {limit}");
        }
    }

    #[test]
    fn first_takes_a_prefix_and_looks_one_further() {
        assert_eq!(
            first(1..=5, 2),
            Page {
                items: vec![1, 2],
                more: true
            }
        );
        assert_eq!(
            first(1..=2, 2),
            Page {
                items: vec![1, 2],
                more: false
            }
        );
        assert_eq!(
            first(1..=1, 2),
            Page {
                items: vec![1],
                more: false
            }
        );
    }
    #[test]
    fn smallest_of_runs_merges_sorted_runs_without_repeating_an_item() {
        let runs = [
            vec![1, 4, 9, 12],
            vec![2, 4, 5],
            vec![],
            vec![4, 9, 10, 11, 13],
        ];
        let mut after = None;
        let mut seen: Vec<i32> = Vec::new();
        loop {
            let page = smallest_of_runs(
                runs.iter()
                    .map(|run| run.iter().copied().filter(|i| after.is_none_or(|a| *i > a))),
                2,
            );
            assert!(page.items.len() <= 2);
            seen.extend(&page.items);
            match page.resume_after() {
                Some(last) => after = Some(*last),
                None => break,
            }
        }
        assert_eq!(seen, [1, 2, 4, 5, 9, 10, 11, 12, 13]);
        let whole = smallest_of_runs(runs.iter().map(|run| run.iter().copied()), 9);
        assert_eq!((whole.items.len(), whole.more), (9, false));
    }
}
