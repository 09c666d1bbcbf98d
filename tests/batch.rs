//! `POST /check-access/batch` and `explain` from outside: a batch answers each check as the
//! single check does, each tenant's from one revision; a check that cannot be answered gets
//! its error in its place; the body's limits; and `because` lists the permissions an answer
//! comes from.

mod common;

use std::collections::BTreeMap;

use common::{Api, Cluster};
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn batch(api: &Api, checks: Value) -> (StatusCode, Value) {
    api.post("/check-access/batch", json!({ "checks": checks }))
        .await
}

/// The single check's answer to `check` (a batch item), with `explain`.
async fn single(api: &Api, check: &Value) -> Value {
    let (status, body) = api.post("/check-access", check.clone()).await;
    assert_eq!(status, StatusCode::OK, "{check}: {body}");
    body
}

async fn seed(api: &Api) {
    api.create_group("acme", "readers").await;
    api.create_group("acme", "editors").await;
    api.add_permission("acme", "readers", "docs/*", "read")
        .await;
    api.add_permission("acme", "readers", "docs/a", "read")
        .await;
    api.add_permission("acme", "editors", "docs/a", "*").await;
    api.add_permission("acme", "editors", "*", "list").await;
    api.assign_user("acme", "alice", "readers").await;
    api.assign_user("acme", "alice", "editors").await;
    api.assign_user("acme", "bob", "readers").await;
    api.create_group("globex", "g").await;
    api.add_permission("globex", "g", "x", "read").await;
    api.assign_user("globex", "alice", "g").await;
}

#[tokio::test]
async fn a_batch_answers_each_check_as_the_single_check_does() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    seed(node).await;
    let mut checks = Vec::new();
    for tenant in ["acme", "globex", "nobody-home"] {
        for user in ["alice", "bob", "carol"] {
            for resource in ["docs/a", "docs/b", "x", "other"] {
                for action in ["read", "write", "list"] {
                    checks.push(json!({"tenant": tenant, "user": user, "resource": resource,
                                       "action": action, "explain": true}));
                }
            }
        }
    }
    let (status, body) = batch(node, json!(checks)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), checks.len());
    let mut allowed = 0;
    for (check, result) in checks.iter().zip(results) {
        assert_eq!(result, &single(node, check).await, "{check}");
        allowed += usize::from(result["allowed"] == true);
    }
    assert_eq!(allowed, 10, "alice 7 in acme and 1 in globex, bob 2");
    // Without `explain`, no `because`, as with the single check.
    let (_, body) = batch(
        node,
        json!([{"tenant": "acme", "user": "alice", "resource": "docs/a", "action": "read"}]),
    )
    .await;
    assert_eq!(body, json!({"results": [{"allowed": true, "revision": 9}]}));
}

#[tokio::test]
async fn explain_lists_every_permission_an_answer_comes_from() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    seed(node).await;
    let (status, body) = node
        .get(
            "/check-access",
            &[
                ("tenant", "acme"),
                ("user", "alice"),
                ("resource", "docs/a"),
                ("action", "read"),
                ("explain", "true"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["because"],
        json!([
            {"group": "editors", "resource": "docs/a", "action": "*"},
            {"group": "readers", "resource": "docs/*", "action": "read"},
            {"group": "readers", "resource": "docs/a", "action": "read"},
        ])
    );
    let denied = single(
        node,
        &json!({"tenant": "acme", "user": "bob", "resource": "docs/a", "action": "write", "explain": true}),
    )
    .await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["because"], json!([]));
    // Asked not to, or not asked: no `because`.
    for explain in [json!(false), Value::Null] {
        let mut check =
            json!({"tenant": "acme", "user": "bob", "resource": "docs/a", "action": "read"});
        if !explain.is_null() {
            check["explain"] = explain;
        }
        let answer = single(node, &check).await;
        assert_eq!(answer, json!({"allowed": true, "revision": 9}));
    }
}

#[tokio::test]
async fn a_check_that_cannot_be_answered_gets_its_error_and_the_others_are_answered() {
    let tokens = [
        ("ADMIN_TOKEN", "admin-secret"),
        ("CHECK_TOKEN", "check-secret"),
    ];
    let cluster = Cluster::start_with(1, &tokens).await;
    let node = &cluster[0];
    seed(node).await;
    let (status, key) = node
        .post(
            "/create-api-key",
            json!({"tenant": "acme", "role": "check"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let with_key = node.with_token(key["key"].as_str());
    let ok = json!({"tenant": "acme", "user": "bob", "resource": "docs/b", "action": "read"});
    let (status, body) = batch(
        &with_key,
        json!([
            ok,
            {"tenant": "globex", "user": "alice", "resource": "x", "action": "read"},
            {"tenant": "acme", "user": "", "resource": "docs/b", "action": "read"},
            {"tenant": "acme", "user": "bob", "resource": "docs/b"},
            {"tenant": "acme", "user": "bob", "resource": "docs/b", "action": "read", "colour": "red"},
            {"tenant": "acme", "user": "bob", "resource": "docs/b", "action": "read", "min_revision": 1000},
            {"tenant": "acme*", "user": "bob", "resource": "docs/b", "action": "read"},
            ok,
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    let codes: Vec<Value> = results.iter().map(|r| r["error"]["code"].clone()).collect();
    assert_eq!(
        codes,
        [
            Value::Null,
            json!("forbidden"),
            json!("invalid_request"),
            json!("invalid_request"),
            json!("invalid_request"),
            json!("revision_not_reached"),
            json!("invalid_request"),
            Value::Null,
        ]
    );
    for failed in &results[1..7] {
        assert_eq!(failed["allowed"], false, "{failed}");
        assert!(
            failed["error"]["message"].as_str().unwrap().len() > 5,
            "{failed}"
        );
        assert!(failed.get("revision").is_none(), "{failed}");
    }
    assert_eq!(results[0], json!({"allowed": true, "revision": 9}));
    assert_eq!(results[0], results[7]);
}

#[tokio::test]
async fn bodies_that_are_not_a_list_of_1_to_1000_checks_are_refused_whole() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    seed(node).await;
    let check = json!({"tenant": "acme", "user": "bob", "resource": "docs/b", "action": "read"});
    for (body, status) in [
        (json!({}), 400),
        (json!({"checks": []}), 400),
        (json!({"checks": "no"}), 400),
        (json!({"checks": [check, "no"]}), 400),
        (json!({"checks": [check, [1]]}), 400),
        (json!({"checks": vec![check.clone(); 1001]}), 400),
        (json!({"checks": [check], "more": 1}), 400),
        (json!([check]), 400),
    ] {
        let (got, answer) = node.post("/check-access/batch", body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
    }
    let response = node
        .client
        .post(node.url("/check-access/batch"))
        .header("content-type", "text/plain")
        .body(json!({"checks": [check]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // 1,000 checks of the longest names fit; a body over the limit does not.
    let long = |c: char| c.to_string().repeat(256);
    let longest = json!({"tenant": "acme", "user": long('u'), "resource": long('r'),
                         "action": long('a'), "min_revision": 1, "explain": true});
    let (status, body) = batch(node, json!(vec![longest; 1000])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"].as_array().unwrap().len(), 1000);
    let padding = " ".repeat(2 * 1024 * 1024);
    let response = node
        .client
        .post(node.url("/check-access/batch"))
        .header("content-type", "application/json")
        .body(format!("{{\"checks\": [{check}]{padding}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_checks_of_one_tenant_are_answered_at_one_revision_while_writes_go_on() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    seed(node).await;
    let writer = node.with_token(None);
    let writes = tokio::spawn(async move {
        for n in 0..60 {
            writer
                .assign_user("acme", &format!("u{n}"), "readers")
                .await;
            writer.assign_user("globex", &format!("u{n}"), "g").await;
        }
    });
    let mut batches = 0;
    while !writes.is_finished() {
        let mut checks = Vec::new();
        for n in 0..60 {
            for tenant in ["acme", "globex"] {
                checks.push(json!({"tenant": tenant, "user": format!("u{n}"),
                                   "resource": "docs/z", "action": "read"}));
            }
        }
        let (status, body) = batch(node, json!(checks)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut revisions = BTreeMap::<String, Vec<u64>>::new();
        for (check, result) in checks.iter().zip(body["results"].as_array().unwrap()) {
            revisions
                .entry(check["tenant"].as_str().unwrap().to_owned())
                .or_default()
                .push(result["revision"].as_u64().unwrap());
        }
        for (tenant, seen) in revisions {
            assert!(seen.iter().all(|r| *r == seen[0]), "{tenant}: {seen:?}");
        }
        batches += 1;
    }
    writes.await.unwrap();
    assert!(batches > 1, "batches ran during the writes");
}

const GROUPS: &[&str] = &["g0", "g1", "g2"];
const USERS: &[&str] = &["u0", "u1", "u2"];
const RESOURCES: &[&str] = &["r0", "docs/a", "docs/*", "d*", "*"];
const ACTIONS: &[&str] = &["read", "write", "*"];

#[derive(Debug, Clone)]
enum Write {
    Add(usize, usize, usize),
    Assign(usize, usize),
    Unassign(usize, usize),
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        3 => (0..GROUPS.len(), 0..RESOURCES.len(), 0..ACTIONS.len())
            .prop_map(|(g, r, a)| Write::Add(g, r, a)),
        3 => (0..GROUPS.len(), 0..USERS.len()).prop_map(|(g, u)| Write::Assign(g, u)),
        1 => (0..GROUPS.len(), 0..USERS.len()).prop_map(|(g, u)| Write::Unassign(g, u)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn on_random_tenants_a_batch_equals_the_single_checks(
        writes in prop::collection::vec(write(), 1..25),
    ) {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let node = common::InProcess::start(&[]).await;
            for group in GROUPS {
                node.create_group("t", group).await;
            }
            for write in &writes {
                match *write {
                    Write::Add(g, r, a) => {
                        node.add_permission("t", GROUPS[g], RESOURCES[r], ACTIONS[a]).await;
                    }
                    Write::Assign(g, u) => {
                        node.assign_user("t", USERS[u], GROUPS[g]).await;
                    }
                    Write::Unassign(g, u) => {
                        node.unassign_user("t", USERS[u], GROUPS[g]).await;
                    }
                }
            }
            let mut checks = Vec::new();
            for user in USERS {
                for resource in ["r0", "docs/a", "docs/b", "d", "x"] {
                    for action in ["read", "write", "delete"] {
                        checks.push(json!({"tenant": "t", "user": user, "resource": resource,
                                           "action": action, "explain": true}));
                    }
                }
            }
            let (status, body) = batch(&node, json!(checks)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            for (check, result) in checks.iter().zip(body["results"].as_array().unwrap()) {
                assert_eq!(result, &single(&node, check).await, "{check}");
            }
            node.shut_down().await.unwrap().unwrap();
        });
    }
}

#[tokio::test]
async fn the_explanations_of_one_batch_are_bounded_in_all() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    // alice is in 100 groups that all grant docs/*: each check's explanation lists 100.
    for g in 0..100 {
        let group = format!("g{g:03}");
        node.create_group("acme", &group).await;
        node.add_permission("acme", &group, "docs/*", "read").await;
        node.assign_user("acme", "alice", &group).await;
    }
    let explained = json!({"tenant": "acme", "user": "alice", "resource": "docs/a",
                           "action": "read", "explain": true});
    let plain = json!({"tenant": "acme", "user": "alice", "resource": "docs/a", "action": "read"});
    // 100 checks of 100 reasons fill the bound exactly; the 101st explained one is refused,
    // and checks that do not ask are answered still.
    let mut checks = vec![explained.clone(); 100];
    checks.push(explained.clone());
    checks.push(plain);
    let (status, body) = batch(node, json!(checks)).await;
    assert_eq!(status, StatusCode::OK);
    let results = body["results"].as_array().unwrap();
    for result in &results[..100] {
        assert_eq!(result["because"].as_array().unwrap().len(), 100);
    }
    assert_eq!(
        results[100]["error"]["code"], "invalid_request",
        "{}",
        results[100]
    );
    assert!(
        results[100]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10000"),
        "{}",
        results[100]
    );
    assert_eq!(results[101], json!({"allowed": true, "revision": 300}));
    // On its own, the same check is explained whole.
    let alone = single(node, &explained).await;
    assert_eq!(alone["because"].as_array().unwrap().len(), 100);
}
