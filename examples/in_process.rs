//! rbac-server inside another tokio program: bound to a free port with the embedded SQLite
//! store in a folder of its own, given a policy through the same API a client uses, asked
//! over HTTP, then stopped.
//!
//!     cargo run --example in_process

use std::time::Duration;

use rbac_server::config::Config;
use rbac_server::server::Server;
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::temp_dir().join(format!("rbac-example-{}", std::process::id()));
    let config = Config::from_args([
        "rbac-server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        data_dir
            .to_str()
            .ok_or("a temporary folder with a UTF-8 path")?,
    ])?;
    let server = Server::bind(config).await?;
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    for (route, body) in [
        (
            "create-group",
            json!({"tenant": "acme", "group": "editors"}),
        ),
        (
            "add-permission",
            json!({"tenant": "acme", "group": "editors", "resource": "docs/*", "action": "edit"}),
        ),
        (
            "assign-user",
            json!({"tenant": "acme", "group": "editors", "user": "alice"}),
        ),
    ] {
        client
            .post(format!("{base}/{route}"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
    }
    let answer: Value = client
        .post(format!("{base}/check-access"))
        .json(
            &json!({"tenant": "acme", "user": "alice", "resource": "docs/plan", "action": "edit"}),
        )
        .send()
        .await?
        .json()
        .await?;
    println!("may alice edit docs/plan in acme? {answer}");

    let _ = stop.send(());
    serving.await??;
    std::fs::remove_dir_all(&data_dir)?;
    Ok(())
}
