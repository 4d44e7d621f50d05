//! # hadr-types: the shared vocabulary of hadr
//!
//! Identifiers, log sequence numbers, roles, modes, the availability-group configuration
//! ([`AgConfig`]) with the validation of every limit of the rule book (R-LIMIT), and the
//! [`Observation`] of a running availability group that the spec predicts and the conformance
//! harness compares.
//!
//! This crate holds *names only*: no protocol logic. The spec (`hadr-model`) and the reference
//! implementation (`hadr-core`, `hadr-node`) both depend on it and on nothing of each other.
//!
//! Where to start reading: [`config`] (what a user writes), then [`vocabulary`] (what the rule
//! book talks about), then [`observation`] (what is compared).

pub mod config;
pub mod event_log;
#[doc(hidden)]
pub mod fuzzing;
pub mod observation;
pub mod tsql;
pub mod vocabulary;

pub use config::{
    AgConfig, ConfigError, ConfigFormat, LeaseConfig, LimitViolation, PolicyConfig, PrimaryRole,
    ReplicaConfig, RoutingEntry, SecondaryRole,
};
pub use observation::{
    CommitOutcome, DatabaseObservation, DefiniteReason, Observation, ReplicaObservation,
    TransactionObservation,
};
pub use vocabulary::{
    ApplicationIntent, AvailabilityMode, BackupPreference, BackupTieBreak, ClusterType, DatabaseId,
    DatabaseState, FailoverMode, FailureCondition, LogReuseWait, Lsn, PrimaryConnections,
    ReplicaId, Role, SecondaryConnections, SeedingMode, SuspendReason, SyncState,
    SynchronizationHealth, TxnId,
};
