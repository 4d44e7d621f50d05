//! The optional capability `processes` of the driver protocol: the harness, not the driver,
//! starts and stops the implementation's replica processes and makes the network's faults,
//! from outside, as `--sut reference` does for the reference replicas
//! (`docs/adapter-protocol.md`, "The `processes` capability").
//!
//! ```text
//!  harness                                     driver
//!    │ Network::create: a namespace per replica, one more for etcd (EXTERNAL)
//!    │ etcd started in its namespace (EXTERNAL)
//!    ├─{"op":"processes","config":…,"hosts":[…],"etcd":…,"dir":…}──▶ writes its files in dir
//!    ◀─{"ok":true,"replicas":[{"argv":[…],"env":{…},"cwd":…},…]}─────
//!    │ starts each command line in its replica's namespace
//!    ├─{"op":"setup","config":…}──────────────────────────────────▶ creates the group
//!    │ Crash, Restart, Partition, Heal, LoseQuorum, RegainQuorum: done here, then
//!    ├─{"op":"step","action":…,"performed":true}──────────────────▶ waits until quiescent
//! ```
//!
//! A crash is SIGKILL of the replica's whole process tree, a restart the same command line
//! started again in the same namespace, a partition (or a cut from the manager) packets dropped
//! between two namespaces ([`Network::set_cut`]), a lost quorum etcd stopped with SIGSTOP.

use hadr_model::{Action, Node};
use hadr_testbed::netns::{NetnsError, Network};
use hadr_types::{AgConfig, ClusterType};
use serde_json::{json, Value};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The capability's name in `hello`.
pub const CAPABILITY: &str = "processes";

/// Why the harness could not run a scenario's processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessesError {
    /// The configuration asks for a cluster manager the harness cannot run.
    #[error("{0}")]
    Unsupported(String),
    /// The driver's `processes` reply is not what the protocol says.
    #[error("driver, `processes`: {0}")]
    Reply(String),
    /// The scenario's network could not be made or changed.
    #[error("the scenario's network: {0}")]
    Network(#[from] NetnsError),
    /// The scenario's directory could not be made.
    #[error("cannot make the scenario directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// etcd did not start, or could not be stopped or continued.
    #[error("etcd: {0}")]
    Etcd(String),
    /// A replica's command line could not be started.
    #[error("cannot start replica {replica} ({argv:?}): {source}")]
    Start {
        /// The replica's index.
        replica: usize,
        /// Its command line.
        argv: Vec<String>,
        /// Why.
        source: std::io::Error,
    },
    /// A replica's process ended although nothing crashed it.
    #[error("replica {replica} exited on its own ({status}); its output ({log}): {tail}")]
    Exited {
        /// The replica's index.
        replica: usize,
        /// How it ended.
        status: std::process::ExitStatus,
        /// The file its stdout and stderr go to.
        log: String,
        /// The last lines of that file.
        tail: String,
    },
    /// An action names a replica the configuration does not have.
    #[error("replica {replica} is not in the configuration ({replicas} replicas)")]
    NoSuchReplica {
        /// The index the action names.
        replica: u8,
        /// How many replicas the configuration has.
        replicas: usize,
    },
}

impl From<ProcessesError> for hadr_conformance::sut::SutError {
    fn from(e: ProcessesError) -> Self {
        match e {
            ProcessesError::Unsupported(m) => hadr_conformance::sut::SutError::Unsupported(m),
            other => hadr_conformance::sut::SutError::Failed(other.to_string()),
        }
    }
}

/// How the driver says to start one replica: its reply's `replicas[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// The program and its arguments (`argv[0]` is looked up on the `PATH`).
    pub argv: Vec<String>,
    /// Variables set on top of the harness' own environment.
    pub env: Vec<(String, String)>,
    /// The working directory (absolute), or the harness' own.
    pub cwd: Option<PathBuf>,
}

/// Reads the driver's `processes` reply: one command line per replica, or what is wrong
/// with it, naming the field.
pub fn command_lines(reply: &Value, replicas: usize) -> Result<Vec<CommandLine>, String> {
    let list = reply
        .get("replicas")
        .ok_or("the reply has no `replicas`")?
        .as_array()
        .ok_or("`replicas` is not an array")?;
    if list.len() != replicas {
        return Err(format!(
            "`replicas` has {} command lines for the configuration's {replicas} replicas",
            list.len()
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, entry)| command_line(entry).map_err(|e| format!("`replicas[{i}]`{e}")))
        .collect()
}

/// One entry of `replicas`; an error starts with the field's path below the entry.
fn command_line(entry: &Value) -> Result<CommandLine, String> {
    let entry = entry.as_object().ok_or(" is not an object")?;
    if let Some(field) = entry
        .keys()
        .find(|k| !matches!(k.as_str(), "argv" | "env" | "cwd"))
    {
        return Err(format!(
            ": unknown field `{field}` (a command line has argv, env, cwd)"
        ));
    }
    let argv = entry
        .get("argv")
        .ok_or(".argv is missing")?
        .as_array()
        .ok_or(".argv is not an array")?;
    if argv.is_empty() {
        return Err(".argv is empty: it needs at least the program".to_owned());
    }
    let argv = argv
        .iter()
        .enumerate()
        .map(|(j, a)| match a.as_str() {
            Some(s) if s.contains('\0') => Err(format!(".argv[{j}] holds a NUL byte")),
            Some(s) => Ok(s.to_owned()),
            None => Err(format!(".argv[{j}] is not a string: {a}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if argv[0].is_empty() {
        return Err(".argv[0] is empty: it is the program".to_owned());
    }
    let env = match entry.get("env") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(vars)) => vars
            .iter()
            .map(|(name, value)| {
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(format!(
                        ".env: {name:?} is no variable name (empty, or with = or NUL)"
                    ));
                }
                match value.as_str() {
                    Some(v) if v.contains('\0') => Err(format!(".env.{name} holds a NUL byte")),
                    Some(v) => Ok((name.clone(), v.to_owned())),
                    None => Err(format!(".env.{name} is not a string: {value}")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!(".env is not an object: {other}")),
    };
    let cwd = match entry.get("cwd") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if Path::new(s).is_absolute() && !s.contains('\0') => {
            Some(PathBuf::from(s))
        }
        Some(other) => return Err(format!(".cwd is not an absolute path: {other}")),
    };
    Ok(CommandLine { argv, env, cwd })
}

/// Whether the harness performs `action` itself under the capability.
pub fn performs(action: &Action) -> bool {
    matches!(
        action,
        Action::Crash { .. }
            | Action::Restart { .. }
            | Action::Partition { .. }
            | Action::Heal { .. }
            | Action::LoseQuorum
            | Action::RegainQuorum
    )
}

/// One replica's process, as the harness runs it.
struct Replica {
    line: Option<CommandLine>,
    /// Where its stdout and stderr go (appended, across restarts).
    log: PathBuf,
    /// Running (or exited on its own, not yet noticed); `None` once crashed.
    child: Option<Child>,
}

/// One scenario's processes, etcd and network. Dropping it kills every process, removes the
/// scenario's directory (unless `HADR_EXTERNAL_KEEP=1`) and deletes the network.
pub struct Processes {
    root: PathBuf,
    keep: bool,
    replicas: Vec<Replica>,
    #[cfg(feature = "etcd")]
    etcd: Option<hadr_manager::local::LocalEtcd>,
    /// etcd's host in the network (EXTERNAL only): the host after the last replica.
    etcd_host: Option<usize>,
    /// etcd's client URL (EXTERNAL only).
    etcd_endpoint: Option<String>,
    /// Last, so that it goes after every process: replica `i` is host `i`.
    network: Network,
}

impl Processes {
    /// Makes the scenario's network and directory and, for CLUSTER_TYPE EXTERNAL, starts etcd
    /// in a namespace of its own.
    pub fn prepare(config: &AgConfig) -> Result<Processes, ProcessesError> {
        let external =
            match config.cluster_type {
                ClusterType::External => true,
                ClusterType::None => false,
                ClusterType::Wsfc => return Err(ProcessesError::Unsupported(
                    "CLUSTER_TYPE WSFC: the harness runs no WSFC for the `processes` capability"
                        .to_owned(),
                )),
            };
        if external && !cfg!(feature = "etcd") {
            return Err(ProcessesError::Unsupported(
                "CLUSTER_TYPE EXTERNAL with the `processes` capability: this harness is built without etcd (build hadr with `--features etcd`)".to_owned(),
            ));
        }
        let n = config.replicas.len();
        let network = Network::create(n + usize::from(external))?;
        let root = scenario_dir()?;
        let driver_dir = root.join("driver");
        std::fs::create_dir_all(&driver_dir).map_err(|source| ProcessesError::Dir {
            path: driver_dir,
            source,
        })?;
        let mut processes = Processes {
            keep: std::env::var_os("HADR_EXTERNAL_KEEP").is_some_and(|v| v == "1"),
            replicas: (0..n)
                .map(|i| Replica {
                    line: None,
                    log: root.join(format!("replica-{i}.log")),
                    child: None,
                })
                .collect(),
            root,
            #[cfg(feature = "etcd")]
            etcd: None,
            etcd_host: external.then_some(n),
            etcd_endpoint: None,
            network,
        };
        processes.start_etcd()?;
        Ok(processes)
    }

    #[cfg(feature = "etcd")]
    fn start_etcd(&mut self) -> Result<(), ProcessesError> {
        let Some(host) = self.etcd_host else {
            return Ok(());
        };
        let etcd = hadr_testbed::failover::etcd_on_host(&self.root, &self.network, host)
            .map_err(ProcessesError::Etcd)?;
        self.etcd_endpoint = Some(etcd.endpoint(0));
        self.etcd = Some(etcd);
        Ok(())
    }

    #[cfg(not(feature = "etcd"))]
    fn start_etcd(&mut self) -> Result<(), ProcessesError> {
        Ok(()) // `prepare` refused EXTERNAL already
    }

    /// The `processes` request for `config`.
    pub fn request(&self, config: &AgConfig) -> Value {
        let hosts: Vec<Value> = self
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                json!({
                    "replica": i,
                    "address": self.network.address(i).to_string(),
                    "log": r.log.display().to_string(),
                })
            })
            .collect();
        json!({
            "op": "processes",
            "config": config,
            "hosts": hosts,
            "etcd": self.etcd_endpoint,
            "dir": self.root.join("driver").display().to_string(),
        })
    }

    /// Starts every replica with the command line the driver gave.
    pub fn start_all(&mut self, lines: Vec<CommandLine>) -> Result<(), ProcessesError> {
        for (r, line) in self.replicas.iter_mut().zip(lines) {
            r.line = Some(line);
        }
        (0..self.replicas.len()).try_for_each(|i| self.start(i))
    }

    fn start(&mut self, i: usize) -> Result<(), ProcessesError> {
        let replica = &mut self.replicas[i];
        let Some(line) = &replica.line else {
            return Ok(());
        };
        let start_error = |source| ProcessesError::Start {
            replica: i,
            argv: line.argv.clone(),
            source,
        };
        let out = File::options()
            .create(true)
            .append(true)
            .open(&replica.log)
            .map_err(start_error)?;
        let err = out.try_clone().map_err(start_error)?;
        let mut command = Command::new(&line.argv[0]);
        command
            .args(&line.argv[1..])
            .envs(line.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(cwd) = &line.cwd {
            command.current_dir(cwd);
        }
        hadr_testbed::cleanup::die_with_parent(&mut command);
        self.network.enter(i, &mut command);
        let child = command.spawn().map_err(start_error)?;
        tracing::info!(replica = i, pid = child.id(), argv = ?line.argv, "replica started");
        replica.child = Some(child);
        Ok(())
    }

    /// An error for the first replica whose process ended although nothing crashed it.
    pub fn check_running(&mut self) -> Result<(), ProcessesError> {
        for (i, r) in self.replicas.iter_mut().enumerate() {
            let Some(child) = &mut r.child else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                r.child = None;
                return Err(ProcessesError::Exited {
                    replica: i,
                    status,
                    log: r.log.display().to_string(),
                    tail: tail(&r.log),
                });
            }
        }
        Ok(())
    }

    /// Performs one of the actions [`performs`] names.
    pub fn perform(&mut self, action: &Action) -> Result<(), ProcessesError> {
        match *action {
            Action::Crash { replica } => {
                let i = self.index(replica)?;
                match self.replicas[i].child.take() {
                    Some(child) => kill_tree(child),
                    None => tracing::info!(replica = i, "crash: down already: not done"),
                }
                Ok(())
            }
            Action::Restart { replica } => {
                let i = self.index(replica)?;
                if self.replicas[i].child.is_some() {
                    tracing::info!(replica = i, "restart: running already: not done");
                    return Ok(());
                }
                self.start(i)
            }
            Action::Partition { a, b } => self.cut(a, b, true),
            Action::Heal { a, b } => self.cut(a, b, false),
            Action::LoseQuorum => self.quorum(true),
            Action::RegainQuorum => self.quorum(false),
            _ => Ok(()),
        }
    }

    fn index(&self, replica: u8) -> Result<usize, ProcessesError> {
        let i = usize::from(replica);
        if i < self.replicas.len() {
            Ok(i)
        } else {
            Err(ProcessesError::NoSuchReplica {
                replica,
                replicas: self.replicas.len(),
            })
        }
    }

    /// The host of a node: a replica's, or etcd's (`None` without a manager).
    fn host(&self, node: Node) -> Result<Option<usize>, ProcessesError> {
        match node {
            Node::Replica(r) => self.index(r).map(Some),
            Node::Manager => Ok(self.etcd_host),
        }
    }

    fn cut(&mut self, a: Node, b: Node, cut: bool) -> Result<(), ProcessesError> {
        match (self.host(a)?, self.host(b)?) {
            (Some(x), Some(y)) if x != y => Ok(self.network.set_cut(x, y, cut)?),
            _ => Ok(()), // CLUSTER_TYPE NONE: no manager to cut from
        }
    }

    #[cfg(feature = "etcd")]
    fn quorum(&mut self, lose: bool) -> Result<(), ProcessesError> {
        let Some(etcd) = &self.etcd else {
            return Ok(()); // CLUSTER_TYPE NONE: no quorum to lose
        };
        let result = if lose { etcd.pause(0) } else { etcd.resume(0) };
        result.map_err(ProcessesError::Etcd)
    }

    #[cfg(not(feature = "etcd"))]
    fn quorum(&mut self, _lose: bool) -> Result<(), ProcessesError> {
        Ok(()) // without etcd there is no EXTERNAL group
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            if let Some(child) = r.child.take() {
                kill_tree(child);
            }
        }
        #[cfg(feature = "etcd")]
        drop(self.etcd.take());
        if self.keep {
            eprintln!("hadr: kept {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
        hadr_testbed::cleanup::forget_temp_dir(&self.root);
    }
}

/// SIGKILL of `child` and every process below it: each is stopped first (SIGSTOP), until no
/// new descendant appears, so that none forks away meanwhile; then all are killed, the child
/// reaped, and the others waited for (up to 5 s) until they are gone or zombies: a signal is
/// delivered asynchronously, and a restart must not meet the old server still holding its
/// ports and files.
fn kill_tree(mut child: Child) {
    let root = child.id();
    let signal = |pid: u32, signal: libc::c_int| {
        // SAFETY: kill(2) on a process of this tree; at worst it is gone already.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    };
    signal(root, libc::SIGSTOP);
    let mut tree = vec![root];
    loop {
        let new: Vec<u32> = hadr_testbed::cleanup::descendants(root)
            .into_iter()
            .filter(|p| !tree.contains(p))
            .collect();
        if new.is_empty() {
            break;
        }
        for &pid in &new {
            signal(pid, libc::SIGSTOP);
        }
        tree.extend(new);
    }
    for &pid in &tree {
        signal(pid, libc::SIGKILL);
    }
    let _ = child.wait();
    for _ in 0..500 {
        if tree.iter().all(|&pid| dead(pid)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!(
        ?tree,
        "processes of a killed replica still run 5 s after SIGKILL"
    );
}

/// Whether process `pid` is gone or a zombie (dead, not reaped yet).
fn dead(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        state.starts_with('Z') || state.starts_with('X')
    })
}

/// The last lines of a log file, on one line.
fn tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = File::open(path) else {
        return "(no output)".to_owned();
    };
    let length = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(4096)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.trim().lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
    if tail.is_empty() {
        "(no output)".to_owned()
    } else {
        tail
    }
}

/// A new directory for one scenario, under `HADR_EXTERNAL_DIR` or the temp directory.
/// Removed on drop, or on a stopping signal by `hadr_testbed::cleanup`.
fn scenario_dir() -> Result<PathBuf, ProcessesError> {
    hadr_testbed::cleanup::new_temp_dir("HADR_EXTERNAL_DIR", "hadr-external").map_err(|e| {
        ProcessesError::Dir {
            path: e.path,
            source: e.source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(reply: Value) -> Result<Vec<CommandLine>, String> {
        command_lines(&reply, 2)
    }

    #[test]
    fn a_well_formed_reply_gives_each_replica_its_command_line() {
        let reply = json!({"ok": true, "replicas": [
            {"argv": ["/bin/hadr", "replica"], "env": {"A": "1"}, "cwd": "/tmp"},
            {"argv": ["hadr"]},
        ]});
        assert_eq!(
            lines(reply).unwrap(),
            vec![
                CommandLine {
                    argv: vec!["/bin/hadr".into(), "replica".into()],
                    env: vec![("A".into(), "1".into())],
                    cwd: Some("/tmp".into()),
                },
                CommandLine {
                    argv: vec!["hadr".into()],
                    env: vec![],
                    cwd: None,
                },
            ]
        );
    }

    /// Every malformed reply is an error naming the field, never a panic.
    #[test]
    fn a_malformed_reply_is_an_error_naming_the_field() {
        let ok = json!({"argv": ["x"]});
        let cases = [
            (json!({"ok": true}), "no `replicas`"),
            (json!({"replicas": {}}), "`replicas` is not an array"),
            (
                json!({"replicas": [ok]}),
                "1 command lines for the configuration's 2",
            ),
            (
                json!({"replicas": [ok, 3]}),
                "`replicas[1]` is not an object",
            ),
            (
                json!({"replicas": [ok, {}]}),
                "`replicas[1]`.argv is missing",
            ),
            (
                json!({"replicas": [ok, {"argv": "x"}]}),
                "`replicas[1]`.argv is not an array",
            ),
            (
                json!({"replicas": [{"argv": []}, ok]}),
                "`replicas[0]`.argv is empty",
            ),
            (
                json!({"replicas": [ok, {"argv": ["x", 1]}]}),
                "`replicas[1]`.argv[1] is not a string",
            ),
            (
                json!({"replicas": [ok, {"argv": [""]}]}),
                "`replicas[1]`.argv[0] is empty",
            ),
            (
                json!({"replicas": [ok, {"argv": ["x\u{0}"]}]}),
                "`replicas[1]`.argv[0] holds a NUL",
            ),
            (
                json!({"replicas": [ok, {"argv": ["x"], "env": []}]}),
                "`replicas[1]`.env is not an object",
            ),
            (
                json!({"replicas": [ok, {"argv": ["x"], "env": {"A": 1}}]}),
                "`replicas[1]`.env.A is not a string",
            ),
            (
                json!({"replicas": [ok, {"argv": ["x"], "env": {"A=B": "1"}}]}),
                "no variable name",
            ),
            (
                json!({"replicas": [ok, {"argv": ["x"], "cwd": "rel"}]}),
                "`replicas[1]`.cwd is not an absolute path",
            ),
            (
                json!({"replicas": [ok, {"argv": ["x"], "cwd": 7}]}),
                "`replicas[1]`.cwd is not an absolute path",
            ),
            (
                json!({"replicas": [ok, {"argv": ["x"], "dir": "/"}]}),
                "`replicas[1]`: unknown field `dir`",
            ),
        ];
        for (reply, expected) in cases {
            let error = lines(reply.clone()).expect_err(&reply.to_string());
            assert!(error.contains(expected), "{reply}: {error}");
        }
    }

    #[test]
    fn the_harness_performs_the_process_and_network_faults_only() {
        let node = Node::Replica(0);
        assert!(performs(&Action::Crash { replica: 0 }));
        assert!(performs(&Action::Restart { replica: 0 }));
        assert!(performs(&Action::Partition {
            a: node,
            b: Node::Manager
        }));
        assert!(performs(&Action::Heal { a: node, b: node }));
        assert!(performs(&Action::LoseQuorum));
        assert!(performs(&Action::RegainQuorum));
        assert!(!performs(&Action::ClientCommit { db: 0 }));
        assert!(!performs(&Action::DiskStall { replica: 0 }));
        assert!(!performs(&Action::LoseLogBlock { to: 1, db: 0 }));
    }
}
