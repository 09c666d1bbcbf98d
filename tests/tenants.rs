//! Any number of tenants on an instance: names that were never written cost nothing lasting,
//! the tenants held fit a memory budget, and eviction never makes an answer wrong or stale.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, Instance, eventually};
use futures_util::{StreamExt, stream};
use rbac_server::policy::{
    Action, Change, GroupName, Permission, Resource, TenantPolicy, UnixMillis, UserName,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The metric series of a /metrics page: every sample's name and labels, without its value.
fn series(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

/// The shape of a JSON value: its keys and the lengths of its arrays, not its numbers.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(fields) => fields
            .iter()
            .map(|(key, value)| (key.clone(), shape(value)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        _ => Value::Null,
    }
}

/// Sends `count` requests made by `request`, 32 at a time; returns the statuses seen.
async fn flood(
    node: &Instance,
    count: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> BTreeSet<u16> {
    let statuses: Vec<u16> = stream::iter(0..count)
        .map(|n| {
            let sent = request(n).send();
            async move { sent.await.expect("the server answers").status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let _ = node;
    statuses.into_iter().collect()
}

#[tokio::test]
async fn a_flood_of_made_up_tenant_names_leaves_nothing_behind() {
    const NAMES: usize = 20_000;
    // Sweeping every second, so that the metric series of a sweep exist before the first
    // measurement; and so that sweeps go on under the flood, finding nothing.
    let cluster = Cluster::without_bus(1, &[("RESYNC_INTERVAL_SECS", "1")]).await;
    let node = &cluster[0];
    let swept = eventually(Duration::from_secs(5), || async {
        node.cache_stats().await["sweeps"].as_u64() >= Some(1)
    })
    .await;
    assert!(swept.is_some(), "{}", node.cache_stats().await);
    node.create_group("real", "g").await;
    node.add_permission("real", "g", "doc", "read").await;
    node.assign_user("real", "alice", "g").await;
    // Warm up on the real tenant: connections, buffers and the request histograms exist
    // before the first measurement, so that what follows measures the names alone.
    let check = |tenant: &str| {
        node.client
            .get(node.url("/check-access"))
            .query(&[("tenant", tenant), ("user", "alice")])
            .query(&[("resource", "doc"), ("action", "read")])
    };
    assert_eq!(
        flood(node, 2_000, |_| check("real")).await,
        BTreeSet::from([200])
    );
    for (path, query, expected) in [
        (
            "/groups",
            [("tenant", "real"), ("min_revision", "0")],
            StatusCode::OK,
        ),
        (
            "/user-permissions",
            [("tenant", "real"), ("user", "alice")],
            StatusCode::OK,
        ),
        (
            "/group-members",
            [("tenant", "real"), ("group", "g")],
            StatusCode::OK,
        ),
        (
            "/group-members",
            [("tenant", "real"), ("group", "none")],
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, body) = node.get(path, &query).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    node.metrics().await;
    node.cache_stats().await;
    let rss_before = node.rss_bytes();
    let metrics_before = series(&node.metrics().await);
    let stats_before = node.cache_stats().await;

    // Checks, listings and min_revision=0 reads, each naming a tenant nobody wrote.
    let statuses = flood(node, NAMES, |n| {
        let tenant = format!("made-up-{n}-{}", "x".repeat(n % 200));
        match n % 5 {
            0 => node
                .client
                .get(node.url("/groups"))
                .query(&[("tenant", tenant.as_str()), ("min_revision", "0")]),
            1 => node
                .client
                .get(node.url("/user-permissions"))
                .query(&[("tenant", tenant.as_str()), ("user", "alice")]),
            2 => node
                .client
                .get(node.url("/group-members"))
                .query(&[("tenant", tenant.as_str()), ("group", "g")]),
            _ => check(&tenant),
        }
    })
    .await;
    // Group pages of a tenant with no groups are 404; everything else is answered.
    assert_eq!(statuses, BTreeSet::from([200, 404]));

    let rss_after = node.rss_bytes();
    let stats = node.cache_stats().await;
    assert_eq!(stats["tenants_cached"], 1, "{stats}");
    assert_eq!(stats["tenants_known"], 1, "{stats}");
    assert_eq!(stats["loads"], 1, "{stats}");
    assert_eq!(
        stats["tenant_lookups"], 0,
        "no store query for them: {stats}"
    );
    let unknown = stats["unknown_tenant_reads"].as_u64().unwrap()
        - stats_before["unknown_tenant_reads"].as_u64().unwrap();
    assert_eq!(unknown, NAMES as u64, "{stats}");
    assert_eq!(shape(&stats), shape(&stats_before));
    let metrics_after = series(&node.metrics().await);
    let new_series: Vec<_> = metrics_after.difference(&metrics_before).collect();
    assert!(new_series.is_empty(), "new series: {new_series:?}");
    assert_eq!(metrics_after.len(), metrics_before.len());
    let grown = rss_after.saturating_sub(rss_before);
    eprintln!(
        "RSS {} -> {} KiB over {NAMES} names",
        rss_before >> 10,
        rss_after >> 10
    );
    assert!(grown < 10 << 20, "RSS grew by {} KiB", grown >> 10);

    // With min_revision, only the store can say: at most one lookup per name, many names to
    // a query, and still nothing held afterwards.
    let before = stats["tenant_lookups"].as_u64().unwrap();
    let statuses = flood(node, 1_000, |n| {
        node.client
            .get(node.url("/check-access"))
            .query(&[("tenant", format!("asked-{n}").as_str()), ("user", "alice")])
            .query(&[
                ("resource", "doc"),
                ("action", "read"),
                ("min_revision", "1"),
            ])
    })
    .await;
    assert_eq!(statuses, BTreeSet::from([409]));
    let stats = node.cache_stats().await;
    let lookups = stats["tenant_lookups"].as_u64().unwrap() - before;
    assert!(
        (1..=1_000).contains(&lookups),
        "{lookups} lookups for 1000 names"
    );
    assert_eq!(stats["tenants_cached"], 1, "{stats}");
    assert_eq!(stats["tenants_known"], 1, "{stats}");
    assert!(node.check("real", "alice", "doc", "read").await);
}

/// A change and the revision it made, as the writes' answers told.
type History = Vec<(u64, Change)>;

fn group(name: &str) -> GroupName {
    GroupName::parse("group", name).unwrap()
}

fn permission(resource: &str, action: &str) -> Permission {
    Permission {
        resource: Resource::parse("resource", resource).unwrap(),
        action: Action::parse("action", action).unwrap(),
    }
}

fn user(name: &str) -> UserName {
    UserName::parse("user", name).unwrap()
}

/// The tenant as the store had it at `revision`.
fn state_at(history: &History, revision: u64) -> TenantPolicy {
    let mut policy = TenantPolicy::default();
    for (made, change) in history.iter().take_while(|(made, _)| *made <= revision) {
        policy
            .advance(*made, change)
            .unwrap_or_else(|e| panic!("the history does not replay at {made}: {e}"));
    }
    policy
}

/// Sends `change` to `node`; returns the revision it made, if it changed something.
async fn send(node: &Instance, tenant: &str, change: &Change) -> Option<u64> {
    let (path, body) = match change {
        Change::CreateGroup { group } => ("/create-group", json!({"group": group.as_str()})),
        Change::AddPermission { group, permission }
        | Change::RemovePermission { group, permission } => (
            if matches!(change, Change::AddPermission { .. }) {
                "/add-permission"
            } else {
                "/remove-permission"
            },
            json!({"group": group.as_str(), "resource": permission.resource.as_str(),
                   "action": permission.action.as_str()}),
        ),
        Change::AssignUser { group, user, .. } | Change::UnassignUser { group, user } => (
            if matches!(change, Change::AssignUser { .. }) {
                "/assign-user"
            } else {
                "/unassign-user"
            },
            json!({"group": group.as_str(), "user": user.as_str()}),
        ),
        Change::NestGroup { group, parent } | Change::UnnestGroup { group, parent } => (
            if matches!(change, Change::NestGroup { .. }) {
                "/nest-group"
            } else {
                "/unnest-group"
            },
            json!({"group": group.as_str(), "parent": parent.as_str()}),
        ),
        Change::DeleteGroup { .. } => unreachable!("not sent by this test"),
    };
    let mut body = body;
    body["tenant"] = json!(tenant);
    let (status, answer) = node.post(path, body).await;
    assert!(status.is_success(), "{path} on {tenant}: {status} {answer}");
    let changed = answer["changed"].as_bool().or(answer["created"].as_bool());
    changed
        .unwrap()
        .then(|| answer["revision"].as_u64().unwrap())
}

/// The questions the readers ask, and the permissions the writers grant and revoke, so that
/// answers change as the writes go on.
const USERS: &[&str] = &["u0", "u1", "u2", "u3"];
const RESOURCES: &[&str] = &["r0", "r1", "r2", "docs/a"];
const PATTERNS: &[&str] = &["r0", "r1", "r2", "docs/*"];
const ACTIONS: &[&str] = &["read", "write"];

/// A cheap deterministic sequence, so that a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % sides as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.roll(items.len())]
    }
}

#[tokio::test]
async fn tenants_read_in_random_order_under_a_small_budget_are_always_exact() {
    const TENANTS: usize = 60;
    const WRITERS: usize = 6;
    const READERS: usize = 12;
    const READING: Duration = Duration::from_secs(4);
    let cluster = Arc::new(Cluster::start_with(3, &[("CACHE_MEMORY_MB", "1")]).await);
    let tenant_name = |t: usize| format!("tenant-{t:02}");
    let histories: Arc<Mutex<HashMap<String, History>>> = Arc::default();

    // Each tenant some 30 KB by estimate: long names in a group the questions never reach.
    // 60 of them are about twice the budget.
    let seeded: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (cluster, histories) = (cluster.clone(), histories.clone());
            tokio::spawn(async move {
                for t in (w..TENANTS).step_by(WRITERS) {
                    let tenant = tenant_name(t);
                    let node = &cluster[t % 3];
                    let mut history = History::new();
                    let mut changes: Vec<Change> = ["g0", "g1", "filler"]
                        .iter()
                        .map(|g| Change::CreateGroup { group: group(g) })
                        .collect();
                    for n in 0..25 {
                        let long = format!("{n:02}-{}", "r".repeat(240));
                        changes.push(Change::AddPermission {
                            group: group("filler"),
                            permission: permission(&long, "read"),
                        });
                        changes.push(Change::AssignUser {
                            group: group("filler"),
                            user: user(&format!("{n:02}-{}", "u".repeat(200))),
                            expires_at: None,
                        });
                    }
                    for change in changes {
                        let revision = send(node, &tenant, &change).await.unwrap();
                        history.push((revision, change));
                    }
                    histories.lock().unwrap().insert(tenant, history);
                }
            })
        })
        .collect();
    for seeding in seeded {
        seeding.await.unwrap();
    }
    let acknowledged: Arc<Mutex<HashMap<String, u64>>> = Arc::new(Mutex::new(
        histories
            .lock()
            .unwrap()
            .iter()
            .map(|(tenant, history)| (tenant.clone(), history.last().unwrap().0))
            .collect(),
    ));

    let deadline = Instant::now() + READING;
    // Writers keep granting and revoking while the readers read; each owns a share of the
    // tenants, so a tenant's writes are made one at a time and its history is in order.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (cluster, histories, acknowledged) =
                (cluster.clone(), histories.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let mut dice = Dice(w as u64 + 1);
                while Instant::now() < deadline {
                    let t = w + WRITERS * dice.roll(TENANTS / WRITERS);
                    let tenant = tenant_name(t);
                    let g = group(dice.pick(&["g0", "g1"]));
                    // g0 in g1 (never the other way, which would be a cycle) comes and goes.
                    let nesting = (group("g0"), group("g1"));
                    let change = match dice.roll(6) {
                        0 => Change::AddPermission {
                            group: g,
                            permission: permission(dice.pick(PATTERNS), dice.pick(ACTIONS)),
                        },
                        1 => Change::RemovePermission {
                            group: g,
                            permission: permission(dice.pick(PATTERNS), dice.pick(ACTIONS)),
                        },
                        2 => Change::AssignUser {
                            group: g,
                            user: user(dice.pick(USERS)),
                            expires_at: None,
                        },
                        3 => Change::UnassignUser {
                            group: g,
                            user: user(dice.pick(USERS)),
                        },
                        4 => Change::NestGroup {
                            group: nesting.0,
                            parent: nesting.1,
                        },
                        _ => Change::UnnestGroup {
                            group: nesting.0,
                            parent: nesting.1,
                        },
                    };
                    let node = &cluster[dice.roll(3)];
                    if let Some(revision) = send(node, &tenant, &change).await {
                        histories
                            .lock()
                            .unwrap()
                            .get_mut(&tenant)
                            .unwrap()
                            .push((revision, change));
                        acknowledged.lock().unwrap().insert(tenant, revision);
                    }
                }
            })
        })
        .collect();
    // Readers ask random tenants on random instances, half the time with the revision of the
    // tenant's last acknowledged write as min_revision; every answer is kept for checking.
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (cluster, acknowledged) = (cluster.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let mut dice = Dice(1000 + r as u64);
                let mut answers = Vec::new();
                while Instant::now() < deadline {
                    let tenant = tenant_name(dice.roll(TENANTS));
                    let node = &cluster[dice.roll(3)];
                    let question = (dice.pick(USERS), dice.pick(RESOURCES), dice.pick(ACTIONS));
                    let min_revision =
                        (dice.roll(2) == 0).then(|| acknowledged.lock().unwrap()[&tenant]);
                    let mut body = json!({"tenant": tenant, "user": question.0,
                        "resource": question.1, "action": question.2});
                    if let Some(min) = min_revision {
                        body["min_revision"] = json!(min);
                    }
                    let (status, answer) = node.post("/check-access", body).await;
                    assert_eq!(status, StatusCode::OK, "{tenant}: {answer}");
                    let revision = answer["revision"].as_u64().unwrap();
                    assert!(
                        revision >= min_revision.unwrap_or(0),
                        "{tenant} answered at {revision} when asked for {min_revision:?}"
                    );
                    let allowed = answer["allowed"].as_bool().unwrap();
                    answers.push((tenant, question, revision, allowed));
                }
                answers
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut answers = Vec::new();
    for reader in readers {
        answers.extend(reader.await.unwrap());
    }

    // Every answer is the store's truth at the revision it carries.
    let histories = std::mem::take(&mut *histories.lock().unwrap());
    let mut states: HashMap<(String, u64), TenantPolicy> = HashMap::new();
    for (tenant, (u, resource, action), revision, allowed) in &answers {
        let truth = states
            .entry((tenant.clone(), *revision))
            .or_insert_with(|| state_at(&histories[tenant], *revision));
        assert_eq!(truth.revision(), *revision, "{tenant}: no such revision");
        assert_eq!(
            truth.allows(u, resource, action, UnixMillis(0)),
            *allowed,
            "{tenant} at {revision}: {u} {resource} {action}"
        );
    }
    let mut evictions = 0;
    let mut reloads = 0;
    for node in &cluster.instances {
        let stats = node.cache_stats().await;
        evictions += stats["evictions"].as_u64().unwrap();
        reloads += stats["reloads_after_eviction"].as_u64().unwrap();
        assert_eq!(stats["cache_budget_bytes"], 1 << 20, "{stats}");
        assert!(
            stats["tenants_cached"].as_u64().unwrap() < TENANTS as u64,
            "{stats}"
        );
        let fits = eventually(Duration::from_secs(2), || async {
            let stats = node.cache_stats().await;
            stats["cache_bytes"].as_u64() <= stats["cache_budget_bytes"].as_u64()
        })
        .await;
        assert!(fits.is_some(), "{}", node.cache_stats().await);
    }
    eprintln!(
        "{} answers checked; {evictions} evictions, {reloads} reloads after eviction",
        answers.len()
    );
    assert!(evictions > 0 && reloads > 0);
    assert!(answers.len() > 500, "only {} answers", answers.len());
}

/// Every page of GET /tenants with `query` and `limit`, followed through `next_cursor`: the
/// names and sizes listed, in order.
async fn tenant_pages(node: &Instance, prefix: Option<&str>, limit: usize) -> Vec<Value> {
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let limit = limit.to_string();
        let mut query = vec![("limit", limit.as_str())];
        if let Some(prefix) = prefix {
            query.push(("prefix", prefix));
        }
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let (status, page) = node.get("/tenants", &query).await;
        assert_eq!(status, StatusCode::OK, "{query:?}: {page}");
        let tenants = page["tenants"].as_array().unwrap();
        assert!(tenants.len() <= limit.parse().unwrap(), "{page}");
        listed.extend(tenants.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return listed,
        }
    }
}

#[tokio::test]
async fn the_tenants_are_listed_in_byte_order_by_prefix_page_by_page_with_their_sizes() {
    let cluster = Cluster::start(2).await;
    let (writer, reader) = (&cluster[0], &cluster[1]);
    // Names whose order by bytes differs from a language's: case, accents, spaces, the
    // greatest character.
    let names = [
        "acme",
        "acme corp",
        "acme-eu",
        "acmé",
        "Acme",
        "acmf",
        "b",
        "a\u{10FFFF}",
        "zeta",
    ];
    for (at, name) in names.iter().enumerate() {
        writer.create_group(name, "g").await;
        for p in 0..at {
            writer
                .add_permission(name, "g", &format!("docs/{p}"), "read")
                .await;
        }
        writer.assign_user(name, "alice", "g").await;
    }
    // A tenant whose every group is gone still exists, empty, at the revision it reached.
    writer.create_group("emptied", "g").await;
    writer.delete_group("emptied", "g").await;
    // A tenant only read, never written, does not exist.
    assert!(!writer.check("never-written", "u", "r", "a").await);

    let expected = |name: &str| -> Value {
        if name == "emptied" {
            return json!({"name": "emptied", "revision": 2, "group_count": 0,
                          "permission_count": 0, "assignment_count": 0});
        }
        let at = names.iter().position(|n| *n == name).unwrap();
        json!({"name": name, "revision": at + 2, "group_count": 1,
               "permission_count": at, "assignment_count": 1})
    };
    let mut all: Vec<&str> = names.iter().copied().chain(["emptied"]).collect();
    all.sort_unstable();
    let everyone: Vec<Value> = all.iter().map(|name| expected(name)).collect();
    // From the store, so an instance that wrote none of them lists them all alike.
    for limit in [1, 2, 3, 100] {
        assert_eq!(
            tenant_pages(reader, None, limit).await,
            everyone,
            "limit {limit}"
        );
    }
    for (prefix, starting) in [
        ("acme", vec!["acme", "acme corp", "acme-eu"]),
        ("acm", vec!["acme", "acme corp", "acme-eu", "acmf", "acmé"]),
        ("a\u{10FFFF}", vec!["a\u{10FFFF}"]),
        ("acme ", vec!["acme corp"]),
        ("A", vec!["Acme"]),
        ("nothing", vec![]),
        ("", all.clone()),
    ] {
        let listed: Vec<Value> = starting.iter().map(|name| expected(name)).collect();
        for limit in [1, 2, 100] {
            assert_eq!(
                tenant_pages(writer, Some(prefix), limit).await,
                listed,
                "prefix {prefix:?}, limit {limit}"
            );
        }
    }

    // A cursor belongs to its prefix; bad parameters are refused.
    let (_, first) = reader
        .get("/tenants", &[("prefix", "acme"), ("limit", "1")])
        .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    for query in [
        vec![("prefix", "acm"), ("cursor", cursor)],
        vec![("cursor", cursor)],
        vec![("cursor", "zz")],
        vec![("limit", "0")],
        vec![("limit", "1001")],
        vec![("prefix", "a\u{1}")],
        vec![("prefix", "x".repeat(257).leak())],
        vec![("tenant", "acme")],
    ] {
        let (status, body) = reader.get("/tenants", &query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
        assert_eq!(
            body["error"]["code"], "invalid_request",
            "{query:?}: {body}"
        );
    }
}

#[tokio::test]
async fn with_only_check_token_the_tenants_are_listed_to_a_credential_for_every_tenant() {
    let cluster = Cluster::start_with(1, &[("CHECK_TOKEN", "reader-secret")]).await;
    let node = &cluster[0];
    node.create_group("acme", "g").await;
    let anyone = node.with_token(None);
    let (status, body) = anyone.get("/tenants", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let reader = node.with_token(Some("reader-secret"));
    let (status, body) = reader.get("/tenants", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenants"][0]["name"], "acme");
}
