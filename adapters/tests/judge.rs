//! The judge is sound: it fails what the spec does not allow *given what the system showed
//! before* (issue 15), shown on `reference-sim` with what it shows altered. The spec and its
//! mutants as systems: hadr-conformance's `tests/judge.rs`.

use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::certify::{certify, load_corpus, RunOptions};
use hadr_conformance::generate::scenario_of;
use hadr_conformance::judge::{judge, judge_within, Verdict};
use hadr_conformance::refine::{Refinement, MAX_STATES};
use hadr_conformance::sut::{Sut, SutError};
use hadr_conformance::Scenario;
use hadr_model::{Action, AgModel, ModelConfig};
use hadr_types::{AgConfig, Lsn, Observation, Role, SuspendReason, SyncState};
use std::path::Path;

fn corpus() -> (Vec<(String, Scenario)>, String) {
    load_corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpus")).unwrap()
}

/// A system that reports the real observation except at one step, where it shows another one
/// the scenario's documented `expected` list holds: an observation the spec allows after that
/// step for *some* history, but not after the one the system showed.
struct ForgetsHistory {
    inner: ReferenceSim,
    step: usize,
    at: usize,
    shown: Observation,
}

impl Sut for ForgetsHistory {
    fn name(&self) -> String {
        "forgets-history".to_owned()
    }
    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError> {
        self.inner.setup(config)
    }
    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        self.step += 1;
        self.inner.step(action)
    }
    fn observe(&mut self) -> Result<Observation, SutError> {
        if self.step == self.at {
            return Ok(self.shown.clone());
        }
        self.inner.observe()
    }
}

/// The judge of per-step lists was unsound: an observation the list of its step holds passed,
/// though nothing the system had shown before could lead to it. For every step of the committed
/// corpus where such an observation exists, a system that shows it fails, at that step.
#[test]
fn an_observation_allowed_for_another_history_fails() {
    let (scenarios, _) = corpus();
    let mut tried = 0;
    for (file, scenario) in &scenarios {
        let config = ModelConfig::from_toml_str(&scenario.config).unwrap();
        let mut spec = Refinement::new(AgModel::new(config).for_conformance(), MAX_STATES).unwrap();
        let mut sim = ReferenceSim::new();
        sim.setup(&spec.model().config().ag).unwrap();
        assert!(spec.observe(&sim.observe().unwrap()));
        for (i, step) in scenario.steps.iter().enumerate() {
            sim.step(&step.action).unwrap();
            spec.step(&step.action).unwrap();
            let real = sim.observe().unwrap();
            let allowed = spec.allowed();
            let other = step.expected.iter().find(|o| !allowed.contains(o));
            if let Some(other) = other {
                tried += 1;
                let mut liar = ForgetsHistory {
                    inner: ReferenceSim::new(),
                    step: 0,
                    at: i + 1,
                    shown: other.clone(),
                };
                match judge(scenario, &mut liar) {
                    Verdict::Fail(d) => assert_eq!(d.step, i + 1, "{file}"),
                    v => panic!("{file} step {}: {v:?}", i + 1),
                }
            }
            assert!(spec.observe(&real), "{file} step {}", i + 1);
        }
    }
    assert!(
        tried >= 10,
        "only {tried} steps have an observation of another history"
    );
}

/// The bug certified PASS before (issue 15): every forced failover handled as lossy (the other
/// secondaries suspended) and the new primary dropping its last record. After a commit that B
/// acknowledged hardening (B SYNCHRONIZED at LSN 1), a forced failover onto B shows B PRIMARY at
/// LSN 0 with the commit still acknowledged.
struct LossyForcedFailover(ReferenceSim, bool);

impl Sut for LossyForcedFailover {
    fn name(&self) -> String {
        "lossy-forced-failover".to_owned()
    }
    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError> {
        self.0.setup(config)
    }
    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        self.1 |= matches!(action, Action::ForcedFailover { .. });
        self.0.step(action)
    }
    fn observe(&mut self) -> Result<Observation, SutError> {
        let mut o = self.0.observe()?;
        if self.1 {
            for r in o.replicas.iter_mut().filter(|r| r.up) {
                for d in &mut r.databases {
                    if r.role == Some(Role::Primary) {
                        let lost = Lsn(d.end_of_log_lsn.0.saturating_sub(1));
                        d.end_of_log_lsn = lost;
                        d.last_hardened_lsn = lost;
                        d.last_redone_lsn = lost;
                    } else {
                        d.suspended = Some(SuspendReason::Partner);
                        d.synchronization_state = Some(SyncState::NotSynchronizing);
                        d.is_failover_ready = false;
                    }
                }
            }
        }
        Ok(o)
    }
}

#[test]
fn a_forced_failover_onto_a_synchronized_target_that_loses_a_commit_fails() {
    let scenario = scenario_of(
        hadr_model::DEFAULT_CONFIG_TOML,
        "issue 15",
        &[
            Action::ClientCommit { db: 0 },
            Action::ForcedFailover { target: 1 },
        ],
    );
    assert!(matches!(
        judge(&scenario, &mut ReferenceSim::new()),
        Verdict::Pass
    ));
    let scenarios = vec![("issue-15.json".to_owned(), scenario)];
    let certificate = certify(
        &scenarios,
        String::new(),
        &|_| Box::new(LossyForcedFailover(ReferenceSim::new(), false)) as Box<dyn Sut>,
        RunOptions {
            shrink_failures: false,
            ..RunOptions::default()
        },
        &mut |_, _| {},
    );
    assert_eq!(certificate.verdict, "FAIL", "{}", certificate.markdown());
    let r = &certificate.results[0];
    assert_eq!(r.step, Some(2), "{r:?}");
    for rule in ["R-COMMIT-6", "R-FAIL-5", "R-FAIL-4"] {
        assert!(r.rules.iter().any(|r| r == rule), "{rule} not named: {r:?}");
    }
    assert!(
        r.diff
            .iter()
            .any(|l| l.starts_with("replicas[1].databases[0].end_of_log_lsn: 1 → 0")),
        "{:?}",
        r.diff
    );
}

/// A scenario whose states grow past the judge's cap is neither passed nor failed.
#[test]
fn a_scenario_too_broad_to_judge_is_never_a_pass() {
    let (scenarios, _) = corpus();
    let (_, scenario) = scenarios.iter().find(|(_, s)| s.steps.len() >= 2).unwrap();
    match judge_within(scenario, &mut ReferenceSim::new(), 1) {
        Verdict::TooBroad { cap: 1, .. } => {}
        v => panic!("{v:?}"),
    }
}
