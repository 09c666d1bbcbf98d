//! The policy model: names, changes, and a tenant's policy with the check algorithm.
//!
//! Pure code: no I/O, no async, no clock. Everything else in the crate is an edge around it.

mod change;
mod cow_map;
mod document;
mod footprint;
mod instant;
mod name;
mod operation;
pub mod page;
mod tenant;

pub use change::{Change, Permission};
pub use document::{Desired, DesiredGroup, NestingRefused, counts, difference};
pub use instant::UnixMillis;
pub use name::{
    Action, GroupName, KeyName, MAX_NAME_BYTES, NameError, NameProblem, Resource, TenantName,
    UserName,
};
pub use operation::{Operation, UnknownOperation};
pub use page::Page;
pub use tenant::{
    AdvanceError, Because, GroupSummary, GroupView, MAX_NESTING_DEPTH, NestingProblem, Nestings,
    TenantPolicy, UserItem,
};
