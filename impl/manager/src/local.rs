//! [`LocalEtcd`]: real etcd processes on free loopback ports, for `hadr demo --cluster etcd`,
//! benchmarks and tests. One member, or several forming one cluster (so that a member can be
//! frozen while the others keep quorum). Every process is killed when the value is dropped.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a user is told when there is no etcd binary.
pub const ETCD_MISSING: &str =
    "etcd not found: install it (Debian: apt-get install -y etcd-server) or set HADR_ETCD_BIN";

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

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

struct Member {
    name: String,
    child: Child,
    client_port: u16,
    log: PathBuf,
}

/// A running etcd cluster of one or more members on loopback.
pub struct LocalEtcd {
    members: Vec<Member>,
    /// The address every member listens on.
    host: IpAddr,
}

impl LocalEtcd {
    /// Starts a cluster of `members` members with their data and logs under `dir` (created),
    /// and waits until every member answers `/health`. Ports are picked by binding and
    /// releasing them, so a start that loses a port to another process is tried again.
    pub fn start(dir: &Path, members: usize) -> Result<LocalEtcd, String> {
        Self::start_with(dir, members, None, &|_| {})
    }

    /// [`LocalEtcd::start`], with `prepare` applied to each member's command before it starts
    /// (e.g. to make it die with its parent, or enter a network namespace), listening on
    /// `host` instead of loopback when given: then on the fixed ports 2379 (clients) and 2380
    /// (peers), plus 2 per further member, as `host` is the members' own address (their
    /// network namespace's).
    pub fn start_with(
        dir: &Path,
        members: usize,
        host: Option<IpAddr>,
        prepare: &dyn Fn(&mut Command),
    ) -> Result<LocalEtcd, String> {
        let binary = etcd_binary().ok_or_else(|| ETCD_MISSING.to_owned())?;
        let mut last_error = String::new();
        for attempt in 0..3 {
            let attempt_dir = dir.join(format!("etcd-{attempt}"));
            match Self::spawn(&binary, &attempt_dir, members, host, prepare) {
                Ok(cluster) => return Ok(cluster),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn spawn(
        binary: &Path,
        dir: &Path,
        count: usize,
        host: Option<IpAddr>,
        prepare: &dyn Fn(&mut Command),
    ) -> Result<LocalEtcd, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let ports: Vec<(u16, u16)> = match host {
            None => (0..count)
                .map(|_| Ok((free_port()?, free_port()?)))
                .collect::<Result<_, String>>()?,
            Some(_) => (0..count as u16)
                .map(|i| (2379 + 2 * i, 2380 + 2 * i))
                .collect(),
        };
        let host = host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let initial_cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("etcd{i}=http://{host}:{peer}"))
            .collect();
        let mut cluster = LocalEtcd {
            members: Vec::new(),
            host,
        };
        for (i, (client_port, peer_port)) in ports.into_iter().enumerate() {
            let name = format!("etcd{i}");
            let client_url = format!("http://{host}:{client_port}");
            let peer_url = format!("http://{host}:{peer_port}");
            let log = dir.join(format!("{name}.log"));
            let out = std::fs::File::create(&log)
                .map_err(|e| format!("creating {}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let mut command = Command::new(binary);
            prepare(&mut command);
            let child = command
                .arg(format!("--name={name}"))
                .arg(format!(
                    "--data-dir={}",
                    dir.join(format!("{name}-data")).display()
                ))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster={}", initial_cluster.join(",")))
                .arg("--initial-cluster-state=new")
                // One member never holds an election, so its ticks only set the shortest lease
                // etcd grants (1.5 election timeouts, rounded up to whole seconds): 50/500 ms
                // allow a 1 s lease. Several members keep etcd's defaults (100/1000 ms), which
                // tolerate a loaded machine without spurious elections.
                .args(if count == 1 {
                    ["--heartbeat-interval=50", "--election-timeout=500"]
                } else {
                    ["--heartbeat-interval=100", "--election-timeout=1000"]
                })
                .arg("--logger=zap")
                .arg("--log-level=warn")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("starting {}: {e}", binary.display()))?;
            cluster.members.push(Member {
                name,
                child,
                client_port,
                log,
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for member in &mut cluster.members {
            loop {
                if let Ok(Some(status)) = member.child.try_wait() {
                    let log = std::fs::read_to_string(&member.log).unwrap_or_default();
                    return Err(format!("{} exited at start ({status}): {log}", member.name));
                }
                if healthy(cluster.host, member.client_port) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{} did not become healthy within 20 s (log: {})",
                        member.name,
                        member.log.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no member (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i`'s client URL, e.g. `http://127.0.0.1:2379`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}:{}", self.host, self.members[i].client_port)
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s process id.
    pub fn pid(&self, i: usize) -> u32 {
        self.members[i].child.id()
    }

    /// Member `i`'s log file.
    pub fn log(&self, i: usize) -> &Path {
        &self.members[i].log
    }

    fn signal(&self, i: usize, signal: &str) -> Result<(), String> {
        let pid = self.pid(i);
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .map_err(|e| format!("kill -{signal} {pid}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {pid}: {status}"))
        }
    }

    /// Freezes member `i` (SIGSTOP): it answers nothing, and its connections stay open.
    pub fn pause(&self, i: usize) -> Result<(), String> {
        self.signal(i, "STOP")
    }

    /// Thaws member `i` (SIGCONT).
    pub fn resume(&self, i: usize) -> Result<(), String> {
        self.signal(i, "CONT")
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        for member in &mut self.members {
            // A stopped process dies of SIGKILL too; resume it anyway so nothing lingers.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(member.child.id().to_string())
                .status();
            let _ = member.child.kill();
            let _ = member.child.wait();
        }
    }
}

/// etcd's `/health` over plain HTTP/1.1 (the client port serves it next to gRPC).
fn healthy(host: IpAddr, port: u16) -> bool {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::new(host, port);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}
