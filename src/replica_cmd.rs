//! `hadr replica --config node.toml`: runs one availability replica until SIGINT or SIGTERM.

use crate::cli::ReplicaArgs;
use crate::Exit;
use hadr_node::config::{ConfigError, NodeConfig};
use hadr_node::node::NodeError;

/// Why `hadr replica` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The node configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The replica failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The stopped replica's files could not be read.
    #[error(transparent)]
    Offline(#[from] hadr_node::node::OfflineError),
    /// The runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl ReplicaError {
    /// The exit status.
    pub fn exit(&self) -> Exit {
        match self {
            ReplicaError::Config(_) => Exit::Usage,
            _ => Exit::Failed,
        }
    }
}

/// Runs the replica.
pub fn run(args: &ReplicaArgs) -> Result<Exit, ReplicaError> {
    let config = NodeConfig::load(&args.config)?;
    // Every log line of the process carries the replica's name.
    let span = tracing::info_span!("replica", name = %config.name);
    // One thread for the driver, its storage, the connections and the APIs: a commit crosses
    // no thread boundary inside the process, which keeps latency low on small machines.
    // HADR_MULTI_THREAD=1 uses tokio's multi-threaded scheduler instead.
    let runtime = if std::env::var_os("HADR_MULTI_THREAD").is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .map_err(ReplicaError::Runtime)?;
    runtime.block_on(async {
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        };
        // A spawned task, not the block_on future: the driver yields to the connection
        // writers before each fsync, and spawned tasks are scheduled fairly among themselves.
        use tracing::Instrument as _;
        match tokio::spawn(hadr_node::node::run(config, shutdown).instrument(span)).await {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        }
    })?;
    Ok(Exit::Passed)
}

/// `hadr observe-offline --config node.toml`: the observation of a stopped replica, read from
/// its files without changing them, as one line of JSON.
pub fn observe_offline(args: &ReplicaArgs) -> Result<Exit, ReplicaError> {
    let config = NodeConfig::load(&args.config)?;
    let observation = hadr_node::node::offline_observation(&config)?;
    println!(
        "{}",
        serde_json::to_string(&observation).expect("an observation serializes")
    );
    Ok(Exit::Passed)
}
