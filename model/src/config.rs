//! What the checker checks: an availability group ([`AgConfig`]) and the [`Bounds`] that keep
//! its state space finite.
//!
//! A check configuration is TOML with a `[bounds]` table and an `[ag]` table (the same fields as
//! an [`AgConfig`] file). [`ModelConfig::default`] is `configs/default.toml`, embedded in the
//! binary.

use hadr_types::{AgConfig, AvailabilityMode, ConfigError, ReplicaId};
use serde::{Deserialize, Serialize};

/// The embedded default configuration (`model/configs/default.toml`).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../configs/default.toml");
/// Backups on every replica (`model/configs/backups.toml`).
pub const BACKUPS_CONFIG_TOML: &str = include_str!("../configs/backups.toml");
/// Readable secondaries and the listener (`model/configs/reads.toml`).
pub const READS_CONFIG_TOML: &str = include_str!("../configs/reads.toml");
/// The database lifecycle (`model/configs/lifecycle.toml`).
pub const LIFECYCLE_CONFIG_TOML: &str = include_str!("../configs/lifecycle.toml");
/// Automatic page repair (`model/configs/page-repair.toml`).
pub const PAGE_REPAIR_CONFIG_TOML: &str = include_str!("../configs/page-repair.toml");
/// A log record damaged on a stopped server's disk (`model/configs/storage-faults.toml`).
pub const STORAGE_FAULTS_CONFIG_TOML: &str = include_str!("../configs/storage-faults.toml");
/// The bounds for a group written in T-SQL (`model/configs/script-bounds.toml`).
pub const SCRIPT_BOUNDS_TOML: &str = include_str!("../configs/script-bounds.toml");

/// A file holding only a `[bounds]` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundsFile {
    /// The bounds.
    pub bounds: Bounds,
}

impl Bounds {
    /// Parses a `[bounds]` table.
    pub fn from_toml_str(text: &str) -> Result<Bounds, ModelConfigError> {
        toml::from_str::<BoundsFile>(text)
            .map(|f| f.bounds)
            .map_err(|e| ModelConfigError::Toml {
                message: e.to_string(),
            })
    }

    /// The bounds for a group written in T-SQL when none are given.
    pub fn for_scripts() -> Bounds {
        Bounds::from_toml_str(SCRIPT_BOUNDS_TOML).expect("the embedded script bounds are valid")
    }
}

/// The most transactions a check may bound (a log holds at most this many records).
pub const MAX_TRANSACTIONS: u8 = 16;
/// The most failovers a check may bound (each starts a recovery fork, numbered in a byte).
pub const MAX_FAILOVERS: u8 = 16;
/// The most availability databases the model checks (far beyond what a check can finish).
pub const MAX_DATABASES: usize = 8;

/// How far the checker lets the environment go. Every environment action that could repeat
/// forever consumes one of these budgets; restarts, heals and resumes are free because each
/// undoes a budgeted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Client commits.
    pub transactions: u8,
    /// Server crashes, stalled log disks (DiskStall) and health faults (R-FAIL-7).
    pub crashes: u8,
    /// Partitions, quorum losses and lost log blocks.
    pub network_faults: u8,
    /// Failovers of any kind; each starts a recovery fork.
    pub failovers: u8,
    /// Forced failovers (at most `failovers`).
    pub forced_failovers: u8,
    /// Operator suspends (`ALTER DATABASE … SET HADR SUSPEND`).
    pub suspends: u8,
    /// Operator changes of REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT.
    pub config_changes: u8,
    /// At most this many disruptions in one behaviour, whatever their kind: crashes, health
    /// faults, partitions, quorum losses, lost log blocks, page and log corruptions, and operator
    /// commands (failovers, demotions, suspends, changes of k, backups, ADD/REMOVE DATABASE,
    /// REMOVE REPLICA, RESTORE). Restarts, heals, quorum regains, resumes and joins are free:
    /// each undoes one. This caps the product of the budgets, as `MaxEvents` does in TLA+.
    pub events: u8,
    /// Backups an operator attempts (R-BACKUP); 0 (the default) leaves backups out.
    #[serde(default)]
    pub backups: u8,
    /// Client connections through the listener that read (R-READ); 0 leaves reads out.
    #[serde(default)]
    pub reads: u8,
    /// Database lifecycle commands: ADD/REMOVE DATABASE, REMOVE REPLICA, RESTORE (R-DB);
    /// joins are free. Removals count as disruptions. 0 leaves the lifecycle out.
    #[serde(default)]
    pub database_changes: u8,
    /// Pages found corrupt (R-PAGE), a disruption each; 0 leaves page repair out.
    #[serde(default)]
    pub page_corruptions: u8,
    /// Hardened log records damaged on the disk of a server that is down (CorruptLog), a
    /// disruption each; 0 (the default) leaves log corruption out.
    #[serde(default)]
    pub log_corruptions: u8,
}

/// A configuration the model can check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The environment's budgets.
    pub bounds: Bounds,
    /// The availability group.
    pub ag: AgConfig,
}

/// Why a check configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelConfigError {
    /// Not TOML, or not the shape of a check configuration.
    #[error("invalid check configuration: {message}")]
    Toml {
        /// The parser's message, with line and column.
        message: String,
    },
    /// The availability group breaks a limit of the rule book.
    #[error(transparent)]
    Ag(#[from] ConfigError),
    /// The group has no database, so there is nothing to replicate.
    #[error("the availability group has no database; list at least one in ag.databases")]
    NoDatabase,
    /// Configuration-only replicas are not part of the model.
    #[error("replica '{replica}' is CONFIGURATION_ONLY: the spec models the cluster manager's quorum abstractly (its votes are part of the manager's majority), so remove it from the replicas to check this group")]
    ConfigurationOnlyReplica {
        /// The replica.
        replica: String,
    },
    /// More forced failovers than failovers.
    #[error("bounds.forced_failovers is {forced} but bounds.failovers is {failovers}; every forced failover is a failover, so raise failovers or lower forced_failovers")]
    ForcedExceedsFailovers {
        /// bounds.forced_failovers
        forced: u8,
        /// bounds.failovers
        failovers: u8,
    },
    /// Too many transactions for the model's encoding.
    #[error("bounds.transactions is {transactions}; the model checks at most {MAX_TRANSACTIONS}")]
    TooManyTransactions {
        /// bounds.transactions
        transactions: u8,
    },
    /// Too many failovers for the model's encoding.
    #[error("bounds.failovers is {failovers}; the model checks at most {MAX_FAILOVERS}")]
    TooManyFailovers {
        /// bounds.failovers
        failovers: u8,
    },
    /// Too many databases for the model's encoding.
    #[error("the availability group has {databases} databases; the model checks at most {MAX_DATABASES}")]
    TooManyDatabases {
        /// ag.databases
        databases: usize,
    },
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::from_toml_str(DEFAULT_CONFIG_TOML)
            .expect("the embedded default configuration is valid")
    }
}

impl ModelConfig {
    /// Parses a check configuration and validates both the group and the bounds.
    pub fn from_toml_str(text: &str) -> Result<ModelConfig, ModelConfigError> {
        let config: ModelConfig = toml::from_str(text).map_err(|e| ModelConfigError::Toml {
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// A check configuration from a group and bounds, validated.
    pub fn new(ag: AgConfig, bounds: Bounds) -> Result<ModelConfig, ModelConfigError> {
        let config = ModelConfig { bounds, ag };
        config.validate()?;
        Ok(config)
    }

    /// Checks the group against the rule book and the bounds against the model.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        self.ag.validate()?;
        if self.ag.databases.is_empty() {
            return Err(ModelConfigError::NoDatabase);
        }
        if let Some(r) = self
            .ag
            .replicas
            .iter()
            .find(|r| r.availability_mode == AvailabilityMode::ConfigurationOnly)
        {
            return Err(ModelConfigError::ConfigurationOnlyReplica {
                replica: r.name.clone(),
            });
        }
        let b = self.bounds;
        if b.forced_failovers > b.failovers {
            return Err(ModelConfigError::ForcedExceedsFailovers {
                forced: b.forced_failovers,
                failovers: b.failovers,
            });
        }
        if b.transactions > MAX_TRANSACTIONS {
            return Err(ModelConfigError::TooManyTransactions {
                transactions: b.transactions,
            });
        }
        if b.failovers > MAX_FAILOVERS {
            return Err(ModelConfigError::TooManyFailovers {
                failovers: b.failovers,
            });
        }
        if self.ag.databases.len() > MAX_DATABASES {
            return Err(ModelConfigError::TooManyDatabases {
                databases: self.ag.databases.len(),
            });
        }
        Ok(())
    }

    /// Number of replicas.
    pub fn replica_count(&self) -> usize {
        self.ag.replicas.len()
    }

    /// Number of availability databases.
    pub fn database_count(&self) -> usize {
        self.ag.databases.len()
    }

    /// The name of a replica, for messages.
    pub fn replica_name(&self, replica: u8) -> &str {
        self.ag
            .replica(ReplicaId(replica))
            .map_or("?", |r| r.name.as_str())
    }

    /// The name of a database, for messages.
    pub fn database_name(&self, database: u8) -> &str {
        self.ag
            .databases
            .get(usize::from(database))
            .map_or("?", String::as_str)
    }

    /// Whether a replica is configured SYNCHRONOUS_COMMIT.
    pub fn is_synchronous(&self, replica: u8) -> bool {
        self.ag
            .replica(ReplicaId(replica))
            .is_some_and(|r| r.availability_mode == AvailabilityMode::SynchronousCommit)
    }

    /// Whether the cluster manager may promote a replica on its own (R-FAIL-1/2).
    pub fn is_automatic(&self, replica: u8) -> bool {
        self.ag.replica(ReplicaId(replica)).is_some_and(|r| {
            r.failover_mode.allows_automatic_failover()
                && r.availability_mode == AvailabilityMode::SynchronousCommit
        })
    }

    /// Whether a replica's databases are seeded automatically (SEEDING_MODE = AUTOMATIC).
    pub fn seeds_automatically(&self, replica: u8) -> bool {
        self.ag
            .replica(ReplicaId(replica))
            .is_some_and(|r| r.seeding_mode == hadr_types::SeedingMode::Automatic)
    }

    /// The model-relevant attributes of a replica: replicas that agree on these are
    /// interchangeable, which symmetry reduction exploits. With reads in play, the listener
    /// follows routing lists that name replicas, so every replica is then its own class.
    pub fn symmetry_class(&self, replica: u8) -> String {
        let r = &self.ag.replicas[usize::from(replica)];
        let routing = self.bounds.reads > 0
            && self
                .ag
                .replicas
                .iter()
                .any(|x| !x.primary_role.read_only_routing_list.is_empty());
        if routing {
            return format!("replica {replica}");
        }
        format!(
            "{:?} {} {:?} {:?} {:?} {}",
            r.availability_mode,
            self.is_automatic(replica),
            r.seeding_mode,
            r.secondary_role.allow_connections,
            r.primary_role.allow_connections,
            r.secondary_role.read_only_routing_url.is_some(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_the_issue_s_configuration() {
        let config = ModelConfig::default();
        assert_eq!(config.replica_count(), 3);
        assert!(config.is_automatic(0) && config.is_automatic(1) && !config.is_automatic(2));
        assert!(!config.is_synchronous(2));
        assert_eq!(config.ag.required_synchronized_secondaries_to_commit, 0);
        assert_eq!(config.ag.cluster_type, hadr_types::ClusterType::External);
        let b = config.bounds;
        assert!(b.transactions >= 2 && b.crashes >= 1 && b.network_faults >= 1);
        assert!(b.forced_failovers >= 1);
        assert_eq!(b.log_corruptions, 0, "log corruption is off by default");
    }

    #[test]
    fn bad_bounds_are_refused_with_their_names() {
        let text = DEFAULT_CONFIG_TOML.replace("forced_failovers = 1", "forced_failovers = 3");
        let err = ModelConfig::from_toml_str(&text).unwrap_err();
        assert!(
            err.to_string().contains("bounds.forced_failovers is 3"),
            "{err}"
        );
        let text = DEFAULT_CONFIG_TOML.replace("databases = [\"db1\"]", "databases = []");
        let err = ModelConfig::from_toml_str(&text).unwrap_err();
        assert!(matches!(err, ModelConfigError::NoDatabase), "{err}");
    }

    /// The model's own encoding limits are refused with a message, never a panic.
    #[test]
    fn encoding_limits_are_refused() {
        let text = DEFAULT_CONFIG_TOML.replace("failovers = 2", "failovers = 255");
        let err = ModelConfig::from_toml_str(&text).unwrap_err();
        assert!(err.to_string().contains("at most 16"), "{err}");
        let dbs: Vec<String> = (0..20).map(|i| format!("\"d{i}\"")).collect();
        let text = DEFAULT_CONFIG_TOML.replace("[\"db1\"]", &format!("[{}]", dbs.join(", ")));
        let err = ModelConfig::from_toml_str(&text).unwrap_err();
        assert!(
            matches!(err, ModelConfigError::TooManyDatabases { databases: 20 }),
            "{err}"
        );
        let text = DEFAULT_CONFIG_TOML.replace("transactions = 2", "transactions = 17");
        assert!(ModelConfig::from_toml_str(&text).is_err());
    }

    #[test]
    fn rule_book_limits_still_apply() {
        let text = DEFAULT_CONFIG_TOML.replace(
            "required_synchronized_secondaries_to_commit = 0",
            "required_synchronized_secondaries_to_commit = 5",
        );
        let err = ModelConfig::from_toml_str(&text).unwrap_err();
        assert!(err.to_string().contains("R-LIMIT-1"), "{err}");
    }
}
