//! The eight ways a tenant's policy can change. The store records them, the cache applies them,
//! and the bus only ever says that one happened.

use super::instant::UnixMillis;
use super::name::{Action, GroupName, Resource, UserName};
use super::operation::Operation;

/// A permission as a group holds it: a resource pattern and an action pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    pub resource: Resource,
    pub action: Action,
}

/// One write to a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CreateGroup {
        group: GroupName,
    },
    /// Deleting a group takes its permissions and memberships with it.
    DeleteGroup {
        group: GroupName,
    },
    AddPermission {
        group: GroupName,
        permission: Permission,
    },
    RemovePermission {
        group: GroupName,
        permission: Permission,
    },
    /// Makes `user` a member of `group`, until `expires_at` if given; assigning a member
    /// again with another end, or none, changes the end.
    AssignUser {
        group: GroupName,
        user: UserName,
        expires_at: Option<UnixMillis>,
    },
    UnassignUser {
        group: GroupName,
        user: UserName,
    },
    /// `group` becomes a member of `parent`: every member of `group`, directly or through
    /// groups nested in it, has `parent`'s permissions.
    NestGroup {
        group: GroupName,
        parent: GroupName,
    },
    UnnestGroup {
        group: GroupName,
        parent: GroupName,
    },
}

impl Change {
    /// What the changelog, the bus message and the logs call it.
    pub fn operation(&self) -> Operation {
        match self {
            Change::CreateGroup { .. } => Operation::CreateGroup,
            Change::DeleteGroup { .. } => Operation::DeleteGroup,
            Change::AddPermission { .. } => Operation::AddPermission,
            Change::RemovePermission { .. } => Operation::RemovePermission,
            Change::AssignUser { .. } => Operation::AssignUser,
            Change::UnassignUser { .. } => Operation::UnassignUser,
            Change::NestGroup { .. } => Operation::NestGroup,
            Change::UnnestGroup { .. } => Operation::UnnestGroup,
        }
    }

    pub fn group(&self) -> &GroupName {
        match self {
            Change::CreateGroup { group }
            | Change::DeleteGroup { group }
            | Change::AddPermission { group, .. }
            | Change::RemovePermission { group, .. }
            | Change::AssignUser { group, .. }
            | Change::UnassignUser { group, .. }
            | Change::NestGroup { group, .. }
            | Change::UnnestGroup { group, .. } => group,
        }
    }

    /// The group a nesting puts `group` in, for the two nesting changes.
    pub fn parent(&self) -> Option<&GroupName> {
        match self {
            Change::NestGroup { parent, .. } | Change::UnnestGroup { parent, .. } => Some(parent),
            _ => None,
        }
    }

    /// Whether the change needs its group (and a nesting its parent) to exist already.
    /// Adding to a group that is not there is an error; removing from it is simply no change.
    pub fn requires_group(&self) -> bool {
        matches!(
            self,
            Change::AddPermission { .. } | Change::AssignUser { .. } | Change::NestGroup { .. }
        )
    }
}
