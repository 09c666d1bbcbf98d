//! One tenant's policy at one revision, indexed for the check.
//!
//! The indexes make a check cost the same few hash look-ups whatever the tenant's size:
//! the user's groups (user -> sorted group ids), then the groups holding the exact resource
//! (resource -> action -> group ids), then, for each prefix length in use, the groups holding
//! a wildcard resource with that prefix. A check never walks a user's groups one by one.
//!
//! Every map is a [`CowMap`]: a change is applied to a copy that shares all but the shard it
//! touches with the original, so applying one change to a tenant of a million assignments
//! copies a few thousand entries, not a million; and a small tenant's maps are one small table
//! each, so that a tenant costs memory in proportion to what it holds.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::Arc;

use compact_str::CompactString;

use super::change::{Change, Permission};
use super::cow_map::CowMap;
use super::footprint;
use super::name::{GroupName, UserName};
use super::page::{self, Page};

/// The action pattern that matches every action.
const ANY_ACTION: &str = "*";

/// The key of the check's indexes. Names of up to 24 bytes are stored inline, so comparing a
/// key during a look-up reads no other memory: on a large tenant, where every look-up misses
/// the CPU cache, that halves the misses per check.
type Key = CompactString;

/// A group's number inside one policy. Numbers are never reused within a policy, but two
/// policies of the same tenant may number its groups differently.
type GroupId = u32;

/// A tenant's groups, permissions and memberships at `revision`.
///
/// Cloning is cheap (no entry is copied); a change is applied to a clone and the clone
/// published, so a reader never sees half a change.
#[derive(Debug, Clone, Default)]
pub struct TenantPolicy {
    revision: u64,
    next_id: GroupId,
    groups: CowMap<GroupName, GroupRecord>,
    /// id -> name, to name the groups found by id.
    names: CowMap<GroupId, GroupName>,
    /// user -> the groups that have the user as a member.
    members: CowMap<Key, GroupSet>,
    /// Literal resource -> who may do what on it.
    exact: CowMap<Key, Grants>,
    /// Prefix (a resource pattern without its trailing `*`) -> who may do what under it.
    prefixes: CowMap<Key, Grants>,
    /// (prefix length in bytes, how many prefixes have that length), by length: the only
    /// lengths a check needs to probe.
    prefix_lengths: Vec<(usize, usize)>,
    permission_count: usize,
    assignment_count: usize,
    /// What the entries own on the heap beyond the maps' tables, by [`footprint`]'s estimates;
    /// kept as entries come and go, so that sizing a tenant does not walk it.
    heap_bytes: usize,
}

#[derive(Debug, Clone)]
struct GroupRecord {
    id: GroupId,
    /// Shared, so that copying a shard of the group map copies no group's permissions.
    permissions: Arc<PermissionSet>,
    /// How many users are members, kept so that a listing of groups need not count them.
    member_count: usize,
}

/// A group's permissions, sorted: a sorted vector rather than a tree, because a tree's
/// smallest node holds room for eleven, and most groups hold a handful.
#[derive(Debug, Clone, Default)]
struct PermissionSet(Vec<Permission>);

impl PermissionSet {
    fn contains(&self, permission: &Permission) -> bool {
        self.0.binary_search(permission).is_ok()
    }

    fn insert(&mut self, permission: Permission) -> bool {
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

    fn remove(&mut self, permission: &Permission) -> bool {
        match self.0.binary_search(permission) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// The permissions that sort after `after`, in order.
    fn after(&self, after: Option<&Permission>) -> &[Permission] {
        match after {
            Some(after) => &self.0[self.0.partition_point(|p| p <= after)..],
            None => &self.0,
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter(&self) -> std::slice::Iter<'_, Permission> {
        self.0.iter()
    }
}

/// Group ids, sorted; usually a handful.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GroupSet(Vec<GroupId>);

impl GroupSet {
    fn insert(&mut self, id: GroupId) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, id);
                true
            }
        }
    }

    fn remove(&mut self, id: GroupId) -> bool {
        match self.0.binary_search(&id) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    fn contains(&self, id: GroupId) -> bool {
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

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// For one resource (or prefix): each action pattern with the groups that hold it.
#[derive(Debug, Clone, Default)]
struct Grants(Vec<(Box<str>, GroupSet)>);

impl Grants {
    fn allows(&self, action: &str, groups: &GroupSet) -> bool {
        self.0.iter().any(|(pattern, holders)| {
            (&**pattern == action || &**pattern == ANY_ACTION) && holders.intersects(groups)
        })
    }

    fn add(&mut self, action: &str, id: GroupId) -> bool {
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

    fn remove(&mut self, action: &str, id: GroupId) -> bool {
        let Some(at) = self.0.iter().position(|(pattern, _)| &**pattern == action) else {
            return false;
        };
        let removed = self.0[at].1.remove(id);
        if self.0[at].1.is_empty() {
            self.0.swap_remove(at);
        }
        removed
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a change could not be applied on top of a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error("change for revision {got} does not follow revision {held}")]
    Gap { held: u64, got: u64 },
    #[error("change for revision {revision} has no effect: the policy has diverged from the store")]
    NoEffect { revision: u64 },
}

/// A group as listed by the API, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    /// (resource, action) pairs, sorted.
    pub permissions: Vec<(String, String)>,
    pub members: Vec<String>,
}

/// A group as a page of groups lists it: its size, not its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub permission_count: usize,
    pub member_count: usize,
}

/// What one user gets in a tenant, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserView {
    pub groups: Vec<String>,
    /// (resource, action, group) triples, sorted.
    pub permissions: Vec<(String, String, String)>,
}

/// Two policies are equal when they hold the same groups, permissions and members at the
/// same revision, however their groups happen to be numbered.
impl PartialEq for TenantPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision && self.groups() == other.groups()
    }
}

impl Eq for TenantPolicy {}

impl TenantPolicy {
    /// An empty policy at `revision`; a tenant never written is empty at revision 0.
    pub fn at_revision(revision: u64) -> Self {
        Self {
            revision,
            ..Self::default()
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// May `user` do `action` on `resource`? Allowed iff some group has the user as a member
    /// and holds a permission whose resource and action patterns both match.
    pub fn allows(&self, user: &str, resource: &str, action: &str) -> bool {
        let Some(groups) = self.members.get(user) else {
            return false;
        };
        if self
            .exact
            .get(resource)
            .is_some_and(|grants| grants.allows(action, groups))
        {
            return true;
        }
        self.prefix_lengths
            .iter()
            .map(|&(len, _)| len)
            .take_while(|&len| len <= resource.len())
            .any(|len| {
                // A prefix ending inside a multi-byte character cannot be a prefix of this
                // resource, since every stored prefix is itself valid UTF-8.
                resource.is_char_boundary(len)
                    && self
                        .prefixes
                        .get(&resource[..len])
                        .is_some_and(|grants| grants.allows(action, groups))
            })
    }

    /// Applies `change` as the change that makes `revision`, which must follow the revision
    /// held, and must change something: a change the store recorded as a change that changes
    /// nothing here means this copy has diverged and must be reloaded.
    pub fn advance(&mut self, revision: u64, change: &Change) -> Result<(), AdvanceError> {
        if revision != self.revision + 1 {
            return Err(AdvanceError::Gap {
                held: self.revision,
                got: revision,
            });
        }
        if !self.apply(change) {
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
                        member_count: 0,
                    },
                );
                self.names.insert(id, group.clone());
                self.heap_bytes += footprint::group(group.as_str());
                true
            }
            Change::DeleteGroup { group } => {
                let Some(record) = self.groups.remove(group) else {
                    return false;
                };
                self.names.remove(&record.id);
                self.heap_bytes -= footprint::group(group.as_str());
                for permission in record.permissions.iter() {
                    self.unindex(permission, record.id);
                }
                self.permission_count -= record.permissions.len();
                // Memberships are indexed by user: finding the group's members reads every
                // user, so only when it has some.
                let members: Vec<Key> = if record.member_count == 0 {
                    Vec::new()
                } else {
                    self.members
                        .iter()
                        .filter(|(_, groups)| groups.contains(record.id))
                        .map(|(user, _)| user.clone())
                        .collect()
                };
                for user in &members {
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
            Change::AssignUser { group, user } => {
                let Some(id) = self.groups.get(group).map(|record| record.id) else {
                    return false;
                };
                if self
                    .members
                    .get(user.as_str())
                    .is_some_and(|groups| groups.contains(id))
                {
                    return false;
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
                self.heap_bytes += footprint::ASSIGNMENT;
                self.assignment_count += 1;
                if let Some(record) = self.groups.get_mut(group) {
                    record.member_count += 1;
                }
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
                    record.member_count -= 1;
                }
                true
            }
        }
    }

    fn leave(&mut self, user: &str, id: GroupId) {
        let Some(groups) = self.members.get_mut(user) else {
            return;
        };
        if groups.remove(id) {
            self.assignment_count -= 1;
            self.heap_bytes -= footprint::ASSIGNMENT;
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

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn permission_count(&self) -> usize {
        self.permission_count
    }

    pub fn assignment_count(&self) -> usize {
        self.assignment_count
    }

    /// About how many bytes of memory this policy takes: its maps' tables as they are, and
    /// what the entries own besides by [`footprint`]'s estimates. What the cache's memory
    /// budget counts; `scripts/bench.sh` sets it beside the resident set size it stands for.
    pub fn estimated_bytes(&self) -> usize {
        size_of::<Self>()
            + self.groups.table_bytes()
            + self.names.table_bytes()
            + self.members.table_bytes()
            + self.exact.table_bytes()
            + self.prefixes.table_bytes()
            + self.prefix_lengths.capacity() * size_of::<(usize, usize)>()
            + self.heap_bytes
    }

    /// Every group with its permissions and members, sorted by name.
    pub fn groups(&self) -> Vec<GroupView> {
        let mut members: HashMap<GroupId, Vec<String>> = HashMap::new();
        for (user, groups) in self.members.iter() {
            for id in &groups.0 {
                members.entry(*id).or_default().push(user.to_string());
            }
        }
        let mut groups: Vec<GroupView> = self
            .groups
            .iter()
            .map(|(name, record)| {
                let mut members = members.remove(&record.id).unwrap_or_default();
                members.sort_unstable();
                GroupView {
                    name: name.as_str().to_owned(),
                    permissions: listed(&record.permissions),
                    members,
                }
            })
            .collect();
        groups.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        groups
    }

    /// The groups whose names sort after `after`, `limit` of them, by name.
    pub fn group_page(&self, after: Option<&GroupName>, limit: usize) -> Page<GroupSummary> {
        let names = self
            .groups
            .iter()
            .map(|(name, _)| name)
            .filter(|name| after.is_none_or(|after| *name > after));
        page::smallest(names, limit).map(|name| {
            let (permission_count, member_count) = self.groups.get(name).map_or((0, 0), |record| {
                (record.permissions.len(), record.member_count)
            });
            GroupSummary {
                name: name.as_str().to_owned(),
                permission_count,
                member_count,
            }
        })
    }

    /// The permissions of `group` that sort after `after` (by resource, then action), `limit`
    /// of them; None if there is no such group.
    pub fn permission_page(
        &self,
        group: &GroupName,
        after: Option<&Permission>,
        limit: usize,
    ) -> Option<Page<(String, String)>> {
        let rest = self.groups.get(group)?.permissions.after(after);
        Some(
            page::first(rest, limit)
                .map(|p| (p.resource.as_str().to_owned(), p.action.as_str().to_owned())),
        )
    }

    /// The members of `group` whose names sort after `after`, `limit` of them, by name; None
    /// if there is no such group.
    ///
    /// Memberships are indexed by user, for the check, so this reads every user of the tenant:
    /// the answer is bounded, the work is not.
    pub fn member_page(
        &self,
        group: &GroupName,
        after: Option<&UserName>,
        limit: usize,
    ) -> Option<Page<String>> {
        let record = self.groups.get(group)?;
        if record.member_count == 0 {
            return Some(Page {
                items: Vec::new(),
                more: false,
            });
        }
        let members = self
            .members
            .iter()
            .filter(|(_, groups)| groups.contains(record.id))
            .map(|(user, _)| user.as_str())
            .filter(|user| after.is_none_or(|after| *user > after.as_str()));
        Some(page::smallest(members, limit).map(str::to_owned))
    }

    /// The groups `user` belongs to and every permission those groups give, sorted.
    pub fn user(&self, user: &str) -> UserView {
        let Some(ids) = self.members.get(user) else {
            return UserView::default();
        };
        let mut view = UserView::default();
        for id in &ids.0 {
            let Some(name) = self.names.get(id) else {
                continue;
            };
            view.groups.push(name.as_str().to_owned());
            if let Some(record) = self.groups.get(name) {
                view.permissions.extend(
                    listed(&record.permissions)
                        .into_iter()
                        .map(|(resource, action)| (resource, action, name.as_str().to_owned())),
                );
            }
        }
        view.groups.sort_unstable();
        view.permissions.sort_unstable();
        view
    }
}

fn listed(permissions: &PermissionSet) -> Vec<(String, String)> {
    permissions
        .iter()
        .map(|p| (p.resource.as_str().to_owned(), p.action.as_str().to_owned()))
        .collect()
}

/// The prefix a resource pattern stands for, if it is a wildcard pattern.
fn prefix_of(resource: &str) -> Option<&str> {
    resource.strip_suffix('*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Resource, UserName};

    fn group(name: &str) -> GroupName {
        GroupName::parse("group", name).unwrap()
    }

    fn user(name: &str) -> UserName {
        UserName::parse("user", name).unwrap()
    }

    fn permission(resource: &str, action: &str) -> Permission {
        Permission {
            resource: Resource::parse("resource", resource).unwrap(),
            action: Action::parse("action", action).unwrap(),
        }
    }

    /// A policy where `alice` is in `g`, which holds the given permissions.
    fn alice_with(permissions: &[(&str, &str)]) -> TenantPolicy {
        let mut policy = TenantPolicy::default();
        policy.apply(&Change::CreateGroup { group: group("g") });
        policy.apply(&Change::AssignUser {
            group: group("g"),
            user: user("alice"),
        });
        for (resource, action) in permissions {
            assert!(policy.apply(&Change::AddPermission {
                group: group("g"),
                permission: permission(resource, action),
            }));
        }
        policy
    }

    #[test]
    fn an_exact_permission_allows_only_that_resource_and_action() {
        let policy = alice_with(&[("doc1", "read")]);
        assert!(policy.allows("alice", "doc1", "read"));
        assert!(!policy.allows("alice", "doc1", "write"));
        assert!(!policy.allows("alice", "doc2", "read"));
        assert!(!policy.allows("alice", "doc", "read"));
        assert!(!policy.allows("alice", "doc10", "read"));
    }

    #[test]
    fn a_user_outside_every_group_is_denied() {
        let policy = alice_with(&[("*", "*")]);
        assert!(!policy.allows("bob", "doc1", "read"));
        assert!(!TenantPolicy::default().allows("alice", "doc1", "read"));
    }

    #[test]
    fn a_trailing_star_matches_every_resource_with_that_prefix() {
        let policy = alice_with(&[("docs/*", "read")]);
        assert!(policy.allows("alice", "docs/a", "read"));
        assert!(policy.allows("alice", "docs/", "read"));
        assert!(policy.allows("alice", "docs/a/b/c", "read"));
        assert!(!policy.allows("alice", "docs", "read"));
        assert!(!policy.allows("alice", "doc/a", "read"));
        assert!(!policy.allows("alice", "docs/a", "write"));
    }

    #[test]
    fn a_lone_star_matches_every_resource() {
        let policy = alice_with(&[("*", "read")]);
        assert!(policy.allows("alice", "anything", "read"));
        assert!(policy.allows("alice", "*", "read"));
        assert!(!policy.allows("alice", "anything", "write"));
    }

    #[test]
    fn action_star_matches_every_action() {
        let policy = alice_with(&[("doc1", "*")]);
        assert!(policy.allows("alice", "doc1", "read"));
        assert!(policy.allows("alice", "doc1", "delete"));
        assert!(!policy.allows("alice", "doc2", "read"));
    }

    #[test]
    fn a_star_anywhere_but_the_end_of_a_resource_is_literal() {
        let policy = alice_with(&[("a*b", "read"), ("x", "re*")]);
        assert!(policy.allows("alice", "a*b", "read"));
        assert!(!policy.allows("alice", "aXb", "read"));
        assert!(policy.allows("alice", "x", "re*"));
        assert!(!policy.allows("alice", "x", "read"));
    }

    #[test]
    fn a_star_in_a_checked_resource_is_literal() {
        let policy = alice_with(&[("docs/a", "read")]);
        assert!(!policy.allows("alice", "docs/*", "read"));
        assert!(!policy.allows("alice", "*", "read"));
    }

    #[test]
    fn prefixes_of_several_lengths_are_all_considered() {
        let policy = alice_with(&[("a/b/c/*", "read"), ("x*", "write")]);
        assert!(policy.allows("alice", "a/b/c/d", "read"));
        assert!(policy.allows("alice", "xyz", "write"));
        assert!(!policy.allows("alice", "a/b/d", "read"));
    }

    #[test]
    fn a_prefix_that_ends_inside_a_multibyte_character_never_matches() {
        // "é" is two bytes; the prefix "e" has length 1 and must not panic on slicing "é".
        let policy = alice_with(&[("e*", "read")]);
        assert!(!policy.allows("alice", "é", "read"));
        assert!(policy.allows("alice", "eé", "read"));
    }

    #[test]
    fn permissions_of_any_of_the_users_groups_count() {
        let mut policy = alice_with(&[]);
        policy.apply(&Change::CreateGroup { group: group("h") });
        policy.apply(&Change::AssignUser {
            group: group("h"),
            user: user("alice"),
        });
        policy.apply(&Change::AddPermission {
            group: group("h"),
            permission: permission("doc", "read"),
        });
        assert!(policy.allows("alice", "doc", "read"));
    }

    #[test]
    fn a_permission_of_a_group_the_user_is_not_in_does_not_count() {
        let mut policy = alice_with(&[]);
        policy.apply(&Change::CreateGroup { group: group("h") });
        policy.apply(&Change::AddPermission {
            group: group("h"),
            permission: permission("doc", "read"),
        });
        assert!(!policy.allows("alice", "doc", "read"));
    }

    #[test]
    fn removing_a_permission_revokes_it() {
        let mut policy = alice_with(&[("docs/*", "read"), ("doc1", "read")]);
        assert!(policy.apply(&Change::RemovePermission {
            group: group("g"),
            permission: permission("docs/*", "read"),
        }));
        assert!(!policy.allows("alice", "docs/a", "read"));
        assert!(policy.allows("alice", "doc1", "read"));
        assert!(policy.apply(&Change::RemovePermission {
            group: group("g"),
            permission: permission("doc1", "read"),
        }));
        assert!(!policy.allows("alice", "doc1", "read"));
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
        assert!(!policy.allows("alice", "doc1", "read"));
        assert!(policy.members.is_empty());
    }

    #[test]
    fn deleting_a_group_takes_its_permissions_and_members_with_it() {
        let mut policy = alice_with(&[("doc1", "read")]);
        assert!(policy.apply(&Change::DeleteGroup { group: group("g") }));
        assert!(!policy.allows("alice", "doc1", "read"));
        assert_eq!(policy.group_count(), 0);
        assert!(policy.members.is_empty());
        // Re-creating the group does not bring anything back.
        policy.apply(&Change::CreateGroup { group: group("g") });
        assert!(!policy.allows("alice", "doc1", "read"));
        assert_eq!(policy.assignment_count(), 0);
    }

    #[test]
    fn a_repeated_change_changes_nothing() {
        let mut policy = alice_with(&[("doc1", "read")]);
        assert!(!policy.apply(&Change::CreateGroup { group: group("g") }));
        assert!(!policy.apply(&Change::AssignUser {
            group: group("g"),
            user: user("alice"),
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

    #[test]
    fn two_tenants_policies_are_independent() {
        let a = alice_with(&[("doc1", "read")]);
        let mut b = a.clone();
        b.apply(&Change::DeleteGroup { group: group("g") });
        assert!(a.allows("alice", "doc1", "read"));
        assert!(!b.allows("alice", "doc1", "read"));
    }

    #[test]
    fn listings_are_sorted_and_reconstruct_the_patterns() {
        let mut policy = alice_with(&[("docs/*", "read"), ("a", "*"), ("a", "read")]);
        policy.apply(&Change::CreateGroup { group: group("b") });
        policy.apply(&Change::AssignUser {
            group: group("g"),
            user: user("aaron"),
        });
        let groups = policy.groups();
        assert_eq!(
            groups,
            vec![
                GroupView {
                    name: "b".into(),
                    permissions: vec![],
                    members: vec![],
                },
                GroupView {
                    name: "g".into(),
                    permissions: vec![
                        ("a".into(), "*".into()),
                        ("a".into(), "read".into()),
                        ("docs/*".into(), "read".into()),
                    ],
                    members: vec!["aaron".into(), "alice".into()],
                },
            ]
        );
        let view = policy.user("alice");
        assert_eq!(view.groups, vec!["g".to_string()]);
        assert_eq!(view.permissions.len(), 3);
        assert_eq!(policy.user("nobody"), UserView::default());
        assert_eq!(
            (
                policy.group_count(),
                policy.permission_count(),
                policy.assignment_count()
            ),
            (2, 3, 2)
        );
    }

    #[test]
    fn pages_resume_after_a_name_even_once_it_is_gone() {
        let mut policy = TenantPolicy::default();
        for name in ["a", "b", "c", "d"] {
            policy.apply(&Change::CreateGroup { group: group(name) });
            policy.apply(&Change::AssignUser {
                group: group("a"),
                user: user(name),
            });
        }
        let first = policy.group_page(None, 2);
        let names: Vec<_> = first.items.iter().map(|g| g.name.as_str()).collect();
        assert_eq!((names, first.more), (vec!["a", "b"], true));
        assert_eq!(first.items[0].member_count, 4);
        policy.apply(&Change::DeleteGroup { group: group("b") });
        let rest = policy.group_page(Some(&group("b")), 2);
        let names: Vec<_> = rest.items.iter().map(|g| g.name.as_str()).collect();
        assert_eq!((names, rest.more), (vec!["c", "d"], false));

        policy.apply(&Change::UnassignUser {
            group: group("a"),
            user: user("b"),
        });
        let members = policy
            .member_page(&group("a"), Some(&user("b")), 10)
            .unwrap();
        assert_eq!(members.items, ["c", "d"]);
        assert_eq!(policy.group_page(None, 1).items[0].member_count, 3);
    }

    #[test]
    fn pages_of_a_group_that_does_not_exist_are_none() {
        let policy = alice_with(&[("doc", "read")]);
        assert_eq!(policy.member_page(&group("nope"), None, 10), None);
        assert_eq!(policy.permission_page(&group("nope"), None, 10), None);
        let permissions = policy.permission_page(&group("g"), None, 10).unwrap();
        assert_eq!(permissions.items, [("doc".to_string(), "read".to_string())]);
        assert!(!permissions.more);
    }
}

#[cfg(test)]
mod properties {
    //! Incremental refresh must be indistinguishable from a full reload: replaying the
    //! changelog from any revision gives the same policy as loading the final state whole.

    use proptest::prelude::*;

    use super::*;
    use crate::policy::{Action, Resource, UserName};

    const GROUPS: &[&str] = &["g0", "g1", "g2"];
    const USERS: &[&str] = &["u0", "u1", "u2"];
    const RESOURCES: &[&str] = &["r0", "r1", "docs/a", "docs/*", "d*", "*"];
    const ACTIONS: &[&str] = &["read", "write", "*"];

    fn change() -> impl Strategy<Value = Change> {
        let group =
            prop::sample::select(GROUPS).prop_map(|g| GroupName::parse("group", g).unwrap());
        let user = prop::sample::select(USERS).prop_map(|u| UserName::parse("user", u).unwrap());
        let permission = (
            prop::sample::select(RESOURCES),
            prop::sample::select(ACTIONS),
        )
            .prop_map(|(r, a)| Permission {
                resource: Resource::parse("resource", r).unwrap(),
                action: Action::parse("action", a).unwrap(),
            });
        prop_oneof![
            2 => group.clone().prop_map(|group| Change::CreateGroup { group }),
            1 => group.clone().prop_map(|group| Change::DeleteGroup { group }),
            3 => (group.clone(), permission.clone())
                .prop_map(|(group, permission)| Change::AddPermission { group, permission }),
            2 => (group.clone(), permission)
                .prop_map(|(group, permission)| Change::RemovePermission { group, permission }),
            3 => (group.clone(), user.clone()).prop_map(|(group, user)| Change::AssignUser { group, user }),
            2 => (group, user).prop_map(|(group, user)| Change::UnassignUser { group, user }),
        ]
    }

    /// What a store does: applies every write, numbering and logging those that changed.
    fn record(changes: &[Change]) -> (TenantPolicy, Vec<(u64, Change)>) {
        let mut truth = TenantPolicy::default();
        let mut changelog = Vec::new();
        for change in changes {
            if truth.apply(change) {
                truth.revision += 1;
                changelog.push((truth.revision, change.clone()));
            }
        }
        (truth, changelog)
    }

    /// What a full load does: builds the policy from the rows of the final state.
    fn reload(truth: &TenantPolicy) -> TenantPolicy {
        let mut policy = TenantPolicy::at_revision(truth.revision());
        for group in truth.groups() {
            let name = GroupName::parse("group", &group.name).unwrap();
            policy.apply(&Change::CreateGroup {
                group: name.clone(),
            });
            for (resource, action) in &group.permissions {
                policy.apply(&Change::AddPermission {
                    group: name.clone(),
                    permission: Permission {
                        resource: Resource::parse("resource", resource).unwrap(),
                        action: Action::parse("action", action).unwrap(),
                    },
                });
            }
            for member in &group.members {
                policy.apply(&Change::AssignUser {
                    group: name.clone(),
                    user: UserName::parse("user", member).unwrap(),
                });
            }
        }
        policy
    }

    /// Every group as the pages of `limit` items list them, each page resuming after the last.
    fn paged(policy: &TenantPolicy, limit: usize) -> Vec<GroupView> {
        let mut views = Vec::new();
        let mut after = None;
        loop {
            let page = policy.group_page(after.as_ref(), limit);
            assert!(page.items.len() <= limit);
            for summary in &page.items {
                let name = GroupName::parse("group", &summary.name).unwrap();
                let mut view = GroupView {
                    name: summary.name.clone(),
                    permissions: Vec::new(),
                    members: Vec::new(),
                };
                let mut after = None;
                loop {
                    let page = policy
                        .permission_page(&name, after.as_ref(), limit)
                        .unwrap();
                    assert!(page.items.len() <= limit);
                    after = page.resume_after().map(|(r, a)| Permission {
                        resource: Resource::parse("resource", r).unwrap(),
                        action: Action::parse("action", a).unwrap(),
                    });
                    view.permissions.extend(page.items);
                    if after.is_none() {
                        break;
                    }
                }
                let mut after = None;
                loop {
                    let page = policy.member_page(&name, after.as_ref(), limit).unwrap();
                    assert!(page.items.len() <= limit);
                    after = page
                        .resume_after()
                        .map(|u| UserName::parse("user", u).unwrap());
                    view.members.extend(page.items);
                    if after.is_none() {
                        break;
                    }
                }
                assert_eq!(
                    (summary.permission_count, summary.member_count),
                    (view.permissions.len(), view.members.len()),
                    "the counts of {}",
                    summary.name
                );
                views.push(view);
            }
            after = page
                .resume_after()
                .map(|g| GroupName::parse("group", &g.name).unwrap());
            if after.is_none() {
                return views;
            }
        }
    }

    /// Every index, with group ids turned into names (two policies may number groups
    /// differently), sorted.
    fn indexes(policy: &TenantPolicy) -> Vec<String> {
        let name = |id: &GroupId| policy.names.get(id).unwrap().to_string();
        let grants = |kind: &'static str, index: &CowMap<Key, Grants>| -> Vec<String> {
            index
                .iter()
                .map(|(key, grants)| {
                    let mut actions: Vec<String> = grants
                        .0
                        .iter()
                        .map(|(action, holders)| {
                            let mut names: Vec<String> = holders.0.iter().map(name).collect();
                            names.sort();
                            format!("{action}:{names:?}")
                        })
                        .collect();
                    actions.sort();
                    format!("{kind} {key} {actions:?}")
                })
                .collect()
        };
        let mut lines: Vec<String> = grants("exact", &policy.exact)
            .into_iter()
            .chain(grants("prefix", &policy.prefixes))
            .chain(policy.members.iter().map(|(user, groups)| {
                let mut names: Vec<String> = groups.0.iter().map(name).collect();
                names.sort();
                format!("member {user} {names:?}")
            }))
            .collect();
        lines.sort();
        lines
    }

    /// The two policies hold the same things in every structure, whatever the history that
    /// built each: whether a map is one table or shards may differ, since a map that grew
    /// past the threshold and shrank back stays sharded a while.
    fn same_structures(a: &TenantPolicy, b: &TenantPolicy) -> Result<(), TestCaseError> {
        prop_assert_eq!(a, b);
        prop_assert_eq!(
            (a.permission_count(), a.assignment_count(), a.group_count()),
            (b.permission_count(), b.assignment_count(), b.group_count())
        );
        prop_assert_eq!(
            (
                a.prefixes.len(),
                a.exact.len(),
                a.members.len(),
                &a.prefix_lengths
            ),
            (
                b.prefixes.len(),
                b.exact.len(),
                b.members.len(),
                &b.prefix_lengths
            )
        );
        prop_assert_eq!(indexes(a), indexes(b));
        prop_assert_eq!(a.names.len(), a.groups.len());
        // What the entries own is estimated from what they are, not from how they came.
        prop_assert_eq!(a.heap_bytes, b.heap_bytes);
        Ok(())
    }

    /// A tenant large enough for its maps to be sharded: hundreds of members in g0, of exact
    /// resources in g1 and of prefixes in g2.
    fn large_prelude() -> impl Strategy<Value = Vec<Change>> {
        (300..700usize, 300..700usize, 0..600usize).prop_map(|(members, exact, prefixes)| {
            let group = |g: &str| GroupName::parse("group", g).unwrap();
            let mut changes: Vec<Change> = GROUPS
                .iter()
                .map(|g| Change::CreateGroup { group: group(g) })
                .collect();
            changes.extend((0..members).map(|u| Change::AssignUser {
                group: group("g0"),
                user: UserName::parse("user", &format!("member-{u}")).unwrap(),
            }));
            let permission = |resource: String| Permission {
                resource: Resource::parse("resource", &resource).unwrap(),
                action: Action::parse("action", "read").unwrap(),
            };
            changes.extend((0..exact).map(|r| Change::AddPermission {
                group: group("g1"),
                permission: permission(format!("resource-{r}")),
            }));
            changes.extend((0..prefixes).map(|p| Change::AddPermission {
                group: group("g2"),
                permission: permission(format!("prefix/{p}/*")),
            }));
            changes
        })
    }

    proptest! {
        #[test]
        fn replaying_the_changelog_from_any_revision_equals_a_full_reload(
            changes in prop::collection::vec(change(), 0..80),
            cut in any::<prop::sample::Index>(),
        ) {
            let (truth, changelog) = record(&changes);
            // An instance that saw the first `k` changes, then replays the rest.
            let k = cut.index(changelog.len() + 1);
            let (earlier, _) = record(
                &changelog[..k].iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
            );
            let mut replayed = earlier;
            for (revision, change) in &changelog[k..] {
                prop_assert_eq!(replayed.advance(*revision, change), Ok(()));
            }
            let reloaded = reload(&truth);
            same_structures(&replayed, &reloaded)?;
            prop_assert_eq!(replayed.revision(), changelog.len() as u64);
            for limit in [1, 2, 3] {
                prop_assert_eq!(paged(&replayed, limit), truth.groups());
            }
            for user in USERS {
                for resource in ["r0", "r1", "docs/a", "docs/b", "d", "x", "*"] {
                    for action in ["read", "write", "delete"] {
                        prop_assert_eq!(
                            replayed.allows(user, resource, action),
                            truth.allows(user, resource, action)
                        );
                    }
                }
            }
        }

        #[test]
        fn a_large_tenant_replayed_across_the_switch_between_one_table_and_shards_equals_a_full_reload(
            prelude in large_prelude(),
            changes in prop::collection::vec(change(), 0..80),
            cut in any::<prop::sample::Index>(),
        ) {
            // The random changes delete g0, g1 and g2 now and then: a map drops from hundreds
            // of entries to a handful in one change, and is joined into one table again.
            let all: Vec<Change> = prelude.into_iter().chain(changes).collect();
            let (truth, changelog) = record(&all);
            let k = cut.index(changelog.len() + 1);
            let (mut replayed, _) = record(
                &changelog[..k].iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
            );
            for (revision, change) in &changelog[k..] {
                prop_assert_eq!(replayed.advance(*revision, change), Ok(()));
            }
            same_structures(&replayed, &reload(&truth))?;
            for (user, resource) in [
                ("member-7", "resource-3"),
                ("u0", "resource-3"),
                ("u1", "prefix/5/x"),
                ("member-299", "prefix/1/"),
            ] {
                prop_assert_eq!(
                    replayed.allows(user, resource, "read"),
                    truth.allows(user, resource, "read")
                );
            }
        }

        #[test]
        fn a_replay_with_a_missing_revision_is_refused(
            changes in prop::collection::vec(change(), 1..40),
        ) {
            let (_, changelog) = record(&changes);
            prop_assume!(changelog.len() >= 2);
            let mut policy = TenantPolicy::default();
            let (_, first) = &changelog[0];
            policy.advance(1, first).unwrap();
            let (revision, third_or_later) = &changelog[changelog.len() - 1];
            if *revision > 2 {
                let refused = matches!(
                    policy.advance(*revision, third_or_later),
                    Err(AdvanceError::Gap { held: 1, .. })
                );
                prop_assert!(refused);
            }
        }
    }
}
