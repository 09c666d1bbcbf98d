//! The certification scenario's Core and Discovery levels, at a tenant's base and at the root,
//! and the metadata as each base URL advertises it.

use super::*;

// ---------------------------------------------------------------------------------------------
// 1. The certification scenario
// ---------------------------------------------------------------------------------------------

/// What is wrong with the metadata `pdp` publishes (c-6), if anything: 200 with JSON, the PDP
/// identifier, and each endpoint an absolute URL of the identifier's scheme under it.
async fn metadata_problems(pdp: &Pdp, host: Option<&str>) -> Outcome {
    let reply = pdp.metadata(host).await;
    let body = success(&reply)?;
    let identifier = match host {
        Some(host) => format!("http://{host}{}", pdp.path),
        None => pdp.identifier(),
    };
    let scheme = identifier
        .split_once("://")
        .map_or("", |(scheme, _)| scheme);
    same(
        &body["policy_decision_point"],
        &json!(identifier),
        "policy_decision_point",
    )?;
    absolute_url(&identifier, scheme)?;
    for (key, endpoint) in METADATA_ENDPOINTS {
        same(&body[key], &json!(format!("{identifier}{endpoint}")), key)?;
        absolute_url(body[key].as_str().unwrap(), scheme)?;
    }
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected: Vec<&str> = METADATA_ENDPOINTS.iter().map(|(key, _)| *key).collect();
    expected.push("policy_decision_point");
    keys.sort();
    expected.sort();
    same(&keys, &expected, "the metadata's keys")
}

/// Runs every check of the scenario's Basic, Batch and Search Core levels, the checks that
/// apply to all levels, and Discovery, against `pdp`, whose tenant (`tenant` to `native`) holds
/// [`load_fixture`]'s policy.
async fn certification_scenario(pdp: &Pdp, native: &Api, tenant: &str) -> Findings {
    let mut found = Findings::default();

    found.note("c-6 metadata", metadata_problems(pdp, None).await);

    // Basic Core. `decision` takes nothing but a lone boolean, which is c-2-3 for each answer.
    let rule_1 = evaluation(user("alice"), "read", record("record-1"));
    let rule_2 = evaluation(user("alice"), "write", record("record-1"));
    let rule_3 = evaluation(user("bob"), "read", record("record-1"));
    let rule_4 = evaluation(user("bob"), "write", record("record-1"));
    found.note(
        "c-2-2-1 permit",
        expect_decision(&pdp.post(EVALUATION, &rule_1).await, true),
    );
    found.note(
        "c-2-2-2 deny",
        expect_decision(&pdp.post(EVALUATION, &rule_4).await, false),
    );
    found.note(
        "c-2-2-3 with context",
        expect_decision(
            &pdp.post(EVALUATION, &with(&rule_1, "context", context()))
                .await,
            true,
        ),
    );
    let with_properties = json!({
        "subject": {"type": "user", "id": "alice", "properties": {"team": "north", "level": 3}},
        "action": {"name": "read", "properties": {"via": "api"}},
        "resource": {"type": "record", "id": "record-1",
                     "properties": {"status": "active", "tags": ["x"]}},
    });
    found.note(
        "c-2-2-8 with properties",
        expect_decision(&pdp.post(EVALUATION, &with_properties).await, true),
    );
    let with_unknown = with(
        &with(&rule_1, "colour", json!("red")),
        "nextVersion",
        json!({"deep": [1, {"x": null}]}),
    );
    found.note(
        "c-2-2-9 unknown fields",
        expect_decision(&pdp.post(EVALUATION, &with_unknown).await, true),
    );
    for missing in ["subject", "action", "resource"] {
        found.note(
            &format!("c-2-4-1 missing {missing}"),
            refused(
                &pdp.post(EVALUATION, &without(&rule_1, missing)).await,
                400,
                "invalid_request",
            ),
        );
    }
    for (entity, field) in [
        ("subject", "type"),
        ("subject", "id"),
        ("action", "name"),
        ("resource", "type"),
        ("resource", "id"),
    ] {
        found.note(
            &format!("c-2-4-2 {entity} missing {field}"),
            refused(
                &pdp.post(EVALUATION, &without_field(&rule_1, entity, field))
                    .await,
                400,
                "invalid_request",
            ),
        );
    }
    // c-2-4-3 to c-2-4-5 apply at every level, so at every endpoint.
    for endpoint in ENDPOINTS {
        let valid = serde_json::to_vec(&valid_request(endpoint)).unwrap();
        for (id, body, content_type) in [
            ("c-2-4-3 text/plain", valid.clone(), Some("text/plain")),
            (
                "c-2-4-3 form",
                valid.clone(),
                Some("application/x-www-form-urlencoded"),
            ),
            (
                "c-2-4-4 malformed JSON",
                br#"{"subject": {"type": "user""#.to_vec(),
                Some("application/json"),
            ),
            ("c-2-4-5 empty body", Vec::new(), Some("application/json")),
        ] {
            found.note(
                &format!("{id} at {endpoint}"),
                refused(
                    &pdp.send(endpoint, body, content_type, None).await,
                    400,
                    "invalid_request",
                ),
            );
        }
    }
    found.note(
        "c-2-4-6 subject a string",
        refused(
            &pdp.post(EVALUATION, &with(&rule_1, "subject", json!("alice")))
                .await,
            400,
            "invalid_request",
        ),
    );
    found.note(
        "c-2-4-6 action.name a number",
        refused(
            &pdp.post(
                EVALUATION,
                &with_field(&rule_1, "action", "name", json!(123)),
            )
            .await,
            400,
            "invalid_request",
        ),
    );
    // c-2-5 applies at every level, so at every endpoint.
    for endpoint in ENDPOINTS {
        let body = serde_json::to_vec(&valid_request(endpoint)).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        let reply = pdp
            .send(endpoint, body.clone(), Some("application/json"), Some(&id))
            .await;
        found.note(
            &format!("c-2-5-1 echo at {endpoint}"),
            success(&reply).and_then(|_| {
                same(
                    &reply.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()),
                    &Some(id.as_str()),
                    "x-request-id",
                )
            }),
        );
        let reply = pdp
            .send(endpoint, body, Some("application/json"), None)
            .await;
        found.note(
            &format!("c-2-5-2 no request id at {endpoint}"),
            success(&reply).and_then(|_| {
                match reply.headers.get(REQUEST_ID).map(|v| v.as_bytes()) {
                    Some(id) if !id.is_empty() => Ok(()),
                    other => Err(format!("x-request-id {other:?}")),
                }
            }),
        );
    }
    for round in 1..=3 {
        for (rule, body, expected) in [
            (1, &rule_1, true),
            (2, &rule_2, true),
            (3, &rule_3, true),
            (4, &rule_4, false),
        ] {
            found.note(
                &format!("c-2-6 rule {rule}, round {round}"),
                expect_decision(&pdp.post(EVALUATION, body).await, expected),
            );
        }
    }

    // Batch Core. `evaluation_items` takes only a lone `evaluations` array of items with a
    // boolean `decision`, which is c-3-3-3 and c-3-3-4 for each answer.
    let request = json!({
        "subject": user("alice"), "action": action("read"),
        "evaluations": [{"resource": record("record-1")}, {"resource": record("record-2")}],
    });
    let expected = vec![
        native
            .check(tenant, "alice", "record/record-1", "read")
            .await,
        native
            .check(tenant, "alice", "record/record-2", "read")
            .await,
    ];
    found.note(
        "c-3-2-1 defaults, c-3-3-1 length, c-3-3-2 order",
        plain_decisions(&pdp.post(EVALUATIONS, &request).await)
            .and_then(|got| same(&got, &expected, "decisions")),
    );
    let fixture_batch = json!({
        "subject": user("bob"), "resource": record("record-1"),
        "evaluations": [{"action": action("read")}, {"action": action("write")}],
    });
    for round in 1..=3 {
        found.note(
            &format!("c-3-2-2 rules 3 and 4, in order (c-2-6 round {round})"),
            plain_decisions(&pdp.post(EVALUATIONS, &fixture_batch).await)
                .and_then(|got| same(&got, &vec![true, false], "decisions")),
        );
    }
    let request = json!({"evaluations": [rule_1, rule_4]});
    found.note(
        "c-3-2-5 no defaults",
        plain_decisions(&pdp.post(EVALUATIONS, &request).await)
            .and_then(|got| same(&got, &vec![true, false], "decisions")),
    );
    let request = json!({
        "subject": user("alice"), "action": action("read"), "context": context(),
        "evaluations": [
            {"resource": record("record-1")},
            {"resource": record("record-2"), "context": {"at": "2031-02-03T05:00:00Z", "by": "item"}},
        ],
    });
    let expected = vec![
        native
            .check(tenant, "alice", "record/record-1", "read")
            .await,
        native
            .check(tenant, "alice", "record/record-2", "read")
            .await,
    ];
    found.note(
        "c-3-2-6 context defaults",
        plain_decisions(&pdp.post(EVALUATIONS, &request).await)
            .and_then(|got| same(&got, &expected, "decisions")),
    );
    let request = json!({
        "subject": user("alice"), "action": action("read"),
        "options": {"evaluations_semantic": "execute_all"},
        "evaluations": [{"resource": record("record-1")}, {}],
    });
    found.note(
        "c-3-4-1 an item without resource",
        evaluation_items(&pdp.post(EVALUATIONS, &request).await).and_then(|items| {
            let fine = items.len() == 2
                && items[0] == json!({"decision": true})
                && items[1]["decision"] == false
                && items[1]["context"].is_object();
            if fine {
                Ok(())
            } else {
                Err(format!("items {items:?}"))
            }
        }),
    );
    found.note(
        "c-3-4-2 no evaluations",
        expect_decision(&pdp.post(EVALUATIONS, &rule_1).await, true),
    );
    found.note(
        "c-3-4-3 empty evaluations",
        expect_decision(
            &pdp.post(EVALUATIONS, &with(&rule_1, "evaluations", json!([])))
                .await,
            true,
        ),
    );

    // Search Core.
    let s1 = subject_search("user", "read", record("record-1"));
    let s1_results = search_all(pdp, SUBJECT_SEARCH, &s1, None).await;
    found.note(
        "c-4-2-1 S1",
        s1_results
            .clone()
            .and_then(|results| ids(&results, "user"))
            .and_then(|ids| includes(&ids, &["alice", "bob"], "subjects")),
    );
    let s1_results = s1_results.unwrap_or_default();
    for (id, request) in [
        ("c-4-2-2 with context", with(&s1, "context", context())),
        (
            "c-4-2-3 with subject.id",
            with(&s1, "subject", user("alice")),
        ),
    ] {
        found.note(
            id,
            search_all(pdp, SUBJECT_SEARCH, &request, None)
                .await
                .and_then(|got| same(&got, &s1_results, "results")),
        );
    }
    let s2 = resource_search(user("alice"), "read", "record");
    let s2_results = search_all(pdp, RESOURCE_SEARCH, &s2, None).await;
    found.note(
        "c-4-3-1 S2",
        s2_results
            .clone()
            .and_then(|results| ids(&results, "record"))
            .and_then(|ids| includes(&ids, &["record-1"], "resources")),
    );
    let s2_results = s2_results.unwrap_or_default();
    for (id, request) in [
        ("c-4-3-2 with context", with(&s2, "context", context())),
        (
            "c-4-3-3 with resource.id",
            with(&s2, "resource", record("record-1")),
        ),
    ] {
        found.note(
            id,
            search_all(pdp, RESOURCE_SEARCH, &request, None)
                .await
                .and_then(|got| same(&got, &s2_results, "results")),
        );
    }
    let s3 = action_search(user("alice"), record("record-1"));
    let s3_results = search_all(pdp, ACTION_SEARCH, &s3, None).await;
    found.note(
        "c-4-4-1 S3",
        s3_results
            .clone()
            .and_then(|results| names(&results))
            .and_then(|names| includes(&names, &["read", "write"], "actions")),
    );
    let s3_results = s3_results.unwrap_or_default();
    found.note(
        "c-4-4-2 with context",
        search_all(pdp, ACTION_SEARCH, &with(&s3, "context", context()), None)
            .await
            .and_then(|got| same(&got, &s3_results, "results")),
    );
    for round in 1..=3 {
        found.note(
            &format!("c-2-6 S1 again, round {round}"),
            search_all(pdp, SUBJECT_SEARCH, &s1, None)
                .await
                .and_then(|got| same(&got, &s1_results, "results")),
        );
    }
    // c-4-5: S1 has two results, so a page of one leaves a token to follow.
    let first = page(
        &pdp.post(SUBJECT_SEARCH, &with(&s1, "page", json!({"limit": 1})))
            .await,
    );
    found.note(
        "c-4-5-1 limit 1",
        first.as_ref().map_err(Clone::clone).and_then(|first| {
            same(&first.results.len(), &1, "results on the page")?;
            if first.next_token.is_empty() {
                return Err("no `next_token` with more results left".into());
            }
            Ok(())
        }),
    );
    if let Ok(first) = first {
        let mut results = first.results;
        let mut token = first.next_token;
        let mut followed = Ok(());
        while !token.is_empty() && followed.is_ok() && results.len() <= s1_results.len() {
            match page(
                &pdp.post(
                    SUBJECT_SEARCH,
                    &with(&s1, "page", json!({ "token": token })),
                )
                .await,
            ) {
                Ok(next) => {
                    if next.results.is_empty() && !next.next_token.is_empty() {
                        followed = Err("an empty page that is not the last".into());
                    }
                    results.extend(next.results);
                    token = next.next_token;
                }
                Err(problem) => followed = Err(problem),
            }
        }
        found.note(
            "c-4-5-2 follow the token, c-4-5-3 pages",
            followed.and_then(|()| {
                same(&token, &String::new(), "the last next_token")?;
                same(&results, &s1_results, "the pages' results")
            }),
        );
    }
    for (id, endpoint, request) in [
        (
            "c-4-6-1 unknown subject id, action search",
            ACTION_SEARCH,
            action_search(user("nonexistent-user"), record("record-1")),
        ),
        (
            "c-4-6-1 unknown subject id, resource search",
            RESOURCE_SEARCH,
            resource_search(user("nonexistent-user"), "read", "record"),
        ),
        // bob reads every record, whatever its id: the action is the identifier no one has.
        (
            "c-4-6-1 unknown action, subject search",
            SUBJECT_SEARCH,
            subject_search("user", "nonexistent-action", record("record-1")),
        ),
        (
            "c-4-6-2 unknown subject type, subject search",
            SUBJECT_SEARCH,
            subject_search("spaceship", "read", record("record-1")),
        ),
        (
            "c-4-6-2 unknown resource type, resource search",
            RESOURCE_SEARCH,
            resource_search(user("alice"), "read", "spaceship"),
        ),
        (
            "c-4-6-2 unknown resource type, action search",
            ACTION_SEARCH,
            action_search(user("alice"), entity("spaceship", "record-1")),
        ),
        (
            "c-4-6-2 unknown subject type, action search",
            ACTION_SEARCH,
            action_search(entity("spaceship", "alice"), record("record-1")),
        ),
    ] {
        found.note(
            id,
            page(&pdp.post(endpoint, &request).await).and_then(|page| {
                same(&page.results, &Vec::new(), "results")?;
                same(&page.next_token, &String::new(), "next_token")
            }),
        );
    }
    for (id, endpoint, request) in [
        (
            "c-4-7-1 subject search without action",
            SUBJECT_SEARCH,
            without(&s1, "action"),
        ),
        (
            "c-4-7-1 resource search without subject",
            RESOURCE_SEARCH,
            without(&s2, "subject"),
        ),
        (
            "c-4-7-1 action search without resource",
            ACTION_SEARCH,
            without(&s3, "resource"),
        ),
        (
            "c-4-7-2 subject search, resource without id",
            SUBJECT_SEARCH,
            with(&s1, "resource", kind("record")),
        ),
        (
            "c-4-7-2 resource search, subject without id",
            RESOURCE_SEARCH,
            with(&s2, "subject", kind("user")),
        ),
        (
            "c-4-7-2 action search, subject without id",
            ACTION_SEARCH,
            with(&s3, "subject", kind("user")),
        ),
    ] {
        found.note(
            id,
            refused(&pdp.post(endpoint, &request).await, 400, "invalid_request"),
        );
    }

    // Transport, for all levels. Every answer above was read as 200 with a JSON content type
    // (c-5-2), every missing field refused (c-5-3), and the request id echoed (c-5-4).
    found.note(
        "c-5-1 application/json with a charset",
        expect_decision(
            &pdp.send(
                EVALUATION,
                rule_1.to_string(),
                Some("application/json; charset=utf-8"),
                None,
            )
            .await,
            true,
        ),
    );
    for endpoint in ENDPOINTS {
        let valid = valid_request(endpoint);
        let mut unknown = with(&valid, "futureField", json!({"nested": [true]}));
        for entity in ["subject", "action", "resource"] {
            if unknown[entity].is_object() {
                unknown[entity]["later"] = json!(1);
            }
        }
        let plain = pdp.post(endpoint, &valid).await;
        let extended = pdp.post(endpoint, &unknown).await;
        found.note(
            &format!("c-5-5 unknown fields at {endpoint}"),
            success(&plain).and_then(|plain| {
                success(&extended).and_then(|extended| same(&extended, &plain, "the answer"))
            }),
        );
    }
    found
}

#[tokio::test]
async fn the_certification_scenario_passes_at_a_tenants_base_and_at_the_root() {
    let mut cluster = Cluster::start_with(
        1,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("CHECK_TOKEN", CHECKER),
            ("PUBLIC_URL", PUBLIC_URL),
        ],
    )
    .await;
    let native = &cluster[0];
    load_fixture(native, "acme").await;
    // Another tenant's grants must not leak into acme's answers.
    grant(native, "globex", "bob", &[("record/record-1", "write")]).await;
    let acme_key = create_key(native, "acme", "check").await;
    // Started after the key exists, with a trailing `/` that the identifier must not keep.
    let with_default = cluster
        .add_instance_with(&[
            ("AUTHZEN_DEFAULT_TENANT", "acme"),
            ("PUBLIC_URL", &format!("{PUBLIC_URL}/")),
        ])
        .await;
    let native = &cluster[0];
    let runs = [
        (
            "a tenant's base with CHECK_TOKEN",
            Pdp::new(native, "/tenants/acme", Some(CHECKER)),
        ),
        (
            "the root with the tenant's API key",
            Pdp::new(native, "", Some(acme_key.as_str())),
        ),
        (
            "the root with AUTHZEN_DEFAULT_TENANT",
            Pdp::new(&cluster[with_default], "", Some(CHECKER)),
        ),
    ];
    let mut report = Vec::new();
    for (what, pdp) in runs {
        let findings = certification_scenario(&pdp.advertised_as(PUBLIC_URL), native, "acme").await;
        if !findings.failures.is_empty() {
            report.push(format!(
                "{what}: {} of {} checks failed:\n    {}",
                findings.failures.len(),
                findings.checks,
                findings.failures.join("\n    ")
            ));
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn without_public_url_the_metadata_names_the_host_it_was_asked_on() {
    // Reads open, no default tenant: the root cannot know its tenant, whatever is sent.
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    load_fixture(node, "acme").await;
    load_fixture(node, "acme corp").await;
    let mut found = Findings::default();
    for path in ["/tenants/acme", "/tenants/acme%20corp", ""] {
        let pdp = Pdp::new(node, path, None);
        found.note(
            &format!("metadata of {path:?}"),
            metadata_problems(&pdp, None).await,
        );
        found.note(
            &format!("metadata of {path:?} asked on another host"),
            metadata_problems(&pdp, Some("pdp.internal:8443")).await,
        );
        // Each endpoint the metadata advertises answers there.
        let metadata = pdp.metadata(None).await.json().unwrap_or_default();
        for (key, endpoint) in METADATA_ENDPOINTS {
            let Some(url) = metadata[key].as_str() else {
                found.note(&format!("{path:?} {key}"), Err("absent".into()));
                continue;
            };
            let reply = send_to(
                &node.client,
                url,
                // Not read where reads are open.
                Some("rbac_not-a-key"),
                serde_json::to_vec(&valid_request(endpoint)).unwrap(),
                Some("application/json"),
                None,
            )
            .await;
            let outcome = if path.is_empty() {
                refused(&reply, 400, "invalid_request").and_then(|()| {
                    let message = reply.body()["error"]["message"].to_string();
                    if message.contains("AUTHZEN_DEFAULT_TENANT") {
                        Ok(())
                    } else {
                        Err(format!(
                            "the message does not name AUTHZEN_DEFAULT_TENANT: {message}"
                        ))
                    }
                })
            } else {
                let direct = Pdp::new(node, path, None)
                    .post(endpoint, &valid_request(endpoint))
                    .await;
                success(&reply).and_then(|got| {
                    success(&direct).and_then(|direct| same(&got, &direct, "the answer"))
                })
            };
            found.note(url, outcome);
        }
    }
    found.note(
        "acme corp's identifier",
        Pdp::new(node, "/tenants/acme%20corp", None)
            .metadata(None)
            .await
            .json()
            .map_or(Err("no metadata".into()), |m| {
                same(
                    &m["policy_decision_point"],
                    &json!(format!("{}/tenants/acme%20corp", node.base)),
                    "policy_decision_point",
                )
            }),
    );
    found.note(
        "c-2-2-1 at acme corp",
        expect_decision(
            &Pdp::new(node, "/tenants/acme%20corp", None)
                .post(EVALUATION, &valid_request(EVALUATION))
                .await,
            true,
        ),
    );
    found.assert_passed("discovery without PUBLIC_URL");
}

#[tokio::test]
async fn tenants_whose_names_need_percent_encoding_pass_the_scenario_and_are_advertised_encoded() {
    let public = "https://gw.example.test/rbac";
    let cluster = Cluster::start_with(
        1,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("CHECK_TOKEN", CHECKER),
            ("PUBLIC_URL", &format!("{public}/")),
        ],
    )
    .await;
    let native = &cluster[0];
    load_fixture(native, "acme corp").await;
    load_fixture(native, "team/é").await;
    let pdp = Pdp::new(native, "/tenants/acme%20corp", Some(CHECKER)).advertised_as(public);
    certification_scenario(&pdp, native, "acme corp")
        .await
        .assert_passed("acme corp");

    // However the server spells the segment, it must be one segment that decodes to the name.
    let pdp = Pdp::new(native, "/tenants/team%2F%C3%A9", Some(CHECKER));
    let metadata = success(&pdp.metadata(None).await).expect("metadata of team/é");
    let identifier = metadata["policy_decision_point"]
        .as_str()
        .unwrap_or_default();
    let parsed = url::Url::parse(identifier).expect("an identifier that is a URL");
    let segments: Vec<&str> = parsed.path_segments().unwrap().collect();
    assert_eq!(segments.len(), 3, "{identifier}");
    assert_eq!(&segments[..2], ["rbac", "tenants"], "{identifier}");
    let decoded = percent_encoding::percent_decode_str(segments[2]).decode_utf8_lossy();
    assert_eq!(decoded, "team/é", "{identifier}");
    assert_eq!(parsed.scheme(), "https", "{identifier}");
    assert_eq!(parsed.host_str(), Some("gw.example.test"), "{identifier}");
    for (key, endpoint) in METADATA_ENDPOINTS {
        assert_eq!(
            metadata[key],
            json!(format!("{identifier}{endpoint}")),
            "{key}"
        );
    }
    expect_decision(
        &pdp.post(EVALUATION, &valid_request(EVALUATION)).await,
        true,
    )
    .expect("c-2-2-1 at team/é");
    expect_decision(
        &pdp.post(
            EVALUATION,
            &evaluation(user("bob"), "write", record("record-1")),
        )
        .await,
        false,
    )
    .expect("c-2-2-2 at team/é");
}

#[test]
fn a_public_url_that_is_not_an_absolute_http_url_is_refused_at_start() {
    let mut failures = Vec::new();
    for value in [
        "pdp.example.test",
        "/tenants",
        "ftp://pdp.example.test",
        "https://pdp.example.test/?tenant=acme",
        "https://pdp.example.test/#top",
        "not a url",
    ] {
        let env = [
            (
                "DATABASE_URL".to_string(),
                format!("postgres://127.0.0.1:{}/rbac", common::servers::free_port()),
            ),
            ("STORE_TIMEOUT_SECS".into(), "1".into()),
            ("PORT".into(), "0".into()),
            ("HOST".into(), "127.0.0.1".into()),
            ("PUBLIC_URL".into(), value.to_string()),
        ];
        let exit = Process::run(Environment::PathOnly, &env, Duration::from_secs(10));
        let problems = exit.refusal_problems("PUBLIC_URL");
        if !problems.is_empty() {
            failures.push(format!(
                "{value:?}: {} (exit {:?}, stderr {:?})",
                problems.join("; "),
                exit.status,
                exit.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
}
