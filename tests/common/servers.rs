//! Private PostgreSQL and Redis servers for the fault-injection tests, which stop and start
//! them, and for the TLS tests, which need them set up their own way; the shared servers of
//! `scripts/test.sh` are left alone for the other tests. Redis also comes as a Sentinel setup
//! ([`SentinelSetup`]) and as a Redis Cluster ([`RedisCluster`]), whose nodes fail over.
//!
//! The binaries come from TEST_PG_BIN and TEST_REDIS_SERVER (exported by `scripts/test.sh`),
//! or are looked for where Debian installs them; `redis-cli` beside `redis-server`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::temp_dir;

/// A loopback port nothing listens on, below the kernel's ephemeral range as in
/// `scripts/lib/services.sh`: a port there is never the local end of a client connection,
/// whose TIME_WAIT would keep a server from listening on it when it starts, or restarts.
pub fn free_port() -> u16 {
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .filter(|low| *low > 12_000)
        .unwrap_or(32_768);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos())
        ^ std::process::id();
    (0..1000u32)
        .map(|i| 10_000 + seed.wrapping_add(i.wrapping_mul(7919)) % (low - 10_000))
        .filter_map(|port| u16::try_from(port).ok())
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free loopback port below the ephemeral range")
}

fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "port {port} did not become {}",
        if up { "open" } else { "closed" }
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A Redis server of the test's own.
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    /// How it listens and whom it lets in, given again at every (re)start.
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = free_port();
        let args = vec!["--port".to_string(), port.to_string()];
        Self::start_with(port, args)
    }

    /// A server that speaks TLS only (its plain port is off), with the certificate of
    /// `certs`, and that lets in only clients giving `password`. Clients need no certificate.
    pub fn start_tls(certs: &TestCertificates, password: &str) -> Self {
        let port = free_port();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            path(&certs.cert),
            "--tls-key-file",
            path(&certs.key),
            "--tls-ca-cert-file",
            path(&certs.ca),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            password,
        ];
        Self::start_with(port, args.iter().map(|a| a.to_string()).collect())
    }

    fn start_with(port: u16, args: Vec<String>) -> Self {
        Self::start_in(temp_dir("rbac-redis"), port, args)
    }

    /// A server whose files live in `dir`: `args` may name a configuration file there.
    fn start_in(dir: PathBuf, port: u16, args: Vec<String>) -> Self {
        let mut redis = Self {
            port,
            dir,
            args,
            child: None,
        };
        redis.resume();
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server abruptly, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port(self.port, false);
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        let binary = redis_server();
        let child = Command::new(&binary)
            .args(&self.args)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("stderr")).expect("create a log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary} (set TEST_REDIS_SERVER): {e}"));
        self.child = Some(child);
        self.wait_until_listening(&binary);
    }

    /// Fails at once, with Redis's own words, when it cannot start: a build without TLS
    /// refuses `--tls-port`, for example.
    fn wait_until_listening(&mut self, binary: &str) {
        let child = self.child.as_mut().expect("started");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = child.try_wait().expect("wait for redis-server") {
                let why = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
                panic!("{binary} {:?} exited ({status}): {why}", self.args);
            }
            assert!(Instant::now() < deadline, "port {} did not open", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn redis_server() -> String {
    std::env::var("TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// `redis-cli`, which the redis-tools package installs beside `redis-server`.
fn redis_cli() -> PathBuf {
    let beside = Path::new(&redis_server()).with_file_name("redis-cli");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("redis-cli")
    }
}

/// A synchronous connection to the Redis on `port`, for the helpers' own questions.
fn redis_connection(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    client.get_connection_with_timeout(Duration::from_secs(2))
}

/// Polls `check` until it returns true, or panics with `what` after `within`.
fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis Sentinel setup of the test's own: a master, its replica, and three sentinels that
/// watch them as [`SentinelSetup::SERVICE`] with a quorum of two. Its timeouts are short, so
/// that a failover takes seconds: the master counts as down after one second without an
/// answer, and a failover that stalls is tried again after three.
pub struct SentinelSetup {
    pub master: PrivateRedis,
    pub replica: PrivateRedis,
    pub sentinels: Vec<PrivateRedis>,
}

impl SentinelSetup {
    pub const SERVICE: &str = "mymaster";

    /// Starts the five servers, and returns once the sentinels know the replica and each
    /// other, without which they could not agree on a failover.
    pub fn start() -> Self {
        let master = PrivateRedis::start();
        let port = free_port();
        let replica = PrivateRedis::start_with(
            port,
            ["--port", &port.to_string(), "--replicaof", "127.0.0.1"]
                .iter()
                .map(|a| a.to_string())
                .chain([master.port().to_string()])
                .collect(),
        );
        // Sentinels find replicas in the master's INFO, which they read every ten seconds:
        // a replica already in sync is found at once.
        wait_until(
            Duration::from_secs(10),
            "the replica is not in sync",
            || info(replica.port(), "replication").contains("master_link_status:up"),
        );
        let sentinels = (0..3)
            .map(|_| {
                let dir = temp_dir("rbac-sentinel");
                let port = free_port();
                // Each sentinel rewrites its own file as it learns the setup.
                let conf = dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "sentinel monitor {service} 127.0.0.1 {master} 2\n\
                         sentinel down-after-milliseconds {service} 1000\n\
                         sentinel failover-timeout {service} 3000\n",
                        service = Self::SERVICE,
                        master = master.port(),
                    ),
                )
                .expect("write a sentinel's configuration");
                let args = vec![
                    path(&conf).to_owned(),
                    "--sentinel".into(),
                    "--port".into(),
                    port.to_string(),
                ];
                PrivateRedis::start_in(dir, port, args)
            })
            .collect();
        let setup = Self {
            master,
            replica,
            sentinels,
        };
        for sentinel in &setup.sentinels {
            wait_until(
                Duration::from_secs(20),
                "the sentinels did not find each other and the replica",
                || {
                    let known = setup.sentinel_view(sentinel.port());
                    known.get("num-other-sentinels").map(String::as_str) == Some("2")
                        && known.get("num-slaves").map(String::as_str) == Some("1")
                },
            );
        }
        setup
    }

    /// `redis+sentinel://` naming the three sentinels and the service.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+sentinel://{}/{}", sentinels.join(","), Self::SERVICE)
    }

    /// The port of the master that a majority of the sentinels name now.
    pub fn master_port(&self) -> Option<u16> {
        let named: Vec<u16> = self
            .sentinels
            .iter()
            .filter_map(|sentinel| {
                let mut connection = redis_connection(sentinel.port()).ok()?;
                let (_, port): (String, u16) = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(Self::SERVICE)
                    .query(&mut connection)
                    .ok()?;
                Some(port)
            })
            .collect();
        named
            .iter()
            .copied()
            .find(|port| named.iter().filter(|p| *p == port).count() >= 2)
    }

    /// Asks the sentinels to fail over now, as an operator would before maintenance: the
    /// master stays up, and they make it a replica of the one they promote.
    pub fn fail_over(&self) {
        let mut connection =
            redis_connection(self.sentinels[0].port()).expect("connect to a sentinel");
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(Self::SERVICE)
            .query(&mut connection)
            .expect("SENTINEL FAILOVER");
    }

    /// Whether the Redis on `port` says it is a replica.
    pub fn is_replica(port: u16) -> bool {
        info(port, "replication").contains("role:slave")
    }

    /// What the sentinel on `port` knows of the service (`SENTINEL MASTER`).
    fn sentinel_view(&self, port: u16) -> std::collections::HashMap<String, String> {
        redis_connection(port)
            .and_then(|mut connection| {
                redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(Self::SERVICE)
                    .query(&mut connection)
            })
            .unwrap_or_default()
    }
}

/// A Redis Cluster of the test's own: masters only (no replica takes over a node that dies),
/// each with its cluster bus on a free port of its own.
pub struct RedisCluster {
    pub nodes: Vec<PrivateRedis>,
}

impl RedisCluster {
    /// Starts `masters` nodes, joins them with `redis-cli --cluster create`, and returns once
    /// every node says the cluster is ok.
    pub fn start(masters: usize) -> Self {
        let nodes: Vec<PrivateRedis> = (0..masters)
            .map(|_| {
                let port = free_port();
                let mut bus_port = free_port();
                while bus_port == port {
                    bus_port = free_port();
                }
                #[rustfmt::skip]
                let args = [
                    "--port", &port.to_string(), "--cluster-enabled", "yes",
                    "--cluster-port", &bus_port.to_string(),
                    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
                ];
                PrivateRedis::start_with(port, args.iter().map(|a| a.to_string()).collect())
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run redis-cli (from redis-tools): {e}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            wait_until(Duration::from_secs(20), "the cluster is not ok", || {
                cluster_info(node.port()).contains("cluster_state:ok")
            });
        }
        cluster
    }

    /// `redis+cluster://` naming the nodes at `order`, in that order.
    pub fn url(&self, order: &[usize]) -> String {
        let seeds: Vec<String> = order
            .iter()
            .map(|&i| format!("127.0.0.1:{}", self.nodes[i].port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }
}

/// How many clients of the Redis on `port` subscribe to `channel` (`PUBSUB NUMSUB`, which a
/// cluster node answers for its own clients only); 0 when it does not answer.
pub fn subscribers(port: u16, channel: &str) -> u64 {
    redis_connection(port)
        .and_then(|mut connection| {
            redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query::<(String, u64)>(&mut connection)
        })
        .map_or(0, |(_, count)| count)
}

fn info(port: u16, section: &str) -> String {
    redis_connection(port)
        .and_then(|mut connection| redis::cmd("INFO").arg(section).query(&mut connection))
        .unwrap_or_default()
}

fn cluster_info(port: u16) -> String {
    redis_connection(port)
        .and_then(|mut connection| redis::cmd("CLUSTER").arg("INFO").query(&mut connection))
        .unwrap_or_default()
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of the test's own. As root, it runs as the `postgres` user, since
/// PostgreSQL refuses to run as root.
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let mut pg = Self::init(temp_dir("rbac-pg"), &["--auth=trust"]);
        pg.resume();
        pg
    }

    /// A cluster that takes TCP connections over TLS only, with the certificate of `certs`,
    /// and checks passwords on them: the `postgres` user's is `password`. A connection
    /// without TLS is rejected, whatever its password.
    pub fn start_tls(certs: &TestCertificates, password: &str) -> Self {
        let dir = temp_dir("rbac-pg");
        let password_file = dir.join("password");
        std::fs::write(&password_file, password).expect("write the password file");
        let mut pg = Self::init(
            dir,
            &[
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                path(&password_file),
            ],
        );
        std::fs::remove_file(&password_file).expect("remove the password file");
        let data = pg.dir.join("data");
        std::fs::copy(&certs.cert, data.join("server.crt")).expect("copy the certificate");
        std::fs::copy(&certs.key, data.join("server.key")).expect("copy the key");
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        std::io::Write::write_all(
            &mut conf,
            b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        )
        .expect("turn TLS on");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 0.0.0.0/0 reject\n\
             hostnossl all all ::/0 reject\n",
        )
        .expect("write pg_hba.conf");
        // PostgreSQL refuses a key that others may read, or that belongs to someone else.
        pg.give_to_server(&data);
        std::fs::set_permissions(
            data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("make the key private");
        pg.resume();
        pg
    }

    /// A data directory made by initdb with `auth` options, not yet started.
    fn init(dir: PathBuf, auth: &[&str]) -> Self {
        let pg = Self {
            bin: pg_bin(),
            port: free_port(),
            as_postgres: is_root(),
            running: false,
            dir,
        };
        pg.give_to_server(&pg.dir);
        let data = pg.dir.join("data");
        let mut args = vec![
            "-D",
            path(&data),
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ];
        args.extend_from_slice(auth);
        pg.run("initdb", &args);
        pg
    }

    /// As root, hands `dir` to the `postgres` user the server runs as.
    fn give_to_server(&self, dir: &Path) {
        if self.as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir)
                .status()
                .expect("chown to postgres");
            assert!(status.success());
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, dropping every connection.
    pub fn stop(&mut self) {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &["-D", path(&data), "-m", "immediate", "-w", "stop"],
        );
        self.running = false;
        wait_for_port(self.port, false);
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            path(&self.dir)
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
        self.running = true;
    }

    fn run(&self, program: &str, args: &[&str]) {
        let binary = self.bin.join(program);
        let output = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&binary)
                .args(args)
                .output()
        } else {
            Command::new(&binary).args(args).output()
        }
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
        // pg_ctl says only "examine the log output": the reason is in the server's log.
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}{log}",
            binary.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.dir.join("data");
            let binary = self.bin.join("pg_ctl");
            let mut command = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(binary);
                c
            } else {
                Command::new(binary)
            };
            let _ = command
                .args(["-D", path(&data), "-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn pg_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("TEST_PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok())
                .map(|d| d.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|bin| bin.join("initdb").exists())
        .expect("PostgreSQL server binaries not found: set TEST_PG_BIN (scripts/test.sh does)")
}

/// A certificate authority of the test's own and a server certificate it signed for
/// `localhost` and `127.0.0.1`, made with the `openssl` command line tool.
pub struct TestCertificates {
    dir: PathBuf,
    /// The authority's certificate: what a client that verifies must trust.
    pub ca: PathBuf,
    /// The server's certificate and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCertificates {
    pub fn generate() -> Self {
        let dir = temp_dir("rbac-tls");
        let file = |name: &str| dir.join(name);
        let (ca, ca_key) = (file("ca.pem"), file("ca.key"));
        let (cert, key, request) = (file("server.pem"), file("server.key"), file("server.csr"));
        let extensions = file("server.ext");
        std::fs::write(
            &extensions,
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n",
        )
        .expect("write the certificate extensions");
        // P-256 keys: generated at once, unlike RSA, and spoken by every client in play.
        #[rustfmt::skip]
        openssl(&[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", "/CN=rbac-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", path(&ca_key), "-out", path(&ca),
        ]);
        #[rustfmt::skip]
        openssl(&[
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=localhost", "-keyout", path(&key), "-out", path(&request),
        ]);
        #[rustfmt::skip]
        openssl(&[
            "x509", "-req", "-in", path(&request), "-CA", path(&ca), "-CAkey", path(&ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", path(&extensions), "-out", path(&cert),
        ]);
        Self { dir, ca, cert, key }
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run openssl (the tests make their certificates with it): {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
