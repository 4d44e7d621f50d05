//! What a long command (`hadr certify`, `hadr demo`, `hadr bench`) leaves behind when it is
//! told to stop: nothing. [`stop_on_signals`] makes SIGINT, SIGTERM and SIGHUP stop every
//! process this one started (its whole process tree: replicas, etcd, a conformance driver and
//! whatever that driver started), remove the temporary directories and network namespaces it
//! made and give back its port reservations, then exit with status 128 + the signal's number.
//! [`die_with_parent`] covers the one signal nothing can catch, SIGKILL: each child is killed
//! by the kernel when the thread that started it ends.
//!
//! Temporary directories and port reservations are made under the registry's lock
//! ([`create_temp_dir`], [`crate::local_cluster::free_port`]), and the cleanup holds that lock
//! until the process exits: a directory or reservation is either made and then removed, or not
//! made at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// What this process made that must not outlive it.
struct Registry {
    /// Set once cleanup has begun: nothing more may be made.
    stopping: bool,
    dirs: Vec<PathBuf>,
    /// Reservation files of ports ([`crate::local_cluster`]).
    reservations: Vec<PathBuf>,
    /// Network namespaces ([`crate::netns`]).
    namespaces: Vec<String>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    stopping: false,
    dirs: Vec::new(),
    reservations: Vec::new(),
    namespaces: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A thread that panicked while holding the lock left the lists consistent (every change
    // is one push or one retain).
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Creates `path` (and its parents) as a temporary directory of this process: removed by the
/// cleanup of a stopping signal unless [`forget_temp_dir`] was called first. Fails with
/// [`std::io::ErrorKind::Interrupted`] once the process is stopping.
pub fn create_temp_dir(path: &Path) -> std::io::Result<()> {
    let mut registry = registry();
    if registry.stopping {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "stopping on a signal",
        ));
    }
    std::fs::create_dir_all(path)?;
    registry.dirs.push(path.to_owned());
    Ok(())
}

/// A new temporary directory of this process ([`create_temp_dir`]) under `$parent_var`, or the
/// temp directory when that variable is unset, named `PREFIX-PID-NANOS-N`: unique within the
/// process, and not one a process of the same id kept before.
pub fn new_temp_dir(parent_var: &str, prefix: &str) -> Result<PathBuf, TempDirError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let parent = std::env::var_os(parent_var)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = parent.join(format!(
        "{prefix}-{}-{nanos:09}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    match create_temp_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(source) => Err(TempDirError { path: dir, source }),
    }
}

/// Why [`new_temp_dir`] could not make a directory.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the temporary directory {path}: {source}")]
pub struct TempDirError {
    /// The directory.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// `path` is no longer this process' to remove on a signal (it removed it, or keeps it).
pub fn forget_temp_dir(path: &Path) {
    registry().dirs.retain(|d| d != path);
}

/// Runs `reserve` (which creates the reservation file `path`, true when it did) under the
/// registry's lock and records the reservation; false once the process is stopping.
pub(crate) fn reserve_with(path: &Path, reserve: impl FnOnce() -> bool) -> bool {
    let mut registry = registry();
    if registry.stopping || !reserve() {
        return false;
    }
    registry.reservations.push(path.to_owned());
    true
}

/// The reservation file `path` was removed.
pub(crate) fn released(path: &Path) {
    registry().reservations.retain(|r| r != path);
}

/// The network namespace `name` is about to be made: a stopping signal deletes it.
pub(crate) fn track_namespace(name: &str) {
    registry().namespaces.push(name.to_owned());
}

/// The network namespace `name` was deleted.
pub(crate) fn untrack_namespace(name: &str) {
    registry().namespaces.retain(|n| n != name);
}

/// Makes the child that `command` starts die with SIGKILL when the thread that starts it
/// ends: when this process is killed, even by SIGKILL, its replicas and etcd do not live on
/// under PID 1. (Linux `PR_SET_PDEATHSIG`; elsewhere nothing.) Start children only from
/// threads that outlive them (the main thread, or a worker that ends after its children).
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec the closure only calls prctl(2), which is
        // async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
}

/// Why the signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot handle SIGINT, SIGTERM and SIGHUP: {0}")]
pub struct SignalError(#[source] std::io::Error);

/// Handles SIGINT, SIGTERM and SIGHUP from now on, in a thread of their own: on the first,
/// stops every process this one started, removes its temporary directories and port
/// reservations, says so on stderr, and exits with status 128 + the signal's number.
pub fn stop_on_signals() -> Result<(), SignalError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(SignalError)?;
    std::thread::Builder::new()
        .name("stop-on-signal".to_owned())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let mut registry = registry();
                registry.stopping = true;
                let report = clean_up(&mut registry);
                eprintln!(
                    "hadr: stopped by {}: {report}",
                    signal_hook::low_level::signal_name(signal).unwrap_or("a signal")
                );
                // Exits holding the lock: nothing new is made from here on.
                std::process::exit(128 + signal);
            }
        })
        .map_err(SignalError)?;
    Ok(())
}

/// What a cleanup did.
struct Report {
    processes: usize,
    dirs: usize,
    reservations: usize,
    namespaces: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} processes killed, {} temporary directories, {} port reservations and {} network namespaces removed",
            self.processes, self.dirs, self.reservations, self.namespaces
        )
    }
}

fn clean_up(registry: &mut Registry) -> Report {
    // Processes first: they write into the directories.
    let mut processes = 0;
    for pid in descendants(std::process::id()) {
        // SAFETY: kill(2) with a pid read from /proc; at worst the process is gone already.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
            processes += 1;
        }
    }
    let dirs = registry
        .dirs
        .drain(..)
        .filter(|d| std::fs::remove_dir_all(d).is_ok())
        .count();
    let reservations = registry
        .reservations
        .drain(..)
        .filter(|r| std::fs::remove_file(r).is_ok())
        .count();
    let namespaces = registry
        .namespaces
        .drain(..)
        .filter(|n| {
            Command::new("ip")
                .args(["netns", "del", n])
                .status()
                .is_ok_and(|s| s.success())
        })
        .count();
    Report {
        processes,
        dirs,
        reservations,
        namespaces,
    }
}

/// Every live descendant of process `root` (children, their children, …), read from /proc;
/// parents before their children.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = parent(pid) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, ppid)| *ppid == p)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent of live process `pid` (not a zombie), from `/proc/PID/stat`: `pid (comm) state
/// ppid …`, where comm may hold spaces and parentheses.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child and its grandchild are descendants; this process is not its own.
    #[test]
    fn descendants_are_the_whole_tree() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let me = std::process::id();
        let mut tree = Vec::new();
        for _ in 0..100 {
            tree = descendants(me);
            if tree.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&child.id()), "{tree:?}");
        assert!(tree.len() >= 2, "the grandchild too: {tree:?}");
        assert!(!tree.contains(&me));
    }

    /// A temporary directory is the cleanup's to remove until it is forgotten.
    #[test]
    fn temporary_directories_are_registered_until_forgotten() {
        let dir = std::env::temp_dir().join(format!("hadr-cleanup-test-{}", std::process::id()));
        create_temp_dir(&dir).unwrap();
        assert!(registry().dirs.contains(&dir));
        forget_temp_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!registry().dirs.contains(&dir));
    }
}
