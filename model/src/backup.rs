//! Backups in the spec: which backup a replica may take (R-BACKUP-1/2), and which replica
//! scripted backup jobs prefer (R-BACKUP-4/5), checked exhaustively over every combination of
//! preference, priorities, replica states and tie-break for up to five replicas.
//!
//! ```text
//!  AgBackupView (roles, online, priorities, preference, tie-break)
//!        └─▶ is_preferred_backup_replica(view, replica, database) ─▶ true on exactly one replica
//! ```

use hadr_types::{BackupPreference, BackupTieBreak, Role};
use serde::Serialize;
use std::fmt;

/// The kinds of backup an operator can take (R-BACKUP-1).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
pub enum BackupKind {
    /// `BACKUP DATABASE`: a full backup; the base of later differentials.
    Full,
    /// `BACKUP DATABASE … WITH COPY_ONLY`: moves neither the log chain nor the differential base.
    CopyOnlyFull,
    /// `BACKUP DATABASE … WITH DIFFERENTIAL`.
    Differential,
    /// `BACKUP LOG`: the next link of the log chain.
    Log,
    /// `BACKUP LOG … WITH COPY_ONLY`: copies log without moving the chain.
    CopyOnlyLog,
}

impl BackupKind {
    /// Every kind.
    pub const ALL: [BackupKind; 5] = [
        BackupKind::Full,
        BackupKind::CopyOnlyFull,
        BackupKind::Differential,
        BackupKind::Log,
        BackupKind::CopyOnlyLog,
    ];

    /// The T-SQL that takes it.
    pub fn statement(self) -> &'static str {
        match self {
            BackupKind::Full => "BACKUP DATABASE",
            BackupKind::CopyOnlyFull => "BACKUP DATABASE … WITH COPY_ONLY",
            BackupKind::Differential => "BACKUP DATABASE … WITH DIFFERENTIAL",
            BackupKind::Log => "BACKUP LOG",
            BackupKind::CopyOnlyLog => "BACKUP LOG … WITH COPY_ONLY",
        }
    }

    /// Whether it is a log backup.
    pub fn is_log(self) -> bool {
        matches!(self, BackupKind::Log | BackupKind::CopyOnlyLog)
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.statement())
    }
}

/// Why a backup was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum BackupRefusal {
    /// R-BACKUP-1: a secondary takes only COPY_ONLY full and regular log backups.
    NotOnSecondary,
    /// R-BACKUP-2: a secondary backs up only while connected and SYNCHRONIZED or SYNCHRONIZING.
    SecondaryNotSynchronizing,
    /// A differential needs a full backup as its base.
    NoDifferentialBase,
    /// The replica is RESOLVING, or the database is not an online availability database there.
    NotAvailable,
}

impl fmt::Display for BackupRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackupRefusal::NotOnSecondary => {
                "refused on a secondary (R-BACKUP-1: only COPY_ONLY full and regular log backups)"
            }
            BackupRefusal::SecondaryNotSynchronizing => {
                "refused: the secondary is not connected and SYNCHRONIZED or SYNCHRONIZING (R-BACKUP-2)"
            }
            BackupRefusal::NoDifferentialBase => "refused: no full backup to be the differential base",
            BackupRefusal::NotAvailable => "refused: the database is not available on this replica",
        })
    }
}

/// R-BACKUP-1: whether a replica in this role may take this kind of backup at all.
pub fn allowed_in_role(role: Role, kind: BackupKind) -> Result<(), BackupRefusal> {
    match (role, kind) {
        (Role::Primary, _) => Ok(()),
        (Role::Secondary, BackupKind::CopyOnlyFull | BackupKind::Log) => Ok(()),
        (Role::Secondary, _) => Err(BackupRefusal::NotOnSecondary),
        (Role::Resolving, _) => Err(BackupRefusal::NotAvailable),
    }
}

/// One replica as the preferred-replica function sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaBackupView {
    /// The replica's name (for the tie-break).
    pub name: String,
    /// Its role now.
    pub role: Role,
    /// Whether it is online (up and connected to the group).
    pub online: bool,
    /// BACKUP_PRIORITY 0..=100; 0 never backs up.
    pub priority: u32,
}

/// What `fn_hadr_backup_is_preferred_replica` reads: the group's state and policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgBackupView {
    /// AUTOMATED_BACKUP_PREFERENCE.
    pub preference: BackupPreference,
    /// How ties are broken (R-BACKUP-5 **\[param\]**).
    pub tie_break: BackupTieBreak,
    /// The replicas, in configuration order.
    pub replicas: Vec<ReplicaBackupView>,
}

/// Which database the function is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseRef {
    /// An availability database of this group.
    Availability,
    /// A database on the instance that belongs to no availability group.
    OutsideAnyGroup,
    /// No such database.
    Unknown,
}

/// How ties are broken, as a function (so a mutant can plant a wrong one).
pub type TieBreakFn = fn(&AgBackupView, usize, usize) -> std::cmp::Ordering;

/// The documented tie-break: lowest name (case-insensitive) or configuration order. `Less`
/// means `a` wins.
pub fn tie_break(view: &AgBackupView, a: usize, b: usize) -> std::cmp::Ordering {
    match view.tie_break {
        BackupTieBreak::LowestReplicaName => view.replicas[a]
            .name
            .to_lowercase()
            .cmp(&view.replicas[b].name.to_lowercase())
            .then(a.cmp(&b)),
        BackupTieBreak::ConfigurationOrder => a.cmp(&b),
    }
}

/// A wrong tie-break: every replica of the highest priority thinks it wins (the mutant).
pub fn mutant_tie_break(_: &AgBackupView, _: usize, _: usize) -> std::cmp::Ordering {
    std::cmp::Ordering::Equal
}

/// Whether a replica may back up at all under the preference (before priorities).
pub fn eligible(view: &AgBackupView, replica: usize) -> bool {
    let r = &view.replicas[replica];
    if !r.online || r.priority == 0 || r.role == Role::Resolving {
        return false;
    }
    let any_secondary_online = view
        .replicas
        .iter()
        .any(|x| x.online && x.role == Role::Secondary);
    match (view.preference, r.role) {
        (BackupPreference::Primary, role) => role == Role::Primary,
        (BackupPreference::SecondaryOnly, role) => role == Role::Secondary,
        (BackupPreference::Secondary, Role::Secondary) => true,
        (BackupPreference::Secondary, _) => !any_secondary_online,
        (BackupPreference::None, _) => true,
    }
}

/// R-BACKUP-5: `sys.fn_hadr_backup_is_preferred_replica`, evaluated for one replica: the
/// eligible online replica of the highest BACKUP_PRIORITY, ties broken by `tie`.
pub fn is_preferred_with(
    view: &AgBackupView,
    replica: usize,
    database: DatabaseRef,
    tie: TieBreakFn,
) -> bool {
    match database {
        DatabaseRef::OutsideAnyGroup => return true,
        DatabaseRef::Unknown => return false,
        DatabaseRef::Availability => {}
    }
    if !eligible(view, replica) {
        return false;
    }
    let mine = view.replicas[replica].priority;
    (0..view.replicas.len()).all(|other| {
        other == replica
            || !eligible(view, other)
            || match view.replicas[other].priority.cmp(&mine) {
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => {
                    tie(view, replica, other) != std::cmp::Ordering::Greater
                }
            }
    })
}

/// R-BACKUP-5 with the documented tie-break.
pub fn is_preferred_backup_replica(
    view: &AgBackupView,
    replica: usize,
    database: DatabaseRef,
) -> bool {
    is_preferred_with(view, replica, database, tie_break)
}

/// The result of the exhaustive check of the preferred-replica function.
#[derive(Clone, Debug, Serialize)]
pub struct PreferenceCheck {
    /// Combinations evaluated.
    pub combinations: u64,
    /// The first combination that breaks a property, described.
    pub counterexample: Option<String>,
    /// Which property it breaks.
    pub broken: Option<&'static str>,
}

/// Checks the properties of R-BACKUP-4/5 on every combination of up to `max_replicas`
/// replicas: preference (4) × tie-break (2) × which replica is primary (or none) × each
/// replica online or not, SECONDARY or RESOLVING × priorities from {0, 1, 2, 100} (every
/// order pattern of distinct, equal and zero priorities), with `tie` as the tie-break.
///
/// Properties: exactly one replica is preferred whenever an eligible replica is online; never a
/// replica with priority 0; never the primary under SECONDARY_ONLY; the primary under
/// SECONDARY only when no secondary is online; true outside any group, false for an unknown
/// database.
pub fn check_preference(max_replicas: usize, tie: TieBreakFn) -> PreferenceCheck {
    const PRIORITIES: [u32; 4] = [0, 1, 2, 100];
    const NAMES: [&str; 5] = ["E", "b", "C", "a", "D"];
    let preferences = [
        BackupPreference::Primary,
        BackupPreference::SecondaryOnly,
        BackupPreference::Secondary,
        BackupPreference::None,
    ];
    let mut combinations = 0u64;
    for n in 1..=max_replicas {
        for preference in preferences {
            for tie_break in [
                BackupTieBreak::LowestReplicaName,
                BackupTieBreak::ConfigurationOrder,
            ] {
                for primary in 0..=n {
                    // per replica: 0 offline, 1 online, 2 RESOLVING (online, role unknown)
                    for states in 0..3u32.pow(n as u32) {
                        for priorities in 0..4u32.pow(n as u32) {
                            combinations += 1;
                            let view = AgBackupView {
                                preference,
                                tie_break,
                                replicas: (0..n)
                                    .map(|i| {
                                        let state = states / 3u32.pow(i as u32) % 3;
                                        let role = if state == 2 {
                                            Role::Resolving
                                        } else if i == primary {
                                            Role::Primary
                                        } else {
                                            Role::Secondary
                                        };
                                        ReplicaBackupView {
                                            name: NAMES[i].to_string(),
                                            role,
                                            online: state != 0,
                                            priority: PRIORITIES
                                                [(priorities / 4u32.pow(i as u32) % 4) as usize],
                                        }
                                    })
                                    .collect(),
                            };
                            if let Some(broken) = preference_violation(&view, tie) {
                                return PreferenceCheck {
                                    combinations,
                                    counterexample: Some(describe(&view, tie)),
                                    broken: Some(broken),
                                };
                            }
                        }
                    }
                }
            }
        }
    }
    PreferenceCheck {
        combinations,
        counterexample: None,
        broken: None,
    }
}

/// The first property of R-BACKUP-4/5 that this combination breaks.
fn preference_violation(view: &AgBackupView, tie: TieBreakFn) -> Option<&'static str> {
    let n = view.replicas.len();
    let preferred: Vec<usize> = (0..n)
        .filter(|&r| is_preferred_with(view, r, DatabaseRef::Availability, tie))
        .collect();
    let any_eligible = (0..n).any(|r| eligible(view, r));
    if any_eligible && preferred.len() != 1 {
        return Some("exactly one replica is preferred whenever an eligible replica is online");
    }
    if !any_eligible && !preferred.is_empty() {
        return Some("no replica is preferred when none is eligible");
    }
    let any_secondary_online = view
        .replicas
        .iter()
        .any(|r| r.online && r.role == Role::Secondary);
    for &r in &preferred {
        let rep = &view.replicas[r];
        if rep.priority == 0 {
            return Some("never a replica with BACKUP_PRIORITY 0");
        }
        if rep.role == Role::Primary && view.preference == BackupPreference::SecondaryOnly {
            return Some("never the primary under SECONDARY_ONLY");
        }
        if rep.role == Role::Primary
            && view.preference == BackupPreference::Secondary
            && any_secondary_online
        {
            return Some("the primary under SECONDARY only when no secondary is online");
        }
    }
    if (0..n).any(|r| !is_preferred_with(view, r, DatabaseRef::OutsideAnyGroup, tie))
        || (0..n).any(|r| is_preferred_with(view, r, DatabaseRef::Unknown, tie))
    {
        return Some("true outside any group, false for an unknown database");
    }
    None
}

fn describe(view: &AgBackupView, tie: TieBreakFn) -> String {
    let replicas: Vec<String> = view
        .replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "{} {} {} priority {}{}",
                r.name,
                r.role,
                if r.online { "online" } else { "offline" },
                r.priority,
                if is_preferred_with(view, i, DatabaseRef::Availability, tie) {
                    " PREFERRED"
                } else {
                    ""
                }
            )
        })
        .collect();
    format!(
        "AUTOMATED_BACKUP_PREFERENCE {:?}, tie-break {:?}: {}",
        view.preference,
        view.tie_break,
        replicas.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(preference: BackupPreference, replicas: &[(&str, Role, bool, u32)]) -> AgBackupView {
        AgBackupView {
            preference,
            tie_break: BackupTieBreak::LowestReplicaName,
            replicas: replicas
                .iter()
                .map(|&(name, role, online, priority)| ReplicaBackupView {
                    name: name.into(),
                    role,
                    online,
                    priority,
                })
                .collect(),
        }
    }

    fn preferred(v: &AgBackupView) -> Vec<&str> {
        (0..v.replicas.len())
            .filter(|&r| is_preferred_backup_replica(v, r, DatabaseRef::Availability))
            .map(|r| v.replicas[r].name.as_str())
            .collect()
    }

    /// R-BACKUP-4: SECONDARY prefers the best secondary, the primary only when it is alone.
    #[test]
    fn r_backup_4_secondary_preference() {
        use Role::*;
        let v = view(
            BackupPreference::Secondary,
            &[
                ("A", Primary, true, 90),
                ("B", Secondary, true, 10),
                ("C", Secondary, true, 50),
            ],
        );
        assert_eq!(preferred(&v), vec!["C"]);
        let v = view(
            BackupPreference::Secondary,
            &[
                ("A", Primary, true, 90),
                ("B", Secondary, false, 10),
                ("C", Secondary, false, 50),
            ],
        );
        assert_eq!(preferred(&v), vec!["A"]);
        let v = view(
            BackupPreference::SecondaryOnly,
            &[("A", Primary, true, 90), ("B", Secondary, false, 10)],
        );
        assert!(preferred(&v).is_empty());
    }

    /// R-BACKUP-5: ties go to the lowest name; priority 0 never backs up.
    #[test]
    fn r_backup_5_ties_and_priority_zero() {
        use Role::*;
        let v = view(
            BackupPreference::None,
            &[
                ("c", Primary, true, 50),
                ("B", Secondary, true, 50),
                ("a", Secondary, true, 0),
            ],
        );
        assert_eq!(preferred(&v), vec!["B"]);
    }

    /// R-BACKUP-1: what a secondary may take.
    #[test]
    fn r_backup_1_role_rules() {
        for kind in BackupKind::ALL {
            assert_eq!(allowed_in_role(Role::Primary, kind), Ok(()));
        }
        let on_secondary: Vec<bool> = BackupKind::ALL
            .iter()
            .map(|&k| allowed_in_role(Role::Secondary, k).is_ok())
            .collect();
        assert_eq!(on_secondary, vec![false, true, false, true, false]);
    }

    /// The exhaustive check holds for the documented tie-break and refutes the mutant.
    #[test]
    fn preference_properties_hold_and_the_mutant_tie_break_is_refuted() {
        let good = check_preference(3, tie_break);
        assert!(good.counterexample.is_none(), "{good:?}");
        assert!(good.combinations > 10_000);
        let bad = check_preference(3, mutant_tie_break);
        assert_eq!(
            bad.broken,
            Some("exactly one replica is preferred whenever an eligible replica is online")
        );
        assert!(bad.counterexample.unwrap().contains("PREFERRED"));
    }
}
