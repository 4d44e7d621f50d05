//! Exhaustive checks with pinned results. A change to the model that alters a state count, a
//! hazard's shortest example or a mutant's counterexample changes a snapshot here, so it has to
//! be deliberate (`INSTA_UPDATE=always cargo test -p hadr-model --test check`, then review).

use hadr_model::{
    check, CheckOptions, CheckReport, ModelConfig, Mutant, PropertyGroup, PropertyKind, Stop,
    Verdict,
};
use std::fmt::Write;

fn config(name: &str) -> ModelConfig {
    let path = format!("{}/configs/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    ModelConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run(config: &ModelConfig, mutant: Option<Mutant>, options: CheckOptions) -> CheckReport {
    check(config, mutant, &options, &mut |_| {})
}

/// The figures that do not depend on thread scheduling: distinct and generated states (every
/// distinct state is expanded exactly once), and every verdict.
fn summary(report: &CheckReport) -> String {
    let mut out = format!(
        "unique_states: {}\nstates: {}\ncomplete: {}\npassed: {}\n",
        report.unique_states,
        report.states,
        report.complete,
        report.passed()
    );
    for p in &report.properties {
        let _ = writeln!(out, "{:?} {}", p.verdict, p.name);
    }
    for na in &report.not_applicable {
        let _ = writeln!(out, "NotApplicable {}: {}", na.action, na.reason);
    }
    out
}

#[test]
fn reference_configurations_have_pinned_state_counts() {
    for name in [
        "two-replicas",
        "read-scale",
        "two-databases",
        "backups",
        "reads",
        "lifecycle",
        "page-repair",
        "storage-faults",
    ] {
        let report = run(&config(name), None, CheckOptions::default());
        assert!(report.passed(), "{name}:\n{}", summary(&report));
        insta::assert_snapshot!(format!("reference_{name}"), summary(&report));
    }
}

/// The acceptance of `hadr check`: every invariant holds, every hazard H1–H5 and every action
/// kind is reachable, over more than 100,000 distinct states; and each hazard's shortest example
/// is pinned.
#[test]
fn default_configuration_passes_with_pinned_hazard_examples() {
    let options = CheckOptions {
        examples: true,
        ..CheckOptions::default()
    };
    let report = run(&ModelConfig::default(), None, options);
    assert!(report.passed(), "{}", summary(&report));
    assert!(report.unique_states >= 100_000, "{}", report.unique_states);
    for p in &report.properties {
        match p.kind {
            PropertyKind::Always => assert_eq!(p.verdict, Verdict::Holds, "{}", p.name),
            _ => assert_eq!(p.verdict, Verdict::Discovered, "{}", p.name),
        }
    }
    // Off in the default configuration: CLUSTER_TYPE NONE's demotion, and the optional
    // features (reads, backups, lifecycle, page repair, log corruption), which their own
    // configurations check.
    let optional = [
        "ClientRead",
        "DemoteToSecondary",
        "Backup",
        "AddDatabase",
        "RemoveDatabase",
        "RemoveReplica",
        "RestoreDatabase",
        "JoinDatabase",
        "CorruptPage",
        "CorruptLog",
        "SeedDatabase",
        "RepairFromPrimary",
        "RepairFromSecondary",
    ];
    let off: Vec<&str> = report.not_applicable.iter().map(|n| n.action).collect();
    assert_eq!(
        off, optional,
        "exactly the optional kinds are off by default"
    );
    insta::assert_snapshot!("default_summary", summary(&report));
    let hazards: Vec<_> = report
        .properties
        .iter()
        .filter(|p| p.group == PropertyGroup::Hazard)
        .collect();
    assert_eq!(hazards.len(), 5);
    for p in hazards {
        let example = p
            .example
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no example", p.rule));
        insta::assert_snapshot!(format!("hazard_{}", p.rule), example.to_text());
    }
}

/// A property no mutant can break has no teeth: every mutant is refuted, at the rule it
/// breaks, with a counterexample (the shortest one, pinned).
#[test]
fn every_mutant_is_refuted_at_its_rule() {
    for &mutant in Mutant::ALL {
        let config = ModelConfig::from_toml_str(hadr_model::mutant::configuration_for(mutant))
            .expect("embedded configurations are valid");
        let options = CheckOptions {
            stop: Stop::RuleViolated(vec![mutant.rule()]),
            ..CheckOptions::default()
        };
        let report = run(&config, Some(mutant), options);
        let refuted = report
            .properties
            .iter()
            .find(|p| p.rule == mutant.rule() && p.verdict == Verdict::Violated)
            .unwrap_or_else(|| panic!("{mutant} is not refuted:\n{}", summary(&report)));
        let trace = refuted
            .counterexample
            .as_ref()
            .unwrap_or_else(|| panic!("{mutant}: no counterexample"));
        let function_check = ["R-BACKUP-5", "R-READ-3"].contains(&mutant.rule());
        assert!(
            function_check || !trace.steps.is_empty(),
            "{mutant}: a path"
        );
        insta::assert_snapshot!(
            format!("mutant_{}", mutant.name()),
            format!("{}\n{}", refuted.name, trace.to_text())
        );
    }
}

/// `corrupt-log-as-torn-tail` breaks the property written for damaged logs, not only
/// durability: the replica whose log was damaged takes the PRIMARY role (the shortest such
/// path pinned).
#[test]
fn torn_tail_recovery_makes_a_damaged_replica_primary() {
    let mutant = Mutant::CorruptLogAsTornTail;
    let config = ModelConfig::from_toml_str(hadr_model::mutant::configuration_for(mutant))
        .expect("embedded configurations are valid");
    let report = run(&config, Some(mutant), CheckOptions::default());
    let property = report
        .properties
        .iter()
        .find(|p| {
            p.title
                .starts_with("a replica whose log a storage fault damaged")
        })
        .expect("the property is checked");
    assert_eq!(property.verdict, Verdict::Violated, "{}", summary(&report));
    let trace = property.counterexample.as_ref().expect("a counterexample");
    insta::assert_snapshot!(
        "torn_tail_damaged_primary",
        format!("{}\n{}", property.name, trace.to_text())
    );
}
