//! A network of its own for one availability group, so that its faults come from outside the
//! processes under test, as Jepsen makes them: every host (a replica, etcd) runs in a network
//! namespace of its own, each joined by a veth pair to one bridge in a *switch* namespace,
//! and the harness reaches them all through one more veth pair from its own namespace. A
//! partition between two hosts is packets dropped as they arrive at each (an nftables rule in
//! the host's namespace), so neither process is told anything: its connections go silent.
//!
//! ```text
//!   host 0 (198.18.K.1) ─eth0══n0─┐
//!   host 1 (198.18.K.2) ─eth0══n1─┤ br0   (switch namespace)
//!   …                             │
//!   harness (198.18.K.254) ─hadrK══host─┘
//! ```
//!
//! Subnets come from 198.18.0.0/15, the range RFC 2544 sets aside for benchmarking networks:
//! network `K` (0 to 511) is `198.(18 + K / 256).(K % 256).0/24`, claimed by creating the
//! harness' interface `hadrK`, which fails when another network holds it. Namespaces are named
//! `hadr-PID-N-…` after the process that made them; [`Network::create`] deletes those of
//! processes that are gone, and [`crate::cleanup`] those of a process stopped by a signal.
//!
//! Needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2 (`ip`) and nftables (`nft`);
//! [`available`] says whether this process has them.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Why a network could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `ip` or `nft` could not be run.
    #[error("cannot run `{command}` ({source}): install iproute2 and nftables (apt-get install -y iproute2 nftables)")]
    Tool {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// `ip` or `nft` refused.
    #[error("`{command}` failed: {stderr}")]
    Refused {
        /// The command line.
        command: String,
        /// What it said.
        stderr: String,
    },
    /// Every subnet of the pool is taken.
    #[error("every one of the 512 test subnets of 198.18.0.0/15 is taken (interfaces hadr0…hadr511): delete stale ones with `ip link del hadrK`")]
    NoSubnet,
    /// A namespace's handle could not be opened.
    #[error("cannot open the network namespace {name}: {source}")]
    Open {
        /// The namespace.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs `program args…`; its stderr is the error when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), NetnsError> {
    run_command(Command::new(program).args(args), None)
}

/// Runs `command`, with `input` on its stdin; its stderr is the error when it fails.
fn run_command(command: &mut Command, input: Option<&str>) -> Result<(), NetnsError> {
    use std::io::Write;
    use std::process::Stdio;
    let line = format!("{command:?}");
    let tool = |source| NetnsError::Tool {
        command: line.clone(),
        source,
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(tool)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(tool)?;
    }
    let out = child.wait_with_output().map_err(tool)?;
    let command = || line.clone();
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Refused {
            command: command(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Whether this process can make networks: it makes and deletes a namespace to find out.
pub fn available() -> Result<(), NetnsError> {
    let probe = format!("hadr-{}-probe", std::process::id());
    run("ip", &["netns", "add", &probe])?;
    let deleted = run("ip", &["netns", "del", &probe]);
    run("nft", &["--version"])?;
    deleted
}

/// One host of a network: its namespace, address and the addresses it is cut from.
struct Host {
    /// Held open for [`Network::enter`] (setns(2) takes a file descriptor).
    handle: std::fs::File,
    address: Ipv4Addr,
    cut_from: BTreeSet<Ipv4Addr>,
}

/// The network of one group: `hosts` namespaces on one bridge, reachable from this process.
/// Dropping it deletes every namespace (the processes in them must be gone first).
pub struct Network {
    switch: String,
    /// Every namespace made, the switch's first: what dropping the network deletes.
    namespaces: Vec<String>,
    hosts: Vec<Host>,
    /// This process' address on the network.
    harness: Ipv4Addr,
}

/// The `i`-th subnet of the pool: `198.(18 + i / 256).(i % 256)`.
fn subnet(i: u16) -> [u8; 3] {
    [198, 18 + (i / 256) as u8, (i % 256) as u8]
}

impl Network {
    /// Makes a network of `hosts` hosts (addresses .1, .2, … of its subnet), every link up and
    /// nothing cut.
    pub fn create(hosts: usize) -> Result<Network, NetnsError> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        delete_stale_namespaces();
        let prefix = format!(
            "hadr-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("{prefix}-sw");
        let mut network = Network {
            switch: switch.clone(),
            namespaces: Vec::new(),
            hosts: Vec::new(),
            harness: Ipv4Addr::UNSPECIFIED,
        };
        network.add_namespace(&switch)?;
        let sw = network.switch.clone();
        run("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &sw, "link", "set", "br0", "up"])?;
        let net = network.claim_subnet()?;
        for h in 0..hosts {
            let netns = format!("{prefix}-{h}");
            network.add_namespace(&netns)?;
            let handle = std::fs::File::open(format!("/run/netns/{netns}")).map_err(|source| {
                NetnsError::Open {
                    name: netns.clone(),
                    source,
                }
            })?;
            let address = Ipv4Addr::new(net[0], net[1], net[2], h as u8 + 1);
            let port = format!("n{h}");
            run(
                "ip",
                &[
                    "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &netns,
                ],
            )?;
            run(
                "ip",
                &["-n", &sw, "link", "set", &port, "master", "br0", "up"],
            )?;
            let cidr = format!("{address}/24");
            run("ip", &["-n", &netns, "addr", "add", &cidr, "dev", "eth0"])?;
            run("ip", &["-n", &netns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
            network.hosts.push(Host {
                handle,
                address,
                cut_from: BTreeSet::new(),
            });
        }
        Ok(network)
    }

    /// Claims a free subnet by creating this process' interface on it; returns its first
    /// three octets.
    fn claim_subnet(&mut self) -> Result<[u8; 3], NetnsError> {
        let start = (std::process::id() % 512) as u16;
        for k in (0..512).map(|i| (start + i) % 512) {
            let link = format!("hadr{k}");
            let claimed = run(
                "ip",
                &[
                    "link",
                    "add",
                    &link,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "host",
                    "netns",
                    &self.switch,
                ],
            );
            if claimed.is_err() {
                continue; // another network's
            }
            let net = subnet(k);
            self.harness = Ipv4Addr::new(net[0], net[1], net[2], 254);
            run(
                "ip",
                &[
                    "-n",
                    &self.switch,
                    "link",
                    "set",
                    "host",
                    "master",
                    "br0",
                    "up",
                ],
            )?;
            let cidr = format!("{}/24", self.harness);
            run("ip", &["addr", "add", &cidr, "dev", &link])?;
            run("ip", &["link", "set", &link, "up"])?;
            return Ok(net);
        }
        Err(NetnsError::NoSubnet)
    }

    /// Host `h`'s address.
    pub fn address(&self, h: usize) -> Ipv4Addr {
        self.hosts[h].address
    }

    /// This process' own address on the network.
    pub fn harness_address(&self) -> Ipv4Addr {
        self.harness
    }

    /// Makes the process `command` starts run in host `h`'s namespace (setns(2) between fork
    /// and exec). The network must outlive the start.
    pub fn enter(&self, h: usize, command: &mut Command) {
        (self.entry(h))(command);
    }

    /// [`Network::enter`] for host `h`, as a value to apply later: the network must outlive
    /// every start it is applied to.
    pub fn entry(&self, h: usize) -> impl Fn(&mut Command) + Send + Sync + 'static {
        let fd = self.hosts[h].handle.as_raw_fd();
        move |command: &mut Command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec the closure only calls setns(2), which is
            // async-signal-safe, on a descriptor the network holds open while it lives.
            unsafe {
                command.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }

    /// Cuts (or heals) the link between hosts `a` and `b`: each drops what it receives from
    /// the other, so the sender is told nothing.
    pub fn set_cut(&mut self, a: usize, b: usize, cut: bool) -> Result<(), NetnsError> {
        for (here, there) in [(a, b), (b, a)] {
            let address = self.hosts[there].address;
            let changed = if cut {
                self.hosts[here].cut_from.insert(address)
            } else {
                self.hosts[here].cut_from.remove(&address)
            };
            if changed {
                self.apply(here)?;
            }
        }
        Ok(())
    }

    /// Puts host `h`'s nftables rules in line with the hosts it is cut from: one table,
    /// replaced in one transaction.
    fn apply(&self, h: usize) -> Result<(), NetnsError> {
        let host = &self.hosts[h];
        let mut rules = String::from("add table inet hadr\ndelete table inet hadr\n");
        if !host.cut_from.is_empty() {
            let from: Vec<String> = host.cut_from.iter().map(Ipv4Addr::to_string).collect();
            rules += &format!(
                "table inet hadr {{\n  chain cut {{\n    type filter hook input priority 0; policy accept;\n    ip saddr {{ {} }} drop\n  }}\n}}\n",
                from.join(", ")
            );
        }
        let mut nft = Command::new("nft");
        nft.args(["-f", "-"]);
        self.enter(h, &mut nft);
        run_command(&mut nft, Some(&rules))
    }

    /// Makes namespace `name`, tracked for deletion from then on.
    fn add_namespace(&mut self, name: &str) -> Result<(), NetnsError> {
        crate::cleanup::track_namespace(name);
        self.namespaces.push(name.to_owned());
        run("ip", &["netns", "add", name])
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // The harness' interface goes with its peer in the switch namespace.
        for name in self.namespaces.drain(..) {
            let _ = run("ip", &["netns", "del", &name]);
            crate::cleanup::untrack_namespace(&name);
        }
    }
}

/// Deletes the namespaces of processes that are gone (killed before they could).
fn delete_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = name
            .strip_prefix("hadr-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if owner.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = run("ip", &["netns", "del", &name]);
        }
    }
}
