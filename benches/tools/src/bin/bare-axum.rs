//! The baseline for the HTTP benchmark: a bare axum endpoint that parses the same check
//! request as rbac-server and answers from one HashMap, with nothing else (no auth, no names,
//! no tenants, no tracing). `scripts/bench.sh` runs it beside rbac-server.
//!
//! cargo run --release -p rbac-bench --bin bare-axum -- --port 3100 --requests requests.jsonl

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    port: u16,
    /// JSON lines of check requests, each with the answer under "expected".
    #[arg(long)]
    requests: std::path::PathBuf,
}

#[derive(Deserialize)]
struct CheckRequest {
    tenant: String,
    user: String,
    resource: String,
    action: String,
    #[serde(default)]
    #[allow(dead_code)]
    min_revision: Option<u64>,
}

#[derive(Deserialize)]
struct Line {
    tenant: String,
    user: String,
    resource: String,
    action: String,
    expected: bool,
}

#[derive(Serialize)]
struct CheckResponse {
    allowed: bool,
    revision: u64,
}

type Answers = Arc<HashMap<String, bool>>;

fn key(tenant: &str, user: &str, resource: &str, action: &str) -> String {
    format!("{tenant}\0{user}\0{resource}\0{action}")
}

async fn check(
    State(answers): State<Answers>,
    Json(req): Json<CheckRequest>,
) -> Json<CheckResponse> {
    let allowed = answers
        .get(&key(&req.tenant, &req.user, &req.resource, &req.action))
        .copied()
        .unwrap_or(false);
    Json(CheckResponse {
        allowed,
        revision: 0,
    })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.requests).expect("read the requests file");
    let answers: HashMap<String, bool> = text
        .lines()
        .map(|line| {
            let line: Line = serde_json::from_str(line).expect("a request line");
            (
                key(&line.tenant, &line.user, &line.resource, &line.action),
                line.expected,
            )
        })
        .collect();
    let app = Router::new()
        .route("/check-access", post(check))
        .with_state(Arc::new(answers));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
