//! `reference-sim`: the reference core (hadr-core) in its deterministic simulated network
//! (`hadr_core::testing::Cluster`), with a simulated cluster manager that grants promotions,
//! renews leases, and fails over automatically as the spec's manager does.

use hadr_conformance::sut::{Sut, SutError};
use hadr_core::testing::Cluster;
use hadr_core::{AdminCommand, ManagerEvent, RequestId};
use hadr_model::{Action, Node};
use hadr_types::{
    AgConfig, CommitOutcome, DatabaseId, DefiniteReason, Lsn, Observation, ReplicaId, Role,
    TransactionObservation, TxnId,
};
use std::collections::BTreeSet;

/// Long enough for every timer of the reference configurations to fire (session timeouts,
/// leases): the harness waits this long, in simulated time, after each step.
const SETTLE_MS: u64 = 120_000;

/// One client transaction as its client sees it.
#[derive(Clone)]
struct ClientTxn {
    txn: u32,
    database: DatabaseId,
    /// Where it was sent and its request, or the listener's own definite answer.
    sent: Result<(ReplicaId, RequestId), DefiniteReason>,
    /// The server it went to crashed before answering.
    lost: bool,
}

/// The reference core, simulated. A clone is an independent copy (the fuzz target sets one
/// up once and runs every scenario on a clone).
#[derive(Clone, Default)]
pub struct ReferenceSim {
    options: hadr_core::CoreOptions,
    cluster: Option<Cluster>,
    config: Option<AgConfig>,
    clients: Vec<ClientTxn>,
    /// Replicas cut off from the manager by partitions; with `quorum_lost`, every replica is.
    manager_cut: BTreeSet<ReplicaId>,
    quorum_lost: bool,
    /// The primary the manager records: the last replica seen PRIMARY.
    manager_primary: Option<ReplicaId>,
    /// Replicas whose log disk is stalled (DiskStall, until they crash): their storage is
    /// held and they are not promoted, as the node's `/debug/disk-stall` does.
    stalled: BTreeSet<ReplicaId>,
}

impl ReferenceSim {
    /// A simulator with nothing set up yet.
    pub fn new() -> Self {
        ReferenceSim::default()
    }

    /// A simulator whose replicas carry a planted bug (feature `mutants`).
    #[cfg(feature = "mutants")]
    pub fn with_mutant(mutant: hadr_core::mutants::Mutant) -> Self {
        let options = hadr_core::CoreOptions {
            mutant: Some(mutant),
            ..Default::default()
        };
        ReferenceSim {
            options,
            ..ReferenceSim::default()
        }
    }

    fn cluster(&mut self) -> Result<&mut Cluster, SutError> {
        self.cluster
            .as_mut()
            .ok_or_else(|| SutError::Failed("no group: setup first".to_owned()))
    }

    /// Applies the cuts from the manager (partitions, lost quorum) and tells every replica at
    /// once whether it reaches the manager, as the node's etcd watch does within a second,
    /// long before a lease runs out.
    fn sync_isolation(&mut self) {
        let n = self.config.as_ref().map_or(0, |c| c.replicas.len());
        let isolated: BTreeSet<ReplicaId> = if self.quorum_lost {
            (0..n).map(|r| ReplicaId(r as u8)).collect()
        } else {
            self.manager_cut.clone()
        };
        if let Some(c) = self.cluster.as_mut() {
            c.manager.isolated = isolated;
        }
        self.report_reachability();
    }

    fn primary(&self) -> Option<ReplicaId> {
        let c = self.cluster.as_ref()?;
        (0..c.nodes.len())
            .map(|r| ReplicaId(r as u8))
            .find(|&r| c.role(r) == Some(Role::Primary))
    }

    /// The manager's automatic failover (R-FAIL-2): with quorum and no primary holding the
    /// lease, every running replica that reaches the manager asks, and the manager's policy
    /// ([`hadr_core::policy`], the etcd manager's) promotes a failover-ready one, or restores
    /// its recorded primary (R-QUORUM-2).
    fn automatic_failover(&mut self) {
        let has_manager = self
            .config
            .as_ref()
            .is_some_and(|c| c.cluster_type.has_manager());
        // A primary cut off from the manager renews no lease: after the settling time its lease
        // has run out at the manager, whether or not the primary itself stepped down (etcd
        // deletes the leader key when its lease expires).
        let lease_held = self.cluster.as_ref().is_some_and(|c| {
            (0..c.nodes.len())
                .map(|r| ReplicaId(r as u8))
                .any(|r| c.role(r) == Some(Role::Primary) && !self.manager_cut.contains(&r))
        });
        if !has_manager || self.quorum_lost || lease_held {
            return;
        }
        let (cut, stalled) = (&self.manager_cut, &self.stalled);
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let askers: Vec<ReplicaId> = (0..c.nodes.len())
            .map(|r| ReplicaId(r as u8))
            .filter(|r| !cut.contains(r))
            .collect();
        if c.automatic_failover(&askers, |r| stalled.contains(&r))
            .is_some()
        {
            c.run();
        }
    }

    /// Tells every running replica whether it reaches the manager's majority, and which
    /// primary the manager records (what the node's etcd watch does every second).
    fn report_reachability(&mut self) {
        let has_manager = self
            .config
            .as_ref()
            .is_some_and(|c| c.cluster_type.has_manager());
        if !has_manager {
            return;
        }
        if let Some(p) = self.primary() {
            self.manager_primary = Some(p);
        }
        let (quorum_lost, cut, primary) = (
            self.quorum_lost,
            self.manager_cut.clone(),
            self.manager_primary,
        );
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        for r in (0..c.nodes.len()).map(|r| ReplicaId(r as u8)) {
            if !c.is_up(r) {
                continue;
            }
            let event = if quorum_lost || cut.contains(&r) {
                ManagerEvent::Unreachable
            } else {
                ManagerEvent::Reachable { primary }
            };
            c.manager_event(r, event);
        }
        c.run();
    }

    /// Runs until quiescent: [`SETTLE_MS`] at a time, with the manager's moves in between,
    /// until a whole round changes nothing that can be observed (at most four rounds).
    fn settle(&mut self) -> Result<(), SutError> {
        let mut before = self.cluster()?.observation();
        for _ in 0..4 {
            self.cluster()?.advance(SETTLE_MS);
            self.automatic_failover();
            self.report_reachability();
            let after = self.cluster()?.observation();
            if after == before {
                break;
            }
            before = after;
        }
        Ok(())
    }

    fn admin(&mut self, r: ReplicaId, command: AdminCommand) -> Result<(), SutError> {
        let c = self.cluster()?;
        if c.is_up(r) {
            c.admin(r, command);
        }
        Ok(())
    }

    fn replica(node: &Node) -> Option<ReplicaId> {
        match node {
            Node::Replica(r) => Some(ReplicaId(*r)),
            Node::Manager => None,
        }
    }
}

impl Sut for ReferenceSim {
    fn name(&self) -> String {
        #[cfg(feature = "mutants")]
        if let Some(m) = self.options.mutant {
            return format!("reference-sim --mutant {m}");
        }
        "reference-sim".to_owned()
    }

    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError> {
        *self = ReferenceSim {
            options: self.options,
            ..ReferenceSim::default()
        };
        let mut cluster = Cluster::with_options(config.clone(), self.options);
        // R-FAIL-7: one scenario is well within `failover_period_h`: the simulated manager
        // counts every automatic failover.
        cluster.manager.failover_threshold = config.failover_threshold();
        cluster.run();
        self.cluster = Some(cluster);
        self.config = Some(config.clone());
        self.settle()
    }

    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        match *action {
            Action::ClientCommit { db } => {
                let txn = self.clients.len() as u32 + 1;
                let database = DatabaseId(db);
                let sent = match self.primary() {
                    None => Err(DefiniteReason::NoPrimary),
                    Some(p) => {
                        let key = format!("k{txn}");
                        let request = self.cluster()?.commit(p, database, txn, &[(&key, "v")]);
                        Ok((p, request))
                    }
                };
                self.clients.push(ClientTxn {
                    txn,
                    database,
                    sent,
                    lost: false,
                });
            }
            Action::Crash { replica } => {
                let r = ReplicaId(replica);
                for t in &mut self.clients {
                    if matches!(t.sent, Ok((to, _)) if to == r) {
                        let answered = self
                            .cluster
                            .as_ref()
                            .and_then(|c| t.sent.as_ref().ok().and_then(|(to, q)| c.reply(*to, *q)))
                            .is_some();
                        t.lost |= !answered;
                    }
                }
                self.cluster()?.crash(r);
                self.stalled.remove(&r);
            }
            Action::Restart { replica } => self.cluster()?.restart(ReplicaId(replica)),
            // Bit rot on the stopped server's disk, found by its recovery at the next start.
            Action::CorruptLog { replica, db, lsn } => {
                self.cluster()?.corrupt_record(
                    ReplicaId(replica),
                    DatabaseId(db),
                    Lsn(u64::from(lsn)),
                );
            }
            Action::Partition { a, b } => match (Self::replica(&a), Self::replica(&b)) {
                (Some(a), Some(b)) => self.cluster()?.partition(a, b),
                (Some(r), None) | (None, Some(r)) => {
                    self.manager_cut.insert(r);
                    self.sync_isolation();
                }
                (None, None) => {}
            },
            Action::Heal { a, b } => match (Self::replica(&a), Self::replica(&b)) {
                (Some(a), Some(b)) => self.cluster()?.heal(a, b),
                (Some(r), None) | (None, Some(r)) => {
                    self.manager_cut.remove(&r);
                    self.sync_isolation();
                }
                (None, None) => {}
            },
            Action::LoseQuorum => {
                self.quorum_lost = true;
                self.sync_isolation();
            }
            Action::RegainQuorum => {
                self.quorum_lost = false;
                self.sync_isolation();
            }
            // Armed on the primary: the next record it ships to `to` is lost in transit.
            Action::LoseLogBlock { to, db } => {
                if let Some(p) = self.primary() {
                    self.cluster()?
                        .lose_next_record(p, ReplicaId(to), DatabaseId(db));
                }
            }
            Action::HealthFault { replica, condition } => {
                let level = self
                    .config
                    .as_ref()
                    .map_or(0, |c| c.failure_condition_level);
                let r = ReplicaId(replica);
                if condition.level() <= level && !self.quorum_lost && self.primary() == Some(r) {
                    // The manager declares the primary failed: its lease is gone.
                    let c = self.cluster()?;
                    c.manager_event(r, ManagerEvent::LeaseLost);
                    c.run();
                }
            }
            // A replica whose log disk is stalled refuses to become primary (as the node).
            Action::PlannedFailover { target } if self.stalled.contains(&ReplicaId(target)) => {}
            Action::ForcedFailover { target } if self.stalled.contains(&ReplicaId(target)) => {}
            Action::PlannedFailover { target } => {
                self.admin(ReplicaId(target), AdminCommand::Failover)?
            }
            Action::ForcedFailover { target } => {
                self.admin(ReplicaId(target), AdminCommand::ForceFailoverAllowDataLoss)?
            }
            Action::DiskStall { replica } => {
                let r = ReplicaId(replica);
                let c = self.cluster()?;
                if c.is_up(r) && c.role(r) == Some(Role::Secondary) {
                    c.node_mut(r).stall_disk = true;
                    self.stalled.insert(r);
                }
            }
            Action::DemoteToSecondary { replica } => {
                self.admin(ReplicaId(replica), AdminCommand::SetRoleSecondary)?
            }
            Action::Suspend { replica, db } => self.admin(
                ReplicaId(replica),
                AdminCommand::SuspendDatabase(DatabaseId(db)),
            )?,
            Action::Resume { replica, db } => self.admin(
                ReplicaId(replica),
                AdminCommand::ResumeDatabase(DatabaseId(db)),
            )?,
            Action::SetRequiredSynchronized { k } => {
                if let Some(p) = self.primary() {
                    self.admin(
                        p,
                        AdminCommand::SetRequiredSynchronizedSecondariesToCommit(u32::from(k)),
                    )?;
                }
            }
            other => return Err(SutError::Unsupported(format!("{:?}", other.kind()))),
        }
        self.cluster()?.run();
        self.settle()
    }

    fn observe(&mut self) -> Result<Observation, SutError> {
        let c = self
            .cluster
            .as_ref()
            .ok_or_else(|| SutError::Failed("no group: setup first".to_owned()))?;
        let mut observation = c.observation();
        observation.transactions = self
            .clients
            .iter()
            .map(|t| {
                let outcome = match t.sent {
                    Err(reason) => CommitOutcome::DefiniteError(reason),
                    Ok((to, request)) => match c.reply(to, request) {
                        Some(reply) => reply.commit_outcome().unwrap_or(CommitOutcome::Indefinite),
                        None if t.lost => CommitOutcome::Indefinite,
                        None => CommitOutcome::Pending,
                    },
                };
                TransactionObservation {
                    txn: TxnId(t.txn),
                    database: t.database,
                    outcome,
                }
            })
            .collect();
        Ok(observation)
    }
}
