//! Checks of a parsed blueprint that serde cannot express: names, capability lists, octal modes, binds,
//! tmpfs and rlimit syntax, uid/gid names, and the `files:` content rules.

use std::collections::{BTreeMap, BTreeSet};

use super::capability::check_list;
use super::{Blueprint, BlueprintError, FileEntry, Id, ImageConfig, ImageEntry, Volume};
use crate::oci_config::{parse_bind, parse_rlimit, parse_tmpfs};

pub(crate) fn validate(bp: &Blueprint) -> Result<(), BlueprintError> {
    if let Some(kernel) = &bp.kernel {
        check_ref(&kernel.image, "kernel", "image")?;
    }
    for (i, image) in bp.init.iter().enumerate() {
        check_ref(image, &format!("init[{i}]"), "image")?;
    }
    let ids = bp.id_map();
    for (section, entries) in [
        ("onboot", &bp.onboot),
        ("onshutdown", &bp.onshutdown),
        ("services", &bp.services),
    ] {
        for (i, entry) in entries.iter().enumerate() {
            let location = format!("{section}[{i}] (name {:?})", entry.name);
            check_entry(entry, &location, &ids)?;
        }
    }
    check_unique(
        bp.services.iter().map(|s| s.name.as_str()),
        "services",
        "service",
    )?;
    check_volumes(&bp.volumes)?;
    for (i, file) in bp.files.iter().enumerate() {
        check_file(file, &format!("files[{i}] (path {:?})", file.path), &ids)?;
    }
    Ok(())
}

fn check_ref(image: &str, location: &str, key: &str) -> Result<(), BlueprintError> {
    if image.is_empty() {
        return Err(BlueprintError::invalid(
            location,
            format!("missing required key {key:?}"),
        ));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(BlueprintError::invalid(
            location,
            format!("key {key:?}: invalid image reference {image:?}"),
        ));
    }
    Ok(())
}

fn check_entry(
    entry: &ImageEntry,
    location: &str,
    ids: &BTreeMap<String, u32>,
) -> Result<(), BlueprintError> {
    check_ref(&entry.image, location, "image")?;
    if !valid_name(&entry.name) {
        return Err(BlueprintError::invalid(
            location,
            format!(
                "key \"name\": {:?} is not a valid container name (no '/', not '.' or '..')",
                entry.name
            ),
        ));
    }
    check_config(&entry.config, location, ids)
}

/// Checks one configuration layer (a YAML entry or an image label).
pub(crate) fn check_config(
    config: &ImageConfig,
    location: &str,
    ids: &BTreeMap<String, u32>,
) -> Result<(), BlueprintError> {
    let lists = [
        ("capabilities", &config.capabilities),
        ("capabilities.add", &config.capabilities_add),
        ("ambient", &config.ambient),
    ];
    for (key, list) in lists {
        if let Some(list) = list {
            check_list(list)
                .map_err(|p| BlueprintError::invalid(location, format!("key {key:?}: {p}")))?;
        }
    }
    let field = |key: &str, problem: String| {
        BlueprintError::invalid(location, format!("key {key:?}: {problem}"))
    };
    for bind in config.binds.iter().chain(&config.binds_add).flatten() {
        parse_bind(bind).map_err(|p| field("binds", p))?;
    }
    for tmpfs in config.tmpfs.iter().flatten() {
        parse_tmpfs(tmpfs).map_err(|p| field("tmpfs", p))?;
    }
    for rlimit in config.rlimits.iter().flatten() {
        parse_rlimit(rlimit).map_err(|p| field("rlimits", p))?;
    }
    for device in config.devices.iter().flatten() {
        if device.path != "all" {
            let mode = device.mode.as_deref().unwrap_or("");
            parse_mode(mode)
                .map_err(|p| field("devices", format!("device {:?}: {p}", device.path)))?;
        }
        if !matches!(device.kind.as_str(), "a" | "b" | "c" | "u" | "p") {
            return Err(field(
                "devices",
                format!("device {:?}: unknown type {:?}", device.path, device.kind),
            ));
        }
    }
    check_ids(config, ids).map_err(|p| BlueprintError::invalid(location, p))
}

fn check_ids(config: &ImageConfig, ids: &BTreeMap<String, u32>) -> Result<(), String> {
    let singles = [("uid", &config.uid), ("gid", &config.gid)];
    for (key, id) in singles {
        if let Some(id) = id {
            resolve_id(id, ids).map_err(|p| format!("key {key:?}: {p}"))?;
        }
    }
    for id in config.additional_gids.iter().flatten() {
        resolve_id(id, ids).map_err(|p| format!("key \"additionalGids\": {p}"))?;
    }
    Ok(())
}

/// A uid/gid as a number: numbers as they are, `root` and `""` are 0, other names come from the id map.
pub fn resolve_id(id: &Id, ids: &BTreeMap<String, u32>) -> Result<u32, String> {
    match id {
        Id::Number(n) => Ok(*n),
        Id::Name(name) if name.is_empty() || name == "root" => Ok(0),
        Id::Name(name) => ids.get(name).copied().ok_or_else(|| {
            format!("cannot find id {name:?}: not a number, \"root\" or a container name")
        }),
    }
}

/// Parses an octal mode such as `0644` (LinuxKit: `strconv.ParseInt(mode, 8, 32)`).
pub fn parse_mode(mode: &str) -> Result<u32, String> {
    if mode.is_empty() {
        return Err("missing octal mode".to_string());
    }
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("mode {mode:?} is not an octal permission value like \"0644\""))
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn check_unique<'a>(
    names: impl Iterator<Item = &'a str>,
    section: &str,
    what: &str,
) -> Result<(), BlueprintError> {
    let mut seen = BTreeSet::new();
    for (i, name) in names.enumerate() {
        if !seen.insert(name) {
            return Err(BlueprintError::invalid(
                format!("{section}[{i}] (name {name:?})"),
                format!("duplicate {what} name {name:?} (names in {section} must be unique)"),
            ));
        }
    }
    Ok(())
}

fn check_volumes(volumes: &[Volume]) -> Result<(), BlueprintError> {
    for (i, volume) in volumes.iter().enumerate() {
        let location = format!("volumes[{i}] (name {:?})", volume.name);
        let ok = volume
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if volume.name.is_empty() || !ok {
            return Err(BlueprintError::invalid(
                location,
                "key \"name\": must match ^[a-z0-9_-]+$",
            ));
        }
        if let Some(image) = &volume.image {
            check_ref(image, &location, "image")?;
        }
        if let Some(format) = volume
            .format
            .as_deref()
            .filter(|f| !["", "oci", "filesystem"].contains(f))
        {
            return Err(BlueprintError::invalid(
                location,
                format!("key \"format\": unknown format {format:?} (oci or filesystem)"),
            ));
        }
    }
    check_unique(volumes.iter().map(|v| v.name.as_str()), "volumes", "volume")
}

fn check_file(
    file: &FileEntry,
    location: &str,
    ids: &BTreeMap<String, u32>,
) -> Result<(), BlueprintError> {
    let bad = |problem: &str| BlueprintError::invalid(location, problem);
    if file.path.trim_start_matches('/').is_empty() {
        return Err(bad("missing required key \"path\""));
    }
    if file.path.split('/').any(|part| part == "..") {
        return Err(bad("key \"path\": \"..\" is not allowed"));
    }
    if let Some(mode) = &file.mode {
        parse_mode(mode)
            .map_err(|p| BlueprintError::invalid(location, format!("key \"mode\": {p}")))?;
    }
    for (key, id) in [("uid", &file.uid), ("gid", &file.gid)] {
        if let Some(id) = id {
            resolve_id(id, ids)
                .map_err(|p| BlueprintError::invalid(location, format!("key {key:?}: {p}")))?;
        }
    }
    let sources = [
        file.contents.is_some(),
        file.source.is_some(),
        file.metadata.is_some(),
    ];
    let count = sources.iter().filter(|s| **s).count();
    if file.directory && (count > 0 || file.symlink.is_some()) {
        return Err(bad(
            "a directory cannot have contents, source, metadata or symlink",
        ));
    }
    if file.symlink.is_some() && count > 0 {
        return Err(bad("a symlink cannot have contents, source or metadata"));
    }
    if !file.directory && file.symlink.is_none() && count != 1 {
        return Err(bad(
            "exactly one of contents, source or metadata is required for a file",
        ));
    }
    if let Some(md) = file
        .metadata
        .as_deref()
        .filter(|m| *m != "yaml" && *m != "json")
    {
        return Err(BlueprintError::invalid(
            location,
            format!("key \"metadata\": unknown type {md:?} (yaml or json)"),
        ));
    }
    Ok(())
}
