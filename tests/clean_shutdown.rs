//! The long commands leave nothing behind when they are stopped: SIGTERM to `hadr certify
//! --sut reference`, `hadr demo` and `hadr demo --cluster etcd` stops every process they
//! started (replicas, etcd), removes their temporary directories and network namespaces and
//! gives back their port reservations, and exits with 128 + 15; SIGKILL, which nothing can catch, still takes the
//! replicas down with it (`PR_SET_PDEATHSIG`).

use hadr_testbed::cleanup::descendants;
use hadr_testbed::local_cluster::reservations_of;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn hadr(args: &[&str], reference_dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hadr"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env("HADR_REFERENCE_DIR", reference_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hadr")
}

/// Waits until `child` has started `processes` processes (its replicas, etcd), and returns
/// them; fails after a minute, or when the command ended first.
fn wait_for_processes(child: &mut Child, processes: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tree = descendants(child.id());
        if tree.len() >= processes {
            // Give the last one a moment to get going (its ports bound, its files open).
            std::thread::sleep(Duration::from_millis(500));
            return descendants(child.id());
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("hadr ended ({status}) before it started {processes} processes");
        }
        assert!(
            Instant::now() < deadline,
            "hadr started {} of {processes} processes in a minute",
            tree.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `pid` is a live process (a zombie waiting for its new parent to reap it is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        !matches!(state, Some("Z" | "X"))
    })
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait for hadr") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "hadr did not exit after a signal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Every process of `tree` is gone, soon.
fn assert_gone(tree: &[u32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tree.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = tree.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "{what}: processes left running: {left:?}");
}

/// The directories of `dir` (which must exist) whose names contain `needle`.
fn entries_named(dir: &Path, needle: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read a directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(needle))
        .collect()
}

/// SIGTERM to `args` once it runs `processes` processes: nothing of it is left.
fn sigterm_leaves_nothing(args: &[&str], processes: usize, temp_dir_name: &str) {
    let reference_dir = tempfile::tempdir().unwrap();
    let mut child = hadr(args, reference_dir.path());
    let pid = child.id();
    let tree = wait_for_processes(&mut child, processes);
    let temp_dir = std::env::temp_dir().join(format!("{temp_dir_name}-{pid}"));
    let made: Vec<PathBuf> = entries_named(reference_dir.path(), "hadr-reference-")
        .into_iter()
        .chain(Some(temp_dir.clone()).filter(|d| d.exists()))
        .collect();
    assert!(!made.is_empty(), "{args:?} made no temporary directory");
    assert!(
        !reservations_of(pid).is_empty() || !namespaces_of(pid).is_empty(),
        "{args:?} reserved no port and made no network namespace"
    );

    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{args:?}: {stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert_gone(&tree, &format!("{args:?}"));
    for dir in &made {
        assert!(!dir.exists(), "{args:?} left {}", dir.display());
    }
    assert_eq!(
        entries_named(reference_dir.path(), "hadr-reference-"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(reservations_of(pid), Vec::<u16>::new(), "{args:?}");
    assert_eq!(namespaces_of(pid), Vec::<PathBuf>::new(), "{args:?}");
}

/// The network namespaces made by process `pid` (`hadr_testbed::netns` names them after it).
fn namespaces_of(pid: u32) -> Vec<PathBuf> {
    let dir = Path::new("/run/netns");
    if !dir.exists() {
        return Vec::new();
    }
    entries_named(dir, &format!("hadr-{pid}-"))
}

/// SIGTERM to `hadr certify --sut reference --faults FAULTS` once it runs two scenarios (the
/// corpus is CLUSTER_TYPE EXTERNAL: three replicas and etcd each).
#[cfg(feature = "etcd")]
fn sigterm_to_certify_reference(faults: &str) {
    sigterm_leaves_nothing(
        &[
            "certify",
            "--sut",
            "reference",
            "--short-timeouts",
            "--jobs",
            "2",
            "--faults",
            faults,
        ],
        8,
        "hadr-reference",
    );
}

/// The replicas on loopback: port reservations.
#[cfg(feature = "etcd")]
#[test]
fn sigterm_to_certify_reference_leaves_nothing() {
    sigterm_to_certify_reference("cooperative");
}

/// The replicas in network namespaces (root: CI runs as root; otherwise the command refuses
/// `--faults outside` and this test fails saying why).
#[cfg(feature = "etcd")]
#[test]
fn sigterm_to_certify_reference_in_namespaces_leaves_nothing() {
    sigterm_to_certify_reference("outside");
}

#[test]
fn sigterm_to_demo_leaves_nothing() {
    sigterm_leaves_nothing(&["demo", "--seconds", "60"], 3, "hadr-demo");
}

#[cfg(feature = "etcd")]
#[test]
fn sigterm_to_demo_with_etcd_leaves_nothing() {
    sigterm_leaves_nothing(
        &["demo", "--cluster", "etcd", "--seconds", "60"],
        4,
        "hadr-demo",
    );
}

/// SIGKILL cannot be handled: the replicas die with their parent all the same.
#[test]
fn the_replicas_die_with_a_killed_demo() {
    let reference_dir = tempfile::tempdir().unwrap();
    let mut child = hadr(&["demo", "--seconds", "60"], reference_dir.path());
    let tree = wait_for_processes(&mut child, 3);
    signal(&child, libc::SIGKILL);
    wait_exit(&mut child);
    assert_gone(&tree, "demo killed with SIGKILL");
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("hadr-demo-{}", child.id())));
}
