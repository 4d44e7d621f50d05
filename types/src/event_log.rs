//! The lines of an implementation's event log (`hadr-events/1`, docs/event-log.md) that an
//! implementation writes itself: its header, its replicas' views and its clients' outcomes.
//! `hadr validate` reads them (with the driver's environment actions, which name the spec's
//! actions and so are written by whoever knows the spec) and asks the model whether some
//! behaviour explains them.
//!
//! Only the writing side lives here, so that an implementation can log without depending on
//! the spec.

use crate::observation::{ReplicaObservation, TransactionObservation};
use serde_json::json;

/// The format tag of an event log's header line; a reader refuses any other.
pub const FORMAT: &str = "hadr-events/1";

/// The header line (without its newline): `source` names the writer in reports (`R0`,
/// `driver`); `config` is the group's configuration when the writer knows it: the TOML text
/// of a model configuration (`[bounds]` and `[ag]`), as a scenario file's `config`.
pub fn header_line(source: &str, config: Option<&str>) -> String {
    let mut header = json!({ "format": FORMAT, "source": source });
    if let Some(config) = config {
        header["config"] = json!(config);
    }
    header.to_string()
}

/// A `view` line: what one replica's `sys.dm_hadr_*` views show at time `t` (Unix
/// microseconds, the clock of every file merged with it).
pub fn view_line(t: u64, view: &ReplicaObservation) -> String {
    json!({ "t": t, "view": view }).to_string()
}

/// A `txn` line: what a client was told about its transaction at time `t`.
pub fn txn_line(t: u64, txn: &TransactionObservation) -> String {
    json!({ "t": t, "txn": txn }).to_string()
}

/// Now, as event logs time their lines: microseconds since the Unix epoch (0 if the clock is
/// set before it).
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
