//! The store's contract (the doc comments of `rbac_server::store::Store`), checked against
//! every backend by the same tests: each test below is a function of a store, and the macro at
//! the end runs it once on PostgreSQL and once on SQLite.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rbac_server::keys::{KeyId, KeyRecord, NewKey, Revocation, Role, Scope};
use rbac_server::policy::{
    Action, Change, GroupName, Permission, Resource, TenantName, TenantPolicy, UserName,
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

async fn a_tenant_never_written_is_empty_at_revision_zero(store: Arc<dyn Store>) {
    let policy = store.load(&tenant("nobody")).await.unwrap();
    assert_eq!(policy, TenantPolicy::at_revision(0));
    assert!(
        revisions(store.as_ref(), &[tenant("nobody")])
            .await
            .is_empty()
    );
    assert_eq!(
        store.changes_since(&tenant("nobody"), 0, 10).await.unwrap(),
        Some(vec![])
    );
}

async fn a_changing_write_adds_one_to_the_revision_and_a_no_op_adds_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let expect = |changed, revision| WriteOutcome { changed, revision };
    assert_eq!(write(s, "t", create("g")).await, expect(true, 1));
    assert_eq!(write(s, "t", create("g")).await, expect(false, 1));
    assert_eq!(write(s, "t", add("g", "r", "a")).await, expect(true, 2));
    assert_eq!(write(s, "t", add("g", "r", "a")).await, expect(false, 2));
    assert_eq!(write(s, "t", assign("g", "u")).await, expect(true, 3));
    assert_eq!(write(s, "t", assign("g", "u")).await, expect(false, 3));
    assert_eq!(write(s, "t", unassign("g", "u")).await, expect(true, 4));
    assert_eq!(write(s, "t", unassign("g", "u")).await, expect(false, 4));
    assert_eq!(write(s, "t", remove("g", "r", "a")).await, expect(true, 5));
    assert_eq!(write(s, "t", remove("g", "r", "a")).await, expect(false, 5));
    assert_eq!(
        write(s, "t", Change::DeleteGroup { group: group("g") }).await,
        expect(true, 6)
    );
    assert_eq!(
        write(s, "t", Change::DeleteGroup { group: group("g") }).await,
        expect(false, 6)
    );
    assert_eq!(store.load(&tenant("t")).await.unwrap().revision(), 6);
}

async fn a_no_op_write_does_not_create_the_tenant(store: Arc<dyn Store>) {
    let outcome = write(store.as_ref(), "ghost", unassign("g", "u")).await;
    assert_eq!(
        outcome,
        WriteOutcome {
            changed: false,
            revision: 0
        }
    );
    assert!(
        revisions(store.as_ref(), &[tenant("ghost")])
            .await
            .is_empty()
    );
}

async fn adding_to_a_missing_group_fails_and_changes_nothing(store: Arc<dyn Store>) {
    let t = tenant("t");
    write(store.as_ref(), "t", create("g")).await;
    for change in [add("missing", "r", "a"), assign("missing", "u")] {
        let err = store.write(&t, &change, SERVER, None).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::GroupNotFound(g) if g.as_str() == "missing"),
            "{err:?}"
        );
    }
    let policy = store.load(&t).await.unwrap();
    assert_eq!(policy.revision(), 1);
    assert_eq!(policy.group_count(), 1);
    assert_eq!(
        store.changes_since(&t, 0, 10).await.unwrap().unwrap().len(),
        1
    );
}

async fn deleting_a_group_takes_its_permissions_and_memberships(store: Arc<dyn Store>) {
    let s = store.as_ref();
    for change in [
        create("g"),
        add("g", "docs/*", "read"),
        assign("g", "alice"),
        Change::DeleteGroup { group: group("g") },
        create("g"),
    ] {
        write(s, "t", change).await;
    }
    let policy = store.load(&tenant("t")).await.unwrap();
    assert_eq!(
        (
            policy.group_count(),
            policy.permission_count(),
            policy.assignment_count()
        ),
        (1, 0, 0)
    );
    assert!(!policy.allows("alice", "docs/a", "read"));
}

async fn a_load_is_the_state_at_the_revision_it_carries(store: Arc<dyn Store>) {
    let changes = vec![
        create("readers"),
        create("writers"),
        add("readers", "docs/*", "read"),
        add("writers", "docs/*", "*"),
        add("writers", "a*b", "write"),
        assign("readers", "alice"),
        assign("writers", "bob"),
        assign("readers", "bob"),
        remove("writers", "docs/*", "*"),
        unassign("readers", "alice"),
        create("readers"),
        assign("readers", "bob"),
    ];
    for change in &changes {
        write(store.as_ref(), "t", change.clone()).await;
    }
    let loaded = store.load(&tenant("t")).await.unwrap();
    assert_eq!(loaded, model(&changes));
    assert_eq!(loaded.revision(), 10);
}

async fn names_round_trip_verbatim_and_are_compared_byte_for_byte(store: Arc<dyn Store>) {
    let names = [
        "'; DROP TABLE groups; --",
        "O'Brien \"quoted\"",
        "🦀 émoji",
        "مرحبا",
        "back\\slash %_ like",
        "Case",
        "case",
    ];
    for name in names {
        write(store.as_ref(), name, create(name)).await;
        write(store.as_ref(), name, add(name, &format!("{name}/*"), name)).await;
        write(store.as_ref(), name, assign(name, name)).await;
    }
    let all: Vec<TenantName> = names.iter().map(|n| tenant(n)).collect();
    let revisions = revisions(store.as_ref(), &all).await;
    assert_eq!(revisions.len(), names.len());
    for name in names {
        assert_eq!(revisions[&tenant(name)], 3);
        let policy = store.load(&tenant(name)).await.unwrap();
        let groups = policy.groups();
        assert_eq!(groups.len(), 1, "{name}: {groups:?}");
        assert_eq!(groups[0].name, name);
        assert_eq!(
            groups[0].permissions,
            vec![(format!("{name}/*"), name.to_string())]
        );
        assert_eq!(groups[0].members, vec![name.to_string()]);
        assert!(policy.allows(name, &format!("{name}/x"), name));
    }
}

async fn tenants_are_isolated(store: Arc<dyn Store>) {
    let s = store.as_ref();
    write(s, "a", create("g")).await;
    write(s, "a", add("g", "doc", "read")).await;
    write(s, "a", assign("g", "alice")).await;
    write(s, "b", create("g")).await;
    let b = store.load(&tenant("b")).await.unwrap();
    assert_eq!(b.revision(), 1);
    assert!(!b.allows("alice", "doc", "read"));
    // Deleting b's group leaves a's alone.
    write(s, "b", Change::DeleteGroup { group: group("g") }).await;
    assert!(
        store
            .load(&tenant("a"))
            .await
            .unwrap()
            .allows("alice", "doc", "read")
    );
}

async fn revisions_answers_for_many_tenants_at_once(store: Arc<dyn Store>) {
    for (t, writes) in [("one", 1), ("two", 2), ("three", 3)] {
        for n in 0..writes {
            write(store.as_ref(), t, create(&format!("g{n}"))).await;
        }
    }
    let asked = [
        tenant("one"),
        tenant("two"),
        tenant("three"),
        tenant("none"),
    ];
    let answered = revisions(store.as_ref(), &asked).await;
    assert_eq!(answered.len(), 3);
    assert_eq!(answered[&tenant("one")], 1);
    assert_eq!(answered[&tenant("two")], 2);
    assert_eq!(answered[&tenant("three")], 3);
    assert!(store.revisions(&[]).await.unwrap().is_empty());
    let twice = [tenant("two"), tenant("two")];
    assert_eq!(revisions(store.as_ref(), &twice).await.len(), 1);
}

async fn changes_since_replays_to_exactly_what_a_load_gives(store: Arc<dyn Store>) {
    let t = tenant("t");
    let changes = [
        create("g"),
        add("g", "r", "a"),
        add("g", "r", "a"), // no change: not in the changelog
        assign("g", "u"),
        create("h"),
        assign("h", "u"),
        Change::DeleteGroup { group: group("g") },
    ];
    for change in &changes {
        write(store.as_ref(), "t", change.clone()).await;
    }
    let full = store.load(&t).await.unwrap();
    assert_eq!(full.revision(), 6);
    for from in 0..=6u64 {
        let all = store.changes_since(&t, 0, 100).await.unwrap().unwrap();
        let mut policy = TenantPolicy::default();
        for recorded in all.iter().take(from as usize) {
            policy.advance(recorded.revision, &recorded.change).unwrap();
        }
        let rest = store.changes_since(&t, from, 100).await.unwrap().unwrap();
        assert_eq!(rest.len() as u64, 6 - from);
        for recorded in &rest {
            policy.advance(recorded.revision, &recorded.change).unwrap();
        }
        assert_eq!(policy, full, "replaying from revision {from}");
    }
}

async fn changes_since_refuses_more_than_the_limit(store: Arc<dyn Store>) {
    for n in 0..5 {
        write(store.as_ref(), "t", create(&format!("g{n}"))).await;
    }
    let t = tenant("t");
    assert!(store.changes_since(&t, 0, 4).await.unwrap().is_none());
    assert_eq!(
        store.changes_since(&t, 0, 5).await.unwrap().unwrap().len(),
        5
    );
    assert_eq!(
        store.changes_since(&t, 1, 4).await.unwrap().unwrap().len(),
        4
    );
    assert_eq!(store.changes_since(&t, 5, 1).await.unwrap(), Some(vec![]));
    assert_eq!(store.changes_since(&t, 9, 1).await.unwrap(), Some(vec![]));
}

async fn pruned_history_is_not_replayed_but_the_state_stays(store: Arc<dyn Store>) {
    for n in 0..3 {
        write(store.as_ref(), "t", create(&format!("g{n}"))).await;
    }
    let t = tenant("t");
    // Nothing is that old yet.
    assert_eq!(
        store
            .prune_changelog(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store.prune_changelog(Duration::from_secs(1)).await.unwrap(),
        3
    );
    assert!(store.changes_since(&t, 0, 100).await.unwrap().is_none());
    write(store.as_ref(), "t", create("g3")).await;
    // The newest change is there; the ones before it are not.
    assert_eq!(
        store
            .changes_since(&t, 3, 100)
            .await
            .unwrap()
            .unwrap()
            .len(),
        1
    );
    assert!(store.changes_since(&t, 2, 100).await.unwrap().is_none());
    let policy = store.load(&t).await.unwrap();
    assert_eq!((policy.revision(), policy.group_count()), (4, 4));
}

async fn concurrent_writers_get_a_gapless_sequence_of_revisions(store: Arc<dyn Store>) {
    write(store.as_ref(), "t", create("g")).await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut changed = 0u64;
            for n in 0..25 {
                let user = format!("u{}", (task * 25 + n) % 40);
                let change = if n % 3 == 2 {
                    unassign("g", &user)
                } else {
                    assign("g", &user)
                };
                if write(store.as_ref(), "t", change).await.changed {
                    changed += 1;
                }
            }
            changed
        }));
    }
    let mut changed = 1;
    for task in tasks {
        changed += task.await.unwrap();
    }
    let t = tenant("t");
    let log = store.changes_since(&t, 0, 10_000).await.unwrap().unwrap();
    assert_eq!(log.len() as u64, changed);
    assert!(
        log.iter()
            .zip(1..)
            .all(|(recorded, n)| recorded.revision == n)
    );
    let mut replayed = TenantPolicy::default();
    for recorded in &log {
        replayed
            .advance(recorded.revision, &recorded.change)
            .unwrap();
    }
    assert_eq!(replayed, store.load(&t).await.unwrap());
}

/// Every tenant [`Store::tenants`] lists, by name, and the position it gives.
async fn listed(store: &dyn Store) -> (BTreeSet<String>, Position) {
    let mut names = BTreeSet::new();
    let position = store
        .tenants(&mut |tenant| assert!(names.insert(tenant.to_string()), "{tenant} twice"))
        .await
        .unwrap();
    (names, position)
}

/// The tenants of a listing, by name.
fn by_name(changed: &Changed) -> BTreeMap<String, u64> {
    changed
        .tenants
        .iter()
        .map(|TenantRevision { tenant, revision }| (tenant.to_string(), *revision))
        .collect()
}

async fn a_tenant_of_thousands_of_rows_loads_whole(store: Arc<dyn Store>) {
    // Past a thousand rows of a kind a backend may read a tenant another way than a small one
    // (PostgreSQL streams it): the state must be the same whole, whichever kind is large.
    let many = |kind: usize, n: usize| -> Vec<Change> {
        let mut changes = vec![create("g"), create("h")];
        changes.extend((0..n).map(|i| match kind {
            0 => create(&format!("group-{i}")),
            1 => add("h", &format!("doc-{i}"), "read"),
            _ => assign(["g", "h"][i % 2], &format!("u{i}")),
        }));
        changes.push(add("h", "docs/*", "read"));
        changes.push(assign("h", "u1"));
        changes
    };
    let tenants = ["many-groups", "many-permissions", "many-members"];
    let writers: Vec<_> = tenants
        .into_iter()
        .enumerate()
        .map(|(kind, t)| {
            let (store, changes) = (store.clone(), many(kind, 1100));
            tokio::spawn(async move {
                for change in changes {
                    write(store.as_ref(), t, change).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for t in tenants {
        let t = tenant(t);
        let loaded = store.load(&t).await.unwrap();
        let mut replayed = TenantPolicy::default();
        for recorded in store.changes_since(&t, 0, 10_000).await.unwrap().unwrap() {
            replayed
                .advance(recorded.revision, &recorded.change)
                .unwrap();
        }
        assert_eq!(loaded, replayed, "{t}");
        assert!(loaded.allows("u1", "docs/x", "read"), "{t}");
        assert!(!loaded.allows("u0", "docs/x", "read"), "{t}");
    }
}

/// What changed since `position`; the history must reach back to it.
async fn changed(store: &dyn Store, position: Position) -> Changed {
    store
        .changed_since(position)
        .await
        .unwrap()
        .expect("the history reaches back to the position")
}

/// `changed` names every tenant of `must` at that revision, and names nothing but tenants at
/// their current revision: the store may report more than what changed (on PostgreSQL, any
/// transaction open in the cluster holds the position back), never less, never wrong.
async fn reports(store: &dyn Store, changed: &Changed, must: &[(&str, u64)]) {
    let reported = by_name(changed);
    for (name, revision) in must {
        assert_eq!(reported.get(*name), Some(revision), "{name} in {changed:?}");
    }
    let names: Vec<TenantName> = changed.tenants.iter().map(|t| t.tenant.clone()).collect();
    let current = revisions(store, &names).await;
    for TenantRevision { tenant, revision } in &changed.tenants {
        assert_eq!(
            current.get(tenant),
            Some(revision),
            "{tenant} in {changed:?}"
        );
    }
}

async fn tenants_lists_what_exists_and_changed_since_what_was_written_after(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let (empty, start) = listed(store).await;
    assert!(empty.is_empty(), "{empty:?}");
    write(store, "a", create("g")).await;
    write(store, "a", create("h")).await;
    write(store, "b", create("g")).await;
    // A write that changes nothing does not make a tenant.
    write(store, "c", remove("g", "r", "a")).await;

    let (names, position) = listed(store).await;
    assert_eq!(names, BTreeSet::from(["a".into(), "b".into()]));
    assert!(position >= start);
    let quiet = changed(store, position).await;
    reports(store, &quiet, &[]).await;
    assert!(quiet.position >= position);

    write(store, "b", create("h")).await;
    write(store, "d", create("g")).await;
    write(store, "a", create("h")).await; // no change
    let later = changed(store, quiet.position).await;
    reports(store, &later, &[("b", 2), ("d", 1)]).await;
    assert!(later.position >= quiet.position);
    let quiet = changed(store, later.position).await;
    reports(store, &quiet, &[]).await;
    // From the smallest position, every tenant written since the listing above.
    let all = changed(store, Position::default()).await;
    reports(store, &all, &[("b", 2), ("d", 1)]).await;
}

async fn after_retention_changed_since_never_leaves_out_what_it_deleted(store: Arc<dyn Store>) {
    let store = store.as_ref();
    write(store, "a", create("g")).await;
    let (_, position) = listed(store).await;
    write(store, "b", create("g")).await;
    // Older than now: SQLite's timestamps are in milliseconds.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.prune_changelog(Duration::ZERO).await.unwrap(), 2);
    // Either the store still knows what changed (its positions do not live in the changelog),
    // or it says it cannot tell; never an answer without `b`.
    if let Some(later) = store.changed_since(position).await.unwrap() {
        reports(store, &later, &[("b", 1)]).await;
    }
}

async fn changes_committed_while_changed_since_reads_are_never_missed(store: Arc<dyn Store>) {
    const TENANTS: usize = 12;
    let (_, start) = listed(store.as_ref()).await;
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..40 {
                    let t = format!("t{}", (w * 7 + n) % TENANTS);
                    write(store.as_ref(), &t, create(&format!("g{w}-{n}"))).await;
                }
            })
        })
        .collect();
    // A sweep that keeps asking while the writes commit, keeping the newest revision it saw.
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut position = start;
    let sweep = async |seen: &mut BTreeMap<String, u64>, position: &mut Position| {
        let changed = changed(store.as_ref(), *position).await;
        for (t, revision) in by_name(&changed) {
            let held = seen.entry(t).or_default();
            *held = (*held).max(revision);
        }
        *position = changed.position;
    };
    while writers.iter().any(|w| !w.is_finished()) {
        sweep(&mut seen, &mut position).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    sweep(&mut seen, &mut position).await;
    let names: Vec<TenantName> = (0..TENANTS).map(|t| tenant(&format!("t{t}"))).collect();
    let truth: BTreeMap<String, u64> = revisions(store.as_ref(), &names)
        .await
        .into_iter()
        .map(|(t, revision)| (t.to_string(), revision))
        .collect();
    assert_eq!(seen, truth);
}

/// A write whose transaction is still open while `changed_since` reads, and commits after:
/// the position that read returns must still lead to it. (A number handed out before commit
/// would not: the reader would step past it.) Each backend's write is held open by hand.
#[tokio::test]
async fn postgres_a_write_committing_after_a_read_is_reported_by_the_next() {
    use sqlx::{Connection, Executor};
    let url = common::fresh_postgres_database().await;
    let store = PgStore::connect(&url, TIMEOUT, 16).await.unwrap();
    let (_, start) = listed(&store).await;
    let mut open = sqlx::PgConnection::connect(&url).await.unwrap();
    open.execute("BEGIN").await.unwrap();
    open.execute(
        "SELECT * FROM rbac_write('late', 'create-group', 'g', NULL, NULL, NULL, 'test', NULL)",
    )
    .await
    .unwrap();
    write(&store, "early", create("g")).await;
    let before = changed(&store, start).await;
    reports(&store, &before, &[("early", 1)]).await;
    let (listed_before, listed_at) = listed(&store).await;
    assert!(!listed_before.contains("late"), "{listed_before:?}");
    open.execute("COMMIT").await.unwrap();
    for position in [before.position, listed_at] {
        let after = changed(&store, position).await;
        reports(&store, &after, &[("late", 1)]).await;
    }
}

#[tokio::test]
async fn postgres_says_when_retention_deleted_changes_after_a_position() {
    let store = PgStore::connect(&common::fresh_postgres_database().await, TIMEOUT, 16)
        .await
        .unwrap();
    write(&store, "a", create("g")).await;
    let (_, position) = listed(&store).await;
    write(&store, "b", create("g")).await;
    // Retention that deleted nothing after the position changes nothing.
    store
        .prune_changelog(Duration::from_secs(3600))
        .await
        .unwrap();
    reports(&store, &changed(&store, position).await, &[("b", 1)]).await;
    store.prune_changelog(Duration::ZERO).await.unwrap();
    assert_eq!(store.changed_since(position).await.unwrap(), None);
    // From a position taken since, the history is whole again.
    let (_, since) = listed(&store).await;
    write(&store, "c", create("g")).await;
    reports(&store, &changed(&store, since).await, &[("c", 1)]).await;
}

#[tokio::test]
async fn sqlite_a_write_committing_after_a_read_is_reported_by_the_next() {
    use sqlx::{Connection, Executor};
    let url = common::fresh_sqlite_database();
    let store = SqliteStore::open_url(&url, TIMEOUT, 8).await.unwrap();
    write(&store, "early", create("g")).await;
    let (_, start) = listed(&store).await;
    let mut open = sqlx::SqliteConnection::connect(&url).await.unwrap();
    open.execute("BEGIN IMMEDIATE").await.unwrap();
    open.execute("INSERT INTO tenants (name) VALUES ('late')")
        .await
        .unwrap();
    open.execute("UPDATE tenants SET revision = revision + 1 WHERE name = 'late'")
        .await
        .unwrap();
    let before = changed(&store, start).await;
    assert!(before.tenants.is_empty(), "{before:?}");
    let (listed_before, listed_at) = listed(&store).await;
    assert!(!listed_before.contains("late"), "{listed_before:?}");
    open.execute("COMMIT").await.unwrap();
    for position in [before.position, listed_at] {
        let after = changed(&store, position).await;
        assert_eq!(by_name(&after), BTreeMap::from([("late".into(), 1)]));
    }
}

fn key_id(id: &str) -> KeyId {
    KeyId::parse("id", id).unwrap()
}

fn new_key(id: &str, scope: Scope, role: Role) -> NewKey {
    NewKey {
        id: key_id(id),
        name: Some("deploy bot".into()),
        scope,
        role,
        secret_hash: [7; 32],
        created_by: Some("token:0badc0de".into()),
    }
}

async fn keys_are_kept_with_their_scope_role_and_hash_and_revoked_keys_stay_listed(
    store: Arc<dyn Store>,
) {
    assert_eq!(store.keys().await.unwrap(), Vec::new());
    let scoped = new_key(
        "00000000000000a1",
        Scope::Tenant(tenant("acme")),
        Role::Check,
    );
    let global = NewKey {
        name: None,
        created_by: None,
        secret_hash: [9; 32],
        ..new_key("00000000000000b2", Scope::All, Role::Admin)
    };
    // Stamped by the store's clock, which the test's may trail or lead by a little.
    let about = |from: OffsetDateTime, to: OffsetDateTime| {
        let slack = Duration::from_secs(5);
        move |at: OffsetDateTime| at >= from - slack && at <= to + slack
    };
    let started = OffsetDateTime::now_utc();
    let first = store.create_key(&scoped).await.unwrap();
    let second = store.create_key(&global).await.unwrap();
    let created_now = about(started, OffsetDateTime::now_utc());
    for (record, key) in [(&first, &scoped), (&second, &global)] {
        assert_eq!(record.id, key.id);
        assert_eq!(record.name, key.name);
        assert_eq!(record.scope, key.scope);
        assert_eq!(record.role, key.role);
        assert_eq!(record.secret_hash, key.secret_hash);
        assert_eq!(record.created_by, key.created_by);
        assert_eq!(record.revoked_at, None);
        assert!(created_now(record.created_at), "{}", record.created_at);
    }
    assert_eq!(
        store.keys().await.unwrap(),
        vec![first.clone(), second.clone()]
    );

    let revoking = OffsetDateTime::now_utc();
    assert_eq!(
        store.revoke_key(&first.id).await.unwrap(),
        Revocation::Revoked
    );
    let revoked_now = about(revoking, OffsetDateTime::now_utc());
    assert_eq!(
        store.revoke_key(&first.id).await.unwrap(),
        Revocation::AlreadyRevoked
    );
    assert_eq!(
        store.revoke_key(&key_id("00000000000000c3")).await.unwrap(),
        Revocation::NoSuchKey
    );
    let keys = store.keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let revoked_at = keys[0].revoked_at.expect("the first key is revoked");
    assert!(
        revoked_now(revoked_at) && revoked_at >= keys[0].created_at,
        "{revoked_at}"
    );
    assert_eq!(
        KeyRecord {
            revoked_at: None,
            ..keys[0].clone()
        },
        first,
        "revoking a key changes nothing else of it"
    );
    assert_eq!(keys[1], second, "revoking one key leaves the others alone");
}

async fn a_key_id_is_unique(store: Arc<dyn Store>) {
    let key = new_key("00000000000000d4", Scope::All, Role::Check);
    store.create_key(&key).await.unwrap();
    assert!(store.create_key(&key).await.is_err());
    assert_eq!(store.keys().await.unwrap().len(), 1);
}

async fn keys_page_in_the_order_they_list_in(store: Arc<dyn Store>) {
    for id in ["00000000000000e3", "00000000000000e1", "00000000000000e2"] {
        store
            .create_key(&new_key(id, Scope::All, Role::Check))
            .await
            .unwrap();
    }
    let all = store.keys().await.unwrap();
    let ids = |keys: &[KeyRecord]| keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
    assert_eq!(store.key_page(None, 10).await.unwrap(), all);
    let first = store.key_page(None, 2).await.unwrap();
    assert_eq!(ids(&first), ids(&all[..2]));
    let rest = store.key_page(Some(&first[1].id), 2).await.unwrap();
    assert_eq!(ids(&rest), ids(&all[2..]));
    assert_eq!(store.key_page(Some(&all[2].id), 2).await.unwrap(), vec![]);
    // Revoked keys keep their place.
    store.revoke_key(&all[1].id).await.unwrap();
    let rest = store.key_page(Some(&all[0].id), 1).await.unwrap();
    assert_eq!(ids(&rest), ids(&all[1..2]));
    assert!(rest[0].revoked_at.is_some());
    assert_eq!(
        store
            .key_page(Some(&key_id("00000000000000ff")), 10)
            .await
            .unwrap(),
        vec![],
        "an unknown key is after every key"
    );
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
    concurrent_writers_get_a_gapless_sequence_of_revisions,
    keys_are_kept_with_their_scope_role_and_hash_and_revoked_keys_stay_listed,
    a_key_id_is_unique,
    keys_page_in_the_order_they_list_in,
    tenants_lists_what_exists_and_changed_since_what_was_written_after,
    after_retention_changed_since_never_leaves_out_what_it_deleted,
    a_tenant_of_thousands_of_rows_loads_whole,
    changes_committed_while_changed_since_reads_are_never_missed,
);
