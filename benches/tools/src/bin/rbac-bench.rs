//! The benchmark suite's driver; `scripts/bench.sh` runs it. Subcommands:
//!
//! - `seed`: writes the dataset (100 standard tenants and the large one) into a PostgreSQL
//!   store in bulk, straight into its tables, one transaction per tenant.
//! - `requests`: prints check requests (JSON lines, with the expected answer) for the load
//!   generator and the bare baseline.
//! - `verify`: sends such requests to an instance and checks the answers, which the load
//!   generator does not read.
//! - `propagation`: writes on one instance and polls another until it reflects the write.
//! - `watch-propagation`: writes on one instance and waits for each write's event on a watch
//!   stream of another.
//! - `idle-watchers`: holds many watch streams open on an instance for a while.
//! - `writes`: concurrent changing writes spread over the standard tenants, for a while.
//! - `bulk-writes`: the same through `/write`, a thousand changes a request.
//! - `seed-small`: writes the 100,000 small tenants of the many-tenants section, in bulk.
//! - `requests-small`: check requests spread over the small tenants, as `requests` prints.
//! - `load-all`: reads every small tenant once from an instance (its first loads), timed.
//! - `in-process`: the same tenants in an instance made in this process: loads them all, then
//!   checks random ones on one thread, timed.

#[path = "../../../support/dataset.rs"]
mod dataset;
#[path = "../watch.rs"]
mod watch;

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use serde_json::json;
use sqlx::Connection;

/// The server's allocator, so that what is measured in process behaves as in the server.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

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
    Verify {
        #[arg(long)]
        target: String,
        #[arg(long)]
        requests: std::path::PathBuf,
        #[arg(long, default_value_t = 2_000)]
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
    WatchPropagation {
        #[arg(long)]
        writer: String,
        #[arg(long)]
        reader: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value_t = 200)]
        trials: usize,
    },
    IdleWatchers {
        #[arg(long)]
        target: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long)]
        seconds: u64,
    },
    Writes {
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    BulkWrites {
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 1000)]
        changes: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    SeedSmall {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = dataset::SMALL_TENANTS)]
        count: usize,
    },
    RequestsSmall {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        #[arg(long, default_value_t = dataset::SMALL_TENANTS)]
        tenants: usize,
    },
    LoadAll {
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = dataset::SMALL_TENANTS)]
        tenants: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    InProcess {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = dataset::SMALL_TENANTS)]
        tenants: usize,
        #[arg(long, default_value_t = 2)]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() {
    match Args::parse().command {
        Command::Seed { database_url } => seed(&database_url).await,
        Command::Requests { count } => requests(count),
        Command::Verify {
            target,
            requests,
            count,
        } => verify(&target, &requests, count).await,
        Command::Propagation {
            writer,
            reader,
            tenant,
            trials,
        } => propagation(&writer, &reader, &tenant, trials).await,
        Command::WatchPropagation {
            writer,
            reader,
            tenant,
            trials,
        } => watch::propagation(&writer, &reader, &tenant, trials).await,
        Command::IdleWatchers {
            target,
            tenant,
            count,
            seconds,
        } => watch::idle(&target, &tenant, count, seconds).await,
        Command::Writes {
            target,
            concurrency,
            seconds,
        } => writes(&target, concurrency, Duration::from_secs(seconds)).await,
        Command::BulkWrites {
            target,
            concurrency,
            changes,
            seconds,
        } => bulk_writes(&target, concurrency, changes, Duration::from_secs(seconds)).await,
        Command::SeedSmall {
            database_url,
            count,
        } => seed_small(&database_url, count).await,
        Command::RequestsSmall { count, tenants } => requests_small(count, tenants),
        Command::LoadAll {
            target,
            tenants,
            concurrency,
        } => load_all(&target, tenants, concurrency).await,
        Command::InProcess {
            database_url,
            tenants,
            seconds,
        } => in_process(&database_url, tenants, Duration::from_secs(seconds)).await,
    }
}

async fn seed(database_url: &str) {
    let mut db = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connect to PostgreSQL");
    let started = Instant::now();
    for i in 0..dataset::STANDARD_TENANTS {
        let rows = dataset::rows(&dataset::standard_tenant(i), &dataset::STANDARD);
        insert(&mut db, std::slice::from_ref(&rows)).await;
    }
    insert(
        &mut db,
        &[dataset::rows(dataset::LARGE_TENANT, &dataset::LARGE)],
    )
    .await;
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
}

/// The small tenants, a few thousand to a transaction.
async fn seed_small(database_url: &str, count: usize) {
    let mut db = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connect to PostgreSQL");
    let started = Instant::now();
    let tenants: Vec<dataset::TenantRows> = (0..count)
        .map(|i| dataset::rows(&dataset::small_tenant(i), &dataset::SMALL))
        .collect();
    for chunk in tenants.chunks(5_000) {
        insert(&mut db, chunk).await;
    }
    eprintln!(
        "seeded {count} small tenants in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Tenants' rows in one transaction, in batches of arrays (unnest), at revision 1.
async fn insert(db: &mut sqlx::PgConnection, tenants: &[dataset::TenantRows]) {
    const BATCH: usize = 50_000;
    let mut tx = db.begin().await.unwrap();
    let names: Vec<&str> = tenants.iter().map(|t| t.tenant.as_str()).collect();
    sqlx::query("INSERT INTO tenants (name, revision) SELECT unnest($1::text[]), 1")
        .bind(names)
        .execute(&mut *tx)
        .await
        .expect("a fresh database (a tenant already exists)");
    let groups: Vec<(&str, &str)> = tenants
        .iter()
        .flat_map(|t| t.groups.iter().map(|g| (t.tenant.as_str(), g.as_str())))
        .collect();
    for batch in groups.chunks(BATCH) {
        let (tenants, groups): (Vec<&str>, Vec<&str>) = batch.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO groups (tenant, name) SELECT * FROM unnest($1::text[], $2::text[])",
        )
        .bind(tenants)
        .bind(groups)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let permissions: Vec<[&str; 4]> = tenants
        .iter()
        .flat_map(|t| {
            t.permissions
                .iter()
                .map(|(g, r, a)| [t.tenant.as_str(), g.as_str(), r.as_str(), a.as_str()])
        })
        .collect();
    for batch in permissions.chunks(BATCH) {
        let column = |i: usize| batch.iter().map(|row| row[i]).collect::<Vec<&str>>();
        sqlx::query(
            "INSERT INTO permissions (tenant, group_name, resource, action)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])",
        )
        .bind(column(0))
        .bind(column(1))
        .bind(column(2))
        .bind(column(3))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let assignments: Vec<[&str; 3]> = tenants
        .iter()
        .flat_map(|t| {
            t.assignments
                .iter()
                .map(|(g, u)| [t.tenant.as_str(), g.as_str(), u.as_str()])
        })
        .collect();
    for batch in assignments.chunks(BATCH) {
        let column = |i: usize| batch.iter().map(|row| row[i]).collect::<Vec<&str>>();
        sqlx::query(
            "INSERT INTO assignments (tenant, group_name, user_name)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
        )
        .bind(column(0))
        .bind(column(1))
        .bind(column(2))
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
    print_latencies("propagation", tenant, trials, samples, lost);
}

/// One line of a latency figure: its p50, p99 and maximum, in milliseconds.
fn print_latencies(
    what: &str,
    tenant: &str,
    trials: usize,
    mut samples: Vec<Duration>,
    lost: usize,
) {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{what} tenant={tenant} trials={trials} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} lost={lost}",
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// Changing writes (a new member each time) from `concurrency` clients over the standard
/// tenants, for `duration`.
async fn writes(target: &str, concurrency: usize, duration: Duration) {
    let request = |task: usize, n: usize| {
        let k = task * 1_000_003 + n * 7919;
        json!({
            "tenant": dataset::standard_tenant(k % dataset::STANDARD_TENANTS),
            "group": dataset::group(k % dataset::STANDARD.groups),
            "user": format!("writer-{task}-{n}"),
        })
    };
    let (done, failed, seconds) =
        post_for(target, "/assign-user", concurrency, duration, 1, request).await;
    println!(
        "writes concurrency={concurrency} total={done} failed={failed} seconds={seconds:.1} per_second={:.0}",
        done as f64 / seconds
    );
}

/// Writes of `changes` changes each (new members of a group of a standard tenant, so that
/// every change changes something) from `concurrency` clients, for `duration`; counts the
/// changes made.
async fn bulk_writes(target: &str, concurrency: usize, changes: usize, duration: Duration) {
    let request = move |task: usize, n: usize| {
        let k = task * 1_000_003 + n * 7919;
        let group = dataset::group(k % dataset::STANDARD.groups);
        json!({
            "tenant": dataset::standard_tenant(k % dataset::STANDARD_TENANTS),
            "changes": (0..changes).map(|i| json!({
                "op": "assign-user",
                "group": group,
                "user": format!("bulk-{task}-{n}-{i}"),
            })).collect::<Vec<_>>(),
        })
    };
    let (made, failed, seconds) = post_for(
        target,
        "/write",
        concurrency,
        duration,
        changes as u64,
        request,
    )
    .await;
    println!(
        "bulk-writes concurrency={concurrency} changes={made} failed={failed} seconds={seconds:.1} per_second={:.0}",
        made as f64 / seconds
    );
}

/// POSTs `request(task, n)` to `path` from `concurrency` clients, one after another each, for
/// `duration`: how many units of work were done (`each` for every request that succeeded),
/// how many requests failed, and in how many seconds.
async fn post_for(
    target: &str,
    path: &str,
    concurrency: usize,
    duration: Duration,
    each: u64,
    request: impl Fn(usize, usize) -> serde_json::Value + Clone + Send + 'static,
) -> (u64, u64, f64) {
    let started = Instant::now();
    let deadline = started + duration;
    let url = format!("{target}{path}");
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let (url, request) = (url.clone(), request.clone());
            tokio::spawn(async move {
                let client = client();
                let (mut done, mut failed) = (0u64, 0u64);
                let mut n = 0usize;
                while Instant::now() < deadline {
                    n += 1;
                    match client.post(&url).json(&request(task, n)).send().await {
                        Ok(r) if r.status().is_success() => done += each,
                        _ => failed += 1,
                    }
                }
                (done, failed)
            })
        })
        .collect();
    let (mut done, mut failed) = (0, 0);
    for task in tasks {
        let (d, f) = task.await.unwrap();
        done += d;
        failed += f;
    }
    (done, failed, started.elapsed().as_secs_f64())
}

/// Checks spread over the first `tenants` small tenants, half of them allowed.
fn requests_small(count: usize, tenants: usize) {
    for n in 0..count {
        let tenant = dataset::small_tenant((n * 2_654_435_761) % tenants);
        let (user, resource, action, expected) = dataset::check(&dataset::SMALL, n);
        println!(
            "{}",
            json!({"tenant": tenant, "user": user, "resource": resource, "action": action,
                   "expected": expected})
        );
    }
}

/// One check of every small tenant, `concurrency` at a time: each one a first load.
async fn load_all(target: &str, tenants: usize, concurrency: usize) {
    use futures_util::StreamExt;
    let client = client();
    let started = Instant::now();
    let wrong = futures_util::stream::iter(0..tenants)
        .map(|i| {
            let (client, tenant) = (client.clone(), dataset::small_tenant(i));
            let (user, resource, action, expected) = dataset::check(&dataset::SMALL, i);
            async move {
                let body: serde_json::Value = client
                    .post(format!("{target}/check-access"))
                    .json(
                        &json!({"tenant": tenant, "user": user, "resource": resource,
                                  "action": action}),
                    )
                    .send()
                    .await
                    .expect("check-access")
                    .json()
                    .await
                    .expect("a JSON answer");
                body["allowed"].as_bool() != Some(expected)
            }
        })
        .buffer_unordered(concurrency)
        .filter(|wrong| std::future::ready(*wrong))
        .count()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(wrong, 0, "{wrong} wrong answers");
    println!(
        "load_all tenants={tenants} seconds={seconds:.2} per_second={:.0}",
        tenants as f64 / seconds
    );
}

/// An instance made in this process on the store at `database_url`: loads the first
/// `tenants` small tenants, then checks random ones on one thread, three rounds of `round`;
/// prints the median rate and what the cache estimates a small tenant at.
async fn in_process(database_url: &str, tenants: usize, round: Duration) {
    use futures_util::StreamExt;
    use rbac_server::app::Question;
    use rbac_server::config::Config;
    use rbac_server::policy::TenantName;
    use rbac_server::server::Server;

    // Bound but never served: the checks go straight to the instance, as a handler's would.
    let config = Config::from_args([
        "rbac-bench",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        database_url,
        "--database-pool-size",
        "16",
        "--store-timeout-secs",
        "30",
        // No budget to speak of: every tenant stays held.
        "--cache-memory-mb",
        "1048576",
    ])
    .expect("a valid configuration");
    let server = Server::bind(config).await.expect("start an instance");
    let app = server.app().clone();
    let names: Vec<TenantName> = (0..tenants)
        .map(|i| TenantName::parse("tenant", &dataset::small_tenant(i)).unwrap())
        .collect();
    futures_util::stream::iter(&names)
        .for_each_concurrent(16, |tenant| {
            let app = app.clone();
            async move {
                app.read(tenant, None).await.expect("load a tenant");
            }
        })
        .await;
    let (held, _) = app.cache.memory();
    let questions: Vec<(usize, (String, String, String, bool))> = (0..4096)
        .map(|n| {
            (
                (n * 2_654_435_761) % tenants,
                dataset::check(&dataset::SMALL, n),
            )
        })
        .collect();
    let app_ref = app.clone();
    let rates = tokio::task::spawn_blocking(move || {
        let mut rates = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let mut checks = 0u64;
            while started.elapsed() < round {
                for (t, (user, resource, action, expected)) in &questions {
                    let answer = app_ref.check_cached(
                        names[*t].as_str(),
                        Question {
                            user,
                            resource,
                            action,
                        },
                        None,
                    );
                    assert_eq!(answer.map(|a| a.allowed), Some(*expected));
                }
                checks += questions.len() as u64;
            }
            rates.push(checks as f64 / started.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        rates[1]
    })
    .await
    .unwrap();
    println!(
        "in_process tenants={tenants} checks_per_second={rates:.0} estimated_bytes_per_tenant={:.0}",
        held as f64 / tenants as f64
    );
}

/// The first `count` requests of a file `requests` printed, sent to `target`: every answer
/// must be the expected one.
async fn verify(target: &str, requests: &std::path::Path, count: usize) {
    use futures_util::StreamExt;
    let text = std::fs::read_to_string(requests).expect("read the requests");
    let client = client();
    let wrong = futures_util::stream::iter(text.lines().take(count))
        .map(|line| {
            let mut body: serde_json::Value = serde_json::from_str(line).expect("a request");
            let expected = body["expected"].as_bool().expect("an expected answer");
            body.as_object_mut().unwrap().remove("expected");
            let client = client.clone();
            async move {
                let answer: serde_json::Value = client
                    .post(format!("{target}/check-access"))
                    .json(&body)
                    .send()
                    .await
                    .expect("check-access")
                    .json()
                    .await
                    .expect("a JSON answer");
                (answer["allowed"].as_bool() != Some(expected)).then_some(body)
            }
        })
        .buffer_unordered(16)
        .filter_map(std::future::ready)
        .collect::<Vec<_>>()
        .await;
    assert!(
        wrong.is_empty(),
        "{} wrong answers, first {:?}",
        wrong.len(),
        wrong.first()
    );
    // The same checks, 100 to a batch, as scripts/bench/check.lua sends them given a size.
    let lines: Vec<&str> = text.lines().take(count).collect();
    for chunk in lines.chunks(100) {
        let mut checks = Vec::new();
        let mut expected = Vec::new();
        for line in chunk {
            let mut body: serde_json::Value = serde_json::from_str(line).expect("a request");
            expected.push(body["expected"].as_bool().expect("an expected answer"));
            body.as_object_mut().unwrap().remove("expected");
            checks.push(body);
        }
        let answer: serde_json::Value = client
            .post(format!("{target}/check-access/batch"))
            .json(&serde_json::json!({ "checks": checks }))
            .send()
            .await
            .expect("check-access/batch")
            .json()
            .await
            .expect("a JSON answer");
        let results = answer["results"].as_array().expect("results");
        assert_eq!(results.len(), checks.len(), "{answer}");
        for ((check, result), expected) in checks.iter().zip(results).zip(expected) {
            assert_eq!(
                result["allowed"].as_bool(),
                Some(expected),
                "batch: {check} {result}"
            );
        }
    }
    eprintln!(
        "verified {} answers of {target}, single and in batches",
        count.min(text.lines().count())
    );
}
