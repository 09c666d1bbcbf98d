//! Applying a change to a policy: advancing it revision by revision, and keeping the indexes,
//! the counts and the estimate of its memory in step with its groups.
//!
//! Apart from the check and the listings because this is the only code that writes a policy;
//! everything else only reads it.

use std::sync::Arc;

use super::index::MemberSet;
use super::index::{Endings, Grants, GroupSet, prefix_of};
use super::{GroupId, GroupRecord, TenantPolicy};
use crate::policy::{Change, Permission, UnixMillis, footprint};

/// Why a change could not be applied on top of a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error("change for revision {got} does not follow revision {held}")]
    Gap { held: u64, got: u64 },
    #[error("change for revision {revision} has no effect: the policy has diverged from the store")]
    NoEffect { revision: u64 },
}

impl TenantPolicy {
    /// Applies `change` as the change that makes `revision`, which must follow the revision
    /// held, and must change something: a change the store recorded as a change that changes
    /// nothing here means this copy has diverged and must be reloaded.
    pub fn advance(&mut self, revision: u64, change: &Change) -> Result<(), AdvanceError> {
        self.advance_all(revision, [change])
    }

    /// Applies `changes`, in order, as the one revision `revision` (a `/write` makes several
    /// changes under one revision): each must change something, and there must be one. On an
    /// error the policy may hold some of them: the caller drops it, as it does a diverged one.
    pub fn advance_all<'c>(
        &mut self,
        revision: u64,
        changes: impl IntoIterator<Item = &'c Change>,
    ) -> Result<(), AdvanceError> {
        if revision != self.revision + 1 {
            return Err(AdvanceError::Gap {
                held: self.revision,
                got: revision,
            });
        }
        let mut applied = 0;
        for change in changes {
            if !self.apply(change) {
                return Err(AdvanceError::NoEffect { revision });
            }
            applied += 1;
        }
        if applied == 0 {
            return Err(AdvanceError::NoEffect { revision });
        }
        self.revision = revision;
        Ok(())
    }

    /// Applies `change` without touching the revision; returns whether anything changed.
    /// Adding to a group that does not exist changes nothing.
    pub fn apply(&mut self, change: &Change) -> bool {
        match change {
            Change::CreateGroup { group } => {
                if self.groups.contains_key(group) {
                    return false;
                }
                let id = self.next_id;
                self.next_id += 1;
                self.groups.insert(
                    group.clone(),
                    GroupRecord {
                        id,
                        permissions: Arc::default(),
                        members: MemberSet::default(),
                    },
                );
                self.names.insert(id, group.clone());
                self.heap_bytes += footprint::group(group.as_str());
                true
            }
            Change::DeleteGroup { group } => {
                if let Some(id) = self.id_of(group) {
                    self.forget_nestings(id);
                }
                let Some(record) = self.groups.remove(group) else {
                    return false;
                };
                self.names.remove(&record.id);
                self.heap_bytes -= footprint::group(group.as_str());
                for permission in record.permissions.iter() {
                    self.unindex(permission, record.id);
                }
                self.permission_count -= record.permissions.len();
                for user in record.members.iter() {
                    self.leave(user, record.id);
                }
                true
            }
            Change::AddPermission { group, permission } => {
                let Some(record) = self.groups.get_mut(group) else {
                    return false;
                };
                if record.permissions.contains(permission) {
                    return false;
                }
                Arc::make_mut(&mut record.permissions).insert(permission.clone());
                let id = record.id;
                self.index(permission, id);
                self.permission_count += 1;
                true
            }
            Change::RemovePermission { group, permission } => {
                let Some(record) = self.groups.get(group) else {
                    return false;
                };
                if !record.permissions.contains(permission) {
                    return false;
                }
                let id = record.id;
                if let Some(record) = self.groups.get_mut(group) {
                    Arc::make_mut(&mut record.permissions).remove(permission);
                }
                self.unindex(permission, id);
                self.permission_count -= 1;
                true
            }
            // Both look the group up twice, to change its record only once the change is
            // known to change something: a mutable look-up copies the record's shard.
            Change::AssignUser {
                group,
                user,
                expires_at,
            } => {
                let Some(id) = self.groups.get(group).map(|record| record.id) else {
                    return false;
                };
                if self
                    .members
                    .get(user.as_str())
                    .is_some_and(|groups| groups.contains(id))
                {
                    // A member already: the change is to when the membership ends, if at all.
                    let current = self.endings.get(user.as_str()).and_then(|e| e.of(id));
                    if current == *expires_at {
                        return false;
                    }
                    self.set_ending(user.as_str(), id, *expires_at);
                    return true;
                }
                let mut joined = false;
                self.members
                    .get_or_insert_with(user.as_str().into(), || {
                        joined = true;
                        GroupSet::default()
                    })
                    .insert(id);
                if joined {
                    self.heap_bytes += footprint::user(user.as_str());
                }
                self.heap_bytes += footprint::assignment(user.as_str());
                self.assignment_count += 1;
                if let Some(record) = self.groups.get_mut(group) {
                    record.members.insert(user.as_str());
                }
                self.set_ending(user.as_str(), id, *expires_at);
                true
            }
            Change::UnassignUser { group, user } => {
                let Some(id) = self.groups.get(group).map(|record| record.id) else {
                    return false;
                };
                if !self
                    .members
                    .get(user.as_str())
                    .is_some_and(|groups| groups.contains(id))
                {
                    return false;
                }
                self.leave(user.as_str(), id);
                if let Some(record) = self.groups.get_mut(group) {
                    record.members.remove(user.as_str());
                }
                true
            }
            Change::NestGroup { group, parent } => self.nest(group, parent),
            Change::UnnestGroup { group, parent } => self.unnest(group, parent),
        }
    }

    /// Sets when `user`'s membership in `id` ends, or that it does not.
    fn set_ending(&mut self, user: &str, id: GroupId, end: Option<UnixMillis>) {
        let before = self.endings.get(user).map_or(0, |endings| endings.0.len());
        if before == 0 && end.is_none() {
            return;
        }
        let endings = self
            .endings
            .get_or_insert_with(user.into(), Endings::default);
        endings.set(id, end);
        let after = endings.0.len();
        if after == 0 {
            self.endings.remove(user);
        }
        self.ending_count = self.ending_count + after - before;
        self.heap_bytes =
            self.heap_bytes + footprint::endings(user, after) - footprint::endings(user, before);
    }

    fn leave(&mut self, user: &str, id: GroupId) {
        self.set_ending(user, id, None);
        let Some(groups) = self.members.get_mut(user) else {
            return;
        };
        if groups.remove(id) {
            self.assignment_count -= 1;
            self.heap_bytes -= footprint::assignment(user);
        }
        if groups.is_empty() {
            self.members.remove(user);
            self.heap_bytes -= footprint::user(user);
        }
    }

    fn index(&mut self, permission: &Permission, id: GroupId) {
        self.heap_bytes += footprint::permission(permission);
        let action = permission.action.as_str();
        match prefix_of(permission.resource.as_str()) {
            Some(prefix) => {
                let is_new = !self.prefixes.contains_key(prefix);
                self.prefixes
                    .get_or_insert_with(prefix.into(), Grants::default)
                    .add(action, id);
                if is_new {
                    let at = self
                        .prefix_lengths
                        .partition_point(|(len, _)| *len < prefix.len());
                    match self.prefix_lengths.get_mut(at) {
                        Some((len, count)) if *len == prefix.len() => *count += 1,
                        _ => self.prefix_lengths.insert(at, (prefix.len(), 1)),
                    }
                }
            }
            None => {
                self.exact
                    .get_or_insert_with(permission.resource.as_str().into(), Grants::default)
                    .add(action, id);
            }
        }
    }

    fn unindex(&mut self, permission: &Permission, id: GroupId) {
        self.heap_bytes -= footprint::permission(permission);
        let resource = permission.resource.as_str();
        let action = permission.action.as_str();
        let (index, key) = match prefix_of(resource) {
            Some(prefix) => (&mut self.prefixes, prefix),
            None => (&mut self.exact, resource),
        };
        let Some(grants) = index.get_mut(key) else {
            return;
        };
        grants.remove(action, id);
        if grants.is_empty() {
            index.remove(key);
            if key.len() != resource.len()
                && let Ok(at) = self
                    .prefix_lengths
                    .binary_search_by_key(&key.len(), |(len, _)| *len)
            {
                self.prefix_lengths[at].1 -= 1;
                if self.prefix_lengths[at].1 == 0 {
                    self.prefix_lengths.remove(at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tenant::tests::{NOW, alice_with, group, permission, user};

    #[test]
    fn removing_a_permission_revokes_it() {
        let mut policy = alice_with(&[("docs/*", "read"), ("doc1", "read")]);
        assert!(policy.apply(&Change::RemovePermission {
            group: group("g"),
            permission: permission("docs/*", "read"),
        }));
        assert!(!policy.allows("alice", "docs/a", "read", NOW));
        assert!(policy.allows("alice", "doc1", "read", NOW));
        assert!(policy.apply(&Change::RemovePermission {
            group: group("g"),
            permission: permission("doc1", "read"),
        }));
        assert!(!policy.allows("alice", "doc1", "read", NOW));
        assert_eq!(policy.permission_count(), 0);
        assert!(policy.prefix_lengths.is_empty() && policy.prefixes.is_empty());
        assert!(policy.exact.is_empty());
    }

    #[test]
    fn unassigning_a_user_revokes_what_the_group_gave() {
        let mut policy = alice_with(&[("doc1", "read")]);
        assert!(policy.apply(&Change::UnassignUser {
            group: group("g"),
            user: user("alice"),
        }));
        assert!(!policy.allows("alice", "doc1", "read", NOW));
        assert!(policy.members.is_empty());
    }

    #[test]
    fn deleting_a_group_takes_its_permissions_and_members_with_it() {
        let mut policy = alice_with(&[("doc1", "read")]);
        assert!(policy.apply(&Change::DeleteGroup { group: group("g") }));
        assert!(!policy.allows("alice", "doc1", "read", NOW));
        assert_eq!(policy.group_count(), 0);
        assert!(policy.members.is_empty());
        // Re-creating the group does not bring anything back.
        policy.apply(&Change::CreateGroup { group: group("g") });
        assert!(!policy.allows("alice", "doc1", "read", NOW));
        assert_eq!(policy.assignment_count(), 0);
    }

    #[test]
    fn a_repeated_change_changes_nothing() {
        let mut policy = alice_with(&[("doc1", "read")]);
        assert!(!policy.apply(&Change::CreateGroup { group: group("g") }));
        assert!(!policy.apply(&Change::AssignUser {
            group: group("g"),
            user: user("alice"),
            expires_at: None,
        }));
        assert!(!policy.apply(&Change::AddPermission {
            group: group("g"),
            permission: permission("doc1", "read"),
        }));
        assert!(!policy.apply(&Change::RemovePermission {
            group: group("g"),
            permission: permission("doc2", "read"),
        }));
        assert!(!policy.apply(&Change::DeleteGroup {
            group: group("nope")
        }));
    }

    #[test]
    fn adding_to_a_missing_group_changes_nothing() {
        let mut policy = TenantPolicy::default();
        assert!(!policy.apply(&Change::AssignUser {
            group: group("g"),
            user: user("alice"),
            expires_at: None,
        }));
        assert!(!policy.apply(&Change::AddPermission {
            group: group("g"),
            permission: permission("doc", "read"),
        }));
        assert!(policy.members.is_empty());
    }

    #[test]
    fn advance_requires_the_next_revision() {
        let mut policy = TenantPolicy::at_revision(4);
        let create = Change::CreateGroup { group: group("g") };
        assert_eq!(
            policy.advance(6, &create),
            Err(AdvanceError::Gap { held: 4, got: 6 })
        );
        assert_eq!(
            policy.advance(4, &create),
            Err(AdvanceError::Gap { held: 4, got: 4 })
        );
        assert_eq!(policy.advance(5, &create), Ok(()));
        assert_eq!(policy.revision(), 5);
    }

    #[test]
    fn advance_rejects_a_change_that_has_no_effect() {
        let mut policy = TenantPolicy::at_revision(1);
        policy.apply(&Change::CreateGroup { group: group("g") });
        assert_eq!(
            policy.advance(2, &Change::CreateGroup { group: group("g") }),
            Err(AdvanceError::NoEffect { revision: 2 })
        );
        assert_eq!(policy.revision(), 1);
    }
}

#[cfg(test)]
mod endings {
    use super::*;
    use crate::policy::tenant::tests::{NOW, group, permission, user};

    /// `alice` in `g`, which holds `doc` `read`, until `end`.
    fn until(end: Option<UnixMillis>) -> TenantPolicy {
        let mut policy = TenantPolicy::default();
        policy.apply(&Change::CreateGroup { group: group("g") });
        policy.apply(&Change::AddPermission {
            group: group("g"),
            permission: permission("doc", "read"),
        });
        assert!(policy.apply(&assign("g", end)));
        policy
    }

    fn assign(to: &str, end: Option<UnixMillis>) -> Change {
        Change::AssignUser {
            group: group(to),
            user: user("alice"),
            expires_at: end,
        }
    }

    fn at(offset: i64) -> UnixMillis {
        UnixMillis(NOW.0 + offset)
    }

    #[test]
    fn a_membership_grants_until_the_instant_it_ends_and_not_from_then() {
        let policy = until(Some(NOW));
        assert!(policy.allows("alice", "doc", "read", at(-1)));
        assert!(!policy.allows("alice", "doc", "read", NOW));
        assert!(!policy.allows("alice", "doc", "read", at(1)));
        assert!(policy.explain("alice", "doc", "read", NOW).is_empty());
        assert_eq!(
            policy.who_can("doc", "read", "", None, 10, at(-1)).items,
            ["alice"]
        );
        assert!(
            policy
                .who_can("doc", "read", "", None, 10, NOW)
                .items
                .is_empty()
        );
        assert!(policy.user_page("alice", None, 10, NOW).items.is_empty());
        // Still a member, listed as one, until unassigned.
        assert_eq!(
            policy.member_page(&group("g"), None, 10).unwrap().items,
            ["alice"]
        );
        assert_eq!(policy.membership_end("alice", "g"), Some(NOW));
        assert!(until(None).allows("alice", "doc", "read", at(i64::MAX / 2)));
    }

    #[test]
    fn assigning_again_changes_the_end_and_the_same_end_changes_nothing() {
        let mut policy = until(Some(NOW));
        assert!(!policy.apply(&assign("g", Some(NOW))));
        assert!(policy.apply(&assign("g", Some(at(10)))));
        assert!(policy.allows("alice", "doc", "read", at(9)));
        assert!(policy.apply(&assign("g", None)));
        assert!(policy.allows("alice", "doc", "read", at(1_000_000)));
        assert!(!policy.has_endings());
        assert!(!policy.apply(&assign("g", None)));
        assert_eq!(policy.assignment_count(), 1);
    }

    #[test]
    fn leaving_a_group_forgets_when_the_membership_would_have_ended() {
        let mut policy = until(Some(NOW));
        policy.apply(&Change::UnassignUser {
            group: group("g"),
            user: user("alice"),
        });
        assert!(!policy.has_endings());
        assert!(policy.apply(&assign("g", None)));
        assert!(policy.allows("alice", "doc", "read", at(1)));
        let mut deleted = until(Some(NOW));
        deleted.apply(&Change::DeleteGroup { group: group("g") });
        assert!(!deleted.has_endings());
        assert_eq!(deleted, TenantPolicy::default());
    }

    #[test]
    fn what_comes_through_a_nesting_ends_with_the_membership_it_comes_through() {
        let mut policy = until(None);
        policy.apply(&Change::UnassignUser {
            group: group("g"),
            user: user("alice"),
        });
        policy.apply(&Change::CreateGroup {
            group: group("team"),
        });
        policy.apply(&Change::NestGroup {
            group: group("team"),
            parent: group("g"),
        });
        policy.apply(&assign("team", Some(NOW)));
        assert!(policy.allows("alice", "doc", "read", at(-1)));
        assert!(!policy.allows("alice", "doc", "read", NOW));
        // Another way in that does not end keeps the access.
        policy.apply(&assign("g", None));
        assert!(policy.allows("alice", "doc", "read", NOW));
    }
}
