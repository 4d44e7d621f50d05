//! Advice about a configuration, derived from what the checker found: every line is backed by
//! the verdicts of named properties (a hazard discovered, an action kind that cannot happen, a
//! routing goal reached), never by a rule of thumb. `hadr check --tsql` prints it.

use crate::backup::{is_preferred_backup_replica, AgBackupView, DatabaseRef, ReplicaBackupView};
use crate::check::{CheckReport, Verdict};
use crate::config::ModelConfig;
use hadr_types::{AvailabilityMode, PrimaryConnections, Role};
use serde::Serialize;

/// One line of advice and the properties whose verdicts back it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// What the user should know.
    pub text: String,
    /// The rule or hazard ids of the properties behind it.
    pub backed_by: Vec<&'static str>,
}

fn verdict(report: &CheckReport, name: &str) -> Option<Verdict> {
    report
        .properties
        .iter()
        .find(|p| p.name == name || (p.rule == name && p.group != crate::PropertyGroup::Coverage))
        .map(|p| p.verdict)
}

fn found(report: &CheckReport, name: &str) -> bool {
    verdict(report, name) == Some(Verdict::Discovered)
}

fn not_applicable<'r>(report: &'r CheckReport, action: &str) -> Option<&'r str> {
    report
        .not_applicable
        .iter()
        .find(|n| n.action == action)
        .map(|n| n.reason)
}

fn names(config: &ModelConfig, pick: impl Fn(u8) -> bool) -> Vec<String> {
    (0..config.replica_count() as u8)
        .filter(|&r| pick(r))
        .map(|r| config.replica_name(r).to_string())
        .collect()
}

fn list(names: &[String]) -> String {
    match names {
        [] => "no replica".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The advice for a configuration, from a completed check of it.
pub fn advise(config: &ModelConfig, report: &CheckReport) -> Vec<Advice> {
    let mut out = Vec::new();
    let mut say = |text: String, backed_by: Vec<&'static str>| out.push(Advice { text, backed_by });
    let ag = &config.ag;
    let primary = config.replica_name(0).to_string();
    let synchronous = names(config, |r| r > 0 && config.is_synchronous(r));
    let asynchronous = names(config, |r| {
        ag.replicas[usize::from(r)].availability_mode == AvailabilityMode::AsynchronousCommit
    });

    // Failover.
    match not_applicable(report, "AutomaticFailover") {
        Some(reason) => say(
            format!(
                "No replica can fail over automatically ({reason}): only an operator can make \
                 another replica primary, by a planned or a forced failover."
            ),
            vec!["R-FAIL-2"],
        ),
        None if found(report, "H5") => say(
            format!(
                "The cluster manager can fail over automatically to {} without losing an \
                 acknowledged commit (H5).",
                list(&names(config, |r| r > 0 && config.is_automatic(r)))
            ),
            vec!["R-FAIL-2", "H5"],
        ),
        None => {}
    }

    // Commit participants and REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT.
    let k = ag.required_synchronized_secondaries_to_commit;
    if k >= 1 && found(report, "H4") {
        say(
            format!(
                "With REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = {k}, the primary refuses \
                 commits whenever fewer than {k} of {} are SYNCHRONIZED, e.g. while one is down \
                 or catching up (H4).",
                list(&synchronous)
            ),
            vec!["R-COMMIT-5", "H4"],
        );
    }
    if k == 0 && found(report, "H1") {
        say(
            format!(
                "With REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 0, a synchronous secondary \
                 ({}) whose session timed out stops holding commits back; a forced failover to \
                 it then loses what it missed (H1). k = 1 trades that for refused commits.",
                list(&synchronous)
            ),
            vec!["R-COMMIT-4", "H1"],
        );
    }
    if found(report, "H2") {
        say(
            format!(
                "A forced failover to {} (ASYNCHRONOUS_COMMIT) can lose acknowledged commits: \
                 choose the target with the highest end_of_log_lsn (H2).",
                list(&asynchronous)
            ),
            vec!["R-FAIL-5", "H2"],
        );
    }
    if found(report, "H3") {
        say(
            format!(
                "After a forced failover, {primary} comes back SUSPEND_FROM_PARTNER holding \
                 commits the new history lacks; RESUME reverts them, so copy what you need \
                 first (H3)."
            ),
            vec!["R-FAIL-4", "H3"],
        );
    }

    // Reads and the listener.
    if not_applicable(report, "ClientRead").is_none() {
        let to_secondary = "R-READ-3 a read-intent connection is routed to a secondary";
        let fallback = "R-READ-3 a read-intent connection falls back to the primary";
        if found(report, to_secondary) {
            say(
                "Read-intent connections reach readable secondaries along each primary's \
                 READ_ONLY_ROUTING_LIST, and only secondaries that are SYNCHRONIZING or \
                 SYNCHRONIZED serve them (R-READ-2)."
                    .to_string(),
                vec!["R-READ-3", "R-READ-2"],
            );
        } else if verdict(report, to_secondary) == Some(Verdict::Undiscovered) {
            say(
                "No read-intent connection ever reaches a secondary: give the replicas \
                 SECONDARY_ROLE (ALLOW_CONNECTIONS = READ_ONLY, READ_ONLY_ROUTING_URL = …) and \
                 the primaries a READ_ONLY_ROUTING_LIST."
                    .to_string(),
                vec!["R-READ-3"],
            );
        }
        if found(report, fallback) {
            say(
                "When no listed secondary can take it, a read-intent connection goes to the \
                 primary."
                    .to_string(),
                vec!["R-READ-3"],
            );
        } else if verdict(report, fallback) == Some(Verdict::Undiscovered)
            && ag
                .replicas
                .iter()
                .all(|r| r.primary_role.allow_connections == PrimaryConnections::ReadWrite)
        {
            say(
                "When no listed secondary can take it, a read-intent connection is refused: \
                 every replica's PRIMARY_ROLE (ALLOW_CONNECTIONS = READ_WRITE) refuses read \
                 intent, so the primary is never the fallback."
                    .to_string(),
                vec!["R-READ-1", "R-READ-3"],
            );
        }
    }

    // Backups.
    if verdict(report, "R-BACKUP-5") == Some(Verdict::Holds) {
        let view = AgBackupView {
            preference: ag.automated_backup_preference,
            tie_break: ag.policy.backup_tie_break,
            replicas: ag
                .replicas
                .iter()
                .enumerate()
                .map(|(i, r)| ReplicaBackupView {
                    name: r.name.clone(),
                    role: if i == 0 {
                        Role::Primary
                    } else {
                        Role::Secondary
                    },
                    online: true,
                    priority: r.backup_priority,
                })
                .collect(),
        };
        let preferred = names(config, |r| {
            is_preferred_backup_replica(&view, usize::from(r), DatabaseRef::Availability)
        });
        say(
            format!(
                "With every replica online and {primary} primary, scripted backup jobs \
                 (fn_hadr_backup_is_preferred_replica, AUTOMATED_BACKUP_PREFERENCE {}) run on \
                 {} (R-BACKUP-5).",
                ag.automated_backup_preference.as_str(),
                list(&preferred)
            ),
            vec!["R-BACKUP-5"],
        );
    }
    if found(report, "H6") {
        say(
            "Log backups may be taken on any replica: they form one chain across replicas \
             (H6), and a secondary backs up only while it is SYNCHRONIZED or SYNCHRONIZING \
             (R-BACKUP-2)."
                .to_string(),
            vec!["R-BACKUP-3", "H6"],
        );
    }

    // Page repair.
    match not_applicable(report, "RepairFromSecondary") {
        Some(reason) if not_applicable(report, "CorruptPage").is_none() => say(
            format!(
                "A corrupt page on the primary can never be repaired automatically ({reason})."
            ),
            vec!["R-PAGE-2"],
        ),
        None if found(report, "R-PAGE-2 action RepairFromSecondary") => say(
            format!(
                "A corrupt page on the primary is repaired from a SYNCHRONIZED secondary ({}); \
                 one on a secondary, from the primary (R-PAGE-1/2).",
                list(&synchronous)
            ),
            vec!["R-PAGE-1", "R-PAGE-2"],
        ),
        _ => {}
    }

    // Which hazards the bounds reach.
    let hazards: Vec<(&str, bool)> = ["H1", "H2", "H3", "H4", "H5", "H6"]
        .into_iter()
        .filter_map(|h| verdict(report, h).map(|v| (h, v == Verdict::Discovered)))
        .collect();
    let reached: Vec<&str> = hazards.iter().filter(|h| h.1).map(|h| h.0).collect();
    let missed: Vec<&str> = hazards.iter().filter(|h| !h.1).map(|h| h.0).collect();
    say(
        format!(
            "Hazards reachable within these bounds: {}{}.",
            if reached.is_empty() {
                "none".to_string()
            } else {
                reached.join(", ")
            },
            if missed.is_empty() {
                String::new()
            } else {
                format!("; not reached: {}", missed.join(", "))
            }
        ),
        vec!["H1", "H2", "H3", "H4", "H5", "H6"],
    );
    out
}
