//! `hadr-sim-driver`: a driver of the adapter protocol `hadr-adapter/1`
//! (`docs/adapter-protocol.md`) around `reference-sim`, the reference core in its simulated
//! network. It is what `external:` sees of a correct implementation, so it tests the harness'
//! side of the protocol, and it shows a Rust implementer the whole loop in one page.
//!
//! `HADR_SIM_DRIVER_LIE=1` makes it report every acknowledged commit as indefinite: a driver
//! the harness must fail.

use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::sut::{Sut, SutError};
use hadr_types::CommitOutcome;
use serde_json::{json, Value};
use std::io::{BufRead, Write};

fn field<T: serde::de::DeserializeOwned>(request: &Value, name: &str) -> Result<T, SutError> {
    serde_json::from_value(request[name].clone())
        .map_err(|e| SutError::Failed(format!("bad \"{name}\": {e}")))
}

fn answer(sim: &mut ReferenceSim, request: &Value, lie: bool) -> Result<Value, SutError> {
    match request["op"].as_str() {
        Some("hello") => {
            Ok(json!({"ok": true, "protocol": "hadr-adapter/1", "name": "reference-sim"}))
        }
        Some("setup") => sim
            .setup(&field(request, "config")?)
            .map(|()| json!({"ok": true})),
        Some("step") => sim
            .step(&field(request, "action")?)
            .map(|()| json!({"ok": true})),
        Some("observe") => {
            let mut observation = sim.observe()?;
            if lie {
                for t in &mut observation.transactions {
                    if t.outcome == CommitOutcome::Acknowledged {
                        t.outcome = CommitOutcome::Indefinite;
                    }
                }
            }
            Ok(json!({"ok": true, "observation": observation}))
        }
        Some("teardown") => Ok(json!({"ok": true})),
        other => Err(SutError::Unsupported(format!("unknown op {other:?}"))),
    }
}

fn main() {
    let lie = std::env::var("HADR_SIM_DRIVER_LIE").as_deref() == Ok("1");
    let mut sim = ReferenceSim::new();
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        let reply = match serde_json::from_str::<Value>(&line) {
            Err(e) => {
                json!({"ok": false, "error": {"kind": "failed", "message": format!("not JSON: {e}")}})
            }
            Ok(request) => answer(&mut sim, &request, lie).unwrap_or_else(|e| {
                let kind = match e {
                    SutError::Unsupported(_) => "unsupported",
                    SutError::Failed(_) => "failed",
                };
                json!({"ok": false, "error": {"kind": kind, "message": e.to_string()}})
            }),
        };
        let mut out = stdout.lock();
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            return;
        }
        if request_is_teardown(&line) {
            return;
        }
    }
}

fn request_is_teardown(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|r| r["op"] == "teardown")
}
