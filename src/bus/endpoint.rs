//! The Redis node to talk to now, for the subscriber and the publisher alike: each asks
//! [`Endpoint::client`] whenever it (re)connects, and only then.
//!
//! - One node is always the same node.
//! - A Sentinel service's master is asked of the sentinels at every call, and the redis crate
//!   checks with `ROLE` that the node they name is a master: a connection made after a
//!   failover goes to the new master. A connection made before it is closed by Sentinel
//!   itself, which kills the normal and pub/sub clients of a master it demotes (and a master
//!   that crashed closes them anyway), so a subscriber is never left listening to a replica.
//! - A cluster's nodes are tried in turn, each call starting after the node the previous one
//!   gave: classic pub/sub is broadcast over the cluster bus, so any node hears and reaches
//!   every subscriber. Each node that answers is asked `CLUSTER NODES`, and the nodes it lists
//!   are tried after the URL's, so a seed list that went stale still finds the cluster. The
//!   publisher's and the subscriber's endpoints share what they learn: the publisher connects
//!   seldom, and may first need a node after the URL's are gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, RedisError, RedisResult, TlsMode};

use super::target::{Address, Nodes, Target, Tls};

/// How long one node may take to accept a connection, and to answer.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long asking the sentinels for the master may take: they are asked three at a time,
/// and the master they name is connected to and asked its role.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to connect; one per task, since a Sentinel or Cluster endpoint keeps state between
/// calls (the sentinels' connections, the next node to try): see [`Endpoint::pair`].
pub struct Endpoint {
    kind: Kind,
}

enum Kind {
    Node(Client),
    Sentinel(Box<SentinelClient>),
    Cluster(Cluster),
}

/// The nodes of a cluster, in the order they are tried.
struct Cluster {
    /// The URL's nodes, with its credentials and TLS, which the learned nodes share.
    seeds: Nodes,
    /// Nodes that the last node reached listed and the URL does not, shared by the endpoints
    /// of one [`Endpoint::pair`]. A std mutex: it is never held across an `.await`.
    learned: Arc<Mutex<Vec<Address>>>,
    /// Where the next call starts, in `seeds.addresses` then `learned`.
    next: usize,
}

impl Endpoint {
    /// Two endpoints for `target`, one for the publisher and one for the subscriber, which
    /// share the cluster nodes they learn.
    pub fn pair(target: &Target) -> RedisResult<(Self, Self)> {
        let learned = Arc::new(Mutex::new(Vec::new()));
        Ok((
            Self::new(target, learned.clone())?,
            Self::new(target, learned)?,
        ))
    }

    fn new(target: &Target, learned: Arc<Mutex<Vec<Address>>>) -> RedisResult<Self> {
        let kind = match target {
            Target::Node(info) => Kind::Node(Client::open(info.clone())?),
            Target::Sentinel(sentinel) => {
                let nodes = &sentinel.sentinels;
                let addresses = nodes
                    .addresses
                    .iter()
                    .map(|address| nodes.connection_info(address, 0).addr().clone());
                let mut builder = SentinelClientBuilder::new(
                    addresses,
                    &sentinel.service,
                    SentinelServerType::Master,
                )?
                .set_client_to_redis_db(sentinel.db);
                if let Some(username) = &nodes.credentials.username {
                    builder = builder
                        .set_client_to_sentinel_username(username)
                        .set_client_to_redis_username(username);
                }
                if let Some(password) = &nodes.credentials.password {
                    builder = builder
                        .set_client_to_sentinel_password(password)
                        .set_client_to_redis_password(password);
                }
                match nodes.tls {
                    Tls::None => {}
                    Tls::Verified => {
                        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
                    }
                    Tls::Insecure => {
                        builder = builder.set_client_to_redis_tls_mode(TlsMode::Insecure);
                    }
                }
                Kind::Sentinel(Box::new(builder.build()?))
            }
            Target::Cluster(seeds) => Kind::Cluster(Cluster {
                seeds: seeds.clone(),
                learned,
                next: 0,
            }),
        };
        Ok(Self { kind })
    }

    /// A client for the node to use now; connecting through it may still fail, if the node
    /// went away in between. For a cluster, a node that answered just now.
    pub async fn client(&mut self) -> RedisResult<Client> {
        match &mut self.kind {
            Kind::Node(client) => Ok(client.clone()),
            Kind::Sentinel(sentinel) => {
                tokio::time::timeout(SENTINEL_TIMEOUT, sentinel.async_get_client())
                    .await
                    .unwrap_or_else(|_| Err(timed_out("asking the sentinels for the master")))
            }
            Kind::Cluster(cluster) => cluster.client().await,
        }
    }
}

/// The options every connection is made with: a node that does not answer within
/// [`NODE_TIMEOUT`] counts as down.
pub fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(NODE_TIMEOUT))
        .set_response_timeout(Some(NODE_TIMEOUT))
}

impl Cluster {
    async fn client(&mut self) -> RedisResult<Client> {
        let learned = self.learned.lock().expect("never poisoned").clone();
        let candidates: Vec<Address> = self
            .seeds
            .addresses
            .iter()
            .chain(&learned)
            .cloned()
            .collect();
        let mut last_error = None;
        for offset in 0..candidates.len() {
            let index = (self.next + offset) % candidates.len();
            match self.reach(&candidates[index]).await {
                Ok((client, listed)) => {
                    self.next = index + 1;
                    // Seeds keep their places, so that the rotation through them is the same
                    // whatever this node listed.
                    *self.learned.lock().expect("never poisoned") = listed
                        .into_iter()
                        .filter(|node| !self.seeds.addresses.contains(node))
                        .collect();
                    return Ok(client);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| timed_out("no cluster node to try")))
    }

    /// A client for `address` once it has answered `CLUSTER NODES`, and the nodes it listed.
    async fn reach(&self, address: &Address) -> RedisResult<(Client, Vec<Address>)> {
        let client = Client::open(self.seeds.connection_info(address, 0))?;
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await?;
        // Also what tells a cluster node from a lone one, which would carry messages to its
        // own subscribers only: a lone node refuses the command.
        let listing: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut connection)
            .await?;
        Ok((client, cluster_nodes(&listing)))
    }
}

/// The nodes a `CLUSTER NODES` reply lists that may be reachable: every one but those marked
/// failed, without an address, or still being introduced.
fn cluster_nodes(listing: &str) -> Vec<Address> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_id, address, flags) = (fields.next()?, fields.next()?, fields.next()?);
            let unusable = flags
                .split(',')
                .any(|flag| matches!(flag, "fail" | "noaddr" | "handshake"));
            // `ip:port@cluster-bus-port[,hostname]`
            let (address, _) = address.split_once('@').unwrap_or((address, ""));
            (!unusable)
                .then(|| Address::parse(address, 0))
                .flatten()
                .filter(|address| address.port != 0)
        })
        .collect()
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lists_the_nodes_that_may_answer() {
        let listing = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,node-4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 1426238316232 0 3 disconnected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 master,noaddr - 0 0 5 disconnected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 [::1]:30006@31006 handshake - 0 0 6 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 10.0.0.7:30001@31001 myself,master - 0 0 1 connected 0-5460
";
        let address = |host: &str, port| Address {
            host: host.into(),
            port,
        };
        assert_eq!(
            cluster_nodes(listing),
            [
                address("127.0.0.1", 30004),
                address("127.0.0.1", 30002),
                address("10.0.0.7", 30001)
            ]
        );
        assert!(cluster_nodes("").is_empty());
        assert!(cluster_nodes("garbage\n").is_empty());
    }
}
