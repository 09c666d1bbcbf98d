//! A hash map that is cheap to copy and cheap to change a copy of, and small when it is small.
//!
//! An instance applies each change to a copy of a tenant's policy and swaps the copy in. With
//! plain hash maps the copy costs as much as the tenant is large (a million assignments: tens
//! of milliseconds). A large map here is split over [`SHARDS`] tables behind `Arc`s: copying
//! the map copies no entries at all, and changing the copy copies only the table it touches
//! (about 1/128 of the entries), leaving the rest shared with the original.
//!
//! Most tenants are small, though, and 128 tables cost some 8 KiB however few entries they
//! hold: an empty tenant used to take 47 KiB. Up to [`ONE_TABLE_MAX`] entries a map is one
//! table, which a change copies whole (at that size a few microseconds, less than the shards'
//! own overhead in memory). A map that outgrows it is split into shards, and one that shrinks
//! below [`SHARDED_MIN`] is joined again; the gap between the two keeps a map whose size
//! hovers near a threshold from switching back and forth on every change.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::mem::size_of;
use std::sync::Arc;

use hashbrown::HashTable;

/// The hasher of every map in the policy: fast on short keys, seeded per process so that
/// nobody can choose names that collide.
pub type Hasher = foldhash::fast::RandomState;

const SHARDS: usize = 128;

/// The most entries a map keeps in one table.
pub const ONE_TABLE_MAX: usize = 512;

/// The fewest entries a sharded map keeps before it is joined into one table again.
pub const SHARDED_MIN: usize = ONE_TABLE_MAX / 2;

/// A table of entries whose hashes the map computes once per look-up, for both the choice of
/// shard and the probe inside it.
type Table<K, V> = HashTable<(K, V)>;

#[derive(Clone)]
enum Tables<K, V> {
    One(Arc<Table<K, V>>),
    Sharded(Arc<[Arc<Table<K, V>>]>),
}

#[derive(Clone)]
pub struct CowMap<K, V> {
    tables: Tables<K, V>,
    len: usize,
    /// The same seed for every copy, so that a key's hash, and so its shard, never changes.
    hasher: Hasher,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        Self {
            tables: Tables::One(Arc::new(HashTable::new())),
            len: 0,
            hasher: Hasher::default(),
        }
    }
}

/// The shard from bits that the table does not use itself: it takes the low bits for the
/// bucket and the top seven as the tag.
fn shard_of(hash: u64) -> usize {
    (hash >> 40) as usize % SHARDS
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The table that holds, or would hold, a key of hash `hash`.
    fn table(&self, hash: u64) -> &Table<K, V> {
        match &self.tables {
            Tables::One(table) => table,
            Tables::Sharded(shards) => &shards[shard_of(hash)],
        }
    }

    /// The table for `hash`, made this copy's own: a shared table is copied on first change.
    fn table_mut(&mut self, hash: u64) -> &mut Table<K, V> {
        Self::table_of(&mut self.tables, hash)
    }

    /// [`CowMap::table_mut`] borrowing only the tables, so that the length can change beside.
    fn table_of(tables: &mut Tables<K, V>, hash: u64) -> &mut Table<K, V> {
        match tables {
            Tables::One(table) => Arc::make_mut(table),
            Tables::Sharded(shards) => {
                if Arc::get_mut(shards).is_none() {
                    // Shared with another copy: take a copy of the shard pointers (not of
                    // entries).
                    *shards = shards.iter().cloned().collect();
                }
                let shards = Arc::get_mut(shards).expect("the shard list is this copy's own");
                Arc::make_mut(&mut shards[shard_of(hash)])
            }
        }
    }

    fn find<Q>(&self, hash: u64, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table(hash)
            .find(hash, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(self.hash(key), key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        // Do not copy a table to find nothing in it.
        self.find(hash, key)?;
        self.table_mut(hash)
            .find_mut(hash, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let mut value = Some(value);
        let slot = self.entry(key, || value.take().expect("taken once"));
        value.map(|value| std::mem::replace(slot, value))
    }

    /// The value for `key`, inserted with `default` if missing.
    pub fn get_or_insert_with(&mut self, key: K, default: impl FnOnce() -> V) -> &mut V {
        self.entry(key, default)
    }

    /// The value for `key`, inserted with `default` if missing: one probe, but at the
    /// threshold, where the map is split first if the key is new, so that the reference
    /// returned stays valid.
    fn entry(&mut self, key: K, default: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash(&key);
        if self.len >= ONE_TABLE_MAX
            && matches!(self.tables, Tables::One(_))
            && self.find(hash, &key).is_none()
        {
            self.split();
        }
        let hasher = &self.hasher;
        match Self::table_of(&mut self.tables, hash).entry(
            hash,
            |(k, _)| *k == key,
            |(k, _)| hasher.hash_one(k),
        ) {
            hashbrown::hash_table::Entry::Occupied(entry) => &mut entry.into_mut().1,
            hashbrown::hash_table::Entry::Vacant(entry) => {
                self.len += 1;
                &mut entry.insert((key, default())).into_mut().1
            }
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.find(hash, key)?;
        let removed = match self
            .table_mut(hash)
            .find_entry(hash, |(k, _)| k.borrow() == key)
        {
            Ok(entry) => entry.remove().0.1,
            Err(_) => return None,
        };
        self.len -= 1;
        if self.len < SHARDED_MIN && matches!(self.tables, Tables::Sharded(_)) {
            self.join();
        }
        Some(removed)
    }

    /// Spreads the entries of one table over [`SHARDS`] tables.
    fn split(&mut self) {
        let Tables::One(table) = &self.tables else {
            return;
        };
        let mut shards: Vec<Table<K, V>> = (0..SHARDS).map(|_| HashTable::new()).collect();
        for (key, value) in table.iter() {
            let hash = self.hash(key);
            shards[shard_of(hash)].insert_unique(hash, (key.clone(), value.clone()), |(k, _)| {
                self.hasher.hash_one(k)
            });
        }
        self.tables = Tables::Sharded(shards.into_iter().map(Arc::new).collect());
    }

    /// Gathers the entries of every shard into one table.
    fn join(&mut self) {
        let Tables::Sharded(shards) = &self.tables else {
            return;
        };
        let mut table = HashTable::with_capacity(self.len);
        for (key, value) in shards.iter().flat_map(|shard| shard.iter()) {
            let hash = self.hash(key);
            table.insert_unique(hash, (key.clone(), value.clone()), |(k, _)| {
                self.hasher.hash_one(k)
            });
        }
        self.tables = Tables::One(Arc::new(table));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes this map's tables take: buckets, control bytes and the shards' bookkeeping,
    /// but not what keys and values own elsewhere on the heap (their owner counts that).
    pub fn table_bytes(&self) -> usize {
        // An `Arc`'s allocation: two counters, then the value.
        let arc = |inner: usize| 2 * size_of::<usize>() + inner;
        let table = |table: &Table<K, V>| arc(size_of::<Table<K, V>>()) + table.allocation_size();
        match &self.tables {
            Tables::One(one) => table(one),
            Tables::Sharded(shards) => {
                arc(SHARDS * size_of::<usize>()) + shards.iter().map(|s| table(s)).sum::<usize>()
            }
        }
    }

    /// Whether the entries are split over shards.
    #[cfg(test)]
    fn is_sharded(&self) -> bool {
        matches!(self.tables, Tables::Sharded(_))
    }
}

impl<K, V> CowMap<K, V> {
    fn entries(&self) -> impl Iterator<Item = (&K, &V)> {
        let tables: &[Arc<Table<K, V>>] = match &self.tables {
            Tables::One(table) => std::slice::from_ref(table),
            Tables::Sharded(shards) => shards,
        };
        tables
            .iter()
            .flat_map(|table| table.iter().map(|(k, v)| (k, v)))
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for CowMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(n: u32) -> CowMap<String, u32> {
        let mut map = CowMap::default();
        for i in 0..n {
            map.insert(format!("k{i}"), i);
        }
        map
    }

    #[test]
    fn a_copy_changes_independently_of_the_original() {
        for size in [10, 1000] {
            let original = map_of(size);
            let mut copy = original.clone();
            copy.insert("k1".into(), 99);
            copy.remove("k2");
            copy.insert("new".into(), 7);
            *copy.get_mut("k3").unwrap() += 1;
            assert_eq!(original.get("k1"), Some(&1));
            assert_eq!(original.get("k2"), Some(&2));
            assert_eq!(original.get("k3"), Some(&3));
            assert_eq!(original.get("new"), None);
            assert_eq!(original.len(), size as usize);
            assert_eq!(copy.get("k1"), Some(&99));
            assert_eq!(copy.get("k2"), None);
            assert_eq!(copy.get("k3"), Some(&4));
            assert_eq!(copy.len(), size as usize);
        }
    }

    #[test]
    fn a_change_to_a_copy_of_a_sharded_map_shares_every_untouched_shard() {
        let original = map_of(10_000);
        let mut copy = original.clone();
        copy.insert("k5".into(), 0);
        let (Tables::Sharded(a), Tables::Sharded(b)) = (&original.tables, &copy.tables) else {
            panic!("10,000 entries are sharded");
        };
        let shared = a
            .iter()
            .zip(b.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, SHARDS - 1);
    }

    #[test]
    fn looking_up_a_missing_key_for_change_copies_nothing() {
        for size in [1, 1000] {
            let original = map_of(size);
            let mut copy = original.clone();
            assert!(copy.get_mut("missing").is_none());
            assert!(copy.remove("missing").is_none());
            let untouched = match (&original.tables, &copy.tables) {
                (Tables::One(a), Tables::One(b)) => Arc::ptr_eq(a, b),
                (Tables::Sharded(a), Tables::Sharded(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            assert!(untouched, "a map of {size}");
        }
    }

    #[test]
    fn a_map_is_one_table_until_it_outgrows_it_and_joins_again_well_below() {
        let mut map = map_of(ONE_TABLE_MAX as u32);
        assert!(!map.is_sharded());
        map.insert("one more".into(), 0);
        assert!(map.is_sharded());
        // Back down to the threshold it split at: still sharded, so that a map hovering there
        // does not switch on every change.
        map.remove("one more");
        assert!(map.is_sharded());
        for i in SHARDED_MIN as u32..ONE_TABLE_MAX as u32 {
            map.remove(&format!("k{i}"));
        }
        assert_eq!(map.len(), SHARDED_MIN);
        assert!(map.is_sharded());
        map.remove("k0");
        assert!(!map.is_sharded());
        assert_eq!(map.len(), SHARDED_MIN - 1);
        for i in 1..SHARDED_MIN as u32 {
            assert_eq!(map.get(&format!("k{i}")), Some(&i));
        }
    }

    #[test]
    fn a_small_map_takes_a_small_fraction_of_a_sharded_one() {
        let small = map_of(4);
        let sharded = map_of(ONE_TABLE_MAX as u32 + 1);
        assert!(small.table_bytes() < 512, "{}", small.table_bytes());
        assert!(
            sharded.table_bytes() > 8 * 1024,
            "{}",
            sharded.table_bytes()
        );
    }
}

#[cfg(test)]
mod properties {
    //! The map against a model: any sequence of inserts, removals and changes in place, with
    //! copies taken along the way, across both thresholds, must leave every copy holding
    //! exactly what the model says it held when the copy was taken.

    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Bump(u16),
        /// Removes every key below the bound, as deleting a group drops many members at once.
        RemoveBelow(u16),
        Copy,
    }

    fn op(keys: u16) -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0..keys, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            4 => (0..keys).prop_map(Op::Remove),
            2 => (0..keys).prop_map(Op::Bump),
            1 => (0..keys).prop_map(Op::RemoveBelow),
            1 => Just(Op::Copy),
        ]
    }

    fn agree(map: &CowMap<u16, u32>, model: &HashMap<u16, u32>) -> Result<(), TestCaseError> {
        prop_assert_eq!(map.len(), model.len());
        prop_assert_eq!(map.iter().count(), model.len());
        for (k, v) in model {
            prop_assert_eq!(map.get(k), Some(v));
        }
        // One table below the join threshold, shards above the split one.
        if map.len() < SHARDED_MIN {
            prop_assert!(!map.is_sharded());
        }
        if map.len() > ONE_TABLE_MAX {
            prop_assert!(map.is_sharded());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_copy_holds_what_the_model_held(
            ops in prop::collection::vec(op(1500), 0..3000),
        ) {
            let mut map = CowMap::default();
            let mut model = HashMap::new();
            let mut copies = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Op::Bump(k) => {
                        let got = map.get_mut(&k).map(|v| { *v = v.wrapping_add(1); *v });
                        let want = model.get_mut(&k).map(|v| { *v = v.wrapping_add(1); *v });
                        prop_assert_eq!(got, want);
                    }
                    Op::RemoveBelow(bound) => {
                        for k in 0..bound {
                            prop_assert_eq!(map.remove(&k), model.remove(&k));
                        }
                    }
                    Op::Copy => copies.push((map.clone(), model.clone())),
                }
                agree(&map, &model)?;
            }
            for (copy, model) in &copies {
                agree(copy, model)?;
            }
        }
    }
}
