//! The scenario file format, version 1 (`docs/trace-format.md`).

use hadr_model::Action;
use hadr_types::Observation;
use serde::{Deserialize, Serialize};

/// The format tag every scenario file starts with; a reader refuses any other.
pub const FORMAT: &str = "hadr-scenario/1";

/// A scenario: a configuration and the environment's steps, each with what the model allows
/// to be seen after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// [`FORMAT`].
    pub format: String,
    /// Why the scenario exists: a hazard (`H1`), an action kind (`ShipLog`) whose shortest
    /// example it is, or a random walk (`walk 3`).
    pub purpose: String,
    /// The model configuration, as the TOML text `hadr check --config` reads.
    pub config: String,
    /// The observations the model allows once the group is created and quiescent, before the
    /// first step (sorted, without duplicates).
    pub initial: Vec<Observation>,
    /// Whether `initial` is the observations of quiescent states (see
    /// [`ScenarioStep::quiescent`]).
    pub initial_quiescent: bool,
    /// The environment's steps, in order (none: the scenario checks the initial state).
    pub steps: Vec<ScenarioStep>,
    /// What the scenario exercises in the model.
    pub covers: Coverage,
}

/// One environment action and its expected outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioStep {
    /// The environment action (client, operator or fault); never an internal one.
    pub action: Action,
    /// The observations the model allows once the system has run to quiescence after this
    /// step (every internal step taken): a correct implementation shows one of them. Sorted,
    /// without duplicates.
    pub expected: Vec<Observation>,
    /// Whether `expected` is the observations of quiescent states. `false` when the protocol
    /// can always take another internal step from there (a cycle): then `expected` holds the
    /// observations of every state reachable by internal steps.
    pub quiescent: bool,
}

/// Action kinds and hazards a scenario (or a corpus) exercises in the model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Action kinds taken: the environment's, and the internal ones in between.
    pub action_kinds: Vec<String>,
    /// Hazards (`H1`…) whose condition holds in a state the scenario can reach.
    pub hazards: Vec<String>,
}

impl Coverage {
    /// What `self` holds that `covered` does not.
    pub fn without(&self, covered: &Coverage) -> Coverage {
        let minus = |mine: &[String], theirs: &[String]| {
            mine.iter()
                .filter(|x| !theirs.contains(x))
                .cloned()
                .collect()
        };
        Coverage {
            action_kinds: minus(&self.action_kinds, &covered.action_kinds),
            hazards: minus(&self.hazards, &covered.hazards),
        }
    }

    /// Adds `other`'s kinds and hazards (kept sorted, without duplicates).
    pub fn merge(&mut self, other: &Coverage) {
        for (mine, theirs) in [
            (&mut self.action_kinds, &other.action_kinds),
            (&mut self.hazards, &other.hazards),
        ] {
            mine.extend(theirs.iter().cloned());
            mine.sort();
            mine.dedup();
        }
    }
}

/// Why a scenario file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not JSON of a scenario.
    #[error("not a scenario: {0}")]
    Json(#[from] serde_json::Error),
    /// Another format or version.
    #[error("scenario format {found:?} is not {FORMAT:?}: regenerate the corpus with `hadr trace generate`")]
    Format {
        /// The format tag found.
        found: String,
    },
}

impl Scenario {
    /// Reads a scenario from JSON, checking its format tag.
    pub fn from_json(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_json::from_str(text)?;
        if scenario.format != FORMAT {
            return Err(ScenarioError::Format {
                found: scenario.format,
            });
        }
        Ok(scenario)
    }

    /// The scenario as pretty JSON (what the corpus files hold).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a scenario serializes");
        text.push('\n');
        text
    }
}
