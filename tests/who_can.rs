//! `GET /who-can` from outside: every user a check allows, sorted, page by page, never
//! truncated, each page at one revision, and no user twice while writes go on.

mod common;

use std::collections::BTreeSet;

use common::{Api, Cluster};
use reqwest::StatusCode;
use serde_json::json;

/// Every page of `/who-can`, `limit` users at a time; each page's revision beside it.
async fn every_page(
    api: &Api,
    tenant: &str,
    resource: &str,
    action: &str,
    limit: u32,
) -> Vec<(u64, Vec<String>)> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let limit = limit.to_string();
        let mut query = vec![
            ("tenant", tenant),
            ("resource", resource),
            ("action", action),
            ("limit", limit.as_str()),
        ];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let (status, body) = api.get("/who-can", &query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let users: Vec<String> = serde_json::from_value(body["users"].clone()).unwrap();
        assert!(users.len() <= limit.parse().unwrap(), "{body}");
        pages.push((body["revision"].as_u64().unwrap(), users));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
    }
}

#[tokio::test]
async fn who_can_lists_every_user_a_check_allows_page_by_page() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    node.create_group("acme", "readers").await;
    node.create_group("acme", "editors").await;
    node.create_group("acme", "others").await;
    node.add_permission("acme", "readers", "docs/*", "read")
        .await;
    node.add_permission("acme", "editors", "docs/a", "*").await;
    node.add_permission("acme", "others", "elsewhere", "read")
        .await;
    for n in 0..12 {
        node.assign_user("acme", &format!("reader-{n:02}"), "readers")
            .await;
    }
    for user in ["reader-03", "editor-1", "editor-2"] {
        node.assign_user("acme", user, "editors").await;
    }
    node.assign_user("acme", "other", "others").await;

    for (resource, action) in [
        ("docs/a", "read"),
        ("docs/a", "write"),
        ("docs/b", "read"),
        ("x", "read"),
    ] {
        let mut expected = Vec::new();
        for user in (0..12)
            .map(|n| format!("reader-{n:02}"))
            .chain(["editor-1", "editor-2", "other", "nobody"].map(String::from))
        {
            if node.check("acme", &user, resource, action).await {
                expected.push(user);
            }
        }
        expected.sort();
        for limit in [1, 5, 1000] {
            let pages = every_page(node, "acme", resource, action, limit).await;
            let listed: Vec<String> = pages.iter().flat_map(|(_, users)| users.clone()).collect();
            assert_eq!(listed, expected, "{resource} {action}, {limit} a page");
        }
    }
    // The one case every user has in common: a tenant that does not exist.
    let pages = every_page(node, "nobody-home", "docs/a", "read", 10).await;
    assert_eq!(pages, [(0, Vec::<String>::new())]);
}

#[tokio::test]
async fn pages_read_while_writes_go_on_never_list_a_user_twice() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    node.create_group("acme", "a").await;
    node.create_group("acme", "b").await;
    node.add_permission("acme", "a", "docs/*", "read").await;
    node.add_permission("acme", "b", "docs/x", "read").await;
    for n in 0..40 {
        node.assign_user(
            "acme",
            &format!("u{n:02}"),
            if n % 2 == 0 { "a" } else { "b" },
        )
        .await;
    }
    let writer = node.with_token(None);
    let writes = tokio::spawn(async move {
        for n in 0..40 {
            // Into the other group too: a user in both is still one user.
            let group = if n % 2 == 0 { "b" } else { "a" };
            writer.assign_user("acme", &format!("u{n:02}"), group).await;
            writer
                .assign_user("acme", &format!("new-{n:02}"), group)
                .await;
        }
    });
    let mut rounds = 0;
    while !writes.is_finished() || rounds == 0 {
        let pages = every_page(node, "acme", "docs/x", "read", 7).await;
        let listed: Vec<String> = pages.iter().flat_map(|(_, users)| users.clone()).collect();
        let distinct: BTreeSet<&String> = listed.iter().collect();
        assert_eq!(distinct.len(), listed.len(), "a user twice: {listed:?}");
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "sorted: {listed:?}");
        assert!(
            (0..40).all(|n| listed.contains(&format!("u{n:02}"))),
            "{listed:?}"
        );
        rounds += 1;
    }
    writes.await.unwrap();
}

#[tokio::test]
async fn bad_who_can_requests_are_refused() {
    let tokens = [
        ("ADMIN_TOKEN", "admin-secret"),
        ("CHECK_TOKEN", "check-secret"),
    ];
    let cluster = Cluster::start_with(1, &tokens).await;
    let node = &cluster[0];
    node.create_group("acme", "g").await;
    let (status, key) = node
        .post(
            "/create-api-key",
            json!({"tenant": "acme", "role": "check"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let with_key = node.with_token(key["key"].as_str());
    let base = [("tenant", "acme"), ("resource", "r"), ("action", "read")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut query = base.to_vec();
        query.extend_from_slice(extra);
        query
    };
    for (query, status) in [
        (with(&[("limit", "0")]), 400),
        (with(&[("limit", "1001")]), 400),
        (with(&[("cursor", "not-a-cursor")]), 400),
        (with(&[("colour", "red")]), 400),
        (vec![("tenant", "acme"), ("resource", "r")], 400),
        (
            vec![("tenant", "acme"), ("resource", ""), ("action", "read")],
            400,
        ),
        (
            vec![("tenant", "globex"), ("resource", "r"), ("action", "read")],
            403,
        ),
    ] {
        let (got, body) = with_key.get("/who-can", &query).await;
        assert_eq!(got.as_u16(), status, "{query:?}: {body}");
    }
    // A cursor of another listing does not resume this one.
    node.assign_user("acme", "u1", "g").await;
    node.assign_user("acme", "u2", "g").await;
    let (_, members) = with_key
        .get(
            "/group-members",
            &[("tenant", "acme"), ("group", "g"), ("limit", "1")],
        )
        .await;
    let cursor = members["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = with_key
        .get(
            "/who-can",
            &with(&[])
                .into_iter()
                .chain([("cursor", cursor.as_str())])
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_users_groups_and_permissions_come_in_pages_none_missed_none_twice() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    let mut expected_groups = Vec::new();
    let mut expected_permissions = Vec::new();
    for g in 0..7 {
        let group = format!("g{g}");
        node.create_group("acme", &group).await;
        node.assign_user("acme", "alice", &group).await;
        for p in 0..g % 3 {
            let resource = format!("docs/{p}");
            node.add_permission("acme", &group, &resource, "read").await;
            expected_permissions.push((resource, "read".to_owned(), group.clone()));
        }
        expected_groups.push(group);
    }
    expected_permissions.sort();
    for limit in [1usize, 2, 5, 100] {
        let (mut groups, mut permissions) = (Vec::new(), Vec::new());
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let limit_text = limit.to_string();
            let mut query = vec![
                ("tenant", "acme"),
                ("user", "alice"),
                ("limit", limit_text.as_str()),
            ];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor));
            }
            let (status, body) = node.get("/user-permissions", &query).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page_groups = body["groups"].as_array().unwrap();
            let page_permissions = body["permissions"].as_array().unwrap();
            assert!(
                page_groups.len() + page_permissions.len() <= limit,
                "{body}"
            );
            // Groups come first: a page with permissions ends the groups.
            if !page_permissions.is_empty() {
                assert_eq!(
                    groups.len() + page_groups.len(),
                    expected_groups.len(),
                    "{body}"
                );
            }
            groups.extend(page_groups.iter().map(|g| g.as_str().unwrap().to_owned()));
            permissions.extend(page_permissions.iter().map(|p| {
                (
                    p["resource"].as_str().unwrap().to_owned(),
                    p["action"].as_str().unwrap().to_owned(),
                    p["group"].as_str().unwrap().to_owned(),
                )
            }));
            pages += 1;
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(groups, expected_groups, "{limit} a page");
        assert_eq!(permissions, expected_permissions, "{limit} a page");
        let items = expected_groups.len() + expected_permissions.len();
        assert_eq!(pages, items.div_ceil(limit).max(1), "{limit} a page");
    }
    let (status, body) = node
        .get(
            "/user-permissions",
            &[("tenant", "acme"), ("user", "alice"), ("cursor", "00")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
