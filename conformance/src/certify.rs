//! Certification: a corpus replayed on a system under test, with a certificate.

use crate::adequacy::{MutationScore, TransitionCoverage};
use crate::diagnose::diagnose;
use crate::judge::{diff, judge, judge_recorded, Disagreement, Verdict};
use crate::scenario::{Coverage, Scenario};
pub use crate::shard::{merge, MergeError, Shard, ShardSpec, ShardSpecError};
use crate::sut::Sut;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One scenario's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// The scenario's file name.
    pub file: String,
    /// Its purpose.
    pub purpose: String,
    /// `pass`, `fail`, `error`, or `too_broad` (the judge could not track the model's states:
    /// neither passed nor failed).
    pub verdict: String,
    /// For a failure: the failing step of the scenario in `actions` (the shrunk one, when it was
    /// shrunk; 0 is right after setup). For an error: the step of the corpus scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// For a failure: the environment actions of the shortest scenario found that still fails
    /// (the corpus scenario's prefix up to its failing step, shrunk by dropping steps), in
    /// order, as the protocol's JSON (`docs/adapter-protocol.md`). `--save-failures` writes it
    /// as a scenario file, which `--scenario FILE` replays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<serde_json::Value>,
    /// For a failure: the step at which the corpus scenario itself failed, before shrinking
    /// (the number of its steps that ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unshrunk_steps: Option<usize>,
    /// For a failure: the rules involved, the one the bug breaks first ([`crate::diagnose`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// For a failure: the spec mutants that behave like the system on it, as `name (breaks
    /// RULE)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub like: Vec<String>,
    /// For a failure: `field: expected → observed`, against the closest observation the spec
    /// allows after what the system showed before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
    /// For a failure: the same against the other allowed observations nearly as close (at
    /// most [`ALTERNATIVES`]), each telling of another way the system went wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Vec<String>>,
    /// For an error: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a failure: the shrunk scenario, replayable (`--save-failures`).
    #[serde(skip)]
    pub failing_scenario: Option<Scenario>,
    /// What the system showed at each step of the run judged (for a failure, the shrunk run
    /// that failed last), for the pictures of `--html` ([`crate::html`]). Not part of the
    /// certificate: absent from one read back from JSON.
    #[serde(skip)]
    pub timeline: Option<Timeline>,
}

/// A run of a scenario as the judge saw it: the environment's actions and what the system
/// showed after setup and after each of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// The scenario's configuration (the TOML text of [`Scenario::config`]).
    pub config: String,
    /// The environment actions of the run: for a failure the shrunk scenario's (the ones of
    /// [`ScenarioResult::actions`]); for an error, those up to the step that went wrong.
    pub actions: Vec<hadr_model::Action>,
    /// What the system showed after setup (first) and after each action that ran, in order:
    /// for a failure the failing observation last; for an error or a run too broad to judge,
    /// the ones before it.
    pub observations: Vec<hadr_types::Observation>,
}

/// Why the JUnit XML of a certificate could not be written ([`Certificate::junit`]).
pub use quick_junit::SerializeError as JunitError;

/// How many other nearly-closest allowed observations a failure is also compared with.
pub const ALTERNATIVES: usize = 2;

/// The certificate of a run (or of one shard of it, [`Shard`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// The system under test.
    pub sut: String,
    /// The spec's version (the hadr-model crate).
    pub spec_version: String,
    /// The hash of the spec's sources ([`hadr_model::SPEC_HASH`]).
    pub model_hash: String,
    /// FNV-1a 64 of the corpus' scenario files, in file-name order.
    pub corpus_hash: String,
    /// Scenarios run.
    pub scenarios: usize,
    /// Passed.
    pub passed: usize,
    /// Failed (an observation the model does not allow after the ones before it).
    pub failed: usize,
    /// Could not be run to the end.
    pub errors: usize,
    /// Too broad to judge (neither passed nor failed).
    pub too_broad: usize,
    /// What the corpus exercises in the model.
    pub coverage: Coverage,
    /// What the corpus' configurations could exercise and the corpus does not.
    pub missing: Coverage,
    /// How many action kinds the corpus' configurations can take.
    pub applicable_action_kinds: usize,
    /// How many of the transitions the spec can take at rest the corpus tries.
    pub transitions: TransitionCoverage,
    /// How many of the spec's mutants the corpus catches.
    pub mutation: MutationScore,
    /// `PASS` when every scenario passed.
    pub verdict: String,
    /// For one shard of a run (`--shard K/N`): which, and where its results go in the whole
    /// run. Absent from a whole run's certificate, and from the one [`merge`] makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Every scenario's result (a shard's: its scenarios', in corpus order).
    pub results: Vec<ScenarioResult>,
}

/// Why a corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not a scenario.
    #[error("{path}: {source}")]
    Scenario {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: crate::scenario::ScenarioError,
    },
    /// No scenario in the directory.
    #[error(
        "no scenario file (NNN-*.json) in {0}: generate one with `hadr trace generate --out {0}`"
    )]
    Empty(String),
}

/// FNV-1a 64, continued over `bytes`.
pub(crate) fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The corpus of the source tree this crate was built from (`conformance/corpus/`), for tests
/// and tools that run inside the repository.
pub fn shipped_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The scenario of `corpus` named `name`: its file name without the number (`Heal.json`).
pub fn find_scenario(corpus: &[(String, Scenario)], name: &str) -> Option<Scenario> {
    corpus
        .iter()
        .find(|(f, _)| f.split_once('-').is_some_and(|(_, rest)| rest == name))
        .map(|(_, s)| s.clone())
}

/// The scenarios of a corpus directory, in file-name order, with their file names, and the
/// corpus hash.
pub fn load_corpus(dir: &Path) -> Result<(Vec<(String, Scenario)>, String), CorpusError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(read_error(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "index.json")
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(CorpusError::Empty(dir.display().to_string()));
    }
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    load_scenarios(&paths)
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> CorpusError {
    let path = path.to_owned();
    move |source| CorpusError::Read { path, source }
}

/// Scenario files, in the order given, named by their file names, and their hash (as a corpus
/// of just these files would have).
pub fn load_scenarios(paths: &[PathBuf]) -> Result<(Vec<(String, Scenario)>, String), CorpusError> {
    let mut hash = FNV_OFFSET;
    let mut scenarios = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(read_error(path))?;
        hash = fnv1a(hash, text.as_bytes());
        let scenario = Scenario::from_json(&text).map_err(|source| CorpusError::Scenario {
            path: path.clone(),
            source,
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        scenarios.push((name, scenario));
    }
    Ok((scenarios, format!("{hash:016x}")))
}

/// Shrinks a failing scenario: drops one step at a time from the failing prefix while the
/// rest still fails on a fresh system. Returns the shortest scenario found and its
/// disagreement.
pub fn shrink(
    scenario: &Scenario,
    failure: Disagreement,
    make_sut: &MakeSut,
) -> (Scenario, Disagreement) {
    shrink_in(scenario, failure, make_sut, &Slots::default())
}

/// Systems the run may start beyond one per job: the jobs that found no scenario left give
/// theirs back, and a shrinking job borrows them to replay several candidates at once.
#[derive(Default)]
struct Slots {
    free: std::sync::Mutex<usize>,
}

impl Slots {
    /// Takes up to `wanted` free slots; returns how many.
    fn take(&self, wanted: usize) -> usize {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let taken = wanted.min(*free);
        *free -= taken;
        taken
    }

    /// Gives `n` slots back.
    fn give(&self, n: usize) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += n;
    }
}

/// [`shrink`], replaying as many candidates at once as `slots` lends (and one): a batch
/// tries dropping each of the next steps, and the first of them (in step order) that still
/// fails is taken, so the result is the serial one's whatever the batches were.
fn shrink_in(
    scenario: &Scenario,
    failure: Disagreement,
    make_sut: &MakeSut,
    slots: &Slots,
) -> (Scenario, Disagreement) {
    let mut best = scenario.clone();
    best.steps.truncate(failure.step);
    let mut failure = failure;
    let mut i = 0;
    while i < best.steps.len() {
        let extra = slots.take(best.steps.len() - i - 1);
        let batch: Vec<usize> = (i..best.steps.len()).take(1 + extra).collect();
        let candidates: Vec<Scenario> = batch
            .iter()
            .map(|&drop| {
                let actions: Vec<hadr_model::Action> = best
                    .steps
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != drop)
                    .map(|(_, s)| s.action)
                    .collect();
                crate::generate::scenario_of(&scenario.config, &scenario.purpose, &actions)
            })
            .collect();
        let verdicts = judge_each(&candidates, make_sut);
        slots.give(extra);
        let first_failing = verdicts
            .into_iter()
            .zip(batch.iter().zip(candidates))
            .find_map(|(verdict, (&dropped, candidate))| match verdict {
                Verdict::Fail(d) => Some((dropped, candidate, d)),
                _ => None,
            });
        match first_failing {
            Some((dropped, candidate, d)) => {
                best = candidate;
                best.steps.truncate(d.step);
                failure = d;
                i = dropped; // the same index holds the next step now
            }
            None => i += batch.len(),
        }
    }
    (best, failure)
}

/// Judges each scenario on a fresh system, all at once.
fn judge_each(scenarios: &[Scenario], make_sut: &MakeSut) -> Vec<Verdict> {
    if let [one] = scenarios {
        return vec![judge(one, make_sut(one).as_mut())];
    }
    std::thread::scope(|scope| {
        let running: Vec<_> = scenarios
            .iter()
            .map(|s| scope.spawn(move || judge(s, make_sut(s).as_mut())))
            .collect();
        running
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The result of one scenario, shrinking a failure when `shrink_failures`.
fn run_one(
    file: &str,
    scenario: &Scenario,
    make_sut: &MakeSut,
    shrink_failures: bool,
    slots: &Slots,
) -> (String, ScenarioResult) {
    let mut sut = make_sut(scenario);
    let name = sut.name();
    let mut result = ScenarioResult::passed(file, &scenario.purpose);
    let (verdict, observations) = judge_recorded(scenario, sut.as_mut());
    // The actions that ran (up to the step that went wrong), with what the system showed.
    let ran = |step: usize, observations| {
        Some(Timeline {
            config: scenario.config.clone(),
            actions: scenario.steps.iter().take(step).map(|s| s.action).collect(),
            observations,
        })
    };
    match verdict {
        Verdict::Pass => result.timeline = ran(scenario.steps.len(), observations),
        Verdict::Fail(d) => {
            drop(sut);
            result.verdict = "fail".to_owned();
            result.unshrunk_steps = Some(d.step);
            let (shrunk, d) = if shrink_failures {
                shrink_in(scenario, d, make_sut, slots)
            } else {
                let mut prefix = scenario.clone();
                prefix.steps.truncate(d.step);
                (prefix, d)
            };
            describe_failure(&mut result, shrunk, &d);
        }
        Verdict::Error { step, error } => {
            result.verdict = "error".to_owned();
            result.step = Some(step);
            result.error = Some(error.to_string());
            result.timeline = ran(step, observations);
        }
        Verdict::TooBroad { step, cap } => {
            result.verdict = "too_broad".to_owned();
            result.step = Some(step);
            result.timeline = ran(step, observations);
            result.error = Some(format!(
                "after step {step} the model may be in more than {cap} states: too broad to judge"
            ));
        }
    }
    (name, result)
}

/// Fills a failure's report: the shrunk scenario, the rules, the mutants it behaves like and
/// the differences from the closest allowed observations.
fn describe_failure(result: &mut ScenarioResult, shrunk: Scenario, d: &Disagreement) {
    result.step = Some(d.step);
    result.actions = shrunk
        .steps
        .iter()
        .map(|s| serde_json::to_value(s.action).unwrap_or_default())
        .collect();
    let actions: Vec<hadr_model::Action> = shrunk.steps.iter().map(|s| s.action).collect();
    if let Ok(config) = crate::judge::judging_model(&shrunk) {
        let diagnosis = diagnose(&config, &actions, &d.observations(), &d.expected);
        result.rules = diagnosis.rules.iter().map(|r| (*r).to_owned()).collect();
        result.like = diagnosis
            .like
            .iter()
            .map(|m| format!("{m} (breaks {})", m.breaks()))
            .collect();
    }
    let near = crate::diagnose::nearly_closest(&d.expected, &d.observed);
    if let Some((closest, others)) = near.split_first() {
        result.diff = diff(closest, &d.observed);
        result.alternatives = others
            .iter()
            .take(ALTERNATIVES)
            .map(|e| diff(e, &d.observed))
            .collect();
    }
    result.timeline = Some(Timeline {
        config: shrunk.config.clone(),
        actions,
        observations: d.observations(),
    });
    let mut saved = shrunk;
    saved.purpose = format!("failure of {} ({})", result.file, result.purpose);
    result.failing_scenario = Some(saved);
}

/// Makes a fresh system under test for a scenario (given the scenario, which only an
/// in-process model needs). With more than one job it is called from several threads at once,
/// and each system it makes must be isolated from the others (ports, directories, processes).
pub type MakeSut<'a> = dyn Fn(&Scenario) -> Box<dyn Sut> + Sync + 'a;

/// How [`certify`] runs a corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Shrink each failure to the shortest still-failing scenario (replays on fresh systems).
    pub shrink_failures: bool,
    /// How many scenarios run at once, each on its own system (at least 1). The certificate
    /// is the same whatever it is: results are reported in corpus order.
    pub jobs: usize,
    /// Run only this shard of the corpus (`--shard K/N`).
    pub shard: Option<ShardSpec>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            shrink_failures: true,
            jobs: 1,
            shard: None,
        }
    }
}

/// Runs every scenario (of the shard, with `options.shard`) on a fresh system from
/// `make_sut`, `options.jobs` at a time, shrinking each failure when
/// `options.shrink_failures`; `on_result` sees each result as it comes (for progress output),
/// with its position in `scenarios`, in the order they finish. The certificate lists the
/// results in corpus order and measures the whole corpus ([`crate::adequacy`]), shard or not.
pub fn certify(
    scenarios: &[(String, Scenario)],
    corpus_hash: String,
    make_sut: &MakeSut,
    options: RunOptions,
    on_result: &mut dyn FnMut(usize, &ScenarioResult),
) -> Certificate {
    let positions: Vec<usize> = match options.shard {
        Some(shard) => shard.positions(scenarios),
        None => (0..scenarios.len()).collect(),
    };
    let ran = run_all(scenarios, &positions, make_sut, options, on_result);
    let sut_name = ran.last().map(|(name, _)| name.clone()).unwrap_or_default();
    let results = ran.into_iter().map(|(_, r)| r).collect();
    let measure = crate::adequacy::measure(scenarios);
    let mut certificate = certificate(sut_name, corpus_hash, measure, results);
    certificate.shard = options.shard.map(|spec| Shard {
        index: spec.index,
        count: spec.count,
        of_scenarios: scenarios.len(),
        positions,
    });
    certificate
}

/// Runs the scenarios at `positions` of `scenarios`, `options.jobs` at a time: each worker
/// takes the next scenario not yet started and runs it (and shrinks its failure) to the end.
/// Returns each one's system name and result, in the order of `positions`.
fn run_all(
    scenarios: &[(String, Scenario)],
    positions: &[usize],
    make_sut: &MakeSut,
    options: RunOptions,
    on_result: &mut dyn FnMut(usize, &ScenarioResult),
) -> Vec<(String, ScenarioResult)> {
    let jobs = options.jobs.clamp(1, positions.len().max(1));
    // The longest first (by a guess at the time it waits), so that no long scenario starts
    // last and leaves the other jobs idle at the end.
    let mut queue: Vec<usize> = (0..positions.len()).collect();
    queue.sort_by_key(|&slot| std::cmp::Reverse(expected_waits(&scenarios[positions[slot]].1)));
    let next = AtomicUsize::new(0);
    // A job with no scenario left lends its system to the shrinking of another's failure.
    let spare = Slots::default();
    let mut done: Vec<Option<(String, ScenarioResult)>> = vec![None; positions.len()];
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::channel();
        for _ in 0..jobs {
            let send = send.clone();
            let (next, queue, spare) = (&next, &queue, &spare);
            scope.spawn(move || {
                while let Some(&slot) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let i = positions[slot];
                    let (file, scenario) = &scenarios[i];
                    let ran = run_one(file, scenario, make_sut, options.shrink_failures, spare);
                    if send.send((slot, ran)).is_err() {
                        break;
                    }
                }
                spare.give(1);
            });
        }
        drop(send);
        // Ends when every worker has stopped (a worker's panic is raised again by the scope).
        for (slot, ran) in receive {
            on_result(positions[slot], &ran.1);
            done[slot] = Some(ran);
        }
    });
    done.into_iter().flatten().collect()
}

/// A guess at how long a system on real time takes to run `scenario`, in steps: a fault
/// waits out the timeouts it starts (about five quiet steps' worth at the shortest timeouts).
fn expected_waits(scenario: &Scenario) -> usize {
    let faults = scenario
        .steps
        .iter()
        .filter(|s| s.action.kind().class() == hadr_model::ActionClass::Fault)
        .count();
    scenario.steps.len() + 4 * faults
}

/// The certificate of `results` on a corpus measured as `measure`.
pub fn certificate(
    sut: String,
    corpus_hash: String,
    measure: crate::adequacy::Measure,
    results: Vec<ScenarioResult>,
) -> Certificate {
    let mut certificate = Certificate {
        sut,
        spec_version: hadr_model_version().to_owned(),
        model_hash: hadr_model::SPEC_HASH.to_owned(),
        corpus_hash,
        scenarios: 0,
        passed: 0,
        failed: 0,
        errors: 0,
        too_broad: 0,
        missing: measure.wanted.without(&measure.coverage),
        applicable_action_kinds: measure.wanted.action_kinds.len(),
        coverage: measure.coverage,
        transitions: measure.transitions,
        mutation: measure.mutation,
        verdict: String::new(),
        shard: None,
        results,
    };
    certificate.recount();
    certificate
}

impl ScenarioResult {
    /// A scenario `file` (of `purpose`) that passed; a failure fills in the rest.
    pub(crate) fn passed(file: &str, purpose: &str) -> Self {
        ScenarioResult {
            file: file.to_owned(),
            purpose: purpose.to_owned(),
            verdict: "pass".to_owned(),
            step: None,
            actions: Vec::new(),
            unshrunk_steps: None,
            rules: Vec::new(),
            like: Vec::new(),
            diff: Vec::new(),
            alternatives: Vec::new(),
            error: None,
            failing_scenario: None,
            timeline: None,
        }
    }

    /// This result's section of the certificate's failures (Markdown).
    fn markdown(&self) -> String {
        let mut out = format!(
            "\n### {} ({}) — {} at step {}\n\n",
            self.file,
            self.purpose,
            self.verdict,
            self.step.unwrap_or(0)
        );
        if !self.rules.is_empty() {
            out += &format!("rules: {}\n\n", self.rules.join(", "));
        }
        if !self.like.is_empty() {
            out += &format!("behaves like spec mutant {}\n\n", self.like.join(", "));
        }
        if self.verdict == "fail" {
            let steps: Vec<String> = self.actions.iter().map(|a| format!("`{a}`")).collect();
            let steps = if steps.is_empty() {
                "none: the group as set up".to_owned()
            } else {
                steps.join(", ")
            };
            let n = self.actions.len();
            let ran = self.unshrunk_steps.unwrap_or(n);
            out += &if n < ran {
                format!("failing scenario, shrunk to {n} of the {ran} steps the corpus scenario ran (the step above is numbered in the shrunk one): {steps}\n\n")
            } else {
                format!("failing scenario, the {ran} steps the corpus scenario ran: {steps}\n\n")
            };
        }
        for line in &self.diff {
            out += &format!("- `{line}`\n");
        }
        for (i, alternative) in self.alternatives.iter().enumerate() {
            out += &format!(
                "\nor, against the next closest allowed observation ({}):\n\n",
                i + 2
            );
            for line in alternative {
                out += &format!("- `{line}`\n");
            }
        }
        if let Some(e) = &self.error {
            out += &format!("- error: {e}\n");
        }
        out
    }
}

fn hadr_model_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

impl Certificate {
    /// Counts the results by verdict; `PASS` when every one passed.
    pub(crate) fn recount(&mut self) {
        let count = |v: &str| self.results.iter().filter(|r| r.verdict == v).count();
        (self.passed, self.failed, self.errors, self.too_broad) = (
            count("pass"),
            count("fail"),
            count("error"),
            count("too_broad"),
        );
        self.scenarios = self.results.len();
        self.verdict = if self.passed == self.results.len() {
            "PASS"
        } else {
            "FAIL"
        }
        .to_owned();
    }

    /// The results of the scenarios that failed, in corpus order.
    pub fn failures(&self) -> impl Iterator<Item = &ScenarioResult> {
        self.results.iter().filter(|r| r.verdict == "fail")
    }

    /// The certificate as Markdown.
    pub fn markdown(&self) -> String {
        let hazards = if self.missing.hazards.is_empty() {
            format!("{} (all)", self.coverage.hazards.join(", "))
        } else {
            let covered = if self.coverage.hazards.is_empty() {
                "none".to_owned()
            } else {
                self.coverage.hazards.join(", ")
            };
            format!("{covered}; missing: {}", self.missing.hazards.join(", "))
        };
        let kinds = if self.missing.action_kinds.is_empty() {
            "100 %".to_owned()
        } else {
            format!("missing: {}", self.missing.action_kinds.join(", "))
        };
        let mut scenarios = format!(
            "{} passed, {} failed, {} errors",
            self.passed, self.failed, self.errors
        );
        if self.too_broad > 0 {
            scenarios += &format!(", {} too broad to judge", self.too_broad);
        }
        let mut out = format!(
            "# hadr conformance certificate\n\n| | |\n|---|---|\n| system under test | `{}` |\n| spec version | {} (model hash `{}`) |\n| corpus hash | `{}` |\n| scenarios | {scenarios} of {} |\n| action kinds covered | {} of {} ({kinds}) |\n| hazards covered | {hazards} |\n| transitions at rest tried | {} |\n| mutation score | {} |\n| verdict | **{}** |\n",
            self.sut,
            self.spec_version,
            self.model_hash,
            self.corpus_hash,
            self.scenarios,
            self.applicable_action_kinds - self.missing.action_kinds.len(),
            self.applicable_action_kinds,
            self.transitions.summary(),
            self.mutation.summary(),
            self.verdict
        );
        let bad: Vec<&ScenarioResult> = self
            .results
            .iter()
            .filter(|r| r.verdict != "pass")
            .collect();
        if !bad.is_empty() {
            out += "\n## Failures\n";
            for r in bad {
                out += &r.markdown();
            }
        }
        out
    }

    /// The certificate as JUnit XML: one test suite named `hadr certify SUT`, one test case per
    /// scenario (class name the system under test, name the file and purpose); a failure is a
    /// `<failure>` with the step and the rules as its message and the diff as its text, an error
    /// or a scenario too broad to judge an `<error>`.
    pub fn junit(&self) -> Result<String, JunitError> {
        let mut suite = TestSuite::new(format!("hadr certify {}", self.sut));
        for r in &self.results {
            let step = r.step.unwrap_or(0);
            let status = match r.verdict.as_str() {
                "fail" => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(format!("step {step}: {}", r.rules.join(", ")));
                    if !r.diff.is_empty() {
                        status.set_description(r.diff.join("\n"));
                    }
                    status
                }
                "error" | "too_broad" => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                    status.set_message(format!("step {step}"));
                    if let Some(error) = &r.error {
                        status.set_description(error.as_str());
                    }
                    status
                }
                _ => TestCaseStatus::success(),
            };
            let mut case = TestCase::new(format!("{} {}", r.file, r.purpose), status);
            case.set_classname(self.sut.as_str());
            suite.add_test_case(case);
        }
        let mut report = Report::new("hadr certify");
        report.add_test_suite(suite);
        report.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shrinking with spare systems replays several candidates at once and finds what the
    /// serial shrink finds, on the failures of the spec's mutants over the corpus' scenarios
    /// with the longest failing prefixes; the spare systems are all given back.
    #[test]
    fn shrinking_in_batches_finds_the_serial_result() {
        let (corpus, _) = load_corpus(&shipped_corpus_dir()).unwrap();
        let mut shrunk = 0;
        for &mutant in hadr_model::Mutant::ALL {
            let make = move |s: &Scenario| {
                Box::new(crate::model_sut::ModelSut::adversarial(Some(mutant), s)) as Box<dyn Sut>
            };
            for (file, scenario) in &corpus {
                let Verdict::Fail(d) = judge(scenario, make(scenario).as_mut()) else {
                    continue;
                };
                if d.step < 4 {
                    continue; // little to shrink
                }
                let unshrunk = d.step;
                let serial = shrink(scenario, d.clone(), &make);
                let spare = Slots::default();
                spare.give(3);
                let batched = shrink_in(scenario, d, &make, &spare);
                assert_eq!(batched.0, serial.0, "{mutant} on {file}");
                assert_eq!(batched.1.step, serial.1.step);
                assert_eq!(spare.take(usize::MAX), 3);
                shrunk += usize::from(serial.0.steps.len() + 1 < unshrunk);
            }
        }
        assert!(
            shrunk >= 3,
            "only {shrunk} failures shrunk by two steps or more"
        );
    }

    fn result(file: &str, verdict: &str) -> ScenarioResult {
        ScenarioResult {
            verdict: verdict.to_owned(),
            ..ScenarioResult::passed(file, "H1")
        }
    }

    /// The JUnit XML as CI tools read it (snapshot): a suite named after the system, a test
    /// case per scenario, a failure with its step, rules and diff, an error (and a scenario
    /// too broad to judge) with its step and what went wrong, every text escaped; and it reads
    /// back with the same counts.
    #[test]
    fn the_junit_report_of_a_certificate() {
        let mut fail = result("001-H2.json", "fail");
        fail.step = Some(3);
        fail.rules = vec!["R-COMMIT-2".to_owned(), "R-COMMIT-6".to_owned()];
        fail.diff = vec![
            "transactions[0].outcome: \"pending\" → \"acknowledged\"".to_owned(),
            "replicas[1].role: <none> → SECONDARY & more".to_owned(),
        ];
        let mut error = result("002-H3.json", "error");
        error.step = Some(0);
        error.error = Some("the driver `x <y> & 'z'` is not running".to_owned());
        let mut too_broad = result("003-H4.json", "too_broad");
        too_broad.step = Some(5);
        too_broad.error = Some("after step 5 the model may be in more than 10 states".to_owned());
        let results = vec![result("000-H1.json", "pass"), fail, error, too_broad];
        let certificate = certificate(
            "external:sh -c \"./driver\"".to_owned(),
            "0123456789abcdef".to_owned(),
            crate::adequacy::Measure::default(),
            results,
        );
        let xml = certificate.junit().unwrap();
        insta::assert_snapshot!(xml);

        let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(
            (report.tests, report.failures, report.errors),
            (4, 1, 2),
            "{xml}"
        );
        let suite = &report.test_suites[0];
        assert_eq!(
            suite.name.as_str(),
            "hadr certify external:sh -c \"./driver\""
        );
        assert_eq!(suite.test_cases[1].name.as_str(), "001-H2.json H1");
    }
}
