//! rbacctl against a real server process: every subcommand, its exit status, its tables and
//! its `--json` lines, its one-line errors, and `apply --dry-run` changing nothing.
//!
//! The server is the workspace's own binary, built beside these tests (`cargo build --bin
//! rbac-server`, which the server's own tests do; or named by RBAC_SERVER_BIN), on its
//! embedded SQLite store in a directory of its own.

mod server;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use server::Server as Instance;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const ADMIN: &str = "cli-admin-secret";
/// Both tokens set, so that every route needs a credential.
const TOKENS: &[(&str, &str)] = &[("ADMIN_TOKEN", ADMIN), ("CHECK_TOKEN", "cli-check-secret")];

/// rbacctl with `args`, against `node`, with `token` as RBAC_TOKEN when given.
async fn rbacctl(node: &Instance, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rbacctl"));
    command
        .args(args)
        .env("RBAC_URL", &node.base)
        .env_remove("RBAC_TOKEN")
        .env_remove("RBAC_TENANT");
    if let Some(token) = token {
        command.env("RBAC_TOKEN", token);
    }
    command.output().await.expect("rbacctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs and must exit 0; its standard output.
async fn ok(node: &Instance, args: &[&str]) -> String {
    let output = rbacctl(node, Some(ADMIN), args).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "rbacctl {args:?}: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// The `--json` lines of a run that must exit 0.
async fn json_lines(node: &Instance, args: &[&str]) -> Vec<Value> {
    let mut args = args.to_vec();
    args.push("--json");
    ok(node, &args)
        .await
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// A run that must fail with exit status 3 and one line on stderr naming `code`.
async fn fails(node: &Instance, token: Option<&str>, args: &[&str], code: &str) {
    let output = rbacctl(node, token, args).await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "rbacctl {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with(&format!("rbacctl: {code}")),
        "rbacctl {args:?}: {err:?}"
    );
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
}

const T: &[&str] = &["--tenant", "acme"];

fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend_from_slice(T);
    all
}

#[tokio::test]
async fn every_subcommand_does_what_the_api_does_and_says_so() {
    let node = &Instance::start(TOKENS).await;

    // Writes, each answering whether it changed the tenant, at which revision.
    let out = ok(node, &with(&["create-group", "--group", "staff"])).await;
    assert_eq!(out.trim(), "created (revision 1)");
    let out = ok(node, &with(&["create-group", "--group", "staff"])).await;
    assert_eq!(out.trim(), "exists already (revision 1)");
    ok(node, &with(&["create-group", "--group", "editors"])).await;
    let grant = with(&[
        "grant",
        "--group",
        "staff",
        "--resource",
        "wiki/*",
        "--action",
        "read",
    ]);
    assert_eq!(ok(node, &grant).await.trim(), "changed (revision 3)");
    assert_eq!(ok(node, &grant).await.trim(), "unchanged (revision 3)");
    ok(
        node,
        &with(&["nest", "--group", "editors", "--parent", "staff"]),
    )
    .await;
    ok(
        node,
        &with(&["assign", "--group", "editors", "--user", "alice"]),
    )
    .await;
    let ends = "2091-01-01T00:00:00Z";
    ok(
        node,
        &with(&[
            "assign",
            "--group",
            "staff",
            "--user",
            "bob",
            "--expires-at",
            ends,
        ]),
    )
    .await;

    // check: 0 when allowed, 1 when denied, and why with --explain.
    let check = with(&[
        "check",
        "--user",
        "alice",
        "--resource",
        "wiki/home",
        "--action",
        "read",
    ]);
    let out = ok(node, &check).await;
    assert!(out.starts_with("allowed (revision 6)"), "{out}");
    let mut explain = check.clone();
    explain.push("--explain");
    let out = ok(node, &explain).await;
    assert!(out.contains("editors > staff"), "{out}");
    let denied = with(&[
        "check",
        "--user",
        "carol",
        "--resource",
        "wiki/home",
        "--action",
        "read",
    ]);
    let output = rbacctl(node, Some(ADMIN), &denied).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("denied"), "{}", stdout(&output));
    let mut denied_json = denied.clone();
    denied_json.push("--json");
    let output = rbacctl(node, Some(ADMIN), &denied_json).await;
    assert_eq!(output.status.code(), Some(1));
    let answer: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["revision"], 6);

    // Listings, as tables and as JSON, one page or all of them.
    let out = ok(node, &with(&["groups"])).await;
    assert!(out.contains("editors") && out.contains("staff"), "{out}");
    let pages = json_lines(node, &with(&["groups", "--limit", "1", "--all"])).await;
    assert_eq!(pages.len(), 2, "{pages:?}");
    let names: Vec<&str> = pages
        .iter()
        .map(|p| p["groups"][0]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["editors", "staff"]);
    let first = rbacctl(node, Some(ADMIN), &with(&["groups", "--limit", "1"])).await;
    assert!(stderr(&first).contains("--cursor"), "{}", stderr(&first));
    let members = json_lines(node, &with(&["members", "--group", "staff"])).await;
    assert_eq!(members[0]["members"], serde_json::json!(["bob"]));
    assert_eq!(
        members[0]["expiring"][0]["expires_at"],
        "2091-01-01T00:00:00.000Z"
    );
    let out = ok(node, &with(&["members", "--group", "staff"])).await;
    assert!(out.contains("2091-01-01T00:00:00.000Z"), "{out}");
    let permissions = json_lines(node, &with(&["permissions", "--group", "staff"])).await;
    assert_eq!(permissions[0]["permissions"][0]["resource"], "wiki/*");
    let who = json_lines(
        node,
        &with(&["who-can", "--resource", "wiki/a", "--action", "read"]),
    )
    .await;
    assert_eq!(who[0]["users"], serde_json::json!(["alice", "bob"]));
    let tenants = json_lines(node, &["tenants", "--prefix", "ac"]).await;
    assert_eq!(tenants[0]["tenants"][0]["name"], "acme");
    assert_eq!(tenants[0]["tenants"][0]["revision"], 6);

    // The change feed: one line per change.
    let changes = json_lines(node, &with(&["changes"])).await;
    assert_eq!(changes.len(), 6, "{changes:?}");
    assert_eq!(changes[5]["operation"], "assign-user");
    assert_eq!(changes[5]["expires_at"], "2091-01-01T00:00:00.000Z");
    let later = json_lines(node, &with(&["changes", "--after", "4", "--limit", "1"])).await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["revision"], 5);
    let out = ok(node, &with(&["changes"])).await;
    assert_eq!(out.lines().count(), 6, "{out}");

    // A document: export, edit, preview (nothing changes), apply.
    let dir = tempdir();
    let file = dir.join("acme.yaml");
    ok(node, &with(&["export", "-o", file.to_str().unwrap()])).await;
    let exported = std::fs::read_to_string(&file).unwrap();
    assert!(
        exported.starts_with("tenant: acme\nrevision: 6\n"),
        "{exported}"
    );
    std::fs::write(&file, exported.replace("user: alice", "user: carol")).unwrap();
    let preview = ok(node, &["apply", "-f", file.to_str().unwrap(), "--dry-run"]).await;
    assert!(
        preview.starts_with("would change (revision 6)"),
        "{preview}"
    );
    assert!(
        preview.contains("unassign-user editors user=alice"),
        "{preview}"
    );
    assert!(
        preview.contains("assign-user editors user=carol"),
        "{preview}"
    );
    assert_eq!(
        node.revision("acme").await,
        6,
        "the dry run changed nothing"
    );
    assert!(node.check("acme", "alice", "wiki/home", "read").await);
    let applied = json_lines(
        node,
        &["apply", "-f", file.to_str().unwrap(), "--if-revision", "6"],
    )
    .await;
    assert_eq!(applied[0]["changed"], true, "{applied:?}");
    assert_eq!(applied[0]["revision"], 7);
    assert!(!node.check("acme", "alice", "wiki/home", "read").await);
    assert!(node.check("acme", "carol", "wiki/home", "read").await);
    // The same document again: a stale condition is the server's refusal.
    fails(
        node,
        Some(ADMIN),
        &["apply", "-f", file.to_str().unwrap(), "--if-revision", "6"],
        "revision_mismatch",
    )
    .await;
    let json_file = dir.join("acme.json");
    ok(
        node,
        &with(&[
            "export",
            "--format",
            "json",
            "-o",
            json_file.to_str().unwrap(),
        ]),
    )
    .await;
    let again = ok(
        node,
        &["apply", "-f", json_file.to_str().unwrap(), "--dry-run"],
    )
    .await;
    assert!(
        again.starts_with("nothing would change (revision 7)"),
        "{again}"
    );

    // Taking away.
    for args in [
        vec!["unassign", "--group", "editors", "--user", "carol"],
        vec![
            "revoke",
            "--group",
            "staff",
            "--resource",
            "wiki/*",
            "--action",
            "read",
        ],
        vec!["unnest", "--group", "editors", "--parent", "staff"],
        vec!["delete-group", "--group", "editors"],
    ] {
        let out = ok(node, &with(&args)).await;
        assert!(out.starts_with("changed"), "{args:?}: {out}");
    }
    assert_eq!(node.revision("acme").await, 11);

    // The instance.
    let status = json_lines(node, &["status"]).await;
    assert_eq!(status[0]["health"]["status"], "ok", "{status:?}");
    assert_eq!(status[0]["ready"]["ready"], true, "{status:?}");
    assert_eq!(
        status[0]["credential"]["credential"]["role"], "admin",
        "{status:?}"
    );
    assert_eq!(
        status[0]["credential"]["may"]["manage_keys"], true,
        "{status:?}"
    );
    let out = ok(node, &["status"]).await;
    assert!(out.contains(&node.server_id), "{out}");

    // Errors: one line with the server's code, exit status 3.
    fails(
        node,
        Some(ADMIN),
        &with(&[
            "grant",
            "--group",
            "nobody",
            "--resource",
            "r",
            "--action",
            "a",
        ]),
        "not_found",
    )
    .await;
    fails(node, Some("wrong"), &with(&["groups"]), "unauthorized").await;
    fails(
        node,
        None,
        &with(&["create-group", "--group", "x"]),
        "unauthorized",
    )
    .await;
    fails(
        node,
        Some(ADMIN),
        &with(&[
            "assign",
            "--group",
            "staff",
            "--user",
            "u",
            "--expires-at",
            "soon",
        ]),
        "invalid_request",
    )
    .await;
    fails(
        node,
        Some(ADMIN),
        &["apply", "-f", dir.join("missing.yaml").to_str().unwrap()],
        "",
    )
    .await;
    let unreachable = Command::new(env!("CARGO_BIN_EXE_rbacctl"))
        .args(["groups", "--tenant", "acme", "--url", "http://127.0.0.1:9"])
        .output()
        .await
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(
        stderr(&unreachable).contains("cannot reach"),
        "{}",
        stderr(&unreachable)
    );
    // A usage error is clap's: exit status 2.
    let usage = rbacctl(node, Some(ADMIN), &["check", "--tenant", "acme"]).await;
    assert_eq!(usage.status.code(), Some(2));

    // Completions for a shell.
    let completions = ok(node, &["completions", "bash"]).await;
    assert!(completions.contains("rbacctl") && completions.contains("who-can"));
}

#[tokio::test]
async fn keys_are_issued_listed_used_and_revoked() {
    let node = &Instance::start(TOKENS).await;
    node.create_group("acme", "g").await;

    let created = json_lines(
        node,
        &[
            "keys", "create", "--tenant", "acme", "--role", "check", "--name", "web",
        ],
    )
    .await;
    let key = created[0]["key"].as_str().unwrap().to_owned();
    let id = created[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(created[0]["tenant"], "acme");
    let listed = json_lines(node, &["keys", "list"]).await;
    assert_eq!(listed[0]["keys"][0]["id"], id.as_str());
    assert_eq!(listed[0]["keys"][0]["name"], "web");

    // The key checks, and may not write.
    let check = [
        "check",
        "--tenant",
        "acme",
        "--user",
        "u",
        "--resource",
        "r",
        "--action",
        "a",
    ];
    let output = rbacctl(node, Some(&key), &check).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    fails(
        node,
        Some(&key),
        &["create-group", "--tenant", "acme", "--group", "h"],
        "forbidden",
    )
    .await;
    fails(node, Some(&key), &["keys", "list"], "forbidden").await;

    let out = ok(node, &["keys", "revoke", "--id", &id]).await;
    assert_eq!(out.trim(), format!("key {id} revoked"));
    fails(node, Some(&key), &check, "unauthorized").await;
}

#[tokio::test]
async fn changes_follow_prints_each_change_as_it_happens() {
    let node = &Instance::start(&[]).await;
    node.create_group("acme", "g").await;
    let mut follower = Command::new(env!("CARGO_BIN_EXE_rbacctl"))
        .args(["changes", "--tenant", "acme", "--follow", "--json"])
        .env("RBAC_URL", &node.base)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let next = async |lines: &mut tokio::io::Lines<_>| -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a line within 10 s")
            .unwrap()
            .expect("the stream goes on");
        serde_json::from_str(&line).unwrap()
    };
    // The change made before, then those made after, each once.
    assert_eq!(next(&mut lines).await["revision"], 1);
    node.add_permission("acme", "g", "docs/*", "read").await;
    let change = next(&mut lines).await;
    assert_eq!(change["revision"], 2);
    assert_eq!(change["operation"], "add-permission");
    node.assign_user("acme", "alice", "g").await;
    assert_eq!(next(&mut lines).await["user"], "alice");
    // The changes of one write share its revision, and come each once.
    let changes = [
        serde_json::json!({"op": "create-group", "group": "h"}),
        serde_json::json!({"op": "assign-user", "group": "h", "user": "bob"}),
        serde_json::json!({"op": "nest-group", "group": "h", "parent": "g"}),
    ];
    node.client.write("acme", &changes, None).await.unwrap();
    for operation in ["create-group", "assign-user", "nest-group"] {
        let change = next(&mut lines).await;
        assert_eq!(change["revision"], 4, "{change}");
        assert_eq!(change["operation"], operation, "{change}");
    }
    node.add_permission("acme", "h", "wiki/*", "read").await;
    assert_eq!(next(&mut lines).await["revision"], 5);
    follower.kill().await.unwrap();
}

/// A directory of this test's own under the test run's temporary directory.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rbacctl-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Path::new(&dir).is_dir());
    dir
}
