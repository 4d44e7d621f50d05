//! Entry points for the fuzz targets in `fuzz/` (one-line targets call these).

use crate::config::{AgConfig, ConfigError};
use crate::tsql;

/// Parses arbitrary bytes as a TOML and as a JSON configuration.
///
/// Must never panic. A configuration that is accepted must survive a round trip through TOML
/// and JSON unchanged, and an error must say something.
pub fn config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for result in [AgConfig::from_toml_str(text), AgConfig::from_json_str(text)] {
        match result {
            Ok(config) => {
                let again = AgConfig::from_toml_str(&config.to_toml_string())
                    .expect("an accepted configuration parses back from its own TOML");
                assert_eq!(again, config, "TOML round trip changed the configuration");
                let json = serde_json::to_string(&config).expect("serializes to JSON");
                let again = AgConfig::from_json_str(&json)
                    .expect("an accepted configuration parses back from its own JSON");
                assert_eq!(again, config, "JSON round trip changed the configuration");
            }
            Err(error) => {
                assert!(!error.to_string().is_empty(), "an error must say something");
                if let ConfigError::Invalid(violations) = &error {
                    assert!(!violations.is_empty(), "an invalid config names a rule");
                }
            }
        }
    }
}

/// Parses arbitrary bytes as a T-SQL script.
///
/// Must never panic. An error must point inside the text (its line exists, its column is at
/// most one past the end of that line) and its message must start with that position. A script
/// with one `CREATE AVAILABILITY GROUP` gives a configuration that survives
/// [`render_create`](tsql::render_create) and [`parse_script`](tsql::parse_script) unchanged.
pub fn tsql_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let error = match tsql::parse_script(text).and_then(|script| script.ag_config()) {
        Ok(config) => {
            let rendered = tsql::render_create(&config);
            let again = tsql::parse_script(&rendered)
                .and_then(|script| script.ag_config())
                .unwrap_or_else(|e| {
                    panic!("the rendering of an accepted configuration is refused: {e}\n{rendered}")
                });
            assert_eq!(again, config, "T-SQL round trip changed the configuration");
            return;
        }
        Err(error) => error,
    };
    let (line, column) = error.position();
    assert!(
        error
            .to_string()
            .starts_with(&format!("line {line}, column {column}: ")),
        "the message starts with the position: {error}"
    );
    let width = text
        .split('\n')
        .nth(line.wrapping_sub(1))
        .map(|l| l.chars().count());
    assert!(
        width.is_some_and(|width| (1..=width + 1).contains(&column)),
        "line {line}, column {column} is outside the text"
    );
}
