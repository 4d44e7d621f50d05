//! The dependency rule of ARCHITECTURE.md, checked on the real dependency graph: the spec
//! (`hadr-model`) shares no code with the implementation (`hadr-core`, `hadr-node`), or
//! checking one against the other proves nothing.

use std::process::Command;

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
    for forbidden in ["hadr-core", "hadr-node", "hadr-conformance", "tokio"] {
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
