//! The driver's errors: why a node stops ([`NodeError`]), and the node-level answers to a
//! client request or an admin command that never reached the core ([`RequestError`],
//! [`AdminRefusal`]).

use super::event_log::EventLogError;
use super::storage::StorageError;
use crate::config::EndpointError;
use hadr_core::{AdminError, AdminOutcome, ClientReply};
use hadr_types::DatabaseId;

/// Why a node stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed (state file or WAL): the replica cannot keep its promises and stops.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored state and logs do not make a consistent replica.
    #[error("cannot recover replica {name} from {data_dir}: {source}")]
    Recovery {
        /// The instance name.
        name: String,
        /// The data directory.
        data_dir: String,
        /// What the core refused.
        source: hadr_core::RecoveryError,
    },
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {address}: {source}")]
    Bind {
        /// Which API.
        what: &'static str,
        /// The address.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// This replica's ENDPOINT_URL is unusable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The core asked for storage of a database whose WAL is not open: a bug of the node.
    #[error("no write-ahead log is open for {0} (a bug in hadr-node)")]
    NoWal(DatabaseId),
    /// The core asked for a checkpoint of a database whose data file is not open: a bug of
    /// the node.
    #[error("no data file is open for {0} (a bug in hadr-node)")]
    NoDataFile(DatabaseId),
    /// The core refused a storage completion: a bug of the node (ordering contract).
    #[error("storage completion refused by the replica core (a bug in hadr-node): {0}")]
    StorageContract(hadr_core::StorageContractError),
    /// `HADR_MUTANT` names a planted bug this build cannot plant.
    #[error("HADR_MUTANT={name}: {reason}")]
    Mutant {
        /// The value of `HADR_MUTANT`.
        name: String,
        /// Why it cannot be planted.
        reason: String,
    },
    /// The event log could not be opened.
    #[error(transparent)]
    EventLog(#[from] EventLogError),
}

/// A node-level reason a client request was not handed to the replica.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The replica has joined no availability group yet.
    #[error("this replica is not in an availability group yet: CREATE or JOIN one through the admin API")]
    NotInAvailabilityGroup,
    /// No database of the group has that name.
    #[error("no availability database named '{0}' in this group")]
    UnknownDatabaseName(String),
    /// The node is shutting down (for a commit: its outcome is unknown).
    #[error("the replica is shutting down")]
    ShuttingDown,
}

/// What a client request gets back from the driver.
pub type ClientAnswer = Result<ClientReply, RequestError>;

/// A node-level reason an admin command was not handed to the replica.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminRefusal {
    /// The core refused the command.
    #[error("{0}")]
    Core(AdminError),
    /// The configuration needs a cluster manager this node cannot provide.
    #[error("this CLUSTER_TYPE needs a cluster manager: {0}")]
    NeedsClusterManager(String),
    /// The cluster manager (etcd) could not be reached.
    #[error("cannot attach to the cluster manager: {0}")]
    ClusterManager(String),
    /// etcd holds another configuration for this group (CREATE), or not this one (JOIN).
    #[error("{0}")]
    ConfigurationConflict(String),
    /// The group's lease settings cannot be used with etcd.
    #[error("{0}")]
    ClusterManagerConfig(String),
    /// This replica's endpoint cannot be used.
    #[error("{0}")]
    Endpoint(EndpointError),
    /// The node is shutting down.
    #[error("the replica is shutting down")]
    ShuttingDown,
    /// This replica's endpoint address cannot be bound.
    #[error("cannot listen on the replica endpoint {address}: {message}; free the port or change ENDPOINT_URL")]
    EndpointBind {
        /// The address.
        address: String,
        /// The system's error.
        message: String,
    },
    /// This replica's log disk is stalled (fault injection, `/debug/disk-stall`): it cannot
    /// take the primary role.
    #[error("this replica's log disk is stalled (fault injection): it cannot become primary; fail over to another replica, or restart this one")]
    DiskStalled,
    /// The data directory holds the log of an earlier group this replica no longer knows.
    #[error("{} holds log records of an earlier availability group; move the data directory away (or restore its state.json) before CREATE or JOIN", path.display())]
    LeftoverLog {
        /// The WAL file.
        path: std::path::PathBuf,
    },
}

/// What an admin command gets back.
pub type AdminAnswer = Result<AdminOutcome, AdminRefusal>;
