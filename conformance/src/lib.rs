//! # hadr-conformance: the conformance harness
//!
//! Scenarios come from the spec ([`generate()`]): sequences of *environment* actions (client
//! commits, operator commands, crashes, partitions, …) chosen so that together they take every
//! action kind of the model and reach every hazard, plus seeded random walks. After each step a
//! scenario carries the observations the model allows once the system is quiescent: every
//! state the protocol can reach from the previous ones by internal actions alone, seen as the
//! `sys.dm_hadr_*` views and the clients would see it ([`hadr_types::Observation`]). The file
//! format is [`scenario`]'s, documented in `docs/trace-format.md`.
//!
//! The other direction, [`validate`]: an implementation's own event log (`hadr-events/1`,
//! `docs/event-log.md`) checked against the model, so that runs of anyone's test suite can be
//! certified.
//!
//! The harness depends on the spec and on the implementation's vocabulary only; adapters that
//! drive an implementation through a scenario come on top of this crate.

#![warn(missing_docs)]

pub mod certify;
pub mod external;
pub mod fxhash;
pub mod generate;
pub mod judge;
pub mod lockstep;
pub mod scenario;
pub mod sim;
pub mod sut;
pub mod validate;

pub use generate::{generate, Corpus, GenerateError, GenerateOptions};
pub use scenario::{Coverage, Scenario, ScenarioStep, FORMAT};
