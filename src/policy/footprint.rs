//! How much memory a policy's entries own, estimated from their names' lengths alone, so that
//! a tenant is sized as it changes rather than by walking it.
//!
//! The maps' tables are measured exactly ([`super::cow_map::CowMap::table_bytes`]); these are
//! the allocations hanging off their entries: shared strings, the vectors of group ids and of
//! grants. The figures follow the types in `tenant.rs` and `tenant/index.rs` and an allocator
//! that hands out small blocks in 8-byte steps; `scripts/bench.sh` reports the estimate beside
//! the resident set size it stands for.

use std::mem::size_of;

use super::change::Permission;

/// Names up to this many bytes are stored inside an index key, with no allocation of their own.
const INLINE_KEY: usize = 24;

/// A block of at least `bytes`, as an allocator hands it out.
fn block(bytes: usize) -> usize {
    bytes.next_multiple_of(8)
}

/// A shared string: two reference counters, then the text.
fn shared_str(text: &str) -> usize {
    block(2 * size_of::<usize>() + text.len())
}

/// An index key's own allocation, if it is too long to be stored inline.
fn key(text: &str) -> usize {
    if text.len() > INLINE_KEY {
        block(text.len())
    } else {
        0
    }
}

/// A group: its shared name, and the shared set of its permissions.
pub fn group(name: &str) -> usize {
    shared_str(name) + block(2 * size_of::<usize>() + size_of::<Vec<Permission>>())
}

/// A permission: its place in its group's set, its two shared strings, and its share of the
/// index (a key when the resource is new, an action with a vector of group ids).
pub fn permission(permission: &Permission) -> usize {
    let resource = permission.resource.as_str();
    let action = permission.action.as_str();
    size_of::<Permission>()
        + shared_str(resource)
        + shared_str(action)
        + key(resource)
        + size_of::<(Box<str>, Vec<u32>)>()
        + block(action.len())
        + block(size_of::<u32>())
}

/// A user who is a member of some group: the key, if not inline, and the vector of group ids.
pub fn user(name: &str) -> usize {
    key(name) + block(4 * size_of::<u32>())
}

/// One membership: one more group id among the user's, and the user's entry among the
/// group's members (a key; in a large group's table also a control byte, at the fullness a
/// table keeps on average: counted alike for every group, so that the estimate does not
/// depend on the order members came in), with the key's own allocation if the name is too
/// long to be inline.
pub fn assignment(user: &str) -> usize {
    const KEY: usize = size_of::<compact_str::CompactString>() + 1;
    size_of::<u32>() + KEY * 8 / 7 + key(user)
}

/// The ends of `count` of one user's memberships: the user's key, if not inline, and a
/// vector of (group id, end) pairs. Nothing for a user whose memberships do not end.
pub fn endings(user: &str, count: usize) -> usize {
    if count == 0 {
        0
    } else {
        key(user) + block(count * size_of::<(u32, i64)>())
    }
}

/// One nesting: a group id among the group's parents and one among the parent's children.
pub fn nesting() -> usize {
    2 * size_of::<u32>()
}

/// What a nested group inherits: a shared vector of `len` group ids.
pub fn ancestors(len: usize) -> usize {
    block(2 * size_of::<usize>() + size_of::<Vec<u32>>()) + block(len * size_of::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Resource};

    #[test]
    fn long_names_cost_more_than_short_ones_and_short_keys_nothing_of_their_own() {
        assert_eq!(key("alice"), 0);
        assert_eq!(key(&"a".repeat(25)), 32);
        assert!(user(&"a".repeat(200)) > user("alice"));
        let short = Permission {
            resource: Resource::parse("resource", "doc").unwrap(),
            action: Action::parse("action", "read").unwrap(),
        };
        let long = Permission {
            resource: Resource::parse("resource", &"d".repeat(256)).unwrap(),
            action: Action::parse("action", "read").unwrap(),
        };
        // A long resource is held twice: as the shared string and as the index key.
        assert!(permission(&long) - permission(&short) >= 2 * (256 - 8));
    }
}
