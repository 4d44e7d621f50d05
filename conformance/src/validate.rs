//! Trace validation, the other direction from certification: an implementation's own event
//! log (`hadr-events/1`, docs/event-log.md) is checked against the model. Is there a
//! behaviour of the spec that explains every line of it?
//!
//! The log is replayed by refinement, as a scenario is judged ([`crate::refine`]): a
//! *frontier*, the set of states the model may be in given every event so far. Before each
//! event the frontier is closed under internal actions: any number of them may have happened
//! since the last event (all of the closure is kept, not only the states at rest: a replica
//! may log between two internal steps). Then:
//!
//! - an `action` event (an environment action, written by whoever performed it) applies to
//!   every state where the model enables it; the others stay as they are (the system refused
//!   it there, as the judge allows);
//! - a `view` event keeps the states whose observation of that replica is the view;
//! - a `txn` event keeps the states whose client outcome of that transaction is the one
//!   logged.
//!
//! The log is valid when the frontier never empties. When it empties, the events up to the
//! failing one are replayed on every spec mutant: those that explain them name the rule broken
//! first, as a certificate does ([`crate::diagnose`]). Views are compared whenever they are
//! logged, not only at quiescence: a replica may log a view between two internal steps, and
//! the closure holds every state between them. The check is of *existence*: a replica that
//! changes without logging it is not caught, and a view that some interleaving explains is
//! accepted.

use crate::diagnose::involved_rules;
use crate::judge::{diff, distance};
use crate::refine::{is_environment, take_or_refuse, Closure};
use hadr_model::{Action, AgModel, Bounds, ModelConfig, State};
use hadr_types::event_log::FORMAT;
use hadr_types::{AgConfig, Observation, ReplicaObservation, TransactionObservation};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

pub use crate::generate::MAX_FRONTIER;

/// Where a line is: `file:line` (1-based).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file, as named on the command line.
    pub file: String,
    /// The line, from 1.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// What an event says.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An environment action was performed (a client commit, an operator command, a fault).
    Action(Action),
    /// A replica's `sys.dm_hadr_*` views, as they are from now on.
    View(ReplicaObservation),
    /// What a client was told about its transaction.
    Txn(TransactionObservation),
}

/// One event of a log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Its time (the same clock and unit in every file merged).
    pub t: u64,
    /// Its line.
    pub at: Location,
    /// What it says.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The configuration a header gives.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderConfig {
    /// A model configuration (TOML text with `[bounds]` and `[ag]`), as a scenario's.
    Model(ModelConfig),
    /// An availability group alone (the JSON of an `AgConfig`).
    Group(AgConfig),
}

impl HeaderConfig {
    fn ag(&self) -> &AgConfig {
        match self {
            HeaderConfig::Model(m) => &m.ag,
            HeaderConfig::Group(ag) => ag,
        }
    }
}

/// One file of a log, read.
#[derive(Clone, Debug)]
pub struct LogFile {
    /// The file's name.
    pub name: String,
    /// The writer its header names (`R0`, `driver`), if any.
    pub source: Option<String>,
    /// The configuration its header gives, if any.
    pub config: Option<HeaderConfig>,
    /// Its events, in file order.
    pub events: Vec<Event>,
}

/// A whole log: its files merged.
#[derive(Clone, Debug)]
pub struct EventLog {
    /// The model configuration the events are checked against.
    pub config: ModelConfig,
    /// The events of every file, merged by time.
    pub events: Vec<Event>,
}

/// Why a log could not be read: bad input, not an invalid behaviour.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No file given.
    #[error("no event log given: name one or more hadr-events/1 files")]
    NoFiles,
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file has no line at all.
    #[error(
        "{file}: empty; an event log starts with a header line {{\"format\":\"{FORMAT}\", …}}"
    )]
    Empty {
        /// The file.
        file: String,
    },
    /// A line is not JSON.
    #[error("{at}: not JSON: {message}")]
    Json {
        /// The line.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A line is JSON but not an object.
    #[error("{at}: a line of an event log is a JSON object, not {found}")]
    NotAnObject {
        /// The line.
        at: Location,
        /// What it is.
        found: String,
    },
    /// The first line is not a header.
    #[error("{at}: the first line must be the header {{\"format\":\"{FORMAT}\", …}}")]
    MissingHeader {
        /// The line.
        at: Location,
    },
    /// Another format or version.
    #[error("{at}: format {found} is not {FORMAT:?}")]
    Format {
        /// The line.
        at: Location,
        /// The format found (JSON).
        found: String,
    },
    /// A header after the first line.
    #[error("{at}: a second header; merge files by naming them all to `hadr validate` rather than concatenating them")]
    HeaderAgain {
        /// The line.
        at: Location,
    },
    /// A field this format does not have.
    #[error("{at}: unknown field {field:?} (a header has format, source, config; an event has t and one of action, view, txn)")]
    UnknownField {
        /// The line.
        at: Location,
        /// The field.
        field: String,
    },
    /// The header's configuration is unusable.
    #[error("{at}: the configuration: {message}")]
    Config {
        /// The line.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// Two headers give different groups.
    #[error(
        "{at}: this configuration differs from the one of {first}: the files are not of one run"
    )]
    ConfigMismatch {
        /// The header that differs.
        at: Location,
        /// The first header with a configuration.
        first: Location,
    },
    /// No header gives the configuration.
    #[error("no header gives the configuration: the driver's file (or any one) needs \"config\" in its header")]
    NoConfig,
    /// An event without a time, or with one that is not a non-negative integer.
    #[error(
        "{at}: \"t\" must be a non-negative integer (the same clock in every file), found {found}"
    )]
    BadTime {
        /// The line.
        at: Location,
        /// What was found instead (JSON; `null` when missing).
        found: String,
    },
    /// An event line with none of `action`, `view`, `txn`.
    #[error("{at}: an event has one of \"action\", \"view\" or \"txn\"")]
    NoEvent {
        /// The line.
        at: Location,
    },
    /// An event line with several of them.
    #[error("{at}: an event has only one of \"action\", \"view\" or \"txn\"; write one line each")]
    SeveralEvents {
        /// The line.
        at: Location,
    },
    /// An `action` that is not an action of the spec.
    #[error("{at}: not an action of the spec (externally tagged, as in the corpus: {{\"ClientCommit\":{{\"db\":0}}}}): {message}")]
    BadAction {
        /// The line.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// An internal action in the log.
    #[error("{at}: {action} is an internal action (the implementation's own business): a log carries environment actions only")]
    InternalAction {
        /// The line.
        at: Location,
        /// The action.
        action: String,
    },
    /// A `view` that is not a replica observation.
    #[error("{at}: not a replica's view (hadr_types::ReplicaObservation, as in a scenario's observations): {message}")]
    BadView {
        /// The line.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A `txn` that is not a transaction observation.
    #[error("{at}: not a client outcome (hadr_types::TransactionObservation: txn, database, outcome): {message}")]
    BadTxn {
        /// The line.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A view of a replica the group does not have.
    #[error("{at}: replica {replica} is not in the group, which has {replicas} (numbered from 0)")]
    NoSuchReplica {
        /// The line.
        at: Location,
        /// The replica.
        replica: u8,
        /// How many the group has.
        replicas: usize,
    },
    /// More client commits than the model can number.
    #[error("the log has {commits} ClientCommit actions; the model follows at most {max}: split the run")]
    TooManyCommits {
        /// ClientCommit actions in the log.
        commits: usize,
        /// The model's limit.
        max: u8,
    },
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn parse_header(
    at: &Location,
    map: serde_json::Map<String, Value>,
) -> Result<(Option<String>, Option<HeaderConfig>), LogError> {
    if !map.contains_key("format") {
        return Err(LogError::MissingHeader { at: at.clone() });
    }
    let mut source = None;
    let mut config = None;
    let mut format = None;
    for (key, value) in map {
        match key.as_str() {
            "format" => format = Some(value),
            "source" => {
                source = Some(
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned),
                )
            }
            "config" => {
                let bad = |message: String| LogError::Config {
                    at: at.clone(),
                    message,
                };
                config = Some(match value {
                    Value::String(toml) => HeaderConfig::Model(
                        ModelConfig::from_toml_str(&toml).map_err(|e| bad(e.to_string()))?,
                    ),
                    Value::Object(_) => HeaderConfig::Group(
                        AgConfig::from_json_str(&value.to_string())
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    other => {
                        return Err(bad(format!(
                            "expected the TOML text of a model configuration or an AgConfig object, found {}",
                            describe(&other)
                        )))
                    }
                });
            }
            _ => {
                return Err(LogError::UnknownField {
                    at: at.clone(),
                    field: key,
                })
            }
        }
    }
    match format {
        Some(Value::String(f)) if f == FORMAT => Ok((source, config)),
        Some(found) => Err(LogError::Format {
            at: at.clone(),
            found: found.to_string(),
        }),
        None => Err(LogError::MissingHeader { at: at.clone() }),
    }
}

fn parse_event(at: Location, map: serde_json::Map<String, Value>) -> Result<Event, LogError> {
    if map.contains_key("format") {
        return Err(LogError::HeaderAgain { at });
    }
    let mut t = None;
    let mut kind = None;
    for (key, value) in map {
        let parsed =
            match key.as_str() {
                "t" => {
                    t = Some(value.as_u64().ok_or_else(|| LogError::BadTime {
                        at: at.clone(),
                        found: value.to_string(),
                    })?);
                    continue;
                }
                "action" => {
                    let action: Action =
                        serde_json::from_value(value).map_err(|e| LogError::BadAction {
                            at: at.clone(),
                            message: e.to_string(),
                        })?;
                    if !is_environment(&action) {
                        return Err(LogError::InternalAction {
                            at,
                            action: format!("{action:?}"),
                        });
                    }
                    EventKind::Action(action)
                }
                "view" => EventKind::View(serde_json::from_value(value).map_err(|e| {
                    LogError::BadView {
                        at: at.clone(),
                        message: e.to_string(),
                    }
                })?),
                "txn" => {
                    EventKind::Txn(serde_json::from_value(value).map_err(|e| LogError::BadTxn {
                        at: at.clone(),
                        message: e.to_string(),
                    })?)
                }
                _ => return Err(LogError::UnknownField { at, field: key }),
            };
        if kind.replace(parsed).is_some() {
            return Err(LogError::SeveralEvents { at });
        }
    }
    let Some(t) = t else {
        return Err(LogError::BadTime {
            at,
            found: "null".to_owned(),
        });
    };
    let Some(kind) = kind else {
        return Err(LogError::NoEvent { at });
    };
    Ok(Event { t, at, kind })
}

/// Reads one file of a log (`name` names it in errors). Blank lines are skipped.
pub fn parse_file(name: &str, text: &str) -> Result<LogFile, LogError> {
    let mut file = LogFile {
        name: name.to_owned(),
        source: None,
        config: None,
        events: Vec::new(),
    };
    let mut header_seen = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = Location {
            file: name.to_owned(),
            line: i + 1,
        };
        let value: Value = serde_json::from_str(line).map_err(|e| LogError::Json {
            at: at.clone(),
            message: e.to_string(),
        })?;
        let Value::Object(map) = value else {
            return Err(LogError::NotAnObject {
                found: describe(&value),
                at,
            });
        };
        if header_seen {
            file.events.push(parse_event(at, map)?);
        } else {
            (file.source, file.config) = parse_header(&at, map)?;
            header_seen = true;
        }
    }
    if !header_seen {
        return Err(LogError::Empty {
            file: name.to_owned(),
        });
    }
    Ok(file)
}

/// Merges the files of one run by time; events of equal time keep the order of the files
/// as given, and each file's events keep their order (a k-way merge: a file's clock going
/// backwards does not reorder it). Checks that the headers agree on the configuration and
/// that every view is of a replica of the group.
pub fn merge(files: Vec<LogFile>) -> Result<EventLog, LogError> {
    if files.is_empty() {
        return Err(LogError::NoFiles);
    }
    let mut config: Option<(HeaderConfig, Location)> = None;
    for file in &files {
        let Some(c) = &file.config else { continue };
        let at = Location {
            file: file.name.clone(),
            line: 1,
        };
        match &config {
            None => config = Some((c.clone(), at)),
            Some((first, first_at)) => {
                let bounds_differ = matches!(
                    (first, c),
                    (HeaderConfig::Model(a), HeaderConfig::Model(b)) if a.bounds != b.bounds
                );
                if first.ag() != c.ag() || bounds_differ {
                    return Err(LogError::ConfigMismatch {
                        at,
                        first: first_at.clone(),
                    });
                }
            }
        }
    }
    let Some((config, config_at)) = config else {
        return Err(LogError::NoConfig);
    };
    let mut heads = vec![0usize; files.len()];
    let mut events = Vec::with_capacity(files.iter().map(|f| f.events.len()).sum());
    loop {
        let next = files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.events.get(heads[i]).map(|e| (e.t, i)))
            .min();
        let Some((_, i)) = next else { break };
        events.push(files[i].events[heads[i]].clone());
        heads[i] += 1;
    }
    let commits = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Action(Action::ClientCommit { .. })))
        .count();
    let max = hadr_model::config::MAX_TRANSACTIONS;
    if commits > usize::from(max) {
        return Err(LogError::TooManyCommits { commits, max });
    }
    // The model numbers every commit: its budget must allow those of the log.
    let (ag, mut bounds) = match config {
        HeaderConfig::Model(m) => (m.ag, m.bounds),
        HeaderConfig::Group(ag) => (ag, Bounds::for_scripts()),
    };
    bounds.transactions = bounds.transactions.max(commits as u8);
    let config = ModelConfig::new(ag, bounds).map_err(|e| LogError::Config {
        at: config_at,
        message: e.to_string(),
    })?;
    for e in &events {
        if let EventKind::View(v) = &e.kind {
            if usize::from(v.replica.0) >= config.replica_count() {
                return Err(LogError::NoSuchReplica {
                    at: e.at.clone(),
                    replica: v.replica.0,
                    replicas: config.replica_count(),
                });
            }
        }
    }
    Ok(EventLog { config, events })
}

/// Reads and merges the files of one run.
pub fn read_logs(paths: &[PathBuf]) -> Result<EventLog, LogError> {
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| LogError::Read {
            path: path.clone(),
            source,
        })?;
        files.push(parse_file(&path.display().to_string(), &text)?);
    }
    merge(files)
}

/// Why a log is invalid: the first event no behaviour of the model explains.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// The event's line.
    pub at: Location,
    /// The event's time.
    pub t: u64,
    /// The event (as its line has it, less the time).
    pub event: EventKind,
    /// How many events before it were explained.
    pub explained: usize,
    /// What the model cannot do.
    pub reason: String,
    /// The last environment action before the event.
    pub after: Option<Action>,
    /// The fields where the event differs from the closest things the model allows there
    /// (`path: allowed → logged`), closest first, at most [`CLOSEST`].
    pub closest: Vec<Vec<String>>,
    /// How many distinct things the model allows there.
    pub allowed: usize,
    /// The rules involved, the one broken first ([`crate::diagnose`]).
    pub rules: Vec<&'static str>,
    /// The spec mutants whose behaviour explains every event up to this one, as `name
    /// (breaks RULE)`.
    pub like: Vec<String>,
}

/// How many of the closest allowed views a failure report shows.
pub const CLOSEST: usize = 3;

/// The verdict on a log.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// A behaviour of the model explains every event.
    Valid {
        /// Events checked.
        events: usize,
        /// The most states the frontier held.
        largest_frontier: usize,
    },
    /// An event no behaviour explains.
    Invalid(Box<Failure>),
    /// The frontier grew past the cap: the log can be neither validated nor refuted.
    TooBroad {
        /// The event before which it did.
        at: Option<Location>,
        /// Events explained before it.
        explained: usize,
        /// The cap.
        max_frontier: usize,
    },
}

impl Verdict {
    /// The verdict as a human report (what `hadr validate` prints without `--json`).
    pub fn report(&self) -> String {
        match self {
            Verdict::Valid {
                events,
                largest_frontier,
            } => format!(
                "VALID: a behaviour of the model explains all {events} events (at most {largest_frontier} states in the frontier)\n"
            ),
            Verdict::TooBroad {
                at,
                explained,
                max_frontier,
            } => {
                let at = at.as_ref().map_or_else(|| "the end".to_owned(), |a| a.to_string());
                format!("TOO BROAD: the frontier passed {max_frontier} states before {at} ({explained} events explained); raise --max-frontier or log views more often\n")
            }
            Verdict::Invalid(f) => {
                let event = serde_json::to_string(&f.event).unwrap_or_default();
                let mut out = format!(
                    "INVALID at {} (t = {}, after {} events explained): {}\n  event: {event}\n",
                    f.at, f.t, f.explained, f.reason
                );
                if let Some(a) = &f.after {
                    let a = serde_json::to_string(a).unwrap_or_default();
                    out.push_str(&format!("  after: {a}\n"));
                }
                for (i, lines) in f.closest.iter().enumerate() {
                    let which = if i == 0 { "closest" } else { "next" };
                    out.push_str(&format!(
                        "  {which} allowed ({} of {} allowed; allowed → logged):\n",
                        i + 1,
                        f.allowed
                    ));
                    for line in lines {
                        out.push_str(&format!("    {line}\n"));
                    }
                }
                out.push_str(&format!("  rules: {}\n", f.rules.join(", ")));
                if !f.like.is_empty() {
                    out.push_str(&format!("  behaves like spec mutant {}\n", f.like.join(", ")));
                }
                out
            }
        }
    }
}

/// A transaction's place in an observation (transactions are numbered from 1).
fn txn_index(t: &TransactionObservation) -> usize {
    (t.txn.0 as usize).saturating_sub(1)
}

/// What the model allows where the event fails, projected so that the allowed and the logged
/// differ only in what the event tells: the other replicas and transactions are taken from
/// one allowed observation, `filler`, on both sides.
fn explain(
    m: &AgModel,
    frontier: &[State],
    event: &Event,
    explained: usize,
    after: Option<Action>,
    last_views: &[Option<ReplicaObservation>],
) -> Failure {
    let mut allowed: Vec<(String, Observation)> = frontier
        .iter()
        .map(|s| m.observe(s))
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|o| (serde_json::to_string(&o).unwrap_or_default(), o))
        .collect();
    allowed.sort_by(|a, b| a.0.cmp(&b.0));
    let allowed: Vec<Observation> = allowed.into_iter().map(|(_, o)| o).collect();
    let filler = allowed.first().cloned().unwrap_or(Observation {
        replicas: Vec::new(),
        transactions: Vec::new(),
    });
    let (observed, projected, previous, reason): (_, Vec<Observation>, _, _) = match &event.kind {
        EventKind::View(v) => {
            let r = usize::from(v.replica.0);
            let with = |view: &ReplicaObservation| {
                let mut o = filler.clone();
                if let Some(slot) = o.replicas.get_mut(r) {
                    *slot = view.clone();
                }
                o
            };
            let projected = allowed
                .iter()
                .filter_map(|o| o.replicas.get(r))
                .map(with)
                .collect();
            let previous = last_views.get(r).cloned().flatten().map(|p| with(&p));
            let reason = format!(
                "no state the model can be in shows this view of replica {r} ({})",
                m.config().replica_name(v.replica.0)
            );
            (with(v), projected, previous, reason)
        }
        EventKind::Txn(t) => {
            let k = txn_index(t);
            let with = |txn: Option<&TransactionObservation>| Observation {
                replicas: filler.replicas.clone(),
                transactions: txn.into_iter().cloned().collect(),
            };
            let present: Vec<Observation> = allowed
                .iter()
                .filter_map(|o| o.transactions.get(k))
                .map(|x| with(Some(x)))
                .collect();
            let reason = if present.is_empty() {
                format!(
                    "the model has no transaction {} here: no ClientCommit before it explains it",
                    t.txn.0
                )
            } else {
                format!(
                    "no state the model can be in tells the client this about transaction {}",
                    t.txn.0
                )
            };
            (with(Some(t)), present, None, reason)
        }
        // An action leaves the states where it is not enabled as they are: never empty.
        EventKind::Action(_) => (
            filler.clone(),
            Vec::new(),
            None,
            "the frontier is empty".to_owned(),
        ),
    };
    let mut projected: Vec<(usize, String, Observation)> = projected
        .into_iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|o| {
            (
                distance(&o, &observed),
                serde_json::to_string(&o).unwrap_or_default(),
                o,
            )
        })
        .collect();
    projected.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let projected: Vec<Observation> = projected.into_iter().map(|(_, _, o)| o).collect();
    let rename = |line: String| match &event.kind {
        // The projection holds one transaction: name it by its place.
        EventKind::Txn(t) => line.replacen(
            "transactions[0]",
            &format!("transactions[{}]", txn_index(t)),
            1,
        ),
        _ => line,
    };
    Failure {
        at: event.at.clone(),
        t: event.t,
        event: event.kind.clone(),
        explained,
        reason,
        after,
        closest: projected
            .iter()
            .take(CLOSEST)
            .map(|e| diff(e, &observed).into_iter().map(rename).collect())
            .collect(),
        allowed: projected.len(),
        rules: involved_rules(
            m.config(),
            previous.as_ref(),
            &projected,
            &observed,
            after.as_ref(),
        ),
        like: Vec::new(),
    }
}

/// How a replay of events on a model ended.
enum Replay {
    /// Every event explained.
    Explained {
        /// The most states the frontier held.
        largest: usize,
    },
    /// Event `index` is not explained by any state of `frontier`.
    Unexplained {
        index: usize,
        frontier: Vec<State>,
        after: Option<Action>,
        last_views: Vec<Option<ReplicaObservation>>,
    },
    /// The frontier grew past the cap before event `index`.
    TooBroad { index: usize },
}

/// Replays `events` on `m` (see the module's documentation).
fn replay_events(m: &AgModel, events: &[Event], max_frontier: usize) -> Replay {
    let mut states = vec![m.initial_state()];
    let mut after = None;
    let mut last_views = vec![None; m.config().replica_count()];
    let mut largest = 1;
    for (index, event) in events.iter().enumerate() {
        let Ok(closure) = Closure::explore(m, states, max_frontier) else {
            return Replay::TooBroad { index };
        };
        let frontier = closure.states;
        largest = largest.max(frontier.len());
        let next: Vec<State> = match &event.kind {
            EventKind::Action(a) => take_or_refuse(m, &frontier, a),
            EventKind::View(v) => frontier
                .iter()
                .filter(|s| m.observe(s).replicas.get(usize::from(v.replica.0)) == Some(v))
                .cloned()
                .collect(),
            EventKind::Txn(t) => frontier
                .iter()
                .filter(|s| m.observe(s).transactions.get(txn_index(t)) == Some(t))
                .cloned()
                .collect(),
        };
        if next.is_empty() {
            return Replay::Unexplained {
                index,
                frontier,
                after,
                last_views,
            };
        }
        match &event.kind {
            EventKind::Action(a) => after = Some(*a),
            EventKind::View(v) => last_views[usize::from(v.replica.0)] = Some(v.clone()),
            EventKind::Txn(_) => {}
        }
        states = next;
    }
    Replay::Explained { largest }
}

/// Checks `log` against the model: replays it as a frontier (see the module's documentation),
/// giving up when the frontier passes `max_frontier` states.
pub fn validate(log: &EventLog, max_frontier: usize) -> Verdict {
    let m = AgModel::new(log.config.clone()).for_conformance();
    match replay_events(&m, &log.events, max_frontier) {
        Replay::Explained { largest } => Verdict::Valid {
            events: log.events.len(),
            largest_frontier: largest,
        },
        Replay::TooBroad { index } => Verdict::TooBroad {
            at: Some(log.events[index].at.clone()),
            explained: index,
            max_frontier,
        },
        Replay::Unexplained {
            index,
            frontier,
            after,
            last_views,
        } => {
            let event = &log.events[index];
            let mut failure = explain(&m, &frontier, event, index, after, &last_views);
            // The spec mutants that explain the events up to this one name the rule first.
            let prefix = &log.events[..=index];
            let like: Vec<hadr_model::Mutant> = crate::adequacy::applicable_mutants(&log.config)
                .into_iter()
                .filter(|&mutant| {
                    let bug = AgModel::with_mutant(log.config.clone(), mutant).for_conformance();
                    matches!(
                        replay_events(&bug, prefix, max_frontier),
                        Replay::Explained { .. }
                    )
                })
                .collect();
            let diagnosis = crate::diagnose::ranked(like, std::mem::take(&mut failure.rules));
            failure.rules = diagnosis.rules;
            failure.like = diagnosis
                .like
                .iter()
                .map(|m| format!("{m} (breaks {})", m.breaks()))
                .collect();
            Verdict::Invalid(Box::new(failure))
        }
    }
}
