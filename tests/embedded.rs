//! The embedded default: no DATABASE_URL, no Redis, nothing installed. State lives in
//! DATA_DIR and survives restarts; bad environments stop the start with one clear line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Instance, eventually};
use rbac_server::store::sqlite::SqliteStore;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbac-embedded-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn embedded_env(data_dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![("DATA_DIR".to_string(), data_dir.display().to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Runs the binary to its end (it must not start) and returns (exit code, stderr).
fn refused_start(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rbac-server"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("HOST", "127.0.0.1");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("rbac-server started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    )
}

fn assert_one_clear_line(code: Option<i32>, stderr: &str, mentions: &str) {
    assert!(
        matches!(code, Some(c) if c != 0 && c != 101),
        "exit {code:?}: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("rbac-server: "), "{stderr}");
    assert!(
        stderr.contains(mentions),
        "{stderr:?} should mention {mentions:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
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
    let a = Instance::spawn(&embedded_env(
        &data_dir,
        &[("SERVER_ID", "a"), ("RESYNC_INTERVAL_SECS", "1")],
    ))
    .await;
    let b = Instance::spawn(&embedded_env(
        &data_dir,
        &[("SERVER_ID", "b"), ("RESYNC_INTERVAL_SECS", "1")],
    ))
    .await;
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
    let (code, stderr) = refused_start(&[("DATA_DIR", data_dir.to_str().unwrap())]);
    assert_one_clear_line(code, &stderr, "DATA_DIR");
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

    let (code, stderr) = refused_start(&[("DATA_DIR", dir.to_str().unwrap())]);
    assert_one_clear_line(code, &stderr, "newer");
    let (code, stderr) = refused_start(&[("DATABASE_URL", &url)]);
    assert_one_clear_line(code, &stderr, "newer");
}

#[test]
fn an_unknown_database_url_scheme_is_one_clear_line() {
    for url in ["mysql://localhost/db", "file:rbac.db", "rbac.db"] {
        let (code, stderr) = refused_start(&[("DATABASE_URL", url)]);
        assert_one_clear_line(code, &stderr, "DATABASE_URL");
    }
}
