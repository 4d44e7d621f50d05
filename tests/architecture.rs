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
