//! `runtime.json`: LinuxKit's per-container runtime configuration (docs/linuxkit.md §10), plus the
//! guestkit keys LinuxKit ignores (`restart`, `stopGracePeriod`).
//!
//! The parser is tolerant like LinuxKit's: missing keys and `null` mean empty, unknown keys are ignored,
//! and a missing file means "nothing to do". Errors name the file and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use durations::Limit;
use oci_spec::runtime::Mount;
use serde::{Deserialize, Deserializer};

/// `restart.backoff` and `restart.maxBackoff` (and their annotations): at most an hour.
pub const BACKOFF_LIMIT: Limit = Limit::up_to(Duration::from_secs(3600));
/// `restart.resetAfter` (and its annotation): at most a day.
pub const RESET_AFTER_LIMIT: Limit = Limit::up_to(Duration::from_secs(86_400));
/// `stopGracePeriod` (and its annotation): at most [`crate::services::MAX_GRACE`].
pub const GRACE_LIMIT: Limit = Limit::up_to(crate::services::MAX_GRACE);

/// Errors reading `runtime.json`.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeJsonError {
    /// The file exists but could not be read.
    #[error("reading {}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON or a field has the wrong shape.
    #[error("parsing {}: field `{field}`", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The path of the offending field, `.` for the document itself.
        field: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A field is well-formed JSON but its value is not allowed.
    #[error("{}: field `{field}`: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Everything `runtime.json` can ask for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// cgroup directories to create (docs/linuxkit.md §10.1 step 3).
    #[serde(deserialize_with = "null_as_default")]
    pub cgroups: Vec<String>,
    /// Mounts done before the container is created; relative destinations are inside the rootfs.
    #[serde(deserialize_with = "null_as_default")]
    pub mounts: Vec<Mount>,
    /// Directories to create; relative paths are inside the rootfs.
    #[serde(deserialize_with = "null_as_default")]
    pub mkdir: Vec<String>,
    /// Network interfaces to create or move into the container's network namespace.
    #[serde(deserialize_with = "null_as_default")]
    pub interfaces: Vec<Interface>,
    /// Paths to bind the container's namespaces to.
    #[serde(rename = "bindNS", deserialize_with = "null_as_default")]
    pub bind_ns: BindNamespaces,
    /// containerd namespace for this service (services only); empty means the global one.
    #[serde(deserialize_with = "null_as_default")]
    pub namespace: String,
    /// guestkit: restart policy for services, supervised by `service supervise`.
    #[serde(deserialize_with = "null_as_default")]
    pub restart: RestartPolicy,
    /// guestkit: seconds between SIGTERM and SIGKILL when the service is stopped (default 10).
    #[serde(rename = "stopGracePeriod")]
    pub stop_grace_period: Option<f64>,
}

/// One `interfaces[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Interface {
    /// Interface name (required).
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// Link type to create (`veth`, `dummy`, `wireguard`, ...); empty means "move an existing link".
    #[serde(deserialize_with = "null_as_default")]
    pub add: String,
    /// veth peer name, left in the root namespace.
    #[serde(deserialize_with = "null_as_default")]
    pub peer: String,
    /// Create in the root namespace, then move.
    #[serde(rename = "createInRoot")]
    pub create_in_root: bool,
}

/// `bindNS`: for each namespace kind, a path to bind-mount `/proc/<pid>/ns/<kind>` onto.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BindNamespaces {
    #[allow(missing_docs)]
    #[serde(deserialize_with = "null_as_default")]
    pub cgroup: String,
    #[allow(missing_docs)]
    #[serde(deserialize_with = "null_as_default")]
    pub ipc: String,
    #[allow(missing_docs)]
    #[serde(deserialize_with = "null_as_default")]
    pub mnt: String,
    #[allow(missing_docs)]
    #[serde(deserialize_with = "null_as_default")]
    pub net: String,
    #[allow(missing_docs)]
    #[serde(deserialize_with = "null_as_default")]
    pub pid: String,
    #[allow(missing_docs)]
    #[serde(deserialize_with = "null_as_default")]
    pub user: String,
    #[allow(missing_docs)]
    #[serde(deserialize_with = "null_as_default")]
    pub uts: String,
}

impl BindNamespaces {
    /// Non-empty entries as (kind, path), in LinuxKit's order.
    pub fn entries(&self) -> Vec<(&'static str, &str)> {
        [
            ("cgroup", &self.cgroup),
            ("ipc", &self.ipc),
            ("mnt", &self.mnt),
            ("net", &self.net),
            ("pid", &self.pid),
            ("user", &self.user),
            ("uts", &self.uts),
        ]
        .into_iter()
        .filter(|(_, path)| !path.is_empty())
        .map(|(kind, path)| (kind, path.as_str()))
        .collect()
    }
}

/// When a service is restarted after its task exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Never (LinuxKit's behaviour, the default).
    #[default]
    No,
    /// When the task exits with a non-zero status or is killed by a signal.
    OnFailure,
    /// Whenever the task exits.
    Always,
}

/// The guestkit `restart` key: `{"policy": "on-failure", "backoff": 1, "maxBackoff": 60, "resetAfter": 60}`.
/// Times are seconds (fractions allowed).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    /// When to restart.
    pub policy: RestartMode,
    /// First delay before a restart; doubled after each restart.
    pub backoff: f64,
    /// Cap of the delay.
    #[serde(rename = "maxBackoff")]
    pub max_backoff: f64,
    /// A task that ran this long counts as healthy: the delay goes back to `backoff`.
    #[serde(rename = "resetAfter")]
    pub reset_after: f64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            policy: RestartMode::No,
            backoff: 1.0,
            max_backoff: 60.0,
            reset_after: 60.0,
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `attempt` (0-based): `backoff * 2^attempt`, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2f64.powi(i32::try_from(attempt.min(30)).unwrap_or(30));
        Duration::from_secs_f64((self.backoff * factor).min(self.max_backoff).max(0.0))
    }

    /// Whether a task that ended with `exit_status` should be restarted.
    pub fn wants_restart(&self, exit_status: u32) -> bool {
        match self.policy {
            RestartMode::No => false,
            RestartMode::OnFailure => exit_status != 0,
            RestartMode::Always => true,
        }
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Parses the text of a `runtime.json`; `file` is only used in errors.
pub fn parse_runtime_json(text: &[u8], file: &Path) -> Result<RuntimeConfig, RuntimeJsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let config: RuntimeConfig =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            RuntimeJsonError::Parse {
                file: file.to_owned(),
                field: err.path().to_string(),
                source: err.into_inner(),
            }
        })?;
    validate(&config, file)?;
    Ok(config)
}

fn validate(config: &RuntimeConfig, file: &Path) -> Result<(), RuntimeJsonError> {
    let invalid = |field: String, reason: &str| RuntimeJsonError::Invalid {
        file: file.to_owned(),
        field,
        reason: reason.to_owned(),
    };
    for (i, interface) in config.interfaces.iter().enumerate() {
        if interface.name.is_empty() {
            return Err(invalid(
                format!("interfaces[{i}].name"),
                "an interface requires a name",
            ));
        }
        if interface.add == "veth" && interface.peer.is_empty() {
            return Err(invalid(
                format!("interfaces[{i}].peer"),
                "a veth requires a peer",
            ));
        }
    }
    let restart = &config.restart;
    for (field, value, limit) in [
        ("restart.backoff", Some(restart.backoff), BACKOFF_LIMIT),
        (
            "restart.maxBackoff",
            Some(restart.max_backoff),
            BACKOFF_LIMIT,
        ),
        (
            "restart.resetAfter",
            Some(restart.reset_after),
            RESET_AFTER_LIMIT,
        ),
        ("stopGracePeriod", config.stop_grace_period, GRACE_LIMIT),
    ] {
        if let Some(value) = value
            && let Err(err) = limit.seconds(value)
        {
            return Err(invalid(field.into(), &err.to_string()));
        }
    }
    Ok(())
}

/// Reads `<bundle>/runtime.json` (a missing file gives the empty configuration), then fills the guestkit
/// settings it leaves unset from `config.json`'s annotations (see [`crate::annotations`]).
pub fn read_runtime_json(bundle: &Path) -> Result<RuntimeConfig, RuntimeJsonError> {
    let file = bundle.join("runtime.json");
    let mut config = match std::fs::read(&file) {
        Ok(text) => parse_runtime_json(&text, &file)?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => RuntimeConfig::default(),
        Err(source) => return Err(RuntimeJsonError::Read { file, source }),
    };
    let annotations = crate::annotations::read(bundle)?;
    crate::annotations::apply(&mut config, &annotations, &bundle.join("config.json"))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuntimeConfig, RuntimeJsonError> {
        parse_runtime_json(text.as_bytes(), Path::new("/b/runtime.json"))
    }

    #[test]
    fn linuxkit_document_parses() {
        let text = r#"{"cgroups": [], "mounts": [{"source":"tmpfs","type":"tmpfs","destination":"/b/tmp"},
            {"destination":"/b/tmp","options":["remount","private"]}], "mkdir": ["/run/x"],
            "interfaces": [{"name":"wg0","add":"wireguard","createInRoot":true}],
            "bindNS": {"cgroup":"","ipc":"","mnt":"","net":"/run/netns/wg0","pid":"","user":"","uts":""},
            "namespace": ""}"#;
        let config = parse(text).expect("valid runtime.json");
        assert_eq!(config.mounts.len(), 2);
        assert_eq!(config.interfaces[0].add, "wireguard");
        assert!(config.interfaces[0].create_in_root);
        assert_eq!(config.bind_ns.entries(), vec![("net", "/run/netns/wg0")]);
        assert_eq!(config.restart.policy, RestartMode::No);
    }

    #[test]
    fn nulls_and_missing_keys_are_empty() {
        let config = parse(r#"{"cgroups": null, "mounts": null, "bindNS": null, "future": 1}"#)
            .expect("tolerant");
        assert_eq!(config, RuntimeConfig::default());
    }

    #[test]
    fn errors_name_file_and_field() {
        let cases = [
            (
                r#"{"mounts": [{"destination": 7}]}"#,
                "mounts[0].destination",
            ),
            (
                r#"{"interfaces": [{"add": "dummy"}]}"#,
                "interfaces[0].name",
            ),
            (
                r#"{"interfaces": [{"name": "v", "add": "veth"}]}"#,
                "interfaces[0].peer",
            ),
            (r#"{"restart": {"policy": "sometimes"}}"#, "restart.policy"),
            (r#"{"restart": {"backoff": -1}}"#, "restart.backoff"),
            (r#"{"mkdir": "x"}"#, "mkdir"),
        ];
        for (i, (text, field)) in cases.into_iter().enumerate() {
            let err = parse(text).expect_err("invalid runtime.json");
            let message = err.to_string();
            assert!(message.contains("/b/runtime.json"), "case {i}: {message}");
            assert!(message.contains(field), "case {i}: {message}");
        }
    }

    #[test]
    fn durations_at_their_extremes() {
        for field in [
            "restart.backoff",
            "restart.maxBackoff",
            "restart.resetAfter",
            "stopGracePeriod",
        ] {
            let doc = |value: &str| match field.split_once('.') {
                Some((outer, inner)) => format!(r#"{{"{outer}": {{"{inner}": {value}}}}}"#),
                None => format!(r#"{{"{field}": {value}}}"#),
            };
            assert!(parse(&doc("0")).is_ok(), "{field}=0");
            let max = if field == "restart.resetAfter" {
                "86400"
            } else {
                "3600"
            };
            assert!(parse(&doc(max)).is_ok(), "{field}={max}");
            for (value, reason) in [
                ("1e20", "above the maximum"),
                ("1e19", "above the maximum"),
                ("86401", "above the maximum"),
                ("-1", "negative"),
                ("-0.001", "negative"),
            ] {
                let message = parse(&doc(value))
                    .map(|_| String::new())
                    .unwrap_or_else(|e| e.to_string());
                assert!(
                    message.contains("/b/runtime.json")
                        && message.contains(&format!("`{field}`"))
                        && message.contains(reason),
                    "{field}={value}: {message:?}"
                );
            }
            // JSON has no NaN: the parser refuses it, naming the file.
            let nan = parse(&doc("NaN")).map(|_| ()).unwrap_err().to_string();
            assert!(nan.contains("/b/runtime.json"), "{nan}");
        }
        let config =
            parse(r#"{"restart": {"policy": "always", "backoff": 3600, "maxBackoff": 3600}}"#)
                .expect("valid");
        assert_eq!(config.restart.delay(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn restart_delay_doubles_up_to_the_cap() {
        let policy = RestartPolicy {
            policy: RestartMode::Always,
            backoff: 0.5,
            max_backoff: 3.0,
            reset_after: 10.0,
        };
        let delays: Vec<f64> = (0..5).map(|n| policy.delay(n).as_secs_f64()).collect();
        assert_eq!(delays, vec![0.5, 1.0, 2.0, 3.0, 3.0]);
        assert!(policy.wants_restart(0));
        let on_failure = RestartPolicy {
            policy: RestartMode::OnFailure,
            ..policy
        };
        assert!(!on_failure.wants_restart(0));
        assert!(on_failure.wants_restart(137));
    }
}
