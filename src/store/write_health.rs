//! Whether a store takes writes, as its writes tell it: answering a query is not enough for a
//! health check while writes fail for want of a usable store (a full disk, an I/O error).
//! Once one fails that way, each health check asks for a small probe write, and the store is
//! healthy again once one succeeds: one probe at a time and at most one a second, however
//! many health checks ask, so that no flood of them can take the store's connections.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::StoreError;

/// The least time between two probes.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct WriteHealth {
    /// Why the last write failed for want of a usable store, until one succeeds.
    failing: Mutex<Option<String>>,
    /// When the probe last ran; held while it runs.
    last_probe: tokio::sync::Mutex<Option<Instant>>,
}

impl WriteHealth {
    /// Notes what a write's answer says of the store: `fault` tells an error that means the
    /// store cannot take writes from one that does not (a busy lock, a missing group).
    pub(crate) fn record<T>(
        &self,
        answer: &Result<T, StoreError>,
        fault: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
    ) {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match answer {
            Ok(_) => *failing = None,
            Err(StoreError::Unavailable(source)) if fault(source.as_ref()) => {
                *failing = Some(crate::error_chain(source.as_ref()));
            }
            Err(_) => {}
        }
    }

    /// Ok unless writes are failing and `probe`, a small write (which records its own
    /// outcome), does not succeed; a probe not run now answers with the last outcome.
    pub(crate) async fn check(
        &self,
        probe: impl Future<Output = Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        let failing = || {
            self.failing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .map_or(Ok(()), |reason| Err(StoreError::Unavailable(reason.into())))
        };
        if failing().is_ok() {
            return Ok(());
        }
        let Ok(mut last) = self.last_probe.try_lock() else {
            return failing();
        };
        if last.is_some_and(|at| at.elapsed() < PROBE_INTERVAL) {
            return failing();
        }
        *last = Some(Instant::now());
        probe.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(_: &(dyn std::error::Error + 'static)) -> bool {
        true
    }

    #[tokio::test]
    async fn a_failing_store_is_probed_at_most_once_a_second_and_recovers() {
        let health = WriteHealth::default();
        let probes = std::sync::atomic::AtomicUsize::new(0);
        let probe = |succeeds: bool| {
            let health = &health;
            let probes = &probes;
            async move {
                probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let answer = if succeeds {
                    Ok(())
                } else {
                    Err(StoreError::Unavailable("disk full".into()))
                };
                health.record(&answer, fault);
                answer
            }
        };
        assert!(health.check(probe(true)).await.is_ok());
        assert_eq!(
            probes.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "healthy: no probe"
        );

        health.record::<()>(&Err(StoreError::Unavailable("disk full".into())), fault);
        assert!(health.check(probe(false)).await.is_err());
        // Within the second: the last outcome, no new probe.
        assert!(health.check(probe(true)).await.is_err());
        assert_eq!(probes.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A failure that is not a fault changes nothing.
        health.record::<()>(&Err(StoreError::Internal("bug".into())), |_| false);

        tokio::time::sleep(PROBE_INTERVAL).await;
        assert!(health.check(probe(true)).await.is_ok());
        assert_eq!(probes.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert!(
            health.check(probe(false)).await.is_ok(),
            "healthy again: no probe"
        );
    }
}
