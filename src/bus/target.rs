//! Where the bus connects, as REDIS_URL says: one Redis node, the master of a Sentinel
//! service, or any node of a Redis Cluster.
//!
//! `redis://` and `rediss://` are the redis crate's own URLs and are read by it. The crate
//! reads neither `redis+sentinel://` nor `redis+cluster://`, whose authority lists several
//! hosts (`h1:26379,h2:26379`, which no URL parser takes), so this module reads those:
//!
//! - `redis+sentinel://[user:password@]host:port,host:port/<service>[/<db>]`
//! - `redis+cluster://[user:password@]host:port,host:port`
//!
//! `rediss+` instead of `redis+` speaks TLS to every node, the sentinels included, and
//! `#insecure` at the end takes any certificate, as `rediss://` does. The user and password
//! are given to every node: a Sentinel deployment that protects its sentinels usually gives
//! them the data nodes' credentials, and one URL cannot say two sets apart without a syntax
//! of our own.

use std::fmt;

use percent_encoding::percent_decode_str;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// The port of a sentinel when the URL names none.
const SENTINEL_PORT: u16 = 26379;
/// The port of a Redis node when the URL names none.
const REDIS_PORT: u16 = 6379;

/// REDIS_URL, parsed.
#[derive(Clone)]
pub enum Target {
    /// One node: `redis://` or `rediss://`.
    Node(ConnectionInfo),
    /// The master of a service that sentinels watch: `redis+sentinel://`.
    Sentinel(Sentinel),
    /// Any node of a Redis Cluster, which carries classic pub/sub to every node:
    /// `redis+cluster://`.
    Cluster(Nodes),
}

/// A Sentinel service as the URL names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sentinel {
    /// The sentinels, asked in this order.
    pub sentinels: Nodes,
    /// The master's name in the sentinels' configuration (`sentinel monitor <name> ...`).
    pub service: String,
    /// The database selected on the master; pub/sub ignores it, but it is the URL's to say.
    pub db: i64,
}

/// Several nodes that share credentials and TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nodes {
    pub addresses: Vec<Address>,
    pub credentials: Credentials,
    pub tls: Tls,
}

/// One node's host and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// How a connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    None,
    /// The certificate must chain to a trusted authority and name the host.
    Verified,
    /// Any certificate: encrypted, but the server is not authenticated.
    Insecure,
}

/// The user and password a URL carries, percent-decoded.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Passwords never reach a log line.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why REDIS_URL cannot be used. None of them repeats the URL, so none shows a password.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The redis crate's reason: a `redis://` or `rediss://` URL it refuses, or settings
    /// its Sentinel client refuses.
    #[error("{0}")]
    Client(#[from] redis::RedisError),
    #[error("{scheme}:// names no host: list them as host:port,host:port")]
    NoHost { scheme: &'static str },
    #[error("{scheme}:// has an empty host in its list (a stray comma?)")]
    EmptyHost { scheme: &'static str },
    #[error("{address:?} is not host:port with a port from 1 to 65535")]
    BadAddress { address: String },
    #[error(
        "redis+sentinel:// needs the service name as its path: redis+sentinel://host:26379,host:26379/mymaster"
    )]
    NoService,
    #[error("the database in redis+sentinel://.../<service>/<db> must be a number, not {0:?}")]
    BadDatabase(String),
    #[error("redis+cluster:// takes no path (a cluster has database 0 only), not {0:?}")]
    ClusterPath(String),
    #[error("{scheme}:// takes no query parameters")]
    Query { scheme: &'static str },
    #[error("{scheme}:// takes no fragment but #insecure, and that with rediss+ only")]
    Fragment { scheme: &'static str },
    #[error("the user or password is not percent-encoded UTF-8")]
    Encoding,
}

/// The forms this module reads, and whether each speaks TLS.
const FORMS: [(&str, Form, Tls); 4] = [
    ("redis+sentinel", Form::Sentinel, Tls::None),
    ("rediss+sentinel", Form::Sentinel, Tls::Verified),
    ("redis+cluster", Form::Cluster, Tls::None),
    ("rediss+cluster", Form::Cluster, Tls::Verified),
];

#[derive(Clone, Copy)]
enum Form {
    Sentinel,
    Cluster,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let form = url.split_once("://").and_then(|(scheme, rest)| {
            FORMS
                .iter()
                .find(|(name, _, _)| scheme.eq_ignore_ascii_case(name))
                .map(|&(name, form, tls)| (name, form, tls, rest))
        });
        let Some((scheme, form, tls, rest)) = form else {
            return Ok(Target::Node(url.into_connection_info()?));
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let tls = match (fragment, tls) {
            (None, tls) => tls,
            (Some("insecure"), Tls::Verified) => Tls::Insecure,
            (Some(_), _) => return Err(TargetError::Fragment { scheme }),
        };
        if rest.contains('?') {
            return Err(TargetError::Query { scheme });
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let default_port = match form {
            Form::Sentinel => SENTINEL_PORT,
            Form::Cluster => REDIS_PORT,
        };
        let nodes = Nodes {
            addresses: addresses(scheme, hosts, default_port)?,
            credentials: userinfo.map(credentials).transpose()?.unwrap_or_default(),
            tls,
        };
        match form {
            Form::Sentinel => {
                let mut segments = path.trim_start_matches('/').split('/');
                let service = segments.next().filter(|s| !s.is_empty());
                let service = service.ok_or(TargetError::NoService)?;
                let db = match segments.next().filter(|s| !s.is_empty()) {
                    Some(db) => db
                        .parse()
                        .ok()
                        .filter(|db| *db >= 0)
                        .ok_or_else(|| TargetError::BadDatabase(db.to_owned()))?,
                    None => 0,
                };
                if let Some(extra) = segments.find(|s| !s.is_empty()) {
                    return Err(TargetError::BadDatabase(extra.to_owned()));
                }
                Ok(Target::Sentinel(Sentinel {
                    sentinels: nodes,
                    service: decode(service)?,
                    db,
                }))
            }
            Form::Cluster if path.is_empty() || path == "/" => Ok(Target::Cluster(nodes)),
            Form::Cluster => Err(TargetError::ClusterPath(path.to_owned())),
        }
    }
}

impl Nodes {
    /// How to reach `address` with these nodes' credentials and TLS, and `db` selected.
    pub fn connection_info(&self, address: &Address, db: i64) -> ConnectionInfo {
        let addr = match self.tls {
            Tls::None => ConnectionAddr::Tcp(address.host.clone(), address.port),
            Tls::Verified | Tls::Insecure => ConnectionAddr::TcpTls {
                host: address.host.clone(),
                port: address.port,
                insecure: self.tls == Tls::Insecure,
                tls_params: None,
            },
        };
        let mut redis = RedisConnectionInfo::default().set_db(db);
        if let Some(username) = &self.credentials.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &self.credentials.password {
            redis = redis.set_password(password);
        }
        addr.into_connection_info()
            .expect("an address is always a connection info")
            .set_redis_settings(redis)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Address {
    /// `host:port`, `host` (the default port), or `[v6]:port`, as written in a host list or in
    /// `CLUSTER NODES`.
    pub fn parse(text: &str, default_port: u16) -> Option<Self> {
        let (host, port) = if let Some(v6) = text.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            Some(port) => port.parse().ok().filter(|port| *port != 0)?,
            None => default_port,
        };
        (!host.is_empty() && !host.contains(['/', '@', ' '])).then(|| Address {
            host: host.to_owned(),
            port,
        })
    }
}

fn addresses(
    scheme: &'static str,
    hosts: &str,
    default_port: u16,
) -> Result<Vec<Address>, TargetError> {
    if hosts.is_empty() {
        return Err(TargetError::NoHost { scheme });
    }
    hosts
        .split(',')
        .map(|host| {
            if host.is_empty() {
                return Err(TargetError::EmptyHost { scheme });
            }
            Address::parse(host, default_port).ok_or_else(|| TargetError::BadAddress {
                address: host.to_owned(),
            })
        })
        .collect()
}

/// `user:password`, `:password` or `user`, each part percent-encoded; an empty part is none.
fn credentials(userinfo: &str) -> Result<Credentials, TargetError> {
    let (username, password) = match userinfo.split_once(':') {
        Some((username, password)) => (username, Some(password)),
        None => (userinfo, None),
    };
    let present = |part: &str| (!part.is_empty()).then(|| decode(part)).transpose();
    Ok(Credentials {
        username: present(username)?,
        password: password.map(present).transpose()?.flatten(),
    })
}

fn decode(text: &str) -> Result<String, TargetError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| TargetError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(host: &str, port: u16) -> Address {
        Address {
            host: host.into(),
            port,
        }
    }

    fn sentinel(url: &str) -> Sentinel {
        match Target::parse(url) {
            Ok(Target::Sentinel(sentinel)) => sentinel,
            Ok(_) => panic!("{url} is not a Sentinel URL"),
            Err(e) => panic!("{url}: {e}"),
        }
    }

    fn cluster(url: &str) -> Nodes {
        match Target::parse(url) {
            Ok(Target::Cluster(nodes)) => nodes,
            Ok(_) => panic!("{url} is not a Cluster URL"),
            Err(e) => panic!("{url}: {e}"),
        }
    }

    fn error(url: &str) -> String {
        match Target::parse(url) {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_sentinel_url_names_the_sentinels_the_service_and_the_database() {
        let parsed =
            sentinel("redis+sentinel://rbac:p%40ss@s1:26380,10.0.0.2,[::1]:26381/mymaster/2");
        assert_eq!(
            parsed.sentinels.addresses,
            [
                address("s1", 26380),
                address("10.0.0.2", 26379),
                address("::1", 26381)
            ]
        );
        assert_eq!(parsed.service, "mymaster");
        assert_eq!(parsed.db, 2);
        assert_eq!(
            parsed.sentinels.credentials,
            Credentials {
                username: Some("rbac".into()),
                password: Some("p@ss".into())
            }
        );
        assert_eq!(parsed.sentinels.tls, Tls::None);
        let plain = sentinel("redis+sentinel://s1/mymaster");
        assert_eq!(plain.db, 0);
        assert_eq!(plain.sentinels.credentials, Credentials::default());
    }

    #[test]
    fn a_password_without_a_user_is_the_default_users() {
        let parsed = sentinel("redis+sentinel://:secret@s1:26379/mymaster");
        assert_eq!(parsed.sentinels.credentials.username, None);
        assert_eq!(
            parsed.sentinels.credentials.password.as_deref(),
            Some("secret")
        );
        let info = parsed
            .sentinels
            .connection_info(&parsed.sentinels.addresses[0], 0);
        assert_eq!(info.redis_settings().password(), Some("secret"));
        assert_eq!(info.redis_settings().username(), None);
    }

    #[test]
    fn a_cluster_url_lists_its_seeds_in_order() {
        let parsed = cluster("redis+cluster://user:pw@n1:7000,n2:7001,n3");
        assert_eq!(
            parsed.addresses,
            [
                address("n1", 7000),
                address("n2", 7001),
                address("n3", 6379)
            ]
        );
        assert_eq!(parsed.credentials.username.as_deref(), Some("user"));
        assert_eq!(cluster("redis+cluster://n1:7000/").addresses.len(), 1);
    }

    #[test]
    fn rediss_forms_speak_tls_to_every_node_and_insecure_takes_any_certificate() {
        let verified = cluster("rediss+cluster://n1:7000,n2:7001");
        assert_eq!(verified.tls, Tls::Verified);
        let info = verified.connection_info(&verified.addresses[1], 0);
        assert!(matches!(
            info.addr(),
            ConnectionAddr::TcpTls { host, port: 7001, insecure: false, .. } if host == "n2"
        ));
        let insecure = sentinel("rediss+sentinel://s1,s2/mymaster#insecure");
        assert_eq!(insecure.sentinels.tls, Tls::Insecure);
        let info = insecure
            .sentinels
            .connection_info(&insecure.sentinels.addresses[0], 0);
        assert!(matches!(
            info.addr(),
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
        assert!(
            error("redis+cluster://n1#insecure").contains("#insecure"),
            "#insecure without TLS is a mistake"
        );
    }

    #[test]
    fn plain_redis_urls_are_the_clients_own() {
        let Ok(Target::Node(info)) = Target::parse("rediss://:pw@cache:6380/3#insecure") else {
            panic!("not a node URL");
        };
        assert!(matches!(
            info.addr(),
            ConnectionAddr::TcpTls {
                port: 6380,
                insecure: true,
                ..
            }
        ));
        assert_eq!(info.redis_settings().db(), 3);
        assert!(Target::parse("http://cache:6379").is_err());
    }

    #[test]
    fn malformed_urls_say_what_is_wrong_without_the_password() {
        for (url, expected) in [
            ("redis+sentinel://:hunter2@/mymaster", "names no host"),
            ("redis+sentinel://:hunter2@s1,,s2/mymaster", "empty host"),
            ("redis+sentinel://:hunter2@s1:26379,", "empty host"),
            (
                "redis+sentinel://:hunter2@s1:notaport/mymaster",
                "\"s1:notaport\"",
            ),
            ("redis+sentinel://:hunter2@s1:0/mymaster", "port from 1"),
            ("redis+sentinel://:hunter2@s1:70000/mymaster", "port from 1"),
            ("redis+sentinel://:hunter2@[::1/mymaster", "[::1"),
            ("redis+sentinel://:hunter2@s1:26379", "service name"),
            ("redis+sentinel://:hunter2@s1:26379/", "service name"),
            ("redis+sentinel://:hunter2@s1/mymaster/x", "\"x\""),
            ("redis+sentinel://:hunter2@s1/mymaster/-1", "\"-1\""),
            ("redis+sentinel://:hunter2@s1/mymaster/0/extra", "\"extra\""),
            ("redis+cluster://:hunter2@n1:7000/1", "takes no path"),
            (
                "redis+cluster://:hunter2@n1:7000?protocol=resp3",
                "no query",
            ),
            ("rediss+cluster://:hunter2@n1:7000#other", "no fragment"),
            ("redis+cluster://:hunt%ffer2@n1:7000", "percent-encoded"),
        ] {
            let message = error(url);
            assert!(message.contains(expected), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{url}: {message}");
        }
    }

    #[test]
    fn addresses_as_cluster_nodes_writes_them_parse() {
        assert_eq!(
            Address::parse("127.0.0.1:7000", 1),
            Some(address("127.0.0.1", 7000))
        );
        assert_eq!(Address::parse("[::1]:7000", 1), Some(address("::1", 7000)));
        assert_eq!(address("::1", 7000).to_string(), "[::1]:7000");
        assert_eq!(Address::parse(":0", 1), None);
        assert_eq!(Address::parse("", 1), None);
    }

    #[test]
    fn credentials_are_not_shown_by_debug() {
        let parsed = cluster("redis+cluster://rbac:hunter2@n1:7000");
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("rbac"), "{shown}");
    }
}
