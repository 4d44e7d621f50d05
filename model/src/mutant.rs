//! Mutants: named, deliberately wrong variants of the spec. Each one plants a bug that a real
//! implementation could have; the checker must refute every one with a counterexample, or the
//! property that should catch it has no teeth.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

macro_rules! mutants {
    ($($variant:ident => $name:literal, $rule:literal, $breaks:literal, $bug:literal;)*) => {
        /// A deliberately wrong variant of the spec.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
        pub enum Mutant { $(#[doc = $bug] $variant),* }

        impl Mutant {
            /// Every mutant.
            pub const ALL: &'static [Mutant] = &[$(Mutant::$variant),*];

            /// The mutant's name on the command line.
            pub fn name(self) -> &'static str {
                match self { $(Mutant::$variant => $name),* }
            }

            /// The rule whose property must refute it (`hadr check --mutant`): where the bug
            /// shows, which may be a consequence of the rule it breaks.
            pub fn rule(self) -> &'static str {
                match self { $(Mutant::$variant => $rule),* }
            }

            /// The rule the planted bug breaks: what a conformance failure that behaves like
            /// this mutant names first.
            pub fn breaks(self) -> &'static str {
                match self { $(Mutant::$variant => $breaks),* }
            }

            /// The planted bug, in words.
            pub fn bug(self) -> &'static str {
                match self { $(Mutant::$variant => $bug),* }
            }
        }
    };
}

mutants! {
    AckBeforeSecondaryHardens => "ack-before-secondary-hardens", "R-COMMIT-6", "R-COMMIT-2",
        "the primary acknowledges a commit once its participants have received the log, before they harden it";
    AutomaticFailoverToSynchronizing => "automatic-failover-to-synchronizing", "R-FAIL-2", "R-FAIL-2",
        "the cluster manager promotes a SYNCHRONOUS_COMMIT secondary that is not SYNCHRONIZED";
    CommitAfterLeaseExpiry => "commit-after-lease-expiry", "R-ROLE-1", "R-QUORUM-3",
        "the primary ignores the end of its lease: cut off from the manager it keeps its role and its commits, while the manager lets the lease expire and may promote another";
    AcceptLogGap => "accept-log-gap", "R-SYNC-5", "R-SYNC-1",
        "a secondary applies a log block that does not start at the end of its log";
    TimedOutSecondaryStaysSynchronized => "timed-out-secondary-stays-synchronized", "R-COMMIT-6", "R-COMMIT-4",
        "once its session with a secondary ends (timeout or reset), the primary stops waiting for it but leaves it recorded as SYNCHRONIZED at the manager";
    CountDisconnectedParticipant => "count-disconnected-participant", "R-COMMIT-4", "R-COMMIT-4",
        "a SYNCHRONIZED secondary whose session ended stays a commit participant: commits wait for it until it reconnects";
    AsyncSecondaryParticipant => "async-secondary-participant", "R-COMMIT-4", "R-COMMIT-1",
        "the primary waits for its connected ASYNCHRONOUS_COMMIT secondaries to harden a commit too, as if they were synchronous participants";
    DefiniteAtStepDown => "definite-at-step-down", "R-COMMIT-7", "R-COMMIT-7",
        "commits still waiting when the primary steps down are answered with a definite error (not committed) instead of an indefinite one";
    ForcedFailoverWithoutPartnerSuspend => "forced-failover-without-partner-suspend", "R-FAIL-4", "R-FAIL-4",
        "after a forced failover the other secondaries rejoin the new history without being suspended";
    ForcedFailoverToSynchronizedLossy => "forced-failover-to-synchronized-lossy", "R-FAIL-4", "R-FAIL-4",
        "a forced failover onto a SYNCHRONIZED target is handled as a lossy one: the other secondaries are suspended (SUSPEND_FROM_PARTNER)";
    ResumeWithoutRevert => "resume-without-revert", "R-SYNC-5", "R-FAIL-4",
        "RESUME lifts a partner suspension (after a forced failover) without rolling the database back to the fork point";
    AsyncSecondarySynchronized => "async-secondary-synchronized", "R-SYNC-4", "R-SYNC-4",
        "a caught-up asynchronous-commit secondary is recorded as SYNCHRONIZED";
    PlannedFailoverToUnsynchronized => "planned-failover-to-unsynchronized", "R-FAIL-3", "R-FAIL-3",
        "a planned manual failover is allowed to a secondary that is not SYNCHRONIZED";
    IgnoreRequiredSynchronized => "ignore-required-synchronized", "R-COMMIT-5", "R-COMMIT-5",
        "the primary commits and acknowledges with fewer SYNCHRONIZED secondaries than REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT";
    RedoBeforeHarden => "redo-before-harden", "R-SYNC-2", "R-SYNC-2",
        "a secondary redoes log it has received but not hardened";
    RejoinWithoutRevert => "rejoin-without-revert", "R-SYNC-5", "R-FAIL-6",
        "a secondary whose log diverges from the new primary's reconnects (handshake, JOIN) without reverting to the fork point";
    SecondaryLogBackupOwnChain => "secondary-log-backup-own-chain", "R-BACKUP-3", "R-BACKUP-3",
        "a log backup starts where this replica's own last log backup ended, not where the group's chain ends";
    BackupOnUnsynchronizedSecondary => "backup-on-unsynchronized-secondary", "R-BACKUP-2", "R-BACKUP-2",
        "a secondary takes backups while it is not SYNCHRONIZED or SYNCHRONIZING";
    CopyOnlyBackupMovesChain => "copy-only-backup-moves-chain", "R-BACKUP-3", "R-BACKUP-3",
        "COPY_ONLY backups move the log chain and set the differential base";
    RestoreOnAvailabilityDatabase => "restore-on-availability-database", "R-DB-3", "R-DB-3",
        "RESTORE is applied to a joined availability database";
    RepairFromPrimaryCurrentPage => "repair-from-primary-current-page", "R-PAGE-1", "R-PAGE-1",
        "a secondary's page is repaired with the primary's current page instead of the page as of the secondary's redo LSN";
    RepairFromSynchronizingSecondary => "repair-from-synchronizing-secondary", "R-PAGE-2", "R-PAGE-2",
        "the primary takes a page from a secondary that is not SYNCHRONIZED or has not redone up to the requested LSN";
    ReadFromUnsynchronizedSecondary => "read-from-unsynchronized-secondary", "R-READ-2", "R-READ-2",
        "a secondary serves reads while it is not moving data (suspended, reverting, disconnected)";
    BackupTieBreakPrefersAllEquals => "backup-tie-break-prefers-all-equals", "R-BACKUP-5", "R-BACKUP-5",
        "fn_hadr_backup_is_preferred_replica returns true on every eligible replica of the highest priority";
    RouteToUnreadableSecondary => "route-to-unreadable-secondary", "R-READ-3", "R-READ-3",
        "the listener routes read-intent connections to listed secondaries whatever their ALLOW_CONNECTIONS and state";
    CorruptLogAsTornTail => "corrupt-log-as-torn-tail", "R-COMMIT-6", "R-COMMIT-6",
        "recovery takes a damaged log record with valid records after it for a torn tail: it cuts the log there and brings the database back ONLINE instead of SUSPECT, so the replica may become primary with the short log";
}

/// The configuration a mutant is checked against when none is given: the default, or one
/// that turns on the feature the mutant breaks.
pub fn configuration_for(mutant: Mutant) -> &'static str {
    use Mutant::*;
    match mutant {
        SecondaryLogBackupOwnChain | BackupOnUnsynchronizedSecondary | CopyOnlyBackupMovesChain => {
            crate::config::BACKUPS_CONFIG_TOML
        }
        RestoreOnAvailabilityDatabase => crate::config::LIFECYCLE_CONFIG_TOML,
        RepairFromPrimaryCurrentPage | RepairFromSynchronizingSecondary => {
            crate::config::PAGE_REPAIR_CONFIG_TOML
        }
        ReadFromUnsynchronizedSecondary => crate::config::READS_CONFIG_TOML,
        CorruptLogAsTornTail => crate::config::STORAGE_FAULTS_CONFIG_TOML,
        _ => crate::config::DEFAULT_CONFIG_TOML,
    }
}

/// The action kind whose behaviour the mutant changes, for the mutants of an optional feature
/// (backups, database lifecycle, page repair, reads, log corruption): a configuration that
/// cannot take it cannot refute the mutant. `None` for the core protocol's mutants.
pub fn feature_of(mutant: Mutant) -> Option<crate::ActionKind> {
    use crate::ActionKind as K;
    use Mutant::*;
    match mutant {
        SecondaryLogBackupOwnChain
        | BackupOnUnsynchronizedSecondary
        | CopyOnlyBackupMovesChain
        | BackupTieBreakPrefersAllEquals => Some(K::Backup),
        RestoreOnAvailabilityDatabase => Some(K::RestoreDatabase),
        RepairFromPrimaryCurrentPage | RepairFromSynchronizingSecondary => Some(K::CorruptPage),
        ReadFromUnsynchronizedSecondary | RouteToUnreadableSecondary => Some(K::ClientRead),
        CorruptLogAsTornTail => Some(K::CorruptLog),
        _ => None,
    }
}

/// Why a mutant cannot behave differently from the spec in a configuration (the steps its bug
/// changes cannot happen there, or it needs an asynchronous-commit replica the group does not
/// have), or `None` when it can. Run as a system under test, such a mutant is the spec.
pub fn not_applicable(mutant: Mutant, config: &crate::ModelConfig) -> Option<String> {
    use crate::ActionKind as K;
    use Mutant::*;
    if let Some(kind) = feature_of(mutant) {
        if let Some(why) = crate::not_applicable(kind, config) {
            return Some(format!("{}: {why}", kind.name()));
        }
    }
    let asynchronous = (0..config.replica_count() as u8).any(|r| !config.is_synchronous(r));
    if matches!(
        mutant,
        AsyncSecondaryParticipant | AsyncSecondarySynchronized
    ) && !asynchronous
    {
        return Some("no ASYNCHRONOUS_COMMIT replica".to_owned());
    }
    if mutant == IgnoreRequiredSynchronized
        && config.ag.required_synchronized_secondaries_to_commit == 0
    {
        if let Some(why) = crate::not_applicable(K::SetRequiredSynchronized, config) {
            return Some(format!("k is 0 and {why}"));
        }
    }
    let kinds: &[K] = match mutant {
        AckBeforeSecondaryHardens | RedoBeforeHarden => &[K::DiskStall, K::MarkSynchronized],
        AutomaticFailoverToSynchronizing => &[K::AutomaticFailover],
        CommitAfterLeaseExpiry => &[K::LeaseExpiry],
        AcceptLogGap => &[K::LoseLogBlock],
        TimedOutSecondaryStaysSynchronized | CountDisconnectedParticipant => {
            &[K::DropFromSynchronized]
        }
        ForcedFailoverWithoutPartnerSuspend => &[K::ForcedFailover],
        ForcedFailoverToSynchronizedLossy => &[K::ForcedFailover, K::MarkSynchronized],
        ResumeWithoutRevert => &[K::ForcedFailover, K::Resume],
        PlannedFailoverToUnsynchronized => &[K::PlannedFailover],
        RejoinWithoutRevert => &[K::Revert],
        _ => &[],
    };
    kinds
        .iter()
        .find_map(|&k| crate::not_applicable(k, config).map(|why| format!("{}: {why}", k.name())))
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown mutant name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown mutant '{name}'; `hadr check --list-mutants` lists them: {}", Mutant::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownMutant {
    /// The name given.
    pub name: String,
}

impl FromStr for Mutant {
    type Err = UnknownMutant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mutant::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMutant { name: s.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_list_the_known_ones() {
        for m in Mutant::ALL {
            assert_eq!(m.name().parse::<Mutant>(), Ok(*m));
        }
        let err = "no-such".parse::<Mutant>().unwrap_err();
        assert!(err.to_string().contains("ack-before-secondary-hardens"));
        assert!(Mutant::ALL.len() >= 6);
    }
}
