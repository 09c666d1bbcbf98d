//! The benchmark suite's driver; `scripts/bench.sh` runs it. Subcommands:
//!
//! - `seed`: writes the dataset (100 standard tenants and the large one) into a PostgreSQL
//!   store in bulk, straight into its tables, one transaction per tenant.
//! - `requests`: prints check requests (JSON lines, with the expected answer) for the load
//!   generator and the bare baseline.
//! - `propagation`: writes on one instance and polls another until it reflects the write.
//! - `writes`: concurrent changing writes spread over the standard tenants, for a while.

#[path = "../benches/support/dataset.rs"]
mod dataset;

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;
use sqlx::Connection;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Seed {
        #[arg(long)]
        database_url: String,
    },
    Requests {
        #[arg(long, default_value_t = 20_000)]
        count: usize,
    },
    Propagation {
        #[arg(long)]
        writer: String,
        #[arg(long)]
        reader: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value_t = 200)]
        trials: usize,
    },
    Writes {
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() {
    match Args::parse().command {
        Command::Seed { database_url } => seed(&database_url).await,
        Command::Requests { count } => requests(count),
        Command::Propagation {
            writer,
            reader,
            tenant,
            trials,
        } => propagation(&writer, &reader, &tenant, trials).await,
        Command::Writes {
            target,
            concurrency,
            seconds,
        } => writes(&target, concurrency, Duration::from_secs(seconds)).await,
    }
}

async fn seed(database_url: &str) {
    let mut db = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connect to PostgreSQL");
    let started = Instant::now();
    for i in 0..dataset::STANDARD_TENANTS {
        let rows = dataset::rows(&dataset::standard_tenant(i), &dataset::STANDARD);
        insert(&mut db, &rows).await;
    }
    insert(
        &mut db,
        &dataset::rows(dataset::LARGE_TENANT, &dataset::LARGE),
    )
    .await;
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
}

/// One tenant's rows in one transaction, in batches of arrays (unnest), at revision 1.
async fn insert(db: &mut sqlx::PgConnection, rows: &dataset::TenantRows) {
    const BATCH: usize = 50_000;
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO tenants (name, revision) VALUES ($1, 1)")
        .bind(&rows.tenant)
        .execute(&mut *tx)
        .await
        .expect("a fresh database (the tenant already exists)");
    for batch in rows.groups.chunks(BATCH) {
        sqlx::query("INSERT INTO groups (tenant, name) SELECT $1, unnest($2::text[])")
            .bind(&rows.tenant)
            .bind(batch)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for batch in rows.permissions.chunks(BATCH) {
        let (groups, rest): (Vec<&str>, Vec<(&str, &str)>) = batch
            .iter()
            .map(|(g, r, a)| (g.as_str(), (r.as_str(), a.as_str())))
            .unzip();
        let (resources, actions): (Vec<&str>, Vec<&str>) = rest.into_iter().unzip();
        sqlx::query(
            "INSERT INTO permissions (tenant, group_name, resource, action)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])",
        )
        .bind(&rows.tenant)
        .bind(groups)
        .bind(resources)
        .bind(actions)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    for batch in rows.assignments.chunks(BATCH) {
        let (groups, users): (Vec<&str>, Vec<&str>) =
            batch.iter().map(|(g, u)| (g.as_str(), u.as_str())).unzip();
        sqlx::query(
            "INSERT INTO assignments (tenant, group_name, user_name)
             SELECT $1, * FROM unnest($2::text[], $3::text[])",
        )
        .bind(&rows.tenant)
        .bind(groups)
        .bind(users)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Nine in ten requests go to the standard tenants, one in ten to the large one; half are
/// allowed.
fn requests(count: usize) {
    for n in 0..count {
        let (tenant, shape) = if n % 10 == 9 {
            (dataset::LARGE_TENANT.to_string(), &dataset::LARGE)
        } else {
            (
                dataset::standard_tenant((n * 31) % dataset::STANDARD_TENANTS),
                &dataset::STANDARD,
            )
        };
        let (user, resource, action, expected) = dataset::check(shape, n / 10 + n);
        println!(
            "{}",
            json!({"tenant": tenant, "user": user, "resource": resource, "action": action,
                   "expected": expected})
        );
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn allowed(client: &reqwest::Client, base: &str, tenant: &str, user: &str) -> bool {
    let (resource, action) = dataset::permission(1, 0);
    let body: serde_json::Value = client
        .post(format!("{base}/check-access"))
        .json(&json!({"tenant": tenant, "user": user, "resource": resource, "action": action}))
        .send()
        .await
        .expect("check-access")
        .json()
        .await
        .expect("a JSON answer");
    body["allowed"].as_bool().expect("allowed")
}

/// Grants and revokes by turns on `writer`; each time, the time from the write's answer until
/// `reader` answers accordingly.
async fn propagation(writer: &str, reader: &str, tenant: &str, trials: usize) {
    let client = client();
    let user = "propagation-probe";
    let group = dataset::group(1);
    // Both instances hold the tenant before the first trial.
    let mut granted = allowed(&client, writer, tenant, user).await;
    allowed(&client, reader, tenant, user).await;
    let mut samples = Vec::with_capacity(trials);
    let mut lost = 0;
    for _ in 0..trials {
        let path = if granted {
            "unassign-user"
        } else {
            "assign-user"
        };
        let response = client
            .post(format!("{writer}/{path}"))
            .json(&json!({"tenant": tenant, "user": user, "group": group}))
            .send()
            .await
            .expect("write");
        assert!(response.status().is_success(), "{}", response.status());
        let written = Instant::now();
        granted = !granted;
        loop {
            if allowed(&client, reader, tenant, user).await == granted {
                samples.push(written.elapsed());
                break;
            }
            if written.elapsed() > Duration::from_secs(5) {
                lost += 1;
                break;
            }
        }
    }
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "propagation tenant={tenant} trials={trials} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} lost={lost}",
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// Changing writes (a new member each time) from `concurrency` clients over the standard
/// tenants, for `duration`.
async fn writes(target: &str, concurrency: usize, duration: Duration) {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let target = target.to_string();
        tasks.push(tokio::spawn(async move {
            let client = client();
            let (mut done, mut failed) = (0u64, 0u64);
            let mut n = 0usize;
            while Instant::now() < deadline {
                n += 1;
                let k = task * 1_000_003 + n * 7919;
                let body = json!({
                    "tenant": dataset::standard_tenant(k % dataset::STANDARD_TENANTS),
                    "group": dataset::group(k % dataset::STANDARD.groups),
                    "user": format!("writer-{task}-{n}"),
                });
                let response = client
                    .post(format!("{target}/assign-user"))
                    .json(&body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => done += 1,
                    _ => failed += 1,
                }
            }
            (done, failed)
        }));
    }
    let (mut done, mut failed) = (0, 0);
    for task in tasks {
        let (d, f) = task.await.unwrap();
        done += d;
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "writes concurrency={concurrency} total={done} failed={failed} seconds={seconds:.1} per_second={:.0}",
        done as f64 / seconds
    );
}
