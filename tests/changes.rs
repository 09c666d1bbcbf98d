//! The change feed from outside: `GET /changes` pages a tenant's changelog oldest first, with
//! what each change did, who made it, where and when, alike on every instance; it refuses
//! what it cannot answer exactly (bad parameters, other tenants, history that retention
//! deleted) and changes nothing when it does.

mod common;

use std::time::Duration;

use common::{Api, Cluster, Instance};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ADMIN: &str = "admin-secret";

/// How `ADMIN_TOKEN` signs the changes made with it.
fn token_actor(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("token:{hex}")
}

/// An admin API key for `tenant`: its token and the actor it signs changes with.
async fn admin_key(node: &Instance, tenant: &str) -> (String, String) {
    let (status, body) = node
        .post(
            "/create-api-key",
            json!({"tenant": tenant, "role": "admin", "name": "feed"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap();
    (
        body["key"].as_str().unwrap().to_owned(),
        format!("key:{id}"),
    )
}

/// Every change after `after`, page by page with `limit`, checking each page's `next_after`.
async fn all_changes(api: &Api, tenant: &str, mut after: u64, limit: u64) -> (u64, Vec<Value>) {
    let mut changes = Vec::new();
    loop {
        let (status, page) = api
            .get(
                "/changes",
                &[
                    ("tenant", tenant),
                    ("after", &after.to_string()),
                    ("limit", &limit.to_string()),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let revision = page["revision"].as_u64().unwrap();
        let listed = page["changes"].as_array().unwrap();
        assert!(listed.len() as u64 <= limit, "{page}");
        changes.extend(listed.iter().cloned());
        let last = changes
            .last()
            .map_or(after, |c| c["revision"].as_u64().unwrap());
        if last == revision {
            assert_eq!(page["next_after"], Value::Null, "{page}");
            return (revision, changes);
        }
        assert_eq!(page["next_after"], json!(last), "{page}");
        assert_eq!(
            listed.len() as u64,
            limit,
            "a page short of the end is full: {page}"
        );
        after = last;
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn changes_are_paged_oldest_first_with_what_who_where_and_when_alike_on_every_instance() {
    let cluster = Cluster::start_with(2, &[("ADMIN_TOKEN", ADMIN)]).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    let (key, key_actor) = admin_key(a, "acme").await;
    let b_with_key = b.with_token(Some(&key));
    let started = OffsetDateTime::now_utc();
    // Each write, on the instance and with the credential named, and the change it records.
    let mut expected = Vec::new();
    let writes: [(&Api, &str, Value, Value); 7] = [
        (a, "/create-group", json!({"group": "editors"}), json!({})),
        (
            &b_with_key,
            "/add-permission",
            json!({"group": "editors", "resource": "docs/*", "action": "read"}),
            json!({"resource": "docs/*", "action": "read"}),
        ),
        (
            &b_with_key,
            "/assign-user",
            json!({"group": "editors", "user": "alice"}),
            json!({"user": "alice"}),
        ),
        (
            a,
            "/assign-user",
            json!({"group": "editors", "user": "bob"}),
            json!({"user": "bob"}),
        ),
        (
            a,
            "/remove-permission",
            json!({"group": "editors", "resource": "docs/*", "action": "read"}),
            json!({"resource": "docs/*", "action": "read"}),
        ),
        (
            &b_with_key,
            "/unassign-user",
            json!({"group": "editors", "user": "alice"}),
            json!({"user": "alice"}),
        ),
        (a, "/delete-group", json!({"group": "editors"}), json!({})),
    ];
    for (node, path, fields, touched) in writes {
        let mut body = fields.clone();
        body["tenant"] = json!("acme");
        let (status, answer) = node.post(path, body.clone()).await;
        assert!(status.is_success(), "{path} {body}: {status} {answer}");
        let mut change = json!({
            "revision": answer["revision"],
            "operation": path.trim_start_matches('/'),
            "group": "editors",
            "actor": if node.token.as_deref() == Some(ADMIN) { json!(token_actor(ADMIN)) } else { json!(key_actor) },
            "server_id": node.server_id,
        });
        for (field, value) in touched.as_object().unwrap() {
            change[field] = value.clone();
        }
        expected.push(change);
        // A write that changes nothing is not a change.
        let (status, again) = node.post(path, body.clone()).await;
        assert!(status.is_success(), "{path} again: {status} {again}");
        assert_eq!(
            again["revision"], answer["revision"],
            "{path} again: {again}"
        );
    }
    let finished = OffsetDateTime::now_utc();

    for (reader, limit) in [(a, 1000), (b, 2), (b, 1)] {
        let (revision, changes) = all_changes(reader, "acme", 0, limit).await;
        assert_eq!(revision, 7);
        let revisions: Vec<u64> = changes
            .iter()
            .map(|c| c["revision"].as_u64().unwrap())
            .collect();
        assert_eq!(revisions, (1..=7).collect::<Vec<_>>());
        for (change, expected) in changes.iter().zip(&expected) {
            let mut without_time = change.clone();
            let at = without_time.as_object_mut().unwrap().remove("at").unwrap();
            assert_eq!(&without_time, expected, "as read from {}", reader.server_id);
            let at = at.as_str().unwrap();
            assert!(
                at.ends_with('Z') && at.len() == "2026-01-31T09:05:07.042Z".len(),
                "{at}"
            );
            let at = OffsetDateTime::parse(at, &Rfc3339).unwrap();
            let slack = Duration::from_secs(5);
            assert!(
                at >= started - slack && at <= finished + slack,
                "{at} outside the writes' time"
            );
        }
    }

    // From the middle, from the end and past it, and for a tenant never written.
    let (revision, rest) = all_changes(b, "acme", 4, 10).await;
    assert_eq!((revision, rest.len()), (7, 3));
    assert_eq!(rest[0]["revision"], 5);
    for (tenant, after) in [("acme", "7"), ("acme", "1000"), ("nobody", "0")] {
        let (status, page) = b
            .get("/changes", &[("tenant", tenant), ("after", after)])
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let revision = if tenant == "acme" { 7 } else { 0 };
        assert_eq!(
            page,
            json!({"tenant": tenant, "revision": revision, "changes": [], "next_after": null})
        );
    }

    // min_revision as on every read: the store's revision must have reached it.
    let (status, page) = b
        .get("/changes", &[("tenant", "acme"), ("min_revision", "7")])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, page) = b
        .get("/changes", &[("tenant", "acme"), ("min_revision", "8")])
        .await;
    assert_eq!(
        (status, error_code(&page)),
        (StatusCode::CONFLICT, "revision_not_reached"),
        "{page}"
    );
}

#[tokio::test]
async fn history_that_retention_deleted_is_refused_with_410_and_where_the_history_starts() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    node.create_group("acme", "g").await;
    for user in ["u1", "u2", "u3", "u4"] {
        node.assign_user("acme", user, "g").await;
    }
    common::forget_changes_through(&cluster.database_url, "acme", 2).await;
    for after in ["0", "1"] {
        let (status, body) = node
            .get("/changes", &[("tenant", "acme"), ("after", after)])
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::GONE, "changes_expired"),
            "{body}"
        );
        assert_eq!(body["error"]["oldest_revision"], 3, "{body}");
    }
    let (revision, changes) = all_changes(node, "acme", 2, 2).await;
    assert_eq!(revision, 5);
    assert_eq!(changes.len(), 3);

    // Nothing kept: the oldest revision that can be read is the next one.
    common::forget_changes_through(&cluster.database_url, "acme", 5).await;
    let (status, body) = node
        .get("/changes", &[("tenant", "acme"), ("after", "2")])
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::GONE, "changes_expired"),
        "{body}"
    );
    assert_eq!(body["error"]["oldest_revision"], 6, "{body}");
    let (status, body) = node
        .get("/changes", &[("tenant", "acme"), ("after", "5")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    node.assign_user("acme", "u5", "g").await;
    let (revision, changes) = all_changes(node, "acme", 5, 100).await;
    assert_eq!((revision, changes.len()), (6, 1));
}

#[tokio::test]
async fn bad_change_requests_are_refused_and_other_tenants_are_out_of_reach() {
    // Reads are open unless CHECK_TOKEN is set.
    let tokens = [("ADMIN_TOKEN", ADMIN), ("CHECK_TOKEN", "check-secret")];
    let cluster = Cluster::start_with(1, &tokens).await;
    let node = &cluster[0];
    node.create_group("acme", "g").await;
    node.create_group("globex", "g").await;
    let acme_key = {
        let (status, body) = node
            .post(
                "/create-api-key",
                json!({"tenant": "acme", "role": "check"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["key"].as_str().unwrap().to_owned()
    };
    let before = common::stored_rows(&cluster.database_url).await;
    for query in [
        vec![("tenant", "acme"), ("after", "-1")],
        vec![("tenant", "acme"), ("after", "one")],
        vec![("tenant", "acme"), ("after", "18446744073709551616")],
        vec![("tenant", "acme"), ("limit", "0")],
        vec![("tenant", "acme"), ("limit", "1001")],
        vec![("tenant", "acme"), ("limit", "-5")],
        vec![("tenant", "acme"), ("min_revision", "x")],
        vec![("tenant", "acme"), ("cursor", "abc")],
        vec![("after", "0")],
        vec![("tenant", "")],
        vec![("tenant", "acme"), ("after", "1"), ("after", "2")],
    ] {
        let (status, body) = node.get("/changes", &query).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{query:?}: {body}"
        );
    }
    let with = |token: Option<&str>| node.with_token(token);
    // Any credential for the tenant reads its changes; none for another tenant.
    let (status, body) = with(Some(&acme_key))
        .get("/changes", &[("tenant", "acme")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changes"].as_array().unwrap().len(), 1);
    let (status, body) = with(Some(&acme_key))
        .get("/changes", &[("tenant", "globex")])
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    let (status, body) = with(None).get("/changes", &[("tenant", "acme")]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "{body}"
    );
    assert_eq!(common::stored_rows(&cluster.database_url).await, before);
}
