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

/// An implementation behind a driver program.
pub struct External {
    command: String,
    driver: Result<Driver, String>,
    reply_timeout: Duration,
}

impl External {
    /// Starts `command` (through `sh -c`) and greets it. A driver that cannot be started or
    /// speaks another protocol makes every later request fail with the reason.
    pub fn spawn(command: &str) -> External {
        let mut external = External {
            command: command.to_owned(),
            driver: Err(String::new()),
            reply_timeout: REPLY_TIMEOUT,
        };
        external.driver = Driver::start(command).and_then(|mut d| {
            let reply = d
                .request(&json!({"op": "hello", "protocol": PROTOCOL}), REPLY_TIMEOUT)
                .map_err(|e| e.to_string())?;
            match reply.get("protocol").and_then(Value::as_str) {
                Some(PROTOCOL) => {}
                other => {
                    return Err(format!(
                        "the driver speaks {other:?}, this harness {PROTOCOL:?}"
                    ))
                }
            }
            d.name = reply
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Ok(d)
        });
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
            while std::time::Instant::now() < deadline {
                if matches!(d.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
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
        self.request(json!({"op": "setup", "config": config}))
            .map(drop)
    }

    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        self.request(json!({"op": "step", "action": action}))
            .map(drop)
    }

    fn observe(&mut self) -> Result<Observation, SutError> {
        let reply = self.request(json!({"op": "observe"}))?;
        serde_json::from_value(reply["observation"].clone()).map_err(|e| {
            SutError::Failed(format!(
                "driver, `observe`: not an observation ({e}): {}",
                reply["observation"]
            ))
        })
    }
}
