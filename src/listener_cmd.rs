//! `hadr listener`: the availability group listener of `hadr-listener`, on its own runtime
//! until the process is stopped (Ctrl-C).

use hadr_listener::{serve, ListenerConfig, ListenerError};
use std::path::Path;

/// `hadr listener --config FILE`.
pub fn run(path: &Path) -> Result<(), ListenerError> {
    let config = ListenerConfig::load(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ListenerError::Runtime)?;
    runtime.block_on(async {
        tokio::select! {
            result = serve(config) => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
