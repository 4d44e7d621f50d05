//! [`EtcdServer`]: a real one-member etcd on free loopback ports, in a temporary directory,
//! killed when dropped. For tests (feature `testing`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a test is told when there is no etcd binary.
pub const ETCD_MISSING: &str = "etcd not found: apt-get install -y etcd-server";

/// A running etcd; dropping it kills the process (resuming it first if it was paused).
pub struct EtcdServer {
    child: Child,
    client_url: String,
    dir: tempfile::TempDir,
}

/// The etcd binary: `$HADR_ETCD_BIN`, else `etcd` on the `PATH`, else `/usr/bin/etcd`.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HADR_ETCD_BIN") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let usr = PathBuf::from("/usr/bin/etcd");
        usr.is_file().then_some(usr)
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
        let binary = etcd_binary().ok_or_else(|| ETCD_MISSING.to_owned())?;
        let mut last_error = String::new();
        // Ports are picked by binding and releasing them: another process may take one in
        // between, so try a few times.
        for _ in 0..3 {
            match Self::spawn(&binary) {
                Ok(server) => return Ok(server),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn spawn(binary: &PathBuf) -> Result<EtcdServer, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir for etcd: {e}"))?;
        let (client_port, peer_port) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))
            .map_err(|e| format!("etcd log file: {e}"))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(binary)
            .arg("--name=hadr-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=hadr-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("etcd.log")).unwrap_or_default();
                return Err(format!("etcd exited at start ({status}): {log}"));
            }
            if Self::healthy(client_port) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("etcd did not become healthy within 15 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(EtcdServer {
            child,
            client_url,
            dir,
        })
    }

    /// etcd's `/health` over plain HTTP/1.1 (the client port serves it next to gRPC).
    fn healthy(port: u16) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.contains("\"health\":\"true\"")
    }

    /// The client URL, for [`ManagerConfig::endpoints`](crate::ManagerConfig::endpoints).
    pub fn endpoint(&self) -> String {
        self.client_url.clone()
    }

    /// The etcd process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding etcd's data and `etcd.log`.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "kill -{signal} {} failed: {status:?}",
            self.child.id()
        );
    }

    /// Freezes etcd (SIGSTOP): it answers nothing, and its connections stay open.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL too, but resume it anyway so nothing lingers.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
