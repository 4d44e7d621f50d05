//! # hadr-node: the tokio shell around hadr-core
//!
//! One process per availability replica. The sans-IO [`hadr_core::Replica`] decides; this
//! crate performs what it decides and reports back:
//!
//! ```text
//!   peers (TCP, wire.rs) ─┐                                   ┌─▶ WAL files (wal.rs), fsync
//!   clients (TCP, NDJSON) ┼─▶ driver task: Replica.handle_* ─┼─▶ peers, clients, admin replies
//!   admin (HTTP+JSON) ────┤     then perform poll_output()    ├─▶ timers
//!   timers, WAL completions┘                                  └─▶ state file (persist.rs)
//! ```
//!
//! Modules: [`codec`] (the binary encoding shared by frames and WAL records), [`wire`] (peer
//! frames, see `docs/wire.md`), [`wal`] (one write-ahead log per database), [`pages`] (the
//! paged data file of a database: checksummed pages, a buffer pool, checkpoints; not used by
//! the replica yet), [`config`] (the node's TOML), [`node`] (the driver task and the servers).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod codec;
pub mod config;
pub mod node;
pub mod pages;
pub mod wal;
pub mod wire;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
