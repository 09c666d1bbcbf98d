//! The store's contract (the doc comments of `rbac_server::store::Store`), checked against
//! every backend by the same tests: each test in the modules below is a function of a store, and
//! the macro at the end runs it once on PostgreSQL and once on SQLite.

#[path = "../common/mod.rs"]
mod common;

mod keys;
mod tenants;
mod writes;

use keys::*;
use tenants::*;
use writes::*;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rbac_server::keys::{KeyId, KeyRecord, NewKey, Revocation, Role, Scope};
use rbac_server::policy::{
    Action, Change, GroupName, MAX_NESTING_DEPTH, Permission, Resource, TenantName, TenantPolicy,
    UnixMillis, UserName,
};
use rbac_server::store::postgres::PgStore;
use rbac_server::store::sqlite::SqliteStore;
use rbac_server::store::{Changed, Position, Store, StoreError, TenantRevision, WriteOutcome};
use time::OffsetDateTime;

const TIMEOUT: Duration = Duration::from_secs(5);
const SERVER: &str = "conformance";

async fn postgres() -> Arc<dyn Store> {
    Arc::new(
        PgStore::connect(&common::fresh_postgres_database().await, TIMEOUT, 16)
            .await
            .unwrap(),
    )
}

async fn sqlite() -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open_url(&common::fresh_sqlite_database(), TIMEOUT, 8)
            .await
            .unwrap(),
    )
}

fn tenant(name: &str) -> TenantName {
    TenantName::parse("tenant", name).unwrap()
}

fn group(name: &str) -> GroupName {
    GroupName::parse("group", name).unwrap()
}

fn create(g: &str) -> Change {
    Change::CreateGroup { group: group(g) }
}

fn add(g: &str, resource: &str, action: &str) -> Change {
    Change::AddPermission {
        group: group(g),
        permission: Permission {
            resource: Resource::parse("resource", resource).unwrap(),
            action: Action::parse("action", action).unwrap(),
        },
    }
}

fn remove(g: &str, resource: &str, action: &str) -> Change {
    let Change::AddPermission { group, permission } = add(g, resource, action) else {
        unreachable!()
    };
    Change::RemovePermission { group, permission }
}

fn assign(g: &str, user: &str) -> Change {
    Change::AssignUser {
        group: group(g),
        user: UserName::parse("user", user).unwrap(),
        expires_at: None,
    }
}

fn unassign(g: &str, user: &str) -> Change {
    Change::UnassignUser {
        group: group(g),
        user: UserName::parse("user", user).unwrap(),
    }
}

/// [`Store::revisions`] by tenant; each tenant must be answered at most once.
async fn revisions(store: &dyn Store, tenants: &[TenantName]) -> HashMap<TenantName, u64> {
    let found = store.revisions(tenants).await.unwrap();
    let by_tenant: HashMap<TenantName, u64> = found
        .iter()
        .map(|TenantRevision { tenant, revision }| (tenant.clone(), *revision))
        .collect();
    assert_eq!(by_tenant.len(), found.len(), "a tenant twice in {found:?}");
    by_tenant
}

async fn write(store: &dyn Store, t: &str, change: Change) -> WriteOutcome {
    store
        .write(&tenant(t), &change, SERVER, None)
        .await
        .unwrap()
}

/// The policy the model gives for `changes` applied in order, at the revision a store
/// should reach: one more for each change that changed something.
fn model(changes: &[Change]) -> TenantPolicy {
    let mut policy = TenantPolicy::default();
    for change in changes {
        let mut next = policy.clone();
        if next.advance(policy.revision() + 1, change).is_ok() {
            policy = next;
        }
    }
    policy
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::postgres().await).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::sqlite().await).await
                }
            )*
        }
    };
}

conformance!(
    a_tenant_never_written_is_empty_at_revision_zero,
    a_changing_write_adds_one_to_the_revision_and_a_no_op_adds_nothing,
    a_no_op_write_does_not_create_the_tenant,
    adding_to_a_missing_group_fails_and_changes_nothing,
    deleting_a_group_takes_its_permissions_and_memberships,
    a_load_is_the_state_at_the_revision_it_carries,
    names_round_trip_verbatim_and_are_compared_byte_for_byte,
    tenants_are_isolated,
    revisions_answers_for_many_tenants_at_once,
    changes_since_replays_to_exactly_what_a_load_gives,
    changes_since_refuses_more_than_the_limit,
    pruned_history_is_not_replayed_but_the_state_stays,
    the_change_log_pages_each_change_with_who_made_it_and_when,
    concurrent_writers_get_a_gapless_sequence_of_revisions,
    keys_are_kept_with_their_scope_role_and_hash_and_revoked_keys_stay_listed,
    a_key_id_is_unique,
    a_keys_last_use_only_moves_forward,
    keys_page_in_the_order_they_list_in,
    tenants_lists_what_exists_and_changed_since_what_was_written_after,
    after_retention_changed_since_never_leaves_out_what_it_deleted,
    a_tenant_of_thousands_of_rows_loads_whole,
    changes_committed_while_changed_since_reads_are_never_missed,
    nestings_are_written_logged_loaded_and_refused_as_the_model_refuses_them,
    a_membership_end_is_written_changed_logged_and_loaded,
    a_write_of_many_is_one_revision_all_or_nothing_and_replays_as_one,
    a_page_of_the_changelog_holds_whole_revisions_up_to_its_budget,
    writes_of_many_do_what_the_model_does_change_by_change,
);
