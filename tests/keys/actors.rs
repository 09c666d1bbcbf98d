//! Who the changelog names as the author of each change.

use super::*;

// ---------------------------------------------------------------------------------------------
// 4. Who changed what
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_changelog_names_the_token_or_key_behind_every_change() {
    const ROTATED_OUT: &str = "admin-rotated-out";
    let admin_tokens = format!("{ADMIN},{ROTATED_OUT}");
    let cluster = Cluster::start_with(1, &[("ADMIN_TOKEN", admin_tokens.as_str())]).await;
    let node = &cluster[0];
    for token in [ADMIN, ROTATED_OUT] {
        let print = fingerprint(token);
        assert!(is_lower_hex(print.strip_prefix("token:").unwrap(), 8));
        assert!(!print.contains(token));
    }
    assert_ne!(fingerprint(ADMIN), fingerprint(ROTATED_OUT));

    let key = create_key(node, "acme", "admin").await;
    let older = create_key_with(node, ROTATED_OUT, json!({"tenant": "*", "role": "admin"})).await;
    let check = create_key(node, "acme", "check").await;
    assert_eq!(key.body["created_by"], fingerprint(ADMIN));
    assert_eq!(older.body["created_by"], fingerprint(ROTATED_OUT));

    let write = |path, fields: Value, credential: &str| {
        let call = Call::post(path, fields);
        let credential = credential.to_owned();
        async move { send(node, &call, Some(&credential)).await }
    };
    let steps = [
        (
            "/create-group",
            json!({"tenant": "acme", "group": "g"}),
            ADMIN,
            201,
        ),
        (
            "/create-group",
            json!({"tenant": "acme", "group": "h"}),
            ROTATED_OUT,
            201,
        ),
        (
            "/add-permission",
            json!({"tenant": "acme", "group": "g", "resource": "r", "action": "a"}),
            key.token.as_str(),
            200,
        ),
        (
            "/assign-user",
            json!({"tenant": "acme", "user": "u", "group": "g"}),
            older.token.as_str(),
            200,
        ),
        // Changes nothing: no changelog entry.
        (
            "/create-group",
            json!({"tenant": "acme", "group": "g"}),
            key.token.as_str(),
            200,
        ),
        // Refused: no changelog entry.
        (
            "/delete-group",
            json!({"tenant": "acme", "group": "h"}),
            check.token.as_str(),
            403,
        ),
        (
            "/delete-group",
            json!({"tenant": "acme", "group": "h"}),
            "wrong",
            401,
        ),
        (
            "/unassign-user",
            json!({"tenant": "acme", "user": "u", "group": "g"}),
            key.token.as_str(),
            200,
        ),
    ];
    for (path, fields, credential, status) in steps {
        let reply = write(path, fields.clone(), credential).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{path} {fields}: {}",
            reply.text
        );
    }
    let actors = common::changelog_actors(&cluster.database_url, "acme").await;
    assert_eq!(
        actors,
        vec![
            (1, Some(fingerprint(ADMIN))),
            (2, Some(fingerprint(ROTATED_OUT))),
            (3, Some(format!("key:{}", key.id))),
            (4, Some(format!("key:{}", older.id))),
            (5, Some(format!("key:{}", key.id))),
        ]
    );

    // The creator is recorded the same way, in the listing and in the store.
    let stored = common::stored_keys(&cluster.database_url).await;
    let listed = listing(node).await;
    for (key, creator) in [(&key, ADMIN), (&older, ROTATED_OUT), (&check, ADMIN)] {
        let row = stored.iter().find(|row| row.id == key.id).unwrap();
        assert_eq!(row.created_by, Some(fingerprint(creator)), "{row:?}");
        let entry = listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["id"] == key.id.as_str())
            .unwrap();
        assert_eq!(entry["created_by"], fingerprint(creator), "{entry}");
    }
}

#[tokio::test]
async fn open_writes_are_recorded_without_an_actor_whatever_credential_they_carry() {
    let database_url = common::fresh_database().await;
    let issuer = Cluster::on(1, database_url.clone(), None, &[("ADMIN_TOKEN", ADMIN)]).await;
    let key = create_key(&issuer[0], "acme", "admin").await;
    let open = Cluster::on(1, database_url.clone(), None, &[]).await;
    let node = &open[0];

    // An open route ignores the credential, even a key in force: the write is not its.
    let steps = [
        (json!({"tenant": "acme", "group": "g"}), None),
        (json!({"tenant": "acme", "group": "h"}), Some("wrong")),
        (
            json!({"tenant": "acme", "group": "i"}),
            Some(key.token.as_str()),
        ),
        (json!({"tenant": "acme", "group": "j"}), Some(ADMIN)),
    ];
    for (fields, credential) in steps {
        let reply = send(
            node,
            &Call::post("/create-group", fields.clone()),
            credential,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{fields} with {credential:?}: {}",
            reply.text
        );
    }
    // The same store, written through the instance that guards writes, names the key.
    let reply = send(
        &issuer[0],
        &Call::post("/create-group", json!({"tenant": "acme", "group": "k"})),
        Some(&key.token),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        common::changelog_actors(&database_url, "acme").await,
        vec![
            (1, None),
            (2, None),
            (3, None),
            (4, None),
            (5, Some(format!("key:{}", key.id))),
        ]
    );
}
