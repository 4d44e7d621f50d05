//! Arbitrary bytes → a scenario (a configuration and environment actions, `Arbitrary`), run
//! on the spec and on `reference-sim` (the reference core in its simulated network) in lock
//! step (`hadr_conformance::lockstep`). Any observation the model does not allow, any error of
//! the system, and any invariant the core's own debug checks find broken, crashes.
#![no_main]

use arbitrary::Arbitrary;
use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::lockstep::Lockstep;
use hadr_conformance::sut::Sut;
use hadr_model::ModelConfig;
use std::sync::OnceLock;

/// The configurations a scenario may pick: two synchronous replicas with automatic failover
/// (small frontiers, fast), the default three-replica group, and storage faults (a log record
/// damaged on a stopped server's disk, `CorruptLog`, issue 18).
const CONFIGS: [&str; 3] = [
    include_str!("../../model/configs/two-replicas.toml"),
    hadr_model::DEFAULT_CONFIG_TOML,
    include_str!("../../model/configs/storage-faults.toml"),
];

/// A scenario stops once the model's frontier (the states it may be in) has more states than
/// this: closing a frontier is most of a scenario's cost, and the broad ones are the rare,
/// slow ones.
const FRONTIER_CAP: usize = 2_000;

/// At most this many environment actions per scenario.
const MAX_STEPS: usize = 8;

#[derive(Debug, Arbitrary)]
struct Scenario {
    config: u8,
    choices: Vec<u8>,
}

/// The model of each configuration, and the system set up with it once: every scenario runs
/// on a copy (setting up is deterministic, and the copy is several times cheaper).
fn lockstep(index: usize) -> &'static (Lockstep, ReferenceSim) {
    static MODELS: OnceLock<Vec<(Lockstep, ReferenceSim)>> = OnceLock::new();
    &MODELS.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|text| {
                let model = Lockstep::new(ModelConfig::from_toml_str(text).expect("a valid configuration"))
                    .with_frontier_cap(FRONTIER_CAP);
                let mut sim = ReferenceSim::new();
                sim.setup(&model.config().ag).expect("reference-sim sets up");
                (model, sim)
            })
            .collect()
    })[index]
}

libfuzzer_sys::fuzz_target!(|scenario: Scenario| {
    let (model, set_up) = lockstep(usize::from(scenario.config) % CONFIGS.len());
    let choices = scenario.choices.iter().take(MAX_STEPS).map(|&c| usize::from(c));
    if let Err(divergence) = model.run_set_up(choices, &mut set_up.clone()) {
        panic!("{divergence}");
    }
});
