//! A bad configuration is refused with one line naming the setting.

use super::*;

// ---------------------------------------------------------------------------------------------
// 7. Bad configuration
// ---------------------------------------------------------------------------------------------

/// The environment every configuration case starts from: valid, with a database that refuses
/// connections, so that a bad value that slipped through still ends the process quickly.
fn base_env() -> Vec<(String, String)> {
    [
        (
            "DATABASE_URL",
            format!("postgres://127.0.0.1:{}/rbac", common::servers::free_port()),
        ),
        ("STORE_TIMEOUT_SECS", "1".to_string()),
        ("PORT", "0".to_string()),
        ("HOST", "127.0.0.1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A variable set to a value, or unset.
type EnvChange<'a> = (&'a str, Option<&'a str>);

fn with_env(changes: &[EnvChange]) -> Vec<(String, String)> {
    let mut env = base_env();
    for (key, value) in changes {
        env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            env.push((key.to_string(), value.to_string()));
        }
    }
    env
}

#[test]
fn bad_configuration_is_refused_with_one_line_naming_the_setting_and_no_panic() {
    let cases: &[(&[EnvChange], &str)] = &[
        (&[("PORT", Some("abc"))], "PORT"),
        (&[("PORT", Some("70000"))], "PORT"),
        (&[("DATABASE_URL", Some(""))], "DATABASE_URL"),
        (&[("DATABASE_URL", Some("mysql://x/y"))], "DATABASE_URL"),
        (&[("DATABASE_URL", Some("not a url"))], "DATABASE_URL"),
        (
            &[("RESYNC_INTERVAL_SECS", Some("0"))],
            "RESYNC_INTERVAL_SECS",
        ),
        (
            &[("RESYNC_INTERVAL_SECS", Some("-5"))],
            "RESYNC_INTERVAL_SECS",
        ),
        (&[("STORE_TIMEOUT_SECS", Some("0"))], "STORE_TIMEOUT_SECS"),
        (&[("LOG_FORMAT", Some("xml"))], "LOG_FORMAT"),
        (&[("ADMIN_TOKEN", Some(""))], "ADMIN_TOKEN"),
        (&[("CHECK_TOKEN", Some(""))], "CHECK_TOKEN"),
        (&[("REDIS_URL", Some("http://x"))], "REDIS_URL"),
        (&[("HOST", Some("nope"))], "HOST"),
    ];
    let mut failures = Vec::new();
    for (changes, names) in cases {
        let exit = Process::run(
            Environment::PathOnly,
            &with_env(changes),
            Duration::from_secs(10),
        );
        let problems = exit.refusal_problems(names);
        if !problems.is_empty() {
            failures.push(format!(
                "{changes:?}: {} (exit {:?}, stderr {:?})",
                problems.join("; "),
                exit.status,
                exit.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}

#[test]
fn an_unreachable_database_is_refused_within_seconds_with_one_line() {
    let exit = Process::run(Environment::PathOnly, &base_env(), Duration::from_secs(15));
    let problems = exit.refusal_problems("database");
    assert!(
        problems.is_empty(),
        "{} (exit {:?}, stderr {:?})",
        problems.join("; "),
        exit.status,
        exit.stderr
    );
    assert!(
        exit.took < Duration::from_secs(5),
        "took {:?} to give up with STORE_TIMEOUT_SECS=1",
        exit.took
    );
}

// ---------------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------------

/// One page of `path`: its items (under `items`) and its `next_cursor`.
async fn page(
    node: &Instance,
    path: &str,
    query: &[(&str, &str)],
    items: &str,
) -> (Vec<Value>, Option<String>) {
    let (status, body) = node.get(path, query).await;
    assert_eq!(status, StatusCode::OK, "{path} {query:?}: {body}");
    let next = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("{path}: next_cursor is {other}"),
    };
    (body[items].as_array().unwrap().clone(), next)
}

#[tokio::test]
async fn listings_page_by_limit_and_cursor_and_a_cursor_outlives_the_item_it_names() {
    let cluster = Cluster::without_bus(1, &[]).await;
    let node = &cluster[0];
    for g in ["g3", "g1", "g4", "g0", "g2"] {
        node.create_group("p", g).await;
    }
    for u in ["u4", "u2", "u0", "u3", "u1"] {
        node.assign_user("p", u, "g0").await;
    }
    for (resource, action) in [("b", "write"), ("a", "*"), ("b", "read"), ("a/*", "read")] {
        node.add_permission("p", "g0", resource, action).await;
    }

    // Pages of two, in order, ending with a null cursor.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("tenant", "p"), ("limit", "2")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.as_str()));
        }
        let (items, next) = page(node, "/groups", &query, "groups").await;
        assert!(items.len() <= 2);
        names.extend(
            items
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_string()),
        );
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["g0", "g1", "g2", "g3", "g4"]);
    // The default page holds them all; a page that fills exactly says there is no more.
    let (items, next) = page(node, "/groups", &[("tenant", "p")], "groups").await;
    assert_eq!((items.len(), next), (5, None));
    let (items, next) = page(
        node,
        "/groups",
        &[("tenant", "p"), ("limit", "5")],
        "groups",
    )
    .await;
    assert_eq!((items.len(), next), (5, None));
    assert_eq!(
        items[0],
        json!({"name": "g0", "permission_count": 4, "member_count": 5})
    );
    assert_eq!(
        items[1],
        json!({"name": "g1", "permission_count": 0, "member_count": 0})
    );

    let query = [("tenant", "p"), ("group", "g0"), ("limit", "3")];
    let (permissions, permission_cursor) =
        page(node, "/group-permissions", &query, "permissions").await;
    assert_eq!(
        permissions,
        [
            json!({"resource": "a", "action": "*"}),
            json!({"resource": "a/*", "action": "read"}),
            json!({"resource": "b", "action": "read"}),
        ]
    );
    let permission_cursor = permission_cursor.expect("a fourth permission follows");
    let (members, member_cursor) = page(node, "/group-members", &query, "members").await;
    assert_eq!(members, ["u0", "u1", "u2"]);
    let member_cursor = member_cursor.expect("more members follow");

    // The items a cursor names may go; the listing resumes after them all the same.
    node.remove_permission("p", "g0", "b", "read").await;
    node.unassign_user("p", "u2", "g0").await;
    node.unassign_user("p", "u3", "g0").await;
    let (permissions, next) = page(
        node,
        "/group-permissions",
        &[
            ("tenant", "p"),
            ("group", "g0"),
            ("cursor", &permission_cursor),
        ],
        "permissions",
    )
    .await;
    assert_eq!(
        (permissions, next),
        (vec![json!({"resource": "b", "action": "write"})], None)
    );
    let (members, next) = page(
        node,
        "/group-members",
        &[("tenant", "p"), ("group", "g0"), ("cursor", &member_cursor)],
        "members",
    )
    .await;
    assert_eq!((members, next), (vec![json!("u4")], None));

    // A tenant never written lists nothing; so does an empty group.
    let (status, body) = node.get("/groups", &[("tenant", "nobody")]).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"tenant": "nobody", "revision": 0, "groups": [], "next_cursor": null})
        )
    );
    let (members, next) = page(
        node,
        "/group-members",
        &[("tenant", "p"), ("group", "g1")],
        "members",
    )
    .await;
    assert_eq!((members.len(), next), (0, None));
}

#[tokio::test]
async fn bad_limits_bad_cursors_and_missing_groups_are_refused() {
    let cluster = seeded(Cluster::without_bus(1, &[]).await).await;
    let node = &cluster[0];
    node.add_permission("acme", "g", "docs/b", "read").await;
    node.assign_user("acme", "bob", "g").await;
    let one = [("tenant", "acme"), ("group", "g"), ("limit", "1")];
    let (_, group_cursor) = page(
        node,
        "/groups",
        &[("tenant", "acme"), ("limit", "1")],
        "groups",
    )
    .await;
    let (_, permission_cursor) = page(node, "/group-permissions", &one, "permissions").await;
    let (_, member_cursor) = page(node, "/group-members", &one, "members").await;
    let [group_cursor, permission_cursor, member_cursor] =
        [group_cursor, permission_cursor, member_cursor].map(|c| c.expect("a second page"));

    let before = observe(&cluster, "acme").await;
    let mut failures = Vec::new();
    let expect = |path: &str, query: Vec<(&str, &str)>, status: u16, code: &str| {
        let what = format!("{path} {query:?}");
        let query: Vec<(String, String)> = query
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (what, path.to_string(), query, status, code.to_string())
    };
    let mut cases = Vec::new();
    for path in ["/groups", "/group-permissions", "/group-members"] {
        let base = vec![("tenant", "acme"), ("group", "g")];
        let base = if path == "/groups" {
            base[..1].to_vec()
        } else {
            base
        };
        for limit in ["0", "1001", "-1", "1.5", "abc", "", "99999999999"] {
            let mut query = base.clone();
            query.push(("limit", limit));
            cases.push(expect(path, query, 400, "invalid_request"));
        }
        let flipped = group_cursor.replace('6', "f");
        for cursor in ["", "zz", "abc", "0a", "ff", "2a", flipped.as_str()] {
            let mut query = base.clone();
            query.push(("cursor", cursor));
            cases.push(expect(path, query, 400, "invalid_request"));
        }
    }
    // A cursor is good only for the listing, tenant and group that handed it out, even where
    // its names would parse: a group's name is a valid user name, and the reverse.
    let with = |base: &[(&'static str, &'static str)], cursor: &'static str| {
        let mut query = base.to_vec();
        query.push(("cursor", cursor));
        query
    };
    let [group_cursor, permission_cursor, member_cursor]: [&'static str; 3] =
        [group_cursor, permission_cursor, member_cursor].map(|c| &*String::leak(c));
    let groups: &[(&str, &str)] = &[("tenant", "acme")];
    let in_g: &[(&str, &str)] = &[("tenant", "acme"), ("group", "g")];
    let in_spare: &[(&str, &str)] = &[("tenant", "acme"), ("group", "spare")];
    let in_globex: &[(&str, &str)] = &[("tenant", "globex"), ("group", "g")];
    for (path, base, cursor) in [
        ("/groups", groups, permission_cursor),
        ("/groups", groups, member_cursor),
        ("/groups", &[("tenant", "globex")][..], group_cursor),
        ("/group-permissions", in_g, member_cursor),
        ("/group-permissions", in_g, group_cursor),
        ("/group-permissions", in_spare, permission_cursor),
        ("/group-members", in_g, permission_cursor),
        ("/group-members", in_g, group_cursor),
        ("/group-members", in_spare, member_cursor),
        ("/group-members", in_globex, member_cursor),
    ] {
        cases.push(expect(path, with(base, cursor), 400, "invalid_request"));
    }
    for path in ["/group-permissions", "/group-members"] {
        cases.push(expect(
            path,
            vec![("tenant", "acme"), ("group", "nope")],
            404,
            "not_found",
        ));
        cases.push(expect(
            path,
            vec![("tenant", "acme"), ("group", "a*")],
            400,
            "invalid_request",
        ));
        cases.push(expect(
            path,
            vec![("tenant", "acme")],
            400,
            "invalid_request",
        ));
    }
    let total = cases.len();
    for (what, path, query, status, code) in cases {
        let query: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (got, body) = node.get(&path, &query).await;
        if got.as_u16() != status || body["error"]["code"] != code.as_str() {
            failures.push(format!("{what}: {got} {body}, not {status} {code}"));
        }
    }
    let after = observe(&cluster, "acme").await;
    assert_refused_and_unchanged(&failures, total, &before, &after, "refused listings");
}
