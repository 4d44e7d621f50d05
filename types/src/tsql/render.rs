//! [`render_create`]: an [`AgConfig`] written back as one canonical `CREATE AVAILABILITY
//! GROUP` statement, which [`parse_script`](super::parse_script) reads back to the same value.

use crate::config::{AgConfig, LeaseConfig, PolicyConfig, ReplicaConfig, RoutingEntry};
use crate::vocabulary::{BackupPreference, PrimaryConnections, SecondaryConnections, SeedingMode};

/// Writes `config` as a `CREATE AVAILABILITY GROUP` statement in canonical form: keywords in
/// upper case, every option written out (none left to its default) in a fixed order, names as
/// `[name]` and strings as `N'…'`, one option per line.
///
/// `parse_script(&render_create(&c))?.ag_config()? == c` for every valid `c` whose `lease` and
/// `policy` are the defaults. Those two have no T-SQL syntax (SQL Server keeps them in the
/// cluster manager); when they differ from the defaults, a leading `--` comment lists them so
/// that they are not lost silently, but the script does not carry them.
pub fn render_create(config: &AgConfig) -> String {
    let mut out = String::new();
    out.push_str(&settings_without_tsql(config));
    out.push_str(&format!(
        "CREATE AVAILABILITY GROUP {}\n",
        quote_name(&config.name)
    ));
    let options = [
        format!(
            "AUTOMATED_BACKUP_PREFERENCE = {}",
            backup_preference(config.automated_backup_preference)
        ),
        format!(
            "FAILURE_CONDITION_LEVEL = {}",
            config.failure_condition_level
        ),
        format!("HEALTH_CHECK_TIMEOUT = {}", config.health_check_timeout_ms),
        format!("DB_FAILOVER = {}", on_off(config.db_failover)),
        format!(
            "REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = {}",
            config.required_synchronized_secondaries_to_commit
        ),
        format!("CLUSTER_TYPE = {}", config.cluster_type.as_str()),
    ];
    out.push_str(&format!("WITH (\n    {}\n)\n", options.join(",\n    ")));
    if config.databases.is_empty() {
        out.push_str("FOR\n");
    } else {
        let databases: Vec<String> = config.databases.iter().map(|d| quote_name(d)).collect();
        out.push_str(&format!("FOR DATABASE {}\n", databases.join(", ")));
    }
    out.push_str("REPLICA ON\n");
    let replicas: Vec<String> = config.replicas.iter().map(replica).collect();
    out.push_str(&replicas.join(",\n"));
    out.push_str(";\n");
    out
}

fn replica(replica: &ReplicaConfig) -> String {
    let mut options = Vec::new();
    if let Some(url) = &replica.endpoint_url {
        options.push(format!("ENDPOINT_URL = {}", quote_string(url)));
    }
    options.push(format!(
        "AVAILABILITY_MODE = {}",
        replica.availability_mode.as_str()
    ));
    options.push(format!(
        "FAILOVER_MODE = {}",
        replica.failover_mode.as_str()
    ));
    options.push(format!(
        "SEEDING_MODE = {}",
        seeding_mode(replica.seeding_mode)
    ));
    options.push(format!("BACKUP_PRIORITY = {}", replica.backup_priority));
    options.push(format!("SESSION_TIMEOUT = {}", replica.session_timeout_s));

    let secondary = &replica.secondary_role;
    let mut role = vec![format!(
        "ALLOW_CONNECTIONS = {}",
        secondary_connections(secondary.allow_connections)
    )];
    if let Some(url) = &secondary.read_only_routing_url {
        role.push(format!("READ_ONLY_ROUTING_URL = {}", quote_string(url)));
    }
    options.push(format!("SECONDARY_ROLE ({})", role.join(", ")));

    let primary = &replica.primary_role;
    let mut role = vec![format!(
        "ALLOW_CONNECTIONS = {}",
        primary_connections(primary.allow_connections)
    )];
    if !primary.read_only_routing_list.is_empty() {
        let entries: Vec<String> = primary
            .read_only_routing_list
            .iter()
            .map(|entry| match entry {
                RoutingEntry::Replica(name) => quote_string(name),
                RoutingEntry::Group(names) => {
                    let names: Vec<String> = names.iter().map(|n| quote_string(n)).collect();
                    format!("({})", names.join(", "))
                }
            })
            .collect();
        role.push(format!("READ_ONLY_ROUTING_LIST = ({})", entries.join(", ")));
    }
    if let Some(url) = &primary.read_write_routing_url {
        role.push(format!("READ_WRITE_ROUTING_URL = {}", quote_string(url)));
    }
    options.push(format!("PRIMARY_ROLE ({})", role.join(", ")));

    format!(
        "    {} WITH (\n        {}\n    )",
        quote_string(&replica.name),
        options.join(",\n        ")
    )
}

/// A leading comment naming `lease` and `policy` settings that differ from their defaults.
fn settings_without_tsql(config: &AgConfig) -> String {
    let mut lines = Vec::new();
    if config.lease != LeaseConfig::default() {
        lines.push(("lease", toml::to_string(&config.lease)));
    }
    if config.policy != PolicyConfig::default() {
        lines.push(("policy", toml::to_string(&config.policy)));
    }
    let mut out = String::new();
    for (table, text) in lines {
        if out.is_empty() {
            out.push_str(
                "-- hadr settings that T-SQL cannot express; this script does not carry them:\n",
            );
        }
        out.push_str(&format!("--   [{table}]\n"));
        for line in text.unwrap_or_default().lines() {
            out.push_str(&format!("--   {line}\n"));
        }
    }
    out
}

/// `[name]`, with `]` doubled.
fn quote_name(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// `N'text'`, with `'` doubled.
fn quote_string(text: &str) -> String {
    format!("N'{}'", text.replace('\'', "''"))
}

fn on_off(value: bool) -> &'static str {
    if value {
        "ON"
    } else {
        "OFF"
    }
}

fn backup_preference(value: BackupPreference) -> &'static str {
    match value {
        BackupPreference::Primary => "PRIMARY",
        BackupPreference::SecondaryOnly => "SECONDARY_ONLY",
        BackupPreference::Secondary => "SECONDARY",
        BackupPreference::None => "NONE",
    }
}

fn seeding_mode(value: SeedingMode) -> &'static str {
    match value {
        SeedingMode::Automatic => "AUTOMATIC",
        SeedingMode::Manual => "MANUAL",
    }
}

fn secondary_connections(value: SecondaryConnections) -> &'static str {
    match value {
        SecondaryConnections::No => "NO",
        SecondaryConnections::ReadOnly => "READ_ONLY",
        SecondaryConnections::All => "ALL",
    }
}

fn primary_connections(value: PrimaryConnections) -> &'static str {
    match value {
        PrimaryConnections::ReadWrite => "READ_WRITE",
        PrimaryConnections::All => "ALL",
    }
}

#[cfg(test)]
mod tests {
    use super::super::keywords;
    use super::*;

    /// The parser's keyword tables and the renderer's spellings agree, value by value.
    #[test]
    fn rendered_keywords_are_the_parsed_ones() {
        for &(keyword, value) in keywords::BACKUP_PREFERENCES {
            assert_eq!(backup_preference(value), keyword);
        }
        for &(keyword, value) in keywords::SEEDING_MODES {
            assert_eq!(seeding_mode(value), keyword);
        }
        for &(keyword, value) in keywords::SECONDARY_CONNECTIONS {
            assert_eq!(secondary_connections(value), keyword);
        }
        for &(keyword, value) in keywords::PRIMARY_CONNECTIONS {
            assert_eq!(primary_connections(value), keyword);
        }
        for &(keyword, value) in keywords::ON_OFF {
            assert_eq!(on_off(value), keyword);
        }
        for &(keyword, value) in keywords::AVAILABILITY_MODES {
            assert_eq!(value.as_str(), keyword);
        }
        for &(keyword, value) in keywords::FAILOVER_MODES {
            assert_eq!(value.as_str(), keyword);
        }
        for &(keyword, value) in keywords::CLUSTER_TYPES {
            assert_eq!(value.as_str(), keyword);
        }
    }

    #[test]
    fn names_and_strings_double_their_closing_delimiter() {
        assert_eq!(quote_name("a]b[c"), "[a]]b[c]");
        assert_eq!(quote_string("it's"), "N'it''s'");
    }
}
