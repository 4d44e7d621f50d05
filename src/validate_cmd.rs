//! `hadr validate`: check an implementation's own event log against the model
//! (hadr-conformance's `validate`, docs/event-log.md).

use crate::cli::ValidateArgs;
use crate::Exit;
use hadr_conformance::validate::{read_logs, validate, LogError, Verdict};

/// Runs `hadr validate`: exit 0 when a behaviour of the model explains the log, 1 when none
/// does, 3 when the frontier grows too broad to tell; a log that cannot be read is an error
/// (exit 2).
pub fn run(args: &ValidateArgs) -> Result<Exit, LogError> {
    let log = read_logs(&args.files)?;
    let verdict = validate(&log, args.max_frontier);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdict).expect("a verdict serializes")
        );
    } else {
        print!("{}", verdict.report());
    }
    Ok(match verdict {
        Verdict::Valid { .. } => Exit::Passed,
        Verdict::Invalid(_) => Exit::Failed,
        Verdict::TooBroad { .. } => Exit::Incomplete,
    })
}
