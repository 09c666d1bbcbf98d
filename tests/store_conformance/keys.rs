//! API keys as the store keeps them: scope, role, hash, revocation, uniqueness, paging.

use super::*;

fn key_id(id: &str) -> KeyId {
    KeyId::parse("id", id).unwrap()
}

fn new_key(id: &str, scope: Scope, role: Role) -> NewKey {
    NewKey {
        id: key_id(id),
        name: Some("deploy bot".into()),
        scope,
        role,
        secret_hash: [7; 32],
        created_by: Some("token:0badc0de".into()),
    }
}

pub async fn keys_are_kept_with_their_scope_role_and_hash_and_revoked_keys_stay_listed(
    store: Arc<dyn Store>,
) {
    assert_eq!(store.keys().await.unwrap(), Vec::new());
    let scoped = new_key(
        "00000000000000a1",
        Scope::Tenant(tenant("acme")),
        Role::Check,
    );
    let global = NewKey {
        name: None,
        created_by: None,
        secret_hash: [9; 32],
        ..new_key("00000000000000b2", Scope::All, Role::Admin)
    };
    // Stamped by the store's clock, which the test's may trail or lead by a little.
    let about = |from: OffsetDateTime, to: OffsetDateTime| {
        let slack = Duration::from_secs(5);
        move |at: OffsetDateTime| at >= from - slack && at <= to + slack
    };
    let started = OffsetDateTime::now_utc();
    let first = store.create_key(&scoped).await.unwrap();
    let second = store.create_key(&global).await.unwrap();
    let created_now = about(started, OffsetDateTime::now_utc());
    for (record, key) in [(&first, &scoped), (&second, &global)] {
        assert_eq!(record.id, key.id);
        assert_eq!(record.name, key.name);
        assert_eq!(record.scope, key.scope);
        assert_eq!(record.role, key.role);
        assert_eq!(record.secret_hash, key.secret_hash);
        assert_eq!(record.created_by, key.created_by);
        assert_eq!(record.revoked_at, None);
        assert!(created_now(record.created_at), "{}", record.created_at);
    }
    assert_eq!(
        store.keys().await.unwrap(),
        vec![first.clone(), second.clone()]
    );

    let revoking = OffsetDateTime::now_utc();
    assert_eq!(
        store.revoke_key(&first.id).await.unwrap(),
        Revocation::Revoked
    );
    let revoked_now = about(revoking, OffsetDateTime::now_utc());
    assert_eq!(
        store.revoke_key(&first.id).await.unwrap(),
        Revocation::AlreadyRevoked
    );
    assert_eq!(
        store.revoke_key(&key_id("00000000000000c3")).await.unwrap(),
        Revocation::NoSuchKey
    );
    let keys = store.keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let revoked_at = keys[0].revoked_at.expect("the first key is revoked");
    assert!(
        revoked_now(revoked_at) && revoked_at >= keys[0].created_at,
        "{revoked_at}"
    );
    assert_eq!(
        KeyRecord {
            revoked_at: None,
            ..keys[0].clone()
        },
        first,
        "revoking a key changes nothing else of it"
    );
    assert_eq!(keys[1], second, "revoking one key leaves the others alone");
}

pub async fn a_key_id_is_unique(store: Arc<dyn Store>) {
    let key = new_key("00000000000000d4", Scope::All, Role::Check);
    store.create_key(&key).await.unwrap();
    assert!(store.create_key(&key).await.is_err());
    assert_eq!(store.keys().await.unwrap().len(), 1);
}

pub async fn keys_page_in_the_order_they_list_in(store: Arc<dyn Store>) {
    for id in ["00000000000000e3", "00000000000000e1", "00000000000000e2"] {
        store
            .create_key(&new_key(id, Scope::All, Role::Check))
            .await
            .unwrap();
    }
    let all = store.keys().await.unwrap();
    let ids = |keys: &[KeyRecord]| keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
    assert_eq!(store.key_page(None, 10).await.unwrap(), all);
    let first = store.key_page(None, 2).await.unwrap();
    assert_eq!(ids(&first), ids(&all[..2]));
    let rest = store.key_page(Some(&first[1].id), 2).await.unwrap();
    assert_eq!(ids(&rest), ids(&all[2..]));
    assert_eq!(store.key_page(Some(&all[2].id), 2).await.unwrap(), vec![]);
    // Revoked keys keep their place.
    store.revoke_key(&all[1].id).await.unwrap();
    let rest = store.key_page(Some(&all[0].id), 1).await.unwrap();
    assert_eq!(ids(&rest), ids(&all[1..2]));
    assert!(rest[0].revoked_at.is_some());
    assert_eq!(
        store
            .key_page(Some(&key_id("00000000000000ff")), 10)
            .await
            .unwrap(),
        vec![],
        "an unknown key is after every key"
    );
}

pub async fn a_keys_last_use_only_moves_forward(store: Arc<dyn Store>) {
    for id in ["00000000000000b1", "00000000000000b2"] {
        store
            .create_key(&new_key(id, Scope::All, Role::Admin))
            .await
            .unwrap();
    }
    let at = |seconds: i64| OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap();
    let last_uses = async || -> Vec<Option<OffsetDateTime>> {
        let keys = store.keys().await.unwrap();
        keys.iter().map(|key| key.last_used_at).collect()
    };
    assert_eq!(last_uses().await, [None, None]);
    store.record_key_uses(&[]).await.unwrap();
    store
        .record_key_uses(&[(key_id("00000000000000b1"), at(60))])
        .await
        .unwrap();
    assert_eq!(last_uses().await, [Some(at(60)), None]);
    // An older time is not taken; a later one is; a key that does not exist is passed over.
    store
        .record_key_uses(&[
            (key_id("00000000000000b1"), at(0)),
            (key_id("00000000000000b2"), at(120)),
            (key_id("00000000000000ff"), at(120)),
        ])
        .await
        .unwrap();
    assert_eq!(last_uses().await, [Some(at(60)), Some(at(120))]);
    store
        .record_key_uses(&[(key_id("00000000000000b1"), at(180))])
        .await
        .unwrap();
    assert_eq!(last_uses().await, [Some(at(180)), Some(at(120))]);
}
