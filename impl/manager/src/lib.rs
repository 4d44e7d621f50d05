//! The cluster manager of `CLUSTER_TYPE = EXTERNAL`: etcd holds the primary's lease, grants
//! promotions and stores the primary's published synchronization state (R-QUORUM, R-FAIL-2).
//!
//! [`EtcdManager`] maps each [`ManagerRequest`] of the sans-IO core to etcd operations and
//! answers with [`ManagerEvent`]s; while this replica holds the lease, a keepalive task sends
//! the unsolicited [`ManagerEvent::LeaseRenewed`] and [`ManagerEvent::LeaseLost`].
//!
//! Key layout, under `<prefix>/<ag>/` (prefix `/hadr` by default):
//!
//! | key          | value                                                         | lease      |
//! |--------------|---------------------------------------------------------------|------------|
//! | `leader`     | JSON [`LeaderInfo`]: the primary's replica id, term and lease | the primary's |
//! | `term`       | decimal: the highest term the manager granted                 | none       |
//! | `sync`       | JSON [`SyncStatePublication`]: the newest stored publication  | none       |
//! | `config_seq` | [`publication_seq`] of `sync`: `(epoch, version)`, fixed width | none       |
//!
//! # The lease inequality (R-QUORUM-3, R-ROLE-1)
//!
//! Let `t0` be the caller's monotonic clock read **before** the `LeaseGrant` (or the
//! `LeaseKeepAlive`) request is sent. etcd starts (or restarts) the lease's countdown when its
//! leader processes the request, which happens after `t0` in real time, and it deletes the
//! `leader` key no earlier than `TTL` later on its own clock (a new etcd leader only ever
//! extends leases). The primary is told it may commit until
//!
//! ```text
//! lease_until_ms = t0 + TTL − margin            (on the caller's clock)
//! ```
//!
//! and no other replica can be promoted before the key is gone, i.e. before `t0 + TTL` on
//! etcd's clock. With clocks whose rates differ by at most a fraction `ρ` (both measured against
//! real time), the primary stops by real time `t0 + (TTL − margin)·(1 + ρ)` and the key lives
//! until at least `t0 + TTL·(1 − ρ)`, so the primary stops first as long as
//! `margin ≥ 2·ρ·TTL` (plus the few milliseconds between the core's timer firing and its last
//! commit). The default margin (500 ms for a 5 s TTL, 10 %) covers drift far beyond the
//! 100 ppm of ordinary quartz clocks; it also absorbs the caller's scheduling delay, which only
//! makes `t0` earlier and is therefore safe. Monotonic clocks are assumed (no step changes):
//! the caller's is [`Clock`] (`std::time::Instant`), etcd's lessor uses Go's monotonic time.
//! [`ManagerConfig::validate`] refuses a margin that is not below the TTL or a renewal interval
//! that leaves no time to renew.

#![warn(missing_docs)]

pub mod local;
mod manager;
#[cfg(feature = "testing")]
pub mod testing;

pub use manager::{
    publication_seq, Clock, EtcdManager, LeaderInfo, LeaderObservation, LeaseEvent, ManagerConfig,
    ManagerError, ManagerHandle, RESTORE_AFTER_MS,
};

pub use hadr_core::{ManagerEvent, ManagerRequest, PromotionKind, SyncStatePublication};
