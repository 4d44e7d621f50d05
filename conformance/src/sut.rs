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

impl<S: Sut + ?Sized> Sut for Box<S> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError> {
        (**self).setup(config)
    }

    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        (**self).step(action)
    }

    fn observe(&mut self) -> Result<Observation, SutError> {
        (**self).observe()
    }
}

/// A system under test run with the shortest timeouts a group may have: every replica's
/// SESSION_TIMEOUT at [`hadr_types::config::MIN_SESSION_TIMEOUT_S`] and a 2 s lease (1 s validity,
/// 250 ms renewals, 500 ms drift margin), whatever the scenario's configuration says
/// (`hadr certify --short-timeouts`). The model has no clock (a timeout is one step that may
/// come at any time), so every scenario expects the same observations either way; what
/// changes is how long a system on real time waits for its timeouts.
pub struct ShortTimeouts<S>(pub S);

impl<S> ShortTimeouts<S> {
    /// `config` with the short timeouts.
    pub fn shorten(config: &AgConfig) -> AgConfig {
        let mut config = config.clone();
        for r in &mut config.replicas {
            r.session_timeout_s = hadr_types::config::MIN_SESSION_TIMEOUT_S;
        }
        config.lease.ttl_ms = 2_000;
        config.lease.validity_ms = 1_000;
        config.lease.renew_interval_ms = 250;
        config.lease.clock_drift_margin_ms = 500;
        config
    }
}

impl<S: Sut> Sut for ShortTimeouts<S> {
    fn name(&self) -> String {
        format!("{} (short timeouts)", self.0.name())
    }

    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError> {
        self.0.setup(&Self::shorten(config))
    }

    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        self.0.step(action)
    }

    fn observe(&mut self) -> Result<Observation, SutError> {
        self.0.observe()
    }
}
