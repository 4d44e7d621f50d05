//! `hadr trace generate`: the conformance corpus, generated from the spec (hadr-conformance).
//! One JSON file per scenario (format `hadr-scenario/1`, docs/trace-format.md) and an
//! `index.json` with the corpus' coverage. Deterministic: the same configuration and seed give
//! the same files, byte for byte.

use crate::cli::TraceGenerateArgs;
use crate::progress::Line;
use crate::Exit;
use hadr_conformance::{generate, Corpus, GenerateOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Why `hadr trace generate` failed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration is not valid.
    #[error("{path}: {source}")]
    Generate {
        /// The configuration's file, or `(embedded default)`.
        path: String,
        /// What is wrong with it.
        source: hadr_conformance::GenerateError,
    },
    /// The output directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The corpus' `index.json`.
#[derive(Debug, Serialize)]
struct Index<'a> {
    format: &'static str,
    seed: u64,
    walks: usize,
    walk_length: usize,
    scenarios: Vec<IndexEntry>,
    coverage: &'a hadr_conformance::Coverage,
    missing: &'a hadr_conformance::Coverage,
    too_broad: &'a [String],
    transitions: &'a hadr_conformance::adequacy::TransitionCoverage,
    mutation: &'a hadr_conformance::adequacy::MutationScore,
}

#[derive(Debug, Serialize)]
struct IndexEntry {
    file: String,
    purpose: String,
    steps: usize,
}

/// The file name of scenario `i`: its number and purpose (`007-H3.json`, `041-walk-3.json`).
fn file_name(i: usize, purpose: &str) -> String {
    let slug: String = purpose
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{i:03}-{slug}.json")
}

/// Writes the corpus into `dir`, replacing the scenario files of an earlier corpus there.
pub fn write_corpus(
    dir: &Path,
    corpus: &Corpus,
    options: &GenerateOptions,
) -> Result<(), TraceError> {
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TraceError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    for entry in std::fs::read_dir(dir).map_err(write_err(dir))? {
        let path = entry.map_err(write_err(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let generated = name.ends_with(".json")
            && (name == "index.json" || name.chars().take(3).all(|c| c.is_ascii_digit()));
        if generated {
            std::fs::remove_file(&path).map_err(write_err(&path))?;
        }
    }
    let mut entries = Vec::new();
    for (i, scenario) in corpus.scenarios.iter().enumerate() {
        let name = file_name(i, &scenario.purpose);
        let path = dir.join(&name);
        std::fs::write(&path, scenario.to_json()).map_err(write_err(&path))?;
        entries.push(IndexEntry {
            file: name,
            purpose: scenario.purpose.clone(),
            steps: scenario.steps.len(),
        });
    }
    let index = Index {
        format: "hadr-corpus/1",
        seed: options.seed,
        walks: options.walks,
        walk_length: options.walk_length,
        scenarios: entries,
        coverage: &corpus.coverage,
        missing: &corpus.missing,
        too_broad: &corpus.too_broad,
        transitions: &corpus.measure.transitions,
        mutation: &corpus.measure.mutation,
    };
    let path = dir.join("index.json");
    let mut text = serde_json::to_string_pretty(&index).expect("the index serializes");
    text.push('\n');
    std::fs::write(&path, text).map_err(write_err(&path))
}

/// The progress line's template on a terminal ([`crate::progress`]).
pub(crate) const PROGRESS: &str = "generating: {msg}";

/// Runs `hadr trace generate`: exit 0 when the corpus covers every applicable action kind and
/// every hazard, 1 when something is missing (the corpus is written anyway).
pub fn run(args: &TraceGenerateArgs) -> Result<Exit, TraceError> {
    let (text, label) = match &args.config {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| TraceError::Read {
                path: path.clone(),
                source,
            })?,
            path.display().to_string(),
        ),
        None => (
            hadr_model::DEFAULT_CONFIG_TOML.to_owned(),
            "(embedded default)".to_owned(),
        ),
    };
    let options = GenerateOptions {
        seed: args.seed,
        walks: args.walks,
        walk_length: args.walk_length,
        threads: 1,
        kills_per_mutant: args.kills_per_mutant,
    };
    // Progress on a terminal only (not with --json): what is being generated.
    let progress = Line::new(PROGRESS, None, !args.json);
    let corpus = generate(&text, &options, &mut |target| {
        if progress.is_drawn() {
            progress.set_message(target.to_owned());
        }
    });
    progress.clear();
    let corpus = corpus.map_err(|source| TraceError::Generate {
        path: label.clone(),
        source,
    })?;
    write_corpus(&args.out, &corpus, &options)?;
    let steps: usize = corpus.scenarios.iter().map(|s| s.steps.len()).sum();
    if args.json {
        let summary = serde_json::json!({
            "out": args.out, "scenarios": corpus.scenarios.len(), "steps": steps,
            "coverage": corpus.coverage, "missing": corpus.missing, "too_broad": corpus.too_broad,
            "transitions": corpus.measure.transitions, "mutation": corpus.measure.mutation,
        });
        println!("{summary}");
    } else {
        println!(
            "{} scenarios ({steps} environment steps) from {label}, seed {}, written to {}",
            corpus.scenarios.len(),
            args.seed,
            args.out.display()
        );
        println!(
            "covered: {} action kinds, hazards {}",
            corpus.coverage.action_kinds.len(),
            corpus.coverage.hazards.join(", ")
        );
        println!(
            "transitions at rest tried: {}",
            corpus.measure.transitions.summary()
        );
        println!("mutation score: {}", corpus.measure.mutation.summary());
        if corpus.missing != hadr_conformance::Coverage::default() {
            println!(
                "NOT covered: action kinds [{}], hazards [{}]",
                corpus.missing.action_kinds.join(", "),
                corpus.missing.hazards.join(", ")
            );
        }
        if !corpus.too_broad.is_empty() {
            println!(
                "given up (frontier too broad): {}",
                corpus.too_broad.join(", ")
            );
        }
    }
    Ok(
        if corpus.missing == hadr_conformance::Coverage::default() && corpus.too_broad.is_empty() {
            Exit::Passed
        } else {
            Exit::Failed
        },
    )
}
