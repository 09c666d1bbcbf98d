//! The wall clock, as the policy's instants: the one place the server reads it for a
//! question whose answer depends on time (a membership that ends). Every instance compares
//! with its own clock, so no message is needed for an end to take effect everywhere.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::policy::{TenantPolicy, UnixMillis};

/// Now.
pub fn now() -> UnixMillis {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

/// The instant to ask `policy` at: now when some membership of the tenant ends, else any,
/// since the answers do not depend on it (and a check of such a tenant reads no clock).
pub fn for_questions_of(policy: &TenantPolicy) -> UnixMillis {
    if policy.has_endings() {
        now()
    } else {
        UnixMillis(0)
    }
}
