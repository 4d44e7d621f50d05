//! `render_create` writes a configuration that `parse_script` reads back unchanged: for the
//! examples, the model's reference configurations, and many generated ones with awkward names.
//! The canonical form itself is pinned as a snapshot.

use hadr_types::tsql::{parse_script, render_create};
use hadr_types::{
    AgConfig, AvailabilityMode, BackupPreference, ClusterType, FailoverMode, PrimaryConnections,
    RoutingEntry, SecondaryConnections, SeedingMode,
};

fn parse_back(config: &AgConfig) -> AgConfig {
    let text = render_create(config);
    parse_script(&text)
        .and_then(|script| script.ag_config())
        .unwrap_or_else(|e| panic!("{e}\nin\n{text}"))
}

fn three_replicas() -> AgConfig {
    parse_script(include_str!("../../examples/ag-three-replicas.sql"))
        .and_then(|script| script.ag_config())
        .unwrap()
}

#[test]
fn the_example_round_trips_and_renders_canonically() {
    let config = three_replicas();
    assert_eq!(parse_back(&config), config);
    insta::assert_snapshot!(render_create(&config));
}

#[test]
fn rendering_is_a_fixed_point() {
    let text = render_create(&three_replicas());
    assert_eq!(render_create(&parse_back(&three_replicas())), text);
}

/// The model's reference configurations (`model/configs/*.toml`, table `[ag]`), whatever
/// files that directory holds (files with only `[bounds]` are skipped).
#[test]
fn the_model_configurations_round_trip() {
    #[derive(serde::Deserialize)]
    struct File {
        ag: AgConfig,
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let table: toml::Table = toml::from_str(&text).unwrap();
            if !table.contains_key("ag") {
                continue; // a bounds-only file, such as script-bounds.toml
            }
            let mut ag = toml::from_str::<File>(&text).unwrap().ag;
            // T-SQL cannot carry these two (see render_create); the rest must survive.
            ag.lease = Default::default();
            ag.policy = Default::default();
            assert_eq!(parse_back(&ag), ag, "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 1, "no configuration in {dir}");
}

/// Names with the characters that need escaping or quoting survive.
#[test]
fn awkward_names_round_trip() {
    let mut config = three_replicas();
    config.name = "]ag ' \"1\" [x]] -- /* GO".into();
    config.databases = vec![
        "select".into(),
        "GO".into(),
        "naïve ☃".into(),
        "a\nGO\nb".into(),
        "'".into(),
    ];
    config.replicas[2].name = "O'Brien\\SQL ]]".into();
    config.replicas[0].primary_role.read_only_routing_list = vec![RoutingEntry::Group(vec![
        "O'Brien\\SQL ]]".into(),
        "b".into(),
    ])];
    config.replicas[1].primary_role.read_only_routing_list = vec![
        RoutingEntry::Replica("O'Brien\\SQL ]]".into()),
        RoutingEntry::Group(vec!["a".into()]),
    ];
    config.replicas[0].endpoint_url = Some(String::new());
    config.validate().unwrap();
    assert_eq!(parse_back(&config), config);
}

/// `lease` and `policy` have no T-SQL; the script says so in a comment instead of dropping
/// them silently, and reads back with the defaults.
#[test]
fn settings_without_tsql_are_named_in_a_comment() {
    let mut config = three_replicas();
    config.lease.ttl_ms = 30_000;
    config.policy.failover_threshold = Some(1);
    let text = render_create(&config);
    assert!(
        text.starts_with("-- hadr settings that T-SQL cannot express"),
        "{text}"
    );
    assert!(text.contains("--   ttl_ms = 30000\n"), "{text}");
    assert!(text.contains("--   failover_threshold = 1\n"), "{text}");
    assert_eq!(parse_back(&config), three_replicas());
}

/// A small deterministic generator (xorshift), so every run checks the same configurations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len() as u64) as usize]
    }

    fn name(&mut self) -> String {
        const PARTS: &[&str] = &[
            "a", "B", "sql", "'", "]", "[", "\"", " ", "-", "é", "GO", "\n", "N", "0",
        ];
        (0..1 + self.below(4)).map(|_| self.pick(PARTS)).collect()
    }
}

fn generate(rng: &mut Rng) -> AgConfig {
    let mut config = three_replicas();
    config.name = rng.name();
    config.cluster_type = rng.pick(&[ClusterType::Wsfc, ClusterType::External, ClusterType::None]);
    config.failure_condition_level = 1 + rng.below(5) as u8;
    config.health_check_timeout_ms = 15_000 + rng.below(100_000) as u32;
    config.db_failover = rng.below(2) == 0;
    config.automated_backup_preference = rng.pick(&[
        BackupPreference::Primary,
        BackupPreference::SecondaryOnly,
        BackupPreference::Secondary,
        BackupPreference::None,
    ]);
    config.databases = (0..rng.below(4))
        .map(|i| format!("{}{i}", rng.name()))
        .collect();
    let count = 2 + rng.below(8) as usize;
    let template = config.replicas[0].clone();
    config.replicas = (0..count)
        .map(|i| {
            let mut r = template.clone();
            r.name = format!("{}{i}", rng.name());
            r.endpoint_url = rng.pick(&[None, Some("tcp://h:5022")]).map(String::from);
            r.availability_mode = rng.pick(&[
                AvailabilityMode::SynchronousCommit,
                AvailabilityMode::AsynchronousCommit,
            ]);
            r.failover_mode = rng.pick(&[
                FailoverMode::Automatic,
                FailoverMode::Manual,
                FailoverMode::External,
            ]);
            r.seeding_mode = rng.pick(&[SeedingMode::Automatic, SeedingMode::Manual]);
            r.backup_priority = rng.below(101) as u32;
            r.session_timeout_s = 5 + rng.below(100) as u32;
            r.secondary_role.allow_connections = rng.pick(&[
                SecondaryConnections::No,
                SecondaryConnections::ReadOnly,
                SecondaryConnections::All,
            ]);
            r.secondary_role.read_only_routing_url = Some(format!("tcp://{}:1433", rng.name()));
            r.primary_role.allow_connections =
                rng.pick(&[PrimaryConnections::All, PrimaryConnections::ReadWrite]);
            r.primary_role.read_write_routing_url =
                rng.pick(&[None, Some("tcp://rw:1433")]).map(String::from);
            r.primary_role.read_only_routing_list = Vec::new();
            r
        })
        .collect();
    // Keep most samples valid: R-FAIL-1 (automatic needs sync; EXTERNAL needs an external
    // cluster), R-QUORUM-5 (no automatic failover without a manager), R-FAIL-8 (at most 3
    // automatic, at most 5 synchronous).
    let cluster_type = config.cluster_type;
    for (index, r) in config.replicas.iter_mut().enumerate() {
        if index >= 5 {
            r.availability_mode = AvailabilityMode::AsynchronousCommit;
        }
        let automatic_allowed = index < 3
            && r.availability_mode == AvailabilityMode::SynchronousCommit
            && cluster_type != ClusterType::None;
        if !automatic_allowed {
            r.failover_mode = FailoverMode::Manual;
        } else if r.failover_mode == FailoverMode::External && cluster_type != ClusterType::External
        {
            r.failover_mode = FailoverMode::Automatic;
        }
    }
    let names: Vec<String> = config.replicas.iter().map(|r| r.name.clone()).collect();
    for replica in &mut config.replicas {
        let mut rest = names.clone();
        rest.retain(|_| rng.below(2) == 0);
        let mut list = Vec::new();
        while !rest.is_empty() {
            let take = 1 + rng.below(rest.len() as u64) as usize;
            let mut entry: Vec<String> = rest.drain(..take).collect();
            list.push(if entry.len() == 1 && rng.below(2) == 0 {
                RoutingEntry::Replica(entry.remove(0))
            } else {
                RoutingEntry::Group(entry)
            });
        }
        replica.primary_role.read_only_routing_list = list;
    }
    config.required_synchronized_secondaries_to_commit =
        rng.below(config.data_replica_count() as u64) as u32;
    config
}

#[test]
fn generated_configurations_round_trip() {
    let mut rng = Rng(0x5EED_F00D_4AD2);
    let mut valid = 0;
    for _ in 0..2_000 {
        let config = generate(&mut rng);
        if config.validate().is_ok() {
            assert_eq!(parse_back(&config), config);
            valid += 1;
        }
    }
    assert!(
        valid >= 1_500,
        "only {valid} of 2000 generated configurations were valid"
    );
}
