//! [`EtcdServer`]: a real one-member etcd in a temporary directory, killed when dropped. For
//! tests (feature `testing`); a thin wrapper of [`LocalEtcd`](crate::local::LocalEtcd).

use crate::local::LocalEtcd;
pub use crate::local::{etcd_binary, ETCD_MISSING};

/// A running one-member etcd; dropping it kills the process (resuming it first if paused).
pub struct EtcdServer {
    etcd: LocalEtcd,
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until it answers; panics with [`ETCD_MISSING`] when the binary
    /// is absent, so a test fails (not skips) on a machine without it.
    pub fn start() -> EtcdServer {
        match Self::try_start() {
            Ok(server) => server,
            Err(error) => panic!("{error}"),
        }
    }

    /// Starts etcd and waits until it answers.
    pub fn try_start() -> Result<EtcdServer, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir for etcd: {e}"))?;
        let etcd = LocalEtcd::start(dir.path(), 1)?;
        Ok(EtcdServer { etcd, dir })
    }

    /// The client URL, for [`ManagerConfig::endpoints`](crate::ManagerConfig::endpoints).
    pub fn endpoint(&self) -> String {
        self.etcd.endpoint(0)
    }

    /// The etcd process id.
    pub fn pid(&self) -> u32 {
        self.etcd.pid(0)
    }

    /// The directory holding etcd's data and log.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Freezes etcd (SIGSTOP): it answers nothing, and its connections stay open.
    pub fn pause(&self) {
        self.etcd.pause(0).expect("SIGSTOP etcd");
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.etcd.resume(0).expect("SIGCONT etcd");
    }
}
