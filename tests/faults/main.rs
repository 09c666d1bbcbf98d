//! Fault injection against real processes: Redis and PostgreSQL stopped and restarted under
//! running instances, concurrent writers on several instances, forged and reordered bus
//! messages, and instances killed mid-write. The store is the truth every instance must
//! converge to.

#[path = "../common/mod.rs"]
mod common;

mod bus;
mod lifecycle;
mod postgres;
mod redis_ha;

use std::time::{Duration, Instant};

use common::servers::{PrivatePostgres, PrivateRedis};
use common::{
    Cluster, Instance, PROPAGATION, assert_converged, assert_everywhere, eventually,
    fresh_database, store_truth,
};
use rbac_server::store::Store;
use rbac_server::store::postgres::PgStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn grant(instance: &Instance, tenant: &str, group: &str, user: &str, resource: &str) {
    instance.create_group(tenant, group).await;
    instance
        .add_permission(tenant, group, resource, "read")
        .await;
    instance.assign_user(tenant, user, group).await;
}

fn instance_stop(instance: Instance) -> (std::process::ExitStatus, Vec<String>) {
    let logs = instance.logs_handle();
    let status = instance.stop();
    // The reader thread may still be draining the last lines.
    std::thread::sleep(Duration::from_millis(100));
    let lines = logs.lock().unwrap().clone();
    (status, lines)
}
