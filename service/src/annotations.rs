//! Service settings carried as `config.json` annotations.
//!
//! `linuxkit build` rejects keys it does not know under `runtime:`, but copies a container's
//! `annotations:` into its `config.json` untouched. So a blueprint sets guestkit's restart policy and stop
//! grace period like this, and LinuxKit's own `service` simply ignores them:
//!
//! ```yaml
//! annotations:
//!   org.guestkit.restart: on-failure       # no | on-failure | always
//!   org.guestkit.restart.backoff: "1"       # seconds before the first restart, doubled each time
//!   org.guestkit.restart.max-backoff: "60"  # cap of the delay
//!   org.guestkit.restart.reset-after: "60"  # a run this long resets the delay
//!   org.guestkit.stop-grace-period: "10"    # TERM → KILL delay of `service stop`
//! ```
//!
//! The same settings in `runtime.json` (`restart`, `stopGracePeriod`) take precedence.

use std::collections::BTreeMap;
use std::path::Path;

use durations::Limit;

use crate::runtime_json::{
    BACKOFF_LIMIT, GRACE_LIMIT, RESET_AFTER_LIMIT, RestartMode, RuntimeConfig, RuntimeJsonError,
};

/// The restart policy annotation.
pub const RESTART: &str = "org.guestkit.restart";
/// The first restart delay annotation.
pub const RESTART_BACKOFF: &str = "org.guestkit.restart.backoff";
/// The delay cap annotation.
pub const RESTART_MAX_BACKOFF: &str = "org.guestkit.restart.max-backoff";
/// The healthy-run annotation.
pub const RESTART_RESET_AFTER: &str = "org.guestkit.restart.reset-after";
/// The stop grace period annotation.
pub const STOP_GRACE_PERIOD: &str = "org.guestkit.stop-grace-period";

/// Fills the settings `runtime.json` left unset from `annotations`; `file` names the config.json in errors.
pub fn apply(
    config: &mut RuntimeConfig,
    annotations: &BTreeMap<String, String>,
    file: &Path,
) -> Result<(), RuntimeJsonError> {
    let invalid = |field: &str, reason: String| RuntimeJsonError::Invalid {
        file: file.to_path_buf(),
        field: format!("annotations.{field}"),
        reason,
    };
    let seconds = |key: &str, limit: Limit| -> Result<Option<f64>, RuntimeJsonError> {
        let Some(text) = annotations.get(key) else {
            return Ok(None);
        };
        match limit.parse(text) {
            Ok(duration) => Ok(Some(duration.as_secs_f64())),
            Err(err) => Err(invalid(key, err.to_string())),
        }
    };
    if config.restart.policy == RestartMode::No
        && let Some(policy) = annotations.get(RESTART)
    {
        config.restart.policy = match policy.trim() {
            "no" => RestartMode::No,
            "on-failure" => RestartMode::OnFailure,
            "always" => RestartMode::Always,
            other => {
                return Err(invalid(
                    RESTART,
                    format!("{other:?} is not no, on-failure or always"),
                ));
            }
        };
        if let Some(v) = seconds(RESTART_BACKOFF, BACKOFF_LIMIT)? {
            config.restart.backoff = v;
        }
        if let Some(v) = seconds(RESTART_MAX_BACKOFF, BACKOFF_LIMIT)? {
            config.restart.max_backoff = v;
        }
        if let Some(v) = seconds(RESTART_RESET_AFTER, RESET_AFTER_LIMIT)? {
            config.restart.reset_after = v;
        }
    }
    if config.stop_grace_period.is_none() {
        config.stop_grace_period = seconds(STOP_GRACE_PERIOD, GRACE_LIMIT)?;
    }
    Ok(())
}

/// The string annotations of `<bundle>/config.json` (none when the file is missing or has none).
pub fn read(bundle: &Path) -> Result<BTreeMap<String, String>, RuntimeJsonError> {
    let file = bundle.join("config.json");
    let text = match std::fs::read(&file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(RuntimeJsonError::Read { file, source }),
    };
    parse(&text, &file)
}

/// The string annotations of a `config.json` text; `file` names it in errors.
pub fn parse(text: &[u8], file: &Path) -> Result<BTreeMap<String, String>, RuntimeJsonError> {
    #[derive(serde::Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }
    let doc: Annotated =
        serde_json::from_slice(text).map_err(|source| RuntimeJsonError::Parse {
            file: file.to_path_buf(),
            field: "annotations".into(),
            source,
        })?;
    Ok(doc.annotations.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotations_set_the_restart_policy_and_grace() {
        let mut config = RuntimeConfig::default();
        let a = annotations(&[
            (RESTART, "on-failure"),
            (RESTART_BACKOFF, "0.5"),
            (RESTART_MAX_BACKOFF, "8"),
            (STOP_GRACE_PERIOD, "3"),
        ]);
        apply(&mut config, &a, Path::new("/b/config.json")).expect("valid annotations");
        assert_eq!(config.restart.policy, RestartMode::OnFailure);
        assert_eq!(config.restart.backoff, 0.5);
        assert_eq!(config.restart.max_backoff, 8.0);
        assert_eq!(config.stop_grace_period, Some(3.0));
    }

    #[test]
    fn runtime_json_settings_win() {
        let mut config = RuntimeConfig::default();
        config.restart.policy = RestartMode::Always;
        config.stop_grace_period = Some(1.0);
        let a = annotations(&[(RESTART, "no"), (STOP_GRACE_PERIOD, "30")]);
        apply(&mut config, &a, Path::new("/b/config.json")).expect("valid annotations");
        assert_eq!(config.restart.policy, RestartMode::Always);
        assert_eq!(config.stop_grace_period, Some(1.0));
    }

    #[test]
    fn durations_at_their_extremes() {
        for key in [
            RESTART_BACKOFF,
            RESTART_MAX_BACKOFF,
            RESTART_RESET_AFTER,
            STOP_GRACE_PERIOD,
        ] {
            let run = |value: &str| {
                let mut config = RuntimeConfig::default();
                apply(
                    &mut config,
                    &annotations(&[(RESTART, "always"), (key, value)]),
                    Path::new("/b/config.json"),
                )
                .map(|()| config)
            };
            assert!(run("0").is_ok(), "{key}=0");
            assert!(run("3600").is_ok(), "{key}=3600");
            for value in ["1e20", "1e19", "NaN", "-1", "inf", "86401", "soon"] {
                let message = run(value)
                    .map(|_| String::new())
                    .unwrap_or_else(|e| e.to_string());
                assert!(
                    message.contains("/b/config.json")
                        && message.contains(&format!("annotations.{key}")),
                    "{key}={value}: {message:?}"
                );
            }
        }
    }

    #[test]
    fn bad_values_name_the_annotation() {
        for (key, value) in [
            (RESTART, "sometimes"),
            (STOP_GRACE_PERIOD, "-1"),
            (STOP_GRACE_PERIOD, "NaN"),
        ] {
            let err = apply(
                &mut RuntimeConfig::default(),
                &annotations(&[(key, value)]),
                Path::new("/b/c"),
            )
            .expect_err("invalid annotation");
            assert!(
                err.to_string().contains(&format!("annotations.{key}")),
                "{err}"
            );
        }
    }
}
