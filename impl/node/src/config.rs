//! The node's own configuration (`node.toml`): who this process is and where it listens. The
//! availability group's configuration (`AgConfig`) is separate: it arrives through the admin
//! API (CREATE/JOIN) and is then persisted with the replica's state.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `node.toml`.
///
/// ```toml
/// name = "R0"                      # the server instance name the AG configuration lists
/// data_dir = "/var/lib/hadr/r0"    # state file and one WAL per database
/// client_listen = "127.0.0.1:7100" # client API (newline-delimited JSON over TCP)
/// admin_listen = "127.0.0.1:7200"  # admin API (HTTP + JSON)
/// etcd_endpoints = ["http://127.0.0.1:2379"]  # only for CLUSTER_TYPE = EXTERNAL groups
/// event_log = "/var/log/hadr/r0.ndjson"  # optional: view changes, for `hadr validate`
/// ```
///
/// The replica endpoint (peer-to-peer TCP) listens on the address of this replica's
/// `ENDPOINT_URL` in the availability group's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The server instance name: the replica of the AG configuration this process is.
    pub name: String,
    /// Where the replica's state file and write-ahead logs live (created if missing).
    pub data_dir: PathBuf,
    /// The client API's address.
    pub client_listen: SocketAddr,
    /// The admin API's address.
    pub admin_listen: SocketAddr,
    /// Override of the endpoint's listen address (default: the host and port of this
    /// replica's ENDPOINT_URL). Useful to listen on `0.0.0.0`.
    #[serde(default)]
    pub endpoint_listen: Option<SocketAddr>,
    /// etcd client URLs, e.g. `["http://127.0.0.1:2379"]`: the cluster manager of
    /// `CLUSTER_TYPE = EXTERNAL` groups (a build with the `etcd` feature). Empty: EXTERNAL
    /// groups are refused.
    #[serde(default)]
    pub etcd_endpoints: Vec<String>,
    /// Where to log every change of this replica's views (`hadr-events/1`, for `hadr
    /// validate`; docs/event-log.md). The `HADR_EVENT_LOG` environment variable overrides it.
    #[serde(default)]
    pub event_log: Option<PathBuf>,
    /// Checkpoints and the data files (the `[storage]` table; docs/storage.md).
    #[serde(default)]
    pub storage: StorageSettings,
}

/// How a replica keeps its databases' data: checkpoints into a paged data file, through a
/// buffer pool of bounded size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// A database is checkpointed (its log written into its data file and dropped from memory
    /// and from the log file) once the log since its last checkpoint holds this many bytes.
    /// It bounds the log kept, as long as every secondary keeps up (R-SYNC-7). 0: never, the
    /// whole log stays in memory (and on disk). Default 32 MiB.
    pub checkpoint_bytes: u64,
    /// The most memory each data file's buffer pool holds. Default 16 MiB.
    pub buffer_pool_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            checkpoint_bytes: 32 << 20,
            buffer_pool_bytes: crate::pages::DEFAULT_POOL_BUDGET_BYTES,
        }
    }
}

/// Why a node configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read node configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a [`NodeConfig`].
    #[error("node configuration {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (with line and column).
        message: String,
    },
    /// The instance name is empty.
    #[error("node configuration {path}: `name` must not be empty (it is the server instance name the availability group lists)")]
    EmptyName {
        /// The file.
        path: PathBuf,
    },
}

impl NodeConfig {
    /// Reads and checks `node.toml`.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        NodeConfig::parse(&text, path)
    }

    /// Parses a configuration text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if config.name.trim().is_empty() {
            return Err(ConfigError::EmptyName {
                path: path.to_owned(),
            });
        }
        Ok(config)
    }
}

/// Why an `ENDPOINT_URL` cannot be used to listen or dial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The replica has no ENDPOINT_URL.
    #[error("replica {replica} has no ENDPOINT_URL; give it one like 'TCP://127.0.0.1:5022'")]
    Missing {
        /// The replica's name.
        replica: String,
    },
    /// The URL is not `TCP://host:port`.
    #[error("ENDPOINT_URL '{url}' of replica {replica} is not of the form 'TCP://host:port'")]
    Malformed {
        /// The replica's name.
        replica: String,
        /// The URL.
        url: String,
    },
}

/// The `host:port` of an `ENDPOINT_URL` such as `TCP://127.0.0.1:5022`.
pub fn endpoint_address(replica: &str, url: Option<&str>) -> Result<String, EndpointError> {
    let url = url.ok_or_else(|| EndpointError::Missing {
        replica: replica.to_owned(),
    })?;
    let malformed = || EndpointError::Malformed {
        replica: replica.to_owned(),
        url: url.to_owned(),
    };
    let rest = url
        .get(..6)
        .filter(|scheme| scheme.eq_ignore_ascii_case("tcp://"))
        .map(|_| &url[6..])
        .ok_or_else(malformed)?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(malformed)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(malformed());
    }
    Ok(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_node_configuration_parses() {
        let c = NodeConfig::parse(
            "name = \"R0\"\ndata_dir = \"/tmp/r0\"\nclient_listen = \"127.0.0.1:7100\"\nadmin_listen = \"127.0.0.1:7200\"\n",
            Path::new("node.toml"),
        )
        .unwrap();
        assert_eq!(c.name, "R0");
        assert_eq!(c.endpoint_listen, None);
    }

    #[test]
    fn unknown_keys_and_bad_addresses_are_refused_with_the_file_named() {
        let e = NodeConfig::parse(
            "name = \"R0\"\ndata_dir = \"/tmp\"\nclient_listen = \"nowhere\"\nadmin_listen = \"127.0.0.1:1\"\n",
            Path::new("n.toml"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("node configuration n.toml is invalid"),
            "{e}"
        );
        let e = NodeConfig::parse(
            "name = \"R0\"\nbogus = 1\ndata_dir = \"/tmp\"\nclient_listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\n",
            Path::new("n.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn endpoint_urls_are_tcp_host_port() {
        assert_eq!(
            endpoint_address("R0", Some("TCP://127.0.0.1:5022")).unwrap(),
            "127.0.0.1:5022"
        );
        assert_eq!(
            endpoint_address("R0", Some("tcp://db1.example:5022/")).unwrap(),
            "db1.example:5022"
        );
        for bad in [
            "127.0.0.1:5022",
            "TCP://:5022",
            "TCP://host",
            "TCP://host:x",
            "TCP:/",
        ] {
            assert!(endpoint_address("R0", Some(bad)).is_err(), "{bad}");
        }
        assert!(matches!(
            endpoint_address("R0", None),
            Err(EndpointError::Missing { .. })
        ));
    }
}
