//! # hadr-core: the sans-IO availability-replica state machine
//!
//! One [`Replica`] value per replica process, holding every availability database of the group.
//! It implements the rule book (`docs/rules.md`) — roles, data synchronization, synchronous and
//! asynchronous commit, session timeouts, REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT,
//! planned and forced failover with recovery forks, suspend/resume — and does no I/O: the caller
//! passes time in and performs what comes out.
//!
//! ```text
//!          inputs, each with now_ms                           outputs, in order (poll_output)
//!  ┌──────────────────────────────────────┐               ┌─────────────────────────────────────┐
//!  │ handle_message    PeerMessage        │               │ PersistState  durable before rest   │
//!  │ handle_client     ClientRequest      │  ┌─────────┐  │ Send, CloseConnection     to peers  │
//!  │ handle_admin      AdminCommand       │─▶│ Replica │─▶│ AppendLog, Fsync, Redo, RevertLog   │
//!  │ handle_timer      TimerId            │  └─────────┘  │ ClientReply, AdminReply             │
//!  │ handle_storage    StorageEvent       │   validate()  │ SetTimer, CancelTimer               │
//!  │ handle_connection ConnectionEvent    │   after each  │ RoleChanged, DisconnectClients,     │
//!  │   (messages and connection events    │     input     │ PrimaryChanged                      │
//!  │    carry their ConnectionId)         │               │ Manager(ManagerRequest)  (etcd seam)│
//!  │ handle_manager    ManagerEvent       │               │ Ignored (with a reason)             │
//!  └──────────────────────────────────────┘               └─────────────────────────────────────┘
//! ```
//!
//! ## Where to start reading
//!
//! 1. [`Replica`]: the inputs, the outputs and **the ordering contract** (what the shell must
//!    make durable before what, and what the core promises in return).
//! 2. [`input`] and [`output`]: the vocabulary of the boundary; [`message`]: what replicas say
//!    to each other, with a sequence diagram.
//! 3. [`log`]: LSNs, epochs (recovery forks) and how a fork point is found.
//! 4. The `replica` module's source, one file per concern: `primary.rs` (commit and shipping),
//!    `secondary.rs` (receive, harden, redo, revert), `session.rs` (handshake, pings, roles),
//!    `failover.rs`, `admin.rs`, `status.rs`, `validate.rs`.
//! 5. The `testing` module (cargo feature `testing`, off by default; the crate's own tests
//!    turn it on): a deterministic in-memory cluster that drives several replicas, usable by a
//!    conformance harness; the tests in `tests/` read like the rules they check.
//!
//! ## Choices the rule book leaves open (documented where they are made)
//!
//! - Every log record is one committed transaction, so LSNs are ordinal positions and
//!   `last_commit_lsn` is the end of log. The core keeps each database's log in memory.
//! - A secondary becomes SYNCHRONIZED when, streaming in synchronous-commit mode, it reports
//!   hardening the primary's whole log; it stays SYNCHRONIZED until it stops streaming.
//! - Commits admitted while ≥ k secondaries were SYNCHRONIZED wait (and are never refused) if
//!   the count later drops below k: their log exists, so only a failover (indefinite) or
//!   enough acknowledgements end the wait (R-COMMIT-5, R-COMMIT-7).
//! - Reads on a secondary are served only while it is SYNCHRONIZING or SYNCHRONIZED, i.e.
//!   after the primary checked its log is on the current history (R-SYNC-5).
//! - Each replica waits for pings according to its *own* SESSION_TIMEOUT; pings are sent every
//!   quarter of the shortest one in the group.
//! - FORCE_FAILOVER_ALLOW_DATA_LOSS on a SYNCHRONIZED target runs the planned handshake (no
//!   loss, no suspensions); if that cannot complete it forces.
//! - Epochs are `(term, replica, generation)`: a primary of CLUSTER_TYPE NONE that restarts
//!   comes back PRIMARY in a new generation of its term, so records it writes cannot be
//!   confused with records it had shipped but not hardened before the crash.
//! - A new primary under a cluster manager waits for every synchronous replica until the
//!   manager confirmed its first publication (the manager may still hold the previous
//!   primary's list of failover-ready replicas).
//! - Pings go out in every role; a RESOLVING replica only stops *acting* on session timeouts.
//! - With a cluster manager, commits wait for every replica of the last confirmed publication
//!   *and of every publication sent since* ([`ManagerRequest::PublishSyncState`]); the manager
//!   must store publications in version order and refuse older ones.
//! - The published failover candidates follow R-FAIL-2 (primary and target SYNCHRONOUS_COMMIT
//!   with an automatic failover mode); the SYNCHRONIZED sets are published beside them
//!   ([`SyncStatePublication`]).
//! - Reads on the primary see every commit before the first one still waiting, whatever redo
//!   has applied; a read-intent connection never writes (R-READ-1).
//! - The primary redoes its own log as soon as it is hardened ([`Output::Redo`] is asked only
//!   of replicas that are not the primary, whose redo is asynchronous, R-SYNC-2).
//! - A transaction is bounded in size ([`CoreOptions::max_transaction_bytes`]): its commit is
//!   one log record, which a shell must be able to send in one message. A write beyond the
//!   bound rolls the transaction back.
//! - Transaction ids are never reused on a database; a commit of a transaction that is not
//!   open is answered with what the replica told before, or indefinitely (R-COMMIT-7).
//! - A promotion the manager answers with an expired lease, or not at all within
//!   [`CoreOptions::promotion_timeout_ms`], answers the failover command with an error.
//! - `now_ms` must be monotonic; the core never lets it go back (see [`Replica`]).
//!
//! ## CLUSTER_TYPE NONE and split brain
//!
//! Without a cluster manager there is no lease (R-QUORUM-3), so nothing stops a replica that
//! believes it is PRIMARY from committing. The core behaves as SQL Server does:
//!
//! ```text
//!  R0 PRIMARY (epoch 1), R1 and R2 SECONDARY, REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 0
//!  1. R0 crashes (or is cut off from R1 and R2 without crashing)
//!  2. the operator runs FORCE_FAILOVER_ALLOW_DATA_LOSS on R1  → R1 PRIMARY (epoch 2), R2 follows
//!  3. R0 restarts while it cannot reach R1 or R2               → R0 comes back PRIMARY
//!     (a PRIMARY of CLUSTER_TYPE NONE persists its role; it restarts in a new generation
//!      of epoch 1)                                              (the cut-off case: it never
//!                                                               stopped being PRIMARY)
//!  4. clients of R0 and of R1 both get commits acknowledged    → two primaries (R-ROLE-1 broken)
//!  5. R0 meets R1 or R2: it sees epoch 2 > epoch 1, steps down, follows R1 as SECONDARY with
//!     its databases SUSPEND_FROM_PARTNER; RESUME reverts them to the fork point, and every
//!     commit R0 acknowledged in step 4 is lost (hazard H3)
//! ```
//!
//! The formal spec models CLUSTER_TYPE NONE with operator discipline: **a forced failover runs
//! only when no other replica holds the PRIMARY role.** The R-QUORUM-5 procedure provides it:
//!
//! 1. make the target SYNCHRONOUS_COMMIT and wait until it is SYNCHRONIZED;
//! 2. set REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1, so that a primary left without a
//!    synchronized secondary refuses commits (definitely) instead of acknowledging them alone;
//! 3. run `SET (ROLE = SECONDARY)` on the old primary: it persists SECONDARY, so it also
//!    *restarts* SECONDARY, and it waits for the new primary's handshake;
//! 4. run FORCE_FAILOVER_ALLOW_DATA_LOSS on the target.
//!
//! When the old primary cannot be reached for step 3, the operator must keep it from coming
//! back as primary before it meets the new one (keep it stopped, or cut it off from clients
//! until it has followed the new primary). k ≥ 1 alone narrows the window but does not close
//! it: an old primary that still has a SYNCHRONIZED secondary on its side keeps committing.
//! The scenario test `cluster_type_none_split_brain_when_an_old_primary_restarts_beside_a_forced_one`
//! shows the behaviour; `r_quorum_5_the_documented_failover_of_cluster_type_none_loses_nothing`
//! shows the procedure.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod ids;
pub mod input;
pub mod log;
pub mod message;
pub mod mutants;
pub mod output;
pub mod persist;
pub mod policy;
mod replica;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{
    AdminError, ClientError, IgnoredReason, InvariantViolation, RecoveryError, StorageContractError,
};
pub use ids::{ConnectionId, Epoch, RequestId, TimerId};
pub use input::{
    AdminCommand, ClientOp, ClientRequest, ConnectionEvent, ManagerEvent, PromotionKind,
    StorageEvent,
};
pub use log::{ForkSegment, LogRecord, Write};
pub use message::{DatabaseHello, FailoverRefusal, Hello, LogBlock, MessageBody, PeerMessage};
pub use output::{
    AdminOutcome, ClientReply, DisconnectReason, IndefiniteCause, InputSource, ManagerRequest,
    Output, SyncStatePublication,
};
pub use persist::{LogDamage, PersistentDatabase, PersistentState};
pub use replica::{
    ConnectedState, CoreOptions, DatabaseStatus, PeerStatus, Replica, ReplicaStatus,
    SecondaryDatabaseStatus,
};
pub use store::{DataStore, SharedStore, StoreError};
