//! rbac-server: a multi-tenant RBAC policy server.
//!
//! Applications ask one question all day: may this user do this action on this resource, in
//! this tenant? Every instance answers from memory; the store (an embedded SQLite file by
//! default, PostgreSQL for several machines) is the source of truth, and Redis pub/sub tells
//! the other instances when a tenant changed.
//!
//! # Layout
//!
//! - [`policy`]: the model. Names, changes, and a tenant's policy with the check algorithm.
//!   Pure: no I/O, no async.
//! - [`store`]: the source of truth behind the [`store::Store`] trait; [`store::sqlite`] and
//!   [`store::postgres`] are its backends. All SQL lives there.
//! - [`cache`]: per-tenant snapshots, swapped atomically, loaded on first use; the tenants
//!   that exist ([`cache::directory`]); the memory budget and eviction ([`cache::memory`]).
//! - [`keys`]: API keys and what a credential grants; [`keys::ring`] holds the keys in force.
//! - [`bus`]: `tenant-refresh` messages; [`bus::redis`] moves them over Redis pub/sub and
//!   sends what it hears into an inbox, on one node, a Sentinel service's master or a Redis
//!   Cluster, as [`bus::target`] reads REDIS_URL.
//! - [`refresh`]: what a message or the periodic sweep does to the cache and the keys.
//! - [`feed`]: a watched tenant's changes, in order, as this instance comes to hold them.
//! - [`app`]: writes (commit, update the cache, publish) and reads (with read-your-writes).
//! - [`http`]: the REST API: one list of routes, its auth and its error format.
//! - [`server`]: [`server::Server`] binds, then serves until shutdown; [`config`], [`host`]
//!   and [`telemetry`] feed it.
//! - [`redact`]: keeping the passwords in the store and Redis URLs out of anything shown.
//! - [`clock`]: the wall clock, for the memberships that end.
//!
//! docs/ARCHITECTURE.md follows the three paths file by file. In short:
//!
//! - a check: HTTP -> [`app::App::check_cached`] -> [`cache`] ->
//!   [`policy::TenantPolicy::allows`];
//! - a write: HTTP -> [`app::App::write`] -> [`store::Store::write`] (one transaction) ->
//!   [`cache::TenantCache::record_write`] -> [`bus::Bus::publish`];
//! - a change from another instance: [`bus::redis`] -> the inbox -> [`refresh::run`], which
//!   catches the tenant up from the store if it holds an older revision.

pub mod admission;
pub mod app;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod config;
pub mod feed;
pub mod host;
pub mod http;
pub mod keys;
pub mod policy;
pub mod redact;
pub mod refresh;
pub mod server;
pub mod stats;
pub mod store;
pub mod telemetry;

/// An error and its sources on one line, for logs: "outer: inner: root".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
