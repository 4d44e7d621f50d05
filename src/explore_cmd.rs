//! `hadr explore`: Stateright's Explorer on the spec, in a browser.

use crate::cli::ExploreArgs;
use crate::format::describe_config;
use crate::{load_config, parse_mutant, CliError, Exit};
use hadr_model::AgModel;
use stateright::Model;
use std::net::TcpListener;

/// Runs `hadr explore` until interrupted.
pub fn run(args: &ExploreArgs) -> Result<Exit, CliError> {
    let mutant = parse_mutant(args.mutant.as_deref())?;
    let config = load_config(args.config.as_deref(), mutant)?;
    let address = format!("{}:{}", args.host, args.port);
    // Stateright's server panics when it cannot bind: find out first, and say so.
    drop(
        TcpListener::bind(&address).map_err(|source| CliError::Listen {
            address: address.clone(),
            source,
        })?,
    );
    println!("hadr explore: {}", describe_config(&config));
    println!("Explorer on http://{address}/ (Ctrl-C to stop)");
    tracing::info!(%address, "explorer listening");
    let model = match mutant {
        Some(m) => AgModel::with_mutant(config, m),
        None => AgModel::new(config),
    }
    .with_each_property();
    model.checker().serve(address);
    Ok(Exit::Passed)
}
