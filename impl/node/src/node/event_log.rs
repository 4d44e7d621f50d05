//! The node's event log (`hadr-events/1`, docs/event-log.md): every change of this replica's
//! `sys.dm_hadr_*` views, one `view` line each, for `hadr validate` to check against the
//! model. Configured by `event_log` in node.toml or the `HADR_EVENT_LOG` environment variable
//! (which wins; `{name}` in it is replaced by the instance name, so that the replicas one
//! shell starts write a file each). The file is appended to, so that a restarted replica goes
//! on in the same file; its header is written when it is empty.
//!
//! Client outcomes are not logged here: a `txn` line names a transaction by the run's
//! numbering of client commits, which only the client (the test driver) knows.

use crate::config::NodeConfig;
use hadr_types::event_log::{header_line, now_micros, view_line};
use hadr_types::ReplicaObservation;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the event log (overrides node.toml's `event_log`).
pub const ENV: &str = "HADR_EVENT_LOG";

/// Why the event log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the event log {path}: {source} (set by `event_log` in node.toml or {ENV})")]
pub struct EventLogError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// An open event log.
pub(crate) struct EventLog {
    path: PathBuf,
    file: std::fs::File,
    /// The view last written.
    last: Option<ReplicaObservation>,
}

/// Where this node logs its events, if anywhere.
pub(crate) fn path_of(config: &NodeConfig) -> Option<PathBuf> {
    match std::env::var(ENV) {
        Ok(p) if !p.trim().is_empty() => Some(PathBuf::from(p.replace("{name}", &config.name))),
        _ => config.event_log.clone(),
    }
}

impl EventLog {
    /// Opens (creates, appends to) the event log at `path`, written by instance `name`.
    pub(crate) fn open(path: &Path, name: &str) -> Result<EventLog, EventLogError> {
        let error = |source| EventLogError {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(error)?;
        if file.metadata().map_err(error)?.len() == 0 {
            file.write_all(format!("{}\n", header_line(name, None)).as_bytes())
                .map_err(error)?;
        }
        Ok(EventLog {
            path: path.to_owned(),
            file,
            last: None,
        })
    }

    /// Logs `view` if it differs from the last one logged. Returns false when the file can
    /// no longer be written (the caller stops logging; a missing view makes a log less
    /// telling, never wrong).
    pub(crate) fn record(&mut self, view: Option<ReplicaObservation>) -> bool {
        let Some(view) = view else { return true };
        if self.last.as_ref() == Some(&view) {
            return true;
        }
        // One write per line: a crash leaves whole lines.
        let line = format!("{}\n", view_line(now_micros(), &view));
        if let Err(error) = self.file.write_all(line.as_bytes()) {
            tracing::warn!(path = %self.path.display(), %error, "event log: cannot write, logging stops");
            return false;
        }
        self.last = Some(view);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadr_types::{DatabaseObservation, DatabaseState, Lsn, ReplicaId, Role};

    fn view(lsn: u64) -> ReplicaObservation {
        ReplicaObservation {
            replica: ReplicaId(0),
            up: true,
            role: Some(Role::Primary),
            databases: vec![DatabaseObservation {
                database: hadr_types::DatabaseId(0),
                database_state: DatabaseState::Online,
                synchronization_state: None,
                suspended: None,
                end_of_log_lsn: Lsn(lsn),
                last_hardened_lsn: Lsn(lsn),
                last_redone_lsn: Lsn(lsn),
                is_failover_ready: false,
            }],
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A header once, then a `view` line at each change only; a reopened log goes on.
    #[test]
    fn logs_each_change_of_the_view_once_and_appends_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r0.ndjson");
        let mut log = EventLog::open(&path, "R0").unwrap();
        assert!(log.record(None));
        assert!(log.record(Some(view(0))));
        assert!(log.record(Some(view(0))));
        assert!(log.record(Some(view(1))));
        drop(log);
        let mut log = EventLog::open(&path, "R0").unwrap();
        assert!(log.record(Some(view(1))));
        let lines = lines(&path);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0]["format"], hadr_types::event_log::FORMAT);
        assert_eq!(lines[0]["source"], "R0");
        assert!(lines[0].get("config").is_none());
        assert_eq!(lines[1]["view"]["databases"][0]["end_of_log_lsn"], 0);
        assert_eq!(lines[2]["view"]["databases"][0]["end_of_log_lsn"], 1);
        // After the restart the view is logged again: the log cannot know it is unchanged.
        assert_eq!(lines[3]["view"], lines[2]["view"]);
        let times: Vec<u64> = lines[1..]
            .iter()
            .map(|l| l["t"].as_u64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }

    /// An unwritable path is an error naming the path and where it was configured.
    #[test]
    fn an_unopenable_log_says_where_it_was_configured() {
        let dir = tempfile::tempdir().unwrap();
        let e = EventLog::open(&dir.path().join("missing/r0.ndjson"), "R0")
            .err()
            .expect("no such directory");
        let message = e.to_string();
        assert!(
            message.contains("missing/r0.ndjson") && message.contains(ENV),
            "{message}"
        );
    }
}
