//! The keys in force on this instance: every unrevoked key, loaded whole from the store.
//!
//! The set is small (keys, not users), so it is always reloaded whole: after a key is created
//! or revoked here, when a bus message says another instance did, and at every sweep. A
//! reload replaces the set atomically; a request verifying a key never waits on one.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use subtle::ConstantTimeEq;
use tokio::sync::{Mutex, Notify};

use super::{Grant, SecretHash, hash_secret, split};
use crate::store::{Store, StoreError};

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
}

#[derive(Default)]
pub struct KeyRing {
    keys: ArcSwapOption<HashMap<String, InForce>>,
    /// Serializes reloads, so that a slow one that read the store earlier can never replace
    /// the set a later one installed (which could bring a revoked key back).
    reloading: Mutex<()>,
    wanted: Notify,
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
        match keys.get(id) {
            Some(key) if bool::from(key.secret_hash.ct_eq(&presented)) => {
                Verdict::Valid(key.grant.clone())
            }
            _ => Verdict::Invalid,
        }
    }

    /// Replaces the set with the store's keys in force; returns how many there are.
    pub async fn reload(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let records = store.keys().await?;
        let keys: HashMap<String, InForce> = records
            .into_iter()
            .filter(|record| record.revoked_at.is_none())
            .map(|record| {
                let grant = Grant::key(&record.id, record.role, record.scope);
                (
                    record.id,
                    InForce {
                        secret_hash: record.secret_hash,
                        grant: Arc::new(grant),
                    },
                )
            })
            .collect();
        let count = keys.len();
        self.keys.store(Some(Arc::new(keys)));
        Ok(count)
    }

    /// Takes one key out of force at once, without the store: a revocation must hold on this
    /// instance even when the reload that follows it fails.
    pub async fn forget(&self, id: &str) {
        let _one_at_a_time = self.reloading.lock().await;
        let Some(keys) = self.keys.load_full() else {
            return;
        };
        if keys.contains_key(id) {
            let kept = keys
                .iter()
                .filter(|(key_id, _)| key_id.as_str() != id)
                .map(|(key_id, key)| (key_id.clone(), key.clone()))
                .collect();
            self.keys.store(Some(Arc::new(kept)));
        }
    }

    /// Asks the reloading task for a reload; requests made while one runs fold into one more.
    pub fn request_reload(&self) {
        self.wanted.notify_one();
    }

    /// Waits for [`KeyRing::request_reload`].
    pub async fn reload_requested(&self) {
        self.wanted.notified().await;
    }

    /// How many keys are in force, if they have been loaded.
    pub fn count(&self) -> Option<usize> {
        self.keys.load().as_ref().map(|keys| keys.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::{NewKey, Role, Scope, mint};
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn a_key_verifies_once_loaded_and_not_after_it_is_forgotten() {
        let store = SqliteStore::open_url("sqlite::memory:", Duration::from_secs(5), 1)
            .await
            .unwrap();
        let ring = KeyRing::default();
        let minted = mint().unwrap();
        assert!(matches!(ring.verify(&minted.token), Verdict::Unknown));
        store
            .create_key(&NewKey {
                id: minted.id.clone(),
                name: None,
                scope: Scope::All,
                role: Role::Check,
                secret_hash: minted.secret_hash,
                created_by: None,
            })
            .await
            .unwrap();
        assert_eq!(ring.reload(&store).await.unwrap(), 1);
        match ring.verify(&minted.token) {
            Verdict::Valid(grant) => assert_eq!(grant.actor, format!("key:{}", minted.id)),
            other => panic!("{other:?}"),
        }
        let mut wrong = minted.token.clone();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert!(matches!(ring.verify(&wrong), Verdict::Invalid));

        ring.forget(&minted.id).await;
        assert!(matches!(ring.verify(&minted.token), Verdict::Invalid));
        assert_eq!(ring.count(), Some(0));
    }
}
