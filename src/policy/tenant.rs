//! One tenant's policy at one revision, indexed for the check.
//!
//! The indexes are what make a check cost a few hash look-ups whatever the tenant's size:
//! user -> groups, and per group, literal resource -> actions plus prefix -> actions for the
//! wildcard resources, with the set of prefix lengths in use so a check probes only those.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::change::{Change, Permission};
use super::name::{GroupName, UserName};

/// The action pattern that matches every action.
const ANY_ACTION: &str = "*";

/// A tenant's groups, permissions and memberships at `revision`.
///
/// Cloning copies the whole policy; a change is applied to a copy and the copy published, so a
/// reader never sees half a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantPolicy {
    revision: u64,
    groups: HashMap<GroupName, Group>,
    /// user -> the groups that have the user as a member.
    memberships: HashMap<UserName, HashSet<GroupName>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Group {
    members: HashSet<UserName>,
    grants: Grants,
}

/// A group's permissions, indexed by how a resource pattern matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Grants {
    /// Literal resource -> action patterns.
    exact: HashMap<Box<str>, HashSet<Box<str>>>,
    /// Prefix (the resource pattern without its trailing `*`) -> action patterns.
    prefixes: HashMap<Box<str>, HashSet<Box<str>>>,
    /// Prefix length in bytes -> how many prefixes have that length.
    prefix_lengths: BTreeMap<usize, usize>,
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

/// What one user gets in a tenant, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserView {
    pub groups: Vec<String>,
    /// (resource, action, group) triples, sorted.
    pub permissions: Vec<(String, String, String)>,
}

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
        let Some(groups) = self.memberships.get(user) else {
            return false;
        };
        groups.iter().any(|group| {
            self.groups
                .get(group)
                .is_some_and(|g| g.grants.allows(resource, action))
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
                self.groups.insert(group.clone(), Group::default());
                true
            }
            Change::DeleteGroup { group } => {
                let Some(removed) = self.groups.remove(group) else {
                    return false;
                };
                for user in &removed.members {
                    self.forget_membership(user, group);
                }
                true
            }
            Change::AddPermission { group, permission } => self
                .groups
                .get_mut(group)
                .is_some_and(|g| g.grants.insert(permission)),
            Change::RemovePermission { group, permission } => self
                .groups
                .get_mut(group)
                .is_some_and(|g| g.grants.remove(permission)),
            Change::AssignUser { group, user } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return false;
                };
                if !g.members.insert(user.clone()) {
                    return false;
                }
                self.memberships
                    .entry(user.clone())
                    .or_default()
                    .insert(group.clone());
                true
            }
            Change::UnassignUser { group, user } => {
                let removed = self
                    .groups
                    .get_mut(group)
                    .is_some_and(|g| g.members.remove(user));
                if removed {
                    self.forget_membership(user, group);
                }
                removed
            }
        }
    }

    fn forget_membership(&mut self, user: &UserName, group: &GroupName) {
        if let Some(groups) = self.memberships.get_mut(user) {
            groups.remove(group);
            if groups.is_empty() {
                self.memberships.remove(user);
            }
        }
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn permission_count(&self) -> usize {
        self.groups.values().map(|g| g.grants.len()).sum()
    }

    pub fn assignment_count(&self) -> usize {
        self.groups.values().map(|g| g.members.len()).sum()
    }

    /// Every group with its permissions and members, sorted by name.
    pub fn groups(&self) -> Vec<GroupView> {
        let mut groups: Vec<GroupView> = self
            .groups
            .iter()
            .map(|(name, g)| {
                let mut members: Vec<String> =
                    g.members.iter().map(|u| u.as_str().to_owned()).collect();
                members.sort_unstable();
                GroupView {
                    name: name.as_str().to_owned(),
                    permissions: g.grants.list(),
                    members,
                }
            })
            .collect();
        groups.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        groups
    }

    /// The groups `user` belongs to and every permission those groups give, sorted.
    pub fn user(&self, user: &str) -> UserView {
        let Some(names) = self.memberships.get(user) else {
            return UserView::default();
        };
        let mut view = UserView::default();
        for name in names {
            view.groups.push(name.as_str().to_owned());
            if let Some(group) = self.groups.get(name) {
                view.permissions.extend(
                    group
                        .grants
                        .list()
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

impl Grants {
    fn allows(&self, resource: &str, action: &str) -> bool {
        if self
            .exact
            .get(resource)
            .is_some_and(|actions| action_matches(actions, action))
        {
            return true;
        }
        self.prefix_lengths
            .keys()
            .take_while(|&&len| len <= resource.len())
            .any(|&len| {
                // A prefix ending inside a multi-byte character cannot be a prefix of this
                // resource, since every stored prefix is itself valid UTF-8.
                resource.is_char_boundary(len)
                    && self
                        .prefixes
                        .get(&resource[..len])
                        .is_some_and(|actions| action_matches(actions, action))
            })
    }

    fn insert(&mut self, permission: &Permission) -> bool {
        let action: Box<str> = permission.action.as_str().into();
        match prefix_of(permission.resource.as_str()) {
            Some(prefix) => {
                let inserted = self
                    .prefixes
                    .entry(prefix.into())
                    .or_default()
                    .insert(action);
                if inserted {
                    *self.prefix_lengths.entry(prefix.len()).or_default() += 1;
                }
                inserted
            }
            None => self
                .exact
                .entry(permission.resource.as_str().into())
                .or_default()
                .insert(action),
        }
    }

    fn remove(&mut self, permission: &Permission) -> bool {
        let resource = permission.resource.as_str();
        let action = permission.action.as_str();
        match prefix_of(resource) {
            Some(prefix) => {
                let removed = remove_action(&mut self.prefixes, prefix, action);
                if removed {
                    let count = self
                        .prefix_lengths
                        .get_mut(&prefix.len())
                        .expect("every stored prefix has its length counted");
                    *count -= 1;
                    if *count == 0 {
                        self.prefix_lengths.remove(&prefix.len());
                    }
                }
                removed
            }
            None => remove_action(&mut self.exact, resource, action),
        }
    }

    fn len(&self) -> usize {
        self.exact
            .values()
            .chain(self.prefixes.values())
            .map(HashSet::len)
            .sum()
    }

    fn list(&self) -> Vec<(String, String)> {
        let exact = self.exact.iter().flat_map(|(resource, actions)| {
            actions
                .iter()
                .map(move |action| (resource.to_string(), action.to_string()))
        });
        let prefixes = self.prefixes.iter().flat_map(|(prefix, actions)| {
            actions
                .iter()
                .map(move |action| (format!("{prefix}*"), action.to_string()))
        });
        let mut list: Vec<(String, String)> = exact.chain(prefixes).collect();
        list.sort_unstable();
        list
    }
}

/// The prefix a resource pattern stands for, if it is a wildcard pattern.
fn prefix_of(resource: &str) -> Option<&str> {
    resource.strip_suffix('*')
}

fn action_matches(actions: &HashSet<Box<str>>, action: &str) -> bool {
    actions.contains(action) || actions.contains(ANY_ACTION)
}

fn remove_action(
    index: &mut HashMap<Box<str>, HashSet<Box<str>>>,
    key: &str,
    action: &str,
) -> bool {
    let Some(actions) = index.get_mut(key) else {
        return false;
    };
    let removed = actions.remove(action);
    if actions.is_empty() {
        index.remove(key);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Resource};

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
        assert!(policy.groups[&group("g")].grants.prefix_lengths.is_empty());
    }

    #[test]
    fn unassigning_a_user_revokes_what_the_group_gave() {
        let mut policy = alice_with(&[("doc1", "read")]);
        assert!(policy.apply(&Change::UnassignUser {
            group: group("g"),
            user: user("alice"),
        }));
        assert!(!policy.allows("alice", "doc1", "read"));
        assert!(policy.memberships.is_empty());
    }

    #[test]
    fn deleting_a_group_takes_its_permissions_and_members_with_it() {
        let mut policy = alice_with(&[("doc1", "read")]);
        assert!(policy.apply(&Change::DeleteGroup { group: group("g") }));
        assert!(!policy.allows("alice", "doc1", "read"));
        assert_eq!(policy.group_count(), 0);
        assert!(policy.memberships.is_empty());
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
        assert!(policy.memberships.is_empty());
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
}

#[cfg(test)]
mod properties {
    //! Incremental refresh must be indistinguishable from a full reload: replaying the
    //! changelog from any revision gives the same policy as loading the final state whole.

    use proptest::prelude::*;

    use super::*;
    use crate::policy::{Action, Resource};

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
            prop_assert_eq!(&replayed, &reloaded);
            prop_assert_eq!(replayed.revision(), changelog.len() as u64);
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
