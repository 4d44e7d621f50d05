//! Certification: a corpus replayed on a system under test, with a certificate.

use crate::judge::{diff, judge, Disagreement, Verdict};
use crate::scenario::{Coverage, Scenario};
use crate::sut::Sut;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One scenario's result.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    /// The scenario's file name.
    pub file: String,
    /// Its purpose.
    pub purpose: String,
    /// `pass`, `fail` or `error`.
    pub verdict: &'static str,
    /// For a failure or an error: the step (1-based; 0 is the setup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// For a failure: the environment actions of the shortest scenario found that still fails
    /// (the scenario's prefix up to the failing step, shrunk by dropping steps), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// For a failure: how many steps the corpus scenario took to fail, before shrinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unshrunk_steps: Option<usize>,
    /// For a failure: the rules involved (see [`crate::judge::involved_rules`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<&'static str>,
    /// For a failure: `field: expected → observed`, against the closest allowed observation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
    /// For an error: what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The certificate of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Certificate {
    /// The system under test.
    pub sut: String,
    /// The spec's version (the hadr-model crate).
    pub spec_version: &'static str,
    /// The hash of the spec's sources ([`hadr_model::SPEC_HASH`]).
    pub model_hash: &'static str,
    /// FNV-1a 64 of the corpus' scenario files, in file-name order.
    pub corpus_hash: String,
    /// Scenarios run.
    pub scenarios: usize,
    /// Passed.
    pub passed: usize,
    /// Failed (an observation the model does not allow).
    pub failed: usize,
    /// Could not be run to the end.
    pub errors: usize,
    /// What the corpus exercises in the model.
    pub coverage: Coverage,
    /// What the corpus' configurations could exercise and the corpus does not.
    pub missing: Coverage,
    /// How many action kinds the corpus' configurations can take.
    pub applicable_action_kinds: usize,
    /// `PASS` when every scenario passed.
    pub verdict: &'static str,
    /// Every scenario's result.
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

/// The scenarios of a corpus directory, in file-name order, with their file names, and the
/// corpus hash.
pub fn load_corpus(dir: &Path) -> Result<(Vec<(String, Scenario)>, String), CorpusError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| CorpusError::Read { path, source }
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "index.json")
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(CorpusError::Empty(dir.display().to_string()));
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut scenarios = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let scenario =
            Scenario::from_json(&text).map_err(|source| CorpusError::Scenario { path, source })?;
        scenarios.push((name, scenario));
    }
    Ok((scenarios, format!("{hash:016x}")))
}

/// The rules a failure of `scenario` involves ([`crate::judge::involved_rules`] with the
/// action of the failing step).
fn involved_rules(scenario: &Scenario, d: &Disagreement) -> Vec<&'static str> {
    let action = d.step.checked_sub(1).map(|i| &scenario.steps[i].action);
    crate::judge::involved_rules(d.previous.as_ref(), &d.expected, &d.observed, action)
}

/// Shrinks a failing scenario: drops one step at a time from the failing prefix while the
/// rest, replayed on the model for its expectations, still fails on a fresh system. Returns
/// the shortest scenario found and its disagreement.
pub fn shrink(
    scenario: &Scenario,
    failure: Disagreement,
    make_sut: &mut dyn FnMut() -> Box<dyn Sut>,
) -> (Scenario, Disagreement) {
    let mut best = scenario.clone();
    best.steps.truncate(failure.step);
    let mut failure = failure;
    let Ok(config) = hadr_model::ModelConfig::from_toml_str(&scenario.config) else {
        return (best, failure);
    };
    let model = hadr_model::AgModel::new(config).for_conformance();
    let mut i = 0;
    while i < best.steps.len() {
        let actions: Vec<hadr_model::Action> = best
            .steps
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| s.action)
            .collect();
        let candidate =
            crate::generate::replay(&model, &scenario.config, &scenario.purpose, &actions);
        if let Some(candidate) = candidate {
            if let Verdict::Fail(d) = judge(&candidate, make_sut().as_mut()) {
                best = candidate;
                best.steps.truncate(d.step);
                failure = d;
                continue; // the same index holds the next step now
            }
        }
        i += 1;
    }
    (best, failure)
}

/// Runs every scenario on a fresh system from `make_sut`, shrinking each failure when
/// `shrink_failures`; `on_result` sees each result as it comes (for progress output).
pub fn certify(
    scenarios: &[(String, Scenario)],
    corpus_hash: String,
    make_sut: &mut dyn FnMut() -> Box<dyn Sut>,
    shrink_failures: bool,
    on_result: &mut dyn FnMut(usize, &ScenarioResult),
) -> Certificate {
    let mut results = Vec::new();
    let mut coverage = Coverage::default();
    let mut wanted = Coverage::default();
    let mut configs_seen = std::collections::HashSet::new();
    let mut sut_name = String::new();
    for (i, (file, scenario)) in scenarios.iter().enumerate() {
        coverage.merge(&scenario.covers);
        if configs_seen.insert(scenario.config.clone()) {
            if let Ok(config) = hadr_model::ModelConfig::from_toml_str(&scenario.config) {
                wanted.merge(&crate::generate::wanted(&config));
            }
        }
        let mut sut = make_sut();
        sut_name = sut.name();
        let mut result = ScenarioResult {
            file: file.clone(),
            purpose: scenario.purpose.clone(),
            verdict: "pass",
            step: None,
            actions: Vec::new(),
            unshrunk_steps: None,
            rules: Vec::new(),
            diff: Vec::new(),
            error: None,
        };
        match judge(scenario, sut.as_mut()) {
            Verdict::Pass => {}
            Verdict::Fail(d) => {
                result.verdict = "fail";
                result.unshrunk_steps = Some(d.step);
                let (shrunk, d) = if shrink_failures {
                    shrink(scenario, d, make_sut)
                } else {
                    let mut prefix = scenario.clone();
                    prefix.steps.truncate(d.step);
                    (prefix, d)
                };
                result.step = Some(d.step);
                result.actions = shrunk
                    .steps
                    .iter()
                    .map(|s| format!("{:?}", s.action))
                    .collect();
                if let Some(closest) = d.expected.first() {
                    result.diff = diff(closest, &d.observed);
                    result.rules = involved_rules(&shrunk, &d);
                }
            }
            Verdict::Error { step, error } => {
                result.verdict = "error";
                result.step = Some(step);
                result.error = Some(error.to_string());
            }
        }
        on_result(i, &result);
        results.push(result);
    }
    let count = |v: &str| results.iter().filter(|r| r.verdict == v).count();
    let (passed, failed, errors) = (count("pass"), count("fail"), count("error"));
    Certificate {
        sut: sut_name,
        spec_version: hadr_model_version(),
        model_hash: hadr_model::SPEC_HASH,
        corpus_hash,
        scenarios: results.len(),
        passed,
        failed,
        errors,
        missing: wanted.without(&coverage),
        applicable_action_kinds: wanted.action_kinds.len(),
        coverage,
        verdict: if passed == results.len() {
            "PASS"
        } else {
            "FAIL"
        },
        results,
    }
}

fn hadr_model_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

impl Certificate {
    /// The certificate as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# hadr conformance certificate\n\n| | |\n|---|---|\n| system under test | `{}` |\n| spec version | {} (model hash `{}`) |\n| corpus hash | `{}` |\n| scenarios | {} passed, {} failed, {} errors of {} |\n| action kinds covered | {} of {} ({}) |\n| hazards covered | {} |\n| verdict | **{}** |\n",
            self.sut,
            self.spec_version,
            self.model_hash,
            self.corpus_hash,
            self.passed,
            self.failed,
            self.errors,
            self.scenarios,
            self.applicable_action_kinds - self.missing.action_kinds.len(),
            self.applicable_action_kinds,
            if self.missing.action_kinds.is_empty() {
                "100 %".to_owned()
            } else {
                format!("missing: {}", self.missing.action_kinds.join(", "))
            },
            if self.missing.hazards.is_empty() {
                format!("{} (all)", self.coverage.hazards.join(", "))
            } else {
                let covered = if self.coverage.hazards.is_empty() {
                    "none".to_owned()
                } else {
                    self.coverage.hazards.join(", ")
                };
                format!("{covered}; missing: {}", self.missing.hazards.join(", "))
            },
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
                out += &format!(
                    "\n### {} ({}) — {} at step {}\n\n",
                    r.file,
                    r.purpose,
                    r.verdict,
                    r.step.unwrap_or(0)
                );
                if !r.rules.is_empty() {
                    out += &format!("rules: {}\n\n", r.rules.join(", "));
                }
                if !r.actions.is_empty() {
                    out += &format!(
                        "shortest failing scenario ({} of {} steps): {}\n\n",
                        r.actions.len(),
                        r.unshrunk_steps.unwrap_or(r.actions.len()),
                        r.actions.join(", ")
                    );
                }
                for line in &r.diff {
                    out += &format!("- `{line}`\n");
                }
                if let Some(e) = &r.error {
                    out += &format!("- error: {e}\n");
                }
            }
        }
        out
    }

    /// The certificate as JUnit XML (one test case per scenario).
    pub fn junit(&self) -> String {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"hadr certify {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
            escape(&self.sut),
            self.scenarios,
            self.failed,
            self.errors
        );
        for r in &self.results {
            out += &format!(
                "  <testcase classname=\"{}\" name=\"{}\">",
                escape(&self.sut),
                escape(&format!("{} {}", r.file, r.purpose))
            );
            match r.verdict {
                "fail" => {
                    out += &format!(
                        "<failure message=\"step {}\">{}</failure>",
                        r.step.unwrap_or(0),
                        escape(&r.diff.join("\n"))
                    )
                }
                "error" => {
                    out += &format!(
                        "<error message=\"step {}\">{}</error>",
                        r.step.unwrap_or(0),
                        escape(r.error.as_deref().unwrap_or_default())
                    )
                }
                _ => {}
            }
            out += "</testcase>\n";
        }
        out += "</testsuite>\n";
        out
    }
}
