//! `hadr check`: run the model checker on a configuration and report every property.
//!
//! The progress line goes to standard error (every second on a terminal, every 5 s
//! otherwise); the report goes to standard output, as text or as one JSON object.

use crate::cli::CheckArgs;
use crate::format::{count, describe_config, seconds};
use crate::progress::Line;
use crate::{load_config, load_tsql, parse_mutant, CliError, Exit};
use hadr_model::{
    check, CheckOptions, CheckReport, ModelConfig, Mutant, Pass, Progress, PropertyGroup,
    PropertyResult, Stop, Strategy, Verdict,
};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

/// Runs `hadr check`.
pub fn run(args: &CheckArgs) -> Result<Exit, CliError> {
    if args.list_mutants {
        print!("{}", list_mutants(args.json));
        return Ok(Exit::Passed);
    }
    let mutant = parse_mutant(args.mutant.as_deref())?;
    let config = match &args.tsql {
        Some(script) => load_tsql(script, args.bounds.as_deref())?,
        None => load_config(args.config.as_deref(), mutant)?,
    };
    let options = options(args, mutant);
    if !args.json {
        println!("{}", header(&config, mutant, &options));
    }
    tracing::info!(ag = %config.ag.name, mutant = ?mutant.map(|m| m.name()), ?options.strategy, threads = options.threads, "check started");

    let mut progress = ProgressLine::new(args.quiet);
    let report = check(&config, mutant, &options, &mut |p| progress.show(p));
    progress.finish();
    tracing::info!(
        unique_states = report.unique_states,
        states = report.states,
        elapsed_ms = report.elapsed_ms as u64,
        passed = report.passed(),
        "check finished"
    );

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &JsonReport::new(&report))
            .map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write!(
            out,
            "{}",
            text_report(&report, args.advice || args.tsql.is_some())
        )?;
    }
    Ok(exit_of(&report))
}

fn options(args: &CheckArgs, mutant: Option<Mutant>) -> CheckOptions {
    let mut options = CheckOptions::default();
    if args.bfs {
        options.strategy = Strategy::Bfs;
    }
    if let Some(threads) = args.threads {
        options.threads = usize::from(threads);
    }
    options.symmetry = !args.no_symmetry;
    options.shorten = !args.no_shorten;
    options.examples = args.examples;
    options.timeout = args.timeout.map(Duration::from_secs);
    if let Some(m) = mutant {
        options.stop = Stop::RuleViolated(vec![m.rule()]);
    }
    options
}

/// The exit code a report earns.
pub fn exit_of(report: &CheckReport) -> Exit {
    if report.has_violation() {
        Exit::Failed
    } else if !report.complete {
        Exit::Incomplete
    } else if report.dead_actions().is_empty() {
        Exit::Passed
    } else {
        Exit::Failed
    }
}

fn header(config: &ModelConfig, mutant: Option<Mutant>, options: &CheckOptions) -> String {
    let mut out = format!("hadr check: {}\n", describe_config(config));
    if let Some(m) = mutant {
        let _ = writeln!(out, "mutant: {m} ({}): {}", m.rule(), m.bug());
    }
    let _ = write!(
        out,
        "search: {}, {} thread{}, symmetry {}",
        match options.strategy {
            Strategy::Dfs => "depth-first",
            Strategy::Bfs => "breadth-first",
        },
        options.threads,
        if options.threads == 1 { "" } else { "s" },
        if options.symmetry { "on" } else { "off" }
    );
    out
}

/// The mutants, one per line (or a JSON array).
pub fn list_mutants(json: bool) -> String {
    #[derive(Serialize)]
    struct Entry {
        name: &'static str,
        /// The rule of the property that refutes it.
        rule: &'static str,
        /// The rule its bug breaks (what a conformance failure like it names first).
        breaks: &'static str,
        bug: &'static str,
    }
    if json {
        let entries: Vec<Entry> = Mutant::ALL
            .iter()
            .map(|m| Entry {
                name: m.name(),
                rule: m.rule(),
                breaks: m.breaks(),
                bug: m.bug(),
            })
            .collect();
        return serde_json::to_string_pretty(&entries).expect("serializes") + "\n";
    }
    let width = Mutant::ALL
        .iter()
        .map(|m| m.name().len())
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "{:width$}  {:<11} {:<11} the planted bug\n",
        "mutant", "refuted at", "breaks"
    );
    for m in Mutant::ALL {
        out += &format!(
            "{:width$}  {:<11} {:<11} {}\n",
            m.name(),
            m.rule(),
            m.breaks(),
            m.bug()
        );
    }
    out
}

/// The report in text: every property with its verdict, counterexamples, the figures, the
/// verdict.
pub fn text_report(report: &CheckReport, advice: bool) -> String {
    let mut out = String::new();
    let section = |out: &mut String, title: &str, group: PropertyGroup, all: bool| {
        let _ = writeln!(out, "\n{title}");
        for p in report.properties.iter().filter(|p| p.group == group) {
            if all || !matches!(p.verdict, Verdict::Discovered) {
                let word = verdict_word(p, report.complete);
                let _ = writeln!(out, "  {word:<12} {:<11} {}", p.rule, p.title);
            }
        }
    };
    section(&mut out, "invariants (always)", PropertyGroup::Rule, true);
    section(&mut out, "hazards (sometimes)", PropertyGroup::Hazard, true);
    if report
        .properties
        .iter()
        .any(|p| p.group == PropertyGroup::Goal)
    {
        section(
            &mut out,
            "behaviours (sometimes)",
            PropertyGroup::Goal,
            true,
        );
    }
    let coverage: Vec<&PropertyResult> = report
        .properties
        .iter()
        .filter(|p| p.group == PropertyGroup::Coverage)
        .collect();
    let taken = coverage
        .iter()
        .filter(|p| p.verdict == Verdict::Discovered)
        .count();
    let _ = writeln!(
        out,
        "\naction coverage (sometimes): {taken} of {} applicable action kinds taken",
        coverage.len()
    );
    for p in coverage.iter().filter(|p| p.verdict != Verdict::Discovered) {
        let word = if report.complete {
            "DEAD"
        } else {
            "not reached"
        };
        let _ = writeln!(out, "  {word:<12} {}", p.name);
    }
    for na in &report.not_applicable {
        let _ = writeln!(out, "  {:<12} {}: {}", "n/a", na.action, na.reason);
    }

    for p in &report.properties {
        let traces = [
            (&p.counterexample, "VIOLATED ", "counterexample"),
            (&p.example, "", "shortest example"),
        ];
        for (trace, prefix, what) in traces {
            match trace {
                // A function check's counterexample is one combination, not a path.
                Some(trace) if trace.steps.is_empty() => {
                    let _ = writeln!(out, "\n{prefix}{} {} — {what}:", p.rule, p.title);
                    let _ = writeln!(out, "      {}", trace.initial);
                }
                Some(trace) => {
                    let steps = trace.steps.len();
                    let _ = writeln!(
                        out,
                        "\n{prefix}{} {} — {what}, {steps} steps:",
                        p.rule, p.title
                    );
                    out.push_str(&trace.to_text());
                }
                None => {}
            }
        }
    }

    let _ = writeln!(
        out,
        "\n{} unique states · {} states · depth {} · {} · {} states/s{}",
        count(report.unique_states as u64),
        count(report.states as u64),
        report.max_depth,
        seconds(Duration::from_millis(report.elapsed_ms as u64)),
        count(report.states_per_sec),
        if report.complete {
            ""
        } else {
            " · INCOMPLETE"
        }
    );
    if advice {
        let _ = writeln!(
            out,
            "\nadvice (each line from the verdicts of the properties named)"
        );
        if report.advice.is_empty() {
            let _ = writeln!(out, "  none: the search did not complete");
        }
        for a in &report.advice {
            let _ = writeln!(out, "  - {}  [{}]", a.text, a.backed_by.join(", "));
        }
    }
    let _ = writeln!(out, "verdict: {}", verdict_line(report));
    out
}

/// The verdict in words; a search that stopped early has not shown that anything holds or is
/// unreachable, only what it met.
fn verdict_word(p: &PropertyResult, complete: bool) -> &'static str {
    match (p.verdict, complete) {
        (Verdict::Holds, true) => "holds",
        (Verdict::Holds, false) => "not violated",
        (Verdict::Violated, _) => "VIOLATED",
        (Verdict::Discovered, _) => "discovered",
        (Verdict::Undiscovered, true) => "undiscovered",
        (Verdict::Undiscovered, false) => "not reached",
    }
}

fn verdict_line(report: &CheckReport) -> String {
    let violated: Vec<&str> = report
        .properties
        .iter()
        .filter(|p| p.verdict == Verdict::Violated)
        .map(|p| p.rule)
        .collect();
    let dead = report.dead_actions();
    let hazards_missing = report
        .properties
        .iter()
        .filter(|p| p.group == PropertyGroup::Hazard && p.verdict == Verdict::Undiscovered)
        .count();
    if !violated.is_empty() {
        format!("FAIL: violated {}", violated.join(", "))
    } else if !report.complete {
        "INCOMPLETE: the search stopped before every state was seen; nothing was violated so far"
            .to_string()
    } else if !dead.is_empty() {
        format!(
            "FAIL: {} applicable action kind(s) never enabled (dead actions)",
            dead.len()
        )
    } else if hazards_missing > 0 {
        format!("PASS: every invariant holds and every action kind is taken; {hazards_missing} hazard(s) unreachable in this configuration")
    } else {
        "PASS: every invariant holds; every hazard and every action kind is reachable".to_string()
    }
}

/// `--json`: the report and the verdict.
#[derive(Serialize)]
pub struct JsonReport<'a> {
    /// Whether the check passed (exit code 0).
    pub passed: bool,
    /// Everything else.
    #[serde(flatten)]
    pub report: &'a CheckReport,
}

impl<'a> JsonReport<'a> {
    /// Wraps a report.
    pub fn new(report: &'a CheckReport) -> Self {
        JsonReport {
            passed: exit_of(report) == Exit::Passed,
            report,
        }
    }
}

/// The progress line's template ([`crate::progress`]): the line is made here.
pub(crate) const PROGRESS: &str = "{msg}";

/// The progress line on standard error: redrawn at every report of the checker on a terminal,
/// a plain line every 5 s otherwise (a CI log), none with `--quiet`.
struct ProgressLine {
    line: Line,
    /// Standard error is no terminal: plain lines, every [`LOG_EVERY`].
    log: bool,
    last: Option<Instant>,
}

/// How often a plain progress line is printed where standard error is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl ProgressLine {
    fn new(quiet: bool) -> Self {
        let line = Line::new(PROGRESS, None, !quiet);
        ProgressLine {
            log: !quiet && !line.is_terminal(),
            line,
            last: None,
        }
    }

    fn show(&mut self, p: &Progress) {
        let text = || {
            format!(
                "{} {} states · {} unique · {} states/s · queue {} · depth {} · {}",
                match p.pass {
                    Pass::Search => "searching:",
                    Pass::Focus => "shortest paths:",
                },
                count(p.states as u64),
                count(p.unique_states as u64),
                count(p.states_per_sec() as u64),
                count(p.queue),
                p.max_depth,
                seconds(p.elapsed)
            )
        };
        if self.line.is_drawn() {
            self.line.set_message(text());
        } else if self.log && self.last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.last = Some(Instant::now());
            eprintln!("{}", text());
        }
    }

    fn finish(&mut self) {
        self.line.finish();
    }
}
