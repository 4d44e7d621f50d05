//! # hadr-testbed: local availability groups of real replica processes
//!
//! What `hadr demo`, `hadr bench`, the `reference` adapter and the end-to-end tests share to
//! run the reference implementation on one machine: [`local_cluster`] starts `hadr replica`
//! processes on loopback (free ports, a data directory and a log file each, SIGKILL and
//! SIGSTOP from outside) and drives them through their admin API; `failover` (feature
//! `etcd`) adds a local etcd, CLUSTER_TYPE = EXTERNAL groups and a client workload that follows
//! the primary across automatic failovers. [`cleanup`] makes sure none of it outlives the
//! command that started it, whatever signal stops that command.
//!
//! The replicas are processes of the `hadr` binary, whose path every caller passes in: the
//! commands their own (`std::env::current_exe()`, [`local_cluster::runtime_and_exe`]), the
//! tests `env!("CARGO_BIN_EXE_hadr")`.

#![warn(missing_docs)]

pub mod cleanup;
#[cfg(feature = "etcd")]
pub mod failover;
pub mod local_cluster;
pub mod netns;
