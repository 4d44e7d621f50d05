//! Paths of the spec in the rule book's words: what each step did, who did it, and the key
//! state after it. Used by `hadr check` for counterexamples and by the Explorer.

use crate::action::{Action, Node};
use crate::config::ModelConfig;
use crate::spec::AgModel;
use crate::state::{Rec, State};
use hadr_types::{CommitOutcome, DefiniteReason};
use serde::Serialize;
use std::fmt::Write;

fn node(c: &ModelConfig, n: Node) -> String {
    match n {
        Node::Replica(r) => c.replica_name(r).to_string(),
        Node::Manager => "manager".to_string(),
    }
}

/// What an action does, with names from the configuration.
pub fn action_words(c: &ModelConfig, action: &Action) -> String {
    let r = |x: u8| c.replica_name(x).to_string();
    let d = |x: u8| c.database_name(x).to_string();
    match *action {
        Action::ClientCommit { db } => format!("client commits a transaction on {}", d(db)),
        Action::PlannedFailover { target } => {
            format!(
                "operator on {}: ALTER AVAILABILITY GROUP FAILOVER",
                r(target)
            )
        }
        Action::ForcedFailover { target } => format!(
            "operator on {}: ALTER AVAILABILITY GROUP FORCE_FAILOVER_ALLOW_DATA_LOSS",
            r(target)
        ),
        Action::DemoteToSecondary { replica } => {
            format!("operator on {}: SET (ROLE = SECONDARY)", r(replica))
        }
        Action::Suspend { replica, db } => {
            format!(
                "operator on {}: ALTER DATABASE {} SET HADR SUSPEND",
                r(replica),
                d(db)
            )
        }
        Action::Resume { replica, db } => {
            format!(
                "operator on {}: ALTER DATABASE {} SET HADR RESUME",
                r(replica),
                d(db)
            )
        }
        Action::SetRequiredSynchronized { k } => {
            format!("operator: SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = {k})")
        }
        Action::Crash { replica } => format!("{} crashes", r(replica)),
        Action::DiskStall { replica } => format!("{}'s log disk stalls", r(replica)),
        Action::Restart { replica } => format!("{} restarts", r(replica)),
        Action::Partition { a, b } => format!("network: {}–{} cut", node(c, a), node(c, b)),
        Action::Heal { a, b } => format!("network: {}–{} healed", node(c, a), node(c, b)),
        Action::LoseQuorum => "cluster manager loses quorum".to_string(),
        Action::RegainQuorum => "cluster manager regains quorum".to_string(),
        Action::LoseLogBlock { to, db } => {
            format!(
                "network: the next {} log block to {} will be lost",
                d(db),
                r(to)
            )
        }
        Action::HealthFault { replica, condition } => format!(
            "{} reports a health failure: {} (level {})",
            r(replica),
            condition,
            condition.level()
        ),
        Action::AckCommit { txn } => format!("primary acknowledges T{txn} to its client"),
        Action::ShipLog { to, db } => format!("primary sends {} log to {}", d(db), r(to)),
        Action::HardenLog { replica, db } => format!("{} hardens its {} log", r(replica), d(db)),
        Action::RedoLog { replica, db } => format!("{} redoes its {} log", r(replica), d(db)),
        Action::Connect { replica } => format!("primary and {} connect", r(replica)),
        Action::SessionTimeout { replica } => {
            format!("primary's session with {} times out", r(replica))
        }
        Action::MarkSynchronized { replica, db } => {
            format!("primary records {} {} as SYNCHRONIZED", r(replica), d(db))
        }
        Action::DropFromSynchronized { replica, db } => format!(
            "primary stops waiting for {} {} (no longer SYNCHRONIZED)",
            r(replica),
            d(db)
        ),
        Action::Revert { replica, db } => {
            format!("{} reverts its {} log to the fork point", r(replica), d(db))
        }
        Action::LeaseExpiry { replica } => {
            format!(
                "{}'s lease runs out: it stops committing (RESOLVING)",
                r(replica)
            )
        }
        Action::ManagerLeaseExpiry => "manager: the primary's lease has expired".to_string(),
        Action::AutomaticFailover { target } => {
            format!("manager fails over automatically to {}", r(target))
        }
        Action::RestorePrimary { replica } => {
            format!("manager brings the group back online on {}", r(replica))
        }
        Action::LoseManager { replica } => {
            format!("{} cannot reach the manager: RESOLVING", r(replica))
        }
        Action::ResolveToSecondary { replica } => format!("{} resolves to SECONDARY", r(replica)),
        Action::ClientRead { db, intent } => format!(
            "client reads {} through the listener (ApplicationIntent={})",
            d(db),
            match intent {
                hadr_types::ApplicationIntent::ReadOnly => "ReadOnly",
                hadr_types::ApplicationIntent::ReadWrite => "ReadWrite",
            }
        ),
        Action::Backup { replica, db, kind } => {
            format!("operator on {}: {} {}", r(replica), kind, d(db))
        }
        Action::AddDatabase { db } => {
            format!("operator: ALTER AVAILABILITY GROUP ADD DATABASE {}", d(db))
        }
        Action::RemoveDatabase { db } => {
            format!(
                "operator: ALTER AVAILABILITY GROUP REMOVE DATABASE {}",
                d(db)
            )
        }
        Action::RemoveReplica { replica } => {
            format!(
                "operator: ALTER AVAILABILITY GROUP REMOVE REPLICA ON '{}'",
                r(replica)
            )
        }
        Action::RestoreDatabase { replica, db } => {
            format!(
                "operator on {}: RESTORE DATABASE {} WITH NORECOVERY",
                r(replica),
                d(db)
            )
        }
        Action::JoinDatabase { replica, db } => format!(
            "operator on {}: ALTER DATABASE {} SET HADR AVAILABILITY GROUP = {}",
            r(replica),
            d(db),
            c.ag.name
        ),
        Action::CorruptPage { replica, db } => {
            format!("{} finds a corrupt page in {}", r(replica), d(db))
        }
        Action::CorruptLog { replica, db, lsn } => format!(
            "{}'s disk: the {} log record at LSN {lsn} is damaged (fails its checksum; valid records follow)",
            r(replica),
            d(db)
        ),
        Action::SeedDatabase { replica, db } => {
            format!(
                "automatic seeding copies {} to {} and joins it",
                d(db),
                r(replica)
            )
        }
        Action::RepairFromPrimary { replica, db } => format!(
            "{} repairs its {} page with the primary's copy",
            r(replica),
            d(db)
        ),
        Action::RepairFromSecondary { db, from } => format!(
            "the primary repairs its {} page with {}'s copy",
            d(db),
            r(from)
        ),
    }
}

/// What a step did beyond its words: the outcome that depends on the state.
pub fn step_effect(m: &AgModel, before: &State, action: &Action, after: &State) -> Option<String> {
    let c = m.config();
    match *action {
        Action::ClientCommit { db } => {
            let t = after.txns.len();
            Some(match after.txns[t - 1].outcome {
                CommitOutcome::Pending => format!(
                    "T{t} logged by {} at {} LSN {}, waiting",
                    c.replica_name(after.manager.primary),
                    c.database_name(db),
                    after.history(db).len()
                ),
                other => format!("T{t}: {other}"),
            })
        }
        Action::ShipLog { to, db } => {
            let b = &before.db(to, db);
            let a = &after.db(to, db);
            if b.lose_next {
                return Some("lost in transit".to_owned());
            }
            (a.log.len() == b.log.len()).then(|| {
                format!(
                    "gap: {} refuses the block and asks for LSN {} onwards",
                    c.replica_name(to),
                    a.log.len() + 1
                )
            })
        }
        Action::PlannedFailover { target }
        | Action::ForcedFailover { target }
        | Action::AutomaticFailover { target } => {
            let lost: Vec<String> = after
                .txns
                .iter()
                .enumerate()
                .filter(|(_, t)| t.lost_in == Some(after.failovers.len() as u8 - 1))
                .map(|(i, _)| format!("T{}", i + 1))
                .collect();
            Some(format!(
                "{} is PRIMARY on fork {}{}",
                c.replica_name(target),
                after.manager.epoch,
                if lost.is_empty() {
                    String::new()
                } else {
                    format!("; acknowledged commits lost: {}", lost.join(", "))
                }
            ))
        }
        Action::Backup { replica, db, kind } => {
            let decision = m.backup_decision(before, replica, db, kind);
            Some(match decision.outcome {
                crate::state::BackupOutcome::Refused(reason) => reason.to_string(),
                crate::state::BackupOutcome::Taken { first, last } if kind.is_log() => {
                    if last < first {
                        format!("taken: no new log (chain at LSN {last})")
                    } else {
                        format!("taken: LSN {first}..={last}")
                    }
                }
                crate::state::BackupOutcome::Taken { .. } => "taken".to_string(),
            })
        }
        Action::ClientRead { db, intent } => {
            Some(match m.read_decision(before, db, intent).served {
                Ok(r) => format!("served by {}", c.replica_name(r)),
                Err(why) => format!("refused: {why}"),
            })
        }
        Action::RestoreDatabase { replica, db } => {
            Some(match m.restore_source(before, replica, db) {
                Some(_) => "applied: the database is RESTORING".to_string(),
                None => "refused: RESTORE is not allowed on an availability database (R-DB-3)"
                    .to_string(),
            })
        }
        Action::CorruptLog { replica, db, lsn } => {
            let name = c.database_name(db);
            Some(match after.db(replica, db).suspect {
                Some(lost_through) => format!(
                    "recovery will find {name} SUSPECT: usable log up to LSN {}, lost through LSN {lost_through}",
                    lsn - 1
                ),
                None => format!(
                    "recovery will take it for a torn tail: {name} ONLINE with its log cut at LSN {}",
                    lsn - 1
                ),
            })
        }
        Action::Restart { replica } => (before.replica(replica).role == hadr_types::Role::Primary
            && after.replica(replica).role != hadr_types::Role::Primary)
            .then(|| "a SUSPECT database: it restarts as SECONDARY, not PRIMARY".to_string()),
        Action::RemoveReplica { replica } => (before.serving_primary() == Some(replica))
            .then(|| "refused: the primary replica cannot be removed (R-DB-4)".to_string()),
        Action::RepairFromPrimary { replica, db } => Some(repair_words(
            m.repair_from_primary_correct(before, replica, db),
        )),
        Action::RepairFromSecondary { db, from } => Some(repair_words(
            m.repair_from_secondary_correct(before, db, from),
        )),
        Action::Connect { replica } => after
            .dbs_of(replica)
            .iter()
            .any(|d| d.suspended == Some(hadr_types::SuspendReason::Partner))
            .then(|| {
                format!(
                    "{} missed a forced failover: SUSPEND_FROM_PARTNER",
                    c.replica_name(replica)
                )
            }),
        _ => None,
    }
}

fn repair_words(correct: bool) -> String {
    if correct {
        "the page matches its source as of the needed LSN".to_string()
    } else {
        "the page does NOT match its source as of the needed LSN".to_string()
    }
}

fn records(log: &[Rec]) -> String {
    let items: Vec<String> = log
        .iter()
        .map(|r| format!("T{}@{}", r.txn, r.epoch))
        .collect();
    format!("[{}]", items.join(" "))
}

/// The key state in one line: each replica's role, logs and synchronization, the network, the
/// manager, k, and what each client was told.
pub fn state_line(m: &AgModel, s: &State) -> String {
    let c = m.config();
    let mut out = String::new();
    for (i, r) in s.replicas.iter().enumerate() {
        let id = i as u8;
        if i > 0 {
            out.push_str(" | ");
        }
        out.push_str(c.replica_name(id));
        if r.up {
            let _ = write!(out, " {}", r.role);
        } else {
            out.push_str(" down");
        }
        for (db, d) in s.dbs_of(id).iter().enumerate() {
            if c.database_count() > 1 {
                let _ = write!(out, " {}", c.database_name(db as u8));
            }
            if let Some(state) = m.sync_state(s, id, db as u8) {
                let _ = write!(out, " {state}");
            }
            if let Some(reason) = m.suspend_reason(s, id, db as u8) {
                let _ = write!(out, " {reason}");
            }
            if d.restoring {
                out.push_str(" RESTORING");
            }
            if let crate::state::Page::Corrupt { needed } = d.page {
                let _ = write!(out, " CORRUPT PAGE (needs LSN {needed})");
            }
            if let Some(lost_through) = d.suspect {
                let _ = write!(out, " SUSPECT (lost through LSN {lost_through})");
            }
            let _ = write!(out, " {}", records(&d.log));
            if usize::from(d.hardened) != d.log.len() || d.redone != d.hardened {
                let _ = write!(out, " hardened {} redone {}", d.hardened, d.redone);
            }
        }
    }
    let mut cuts = Vec::new();
    for b in 0..s.replicas.len() as u8 {
        for a in 0..b {
            if !s.net.linked(a, b) {
                cuts.push(format!("{}–{}", c.replica_name(a), c.replica_name(b)));
            }
        }
        if s.net.manager_cut(b) {
            cuts.push(format!("{}–manager", c.replica_name(b)));
        }
    }
    if !cuts.is_empty() {
        let _ = write!(out, " · cut {}", cuts.join(", "));
    }
    for (db, g) in s.groups().enumerate() {
        if !g.in_group {
            let _ = write!(
                out,
                " · {} removed from the group",
                c.database_name(db as u8)
            );
        }
    }
    if c.ag.cluster_type.has_manager() {
        let _ = write!(
            out,
            " · manager: {}lease {}",
            if s.manager.quorum { "" } else { "NO QUORUM, " },
            s.manager.lease.map_or("free", |h| c.replica_name(h))
        );
    }
    let _ = write!(out, " · k={}", s.required_synchronized);
    if !s.txns.is_empty() {
        let txns: Vec<String> = s
            .txns
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let outcome = match t.outcome {
                    CommitOutcome::DefiniteError(DefiniteReason::NoPrimary) => {
                        "refused (no primary)".to_string()
                    }
                    CommitOutcome::DefiniteError(DefiniteReason::TooFewSynchronized) => {
                        "refused (too few synchronized)".to_string()
                    }
                    other => other.to_string(),
                };
                let lost = if t.lost_in.is_some() { " LOST" } else { "" };
                format!("T{} {outcome}{lost}", i + 1)
            })
            .collect();
        let _ = write!(out, " · {}", txns.join(", "));
    }
    out
}

/// One step of a rendered path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// 1-based step number.
    pub step: usize,
    /// Who took it: client, operator, fault, internal.
    pub by: crate::action::ActionClass,
    /// The action kind.
    pub kind: &'static str,
    /// What happened, in words.
    pub action: String,
    /// The outcome, where it depends on the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// The key state after the step.
    pub state: String,
}

/// A path from the initial state, rendered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// The key state before the first step.
    pub initial: String,
    /// The steps.
    pub steps: Vec<Step>,
}

impl Trace {
    /// Renders a path given as the initial state and its actions.
    pub fn render(m: &AgModel, initial: &State, actions: &[Action]) -> Trace {
        let mut state = initial.clone();
        let mut steps = Vec::with_capacity(actions.len());
        for (i, action) in actions.iter().enumerate() {
            let next = m.apply(&state, action);
            steps.push(Step {
                step: i + 1,
                by: action.kind().class(),
                kind: action.kind().name(),
                action: action_words(m.config(), action),
                effect: step_effect(m, &state, action, &next),
                state: state_line(m, &next),
            });
            state = next;
        }
        Trace {
            initial: state_line(m, initial),
            steps,
        }
    }

    /// The trace as numbered text, one step per two lines.
    pub fn to_text(&self) -> String {
        let mut out = format!("   0. initial state\n      {}\n", self.initial);
        for s in &self.steps {
            let _ = write!(out, "  {:>2}. [{}] {}", s.step, by_word(s.by), s.action);
            if let Some(effect) = &s.effect {
                let _ = write!(out, " → {effect}");
            }
            let _ = write!(out, "\n      {}\n", s.state);
        }
        out
    }
}

fn by_word(class: crate::action::ActionClass) -> &'static str {
    use crate::action::ActionClass::*;
    match class {
        Client => "client",
        Operator => "operator",
        Fault => "fault",
        Internal => "protocol",
    }
}
