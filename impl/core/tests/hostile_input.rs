//! Input from outside the process (peer messages, client requests, admin commands, manager
//! events, time) never panics the core: random and extreme values are ignored or refused with
//! a reason, and the invariants still hold afterwards (`Cluster::run` checks them).

use hadr_core::testing::{ag_config, Cluster};
use hadr_core::{
    AdminCommand, ClientOp, DatabaseHello, Epoch, FailoverRefusal, ForkSegment, Hello, LogBlock,
    LogRecord, ManagerEvent, MessageBody, PeerMessage, PromotionKind, Write,
};
use hadr_types::AvailabilityMode::{AsynchronousCommit as Async, SynchronousCommit as Sync};
use hadr_types::{
    ApplicationIntent, ClusterType, DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState,
    TxnId,
};

/// Seeds per test; `HADR_HOSTILE_SEEDS` overrides.
fn hostile_seeds() -> u64 {
    std::env::var("HADR_HOSTILE_SEEDS")
        .map_or(60, |n| n.parse().expect("HADR_HOSTILE_SEEDS is a number"))
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Small values most of the time, extremes sometimes.
    fn number(&mut self) -> u64 {
        match self.below(6) {
            0 => u64::MAX,
            1 => u64::MAX - self.below(3),
            2 => 0,
            _ => self.below(6),
        }
    }
    fn lsn(&mut self) -> Lsn {
        Lsn(self.number())
    }
    fn epoch(&mut self) -> Epoch {
        Epoch {
            term: self.number(),
            replica: ReplicaId(self.below(5) as u8),
            generation: self.number() as u32,
        }
    }
    fn database(&mut self) -> DatabaseId {
        DatabaseId(self.below(3) as u8)
    }
    fn role(&mut self) -> Role {
        [Role::Primary, Role::Secondary, Role::Resolving][self.below(3) as usize]
    }
    fn records(&mut self, first: Lsn) -> Vec<LogRecord> {
        (0..self.below(4))
            .map(|i| LogRecord {
                lsn: if self.below(4) == 0 {
                    self.lsn()
                } else {
                    Lsn(first.0.wrapping_add(i))
                },
                epoch: self.epoch(),
                txn: TxnId(self.next() as u32),
                writes: vec![Write {
                    key: "k".into(),
                    value: "v".into(),
                }],
            })
            .collect()
    }
    fn database_hello(&mut self, database: DatabaseId) -> DatabaseHello {
        let end = self.lsn();
        DatabaseHello {
            database,
            end_of_log: end,
            hardened: self.lsn(),
            redone: self.lsn(),
            forks: (0..self.below(3))
                .map(|_| ForkSegment {
                    epoch: self.epoch(),
                    first_lsn: self.lsn(),
                })
                .collect(),
            accepted_epoch: self.epoch(),
            suspended: [
                None,
                Some(SuspendReason::User),
                Some(SuspendReason::Partner),
                Some(SuspendReason::Primary),
            ][self.below(4) as usize],
            reverting: self.below(2) == 0,
        }
    }
    fn body(&mut self) -> MessageBody {
        let database = self.database();
        match self.below(16) {
            0 => MessageBody::Hello(Hello {
                ag_name: if self.below(5) == 0 {
                    "other".into()
                } else {
                    "ag1".into()
                },
                replica: ReplicaId(self.below(4) as u8),
                replica_name: format!("R{}", self.below(4)),
                role: self.role(),
                last_forced_epoch: self.epoch(),
                required_synchronized: self.number() as u32,
                databases: (0..self.below(3))
                    .map(|d| self.database_hello(DatabaseId(d as u8)))
                    .collect(),
            }),
            1 => MessageBody::Rejoin(self.database_hello(database)),
            2 => MessageBody::Ping,
            3 => {
                let first_lsn = self.lsn();
                MessageBody::Log(LogBlock {
                    database,
                    first_lsn,
                    records: self.records(first_lsn),
                    stable: self.lsn(),
                })
            }
            4 => MessageBody::GapRefused {
                database,
                expected: self.lsn(),
            },
            5 => MessageBody::Progress {
                database,
                received: self.lsn(),
                hardened: self.lsn(),
                redone: self.lsn(),
            },
            6 => MessageBody::SyncState {
                database,
                state: [
                    SyncState::Synchronized,
                    SyncState::Reverting,
                    SyncState::NotSynchronizing,
                ][self.below(3) as usize],
            },
            7 => MessageBody::Suspend {
                database,
                reason: [
                    SuspendReason::User,
                    SuspendReason::Partner,
                    SuspendReason::Primary,
                    SuspendReason::Redo,
                ][self.below(4) as usize],
            },
            8 => MessageBody::Suspended { database },
            9 => MessageBody::ResumeFromPrimary { database },
            10 => MessageBody::Revert {
                database,
                to: self.lsn(),
            },
            11 => MessageBody::Reverted {
                database,
                end: self.lsn(),
                hardened: self.lsn(),
                redone: self.lsn(),
            },
            12 => MessageBody::FailoverRequest,
            13 => MessageBody::FailoverRefused {
                reason: FailoverRefusal::NotPrimary,
            },
            14 => MessageBody::FailoverGranted {
                ends: (0..self.below(3)).map(|_| self.lsn()).collect(),
            },
            _ => MessageBody::SetRequiredSynchronized {
                required: self.number() as u32,
            },
        }
    }
}

fn hostile(cluster_type: ClusterType, seed: u64) {
    let result = std::panic::catch_unwind(|| hostile_walk(cluster_type, seed));
    if let Err(panic) = result {
        eprintln!("hostile walk {cluster_type} seed {seed} panicked");
        std::panic::resume_unwind(panic);
    }
}

fn hostile_walk(cluster_type: ClusterType, seed: u64) {
    let mut rng = Rng(seed);
    let mut c = Cluster::new(ag_config(cluster_type, &[Sync, Sync, Async], 2));
    for step in 0..400 {
        let target = ReplicaId(rng.below(3) as u8);
        if !c.is_up(target) {
            continue;
        }
        let now = c.now_ms();
        match rng.below(8) {
            0..=3 => {
                // A message from a connected peer (or from nowhere), in its epoch or another.
                let from = ReplicaId(rng.below(4) as u8);
                let epoch = if rng.below(2) == 0 {
                    c.epoch(from.min(ReplicaId(2))).unwrap_or_default()
                } else {
                    rng.epoch()
                };
                let message = PeerMessage {
                    epoch,
                    body: rng.body(),
                };
                // On the open connection, or on a stale or made-up one.
                let connection = match c.connection(target, from) {
                    Some(open) if rng.below(4) != 0 => open,
                    _ => hadr_core::ConnectionId(rng.number()),
                };
                c.replica_mut(target)
                    .handle_message(now, from, connection, message);
            }
            4 => {
                let database = rng.database();
                let txn = TxnId(rng.below(4) as u32);
                let op = match rng.below(5) {
                    0 => ClientOp::Begin { txn },
                    1 => ClientOp::Write {
                        txn,
                        key: "k".into(),
                        value: "v".into(),
                    },
                    2 => ClientOp::Read {
                        txn: Some(txn).filter(|_| rng.below(2) == 0),
                        key: "k".into(),
                    },
                    3 => ClientOp::Commit { txn },
                    _ => ClientOp::Rollback { txn },
                };
                let intent = if rng.below(2) == 0 {
                    ApplicationIntent::ReadOnly
                } else {
                    ApplicationIntent::ReadWrite
                };
                c.client_with_intent(target, database, intent, op);
            }
            5 => {
                let database = rng.database();
                let command = match rng.below(7) {
                    0 => AdminCommand::Failover,
                    1 => AdminCommand::ForceFailoverAllowDataLoss,
                    2 => AdminCommand::SetRoleSecondary,
                    3 => AdminCommand::SuspendDatabase(database),
                    4 => AdminCommand::ResumeDatabase(database),
                    5 => {
                        AdminCommand::SetRequiredSynchronizedSecondariesToCommit(rng.number() as u32)
                    }
                    _ => AdminCommand::JoinAvailabilityGroup(ag_config(
                        cluster_type,
                        &[Sync, Sync],
                        1,
                    )),
                };
                c.admin(target, command);
            }
            6 => {
                let event = match rng.below(7) {
                    0 => ManagerEvent::Promote {
                        kind: PromotionKind::Automatic,
                        lease_until_ms: rng.number(),
                        term_at_least: rng.number(),
                        required_synchronized: u32::try_from(rng.number() % 10)
                            .ok()
                            .filter(|&k| k < 8),
                    },
                    1 => ManagerEvent::LeaseRenewed {
                        lease_until_ms: rng.number(),
                    },
                    2 => ManagerEvent::LeaseLost,
                    3 => ManagerEvent::SyncStatePublished {
                        epoch: if rng.below(2) == 0 {
                            c.epoch(target).unwrap_or_default()
                        } else {
                            rng.epoch()
                        },
                        version: rng.number(),
                    },
                    4 => ManagerEvent::PromotionDenied,
                    5 => ManagerEvent::Unreachable,
                    _ => ManagerEvent::Reachable {
                        primary: Some(ReplicaId(rng.below(4) as u8)).filter(|_| rng.below(3) != 0),
                    },
                };
                c.replica_mut(target).handle_manager(now, event);
            }
            _ => c.advance(rng.below(4_000)),
        }
        c.run();
        let _ = step;
    }
    // Time at the end of the clock.
    let far = u64::MAX - 1;
    for r in 0..3u8 {
        if c.is_up(ReplicaId(r)) {
            let replica = c.replica_mut(ReplicaId(r));
            replica.handle_timer(far, hadr_core::TimerId::Heartbeat);
            replica.handle_timer(
                far,
                hadr_core::TimerId::SessionTimeout(ReplicaId((r + 1) % 3)),
            );
            replica.handle_connection(
                far,
                hadr_core::ConnectionEvent::Opened {
                    peer: ReplicaId((r + 1) % 3),
                    connection: hadr_core::ConnectionId(u64::MAX),
                },
            );
            replica.validate().unwrap();
        }
    }
}

#[test]
fn hostile_input_never_panics_cluster_type_none() {
    for seed in 1..=hostile_seeds() {
        hostile(ClusterType::None, seed);
    }
}

#[test]
fn hostile_input_never_panics_with_a_cluster_manager() {
    for seed in 1..=hostile_seeds() {
        hostile(ClusterType::External, seed);
    }
}
