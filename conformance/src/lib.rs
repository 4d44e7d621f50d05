//! # hadr-conformance: the conformance harness
//!
//! Scenarios come from the spec ([`generate()`]): sequences of *environment* actions (client
//! commits, operator commands, crashes, partitions, …) chosen so that together they take every
//! action kind of the model, reach every hazard, and catch every mutant of the spec, plus
//! seeded random walks. The file format is [`scenario`]'s, documented in
//! `docs/trace-format.md`.
//!
//! A system under test ([`sut`]) replays a scenario and is judged by refinement ([`refine`],
//! [`judge`]): after each step its observation ([`hadr_types::Observation`], what the
//! `sys.dm_hadr_*` views and the clients show) must be that of a spec state consistent with
//! every observation before it. A failure names the rule it breaks ([`diagnose`]); a
//! certificate ([`certify`]) also measures the corpus ([`adequacy`]): transitions tried and
//! mutants caught, the spec's mutants run as systems under test ([`model_sut`]). [`html`] draws
//! each run as a page: a timeline of what the system showed, the failing step highlighted.
//!
//! The other direction, [`validate`]: an implementation's own event log (`hadr-events/1`,
//! `docs/event-log.md`) checked against the model, so that runs of anyone's test suite can be
//! certified.
//!
//! The harness depends on the spec and on the implementation's vocabulary only; the adapters
//! that drive an implementation through a scenario (`reference-sim`, `reference`,
//! `external:CMD`) come on top of this crate, in `hadr-adapters`.

#![warn(missing_docs)]

pub mod adequacy;
pub mod certify;
pub mod diagnose;
pub mod generate;
pub mod html;
pub mod judge;
pub mod lockstep;
pub mod model_sut;
pub mod refine;
pub mod scenario;
pub mod shard;
pub mod sut;
pub mod validate;

pub use generate::{generate, Corpus, GenerateError, GenerateOptions};
pub use scenario::{Coverage, Scenario, ScenarioStep, FORMAT};
