//! `hadr certify`: replay the conformance corpus on a system under test and print its
//! certificate (hadr-conformance).

use crate::cli::{CertifyArgs, CertifyCommand, FaultsArg, MergeArgs, ReportArgs};
use crate::progress::Line;
use crate::Exit;
use hadr_adapters::external::{External, Offer};
use hadr_adapters::reference::{NetworkFaults, Reference};
use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::certify::{
    certify, load_corpus, load_scenarios, merge, Certificate, CorpusError, JunitError, MergeError,
    RunOptions,
};
use hadr_conformance::generate::{random_walks, GenerateError};
use hadr_conformance::model_sut::ModelSut;
use hadr_conformance::sut::{ShortTimeouts, Sut, SutError};
use hadr_conformance::Scenario;
use std::path::{Path, PathBuf};

/// Why `hadr certify` could not run.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    /// The corpus could not be read.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// An unknown or not yet available system under test.
    #[error("unknown system under test {0:?}: available: reference-sim, reference, spec, external:CMD (CMD: a driver speaking docs/adapter-protocol.md)")]
    UnknownSut(String),
    /// `--mutant` with a system under test other than the reference or the spec.
    #[error(
        "--mutant plants a bug in the reference implementation (--sut reference-sim, --sut reference) or in the spec (--sut spec); an external system carries its own bugs"
    )]
    MutantOnOtherSut,
    /// An unknown spec mutant for `--sut spec`.
    #[error(transparent)]
    UnknownSpecMutant(#[from] hadr_model::UnknownMutant),
    /// `--seed` on a corpus of several configurations.
    #[error("--seed generates walks of the corpus' configuration, but {0} has another one than the first scenario: use a corpus of one configuration")]
    MixedConfigurations(String),
    /// The walks of `--seed` could not be generated.
    #[error("--seed: {0}")]
    Walks(#[from] GenerateError),
    /// The path of this program (to start replicas with) is unknown.
    #[error("cannot find this hadr binary to start replicas with: {0}")]
    OwnPath(std::io::Error),
    /// `--mutant` on a build without the `mutants` feature.
    #[error("this hadr is built without planted bugs: build it with `cargo build --features mutants` to use --mutant and --list-mutants")]
    MutantsNotBuilt,
    /// An unknown mutant name.
    #[cfg(feature = "mutants")]
    #[error(transparent)]
    UnknownMutant(#[from] hadr_core::mutants::UnknownMutant),
    /// The JUnit XML of the certificate could not be made.
    #[error("cannot write the JUnit report {path}: {source}")]
    Junit {
        /// The file it was for.
        path: PathBuf,
        /// What went wrong.
        source: JunitError,
    },
    /// A certificate to merge could not be read.
    #[error("cannot read the certificate {path}: {source}")]
    ReadCertificate {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file to merge is not a certificate's JSON.
    #[error("{path} is not a certificate of `hadr certify --json`: {source}")]
    NotACertificate {
        /// The file.
        path: PathBuf,
        /// Where the JSON is wrong.
        source: serde_json::Error,
    },
    /// `--faults outside` where network namespaces cannot be made.
    #[error("--faults outside: this process cannot make network namespaces (it needs root, or CAP_SYS_ADMIN and CAP_NET_ADMIN, and iproute2): {0}; use --faults cooperative")]
    NoNamespaces(hadr_testbed::netns::NetnsError),
    /// The certificates are not every shard of one run.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// The pages of `--html` could not be written.
    #[error(transparent)]
    Html(#[from] hadr_conformance::html::HtmlError),
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The progress line's template on a terminal ([`crate::progress`]): scenarios run, and the
/// verdict and purpose of the last one.
pub(crate) const PROGRESS: &str = "[{pos:>3}/{len}] {msg}";

/// Runs `hadr certify`: exit 0 when every scenario passes, 1 otherwise.
pub fn run(args: &CertifyArgs) -> Result<Exit, CertifyError> {
    if let Some(CertifyCommand::Merge(merge_args)) = &args.command {
        return run_merge(merge_args);
    }
    if args.list_mutants {
        return list_mutants(args.report.json);
    }
    let mut make: MakeSut = match (args.sut.as_str(), &args.mutant) {
        ("reference-sim", None) => Box::new(|_| Box::new(ReferenceSim::new()) as Box<dyn Sut>),
        ("reference-sim", Some(name)) => sim_with_mutant(name)?,
        ("spec", mutant) => {
            let mutant = mutant
                .as_deref()
                .map(str::parse::<hadr_model::Mutant>)
                .transpose()?;
            Box::new(move |s: &Scenario| Box::new(ModelSut::adversarial(mutant, s)) as Box<dyn Sut>)
        }
        ("reference", mutant) => {
            if let Some(name) = mutant {
                check_mutant(name)?;
            }
            let exe = std::env::current_exe().map_err(CertifyError::OwnPath)?;
            let mutant = mutant.clone();
            let faults = network_faults(args.faults)?;
            Box::new(move |_| match Reference::new(exe.clone(), mutant.clone()) {
                Ok(r) => Box::new(r.with_network_faults(faults)) as Box<dyn Sut>,
                Err(e) => Box::new(Broken(e.to_string())) as Box<dyn Sut>,
            })
        }
        (sut, None) if sut.starts_with("external:") => {
            let command = sut["external:".len()..].to_owned();
            if command.trim().is_empty() {
                return Err(CertifyError::UnknownSut(sut.to_owned()));
            }
            let offer = offer(args.faults)?;
            Box::new(move |_| Box::new(External::spawn_offering(&command, &offer)) as Box<dyn Sut>)
        }
        (_, Some(_)) => return Err(CertifyError::MutantOnOtherSut),
        (other, _) => return Err(CertifyError::UnknownSut(other.to_owned())),
    };
    if args.short_timeouts {
        let inner = make;
        make = Box::new(move |s| Box::new(ShortTimeouts(inner(s))) as Box<dyn Sut>);
    }
    let (mut scenarios, mut hash) = if args.scenario.is_empty() {
        load_corpus(&args.corpus)?
    } else {
        load_scenarios(&args.scenario)?
    };
    if let Some(seed) = args.seed {
        let config = scenarios[0].1.config.clone();
        if let Some((name, _)) = scenarios.iter().find(|(_, s)| s.config != config) {
            return Err(CertifyError::MixedConfigurations(name.clone()));
        }
        let walks = random_walks(&config, seed, args.walks, args.walk_length)?;
        for (i, walk) in walks.into_iter().enumerate() {
            scenarios.push((format!("seed-{seed}-walk-{i}"), walk));
        }
        // The corpus hash names what ran: the files, and the walks added to them.
        hash = format!("{hash}+seed{seed}:{}x{}", args.walks, args.walk_length);
    }
    let options = RunOptions {
        shrink_failures: !args.no_shrink,
        jobs: args
            .jobs
            .map_or_else(|| default_jobs(&args.sut), usize::from),
        shard: args.shard,
    };
    let total = options
        .shard
        .map_or(scenarios.len(), |shard| shard.positions(&scenarios).len());
    // Progress on stderr: one line redrawn in place on a terminal (not with --json); otherwise
    // (CI logs) one line per scenario as it finishes, with how long the run has taken, since a
    // system on real time takes minutes.
    let progress = Line::new(PROGRESS, Some(total as u64), !args.report.json);
    let started = std::time::Instant::now();
    let mut done = 0;
    let certificate = certify(&scenarios, hash, &*make, options, &mut |_, r| {
        done += 1;
        if progress.is_drawn() {
            progress.set(done as u64, format!("{:<5} {}", r.verdict, r.purpose));
        } else if !progress.is_terminal() {
            eprintln!(
                "[{done:>3}/{total}] {:<5} {} ({:.0} s in all)",
                r.verdict,
                r.file,
                started.elapsed().as_secs_f64()
            );
        }
    });
    progress.clear();
    if let Some(dir) = &args.save_failures {
        save_failures(&certificate, dir, &args.sut)?;
    }
    if let Some(dir) = &args.html {
        let written = hadr_conformance::html::write_pages(&certificate, dir, args.html_all)?;
        eprintln!(
            "{} scenario page{} written to {} (open {})",
            written.pages.len(),
            if written.pages.len() == 1 { "" } else { "s" },
            dir.display(),
            written.index.display()
        );
    }
    publish(&certificate, &args.report)
}

/// How `--sut reference` makes network faults: from outside (network namespaces) when asked
/// or, with `auto`, when this process may; `outside` without the means is an error.
fn network_faults(faults: FaultsArg) -> Result<NetworkFaults, CertifyError> {
    match faults {
        FaultsArg::Cooperative => Ok(NetworkFaults::Cooperative),
        FaultsArg::Outside => {
            hadr_testbed::netns::available().map_err(CertifyError::NoNamespaces)?;
            Ok(NetworkFaults::Outside)
        }
        FaultsArg::Auto => match hadr_testbed::netns::available() {
            Ok(()) => Ok(NetworkFaults::Outside),
            Err(e) => {
                eprintln!("hadr certify: network faults made by the replicas themselves (--faults cooperative): network namespaces need root, or CAP_SYS_ADMIN and CAP_NET_ADMIN, and iproute2 ({e})");
                Ok(NetworkFaults::Cooperative)
            }
        },
    }
}

/// What `--sut external:CMD` offers its driver: the capability `processes` (the harness runs
/// the replicas and makes the network's faults from outside) when `--faults` allows it and
/// network namespaces can be made; `outside` without the means is an error.
fn offer(faults: FaultsArg) -> Result<Offer, CertifyError> {
    match faults {
        FaultsArg::Cooperative => Ok(Offer::nothing("--faults cooperative")),
        FaultsArg::Outside => {
            hadr_testbed::netns::available().map_err(CertifyError::NoNamespaces)?;
            Ok(Offer::processes())
        }
        FaultsArg::Auto => Ok(Offer::processes_if_available()),
    }
}

/// How many scenarios run at once unless `--jobs` says: real processes mostly wait out
/// timeouts, in-process systems use the CPUs, and a third party's driver may not isolate
/// its systems from each other.
fn default_jobs(sut: &str) -> usize {
    match sut {
        "reference" => 8,
        "reference-sim" | "spec" => std::thread::available_parallelism().map_or(1, usize::from),
        _ => 1,
    }
}

/// Writes each failing scenario, shrunk, into `dir` (`--save-failures`).
fn save_failures(certificate: &Certificate, dir: &Path, sut: &str) -> Result<(), CertifyError> {
    std::fs::create_dir_all(dir).map_err(|source| CertifyError::Write {
        path: dir.to_owned(),
        source,
    })?;
    for r in &certificate.results {
        if let Some(scenario) = &r.failing_scenario {
            let path = dir.join(&r.file);
            write(&path, scenario.to_json())?;
            eprintln!(
                "{}: the shrunk failing scenario written to {} (replay: hadr certify --sut {sut} --scenario {})",
                r.file,
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Prints the certificate (Markdown, or JSON with `--json`) and writes the report files asked
/// for; exit 0 when it passes, 1 otherwise.
fn publish(certificate: &Certificate, report: &ReportArgs) -> Result<Exit, CertifyError> {
    if let Some(path) = &report.junit {
        let xml = certificate.junit().map_err(|source| CertifyError::Junit {
            path: path.clone(),
            source,
        })?;
        write(path, xml)?;
    }
    if let Some(path) = &report.markdown {
        write(path, certificate.markdown())?;
    }
    if report.json {
        println!(
            "{}",
            serde_json::to_string_pretty(certificate).expect("a certificate serializes")
        );
    } else {
        print!("{}", certificate.markdown());
    }
    Ok(if certificate.verdict == "PASS" {
        Exit::Passed
    } else {
        Exit::Failed
    })
}

fn write(path: &Path, text: String) -> Result<(), CertifyError> {
    std::fs::write(path, text).map_err(|source| CertifyError::Write {
        path: path.to_owned(),
        source,
    })
}

/// `hadr certify merge`: the shards' certificates put together.
fn run_merge(args: &MergeArgs) -> Result<Exit, CertifyError> {
    let mut shards = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let text =
            std::fs::read_to_string(path).map_err(|source| CertifyError::ReadCertificate {
                path: path.clone(),
                source,
            })?;
        let certificate: Certificate =
            serde_json::from_str(&text).map_err(|source| CertifyError::NotACertificate {
                path: path.clone(),
                source,
            })?;
        shards.push((path.display().to_string(), certificate));
    }
    let certificate = merge(shards)?;
    publish(&certificate, &args.report)
}

/// Makes a system under test for a scenario, from any of the jobs' threads.
type MakeSut = Box<hadr_conformance::certify::MakeSut<'static>>;

#[cfg(feature = "mutants")]
fn sim_with_mutant(name: &str) -> Result<MakeSut, CertifyError> {
    let mutant: hadr_core::mutants::Mutant = name.parse()?;
    Ok(Box::new(move |_| {
        Box::new(ReferenceSim::with_mutant(mutant)) as Box<dyn Sut>
    }))
}

#[cfg(not(feature = "mutants"))]
fn sim_with_mutant(_: &str) -> Result<MakeSut, CertifyError> {
    Err(CertifyError::MutantsNotBuilt)
}

/// Checks that this build can plant `name` (the replicas are this binary).
#[cfg(feature = "mutants")]
fn check_mutant(name: &str) -> Result<(), CertifyError> {
    name.parse::<hadr_core::mutants::Mutant>()?;
    Ok(())
}

#[cfg(not(feature = "mutants"))]
fn check_mutant(_: &str) -> Result<(), CertifyError> {
    Err(CertifyError::MutantsNotBuilt)
}

/// A system under test that could not be made: every request fails with why.
struct Broken(String);

impl Sut for Broken {
    fn name(&self) -> String {
        "reference".to_owned()
    }
    fn setup(&mut self, _: &hadr_types::AgConfig) -> Result<(), SutError> {
        Err(SutError::Failed(self.0.clone()))
    }
    fn step(&mut self, _: &hadr_model::Action) -> Result<(), SutError> {
        Err(SutError::Failed(self.0.clone()))
    }
    fn observe(&mut self) -> Result<hadr_types::Observation, SutError> {
        Err(SutError::Failed(self.0.clone()))
    }
}

#[cfg(feature = "mutants")]
fn list_mutants(json: bool) -> Result<Exit, CertifyError> {
    use hadr_core::mutants::Mutant;
    if json {
        let list: Vec<serde_json::Value> = Mutant::ALL
            .iter()
            .map(|m| serde_json::json!({"name": m.name(), "rule": m.rule(), "bug": m.bug()}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for m in Mutant::ALL {
            println!("{:<42} {:<11} {}", m.name(), m.rule(), m.bug());
        }
    }
    Ok(Exit::Passed)
}

#[cfg(not(feature = "mutants"))]
fn list_mutants(_: bool) -> Result<Exit, CertifyError> {
    Err(CertifyError::MutantsNotBuilt)
}
