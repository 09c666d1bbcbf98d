//! A tenant's policy as a document says it should be, and the changes that make a policy so.
//!
//! The HTTP edge parses a document into a [`Desired`]; [`difference`] works out, from the
//! policy held, the changes that would make the tenant hold exactly that, in an order in which
//! the store can apply them one after another.

use std::collections::{BTreeMap, BTreeSet};

#[cfg(test)]
use super::MAX_NESTING_DEPTH;
use super::{Action, Resource};
use super::{
    Change, GroupName, NestingProblem, Operation, Permission, TenantPolicy, UnixMillis, UserName,
};
use itertools::EitherOrBoth::{Both, Left, Right};
use itertools::merge_join_by;

/// A whole tenant as a document describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub groups: BTreeMap<GroupName, DesiredGroup>,
}

/// A group as a document describes it, whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredGroup {
    pub permissions: BTreeSet<Permission>,
    /// Each member with the end of its membership, if it ends.
    pub members: BTreeMap<UserName, Option<UnixMillis>>,
    /// The groups it is nested in; each must be a group of the document.
    pub parents: BTreeSet<GroupName>,
}

/// A document whose nestings the store would refuse, whatever order they came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestingRefused {
    pub group: GroupName,
    pub parent: GroupName,
    pub problem: NestingProblem,
}

/// The changes that make `current` hold what `desired` describes, and nothing else: none if
/// it does already.
///
/// Groups go first (deleted, then created), nestings that go before those that come, and what
/// is taken from a group before what is given to it. So every change applies to what the ones
/// before it made: a nesting never meets a group that is not there yet, nor a nesting on its
/// way out, and the nestings that come are checked for cycles and depth against what stays.
pub fn difference(
    current: &TenantPolicy,
    desired: &Desired,
) -> Result<Vec<Change>, NestingRefused> {
    let mut deleted = Vec::new();
    let mut created = Vec::new();
    let mut unnested = Vec::new();
    let mut taken = Vec::new();
    let mut given = Vec::new();
    let mut nested = Vec::new();
    for name in current.group_names() {
        if !desired.groups.contains_key(&name) {
            deleted.push(Change::DeleteGroup { group: name });
        }
    }
    for (name, want) in &desired.groups {
        let group = || name.clone();
        let Some(have) = current.group_view(name) else {
            created.push(Change::CreateGroup { group: group() });
            given.extend(
                want.permissions
                    .iter()
                    .map(|permission| Change::AddPermission {
                        group: group(),
                        permission: permission.clone(),
                    }),
            );
            given.extend(
                want.members
                    .iter()
                    .map(|(user, &end)| assign(group(), user, end)),
            );
            nested.extend(want.parents.iter().map(|parent| Change::NestGroup {
                group: group(),
                parent: parent.clone(),
            }));
            continue;
        };
        let held = have.permissions.iter();
        for side in merge_join_by(held, &want.permissions, |(resource, action), wanted| {
            (resource.as_str(), action.as_str())
                .cmp(&(wanted.resource.as_str(), wanted.action.as_str()))
        }) {
            match side {
                Left((resource, action)) => taken.push(Change::RemovePermission {
                    group: group(),
                    permission: Permission {
                        resource: Resource::held(resource),
                        action: Action::held(action),
                    },
                }),
                Right(permission) => given.push(Change::AddPermission {
                    group: group(),
                    permission: permission.clone(),
                }),
                Both(..) => {}
            }
        }
        // Members and the ends of their memberships are both sorted by user.
        let mut endings = have.endings.iter().peekable();
        let members = have.members.iter().map(|user| {
            let end = endings
                .next_if(|(ending, _)| ending == user)
                .map(|&(_, end)| end);
            (user, end)
        });
        for side in merge_join_by(members, &want.members, |(user, _), (wanted, _)| {
            user.as_str().cmp(wanted.as_str())
        }) {
            match side {
                Left((user, _)) => taken.push(Change::UnassignUser {
                    group: group(),
                    user: UserName::held(user),
                }),
                Right((user, &end)) => given.push(assign(group(), user, end)),
                Both((_, held), (user, &end)) if held != end => {
                    given.push(assign(group(), user, end));
                }
                Both(..) => {}
            }
        }
        for side in merge_join_by(&have.parents, &want.parents, |held, wanted| {
            held.as_str().cmp(wanted.as_str())
        }) {
            match side {
                // Deleting the parent takes the nesting with it.
                Left(parent) if desired.groups.contains_key(parent.as_str()) => {
                    unnested.push(Change::UnnestGroup {
                        group: group(),
                        parent: GroupName::held(parent),
                    });
                }
                Left(_) => {}
                Right(parent) => nested.push(Change::NestGroup {
                    group: group(),
                    parent: parent.clone(),
                }),
                Both(..) => {}
            }
        }
    }
    check_nestings(current, [&deleted, &created, &unnested], &nested)?;
    Ok([deleted, created, unnested, taken, given, nested].concat())
}

/// How many changes of each operation `changes` holds, in the order they first come.
pub fn counts(changes: &[Change]) -> Vec<(Operation, usize)> {
    let mut counts: Vec<(Operation, usize)> = Vec::new();
    for change in changes {
        let operation = change.operation();
        match counts.iter_mut().find(|(counted, _)| *counted == operation) {
            Some((_, count)) => *count += 1,
            None => counts.push((operation, 1)),
        }
    }
    counts
}

fn assign(group: GroupName, user: &UserName, expires_at: Option<UnixMillis>) -> Change {
    Change::AssignUser {
        group,
        user: user.clone(),
        expires_at,
    }
}

/// Refuses the first nesting the store would refuse, by applying the changes to groups and
/// nestings to a copy of the policy (what is given to and taken from groups has no bearing on
/// nesting).
fn check_nestings(
    current: &TenantPolicy,
    before: [&[Change]; 3],
    nestings: &[Change],
) -> Result<(), NestingRefused> {
    if nestings.is_empty() {
        return Ok(());
    }
    let mut policy = current.clone();
    for change in before.into_iter().flatten() {
        policy.apply(change);
    }
    for change in nestings {
        if let Change::NestGroup { group, parent } = change {
            if let Some(problem) = policy.nesting_problem(group, parent) {
                return Err(NestingRefused {
                    group: group.clone(),
                    parent: parent.clone(),
                    problem,
                });
            }
            policy.apply(change);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::tenant::properties::{change, record};

    fn name(value: &str) -> GroupName {
        GroupName::parse("group", value).unwrap()
    }

    /// What a document exported from `policy` describes.
    fn described(policy: &TenantPolicy) -> Desired {
        let groups = policy.groups().into_iter().map(|view| {
            let endings: BTreeMap<_, _> = view.endings.into_iter().collect();
            let group = DesiredGroup {
                permissions: view
                    .permissions
                    .iter()
                    .map(|(resource, action)| Permission {
                        resource: Resource::parse("resource", resource).unwrap(),
                        action: Action::parse("action", action).unwrap(),
                    })
                    .collect(),
                members: view
                    .members
                    .iter()
                    .map(|user| {
                        let end = endings.get(user).copied();
                        (UserName::parse("user", user).unwrap(), end)
                    })
                    .collect(),
                parents: view.parents.iter().map(|parent| name(parent)).collect(),
            };
            (name(&view.name), group)
        });
        Desired {
            groups: groups.collect(),
        }
    }

    fn nesting(group: &str, parent: &str) -> Change {
        Change::NestGroup {
            group: name(group),
            parent: name(parent),
        }
    }

    fn with_groups(groups: &[&str], nestings: &[(&str, &str)]) -> TenantPolicy {
        let mut policy = TenantPolicy::default();
        for group in groups {
            policy.apply(&Change::CreateGroup { group: name(group) });
        }
        for (group, parent) in nestings {
            assert!(policy.apply(&nesting(group, parent)));
        }
        policy
    }

    #[test]
    fn a_nesting_turned_around_is_taken_out_before_it_is_put_back() {
        let current = with_groups(&["a", "b"], &[("a", "b")]);
        let target = with_groups(&["a", "b"], &[("b", "a")]);
        let changes = difference(&current, &described(&target)).unwrap();
        assert_eq!(
            changes,
            [
                Change::UnnestGroup {
                    group: name("a"),
                    parent: name("b"),
                },
                nesting("b", "a"),
            ]
        );
    }

    #[test]
    fn a_document_whose_nestings_make_a_cycle_is_refused() {
        let mut desired = described(&with_groups(&["a", "b"], &[("a", "b")]));
        desired
            .groups
            .get_mut(&name("b"))
            .unwrap()
            .parents
            .insert(name("a"));
        let refused = difference(&TenantPolicy::default(), &desired).unwrap_err();
        assert_eq!(refused.problem, NestingProblem::Cycle);
    }

    #[test]
    fn a_document_whose_nestings_are_too_deep_is_refused() {
        let names: Vec<String> = (0..=MAX_NESTING_DEPTH).map(|g| format!("g{g}")).collect();
        let mut desired = Desired::default();
        for (at, group) in names.iter().enumerate() {
            let parents = names.get(at + 1).map(|parent| name(parent));
            desired.groups.insert(
                name(group),
                DesiredGroup {
                    parents: parents.into_iter().collect(),
                    ..DesiredGroup::default()
                },
            );
        }
        let refused = difference(&TenantPolicy::default(), &desired).unwrap_err();
        assert_eq!(refused.problem, NestingProblem::TooDeep);
        // One group fewer is as deep as may be.
        desired.groups.remove(&name(&names[MAX_NESTING_DEPTH]));
        let last = desired.groups.values_mut().last().unwrap();
        last.parents.clear();
        assert!(difference(&TenantPolicy::default(), &desired).is_ok());
    }

    proptest! {
        #[test]
        fn applying_the_difference_gives_exactly_what_the_document_describes(
            before in prop::collection::vec(change(), 0..60),
            after in prop::collection::vec(change(), 0..60),
        ) {
            let (current, _) = record(&before);
            let (target, _) = record(&after);
            let desired = described(&target);
            let changes = difference(&current, &desired).unwrap();
            let mut applied = current.clone();
            for change in &changes {
                // Each change does something: none is redundant, none fails.
                prop_assert!(applied.apply(change), "{:?} changed nothing", change);
            }
            prop_assert_eq!(applied.groups(), target.groups());
            prop_assert_eq!(difference(&applied, &desired).unwrap(), vec![]);
        }
    }
}
