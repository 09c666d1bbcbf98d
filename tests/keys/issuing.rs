//! How keys are issued, listed and revoked, without their secret ever being kept.

use super::*;

// ---------------------------------------------------------------------------------------------
// 2. Issuing, listing and revoking keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_key_requests_are_refused_with_400_404_or_415_and_store_nothing() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    let existing = create_key(node, "acme", "check").await;
    let before = common::stored_rows(&cluster.database_url).await;
    let listed = listing(node).await;

    let create = |fields: Value| Call::post("/create-api-key", fields);
    let with = |field: &str, value: Value| {
        let mut fields = json!({"tenant": "acme", "role": "check", "name": "web app"});
        fields[field] = value;
        create(fields)
    };
    let mut bad = Vec::new();
    for role in [
        json!("owner"),
        json!("Admin"),
        json!(""),
        json!(" admin"),
        json!(1),
        json!(null),
    ] {
        bad.push(with("role", role));
    }
    for tenant in [
        json!(""),
        json!("a*b"),
        json!("**"),
        json!("acme*"),
        json!(" acme"),
        json!("a\u{1}b"),
        json!("x".repeat(257)),
        json!(["acme"]),
        json!(null),
    ] {
        bad.push(with("tenant", tenant));
    }
    for name in [
        json!(""),
        json!(" padded"),
        json!("padded "),
        json!("tab\there"),
        json!("x".repeat(257)),
        json!(7),
    ] {
        bad.push(with("name", name));
    }
    for (field, value) in [
        ("scope", json!("all")),
        ("secret", json!("0".repeat(64))),
        ("id", json!("0123456789abcdef")),
        ("key", json!(existing.token)),
    ] {
        bad.push(with(field, value));
    }
    bad.push(create(json!({"role": "admin"})));
    bad.push(create(json!({"tenant": "acme"})));
    bad.push(create(json!({"name": "web app"})));
    bad.push(create(json!({})));
    bad.push(Call::raw("/create-api-key", "[]", "application/json"));
    bad.push(Call::raw(
        "/create-api-key",
        "{\"tenant\":\"acme\",\"role\":",
        "application/json",
    ));
    bad.push(Call::raw(
        "/create-api-key",
        "{\"tenant\":\"acme\",\"role\":\"admin\",\"role\":\"check\"}",
        "application/json",
    ));

    let revoke_call = |id: Value| Call::post("/revoke-api-key", json!({"id": id}));
    let id = &existing.id;
    for malformed in [
        json!(""),
        json!("0123"),
        json!(id.to_uppercase().replace(|c: char| c.is_ascii_digit(), "A")),
        json!(format!("{}A", &id[..15])),
        json!(format!("{id}0")),
        json!(&id[1..]),
        json!(format!("{}g", &id[..15])),
        json!(format!(" {id}")),
        json!(format!("rbac_{id}")),
        json!(existing.token),
        json!(12345),
        json!(null),
    ] {
        bad.push(revoke_call(malformed));
    }
    bad.push(Call::post("/revoke-api-key", json!({})));
    bad.push(Call::post("/revoke-api-key", json!({"id": id, "extra": 1})));
    bad.push(Call::get("/api-keys", json!({"tenant": "acme"})));

    let mut failures = Vec::new();
    let mut cases: Vec<(Call, u16, &str)> = bad
        .into_iter()
        .map(|call| (call, 400, "invalid_request"))
        .collect();
    cases.push((
        Call::raw(
            "/create-api-key",
            "{\"tenant\":\"acme\",\"role\":\"admin\"}",
            "text/plain",
        ),
        415,
        "unsupported_media_type",
    ));
    cases.push((revoke_call(json!(change_digit(id, 15))), 404, "not_found"));
    cases.push((revoke_call(json!("0000000000000000")), 404, "not_found"));
    for (call, status, code) in &cases {
        let reply = send(node, call, Some(ADMIN)).await;
        if let Some(problem) = error_mismatch(&reply, *status, code) {
            failures.push(format!("{}: {problem}", call.label()));
        }
    }
    assert_no_failures(&failures, cases.len());
    assert_eq!(
        before,
        common::stored_rows(&cluster.database_url).await,
        "a refused key request changed the store"
    );
    assert_eq!(listed, listing(node).await);
    // The existing key was not revoked by any of the malformed ids that resemble its own.
    let reply = send(
        node,
        &Call::get("/groups", json!({"tenant": "acme"})),
        Some(&existing.token),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_key_is_shown_once_then_listed_and_stored_without_its_secret() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    let stats = node.cache_stats().await;
    assert_eq!(stats["api_keys"], 0, "{stats}");
    let reloads = stats["key_reloads"]
        .as_u64()
        .expect("key_reloads is a number");
    assert!(reloads >= 1, "the keys are loaded at start-up: {stats}");

    let started = OffsetDateTime::now_utc();
    let named = create_key_with(
        node,
        ADMIN,
        json!({"tenant": "acme", "role": "check", "name": "acme web app *"}),
    )
    .await;
    let everywhere = create_key(node, "*", "admin").await;
    let finished = OffsetDateTime::now_utc();

    for (key, name, tenant, role) in [
        (&named, json!("acme web app *"), "acme", "check"),
        (&everywhere, Value::Null, "*", "admin"),
    ] {
        let body = &key.body;
        let fields: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = fields.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "created_at",
                "created_by",
                "id",
                "key",
                "last_used_at",
                "name",
                "revoked_at",
                "role",
                "success",
                "tenant"
            ],
            "{body}"
        );
        assert_eq!(body["success"], true);
        assert_eq!(body["name"], name);
        assert_eq!(body["tenant"], tenant);
        assert_eq!(body["role"], role);
        assert_eq!(body["created_by"], fingerprint(ADMIN));
        assert_eq!(body["revoked_at"], Value::Null);
        assert_eq!(body["last_used_at"], Value::Null);
        assert!(is_lower_hex(&key.id, 16), "{body}");
        let rest = key
            .token
            .strip_prefix("rbac_")
            .expect("a key starts with rbac_");
        let (id, secret) = rest.split_once('_').expect("rbac_<id>_<secret>");
        assert_eq!(id, key.id, "{body}");
        assert!(is_lower_hex(secret, 64), "{body}");
        let created_at = body["created_at"].as_str().expect("created_at is a string");
        assert!(created_at.ends_with('Z'), "{created_at} is not UTC");
        let created_at = OffsetDateTime::parse(created_at, &Rfc3339)
            .unwrap_or_else(|e| panic!("{created_at} is not RFC 3339: {e}"));
        let slack = Duration::from_secs(5);
        assert!(
            created_at >= started - slack && created_at <= finished + slack,
            "{created_at} is not when the key was made"
        );
    }
    assert_ne!(named.id, everywhere.id);
    assert_ne!(named.secret(), everywhere.secret());

    // Listed oldest first, as created, with neither the key nor its secret.
    let listed = listing(node).await;
    assert_eq!(
        listed,
        json!({"keys": [named.listed(), everywhere.listed()]})
    );
    let text = listed.to_string();
    for key in [&named, &everywhere] {
        assert!(
            !text.contains(key.secret()),
            "the listing shows a secret: {text}"
        );
    }

    // The store keeps the SHA-256 of the secret and nothing from which the secret can be read.
    let rows = common::stored_rows(&cluster.database_url).await;
    let stored = common::stored_keys(&cluster.database_url).await;
    let dump = format!("{rows}\n{stored:?}");
    for (key, tenant, role) in [
        (&named, Some("acme"), "check"),
        (&everywhere, None, "admin"),
    ] {
        assert!(
            !dump.contains(key.secret()),
            "the store holds a secret:\n{dump}"
        );
        assert!(!dump.contains(&key.token), "the store holds a key:\n{dump}");
        let row = stored
            .iter()
            .find(|row| row.id == key.id)
            .unwrap_or_else(|| panic!("key {} is not stored: {stored:?}", key.id));
        let digest = Sha256::digest(key.secret().as_bytes());
        assert_eq!(row.secret_hash, digest.as_slice(), "{row:?}");
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&key.secret()[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_ne!(row.secret_hash, raw, "the store holds the secret's bytes");
        assert_eq!(row.tenant.as_deref(), tenant);
        assert_eq!(row.role, role);
        assert_eq!(row.created_by.as_deref(), Some(fingerprint(ADMIN).as_str()));
        assert_eq!(row.revoked_at, None);
    }
    assert_eq!(stored.len(), 2, "{stored:?}");
    let logs = node.logs().join("\n");
    for key in [&named, &everywhere] {
        assert!(!logs.contains(key.secret()), "the log shows a secret");
    }

    // Both keys work at once; /cache-stats counts them and the reload that put each in force.
    for key in [&named, &everywhere] {
        let reply = send(
            node,
            &Call::get("/groups", json!({"tenant": "acme"})),
            Some(&key.token),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let stats = node.cache_stats().await;
    assert_eq!(stats["api_keys"], 2, "{stats}");
    assert!(
        stats["key_reloads"].as_u64().unwrap() >= reloads + 2,
        "{stats}"
    );
}

#[tokio::test]
async fn a_revoked_key_stops_at_once_stays_listed_and_revoking_it_again_changes_nothing() {
    let cluster = Cluster::start_with(1, &BOTH_TOKENS).await;
    let node = &cluster[0];
    let kept = create_key(node, "acme", "admin").await;
    let key = create_key(node, "acme", "admin").await;
    let groups = Call::get("/groups", json!({"tenant": "acme"}));
    assert_eq!(
        send(node, &groups, Some(&key.token)).await.status,
        StatusCode::OK
    );
    let reloads = node.cache_stats().await["key_reloads"].as_u64().unwrap();

    assert_eq!(
        revoke(node, &key.id).await,
        json!({"success": true, "revoked": true})
    );
    assert_error(
        &send(node, &groups, Some(&key.token)).await,
        401,
        "unauthorized",
        "the revoked key, on the very next request",
    );
    let write = Call::post("/create-group", json!({"tenant": "acme", "group": "late"}));
    assert_error(
        &send(node, &write, Some(&key.token)).await,
        401,
        "unauthorized",
        "a write with the revoked key",
    );
    let stats = node.cache_stats().await;
    assert_eq!(stats["api_keys"], 1, "{stats}");
    assert!(stats["key_reloads"].as_u64().unwrap() > reloads, "{stats}");

    let listed = listing(node).await;
    let entries = listed["keys"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{listed}");
    assert_eq!(entries[0], kept.listed());
    let revoked_entry = &entries[1];
    let mut expected = key.listed();
    expected["revoked_at"] = revoked_entry["revoked_at"].clone();
    assert_eq!(revoked_entry, &expected);
    let revoked_at = revoked_entry["revoked_at"]
        .as_str()
        .unwrap_or_else(|| panic!("revoked_at is not set: {listed}"));
    let revoked_at = OffsetDateTime::parse(revoked_at, &Rfc3339).unwrap();
    let created_at =
        OffsetDateTime::parse(key.body["created_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(revoked_at >= created_at, "{listed}");

    let before = common::stored_rows(&cluster.database_url).await;
    assert_eq!(
        revoke(node, &key.id).await,
        json!({"success": true, "revoked": false})
    );
    assert_eq!(
        listing(node).await,
        listed,
        "revoking again moved revoked_at"
    );
    assert_eq!(before, common::stored_rows(&cluster.database_url).await);
    assert_eq!(
        send(node, &groups, Some(&key.token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(node, &groups, Some(&kept.token)).await.status,
        StatusCode::OK
    );
    assert_eq!(node.revision("acme").await, 0, "no write got through");
}

#[tokio::test]
async fn on_an_instance_without_admin_token_the_key_endpoints_are_forbidden() {
    // Keys issued by an instance that has ADMIN_TOKEN, on the store the others share.
    let database_url = common::fresh_database().await;
    let issuer = Cluster::on(1, database_url.clone(), None, &[("ADMIN_TOKEN", ADMIN)]).await;
    let acme_admin = create_key(&issuer[0], "acme", "admin").await;
    let all_check = create_key(&issuer[0], "*", "check").await;
    let open = Cluster::on(1, database_url.clone(), None, &[]).await;
    let check_only = Cluster::on(1, database_url.clone(), None, &[("CHECK_TOKEN", CHECKER)]).await;
    let before = common::stored_rows(&database_url).await;

    let calls = [
        Call::post(
            "/create-api-key",
            json!({"tenant": "acme", "role": "admin"}),
        ),
        Call::post("/revoke-api-key", json!({"id": acme_admin.id})),
        Call::get("/api-keys", json!({})),
    ];
    let credentials = [
        None,
        Some("wrong"),
        Some(ADMIN),
        Some(CHECKER),
        Some(acme_admin.token.as_str()),
        Some(all_check.token.as_str()),
    ];
    let mut failures = Vec::new();
    let mut total = 0;
    for (config, node) in [
        ("no tokens", &open[0]),
        ("CHECK_TOKEN only", &check_only[0]),
    ] {
        for call in &calls {
            for credential in credentials {
                total += 1;
                let reply = send(node, call, credential).await;
                if let Some(problem) = error_mismatch(&reply, 403, "forbidden") {
                    failures.push(format!(
                        "{} with {credential:?} on an instance with {config}: {problem}",
                        call.label()
                    ));
                }
            }
        }
    }
    assert_no_failures(&failures, total);
    assert_eq!(before, common::stored_rows(&database_url).await);

    // With CHECK_TOKEN alone, a key is a credential for reads, and its tenant still bounds it.
    let node = &check_only[0];
    let groups = |tenant| Call::get("/groups", json!({"tenant": tenant}));
    assert_eq!(
        send(node, &groups("acme"), Some(&acme_admin.token))
            .await
            .status,
        StatusCode::OK
    );
    assert_error(
        &send(node, &groups("globex"), Some(&acme_admin.token)).await,
        403,
        "forbidden",
        "an acme key reading globex with CHECK_TOKEN only",
    );
    assert_eq!(
        send(node, &groups("globex"), Some(&all_check.token))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_keys_last_use_is_listed_once_a_sweep_has_recorded_it() {
    let env = [
        BOTH_TOKENS[0],
        BOTH_TOKENS[1],
        ("RESYNC_INTERVAL_SECS", "1"),
    ];
    let cluster = Cluster::start_with(2, &env).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    let used = create_key(a, "acme", "check").await;
    let unused = create_key(a, "acme", "check").await;
    let last_use = async |id: &str| {
        let reply = send(a, &Call::get("/api-keys", json!({})), Some(ADMIN)).await;
        let body = reply.body();
        let entry = body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} is not listed: {body}"));
        entry["last_used_at"].clone()
    };
    // Presented on B, which must first know the key.
    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let groups = Call::get("/groups", json!({"tenant": "acme"}));
    let took = eventually(SWEEP_BOUND, || async {
        send(b, &groups, Some(&used.token)).await.status == StatusCode::OK
    })
    .await;
    assert!(took.is_some(), "the key works on B");
    let after = OffsetDateTime::now_utc();
    // B's sweep writes it; A lists it from the store.
    let recorded = eventually(SWEEP_BOUND, || async {
        last_use(&used.id).await.is_string()
    })
    .await;
    assert!(
        recorded.is_some(),
        "never recorded: {}",
        last_use(&used.id).await
    );
    let at = last_use(&used.id).await;
    let at = OffsetDateTime::parse(at.as_str().unwrap(), &Rfc3339).unwrap();
    assert!(
        at >= before && at <= after,
        "{at} outside {before}..{after}"
    );
    assert_eq!(last_use(&unused.id).await, Value::Null);
    // Revoked, it keeps its last use.
    revoke(a, &used.id).await;
    assert_eq!(
        OffsetDateTime::parse(last_use(&used.id).await.as_str().unwrap(), &Rfc3339).unwrap(),
        at
    );
}
