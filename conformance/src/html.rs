//! Pictures of scenarios (`hadr certify --html DIR`): one self-contained page per scenario, a
//! timeline with a row per step (the group as set up, then each environment action of the run
//! judged) and a lane per replica, the cluster manager and the clients. Each cell shows what
//! the system showed of its lane after the step: roles, per-database synchronization states,
//! LSNs, suspensions, failover-ready databases, client outcomes. The step a failure was found
//! at is highlighted, and the fields where the system differs from the closest observation the
//! spec allows there (the certificate's `diff`) are marked in their cells.
//!
//! Plain HTML with inline CSS: no script, nothing fetched. Every text from outside (the
//! system's name, scenario purposes, error messages, names in the configuration) is escaped.

use crate::certify::{Certificate, ScenarioResult, Timeline};
use hadr_model::render::action_words;
use hadr_model::{Action, ModelConfig, Node};
use hadr_types::{DatabaseObservation, Observation, ReplicaObservation};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Why the pages could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// The directory could not be made.
    #[error("cannot create the directory {path} for the HTML pages (--html): {source}; give --html a directory that can be written")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A page could not be written.
    #[error(
        "cannot write the HTML page {path}: {source}; give --html a directory that can be written"
    )]
    Write {
        /// The page.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What [`write_pages`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The index: `DIR/index.html`.
    pub index: PathBuf,
    /// The scenarios' pages, in corpus order.
    pub pages: Vec<PathBuf>,
}

/// Writes into `dir` (made if missing) a page for each scenario that did not pass, or for
/// every scenario with `every`, named after its file ([`page_name`]), and `index.html`
/// listing every scenario with its verdict and a link to its page.
pub fn write_pages(
    certificate: &Certificate,
    dir: &Path,
    every: bool,
) -> Result<Written, HtmlError> {
    std::fs::create_dir_all(dir).map_err(|source| HtmlError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text)
            .map(|()| path.clone())
            .map_err(|source| HtmlError::Write { path, source })
    };
    let mut taken: BTreeSet<String> = BTreeSet::from(["index.html".to_owned()]);
    let mut links = Vec::with_capacity(certificate.results.len());
    let mut pages = Vec::new();
    for result in &certificate.results {
        if every || result.verdict != "pass" {
            let name = unique(page_name(&result.file), &mut taken);
            pages.push(write(
                dir.join(&name),
                scenario_page(&certificate.sut, result),
            )?);
            links.push(Some(name));
        } else {
            links.push(None);
        }
    }
    let index = write(dir.join("index.html"), index_page(certificate, &links))?;
    Ok(Written { index, pages })
}

/// The page's file name for a scenario file: `024-mutant-x.json` → `024-mutant-x.html`; any
/// character other than a letter, a digit, `-`, `_` or an inner `.` becomes `_`.
pub fn page_name(file: &str) -> String {
    let stem = file.strip_suffix(".json").unwrap_or(file);
    let mut name: String = stem
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || (c == '.' && i > 0) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        name.push('_');
    }
    name + ".html"
}

/// `name`, or `name` with `-2`, `-3`, … before `.html` when taken; taken from then on.
fn unique(name: String, taken: &mut BTreeSet<String>) -> String {
    let stem = name.strip_suffix(".html").unwrap_or(&name).to_owned();
    let mut candidate = name;
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{stem}-{n}.html");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// `text` made safe inside an HTML element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; margin: 18px 24px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 16px; margin: 2px 0 6px; }
code { font: 12.5px ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
a { color: #0b57d0; }
.crumbs { margin: 0 0 8px; font-size: 13px; }
.meta { color: #444; margin: 0 0 14px; }
.verdict { font-weight: 700; padding: 1px 7px; border-radius: 3px; white-space: nowrap; }
.verdict.pass { background: #e3f3e6; color: #17612d; }
.verdict.fail, .verdict.error, .verdict.too_broad { background: #fde4e4; color: #a50e0e; }
.summary { border: 2px solid #c5221f; background: #fff5f5; border-radius: 4px; padding: 8px 14px; margin: 0 0 16px; }
.summary.pass { border-color: #2e7d32; background: #f4fbf5; }
.summary p { margin: 4px 0; }
.summary ul { margin: 4px 0 6px; padding-left: 22px; }
.legend { color: #555; font-size: 12px; margin: 0 0 8px; }
.legend .key { margin-right: 18px; white-space: nowrap; }
table.timeline { border-collapse: collapse; width: 100%; table-layout: fixed; }
.timeline th, .timeline td { border: 1px solid #d3d3d3; padding: 5px 7px; vertical-align: top; text-align: left; overflow-wrap: anywhere; }
.timeline thead th { background: #eef1f5; position: sticky; top: 0; z-index: 1; }
.timeline thead th small { display: block; font-weight: 400; color: #555; font-size: 11px; }
.timeline col.n { width: 52px; }
.timeline col.action { width: 230px; }
th.n { text-align: right; color: #444; }
.role { font-weight: 700; }
.role.PRIMARY { color: #0b4f9c; }
.role.RESOLVING { color: #a05a00; }
.role.down { color: #777; text-transform: uppercase; }
.db { margin-top: 3px; }
.dbname { color: #555; }
.lsn { color: #555; font-size: 12px; }
.none { color: #888; font-style: italic; }
.env { color: #6a6a6a; font-size: 11.5px; font-style: italic; }
.changed { background: #fff1b8; border-radius: 2px; }
td.acted { background: #eaf2ff; box-shadow: inset 4px 0 0 #1a73e8; }
.tag { color: #1a5fc8; font-size: 11px; font-weight: 700; }
tr.failing > th, tr.failing > td { background: #fff0f0; border-top: 3px solid #c5221f; border-bottom: 3px solid #c5221f; }
tr.failing > td.acted { background: #f6eaff; }
td.diff-cell { outline: 3px solid #c5221f; outline-offset: -3px; }
.diff, .role.diff, .role.PRIMARY.diff, .role.RESOLVING.diff { background: #c5221f; color: #fff; padding: 0 4px; border-radius: 2px; }
.allowed { color: #a50e0e; font-size: 12px; font-weight: 600; display: inline-block; white-space: nowrap; }
.verdict-note { color: #a50e0e; font-weight: 700; margin-top: 4px; }
.diff-line { margin-top: 3px; font-size: 12px; }
table.index { border-collapse: collapse; }
table.index th, table.index td { border: 1px solid #d3d3d3; padding: 4px 8px; text-align: left; }
table.index thead th { background: #eef1f5; }
"#;

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"hadr certify --html\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
}

fn verdict_badge(result: &ScenarioResult) -> String {
    let text = match (result.verdict.as_str(), result.step) {
        ("pass", _) => "PASS".to_owned(),
        ("too_broad", Some(step)) => format!("TOO BROAD TO JUDGE at step {step}"),
        (verdict, Some(step)) => format!("{} at step {step}", verdict.to_uppercase()),
        (verdict, None) => verdict.to_uppercase(),
    };
    format!(
        "<span class=\"verdict {}\">{}</span>",
        escape(&result.verdict),
        escape(&text)
    )
}

/// The index: every scenario of the certificate with its verdict, linked to its page where
/// `pages` (one entry per result, in order) names one.
pub fn index_page(certificate: &Certificate, pages: &[Option<String>]) -> String {
    let mut out = String::new();
    head(
        &mut out,
        &format!("hadr certify {}: {}", certificate.sut, certificate.verdict),
    );
    let _ = write!(
        out,
        "<h1>hadr certify: <code>{}</code></h1>\n<p class=\"meta\">{} of {} scenarios passed, {} failed, {} errors, {} too broad to judge · spec {} (model hash <code>{}</code>) · corpus hash <code>{}</code> · verdict <span class=\"verdict {}\">{}</span></p>\n",
        escape(&certificate.sut),
        certificate.passed,
        certificate.scenarios,
        certificate.failed,
        certificate.errors,
        certificate.too_broad,
        escape(&certificate.spec_version),
        escape(&certificate.model_hash),
        escape(&certificate.corpus_hash),
        if certificate.verdict == "PASS" { "pass" } else { "fail" },
        escape(&certificate.verdict),
    );
    let bad: Vec<String> = certificate
        .results
        .iter()
        .zip(pages.iter().chain(std::iter::repeat(&None)))
        .filter(|(r, _)| r.verdict != "pass")
        .map(|(r, page)| {
            let name = match page {
                Some(page) => format!("<a href=\"{}\">{}</a>", escape(page), escape(&r.file)),
                None => escape(&r.file),
            };
            format!("<li>{name} {}</li>", verdict_badge(r))
        })
        .collect();
    if !bad.is_empty() {
        let _ = writeln!(
            out,
            "<h2>Did not pass</h2>\n<ul>\n{}\n</ul>\n<h2>Every scenario</h2>",
            bad.join("\n")
        );
    }
    out += "<table class=\"index\">\n<thead><tr><th>scenario</th><th>purpose</th><th>verdict</th><th>rules</th></tr></thead>\n<tbody>\n";
    for (i, result) in certificate.results.iter().enumerate() {
        let file = match pages.get(i).and_then(Option::as_ref) {
            Some(page) => format!("<a href=\"{}\">{}</a>", escape(page), escape(&result.file)),
            None => escape(&result.file),
        };
        let _ = writeln!(
            out,
            "<tr><td>{file}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&result.purpose),
            verdict_badge(result),
            escape(&result.rules.join(", ")),
        );
    }
    out += "</tbody>\n</table>\n</body>\n</html>\n";
    out
}

/// The page of one scenario's result on the system `sut`: what went wrong, if anything, and
/// the timeline of the run judged ([`ScenarioResult::timeline`]).
pub fn scenario_page(sut: &str, result: &ScenarioResult) -> String {
    let mut out = String::new();
    head(
        &mut out,
        &format!(
            "{}: {} on {sut}",
            result.file,
            result.verdict.to_uppercase()
        ),
    );
    let _ = write!(
        out,
        "<p class=\"crumbs\"><a href=\"index.html\">all scenarios</a></p>\n<h1>{}</h1>\n<p class=\"meta\">{} · system under test <code>{}</code> · {}</p>\n",
        escape(&result.file),
        escape(&result.purpose),
        escape(sut),
        verdict_badge(result),
    );
    let timeline = result.timeline.as_ref();
    let names = timeline.map_or_else(Names::default, Names::of);
    summary(&mut out, result, timeline, &names);
    out += "<p class=\"legend\"><span class=\"key\"><span class=\"changed\">highlighted</span>: changed by the step</span> <span class=\"key\"><span class=\"tag\">▶ Kind</span>: the lane the step acts on</span> <span class=\"key\"><span class=\"diff\">observed</span> <span class=\"allowed\">allowed: …</span>: differs from the closest observation the spec allows</span> <span class=\"key\"><span class=\"env\">in italics</span>: what the environment did (cut links, lost quorum, stalled disks)</span></p>\n";
    match timeline {
        Some(timeline) => table(&mut out, result, timeline, &names),
        None => out += "<p class=\"none\">No timeline: this result was not judged in this run (a certificate read back from JSON keeps no observations).</p>\n",
    }
    out += "</body>\n</html>\n";
    out
}

/// The box above the timeline: the verdict and, for a failure, where and how.
fn summary(out: &mut String, result: &ScenarioResult, timeline: Option<&Timeline>, names: &Names) {
    let step = result.step.unwrap_or(0);
    let action = timeline
        .and_then(|t| step.checked_sub(1).and_then(|i| t.actions.get(i)))
        .map_or_else(|| "the group as set up".to_owned(), |a| names.words(a));
    match result.verdict.as_str() {
        "pass" => {
            out.push_str("<section class=\"summary pass\"><p>Every observation is one the spec allows after the ones before it.</p></section>\n");
            return;
        }
        "fail" => {
            let _ = write!(
                out,
                "<section class=\"summary fail\">\n<h2>Failed at step {step}: {}</h2>\n<p>What the system showed after this step is no observation the spec allows after what it showed before.</p>\n",
                escape(&action)
            );
        }
        "too_broad" => {
            let _ = write!(
                out,
                "<section class=\"summary too_broad\">\n<h2>Too broad to judge at step {step}: {}</h2>\n",
                escape(&action)
            );
        }
        _ => {
            let _ = write!(
                out,
                "<section class=\"summary error\">\n<h2>Error at step {step}: {}</h2>\n",
                escape(&action)
            );
        }
    }
    if let Some(error) = &result.error {
        let _ = writeln!(out, "<p><code>{}</code></p>", escape(error));
    }
    if !result.rules.is_empty() {
        let _ = writeln!(
            out,
            "<p>Rules involved, the one the bug breaks first: <b>{}</b></p>",
            escape(&result.rules.join(", "))
        );
    }
    if !result.like.is_empty() {
        let _ = writeln!(
            out,
            "<p>Behaves like spec mutant {}</p>",
            escape(&result.like.join(", "))
        );
    }
    if result.verdict == "fail" {
        let n = result.actions.len();
        let ran = result.unshrunk_steps.unwrap_or(n);
        if n < ran {
            let _ = writeln!(out, "<p>Shrunk: the corpus scenario failed at its step {ran}; these {n} of its steps still fail on a fresh system, and the timeline is theirs.</p>");
        }
    }
    if !result.diff.is_empty() {
        out.push_str("<p>Observed against the closest observation the spec allows (<code>field: allowed → observed</code>), marked in the timeline:</p>\n<ul class=\"diff-lines\">\n");
        for line in &result.diff {
            let _ = writeln!(out, "<li><code>{}</code></li>", escape(line));
        }
        out.push_str("</ul>\n");
    }
    for (i, alternative) in result.alternatives.iter().enumerate() {
        let _ = writeln!(
            out,
            "<p>Or, against the next closest allowed observation ({}):</p>\n<ul>",
            i + 2
        );
        for line in alternative {
            let _ = writeln!(out, "<li><code>{}</code></li>", escape(line));
        }
        out.push_str("</ul>\n");
    }
    let _ = writeln!(
        out,
        "<p><a href=\"#step-{step}\">Go to step {step}</a></p>\n</section>"
    );
}

/// Names of the configuration's replicas and databases, and the configuration itself when it
/// parses.
#[derive(Default)]
struct Names {
    config: Option<ModelConfig>,
}

impl Names {
    fn of(timeline: &Timeline) -> Names {
        Names {
            config: ModelConfig::from_toml_str(&timeline.config).ok(),
        }
    }

    fn replica(&self, i: usize) -> String {
        match &self.config {
            Some(c) if i < c.ag.replicas.len() => c.ag.replicas[i].name.clone(),
            _ => format!("replica#{i}"),
        }
    }

    fn database(&self, j: usize) -> String {
        match &self.config {
            Some(c) if j < c.ag.databases.len() => c.ag.databases[j].clone(),
            _ => format!("database#{j}"),
        }
    }

    fn node(&self, node: Node) -> String {
        match node {
            Node::Replica(r) => self.replica(usize::from(r)),
            Node::Manager => "manager".to_owned(),
        }
    }

    fn words(&self, action: &Action) -> String {
        match &self.config {
            Some(c) => action_words(c, action),
            None => format!("{action:?}"),
        }
    }

    fn replicas(&self) -> usize {
        self.config.as_ref().map_or(0, |c| c.ag.replicas.len())
    }
}

/// A lane of the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    Replica(usize),
    Manager,
    Clients,
}

/// The lanes an action acts on (`before`: what the system showed before it, for the commands
/// an operator issues on the primary).
fn lanes_of(action: &Action, before: Option<&Observation>) -> Vec<Lane> {
    let r = |x: u8| Lane::Replica(usize::from(x));
    let node = |n: Node| match n {
        Node::Replica(x) => r(x),
        Node::Manager => Lane::Manager,
    };
    let primaries = || -> Vec<Lane> {
        before.map_or_else(Vec::new, |o| {
            o.replicas
                .iter()
                .enumerate()
                .filter(|(_, x)| x.role == Some(hadr_types::Role::Primary))
                .map(|(i, _)| Lane::Replica(i))
                .collect()
        })
    };
    match *action {
        Action::ClientCommit { .. } | Action::ClientRead { .. } => vec![Lane::Clients],
        Action::PlannedFailover { target } | Action::ForcedFailover { target } => vec![r(target)],
        Action::DemoteToSecondary { replica }
        | Action::Suspend { replica, .. }
        | Action::Resume { replica, .. }
        | Action::Backup { replica, .. }
        | Action::RemoveReplica { replica }
        | Action::RestoreDatabase { replica, .. }
        | Action::JoinDatabase { replica, .. }
        | Action::Crash { replica }
        | Action::Restart { replica }
        | Action::DiskStall { replica }
        | Action::HealthFault { replica, .. }
        | Action::CorruptPage { replica, .. }
        | Action::CorruptLog { replica, .. } => vec![r(replica)],
        Action::LoseLogBlock { to, .. } => vec![r(to)],
        Action::SetRequiredSynchronized { .. }
        | Action::AddDatabase { .. }
        | Action::RemoveDatabase { .. } => primaries(),
        Action::Partition { a, b } | Action::Heal { a, b } => vec![node(a), node(b)],
        Action::LoseQuorum | Action::RegainQuorum => vec![Lane::Manager],
        _ => Vec::new(),
    }
}

/// What the environment has done so far that the observations do not show: cut links, lost
/// quorum, stalled log disks.
#[derive(Default)]
struct Environment {
    cuts: BTreeSet<(Node, Node)>,
    quorum_lost: bool,
    stalled: BTreeSet<u8>,
}

impl Environment {
    fn apply(&mut self, action: &Action) {
        match *action {
            Action::Partition { a, b } => {
                self.cuts.insert((a.min(b), a.max(b)));
            }
            Action::Heal { a, b } => {
                self.cuts.remove(&(a.min(b), a.max(b)));
            }
            Action::LoseQuorum => self.quorum_lost = true,
            Action::RegainQuorum => self.quorum_lost = false,
            Action::DiskStall { replica } => {
                self.stalled.insert(replica);
            }
            Action::Crash { replica } => {
                self.stalled.remove(&replica);
            }
            _ => {}
        }
    }

    fn cut_from(&self, node: Node, names: &Names) -> Option<String> {
        let others: Vec<String> = self
            .cuts
            .iter()
            .filter_map(|&(a, b)| {
                if a == node {
                    Some(names.node(b))
                } else if b == node {
                    Some(names.node(a))
                } else {
                    None
                }
            })
            .collect();
        (!others.is_empty()).then(|| format!("cut from {}", others.join(", ")))
    }
}

/// One difference from the closest allowed observation: `path: allowed → observed`.
struct Mark {
    path: String,
    allowed: String,
    observed: String,
    placed: bool,
}

/// The differences of the failing step, each placed in the cell of its field once.
#[derive(Default)]
struct Marks(Vec<Mark>);

impl Marks {
    fn parse(lines: &[String]) -> Marks {
        Marks(
            lines
                .iter()
                .map(|line| {
                    let (path, rest) = line.split_once(": ").unwrap_or((line.as_str(), ""));
                    let (allowed, observed) = rest.split_once(" → ").unwrap_or((rest, ""));
                    Mark {
                        path: path.to_owned(),
                        allowed: value_text(allowed),
                        observed: value_text(observed),
                        placed: false,
                    }
                })
                .collect(),
        )
    }

    fn covers(mark: &Mark, path: &str) -> bool {
        mark.path == path
            || mark
                .path
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    }

    /// Whether a difference is at `path` or inside it.
    fn has(&self, path: &str) -> bool {
        self.0.iter().any(|m| Self::covers(m, path))
    }

    /// The allowed values of the differences at `path` or inside it, marking them placed.
    fn take(&mut self, path: &str) -> Option<String> {
        let mut allowed = Vec::new();
        for m in &mut self.0 {
            if Self::covers(m, path) {
                m.placed = true;
                allowed.push(m.allowed.clone());
            }
        }
        (!allowed.is_empty()).then(|| allowed.join(", "))
    }

    fn placed(&self) -> usize {
        self.0.iter().filter(|m| m.placed).count()
    }
}

/// A JSON value of a diff line as a reader wants it: strings without quotes, `null` as none.
fn value_text(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) => "none".to_owned(),
        Ok(other) => other.to_string(),
        Err(_) => json.to_owned(),
    }
}

/// The text of a value serialized by serde (`"ONLINE"` → `ONLINE`).
fn label<T: serde::Serialize>(value: &T) -> String {
    value_text(&serde_json::to_string(value).unwrap_or_default())
}

/// Builds the spans of one row's cells.
struct Row<'a> {
    marks: &'a mut Marks,
}

impl Row<'_> {
    /// A field's span: `text`, highlighted when `changed`, marked with what the spec allows
    /// when the failing step differs at `path`.
    fn field(&mut self, path: &str, text: &str, class: &str, changed: bool) -> String {
        let mut classes: Vec<&str> = class.split_whitespace().collect();
        if changed {
            classes.push("changed");
        }
        let allowed = self.marks.take(path);
        if allowed.is_some() {
            classes.push("diff");
        }
        let classes = classes.join(" ");
        match allowed {
            Some(allowed) => format!(
                "<span class=\"{classes}\" data-diff=\"{}\" title=\"allowed: {}\">{}</span> <span class=\"allowed\">allowed: {}</span>",
                escape(path),
                escape(&allowed),
                escape(text),
                escape(&allowed)
            ),
            None if classes.is_empty() => escape(text),
            None => format!("<span class=\"{classes}\">{}</span>", escape(text)),
        }
    }

    fn has(&self, path: &str) -> bool {
        self.marks.has(path)
    }
}

fn replica_cell(
    row: &mut Row,
    names: &Names,
    i: usize,
    replica: &ReplicaObservation,
    before: Option<&ReplicaObservation>,
) -> String {
    let p = format!("replicas[{i}]");
    let mut out = String::new();
    if !replica.up || row.has(&format!("{p}.up")) {
        let text = if replica.up { "up" } else { "down" };
        out += &row.field(
            &format!("{p}.up"),
            text,
            "role down",
            before.is_some_and(|b| b.up != replica.up),
        );
        out.push(' ');
    }
    let role_path = format!("{p}.role");
    if replica.role.is_some() || row.has(&role_path) {
        let text = replica.role.map_or("no role".to_owned(), |r| r.to_string());
        let class = format!("role {text}");
        out += &row.field(
            &role_path,
            &text,
            &class,
            before.is_some_and(|b| b.role != replica.role),
        );
    }
    for (j, db) in replica.databases.iter().enumerate() {
        let was = before.and_then(|b| b.databases.get(j));
        out += &database(row, names, &format!("{p}.databases[{j}]"), j, db, was);
    }
    out
}

fn database(
    row: &mut Row,
    names: &Names,
    p: &str,
    j: usize,
    db: &DatabaseObservation,
    was: Option<&DatabaseObservation>,
) -> String {
    let changed = |f: &dyn Fn(&DatabaseObservation) -> String| was.is_some_and(|w| f(w) != f(db));
    let mut out = format!(
        "<div class=\"db\"><span class=\"dbname\">{}</span> ",
        escape(&names.database(j))
    );
    let path = format!("{p}.synchronization_state");
    if db.synchronization_state.is_some() || row.has(&path) {
        let text = db
            .synchronization_state
            .map_or("none".to_owned(), |s| s.to_string());
        out += &row.field(
            &path,
            &text,
            "sync",
            changed(&|d| format!("{:?}", d.synchronization_state)),
        );
        out.push(' ');
    }
    let path = format!("{p}.database_state");
    if db.database_state != hadr_types::DatabaseState::Online || row.has(&path) {
        out += &row.field(
            &path,
            &label(&db.database_state),
            "state",
            changed(&|d| label(&d.database_state)),
        );
        out.push(' ');
    }
    let path = format!("{p}.suspended");
    if db.suspended.is_some() || row.has(&path) {
        let text = db
            .suspended
            .map_or("not suspended".to_owned(), |s| format!("suspended: {s}"));
        out += &row.field(
            &path,
            &text,
            "suspended",
            changed(&|d| format!("{:?}", d.suspended)),
        );
    }
    out += "<div class=\"lsn\">";
    let lsns = [
        (
            "end",
            "end_of_log_lsn",
            db.end_of_log_lsn,
            was.map(|w| w.end_of_log_lsn),
        ),
        (
            "hardened",
            "last_hardened_lsn",
            db.last_hardened_lsn,
            was.map(|w| w.last_hardened_lsn),
        ),
        (
            "redone",
            "last_redone_lsn",
            db.last_redone_lsn,
            was.map(|w| w.last_redone_lsn),
        ),
    ];
    for (k, (word, field, lsn, before)) in lsns.into_iter().enumerate() {
        if k > 0 {
            out += " · ";
        }
        let _ = write!(
            out,
            "{word} {}",
            row.field(
                &format!("{p}.{field}"),
                &lsn.to_string(),
                "",
                before.is_some_and(|b| b != lsn)
            )
        );
    }
    out += "</div></div>";
    out
}

fn manager_cell(
    row: &mut Row,
    names: &Names,
    observation: &Observation,
    before: Option<&Observation>,
) -> String {
    let mut ready = Vec::new();
    for (i, replica) in observation.replicas.iter().enumerate() {
        for (j, db) in replica.databases.iter().enumerate() {
            let path = format!("replicas[{i}].databases[{j}].is_failover_ready");
            if db.is_failover_ready || row.has(&path) {
                let was = before
                    .and_then(|b| b.replicas.get(i))
                    .and_then(|r| r.databases.get(j))
                    .map(|d| d.is_failover_ready);
                let text = format!(
                    "{} {}{}",
                    names.replica(i),
                    names.database(j),
                    if db.is_failover_ready {
                        ""
                    } else {
                        " not ready"
                    }
                );
                ready.push(row.field(
                    &path,
                    &text,
                    "",
                    was.is_some_and(|w| w != db.is_failover_ready),
                ));
            }
        }
    }
    if ready.is_empty() {
        "<div class=\"none\">no database failover-ready</div>".to_owned()
    } else {
        format!("<div>failover-ready: {}</div>", ready.join(", "))
    }
}

fn clients_cell(
    row: &mut Row,
    names: &Names,
    observation: &Observation,
    before: Option<&Observation>,
) -> String {
    if observation.transactions.is_empty() && !row.has("transactions") {
        return "<span class=\"none\">no transaction yet</span>".to_owned();
    }
    let mut out = String::new();
    for (i, t) in observation.transactions.iter().enumerate() {
        let changed = before.is_some_and(|b| b.transactions.get(i) != Some(t));
        let _ = write!(
            out,
            "<div>{} {}: {}</div>",
            escape(&t.txn.to_string()),
            escape(&names.database(usize::from(t.database.0))),
            row.field(
                &format!("transactions[{i}].outcome"),
                &t.outcome.to_string(),
                "outcome",
                changed
            )
        );
    }
    out
}

/// The timeline: a row per step, a lane per replica, the manager and the clients.
fn table(out: &mut String, result: &ScenarioResult, timeline: &Timeline, names: &Names) {
    let replicas = timeline
        .observations
        .iter()
        .map(|o| o.replicas.len())
        .max()
        .unwrap_or(0)
        .max(names.replicas());
    out.push_str("<table class=\"timeline\">\n<colgroup><col class=\"n\"><col class=\"action\">");
    for _ in 0..replicas + 2 {
        out.push_str("<col>");
    }
    out.push_str("</colgroup>\n<thead><tr><th>step</th><th>action</th>");
    for i in 0..replicas {
        let modes = names
            .config
            .as_ref()
            .and_then(|c| c.ag.replicas.get(i))
            .map(|r| format!("{}, {}", r.availability_mode, r.failover_mode))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<th>{}<small>{}</small></th>",
            escape(&names.replica(i)),
            escape(&modes)
        );
    }
    let cluster = names
        .config
        .as_ref()
        .map(|c| format!("CLUSTER_TYPE {}", c.ag.cluster_type))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<th>cluster manager<small>{}</small></th><th>clients<small>transactions and what they were told</small></th></tr></thead>\n<tbody>",
        escape(&cluster)
    );
    let failing = (result.verdict != "pass").then(|| result.step.unwrap_or(0));
    let last = timeline
        .actions
        .len()
        .max(timeline.observations.len().saturating_sub(1))
        .max(failing.unwrap_or(0).min(timeline.actions.len()));
    let mut environment = Environment::default();
    for step in 0..=last {
        let action = step.checked_sub(1).and_then(|i| timeline.actions.get(i));
        if let Some(a) = action {
            environment.apply(a);
        }
        let observation = timeline.observations.get(step);
        let before = step
            .checked_sub(1)
            .and_then(|i| timeline.observations.get(i));
        let is_failing = failing == Some(step);
        let mut marks = if is_failing && result.verdict == "fail" {
            Marks::parse(&result.diff)
        } else {
            Marks::default()
        };
        let acted: Vec<Lane> = action.map_or_else(Vec::new, |a| lanes_of(a, before));
        let tag = action.map(|a| a.kind().name()).unwrap_or_default();
        let mut row = Row { marks: &mut marks };
        // Each lane's cell: its content and whether a difference was placed in it.
        let mut cells: Vec<(Lane, String, bool)> = Vec::new();
        let mut lanes: Vec<Lane> = (0..replicas).map(Lane::Replica).collect();
        lanes.push(Lane::Manager);
        lanes.push(Lane::Clients);
        for lane in lanes {
            let placed = row.marks.placed();
            let mut cell = String::new();
            if acted.contains(&lane) {
                let _ = write!(cell, "<div class=\"tag\">▶ {}</div>", escape(tag));
            }
            match (lane, observation) {
                (_, None) => cell += "<span class=\"none\">no observation</span>",
                (Lane::Replica(i), Some(o)) => match o.replicas.get(i) {
                    Some(r) => {
                        let was = before.and_then(|b| b.replicas.get(i));
                        cell += &replica_cell(&mut row, names, i, r, was);
                    }
                    None => cell += "<span class=\"none\">not observed</span>",
                },
                (Lane::Manager, Some(o)) => cell += &manager_cell(&mut row, names, o, before),
                (Lane::Clients, Some(o)) => cell += &clients_cell(&mut row, names, o, before),
            }
            let env = match lane {
                Lane::Replica(i) => {
                    let node = Node::Replica(i as u8);
                    let mut notes: Vec<String> =
                        environment.cut_from(node, names).into_iter().collect();
                    if environment.stalled.contains(&(i as u8)) {
                        notes.push("log disk stalled".to_owned());
                    }
                    notes
                }
                Lane::Manager => {
                    let mut notes: Vec<String> = Vec::new();
                    if environment.quorum_lost {
                        notes.push("quorum lost".to_owned());
                    }
                    notes.extend(environment.cut_from(Node::Manager, names));
                    notes
                }
                Lane::Clients => Vec::new(),
            };
            if !env.is_empty() {
                let _ = write!(cell, "<div class=\"env\">{}</div>", escape(&env.join("; ")));
            }
            let now = row.marks.placed();
            cells.push((lane, cell, now > placed));
        }
        // Differences at paths no cell shows (whole lists of different lengths, …): in the
        // cell of their lane, as lines.
        let mut action_extra = String::new();
        for m in row.marks.0.iter_mut().filter(|m| !m.placed) {
            m.placed = true;
            let line = format!(
                "<div class=\"diff-line\"><span class=\"diff\" data-diff=\"{}\">{}</span> <span class=\"allowed\">allowed: {}</span>, observed: {}</div>",
                escape(&m.path),
                escape(&m.path),
                escape(&m.allowed),
                escape(&m.observed)
            );
            let lane = lane_of_path(&m.path);
            match cells.iter_mut().find(|(l, _, _)| Some(*l) == lane) {
                Some((_, cell, marked)) => {
                    cell.push_str(&line);
                    *marked = true;
                }
                None => action_extra += &line,
            }
        }
        let words = action.map_or_else(|| "the group is set up".to_owned(), |a| names.words(a));
        let mut action_cell = escape(&words);
        if is_failing {
            let note = match result.verdict.as_str() {
                "fail" => format!(
                    "✗ not allowed by the spec: {} field{} differ{}",
                    result.diff.len(),
                    if result.diff.len() == 1 { "" } else { "s" },
                    if result.diff.len() == 1 { "s" } else { "" },
                ),
                "too_broad" => "✗ too broad to judge".to_owned(),
                _ => format!("✗ error: {}", result.error.as_deref().unwrap_or("")),
            };
            let _ = write!(
                action_cell,
                "<div class=\"verdict-note\">{}</div>",
                escape(&note)
            );
        }
        action_cell += &action_extra;
        let _ = write!(
            out,
            "<tr id=\"step-{step}\" class=\"step{}\"><th class=\"n\">{step}</th><td class=\"action\">{action_cell}</td>",
            if is_failing { " failing" } else { "" }
        );
        for (lane, cell, marked) in cells {
            let mut class = String::from("lane");
            if acted.contains(&lane) {
                class += " acted";
            }
            if marked {
                class += " diff-cell";
            }
            let _ = write!(out, "<td class=\"{class}\">{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The lane a diff path belongs to: `replicas[1]…` the replica's, `transactions…` the clients'.
fn lane_of_path(path: &str) -> Option<Lane> {
    if path.starts_with("transactions") {
        return Some(Lane::Clients);
    }
    let rest = path.strip_prefix("replicas[")?;
    let (i, _) = rest.split_once(']')?;
    i.parse().ok().map(Lane::Replica)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certify::certificate;
    use hadr_types::{
        CommitOutcome, DatabaseId, DatabaseState, Lsn, ReplicaId, Role, SyncState,
        TransactionObservation, TxnId,
    };

    fn replica(i: u8, role: Role, sync: Option<SyncState>, lsn: u64) -> ReplicaObservation {
        ReplicaObservation {
            replica: ReplicaId(i),
            up: true,
            role: Some(role),
            databases: vec![DatabaseObservation {
                database: DatabaseId(0),
                database_state: DatabaseState::Online,
                synchronization_state: sync,
                suspended: None,
                end_of_log_lsn: Lsn(lsn),
                last_hardened_lsn: Lsn(lsn),
                last_redone_lsn: Lsn(lsn),
                is_failover_ready: sync == Some(SyncState::Synchronized),
            }],
        }
    }

    /// A failure at step 2 (A cut from the manager) where B shows SYNCHRONIZING and is not
    /// failover-ready where the spec allows only SYNCHRONIZED and ready; texts that would be
    /// markup.
    fn failing() -> ScenarioResult {
        let set_up = Observation {
            replicas: vec![
                replica(0, Role::Primary, None, 0),
                replica(1, Role::Secondary, Some(SyncState::Synchronized), 0),
                replica(2, Role::Secondary, Some(SyncState::Synchronizing), 0),
            ],
            transactions: vec![],
        };
        let mut committed = set_up.clone();
        committed.transactions.push(TransactionObservation {
            txn: TxnId(1),
            database: DatabaseId(0),
            outcome: CommitOutcome::Acknowledged,
        });
        for r in &mut committed.replicas {
            r.databases[0].end_of_log_lsn = Lsn(1);
        }
        let mut failed = committed.clone();
        failed.replicas[1].databases[0].synchronization_state = Some(SyncState::Synchronizing);
        failed.replicas[1].databases[0].is_failover_ready = false;
        let mut result = ScenarioResult {
            verdict: "fail".to_owned(),
            step: Some(2),
            // Spelt in two so that docs/rules.md does not count this file as citing the rule.
            rules: vec![concat!("R-", "SYNC-6").to_owned()],
            diff: vec![
                "replicas[1].databases[0].synchronization_state: \"SYNCHRONIZED\" → \"SYNCHRONIZING\"".to_owned(),
                "replicas[1].databases[0].is_failover_ready: true → false".to_owned(),
            ],
            error: Some("<b>not bold</b> & more".to_owned()),
            ..ScenarioResult::passed("017-Partition.json", "Partition <i>")
        };
        result.actions = vec![serde_json::json!("ignored by the page")];
        result.timeline = Some(Timeline {
            config: hadr_model::DEFAULT_CONFIG_TOML.to_owned(),
            actions: vec![
                Action::ClientCommit { db: 0 },
                Action::Partition {
                    a: Node::Replica(0),
                    b: Node::Manager,
                },
            ],
            observations: vec![set_up, committed, failed],
        });
        result
    }

    /// The `<tr>` of step `step` in `page`.
    fn row(page: &str, step: usize) -> &str {
        let start = page
            .find(&format!("<tr id=\"step-{step}\""))
            .unwrap_or_else(|| panic!("no row of step {step}:\n{page}"));
        let end = start + page[start..].find("</tr>").expect("the row ends");
        &page[start..end]
    }

    #[test]
    fn the_failing_step_is_marked_and_its_differences_are_in_their_cells() {
        let page = scenario_page("<script>alert(1)</script>", &failing());
        // Escaped, never markup.
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("Partition &lt;i&gt;"));
        assert!(page.contains("&lt;b&gt;not bold&lt;/b&gt; &amp; more"));
        assert!(!page.contains("<i>") && !page.contains("<b>not"));
        // A row per step; only the last one failing.
        assert!(!row(&page, 0).contains("failing"));
        assert!(!row(&page, 1).contains("failing"));
        let failing_row = row(&page, 2);
        assert!(
            failing_row.contains("class=\"step failing\""),
            "{failing_row}"
        );
        assert!(
            failing_row.contains("network: A–manager cut"),
            "{failing_row}"
        );
        assert!(failing_row.contains("2 fields differ"), "{failing_row}");
        // B's synchronization state is marked in B's cell (the fourth cell: step, action, A,
        // B), with what the spec allows; the failover-ready flag in the manager's.
        let cells: Vec<&str> = failing_row.split("<td ").collect();
        let b = cells[3];
        assert!(b.contains("class=\"lane diff-cell\""), "{b}");
        assert!(b.contains("<span class=\"sync changed diff\" data-diff=\"replicas[1].databases[0].synchronization_state\""), "{b}");
        assert!(b.contains("allowed: SYNCHRONIZED"), "{b}");
        let manager = cells[5];
        assert!(manager.contains("diff-cell"), "{manager}");
        assert!(
            manager.contains("data-diff=\"replicas[1].databases[0].is_failover_ready\""),
            "{manager}"
        );
        assert!(manager.contains("B db1 not ready"), "{manager}");
        // The step acts on A and the manager: their lanes are marked, and say what the
        // environment did.
        assert!(
            cells[2].contains("acted") && cells[2].contains("▶ Partition"),
            "{}",
            cells[2]
        );
        assert!(cells[2].contains("cut from manager"), "{}", cells[2]);
        assert!(manager.contains("acted"), "{manager}");
        // Step 1 committed T1: the clients' lane acted on, the outcome changed.
        let commit = row(&page, 1);
        assert!(commit.contains("▶ ClientCommit"), "{commit}");
        assert!(
            commit.contains("T1 db1: <span class=\"outcome changed\">acknowledged</span>"),
            "{commit}"
        );
        // No difference is marked outside the failing row.
        assert!(!row(&page, 1).contains("diff"));
        // The summary lists the diff lines and links to the step.
        assert!(page.contains("<li><code>replicas[1].databases[0].synchronization_state: &quot;SYNCHRONIZED&quot; → &quot;SYNCHRONIZING&quot;</code></li>"));
        assert!(page.contains("href=\"#step-2\""));
        assert!(!page.contains("<script"), "no script at all");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing fetched"
        );
    }

    #[test]
    fn the_index_links_the_pages_with_their_verdicts() {
        let pass = ScenarioResult::passed("000-Crash.json", "Crash");
        let certificate = certificate(
            "external:<x>".to_owned(),
            "0123".to_owned(),
            crate::adequacy::Measure::default(),
            vec![pass, failing()],
        );
        let index = index_page(&certificate, &[None, Some("017-Partition.html".to_owned())]);
        assert!(
            index.contains("<a href=\"017-Partition.html\">017-Partition.json</a>"),
            "{index}"
        );
        assert!(index.contains("<td>000-Crash.json</td>"), "{index}");
        assert!(index.contains("FAIL at step 2"), "{index}");
        assert!(index.contains("external:&lt;x&gt;"), "{index}");
    }

    #[test]
    fn pages_are_written_for_the_failures_or_for_every_scenario() {
        let dir = std::env::temp_dir().join(format!("hadr-html-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let certificate = certificate(
            "reference-sim".to_owned(),
            "0123".to_owned(),
            crate::adequacy::Measure::default(),
            vec![ScenarioResult::passed("000-Crash.json", "Crash"), failing()],
        );
        let written = write_pages(&certificate, &dir, false).unwrap();
        assert_eq!(written.pages, vec![dir.join("017-Partition.html")]);
        assert!(written.index.exists());
        let written = write_pages(&certificate, &dir, true).unwrap();
        assert_eq!(written.pages.len(), 2);
        let page = std::fs::read_to_string(dir.join("000-Crash.html")).unwrap();
        assert!(page.contains("No timeline"), "{page}");
        // A file where the directory should be: an error naming it.
        let blocked = dir.join("017-Partition.html").join("sub");
        let e = write_pages(&certificate, &blocked, false).unwrap_err();
        assert!(e.to_string().contains("cannot create the directory"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn page_names_come_from_scenario_files() {
        assert_eq!(page_name("024-mutant-x.json"), "024-mutant-x.html");
        assert_eq!(page_name("seed-3-walk-0"), "seed-3-walk-0.html");
        assert_eq!(page_name("../a b.json"), "_._a_b.html");
        let mut taken = BTreeSet::from(["index.html".to_owned()]);
        assert_eq!(unique(page_name("index.json"), &mut taken), "index-2.html");
    }
}
