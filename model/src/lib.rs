//! # hadr-model: the spec
//!
//! A TLA+-style [Stateright](https://docs.rs/stateright) model of availability-group
//! replication: roles, synchronous and asynchronous commit, the log chain, sessions and their
//! timeouts, the cluster manager's quorum and lease, automatic, planned and forced failover with
//! recovery forks, suspend/resume and revert, and REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT.
//! It is the oracle the reference implementation and every certified implementation are judged
//! against, and it shares no code with them.
//!
//! Where to start reading:
//! 1. [`state`]: what the spec remembers;
//! 2. [`action`]: its atomic steps, environment vs internal;
//! 3. [`spec`]: each step's guard and effect;
//! 4. [`properties`]: what must always hold, and what must be reachable;
//! 5. [`check`](mod@check): running the checker; [`render`]: paths in the rule book's words.
//!
//! `docs/spec.md` explains the model, what it abstracts away, and how to read a counterexample.

/// FNV-1a 64 of the spec's source files, in hex: which exact spec judged a conformance run.
pub const SPEC_HASH: &str = env!("HADR_SPEC_HASH");

pub mod action;
pub mod advice;
pub mod backup;
pub mod check;
pub mod config;
pub mod mutant;
pub mod observe;
pub mod properties;
pub mod render;
pub mod routing;
pub mod spec;
pub mod state;
pub mod symmetry;

pub use action::{Action, ActionClass, ActionKind, Node};
pub use check::{
    check, example_paths, refuting_path, CheckOptions, CheckReport, Pass, Progress, PropertyResult,
    Stop, Strategy, Verdict,
};
pub use config::{Bounds, ModelConfig, ModelConfigError, DEFAULT_CONFIG_TOML, SCRIPT_BOUNDS_TOML};
pub use mutant::{Mutant, UnknownMutant};
pub use properties::{all_specs, not_applicable, PropertyGroup, PropertyKind, PropertySpec};
pub use render::{Step, Trace};
pub use spec::AgModel;
pub use state::State;
