//! A group of `hadr replica` processes on loopback, for `hadr demo`, `hadr bench` and the
//! end-to-end tests: free ports, one data directory and one log file per replica, real
//! processes that can be killed with SIGKILL and started again on the same data.

use hadr_node::api::{AdminClient, AdminResponse, ApiError};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One replica's addresses and files.
#[derive(Clone, Debug)]
pub struct ReplicaSpec {
    /// Server instance name (`R0`, `R1`, …).
    pub name: String,
    /// Client API.
    pub client: SocketAddr,
    /// Admin API.
    pub admin: SocketAddr,
    /// Replica endpoint (ENDPOINT_URL).
    pub endpoint: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log file (stdout and stderr of the process).
    pub log: PathBuf,
}

/// Why the local cluster could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A replica did not answer on its admin API in time.
    #[error("replica {name} did not start within {seconds} s; see its log {log}")]
    NotReady {
        /// The replica.
        name: String,
        /// How long we waited.
        seconds: u64,
        /// Its log file.
        log: String,
    },
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// An admin command was refused.
    #[error("{name}: {what} refused ({status}): {body}")]
    Refused {
        /// The replica.
        name: String,
        /// The command.
        what: String,
        /// HTTP status.
        status: u16,
        /// The answer.
        body: String,
    },
    /// The local etcd could not be started, or this build has no etcd support.
    #[error("etcd: {0}")]
    Etcd(String),
    /// A condition was not reached in time.
    #[error("timed out after {seconds} s waiting until {what}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// How long.
        seconds: u64,
    },
}

/// What a command that drives local replicas needs: a one-thread async runtime (the clients
/// are I/O-bound; the cores are left to the replicas) and the path of this `hadr` binary.
pub fn runtime_and_exe() -> Result<(tokio::runtime::Runtime, PathBuf), ClusterError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ClusterError::Io {
            what: "starting the async runtime".to_owned(),
            source,
        })?;
    let exe = std::env::current_exe().map_err(|source| ClusterError::Io {
        what: "finding the hadr executable".to_owned(),
        source,
    })?;
    Ok((runtime, exe))
}

/// The writes of `expected` (key → value) that the replica whose client API is at `address`
/// does not show, read on one connection with the given ApplicationIntent (`read_write` or
/// `read_only`) from database `db1`. A read that is not answered with a value is an error.
pub async fn missing_writes(
    address: SocketAddr,
    intent: &str,
    expected: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<String>, ClusterError> {
    let mut client = hadr_node::api::Client::connect(address).await?;
    client.intent(intent).await?;
    let db = hadr_node::node::DatabaseRef::Name("db1".to_owned());
    let mut missing = Vec::new();
    for (key, value) in expected {
        let reply = client.read(&db, key).await?;
        if reply.outcome != "value" {
            return Err(ApiError::Protocol {
                address,
                message: format!("read of {key}: {reply:?}"),
            }
            .into());
        }
        if reply.value.as_ref().and_then(|v| v.as_deref()) != Some(value.as_str()) {
            missing.push(key.clone());
        }
    }
    Ok(missing)
}

/// Replica processes on loopback. Dropping it kills every process it started.
pub struct LocalCluster {
    exe: PathBuf,
    /// The replicas, in configuration order.
    pub replicas: Vec<ReplicaSpec>,
    /// SESSION_TIMEOUT of every replica in [`LocalCluster::create_script`] (default 10 s).
    pub session_timeout_s: u32,
    /// Start replicas with `HADR_FAULT_INJECTION=1` (enables `POST /debug/stall`).
    pub fault_injection: bool,
    /// More environment variables for the replica processes (e.g. `HADR_MUTANT`); they
    /// override the ones above (e.g. `HADR_FAULT_INJECTION=process`).
    pub env: Vec<(String, String)>,
    /// Per replica, what to do to its command before it starts (e.g. enter its network
    /// namespace, [`crate::netns::Network::entry`]).
    pub prepare: Vec<Option<Prepare>>,
    children: Vec<Option<Child>>,
    /// Whether the replicas' ports are reservations of [`free_port`] (given back on drop).
    reserved_ports: bool,
}

/// A change to a replica's command before it starts.
pub type Prepare = Box<dyn Fn(&mut Command) + Send + Sync>;

/// Where ports handed out by [`free_port`] are reserved, one empty file per port, so that two
/// processes (tests run in parallel, each in its own process) never pick the same one.
fn reservations() -> std::path::PathBuf {
    std::env::temp_dir().join("hadr-port-reservations")
}

/// Reserves `port` for this process: false if another live reservation holds it. A
/// reservation file holds its process' id; one whose process is gone is stale, and so is one
/// older than an hour (a process that kept it on purpose, or an id reused since).
fn reserve(port: u16) -> bool {
    let dir = reservations();
    if std::fs::create_dir_all(&dir).is_err() {
        return true; // nowhere to reserve: fall back to the bind check alone
    }
    let path = dir.join(port.to_string());
    if stale(&path) {
        let _ = std::fs::remove_file(&path);
    }
    crate::cleanup::reserve_with(&path, || {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| write!(file, "{}", std::process::id()))
            .is_ok()
    })
}

/// Whether the reservation file `path` is stale: its process is gone, or it is over an hour
/// old.
fn stale(path: &Path) -> bool {
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
    let owner_gone = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
    old || owner_gone
}

/// The process holding the reservation of `port`, if any (for tests of the cleanup).
pub fn reservation_owner(port: u16) -> Option<u32> {
    std::fs::read_to_string(reservations().join(port.to_string()))
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// The ports `pid` holds reservations of (for tests of the cleanup).
pub fn reservations_of(pid: u32) -> Vec<u16> {
    let Ok(entries) = std::fs::read_dir(reservations()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u16>().ok()))
        .filter(|&port| reservation_owner(port) == Some(pid))
        .collect()
}

/// Gives back a port [`free_port`] reserved.
pub fn release_port(port: u16) {
    release([port]);
}

/// Gives reserved ports back.
fn release(ports: impl IntoIterator<Item = u16>) {
    let dir = reservations();
    for port in ports {
        let path = dir.join(port.to_string());
        let _ = std::fs::remove_file(&path);
        crate::cleanup::released(&path);
    }
}

/// A free port on 127.0.0.1 below the kernel's ephemeral range (32768 and up on Linux), so
/// that no outgoing connection of another process can take it between now and the replica's
/// bind, even across a restart of that replica. It is reserved (a file per port under the temp
/// directory's `hadr-port-reservations`) until the [`LocalCluster`] that asked for it is
/// dropped, or for an hour when a caller keeps it.
pub fn free_port() -> Result<SocketAddr, ClusterError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut x = seed ^ NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20_000 + (x % 12_000) as u16;
        if !reserve(port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().map_err(|source| ClusterError::Io {
                what: "finding a free port on 127.0.0.1".to_owned(),
                source,
            });
        }
        release([port]); // in use by something else
    }
    Err(ClusterError::Io {
        what: "finding a free port on 127.0.0.1 between 20000 and 32000".to_owned(),
        source: std::io::Error::other("1000 ports tried, all in use"),
    })
}

impl LocalCluster {
    /// Prepares `count` replicas under `dir` (created), run with the `hadr` binary `exe`.
    pub fn new(exe: &Path, dir: &Path, count: usize) -> Result<LocalCluster, ClusterError> {
        let names: Vec<String> = (0..count).map(|i| format!("R{i}")).collect();
        LocalCluster::named(exe, dir, &names)
    }

    /// Prepares one replica per server instance name of `names` under `dir` (created), on
    /// free ports of 127.0.0.1.
    pub fn named(exe: &Path, dir: &Path, names: &[String]) -> Result<LocalCluster, ClusterError> {
        let mut cluster = LocalCluster::with_addresses(exe, dir, names, |_| {
            Ok((free_port()?, free_port()?, free_port()?))
        })?;
        cluster.reserved_ports = true;
        Ok(cluster)
    }

    /// Prepares one replica per name of `names` under `dir` (created), replica `i` on
    /// `addresses[i]`, each its own host (a network namespace, [`crate::netns`]): the same
    /// ports on every one (clients 7100, admin 7200, database mirroring endpoint 5022).
    pub fn on_hosts(
        exe: &Path,
        dir: &Path,
        names: &[String],
        addresses: &[std::net::IpAddr],
    ) -> Result<LocalCluster, ClusterError> {
        LocalCluster::with_addresses(exe, dir, names, |i| {
            let at = |port| SocketAddr::new(addresses[i], port);
            Ok((at(7100), at(7200), at(5022)))
        })
    }

    fn with_addresses(
        exe: &Path,
        dir: &Path,
        names: &[String],
        mut addresses: impl FnMut(usize) -> Result<(SocketAddr, SocketAddr, SocketAddr), ClusterError>,
    ) -> Result<LocalCluster, ClusterError> {
        std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        let mut replicas = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let name = name.clone();
            let (client, admin, endpoint) = addresses(i)?;
            let spec = ReplicaSpec {
                client,
                admin,
                endpoint,
                data_dir: dir.join(format!("{name}-data")),
                log: dir.join(format!("{name}.log")),
                name,
            };
            let toml = format!(
                "name = \"{}\"\ndata_dir = \"{}\"\nclient_listen = \"{}\"\nadmin_listen = \"{}\"\n",
                spec.name,
                spec.data_dir.display(),
                spec.client,
                spec.admin
            );
            let path = dir.join(format!("{}.toml", spec.name));
            std::fs::write(&path, toml).map_err(|source| ClusterError::Io {
                what: format!("writing {}", path.display()),
                source,
            })?;
            replicas.push(spec);
        }
        Ok(LocalCluster {
            exe: exe.to_owned(),
            children: replicas.iter().map(|_| None).collect(),
            prepare: replicas.iter().map(|_| None).collect(),
            session_timeout_s: 10,
            fault_injection: false,
            env: Vec::new(),
            reserved_ports: false,
            replicas,
        })
    }

    /// The `CREATE AVAILABILITY GROUP` script of the group: CLUSTER_TYPE NONE, one database
    /// `db1`, replica `i` in `modes[i]` (`SYNCHRONOUS_COMMIT` / `ASYNCHRONOUS_COMMIT`),
    /// readable secondaries.
    pub fn create_script(&self, modes: &[&str], required_synchronized: u32) -> String {
        let replicas: Vec<String> = self
            .replicas
            .iter()
            .zip(modes)
            .map(|(r, mode)| {
                format!(
                    "    N'{}' WITH (ENDPOINT_URL = N'TCP://{}', AVAILABILITY_MODE = {mode}, FAILOVER_MODE = MANUAL, SEEDING_MODE = AUTOMATIC, SESSION_TIMEOUT = {}, SECONDARY_ROLE (ALLOW_CONNECTIONS = ALL))",
                    r.name, r.endpoint, self.session_timeout_s
                )
            })
            .collect();
        format!(
            "CREATE AVAILABILITY GROUP [demo]\nWITH (CLUSTER_TYPE = NONE, REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = {required_synchronized})\nFOR DATABASE [db1]\nREPLICA ON\n{};\n",
            replicas.join(",\n")
        )
    }

    /// Points replica `i` at the etcd client URLs `endpoints` (its node.toml's
    /// `etcd_endpoints`), for CLUSTER_TYPE = EXTERNAL groups. Takes effect at its next start.
    pub fn set_etcd_endpoints(&self, i: usize, endpoints: &[String]) -> Result<(), ClusterError> {
        let spec = &self.replicas[i];
        let path = spec.data_dir.with_file_name(format!("{}.toml", spec.name));
        let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        let toml = format!(
            "name = \"{}\"\ndata_dir = \"{}\"\nclient_listen = \"{}\"\nadmin_listen = \"{}\"\netcd_endpoints = [{}]\n",
            spec.name,
            spec.data_dir.display(),
            spec.client,
            spec.admin,
            list.join(", ")
        );
        std::fs::write(&path, toml).map_err(|source| ClusterError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
    }

    /// The `AgConfig` (JSON) of a CLUSTER_TYPE = EXTERNAL group: one database `db1`, replica
    /// `i` in `modes[i]`; synchronous-commit replicas have FAILOVER_MODE = EXTERNAL (automatic
    /// failover through etcd), the others MANUAL. `lease_ttl_ms` is the etcd lease (a whole
    /// number of seconds); the primary commits for 3/4 of it after each renewal and renews
    /// every 1/8.
    pub fn external_config(&self, modes: &[&str], lease_ttl_ms: u32) -> serde_json::Value {
        let replicas: Vec<serde_json::Value> = self
            .replicas
            .iter()
            .zip(modes)
            .map(|(r, mode)| {
                let failover = if mode.starts_with("SYNC") {
                    "EXTERNAL"
                } else {
                    "MANUAL"
                };
                serde_json::json!({
                    "name": r.name,
                    "endpoint_url": format!("tcp://{}", r.endpoint),
                    "availability_mode": mode,
                    "failover_mode": failover,
                    "session_timeout_s": self.session_timeout_s,
                    "seeding_mode": "AUTOMATIC",
                    "secondary_role": { "allow_connections": "ALL" },
                })
            })
            .collect();
        serde_json::json!({
            "name": "demo",
            "cluster_type": "EXTERNAL",
            "databases": ["db1"],
            "replicas": replicas,
            "lease": {
                "ttl_ms": lease_ttl_ms,
                "validity_ms": lease_ttl_ms / 4 * 3,
                "renew_interval_ms": lease_ttl_ms / 8,
                "clock_drift_margin_ms": lease_ttl_ms / 10,
            },
        })
    }

    /// Creates the EXTERNAL group of [`LocalCluster::external_config`] on replica 0, joins
    /// the others, and waits until every synchronous-commit secondary is SYNCHRONIZED.
    pub async fn create_external_group(
        &self,
        modes: &[&str],
        lease_ttl_ms: u32,
    ) -> Result<(), ClusterError> {
        self.create_group_from(&self.external_config(modes, lease_ttl_ms), modes)
            .await
    }

    /// Creates the group `config` (an `AgConfig` as JSON) on replica 0, joins the others with
    /// the same configuration, and waits until, seen from replica 0, every synchronous-commit
    /// replica (`modes[i]`) is SYNCHRONIZED and every other one SYNCHRONIZING.
    pub async fn create_group_from(
        &self,
        config: &serde_json::Value,
        modes: &[&str],
    ) -> Result<(), ClusterError> {
        self.must(
            0,
            "CREATE AVAILABILITY GROUP",
            self.admin(0).post_json("/ag/create", config).await,
        )
        .await?;
        for i in 1..self.replicas.len() {
            self.must(i, "JOIN", self.admin(i).post_json("/ag/join", config).await)
                .await?;
        }
        self.wait_synchronized(0, modes).await
    }

    /// Waits until, seen from primary `p`, every other synchronous-commit replica is
    /// SYNCHRONIZED and every other one SYNCHRONIZING.
    pub async fn wait_synchronized(&self, p: usize, modes: &[&str]) -> Result<(), ClusterError> {
        for (i, mode) in modes.iter().enumerate() {
            if i == p {
                continue;
            }
            let want = if mode.starts_with("SYNC") {
                "SYNCHRONIZED"
            } else {
                "SYNCHRONIZING"
            };
            self.wait_until(&format!("R{i} is {want}"), 30, || async move {
                self.sync_state(p, i).await.as_deref() == Some(want)
            })
            .await?;
        }
        Ok(())
    }

    /// Starts replica `i`'s process (on its existing data, if any).
    pub fn start(&mut self, i: usize) -> Result<(), ClusterError> {
        let spec = &self.replicas[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|source| ClusterError::Io {
                what: format!("opening {}", spec.log.display()),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| ClusterError::Io {
            what: "duplicating a log handle".to_owned(),
            source,
        })?;
        let config = spec.data_dir.with_file_name(format!("{}.toml", spec.name));
        let mut command = Command::new(&self.exe);
        crate::cleanup::die_with_parent(&mut command);
        if let Some(prepare) = &self.prepare[i] {
            prepare(&mut command);
        }
        let child = command
            .arg("replica")
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("HADR_REPLICA_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .env(
                "HADR_FAULT_INJECTION",
                if self.fault_injection { "1" } else { "0" },
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|source| ClusterError::Io {
                what: format!("starting {} replica", self.exe.display()),
                source,
            })?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// Kills replica `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to replica `i`'s process with kill(1).
    pub fn signal(&mut self, i: usize, signal: &str) -> Result<(), ClusterError> {
        let Some(child) = self.children[i].as_ref() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .map_err(|source| ClusterError::Io {
                what: format!("kill -{signal}"),
                source,
            })?;
        if !status.success() {
            return Err(ClusterError::Io {
                what: format!("kill -{signal} {}", child.id()),
                source: std::io::Error::other(format!("kill exited with {status}")),
            });
        }
        Ok(())
    }

    /// The process id of replica `i`, while it has a process.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(|child| child.id())
    }

    /// Whether replica `i` has a process (started and not killed since; it may have exited).
    pub fn has_process(&self, i: usize) -> bool {
        self.children[i].is_some()
    }

    /// The lines of every replica's log that contain one of `needles`, each prefixed with its
    /// replica's name: for a failing test's message (what each replica did, in its own words).
    pub fn log_lines(&self, needles: &[&str]) -> String {
        let mut lines = String::new();
        for spec in &self.replicas {
            let text = std::fs::read_to_string(&spec.log).unwrap_or_default();
            for line in text
                .lines()
                .filter(|l| needles.iter().any(|n| l.contains(n)))
            {
                lines.push_str(&spec.name);
                lines.push_str(": ");
                lines.push_str(line);
                lines.push('\n');
            }
        }
        lines
    }

    /// The node.toml of replica `i`.
    pub fn node_toml(&self, i: usize) -> PathBuf {
        let spec = &self.replicas[i];
        spec.data_dir.with_file_name(format!("{}.toml", spec.name))
    }

    /// Whether replica `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.children[i].as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The admin client of replica `i`.
    pub fn admin(&self, i: usize) -> AdminClient {
        AdminClient::new(self.replicas[i].admin)
    }

    /// Waits until replica `i` answers on its admin API.
    pub async fn wait_ready(&self, i: usize) -> Result<(), ClusterError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.admin(i).get("/status").await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NotReady {
                    name: self.replicas[i].name.clone(),
                    seconds: 20,
                    log: self.replicas[i].log.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An admin command that must succeed.
    pub async fn must(
        &self,
        i: usize,
        what: &str,
        response: Result<AdminResponse, ApiError>,
    ) -> Result<AdminResponse, ClusterError> {
        let response = response?;
        if !response.ok() {
            return Err(ClusterError::Refused {
                name: self.replicas[i].name.clone(),
                what: what.to_owned(),
                status: response.status,
                body: response.body.to_string(),
            });
        }
        Ok(response)
    }

    /// Polls `check` every 50 ms until it is true, for at most `seconds`.
    pub async fn wait_until<F, Fut>(
        &self,
        what: &str,
        seconds: u64,
        mut check: F,
    ) -> Result<(), ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while !check().await {
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout {
                    what: what.to_owned(),
                    seconds,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The role replica `i` reports (`PRIMARY`, `SECONDARY`, `RESOLVING`), if it answers.
    pub async fn role(&self, i: usize) -> Option<String> {
        let r = self.admin(i).get("/status").await.ok()?;
        r.body
            .get("role")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    /// The synchronization state of database 0 of secondary `i`, as the primary `p` reports it.
    pub async fn sync_state(&self, p: usize, i: usize) -> Option<String> {
        let r = self.admin(p).get("/status").await.ok()?;
        let secondaries = r.body["databases"][0]["secondaries"].as_array()?.clone();
        secondaries
            .iter()
            .find(|s| s["replica"].as_u64() == Some(i as u64))
            .and_then(|s| s["synchronization_state"].as_str().map(str::to_owned))
    }

    /// Why database 0 of replica `i` is suspended (its own view), if it is.
    pub async fn suspended(&self, i: usize) -> Option<String> {
        let r = self.admin(i).get("/status").await.ok()?;
        r.body["databases"][0]["suspended"]
            .as_str()
            .map(str::to_owned)
    }

    /// Creates the group on replica 0 and joins the others, then waits until every
    /// synchronous-commit secondary is SYNCHRONIZED and every other one SYNCHRONIZING.
    pub async fn create_group(
        &self,
        modes: &[&str],
        required_synchronized: u32,
    ) -> Result<(), ClusterError> {
        let script = self.create_script(modes, required_synchronized);
        self.must(
            0,
            "CREATE AVAILABILITY GROUP",
            self.admin(0).post_text("/ag/create", &script).await,
        )
        .await?;
        for i in 1..self.replicas.len() {
            self.must(
                i,
                "JOIN",
                self.admin(i).post_text("/ag/join", &script).await,
            )
            .await?;
        }
        self.wait_synchronized(0, modes).await
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            let _ = self.signal(i, "CONT");
            self.kill(i);
        }
        if self.reserved_ports {
            release(
                self.replicas
                    .iter()
                    .flat_map(|r| [r.client.port(), r.admin.port(), r.endpoint.port()]),
            );
        }
    }
}
