//! One rbac-server process for a test: the workspace's binary on a free loopback port, on its
//! embedded SQLite store in a directory of its own, stopped when the test is done; called
//! through the client library.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rbac_client::{Check, Client, PageRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub server_id: String,
    /// The API, with the server's ADMIN_TOKEN when it has one.
    pub client: Client,
    process: Child,
    data: PathBuf,
}

/// The server binary: RBAC_SERVER_BIN, or the one cargo built beside this test.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RBAC_SERVER_BIN") {
        return path.into();
    }
    // target/<profile>/deps/<this test> -> target/<profile>/rbac-server
    let test = std::env::current_exe().expect("the test's path");
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary lives in target/<profile>/deps");
    let server = profile.join("rbac-server");
    assert!(
        server.is_file(),
        "{} is not built: run `cargo build --bin rbac-server` first, or set RBAC_SERVER_BIN",
        server.display()
    );
    server
}

/// The address of a "listening" log line.
fn listening(line: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = if event["fields"].is_object() {
        &event["fields"]
    } else {
        &event
    };
    (fields["message"] == "listening").then(|| fields["addr"].as_str().map(str::to_owned))?
}

impl Server {
    /// A server with `env` on top of PORT=0, HOST=127.0.0.1 and a data directory of its own.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let data = std::env::temp_dir().join(format!("rbacctl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&data).unwrap();
        let mut process = Command::new(binary())
            .env_clear()
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("DATA_DIR", &data)
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(address) = listening(&line) {
                    return address;
                }
            }
            panic!("the server ended before it listened");
        })
        .await
        .expect("the server listens within 30 s");
        // Its log is not read again, but must be drained for it to go on writing.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base = format!("http://{address}");
        let token = (env.iter())
            .find(|(name, _)| *name == "ADMIN_TOKEN")
            .map(|(_, token)| *token);
        let client = Client::new(&base, token).unwrap();
        let server_id = client.health().await.expect("the server answers").server_id;
        Self {
            base,
            server_id,
            client,
            process,
            data,
        }
    }

    pub async fn create_group(&self, tenant: &str, group: &str) {
        self.client.create_group(tenant, group).await.unwrap();
    }

    pub async fn add_permission(&self, tenant: &str, group: &str, resource: &str, action: &str) {
        (self.client.add_permission(tenant, group, resource, action))
            .await
            .unwrap();
    }

    pub async fn assign_user(&self, tenant: &str, user: &str, group: &str) {
        (self.client.assign_user(tenant, group, user, None))
            .await
            .unwrap();
    }

    pub async fn check(&self, tenant: &str, user: &str, resource: &str, action: &str) -> bool {
        let check = Check::new(tenant, user, resource, action);
        self.client.check(&check).await.unwrap().allowed
    }

    /// The revision the server holds `tenant` at.
    pub async fn revision(&self, tenant: &str) -> u64 {
        let page = PageRequest {
            limit: Some(1),
            cursor: None,
        };
        self.client.groups(tenant, &page).await.unwrap().revision
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The process first, so that it does not write into a directory being removed.
        let _ = self.process.start_kill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
