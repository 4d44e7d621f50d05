//! Certification split across machines: `hadr certify --shard K/N` runs the K-th of N shards
//! of a corpus, and [`merge`] (`hadr certify merge`) puts the shards' certificates together
//! into the one a single run prints: the same hashes, counts, coverage and verdict, the
//! results in corpus order.
//!
//! A scenario's shard depends on its file name only (FNV-1a 64 of the name, modulo N), so it
//! stays in its shard when other files are added to or removed from the corpus. Every shard
//! loads the whole corpus and measures all of it (coverage, transitions, mutation score take
//! seconds); it runs only its own scenarios and records where their results go.

use crate::certify::{fnv1a, Certificate, FNV_OFFSET};
use crate::Scenario;
use serde::{Deserialize, Serialize};

/// Which shard to run: the `index`-th (from 1) of `count`, as `--shard K/N` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    /// K, from 1 to `count`.
    pub index: usize,
    /// N, at least 1.
    pub count: usize,
}

/// Why `--shard` could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardSpecError {
    /// Not `K/N` with two whole numbers.
    #[error("{0:?} is not K/N (the K-th of N shards, e.g. 2/3)")]
    Syntax(String),
    /// K outside 1..=N, or N zero.
    #[error("shard {index}/{count} does not exist: K runs from 1 to N, and N is at least 1")]
    OutOfRange {
        /// K.
        index: usize,
        /// N.
        count: usize,
    },
}

impl std::str::FromStr for ShardSpec {
    type Err = ShardSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardSpecError::Syntax(text.to_owned());
        let (index, count) = text.split_once('/').ok_or_else(syntax)?;
        let index: usize = index.trim().parse().map_err(|_| syntax())?;
        let count: usize = count.trim().parse().map_err(|_| syntax())?;
        if count == 0 || index == 0 || index > count {
            return Err(ShardSpecError::OutOfRange { index, count });
        }
        Ok(ShardSpec { index, count })
    }
}

impl ShardSpec {
    /// Whether the scenario file `file` belongs to this shard.
    pub fn holds(&self, file: &str) -> bool {
        let shard = fnv1a(FNV_OFFSET, file.as_bytes()) % self.count as u64;
        shard == (self.index - 1) as u64
    }

    /// The positions in `scenarios` of this shard's scenarios, in order.
    pub fn positions(&self, scenarios: &[(String, Scenario)]) -> Vec<usize> {
        scenarios
            .iter()
            .enumerate()
            .filter(|(_, (file, _))| self.holds(file))
            .map(|(i, _)| i)
            .collect()
    }
}

/// What a shard's certificate says of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// K, from 1.
    pub index: usize,
    /// N.
    pub count: usize,
    /// The scenarios of the whole run (every shard's).
    pub of_scenarios: usize,
    /// For each of this shard's results, in order, its position in the whole run.
    pub positions: Vec<usize>,
}

/// Why shard certificates could not be merged.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no certificate to merge: give the certificates (--json) of every shard")]
    Nothing,
    /// A certificate of a whole run.
    #[error("{0} is not a shard's certificate (it has no \"shard\"): merge the --json certificates of `hadr certify --shard K/N` runs")]
    NotAShard(String),
    /// Shards of splits into different numbers of shards.
    #[error("{file} is shard {index} of {count}, but {first} is of {expected}: merge the shards of one split")]
    ShardCount {
        /// The certificate.
        file: String,
        /// Its K.
        index: usize,
        /// Its N.
        count: usize,
        /// The first certificate.
        first: String,
        /// The first certificate's N.
        expected: usize,
    },
    /// The same shard twice.
    #[error("shard {index}/{count} is given twice ({first} and {second})")]
    Duplicate {
        /// K.
        index: usize,
        /// N.
        count: usize,
        /// The first certificate of it.
        first: String,
        /// The second.
        second: String,
    },
    /// A shard missing.
    #[error("shard {index}/{count} is missing: a merged certificate needs every shard")]
    Missing {
        /// K.
        index: usize,
        /// N.
        count: usize,
    },
    /// Certificates of different runs (system, spec, corpus, or its measure).
    #[error("{file} differs from {first} in {field}: these shards are not of one run (the same system, spec, corpus and options)")]
    Differs {
        /// The certificate.
        file: String,
        /// The first certificate.
        first: String,
        /// The field that differs.
        field: &'static str,
    },
    /// A shard whose results do not fit the run it says it is of.
    #[error("{file}: its results do not fit a run of {of_scenarios} scenarios ({problem})")]
    Inconsistent {
        /// The certificate.
        file: String,
        /// The run's scenarios, as it says.
        of_scenarios: usize,
        /// What does not fit.
        problem: &'static str,
    },
}

/// Merges the certificates of every shard of one run (each named, for messages, by its file)
/// into the certificate of the whole run, as a single run would have printed it.
pub fn merge(shards: Vec<(String, Certificate)>) -> Result<Certificate, MergeError> {
    let mut shards = shards.into_iter();
    let (first_name, first) = shards.next().ok_or(MergeError::Nothing)?;
    let first_shard = first
        .shard
        .clone()
        .ok_or_else(|| MergeError::NotAShard(first_name.clone()))?;
    let count = first_shard.count;
    let total = first_shard.of_scenarios;
    let mut seen: Vec<Option<String>> = vec![None; count];
    let mut slots: Vec<Option<crate::certify::ScenarioResult>> = vec![None; total];
    let mut merged = first.clone();
    for (name, certificate) in std::iter::once((first_name.clone(), first)).chain(shards) {
        let shard = certificate
            .shard
            .clone()
            .ok_or_else(|| MergeError::NotAShard(name.clone()))?;
        if shard.count != count || shard.index == 0 || shard.index > count {
            return Err(MergeError::ShardCount {
                file: name,
                index: shard.index,
                count: shard.count,
                first: first_name,
                expected: count,
            });
        }
        if let Some(field) = differing_field(&merged, &certificate) {
            return Err(MergeError::Differs {
                file: name,
                first: first_name,
                field,
            });
        }
        if let Some(earlier) = seen[shard.index - 1].replace(name.clone()) {
            return Err(MergeError::Duplicate {
                index: shard.index,
                count,
                first: earlier,
                second: name,
            });
        }
        if merged.results.is_empty() && !certificate.results.is_empty() {
            merged.sut = certificate.sut.clone();
        }
        place(&name, &shard, total, certificate.results, &mut slots)?;
    }
    if let Some(k) = seen.iter().position(Option::is_none) {
        return Err(MergeError::Missing {
            index: k + 1,
            count,
        });
    }
    if slots.iter().any(Option::is_none) {
        return Err(MergeError::Inconsistent {
            file: first_name,
            of_scenarios: total,
            problem: "the shards together leave some scenarios without a result",
        });
    }
    merged.results = slots.into_iter().flatten().collect();
    merged.shard = None;
    merged.recount();
    Ok(merged)
}

/// Puts a shard's results at their positions in the whole run.
fn place(
    name: &str,
    shard: &Shard,
    total: usize,
    results: Vec<crate::certify::ScenarioResult>,
    slots: &mut [Option<crate::certify::ScenarioResult>],
) -> Result<(), MergeError> {
    let inconsistent = |problem| MergeError::Inconsistent {
        file: name.to_owned(),
        of_scenarios: total,
        problem,
    };
    if shard.of_scenarios != total {
        return Err(inconsistent("the shards are of runs of different sizes"));
    }
    if shard.positions.len() != results.len() {
        return Err(inconsistent("it has not one result per position"));
    }
    for (&at, result) in shard.positions.iter().zip(results) {
        let slot = slots
            .get_mut(at)
            .ok_or_else(|| inconsistent("a position beyond the run"))?;
        if slot.replace(result).is_some() {
            return Err(inconsistent("a position some shard already filled"));
        }
    }
    Ok(())
}

/// The first field in which two certificates of one run may not differ, and do.
fn differing_field(a: &Certificate, b: &Certificate) -> Option<&'static str> {
    [
        // A shard that ran nothing never made a system to take its name from.
        (
            "sut",
            a.sut == b.sut || a.results.is_empty() || b.results.is_empty(),
        ),
        ("spec_version", a.spec_version == b.spec_version),
        ("model_hash", a.model_hash == b.model_hash),
        ("corpus_hash", a.corpus_hash == b.corpus_hash),
        ("coverage", a.coverage == b.coverage),
        ("missing", a.missing == b.missing),
        (
            "applicable_action_kinds",
            a.applicable_action_kinds == b.applicable_action_kinds,
        ),
        ("transitions", a.transitions == b.transitions),
        ("mutation", a.mutation == b.mutation),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(field, _)| field)
}
