//! The answers of the API, as docs/API.md documents them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `/create-group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub created: bool,
    pub revision: u64,
    pub message: String,
}

/// A write of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub changed: bool,
    pub revision: u64,
}

/// `/write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub changed: bool,
    pub revision: u64,
    pub results: Vec<WriteResult>,
}

/// Whether one change of a `/write` changed something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    pub changed: bool,
}

/// `PUT /tenant-policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub dry_run: bool,
    pub changed: bool,
    pub revision: u64,
    /// How many changes of each operation the difference holds.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// On a dry run, the difference, as changes of a `/write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Value>>,
}

/// `/check-access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAnswer {
    pub allowed: bool,
    pub revision: u64,
    /// With `explain`: the permissions the answer comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub because: Option<Vec<Because>>,
}

/// A permission a check's answer comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Because {
    pub group: String,
    pub resource: String,
    pub action: String,
    /// The chain of groups from the user's own to `group`, when the grant comes through
    /// nesting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<Vec<String>>,
}

/// `/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsPage {
    pub tenant: String,
    pub revision: u64,
    pub groups: Vec<GroupSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub name: String,
    pub permission_count: u64,
    pub member_count: u64,
}

/// `/group-permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionsPage {
    pub tenant: String,
    pub group: String,
    pub revision: u64,
    pub permissions: Vec<PermissionItem>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionItem {
    pub resource: String,
    pub action: String,
}

/// `/group-members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersPage {
    pub tenant: String,
    pub group: String,
    pub revision: u64,
    pub members: Vec<String>,
    /// Those of `members` whose membership ends.
    #[serde(default)]
    pub expiring: Vec<Expiring>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring {
    pub user: String,
    pub expires_at: String,
    pub expired: bool,
}

/// `/who-can`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoCanPage {
    pub tenant: String,
    pub revision: u64,
    pub users: Vec<String>,
    pub next_cursor: Option<String>,
}

/// `/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesPage {
    pub tenant: String,
    pub revision: u64,
    pub changes: Vec<ChangeEntry>,
    pub next_after: Option<u64>,
}

/// A change as `/changes` and `/watch` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    pub revision: u64,
    pub operation: String,
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
    pub expires_at: Option<String>,
    pub actor: Option<String>,
    pub server_id: String,
    pub at: String,
    /// In a watch stream: whether it is the last change of its revision (the changes of a
    /// `/write` share one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_revision: Option<bool>,
}

/// What a watch stream says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Change(Box<ChangeEntry>),
    /// The client fell behind and the server ended the stream: open it again after `after`.
    Reset {
        after: u64,
    },
    /// The changes the stream had yet to send are no longer kept: read the tenant afresh.
    Expired {
        oldest_revision: u64,
    },
}

/// `/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantsPage {
    pub tenants: Vec<TenantSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSummary {
    pub name: String,
    pub revision: u64,
    pub group_count: u64,
    pub permission_count: u64,
    pub assignment_count: u64,
}

/// `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub server_id: String,
    pub database: String,
    pub redis: String,
}

/// `/credential`: the credential presented, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    pub credential: Option<Presented>,
    pub may: May,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presented {
    pub actor: String,
    pub role: String,
    /// The tenant it reaches, or `*`.
    pub tenant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct May {
    pub write: bool,
    pub read: bool,
    pub list_tenants: bool,
    pub view_instance: bool,
    pub manage_keys: bool,
}

/// `/ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub status: String,
    pub server_id: String,
}

/// `/create-api-key`: the key, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    pub key: String,
    #[serde(flatten)]
    pub record: KeyRecord,
}

/// An API key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: Option<String>,
    pub tenant: String,
    pub role: String,
    pub created_at: String,
    pub created_by: Option<String>,
    pub revoked_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
}

/// `/api-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysPage {
    pub keys: Vec<KeyRecord>,
    pub next_cursor: Option<String>,
}

/// `/revoke-api-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: bool,
}

/// A page of a listing, which says where the next one starts.
pub trait Paged {
    /// The `cursor` of the next page; none on the last.
    fn next_cursor(&self) -> Option<&str>;
}

macro_rules! paged {
    ($($page:ty),*) => {$(
        impl Paged for $page {
            fn next_cursor(&self) -> Option<&str> {
                self.next_cursor.as_deref()
            }
        }
    )*};
}

paged!(
    GroupsPage,
    PermissionsPage,
    MembersPage,
    WhoCanPage,
    TenantsPage,
    KeysPage
);
