//! Groups inside groups: the nestings, and for each nested group every group it is in,
//! directly or through others, kept as nestings come and go.
//!
//! The check reads only the last: a user's groups, then what each of them is nested in, one
//! look-up per group however deep the nesting. A nesting or an unnesting recomputes what the
//! group and the groups below it inherit (parents before children), and nothing else: its
//! cost follows the groups under the change, never the members or permissions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use smallvec::SmallVec;

use super::index::GroupSet;
use super::{GroupId, TenantPolicy};
use crate::policy::footprint;
use crate::policy::{GroupName, Page, page};

/// The most groups in a chain of nestings (a group in a group in a group...), counting both
/// ends: deeper nesting is refused, so that what a change recomputes, and what explain walks,
/// stays small.
pub const MAX_NESTING_DEPTH: usize = 8;

/// Why a nesting is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestingProblem {
    /// The parent is the group itself, or nested in it: the group would be inside itself.
    Cycle,
    /// A chain of nestings would hold more than [`MAX_NESTING_DEPTH`] groups.
    TooDeep,
}

/// Which of a group's nestings a listing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nestings {
    /// The groups it is nested in.
    Parents,
    /// The groups nested in it.
    Children,
}

/// The groups a check looks at, on the stack for the usual few.
pub(super) type Reach = SmallVec<[GroupId; 16]>;

impl TenantPolicy {
    /// Why `group` may not be nested in `parent`, if it may not. Groups that do not exist are
    /// the caller's to refuse.
    pub fn nesting_problem(&self, group: &GroupName, parent: &GroupName) -> Option<NestingProblem> {
        let (Some(group), Some(parent)) = (self.id_of(group), self.id_of(parent)) else {
            return None;
        };
        if group == parent || self.is_within(parent, group) {
            return Some(NestingProblem::Cycle);
        }
        let mut memo = HashMap::new();
        let above = self.chain(parent, &self.parents, &mut memo);
        memo.clear();
        let below = self.chain(group, &self.children, &mut memo);
        (above + below > MAX_NESTING_DEPTH).then_some(NestingProblem::TooDeep)
    }

    pub fn nesting_count(&self) -> usize {
        self.nesting_count
    }

    pub(super) fn id_of(&self, group: &GroupName) -> Option<GroupId> {
        self.groups.get(group).map(|record| record.id)
    }

    /// Whether `id` is nested in `outer`, directly or not.
    fn is_within(&self, id: GroupId, outer: GroupId) -> bool {
        self.ancestors
            .get(&id)
            .is_some_and(|ancestors| ancestors.contains(outer))
    }

    /// The most groups in a chain from `id` along `edges` (parents or children), `id`
    /// included; `memo` keeps each group's, so that a wide graph is walked once.
    fn chain(
        &self,
        id: GroupId,
        edges: &crate::policy::cow_map::CowMap<GroupId, GroupSet>,
        memo: &mut HashMap<GroupId, usize>,
    ) -> usize {
        if let Some(&known) = memo.get(&id) {
            return known;
        }
        let longest = edges.get(&id).map_or(0, |next| {
            next.0
                .iter()
                .map(|&n| self.chain(n, edges, memo))
                .max()
                .unwrap_or(0)
        });
        memo.insert(id, longest + 1);
        longest + 1
    }

    /// Nests `group` in `parent`, unless it is already or that would be a [`NestingProblem`];
    /// returns whether anything changed.
    pub(super) fn nest(&mut self, group: &GroupName, parent: &GroupName) -> bool {
        let (Some(id), Some(parent_id)) = (self.id_of(group), self.id_of(parent)) else {
            return false;
        };
        if self.parents.get(&id).is_some_and(|p| p.contains(parent_id))
            || self.nesting_problem(group, parent).is_some()
        {
            return false;
        }
        self.parents
            .get_or_insert_with(id, GroupSet::default)
            .insert(parent_id);
        self.children
            .get_or_insert_with(parent_id, GroupSet::default)
            .insert(id);
        self.nesting_count += 1;
        self.heap_bytes += footprint::nesting();
        self.inherit_below(id);
        true
    }

    /// Takes `group` out of `parent`; returns whether it was in it.
    pub(super) fn unnest(&mut self, group: &GroupName, parent: &GroupName) -> bool {
        let (Some(id), Some(parent_id)) = (self.id_of(group), self.id_of(parent)) else {
            return false;
        };
        if !self.parents.get(&id).is_some_and(|p| p.contains(parent_id)) {
            return false;
        }
        self.cut(id, parent_id);
        self.inherit_below(id);
        true
    }

    /// Takes a group that is being deleted out of every nesting, both ways; the groups that
    /// were in it inherit afresh.
    pub(super) fn forget_nestings(&mut self, id: GroupId) {
        let parents = self
            .parents
            .get(&id)
            .map(|p| p.0.clone())
            .unwrap_or_default();
        for parent in parents {
            self.cut(id, parent);
        }
        let children = self
            .children
            .get(&id)
            .map(|c| c.0.clone())
            .unwrap_or_default();
        for &child in &children {
            self.cut(child, id);
        }
        self.set_ancestors(id, Vec::new());
        for child in children {
            self.inherit_below(child);
        }
    }

    /// Removes the edge from `id` up to `parent`.
    fn cut(&mut self, id: GroupId, parent: GroupId) {
        for (edges, from, to) in [
            (&mut self.parents, id, parent),
            (&mut self.children, parent, id),
        ] {
            if let Some(set) = edges.get_mut(&from) {
                set.remove(to);
                if set.is_empty() {
                    edges.remove(&from);
                }
            }
        }
        self.nesting_count -= 1;
        self.heap_bytes -= footprint::nesting();
    }

    /// Recomputes what `from`, and every group nested in it, inherits: each group after every
    /// parent of it that is below `from` too, so that a parent's set is final when read.
    fn inherit_below(&mut self, from: GroupId) {
        for id in self.below_in_order(from) {
            let mut inherited: Vec<GroupId> = Vec::new();
            if let Some(parents) = self.parents.get(&id) {
                for &parent in &parents.0 {
                    inherited.push(parent);
                    if let Some(above) = self.ancestors.get(&parent) {
                        inherited.extend_from_slice(&above.0);
                    }
                }
            }
            inherited.sort_unstable();
            inherited.dedup();
            self.set_ancestors(id, inherited);
        }
    }

    fn set_ancestors(&mut self, id: GroupId, ancestors: Vec<GroupId>) {
        if let Some(old) = self.ancestors.remove(&id) {
            self.heap_bytes -= footprint::ancestors(old.0.len());
        }
        if !ancestors.is_empty() {
            self.heap_bytes += footprint::ancestors(ancestors.len());
            self.ancestors.insert(id, Arc::new(GroupSet(ancestors)));
        }
    }

    /// `from` and the groups nested in it, directly or not, each after its parents among them.
    fn below_in_order(&self, from: GroupId) -> Vec<GroupId> {
        let mut below = vec![from];
        let mut seen = HashSet::from([from]);
        let mut at = 0;
        while let Some(&id) = below.get(at) {
            at += 1;
            for &child in self.children.get(&id).map_or(&[][..], |c| &c.0) {
                if seen.insert(child) {
                    below.push(child);
                }
            }
        }
        // Kahn's order within `below`: a group is ready once all its parents in `below` are.
        let mut waiting: HashMap<GroupId, usize> = below
            .iter()
            .map(|&id| {
                let parents = self.parents.get(&id).map_or(&[][..], |p| &p.0);
                (id, parents.iter().filter(|p| seen.contains(p)).count())
            })
            .collect();
        let mut ordered = Vec::with_capacity(below.len());
        let mut ready: Vec<GroupId> = vec![from];
        while let Some(id) = ready.pop() {
            ordered.push(id);
            for &child in self.children.get(&id).map_or(&[][..], |c| &c.0) {
                if let Some(count) = waiting.get_mut(&child) {
                    *count -= 1;
                    if *count == 0 {
                        ready.push(child);
                    }
                }
            }
        }
        ordered
    }

    /// The groups whose permissions the members of `direct` have: those groups, and every
    /// group they are nested in. `direct` itself while nothing is nested, which costs the
    /// check one look at an empty map.
    #[inline]
    pub(super) fn reach<'a>(&self, direct: &'a [GroupId], buffer: &'a mut Reach) -> &'a [GroupId] {
        if self.ancestors.is_empty() {
            return direct;
        }
        let mut nested = false;
        for &id in direct {
            buffer.push(id);
            if let Some(ancestors) = self.ancestors.get(&id) {
                buffer.extend_from_slice(&ancestors.0);
                nested = true;
            }
        }
        if !nested {
            buffer.clear();
            return direct;
        }
        buffer.sort_unstable();
        buffer.dedup();
        buffer
    }

    /// `ids` and every group nested in one of them, directly or not, sorted.
    pub(super) fn with_nested(&self, ids: &mut Vec<GroupId>) {
        if self.children.is_empty() {
            return;
        }
        let mut seen: HashSet<GroupId> = ids.iter().copied().collect();
        let mut at = 0;
        while let Some(&id) = ids.get(at) {
            at += 1;
            if let Some(children) = self.children.get(&id) {
                for &child in &children.0 {
                    if seen.insert(child) {
                        ids.push(child);
                    }
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
    }

    /// The shortest chain of nestings from one of `direct` up to `holder`, both ends
    /// included; `holder` alone when it is one of `direct`.
    pub(super) fn path(&self, direct: &[GroupId], holder: GroupId) -> Vec<GroupId> {
        let mut came_from: HashMap<GroupId, Option<GroupId>> =
            direct.iter().map(|&id| (id, None)).collect();
        let mut queue: std::collections::VecDeque<GroupId> = direct.iter().copied().collect();
        while let Some(id) = queue.pop_front() {
            if id == holder {
                let mut path = vec![id];
                let mut at = id;
                while let Some(Some(previous)) = came_from.get(&at) {
                    path.push(*previous);
                    at = *previous;
                }
                path.reverse();
                return path;
            }
            for &parent in self.parents.get(&id).map_or(&[][..], |p| &p.0) {
                came_from.entry(parent).or_insert_with(|| {
                    queue.push_back(parent);
                    Some(id)
                });
            }
        }
        vec![holder]
    }

    /// The groups `group` is nested in directly, or those nested in it directly, by name,
    /// after `after`, `limit` of them; None if there is no such group.
    pub fn nesting_page(
        &self,
        group: &GroupName,
        which: Nestings,
        after: Option<&GroupName>,
        limit: usize,
    ) -> Option<Page<String>> {
        let edges = match which {
            Nestings::Parents => &self.parents,
            Nestings::Children => &self.children,
        };
        Some(self.named_page(edges, self.id_of(group)?, after, limit))
    }

    fn named_page(
        &self,
        edges: &crate::policy::cow_map::CowMap<GroupId, GroupSet>,
        id: GroupId,
        after: Option<&GroupName>,
        limit: usize,
    ) -> Page<String> {
        let names = edges
            .get(&id)
            .map_or(&[][..], |set| &set.0)
            .iter()
            .filter_map(|id| self.names.get(id))
            .filter(|name| after.is_none_or(|after| *name > after));
        page::smallest(names, limit).map(|name| name.as_str().to_owned())
    }

    /// The name of a group by its number.
    pub(super) fn name_of(&self, id: GroupId) -> Option<&GroupName> {
        self.names.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Change;
    use crate::policy::tenant::tests::{NOW, group, permission, user};

    /// A policy with the groups `names`, each nested in the next, `alice` in the first and
    /// the last holding `wiki/*` `read`.
    fn chain(names: &[&str]) -> TenantPolicy {
        let mut policy = TenantPolicy::default();
        for name in names {
            policy.apply(&Change::CreateGroup { group: group(name) });
        }
        for pair in names.windows(2) {
            assert!(policy.apply(&nest(pair[0], pair[1])), "{pair:?}");
        }
        policy.apply(&Change::AssignUser {
            group: group(names[0]),
            user: user("alice"),
            expires_at: None,
        });
        policy.apply(&Change::AddPermission {
            group: group(names[names.len() - 1]),
            permission: permission("wiki/*", "read"),
        });
        policy
    }

    fn nest(child: &str, parent: &str) -> Change {
        Change::NestGroup {
            group: group(child),
            parent: group(parent),
        }
    }

    fn unnest(child: &str, parent: &str) -> Change {
        Change::UnnestGroup {
            group: group(child),
            parent: group(parent),
        }
    }

    #[test]
    fn a_member_of_a_nested_group_has_the_permissions_of_every_group_above_it() {
        let mut policy = chain(&["db", "backend", "engineering"]);
        assert!(policy.allows("alice", "wiki/home", "read", NOW));
        let because = policy.explain("alice", "wiki/home", "read", NOW);
        assert_eq!(because.len(), 1);
        assert_eq!(because[0].group, group("engineering"));
        assert_eq!(
            because[0].through,
            [group("db"), group("backend"), group("engineering")]
        );
        assert_eq!(
            policy.who_can("wiki/home", "read", "", None, 10, NOW).items,
            ["alice"]
        );
        assert!(!policy.apply(&nest("db", "backend")), "nested already");

        assert!(policy.apply(&unnest("backend", "engineering")));
        assert!(!policy.allows("alice", "wiki/home", "read", NOW));
        assert!(
            policy
                .who_can("wiki/home", "read", "", None, 10, NOW)
                .items
                .is_empty()
        );
        assert!(
            !policy.apply(&unnest("backend", "engineering")),
            "not nested"
        );
    }

    #[test]
    fn a_chain_longer_than_the_limit_is_refused_from_either_end() {
        let names: Vec<String> = (0..=MAX_NESTING_DEPTH).map(|i| format!("g{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (longest, past) = names.split_at(MAX_NESTING_DEPTH);
        let mut policy = chain(longest);
        policy.apply(&Change::CreateGroup {
            group: group(past[0]),
        });
        let (top, bottom) = (longest[MAX_NESTING_DEPTH - 1], longest[0]);
        for (child, parent) in [(top, past[0]), (past[0], bottom)] {
            assert_eq!(
                policy.nesting_problem(&group(child), &group(parent)),
                Some(NestingProblem::TooDeep),
                "{child} in {parent}"
            );
            assert!(!policy.clone().apply(&nest(child, parent)));
        }
        // Beside the chain rather than at an end of it: as deep as the chain, allowed.
        assert_eq!(
            policy.nesting_problem(&group(past[0]), &group(longest[1])),
            None
        );
        assert!(policy.apply(&nest(past[0], longest[1])));
    }

    #[test]
    fn a_group_is_never_nested_in_itself_or_in_a_group_below_it() {
        let policy = chain(&["a", "b", "c"]);
        for (child, parent) in [("a", "a"), ("c", "a"), ("c", "b"), ("b", "a")] {
            assert_eq!(
                policy.nesting_problem(&group(child), &group(parent)),
                Some(NestingProblem::Cycle),
                "{child} in {parent}"
            );
        }
        assert_eq!(policy.nesting_problem(&group("a"), &group("c")), None);
    }

    #[test]
    fn deleting_a_group_takes_it_out_of_every_nesting_both_ways() {
        let mut policy = chain(&["a", "b", "c"]);
        policy.apply(&Change::DeleteGroup { group: group("b") });
        assert!(!policy.allows("alice", "wiki/home", "read", NOW));
        assert_eq!(policy.nesting_count(), 0);
        assert!(policy.ancestors.is_empty() && policy.children.is_empty());
        policy.apply(&Change::CreateGroup { group: group("b") });
        assert!(
            !policy.allows("alice", "wiki/home", "read", NOW),
            "a new b is not nested"
        );
        assert_eq!(
            policy
                .nesting_page(&group("a"), Nestings::Parents, None, 10)
                .unwrap()
                .items
                .len(),
            0
        );
    }

    #[test]
    fn a_group_reached_two_ways_stays_reached_while_either_way_is_left() {
        // a is in b and in c, both of which are in d.
        let mut policy = chain(&["a", "b", "d"]);
        policy.apply(&Change::CreateGroup { group: group("c") });
        assert!(policy.apply(&nest("a", "c")));
        assert!(policy.apply(&nest("c", "d")));
        assert_eq!(
            policy
                .nesting_page(&group("d"), Nestings::Children, None, 10)
                .unwrap()
                .items,
            ["b", "c"]
        );
        assert!(policy.apply(&unnest("a", "b")));
        assert!(
            policy.allows("alice", "wiki/home", "read", NOW),
            "through c"
        );
        let through = &policy.explain("alice", "wiki/home", "read", NOW)[0].through;
        assert_eq!(through, &[group("a"), group("c"), group("d")]);
        assert!(policy.apply(&unnest("c", "d")));
        assert!(!policy.allows("alice", "wiki/home", "read", NOW));
    }
}
