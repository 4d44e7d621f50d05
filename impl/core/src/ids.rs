//! Small identifiers of the core: recovery forks ([`Epoch`]), request ids and timer ids.
//!
//! The rule book's ids (`ReplicaId`, `DatabaseId`, `Lsn`, `TxnId`) come from `hadr-types`.

use hadr_types::ReplicaId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A recovery fork: the history a log record belongs to (R-FAIL-4, rule book "Vocabulary").
///
/// A new epoch starts at every failover. The replica that becomes primary numbers it
/// `term = highest term it has seen + 1` and signs it with its own id, so two replicas that
/// are promoted concurrently (a forced failover during a partition under `CLUSTER_TYPE = NONE`)
/// still start two *different* epochs, ordered by `(term, replica)`.
///
/// Within a term, `generation` counts restarts of its primary: a primary of `CLUSTER_TYPE =
/// NONE` comes back PRIMARY after a crash, and records it writes then must not be confused with
/// records of the same LSNs that it had shipped but not hardened before the crash. A new
/// generation is newer than the old one but older than any epoch of a higher term, i.e. than
/// any failover that happened elsewhere meanwhile.
///
/// Every log record carries the epoch it was written in. Two logs that hold a record with the
/// same LSN and the same epoch are identical up to that record (only one primary writes an
/// epoch, and a secondary takes an epoch's records only after the primary checked that its log
/// is a prefix), so comparing epochs finds the fork point.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch {
    /// Increases at every failover.
    pub term: u64,
    /// The replica that started the epoch (its primary).
    pub replica: ReplicaId,
    /// Restarts of that primary within the term.
    pub generation: u32,
}

impl Epoch {
    /// Terms above this are refused as malformed input: no group fails over 2^63 times, and
    /// the bound leaves room for every promotion to start a higher term.
    pub const MAX_TERM: u64 = u64::MAX / 2;

    /// "No epoch yet": a replica that joined and never followed a primary.
    pub const NONE: Epoch = Epoch {
        term: 0,
        replica: ReplicaId(0),
        generation: 0,
    };
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}.{}", self.term, self.replica.0)?;
        if self.generation > 0 {
            write!(f, "/{}", self.generation)?;
        }
        Ok(())
    }
}

/// A client or admin request, numbered by the shell; every request gets exactly one reply
/// carrying it ([`Output::ClientReply`](crate::Output::ClientReply),
/// [`Output::AdminReply`](crate::Output::AdminReply)).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request#{}", self.0)
    }
}

/// One transport connection to a peer, numbered by the shell.
///
/// The shell gives every connection it opens (or accepts) a fresh id, never reused while the
/// process runs, and tags with it everything that comes from that connection: its
/// [`ConnectionEvent`](crate::ConnectionEvent)s and the messages read from it
/// ([`Replica::handle_message`](crate::Replica::handle_message)). The core then applies a late
/// `Closed` or a late message of a superseded socket to nothing, instead of to the session that
/// replaced it; and each [`Output::Send`](crate::Output::Send) names the connection it belongs
/// to, so a message of an old session never goes out on a new one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection#{}", self.0)
    }
}

/// A timer the core asks the shell to run ([`Output::SetTimer`](crate::Output::SetTimer)).
///
/// There is at most one timer per id: setting it again replaces the previous deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerId {
    /// Send pings to every connected peer (R-HEALTH-1).
    Heartbeat,
    /// No message from this peer within SESSION_TIMEOUT closes the session (R-COMMIT-4).
    SessionTimeout(ReplicaId),
    /// The primary's lease from the cluster manager runs out (R-QUORUM-3).
    LeaseExpiry,
    /// A planned failover the primary has not answered (R-FAIL-3).
    FailoverHandshake,
    /// A promotion the cluster manager has not answered.
    PromotionTimeout,
}
