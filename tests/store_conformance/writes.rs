//! Writes, loads and the changelog: revisions, preconditions, isolation, replay and retention.

use super::*;

pub async fn a_tenant_never_written_is_empty_at_revision_zero(store: Arc<dyn Store>) {
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

pub async fn a_changing_write_adds_one_to_the_revision_and_a_no_op_adds_nothing(
    store: Arc<dyn Store>,
) {
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

pub async fn a_no_op_write_does_not_create_the_tenant(store: Arc<dyn Store>) {
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

pub async fn adding_to_a_missing_group_fails_and_changes_nothing(store: Arc<dyn Store>) {
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

pub async fn deleting_a_group_takes_its_permissions_and_memberships(store: Arc<dyn Store>) {
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
    assert!(!policy.allows("alice", "docs/a", "read", UnixMillis(0)));
}

pub async fn a_load_is_the_state_at_the_revision_it_carries(store: Arc<dyn Store>) {
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

pub async fn names_round_trip_verbatim_and_are_compared_byte_for_byte(store: Arc<dyn Store>) {
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
        assert!(policy.allows(name, &format!("{name}/x"), name, UnixMillis(0)));
    }
}

pub async fn tenants_are_isolated(store: Arc<dyn Store>) {
    let s = store.as_ref();
    write(s, "a", create("g")).await;
    write(s, "a", add("g", "doc", "read")).await;
    write(s, "a", assign("g", "alice")).await;
    write(s, "b", create("g")).await;
    let b = store.load(&tenant("b")).await.unwrap();
    assert_eq!(b.revision(), 1);
    assert!(!b.allows("alice", "doc", "read", UnixMillis(0)));
    // Deleting b's group leaves a's alone.
    write(s, "b", Change::DeleteGroup { group: group("g") }).await;
    assert!(
        store
            .load(&tenant("a"))
            .await
            .unwrap()
            .allows("alice", "doc", "read", UnixMillis(0))
    );
}

pub async fn revisions_answers_for_many_tenants_at_once(store: Arc<dyn Store>) {
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

pub async fn changes_since_replays_to_exactly_what_a_load_gives(store: Arc<dyn Store>) {
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

pub async fn changes_since_refuses_more_than_the_limit(store: Arc<dyn Store>) {
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

pub async fn pruned_history_is_not_replayed_but_the_state_stays(store: Arc<dyn Store>) {
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

pub async fn the_change_log_pages_each_change_with_who_made_it_and_when(store: Arc<dyn Store>) {
    let t = tenant("t");
    let empty = store.change_log(&t, 0, 10).await.unwrap();
    assert_eq!((empty.revision, empty.changes.len()), (0, 0));
    assert!(empty.continues(0));

    let started = OffsetDateTime::now_utc();
    let changes = [
        create("g"),
        add("g", "docs/*", "read"),
        assign("g", "alice"),
        remove("g", "docs/*", "read"),
        unassign("g", "alice"),
    ];
    for (n, change) in changes.iter().enumerate() {
        let actor = (n % 2 == 0).then_some("key:0123456789abcdef");
        let outcome = store.write(&t, change, "writer-a", actor).await.unwrap();
        assert_eq!(outcome.revision, n as u64 + 1);
        // A write that changes nothing is not recorded.
        store.write(&t, change, "writer-b", None).await.unwrap();
    }
    let finished = OffsetDateTime::now_utc();

    let whole = store.change_log(&t, 0, 100).await.unwrap();
    assert_eq!(whole.revision, 5);
    assert!(whole.continues(0));
    for (n, recorded) in whole.changes.iter().enumerate() {
        assert_eq!(recorded.revision, n as u64 + 1);
        assert_eq!(recorded.change, changes[n]);
        assert_eq!(recorded.server_id, "writer-a");
        let actor = (n % 2 == 0).then_some("key:0123456789abcdef");
        assert_eq!(recorded.actor.as_deref(), actor);
        // The store's clock, on this machine: the same as the test's, give or take.
        let slack = Duration::from_secs(5);
        assert!(
            recorded.at >= started - slack && recorded.at <= finished + slack,
            "{} outside the writes",
            recorded.at
        );
    }
    // Pages: `limit` from `after`, each with the current revision.
    let page = store.change_log(&t, 1, 2).await.unwrap();
    assert_eq!(page.revision, 5);
    assert_eq!(page.changes, whole.changes[1..3]);
    assert!(page.continues(1));
    for after in [5, 6, 100] {
        let log = store.change_log(&t, after, 10).await.unwrap();
        assert_eq!((log.revision, log.changes.len()), (5, 0), "after {after}");
        assert!(log.continues(after));
    }

    // What retention deleted is missing, and the log says it does not continue.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    store.prune_changelog(Duration::from_secs(1)).await.unwrap();
    write(store.as_ref(), "t", assign("g", "bob")).await;
    let log = store.change_log(&t, 0, 10).await.unwrap();
    assert_eq!(log.revision, 6);
    assert_eq!(
        log.changes.iter().map(|c| c.revision).collect::<Vec<_>>(),
        [6]
    );
    assert!(!log.continues(0) && !log.continues(4));
    assert!(store.change_log(&t, 5, 10).await.unwrap().continues(5));
}

pub async fn concurrent_writers_get_a_gapless_sequence_of_revisions(store: Arc<dyn Store>) {
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

fn nest(child: &str, parent: &str) -> Change {
    Change::NestGroup {
        group: group(child),
        parent: group(parent),
    }
}

pub async fn nestings_are_written_logged_loaded_and_refused_as_the_model_refuses_them(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant("t");
    // A tenant never written has no groups to nest.
    let err = s
        .write(&t, &nest("a", "b"), SERVER, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::GroupNotFound(g) if g.as_str() == "a"),
        "{err:?}"
    );

    let names: Vec<String> = (0..=MAX_NESTING_DEPTH).map(|i| format!("g{i}")).collect();
    let mut changes: Vec<Change> = names.iter().map(|n| create(n)).collect();
    changes.extend(
        names
            .windows(2)
            .take(MAX_NESTING_DEPTH - 1)
            .map(|w| nest(&w[0], &w[1])),
    );
    changes.push(assign("g0", "alice"));
    changes.push(add(&names[MAX_NESTING_DEPTH - 1], "wiki/*", "read"));
    for change in &changes {
        assert!(write(s, "t", change.clone()).await.changed, "{change:?}");
    }
    let expected = model(&changes);
    let loaded = s.load(&t).await.unwrap();
    assert_eq!(loaded, expected);
    assert!(
        loaded.allows("alice", "wiki/home", "read", UnixMillis(0)),
        "through {MAX_NESTING_DEPTH} groups"
    );
    assert_eq!(loaded.nesting_count(), MAX_NESTING_DEPTH - 1);

    // Refused, each for its own reason, and nothing written.
    let last = &names[MAX_NESTING_DEPTH];
    let refusals = [
        (nest("g0", "missing"), "missing"),
        (nest("missing", "g0"), "missing"),
        (nest("g3", "g3"), "cycle"),
        (nest(&names[MAX_NESTING_DEPTH - 1], "g0"), "cycle"),
        (nest(&names[MAX_NESTING_DEPTH - 1], last), "too deep"),
        (nest(last, "g0"), "too deep"),
    ];
    for (change, reason) in refusals {
        let err = s.write(&t, &change, SERVER, None).await.unwrap_err();
        let right = match reason {
            "missing" => matches!(&err, StoreError::GroupNotFound(g) if g.as_str() == "missing"),
            "cycle" => matches!(&err, StoreError::NestingCycle { .. }),
            _ => matches!(&err, StoreError::NestingTooDeep { .. }),
        };
        assert!(right, "{change:?}: {err:?}, not {reason}");
        let policy = expected
            .clone()
            .nesting_problem(change.group(), change.parent().unwrap());
        if reason != "missing" {
            assert!(policy.is_some(), "the model refuses {change:?} too");
        }
    }
    assert_eq!(s.load(&t).await.unwrap(), expected);

    // The same nesting again changes nothing; unnesting changes once.
    assert!(!write(s, "t", nest("g0", "g1")).await.changed);
    let unnest = Change::UnnestGroup {
        group: group("g0"),
        parent: group("g1"),
    };
    assert!(write(s, "t", unnest.clone()).await.changed);
    assert!(!write(s, "t", unnest.clone()).await.changed);
    let logged = s
        .changes_since(&t, expected.revision(), 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].change, unnest);
    changes.push(unnest);

    // Deleting a group takes its nestings, both ways, with it.
    let delete = Change::DeleteGroup { group: group("g3") };
    assert!(write(s, "t", delete.clone()).await.changed);
    changes.push(delete);
    let expected = model(&changes);
    let loaded = s.load(&t).await.unwrap();
    assert_eq!(loaded, expected);
    assert_eq!(loaded.nesting_count(), MAX_NESTING_DEPTH - 4);
    let replayed = s.changes_since(&t, 0, 100).await.unwrap().unwrap();
    let mut policy = TenantPolicy::default();
    for recorded in replayed {
        policy.advance(recorded.revision, &recorded.change).unwrap();
    }
    assert_eq!(policy, loaded);
}

pub async fn a_membership_end_is_written_changed_logged_and_loaded(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant("t");
    let until = |end: Option<i64>| Change::AssignUser {
        group: group("g"),
        user: UserName::parse("user", "alice").unwrap(),
        expires_at: end.map(UnixMillis),
    };
    let end = 1_798_761_600_123;
    let mut changes = vec![create("g"), until(Some(end))];
    for change in &changes {
        assert!(write(s, "t", change.clone()).await.changed);
    }
    // The same end again changes nothing; another end, or none, changes it.
    assert!(!write(s, "t", until(Some(end))).await.changed);
    for next in [Some(end + 1), None, Some(end)] {
        assert!(write(s, "t", until(next)).await.changed, "{next:?}");
        changes.push(until(next));
    }
    assert!(!write(s, "t", until(Some(end))).await.changed);
    let loaded = s.load(&t).await.unwrap();
    assert_eq!(loaded, model(&changes));
    assert_eq!(loaded.membership_end("alice", "g"), Some(UnixMillis(end)));
    let logged = s.changes_since(&t, 0, 10).await.unwrap().unwrap();
    let logged: Vec<Change> = logged.into_iter().map(|r| r.change).collect();
    assert_eq!(logged, changes);
    // Leaving the group forgets the end.
    assert!(write(s, "t", unassign("g", "alice")).await.changed);
    assert!(write(s, "t", until(None)).await.changed);
    assert_eq!(s.load(&t).await.unwrap().membership_end("alice", "g"), None);
}

pub async fn a_write_of_many_is_one_revision_all_or_nothing_and_replays_as_one(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant("t");
    let many = async |changes: &[Change], if_revision: Option<u64>| {
        s.write_many(&t, changes, if_revision, SERVER, Some("key:k"))
            .await
    };
    let first = vec![
        create("g"),
        add("g", "docs/*", "read"),
        assign("g", "alice"),
        create("g"),
        create("h"),
        Change::NestGroup {
            group: group("h"),
            parent: group("g"),
        },
    ];
    let written = many(&first, Some(0)).await.unwrap();
    assert_eq!(
        (written.changed, written.revision, written.results),
        (true, 1, vec![true, true, true, false, true, true])
    );
    let mut expected = TenantPolicy::default();
    expected
        .advance_all(1, [&first[0], &first[1], &first[2], &first[4], &first[5]])
        .unwrap();
    assert_eq!(s.load(&t).await.unwrap(), expected);

    // The changelog holds the changes that changed something, under the one revision, and
    // they replay as one step.
    let logged = s.changes_since(&t, 0, 10).await.unwrap().unwrap();
    assert_eq!(logged.len(), 5);
    assert!(
        logged
            .iter()
            .all(|r| r.revision == 1 && r.actor.as_deref() == Some("key:k"))
    );
    let mut replayed = TenantPolicy::default();
    replayed
        .advance_all(1, logged.iter().map(|r| &r.change))
        .unwrap();
    assert_eq!(replayed, expected);

    // A change that cannot be made refuses the whole write, naming its place.
    let mut refused = vec![create("x"); 29];
    refused.push(add("missing", "r", "a"));
    refused.push(create("y"));
    let err = many(&refused, None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InChange { index: 29, error }
            if matches!(**error, StoreError::GroupNotFound(ref g) if g.as_str() == "missing")),
        "{err:?}"
    );
    let cycle = [
        create("x"),
        Change::NestGroup {
            group: group("g"),
            parent: group("h"),
        },
    ];
    let err = many(&cycle, None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InChange { index: 1, error }
            if matches!(**error, StoreError::NestingCycle { .. })),
        "{err:?}"
    );
    // On another revision than asked: refused, nothing applied.
    let err = many(&[create("x")], Some(0)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::RevisionMismatch {
                expected: 0,
                current: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.load(&t).await.unwrap(), expected);
    assert_eq!(s.changes_since(&t, 0, 10).await.unwrap().unwrap().len(), 5);

    // Nothing to change: no revision, and a tenant never written stays unwritten.
    let unchanged = many(&[create("g"), unassign("g", "nobody")], None)
        .await
        .unwrap();
    assert_eq!((unchanged.changed, unchanged.revision), (false, 1));
    let ghost = s
        .write_many(&tenant("ghost"), &[unassign("g", "u")], None, SERVER, None)
        .await
        .unwrap();
    assert_eq!((ghost.changed, ghost.revision), (false, 0));
    assert!(revisions(s, &[tenant("ghost")]).await.is_empty());

    // Single writes go on after it, one revision each.
    assert_eq!(write(s, "t", create("z")).await.revision, 2);
    let after = s.changes_since(&t, 1, 10).await.unwrap().unwrap();
    assert_eq!(after.len(), 1);
}

pub async fn a_page_of_the_changelog_holds_whole_revisions_up_to_its_budget(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant("t");
    write(s, "t", create("g")).await;
    // Nine writes of a thousand members with long names: some 1.3 MiB of changes in all.
    for w in 0..9 {
        let changes: Vec<Change> = (0..1000)
            .map(|i| assign("g", &format!("{w}-{i:04}-{}", "u".repeat(100))))
            .collect();
        let written = s
            .write_many(&t, &changes, None, SERVER, None)
            .await
            .unwrap();
        assert_eq!(written.revision, w + 2);
    }
    let page = s.change_log(&t, 1, 100).await.unwrap();
    assert_eq!(page.revision, 10);
    let revisions: Vec<u64> = page
        .changes
        .chunk_by(|a, b| a.revision == b.revision)
        .map(|run| {
            assert_eq!(run.len(), 1000, "revision {} is whole", run[0].revision);
            run[0].revision
        })
        .collect();
    assert!(
        (1..9).contains(&revisions.len()),
        "a page of {} revisions",
        revisions.len()
    );
    assert!(page.continues(1));
    // The next page resumes after it, and the pages together hold every change once.
    let mut after = 1;
    let mut seen = 0;
    while after < 10 {
        let page = s.change_log(&t, after, 100).await.unwrap();
        seen += page.changes.len();
        after = page.changes.last().unwrap().revision;
    }
    assert_eq!(seen, 9000);
    // Too much to replay: the caller loads the tenant whole. Always at least one revision.
    assert!(s.changes_since(&t, 1, 1000).await.unwrap().is_none());
    assert_eq!(s.change_log(&t, 1, 1).await.unwrap().changes.len(), 1000);
}

/// What a write of many does by the model: the policy after `changes` and whether each
/// changed something, or the place of the first the store must refuse (a group missing, a
/// nesting refused).
fn model_write(
    policy: &TenantPolicy,
    changes: &[Change],
) -> Result<(TenantPolicy, Vec<bool>), usize> {
    let mut next = policy.clone();
    let mut results = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        let exists = |policy: &TenantPolicy, name: &GroupName| {
            policy.groups().iter().any(|g| g.name == name.as_str())
        };
        if change.requires_group() && !exists(&next, change.group()) {
            return Err(index);
        }
        if let Change::NestGroup { group, parent } = change
            && (!exists(&next, parent) || next.nesting_problem(group, parent).is_some())
        {
            return Err(index);
        }
        results.push(next.apply(change));
    }
    Ok((next, results))
}

pub async fn writes_of_many_do_what_the_model_does_change_by_change(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant("t");
    let mut dice: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut roll = |sides: usize| {
        dice = dice
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((dice >> 33) % sides as u64) as usize
    };
    let groups = ["g0", "g1", "g2", "g3"];
    let mut model = TenantPolicy::default();
    for round in 0..120 {
        let changes: Vec<Change> = (0..1 + roll(6))
            .map(|_| {
                let g = group(groups[roll(groups.len())]);
                let other = group(groups[roll(groups.len())]);
                let user = UserName::parse("user", ["u0", "u1"][roll(2)]).unwrap();
                match roll(9) {
                    0 | 1 => Change::CreateGroup { group: g },
                    2 => Change::DeleteGroup { group: g },
                    3 => add(g.as_str(), ["r", "d*"][roll(2)], "read"),
                    4 => remove(g.as_str(), "r", "read"),
                    5 => Change::AssignUser {
                        group: g,
                        user,
                        expires_at: [None, Some(UnixMillis(7))][roll(2)],
                    },
                    6 => Change::UnassignUser { group: g, user },
                    7 => Change::NestGroup {
                        group: g,
                        parent: other,
                    },
                    _ => Change::UnnestGroup {
                        group: g,
                        parent: other,
                    },
                }
            })
            .collect();
        let stored = s.write_many(&t, &changes, None, SERVER, None).await;
        match (model_write(&model, &changes), stored) {
            (Ok((next, results)), Ok(written)) => {
                assert_eq!(written.results, results, "round {round}: {changes:?}");
                assert_eq!(written.changed, results.contains(&true));
                if written.changed {
                    let made: Vec<&Change> = changes
                        .iter()
                        .zip(&results)
                        .filter_map(|(c, &changed)| changed.then_some(c))
                        .collect();
                    model.advance_all(model.revision() + 1, made).unwrap();
                    assert_eq!(model.groups(), next.groups());
                }
                assert_eq!(written.revision, model.revision());
            }
            (Err(index), Err(StoreError::InChange { index: at, .. })) => {
                assert_eq!(at, index, "round {round}: {changes:?}");
            }
            (model, stored) => {
                panic!("round {round}: {changes:?}: the model {model:?}, the store {stored:?}")
            }
        }
    }
    assert_eq!(s.load(&t).await.unwrap(), model);
    // And the changelog replays to it, revision by revision.
    let mut replayed = TenantPolicy::default();
    let log = s.changes_since(&t, 0, 1000).await.unwrap().unwrap();
    for revision in log.chunk_by(|a, b| a.revision == b.revision) {
        replayed
            .advance_all(revision[0].revision, revision.iter().map(|r| &r.change))
            .unwrap();
    }
    assert_eq!(replayed, model);
}
