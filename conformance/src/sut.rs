//! The system under test, behind one trait: the harness drives it through a scenario's
//! environment actions and observes it after each.

use hadr_model::Action;
use hadr_types::{AgConfig, Observation};

/// Why a system under test could not carry out a request.
#[derive(Debug, thiserror::Error)]
pub enum SutError {
    /// The adapter cannot express this environment action for this implementation.
    #[error("the adapter cannot perform {0}")]
    Unsupported(String),
    /// The implementation failed (crashed, hung, answered nonsense).
    #[error("{0}")]
    Failed(String),
}

/// An implementation the harness can certify.
pub trait Sut {
    /// A short name for reports (`reference-sim`, `reference`, `external:…`).
    fn name(&self) -> String;
    /// Creates the availability group of `config` from scratch (every replica up, the first
    /// one primary) and runs it to quiescence.
    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError>;
    /// Performs one environment action, then runs to quiescence: every internal step the
    /// implementation takes on its own, timeouts included (by waiting).
    fn step(&mut self, action: &Action) -> Result<(), SutError>;
    /// What the group looks like now: the `sys.dm_hadr_*` views of every replica and every
    /// client's outcome so far.
    fn observe(&mut self) -> Result<Observation, SutError>;
}
