//! Text formatting shared by the commands: numbers, durations, configuration summaries.

use hadr_model::ModelConfig;
use std::time::Duration;

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in seconds with one decimal.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn plural(n: u8, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What is checked, in two lines: the group, then the bounds.
pub fn describe_config(c: &ModelConfig) -> String {
    let replicas: Vec<String> =
        c.ag.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{} ({}, {}{})",
                    r.name,
                    r.availability_mode,
                    r.failover_mode,
                    if i == 0 { ", initial primary" } else { "" }
                )
            })
            .collect();
    let b = c.bounds;
    format!(
        "availability group {}: {}\n  CLUSTER_TYPE {}, REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT {}, FAILURE_CONDITION_LEVEL {}, databases {}\nbounds: {}, {}, {}, {} ({} forced), {}, {}; at most {} per behaviour",
        c.ag.name,
        replicas.join(", "),
        c.ag.cluster_type,
        c.ag.required_synchronized_secondaries_to_commit,
        c.ag.failure_condition_level,
        c.ag.databases.join(", "),
        plural(b.transactions, "transaction", "transactions"),
        plural(b.crashes, "crash", "crashes"),
        plural(b.network_faults, "network fault", "network faults"),
        plural(b.failovers, "failover", "failovers"),
        b.forced_failovers,
        plural(b.suspends, "suspend", "suspends"),
        plural(b.config_changes, "change of k", "changes of k"),
        plural(b.events, "disruption", "disruptions"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(12_552_681), "12,552,681");
    }
}
