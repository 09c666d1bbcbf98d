//! The sorted sets the check's indexes are made of: a group's permissions, a user's groups,
//! and, for one resource or prefix, each action with the groups that hold it.
//!
//! Apart from the policy because each keeps itself sorted with no help from it, and knows
//! nothing of revisions or of which group an id stands for: small sorted vectors, shaped for
//! memory (the estimates in `footprint.rs` follow their layout) and, in [`Grants::allows`],
//! for the check.

use super::{GroupId, Key};
use crate::policy::Permission;
use crate::policy::UnixMillis;
use crate::policy::cow_map::CowMap;

/// The action pattern that matches every action.
pub(super) const ANY_ACTION: &str = "*";

/// Whether a permission's action pattern covers `action`.
pub(super) fn matches_action(held: &str, action: &str) -> bool {
    held == action || held == ANY_ACTION
}

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

    /// The permissions whose resource sorts at or after `resource`, in order.
    pub(super) fn starting_at(&self, resource: &str) -> &[Permission] {
        &self.0[self.0.partition_point(|p| p.resource.as_str() < resource)..]
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

    pub(super) fn intersects(&self, other: &[GroupId]) -> bool {
        let (small, large) = if self.0.len() <= other.len() {
            (&self.0[..], other)
        } else {
            (other, &self.0[..])
        };
        small.iter().any(|id| large.binary_search(id).is_ok())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The ends of one user's memberships that end: (group, the instant it ends), by group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Endings(pub(super) Vec<(GroupId, UnixMillis)>);

impl Endings {
    pub(super) fn of(&self, id: GroupId) -> Option<UnixMillis> {
        self.0
            .binary_search_by_key(&id, |(group, _)| *group)
            .ok()
            .map(|at| self.0[at].1)
    }

    /// Sets or clears the end of the membership in `id`.
    pub(super) fn set(&mut self, id: GroupId, end: Option<UnixMillis>) {
        match (self.0.binary_search_by_key(&id, |(group, _)| *group), end) {
            (Ok(at), Some(end)) => self.0[at].1 = end,
            (Ok(at), None) => {
                self.0.remove(at);
            }
            (Err(at), Some(end)) => self.0.insert(at, (id, end)),
            (Err(_), None) => {}
        }
    }

    /// Whether the membership in `id` is in force at `now`: it has no end, or ends later.
    pub(super) fn in_force(&self, id: GroupId, now: UnixMillis) -> bool {
        self.of(id).is_none_or(|end| end > now)
    }
}

/// The most members a group keeps in a sorted vector; past it, a [`CowMap`].
const FEW_MEMBERS_MAX: usize = 64;

/// A group's members, by name: a sorted vector while the group is small, as most groups are
/// (a hash table costs its empty slots and an allocation of its own), and a [`CowMap`] once it
/// is large, so that a member joining a group of a million copies a shard of it, not all of
/// it. A map that shrinks to half the threshold becomes a vector again, so that a group whose
/// size hovers at the threshold does not switch back and forth on every change.
#[derive(Debug, Clone)]
pub(super) enum MemberSet {
    Few(Vec<Key>),
    Many(CowMap<Key, ()>),
}

impl Default for MemberSet {
    fn default() -> Self {
        MemberSet::Few(Vec::new())
    }
}

impl MemberSet {
    pub(super) fn insert(&mut self, user: &str) -> bool {
        match self {
            MemberSet::Few(few) => match few.binary_search_by(|member| member.as_str().cmp(user)) {
                Ok(_) => false,
                Err(at) if few.len() < FEW_MEMBERS_MAX => {
                    if few.len() < 8 {
                        // A handful grows one at a time rather than by doubling.
                        few.reserve_exact(1);
                    }
                    few.insert(at, user.into());
                    true
                }
                Err(_) => {
                    let mut many = CowMap::default();
                    for member in few.drain(..) {
                        many.insert(member, ());
                    }
                    many.insert(user.into(), ());
                    *self = MemberSet::Many(many);
                    true
                }
            },
            MemberSet::Many(many) => many.insert(user.into(), ()).is_none(),
        }
    }

    pub(super) fn remove(&mut self, user: &str) -> bool {
        match self {
            MemberSet::Few(few) => match few.binary_search_by(|member| member.as_str().cmp(user)) {
                Ok(at) => {
                    few.remove(at);
                    true
                }
                Err(_) => false,
            },
            MemberSet::Many(many) => {
                let removed = many.remove(user).is_some();
                if many.len() < FEW_MEMBERS_MAX / 2 {
                    let mut few: Vec<Key> =
                        many.iter().map(|(member, ())| member.clone()).collect();
                    few.sort_unstable();
                    *self = MemberSet::Few(few);
                }
                removed
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            MemberSet::Few(few) => few.len(),
            MemberSet::Many(many) => many.len(),
        }
    }

    /// The members, sorted while few, in no order once many.
    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            MemberSet::Few(few) => Box::new(few.iter().map(Key::as_str)),
            MemberSet::Many(many) => Box::new(many.iter().map(|(member, ())| member.as_str())),
        }
    }
}

/// For one resource (or prefix): each action pattern with the groups that hold it.
#[derive(Debug, Clone, Default)]
pub(super) struct Grants(pub(super) Vec<(Box<str>, GroupSet)>);

impl Grants {
    pub(super) fn allows(&self, action: &str, groups: &[GroupId]) -> bool {
        self.0
            .iter()
            .any(|(pattern, holders)| matches_action(pattern, action) && holders.intersects(groups))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(members: &MemberSet) -> Vec<String> {
        let mut listed: Vec<String> = members.iter().map(str::to_owned).collect();
        listed.sort();
        listed
    }

    #[test]
    fn a_member_set_grows_into_a_map_and_shrinks_back_keeping_every_member_once() {
        let name = |n: usize| format!("user-{n:03}");
        let mut members = MemberSet::default();
        let mut expected = Vec::new();
        for n in (0..100).rev() {
            assert!(members.insert(&name(n)));
            assert!(!members.insert(&name(n)), "a member is added once");
            expected.push(name(n));
            if n == 100 - FEW_MEMBERS_MAX {
                assert!(
                    matches!(members, MemberSet::Few(_)),
                    "{FEW_MEMBERS_MAX} stay few"
                );
            }
        }
        assert!(matches!(members, MemberSet::Many(_)));
        expected.sort();
        assert_eq!((members.len(), sorted(&members)), (100, expected.clone()));

        for n in 0..80 {
            assert!(members.remove(&name(n)));
            assert!(!members.remove(&name(n)));
        }
        assert!(matches!(members, MemberSet::Few(_)), "20 are few again");
        let few: Vec<&str> = members.iter().collect();
        assert_eq!(
            few,
            expected[80..]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            "sorted"
        );
        assert!(members.insert("aaa"));
        assert_eq!(members.iter().next(), Some("aaa"));
    }
}
