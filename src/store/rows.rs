//! Rows as the two backends read them, and the values they become: both stores keep the same
//! tables, so a row of one means what a row of the other does.
//!
//! Every value read goes through a check of what the schema and the server keep true of it
//! (names parse, revisions and positions are not negative, roles and operations are known),
//! and one that breaks it fails the read with [`StoreError::Internal`] naming what was wrong
//! ([`broken`]): the rule the [`super::Store`] contract states.

use std::fmt;
use std::time::Duration;

use futures_util::{Stream, TryFutureExt, TryStreamExt};

use super::{ChangeLog, Changed, Position, Recorded, StoreError, TenantRevision, within};
use crate::keys::{KeyId, KeyRecord, Role, Scope};
use crate::policy::{
    Action, Change, GroupName, NameError, Operation, Permission, Resource, TenantName,
    TenantPolicy, UnixMillis, UserName,
};

/// Builds a tenant's groups and permissions from the rows of one consistent read; the
/// memberships follow, row by row, through [`assign_row`].
pub(crate) fn build_policy(
    revision: u64,
    groups: Vec<String>,
    permissions: Vec<(String, String, String)>,
    nestings: Vec<(String, String)>,
) -> Result<TenantPolicy, StoreError> {
    let mut policy = TenantPolicy::at_revision(revision);
    for group in groups {
        policy.apply(&Change::CreateGroup {
            group: stored(GroupName::parse("group", &group))?,
        });
    }
    for (group, resource, action) in permissions {
        policy.apply(&Change::AddPermission {
            group: stored(GroupName::parse("group", &group))?,
            permission: Permission {
                resource: stored(Resource::parse("resource", &resource))?,
                action: stored(Action::parse("action", &action))?,
            },
        });
    }
    for (group, parent) in nestings {
        let nested = policy.apply(&Change::NestGroup {
            group: stored(GroupName::parse("group", &group))?,
            parent: stored(GroupName::parse("parent", &parent))?,
        });
        if !nested {
            // The store refuses what the policy would: a nesting it holds and the policy
            // refuses is a cycle or a chain too deep that got past it.
            return Err(broken(format_args!(
                "the nesting of '{group}' in '{parent}', which makes a cycle or a chain too deep"
            )));
        }
    }
    Ok(policy)
}

/// Adds one membership row to a policy being loaded. Memberships are by far the most rows of
/// a large tenant, so the backends stream them in rather than collect them first: a million
/// of them collected took some 100 MB more at the peak of a load, and left it resident.
pub(crate) fn assign_row(
    policy: &mut TenantPolicy,
    group: &str,
    user: &str,
    expires_at_ms: Option<i64>,
) -> Result<(), StoreError> {
    policy.apply(&Change::AssignUser {
        group: stored(GroupName::parse("group", group))?,
        user: stored(UserName::parse("user", user))?,
        expires_at: expires_at_ms.map(UnixMillis),
    });
    Ok(())
}

/// The error for a value read from the store that breaks an invariant the schema and the
/// server keep: the data was changed behind the server's back (or by a newer release), and
/// reading it as anything else could answer wrongly. `what` says what was found.
pub(crate) fn broken(what: impl fmt::Display) -> StoreError {
    StoreError::Internal(format!("the store holds {what}").into())
}

/// Names come back from the store as they went in, already validated; one that no longer
/// parses is [`broken`].
pub(crate) fn stored<T>(parsed: Result<T, NameError>) -> Result<T, StoreError> {
    parsed.map_err(|e| broken(format_args!("an invalid name: {e}")))
}

/// A number the schema keeps non-negative (a revision, a position, a count) as stored, in a
/// signed integer; one below zero is [`broken`], and `what` names it.
pub(crate) fn non_negative(what: impl fmt::Display, stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| broken(format_args!("{what} below zero: {stored}")))
}

/// A tenant's revision as stored.
pub(crate) fn revision_of(tenant: &TenantName, stored: i64) -> Result<u64, StoreError> {
    non_negative(format_args!("the revision of tenant '{tenant}'"), stored)
}

/// (tenant, revision) rows as [`Store::revisions`] answers them.
pub(crate) fn revisions_by_tenant(
    rows: Vec<(String, i64)>,
) -> Result<Vec<TenantRevision>, StoreError> {
    rows.into_iter()
        .map(|(name, revision)| {
            let tenant = stored(TenantName::parse("tenant", &name))?;
            let revision = revision_of(&tenant, revision)?;
            Ok(TenantRevision { tenant, revision })
        })
        .collect()
}

/// A row of [`Store::tenants`] or [`Store::changed_since`] as both backends answer them: a
/// tenant and its revision; or, in one row with neither, the position the read was made at
/// and whether the store's history still reaches back to the position asked from. One
/// statement reads both, so that they come from one snapshot.
pub(crate) type ChangedRow = (Option<String>, Option<i64>, Option<i64>, Option<bool>);

/// The position a read was made at, and whether the history reached back far enough.
type Sentinel = (Position, bool);

/// Reads one [`ChangedRow`]: a tenant, handed to `each`, or the sentinel, returned.
fn read_changed_row(
    row: ChangedRow,
    each: &mut dyn FnMut(TenantName, u64),
) -> Result<Option<Sentinel>, StoreError> {
    match row {
        (Some(name), Some(revision), None, None) => {
            let tenant = stored(TenantName::parse("tenant", &name))?;
            let revision = revision_of(&tenant, revision)?;
            each(tenant, revision);
            Ok(None)
        }
        (None, None, Some(position), Some(complete)) => Ok(Some((
            Position(non_negative("a position in its history", position)?),
            complete,
        ))),
        other => Err(broken(format_args!(
            "a malformed row in a list of tenants: {other:?}"
        ))),
    }
}

/// A listing of every tenant, handed to `each` as its rows stream in; the position it was
/// read at. However many tenants there are, the listing takes as long as it takes: what is
/// bounded is each wait for the store.
pub(crate) async fn read_listing(
    timeout: Duration,
    mut rows: impl Stream<Item = Result<ChangedRow, sqlx::Error>> + Unpin,
    classify: fn(sqlx::Error) -> StoreError,
    each: &mut (dyn FnMut(TenantRevision) + Send),
) -> Result<Position, StoreError> {
    let mut sentinel = None;
    while let Some(row) = within(timeout, rows.try_next().map_err(classify)).await? {
        let mut add = |tenant, revision| each(TenantRevision { tenant, revision });
        sentinel = sentinel.or(read_changed_row(row, &mut add)?);
    }
    sentinel
        .map(|(position, _)| position)
        .ok_or_else(|| StoreError::Internal("the list of tenants has no position".into()))
}

/// The tenants and the position of [`ChangedRow`]s; None if the history did not reach back.
pub(crate) fn changed_from_rows(rows: Vec<ChangedRow>) -> Result<Option<Changed>, StoreError> {
    let mut changed = Changed::default();
    let mut sentinel = None;
    for row in rows {
        let mut add = |tenant, revision| changed.tenants.push(TenantRevision { tenant, revision });
        sentinel = sentinel.or(read_changed_row(row, &mut add)?);
    }
    match sentinel {
        Some((position, true)) => {
            changed.position = position;
            Ok(Some(changed))
        }
        Some((_, false)) => Ok(None),
        None => Err(StoreError::Internal(
            "a list of changes has no position".into(),
        )),
    }
}

/// An `api_keys` row as both backends read it. The timestamps are decoded by sqlx from each
/// store's own type (PostgreSQL's `timestamptz`, SQLite's RFC 3339 text).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub id: String,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub role: String,
    pub secret_hash: Vec<u8>,
    pub created_at: time::OffsetDateTime,
    pub created_by: Option<String>,
    pub revoked_at: Option<time::OffsetDateTime>,
    pub last_used_at: Option<time::OffsetDateTime>,
}

impl KeyRow {
    pub fn into_record(self) -> Result<KeyRecord, StoreError> {
        let id = KeyId::parse("id", &self.id)
            .map_err(|_| broken(format_args!("a key id of the wrong shape: {:?}", self.id)))?;
        let scope = match &self.tenant {
            None => Scope::All,
            Some(tenant) => Scope::Tenant(stored(TenantName::parse("tenant", tenant))?),
        };
        let role = Role::parse(&self.role)
            .ok_or_else(|| broken(format_args!("an unknown role {:?} for key {id}", self.role)))?;
        let secret_hash = self.secret_hash.as_slice().try_into().map_err(|_| {
            broken(format_args!(
                "a hash of {} bytes for key {id}, not 32",
                self.secret_hash.len()
            ))
        })?;
        Ok(KeyRecord {
            id,
            name: self.name,
            scope,
            role,
            secret_hash,
            created_at: self.created_at,
            created_by: self.created_by,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        })
    }
}

/// A changelog row as both backends read it. The time is decoded by sqlx from each store's
/// own type, as [`KeyRow`]'s are.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChangelogRow {
    pub revision: i64,
    pub operation: String,
    pub group_name: String,
    pub user_name: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
    pub parent: Option<String>,
    pub expires_at_ms: Option<i64>,
    /// With `write`: the changes it made, as [`LoggedChange`]s in a JSON array.
    pub changes: Option<String>,
    pub server_id: String,
    pub actor: Option<String>,
    pub created_at: time::OffsetDateTime,
}

/// The changelog's columns as [`ChangelogRow`] reads them, for both backends' statements. A
/// macro, not a const, so that the statements stay `&'static str` literals.
macro_rules! changelog_columns {
    ($prefix:literal) => {
        concat!(
            $prefix,
            "revision, ",
            $prefix,
            "operation, ",
            $prefix,
            "group_name, ",
            $prefix,
            "user_name, ",
            $prefix,
            "resource, ",
            $prefix,
            "action, ",
            $prefix,
            "parent, ",
            $prefix,
            "expires_at_ms, ",
            $prefix,
            "changes, ",
            $prefix,
            "server_id, ",
            $prefix,
            "actor, ",
            $prefix,
            "created_at"
        )
    };
}
pub(crate) use changelog_columns;

impl ChangelogRow {
    /// The changes the row records, each with the row's revision: one, or those of a
    /// `write`, in order.
    pub fn into_recorded(self) -> Result<Vec<Recorded>, StoreError> {
        let revision = non_negative(format_args!("a changelog revision"), self.revision)?;
        let operation: Operation = self.operation.parse().map_err(|_| {
            broken(format_args!(
                "an unknown operation {:?} in the changelog",
                self.operation
            ))
        })?;
        let changes = if operation == Operation::Write {
            let logged: Vec<LoggedChange> =
                serde_json::from_str(self.changes.as_deref().unwrap_or_default()).map_err(|e| {
                    broken(format_args!("the changes of a write in the changelog: {e}"))
                })?;
            if logged.is_empty() {
                return Err(broken(format_args!(
                    "a write in the changelog without changes"
                )));
            }
            logged
                .iter()
                .map(LoggedChange::to_change)
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![
                ChangeRow {
                    operation,
                    group: &self.group_name,
                    user: self.user_name.as_deref(),
                    resource: self.resource.as_deref(),
                    action: self.action.as_deref(),
                    parent: self.parent.as_deref(),
                    expires_at_ms: self.expires_at_ms,
                }
                .to_change()?,
            ]
        };
        Ok(changes
            .into_iter()
            .map(|change| Recorded {
                revision,
                change,
                server_id: self.server_id.clone(),
                actor: self.actor.clone(),
                at: self.created_at,
            })
            .collect())
    }
}

/// One change of a `write`, as the changelog keeps it in its JSON array, and as the
/// PostgreSQL write function takes it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct LoggedChange {
    pub op: String,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

impl LoggedChange {
    pub fn of(change: &Change) -> Self {
        let row = ChangeRow::of(change);
        Self {
            op: row.operation.as_str().to_owned(),
            group: row.group.to_owned(),
            user: row.user.map(str::to_owned),
            resource: row.resource.map(str::to_owned),
            action: row.action.map(str::to_owned),
            parent: row.parent.map(str::to_owned),
            expires_at_ms: row.expires_at_ms,
        }
    }

    fn to_change(&self) -> Result<Change, StoreError> {
        let operation: Operation = self.op.parse().map_err(|_| {
            broken(format_args!(
                "an unknown operation {:?} in a write",
                self.op
            ))
        })?;
        if operation == Operation::Write {
            return Err(broken(format_args!("a write inside a write")));
        }
        ChangeRow {
            operation,
            group: &self.group,
            user: self.user.as_deref(),
            resource: self.resource.as_deref(),
            action: self.action.as_deref(),
            parent: self.parent.as_deref(),
            expires_at_ms: self.expires_at_ms,
        }
        .to_change()
    }
}

/// The changes of a write, as the changelog keeps them.
pub(crate) fn logged_changes(changes: &[&Change]) -> String {
    let logged: Vec<LoggedChange> = changes
        .iter()
        .map(|change| LoggedChange::of(change))
        .collect();
    serde_json::to_string(&logged).unwrap_or_default()
}

/// A page of the changelog from its rows and the tenant's revision, read in one snapshot.
pub(crate) fn change_log(revision: u64, rows: Vec<ChangelogRow>) -> Result<ChangeLog, StoreError> {
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        changes.extend(row.into_recorded()?);
    }
    Ok(ChangeLog { revision, changes })
}

/// A change as the changelog stores it: the operation's name and the entities it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow<'a> {
    pub operation: Operation,
    pub group: &'a str,
    pub user: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub action: Option<&'a str>,
    pub parent: Option<&'a str>,
    /// With assign-user: when the membership ends, if it does.
    pub expires_at_ms: Option<i64>,
}

impl<'a> ChangeRow<'a> {
    pub fn of(change: &'a Change) -> Self {
        let (user, resource, action) = match change {
            Change::CreateGroup { .. } | Change::DeleteGroup { .. } => (None, None, None),
            Change::AddPermission { permission, .. }
            | Change::RemovePermission { permission, .. } => (
                None,
                Some(permission.resource.as_str()),
                Some(permission.action.as_str()),
            ),
            Change::AssignUser { user, .. } | Change::UnassignUser { user, .. } => {
                (Some(user.as_str()), None, None)
            }
            Change::NestGroup { .. } | Change::UnnestGroup { .. } => (None, None, None),
        };
        Self {
            operation: change.operation(),
            group: change.group().as_str(),
            user,
            resource,
            action,
            parent: change.parent().map(GroupName::as_str),
            expires_at_ms: match change {
                Change::AssignUser { expires_at, .. } => expires_at.map(|end| end.0),
                _ => None,
            },
        }
    }

    /// The change this row records.
    pub fn to_change(&self) -> Result<Change, StoreError> {
        let group = stored(GroupName::parse("group", self.group))?;
        let user = || stored(UserName::parse("user", self.user.unwrap_or_default()));
        let parent = || stored(GroupName::parse("parent", self.parent.unwrap_or_default()));
        let permission = || {
            Ok::<_, StoreError>(Permission {
                resource: stored(Resource::parse(
                    "resource",
                    self.resource.unwrap_or_default(),
                ))?,
                action: stored(Action::parse("action", self.action.unwrap_or_default()))?,
            })
        };
        Ok(match self.operation {
            Operation::CreateGroup => Change::CreateGroup { group },
            Operation::DeleteGroup => Change::DeleteGroup { group },
            Operation::AddPermission => Change::AddPermission {
                group,
                permission: permission()?,
            },
            Operation::RemovePermission => Change::RemovePermission {
                group,
                permission: permission()?,
            },
            Operation::AssignUser => Change::AssignUser {
                group,
                user: user()?,
                expires_at: self.expires_at_ms.map(UnixMillis),
            },
            Operation::UnassignUser => Change::UnassignUser {
                group,
                user: user()?,
            },
            Operation::NestGroup => Change::NestGroup {
                group,
                parent: parent()?,
            },
            Operation::UnnestGroup => Change::UnnestGroup {
                group,
                parent: parent()?,
            },
            other @ (Operation::RefreshTenant
            | Operation::CreateApiKey
            | Operation::RevokeApiKey
            | Operation::Write) => {
                return Err(broken(format_args!(
                    "{other} in the changelog, which is never recorded"
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_survives_the_changelog_row_round_trip() {
        let group = GroupName::parse("group", "g").unwrap();
        let user = UserName::parse("user", "u").unwrap();
        let permission = Permission {
            resource: Resource::parse("resource", "docs/*").unwrap(),
            action: Action::parse("action", "*").unwrap(),
        };
        for change in [
            Change::CreateGroup {
                group: group.clone(),
            },
            Change::DeleteGroup {
                group: group.clone(),
            },
            Change::AddPermission {
                group: group.clone(),
                permission: permission.clone(),
            },
            Change::RemovePermission {
                group: group.clone(),
                permission,
            },
            Change::AssignUser {
                group: group.clone(),
                user: user.clone(),
                expires_at: None,
            },
            Change::AssignUser {
                group: group.clone(),
                user: user.clone(),
                expires_at: Some(UnixMillis(1_798_761_600_123)),
            },
            Change::UnassignUser {
                group: group.clone(),
                user,
            },
            Change::NestGroup {
                group: group.clone(),
                parent: GroupName::parse("group", "p").unwrap(),
            },
            Change::UnnestGroup {
                group,
                parent: GroupName::parse("group", "p").unwrap(),
            },
        ] {
            assert_eq!(ChangeRow::of(&change).to_change().unwrap(), change);
        }
    }

    #[test]
    fn a_row_with_an_unknown_operation_or_a_missing_entity_is_an_error() {
        let row = |operation: &str| ChangelogRow {
            revision: 1,
            operation: operation.to_owned(),
            group_name: "g".to_owned(),
            user_name: None,
            resource: None,
            action: None,
            parent: None,
            expires_at_ms: None,
            changes: None,
            server_id: "s".to_owned(),
            actor: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        assert!(row("grant-everything").into_recorded().is_err());
        assert!(row("refresh-tenant").into_recorded().is_err());
        assert!(row("create-group").into_recorded().is_ok());
        assert!(
            row("write").into_recorded().is_err(),
            "a write without its changes"
        );
        let write = |changes: &str| ChangelogRow {
            changes: Some(changes.to_owned()),
            ..row("write")
        };
        let two = write(
            r#"[{"op":"create-group","group":"g"},{"op":"assign-user","group":"g","user":"u","expires_at_ms":5}]"#,
        );
        let recorded = two.into_recorded().unwrap();
        assert_eq!(recorded.len(), 2);
        assert!(recorded.iter().all(|r| r.revision == 1));
        for bad in [
            "[]",
            "{}",
            r#"[{"op":"write","group":"g"}]"#,
            r#"[{"op":"assign-user","group":"g"}]"#,
        ] {
            assert!(write(bad).into_recorded().is_err(), "{bad}");
        }
        assert!(
            row("nest-group").into_recorded().is_err(),
            "a nesting without its parent"
        );
        let negative = ChangelogRow {
            revision: -1,
            ..row("create-group")
        };
        assert!(internal(negative.into_recorded()).contains("below zero"));
        let row = ChangeRow {
            operation: Operation::AssignUser,
            group: "g",
            user: None,
            resource: None,
            action: None,
            parent: None,
            expires_at_ms: None,
        };
        assert!(row.to_change().is_err());
    }

    /// The message of an internal error, or a panic if `result` is anything else.
    fn internal<T: fmt::Debug>(result: Result<T, StoreError>) -> String {
        match result {
            Err(error @ StoreError::Internal(_)) => crate::error_chain(&error),
            other => panic!("not an internal error: {other:?}"),
        }
    }

    #[test]
    fn a_row_that_breaks_an_invariant_is_an_internal_error_naming_what_was_wrong() {
        let listing = |tenant: ChangedRow| vec![(None, None, Some(7), Some(true)), tenant];
        let key = || KeyRow {
            id: "0123456789abcdef".into(),
            name: None,
            tenant: None,
            role: "check".into(),
            secret_hash: vec![0; 32],
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            created_by: None,
            revoked_at: None,
            last_used_at: None,
        };
        let with = |change: fn(&mut KeyRow)| {
            let mut row = key();
            change(&mut row);
            internal(row.into_record().map(drop))
        };
        assert!(key().into_record().is_ok());
        let broken = [
            (
                internal(revisions_by_tenant(vec![("acme".into(), -1)])),
                "the revision of tenant 'acme' below zero: -1",
            ),
            (
                internal(revisions_by_tenant(vec![("a*".into(), 1)])),
                "an invalid name: `tenant`",
            ),
            (
                internal(changed_from_rows(listing((
                    Some("b".into()),
                    Some(-2),
                    None,
                    None,
                )))),
                "the revision of tenant 'b' below zero: -2",
            ),
            (
                internal(changed_from_rows(vec![(None, None, Some(-7), Some(true))])),
                "a position in its history below zero: -7",
            ),
            (
                internal(changed_from_rows(listing((
                    Some("b".into()),
                    None,
                    None,
                    None,
                )))),
                "a malformed row in a list of tenants",
            ),
            (
                with(|row| row.id = "0123".into()),
                "a key id of the wrong shape: \"0123\"",
            ),
            (
                with(|row| row.role = "root".into()),
                "an unknown role \"root\" for key 0123456789abcdef",
            ),
            (
                with(|row| row.secret_hash = vec![0; 31]),
                "a hash of 31 bytes for key 0123456789abcdef, not 32",
            ),
            (
                with(|row| row.tenant = Some(String::new())),
                "an invalid name: `tenant` must not be empty",
            ),
        ];
        for (message, expected) in broken {
            assert!(message.contains(expected), "{message}");
        }
    }
}
