//! Which tenants exist and which changed since a position, whatever commits meanwhile.

use super::*;

/// Every tenant [`Store::tenants`] lists, by name with its revision, and the position it gives.
async fn listed(store: &dyn Store) -> (BTreeMap<String, u64>, Position) {
    let mut names = BTreeMap::new();
    let position = store
        .tenants(&mut |each| {
            let twice = names.insert(each.tenant.to_string(), each.revision);
            assert!(twice.is_none(), "{} twice", each.tenant);
        })
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

pub async fn a_tenant_of_thousands_of_rows_loads_whole(store: Arc<dyn Store>) {
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
        assert!(loaded.allows("u1", "docs/x", "read", UnixMillis(0)), "{t}");
        assert!(!loaded.allows("u0", "docs/x", "read", UnixMillis(0)), "{t}");
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

pub async fn tenants_lists_what_exists_and_changed_since_what_was_written_after(
    store: Arc<dyn Store>,
) {
    let store = store.as_ref();
    let (empty, start) = listed(store).await;
    assert!(empty.is_empty(), "{empty:?}");
    write(store, "a", create("g")).await;
    write(store, "a", create("h")).await;
    write(store, "b", create("g")).await;
    // A write that changes nothing does not make a tenant.
    write(store, "c", remove("g", "r", "a")).await;

    let (names, position) = listed(store).await;
    assert_eq!(names, BTreeMap::from([("a".into(), 2), ("b".into(), 1)]));
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

pub async fn after_retention_changed_since_never_leaves_out_what_it_deleted(store: Arc<dyn Store>) {
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

pub async fn changes_committed_while_changed_since_reads_are_never_missed(store: Arc<dyn Store>) {
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
    assert!(!listed_before.contains_key("late"), "{listed_before:?}");
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
    assert!(!listed_before.contains_key("late"), "{listed_before:?}");
    open.execute("COMMIT").await.unwrap();
    for position in [before.position, listed_at] {
        let after = changed(&store, position).await;
        assert_eq!(by_name(&after), BTreeMap::from([("late".into(), 1)]));
    }
}
