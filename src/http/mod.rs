//! The HTTP API: routes, auth, extractors and the error format. See docs/API.md.
//!
//! A request goes [`serve`] (connections) → [`request`] (id, span, deadline, metrics) →
//! `routes` (the one list of routes, with the credential each group needs) → a handler
//! module (`reads`, `batch`, `listings`, `changes`, `watch`, `writes`, `keys`, `ops`, and
//! `authzen` for the standard API) → [`crate::app`]. Errors become responses in `error` only.

mod auth;
mod authzen;
mod batch;
mod changes;
mod console;
mod credential;
mod document;
mod error;
mod extract;
mod keys;
mod listings;
pub mod metrics;
mod openapi;
mod ops;
mod page;
mod reads;
pub mod request;
mod responses;
mod routes;
pub mod serve;
mod state;
mod tenants;
mod timestamp;
mod tokens;
mod watch;
mod writes;

pub use authzen::Settings as AuthzenSettings;
pub use error::ApiError;
pub use extract::MAX_BODY_BYTES;
pub use routes::{paths, router};
pub use state::{AppState, Services};
pub use tokens::Tokens;
pub use watch::Watching;
