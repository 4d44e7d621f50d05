//! Certification in parallel and in shards gives the certificate of one serial run: the same
//! counts, hashes, coverage, verdict and results in corpus order, failures (shrunk) included.

use hadr_conformance::certify::{
    certify, load_corpus, merge, Certificate, MergeError, RunOptions, ShardSpec,
};
use hadr_conformance::model_sut::ModelSut;
use hadr_conformance::sut::Sut;
use hadr_conformance::Scenario;
use hadr_model::Mutant;

fn corpus() -> (Vec<(String, Scenario)>, String) {
    load_corpus(&hadr_conformance::certify::shipped_corpus_dir()).unwrap()
}

/// The spec with a planted bug, as a system: it fails some scenarios of the corpus (and each
/// failure is shrunk), passes others.
fn run(scenarios: &[(String, Scenario)], hash: &str, options: RunOptions) -> Certificate {
    let mutant = Some(Mutant::AckBeforeSecondaryHardens);
    certify(
        scenarios,
        hash.to_owned(),
        &|s| Box::new(ModelSut::adversarial(mutant, s)) as Box<dyn Sut>,
        options,
        &mut |_, _| {},
    )
}

fn json(certificate: &Certificate) -> String {
    serde_json::to_string_pretty(certificate).unwrap()
}

/// What a shard's `--json` certificate reads back as, in another process.
fn read_back(certificate: &Certificate) -> Certificate {
    serde_json::from_str(&json(certificate)).unwrap()
}

#[test]
fn parallel_jobs_give_the_serial_certificate() {
    let (scenarios, hash) = corpus();
    let serial = run(&scenarios, &hash, RunOptions::default());
    assert_eq!(
        serial.verdict, "FAIL",
        "the planted bug must fail something"
    );
    assert!(serial.passed > 0, "and pass something");
    let parallel = run(
        &scenarios,
        &hash,
        RunOptions {
            jobs: 4,
            ..RunOptions::default()
        },
    );
    assert_eq!(json(&parallel), json(&serial));
}

#[test]
fn three_shards_merged_give_the_certificate_of_one_run() {
    let (scenarios, hash) = corpus();
    let whole = run(&scenarios, &hash, RunOptions::default());
    let shards: Vec<(String, Certificate)> = (1..=3)
        .map(|index| {
            let options = RunOptions {
                shard: Some(ShardSpec { index, count: 3 }),
                jobs: 2,
                ..RunOptions::default()
            };
            let shard = run(&scenarios, &hash, options);
            assert!(
                shard.scenarios < whole.scenarios,
                "shard {index} ran {} of {}",
                shard.scenarios,
                whole.scenarios
            );
            (format!("shard-{index}.json"), read_back(&shard))
        })
        .collect();
    let sizes: usize = shards.iter().map(|(_, c)| c.scenarios).sum();
    assert_eq!(
        sizes, whole.scenarios,
        "every scenario in exactly one shard"
    );
    // In any order of the files.
    let mut reversed = shards.clone();
    reversed.reverse();
    assert_eq!(json(&merge(shards).unwrap()), json(&whole));
    assert_eq!(json(&merge(reversed).unwrap()), json(&whole));
}

#[test]
fn a_scenario_keeps_its_shard_when_the_corpus_grows() {
    let (scenarios, _) = corpus();
    let spec = ShardSpec { index: 2, count: 3 };
    let before: Vec<&str> = spec
        .positions(&scenarios)
        .into_iter()
        .map(|i| scenarios[i].0.as_str())
        .collect();
    let mut grown = scenarios.clone();
    grown.insert(5, ("005a-extra.json".to_owned(), scenarios[0].1.clone()));
    let after: Vec<&str> = spec
        .positions(&grown)
        .into_iter()
        .map(|i| grown[i].0.as_str())
        .filter(|f| *f != "005a-extra.json")
        .collect();
    assert_eq!(before, after);
}

#[test]
fn merging_refuses_what_is_not_one_whole_run() {
    let (scenarios, hash) = corpus();
    let shard = |index, count| {
        let options = RunOptions {
            shard: Some(ShardSpec { index, count }),
            shrink_failures: false,
            ..RunOptions::default()
        };
        (
            format!("s{index}of{count}.json"),
            read_back(&run(&scenarios, &hash, options)),
        )
    };
    let (a, b) = (shard(1, 2), shard(2, 2));
    assert!(matches!(
        merge(vec![a.clone()]),
        Err(MergeError::Missing { index: 2, count: 2 })
    ));
    assert!(matches!(
        merge(vec![a.clone(), a.clone(), b.clone()]),
        Err(MergeError::Duplicate { index: 1, .. })
    ));
    assert!(matches!(
        merge(vec![a.clone(), shard(2, 3)]),
        Err(MergeError::ShardCount { .. })
    ));
    let mut other_corpus = b.clone();
    other_corpus.1.corpus_hash = "0000000000000000".to_owned();
    assert!(matches!(
        merge(vec![a.clone(), other_corpus]),
        Err(MergeError::Differs {
            field: "corpus_hash",
            ..
        })
    ));
    let mut whole = b.clone();
    whole.1.shard = None;
    assert!(matches!(
        merge(vec![a.clone(), whole]),
        Err(MergeError::NotAShard(_))
    ));
    let mut moved = b.clone();
    if let Some(s) = moved.1.shard.as_mut() {
        s.positions[0] = a.1.shard.as_ref().unwrap().positions[0];
    }
    assert!(matches!(
        merge(vec![a, moved]),
        Err(MergeError::Inconsistent { .. })
    ));
    assert!(matches!(merge(vec![]), Err(MergeError::Nothing)));
}

#[test]
fn shard_arguments() {
    assert_eq!(
        "2/3".parse::<ShardSpec>(),
        Ok(ShardSpec { index: 2, count: 3 })
    );
    for bad in ["0/3", "4/3", "1/0", "1", "a/b", "1/2/3", ""] {
        assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
    }
}
