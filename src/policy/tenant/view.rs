//! What the API lists of a policy: every group whole, pages of groups, of a group's
//! permissions and of its members, and what one user gets.
//!
//! Apart from the check because none of it is on the check's path: it walks the maps and
//! copies names out, where the check only looks up.

use super::index::{PermissionSet, matches_action};
use super::{Reached, Scratch};

/// How a listing of what a user may reach names "every one": the wildcard.
const WILDCARD: &str = "*";
use super::{GroupId, GroupRecord, TenantPolicy};
use crate::policy::page::{self, Page};
use crate::policy::{GroupName, Permission, UnixMillis, UserName};

/// A group as listed by the API, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    /// (resource, action) pairs, sorted.
    pub permissions: Vec<(String, String)>,
    pub members: Vec<String>,
    /// The groups it is nested in directly, sorted.
    pub parents: Vec<String>,
    /// The members whose membership ends, with when, sorted.
    pub endings: Vec<(String, UnixMillis)>,
}

/// A group as a page of groups lists it: its size, not its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub permission_count: usize,
    pub member_count: usize,
}

impl TenantPolicy {
    /// Every group with its permissions and members, sorted by name.
    pub fn groups(&self) -> Vec<GroupView> {
        self.group_names()
            .iter()
            .filter_map(|name| self.group_view(name))
            .collect()
    }

    /// Every group's name, sorted: the names alone, so that a caller can read the groups one
    /// at a time rather than copy them all at once.
    pub fn group_names(&self) -> Vec<GroupName> {
        let mut names: Vec<GroupName> = self.groups.iter().map(|(name, _)| name.clone()).collect();
        names.sort_unstable();
        names
    }

    /// One group with its permissions, members (with the ends of their memberships) and the
    /// groups it is nested in, sorted; None if there is no such group.
    pub fn group_view(&self, name: &GroupName) -> Option<GroupView> {
        let record = self.groups.get(name)?;
        let mut members: Vec<String> = record.members.iter().map(str::to_owned).collect();
        members.sort_unstable();
        let mut parents: Vec<String> = (self.parents.get(&record.id))
            .map_or(&[][..], |parents| &parents.0)
            .iter()
            .filter_map(|&id| self.name_of(id).map(|name| name.as_str().to_owned()))
            .collect();
        parents.sort_unstable();
        let endings = members
            .iter()
            .filter_map(|user| {
                let end = self.endings.get(user.as_str())?.of(record.id)?;
                Some((user.clone(), end))
            })
            .collect();
        Some(GroupView {
            name: name.as_str().to_owned(),
            permissions: listed(&record.permissions),
            members,
            parents,
            endings,
        })
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
                (record.permissions.len(), record.members.len())
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
    /// if there is no such group. Reads the group's members, not the tenant's users.
    pub fn member_page(
        &self,
        group: &GroupName,
        after: Option<&UserName>,
        limit: usize,
    ) -> Option<Page<String>> {
        let record = self.groups.get(group)?;
        let members = record
            .members
            .iter()
            .filter(|user| after.is_none_or(|after| *user > after.as_str()));
        Some(page::smallest(members, limit).map(str::to_owned))
    }

    /// The users allowed `action` on `resource` whose names sort after `after`, `limit` of
    /// them, by name: the members of every group holding a permission that matches. Found
    /// through the check's indexes, so that its cost follows those groups and their members,
    /// not the tenant's size.
    ///
    /// Only users whose names start with `within` are listed (all with `""`).
    pub fn who_can(
        &self,
        resource: &str,
        action: &str,
        within: &str,
        after: Option<&str>,
        limit: usize,
        now: UnixMillis,
    ) -> Page<String> {
        let mut ids: Vec<GroupId> = self
            .grants_matching(resource)
            .flat_map(|(_, grants)| grants.0.iter())
            .filter(|(held, _)| matches_action(held, action))
            .flat_map(|(_, holders)| holders.0.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // The members of the groups nested in those count too.
        self.with_nested(&mut ids);
        let groups: Vec<(GroupId, &GroupRecord)> = ids
            .iter()
            .filter_map(|id| Some((*id, self.groups.get(self.names.get(id)?)?)))
            .collect();
        let several = groups.len() > 1;
        let ids = &ids;
        let users = groups.iter().flat_map(|&(id, record)| {
            record
                .members
                .iter()
                .filter(move |user| user.starts_with(within))
                .filter(move |user| after.is_none_or(|after| *user > after))
                .filter(move |user| self.membership_in_force(user, id, now))
                // A member of several of the groups is listed with the first of them only.
                .filter(move |user| !several || self.first_matching(user, ids, now) == Some(id))
        });
        page::smallest(users, limit).map(str::to_owned)
    }

    /// The first of `ids` (sorted) that has `user` as a member, in force at `now`.
    fn first_matching(&self, user: &str, ids: &[GroupId], now: UnixMillis) -> Option<GroupId> {
        let groups = self.members.get(user)?;
        ids.iter()
            .copied()
            .find(|&id| groups.contains(id) && self.membership_in_force(user, id, now))
    }

    /// The resources under `within` on which `user` may do `action`, named by what follows
    /// `within` in the permissions that allow it, sorted: the ones after `after`, `limit` of
    /// them. A permission on a pattern under `within` is listed as its pattern (`docs/*` under
    /// `docs/` as `*`, `docs/a*` as `a*`); one whose pattern covers all of `within` (`*`, or
    /// `do*` for `docs/`) as `*`. Reads the permissions of the user's groups from `after` on,
    /// not the tenant.
    pub fn resources_within(
        &self,
        user: &str,
        action: &str,
        within: &str,
        after: Option<&str>,
        limit: usize,
        now: UnixMillis,
    ) -> Page<String> {
        let mut scratch = Scratch::default();
        let Some(Reached { all: groups, .. }) = self.user_groups(user, now, &mut scratch) else {
            return Page::default();
        };
        let covered = self
            .prefix_lengths
            .iter()
            .map(|&(len, _)| len)
            .take_while(|&len| len < within.len())
            .filter(|&len| within.is_char_boundary(len))
            .any(|len| {
                self.prefixes
                    .get(&within[..len])
                    .is_some_and(|grants| grants.allows(action, groups))
            });
        let after = after.filter(|after| !after.is_empty());
        let start = format!("{within}{}", after.unwrap_or_default());
        let everything = covered.then_some(WILDCARD);
        let granted = groups
            .iter()
            .filter_map(|id| self.groups.get(self.names.get(id)?))
            .map(|record| {
                let held: Box<dyn Iterator<Item = &str>> = Box::new(
                    record
                        .permissions
                        .starting_at(&start)
                        .iter()
                        .take_while(|p| p.resource.as_str().starts_with(within))
                        .filter(|p| matches_action(p.action.as_str(), action))
                        .map(|p| &p.resource.as_str()[within.len()..]),
                );
                held
            });
        let runs =
            std::iter::once(Box::new(everything.into_iter()) as Box<dyn Iterator<Item = &str>>)
                .chain(granted)
                .map(|run| {
                    run.filter(|name| !name.is_empty())
                        .filter(move |name| after.is_none_or(|after| *name > after))
                });
        page::smallest_of_runs(runs, limit).map(str::to_owned)
    }

    /// The actions `user` may do on `resource`, as the permissions that allow them name them
    /// (`*` for a permission on every action), sorted: the ones after `after`, `limit` of
    /// them. Found through the check's indexes, like [`TenantPolicy::explain`].
    pub fn actions_on(
        &self,
        user: &str,
        resource: &str,
        after: Option<&str>,
        limit: usize,
        now: UnixMillis,
    ) -> Page<String> {
        let mut scratch = Scratch::default();
        let Some(Reached { all: groups, .. }) = self.user_groups(user, now, &mut scratch) else {
            return Page::default();
        };
        let held = self
            .grants_matching(resource)
            .flat_map(|(_, grants)| grants.0.iter())
            .filter(|(_, holders)| holders.intersects(groups))
            .map(|(action, _)| &**action)
            .filter(|action| after.is_none_or(|after| *action > after));
        page::smallest_of_runs(held.map(std::iter::once), limit).map(str::to_owned)
    }

    /// Whether `user` is a member of `group` itself at `now`, rather than through nesting
    /// only.
    pub fn is_direct_member(&self, user: &str, group: &str, now: UnixMillis) -> bool {
        let Some(id) = self.groups.get(group).map(|record| record.id) else {
            return false;
        };
        self.members
            .get(user)
            .is_some_and(|groups| groups.contains(id))
            && self.membership_in_force(user, id, now)
    }

    /// What `user` gets, as one sorted list (the user's groups by name, those it is in through
    /// nesting included, then every permission those groups give, by resource, action and
    /// group): the items after `after`, `limit` of
    /// them. Reads the user's groups and their permissions, not the tenant.
    pub fn user_page(
        &self,
        user: &str,
        after: Option<&UserItem<&str>>,
        limit: usize,
        now: UnixMillis,
    ) -> Page<UserItem<String>> {
        let mut scratch = Scratch::default();
        let Some(Reached { all, .. }) = self.user_groups(user, now, &mut scratch) else {
            return Page::default();
        };
        let groups: Vec<(&str, &PermissionSet)> = all
            .iter()
            .filter_map(|id| {
                let name = self.names.get(id)?;
                Some((name.as_str(), &*self.groups.get(name)?.permissions))
            })
            .collect();
        let items = groups
            .iter()
            .map(|&(group, _)| UserItem::Group(group))
            .chain(groups.iter().flat_map(|&(group, permissions)| {
                permissions.iter().map(move |p| UserItem::Permission {
                    resource: p.resource.as_str(),
                    action: p.action.as_str(),
                    group,
                })
            }))
            .filter(|item| after.is_none_or(|after| item > after));
        page::smallest(items, limit).map(|item| item.owned())
    }
}

/// An item of what one user gets: one of the user's groups, or a permission one of them
/// gives. Groups sort before permissions; permissions by resource, action, then group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserItem<S> {
    Group(S),
    Permission { resource: S, action: S, group: S },
}

impl UserItem<&str> {
    fn owned(&self) -> UserItem<String> {
        match *self {
            UserItem::Group(group) => UserItem::Group(group.to_owned()),
            UserItem::Permission {
                resource,
                action,
                group,
            } => UserItem::Permission {
                resource: resource.to_owned(),
                action: action.to_owned(),
                group: group.to_owned(),
            },
        }
    }
}

fn listed(permissions: &PermissionSet) -> Vec<(String, String)> {
    permissions
        .iter()
        .map(|p| (p.resource.as_str().to_owned(), p.action.as_str().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Change;
    use crate::policy::tenant::tests::{NOW, alice_with, group, user};

    #[test]
    fn listings_are_sorted_and_reconstruct_the_patterns() {
        let mut policy = alice_with(&[("docs/*", "read"), ("a", "*"), ("a", "read")]);
        policy.apply(&Change::CreateGroup { group: group("b") });
        policy.apply(&Change::AssignUser {
            group: group("g"),
            user: user("aaron"),
            expires_at: None,
        });
        let groups = policy.groups();
        assert_eq!(
            groups,
            vec![
                GroupView {
                    name: "b".into(),
                    permissions: vec![],
                    members: vec![],
                    parents: vec![],
                    endings: vec![],
                },
                GroupView {
                    name: "g".into(),
                    permissions: vec![
                        ("a".into(), "*".into()),
                        ("a".into(), "read".into()),
                        ("docs/*".into(), "read".into()),
                    ],
                    members: vec!["aaron".into(), "alice".into()],
                    parents: vec![],
                    endings: vec![],
                },
            ]
        );
        let page = policy.user_page("alice", None, 10, NOW);
        assert_eq!(
            page.items,
            [
                UserItem::Group("g".to_string()),
                UserItem::Permission {
                    resource: "a".into(),
                    action: "*".into(),
                    group: "g".into()
                },
                UserItem::Permission {
                    resource: "a".into(),
                    action: "read".into(),
                    group: "g".into()
                },
                UserItem::Permission {
                    resource: "docs/*".into(),
                    action: "read".into(),
                    group: "g".into()
                },
            ]
        );
        assert!(!page.more);
        let rest = policy.user_page("alice", Some(&UserItem::Group("g")), 2, NOW);
        assert_eq!((rest.items.len(), rest.more), (2, true));
        assert_eq!(rest.items[0], page.items[1]);
        assert!(policy.user_page("nobody", None, 10, NOW).items.is_empty());
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
                expires_at: None,
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
