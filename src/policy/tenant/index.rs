//! The sorted sets the check's indexes are made of: a group's permissions, a user's groups,
//! and, for one resource or prefix, each action with the groups that hold it.
//!
//! Apart from the policy because each keeps itself sorted with no help from it, and knows
//! nothing of revisions or of which group an id stands for: small sorted vectors, shaped for
//! memory (the estimates in `footprint.rs` follow their layout) and, in [`Grants::allows`],
//! for the check.

use super::GroupId;
use crate::policy::Permission;

/// The action pattern that matches every action.
pub(super) const ANY_ACTION: &str = "*";

/// A group's permissions, sorted: a sorted vector rather than a tree, because a tree's
/// smallest node holds room for eleven, and most groups hold a handful.
#[derive(Debug, Clone, Default)]
pub(super) struct PermissionSet(Vec<Permission>);

impl PermissionSet {
    pub(super) fn contains(&self, permission: &Permission) -> bool {
        self.0.binary_search(permission).is_ok()
    }

    pub(super) fn insert(&mut self, permission: Permission) -> bool {
        match self.0.binary_search(&permission) {
            Ok(_) => false,
            Err(at) => {
                if self.0.len() < 8 {
                    // A handful grows one at a time rather than by doubling.
                    self.0.reserve_exact(1);
                }
                self.0.insert(at, permission);
                true
            }
        }
    }

    pub(super) fn remove(&mut self, permission: &Permission) -> bool {
        match self.0.binary_search(permission) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// The permissions that sort after `after`, in order.
    pub(super) fn after(&self, after: Option<&Permission>) -> &[Permission] {
        match after {
            Some(after) => &self.0[self.0.partition_point(|p| p <= after)..],
            None => &self.0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Permission> {
        self.0.iter()
    }
}

/// Group ids, sorted; usually a handful.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GroupSet(pub(super) Vec<GroupId>);

impl GroupSet {
    pub(super) fn insert(&mut self, id: GroupId) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, id);
                true
            }
        }
    }

    pub(super) fn remove(&mut self, id: GroupId) -> bool {
        match self.0.binary_search(&id) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn contains(&self, id: GroupId) -> bool {
        self.0.binary_search(&id).is_ok()
    }

    fn intersects(&self, other: &GroupSet) -> bool {
        let (small, large) = if self.0.len() <= other.0.len() {
            (self, other)
        } else {
            (other, self)
        };
        small.0.iter().any(|id| large.contains(*id))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// For one resource (or prefix): each action pattern with the groups that hold it.
#[derive(Debug, Clone, Default)]
pub(super) struct Grants(pub(super) Vec<(Box<str>, GroupSet)>);

impl Grants {
    pub(super) fn allows(&self, action: &str, groups: &GroupSet) -> bool {
        self.0.iter().any(|(pattern, holders)| {
            (&**pattern == action || &**pattern == ANY_ACTION) && holders.intersects(groups)
        })
    }

    pub(super) fn add(&mut self, action: &str, id: GroupId) -> bool {
        match self.0.iter_mut().find(|(pattern, _)| &**pattern == action) {
            Some((_, holders)) => holders.insert(id),
            None => {
                // Most resources have one action or two: room for exactly what is there.
                self.0.reserve_exact(1);
                self.0.push((action.into(), GroupSet(vec![id])));
                true
            }
        }
    }

    pub(super) fn remove(&mut self, action: &str, id: GroupId) -> bool {
        let Some(at) = self.0.iter().position(|(pattern, _)| &**pattern == action) else {
            return false;
        };
        let removed = self.0[at].1.remove(id);
        if self.0[at].1.is_empty() {
            self.0.swap_remove(at);
        }
        removed
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The prefix a resource pattern stands for, if it is a wildcard pattern.
pub(super) fn prefix_of(resource: &str) -> Option<&str> {
    resource.strip_suffix('*')
}
