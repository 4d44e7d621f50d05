//! # hadr-listener: the availability group listener (R-READ-3)
//!
//! Part of the reference implementation, run as `hadr listener`. One stable address for
//! clients of the client API: a connection is routed by its first request line. A connection
//! that starts with `{"op":"intent","intent":"read_only"}` is read-intent and goes to the first
//! available replica of the primary's READ_ONLY_ROUTING_LIST (a group round-robin), or to the
//! primary when none is available and the primary accepts read-intent connections; every
//! other connection goes to the primary. The listener then relays bytes both ways; it never
//! interprets the rest of the conversation, and every replica still enforces R-READ-1 itself.
//!
//! The listener learns the topology by polling each replica's admin API (`/status` for the
//! role, `/ag/config` of the primary for the routing list) every 200 ms, so it follows
//! failovers (manual, forced or automatic) within that period.
//!
//! Start reading at [`serve`]; the routing decision is [`Router::route`], apart from the I/O.

#![warn(missing_docs)]

use hadr_node::api::AdminClient;
use hadr_types::{AgConfig, PrimaryConnections, SecondaryConnections};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// `listener.toml`.
///
/// ```toml
/// listen = "127.0.0.1:7000"
/// [[replicas]]
/// name = "R0"
/// client = "127.0.0.1:7100"
/// admin = "127.0.0.1:7200"
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Every replica of the group: its name, client API and admin API.
    pub replicas: Vec<ListenerReplica>,
}

/// One replica the listener can route to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerReplica {
    /// The server instance name, as in the group's configuration.
    pub name: String,
    /// Its client API.
    pub client: SocketAddr,
    /// Its admin API.
    pub admin: SocketAddr,
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The configuration file could not be read.
    #[error("cannot read listener configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration is not valid.
    #[error("listener configuration {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl ListenerConfig {
    /// Reads and checks `listener.toml`.
    pub fn load(path: &Path) -> Result<ListenerConfig, ListenerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ListenerError::Read {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| ListenerError::Invalid {
            path: path.to_owned(),
            message,
        };
        let config: ListenerConfig = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if config.replicas.is_empty() {
            return Err(invalid(
                "`replicas` must list at least one replica".to_owned(),
            ));
        }
        for (i, r) in config.replicas.iter().enumerate() {
            if config.replicas[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&r.name))
            {
                return Err(invalid(format!("replica {} is listed twice", r.name)));
            }
        }
        Ok(config)
    }
}

/// What the listener knows of the group, refreshed every 200 ms.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// The primary's index in the listener's replicas, and the group's configuration it holds.
    pub primary: Option<(usize, AgConfig)>,
    /// The replicas (by listener index) that report SECONDARY.
    pub secondaries: Vec<usize>,
}

/// Where a connection goes, or why it cannot go anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Relay to the first of these client API addresses that accepts the connection: the
    /// routing decision first, then the fallbacks R-READ-3 allows (a replica can die between
    /// two topology refreshes).
    To(Vec<SocketAddr>),
    /// Answer this error and close.
    Refuse {
        /// Machine-readable code.
        code: &'static str,
        /// For people.
        message: String,
    },
}

/// Routing decisions (R-READ-3), separate from the I/O so that tests can check them exactly.
pub struct Router {
    replicas: Vec<ListenerReplica>,
    /// A round-robin counter per routing-list entry.
    turns: Vec<AtomicUsize>,
}

fn routing_address(url: &str) -> Option<SocketAddr> {
    let rest = url
        .strip_prefix("tcp://")
        .or_else(|| url.strip_prefix("TCP://"))
        .unwrap_or(url);
    rest.parse().ok()
}

impl Router {
    /// A router over the listener's replicas.
    pub fn new(replicas: Vec<ListenerReplica>) -> Router {
        Router {
            replicas,
            turns: (0..64).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Where a connection of this intent goes, given the topology.
    pub fn route(&self, topology: &Topology, read_only: bool) -> Route {
        let Some((p, config)) = &topology.primary else {
            return Route::Refuse {
                code: "NoPrimary",
                message: "no replica of the availability group is PRIMARY right now (failover in progress, or quorum lost); retry".to_owned(),
            };
        };
        let primary_client = self.replicas[*p].client;
        if !read_only {
            return Route::To(vec![primary_client]);
        }
        let primary_name = &self.replicas[*p].name;
        let primary_config = config
            .replicas
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(primary_name));
        let list = primary_config
            .map(|r| r.primary_role.read_only_routing_list.as_slice())
            .unwrap_or_default();
        let mut candidates = Vec::new();
        for (e, entry) in list.iter().enumerate() {
            // The available members of this entry: SECONDARY now, accepting read-intent
            // connections, with a READ_ONLY_ROUTING_URL.
            let available: Vec<SocketAddr> = entry
                .names()
                .iter()
                .filter_map(|name| {
                    let member = config
                        .replicas
                        .iter()
                        .find(|r| r.name.eq_ignore_ascii_case(name))?;
                    let index = self
                        .replicas
                        .iter()
                        .position(|r| r.name.eq_ignore_ascii_case(name))?;
                    let readable =
                        member.secondary_role.allow_connections != SecondaryConnections::No;
                    let url = member.secondary_role.read_only_routing_url.as_deref()?;
                    (topology.secondaries.contains(&index) && readable)
                        .then(|| routing_address(url))
                        .flatten()
                })
                .collect();
            if !available.is_empty() {
                let turn = self.turns[e % self.turns.len()].fetch_add(1, Ordering::Relaxed);
                let first = turn % available.len();
                candidates.extend(available[first..].iter().chain(&available[..first]));
            }
        }
        let primary_takes_reads = primary_config
            .is_none_or(|r| r.primary_role.allow_connections == PrimaryConnections::All);
        if primary_takes_reads {
            candidates.push(primary_client);
        }
        if !candidates.is_empty() {
            Route::To(candidates)
        } else {
            Route::Refuse {
                code: "NoReadableReplica",
                message: "no replica of the READ_ONLY_ROUTING_LIST is available and the primary refuses read-intent connections (ALLOW_CONNECTIONS = READ_WRITE)".to_owned(),
            }
        }
    }
}

/// Asks every replica for its role, and the primary for the configuration.
async fn discover(replicas: &[ListenerReplica]) -> Topology {
    let mut topology = Topology::default();
    for (i, r) in replicas.iter().enumerate() {
        let admin = AdminClient::new(r.admin);
        let Ok(Ok(status)) =
            tokio::time::timeout(Duration::from_millis(500), admin.get("/status")).await
        else {
            continue;
        };
        match status.body["role"].as_str() {
            Some("PRIMARY") if topology.primary.is_none() => {
                if let Ok(Ok(config)) =
                    tokio::time::timeout(Duration::from_millis(500), admin.get("/ag/config")).await
                {
                    if let Ok(config) = serde_json::from_value::<AgConfig>(config.body) {
                        topology.primary = Some((i, config));
                    }
                }
            }
            Some("SECONDARY") => topology.secondaries.push(i),
            _ => {}
        }
    }
    topology
}

/// The longest first line the listener reads before routing.
const MAX_FIRST_LINE: usize = 64 * 1024;

fn refusal_line(code: &str, message: &str) -> String {
    let mut line = serde_json::json!({
        "id": null, "outcome": "error", "code": code, "error": message,
    })
    .to_string();
    line.push('\n');
    line
}

/// Whether the first request line asks for ApplicationIntent=ReadOnly; an error for a line
/// that is not a JSON object (the listener cannot tell the intent of garbage).
fn read_intent(line: &str) -> Result<bool, String> {
    let value: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("the first request is not JSON ({e}); send one JSON object per line, e.g. {{\"id\":1,\"op\":\"intent\",\"intent\":\"read_only\"}}"))?;
    if !value.is_object() {
        return Err("the first request must be a JSON object".to_owned());
    }
    Ok(value["op"] == "intent" && value["intent"] == "read_only")
}

async fn serve_connection(client: TcpStream, router: Arc<Router>, topology: Arc<RwLock<Topology>>) {
    let _ = client.set_nodelay(true);
    let (read_half, mut write_half) = client.into_split();
    let mut reader = BufReader::new(read_half);
    let mut first = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut limited = (&mut reader).take(MAX_FIRST_LINE as u64 + 1);
        limited.read_until(b'\n', &mut first).await
    })
    .await;
    let refuse = |code: &str, message: String| refusal_line(code, &message);
    let line = match read {
        Ok(Ok(0)) => return,
        Ok(Ok(_)) if first.len() > MAX_FIRST_LINE => Err(refuse(
            "LineTooLong",
            format!("the first request line is longer than {MAX_FIRST_LINE} bytes"),
        )),
        Ok(Ok(_)) => String::from_utf8(first.clone())
            .map_err(|_| refuse("BadRequest", "the first request is not UTF-8".to_owned())),
        Ok(Err(e)) => Err(refuse("BadRequest", e.to_string())),
        Err(_) => Err(refuse(
            "Timeout",
            "no request within 30 s of connecting".to_owned(),
        )),
    };
    let route = line.and_then(|line| {
        let read_only = read_intent(&line).map_err(|m| refuse("BadRequest", m))?;
        let topology = topology.read().unwrap_or_else(|e| e.into_inner()).clone();
        match router.route(&topology, read_only) {
            Route::To(addresses) => Ok(addresses),
            Route::Refuse { code, message } => Err(refuse(code, message)),
        }
    });
    let addresses = match route {
        Ok(addresses) => addresses,
        Err(line) => {
            let _ = write_half.write_all(line.as_bytes()).await;
            return;
        }
    };
    let mut connected = None;
    let mut failures = Vec::new();
    for &address in &addresses {
        let attempt = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(address));
        match attempt.await {
            Ok(Ok(stream)) => {
                connected = Some((address, stream));
                break;
            }
            Ok(Err(error)) => failures.push(format!("{address}: {error}")),
            Err(_) => failures.push(format!("{address}: no answer within 2 s")),
        }
    }
    let Some((address, mut upstream)) = connected else {
        let line = refuse(
            "ReplicaUnreachable",
            format!(
                "no replica accepted the connection ({}); retry",
                failures.join("; ")
            ),
        );
        let _ = write_half.write_all(line.as_bytes()).await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    tracing::debug!(%address, "routed");
    if upstream.write_all(&first).await.is_err() {
        return;
    }
    // Bytes the reader buffered past the first line belong to the replica too.
    let buffered = reader.buffer().to_vec();
    if !buffered.is_empty() && upstream.write_all(&buffered).await.is_err() {
        return;
    }
    let Ok(mut client) = reader.into_inner().reunite(write_half) else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Runs the listener until the process is stopped.
pub async fn serve(config: ListenerConfig) -> Result<(), ListenerError> {
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ListenerError::Bind {
                address: config.listen,
                source,
            })?;
    let router = Arc::new(Router::new(config.replicas.clone()));
    let topology = Arc::new(RwLock::new(discover(&config.replicas).await));
    let refresher = {
        let topology = topology.clone();
        let replicas = config.replicas.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let fresh = discover(&replicas).await;
                *topology.write().unwrap_or_else(|e| e.into_inner()) = fresh;
            }
        })
    };
    tracing::info!(listen = %config.listen, replicas = config.replicas.len(), "listener started");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, router.clone(), topology.clone()));
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if refresher.is_finished() {
            tracing::error!("the topology refresher stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadr_types::RoutingEntry;

    fn replicas() -> Vec<ListenerReplica> {
        (0..4)
            .map(|i| ListenerReplica {
                name: format!("R{i}"),
                client: format!("127.0.0.1:{}", 7100 + i).parse().unwrap(),
                admin: format!("127.0.0.1:{}", 7200 + i).parse().unwrap(),
            })
            .collect()
    }

    /// R0 primary with READ_ONLY_ROUTING_LIST = (('R1','R2'), 'R3'); every secondary readable
    /// with a routing URL (its client address) unless changed by the test.
    fn config() -> AgConfig {
        let mut text =
            String::from("name = \"ag\"\ncluster_type = \"NONE\"\ndatabases = [\"db\"]\n");
        for i in 0..4 {
            text += &format!(
                "[[replicas]]\nname = \"R{i}\"\navailability_mode = \"ASYNCHRONOUS_COMMIT\"\nfailover_mode = \"MANUAL\"\n[replicas.secondary_role]\nallow_connections = \"ALL\"\nread_only_routing_url = \"tcp://127.0.0.1:{}\"\n",
                7100 + i
            );
        }
        let mut config: AgConfig = toml::from_str(&text).unwrap();
        config.replicas[0].primary_role.read_only_routing_list = vec![
            RoutingEntry::Group(vec!["R1".into(), "R2".into()]),
            RoutingEntry::Replica("R3".into()),
        ];
        config
    }

    fn port(route: &Route) -> Vec<u16> {
        match route {
            Route::To(addresses) => addresses.iter().map(SocketAddr::port).collect(),
            Route::Refuse { code, .. } => panic!("refused: {code}"),
        }
    }

    #[test]
    fn read_intent_follows_the_list_with_fallbacks_and_read_write_goes_to_the_primary() {
        let router = Router::new(replicas());
        let topology = Topology {
            primary: Some((0, config())),
            secondaries: vec![1, 2, 3],
        };
        assert_eq!(port(&router.route(&topology, false)), [7100]);
        // Round-robin inside the group, then R3, then the primary.
        assert_eq!(
            port(&router.route(&topology, true)),
            [7101, 7102, 7103, 7100]
        );
        assert_eq!(
            port(&router.route(&topology, true)),
            [7102, 7101, 7103, 7100]
        );
        // R1 not a secondary (down): R2 alone in the group.
        let partial = Topology {
            secondaries: vec![2, 3],
            ..topology.clone()
        };
        assert_eq!(port(&router.route(&partial, true)), [7102, 7103, 7100]);
    }

    #[test]
    fn unreadable_replicas_and_replicas_without_a_routing_url_are_skipped() {
        let router = Router::new(replicas());
        let mut config = config();
        config.replicas[1].secondary_role.allow_connections = SecondaryConnections::No;
        config.replicas[2].secondary_role.read_only_routing_url = None;
        let topology = Topology {
            primary: Some((0, config)),
            secondaries: vec![1, 2, 3],
        };
        assert_eq!(port(&router.route(&topology, true)), [7103, 7100]);
    }

    #[test]
    fn no_primary_and_a_primary_refusing_read_intent_are_refused_clearly() {
        let router = Router::new(replicas());
        let none = Topology::default();
        assert!(matches!(
            router.route(&none, false),
            Route::Refuse {
                code: "NoPrimary",
                ..
            }
        ));
        let mut config = config();
        config.replicas[0].primary_role.allow_connections = PrimaryConnections::ReadWrite;
        let topology = Topology {
            primary: Some((0, config)),
            secondaries: vec![],
        };
        assert!(matches!(
            router.route(&topology, true),
            Route::Refuse {
                code: "NoReadableReplica",
                ..
            }
        ));
        assert_eq!(port(&router.route(&topology, false)), [7100]);
    }

    #[test]
    fn the_first_line_decides_the_intent_and_garbage_is_refused() {
        assert_eq!(
            read_intent(r#"{"id":1,"op":"intent","intent":"read_only"}"#),
            Ok(true)
        );
        assert_eq!(
            read_intent(r#"{"id":1,"op":"intent","intent":"read_write"}"#),
            Ok(false)
        );
        assert_eq!(
            read_intent(r#"{"id":1,"op":"read","db":"d","key":"k"}"#),
            Ok(false)
        );
        assert!(read_intent("not json").unwrap_err().contains("not JSON"));
        assert!(read_intent("[1]").is_err());
    }
}
