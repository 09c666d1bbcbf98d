//! A hash map that is cheap to copy and cheap to change a copy of.
//!
//! An instance applies each change to a copy of a tenant's policy and swaps the copy in. With
//! plain hash maps the copy costs as much as the tenant is large (a million assignments: tens
//! of milliseconds). Here the entries are split over [`SHARDS`] shards behind `Arc`s: copying
//! the map copies no entries at all, and changing the copy copies only the shard it touches
//! (about 1/128 of the entries), leaving the rest shared with the original.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashTable;

/// The hasher of every map in the policy: fast on short keys, seeded per process so that
/// nobody can choose names that collide.
pub type Hasher = foldhash::fast::RandomState;

const SHARDS: usize = 128;

/// A shard: a table of entries whose hashes the map computes once per look-up, for both the
/// choice of shard and the probe inside it.
type Shard<K, V> = HashTable<(K, V)>;

#[derive(Clone)]
pub struct CowMap<K, V> {
    shards: Arc<[Arc<Shard<K, V>>]>,
    /// The same seed for every copy, so that a key's hash, and so its shard, never changes.
    hasher: Hasher,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Arc::new(HashTable::new())).collect(),
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

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.shards[shard_of(hash)]
            .find(hash, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// Whether `key`, whose hash is `hash`, is in the map.
    fn holds<Q>(&self, hash: u64, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.shards[shard_of(hash)]
            .find(hash, |(k, _)| k.borrow() == key)
            .is_some()
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The shard for `hash`, made this copy's own: shared shards are copied on first change.
    fn shard_mut(&mut self, hash: u64) -> &mut Shard<K, V> {
        if Arc::get_mut(&mut self.shards).is_none() {
            // Shared with another copy: take a copy of the shard pointers (not of entries).
            self.shards = self.shards.iter().cloned().collect();
        }
        let shards = Arc::get_mut(&mut self.shards).expect("the shard list is this copy's own");
        Arc::make_mut(&mut shards[shard_of(hash)])
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        if !self.holds(hash, key) {
            // Do not copy a shard to find nothing in it.
            return None;
        }
        self.shard_mut(hash)
            .find_mut(hash, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        let hasher = self.hasher.clone();
        match self
            .shard_mut(hash)
            .entry(hash, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k))
        {
            hashbrown::hash_table::Entry::Occupied(mut entry) => {
                Some(std::mem::replace(&mut entry.get_mut().1, value))
            }
            hashbrown::hash_table::Entry::Vacant(entry) => {
                entry.insert((key, value));
                None
            }
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        if !self.holds(hash, key) {
            return None;
        }
        match self
            .shard_mut(hash)
            .find_entry(hash, |(k, _)| k.borrow() == key)
        {
            Ok(entry) => Some(entry.remove().0.1),
            Err(_) => None,
        }
    }

    /// The value for `key`, inserted with `default` if missing.
    pub fn get_or_insert_with(&mut self, key: K, default: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash(&key);
        let hasher = self.hasher.clone();
        let entry = self
            .shard_mut(hash)
            .entry(hash, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k))
            .or_insert_with(|| (key, default()));
        &mut entry.into_mut().1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards
            .iter()
            .flat_map(|shard| shard.iter().map(|(k, v)| (k, v)))
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len()).sum()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.is_empty())
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for CowMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.shards
                    .iter()
                    .flat_map(|shard| shard.iter().map(|(k, v)| (k, v))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_changes_independently_of_the_original() {
        let mut original: CowMap<String, u32> = CowMap::default();
        for n in 0..1000 {
            original.insert(format!("k{n}"), n);
        }
        let mut copy = original.clone();
        copy.insert("k1".into(), 99);
        copy.remove("k2");
        copy.insert("new".into(), 7);
        *copy.get_mut("k3").unwrap() += 1;
        assert_eq!(original.get("k1"), Some(&1));
        assert_eq!(original.get("k2"), Some(&2));
        assert_eq!(original.get("k3"), Some(&3));
        assert_eq!(original.get("new"), None);
        assert_eq!(original.len(), 1000);
        assert_eq!(copy.get("k1"), Some(&99));
        assert_eq!(copy.get("k2"), None);
        assert_eq!(copy.get("k3"), Some(&4));
        assert_eq!(copy.len(), 1000);
    }

    #[test]
    fn a_change_to_a_copy_shares_every_untouched_shard() {
        let mut original: CowMap<String, u32> = CowMap::default();
        for n in 0..10_000 {
            original.insert(format!("k{n}"), n);
        }
        let mut copy = original.clone();
        copy.insert("k5".into(), 0);
        let shared = original
            .shards
            .iter()
            .zip(copy.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, SHARDS - 1);
    }

    #[test]
    fn looking_up_a_missing_key_for_change_copies_nothing() {
        let mut original: CowMap<String, u32> = CowMap::default();
        original.insert("a".into(), 1);
        let mut copy = original.clone();
        assert!(copy.get_mut("missing").is_none());
        assert!(copy.remove("missing").is_none());
        assert!(Arc::ptr_eq(&original.shards, &copy.shards));
    }
}
