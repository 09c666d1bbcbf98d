//! What the API promises beyond the scenario: request ids echoed, the evaluations' semantics,
//! search pages, wildcard grants in search results, and subjects of other types.

use super::*;

// ---------------------------------------------------------------------------------------------
// 3. Beyond the scenario
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_answer_echoes_the_request_id_the_client_sent() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    load_fixture(node, "acme").await;
    let pdp = Pdp::new(node, "/tenants/acme", None);
    let longest = "r".repeat(1024);
    let ids = [
        uuid::Uuid::new_v4().to_string(),
        "two words".to_owned(),
        "a:b;c=d, e/f".to_owned(),
        longest,
    ];
    let mut failures = Vec::new();
    let mut total = 0;
    for endpoint in ENDPOINTS {
        let valid = serde_json::to_vec(&valid_request(endpoint)).unwrap();
        for id in &ids {
            for (what, body) in [("answered", valid.clone()), ("refused", b"{".to_vec())] {
                let reply = pdp
                    .send(endpoint, body, Some("application/json"), Some(id))
                    .await;
                total += 1;
                let echoed = reply.headers.get(REQUEST_ID).map(|v| v.as_bytes().to_vec());
                let status_fine = match what {
                    "answered" => reply.status == StatusCode::OK,
                    _ => reply.status == StatusCode::BAD_REQUEST,
                };
                if !status_fine || echoed.as_deref() != Some(id.as_bytes()) {
                    failures.push(format!(
                        "{endpoint} {what} with id {:?}: {} with id {:?}",
                        &id[..id.len().min(40)],
                        reply.status,
                        echoed.map(|e| String::from_utf8_lossy(&e[..e.len().min(40)]).into_owned())
                    ));
                }
            }
        }
    }
    for id in &ids {
        let response = node
            .client
            .get(node.url("/.well-known/authzen-configuration/tenants/acme"))
            .header(REQUEST_ID, id.as_str())
            .send()
            .await
            .unwrap();
        total += 1;
        let echoed = response
            .headers()
            .get(REQUEST_ID)
            .map(|v| v.as_bytes().to_vec());
        if response.status() != StatusCode::OK || echoed.as_deref() != Some(id.as_bytes()) {
            failures.push(format!(
                "metadata with id {:?}: {} with id {echoed:?}",
                &id[..id.len().min(40)],
                response.status()
            ));
        }
    }
    assert_no_failures(&failures, total);
}

/// A check as `/check-access` takes it: user, resource, action.
type NativeCheck = (&'static str, &'static str, &'static str);

#[tokio::test]
async fn evaluations_semantics_stop_where_documented_and_a_bad_item_is_answered_in_its_place() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    load_fixture(node, "acme").await;
    let pdp = Pdp::new(node, "/tenants/acme", None);
    let allowed = evaluation(user("alice"), "read", record("record-1"));
    let denied = evaluation(user("bob"), "write", record("record-1"));
    assert!(node.check("acme", "alice", "record/record-1", "read").await);
    assert!(!node.check("acme", "bob", "record/record-1", "write").await);

    // Items by letter: A allowed, D denied, X not an object. `kept` answers are expected, each
    // with its own decision.
    let cases = [
        (None, "AADAD", 5),
        (Some("execute_all"), "AADAD", 5),
        (Some("deny_on_first_deny"), "AADA", 3),
        (Some("deny_on_first_deny"), "AA", 2),
        (Some("deny_on_first_deny"), "DA", 1),
        (Some("deny_on_first_deny"), "AXA", 2),
        (Some("permit_on_first_permit"), "DDAD", 3),
        (Some("permit_on_first_permit"), "DD", 2),
        (Some("permit_on_first_permit"), "AD", 1),
        (Some("permit_on_first_permit"), "DXA", 3),
        (Some("permit_on_first_permit"), "DXD", 3),
        (Some("execute_all"), "XAXD", 4),
    ];
    for (semantic, letters, kept) in cases {
        let items: Vec<Value> = letters
            .chars()
            .map(|letter| match letter {
                'A' => allowed.clone(),
                'D' => denied.clone(),
                _ => json!("not an evaluation"),
            })
            .collect();
        let mut request = json!({ "evaluations": items });
        if let Some(semantic) = semantic {
            request["options"] = json!({ "evaluations_semantic": semantic });
        }
        let answered = evaluation_items(&pdp.post(EVALUATIONS, &request).await)
            .unwrap_or_else(|problem| panic!("{semantic:?} {letters}: {problem}"));
        assert_eq!(answered.len(), kept, "{semantic:?} {letters}: {answered:?}");
        for (letter, item) in letters.chars().zip(&answered) {
            match letter {
                'A' => assert_eq!(item, &json!({"decision": true}), "{semantic:?} {letters}"),
                'D' => assert_eq!(item, &json!({"decision": false}), "{semantic:?} {letters}"),
                _ => assert!(is_item_error(item), "{semantic:?} {letters}: {item}"),
            }
        }
    }

    // Defaults are whole entities: an item's own entity replaces the default, never merges
    // with it. Each item with the native check that must answer it, or none when the item
    // must be refused in its place.
    let long = "x".repeat(300);
    let items: Vec<(Value, Option<NativeCheck>)> = vec![
        (json!({}), Some(("alice", "record/record-1", "write"))),
        (
            json!({ "subject": user("bob") }),
            Some(("bob", "record/record-1", "write")),
        ),
        (
            json!({"subject": user("bob"), "action": action("read")}),
            Some(("bob", "record/record-1", "read")),
        ),
        (
            json!({ "resource": record("record-2") }),
            Some(("alice", "record/record-2", "write")),
        ),
        (json!({"subject": {"id": "bob"}}), None),
        (json!({"resource": {"type": "record"}}), None),
        (json!({"action": {}}), None),
        (json!("not an object"), None),
        (json!(7), None),
        (json!([]), None),
        (json!([user("bob")]), None),
        (json!(null), None),
        (json!({"subject": "alice"}), None),
        (json!({"action": {"name": 123}}), None),
        (json!({ "resource": record(&long) }), None),
        (json!({ "subject": user("ali*ce") }), None),
        (json!({"context": "not an object"}), None),
        (
            json!({"resource": {"type": "record", "id": "record-1", "properties": []}}),
            None,
        ),
        (
            json!({"subject": user("carol"), "action": action("read"),
                   "resource": entity("document", "d-1"), "context": {"unused": true}}),
            Some(("carol", "document/d-1", "read")),
        ),
    ];
    let request = json!({
        "subject": user("alice"), "action": action("write"), "resource": record("record-1"),
        "evaluations": items.iter().map(|(item, _)| item.clone()).collect::<Vec<_>>(),
    });
    let answered = evaluation_items(&pdp.post(EVALUATIONS, &request).await).unwrap();
    assert_eq!(answered.len(), items.len(), "{answered:?}");
    let mut decisions_seen = BTreeSet::new();
    let mut failures = Vec::new();
    for ((item, expected), answer) in items.iter().zip(&answered) {
        match expected {
            Some((user, resource, action)) => {
                let allowed = node.check("acme", user, resource, action).await;
                decisions_seen.insert(allowed);
                if answer != &json!({ "decision": allowed }) {
                    failures.push(format!("{item}: {answer}, expected {allowed}"));
                }
            }
            None if !is_item_error(answer) => {
                failures.push(format!("{item}: {answer}, expected an item error"));
            }
            None => {}
        }
    }
    assert_no_failures(&failures, items.len());
    assert_eq!(
        decisions_seen.len(),
        2,
        "both decisions among the answered items"
    );

    // 1000 items, each answered as the native check answers it.
    let users = ["alice", "bob", "carol", "nobody"];
    let resources = [
        record("record-1"),
        record("record-2"),
        entity("document", "d-1"),
        record("x"),
    ];
    let actions = ["read", "write", "delete"];
    let mut items = Vec::new();
    let mut checks = Vec::new();
    for i in 0..1000 {
        let (u, r, a) = (users[i % 4], &resources[(i / 4) % 4], actions[(i / 16) % 3]);
        items.push(evaluation(user(u), a, r.clone()));
        let resource = format!(
            "{}/{}",
            r["type"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        checks.push(json!({"tenant": "acme", "user": u, "resource": resource, "action": a}));
    }
    let (status, native) = node
        .post("/check-access/batch", json!({ "checks": checks }))
        .await;
    assert_eq!(status, StatusCode::OK, "{native}");
    let expected: Vec<bool> = native["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["allowed"].as_bool().unwrap())
        .collect();
    assert!(expected.contains(&true) && expected.contains(&false));
    let got = plain_decisions(
        &pdp.post(EVALUATIONS, &json!({ "evaluations": items }))
            .await,
    )
    .expect("1000 evaluations");
    assert_eq!(got, expected);
    items.push(allowed.clone());
    let reply = pdp
        .post(EVALUATIONS, &json!({ "evaluations": items }))
        .await;
    refused(&reply, 400, "invalid_request").expect("1001 evaluations");
    let reply = pdp
        .post(
            EVALUATIONS,
            &json!({"evaluations": [allowed], "options": {"evaluations_semantic": "majority"}}),
        )
        .await;
    refused(&reply, 400, "invalid_request").expect("an unknown semantic");
}

/// Every page of a search with `limit`, checking each page's size, count and token.
async fn pages(pdp: &Pdp, endpoint: &str, body: &Value, limit: u64) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut page_request = json!({ "limit": limit });
        if let Some(token) = &token {
            page_request["token"] = json!(token);
        }
        let page = page(&pdp.post(endpoint, &with(body, "page", page_request)).await)
            .unwrap_or_else(|problem| panic!("page {}: {problem}", pages.len() + 1));
        assert!(page.results.len() as u64 <= limit, "{:?}", page.results);
        let last = page.next_token.is_empty();
        if !last {
            assert_eq!(
                page.results.len() as u64,
                limit,
                "a short page before the last"
            );
        }
        pages.push(page.results);
        if last {
            return pages;
        }
        token = Some(page.next_token);
        assert!(pages.len() < 1000, "pages without end");
    }
}

#[tokio::test]
async fn searches_come_in_pages_that_list_each_result_once_in_order() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    for (group, resource) in [
        ("readers", "record/*"),
        ("one", "record/r-1"),
        ("other", "record/r-2"),
    ] {
        node.create_group("acme", group).await;
        node.add_permission("acme", group, resource, "read").await;
    }
    let mut users: Vec<String> = (0..250).map(|n| format!("u{n:03}")).collect();
    for (n, name) in users.iter().enumerate() {
        let group = ["readers", "one", "other"][n % 3];
        node.assign_user("acme", name, group).await;
    }
    node.assign_user("acme", "service/ci", "one").await;
    users.extend(["service/ci".to_owned(), "nobody".to_owned()]);
    let expected = natively_allowed(node, "acme", &users, "record/r-1", "read").await;
    let mut sorted = expected.clone();
    sorted.sort();
    let expected = sorted;
    assert!(
        expected.len() > 107,
        "enough users for pages of 7 and of 100"
    );
    let pdp = Pdp::new(node, "/tenants/acme", None);
    let search = subject_search("user", "read", record("r-1"));

    let limited = pages(&pdp, SUBJECT_SEARCH, &search, 7).await;
    assert_eq!(limited.len(), expected.len().div_ceil(7));
    let listed = ids(&limited.concat(), "user").unwrap();
    assert_eq!(listed, expected, "pages of 7");

    // Without a limit, pages of 100; a follow-up without a limit as well.
    let first = page(&pdp.post(SUBJECT_SEARCH, &search).await).unwrap();
    assert_eq!(first.results.len(), 100);
    assert!(!first.next_token.is_empty());
    let first_of_7 = page(
        &pdp.post(SUBJECT_SEARCH, &with(&search, "page", json!({"limit": 7})))
            .await,
    )
    .unwrap();
    let follow_up = page(
        &pdp.post(
            SUBJECT_SEARCH,
            &with(&search, "page", json!({"token": first_of_7.next_token})),
        )
        .await,
    )
    .unwrap();
    assert_eq!(ids(&follow_up.results, "user").unwrap(), expected[7..107]);
    let everything = page(
        &pdp.post(
            SUBJECT_SEARCH,
            &with(&search, "page", json!({"limit": 5000})),
        )
        .await,
    )
    .unwrap();
    assert_eq!(ids(&everything.results, "user").unwrap(), expected);
    assert_eq!(everything.next_token, "");

    // A token resumes its own search only.
    let token = first_of_7.next_token.clone();
    node.create_group("globex", "readers").await;
    node.add_permission("globex", "readers", "record/*", "read")
        .await;
    node.assign_user("globex", "u000", "readers").await;
    let with_token = |body: &Value| with(body, "page", json!({ "token": token }));
    let same_again = page(&pdp.post(SUBJECT_SEARCH, &with_token(&search)).await).unwrap();
    assert_eq!(ids(&same_again.results, "user").unwrap(), expected[7..107]);
    for (what, target, endpoint, body) in [
        (
            "another resource",
            &pdp,
            SUBJECT_SEARCH,
            subject_search("user", "read", record("r-2")),
        ),
        (
            "another action",
            &pdp,
            SUBJECT_SEARCH,
            subject_search("user", "write", record("r-1")),
        ),
        (
            "another subject type",
            &pdp,
            SUBJECT_SEARCH,
            subject_search("service", "read", record("r-1")),
        ),
        (
            "another endpoint",
            &pdp,
            RESOURCE_SEARCH,
            resource_search(user("u000"), "read", "record"),
        ),
        (
            "another tenant",
            &Pdp::new(node, "/tenants/globex", None),
            SUBJECT_SEARCH,
            search.clone(),
        ),
    ] {
        let reply = target.post(endpoint, &with_token(&body)).await;
        refused(&reply, 400, "invalid_request")
            .unwrap_or_else(|problem| panic!("{what}: {problem}"));
    }

    // Resources and actions page the same way.
    let many_records: Vec<String> = (0..30).map(|n| format!("record/c-{n:02}")).collect();
    let grants: Vec<(&str, &str)> = many_records.iter().map(|r| (r.as_str(), "read")).collect();
    grant(node, "acme", "collector", &grants).await;
    let search = resource_search(user("collector"), "read", "record");
    let listed = ids(
        &pages(&pdp, RESOURCE_SEARCH, &search, 7).await.concat(),
        "record",
    )
    .unwrap();
    let expected: Vec<String> = (0..30).map(|n| format!("c-{n:02}")).collect();
    assert_eq!(listed, expected);
    // A resource search's token does not resume a subject search.
    let resource_page = page(
        &pdp.post(RESOURCE_SEARCH, &with(&search, "page", json!({"limit": 7})))
            .await,
    )
    .unwrap();
    let reply = pdp
        .post(
            SUBJECT_SEARCH,
            &with(
                &subject_search("user", "read", record("r-1")),
                "page",
                json!({ "token": resource_page.next_token }),
            ),
        )
        .await;
    refused(&reply, 400, "invalid_request").expect("a resource search's token in a subject search");

    let many_actions: Vec<String> = (0..20).map(|n| format!("a-{n:02}")).collect();
    let grants: Vec<(&str, &str)> = many_actions
        .iter()
        .map(|a| ("record/r-9", a.as_str()))
        .collect();
    grant(node, "acme", "busy", &grants).await;
    let search = action_search(user("busy"), record("r-9"));
    let listed = names(&pages(&pdp, ACTION_SEARCH, &search, 7).await.concat()).unwrap();
    assert_eq!(listed, many_actions);
}

#[tokio::test]
async fn resource_and_action_searches_show_wildcard_grants_as_wildcards() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    let grants: &[(&str, &[(&str, &str)])] = &[
        ("prefix-all", &[("record/*", "read")]),
        ("everything", &[("*", "read")]),
        ("some", &[("record/ab*", "read")]),
        (
            "exact",
            &[
                ("record/x", "read"),
                ("record/y", "read"),
                ("record/y", "write"),
                ("document/d", "read"),
                ("rec", "read"),
                ("record", "read"),
            ],
        ),
        ("any-action", &[("record/z", "*")]),
        ("short-prefix", &[("rec*", "read")]),
        (
            "near-miss",
            &[
                ("recorder*", "read"),
                ("records/*", "read"),
                ("recordx", "read"),
            ],
        ),
        (
            "mixed",
            &[
                ("record/*", "read"),
                ("record/x", "read"),
                ("record/ab*", "read"),
                ("*", "read"),
            ],
        ),
        ("other-action", &[("record/q", "write")]),
        (
            "actor",
            &[
                ("record/x", "read"),
                ("record/x", "write"),
                ("record/*", "list"),
                ("*", "audit"),
                ("record/x", "*"),
                ("record/y", "delete"),
                ("document/x", "share"),
            ],
        ),
    ];
    for (user, grants) in grants {
        grant(node, "acme", user, grants).await;
    }
    // The "x" grant of `mixed` a second time, through another group: still one result.
    node.create_group("acme", "more").await;
    node.add_permission("acme", "more", "record/x", "read")
        .await;
    node.assign_user("acme", "mixed", "more").await;
    let pdp = Pdp::new(node, "/tenants/acme", None);

    let resources = [
        ("prefix-all", "read", "record", vec!["*"]),
        ("everything", "read", "record", vec!["*"]),
        ("everything", "read", "document", vec!["*"]),
        ("everything", "write", "record", vec![]),
        ("some", "read", "record", vec!["ab*"]),
        ("exact", "read", "record", vec!["x", "y"]),
        ("exact", "write", "record", vec!["y"]),
        ("exact", "read", "document", vec!["d"]),
        ("any-action", "read", "record", vec!["z"]),
        ("any-action", "write", "record", vec!["z"]),
        ("short-prefix", "read", "record", vec!["*"]),
        ("short-prefix", "read", "recipe", vec!["*"]),
        ("short-prefix", "read", "document", vec![]),
        ("near-miss", "read", "record", vec![]),
        ("mixed", "read", "record", vec!["*", "ab*", "x"]),
        ("other-action", "read", "record", vec![]),
        ("other-action", "write", "record", vec!["q"]),
    ];
    for (subject, action_name, resource_type, expected) in resources {
        let search = resource_search(user(subject), action_name, resource_type);
        let got = search_all(&pdp, RESOURCE_SEARCH, &search, None)
            .await
            .and_then(|results| ids(&results, resource_type))
            .unwrap_or_else(|problem| panic!("{subject} {action_name} {resource_type}: {problem}"));
        assert_eq!(got, expected, "{subject} {action_name} {resource_type}");
        // Each result is a resource the subject is allowed, read literally.
        for id in &got {
            let resource = format!("{resource_type}/{id}");
            assert!(
                node.check("acme", subject, &resource, action_name).await,
                "{subject} {action_name} {resource}"
            );
        }
    }

    let actions = [
        (
            "actor",
            record("x"),
            vec!["*", "audit", "list", "read", "write"],
        ),
        ("actor", record("y"), vec!["audit", "delete", "list"]),
        ("actor", entity("document", "x"), vec!["audit", "share"]),
        ("any-action", record("z"), vec!["*"]),
        ("any-action", record("x"), vec![]),
        ("exact", record("x"), vec!["read"]),
        ("everything", entity("anything", "at-all"), vec!["read"]),
    ];
    for (subject, resource, expected) in actions {
        let search = action_search(user(subject), resource.clone());
        let got = search_all(&pdp, ACTION_SEARCH, &search, None)
            .await
            .and_then(|results| names(&results))
            .unwrap_or_else(|problem| panic!("{subject} {resource}: {problem}"));
        assert_eq!(got, expected, "{subject} {resource}");
        let native_resource = format!(
            "{}/{}",
            resource["type"].as_str().unwrap(),
            resource["id"].as_str().unwrap()
        );
        // The native check agrees on every action listed, and on every action it allows.
        for action_name in ["read", "write", "list", "audit", "delete", "share", "other"] {
            let allowed = node
                .check("acme", subject, &native_resource, action_name)
                .await;
            let listed = got.iter().any(|n| n == action_name || n == "*");
            assert_eq!(listed, allowed, "{subject} {action_name} {native_resource}");
        }
    }
}

#[tokio::test]
async fn subjects_of_other_types_are_users_named_type_slash_id() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    node.create_group("acme", "bots").await;
    node.add_permission("acme", "bots", "record/r-1", "read")
        .await;
    node.add_permission("acme", "bots", "deploy/prod", "run")
        .await;
    for member in [
        "service/ci",
        "service/cd",
        "robot/r2",
        "alice",
        "services/x",
    ] {
        node.assign_user("acme", member, "bots").await;
    }
    let pdp = Pdp::new(node, "/tenants/acme", None);
    let users: Vec<String> = [
        "service/ci",
        "service/cd",
        "robot/r2",
        "alice",
        "services/x",
        "nobody",
    ]
    .map(String::from)
    .to_vec();
    let mut allowed = natively_allowed(node, "acme", &users, "record/r-1", "read").await;
    allowed.sort();

    let subjects = |subject_type: &'static str| {
        let pdp = pdp.clone();
        async move {
            let search = subject_search(subject_type, "read", record("r-1"));
            search_all(&pdp, SUBJECT_SEARCH, &search, None)
                .await
                .and_then(|results| ids(&results, subject_type))
                .unwrap_or_else(|problem| panic!("{subject_type}: {problem}"))
        }
    };
    assert_eq!(subjects("user").await, allowed);
    let of_type = |prefix: &str| -> Vec<String> {
        allowed
            .iter()
            .filter_map(|u| u.strip_prefix(prefix).map(str::to_owned))
            .collect()
    };
    assert_eq!(subjects("service").await, of_type("service/"));
    assert_eq!(subjects("service").await, ["cd", "ci"]);
    assert_eq!(subjects("robot").await, of_type("robot/"));
    assert_eq!(subjects("serv").await, Vec::<String>::new());

    for (subject, expected) in [
        (entity("service", "ci"), true),
        (user("service/ci"), true),
        (entity("robot", "r2"), true),
        (entity("service", "nobody"), false),
        (entity("users", "alice"), false),
        (user("alice"), true),
    ] {
        let reply = pdp
            .post(
                EVALUATION,
                &evaluation(subject.clone(), "read", record("r-1")),
            )
            .await;
        expect_decision(&reply, expected).unwrap_or_else(|problem| panic!("{subject}: {problem}"));
    }
    let resources = search_all(
        &pdp,
        RESOURCE_SEARCH,
        &resource_search(entity("service", "ci"), "run", "deploy"),
        None,
    )
    .await
    .and_then(|results| ids(&results, "deploy"))
    .unwrap();
    assert_eq!(resources, ["prod"]);
    let actions = search_all(
        &pdp,
        ACTION_SEARCH,
        &action_search(entity("service", "ci"), entity("deploy", "prod")),
        None,
    )
    .await
    .and_then(|results| names(&results))
    .unwrap();
    assert_eq!(actions, ["run"]);
}
