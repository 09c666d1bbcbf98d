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
//!
//! This file holds the policy, the check and the policy's sizes. The rest is split by concern,
//! each part with its tests: the sorted sets the indexes are made of (`tenant/index.rs`),
//! applying a change (`tenant/apply.rs`), and the listings and pages read from a policy
//! (`tenant/view.rs`). They are modules of this one rather than its siblings so that the
//! policy's fields stay private to `tenant`: nothing else in `policy` sees them.

mod apply;
mod index;
mod nesting;
mod view;

use std::mem::size_of;
use std::sync::Arc;

use compact_str::CompactString;

use super::cow_map::CowMap;
use super::instant::UnixMillis;
use super::name::GroupName;
use index::{Endings, Grants, GroupSet, MemberSet, PermissionSet, matches_action};

pub use apply::AdvanceError;
pub use nesting::{MAX_NESTING_DEPTH, NestingProblem, Nestings};
pub use view::{GroupSummary, GroupView, UserItem};

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
    /// group -> the groups it is nested in directly.
    parents: CowMap<GroupId, GroupSet>,
    /// group -> the groups nested in it directly.
    children: CowMap<GroupId, GroupSet>,
    /// group -> every group it is nested in, directly or through others: what its members
    /// inherit. Only nested groups have an entry, so that a tenant without nesting has none
    /// and its checks skip the step (`nesting.rs`).
    ancestors: CowMap<GroupId, Arc<GroupSet>>,
    nesting_count: usize,
    /// user -> the ends of the user's memberships that end. Only such users have an entry,
    /// so that a tenant whose memberships never end has none and its checks skip the step.
    endings: CowMap<Key, Endings>,
    ending_count: usize,
    permission_count: usize,
    assignment_count: usize,
    /// What the entries own on the heap beyond the maps' tables, by
    /// [`footprint`](super::footprint)'s estimates; kept as entries come and go, so that
    /// sizing a tenant does not walk it.
    heap_bytes: usize,
}

/// Where a check keeps the groups it looks at: on the stack for the usual few.
#[derive(Default)]
struct Scratch {
    live: nesting::Reach,
    reach: nesting::Reach,
}

/// The groups of a user at one instant: those it is a member of (in force), and all whose
/// permissions it has, nested ones included; each sorted.
struct Reached<'a> {
    direct: &'a [GroupId],
    all: &'a [GroupId],
}

/// A resource pattern as granted: a resource taken literally, or a prefix (written with its
/// trailing `*`).
#[derive(Debug, Clone, Copy)]
enum Pattern<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

impl std::fmt::Display for Pattern<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(resource) => f.write_str(resource),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A permission through which a check is allowed: the group that holds it, of which the user
/// is a member, and its patterns; and, when the user has the group through nesting, the chain
/// of groups from one the user is a member of up to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Because {
    pub group: GroupName,
    pub resource: String,
    pub action: String,
    /// Empty for a group the user is a member of directly.
    pub through: Vec<GroupName>,
}

#[derive(Debug, Clone)]
struct GroupRecord {
    id: GroupId,
    /// Shared, so that copying a shard of the group map copies no group's permissions.
    permissions: Arc<PermissionSet>,
    /// The group's members: what who-can, a page of members and deleting the group read, in
    /// proportion to the group rather than to the tenant. The check reads `members`, by user.
    members: MemberSet,
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

    /// May `user` do `action` on `resource`, at `now`? Allowed iff some group has the user as
    /// a member, with a membership in force at `now`, directly or through nesting, and holds a
    /// permission whose resource and action patterns both match.
    pub fn allows(&self, user: &str, resource: &str, action: &str, now: UnixMillis) -> bool {
        let mut scratch = Scratch::default();
        let Some(Reached { all: groups, .. }) = self.user_groups(user, now, &mut scratch) else {
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

    /// Why [`TenantPolicy::allows`] answers as it does: every permission of a group that has
    /// `user` as a member and whose patterns match, sorted; none when it denies. Found through
    /// the check's own indexes, so its cost follows what matches, not the user's permissions.
    pub fn explain(
        &self,
        user: &str,
        resource: &str,
        action: &str,
        now: UnixMillis,
    ) -> Vec<Because> {
        let mut scratch = Scratch::default();
        let Some(Reached {
            direct,
            all: groups,
        }) = self.user_groups(user, now, &mut scratch)
        else {
            return Vec::new();
        };
        let mut because = Vec::new();
        for (pattern, grants) in self.grants_matching(resource) {
            let matching = grants
                .0
                .iter()
                .filter(|(held, _)| matches_action(held, action));
            for (held, holders) in matching {
                let members = holders
                    .0
                    .iter()
                    .filter(|id| groups.binary_search(id).is_ok());
                for &id in members {
                    let Some(group) = self.name_of(id) else {
                        continue;
                    };
                    let through = if direct.binary_search(&id).is_ok() {
                        Vec::new()
                    } else {
                        let path = self.path(direct, id);
                        path.iter()
                            .filter_map(|&id| self.name_of(id))
                            .cloned()
                            .collect()
                    };
                    because.push(Because {
                        group: group.clone(),
                        resource: pattern.to_string(),
                        action: held.to_string(),
                        through,
                    });
                }
            }
        }
        because.sort_unstable();
        because
    }

    /// The groups whose permissions `user` has at `now`: those it is a member of with a
    /// membership in force, and every group they are nested in. None for a user in no group.
    #[inline]
    fn user_groups<'a>(
        &'a self,
        user: &str,
        now: UnixMillis,
        scratch: &'a mut Scratch,
    ) -> Option<Reached<'a>> {
        let direct = self.members.get(user)?;
        let Scratch { live, reach } = scratch;
        let direct = self.in_force(user, direct, now, live);
        let all = self.reach(direct, reach);
        Some(Reached { direct, all })
    }

    /// Those of `direct`, the groups `user` is a member of, whose memberships are in force at
    /// `now`: `direct` itself unless one of them has ended.
    #[inline]
    fn in_force<'a>(
        &self,
        user: &str,
        direct: &'a GroupSet,
        now: UnixMillis,
        buffer: &'a mut nesting::Reach,
    ) -> &'a [GroupId] {
        if self.endings.is_empty() {
            return &direct.0;
        }
        let Some(endings) = self.endings.get(user) else {
            return &direct.0;
        };
        if endings.0.iter().all(|&(_, end)| end > now) {
            return &direct.0;
        }
        buffer.extend(
            direct
                .0
                .iter()
                .copied()
                .filter(|&id| endings.in_force(id, now)),
        );
        buffer
    }

    /// Whether `user`'s membership in `id` (which must exist) is in force at `now`.
    fn membership_in_force(&self, user: &str, id: GroupId, now: UnixMillis) -> bool {
        self.endings
            .get(user)
            .is_none_or(|endings| endings.in_force(id, now))
    }

    /// When `user`'s membership in `group` ends; None if it does not, or if there is none.
    pub fn membership_end(&self, user: &str, group: &str) -> Option<UnixMillis> {
        let id = self.groups.get(group)?.id;
        self.endings.get(user)?.of(id)
    }

    /// Whether some membership of the tenant ends: only then do its answers depend on the
    /// instant they are given at.
    pub fn has_endings(&self) -> bool {
        !self.endings.is_empty()
    }

    /// The grants of every resource pattern that matches `resource`, as [`TenantPolicy::allows`]
    /// finds them: the resource itself, then each prefix (a pattern that ends in `*`), each
    /// with the pattern as granted.
    fn grants_matching<'a>(
        &'a self,
        resource: &'a str,
    ) -> impl Iterator<Item = (Pattern<'a>, &'a Grants)> {
        let prefixes = self
            .prefix_lengths
            .iter()
            .map(|&(len, _)| len)
            .take_while(move |&len| len <= resource.len())
            .filter(move |&len| resource.is_char_boundary(len))
            .filter_map(move |len| {
                let prefix = &resource[..len];
                Some((Pattern::Prefix(prefix), self.prefixes.get(prefix)?))
            });
        let exact = self
            .exact
            .get(resource)
            .map(|grants| (Pattern::Exact(resource), grants));
        exact.into_iter().chain(prefixes)
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
    /// what the entries own besides by [`footprint`](super::footprint)'s estimates. What the
    /// cache's memory budget counts; `scripts/bench.sh` sets it beside the resident set size
    /// it stands for.
    pub fn estimated_bytes(&self) -> usize {
        size_of::<Self>()
            + self.groups.table_bytes()
            + self.names.table_bytes()
            + self.members.table_bytes()
            + self.exact.table_bytes()
            + self.prefixes.table_bytes()
            + self.prefix_lengths.capacity() * size_of::<(usize, usize)>()
            + self.parents.table_bytes()
            + self.children.table_bytes()
            + self.ancestors.table_bytes()
            + self.endings.table_bytes()
            + self.heap_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Change, Permission, Resource, UserName};

    // Shared with the tests of `apply` and `view`, which build their policies the same way.

    /// The instant the tests ask at: no membership of theirs ends unless one says so.
    pub(super) const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    pub(super) fn group(name: &str) -> GroupName {
        GroupName::parse("group", name).unwrap()
    }

    pub(super) fn user(name: &str) -> UserName {
        UserName::parse("user", name).unwrap()
    }

    pub(super) fn permission(resource: &str, action: &str) -> Permission {
        Permission {
            resource: Resource::parse("resource", resource).unwrap(),
            action: Action::parse("action", action).unwrap(),
        }
    }

    /// A policy where `alice` is in `g`, which holds the given permissions.
    pub(super) fn alice_with(permissions: &[(&str, &str)]) -> TenantPolicy {
        let mut policy = TenantPolicy::default();
        policy.apply(&Change::CreateGroup { group: group("g") });
        policy.apply(&Change::AssignUser {
            group: group("g"),
            user: user("alice"),
            expires_at: None,
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
        assert!(policy.allows("alice", "doc1", "read", NOW));
        assert!(!policy.allows("alice", "doc1", "write", NOW));
        assert!(!policy.allows("alice", "doc2", "read", NOW));
        assert!(!policy.allows("alice", "doc", "read", NOW));
        assert!(!policy.allows("alice", "doc10", "read", NOW));
    }

    #[test]
    fn a_user_outside_every_group_is_denied() {
        let policy = alice_with(&[("*", "*")]);
        assert!(!policy.allows("bob", "doc1", "read", NOW));
        assert!(!TenantPolicy::default().allows("alice", "doc1", "read", NOW));
    }

    #[test]
    fn a_trailing_star_matches_every_resource_with_that_prefix() {
        let policy = alice_with(&[("docs/*", "read")]);
        assert!(policy.allows("alice", "docs/a", "read", NOW));
        assert!(policy.allows("alice", "docs/", "read", NOW));
        assert!(policy.allows("alice", "docs/a/b/c", "read", NOW));
        assert!(!policy.allows("alice", "docs", "read", NOW));
        assert!(!policy.allows("alice", "doc/a", "read", NOW));
        assert!(!policy.allows("alice", "docs/a", "write", NOW));
    }

    #[test]
    fn a_lone_star_matches_every_resource() {
        let policy = alice_with(&[("*", "read")]);
        assert!(policy.allows("alice", "anything", "read", NOW));
        assert!(policy.allows("alice", "*", "read", NOW));
        assert!(!policy.allows("alice", "anything", "write", NOW));
    }

    #[test]
    fn action_star_matches_every_action() {
        let policy = alice_with(&[("doc1", "*")]);
        assert!(policy.allows("alice", "doc1", "read", NOW));
        assert!(policy.allows("alice", "doc1", "delete", NOW));
        assert!(!policy.allows("alice", "doc2", "read", NOW));
    }

    #[test]
    fn a_star_anywhere_but_the_end_of_a_resource_is_literal() {
        let policy = alice_with(&[("a*b", "read"), ("x", "re*")]);
        assert!(policy.allows("alice", "a*b", "read", NOW));
        assert!(!policy.allows("alice", "aXb", "read", NOW));
        assert!(policy.allows("alice", "x", "re*", NOW));
        assert!(!policy.allows("alice", "x", "read", NOW));
    }

    #[test]
    fn a_star_in_a_checked_resource_is_literal() {
        let policy = alice_with(&[("docs/a", "read")]);
        assert!(!policy.allows("alice", "docs/*", "read", NOW));
        assert!(!policy.allows("alice", "*", "read", NOW));
    }

    #[test]
    fn prefixes_of_several_lengths_are_all_considered() {
        let policy = alice_with(&[("a/b/c/*", "read"), ("x*", "write")]);
        assert!(policy.allows("alice", "a/b/c/d", "read", NOW));
        assert!(policy.allows("alice", "xyz", "write", NOW));
        assert!(!policy.allows("alice", "a/b/d", "read", NOW));
    }

    #[test]
    fn a_prefix_that_ends_inside_a_multibyte_character_never_matches() {
        // "é" is two bytes; the prefix "e" has length 1 and must not panic on slicing "é".
        let policy = alice_with(&[("e*", "read")]);
        assert!(!policy.allows("alice", "é", "read", NOW));
        assert!(policy.allows("alice", "eé", "read", NOW));
    }

    #[test]
    fn permissions_of_any_of_the_users_groups_count() {
        let mut policy = alice_with(&[]);
        policy.apply(&Change::CreateGroup { group: group("h") });
        policy.apply(&Change::AssignUser {
            group: group("h"),
            user: user("alice"),
            expires_at: None,
        });
        policy.apply(&Change::AddPermission {
            group: group("h"),
            permission: permission("doc", "read"),
        });
        assert!(policy.allows("alice", "doc", "read", NOW));
    }

    #[test]
    fn a_permission_of_a_group_the_user_is_not_in_does_not_count() {
        let mut policy = alice_with(&[]);
        policy.apply(&Change::CreateGroup { group: group("h") });
        policy.apply(&Change::AddPermission {
            group: group("h"),
            permission: permission("doc", "read"),
        });
        assert!(!policy.allows("alice", "doc", "read", NOW));
    }

    #[test]
    fn two_tenants_policies_are_independent() {
        let a = alice_with(&[("doc1", "read")]);
        let mut b = a.clone();
        b.apply(&Change::DeleteGroup { group: group("g") });
        assert!(a.allows("alice", "doc1", "read", NOW));
        assert!(!b.allows("alice", "doc1", "read", NOW));
    }
}

// Here rather than beside `apply`: the property holds of the whole policy (the check, the
// listings and every index), and proptest keeps its regressions under this file's path.
#[cfg(test)]
pub(super) mod properties {
    //! Incremental refresh must be indistinguishable from a full reload: replaying the
    //! changelog from any revision gives the same policy as loading the final state whole.

    use proptest::prelude::*;

    use crate::policy::Page;

    use super::tests::NOW;
    use super::*;
    use crate::policy::{Action, Change, Permission, Resource, UserName};

    const GROUPS: &[&str] = &["g0", "g1", "g2"];
    const USERS: &[&str] = &["u0", "u1", "u2"];
    const RESOURCES: &[&str] = &["r0", "r1", "docs/a", "docs/b*", "docs/*", "d*", "*"];
    const ACTIONS: &[&str] = &["read", "write", "*"];
    /// Ends of memberships: one before [`NOW`], one at it, one after.
    const ENDS: &[i64] = &[NOW.0 - 1, NOW.0, NOW.0 + 1];

    pub(in crate::policy) fn change() -> impl Strategy<Value = Change> {
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
            3 => (group.clone(), user.clone(), prop::option::of(prop::sample::select(ENDS)))
                .prop_map(|(group, user, end)| Change::AssignUser { group, user, expires_at: end.map(UnixMillis) }),
            2 => (group.clone(), user).prop_map(|(group, user)| Change::UnassignUser { group, user }),
            2 => (group.clone(), group.clone()).prop_map(|(group, parent)| Change::NestGroup { group, parent }),
            1 => (group.clone(), group).prop_map(|(group, parent)| Change::UnnestGroup { group, parent }),
        ]
    }

    /// Every group `user` is in at [`NOW`], directly (0) or through nesting (how many
    /// nestings up), by a walk over the listed parents; a membership that has ended counts
    /// for nothing.
    fn reach_by_brute_force(
        groups: &[GroupView],
        user: &str,
    ) -> std::collections::HashMap<String, usize> {
        let in_force = |view: &GroupView| {
            view.members.iter().any(|m| m == user)
                && !view.endings.iter().any(|(m, end)| m == user && *end <= NOW)
        };
        let mut reach = std::collections::HashMap::new();
        for view in groups.iter().filter(|view| in_force(view)) {
            for (name, steps) in reach_of_group(groups, &view.name) {
                let known = reach.entry(name).or_insert(steps);
                *known = (*known).min(steps);
            }
        }
        reach
    }

    /// `group` (0) and every group above it, with how many nestings up each is at least.
    fn reach_of_group(
        groups: &[GroupView],
        group: &str,
    ) -> std::collections::HashMap<String, usize> {
        let mut reach = std::collections::HashMap::from([(group.to_owned(), 0)]);
        let mut frontier = vec![group.to_owned()];
        let mut steps = 0;
        while !frontier.is_empty() {
            steps += 1;
            let mut next = Vec::new();
            for name in &frontier {
                let view = groups.iter().find(|g| &g.name == name).unwrap();
                for parent in &view.parents {
                    if !reach.contains_key(parent) {
                        reach.insert(parent.clone(), steps);
                        next.push(parent.clone());
                    }
                }
            }
            frontier = next;
        }
        reach
    }

    /// What a store does: applies every write, numbering and logging those that changed.
    pub(in crate::policy) fn record(changes: &[Change]) -> (TenantPolicy, Vec<(u64, Change)>) {
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
                let end = group.endings.iter().find(|(user, _)| user == member);
                policy.apply(&Change::AssignUser {
                    group: name.clone(),
                    user: UserName::parse("user", member).unwrap(),
                    expires_at: end.map(|(_, end)| *end),
                });
            }
        }
        // Nestings once every group exists, as the stores load them.
        for group in truth.groups() {
            for parent in &group.parents {
                assert!(policy.apply(&Change::NestGroup {
                    group: GroupName::parse("group", &group.name).unwrap(),
                    parent: GroupName::parse("group", parent).unwrap(),
                }));
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
                    parents: Vec::new(),
                    endings: Vec::new(),
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
                    for user in &page.items {
                        if let Some(end) = policy.membership_end(user, name.as_str()) {
                            view.endings.push((user.clone(), end));
                        }
                    }
                    view.members.extend(page.items);
                    if after.is_none() {
                        break;
                    }
                }
                let mut after = None;
                loop {
                    let page = policy
                        .nesting_page(&name, nesting::Nestings::Parents, after.as_ref(), limit)
                        .unwrap();
                    assert!(page.items.len() <= limit);
                    after = page
                        .resume_after()
                        .map(|g| GroupName::parse("group", g).unwrap());
                    view.parents.extend(page.items);
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
            .chain(policy.groups.iter().map(|(group, record)| {
                let mut users: Vec<&str> = record.members.iter().collect();
                users.sort();
                format!("group {group} {users:?}")
            }))
            .chain(
                [("parents", &policy.parents), ("children", &policy.children)]
                    .into_iter()
                    .flat_map(|(kind, edges)| {
                        edges.iter().map(move |(id, set)| {
                            let mut names: Vec<String> = set.0.iter().map(name).collect();
                            names.sort();
                            format!("{kind} {} {names:?}", name(id))
                        })
                    }),
            )
            .chain(policy.endings.iter().map(|(user, endings)| {
                let mut ends: Vec<(String, i64)> = endings
                    .0
                    .iter()
                    .map(|(id, end)| (name(id), end.0))
                    .collect();
                ends.sort();
                format!("endings {user} {ends:?}")
            }))
            .chain(policy.ancestors.iter().map(|(id, set)| {
                let mut names: Vec<String> = set.0.iter().map(name).collect();
                names.sort();
                format!("ancestors {} {names:?}", name(id))
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
                expires_at: None,
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
                            replayed.allows(user, resource, action, NOW),
                            truth.allows(user, resource, action, NOW)
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
                    replayed.allows(user, resource, "read", NOW),
                    truth.allows(user, resource, "read", NOW)
                );
            }
        }

        #[test]
        fn explain_lists_exactly_the_matching_permissions_of_the_users_groups_through_nesting(
            changes in prop::collection::vec(change(), 0..60),
        ) {
            let (policy, _) = record(&changes);
            let groups = policy.groups();
            let matches = |pattern: &str, value: &str| {
                pattern == value || pattern.strip_suffix('*').is_some_and(|p| value.starts_with(p))
            };
            for user in USERS {
                // The user's groups by brute force: its own, then their parents, and so on,
                // each with how many nestings up it is.
                let reach = reach_by_brute_force(&groups, user);
                for resource in ["r0", "r1", "docs/a", "docs/b", "d", "x", "*", "docs/*"] {
                    for action in ["read", "write", "delete", "*"] {
                        let mut expected: Vec<(String, String, String)> = groups
                            .iter()
                            .filter(|g| reach.contains_key(&g.name))
                            .flat_map(|g| {
                                g.permissions
                                    .iter()
                                    .filter(|(r, a)| matches(r, resource) && (a == action || a == "*"))
                                    .map(|(r, a)| (g.name.clone(), r.clone(), a.clone()))
                            })
                            .collect();
                        expected.sort();
                        let explained = policy.explain(user, resource, action, NOW);
                        let listed: Vec<(String, String, String)> = explained
                            .iter()
                            .map(|b| (b.group.to_string(), b.resource.clone(), b.action.clone()))
                            .collect();
                        prop_assert_eq!(&listed, &expected, "{} {} {}", user, resource, action);
                        prop_assert_eq!(
                            !explained.is_empty(),
                            policy.allows(user, resource, action, NOW),
                            "{} {} {}", user, resource, action
                        );
                        for because in &explained {
                            let through: Vec<String> =
                                because.through.iter().map(ToString::to_string).collect();
                            let steps = reach[because.group.as_str()];
                            if steps == 0 {
                                prop_assert!(through.is_empty(), "{:?}", because);
                                continue;
                            }
                            // A shortest chain from one of the user's own groups up to it.
                            prop_assert_eq!(through.len(), steps + 1, "{:?}", because);
                            prop_assert_eq!(reach[through[0].as_str()], 0, "{:?}", because);
                            prop_assert_eq!(through.last(), Some(&because.group.to_string()));
                            for pair in through.windows(2) {
                                let view = groups.iter().find(|g| g.name == pair[0]).unwrap();
                                prop_assert!(view.parents.contains(&pair[1]), "{:?}", because);
                            }
                        }
                    }
                }
            }
        }

        #[test]
        fn a_nesting_that_would_make_a_cycle_is_always_refused(
            changes in prop::collection::vec(change(), 0..60),
        ) {
            let (policy, _) = record(&changes);
            let groups = policy.groups();
            for view in &groups {
                for parent in &groups {
                    let (g, p) = (
                        GroupName::parse("group", &view.name).unwrap(),
                        GroupName::parse("group", &parent.name).unwrap(),
                    );
                    // A cycle exactly when the parent is the group or reaches it going up.
                    let above = reach_of_group(&groups, &parent.name);
                    let cycle = above.contains_key(&view.name);
                    prop_assert_eq!(
                        policy.nesting_problem(&g, &p) == Some(NestingProblem::Cycle),
                        cycle,
                        "{} in {}", view.name, parent.name
                    );
                    if cycle {
                        let mut tried = policy.clone();
                        let nested = tried.apply(&Change::NestGroup { group: g, parent: p });
                        prop_assert!(!nested);
                        prop_assert_eq!(tried.groups(), groups.clone());
                    }
                }
            }
        }

        #[test]
        fn who_can_lists_exactly_the_users_allowed_page_by_page(
            changes in prop::collection::vec(change(), 0..60),
            limit in 1..4usize,
        ) {
            let (policy, changelog) = record(&changes);
            // Replayed and loaded whole alike.
            let mut replayed = TenantPolicy::default();
            for (revision, change) in &changelog {
                prop_assert_eq!(replayed.advance(*revision, change), Ok(()));
            }
            for policy in [&policy, &replayed, &reload(&policy)] {
                for resource in ["r0", "r1", "docs/a", "docs/b", "d", "x", "*"] {
                    for action in ["read", "write", "delete", "*"] {
                        let expected: Vec<String> = USERS
                            .iter()
                            .filter(|user| policy.allows(user, resource, action, NOW))
                            .map(|user| user.to_string())
                            .collect();
                        let mut listed = Vec::new();
                        let mut after: Option<String> = None;
                        loop {
                            let page = policy.who_can(resource, action, "", after.as_deref(), limit, NOW);
                            prop_assert!(page.items.len() <= limit);
                            after = page.resume_after().cloned();
                            listed.extend(page.items);
                            if after.is_none() {
                                break;
                            }
                        }
                        prop_assert_eq!(&listed, &expected, "{} {}", resource, action);
                    }
                }
            }
        }

        #[test]
        fn the_searches_list_what_the_check_allows_page_by_page(
            changes in prop::collection::vec(change(), 0..60),
            limit in 1..4usize,
        ) {
            let (policy, _) = record(&changes);
            let matches = |pattern: &str, value: &str| {
                pattern == value || pattern.strip_suffix('*').is_some_and(|p| value.starts_with(p))
            };
            // Every page, checking that the pages come sorted and never repeat an item.
            let every_page = |list: &dyn Fn(Option<&str>) -> Page<String>| {
                let mut listed: Vec<String> = Vec::new();
                loop {
                    let page = list(listed.last().map(String::as_str));
                    assert!(page.items.len() <= limit);
                    let more = page.more;
                    listed.extend(page.items);
                    if !more {
                        break;
                    }
                }
                assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
                listed
            };
            for user in USERS.iter().chain(&["nobody"]) {
                for resource in ["r0", "docs/a", "docs/bq", "d", "x", "*"] {
                    let actions = every_page(&|after| policy.actions_on(user, resource, after, limit, NOW));
                    for action in ["read", "write", "delete", "*"] {
                        let listed = actions.iter().any(|held| matches_action(held, action));
                        prop_assert_eq!(
                            policy.allows(user, resource, action, NOW), listed,
                            "{} {} {} {:?}", user, resource, action, actions
                        );
                    }
                }
                for action in ["read", "write", "delete"] {
                    let ids = every_page(&|after| {
                        policy.resources_within(user, action, "docs/", after, limit, NOW)
                    });
                    for id in &ids {
                        prop_assert!(policy.allows(user, &format!("docs/{id}"), action, NOW), "{}", id);
                    }
                    for resource in ["docs/a", "docs/b", "docs/bq", "docs/c", "docs/*"] {
                        let listed = ids.iter().any(|id| matches(&format!("docs/{id}"), resource));
                        prop_assert_eq!(
                            policy.allows(user, resource, action, NOW), listed,
                            "{} {} {} {:?}", user, resource, action, ids
                        );
                    }
                }
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
