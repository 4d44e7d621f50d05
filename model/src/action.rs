//! The atomic steps of the spec, split into **environment** actions (a client, an operator or a
//! fault does them; the conformance harness drives them) and **internal** actions (protocol
//! steps a correct implementation takes on its own).

use crate::backup::BackupKind;
use crate::state::{Did, Rid};
use hadr_types::{ApplicationIntent, FailureCondition};
use serde::{Deserialize, Serialize};

/// A node of the network: a replica or the cluster manager's majority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Node {
    /// A replica.
    Replica(Rid),
    /// The cluster manager (its majority of voters).
    Manager,
}

/// One atomic step of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    // ---- environment: client ----
    /// A client commits a transaction on a database, through the listener (to the primary).
    ClientCommit { db: Did },
    /// A client connects through the listener with an intent and reads a database (R-READ).
    ClientRead { db: Did, intent: ApplicationIntent },
    // ---- environment: operator ----
    /// `ALTER AVAILABILITY GROUP … FAILOVER` issued on `target` (R-FAIL-3).
    PlannedFailover { target: Rid },
    /// `ALTER AVAILABILITY GROUP … FORCE_FAILOVER_ALLOW_DATA_LOSS` on `target` (R-FAIL-4).
    ForcedFailover { target: Rid },
    /// `ALTER AVAILABILITY GROUP … SET (ROLE = SECONDARY)` on the primary (CLUSTER_TYPE NONE).
    DemoteToSecondary { replica: Rid },
    /// `ALTER DATABASE … SET HADR SUSPEND` on one replica's database (R-SYNC-7).
    Suspend { replica: Rid, db: Did },
    /// `ALTER DATABASE … SET HADR RESUME` (R-SYNC-7, R-FAIL-4).
    Resume { replica: Rid, db: Did },
    /// `ALTER AVAILABILITY GROUP … SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = k)`.
    SetRequiredSynchronized { k: u8 },
    /// `BACKUP DATABASE` / `BACKUP LOG` on one replica (R-BACKUP-1/2/3).
    Backup {
        replica: Rid,
        db: Did,
        kind: BackupKind,
    },
    /// `ALTER AVAILABILITY GROUP … ADD DATABASE` on the primary (R-DB-1).
    AddDatabase { db: Did },
    /// `ALTER AVAILABILITY GROUP … REMOVE DATABASE` on the primary (R-DB-4).
    RemoveDatabase { db: Did },
    /// `ALTER AVAILABILITY GROUP … REMOVE REPLICA ON …` on the primary (R-DB-4).
    RemoveReplica { replica: Rid },
    /// `RESTORE DATABASE … WITH NORECOVERY` on a replica (R-DB-2/3).
    RestoreDatabase { replica: Rid, db: Did },
    /// `ALTER DATABASE … SET HADR AVAILABILITY GROUP = …` on a secondary (R-DB-2).
    JoinDatabase { replica: Rid, db: Did },
    // ---- environment: faults ----
    /// A replica's server crashes: what it had not hardened is lost.
    Crash { replica: Rid },
    /// A crashed replica's server starts again.
    Restart { replica: Rid },
    /// The link between two nodes is cut.
    Partition { a: Node, b: Node },
    /// A cut link is restored.
    Heal { a: Node, b: Node },
    /// The cluster manager loses its majority (R-QUORUM-2).
    LoseQuorum,
    /// The cluster manager's majority is back.
    RegainQuorum,
    /// The next log record the primary ships to a secondary's database will be lost in
    /// transit (armed now, taking effect at that shipment; disarmed when the primary's term
    /// ends). The secondary notices the gap when the next record arrives (R-SYNC-1).
    LoseLogBlock { to: Rid, db: Did },
    /// A secondary's log disk stops completing writes (an fsync that never returns): what it
    /// receives is not hardened until its server crashes (R-COMMIT-2).
    DiskStall { replica: Rid },
    /// The primary reports a failure that the flexible failover policy weighs (R-FAIL-7).
    HealthFault {
        replica: Rid,
        condition: FailureCondition,
    },
    /// A page of a database is found corrupt on a replica (R-PAGE).
    CorruptPage { replica: Rid, db: Did },
    /// While a replica's server is down, the record at `lsn` of one database's hardened log is
    /// damaged on its disk (bit rot): it fails its checksum and valid records follow it, so
    /// recovery at the next start must take it for corruption, not a torn tail (R-COMMIT-6).
    CorruptLog { replica: Rid, db: Did, lsn: u8 },
    // ---- internal ----
    /// The primary acknowledges a commit to its client (R-COMMIT-2/3).
    AckCommit { txn: u8 },
    /// The primary sends the next log block of a database to a secondary (R-SYNC-1).
    ShipLog { to: Rid, db: Did },
    /// A secondary hardens (fsyncs) the log it received (R-SYNC-2).
    HardenLog { replica: Rid, db: Did },
    /// A secondary redoes its hardened log into the data (R-SYNC-2).
    RedoLog { replica: Rid, db: Did },
    /// The primary and a secondary establish a session (handshake) (R-SYNC-6).
    Connect { replica: Rid },
    /// The primary stops hearing pings from a secondary for SESSION_TIMEOUT (R-HEALTH-1).
    SessionTimeout { replica: Rid },
    /// The primary records in the manager that a caught-up secondary is SYNCHRONIZED (R-SYNC-6).
    MarkSynchronized { replica: Rid, db: Did },
    /// The primary records in the manager that a secondary is no longer SYNCHRONIZED and
    /// stops waiting for it (R-COMMIT-4).
    DropFromSynchronized { replica: Rid, db: Did },
    /// A secondary undoes its log back to the fork point (REVERTING, R-FAIL-4/6).
    Revert { replica: Rid, db: Did },
    /// The primary cannot renew its lease and stops (RESOLVING) (R-QUORUM-3).
    LeaseExpiry { replica: Rid },
    /// The manager sees the primary's lease run out (R-QUORUM-3).
    ManagerLeaseExpiry,
    /// The manager promotes a synchronized automatic-failover secondary (R-FAIL-2).
    AutomaticFailover { target: Rid },
    /// The manager brings the group back online on its current primary (no failover).
    RestorePrimary { replica: Rid },
    /// A secondary that cannot reach the manager's majority goes RESOLVING (R-QUORUM-2).
    LoseManager { replica: Rid },
    /// A RESOLVING replica that reaches the manager learns it is a secondary (R-FAIL-6).
    ResolveToSecondary { replica: Rid },
    /// Automatic seeding copies a database from the primary and joins it (R-DB-2).
    SeedDatabase { replica: Rid, db: Did },
    /// A secondary replaces its corrupt page with the primary's as of its redo LSN (R-PAGE-1).
    RepairFromPrimary { replica: Rid, db: Did },
    /// The primary replaces its corrupt page with the first answer from a SYNCHRONIZED
    /// secondary that redid up to the needed LSN (R-PAGE-2).
    RepairFromSecondary { db: Did, from: Rid },
}

/// Who takes an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionClass {
    /// A client of the group.
    Client,
    /// A database administrator.
    Operator,
    /// The world: crashes, networks, health.
    Fault,
    /// The protocol itself.
    Internal,
}

impl ActionClass {
    /// Whether the environment (not the protocol) takes actions of this class.
    pub fn is_environment(self) -> bool {
        !matches!(self, ActionClass::Internal)
    }
}

macro_rules! action_kinds {
    ($($kind:ident => $class:ident, $rule:literal, $words:literal;)*) => {
        /// The kind of an [`Action`], without its parameters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum ActionKind { $($kind),* }

        impl ActionKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ActionKind] = &[$(ActionKind::$kind),*];

            /// Who takes actions of this kind.
            pub fn class(self) -> ActionClass {
                match self { $(ActionKind::$kind => ActionClass::$class),* }
            }

            /// The rule this kind of step serves.
            pub fn rule(self) -> &'static str {
                match self { $(ActionKind::$kind => $rule),* }
            }

            /// What the step does, in the rule book's words.
            pub fn words(self) -> &'static str {
                match self { $(ActionKind::$kind => $words),* }
            }

            /// The kind's name.
            pub fn name(self) -> &'static str {
                match self { $(ActionKind::$kind => stringify!($kind)),* }
            }
        }

        impl Action {
            /// This action's kind.
            pub fn kind(&self) -> ActionKind {
                match self { $(Action::$kind { .. } => ActionKind::$kind),* }
            }
        }
    };
}

action_kinds! {
    ClientCommit => Client, "R-COMMIT-2", "a client commits a transaction";
    ClientRead => Client, "R-READ-3", "a client reads through the listener";
    PlannedFailover => Operator, "R-FAIL-3", "an operator issues a planned manual failover";
    ForcedFailover => Operator, "R-FAIL-4", "an operator forces a failover allowing data loss";
    DemoteToSecondary => Operator, "R-QUORUM-5", "an operator demotes the primary (SET ROLE = SECONDARY)";
    Suspend => Operator, "R-SYNC-7", "an operator suspends a database";
    Resume => Operator, "R-SYNC-7", "an operator resumes a database";
    SetRequiredSynchronized => Operator, "R-COMMIT-5", "an operator changes REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT";
    Backup => Operator, "R-BACKUP-1", "an operator takes a backup";
    AddDatabase => Operator, "R-DB-1", "an operator adds a database to the group";
    RemoveDatabase => Operator, "R-DB-4", "an operator removes a database from the group";
    RemoveReplica => Operator, "R-DB-4", "an operator removes a replica from the group";
    RestoreDatabase => Operator, "R-DB-2", "an operator restores a database WITH NORECOVERY";
    JoinDatabase => Operator, "R-DB-2", "an operator joins a secondary database";
    Crash => Fault, "R-COMMIT-6", "a server crashes";
    Restart => Fault, "R-FAIL-6", "a crashed server restarts";
    Partition => Fault, "R-HEALTH-1", "a network link is cut";
    Heal => Fault, "R-HEALTH-1", "a cut network link is restored";
    LoseQuorum => Fault, "R-QUORUM-2", "the cluster manager loses quorum";
    RegainQuorum => Fault, "R-QUORUM-2", "the cluster manager regains quorum";
    LoseLogBlock => Fault, "R-SYNC-1", "a log block is lost in transit";
    DiskStall => Fault, "R-COMMIT-2", "a secondary's log disk stalls";
    HealthFault => Fault, "R-FAIL-7", "the primary reports a health failure";
    CorruptPage => Fault, "R-PAGE-1", "a page is found corrupt";
    CorruptLog => Fault, "R-COMMIT-6", "a hardened log record is damaged on a stopped server's disk";
    AckCommit => Internal, "R-COMMIT-2", "the primary acknowledges a commit";
    ShipLog => Internal, "R-SYNC-1", "the primary sends a log block to a secondary";
    HardenLog => Internal, "R-SYNC-2", "a secondary hardens received log";
    RedoLog => Internal, "R-SYNC-2", "a secondary redoes hardened log";
    Connect => Internal, "R-SYNC-6", "primary and secondary establish a session";
    SessionTimeout => Internal, "R-COMMIT-4", "a session times out";
    MarkSynchronized => Internal, "R-SYNC-6", "a caught-up secondary becomes SYNCHRONIZED";
    DropFromSynchronized => Internal, "R-COMMIT-4", "the primary stops waiting for a secondary";
    Revert => Internal, "R-FAIL-4", "a secondary reverts to the fork point";
    LeaseExpiry => Internal, "R-QUORUM-3", "the primary's lease runs out";
    ManagerLeaseExpiry => Internal, "R-QUORUM-3", "the manager sees the lease run out";
    AutomaticFailover => Internal, "R-FAIL-2", "the manager fails over automatically";
    RestorePrimary => Internal, "R-QUORUM-2", "the manager brings the primary back online";
    LoseManager => Internal, "R-QUORUM-2", "a secondary cut off from the manager goes RESOLVING";
    ResolveToSecondary => Internal, "R-FAIL-6", "a RESOLVING replica becomes a secondary";
    SeedDatabase => Internal, "R-DB-2", "automatic seeding copies and joins a database";
    RepairFromPrimary => Internal, "R-PAGE-1", "a secondary repairs a page from the primary";
    RepairFromSecondary => Internal, "R-PAGE-2", "the primary repairs a page from a secondary";
}

impl ActionKind {
    /// The kind's position in [`ActionKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether it counts against `Bounds::events`: a fault or an operator command, as opposed
    /// to a client commit or read, an internal step, or an action that undoes a disruption
    /// (restart, heal, quorum regained, resume, join).
    pub fn is_disruption(self) -> bool {
        use ActionKind::*;
        matches!(
            self,
            Crash
                | HealthFault
                | Partition
                | LoseQuorum
                | LoseLogBlock
                | DiskStall
                | PlannedFailover
                | ForcedFailover
                | DemoteToSecondary
                | Suspend
                | SetRequiredSynchronized
                | Backup
                | AddDatabase
                | RemoveDatabase
                | RemoveReplica
                | RestoreDatabase
                | CorruptPage
                | CorruptLog
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_indexed_in_declaration_order() {
        for (i, kind) in ActionKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        assert!(ActionKind::ALL.len() <= 64, "kinds must fit a u64 mask");
    }

    #[test]
    fn environment_and_internal_are_split() {
        let env = ActionKind::ALL
            .iter()
            .filter(|k| k.class().is_environment())
            .count();
        assert_eq!(env, 25);
        assert_eq!(ActionKind::ALL.len() - env, 18);
        assert_eq!(
            Action::ShipLog { to: 1, db: 0 }.kind().class(),
            ActionClass::Internal
        );
    }
}
