//! The bus on Redis Sentinel and Redis Cluster: a master or a node dies under running
//! instances, and the bus carries their changes again once they have moved, with nothing lost.
//!
//! The sweep runs once an hour here, so what reaches a peer within the test came by the bus,
//! or by the resync that follows each (re)subscription.

use super::*;
use common::servers::{RedisCluster, SentinelSetup, subscribers};

/// How long after a master dies every instance is back on the bus, in these tests: the
/// sentinels' `down-after-milliseconds` (1 s) and their election and promotion (a few
/// seconds), then at most one reconnect backoff (5 s) and the resync that follows.
const SENTINEL_FAILOVER_BOUND: Duration = Duration::from_secs(15);

/// How long after a failover asked of the sentinels every instance is on the new master:
/// the old one stays up, and the sentinels demote it (killing its clients, which then move)
/// only after it has reported itself master for 8 s past the promotion, as read by INFO,
/// which they send every 10 s.
const SENTINEL_DEMOTION_BOUND: Duration = Duration::from_secs(30);

/// How long after a cluster node dies the instances that were subscribed on it are back on
/// the bus through another: their connection closes at once, and the next node answers the
/// first reconnect, 100 ms later.
const CLUSTER_MOVE_BOUND: Duration = Duration::from_secs(5);

const NO_SWEEP: (&str, &str) = ("RESYNC_INTERVAL_SECS", "3600");

async fn wait_subscribed(cluster: &Cluster, within: Duration) {
    for instance in &cluster.instances {
        let subscribed = eventually(within, || async {
            instance.health().await["redis"] == "connected"
        })
        .await;
        assert!(
            subscribed.is_some(),
            "{} never subscribed: {:?}",
            instance.server_id,
            instance.logs()
        );
    }
}

/// Waits until every instance has subscribed again since a failure; returns when the last
/// one did, after `since`.
async fn wait_resubscribed(cluster: &Cluster, since: Instant, within: Duration) -> Duration {
    for instance in &cluster.instances {
        let back = eventually(within, || async {
            instance.cache_stats().await["reconnects"].as_u64() >= Some(1)
                && instance.health().await["redis"] == "connected"
        })
        .await;
        assert!(
            back.is_some(),
            "{} did not subscribe again within {within:?}: {}",
            instance.server_id,
            instance.cache_stats().await
        );
    }
    since.elapsed()
}

async fn assert_no_sweep_ran(cluster: &Cluster) {
    for instance in &cluster.instances {
        let stats = instance.cache_stats().await;
        assert_eq!(stats["sweeps"], 0, "{} swept: {stats}", instance.server_id);
    }
}

#[tokio::test]
async fn with_sentinel_the_bus_follows_a_failover_and_loses_nothing() {
    let mut setup = SentinelSetup::start();
    let first_master = setup.master.port();
    let mut cluster = Cluster::on(3, fresh_database().await, Some(setup.url()), &[NO_SWEEP]).await;
    wait_subscribed(&cluster, Duration::from_secs(10)).await;
    assert_eq!(
        subscribers(first_master, &cluster.channel),
        3,
        "every instance subscribes on the master"
    );
    grant(&cluster[0], "t", "g", "alice", "doc").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), true).await;

    // The master crashes; a revocation is made while the sentinels have not yet noticed.
    let crashed = Instant::now();
    setup.master.stop();
    let revoked = cluster[1].remove_permission("t", "g", "doc", "read").await;
    assert_eq!(revoked["changed"], true);
    cluster[2].assign_user("t", "bob", "g").await;
    for instance in &cluster.instances {
        let took = eventually(SENTINEL_FAILOVER_BOUND, || async {
            !instance.check("t", "alice", "doc", "read").await
        })
        .await;
        assert!(
            took.is_some(),
            "{} still allows a permission revoked during the failover, {:?} after the crash",
            instance.server_id,
            crashed.elapsed()
        );
    }

    let promoted = eventually(SENTINEL_FAILOVER_BOUND, || async {
        setup.master_port() == Some(setup.replica.port())
    })
    .await
    .map(|_| crashed.elapsed());
    assert!(
        promoted.is_some(),
        "the sentinels never promoted the replica"
    );
    let back = wait_resubscribed(&cluster, crashed, SENTINEL_FAILOVER_BOUND).await;
    eprintln!(
        "sentinel failover: replica promoted {promoted:?} and every instance subscribed again \
         {back:?} after the master crashed"
    );
    assert_eq!(subscribers(setup.replica.port(), &cluster.channel), 3);

    // Every publisher moves to the new master at its next message, and the peers hear it.
    for (i, resource) in ["doc-0", "doc-1", "doc-2"].into_iter().enumerate() {
        cluster[i].add_permission("t", "g", resource, "read").await;
        assert_everywhere(&cluster, ("t", "bob", resource, "read"), true).await;
    }
    let truth = store_truth(&mut cluster, "t").await;
    assert_converged(&cluster, "t", &truth, PROPAGATION).await;
    assert_no_sweep_ran(&cluster).await;
}

#[tokio::test]
async fn with_sentinel_no_publisher_stays_on_a_demoted_master() {
    let setup = SentinelSetup::start();
    let (old, new) = (setup.master.port(), setup.replica.port());
    let cluster = Cluster::on(3, fresh_database().await, Some(setup.url()), &[NO_SWEEP]).await;
    wait_subscribed(&cluster, Duration::from_secs(10)).await;
    for (i, user) in ["alice", "bob", "carol"].into_iter().enumerate() {
        grant(&cluster[i], "t", user, user, "doc").await;
        assert_everywhere(&cluster, ("t", user, "doc", "read"), true).await;
    }

    // A failover with the old master alive: it goes on accepting PUBLISH as a replica, which
    // would reach none of the subscribers, now on the new master.
    let started = Instant::now();
    setup.fail_over();
    let demoted = eventually(SENTINEL_DEMOTION_BOUND, || async {
        setup.master_port() == Some(new) && SentinelSetup::is_replica(old)
    })
    .await;
    assert!(demoted.is_some(), "the sentinels did not swap the master");
    let back = wait_resubscribed(&cluster, started, SENTINEL_DEMOTION_BOUND).await;
    eprintln!("manual failover: every instance subscribed again {back:?} after it began");
    assert_eq!(subscribers(new, &cluster.channel), 3);
    assert_eq!(subscribers(old, &cluster.channel), 0);

    for (i, user) in ["alice", "bob", "carol"].into_iter().enumerate() {
        cluster[i].remove_permission("t", user, "doc", "read").await;
        assert_everywhere(&cluster, ("t", user, "doc", "read"), false).await;
    }
    assert_no_sweep_ran(&cluster).await;
}

#[tokio::test]
async fn with_a_cluster_instances_move_to_another_node_when_theirs_dies() {
    let mut nodes = RedisCluster::start(3);
    let mut cluster = Cluster::on(0, fresh_database().await, None, &[NO_SWEEP]).await;
    // Each instance starts at another node; the last knows one node only, and must learn the
    // others from it to survive its loss.
    for order in [&[0, 1, 2][..], &[1, 2, 0], &[2, 0, 1], &[0]] {
        let url = nodes.url(order);
        cluster.add_instance_with(&[("REDIS_URL", &url)]).await;
    }
    wait_subscribed(&cluster, Duration::from_secs(10)).await;
    let ports: Vec<u16> = nodes.nodes.iter().map(|n| n.port()).collect();
    let channel = cluster.channel.clone();
    let counts = || {
        ports
            .iter()
            .map(|&p| subscribers(p, &channel))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(),
        [2, 1, 1],
        "each instance subscribes on its first node"
    );
    grant(&cluster[1], "t", "g", "alice", "doc").await;
    assert_everywhere(&cluster, ("t", "alice", "doc", "read"), true).await;

    // The node that instances 0 and 3 subscribe on dies; a revocation is made at once.
    let died = Instant::now();
    nodes.nodes[0].stop();
    cluster[2].remove_permission("t", "g", "doc", "read").await;
    for instance in &cluster.instances {
        let took = eventually(CLUSTER_MOVE_BOUND, || async {
            !instance.check("t", "alice", "doc", "read").await
        })
        .await;
        assert!(
            took.is_some(),
            "{} still allows a permission revoked as its node died",
            instance.server_id
        );
    }
    let moved = eventually(CLUSTER_MOVE_BOUND, || async {
        let now = counts();
        now[0] == 0 && now[1] + now[2] == 4
    })
    .await;
    assert!(moved.is_some(), "subscribers per node: {:?}", counts());
    for i in [0, 3] {
        let stats = cluster[i].cache_stats().await;
        assert!(stats["reconnects"].as_u64() >= Some(1), "{stats}");
    }
    eprintln!(
        "cluster node died: its subscribers moved {:?} later",
        died.elapsed()
    );

    // Instance 0's publisher was on the dead node too: its next message goes through
    // another, and reaches every peer.
    cluster[0].assign_user("t", "bob", "g").await;
    cluster[0].add_permission("t", "g", "doc", "write").await;
    assert_everywhere(&cluster, ("t", "bob", "doc", "write"), true).await;
    // Instance 3 never published before: its publisher finds a node among those its
    // subscriber learned, its URL's only node being gone.
    cluster[3].add_permission("t", "g", "doc", "delete").await;
    assert_everywhere(&cluster, ("t", "bob", "doc", "delete"), true).await;
    let truth = store_truth(&mut cluster, "t").await;
    assert_converged(&cluster, "t", &truth, PROPAGATION).await;
    assert_no_sweep_ran(&cluster).await;
}
