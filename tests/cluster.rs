//! Several real instances on one PostgreSQL and one Redis: propagation of grants and
//! revocations, own messages, read-your-writes across instances, and restarts.

mod common;

use std::time::Duration;

use common::{Cluster, PROPAGATION, assert_converged, assert_everywhere, eventually, store_truth};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn the_seed_scenario_is_allowed_on_all_three_instances() {
    let cluster = Cluster::start(3).await;
    // Every instance caches the tenant before the writes, so the grants must arrive by bus.
    for instance in &cluster.instances {
        assert!(!instance.check("acme", "alice", "doc1", "read").await);
    }
    cluster[0].create_group("acme", "editors").await;
    cluster[1]
        .add_permission("acme", "editors", "doc1", "read")
        .await;
    cluster[2].assign_user("acme", "alice", "editors").await;
    assert_everywhere(&cluster, ("acme", "alice", "doc1", "read"), true).await;
    for instance in &cluster.instances {
        assert!(!instance.check("acme", "alice", "doc1", "write").await);
        assert!(!instance.check("acme", "bob", "doc1", "read").await);
        assert!(!instance.check("other", "alice", "doc1", "read").await);
    }
}

#[tokio::test]
async fn every_revocation_stops_access_on_the_other_instances() {
    let cluster = Cluster::start(3).await;
    let access = ("acme", "alice", "reports/q3", "read");
    let setup = |i: usize| {
        let instance = &cluster[i];
        async move {
            instance.create_group("acme", "analysts").await;
            instance
                .add_permission("acme", "analysts", "reports/*", "read")
                .await;
            instance.assign_user("acme", "alice", "analysts").await;
        }
    };

    // Revocation 1: remove the permission.
    setup(0).await;
    assert_everywhere(&cluster, access, true).await;
    let body = cluster[0]
        .remove_permission("acme", "analysts", "reports/*", "read")
        .await;
    assert_eq!(body["changed"], true);
    assert_everywhere(&cluster, access, false).await;

    // Revocation 2: unassign the user, written on another instance.
    setup(1).await;
    assert_everywhere(&cluster, access, true).await;
    cluster[1].unassign_user("acme", "alice", "analysts").await;
    assert_everywhere(&cluster, access, false).await;

    // Revocation 3: delete the group.
    setup(2).await;
    assert_everywhere(&cluster, access, true).await;
    cluster[2].delete_group("acme", "analysts").await;
    assert_everywhere(&cluster, access, false).await;
    for instance in &cluster.instances {
        assert_eq!(instance.groups("acme").await["groups"], json!([]));
    }
}

#[tokio::test]
async fn access_through_nested_groups_comes_and_goes_on_every_instance() {
    let cluster = Cluster::start(3).await;
    let access = ("acme", "alice", "wiki/home", "read");
    let (a, b, c) = (&cluster[0], &cluster[1], &cluster[2]);
    for group in ["db", "backend", "engineering"] {
        a.create_group("acme", group).await;
    }
    a.add_permission("acme", "engineering", "wiki/*", "read")
        .await;
    a.assign_user("acme", "alice", "db").await;
    assert_everywhere(&cluster, access, false).await;

    // Nested on two instances, it reaches every one.
    b.nest_group("acme", "db", "backend").await;
    c.nest_group("acme", "backend", "engineering").await;
    assert_everywhere(&cluster, access, true).await;
    let revision = a.revision("acme").await.to_string();
    for instance in &cluster.instances {
        let query = [
            ("tenant", "acme"),
            ("user", "alice"),
            ("resource", "wiki/home"),
            ("action", "read"),
            ("explain", "true"),
            ("min_revision", revision.as_str()),
        ];
        let (_, body) = instance.get("/check-access", &query).await;
        assert_eq!(
            body["because"],
            json!([{"group": "engineering", "resource": "wiki/*", "action": "read",
                    "through": ["db", "backend", "engineering"]}]),
            "{}",
            instance.server_id
        );
        let (_, body) = instance
            .get(
                "/who-can",
                &[
                    ("tenant", "acme"),
                    ("resource", "wiki/home"),
                    ("action", "read"),
                ],
            )
            .await;
        assert_eq!(body["users"], json!(["alice"]));
        let (_, body) = instance
            .get(
                "/user-permissions",
                &[("tenant", "acme"), ("user", "alice")],
            )
            .await;
        assert_eq!(body["groups"], json!(["backend", "db", "engineering"]));
        assert_eq!(body["inherited_groups"], json!(["backend", "engineering"]));
        let (_, body) = instance
            .get(
                "/group-parents",
                &[("tenant", "acme"), ("group", "backend")],
            )
            .await;
        assert_eq!(body["parents"], json!(["engineering"]));
        let (_, body) = instance
            .get(
                "/group-children",
                &[("tenant", "acme"), ("group", "backend")],
            )
            .await;
        assert_eq!(body["children"], json!(["db"]));
    }

    // Unnesting revokes everywhere.
    let body = a.unnest_group("acme", "backend", "engineering").await;
    assert_eq!(body["changed"], true);
    assert_everywhere(&cluster, access, false).await;

    // So does deleting a group in the middle of the chain.
    c.nest_group("acme", "backend", "engineering").await;
    assert_everywhere(&cluster, access, true).await;
    b.delete_group("acme", "backend").await;
    assert_everywhere(&cluster, access, false).await;
    let (status, body) = a
        .get(
            "/group-children",
            &[("tenant", "acme"), ("group", "engineering")],
        )
        .await;
    assert_eq!((status.as_u16(), &body["children"]), (200, &json!([])));
}

#[tokio::test]
async fn a_membership_that_ends_is_denied_everywhere_from_its_instant_with_no_write() {
    let cluster = Cluster::start(3).await;
    let access = ("acme", "alice", "wiki/home", "read");
    let node = &cluster[0];
    node.create_group("acme", "oncall").await;
    node.add_permission("acme", "oncall", "wiki/*", "read")
        .await;
    // Far enough ahead for every instance to hear of the assignment first.
    let ends = time::OffsetDateTime::now_utc() + Duration::from_millis(1500);
    let ends = ends.replace_millisecond(ends.millisecond()).unwrap();
    let stamp = shown(ends);
    let (status, body) = node
        .post(
            "/assign-user",
            json!({"tenant": "acme", "user": "alice", "group": "oncall", "expires_at": stamp}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revision = body["revision"].as_u64().unwrap();
    assert_everywhere(&cluster, access, true).await;
    assert!(
        time::OffsetDateTime::now_utc() < ends,
        "the setup took too long"
    );

    // Every instance denies within 200 ms of the end, by its own clock.
    let deadline = ends + Duration::from_millis(200);
    let mut denied = vec![false; cluster.instances.len()];
    while time::OffsetDateTime::now_utc() < deadline + Duration::from_millis(300) {
        for (i, instance) in cluster.instances.iter().enumerate() {
            let asked = time::OffsetDateTime::now_utc();
            let allowed = instance.check(access.0, access.1, access.2, access.3).await;
            if allowed {
                assert!(
                    asked < deadline,
                    "{} still allows at {asked}, past {deadline}",
                    instance.server_id
                );
            } else {
                assert!(
                    asked >= ends - Duration::from_millis(50),
                    "denied before the end"
                );
                denied[i] = true;
            }
        }
        if denied.iter().all(|d| *d) && time::OffsetDateTime::now_utc() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(denied.iter().all(|d| *d), "{denied:?}");

    // No write was made for it; the membership is listed as ended until it is removed.
    for instance in &cluster.instances {
        assert_eq!(instance.revision("acme").await, revision);
        let (_, body) = instance
            .get("/group-members", &[("tenant", "acme"), ("group", "oncall")])
            .await;
        assert_eq!(body["members"], json!(["alice"]));
        assert_eq!(
            body["expiring"],
            json!([{"user": "alice", "expires_at": stamp, "expired": true}])
        );
    }
    let (_, changes) = node
        .get("/changes", &[("tenant", "acme"), ("after", "2")])
        .await;
    assert_eq!(changes["changes"][0]["expires_at"], json!(stamp));

    // Assigning again without an end gives the access back, everywhere.
    node.assign_user("acme", "alice", "oncall").await;
    assert_everywhere(&cluster, access, true).await;
}

/// A time as the API shows it: RFC 3339 in UTC, to the millisecond.
fn shown(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[tokio::test]
async fn a_write_of_a_thousand_changes_is_one_revision_on_every_instance() {
    let mut cluster = Cluster::start(3).await;
    let node = &cluster[0];
    node.create_group("acme", "before").await;
    // Loaded everywhere first, so that the others must apply the write as a change.
    let mut replays = Vec::new();
    for instance in &cluster.instances {
        assert_eq!(instance.revision("acme").await, 1);
        replays.push(
            instance.cache_stats().await["incremental_refreshes"]
                .as_u64()
                .unwrap(),
        );
    }
    let mut changes = vec![json!({"op": "create-group", "group": "bulk"})];
    changes.extend((0..500).map(|i| {
        json!({"op": "add-permission", "group": "bulk", "resource": format!("docs/{i}"), "action": "read"})
    }));
    changes
        .extend((0..499).map(
            |i| json!({"op": "assign-user", "group": "bulk", "user": format!("user-{i:03}")}),
        ));
    assert_eq!(changes.len(), 1000);
    let (status, body) = node
        .post(
            "/write",
            json!({"tenant": "acme", "changes": changes, "if_revision": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["changed"].as_bool(), body["revision"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(body["results"].as_array().unwrap().len(), 1000);

    assert_everywhere(&cluster, ("acme", "user-042", "docs/7", "read"), true).await;
    // The others replayed the thousand changes from the changelog as one step.
    for (instance, before) in cluster.instances.iter().zip(&replays).skip(1) {
        let after = instance.cache_stats().await["incremental_refreshes"]
            .as_u64()
            .unwrap();
        assert_eq!(after, before + 1, "{}", instance.server_id);
    }
    let truth = store_truth(&mut cluster, "acme").await;
    assert_converged(&cluster, "acme", &truth, PROPAGATION).await;
    for instance in &cluster.instances {
        assert_eq!(instance.revision("acme").await, 2, "{}", instance.server_id);
        // Every change under the one revision, in the order written.
        let (_, log) = instance
            .get("/changes", &[("tenant", "acme"), ("after", "1")])
            .await;
        let logged = log["changes"].as_array().unwrap();
        assert_eq!(logged.len(), 1000);
        assert!(logged.iter().all(|c| c["revision"] == 2));
        assert_eq!(logged[1]["resource"], "docs/0");
        assert_eq!(logged[999]["user"], "user-498");
        assert_eq!(log["next_after"], Value::Null);
    }

    // One whose 30th change names a missing group changes nothing, anywhere.
    let mut refused: Vec<Value> = (0..29)
        .map(|i| json!({"op": "assign-user", "group": "bulk", "user": format!("late-{i}")}))
        .collect();
    refused.push(json!({"op": "assign-user", "group": "missing", "user": "late-29"}));
    let (status, body) = cluster[1]
        .post("/write", json!({"tenant": "acme", "changes": refused}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(store_truth(&mut cluster, "acme").await, truth);
    for instance in &cluster.instances {
        assert_eq!(instance.revision("acme").await, 2);
        assert!(!instance.check("acme", "late-0", "docs/7", "read").await);
    }
}

#[tokio::test]
async fn a_tenant_exports_whole_as_one_document_at_one_revision() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    let mut changes = vec![
        json!({"op": "create-group", "group": "staff"}),
        json!({"op": "create-group", "group": "editors"}),
        json!({"op": "add-permission", "group": "staff", "resource": "wiki/*", "action": "read"}),
        json!({"op": "add-permission", "group": "editors", "resource": "docs/*", "action": "*"}),
        json!({"op": "nest-group", "group": "editors", "parent": "staff"}),
        json!({"op": "assign-user", "group": "editors", "user": "bob",
               "expires_at": "2031-01-01T00:00:00Z"}),
    ];
    // Enough members for the body to come in many pieces.
    changes.extend(
        (0..999).map(
            |i| json!({"op": "assign-user", "group": "staff", "user": format!("member-{i:04}")}),
        ),
    );
    changes.truncate(1000);
    let (status, body) = a
        .post("/write", json!({"tenant": "acme", "changes": changes}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revision = body["revision"].as_u64().unwrap().to_string();

    let (status, document) = b
        .get(
            "/tenant-policy",
            &[("tenant", "acme"), ("min_revision", &revision)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{document}");
    assert_eq!(document["tenant"], "acme");
    assert_eq!(document["revision"].as_u64().unwrap().to_string(), revision);
    let groups = document["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0],
        json!({"name": "editors",
               "permissions": [{"resource": "docs/*", "action": "*"}],
               "members": [{"user": "bob", "expires_at": "2031-01-01T00:00:00.000Z"}],
               "parents": ["staff"]})
    );
    assert_eq!(groups[1]["name"], "staff");
    assert_eq!(
        groups[1]["permissions"],
        json!([{"resource": "wiki/*", "action": "read"}])
    );
    assert_eq!(groups[1]["parents"], json!([]));
    let members: Vec<&str> = groups[1]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 994);
    assert!(members.windows(2).all(|w| w[0] < w[1]));
    // The same members as the listing, page by page, at the same revision.
    let (_, page) = b
        .get(
            "/group-members",
            &[("tenant", "acme"), ("group", "staff"), ("limit", "1000")],
        )
        .await;
    assert_eq!(page["revision"].as_u64().unwrap().to_string(), revision);
    let listed: Vec<&str> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(members, listed);

    // A tenant never written is an empty document.
    let (status, empty) = b.get("/tenant-policy", &[("tenant", "nobody")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        empty,
        json!({"tenant": "nobody", "revision": 0, "groups": []})
    );
}

#[tokio::test]
async fn own_messages_are_ignored_and_counted() {
    let cluster = Cluster::start(2).await;
    cluster[0].create_group("acme", "g").await;
    // The writer holds the tenant before the writes that follow.
    cluster[0].check("acme", "alice", "doc", "read").await;
    cluster[0].add_permission("acme", "g", "doc", "read").await;
    cluster[0].assign_user("acme", "alice", "g").await;
    cluster[0].add_permission("acme", "g", "doc", "write").await;
    assert_everywhere(&cluster, ("acme", "alice", "doc", "read"), true).await;

    let writer = &cluster[0];
    let took = eventually(PROPAGATION, || async {
        writer.cache_stats().await["own_messages_ignored"] == 4
    })
    .await;
    let stats = writer.cache_stats().await;
    assert!(
        took.is_some(),
        "writer did not see its own 4 messages: {stats}"
    );
    assert_eq!(stats["messages_published"], 4, "{stats}");
    // Its own messages never made it reload: its cache followed its writes directly.
    assert_eq!(stats["full_reloads"], 0, "{stats}");
    assert_eq!(stats["incremental_refreshes"], 0, "{stats}");
    assert_eq!(stats["writes_applied"], 3, "{stats}");
    assert_eq!(stats["largest_tenants"][0]["revision"], 4, "{stats}");

    let peer = cluster[1].cache_stats().await;
    assert_eq!(peer["own_messages_ignored"], 0, "{peer}");
    assert!(peer["messages_received"].as_u64().unwrap() >= 4, "{peer}");
    assert_eq!(peer["largest_tenants"][0]["revision"], 4, "{peer}");
}

#[tokio::test]
async fn instances_sharing_a_server_id_still_hear_each_other_and_health_says_so() {
    let cluster = Cluster::start_with(2, &[("SERVER_ID", "shared")]).await;
    let (writer, peer) = (&cluster[0], &cluster[1]);
    assert_eq!(peer.health().await["server_id_shared"], false);
    writer.create_group("acme", "g").await;
    // The peer holds the tenant, so only a message can bring it the changes that follow
    // (the sweep runs every 30 s, past PROPAGATION).
    assert!(!peer.check("acme", "alice", "doc", "read").await);
    writer.add_permission("acme", "g", "doc", "read").await;
    writer.assign_user("acme", "alice", "g").await;
    assert_everywhere(&cluster, ("acme", "alice", "doc", "read"), true).await;

    let health = peer.health().await;
    assert_eq!(health["server_id"], "shared", "{health}");
    assert_eq!(health["server_id_shared"], true, "{health}");
    let stats = peer.cache_stats().await;
    assert!(stats["server_id_clashes"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["own_messages_ignored"], 0, "{stats}");
    // The writer took its own messages for its own, not for a clash.
    let took = eventually(PROPAGATION, || async {
        writer.cache_stats().await["own_messages_ignored"] == 3
    })
    .await;
    assert!(took.is_some(), "{}", writer.cache_stats().await);
    assert_eq!(writer.cache_stats().await["server_id_clashes"], 0);
    assert!(
        peer.logs()
            .iter()
            .any(|line| line.contains("publishes with this instance's SERVER_ID")),
        "no log line about the shared SERVER_ID"
    );
}

#[tokio::test]
async fn min_revision_gives_read_your_writes_across_instances() {
    // No Redis: the only way instance 1 can know about the write is min_revision.
    let cluster = Cluster::without_bus(2, &[]).await;
    let reader = &cluster[1];
    assert!(!reader.check("acme", "alice", "doc", "read").await);

    cluster[0].create_group("acme", "g").await;
    cluster[0].add_permission("acme", "g", "doc", "read").await;
    let body = cluster[0].assign_user("acme", "alice", "g").await;
    let revision = body["revision"].as_u64().unwrap();
    assert_eq!(revision, 3);

    // Without min_revision the reader may answer from its cache, at revision 0.
    let stale = reader.check_body("acme", "alice", "doc", "read").await;
    assert_eq!(stale, json!({"allowed": false, "revision": 0}));

    let (status, body) = reader
        .post(
            "/check-access",
            json!({"tenant": "acme", "user": "alice", "resource": "doc", "action": "read",
                   "min_revision": revision}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"allowed": true, "revision": 3}));

    let rev = revision.to_string();
    let (status, body) = reader
        .get(
            "/check-access",
            &[
                ("tenant", "acme"),
                ("user", "alice"),
                ("resource", "doc"),
                ("action", "read"),
                ("min_revision", rev.as_str()),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"allowed": true, "revision": 3}))
    );

    // A revision the store has not reached is a conflict, not a wait.
    let (status, body) = reader
        .post(
            "/check-access",
            json!({"tenant": "acme", "user": "alice", "resource": "doc", "action": "read",
                   "min_revision": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "revision_not_reached");

    let (status, body) = reader
        .get("/groups", &[("tenant", "acme"), ("min_revision", "3")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revision"], 3);
}

#[tokio::test]
async fn state_survives_a_restart_of_all_instances() {
    let mut cluster = Cluster::start(3).await;
    cluster[0].create_group("acme", "g").await;
    cluster[1].add_permission("acme", "g", "docs/*", "*").await;
    cluster[2].assign_user("acme", "alice", "g").await;
    cluster[0].create_group("globex", "h").await;
    let before = cluster[0].groups("acme").await;

    cluster.restart_all().await;
    for instance in &cluster.instances {
        assert!(instance.check("acme", "alice", "docs/a", "delete").await);
        assert!(!instance.check("acme", "alice", "doc", "read").await);
        assert_eq!(instance.groups("acme").await, before);
        assert_eq!(instance.revision("globex").await, 1);
    }
    // Revisions continue from where they were.
    let body = cluster[1].create_group("acme", "g2").await;
    assert_eq!(body["revision"], 4);
}

#[tokio::test]
async fn revisions_count_changing_writes_only() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    let (status, body) = node
        .post("/create-group", json!({"tenant": "t", "group": "g"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body,
        json!({"success": true, "created": true, "revision": 1, "message": "Group 'g' is ready to use"})
    );
    let (status, body) = node
        .post("/create-group", json!({"tenant": "t", "group": "g"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["created"], false);
    assert_eq!(body["revision"], 1);

    // The bodies as they come over the wire, `success` included.
    let write = async |path: &str, body: Value| {
        let (status, answer) = node.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        answer
    };
    let permission =
        |action: &str| json!({"tenant": "t", "group": "g", "resource": "r", "action": action});
    let added = write("/add-permission", permission("a")).await;
    assert_eq!(
        added,
        json!({"success": true, "changed": true, "revision": 2})
    );
    let again = write("/add-permission", permission("a")).await;
    assert_eq!(
        again,
        json!({"success": true, "changed": false, "revision": 2})
    );
    let missing = write("/remove-permission", permission("other")).await;
    assert_eq!(
        missing,
        json!({"success": true, "changed": false, "revision": 2})
    );
    let nobody = node.unassign_user("t", "nobody", "g").await;
    assert_eq!(nobody["changed"], false);
    let no_group = node.delete_group("t", "nope").await;
    assert_eq!(no_group["changed"], false);
    // A tenant never written is at revision 0, and a no-op write does not create it.
    let untouched = write(
        "/unassign-user",
        json!({"tenant": "fresh", "user": "u", "group": "g"}),
    )
    .await;
    assert_eq!(
        untouched,
        json!({"success": true, "changed": false, "revision": 0})
    );
    assert_eq!(node.revision("fresh").await, 0);

    let (status, body) = node.post("/refresh-tenant", json!({"tenant": "t"})).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"success": true, "revision": 2}))
    );
}

#[tokio::test]
async fn listings_show_groups_permissions_and_members_sorted() {
    let cluster = Cluster::start(2).await;
    let node = &cluster[0];
    node.create_group("t", "writers").await;
    node.create_group("t", "readers").await;
    node.add_permission("t", "readers", "docs/*", "read").await;
    node.add_permission("t", "writers", "docs/*", "write").await;
    node.add_permission("t", "writers", "docs/*", "read").await;
    node.assign_user("t", "zoe", "readers").await;
    node.assign_user("t", "adam", "readers").await;
    node.assign_user("t", "adam", "writers").await;
    let expected = json!({
        "tenant": "t",
        "revision": 8,
        "groups": [
            {"name": "readers", "permissions": [{"resource": "docs/*", "action": "read"}],
             "members": ["adam", "zoe"]},
            {"name": "writers", "permissions": [{"resource": "docs/*", "action": "read"},
                                                 {"resource": "docs/*", "action": "write"}],
             "members": ["adam"]},
        ]
    });
    assert_eq!(node.groups("t").await, expected);
    // The other instance loads the same from the store.
    assert_eq!(cluster[1].groups("t").await, expected);

    let (status, body) = cluster[1]
        .get("/user-permissions", &[("tenant", "t"), ("user", "adam")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "tenant": "t", "user": "adam", "revision": 8,
            "groups": ["readers", "writers"],
            "inherited_groups": [],
            "expiring": [],
            "permissions": [
                {"resource": "docs/*", "action": "read", "group": "readers"},
                {"resource": "docs/*", "action": "read", "group": "writers"},
                {"resource": "docs/*", "action": "write", "group": "writers"},
            ],
            "next_cursor": null
        })
    );
}

#[tokio::test]
async fn health_and_cache_stats_describe_the_instance() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    let health = node.health().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["server_id"], node.server_id.as_str());
    assert_eq!(health["database"], "ok");
    let connected = eventually(PROPAGATION, || async {
        node.health().await["redis"] == "connected"
    })
    .await;
    assert!(connected.is_some(), "{}", node.health().await);

    node.create_group("t", "g").await;
    node.add_permission("t", "g", "a", "b").await;
    node.assign_user("t", "u", "g").await;
    // The first read loads the tenant (a miss), the second is a hit.
    assert!(node.check("t", "u", "a", "b").await);
    assert!(!node.check("t", "u", "a", "c").await);
    // A tenant nobody wrote is answered without being held.
    assert!(!node.check("nobody", "u", "a", "b").await);
    let stats = node.cache_stats().await;
    assert_eq!(stats["server_id"], node.server_id.as_str());
    assert_eq!(stats["redis"], "connected");
    assert_eq!(stats["tenants_cached"], 1);
    assert_eq!(stats["tenants_known"], 1);
    assert_eq!(stats["misses"], 1, "{stats}");
    assert_eq!(stats["hits"], 1, "{stats}");
    assert_eq!(stats["loads"], 1, "{stats}");
    assert_eq!(stats["unknown_tenant_reads"], 1, "{stats}");
    let largest = stats["largest_tenants"].as_array().unwrap();
    assert_eq!(largest.len(), 1, "{stats}");
    let tenant = &largest[0];
    assert_eq!(tenant["tenant"], "t");
    assert_eq!(tenant["revision"], 3);
    assert_eq!(tenant["groups"], 1);
    assert_eq!(tenant["permissions"], 1);
    assert_eq!(tenant["assignments"], 1);
    assert!(
        tenant["loaded_at"].as_str().unwrap().contains('T'),
        "{tenant}"
    );
    // Everything held counts, and fits the default budget (half the machine's memory).
    let bytes = stats["cache_bytes"].as_u64().unwrap();
    assert_eq!(tenant["estimated_bytes"].as_u64(), Some(bytes), "{stats}");
    assert!(bytes > 0 && bytes < stats["cache_budget_bytes"].as_u64().unwrap());
    assert_eq!(stats["tenant"], Value::Null, "{stats}");

    let (status, asked) = node.get("/cache-stats", &[("tenant", "t")]).await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(&asked["tenant"], tenant, "{asked}");
    let (status, asked) = node.get("/cache-stats", &[("tenant", "nobody")]).await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(asked["tenant"], Value::Null, "{asked}");
    let (status, refused) = node.get("/cache-stats", &[("tenant", "")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, refused) = node.get("/cache-stats", &[("tenants", "t")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}

#[tokio::test]
async fn concurrent_writers_on_three_instances_converge_to_the_store() {
    const TASKS: usize = 8;
    const WRITES: usize = 50;
    let mut cluster = Cluster::start(3).await;
    let groups = ["a", "b", "c"];
    for group in groups {
        cluster[0].create_group("t", group).await;
    }
    let base = cluster[0].revision("t").await;

    let mut workers = Vec::new();
    for i in 0..3 {
        for task in 0..TASKS {
            let base = cluster[i].base.clone();
            let client = cluster[i].client.clone();
            workers.push(tokio::spawn(async move {
                let mut changed = 0u64;
                for n in 0..WRITES {
                    // A deterministic mix of every write, over few enough names to collide.
                    let k = i * 7919 + task * 104_729 + n * 31;
                    let group = ["a", "b", "c"][k % 3];
                    let user = format!("u{}", k % 5);
                    let resource = format!("r{}", k % 4);
                    let (path, body) = match k % 6 {
                        0 | 1 => ("/assign-user", json!({"tenant": "t", "user": user, "group": group})),
                        2 => ("/unassign-user", json!({"tenant": "t", "user": user, "group": group})),
                        3 | 4 => ("/add-permission", json!({"tenant": "t", "group": group, "resource": resource, "action": "read"})),
                        _ => ("/remove-permission", json!({"tenant": "t", "group": group, "resource": resource, "action": "read"})),
                    };
                    let response = client.post(format!("{base}{path}")).json(&body).send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    let body: Value = response.json().await.unwrap();
                    if body["changed"] == true {
                        changed += 1;
                    }
                }
                changed
            }));
        }
    }
    let mut changed = 0;
    for worker in workers {
        changed += worker.await.unwrap();
    }
    assert!(changed > 0);

    let truth = store_truth(&mut cluster, "t").await;
    assert_eq!(
        truth["revision"].as_u64().unwrap(),
        base + changed,
        "revisions are gapless"
    );
    assert_converged(&cluster, "t", &truth, PROPAGATION).await;
}

#[tokio::test]
async fn tokens_rotate_without_downtime() {
    let cluster = Cluster::start_with(
        1,
        &[
            ("ADMIN_TOKEN", "admin-new,admin-old"),
            ("CHECK_TOKEN", "check-new,check-old"),
        ],
    )
    .await;
    let node = &cluster[0];
    let write = |token: Option<&'static str>, group: &'static str| {
        let mut request = node
            .client
            .post(node.url("/create-group"))
            .json(&json!({"tenant": "t", "group": group}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status() }
    };
    let read = |token: Option<&'static str>| {
        let mut request = node
            .client
            .get(node.url("/groups"))
            .query(&[("tenant", "t")]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(write(Some("admin-new"), "a").await, StatusCode::CREATED);
    assert_eq!(write(Some("admin-old"), "b").await, StatusCode::CREATED);
    assert_eq!(write(Some("check-new"), "c").await, StatusCode::FORBIDDEN);
    assert_eq!(
        write(Some("admin-new,admin-old"), "d").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(write(None, "e").await, StatusCode::UNAUTHORIZED);
    for token in ["check-new", "check-old", "admin-new", "admin-old"] {
        assert_eq!(read(Some(token)).await, StatusCode::OK, "{token}");
    }
    assert_eq!(read(Some("check")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(read(None).await, StatusCode::UNAUTHORIZED);
    let groups = node.groups("t").await;
    assert_eq!(
        groups["revision"], 2,
        "only the two authorized writes happened: {groups}"
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_requests_by_route_and_the_counters() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    let connected = eventually(PROPAGATION, || async {
        node.health().await["redis"] == "connected"
    })
    .await;
    assert!(connected.is_some());
    node.create_group("t", "g").await;
    node.add_permission("t", "g", "doc", "read").await;
    node.assign_user("t", "u", "g").await;
    for _ in 0..3 {
        assert!(node.check("t", "u", "doc", "read").await);
    }
    let (status, _) = node.get("/no-such-route", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The publish counter moves once Redis has acknowledged, which may be after the write's
    // answer: wait for it (through /cache-stats, whose requests no assertion below counts).
    let published = eventually(PROPAGATION, || async {
        node.cache_stats().await["messages_published"] == 3
    })
    .await;
    assert!(published.is_some(), "{}", node.cache_stats().await);

    let response = node.client.get(node.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    let sample = |metric: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| s.value.clone())
    };
    let counter = |metric: &str, labels: &[(&str, &str)]| match sample(metric, labels) {
        Some(prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v)) => v,
        other => panic!("{metric} {labels:?}: {other:?}\n{text}"),
    };
    let checks = [("route", "/check-access"), ("status", "200")];
    assert_eq!(
        counter("rbac_http_request_duration_seconds_count", &checks),
        3.0
    );
    match sample("rbac_http_request_duration_seconds", &checks) {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            assert!(buckets.len() > 5, "{buckets:?}");
            assert_eq!(buckets.last().unwrap().count, 3.0, "{buckets:?}");
        }
        other => panic!("no latency histogram: {other:?}\n{text}"),
    }
    assert_eq!(
        counter(
            "rbac_http_request_duration_seconds_count",
            &[("route", "/create-group"), ("status", "201")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            "rbac_http_request_duration_seconds_count",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(counter("rbac_loads_total", &[]), 1.0);
    assert!(counter("rbac_hits_total", &[]) >= 2.0);
    assert_eq!(counter("rbac_messages_published_total", &[]), 3.0);
    assert_eq!(counter("rbac_publish_failures_total", &[]), 0.0);
    match sample("rbac_bus_connected", &[]) {
        Some(prometheus_parse::Value::Gauge(v)) => assert_eq!(v, 1.0),
        other => panic!("rbac_bus_connected: {other:?}"),
    }
}

#[tokio::test]
async fn instances_started_together_on_a_new_database_all_come_up() {
    // Each migrates the new database at start; the migrations of one must not make another
    // fail (a concurrent index build once deadlocked with the others' wait for their turn).
    let database_url = common::fresh_database().await;
    let starting = (1..=3).map(|n| {
        let env = vec![
            ("DATABASE_URL".to_owned(), database_url.clone()),
            ("SERVER_ID".to_owned(), format!("together-{n}")),
        ];
        async move { common::Instance::spawn(&env).await }
    });
    let instances = futures_util::future::join_all(starting).await;
    for instance in &instances {
        assert_eq!(instance.health().await["database"], "ok");
    }
    for (n, instance) in instances.iter().enumerate() {
        let created = instance.create_group("t", &format!("g{n}")).await;
        assert_eq!(created["revision"], n + 1, "{created}");
    }
}
