//! The dependency rule of ARCHITECTURE.md, checked on the real dependency graph: the spec
//! (`hadr-model`) shares no code with the implementation (`hadr-core`, `hadr-node`,
//! `hadr-manager`, `hadr-listener`), or checking one against the other proves nothing. The
//! conformance harness (`hadr-conformance`) sees the spec and the vocabulary only; the
//! adapters (`hadr-adapters`) and the test bed (`hadr-testbed`) are where the implementation
//! is driven; the CLI (`src/`) holds commands only.

use std::process::Command;

/// The crates of the reference implementation, and what drives it as processes.
const IMPLEMENTATION: [&str; 5] = [
    "hadr-core",
    "hadr-node",
    "hadr-manager",
    "hadr-listener",
    "hadr-testbed",
];

fn tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_spec_depends_on_no_implementation_crate() {
    let deps = tree("hadr-model");
    assert!(deps.contains("hadr-types"), "{deps}");
    assert!(deps.contains("stateright"), "{deps}");
    for forbidden in IMPLEMENTATION
        .iter()
        .chain(&["hadr-conformance", "hadr-adapters", "tokio"])
    {
        assert!(
            !deps
                .lines()
                .any(|l| l.starts_with(&format!("{forbidden} "))),
            "hadr-model depends on {forbidden}:\n{deps}"
        );
    }
}

#[test]
fn the_vocabulary_depends_on_neither_side() {
    let deps = tree("hadr-types");
    for forbidden in ["hadr-model", "stateright", "hadr-core", "hadr-node"] {
        assert!(
            !deps
                .lines()
                .any(|l| l.starts_with(&format!("{forbidden} "))),
            "hadr-types depends on {forbidden}:\n{deps}"
        );
    }
}

fn assert_free_of(package: &str, forbidden: &[&str], must_have: &[&str]) {
    let deps = tree(package);
    for needed in must_have {
        assert!(
            deps.lines().any(|l| l.starts_with(&format!("{needed} "))),
            "{package} should depend on {needed}:\n{deps}"
        );
    }
    for forbidden in forbidden {
        assert!(
            !deps
                .lines()
                .any(|l| l.starts_with(&format!("{forbidden} "))),
            "{package} depends on {forbidden}:\n{deps}"
        );
    }
}

/// The core is sans-IO: no async runtime, and nothing of the spec.
#[test]
fn the_core_has_no_runtime_and_no_spec() {
    assert_free_of(
        "hadr-core",
        &[
            "tokio",
            "mio",
            "hadr-model",
            "stateright",
            "hadr-node",
            "hadr-conformance",
        ],
        &["hadr-types"],
    );
}

/// The node is the implementation's shell: the core and tokio, nothing of the spec.
#[test]
fn the_node_depends_on_the_core_but_not_on_the_spec() {
    assert_free_of(
        "hadr-node",
        &["hadr-model", "stateright", "hadr-conformance"],
        &["hadr-core", "tokio"],
    );
}

/// The cluster manager speaks the core's vocabulary (ManagerRequest, ManagerEvent) to etcd;
/// it knows nothing of the spec.
#[test]
fn the_cluster_manager_depends_on_the_core_but_not_on_the_spec() {
    assert_free_of(
        "hadr-manager",
        &["hadr-model", "stateright", "hadr-node"],
        &["hadr-core", "etcd-client"],
    );
}

/// The listener is part of the implementation: it routes through the node's client and admin
/// APIs and knows nothing of the spec.
#[test]
fn the_listener_depends_on_the_node_but_not_on_the_spec() {
    assert_free_of(
        "hadr-listener",
        &["hadr-model", "stateright", "hadr-conformance"],
        &["hadr-node", "tokio"],
    );
}

/// The test bed launches the implementation's processes; it neither judges them nor knows the
/// spec.
#[test]
fn the_test_bed_depends_on_the_node_but_not_on_the_spec_or_the_harness() {
    assert_free_of(
        "hadr-testbed",
        &[
            "hadr-model",
            "stateright",
            "hadr-conformance",
            "hadr-adapters",
        ],
        &["hadr-node"],
    );
}

/// The harness judges any implementation against the spec: it depends on the spec and the
/// vocabulary, never on the reference implementation it certifies, nor on an async runtime.
#[test]
fn the_harness_depends_on_the_spec_and_the_vocabulary_only() {
    let forbidden: Vec<&str> = IMPLEMENTATION
        .iter()
        .copied()
        .chain(["hadr-adapters", "tokio"])
        .collect();
    assert_free_of(
        "hadr-conformance",
        &forbidden,
        &["hadr-model", "hadr-types"],
    );
}

/// The adapters are where the harness meets an implementation, and they may see both: the
/// harness' `Sut` trait, the core (simulated), the node and the test bed (real processes).
#[test]
fn the_adapters_see_the_harness_and_the_implementation() {
    assert_free_of(
        "hadr-adapters",
        &[],
        &["hadr-conformance", "hadr-core", "hadr-node", "hadr-testbed"],
    );
}

/// `src/` holds the `hadr` command and nothing else: its argument parsing (`cli.rs`), its
/// entry points (`main.rs`, `lib.rs`), one module per command (`*_cmd.rs`) and the terminal
/// output they share (`format.rs`, `progress.rs`). Library code lives in a library crate.
#[test]
fn the_cli_crate_holds_commands_only() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut strangers = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let entry = entry.expect("src/ is readable");
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let command_module = name.ends_with("_cmd.rs")
            || ["main.rs", "lib.rs", "cli.rs", "format.rs", "progress.rs"].contains(&name.as_str());
        if !(is_file && command_module) {
            strangers.push(name);
        }
    }
    strangers.sort();
    assert!(
        strangers.is_empty(),
        "src/ holds commands only (*_cmd.rs, cli.rs, main.rs, lib.rs, format.rs, progress.rs); move {strangers:?} to a library crate (impl/, testbed/, adapters/, conformance/)"
    );
}

/// Every Rust source file of the workspace under `dirs`, as (path relative to the root, text).
fn sources(dirs: &[&str]) -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in dirs {
        walk(&root.join(dir), &mut paths);
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("source file reads");
            let relative = p.strip_prefix(root).expect("under the root");
            (relative.to_string_lossy().replace('\\', "/"), text)
        })
        .collect()
}

/// Issue 16: who may be promoted, when and with which term is decided once, in
/// `hadr_core::policy`. The etcd manager and the simulated manager (which `reference-sim` and the
/// soak drive) ask it; no other code re-decides it: the R-FAIL-2 candidate check, the R-FAIL-4
/// lossless check, the R-QUORUM-2 restore wait and the term choice appear nowhere else.
#[test]
fn one_promotion_policy() {
    const POLICY: &str = "impl/core/src/policy.rs";
    let files = sources(&["impl", "conformance", "adapters", "testbed", "src"]);
    let text_of = |path: &str| {
        files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("{path} is missing"))
    };
    for caller in [
        "impl/manager/src/manager/promotion.rs",
        "impl/core/src/testing.rs",
    ] {
        assert!(
            text_of(caller).contains("policy::decide("),
            "{caller} no longer asks the promotion policy"
        );
    }
    // What only the policy decides, as code spells it.
    let decisions = [
        "failover_ready.contains(",
        ".synchronized_everywhere(",
        "RESTORE_AFTER_MS {",
        "< RESTORE_AFTER_MS",
        "highest_term += 1",
        "kind = PromotionKind::",
    ];
    let mut copies = Vec::new();
    for (path, text) in &files {
        if path == POLICY || path.contains("/tests/") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for decision in decisions {
                if code.contains(decision) {
                    copies.push(format!("{path}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        copies.is_empty(),
        "promotion decisions outside {POLICY} (call hadr_core::policy instead):\n{}",
        copies.join("\n")
    );
}
