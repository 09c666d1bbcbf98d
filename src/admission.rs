//! How many writes of one tenant may be at the store at once. Writes of one tenant queue for
//! its lock in the store anyway, each holding a pooled connection while it waits: without a
//! bound, a tenant whose lock is held (by a long transaction, by a flood of its writes) would
//! take every connection, and writes of every other tenant, and readiness, would wait with it.
//! Past the bound a write waits here, holding no connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::policy::TenantName;

pub struct Admission {
    per_tenant: usize,
    /// Only tenants with writes admitted or waiting: an entry goes with its last permit.
    tenants: Mutex<HashMap<TenantName, Arc<Semaphore>>>,
}

/// A write's place at the store, given back when dropped.
pub struct Admitted<'a> {
    admission: &'a Admission,
    tenant: TenantName,
    permit: Option<OwnedSemaphorePermit>,
}

/// No place came free within the time given.
#[derive(Debug, thiserror::Error)]
#[error("{writes} writes of tenant '{tenant}' are already waiting for the store")]
pub struct Crowded {
    pub tenant: TenantName,
    pub writes: usize,
}

impl Admission {
    /// At most `per_tenant` writes of any one tenant at the store at once (at least one).
    pub fn new(per_tenant: usize) -> Self {
        Self {
            per_tenant: per_tenant.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The share of a pool of `connections` that one tenant's writes may hold: a quarter.
    pub fn for_pool(connections: u32) -> Self {
        Self::new(connections as usize / 4)
    }

    /// Waits up to `wait` for a place for a write of `tenant`.
    pub async fn admit(
        &self,
        tenant: &TenantName,
        wait: Duration,
    ) -> Result<Admitted<'_>, Crowded> {
        let semaphore = {
            let mut tenants = self.tenants.lock().expect("admission lock");
            tenants
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        // Made before waiting, so that the entry is cleaned up however the wait ends.
        let mut admitted = Admitted {
            admission: self,
            tenant: tenant.clone(),
            permit: None,
        };
        // The wait owns this call's reference, and is gone once it ends, so that the last
        // one dropped finds only the map's.
        let acquired = tokio::time::timeout(wait, semaphore.acquire_owned()).await;
        match acquired {
            Ok(Ok(permit)) => {
                admitted.permit = Some(permit);
                Ok(admitted)
            }
            // The semaphore is never closed; a timeout is the only way here.
            _ => Err(Crowded {
                tenant: tenant.clone(),
                writes: self.per_tenant,
            }),
        }
    }

    /// Tenants with writes at the store or waiting for it.
    #[cfg(test)]
    fn tenants_writing(&self) -> usize {
        self.tenants.lock().expect("admission lock").len()
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut tenants = self.admission.tenants.lock().expect("admission lock");
        // The map's own reference is the last one: nobody holds or waits for this tenant.
        if tenants
            .get(&self.tenant)
            .is_some_and(|semaphore| Arc::strong_count(semaphore) == 1)
        {
            tenants.remove(&self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantName {
        TenantName::parse("tenant", name).unwrap()
    }

    #[tokio::test]
    async fn one_tenant_waits_past_its_share_while_others_go_on_and_nothing_is_left() {
        let admission = Admission::new(2);
        let short = Duration::from_millis(50);
        let a1 = admission.admit(&tenant("a"), short).await.unwrap();
        let a2 = admission.admit(&tenant("a"), short).await.unwrap();
        let crowded = admission.admit(&tenant("a"), short).await.err().unwrap();
        assert_eq!(crowded.writes, 2);
        // Another tenant is not held up.
        let b = admission.admit(&tenant("b"), short).await.unwrap();
        assert_eq!(admission.tenants_writing(), 2);
        drop(b);
        assert_eq!(admission.tenants_writing(), 1);

        // A waiting write gets the place given back.
        let a = tenant("a");
        let waiting = admission.admit(&a, Duration::from_secs(5));
        drop(a1);
        let a3 = waiting.await.unwrap();
        drop(a3);
        drop(a2);
        assert_eq!(
            admission.tenants_writing(),
            0,
            "no entry outlives its writes"
        );
    }

    #[tokio::test]
    async fn a_wait_that_times_out_leaves_no_entry() {
        let admission = Admission::new(1);
        let held = admission
            .admit(&tenant("a"), Duration::from_millis(10))
            .await
            .unwrap();
        assert!(
            admission
                .admit(&tenant("a"), Duration::from_millis(10))
                .await
                .is_err()
        );
        drop(held);
        assert_eq!(admission.tenants_writing(), 0);
    }
}
