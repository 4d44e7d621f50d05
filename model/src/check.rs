//! Running the checker: exhaustive search (DFS by default, with symmetry reduction), progress
//! reports, and a [`CheckReport`] with every property's verdict and rendered paths.
//!
//! ```text
//!  check() ──spawn──▶ Stateright DFS/BFS (threads) ──poll every 100 ms──▶ on_progress(Progress)
//!     │                                                   │
//!     │◀──────────────── join, discoveries ───────────────┘
//!     ├─ verdicts of every property ◀── Probes (latched by the combined properties)
//!     └─ a violation? ──▶ BFS focused on the violated properties ──▶ shortest counterexamples
//! ```

use crate::config::ModelConfig;
use crate::mutant::Mutant;
use crate::properties::{
    checked_specs, not_applicable, Probes, PropertyGroup, PropertyKind, PropertySpec, INVARIANTS,
};
use crate::render::Trace;
use crate::spec::AgModel;
use crate::symmetry::representative;
use crate::ActionKind;
use serde::Serialize;
use stateright::{Checker, HasDiscoveries, Model};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Search order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Depth-first: fast, little memory; counterexamples are then shortened by a BFS pass.
    Dfs,
    /// Breadth-first: shortest paths (with one thread), much more memory.
    Bfs,
}

/// How to run a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Search order.
    pub strategy: Strategy,
    /// Checker threads.
    pub threads: usize,
    /// Merge states that differ only by interchangeable replicas.
    pub symmetry: bool,
    /// When to stop before every state is searched.
    pub stop: Stop,
    /// Re-run breadth-first to find the shortest counterexample of each violated property.
    pub shorten: bool,
    /// Find the shortest path to each discovered hazard (a breadth-first run).
    pub examples: bool,
    /// Give up after this long (the report then says the search is incomplete).
    pub timeout: Option<Duration>,
    /// Time between progress reports.
    pub progress_interval: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            strategy: Strategy::Dfs,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            symmetry: true,
            stop: Stop::Never,
            shorten: true,
            examples: false,
            timeout: None,
            progress_interval: Duration::from_secs(1),
        }
    }
}

/// When a check may stop before searching every state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Search every reachable state.
    Never,
    /// Stop at the first violated `always` property.
    FirstViolation,
    /// Stop once an `always` property of one of these rules is violated; other violations met
    /// on the way are reported too. (A mutant's run stops at the rule it breaks.)
    RuleViolated(Vec<&'static str>),
}

/// A progress report while the checker runs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Progress {
    /// Which pass: the search itself, or shortening a counterexample.
    pub pass: Pass,
    /// States generated, counting repeats.
    pub states: usize,
    /// Distinct states (up to symmetry).
    pub unique_states: usize,
    /// Distinct states generated but not yet evaluated.
    pub queue: u64,
    /// Deepest path so far.
    pub max_depth: usize,
    /// Time since the pass started.
    pub elapsed: Duration,
}

impl Progress {
    /// Generated states per second.
    pub fn states_per_sec(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A pass of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// The exhaustive search.
    Search,
    /// A run focused on some properties, for their paths.
    Focus,
}

/// A property's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// An `always` property held in every state searched.
    Holds,
    /// An `always` property failed: see the counterexample.
    Violated,
    /// A `sometimes` property was shown by some state.
    Discovered,
    /// No state searched showed a `sometimes` property.
    Undiscovered,
}

/// One property's result.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyResult {
    /// The property's full name.
    pub name: &'static str,
    /// The rule or hazard id.
    pub rule: &'static str,
    /// What it asserts.
    pub title: &'static str,
    /// always | sometimes | eventually.
    pub kind: PropertyKind,
    /// rule | hazard | coverage.
    pub group: PropertyGroup,
    /// The verdict.
    pub verdict: Verdict,
    /// For a violated property: the steps that break it.
    pub counterexample: Option<Trace>,
    /// For a discovered hazard: the steps that reach it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<Trace>,
}

/// An action kind that cannot happen in the configuration, and why.
#[derive(Clone, Debug, Serialize)]
pub struct NotApplicable {
    /// The action kind.
    pub action: &'static str,
    /// Why it cannot happen.
    pub reason: &'static str,
}

/// The outcome of a check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The availability group's name.
    pub ag: String,
    /// The planted bug, if any.
    pub mutant: Option<&'static str>,
    /// Search order.
    pub strategy: Strategy,
    /// Checker threads.
    pub threads: usize,
    /// Whether symmetry reduction was on.
    pub symmetry: bool,
    /// Distinct states (up to symmetry).
    pub unique_states: usize,
    /// States generated, counting repeats.
    pub states: usize,
    /// Deepest path searched.
    pub max_depth: usize,
    /// Time of the search (not of the shortening pass).
    pub elapsed_ms: u128,
    /// Generated states per second.
    pub states_per_sec: u64,
    /// Whether every reachable state was searched.
    pub complete: bool,
    /// Every property checked.
    pub properties: Vec<PropertyResult>,
    /// Action kinds that cannot happen in this configuration.
    pub not_applicable: Vec<NotApplicable>,
    /// What the verdicts mean for this configuration, line by line.
    pub advice: Vec<crate::advice::Advice>,
}

impl CheckReport {
    /// Whether an `always` property failed.
    pub fn has_violation(&self) -> bool {
        self.properties
            .iter()
            .any(|p| p.verdict == Verdict::Violated)
    }

    /// Applicable action kinds that no reachable state enables (dead actions).
    pub fn dead_actions(&self) -> Vec<&PropertyResult> {
        self.properties
            .iter()
            .filter(|p| p.group == PropertyGroup::Coverage && p.verdict == Verdict::Undiscovered)
            .collect()
    }

    /// The check passed: the search completed, every `always` property holds and every
    /// applicable action kind is taken somewhere.
    pub fn passed(&self) -> bool {
        self.complete && !self.has_violation() && self.dead_actions().is_empty()
    }
}

/// Checks a configuration (optionally with a planted bug), reporting progress as it goes.
pub fn check(
    config: &ModelConfig,
    mutant: Option<Mutant>,
    options: &CheckOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> CheckReport {
    let base = match mutant {
        Some(m) => AgModel::with_mutant(config.clone(), m),
        None => AgModel::new(config.clone()),
    };
    let mut model = base.clone();
    let report_rules = match &options.stop {
        Stop::RuleViolated(rules) => Some(rules.as_slice()),
        Stop::Never | Stop::FirstViolation => None,
    };
    let probes = Arc::new(Probes::new(&model, report_rules));
    model.probes = Some(Arc::clone(&probes));
    let specs: Vec<(usize, &'static PropertySpec)> = checked_specs(&model).collect();

    // The exhaustive checks of the spec's pure functions (R-BACKUP-5, R-READ-3) come first: a
    // mutant of one of them is refuted there, without the search.
    let functions = function_checks(mutant);
    let refuted_by_function = match &options.stop {
        Stop::RuleViolated(rules) => functions
            .iter()
            .any(|f| f.verdict == Verdict::Violated && rules.contains(&f.rule)),
        Stop::FirstViolation => functions.iter().any(|f| f.verdict == Verdict::Violated),
        Stop::Never => false,
    };

    let started = Instant::now();
    let run = if refuted_by_function {
        Run {
            discoveries: Vec::new(),
            unique_states: 0,
            states: 0,
            max_depth: 0,
            complete: false,
        }
    } else {
        run_checker(
            model,
            &probes,
            options,
            options.strategy,
            Pass::Search,
            on_progress,
        )
    };
    let elapsed = started.elapsed();

    // The path to the first violation the search met, for the invariants it breaks.
    let first_violation = run
        .discoveries
        .iter()
        .find(|(name, _)| *name == INVARIANTS)
        .map(|(_, actions)| actions.clone());
    let first_state = first_violation.as_ref().map(|actions| {
        actions
            .iter()
            .fold(base.initial_state(), |s, a| base.apply(&s, a))
    });
    let mut properties: Vec<PropertyResult> = specs
        .iter()
        .map(|&(i, spec)| {
            let verdict = match (spec.kind, probes.latched(i)) {
                (PropertyKind::Sometimes, true) => Verdict::Discovered,
                (PropertyKind::Sometimes, false) => Verdict::Undiscovered,
                (_, true) => Verdict::Violated,
                (_, false) => Verdict::Holds,
            };
            let breaks_first = first_state
                .as_ref()
                .is_some_and(|s| !(spec.condition)(&base, s));
            PropertyResult {
                name: spec.name,
                rule: spec.rule,
                title: spec.title,
                kind: spec.kind,
                group: spec.group,
                verdict,
                counterexample: match (
                    &first_violation,
                    verdict == Verdict::Violated && breaks_first,
                ) {
                    (Some(actions), true) => {
                        Some(Trace::render(&base, &base.initial_state(), actions))
                    }
                    _ => None,
                },
                example: None,
            }
        })
        .collect();

    // Each violated invariant's own (shortest, when asked) counterexample.
    let violated: Vec<usize> = specs
        .iter()
        .zip(&properties)
        .filter(|(_, p)| p.verdict == Verdict::Violated)
        .map(|((i, _), _)| *i)
        .collect();
    if !violated.is_empty()
        && (options.shorten
            || properties
                .iter()
                .any(|p| p.verdict == Verdict::Violated && p.counterexample.is_none()))
    {
        let strategy = if options.shorten {
            Strategy::Bfs
        } else {
            Strategy::Dfs
        };
        for (name, actions) in focused_paths(&base, &violated, options, strategy, on_progress) {
            if let Some(p) = properties.iter_mut().find(|p| p.name == name) {
                // A breadth-first path is the shortest, and found the same way every run.
                let better = p.counterexample.as_ref().is_none_or(|t| {
                    actions.len() < t.steps.len()
                        || (strategy == Strategy::Bfs && actions.len() == t.steps.len())
                });
                if better {
                    p.counterexample = Some(Trace::render(&base, &base.initial_state(), &actions));
                }
            }
        }
    }

    // The shortest path to each discovered hazard, when asked.
    if options.examples {
        let hazards: Vec<usize> = specs
            .iter()
            .zip(&properties)
            .filter(|((_, spec), p)| {
                spec.group == PropertyGroup::Hazard && p.verdict == Verdict::Discovered
            })
            .map(|((i, _), _)| *i)
            .collect();
        if !hazards.is_empty() {
            for (name, actions) in
                focused_paths(&base, &hazards, options, Strategy::Bfs, on_progress)
            {
                if let Some(p) = properties.iter_mut().find(|p| p.name == name) {
                    p.example = Some(Trace::render(&base, &base.initial_state(), &actions));
                }
            }
        }
    }

    properties.extend(functions);

    let not_applicable = ActionKind::ALL
        .iter()
        .filter_map(|&k| {
            not_applicable(k, config).map(|reason| NotApplicable {
                action: k.name(),
                reason,
            })
        })
        .collect();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut report = CheckReport {
        ag: config.ag.name.clone(),
        mutant: mutant.map(Mutant::name),
        strategy: options.strategy,
        threads: options.threads,
        symmetry: options.symmetry,
        unique_states: run.unique_states,
        states: run.states,
        max_depth: run.max_depth,
        elapsed_ms: elapsed.as_millis(),
        states_per_sec: (run.states as f64 / secs) as u64,
        complete: run.complete,
        properties,
        not_applicable,
        advice: Vec::new(),
    };
    if report.complete {
        report.advice = crate::advice::advise(config, &report);
    }
    report
}

/// R-BACKUP-5 and R-READ-3 as functions of the group's state, checked over every combination
/// of up to five (preference) and four (routing) replicas, on two threads.
fn function_checks(mutant: Option<Mutant>) -> Vec<PropertyResult> {
    let tie = if mutant == Some(Mutant::BackupTieBreakPrefersAllEquals) {
        crate::backup::mutant_tie_break
    } else {
        crate::backup::tie_break
    };
    let available = if mutant == Some(Mutant::RouteToUnreadableSecondary) {
        crate::routing::mutant_available_for_reads
    } else {
        crate::routing::available_for_reads
    };
    let (preference, routing) = std::thread::scope(|scope| {
        let preference = scope.spawn(|| crate::backup::check_preference(5, tie));
        let routing = crate::routing::check_routing(4, available);
        (
            preference
                .join()
                .expect("the preference check does not panic"),
            routing,
        )
    });
    let result =
        |name, rule, title, counterexample: Option<String>, broken: Option<&str>| PropertyResult {
            name,
            rule,
            title,
            kind: PropertyKind::Always,
            group: PropertyGroup::Rule,
            verdict: if counterexample.is_some() {
                Verdict::Violated
            } else {
                Verdict::Holds
            },
            counterexample: counterexample.map(|c| Trace {
                initial: format!("{} — {c}", broken.unwrap_or("")),
                steps: Vec::new(),
            }),
            example: None,
        };
    vec![
        result(
            "R-BACKUP-5 exactly one preferred backup replica, never priority 0 (every combination of up to 5 replicas)",
            "R-BACKUP-5",
            "exactly one preferred backup replica, never priority 0 (every combination of up to 5 replicas)",
            preference.counterexample,
            preference.broken,
        ),
        result(
            "R-READ-3 the listener routes every connection to a replica that takes it (every view of up to 4 replicas)",
            "R-READ-3",
            "the listener routes every connection to a replica that takes it (every view of up to 4 replicas)",
            routing.counterexample,
            routing.broken,
        ),
    ]
}

/// The shortest path (breadth-first) from the initial state to every hazard and to every action
/// kind the configuration can take, as the actions taken, keyed by the property's rule id (`H1`)
/// or action kind name (`ShipLog`). Unreachable targets are missing from the answer. The
/// conformance harness turns these paths into scenarios. With `quiescent_environment`, only
/// paths on which the environment acts at rest ([`AgModel::with_quiescent_environment`]), as a
/// system under test run to quiescence after each step meets them.
pub fn example_paths(
    config: &ModelConfig,
    quiescent_environment: bool,
    options: &CheckOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Vec<(String, Vec<crate::Action>)> {
    let mut base = AgModel::new(config.clone());
    if quiescent_environment {
        base = base.with_quiescent_environment();
    }
    let targets: Vec<(usize, &'static PropertySpec)> = checked_specs(&base)
        .filter(|(_, spec)| matches!(spec.group, PropertyGroup::Hazard | PropertyGroup::Coverage))
        .collect();
    let indices: Vec<usize> = targets.iter().map(|(i, _)| *i).collect();
    focused_paths(&base, &indices, options, Strategy::Bfs, on_progress)
        .into_iter()
        .filter_map(|(name, actions)| {
            let spec = targets.iter().find(|(_, s)| s.name == name)?.1;
            let key = match spec.action {
                Some(kind) => kind.name().to_owned(),
                None => spec.rule.to_owned(),
            };
            Some((key, actions))
        })
        .collect()
}

/// The shortest path (breadth-first) on which the spec with `mutant` planted breaks an
/// invariant: what a conformance scenario must do to catch an implementation with the same
/// bug. `None` when the search meets no violation (a mutant refuted by an exhaustive check of
/// a pure function, or by a reachability property, has no such path).
///
/// With `quiescent_environment`, only paths on which the environment acts in quiescent states
/// ([`AgModel::with_quiescent_environment`]): a system run to quiescence after each step
/// shows the bug on the projected scenario whenever its own choices follow the path.
pub fn refuting_path(
    config: &ModelConfig,
    mutant: Mutant,
    quiescent_environment: bool,
    options: &CheckOptions,
) -> Option<Vec<crate::Action>> {
    // A mutant of a feature the configuration cannot exercise cannot break anything here.
    if crate::mutant::feature_of(mutant).is_some_and(|k| not_applicable(k, config).is_some()) {
        return None;
    }
    let mut model = AgModel::with_mutant(config.clone(), mutant);
    if quiescent_environment {
        model = model.with_quiescent_environment();
    }
    let rules = vec![mutant.rule()];
    let probes = Arc::new(Probes::new(&model, Some(rules.as_slice())));
    model.probes = Some(Arc::clone(&probes));
    let search = CheckOptions {
        strategy: Strategy::Bfs,
        threads: 1,
        stop: Stop::RuleViolated(rules),
        ..options.clone()
    };
    run_checker(
        model,
        &probes,
        &search,
        Strategy::Bfs,
        Pass::Search,
        &mut |_| {},
    )
    .discoveries
    .into_iter()
    .find(|(name, _)| *name == INVARIANTS)
    .map(|(_, actions)| actions)
}

fn focused_paths(
    base: &AgModel,
    targets: &[usize],
    options: &CheckOptions,
    strategy: Strategy,
    on_progress: &mut dyn FnMut(&Progress),
) -> Vec<(&'static str, Vec<crate::Action>)> {
    let mut model = base.clone().refocus(Some(targets.into()));
    let probes = Arc::new(Probes::new(&model, None));
    model.probes = Some(Arc::clone(&probes));
    let focused = CheckOptions {
        threads: if strategy == Strategy::Bfs {
            1
        } else {
            options.threads
        },
        stop: Stop::Never,
        ..options.clone()
    };
    run_checker(model, &probes, &focused, strategy, Pass::Focus, on_progress).discoveries
}

struct Run {
    discoveries: Vec<(&'static str, Vec<crate::Action>)>,
    unique_states: usize,
    states: usize,
    max_depth: usize,
    complete: bool,
}

fn run_checker(
    model: AgModel,
    probes: &Probes,
    options: &CheckOptions,
    strategy: Strategy,
    pass: Pass,
    on_progress: &mut dyn FnMut(&Progress),
) -> Run {
    let names: BTreeSet<&'static str> = model.properties().iter().map(|p| p.name).collect();
    let mut builder = model.checker().threads(options.threads.max(1));
    if options.symmetry {
        builder = builder.symmetry_fn(representative);
    }
    builder = builder.finish_when(match pass {
        Pass::Focus => HasDiscoveries::AllOf(names),
        Pass::Search if options.stop == Stop::Never => HasDiscoveries::All,
        Pass::Search => HasDiscoveries::AnyFailures,
    });
    if let Some(t) = options.timeout {
        builder = builder.timeout(t);
    }
    let started = Instant::now();
    let checker: Box<dyn Checker<AgModel> + Send + Sync> = match strategy {
        Strategy::Dfs => Box::new(builder.spawn_dfs()),
        Strategy::Bfs => Box::new(builder.spawn_bfs()),
    };
    let mut last_report = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        if last_report.elapsed() >= options.progress_interval {
            last_report = Instant::now();
            on_progress(&progress(&*checker, probes, pass, started));
        }
    }
    let checker = join(checker);
    let final_progress = progress(&*checker, probes, pass, started);
    on_progress(&final_progress);
    let timed_out = options.timeout.is_some_and(|t| started.elapsed() >= t);
    let discoveries: Vec<_> = checker
        .discoveries()
        .into_iter()
        .map(|(name, path)| (name, path.into_actions()))
        .collect();
    let stopped_early =
        pass == Pass::Search && options.stop != Stop::Never && !discoveries.is_empty();
    Run {
        complete: !timed_out && !stopped_early && final_progress.queue == 0,
        discoveries,
        unique_states: checker.unique_state_count(),
        states: checker.state_count(),
        max_depth: checker.max_depth(),
    }
}

fn join(
    checker: Box<dyn Checker<AgModel> + Send + Sync>,
) -> Box<dyn Checker<AgModel> + Send + Sync> {
    let mut checker = checker;
    for handle in checker.handles() {
        handle.join().expect("a checker thread panicked");
    }
    checker
}

fn progress(
    checker: &dyn Checker<AgModel>,
    probes: &Probes,
    pass: Pass,
    started: Instant,
) -> Progress {
    let unique_states = checker.unique_state_count();
    let evaluated = probes.evaluated.load(Ordering::Relaxed);
    Progress {
        pass,
        states: checker.state_count(),
        unique_states,
        queue: (unique_states as u64).saturating_sub(evaluated),
        max_depth: checker.max_depth(),
        elapsed: started.elapsed(),
    }
}
