//! `hadr`: see `hadr --help`, README.md and docs/cli.md.

use clap::Parser;
use hadr::cli::{Cli, Command};
use hadr::{check_cmd, explore_cmd};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Check(args) => check_cmd::run(args),
        Command::Explore(args) => explore_cmd::run(args),
    };
    let exit = result.unwrap_or_else(|e| {
        eprintln!("hadr: {e}");
        e.exit()
    });
    std::process::ExitCode::from(exit as u8)
}
