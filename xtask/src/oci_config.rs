//! `config.json` (LinuxKit's ConfigToOCI, docs/linuxkit.md §9) and `runtime.json` (docs/linuxkit.md §10) for a container bundle.
//! Component types come from `oci-spec`; the top-level structs are ours so that the JSON has LinuxKit's
//! field order and Go's `omitempty` behaviour. Output is pretty-printed with a 4-space indent.

mod merge;
mod mounts;
mod process;

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxDevice, LinuxIdMapping, LinuxNamespace, LinuxResources};
use serde::Serialize;

use crate::blueprint::{BindNamespaces, ImageConfig, Interface, MountSpec};

pub use merge::merge_layers;
pub use mounts::{parse_bind, parse_tmpfs, rootfs_mounts};
pub use process::{Capabilities, Rlimit, User, parse_rlimit};

/// The OCI runtime-spec version written into `ociVersion`.
pub const OCI_VERSION: &str = "1.2.1";

/// What the image itself says (its OCI image config): the first layer of docs/linuxkit.md §9.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
}

/// What config generation needs to know about the whole build.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// Container name → uid/gid (docs/linuxkit.md §8.2).
    pub ids: BTreeMap<String, u32>,
    /// Volume name → read-only flag (docs/linuxkit.md §8.4).
    pub volumes: BTreeMap<String, bool>,
}

/// An OCI mount as Go's `specs.Mount` writes it (every field but `destination` left out when empty).
/// Ours rather than `oci-spec`'s because that one has no id mappings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<LinuxIdMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<LinuxIdMapping>,
}

/// `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub process: Process,
    pub root: Root,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub linux: Linux,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
    pub user: User,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Capabilities,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_new_privileges: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Root {
    pub path: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<LinuxIdMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<LinuxIdMapping>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    pub resources: LinuxResources,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroups_path: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<LinuxNamespace>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<LinuxDevice>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rootfs_propagation: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
}

/// `runtime.json`: every key is always present (docs/linuxkit.md §10).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuntimeJson {
    pub cgroups: Vec<String>,
    pub mounts: Vec<Mount>,
    pub mkdir: Vec<String>,
    pub interfaces: Vec<Interface>,
    #[serde(rename = "bindNS")]
    pub bind_ns: BindNsJson,
    pub namespace: String,
}

/// `runtime.json` `bindNS`, every namespace written (empty = none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BindNsJson {
    pub cgroup: String,
    pub ipc: String,
    pub mnt: String,
    pub net: String,
    pub pid: String,
    pub user: String,
    pub uts: String,
}

/// Why a container's configuration cannot be turned into `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("container {container:?}: {problem}")]
    Invalid { container: String, problem: String },
    #[error("container {container:?}: cannot serialise {file}")]
    Serialise {
        container: String,
        file: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Builds `config.json` from the image defaults and the merged configuration (`merge_layers(label, yaml)`).
pub fn config_json(
    container: &str,
    image: &ImageDefaults,
    config: &ImageConfig,
    ctx: &BuildContext,
) -> Result<Spec, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        container: container.to_string(),
        problem,
    };
    let readonly = config.readonly.unwrap_or(false);
    let mounts = mounts::container_mounts(config, readonly, &ctx.volumes).map_err(invalid)?;
    let process = process::process(image, config, &ctx.ids).map_err(invalid)?;
    let (devices, resources) = process::devices(config).map_err(invalid)?;
    Ok(Spec {
        oci_version: OCI_VERSION.to_string(),
        process,
        root: Root {
            path: "rootfs".to_string(),
            readonly,
        },
        hostname: config.hostname.clone().unwrap_or_default(),
        mounts,
        annotations: config.annotations.clone().unwrap_or_default(),
        linux: Linux {
            uid_mappings: config.uid_mappings.clone().unwrap_or_default(),
            gid_mappings: config.gid_mappings.clone().unwrap_or_default(),
            sysctl: config.sysctl.clone().unwrap_or_default(),
            resources,
            cgroups_path: config.cgroups_path.clone().unwrap_or_default(),
            namespaces: process::namespaces(config),
            devices,
            rootfs_propagation: config.rootfs_propagation.clone().unwrap_or_default(),
            masked_paths: config.masked_paths.clone().unwrap_or_default(),
            readonly_paths: config.readonly_paths.clone().unwrap_or_default(),
        },
    })
}

/// Builds `runtime.json`: the rootfs mounts (see [`rootfs_mounts`]) come before the user's `runtime.mounts`.
pub fn runtime_json(config: &ImageConfig, rootfs_mounts: Vec<Mount>) -> RuntimeJson {
    let runtime = config.runtime.clone().unwrap_or_default();
    let mut all_mounts = rootfs_mounts;
    all_mounts.extend(runtime.mounts.unwrap_or_default().iter().map(runtime_mount));
    let BindNamespaces {
        cgroup,
        ipc,
        mnt,
        net,
        pid,
        user,
        uts,
    } = runtime.bind_ns;
    RuntimeJson {
        cgroups: runtime.cgroups.unwrap_or_default(),
        mounts: all_mounts,
        mkdir: runtime.mkdir.unwrap_or_default(),
        interfaces: runtime.interfaces.unwrap_or_default(),
        bind_ns: BindNsJson {
            cgroup: cgroup.unwrap_or_default(),
            ipc: ipc.unwrap_or_default(),
            mnt: mnt.unwrap_or_default(),
            net: net.unwrap_or_default(),
            pid: pid.unwrap_or_default(),
            user: user.unwrap_or_default(),
            uts: uts.unwrap_or_default(),
        },
        namespace: runtime.namespace.unwrap_or_default(),
    }
}

/// A user `runtime.mounts` entry, passed through as written (id mappings included).
fn runtime_mount(spec: &MountSpec) -> Mount {
    Mount {
        uid_mappings: spec.uidmappings.clone().unwrap_or_default(),
        gid_mappings: spec.gidmappings.clone().unwrap_or_default(),
        ..mounts::mount(
            spec.destination.as_deref().unwrap_or(""),
            spec.kind.as_deref(),
            spec.source.as_deref(),
            spec.options.clone().unwrap_or_default(),
        )
    }
}

/// Serialises like Go's `json.MarshalIndent(v, "", "    ")`, including its HTML-safe escaping of `<`, `>`, `&`.
pub fn to_pretty_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser)?;
    let text = String::from_utf8_lossy(&out)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    Ok(text.into_bytes())
}

/// `config.json` and `runtime.json` bytes for one bundle.
pub fn bundle_files(
    container: &str,
    spec: &Spec,
    runtime: &RuntimeJson,
) -> Result<(Vec<u8>, Vec<u8>), ConfigError> {
    let err = |file: &'static str| {
        move |source| ConfigError::Serialise {
            container: container.to_string(),
            file,
            source,
        }
    };
    Ok((
        to_pretty_json(spec).map_err(err("config.json"))?,
        to_pretty_json(runtime).map_err(err("runtime.json"))?,
    ))
}

#[cfg(test)]
mod tests;
