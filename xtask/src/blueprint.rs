//! The LinuxKit-style YAML blueprint: a serde model and a parser that names the entry and the field of every
//! problem (`services[1] (name "getty"): unknown key "bindz"`). Parsing never panics.

mod capability;
mod entry;
pub(crate) mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxResources};
use serde::{Deserialize, Serialize};

pub use capability::{ALL_CAPABILITIES, is_known_capability};
pub use entry::parse_image_config;

/// A whole blueprint (LinuxKit's `moby.Moby`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Blueprint {
    pub kernel: Option<Kernel>,
    pub init: Vec<String>,
    pub onboot: Vec<ImageEntry>,
    pub onshutdown: Vec<ImageEntry>,
    pub services: Vec<ImageEntry>,
    pub files: Vec<FileEntry>,
    pub volumes: Vec<Volume>,
}

/// `kernel:` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cmdline: String,
    /// Name of the boot file inside the kernel image (default `kernel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// Name of the modules tar inside the kernel image (default `kernel.tar`, `none` = no tar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar: Option<String>,
    /// Name of the microcode cpio inside the kernel image (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ucode: Option<String>,
}

/// One entry of `onboot`, `onshutdown` or `services` (LinuxKit's `moby.Image`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageEntry {
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<String>>,
    #[serde(flatten)]
    pub config: ImageConfig,
}

/// A uid or gid: a number, or a container name looked up in the id map (`root` and `""` mean 0).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Id {
    Number(u32),
    Name(String),
}

/// The configuration part of an image entry; also what the `org.mobyproject.config` label holds.
/// `None` means "not set" so that layers (label, then YAML) can be merged as LinuxKit does.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(rename = "capabilities.add", skip_serializing_if = "Option::is_none")]
    pub capabilities_add: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ambient: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<MountSpec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binds: Option<Vec<String>>,
    #[serde(rename = "binds.add", skip_serializing_if = "Option::is_none")]
    pub binds_add: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<Device>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_gids: Option<Vec<Id>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_new_privileges: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<LinuxResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysctl: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimits: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid_mappings: Option<Vec<LinuxIdMapping>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid_mappings: Option<Vec<LinuxIdMapping>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeConfig>,
}

/// A full mount entry (`mounts:`, `runtime.mounts:`); every field optional as in LinuxKit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// Accepted as LinuxKit does; kept in `runtime.json`, dropped from `config.json` (as ConfigToOCI does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uidmappings: Option<Vec<LinuxIdMapping>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gidmappings: Option<Vec<LinuxIdMapping>>,
}

/// A `devices:` entry. `path: all` allows a whole device type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// The `runtime:` section, carried into `runtime.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<MountSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mkdir: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<Interface>>,
    #[serde(default, rename = "bindNS")]
    pub bind_ns: BindNamespaces,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `runtime.bindNS`: where to bind-mount the container's namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BindNamespaces {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mnt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
}

/// `runtime.interfaces[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Interface {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub add: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer: String,
    #[serde(default)]
    pub create_in_root: bool,
}

/// A `files:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub directory: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<Id>,
}

/// A `volumes:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<String>>,
}

/// Why a blueprint could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum BlueprintError {
    #[error("cannot read blueprint {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("blueprint is not valid YAML")]
    Syntax {
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{location}: {problem}")]
    Invalid { location: String, problem: String },
    #[error("blueprint {path}")]
    File {
        path: PathBuf,
        #[source]
        source: Box<BlueprintError>,
    },
}

impl BlueprintError {
    pub(crate) fn invalid(location: impl Into<String>, problem: impl Into<String>) -> Self {
        BlueprintError::Invalid {
            location: location.into(),
            problem: problem.into(),
        }
    }
}

impl Blueprint {
    /// Reads and validates a blueprint file; problems are reported as [`BlueprintError::File`] naming it.
    pub fn from_path(path: &Path) -> Result<Blueprint, BlueprintError> {
        let text = std::fs::read_to_string(path).map_err(|source| BlueprintError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        text.parse().map_err(|e| BlueprintError::File {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// The container-name id map: each container gets a uid/gid starting at 100, in the order onboot,
    /// onshutdown, services (as in LinuxKit, a later duplicate name takes the later number).
    pub fn id_map(&self) -> BTreeMap<String, u32> {
        let mut map = BTreeMap::new();
        let all = self
            .onboot
            .iter()
            .chain(&self.onshutdown)
            .chain(&self.services);
        for (n, entry) in (100u32..).zip(all) {
            map.insert(entry.name.clone(), n);
        }
        map
    }
}

impl std::str::FromStr for Blueprint {
    type Err = BlueprintError;

    fn from_str(text: &str) -> Result<Blueprint, BlueprintError> {
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|source| BlueprintError::Syntax { source })?;
        // `<<: *anchor` merge keys, which LinuxKit's YAML library applies.
        value
            .apply_merge()
            .map_err(|source| BlueprintError::Syntax { source })?;
        let bp = entry::parse_blueprint(value)?;
        validate::validate(&bp)?;
        Ok(bp)
    }
}

#[cfg(test)]
mod tests;
