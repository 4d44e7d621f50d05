//! `external:CMD`: any implementation, through a driver program that speaks the
//! language-neutral protocol `hadr-adapter/1` (newline-delimited JSON over its stdin and
//! stdout, `docs/adapter-protocol.md`).
//!
//! ```text
//!  harness ──{"op":"setup","config":…}──▶ driver ──(its own API)──▶ implementation
//!          ◀─{"ok":true}─────────────────        ◀─────────────────
//!          ──{"op":"step","action":…}───▶  …performs it, waits until quiescent
//!          ──{"op":"observe"}───────────▶  ◀─{"ok":true,"observation":…}
//! ```
//!
//! One driver process serves one scenario: a driver that dies or hangs spoils only that one.
//!
//! A driver may hand its processes to the harness (the optional capability `processes`,
//! [`processes`]): then the harness starts each replica's command line in a network namespace
//! of its own and makes crashes, restarts, partitions and lost quorums itself, and the driver
//! only sets up, acts through the implementation's APIs, waits and observes.

pub mod processes;

use hadr_conformance::sut::{Sut, SutError};
use hadr_model::Action;
use hadr_types::{AgConfig, Observation};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// The protocol version this harness speaks.
pub const PROTOCOL: &str = "hadr-adapter/1";

/// How long a driver may take to answer one request before the scenario is given up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// A running driver.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<std::io::Result<String>>,
    name: String,
}

/// The optional capabilities the harness offers a driver in `hello`.
#[derive(Clone, Debug)]
pub struct Offer {
    /// [`processes::CAPABILITY`]: offered, or why not.
    processes: Result<(), String>,
}

impl Offer {
    /// No capability, for the reason `why` (told to a driver that asks for one anyway).
    pub fn nothing(why: impl Into<String>) -> Offer {
        Offer {
            processes: Err(why.into()),
        }
    }

    /// The capability `processes`: the harness runs the replicas' processes and makes the
    /// network's faults. Needs network namespaces ([`hadr_testbed::netns::available`]).
    pub fn processes() -> Offer {
        Offer { processes: Ok(()) }
    }

    /// [`Offer::processes`] when this process can make network namespaces, else nothing,
    /// saying why.
    pub fn processes_if_available() -> Offer {
        match hadr_testbed::netns::available() {
            Ok(()) => Offer::processes(),
            Err(e) => Offer::nothing(format!(
                "this harness cannot make network namespaces (it needs root, or CAP_SYS_ADMIN and CAP_NET_ADMIN, iproute2 and nftables): {e}"
            )),
        }
    }

    /// The capabilities offered, as `hello` lists them.
    fn names(&self) -> Vec<&'static str> {
        match self.processes {
            Ok(()) => vec![processes::CAPABILITY],
            Err(_) => Vec::new(),
        }
    }
}

/// An implementation behind a driver program.
pub struct External {
    command: String,
    driver: Result<Driver, String>,
    reply_timeout: Duration,
    /// Whether the driver took the capability `processes`.
    hands_over_processes: bool,
    /// With `processes`: the scenario's processes, etcd and network, once set up.
    processes: Option<processes::Processes>,
}

impl External {
    /// Starts `command` (through `sh -c`) and greets it, offering no capability. A driver
    /// that cannot be started or speaks another protocol makes every later request fail with
    /// the reason.
    pub fn spawn(command: &str) -> External {
        External::spawn_offering(command, &Offer::nothing("not offered by this harness"))
    }

    /// [`External::spawn`], offering the capabilities of `offer` in `hello`. A driver that
    /// takes one it was not offered, or names an unknown one, fails every request.
    pub fn spawn_offering(command: &str, offer: &Offer) -> External {
        let mut external = External {
            command: command.to_owned(),
            driver: Err(String::new()),
            reply_timeout: REPLY_TIMEOUT,
            hands_over_processes: false,
            processes: None,
        };
        let mut hands_over_processes = false;
        external.driver = Driver::start(command).and_then(|mut d| {
            let offered = offer.names();
            let mut hello = json!({"op": "hello", "protocol": PROTOCOL});
            if !offered.is_empty() {
                hello["capabilities"] = json!(offered);
            }
            let reply =
                d.request(&hello, REPLY_TIMEOUT)
                    .map_err(|e| match (&e, &offer.processes) {
                        // A driver that cannot work without a capability refuses `hello`.
                        (SutError::Unsupported(_), Err(why)) => {
                            format!("{e} (this harness offered no capability: {why})")
                        }
                        _ => e.to_string(),
                    })?;
            match reply.get("protocol").and_then(Value::as_str) {
                Some(PROTOCOL) => {}
                other => {
                    return Err(format!(
                        "the driver speaks {other:?}, this harness {PROTOCOL:?}"
                    ))
                }
            }
            hands_over_processes = taken_capabilities(&reply, offer)?;
            d.name = reply
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Ok(d)
        });
        external.hands_over_processes = hands_over_processes;
        external
    }

    /// Gives up a request after `timeout` instead of [`REPLY_TIMEOUT`].
    pub fn with_reply_timeout(mut self, timeout: Duration) -> External {
        self.reply_timeout = timeout;
        self
    }

    fn request(&mut self, request: Value) -> Result<Value, SutError> {
        let timeout = self.reply_timeout;
        match &mut self.driver {
            Ok(d) => d.request(&request, timeout),
            Err(e) => Err(SutError::Failed(format!(
                "the driver `{}` is not running: {e}",
                self.command
            ))),
        }
    }
}

/// The capabilities the driver's `hello` reply takes (whether it takes `processes`), or why
/// they are wrong: each must be a string the harness offered.
fn taken_capabilities(reply: &Value, offer: &Offer) -> Result<bool, String> {
    let Some(taken) = reply.get("capabilities") else {
        return Ok(false);
    };
    let taken = taken.as_array().ok_or_else(|| {
        format!("driver, `hello`: `capabilities` is not an array of strings: {taken}")
    })?;
    let mut processes = false;
    for (i, name) in taken.iter().enumerate() {
        match (name.as_str(), &offer.processes) {
            (Some(processes::CAPABILITY), Ok(())) => processes = true,
            (Some(processes::CAPABILITY), Err(why)) => {
                return Err(format!(
                    "driver, `hello`: the driver takes the capability `processes`, which this harness did not offer: {why}"
                ))
            }
            (Some(other), _) => {
                return Err(format!(
                    "driver, `hello`: `capabilities[{i}]`: unknown capability {other:?} (this harness knows `processes`)"
                ))
            }
            (None, _) => {
                return Err(format!(
                    "driver, `hello`: `capabilities[{i}]` is not a string: {name}"
                ))
            }
        }
    }
    Ok(processes)
}

impl Driver {
    fn start(command: &str) -> Result<Driver, String> {
        let mut child = hadr_testbed::cleanup::die_with_parent(&mut Command::new("sh"))
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start `sh -c {command}`: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name("hadr-driver-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start a reader thread: {e}"))?;
        Ok(Driver {
            child,
            stdin,
            lines,
            name: String::new(),
        })
    }

    /// Sends one request and reads its one reply line.
    fn request(&mut self, request: &Value, timeout: Duration) -> Result<Value, SutError> {
        let op = request["op"].as_str().unwrap_or_default().to_owned();
        let failed = |what: String| SutError::Failed(format!("driver, `{op}`: {what}"));
        // A driver that exited early may still have said why on stdout: read that first.
        let written = writeln!(self.stdin, "{request}").and_then(|()| self.stdin.flush());
        let timeout = if written.is_err() {
            Duration::from_secs(1)
        } else {
            timeout
        };
        let line = match self.lines.recv_timeout(timeout) {
            Err(_) if written.is_err() => {
                let e = written.expect_err("checked");
                return Err(failed(format!("cannot write the request: {e}")));
            }
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(failed(format!("cannot read the reply: {e}"))),
            Err(RecvTimeoutError::Timeout) => {
                return Err(failed(format!("no reply within {} s", timeout.as_secs())))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                return Err(failed(format!(
                    "the driver closed its stdout (exit status {status:?})"
                )));
            }
        };
        let reply: Value = serde_json::from_str(&line)
            .map_err(|e| failed(format!("the reply is not JSON ({e}): {line:?}")))?;
        match reply.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(reply),
            Some(false) => {
                let error = &reply["error"];
                let message = error["message"]
                    .as_str()
                    .unwrap_or("(no message)")
                    .to_owned();
                Err(match error["kind"].as_str() {
                    Some("unsupported") => SutError::Unsupported(message),
                    _ => failed(message),
                })
            }
            None => Err(failed(format!("the reply has no boolean \"ok\": {line:?}"))),
        }
    }
}

impl Drop for External {
    fn drop(&mut self) {
        if let Ok(d) = &mut self.driver {
            let _ = d.request(&json!({"op": "teardown"}), Duration::from_secs(60));
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut exited = false;
            while !exited && std::time::Instant::now() < deadline {
                exited = matches!(d.child.try_wait(), Ok(Some(_)));
                if !exited {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if !exited {
                let _ = d.child.kill();
                let _ = d.child.wait();
            }
        }
        // Then the processes the harness ran for the driver, etcd and the network.
        self.processes = None;
    }
}

impl External {
    /// A request, followed with the harness' own check of the processes it runs (with
    /// `processes`): a replica that exited on its own is an error even when the driver did
    /// not notice, and is named beside the driver's error when it did.
    fn request_checked(&mut self, request: Value) -> Result<Value, SutError> {
        let result = self.request(request);
        let check = match &mut self.processes {
            Some(p) => p.check_running(),
            None => Ok(()),
        };
        match (result, check) {
            (Ok(reply), Ok(())) => Ok(reply),
            (Ok(_), Err(exited)) => Err(exited.into()),
            (Err(e), Ok(())) => Err(e),
            (Err(SutError::Failed(m)), Err(exited)) => {
                Err(SutError::Failed(format!("{m}; {exited}")))
            }
            (Err(e), Err(_)) => Err(e),
        }
    }

    /// With `processes`: the scenario's network, etcd and directory, the driver's command
    /// lines, and every replica started.
    fn start_processes(&mut self, config: &AgConfig) -> Result<(), SutError> {
        self.processes = None; // the previous group's first
        let mut p = processes::Processes::prepare(config)?;
        let reply = self.request(p.request(config))?;
        let lines = processes::command_lines(&reply, config.replicas.len())
            .map_err(processes::ProcessesError::Reply)?;
        p.start_all(lines)?;
        self.processes = Some(p);
        Ok(())
    }
}

impl Sut for External {
    fn name(&self) -> String {
        match &self.driver {
            Ok(d) if !d.name.is_empty() => format!("external:{} ({})", self.command, d.name),
            _ => format!("external:{}", self.command),
        }
    }

    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError> {
        if self.hands_over_processes && self.driver.is_ok() {
            self.start_processes(config)?;
        }
        self.request_checked(json!({"op": "setup", "config": config}))
            .map(drop)
    }

    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        let mut request = json!({"op": "step", "action": action});
        if self.hands_over_processes && processes::performs(action) {
            let p = self.processes.as_mut().ok_or_else(|| {
                SutError::Failed("no processes to act on: setup first".to_owned())
            })?;
            p.check_running()?;
            p.perform(action)?;
            request["performed"] = json!(true);
        }
        self.request_checked(request).map(drop)
    }

    fn observe(&mut self) -> Result<Observation, SutError> {
        let reply = self.request_checked(json!({"op": "observe"}))?;
        serde_json::from_value(reply["observation"].clone()).map_err(|e| {
            SutError::Failed(format!(
                "driver, `observe`: not an observation ({e}): {}",
                reply["observation"]
            ))
        })
    }
}
