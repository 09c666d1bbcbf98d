//! The keys in force on this instance: every unrevoked key, loaded whole from the store.
//!
//! The set is small (keys, not users), so it is always reloaded whole: after a key is created
//! or revoked here, when a bus message says another instance did, and at every sweep. A
//! reload replaces the set atomically; a request verifying a key never waits on one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwapOption;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::sync::{Mutex, watch};

use super::{Grant, KeyId, KeyRecord, SecretHash, hash_secret, split};

/// What a presented token is, as far as keys go.
#[derive(Debug)]
pub enum Verdict {
    Valid(Arc<Grant>),
    /// Not a key in force: unknown, revoked, or a wrong secret.
    Invalid,
    /// The keys have not been loaded yet, so this cannot be told.
    Unknown,
}

#[derive(Clone)]
struct InForce {
    secret_hash: SecretHash,
    grant: Arc<Grant>,
    /// Carried from one set to the next, so that a reload loses no use.
    used: Arc<Use>,
}

/// When a key was last presented here, in whole seconds since the Unix epoch (0: not since
/// the process started), and the last such time written to the store.
#[derive(Default)]
struct Use {
    last: AtomicI64,
    recorded: AtomicI64,
}

/// How stale a key's last use may be in memory: a key presented on every request is noted
/// once a minute, so that its requests share a cache line that is read, not written.
const USE_RESOLUTION_SECS: i64 = 60;

/// Uses of keys to write to the store: the key, and when it was last presented.
pub type Uses = Vec<(KeyId, OffsetDateTime)>;

#[derive(Default)]
pub struct KeyRing {
    keys: ArcSwapOption<HashMap<KeyId, InForce>>,
    /// Serializes reloads, fetch included, so that a slow one that read the store earlier can
    /// never replace the set a later one installed (which could bring a revoked key back).
    reloading: Mutex<()>,
    /// Counts the changes of the set, so that what holds on to a credential (a watch stream)
    /// can check it again when a key may have gone.
    generation: watch::Sender<u64>,
}

impl KeyRing {
    /// Whether `token` is a key in force, and what it grants.
    pub fn verify(&self, token: &str) -> Verdict {
        let Some((id, secret)) = split(token) else {
            return Verdict::Invalid;
        };
        // Hashed before the look-up, so that an unknown id takes as long as a wrong secret.
        let presented = hash_secret(secret);
        let keys = self.keys.load();
        let Some(keys) = keys.as_ref() else {
            return Verdict::Unknown;
        };
        match keys.get(&id) {
            Some(key) if bool::from(key.secret_hash.ct_eq(&presented)) => {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                if key.used.last.load(Ordering::Relaxed) <= now - USE_RESOLUTION_SECS {
                    key.used.last.store(now, Ordering::Relaxed);
                }
                Verdict::Valid(key.grant.clone())
            }
            _ => Verdict::Invalid,
        }
    }

    /// Replaces the set with the keys in force among the records `fetch` reads (every key,
    /// revoked ones included); returns how many are in force. `fetch` runs only once this
    /// reload's turn has come, so that what it reads is never older than what an earlier
    /// reload installed.
    pub async fn reload<E>(
        &self,
        fetch: impl AsyncFnOnce() -> Result<Vec<KeyRecord>, E>,
    ) -> Result<usize, E> {
        let _one_at_a_time = self.reloading.lock().await;
        let records = fetch().await?;
        let held = self.keys.load_full();
        let keys: HashMap<KeyId, InForce> = records
            .into_iter()
            .filter(|record| record.revoked_at.is_none())
            .map(|record| {
                let grant = Grant::key(record.id.as_str(), record.role, record.scope);
                let used = held
                    .as_ref()
                    .and_then(|held| held.get(&record.id))
                    .map_or_else(Arc::default, |key| key.used.clone());
                (
                    record.id,
                    InForce {
                        secret_hash: record.secret_hash,
                        grant: Arc::new(grant),
                        used,
                    },
                )
            })
            .collect();
        let count = keys.len();
        self.keys.store(Some(Arc::new(keys)));
        self.generation.send_modify(|generation| *generation += 1);
        Ok(count)
    }

    /// Takes one key out of force at once, without reading the keys again: a revocation must
    /// hold on this instance even when the reload that follows it fails.
    pub async fn forget(&self, id: &KeyId) {
        let _one_at_a_time = self.reloading.lock().await;
        let Some(keys) = self.keys.load_full() else {
            return;
        };
        if keys.contains_key(id) {
            let kept = keys
                .iter()
                .filter(|(key_id, _)| *key_id != id)
                .map(|(key_id, key)| (key_id.clone(), key.clone()))
                .collect();
            self.keys.store(Some(Arc::new(kept)));
            self.generation.send_modify(|generation| *generation += 1);
        }
    }

    /// The keys presented since their use was last recorded, with when they last were.
    pub fn uses_to_record(&self) -> Uses {
        let Some(keys) = self.keys.load_full() else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|(id, key)| {
                let last = key.used.last.load(Ordering::Relaxed);
                (last > key.used.recorded.load(Ordering::Relaxed))
                    .then(|| Some((id.clone(), OffsetDateTime::from_unix_timestamp(last).ok()?)))
                    .flatten()
            })
            .collect()
    }

    /// Notes that `uses` are in the store, so that they are not written again.
    pub fn recorded(&self, uses: &Uses) {
        let Some(keys) = self.keys.load_full() else {
            return;
        };
        for (id, at) in uses {
            if let Some(key) = keys.get(id) {
                key.used
                    .recorded
                    .fetch_max(at.unix_timestamp(), Ordering::Relaxed);
            }
        }
    }

    /// Whether the key `id` is in force.
    pub fn holds(&self, id: &KeyId) -> bool {
        self.keys
            .load()
            .as_ref()
            .is_some_and(|keys| keys.contains_key(id))
    }

    /// Marks a change each time the set of keys in force is replaced or loses a key.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// How many keys are in force, if they have been loaded.
    pub fn count(&self) -> Option<usize> {
        self.keys.load().as_ref().map(|keys| keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Role, Scope, mint};

    fn record(id: &KeyId, secret_hash: SecretHash, revoked: bool) -> KeyRecord {
        KeyRecord {
            id: id.clone(),
            name: None,
            scope: Scope::All,
            role: Role::Check,
            secret_hash,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            created_by: None,
            revoked_at: revoked.then_some(time::OffsetDateTime::UNIX_EPOCH),
            last_used_at: None,
        }
    }

    #[tokio::test]
    async fn a_use_is_noted_until_recorded_and_outlives_a_reload() {
        let ring = KeyRing::default();
        let (token, id, hash) = {
            let minted = mint().unwrap();
            (minted.token, minted.id, minted.secret_hash)
        };
        let fetch = || async { Ok::<_, ()>(vec![record(&id, hash, false)]) };
        ring.reload(fetch).await.unwrap();
        assert!(ring.uses_to_record().is_empty(), "not presented yet");
        let before = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(matches!(ring.verify(&token), Verdict::Valid(_)));
        let uses = ring.uses_to_record();
        assert_eq!(uses.len(), 1);
        assert_eq!(uses[0].0, id);
        assert!(uses[0].1.unix_timestamp() >= before);
        // A reload keeps the use; once recorded, it is not offered again.
        ring.reload(fetch).await.unwrap();
        assert_eq!(ring.uses_to_record(), uses);
        ring.recorded(&uses);
        assert!(ring.uses_to_record().is_empty());
        // Within the minute, another use changes nothing to record.
        assert!(matches!(ring.verify(&token), Verdict::Valid(_)));
        assert!(ring.uses_to_record().is_empty());
    }

    async fn reload(ring: &KeyRing, records: Vec<KeyRecord>) -> usize {
        ring.reload(async || Ok::<_, ()>(records)).await.unwrap()
    }

    #[tokio::test]
    async fn a_key_verifies_once_loaded_and_not_after_it_is_forgotten() {
        let ring = KeyRing::default();
        let minted = mint().unwrap();
        assert!(matches!(ring.verify(&minted.token), Verdict::Unknown));
        let revoked = mint().unwrap();
        let records = vec![
            record(&minted.id, minted.secret_hash, false),
            record(&revoked.id, revoked.secret_hash, true),
        ];
        assert_eq!(reload(&ring, records).await, 1);
        match ring.verify(&minted.token) {
            Verdict::Valid(grant) => assert_eq!(grant.actor, format!("key:{}", minted.id)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(ring.verify(&revoked.token), Verdict::Invalid));
        let mut wrong = minted.token.clone();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert!(matches!(ring.verify(&wrong), Verdict::Invalid));

        ring.forget(&minted.id).await;
        assert!(matches!(ring.verify(&minted.token), Verdict::Invalid));
        assert_eq!(ring.count(), Some(0));
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_keys_held() {
        let ring = KeyRing::default();
        let minted = mint().unwrap();
        reload(&ring, vec![record(&minted.id, minted.secret_hash, false)]).await;
        assert_eq!(
            ring.reload(async || Err::<Vec<KeyRecord>, _>("down")).await,
            Err("down")
        );
        assert!(matches!(ring.verify(&minted.token), Verdict::Valid(_)));
    }

    #[tokio::test]
    async fn a_reload_reads_only_after_the_one_before_it_installed_its_keys() {
        let ring = KeyRing::default();
        let minted = mint().unwrap();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (second_read, mut second_read_seen) = tokio::sync::oneshot::channel::<()>();
        // The first reload reads a set that still holds the key, and is slow to finish.
        let first = ring.reload(async || {
            released.await.unwrap();
            Ok::<_, ()>(vec![record(&minted.id, minted.secret_hash, false)])
        });
        // The second, asked for later, reads the key revoked.
        let second = ring.reload(async || {
            second_read.send(()).unwrap();
            Ok::<_, ()>(vec![record(&minted.id, minted.secret_hash, true)])
        });
        let both = async { tokio::join!(first, second) };
        let check = async {
            tokio::task::yield_now().await;
            assert!(
                second_read_seen.try_recv().is_err(),
                "the second reload read while the first was under way"
            );
            release.send(()).unwrap();
        };
        let ((first, second), ()) = tokio::join!(both, check);
        assert_eq!((first, second), (Ok(1), Ok(0)));
        assert!(matches!(ring.verify(&minted.token), Verdict::Invalid));
    }
}
