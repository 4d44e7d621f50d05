//! Mutants: named, deliberately wrong variants of the spec. Each one plants a bug that a real
//! implementation could have; the checker must refute every one with a counterexample, or the
//! property that should catch it has no teeth.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

macro_rules! mutants {
    ($($variant:ident => $name:literal, $rule:literal, $bug:literal;)*) => {
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

            /// The rule whose property must refute it.
            pub fn rule(self) -> &'static str {
                match self { $(Mutant::$variant => $rule),* }
            }

            /// The planted bug, in words.
            pub fn bug(self) -> &'static str {
                match self { $(Mutant::$variant => $bug),* }
            }
        }
    };
}

mutants! {
    AckBeforeSecondaryHardens => "ack-before-secondary-hardens", "R-COMMIT-6",
        "the primary acknowledges a commit once its participants have received the log, before they harden it";
    AutomaticFailoverToSynchronizing => "automatic-failover-to-synchronizing", "R-FAIL-2",
        "the cluster manager promotes a SYNCHRONOUS_COMMIT secondary that is not SYNCHRONIZED";
    CommitAfterLeaseExpiry => "commit-after-lease-expiry", "R-ROLE-1",
        "the primary keeps committing after the manager saw its lease expire (lease not shorter than the manager's timeout)";
    AcceptLogGap => "accept-log-gap", "R-SYNC-5",
        "a secondary applies a log block that does not start at the end of its log";
    TimedOutSecondaryStaysSynchronized => "timed-out-secondary-stays-synchronized", "R-COMMIT-6",
        "once its session with a secondary ends (timeout or reset), the primary stops waiting for it but leaves it recorded as SYNCHRONIZED";
    ForcedFailoverWithoutPartnerSuspend => "forced-failover-without-partner-suspend", "R-FAIL-4",
        "after a forced failover the other secondaries rejoin the new history without being suspended";
    AsyncSecondarySynchronized => "async-secondary-synchronized", "R-SYNC-4",
        "a caught-up asynchronous-commit secondary is recorded as SYNCHRONIZED";
    PlannedFailoverToUnsynchronized => "planned-failover-to-unsynchronized", "R-FAIL-3",
        "a planned manual failover is allowed to a secondary that is not SYNCHRONIZED";
    IgnoreRequiredSynchronized => "ignore-required-synchronized", "R-COMMIT-5",
        "the primary commits and acknowledges with fewer SYNCHRONIZED secondaries than REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT";
    RedoBeforeHarden => "redo-before-harden", "R-SYNC-2",
        "a secondary redoes log it has received but not hardened";
    RejoinWithoutRevert => "rejoin-without-revert", "R-SYNC-6",
        "a secondary whose log diverges from the new primary's rejoins without reverting to the fork point, so it never catches up";
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
