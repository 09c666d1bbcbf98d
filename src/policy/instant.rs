//! An instant as the policy knows it: milliseconds since the Unix epoch, in UTC. The policy
//! reads no clock: whoever asks a question that depends on time (is a membership that ends
//! still in force?) passes the instant it is asked at.

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);
