//! A tenant's policy as one document, from outside: `GET /tenant-policy` exports a tenant,
//! as JSON or YAML, and `PUT /tenant-policy` makes a tenant hold exactly what a document
//! describes, as one write.
//!
//! Covered here:
//! - a round trip across three instances: a tenant full of wildcards, ends of memberships
//!   (one past), a chain of nestings and names YAML could mangle, exported on one instance and
//!   applied to new tenants on another, once as JSON and once as YAML; every instance then
//!   lists the copies as it lists the original, and applying a document again changes nothing;
//! - a document that changes an existing tenant: the answer's counts, one revision step, the
//!   change feed under that one revision, and every instance converging;
//! - `dry_run`: the difference in `POST /write`'s order, nothing changed anywhere, then the
//!   same difference applied with `if_revision`;
//! - `if_revision` behind and ahead of the tenant: `409 revision_mismatch`, nothing changed;
//! - a battery of bad documents (names, duplicates, parents, ends, unknown fields, shapes,
//!   JSON and YAML syntax, YAML's multiple documents and alias bombs, content types, cycles,
//!   depth, size), each refused with its documented status and code, the tenant unchanged;
//! - credentials: a check token, no token, and tenant-scoped API keys.

mod common;

use common::reply::{Reply, assert_error, error_mismatch};
use common::{Api, Cluster, Instance, PROPAGATION, eventually};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

const POLICY: &str = "/tenant-policy";
/// The tenant the round trip copies to through YAML.
const YAML_COPY: &str = "yaml: copy #1";
const JSON: &str = "application/json";
const YAML: &str = "application/yaml";

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// PUT /tenant-policy with `body` as it is, with `content_type` if any, and the API's token.
async fn put(api: &Api, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Reply {
    let mut request = api.client.put(api.url(POLICY)).body(body);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    if let Some(token) = &api.token {
        request = request.bearer_auth(token);
    }
    Reply::read(request.send().await.expect("request reaches the server")).await
}

/// PUT /tenant-policy with `document` as JSON; the answer, which must be 200.
async fn apply(api: &Api, document: &Value) -> Value {
    let reply = put(api, Some(JSON), document.to_string()).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "PUT {} on {}: {}",
        document_label(document),
        api.server_id,
        reply.text
    );
    reply.body()
}

/// PUT /tenant-policy with a YAML `document`; the answer, which must be 200.
async fn apply_yaml(api: &Api, document: &str) -> Value {
    let reply = put(api, Some(YAML), document.to_owned()).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "PUT (YAML) on {}: {}\n{document}",
        api.server_id,
        reply.text
    );
    reply.body()
}

/// A short description of a document for messages: its tenant and group names.
fn document_label(document: &Value) -> String {
    let names: Vec<&str> = (document["groups"].as_array().into_iter().flatten())
        .filter_map(|group| group["name"].as_str())
        .collect();
    format!("{} {names:?}", document["tenant"])
}

/// GET /tenant-policy as JSON, at `min_revision` or later.
async fn export(api: &Api, tenant: &str, min_revision: Option<u64>) -> Value {
    let min_revision = min_revision.map(|r| r.to_string());
    let mut query = vec![("tenant", tenant)];
    if let Some(revision) = &min_revision {
        query.push(("min_revision", revision));
    }
    let (status, body) = api.get(POLICY, &query).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "export {tenant} on {}: {body}",
        api.server_id
    );
    assert_eq!(body["tenant"], tenant, "the export names its tenant");
    body
}

/// GET /tenant-policy with `Accept: application/yaml`, as text.
async fn export_yaml(api: &Api, tenant: &str, min_revision: u64) -> String {
    let revision = min_revision.to_string();
    let (status, content_type, text) = api
        .send_raw(
            reqwest::Method::GET,
            POLICY,
            &[("tenant", tenant), ("min_revision", &revision)],
            &[(ACCEPT.as_str(), YAML)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "YAML export of {tenant}: {text}");
    assert_eq!(content_type, YAML, "the YAML export's content type");
    text
}

/// What a document describes, without the tenant it names or the revision it was read at.
fn groups_of(document: &Value) -> Value {
    document["groups"].clone()
}

/// `document` aimed at `tenant`.
fn for_tenant(document: &Value, tenant: &str) -> Value {
    let mut document = document.clone();
    document["tenant"] = json!(tenant);
    document
}

/// `body` without the fields that name the tenant or the revision, or page onwards.
fn without_tenant(mut body: Value) -> Value {
    if let Some(fields) = body.as_object_mut() {
        for field in ["tenant", "revision", "next_cursor"] {
            fields.remove(field);
        }
    }
    body
}

/// POST /write of `changes` to `tenant`; the revision it wrote.
async fn write(api: &Api, tenant: &str, changes: Vec<Value>) -> u64 {
    let (status, body) = api
        .post("/write", json!({"tenant": tenant, "changes": changes}))
        .await;
    assert_eq!(status, StatusCode::OK, "/write to {tenant}: {body}");
    body["revision"]
        .as_u64()
        .expect("a write answers its revision")
}

/// Waits until every instance of `cluster` holds `tenant` at `revision`.
async fn reaches(cluster: &Cluster, tenant: &str, revision: u64) {
    for instance in &cluster.instances {
        let took = eventually(PROPAGATION, || async {
            instance.revision(tenant).await == revision
        })
        .await;
        assert!(
            took.is_some(),
            "{} holds {tenant} at {} after {PROPAGATION:?}, not {revision}",
            instance.server_id,
            instance.revision(tenant).await
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tenants described in the test
// ---------------------------------------------------------------------------------------------

/// A group as the test writes it: every list as sent, ends of memberships as an export shows
/// them (UTC, to the millisecond).
struct Group {
    name: String,
    permissions: Vec<(String, String)>,
    members: Vec<(String, Option<String>)>,
    parents: Vec<String>,
}

fn group(
    name: &str,
    permissions: &[(&str, &str)],
    members: &[(&str, Option<&str>)],
    parents: &[&str],
) -> Group {
    Group {
        name: name.to_owned(),
        permissions: (permissions.iter())
            .map(|(r, a)| (r.to_string(), a.to_string()))
            .collect(),
        members: (members.iter())
            .map(|(u, end)| (u.to_string(), end.map(str::to_owned)))
            .collect(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    }
}

/// The document an export of `groups` gives: everything sorted, no end where there is none.
fn described(tenant: &str, groups: &[Group]) -> Value {
    let mut listed: Vec<&Group> = groups.iter().collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let groups: Vec<Value> = listed
        .into_iter()
        .map(|group| {
            let mut permissions = group.permissions.clone();
            permissions.sort();
            let mut members = group.members.clone();
            members.sort();
            let mut parents = group.parents.clone();
            parents.sort();
            json!({
                "name": group.name,
                "permissions": permissions.iter()
                    .map(|(resource, action)| json!({"resource": resource, "action": action}))
                    .collect::<Vec<_>>(),
                "members": members.iter().map(|(user, end)| match end {
                    Some(end) => json!({"user": user, "expires_at": end}),
                    None => json!({"user": user}),
                }).collect::<Vec<_>>(),
                "parents": parents,
            })
        })
        .collect();
    json!({"tenant": tenant, "groups": groups})
}

/// The `POST /write` changes that build `groups` in an empty tenant, in three writes: the
/// groups, their permissions and nestings, their members.
fn building(groups: &[Group]) -> [Vec<Value>; 3] {
    let mut created = Vec::new();
    let mut given = Vec::new();
    let mut members = Vec::new();
    for group in groups {
        let name = &group.name;
        created.push(json!({"op": "create-group", "group": name}));
        for (resource, action) in &group.permissions {
            given.push(json!({"op": "add-permission", "group": name,
                              "resource": resource, "action": action}));
        }
        for parent in &group.parents {
            given.push(json!({"op": "nest-group", "group": name, "parent": parent}));
        }
        for (user, end) in &group.members {
            let mut change = json!({"op": "assign-user", "group": name, "user": user});
            if let Some(end) = end {
                change["expires_at"] = json!(end);
            }
            members.push(change);
        }
    }
    [created, given, members]
}

/// A group name with every character YAML could make something of.
const AWKWARD_GROUP: &str = "ünï \"quoted\" 'grp' 名 #x: y";

/// User names that a YAML writer must quote, or could fold, or whose plain form a YAML reader
/// takes for something other than a string; every one a valid name.
fn awkward_users() -> Vec<String> {
    let mut users: Vec<String> = [
        "null",
        "Null",
        "NULL",
        "~",
        "123",
        "-0",
        "1e3",
        "0x1F",
        "0o17",
        "+1",
        ".5",
        "1_000",
        "012",
        "1.0",
        ".inf",
        "-.nan",
        "true",
        "True",
        "FALSE",
        "yes",
        "No",
        "on",
        "Off",
        "y",
        "n",
        "- x",
        "-",
        "?",
        "? x",
        ":",
        "a: b",
        "x:",
        "a:b",
        "#c",
        "a #b",
        "!tag",
        "&anchor",
        "%pct",
        "@at",
        "`tick",
        "|",
        "> fold",
        "[a]",
        "{b}",
        "a, b",
        "'single'",
        "\"double\"",
        "back\\slash",
        "2001-12-14",
        "12:30:45",
        "<<",
        "=",
        "---",
        "...",
        "two  spaces",
        "Zoë 名前 🚀",
        "line\u{2028}sep",
        "nb\u{a0}sp",
        "\u{feff}bom",
    ]
    .map(str::to_owned)
    .to_vec();
    // As long as a name may be, with spaces a writer could fold a line at.
    users.push(format!("{}end", "w ".repeat(126)));
    assert_eq!(users.last().unwrap().len(), 255);
    users
}

/// The tenant the round trip copies: wildcards, ends of memberships (one past), a chain of
/// three nestings, a group in two, an empty group, and awkward names.
fn source_tenant() -> Vec<Group> {
    let awkward = awkward_users();
    let mut groups = vec![
        group(
            "~",
            &[("*", "*")],
            &[
                ("null", None),
                ("123", Some("2020-01-01T00:00:00.000Z")),
                ("true", Some("2091-01-01T00:00:00.000Z")),
            ],
            &[],
        ),
        group(
            "staff",
            &[("docs/*", "read"), ("wiki/*", "*")],
            &[
                ("- x", None),
                ("a: b", Some("2091-01-01T00:00:00.000Z")),
                ("#c", None),
            ],
            &[],
        ),
        group(
            "eng",
            &[("docs/*", "write"), ("code/main", "push")],
            &[("yes", None)],
            &["staff"],
        ),
        group(
            "db",
            &[("db/*", "admin")],
            &[("dba", Some("2090-05-06T07:08:09.123Z")), ("123", None)],
            &["eng"],
        ),
        group(
            "null",
            &[],
            &[("n0", None), ("é\"'ü 名", None)],
            &["~", "staff"],
        ),
        group("empty", &[], &[], &[]),
        group("yes", &[("#", ":"), ("- r", "a: b")], &[], &[]),
    ];
    let mut odd = group(
        AWKWARD_GROUP,
        &[
            ("résumé/*", "read"),
            ("'quoted'", "\"act\""),
            ("*alias", "&a"),
            ("null", "~"),
        ],
        &[],
        &["staff"],
    );
    odd.members = awkward.into_iter().map(|user| (user, None)).collect();
    groups.push(odd);
    groups
}

/// Checks with their answers in the source tenant, worked out from [`source_tenant`].
const CHECKS: &[(&str, &str, &str, bool)] = &[
    ("null", "anything/at/all", "whatever", true),
    ("123", "anything", "x", false),
    ("123", "db/orders", "admin", true),
    ("123", "docs/a", "write", true),
    ("123", "wiki/home", "delete", true),
    ("true", "anything", "x", true),
    ("dba", "docs/a", "read", true),
    ("dba", "docs/a", "delete", false),
    ("yes", "docs/a", "read", true),
    ("yes", "db/orders", "admin", false),
    ("yes", "#", ":", false),
    ("- x", "wiki/page", "edit", true),
    ("- x", "docs/a", "write", false),
    ("a: b", "docs/a", "read", true),
    ("#c", "code/main", "push", false),
    ("n0", "anything", "x", true),
    ("é\"'ü 名", "secret", "read", true),
    ("a #b", "résumé/cv", "read", true),
    ("a #b", "'quoted'", "\"act\"", true),
    ("a #b", "null", "~", true),
    ("a #b", "docs/a", "read", true),
    ("a #b", "docs/a", "write", false),
    ("~", "wiki/x", "y", true),
    ("nobody", "docs/a", "read", false),
];

/// Everything the listings say of `tenant` that does not name it or its revision: every
/// group with its permissions, members (and their ends), parents and children; what
/// /user-permissions says of `users`; and the answers to [`CHECKS`].
async fn listings(api: &Api, tenant: &str, users: &[String]) -> Value {
    let whole = without_tenant(api.groups(tenant).await);
    let mut groups = Vec::new();
    for summary in whole["groups"].as_array().unwrap() {
        let name = summary["name"].as_str().unwrap();
        let mut listed = summary.clone();
        for path in ["/group-members", "/group-parents", "/group-children"] {
            let (status, body) = api
                .get(
                    path,
                    &[("tenant", tenant), ("group", name), ("limit", "1000")],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{path} {tenant}/{name}: {body}");
            listed[path] = without_tenant(body);
        }
        groups.push(listed);
    }
    let mut permissions = Vec::new();
    for user in users {
        let (status, body) = api
            .get(
                "/user-permissions",
                &[("tenant", tenant), ("user", user), ("limit", "1000")],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "/user-permissions {user}: {body}");
        permissions.push(without_tenant(body));
    }
    let mut answers = Vec::new();
    for (user, resource, action, _) in CHECKS {
        answers.push(json!([
            user,
            resource,
            action,
            api.check(tenant, user, resource, action).await
        ]));
    }
    json!({"groups": groups, "user-permissions": permissions, "checks": answers})
}

/// The counts of an answer for building `groups` in an empty tenant.
fn counts_building(groups: &[Group]) -> Value {
    let mut counts = serde_json::Map::new();
    let total = |f: fn(&Group) -> usize| groups.iter().map(f).sum::<usize>();
    for (operation, count) in [
        ("create-group", groups.len()),
        ("add-permission", total(|g| g.permissions.len())),
        ("assign-user", total(|g| g.members.len())),
        ("nest-group", total(|g| g.parents.len())),
    ] {
        if count > 0 {
            counts.insert(operation.to_owned(), json!(count));
        }
    }
    Value::Object(counts)
}

// ---------------------------------------------------------------------------------------------
// 1. Round trip
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_tenant_copied_through_its_export_lists_alike_on_every_instance_as_json_and_yaml() {
    let cluster = Cluster::start(3).await;
    let source = source_tenant();
    let mut revision = 0;
    for changes in building(&source) {
        revision = write(&cluster[0], "source", changes).await;
    }
    assert_eq!(revision, 3, "the source tenant is built in three writes");
    // Every instance holds the copies, empty, before they are written: they must learn of
    // them from the bus.
    for instance in &cluster.instances {
        for tenant in ["copy-json", YAML_COPY] {
            assert_eq!(instance.revision(tenant).await, 0);
        }
    }

    // The export, from another instance than the one written to.
    let exported = export(&cluster[1], "source", Some(revision)).await;
    assert_eq!(exported["revision"], revision, "{exported}");
    assert_eq!(
        groups_of(&exported),
        groups_of(&described("source", &source)),
        "the export of the source tenant"
    );

    // JSON: the export, aimed at another tenant, applied on a third instance. Its `revision`
    // (3) is not the new tenant's (0): it is ignored.
    let answer = apply(&cluster[2], &for_tenant(&exported, "copy-json")).await;
    assert_eq!(
        answer,
        json!({"success": true, "dry_run": false, "changed": true, "revision": 1,
               "counts": counts_building(&source)}),
        "applying the source's export to a new tenant"
    );

    // YAML: the export as YAML, its `tenant:` line changed, applied on a second instance.
    let yaml = export_yaml(&cluster[0], "source", revision).await;
    let opening = format!("tenant: source\nrevision: {revision}\ngroups:\n");
    assert!(
        yaml.starts_with(&opening),
        "the YAML export opens with {opening:?}:\n{yaml}"
    );
    let read_back: Value = serde_saphyr::from_str(&yaml)
        .unwrap_or_else(|e| panic!("the YAML export does not parse: {e}\n{yaml}"));
    assert_eq!(
        read_back, exported,
        "the YAML export, read by a YAML reader, is the JSON export"
    );
    // The new name is one a YAML reader would take for a mapping and a comment, unquoted.
    let copied = yaml.replacen("tenant: source\n", "tenant: 'yaml: copy #1'\n", 1);
    let answer = apply_yaml(&cluster[1], &copied).await;
    assert_eq!(
        answer,
        json!({"success": true, "dry_run": false, "changed": true, "revision": 1,
               "counts": counts_building(&source)}),
        "applying the source's YAML export to a new tenant"
    );

    // Every instance lists the copies as it lists the source.
    let mut users: Vec<String> = ["null", "123", "true", "dba", "yes", "- x", "a: b", "#c"]
        .map(str::to_owned)
        .to_vec();
    users.extend(awkward_users().into_iter().step_by(7));
    users.push("nobody".to_owned());
    let original = listings(&cluster[0], "source", &users).await;
    for (user, resource, action, allowed) in CHECKS {
        let answer = json!([user, resource, action, allowed]);
        assert!(
            original["checks"].as_array().unwrap().contains(&answer),
            "in the source tenant, {user} {resource} {action} is allowed={allowed}"
        );
    }
    for tenant in ["copy-json", YAML_COPY] {
        reaches(&cluster, tenant, 1).await;
        for instance in &cluster.instances {
            let copy = export(instance, tenant, None).await;
            assert_eq!(copy["revision"], 1, "{tenant} on {}", instance.server_id);
            assert_eq!(
                groups_of(&copy),
                groups_of(&exported),
                "{tenant}'s export on {} against the source's",
                instance.server_id
            );
            let listed = listings(instance, tenant, &users).await;
            assert_eq!(
                listed, original,
                "{tenant}'s listings on {} against the source's",
                instance.server_id
            );
        }
    }
    // Every awkward user reads the docs through the awkward group's parent, in every copy.
    for user in awkward_users() {
        for tenant in ["source", "copy-json", YAML_COPY] {
            assert!(
                cluster[2].check(tenant, &user, "docs/a", "read").await,
                "{user:?} reads docs/a in {tenant}"
            );
        }
    }

    // Applying a document the tenant already holds changes nothing, as JSON or YAML, and
    // the source's own export applied to it neither.
    let unchanged = json!({"success": true, "dry_run": false, "changed": false, "revision": 1,
                           "counts": {}});
    let again = apply(&cluster[0], &for_tenant(&exported, "copy-json")).await;
    assert_eq!(again, unchanged, "the same JSON document again");
    let again = apply_yaml(&cluster[2], &copied).await;
    assert_eq!(again, unchanged, "the same YAML document again");
    let own = export_yaml(&cluster[0], YAML_COPY, 1).await;
    let read_back: Value = serde_saphyr::from_str(&own).expect("the copy's YAML export parses");
    assert_eq!(
        read_back["tenant"], YAML_COPY,
        "the copy's YAML export names it:\n{own}"
    );
    let again = apply_yaml(&cluster[1], &own).await;
    assert_eq!(again, unchanged, "the copy's own YAML export applied to it");
    let again = apply(&cluster[1], &exported).await;
    assert_eq!(
        again,
        json!({"success": true, "dry_run": false, "changed": false, "revision": revision,
               "counts": {}}),
        "the source's export applied to the source"
    );
    for instance in &cluster.instances {
        assert_eq!(instance.revision("copy-json").await, 1);
        assert_eq!(instance.revision(YAML_COPY).await, 1);
        assert_eq!(instance.revision("source").await, revision);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A document that changes a tenant
// ---------------------------------------------------------------------------------------------

/// A tenant of four groups, for the document of [`changed_tenant`] to change.
fn held_tenant() -> Vec<Group> {
    vec![
        group(
            "staff",
            &[("docs/*", "read"), ("wiki/*", "read")],
            &[
                ("alice", None),
                ("bob", Some("2091-01-01T00:00:00.000Z")),
                ("carol", None),
            ],
            &[],
        ),
        group(
            "eng",
            &[("code/*", "write")],
            &[("dave", Some("2090-01-01T00:00:00.000Z"))],
            &["staff"],
        ),
        group("old", &[("old/*", "read")], &[("erin", None)], &["staff"]),
        group("keep", &[], &[("alice", None)], &[]),
    ]
}

/// [`held_tenant`] with `old` deleted, a permission and a member taken from `staff`, `eng`
/// taken out of `staff`, bob's end moved, dave's lifted, and a permission, a member and a
/// new group `sre` (nested in `eng`) added. Bob's end is given with an offset.
fn changed_tenant(bob_ends: &str) -> Vec<Group> {
    vec![
        group(
            "staff",
            &[("docs/*", "read"), ("handbook", "read")],
            &[("alice", None), ("bob", Some(bob_ends))],
            &[],
        ),
        group(
            "eng",
            &[("code/*", "write")],
            &[("dave", None), ("gina", None)],
            &[],
        ),
        group("keep", &[], &[("alice", None)], &[]),
        group("sre", &[("ops/*", "*")], &[("frank", None)], &["eng"]),
    ]
}

/// A change as /changes lists it, without who made it, where and when.
fn what_changed(entry: &Value) -> Value {
    let mut entry = entry.clone();
    let fields = entry.as_object_mut().unwrap();
    for field in ["revision", "actor", "server_id", "at"] {
        fields.remove(field);
    }
    entry
}

/// `values` in an order that does not depend on the order of their fields.
fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_key(|value| {
        let fields = value.as_object().expect("an object");
        fields
            .iter()
            .map(|(name, value)| (name.clone(), value.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    values
}

#[tokio::test]
async fn a_document_changes_a_tenant_in_one_revision_that_every_instance_reaches() {
    let cluster = Cluster::start(3).await;
    let mut before = 0;
    for changes in building(&held_tenant()) {
        before = write(&cluster[0], "acme", changes).await;
    }
    reaches(&cluster, "acme", before).await;

    let sent = described("acme", &changed_tenant("2092-06-01T02:00:00+02:00"));
    let answer = apply(&cluster[1], &sent).await;
    assert_eq!(
        answer,
        json!({"success": true, "dry_run": false, "changed": true, "revision": before + 1,
               "counts": {"delete-group": 1, "create-group": 1, "unnest-group": 1,
                          "remove-permission": 1, "unassign-user": 1, "add-permission": 2,
                          "assign-user": 4, "nest-group": 1}}),
        "the answer to the changing document"
    );

    // The feed lists every change under the one new revision.
    let (status, feed) = cluster[2]
        .get(
            "/changes",
            &[
                ("tenant", "acme"),
                ("after", &before.to_string()),
                ("min_revision", &(before + 1).to_string()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    assert_eq!(feed["revision"], before + 1, "{feed}");
    assert_eq!(feed["next_after"], Value::Null, "{feed}");
    let entries = feed["changes"].as_array().unwrap();
    for entry in entries {
        assert_eq!(
            entry["revision"],
            before + 1,
            "every change is the one write's: {entry}"
        );
    }
    let listed = sorted(entries.iter().map(what_changed).collect());
    let expected = sorted(vec![
        json!({"operation": "delete-group", "group": "old"}),
        json!({"operation": "create-group", "group": "sre"}),
        json!({"operation": "unnest-group", "group": "eng", "parent": "staff"}),
        json!({"operation": "remove-permission", "group": "staff", "resource": "wiki/*",
               "action": "read"}),
        json!({"operation": "unassign-user", "group": "staff", "user": "carol"}),
        json!({"operation": "add-permission", "group": "staff", "resource": "handbook",
               "action": "read"}),
        json!({"operation": "assign-user", "group": "staff", "user": "bob",
               "expires_at": "2092-06-01T00:00:00.000Z"}),
        json!({"operation": "assign-user", "group": "eng", "user": "dave"}),
        json!({"operation": "assign-user", "group": "eng", "user": "gina"}),
        json!({"operation": "add-permission", "group": "sre", "resource": "ops/*",
               "action": "*"}),
        json!({"operation": "assign-user", "group": "sre", "user": "frank"}),
        json!({"operation": "nest-group", "group": "sre", "parent": "eng"}),
    ]);
    assert_eq!(
        listed, expected,
        "the changes /changes lists after {before}"
    );

    // Every instance converges on the document, the end shown in UTC.
    let wanted = groups_of(&described(
        "acme",
        &changed_tenant("2092-06-01T00:00:00.000Z"),
    ));
    for instance in &cluster.instances {
        let took = eventually(PROPAGATION, || async {
            let now = export(instance, "acme", None).await;
            now["revision"] == before + 1 && groups_of(&now) == wanted
        })
        .await;
        assert!(
            took.is_some(),
            "{} did not converge within {PROPAGATION:?}: has {}\nwant {wanted}",
            instance.server_id,
            export(instance, "acme", None).await
        );
        for ((user, resource, action), allowed) in [
            (("carol", "docs/a", "read"), false),
            (("gina", "docs/a", "read"), false),
            (("gina", "code/x", "write"), true),
            (("frank", "code/x", "write"), true),
            (("frank", "ops/db", "restart"), true),
            (("erin", "old/x", "read"), false),
            (("bob", "handbook", "read"), true),
            (("alice", "wiki/home", "read"), false),
        ] {
            assert_eq!(
                instance.check("acme", user, resource, action).await,
                allowed,
                "{} answers {user} {resource} {action}",
                instance.server_id
            );
        }
    }
    // The same end at another offset is the same end: nothing to change.
    let again = apply(&cluster[0], &sent).await;
    assert_eq!(
        again,
        json!({"success": true, "dry_run": false, "changed": false, "revision": before + 1,
               "counts": {}}),
        "the document again, bob's end still given with an offset"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Dry runs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_dry_run_answers_the_difference_in_order_and_changes_nothing() {
    let cluster = Cluster::start(2).await;
    let held = vec![
        group(
            "a",
            &[("r1", "read"), ("r2", "read")],
            &[("u1", None), ("u2", None)],
            &["b"],
        ),
        group("b", &[("rb", "read")], &[("ub", None)], &[]),
        group("c", &[], &[("uc", None)], &["b"]),
        group("gone", &[], &[("ug", None)], &[]),
    ];
    let mut revision = 0;
    for changes in building(&held) {
        revision = write(&cluster[0], "acme", changes).await;
    }
    reaches(&cluster, "acme", revision).await;
    let mut exports = Vec::new();
    for instance in &cluster.instances {
        exports.push(export(instance, "acme", None).await);
    }
    let wanted = vec![
        group(
            "a",
            &[("r2", "read"), ("r3", "read")],
            &[("u2", None), ("u3", Some("2093-01-01T00:00:00.000Z"))],
            &[],
        ),
        group("b", &[("rb", "read")], &[("ub", None)], &["n"]),
        group("c", &[], &[("uc", None)], &["b"]),
        group("n", &[("rn", "read")], &[("un", None)], &[]),
    ];
    let mut document = described("acme", &wanted);
    let expected_counts = json!({"delete-group": 1, "create-group": 1, "unnest-group": 1,
                                 "remove-permission": 1, "unassign-user": 1,
                                 "add-permission": 2, "assign-user": 2, "nest-group": 1});

    document["dry_run"] = json!(true);
    let answer = apply(&cluster[1], &document).await;
    assert_eq!(
        answer,
        json!({
            "success": true, "dry_run": true, "changed": false, "revision": revision,
            "counts": expected_counts,
            "changes": [
                {"op": "delete-group", "group": "gone"},
                {"op": "create-group", "group": "n"},
                {"op": "unnest-group", "group": "a", "parent": "b"},
                {"op": "remove-permission", "group": "a", "resource": "r1", "action": "read"},
                {"op": "unassign-user", "group": "a", "user": "u1"},
                {"op": "add-permission", "group": "a", "resource": "r3", "action": "read"},
                {"op": "assign-user", "group": "a", "user": "u3",
                 "expires_at": "2093-01-01T00:00:00.000Z"},
                {"op": "add-permission", "group": "n", "resource": "rn", "action": "read"},
                {"op": "assign-user", "group": "n", "user": "un"},
                {"op": "nest-group", "group": "b", "parent": "n"},
            ],
        }),
        "the dry run's answer"
    );
    // Nothing changed, anywhere: not the revision, not the tenant, not the feed.
    for (instance, before) in cluster.instances.iter().zip(&exports) {
        assert_eq!(instance.revision("acme").await, revision);
        assert_eq!(
            &export(instance, "acme", None).await,
            before,
            "{} after the dry run",
            instance.server_id
        );
        let (_, feed) = instance
            .get(
                "/changes",
                &[("tenant", "acme"), ("after", &revision.to_string())],
            )
            .await;
        assert_eq!(
            feed["changes"],
            json!([]),
            "the feed after a dry run: {feed}"
        );
    }

    // The same difference, applied on the condition that the tenant is where the dry run
    // found it.
    document["dry_run"] = json!(false);
    document["if_revision"] = json!(revision);
    let answer = apply(&cluster[0], &document).await;
    assert_eq!(
        answer,
        json!({"success": true, "dry_run": false, "changed": true, "revision": revision + 1,
               "counts": expected_counts}),
        "applying what the dry run previewed"
    );
    let wanted = groups_of(&described("acme", &wanted));
    for instance in &cluster.instances {
        let took = eventually(PROPAGATION, || async {
            groups_of(&export(instance, "acme", Some(revision + 1)).await) == wanted
        })
        .await;
        assert!(
            took.is_some(),
            "{}'s export is not the document: {}",
            instance.server_id,
            export(instance, "acme", None).await
        );
    }
    // A dry run of what the tenant holds finds nothing to do.
    document["dry_run"] = json!(true);
    document["if_revision"] = json!(revision + 1);
    let answer = apply(&cluster[1], &document).await;
    assert_eq!(
        answer,
        json!({"success": true, "dry_run": true, "changed": false, "revision": revision + 1,
               "counts": {}, "changes": []}),
        "a dry run of what the tenant holds"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. if_revision
// ---------------------------------------------------------------------------------------------

/// The tenant as a test compares it before and after: its revision and its export.
async fn state(api: &Api, tenant: &str) -> (u64, Value) {
    (api.revision(tenant).await, export(api, tenant, None).await)
}

#[tokio::test]
async fn if_revision_other_than_the_tenants_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    let mut revision = 0;
    for changes in building(&held_tenant()) {
        revision = write(node, "acme", changes).await;
    }
    let before = state(node, "acme").await;
    let mut document = described("acme", &changed_tenant("2092-06-01T00:00:00.000Z"));
    for (if_revision, dry_run) in [
        (revision - 1, false),
        (0, false),
        (revision + 1, false),
        (revision + 1000, false),
        (revision - 1, true),
        (revision + 1, true),
    ] {
        document["if_revision"] = json!(if_revision);
        document["dry_run"] = json!(dry_run);
        let reply = put(node, Some(JSON), document.to_string()).await;
        assert_error(
            &reply,
            409,
            "revision_mismatch",
            &format!("if_revision {if_revision} (dry_run {dry_run}) at revision {revision}"),
        );
        assert_eq!(
            state(node, "acme").await,
            before,
            "acme after if_revision {if_revision}"
        );
    }
    // The right one applies, once.
    document["if_revision"] = json!(revision);
    document["dry_run"] = json!(false);
    let answer = apply(node, &document).await;
    assert_eq!(answer["changed"], true, "{answer}");
    assert_eq!(answer["revision"], revision + 1, "{answer}");
    let after = state(node, "acme").await;
    let reply = put(node, Some(JSON), document.to_string()).await;
    assert_error(
        &reply,
        409,
        "revision_mismatch",
        "the same if_revision again",
    );
    assert_eq!(state(node, "acme").await, after);

    // A tenant never written is at revision 0.
    let fresh = json!({"tenant": "fresh", "groups": [{"name": "g"}], "if_revision": 1});
    let reply = put(node, Some(JSON), fresh.to_string()).await;
    assert_error(
        &reply,
        409,
        "revision_mismatch",
        "if_revision 1 on a new tenant",
    );
    assert_eq!(node.revision("fresh").await, 0);
    let fresh = json!({"tenant": "fresh", "groups": [{"name": "g"}], "if_revision": 0});
    let answer = apply(node, &fresh).await;
    assert_eq!(
        answer,
        json!({"success": true, "dry_run": false, "changed": true, "revision": 1,
               "counts": {"create-group": 1}})
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Bad documents
// ---------------------------------------------------------------------------------------------

/// A request the battery sends, and the error it must get.
struct Case {
    label: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// What the error's message must mention, if anything in particular: where in the
    /// document the problem is, say.
    mentions: Option<&'static str>,
}

impl Case {
    /// `body` as it is, with `content_type`; refused as an invalid request.
    fn raw(label: &str, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            label: label.to_owned(),
            content_type,
            body: body.into(),
            status: 400,
            code: "invalid_request",
            mentions: None,
        }
    }

    /// [`valid_document`] with `change` made to it, as JSON; refused as an invalid request.
    fn edit(label: &str, change: impl FnOnce(&mut Value)) -> Self {
        let mut document = valid_document();
        change(&mut document);
        Self::raw(label, Some(JSON), document.to_string())
    }

    fn yaml(label: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::raw(label, Some(YAML), body)
    }

    /// Refused with `status` and `code` instead.
    fn refused(self, status: u16, code: &'static str) -> Self {
        Self {
            status,
            code,
            ..self
        }
    }

    fn mentioning(self, text: &'static str) -> Self {
        Self {
            mentions: Some(text),
            ..self
        }
    }
}

/// A valid document for acme, unlike what acme holds: one let in by mistake changes it.
fn valid_document() -> Value {
    json!({"tenant": "acme", "groups": [
        {"name": "g",
         "permissions": [{"resource": "r", "action": "a"}],
         "members": [{"user": "u"}, {"user": "v", "expires_at": "2091-01-01T00:00:00Z"}],
         "parents": ["h"]},
        {"name": "h", "permissions": [], "members": [], "parents": []},
    ]})
}

/// A chain of `length` groups for acme, `c1` in `c2` in ... in `c<length>`.
fn chain(length: usize) -> Value {
    let groups: Vec<Value> = (1..=length)
        .map(|at| {
            let parents: Vec<String> = (at < length)
                .then(|| format!("c{}", at + 1))
                .into_iter()
                .collect();
            json!({"name": format!("c{at}"), "permissions": [], "members": [],
                   "parents": parents})
        })
        .collect();
    json!({"tenant": "acme", "groups": groups})
}

/// A YAML document whose first group's 2000 members an alias repeats in 2999 more groups:
/// 6 million memberships from 115 KB.
fn alias_bomb() -> String {
    let members: Vec<String> = (0..2000).map(|i| format!("{{user: u{i}}}")).collect();
    let mut yaml = format!(
        "tenant: acme\ngroups:\n- {{name: g0, members: &m [{}]}}\n",
        members.join(", ")
    );
    for at in 1..3000 {
        yaml.push_str(&format!("- {{name: g{at}, members: *m}}\n"));
    }
    yaml
}

/// Sets the field or item of [`valid_document`] at `pointer`: one more at the end of an
/// array, or a field of an object, if there is none.
fn set(pointer: &'static str, value: Value) -> impl FnOnce(&mut Value) {
    move |document| {
        let (within, last) = pointer.rsplit_once('/').expect(pointer);
        match document.pointer_mut(within).expect(pointer) {
            Value::Array(items) => match last.parse::<usize>().expect(pointer) {
                at if at == items.len() => items.push(value),
                at => items[at] = value,
            },
            Value::Object(fields) => drop(fields.insert(last.to_owned(), value)),
            other => panic!("{pointer}: {other} holds nothing"),
        }
    }
}

/// Takes `field` out of [`valid_document`].
fn remove(field: &'static str) -> impl FnOnce(&mut Value) {
    move |document| drop(document.as_object_mut().unwrap().remove(field))
}

fn bad_documents() -> Vec<Case> {
    let valid_yaml = "tenant: acme\ngroups:\n- name: g\n  members:\n  - user: u\n";
    let valid_json = valid_document().to_string();
    let end = "/groups/0/members/1/expires_at";
    let twice = "listed twice";
    let elsewhere = "not a group of the document";
    vec![
        // Names.
        Case::edit("an empty group name", set("/groups/0/name", json!("")))
            .mentioning("`groups[0]`"),
        Case::edit("a group name with `*`", set("/groups/1/name", json!("h*")))
            .mentioning("`groups[1]`"),
        Case::edit(
            "a group name with a leading space",
            set("/groups/0/name", json!(" g")),
        ),
        Case::edit(
            "a 257-byte group name",
            set("/groups/0/name", json!("x".repeat(257))),
        ),
        Case::edit(
            "a control character",
            set("/groups/0/members/1/user", json!("b\u{7}l")),
        )
        .mentioning("`groups[0].members[1]`"),
        Case::edit(
            "a user with `*`",
            set("/groups/0/members/0/user", json!("u*")),
        )
        .mentioning("`groups[0].members[0]`"),
        Case::edit(
            "an empty resource",
            set("/groups/0/permissions/0/resource", json!("")),
        )
        .mentioning("`groups[0].permissions[0]`"),
        Case::edit(
            "a trailing space",
            set("/groups/0/permissions/0/action", json!("a ")),
        )
        .mentioning("`groups[0].permissions[0]`"),
        Case::edit("a parent with `*`", set("/groups/0/parents/0", json!("h*")))
            .mentioning("`groups[0].parents[0]`"),
        Case::edit("an empty tenant", set("/tenant", json!(""))),
        Case::edit("a tenant with `*`", set("/tenant", json!("ac*me"))),
        // Twice.
        Case::edit("a group twice", set("/groups/1/name", json!("g"))).mentioning(twice),
        Case::edit(
            "a permission twice",
            set(
                "/groups/0/permissions/1",
                json!({"resource": "r", "action": "a"}),
            ),
        )
        .mentioning(twice),
        Case::edit(
            "a member twice, with another end",
            set("/groups/0/members/2", json!({"user": "v"})),
        )
        .mentioning(twice),
        Case::edit("a parent twice", set("/groups/0/parents/1", json!("h"))).mentioning(twice),
        // Parents.
        Case::edit(
            "a parent nowhere",
            set("/groups/0/parents/0", json!("nowhere")),
        )
        .mentioning("`groups[0].parents[0]`: group 'nowhere' is not a group of the document"),
        Case::edit(
            "a parent only the tenant has",
            set("/groups/0/parents/0", json!("keep")),
        )
        .mentioning(elsewhere),
        // Ends.
        Case::edit("an end that is no time", set(end, json!("tomorrow")))
            .mentioning("`groups[0].members[1]`"),
        Case::edit(
            "an end in month 13",
            set(end, json!("2091-13-01T00:00:00Z")),
        )
        .mentioning("`groups[0].members[1]`"),
        Case::edit("an end without a time", set(end, json!("2091-01-01")))
            .mentioning("`groups[0].members[1]`"),
        Case::edit("an end as a number", set(end, json!(3_820_000_000_u64))),
        // Unknown fields.
        Case::edit("an unknown field", set("/extra", json!(1))).mentioning("extra"),
        Case::edit("`member` for `members`", set("/groups/1/member", json!([])))
            .mentioning("`member`"),
        Case::edit(
            "an unknown member field",
            set("/groups/0/members/0/expires", json!("x")),
        )
        .mentioning("expires"),
        Case::edit(
            "an unknown permission field",
            set("/groups/0/permissions/0/effect", json!(0)),
        )
        .mentioning("effect"),
        // Shapes.
        Case::edit("groups as an object", set("/groups", json!({"g": {}}))),
        Case::edit("groups as null", set("/groups", Value::Null)),
        Case::edit("a group as an array", set("/groups/1", json!(["h"]))),
        Case::edit(
            "a permission as an array",
            set("/groups/0/permissions/0", json!(["r", "a"])),
        ),
        Case::edit(
            "a member as a string",
            set("/groups/0/members/0", json!("u")),
        ),
        Case::edit(
            "a member as an array",
            set("/groups/0/members/0", json!(["u"])),
        ),
        Case::edit("parents as a string", set("/groups/0/parents", json!("h"))),
        Case::edit("dry_run as a string", set("/dry_run", json!("yes"))),
        Case::edit("a negative if_revision", set("/if_revision", json!(-1))),
        Case::edit("no tenant", remove("tenant")),
        Case::edit("no groups", remove("groups")),
        // JSON.
        Case::raw(
            "truncated JSON",
            Some(JSON),
            "{\"tenant\":\"acme\",\"groups\":[",
        ),
        Case::raw("an empty JSON body", Some(JSON), ""),
        Case::raw("a JSON array", Some(JSON), format!("[{valid_json}]")),
        Case::raw(
            "a JSON key twice",
            Some(JSON),
            r#"{"tenant":"acme","tenant":"x","groups":[]}"#,
        ),
        Case::raw("YAML sent as JSON", Some(JSON), valid_yaml),
        // YAML.
        Case::yaml("a YAML sequence at the top", format!("- {valid_json}\n")),
        Case::yaml("a YAML scalar at the top", "acme\n"),
        Case::yaml(
            "two YAML documents",
            format!("{valid_yaml}---\n{valid_yaml}"),
        ),
        Case::yaml(
            "two YAML documents, one ended",
            format!("{valid_yaml}...\n---\n{valid_yaml}"),
        ),
        Case::yaml("an alias bomb", alias_bomb()),
        Case::yaml("an alias to no anchor", "tenant: acme\ngroups: *nowhere\n"),
        Case::yaml("an unclosed YAML bracket", "tenant: acme\ngroups: [\n"),
        Case::yaml("a YAML key twice", format!("{valid_yaml}tenant: other\n")),
        Case::yaml(
            "an unknown field in YAML",
            format!("{valid_yaml}extra: 1\n"),
        )
        .mentioning("extra"),
        Case::yaml(
            "a null user",
            "tenant: acme\ngroups:\n- name: g\n  members:\n  - user: ~\n",
        ),
        Case::yaml(
            "a member as a YAML sequence",
            "tenant: acme\ngroups:\n- name: g\n  members:\n  - [u]\n",
        ),
        Case::yaml("an empty YAML body", ""),
        // Content types.
        Case::raw("no content type", None, valid_json.clone())
            .refused(415, "unsupported_media_type"),
        Case::raw("text/plain", Some("text/plain"), valid_json.clone())
            .refused(415, "unsupported_media_type"),
        Case::raw(
            "application/xml",
            Some("application/xml"),
            valid_json.clone(),
        )
        .refused(415, "unsupported_media_type"),
        Case::raw(
            "a form",
            Some("application/x-www-form-urlencoded"),
            "tenant=acme",
        )
        .refused(415, "unsupported_media_type"),
        // Nestings.
        Case::edit("a cycle of two", set("/groups/1/parents", json!(["g"]))).refused(409, "cycle"),
        Case::edit(
            "a group its own parent",
            set("/groups/1/parents", json!(["h"])),
        )
        .refused(409, "cycle"),
        Case::edit(
            "a cycle of three",
            set(
                "/groups",
                json!([{"name": "a", "parents": ["b"]}, {"name": "b", "parents": ["c"]},
                                  {"name": "c", "parents": ["a"]}]),
            ),
        )
        .refused(409, "cycle"),
        Case::raw("a chain of nine", Some(JSON), chain(9).to_string())
            .refused(409, "nesting_too_deep"),
        Case::raw("a chain of nine, on a dry run", Some(JSON), {
            let mut document = chain(9);
            document["dry_run"] = json!(true);
            document.to_string()
        })
        .refused(409, "nesting_too_deep"),
    ]
}

#[tokio::test]
async fn a_bad_document_is_refused_with_its_error_and_changes_nothing() {
    let cluster = Cluster::start(1).await;
    let node = &cluster[0];
    for changes in building(&held_tenant()) {
        write(node, "acme", changes).await;
    }
    let before = state(node, "acme").await;
    let stored = common::stored_rows(&cluster.database_url).await;
    let cases = bad_documents();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let reply = put(node, case.content_type, case.body.clone()).await;
        if let Some(problem) = error_mismatch(&reply, case.status, case.code) {
            failures.push(format!("{}: {problem}", case.label));
        } else if let Some(mention) = case.mentions {
            let message = reply.body()["error"]["message"]
                .as_str()
                .unwrap()
                .to_owned();
            if !message.contains(mention) {
                failures.push(format!(
                    "{}: the message {message:?} does not mention {mention:?}",
                    case.label
                ));
            }
        }
        let after = state(node, "acme").await;
        if after != before {
            failures.push(format!("{}: acme changed to {}", case.label, after.1));
        }
    }
    common::reply::assert_no_failures(&failures, cases.len());
    assert_eq!(
        common::stored_rows(&cluster.database_url).await,
        stored,
        "the store after the bad documents"
    );

    // As deep as may be: a chain of eight is taken.
    let answer = apply(node, &chain(8)).await;
    assert_eq!(
        answer,
        json!({"success": true, "dry_run": false, "changed": true, "revision": before.0 + 1,
               "counts": {"delete-group": 4, "create-group": 8, "nest-group": 7}}),
        "a chain of eight groups"
    );
    assert_eq!(
        groups_of(&export(node, "acme", None).await),
        groups_of(&chain(8)),
        "acme after the chain of eight"
    );
}

/// A document for `tenant` of one group with `members` members, as JSON.
fn document_of_members(tenant: &str, members: usize) -> String {
    let members: Vec<Value> = (0..members)
        .map(|i| json!({"user": format!("member-{i:05}")}))
        .collect();
    json!({"tenant": tenant, "groups": [{"name": "many", "members": members}]}).to_string()
}

#[tokio::test]
async fn a_document_over_policy_max_bytes_is_refused_and_one_under_it_is_taken() {
    let small = Cluster::start_with(1, &[("POLICY_MAX_BYTES", "65536")]).await;
    let node = &small[0];
    let over = document_of_members("acme", 3000);
    assert!(
        (68_000..75_000).contains(&over.len()),
        "{} bytes",
        over.len()
    );
    let reply = put(node, Some(JSON), over.clone()).await;
    assert_error(
        &reply,
        413,
        "payload_too_large",
        "70 KB over a limit of 64 KiB",
    );
    // Without a declared length, the body is cut off as it comes.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = over
        .as_bytes()
        .chunks(8192)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let reply = put(node, Some(JSON), streamed).await;
    assert_error(
        &reply,
        413,
        "payload_too_large",
        "70 KB streamed over a limit of 64 KiB",
    );
    let yaml: String = (0..4000).fold(
        "tenant: acme\ngroups:\n- name: many\n  members:\n".into(),
        |mut yaml, i| {
            yaml.push_str(&format!("  - user: member-{i:05}\n"));
            yaml
        },
    );
    assert!(yaml.len() > 65_536, "{} bytes", yaml.len());
    let reply = put(node, Some(YAML), yaml).await;
    assert_error(
        &reply,
        413,
        "payload_too_large",
        "YAML over a limit of 64 KiB",
    );
    assert_eq!(
        node.revision("acme").await,
        0,
        "acme after the bodies too large"
    );
    // Under the limit is taken.
    let under = document_of_members("acme", 2700);
    assert!(under.len() < 65_536, "{} bytes", under.len());
    let answer = apply(node, &serde_json::from_str(&under).unwrap()).await;
    assert_eq!(
        answer["counts"],
        json!({"create-group": 1, "assign-user": 2700}),
        "{answer}"
    );

    // The default limit (16 MiB) takes the document the small one refused: more than the
    // 64 KiB of the other writes.
    let default = Cluster::start(1).await;
    let answer = apply(&default[0], &serde_json::from_str(&over).unwrap()).await;
    assert_eq!(
        answer,
        json!({"success": true, "dry_run": false, "changed": true, "revision": 1,
               "counts": {"create-group": 1, "assign-user": 3000}}),
        "70 KB under the default limit"
    );
    let exported = export(&default[0], "acme", Some(1)).await;
    assert_eq!(
        exported["groups"][0]["members"].as_array().unwrap().len(),
        3000
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Credentials
// ---------------------------------------------------------------------------------------------

const ADMIN: &str = "admin-secret";
const CHECKER: &str = "check-secret";

/// A new API key, `(token, id)`, made with ADMIN_TOKEN.
async fn api_key(node: &Instance, tenant: &str, role: &str) -> (String, String) {
    let (status, body) = node
        .post(
            "/create-api-key",
            json!({"tenant": tenant, "role": role, "name": "documents"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn only_a_writer_for_the_tenant_may_apply_a_document() {
    let cluster = Cluster::start_with(1, &[("ADMIN_TOKEN", ADMIN), ("CHECK_TOKEN", CHECKER)]).await;
    let node = &cluster[0];
    for tenant in ["x", "y"] {
        node.create_group(tenant, "seed").await;
    }
    let (x_admin, x_admin_id) = api_key(node, "x", "admin").await;
    let (x_checker, _) = api_key(node, "x", "check").await;
    let document = |tenant: &str| {
        json!({"tenant": tenant,
               "groups": [{"name": "taken", "members": [{"user": "mallory"}]}]})
    };
    let before = [state(node, "x").await, state(node, "y").await];
    // Each credential, the tenant it aims at, the error, and whether the route's guard
    // refuses it before the body is read (a credential without the role): then a broken body
    // gets the same error.
    let unauthorized = (401, "unauthorized");
    let forbidden = (403, "forbidden");
    for (label, credential, tenant, (status, code), before_the_body) in [
        ("no credential", None, "x", unauthorized, true),
        ("a wrong token", Some("wrong"), "x", unauthorized, true),
        ("CHECK_TOKEN", Some(CHECKER), "x", forbidden, true),
        (
            "a check key for x",
            Some(x_checker.as_str()),
            "x",
            forbidden,
            true,
        ),
        (
            "an admin key for x",
            Some(x_admin.as_str()),
            "y",
            forbidden,
            false,
        ),
    ] {
        let api = node.with_token(credential);
        for dry_run in [false, true] {
            let what = format!("{label} applying to {tenant} (dry_run {dry_run})");
            let mut sent = document(tenant);
            sent["dry_run"] = json!(dry_run);
            let reply = put(&api, Some(JSON), sent.to_string()).await;
            assert_error(&reply, status, code, &what);
        }
        if before_the_body {
            let reply = put(&api, Some(JSON), "{\"tenant\":").await;
            assert_error(
                &reply,
                status,
                code,
                &format!("{label}, with a broken body"),
            );
        }
        assert_eq!(
            [state(node, "x").await, state(node, "y").await],
            before,
            "x and y after {label}"
        );
    }
    // A key for x reads y's export neither.
    let (status, body) = node
        .with_token(Some(&x_admin))
        .get(POLICY, &[("tenant", "y")])
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );

    // The admin key applies to its own tenant, and the feed names it as the author.
    let answer = apply(&node.with_token(Some(&x_admin)), &document("x")).await;
    assert_eq!(answer["changed"], true, "{answer}");
    let (_, feed) = node
        .get(
            "/changes",
            &[("tenant", "x"), ("after", &before[0].0.to_string())],
        )
        .await;
    let actors: Vec<&Value> = (feed["changes"].as_array().unwrap().iter())
        .map(|change| &change["actor"])
        .collect();
    assert_eq!(
        actors.len(),
        3,
        "delete seed, create taken, assign mallory: {feed}"
    );
    assert!(
        actors
            .iter()
            .all(|actor| **actor == json!(format!("key:{x_admin_id}"))),
        "{feed}"
    );
    // ADMIN_TOKEN applies to any tenant.
    let answer = apply(node, &document("y")).await;
    assert_eq!(answer["changed"], true, "{answer}");
}
