//! Planted bugs, for certifying the conformance harness (cargo feature `mutants`).
//!
//! Each [`Mutant`] is a deliberately wrong variant of the reference core, the kind of bug a
//! real implementation could ship: `hadr certify --mutant NAME` runs the corpus against a core
//! with that bug and must fail, naming the rule the bug breaks. Without the `mutants` feature
//! nothing can plant one ([`CoreOptions`](crate::CoreOptions) has no field for it) and every
//! check of a planted bug is the constant `false`, so the production core carries none of them.

use std::fmt;
use std::str::FromStr;

macro_rules! mutants {
    ($($variant:ident => $name:literal, $rule:literal, $bug:literal;)*) => {
        /// A deliberately wrong variant of the reference core.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Mutant { $(#[doc = $bug] $variant),* }

        impl Mutant {
            /// Every mutant.
            pub const ALL: &'static [Mutant] = &[$(Mutant::$variant),*];

            /// The mutant's name on the command line.
            pub fn name(self) -> &'static str {
                match self { $(Mutant::$variant => $name),* }
            }

            /// The rule the planted bug breaks: certification must name it.
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
    AckBeforeSecondaryHardens => "ack-before-secondary-hardens", "R-COMMIT-2",
        "the primary acknowledges a commit once it has sent the log to its participants, before they report it hardened";
    AsyncSecondaryParticipant => "async-secondary-participant", "R-COMMIT-1",
        "the primary waits for its ASYNCHRONOUS_COMMIT secondaries that are moving data to harden a commit too, as if the pair were synchronous";
    CountDisconnectedParticipant => "count-disconnected-participant", "R-COMMIT-4",
        "a SYNCHRONIZED secondary whose session ended is dropped from SYNCHRONIZED but still waited for by commits until it reconnects";
    IgnoreRequiredSynchronized => "ignore-required-synchronized", "R-COMMIT-5",
        "the primary commits and acknowledges with fewer SYNCHRONIZED secondaries than REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT";
    DefiniteAtStepDown => "definite-at-step-down", "R-COMMIT-7",
        "commits still waiting when the primary steps down are answered `not committed` (definite) instead of indefinite";
    PromoteSynchronizing => "promote-synchronizing", "R-FAIL-2",
        "the primary tells the cluster manager that every automatic-failover partner is failover-ready, SYNCHRONIZED or not";
    PlannedFailoverToUnsynchronized => "planned-failover-to-unsynchronized", "R-FAIL-3",
        "a planned failover is granted to a synchronous-commit secondary that is not SYNCHRONIZED";
    ForcedFailoverWithoutPartnerSuspend => "forced-failover-without-partner-suspend", "R-FAIL-4",
        "after a forced failover the new primary lets the other secondaries rejoin without suspending them";
    ForcedFailoverToSynchronizedLossy => "forced-failover-to-synchronized-lossy", "R-FAIL-4",
        "a forced failover onto a SYNCHRONIZED target (in session with the primary, or recorded SYNCHRONIZED at the manager) starts a forced recovery fork: the other secondaries are suspended";
    ResumeWithoutRevert => "resume-without-revert", "R-FAIL-4",
        "after a forced failover, a secondary resumed from SUSPEND_FROM_PARTNER is streamed to from its own end of log, without reverting to the fork point";
    RejoinWithoutRevert => "rejoin-without-revert", "R-FAIL-6",
        "a secondary that reconnects after a failover is streamed to from its own end of log (its handshake), without reverting what it holds beyond the fork point";
    AcceptLogGap => "accept-log-gap", "R-SYNC-1",
        "a secondary appends a log block that starts beyond its end of log, renumbered to follow it";
    AsyncSecondarySynchronized => "async-secondary-synchronized", "R-SYNC-4",
        "a caught-up ASYNCHRONOUS_COMMIT secondary is marked SYNCHRONIZED (and so waited for and counted for k)";
    CommitAfterLeaseExpiry => "commit-after-lease-expiry", "R-QUORUM-3",
        "the primary ignores the end of its lease and keeps its role and its commits";
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no mutant of the core.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown mutant {name:?}: `hadr certify --list-mutants` lists them: {}", Mutant::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "))]
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
