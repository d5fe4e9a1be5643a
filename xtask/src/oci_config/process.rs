//! `process` (args, env, cwd, user, capabilities, rlimits), namespaces and devices of `config.json` (docs/linuxkit.md §9).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace, LinuxNamespaceType,
    LinuxResources,
};
use serde::Serialize;

use super::{ImageDefaults, Process};
use crate::blueprint::validate::{parse_mode, resolve_id};
use crate::blueprint::{ALL_CAPABILITIES, ImageConfig, is_known_capability};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bounding: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effective: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inheritable: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permitted: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ambient: Vec<String>,
}

/// A POSIX rlimit as written in `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

const RLIMITS: &[&str] = &[
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

/// Parses `name,soft,hard` (`RLIMIT_` prefix optional, any case; `unlimited` accepted).
pub fn parse_rlimit(entry: &str) -> Result<Rlimit, String> {
    let parts: Vec<&str> = entry.splitn(3, ',').collect();
    let [name, soft, hard] = parts.as_slice() else {
        return Err(format!(
            "cannot parse rlimit {entry:?}: expected \"name,soft,hard\""
        ));
    };
    let mut kind = name.trim().to_ascii_uppercase();
    if !kind.starts_with("RLIMIT_") {
        kind = format!("RLIMIT_{kind}");
    }
    if !RLIMITS.contains(&kind.as_str()) {
        return Err(format!("unknown rlimit {:?} in {entry:?}", name.trim()));
    }
    let value = |text: &str| -> Result<u64, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("unlimited") {
            return Ok(u64::MAX);
        }
        text.parse()
            .map_err(|_| format!("cannot parse {text:?} in rlimit {entry:?} as a number"))
    };
    Ok(Rlimit {
        kind,
        soft: value(soft)?,
        hard: value(hard)?,
    })
}

pub(crate) fn process(
    image: &ImageDefaults,
    config: &ImageConfig,
    ids: &BTreeMap<String, u32>,
) -> Result<Process, String> {
    let args = match &config.command {
        Some(command) => command.clone(),
        None => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    let cwd = [config.cwd.as_deref(), Some(image.working_dir.as_str())]
        .into_iter()
        .flatten()
        .find(|c| !c.is_empty())
        .unwrap_or("/")
        .to_string();
    let rlimits = config
        .rlimits
        .iter()
        .flatten()
        .map(|r| parse_rlimit(r))
        .collect::<Result<_, _>>()?;
    Ok(Process {
        terminal: false,
        user: user(config, ids)?,
        args,
        env: config.env.clone().unwrap_or_else(|| image.env.clone()),
        cwd,
        capabilities: capabilities(config)?,
        rlimits,
        no_new_privileges: config.no_new_privileges.unwrap_or(false),
        oom_score_adj: config.oom_score_adj,
    })
}

fn user(config: &ImageConfig, ids: &BTreeMap<String, u32>) -> Result<User, String> {
    let one = |id: &Option<crate::blueprint::Id>, key: &str| match id {
        Some(id) => resolve_id(id, ids).map_err(|p| format!("key {key:?}: {p}")),
        None => Ok(0),
    };
    let additional_gids = config
        .additional_gids
        .iter()
        .flatten()
        .map(|id| resolve_id(id, ids).map_err(|p| format!("key \"additionalGids\": {p}")))
        .collect::<Result<_, _>>()?;
    Ok(User {
        uid: one(&config.uid, "uid")?,
        gid: one(&config.gid, "gid")?,
        additional_gids,
    })
}

/// A lone `all`/`none` expands; everything else must be a known `CAP_` name.
fn expand_caps(list: &[String], key: &str) -> Result<Vec<String>, String> {
    if let [only] = list {
        match only.to_ascii_lowercase().as_str() {
            "none" => return Ok(Vec::new()),
            "all" => return Ok(ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
            _ => {}
        }
    }
    match list.iter().find(|c| !is_known_capability(c)) {
        Some(bad) => Err(format!("key {key:?}: unknown capability {bad:?}")),
        None => Ok(list.to_vec()),
    }
}

fn capabilities(config: &ImageConfig) -> Result<Capabilities, String> {
    let effective = expand_caps(
        config.capabilities.as_deref().unwrap_or_default(),
        "capabilities",
    )?;
    let ambient = expand_caps(config.ambient.as_deref().unwrap_or_default(), "ambient")?;
    let bounding: Vec<String> = effective
        .iter()
        .chain(&ambient)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Capabilities {
        inheritable: bounding.clone(),
        permitted: bounding.clone(),
        bounding,
        effective,
        ambient,
    })
}

/// `net`, `ipc`, `uts`, `userns`: unset/`root`/`host` = no entry, `new` (or `none` for net) = new, else a
/// path to join. `pid` is new by default. A mount namespace is always new.
pub(crate) fn namespaces(config: &ImageConfig) -> Vec<LinuxNamespace> {
    let mut out = Vec::new();
    let optional = [
        (&config.net, LinuxNamespaceType::Network),
        (&config.ipc, LinuxNamespaceType::Ipc),
        (&config.uts, LinuxNamespaceType::Uts),
    ];
    let mut push = |value: &str, typ: LinuxNamespaceType| {
        if value == "host" || value == "root" {
            return;
        }
        let fresh = value.is_empty()
            || value == "new"
            || (value == "none" && typ == LinuxNamespaceType::Network);
        let mut ns = LinuxNamespace::default();
        ns.set_typ(typ);
        ns.set_path((!fresh).then(|| PathBuf::from(value)));
        out.push(ns);
    };
    for (value, typ) in optional {
        push(
            value.as_deref().filter(|v| !v.is_empty()).unwrap_or("root"),
            typ,
        );
    }
    push(config.pid.as_deref().unwrap_or(""), LinuxNamespaceType::Pid);
    push(
        config
            .userns
            .as_deref()
            .filter(|v| !v.is_empty())
            .unwrap_or("root"),
        LinuxNamespaceType::User,
    );
    push("new", LinuxNamespaceType::Mount);
    out
}

fn device_type(kind: &str) -> Result<LinuxDeviceType, String> {
    match kind {
        "a" => Ok(LinuxDeviceType::A),
        "b" => Ok(LinuxDeviceType::B),
        "c" => Ok(LinuxDeviceType::C),
        "u" => Ok(LinuxDeviceType::U),
        "p" => Ok(LinuxDeviceType::P),
        other => Err(format!("key \"devices\": unknown device type {other:?}")),
    }
}

/// `linux.devices` and `linux.resources` (with the device allow rules appended).
pub(crate) fn devices(config: &ImageConfig) -> Result<(Vec<LinuxDevice>, LinuxResources), String> {
    let mut resources = config.resources.clone().unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    let mut devices = Vec::new();
    for device in config.devices.iter().flatten() {
        let typ = device_type(&device.kind)?;
        let mut rule = LinuxDeviceCgroup::default();
        rule.set_allow(true);
        rule.set_typ(Some(typ));
        rule.set_access(Some("rwm".to_string()));
        if device.path != "all" {
            let mode = parse_mode(device.mode.as_deref().unwrap_or(""))
                .map_err(|p| format!("key \"devices\": device {:?}: {p}", device.path))?;
            let mut dev = LinuxDevice::default();
            dev.set_path(PathBuf::from(&device.path));
            dev.set_typ(typ);
            dev.set_major(device.major);
            dev.set_minor(device.minor);
            dev.set_file_mode(Some(mode));
            devices.push(dev);
            rule.set_major(Some(device.major));
            rule.set_minor(Some(device.minor));
        }
        rules.push(rule);
    }
    if !rules.is_empty() {
        resources.set_devices(Some(rules));
    }
    Ok((devices, resources))
}
