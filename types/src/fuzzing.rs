//! Entry points for the fuzz targets in `fuzz/` (one-line targets call these).

use crate::config::{AgConfig, ConfigError};

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
