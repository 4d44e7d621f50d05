//! The command line: `hadr <command> [options]`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// hadr: a model-checked reference of availability-group replication.
#[derive(Debug, Parser)]
#[command(name = "hadr", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Model-check an availability group against the spec (every invariant, every hazard,
    /// every action kind), exhaustively within the configuration's bounds.
    Check(CheckArgs),
    /// Serve Stateright's Explorer on the same model, to walk its states in a browser.
    Explore(ExploreArgs),
}

/// Options of `hadr check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check configuration (TOML with `[bounds]` and `[ag]` tables); default: the embedded
    /// `model/configs/default.toml`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the availability group a T-SQL script creates (CREATE AVAILABILITY GROUP …),
    /// with --bounds or the embedded script bounds, and print advice derived from the checks.
    #[arg(long, value_name = "FILE.sql", conflicts_with = "config")]
    pub tsql: Option<PathBuf>,
    /// Bounds for --tsql: a TOML file with a `[bounds]` table (default:
    /// `model/configs/script-bounds.toml`, embedded).
    #[arg(long, value_name = "FILE", requires = "tsql")]
    pub bounds: Option<PathBuf>,
    /// Print the advice section (always printed with --tsql).
    #[arg(long)]
    pub advice: bool,
    /// Check a deliberately wrong variant of the spec (see --list-mutants); the check stops
    /// once the rule that the mutant breaks is violated.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
    /// List the mutants and the rule each one breaks, then exit.
    #[arg(long)]
    pub list_mutants: bool,
    /// Search depth-first (the default: fast, little memory).
    #[arg(long, conflicts_with = "bfs")]
    pub dfs: bool,
    /// Search breadth-first (shortest paths with one thread; much more memory).
    #[arg(long)]
    pub bfs: bool,
    /// Checker threads (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Keep the first counterexample found instead of searching for the shortest one.
    #[arg(long)]
    pub no_shorten: bool,
    /// Also find the shortest path to each discovered hazard and print it.
    #[arg(long)]
    pub examples: bool,
    /// Do not merge states that differ only by interchangeable replicas.
    #[arg(long)]
    pub no_symmetry: bool,
    /// Stop after this many seconds (the report then says the search is incomplete).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// No progress line on standard error.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `hadr explore`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Check configuration, as for `hadr check`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Explore a mutant of the spec.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
    /// Address to listen on (loopback by default: the Explorer has no authentication).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}
