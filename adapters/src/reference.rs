//! `reference`: the reference replicas as real processes on loopback, behind the conformance
//! harness' [`Sut`] trait (`hadr certify --sut reference`).
//!
//! Every scenario gets a fresh directory, one `hadr replica` process per replica of its
//! configuration (real TCP, a real fsync'd log, SIGKILL for a crash) and, for CLUSTER_TYPE
//! EXTERNAL, one real etcd member; a lost quorum is etcd stopped with SIGSTOP.
//!
//! Network faults come from outside the replicas ([`NetworkFaults::Outside`], the default
//! where the process may make network namespaces): every replica and etcd run in a network
//! namespace of their own ([`hadr_testbed::netns`]), and a partition or a cut from the
//! manager is packets dropped between namespaces; the replicas run with
//! `HADR_FAULT_INJECTION=process`, which refuses `/debug/partition` and `/debug/manager`.
//! Otherwise ([`NetworkFaults::Cooperative`]) they run on loopback and cut themselves through
//! those routes (`HADR_FAULT_INJECTION=1`, docs/node.md). Either way the faults of a process
//! itself go through its `/debug/drop-log`, `/debug/health-fault` and `/debug/disk-stall`.
//! Observations are each replica's `GET /observation`, or for a stopped replica what its files
//! say ([`hadr_node::node::offline_observation`]).
//!
//! Quiescence is judged from outside, as a third party's driver would: after a fault the
//! adapter first waits out every timeout the configuration can start (the longest
//! SESSION_TIMEOUT plus the lease TTL, plus a margin), then until the whole observation has not
//! changed for 3 s (the settle period).

use hadr_conformance::sut::{Sut, SutError};
use hadr_model::{Action, Node};
use hadr_testbed::local_cluster::{release_port, ClusterError, LocalCluster};
use hadr_testbed::netns::Network;
use hadr_types::{
    AgConfig, ClusterType, CommitOutcome, DatabaseId, DefiniteReason, Observation,
    ReplicaObservation, TransactionObservation, TxnId,
};
use std::collections::BTreeSet;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// How long the whole observation must stay unchanged to count as quiescent.
const SETTLE: Duration = Duration::from_secs(3);
/// Added to the timeout wait after a fault: failure detection, the manager's 1 s polls.
const MARGIN: Duration = Duration::from_secs(5);
/// How often the observation is read while waiting.
const POLL: Duration = Duration::from_millis(100);
/// A system still changing this long after a step is observed as it is then (the scenario's
/// `quiescent: false` steps expect such systems).
const SETTLE_LIMIT: Duration = Duration::from_secs(180);

/// The environment actions after which the adapter waits out every timeout first. A restart
/// is one: a restarted recorded primary is brought back by the manager only after giving
/// failover-ready replicas their chance (`hadr_manager::RESTORE_AFTER_MS`).
fn starts_timeouts(action: &Action) -> bool {
    matches!(
        action,
        Action::Crash { .. }
            | Action::Restart { .. }
            | Action::Partition { .. }
            | Action::LoseQuorum
            | Action::RegainQuorum
            | Action::HealthFault { .. }
            | Action::LoseLogBlock { .. }
    )
}

/// How the network faults of a scenario are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkFaults {
    /// From outside: each replica and etcd in a network namespace of its own, packets dropped
    /// between them (root, or CAP_SYS_ADMIN and CAP_NET_ADMIN).
    Outside,
    /// By the replicas themselves, on loopback, through their `/debug/partition` and
    /// `/debug/manager` routes.
    Cooperative,
}

/// The reference replicas as processes.
pub struct Reference {
    exe: PathBuf,
    runtime: tokio::runtime::Runtime,
    mutant: Option<String>,
    faults: NetworkFaults,
    group: Option<Group>,
}

impl Reference {
    /// An adapter that runs the `hadr` binary `exe` (`hadr certify` passes its own path),
    /// with the planted bug `mutant` in every replica (`HADR_MUTANT`, a `mutants` build).
    pub fn new(exe: PathBuf, mutant: Option<String>) -> Result<Reference, SutError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| SutError::Failed(format!("cannot start an async runtime: {e}")))?;
        Ok(Reference {
            exe,
            runtime,
            mutant,
            faults: NetworkFaults::Cooperative,
            group: None,
        })
    }

    /// Makes the scenarios' network faults as `faults` says.
    pub fn with_network_faults(mut self, faults: NetworkFaults) -> Reference {
        self.faults = faults;
        self
    }

    fn group(&mut self) -> Result<&mut Group, SutError> {
        self.group
            .as_mut()
            .ok_or_else(|| SutError::Failed("no group: setup first".to_owned()))
    }
}

impl Sut for Reference {
    fn name(&self) -> String {
        match &self.mutant {
            Some(m) => format!("reference --mutant {m}"),
            None => "reference".to_owned(),
        }
    }

    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError> {
        self.group = None; // stops the previous group's processes first
        let group = Group::start(
            &self.exe,
            self.mutant.as_deref(),
            config,
            self.faults,
            &self.runtime,
        )?;
        self.group = Some(group);
        let runtime = self.runtime.handle().clone();
        self.group()?.quiesce(&runtime, Duration::ZERO)
    }

    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        let runtime = self.runtime.handle().clone();
        let group = self.group()?;
        let started = Instant::now();
        group.perform(&runtime, action)?;
        let wait = if starts_timeouts(action) {
            group.timeout_wait()
        } else {
            Duration::ZERO
        };
        group.quiesce(&runtime, wait)?;
        tracing::info!(
            ?action,
            seconds = started.elapsed().as_secs_f64(),
            "step done"
        );
        Ok(())
    }

    fn observe(&mut self) -> Result<Observation, SutError> {
        let runtime = self.runtime.handle().clone();
        self.group()?.observation(&runtime)
    }
}

fn failed(what: impl std::fmt::Display) -> SutError {
    SutError::Failed(what.to_string())
}

/// A failure of the local group, as the harness sees it.
fn cluster_failed(e: ClusterError) -> SutError {
    SutError::Failed(e.to_string())
}

/// One scenario's group: the processes, etcd, the clients, and the faults in force.
struct Group {
    dir: PathBuf,
    keep: bool,
    config: AgConfig,
    cluster: LocalCluster,
    #[cfg(feature = "etcd")]
    etcd: Option<hadr_manager::local::LocalEtcd>,
    /// Per replica, the relay its manager connects to etcd through (EXTERNAL only).
    links: Vec<Option<Relay>>,
    clients: Vec<Arc<Mutex<TransactionObservation>>>,
    cut_links: BTreeSet<(usize, usize)>,
    cut_from_manager: BTreeSet<usize>,
    /// A stopped replica's observation, read from its files once per stop.
    offline: Vec<Option<ReplicaObservation>>,
    /// With network faults from outside: the group's network (replica `i` is host `i`, etcd
    /// the host after the last replica). Last, so that it goes after every process.
    network: Option<Network>,
}

impl Group {
    fn start(
        exe: &Path,
        mutant: Option<&str>,
        config: &AgConfig,
        faults: NetworkFaults,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Group, SutError> {
        if config.cluster_type == ClusterType::Wsfc {
            return Err(SutError::Unsupported(
                "CLUSTER_TYPE WSFC: the reference replica has no WSFC".to_owned(),
            ));
        }
        let external = config.cluster_type == ClusterType::External;
        let dir = scenario_dir()?;
        let names: Vec<String> = config.replicas.iter().map(|r| r.name.clone()).collect();
        let network = match faults {
            NetworkFaults::Outside => Some(
                Network::create(names.len() + usize::from(external))
                    .map_err(|e| failed(format!("the scenario's network: {e}")))?,
            ),
            NetworkFaults::Cooperative => None,
        };
        let mut cluster = match &network {
            Some(net) => {
                let addresses: Vec<IpAddr> = (0..names.len())
                    .map(|i| IpAddr::V4(net.address(i)))
                    .collect();
                let mut cluster = LocalCluster::on_hosts(exe, &dir, &names, &addresses)
                    .map_err(cluster_failed)?;
                for (i, prepare) in cluster.prepare.iter_mut().enumerate() {
                    *prepare = Some(Box::new(net.entry(i)));
                }
                cluster
                    .env
                    .push(("HADR_FAULT_INJECTION".to_owned(), "process".to_owned()));
                cluster
            }
            None => LocalCluster::named(exe, &dir, &names).map_err(cluster_failed)?,
        };
        cluster.fault_injection = true;
        if let Some(m) = mutant {
            cluster.env.push(("HADR_MUTANT".to_owned(), m.to_owned()));
        }
        let mut config = config.clone();
        for (replica, spec) in config.replicas.iter_mut().zip(&cluster.replicas) {
            replica.endpoint_url = Some(format!("tcp://{}", spec.endpoint));
        }
        let mut group = Group {
            keep: std::env::var_os("HADR_REFERENCE_KEEP").is_some_and(|v| v == "1"),
            dir,
            offline: vec![None; names.len()],
            links: (0..names.len()).map(|_| None).collect(),
            config,
            cluster,
            #[cfg(feature = "etcd")]
            etcd: None,
            clients: Vec::new(),
            cut_links: BTreeSet::new(),
            cut_from_manager: BTreeSet::new(),
            network,
        };
        if external {
            group.start_etcd()?;
        }
        for i in 0..names.len() {
            group.cluster.start(i).map_err(cluster_failed)?;
        }
        let body = serde_json::to_value(&group.config)
            .map_err(|e| failed(format!("the configuration does not serialize: {e}")))?;
        runtime.block_on(async {
            for i in 0..names.len() {
                group.cluster.wait_ready(i).await.map_err(cluster_failed)?;
            }
            for (i, name) in names.iter().enumerate() {
                let command = if i == 0 { "/ag/create" } else { "/ag/join" };
                let answer = group
                    .cluster
                    .admin(i)
                    .post_json(command, &body)
                    .await
                    .map_err(failed)?;
                if !answer.ok() {
                    return Err(failed(format!(
                        "{command} on {name} refused ({}): {}",
                        answer.status, answer.body
                    )));
                }
            }
            Ok::<(), SutError>(())
        })?;
        tracing::info!(dir = %group.dir.display(), replicas = names.len(), "group created");
        Ok(group)
    }

    #[cfg(feature = "etcd")]
    fn start_etcd(&mut self) -> Result<(), SutError> {
        if let Some(net) = &self.network {
            // Its own host: the replicas reach it directly, and a cut is the network's.
            let host = self.cluster.replicas.len();
            let etcd = hadr_testbed::failover::etcd_on_host(&self.dir, net, host)
                .map_err(|e| failed(format!("etcd: {e}")))?;
            for i in 0..self.cluster.replicas.len() {
                self.cluster
                    .set_etcd_endpoints(i, &[etcd.endpoint(0)])
                    .map_err(cluster_failed)?;
            }
            self.etcd = Some(etcd);
            return Ok(());
        }
        let etcd = hadr_testbed::failover::etcd(&self.dir, 1).map_err(failed)?;
        let upstream: SocketAddr = etcd
            .endpoint(0)
            .trim_start_matches("http://")
            .parse()
            .map_err(|e| failed(format!("etcd's endpoint {}: {e}", etcd.endpoint(0))))?;
        for i in 0..self.cluster.replicas.len() {
            let relay = Relay::start(upstream)?;
            self.cluster
                .set_etcd_endpoints(i, &[format!("http://{}", relay.address)])
                .map_err(cluster_failed)?;
            self.links[i] = Some(relay);
        }
        self.etcd = Some(etcd);
        Ok(())
    }

    #[cfg(not(feature = "etcd"))]
    fn start_etcd(&mut self) -> Result<(), SutError> {
        Err(SutError::Unsupported(
            "CLUSTER_TYPE EXTERNAL needs etcd: build hadr with `--features etcd`".to_owned(),
        ))
    }

    /// The longest any timeout the configuration starts can take to fire and be acted on.
    fn timeout_wait(&self) -> Duration {
        let session = self
            .config
            .replicas
            .iter()
            .map(|r| u64::from(r.session_timeout_s))
            .max()
            .unwrap_or(0);
        let lease = if self.config.cluster_type == ClusterType::None {
            0
        } else {
            u64::from(self.config.lease.ttl_ms)
        };
        Duration::from_secs(session) + Duration::from_millis(lease) + MARGIN
    }

    /// Waits `wait` (the timeouts), then until the observation has not changed for
    /// [`SETTLE`].
    fn quiesce(
        &mut self,
        runtime: &tokio::runtime::Handle,
        wait: Duration,
    ) -> Result<(), SutError> {
        let started = Instant::now();
        let mut last = self.observation(runtime)?;
        let mut changed = started;
        loop {
            std::thread::sleep(POLL);
            let now = Instant::now();
            let current = self.observation(runtime)?;
            if current != last {
                last = current;
                changed = now;
            } else if now >= started + wait && now - changed >= SETTLE {
                break;
            }
            if now - started > wait + SETTLE_LIMIT {
                tracing::warn!(
                    seconds = (now - started).as_secs(),
                    "still changing after the step: observed as it is now"
                );
                break;
            }
        }
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            last_change = (changed - started).as_secs_f64(),
            "quiescent"
        );
        Ok(())
    }

    fn observation(&mut self, runtime: &tokio::runtime::Handle) -> Result<Observation, SutError> {
        let mut replicas = Vec::with_capacity(self.cluster.replicas.len());
        for i in 0..self.cluster.replicas.len() {
            replicas.push(self.observe_replica(runtime, i)?);
        }
        let transactions = self
            .clients
            .iter()
            .map(|t| {
                t.lock()
                    .map(|t| t.clone())
                    .unwrap_or_else(|e| e.into_inner().clone())
            })
            .collect();
        Ok(Observation {
            replicas,
            transactions,
        })
    }

    fn check_running(&mut self, i: usize) -> Result<(), SutError> {
        if self.cluster.has_process(i) && !self.cluster.is_running(i) {
            self.cluster.kill(i); // reaps it
            let spec = &self.cluster.replicas[i];
            return Err(failed(format!(
                "replica {} exited on its own; see its log {}",
                spec.name,
                spec.log.display()
            )));
        }
        Ok(())
    }

    fn observe_replica(
        &mut self,
        runtime: &tokio::runtime::Handle,
        i: usize,
    ) -> Result<ReplicaObservation, SutError> {
        self.check_running(i)?;
        if self.cluster.has_process(i) {
            let answer = runtime
                .block_on(self.cluster.admin(i).get("/observation"))
                .map_err(failed)?;
            if !answer.ok() {
                return Err(failed(format!(
                    "replica {}: GET /observation: {} {}",
                    self.cluster.replicas[i].name, answer.status, answer.body
                )));
            }
            return serde_json::from_value(answer.body).map_err(|e| {
                failed(format!(
                    "replica {}: GET /observation is no observation: {e}",
                    self.cluster.replicas[i].name
                ))
            });
        }
        if let Some(o) = &self.offline[i] {
            return Ok(o.clone());
        }
        let path = self.cluster.node_toml(i);
        let config = hadr_node::config::NodeConfig::load(&path)
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        let o = hadr_node::node::offline_observation(&config).map_err(|e| {
            failed(format!(
                "the files of stopped replica {}: {e}",
                self.cluster.replicas[i].name
            ))
        })?;
        self.offline[i] = Some(o.clone());
        Ok(o)
    }

    /// The replica a read-write listener sends a client to: the running replica that says
    /// PRIMARY, the newest epoch's if several do.
    fn primary(&mut self, runtime: &tokio::runtime::Handle) -> Result<Option<usize>, SutError> {
        let mut best: Option<(usize, (u64, u64))> = None;
        for i in 0..self.cluster.replicas.len() {
            self.check_running(i)?;
            if !self.cluster.has_process(i) {
                continue;
            }
            let answer = runtime
                .block_on(self.cluster.admin(i).get("/status"))
                .map_err(failed)?;
            if !answer.ok() || answer.body["role"] != "PRIMARY" {
                continue;
            }
            let epoch = &answer.body["epoch"];
            let key = (
                epoch["term"].as_u64().unwrap_or(0),
                epoch["generation"].as_u64().unwrap_or(0),
            );
            if best.is_none_or(|(_, k)| key > k) {
                best = Some((i, key));
            }
        }
        Ok(best.map(|(i, _)| i))
    }

    /// An admin command the implementation may refuse: a refusal is its behaviour, which the
    /// observation shows. Only a request the adapter got wrong is an error.
    fn admin(
        &mut self,
        runtime: &tokio::runtime::Handle,
        i: usize,
        path: &str,
        body: serde_json::Value,
    ) -> Result<(), SutError> {
        self.check_running(i)?;
        let name = self.cluster.replicas[i].name.clone();
        if !self.cluster.has_process(i) {
            tracing::info!(replica = %name, path, "replica is down: not done");
            return Ok(());
        }
        let answer = runtime
            .block_on(self.cluster.admin(i).post_json(path, &body))
            .map_err(failed)?;
        let code = answer.body["code"].as_str().unwrap_or("");
        let mistake = matches!(
            code,
            "MalformedRequest"
                | "UnknownRoute"
                | "FaultInjectionDisabled"
                | "BadRequest"
                | "NotUtf8"
        ) || (answer.status == 404 && code.is_empty())
            || (answer.status >= 500 && answer.status != 503);
        if answer.ok() {
            tracing::info!(replica = %name, path, answer = %answer.body, "done");
        } else if mistake {
            return Err(failed(format!(
                "POST {path} on {name}: {} {}",
                answer.status, answer.body
            )));
        } else {
            tracing::info!(replica = %name, path, status = answer.status, answer = %answer.body, "refused");
        }
        Ok(())
    }

    fn replica_index(&self, r: u8) -> Result<usize, SutError> {
        let i = usize::from(r);
        if i < self.cluster.replicas.len() {
            Ok(i)
        } else {
            Err(failed(format!("replica {r} is not in the configuration")))
        }
    }

    fn database_name(&self, db: u8) -> Result<String, SutError> {
        self.config
            .databases
            .get(usize::from(db))
            .cloned()
            .ok_or_else(|| failed(format!("database {db} is not in the configuration")))
    }

    fn perform(
        &mut self,
        runtime: &tokio::runtime::Handle,
        action: &Action,
    ) -> Result<(), SutError> {
        match *action {
            Action::ClientCommit { db } => self.client_commit(runtime, db),
            Action::Crash { replica } => {
                let i = self.replica_index(replica)?;
                self.check_running(i)?;
                self.cluster.kill(i); // SIGKILL: its clients' connections break
                self.offline[i] = None;
                Ok(())
            }
            Action::Restart { replica } => self.restart(runtime, self.replica_index(replica)?),
            Action::Partition { a, b } => self.cut(runtime, a, b, true),
            Action::Heal { a, b } => self.cut(runtime, a, b, false),
            Action::LoseQuorum | Action::RegainQuorum => self.quorum(*action == Action::LoseQuorum),
            Action::LoseLogBlock { to, db } => {
                let Some(p) = self.primary(runtime)? else {
                    tracing::info!("LoseLogBlock: no primary sends log: not done");
                    return Ok(());
                };
                let peer = self.cluster.replicas[self.replica_index(to)?].name.clone();
                let body = serde_json::json!({ "peer": peer, "database": self.database_name(db)? });
                self.admin(runtime, p, "/debug/drop-log", body)
            }
            Action::HealthFault { replica, condition } => {
                let i = self.replica_index(replica)?;
                let body = serde_json::json!({ "level": condition.level() });
                self.admin(runtime, i, "/debug/health-fault", body)
            }
            Action::DiskStall { replica } => {
                let i = self.replica_index(replica)?;
                self.admin(runtime, i, "/debug/disk-stall", serde_json::json!({}))
            }
            Action::PlannedFailover { target } => {
                let i = self.replica_index(target)?;
                self.admin(runtime, i, "/ag/failover", serde_json::Value::Null)
            }
            Action::ForcedFailover { target } => {
                let i = self.replica_index(target)?;
                self.admin(runtime, i, "/ag/force-failover", serde_json::Value::Null)
            }
            Action::DemoteToSecondary { replica } => {
                let i = self.replica_index(replica)?;
                self.admin(
                    runtime,
                    i,
                    "/ag/set-role-secondary",
                    serde_json::Value::Null,
                )
            }
            Action::Suspend { replica, db } | Action::Resume { replica, db } => {
                let i = self.replica_index(replica)?;
                let verb = if matches!(action, Action::Suspend { .. }) {
                    "suspend"
                } else {
                    "resume"
                };
                let name = self.database_name(db)?;
                let path = format!("/databases/{}/{verb}", percent_encode(&name));
                self.admin(runtime, i, &path, serde_json::Value::Null)
            }
            Action::SetRequiredSynchronized { k } => match self.primary(runtime)? {
                Some(p) => self.admin(
                    runtime,
                    p,
                    "/ag/required-synchronized",
                    serde_json::json!({ "value": k }),
                ),
                None => {
                    tracing::info!("SetRequiredSynchronized: no primary to run it: not done");
                    Ok(())
                }
            },
            other => Err(SutError::Unsupported(format!(
                "{:?}: the reference adapter has no API for it",
                other.kind()
            ))),
        }
    }

    fn client_commit(&mut self, runtime: &tokio::runtime::Handle, db: u8) -> Result<(), SutError> {
        let txn = self.clients.len() as u32 + 1;
        let database = DatabaseId(db);
        let record = Arc::new(Mutex::new(TransactionObservation {
            txn: TxnId(txn),
            database,
            outcome: CommitOutcome::Pending,
        }));
        self.clients.push(record.clone());
        let Some(p) = self.primary(runtime)? else {
            tracing::info!(txn, "no replica is PRIMARY: the listener refuses it");
            set_outcome(
                &record,
                CommitOutcome::DefiniteError(DefiniteReason::NoPrimary),
            );
            return Ok(());
        };
        let address = self.cluster.replicas[p].client;
        let request = serde_json::json!({
            "id": 1, "op": "transact", "db": db, "txn": txn, "writes": [[format!("k{txn}"), "v"]],
        });
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let outcome = commit(address, request, sent_tx).await;
            tracing::info!(txn, %outcome, "client outcome");
            set_outcome(&record, outcome);
        });
        if sent_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            tracing::warn!(txn, "the request was not sent within 10 s");
        }
        Ok(())
    }

    fn cut(
        &mut self,
        runtime: &tokio::runtime::Handle,
        a: Node,
        b: Node,
        cut: bool,
    ) -> Result<(), SutError> {
        match (a, b) {
            (Node::Manager, Node::Manager) => Ok(()),
            (Node::Replica(r), Node::Manager) | (Node::Manager, Node::Replica(r)) => {
                let i = self.replica_index(r)?;
                if cut {
                    self.cut_from_manager.insert(i);
                } else {
                    self.cut_from_manager.remove(&i);
                }
                if self.config.cluster_type == ClusterType::None {
                    return Ok(()); // no manager to cut from
                }
                if let Some(net) = &mut self.network {
                    let etcd = self.cluster.replicas.len();
                    return net.set_cut(i, etcd, cut).map_err(failed);
                }
                self.admin(
                    runtime,
                    i,
                    "/debug/manager",
                    serde_json::json!({ "cut": cut }),
                )
            }
            (Node::Replica(x), Node::Replica(y)) => {
                let (i, j) = (self.replica_index(x)?, self.replica_index(y)?);
                let link = (i.min(j), i.max(j));
                if cut {
                    self.cut_links.insert(link);
                } else {
                    self.cut_links.remove(&link);
                }
                if let Some(net) = &mut self.network {
                    return net.set_cut(i, j, cut).map_err(failed);
                }
                for (here, there) in [(i, j), (j, i)] {
                    let peer = self.cluster.replicas[there].name.clone();
                    let body = serde_json::json!({ "peer": peer, "cut": cut });
                    self.admin(runtime, here, "/debug/partition", body)?;
                }
                Ok(())
            }
        }
    }

    fn restart(&mut self, runtime: &tokio::runtime::Handle, i: usize) -> Result<(), SutError> {
        self.check_running(i)?;
        if self.cluster.has_process(i) {
            tracing::info!(replica = i, "restart: running already: not done");
            return Ok(());
        }
        // A restarted replica attaches to etcd within milliseconds, before its admin API could
        // be told to cut it again: hold its relay cut until its own cut is back.
        let cut_from_manager = self.cut_from_manager.contains(&i);
        if cut_from_manager {
            if let Some(link) = &self.links[i] {
                link.set_cut(true);
            }
        }
        self.cluster.start(i).map_err(cluster_failed)?;
        self.offline[i] = None;
        runtime
            .block_on(self.cluster.wait_ready(i))
            .map_err(cluster_failed)?;
        if self.network.is_some() {
            return Ok(()); // the cuts are the network's, and it kept them
        }
        // The cuts are the network's, not the process's: put them back.
        let peers: Vec<usize> = self
            .cut_links
            .iter()
            .filter_map(|&(a, b)| match i {
                _ if a == i => Some(b),
                _ if b == i => Some(a),
                _ => None,
            })
            .collect();
        for other in peers {
            let peer = self.cluster.replicas[other].name.clone();
            let body = serde_json::json!({ "peer": peer, "cut": true });
            self.admin(runtime, i, "/debug/partition", body)?;
        }
        if cut_from_manager {
            self.admin(
                runtime,
                i,
                "/debug/manager",
                serde_json::json!({ "cut": true }),
            )?;
            if let Some(link) = &self.links[i] {
                link.set_cut(false);
            }
        }
        Ok(())
    }

    #[cfg(feature = "etcd")]
    fn quorum(&mut self, lose: bool) -> Result<(), SutError> {
        let Some(etcd) = &self.etcd else {
            return Ok(()); // CLUSTER_TYPE NONE: no quorum to lose
        };
        let result = if lose { etcd.pause(0) } else { etcd.resume(0) };
        result.map_err(|e| failed(format!("etcd: {e}")))
    }

    #[cfg(not(feature = "etcd"))]
    fn quorum(&mut self, _lose: bool) -> Result<(), SutError> {
        Ok(()) // without etcd every group is CLUSTER_TYPE NONE: no quorum to lose
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for link in self.links.iter().flatten() {
            link.set_cut(true);
        }
        #[cfg(feature = "etcd")]
        if let Some(etcd) = &self.etcd {
            let _ = etcd.resume(0);
        }
        for i in 0..self.cluster.replicas.len() {
            self.cluster.kill(i);
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        hadr_testbed::cleanup::forget_temp_dir(&self.dir);
    }
}

/// A new directory for one scenario's files, under `HADR_REFERENCE_DIR` or the temp directory.
/// Removed by `Group`'s drop, or on a stopping signal by `hadr_testbed::cleanup`.
fn scenario_dir() -> Result<PathBuf, SutError> {
    hadr_testbed::cleanup::new_temp_dir("HADR_REFERENCE_DIR", "hadr-reference").map_err(failed)
}

fn set_outcome(record: &Mutex<TransactionObservation>, outcome: CommitOutcome) {
    match record.lock() {
        Ok(mut t) => t.outcome = outcome,
        Err(poisoned) => poisoned.into_inner().outcome = outcome,
    }
}

/// One commit on its own client connection: the outcome its client is told (R-COMMIT-7: a
/// connection that breaks before the answer leaves it indefinite).
async fn commit(
    address: SocketAddr,
    request: serde_json::Value,
    sent: std::sync::mpsc::Sender<()>,
) -> CommitOutcome {
    let answer = async {
        let stream = tokio::net::TcpStream::connect(address).await?;
        let (reader, mut writer) = stream.into_split();
        let mut line = request.to_string();
        line.push('\n');
        writer.write_all(line.as_bytes()).await?;
        let _ = sent.send(());
        let mut reader = tokio::io::BufReader::new(reader);
        let mut answer = String::new();
        reader.read_line(&mut answer).await?;
        Ok::<String, std::io::Error>(answer)
    }
    .await;
    let _ = sent.send(());
    let answer = match answer {
        Ok(a) if !a.trim().is_empty() => a,
        Ok(_) => return CommitOutcome::Indefinite, // closed before the answer
        Err(e) => {
            tracing::info!(%address, error = %e, "commit: the outcome is unknown");
            return CommitOutcome::Indefinite;
        }
    };
    match serde_json::from_str::<hadr_node::node::ClientReplyJson>(&answer) {
        Ok(reply) => commit_outcome(&reply),
        Err(e) => {
            tracing::warn!(%answer, error = %e, "commit: an answer that is no reply");
            CommitOutcome::Indefinite
        }
    }
}

/// The observation's outcome of one client-API reply (docs/node.md).
fn commit_outcome(reply: &hadr_node::node::ClientReplyJson) -> CommitOutcome {
    let reason = match reply.code.as_deref() {
        Some("NotPrimary" | "NotInAvailabilityGroup") => Some(DefiniteReason::NoPrimary),
        Some("TooFewSynchronized") => Some(DefiniteReason::TooFewSynchronized),
        Some("UnknownDatabase" | "UnknownDatabaseName") => Some(DefiniteReason::NotInGroup),
        _ => None,
    };
    match (reply.outcome.as_str(), reason) {
        ("committed", _) => CommitOutcome::Acknowledged,
        ("refused" | "error", Some(reason)) => CommitOutcome::DefiniteError(reason),
        ("indefinite", _) => CommitOutcome::Indefinite,
        _ => {
            tracing::warn!(
                ?reply,
                "a commit answer with no place in the observation: indefinite"
            );
            CommitOutcome::Indefinite
        }
    }
}

/// Percent-encodes a database name for a URL path segment.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A TCP relay on loopback between one replica and etcd that the adapter can hold cut. The
/// replica's own cut (`POST /debug/manager`) is the fault; the relay only bridges a restart
/// (see [`Group::restart`]).
struct Relay {
    address: SocketAddr,
    state: Arc<RelayState>,
}

#[derive(Default)]
struct RelayState {
    cut: std::sync::atomic::AtomicBool,
    connections: Mutex<Vec<TcpStream>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Relay {
    #[cfg(feature = "etcd")]
    fn start(upstream: SocketAddr) -> Result<Relay, SutError> {
        let address = hadr_testbed::local_cluster::free_port().map_err(cluster_failed)?;
        let listener = std::net::TcpListener::bind(address).map_err(|e| {
            failed(format!(
                "cannot listen on {address} for the etcd relay: {e}"
            ))
        })?;
        let state = Arc::new(RelayState::default());
        let accepting = state.clone();
        std::thread::Builder::new()
            .name("etcd-relay".to_owned())
            .spawn(move || {
                for downstream in listener.incoming() {
                    if accepting.closed.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    let Ok(downstream) = downstream else { continue };
                    if accepting.cut.load(std::sync::atomic::Ordering::SeqCst) {
                        continue; // dropped: refused
                    }
                    let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                    else {
                        continue;
                    };
                    let pairs = [
                        (downstream.try_clone(), up.try_clone()),
                        (up.try_clone(), downstream.try_clone()),
                    ];
                    if let Ok(mut all) = accepting.connections.lock() {
                        all.extend([downstream, up]);
                    }
                    for pair in pairs {
                        if let (Ok(from), Ok(to)) = pair {
                            let _ = std::thread::Builder::new()
                                .name("etcd-relay-pump".to_owned())
                                .spawn(move || pump(from, to));
                        }
                    }
                }
            })
            .map_err(|e| failed(format!("cannot start the etcd relay thread: {e}")))?;
        Ok(Relay { address, state })
    }

    /// Cuts (closing every open connection) or reopens the relay.
    fn set_cut(&self, cut: bool) {
        self.state
            .cut
            .store(cut, std::sync::atomic::Ordering::SeqCst);
        if cut {
            if let Ok(mut all) = self.state.connections.lock() {
                for c in all.drain(..) {
                    let _ = c.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.set_cut(true);
        self.state
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.address); // wakes the accepting thread to end it
        release_port(self.address.port());
    }
}

#[cfg(feature = "etcd")]
fn pump(mut from: TcpStream, mut to: TcpStream) {
    use std::io::{Read, Write};
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
