//! The embedded default: no DATABASE_URL, no Redis, nothing installed. State lives in
//! DATA_DIR and survives restarts; bad environments stop the start with one clear line.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::{Environment, Process};
use common::{InProcess, Instance, eventually};
use rbac_server::store::sqlite::SqliteStore;

fn temp_dir() -> PathBuf {
    common::temp_dir("rbac-embedded")
}

fn embedded_env(data_dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![("DATA_DIR".to_string(), data_dir.display().to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Runs the binary with `env` to its end: it must refuse to start, with one clear line that
/// mentions `mentions`.
fn assert_refused(env: &[(&str, &str)], mentions: &str) {
    let mut full_env = vec![("PORT", "0"), ("HOST", "127.0.0.1")];
    full_env.extend_from_slice(env);
    let exit = Process::run(Environment::PathOnly, &full_env, Duration::from_secs(15));
    let problems = exit.refusal_problems(mentions);
    assert!(
        problems.is_empty(),
        "{} (exit {:?}, stderr {:?})",
        problems.join("; "),
        exit.status,
        exit.stderr
    );
}

#[tokio::test]
async fn with_no_configuration_state_lives_in_the_data_dir_and_survives_a_restart() {
    let data_dir = temp_dir().join("data");
    let env = embedded_env(&data_dir, &[("SERVER_ID", "solo")]);
    let node = Instance::spawn(&env).await;
    let health = node.health().await;
    assert_eq!(health["database"], "ok", "{health}");
    assert_eq!(health["redis"], "disabled", "{health}");
    assert!(
        node.logs()
            .iter()
            .any(|line| line.contains("REDIS_URL is not set")),
        "no log line says there is no bus"
    );
    node.create_group("acme", "editors").await;
    node.add_permission("acme", "editors", "docs/*", "read")
        .await;
    node.assign_user("acme", "alice", "editors").await;
    assert!(node.check("acme", "alice", "docs/readme", "read").await);
    let before = node.groups("acme").await;
    assert!(node.stop().success());
    assert!(
        data_dir.join("rbac.db").exists(),
        "DATA_DIR was not created"
    );

    let node = Instance::spawn(&env).await;
    assert!(node.check("acme", "alice", "docs/readme", "read").await);
    assert_eq!(node.groups("acme").await, before);
    let body = node.create_group("acme", "writers").await;
    assert_eq!(body["revision"], 4);
}

#[tokio::test]
async fn instances_sharing_one_file_converge_through_the_sweep() {
    let data_dir = temp_dir();
    let data_dir = data_dir.to_str().unwrap();
    // In this process: what is tested is the shared file and the sweep, not the binary.
    let flags = |id| {
        let sweep = ["--resync-interval-secs", "1"];
        [["--data-dir", data_dir], ["--server-id", id], sweep].concat()
    };
    let a = InProcess::start(&flags("a")).await;
    let b = InProcess::start(&flags("b")).await;
    a.create_group("t", "g").await;
    a.add_permission("t", "g", "doc", "read").await;
    a.assign_user("t", "alice", "g").await;
    // No bus: `b` learns that the tenant was created, as of any other change, by its sweep.
    let took = eventually(Duration::from_secs(4), || async {
        b.check("t", "alice", "doc", "read").await
    })
    .await;
    assert!(
        took.is_some(),
        "b does not know the tenant after the sweep bound"
    );
    b.remove_permission("t", "g", "doc", "read").await;
    // No bus: the sweep (1 s here) is what tells `a`.
    let took = eventually(Duration::from_secs(4), || async {
        !a.check("t", "alice", "doc", "read").await
    })
    .await;
    assert!(took.is_some(), "a still allows after the sweep bound");
}

#[test]
fn a_data_dir_that_cannot_be_written_is_one_clear_line() {
    let dir = temp_dir();
    let file = dir.join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let data_dir = file.join("data");
    assert_refused(&[("DATA_DIR", data_dir.to_str().unwrap())], "DATA_DIR");
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused_with_one_clear_line() {
    let dir = temp_dir();
    let path = dir.join("rbac.db");
    // A database that a future release migrated further.
    let store = SqliteStore::open_file(&path, Duration::from_secs(5), 8)
        .await
        .unwrap();
    drop(store);
    let url = format!("sqlite://{}", path.display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101000000, 'from the future', TRUE, X'00', 0)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    drop(db);

    assert_refused(&[("DATA_DIR", dir.to_str().unwrap())], "newer");
    assert_refused(&[("DATABASE_URL", &url)], "newer");
}

#[test]
fn an_unknown_database_url_scheme_is_one_clear_line() {
    for url in ["mysql://localhost/db", "file:rbac.db", "rbac.db"] {
        assert_refused(&[("DATABASE_URL", url)], "DATABASE_URL");
    }
}

/// What happens to the database file under a running instance.
#[derive(Debug, Clone, Copy)]
enum FileFault {
    /// `rm rbac.db`.
    Deleted,
    /// A copy moved over it, as a restore from a backup with `mv` does.
    Replaced,
    /// Cut to a few bytes.
    Truncated,
}

#[tokio::test]
async fn a_deleted_replaced_or_truncated_file_stops_writes_and_health_says_so() {
    use reqwest::StatusCode;
    use serde_json::json;

    for fault in [
        FileFault::Deleted,
        FileFault::Replaced,
        FileFault::Truncated,
    ] {
        let data_dir = temp_dir();
        let node = Instance::spawn(&embedded_env(&data_dir, &[])).await;
        node.create_group("acme", "editors").await;
        let file = data_dir.join("rbac.db");
        match fault {
            FileFault::Deleted => std::fs::remove_file(&file).unwrap(),
            FileFault::Replaced => {
                let copy = data_dir.join("backup.db");
                std::fs::copy(&file, &copy).unwrap();
                std::fs::rename(&copy, &file).unwrap();
            }
            FileFault::Truncated => std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(10)
                .unwrap(),
        }
        for user in ["bob", "carol"] {
            let (status, body) = node
                .post(
                    "/assign-user",
                    json!({"tenant": "acme", "group": "editors", "user": user}),
                )
                .await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}: {body}");
            assert_eq!(body["error"]["code"], "unavailable", "{fault:?}: {body}");
        }
        let health = node.health().await;
        assert_eq!(health["database"], "down", "{fault:?}: {health}");
        let (ready, body) = node.get("/ready", &[]).await;
        assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}: {body}");
        assert!(
            node.logs()
                .iter()
                .any(|line| line.contains("the database file is not the one this instance opened")),
            "{fault:?}: no log line says why writes are refused"
        );
        // The reads it holds are still answered.
        assert_eq!(node.revision("acme").await, 1);
        assert!(node.stop().success());
    }
}

#[tokio::test]
async fn writes_past_a_file_size_limit_fail_503_not_500_and_recover_once_it_is_lifted() {
    use reqwest::StatusCode;
    use serde_json::json;

    let data_dir = temp_dir();
    let node = Instance::spawn(&embedded_env(&data_dir, &[])).await;
    node.create_group("acme", "editors").await;
    // The closest real equivalent of a full disk that needs no mount: a file-size limit
    // (RLIMIT_FSIZE, its soft limit, which may be raised again) set on the running process,
    // below what the files take already, so that no page can be written past it.
    node.limit_file_size(Some(4096));

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..300 {
        let user = format!("user-{i:03}");
        let (status, body) = node
            .post(
                "/assign-user",
                json!({"tenant": "acme", "group": "editors", "user": user}),
            )
            .await;
        match status {
            StatusCode::OK => acknowledged.push(user),
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                if refused == 5 {
                    break;
                }
            }
            other => panic!("write {i} answered {other}: {body}"),
        }
    }
    assert_eq!(refused, 5, "the file-size limit never stopped a write");
    let health = node.health().await;
    assert_eq!(health["database"], "down", "{health}");

    node.limit_file_size(None);
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.health().await["database"] == "ok"
        })
        .await
        .is_some(),
        "health never recovered"
    );
    for i in 0..20 {
        let user = format!("after-{i}");
        let (status, body) = node
            .post(
                "/assign-user",
                json!({"tenant": "acme", "group": "editors", "user": user}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "write {i} after the limit was lifted: {body}"
        );
        acknowledged.push(user);
    }
    // Exactly the acknowledged writes are in the store, as a fresh start reads it.
    assert!(node.stop().success());
    let node = Instance::spawn(&embedded_env(&data_dir, &[])).await;
    let groups = node.groups("acme").await;
    let mut members: Vec<String> = groups["groups"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    members.sort();
    acknowledged.sort();
    assert_eq!(members, acknowledged);
}

#[tokio::test]
async fn a_malformed_database_file_is_refused_at_start_with_one_clear_line() {
    let garbage = "this is not a database\n".repeat(500).into_bytes();
    let truncated = b"SQLite for".to_vec();
    for content in [garbage, truncated] {
        let data_dir = temp_dir();
        std::fs::write(data_dir.join("rbac.db"), content).unwrap();
        assert_refused(
            &[("DATA_DIR", data_dir.to_str().unwrap())],
            "not a database",
        );
    }
}
