//! The container mount list (docs/linuxkit.md §9: defaults, tmpfs, binds, full mounts, keyed by destination, sorted) and the
//! rootfs mounts the builder prepends to `runtime.json` (docs/linuxkit.md §8.3).

use std::collections::BTreeMap;

use super::Mount;

use crate::blueprint::{ImageConfig, MountSpec};

/// An OCI mount; empty fields are left out, as Go's `omitempty` does.
pub(crate) fn mount(
    destination: &str,
    kind: Option<&str>,
    source: Option<&str>,
    options: Vec<String>,
) -> Mount {
    Mount {
        destination: destination.to_string(),
        kind: kind.unwrap_or_default().to_string(),
        source: source.unwrap_or_default().to_string(),
        options,
        ..Mount::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Parses a `tmpfs:` entry `/dest[:opt,opt]` into (destination, options).
pub fn parse_tmpfs(entry: &str) -> Result<(String, Vec<String>), String> {
    let parts: Vec<&str> = entry.split(':').collect();
    match parts.as_slice() {
        [dest] => Ok((dest.to_string(), Vec::new())),
        [dest, opts] => Ok((
            dest.to_string(),
            opts.split(',').map(str::to_string).collect(),
        )),
        _ => Err(format!("cannot parse tmpfs {entry:?}: too many ':'")),
    }
}

/// Parses a `binds:` entry `src:dst[:opts]` into (source, destination, options); the default options are
/// `rw,rbind,rshared`, given options get `rbind` appended.
pub fn parse_bind(entry: &str) -> Result<(String, String, Vec<String>), String> {
    let parts: Vec<&str> = entry.split(':').collect();
    match parts.as_slice() {
        [src, dst] => Ok((
            src.to_string(),
            dst.to_string(),
            strings(&["rw", "rbind", "rshared"]),
        )),
        [src, dst, opts] => {
            let mut options: Vec<String> = opts.split(',').map(str::to_string).collect();
            options.push("rbind".to_string());
            Ok((src.to_string(), dst.to_string(), options))
        }
        [_] => Err(format!("cannot parse bind {entry:?}: missing ':'")),
        _ => Err(format!("cannot parse bind {entry:?}: too many ':'")),
    }
}

fn default_mounts(readonly: bool) -> BTreeMap<String, Mount> {
    let mut dev = strings(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
    let mut sys = strings(&["nosuid", "noexec", "nodev"]);
    if readonly {
        dev.push("ro".to_string());
        sys.push("ro".to_string());
    }
    let list = [
        (
            "/proc",
            "proc",
            strings(&["nosuid", "nodev", "noexec", "relatime"]),
        ),
        ("/dev", "tmpfs", dev),
        (
            "/dev/pts",
            "devpts",
            strings(&[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ]),
        ),
        ("/sys", "sysfs", sys),
        (
            "/sys/fs/cgroup",
            "cgroup",
            strings(&["nosuid", "noexec", "nodev", "relatime", "ro"]),
        ),
    ];
    list.into_iter()
        .map(|(dest, kind, opts)| (dest.to_string(), mount(dest, Some(kind), Some(kind), opts)))
        .collect()
}

/// A bind or mount source that is not an absolute path names a volume: it becomes the volume's merged
/// directory, and a read-only volume must be bound `ro`.
fn volume_source(
    source: &str,
    options: &[String],
    volumes: &BTreeMap<String, bool>,
) -> Result<String, String> {
    if source.starts_with('/') || source.is_empty() {
        return Ok(source.to_string());
    }
    let Some(readonly) = volumes.get(source) else {
        return Err(format!(
            "bind source {source:?} is neither an absolute path nor a volume name"
        ));
    };
    if *readonly && !options.iter().any(|o| o == "ro") {
        return Err(format!(
            "volume {source:?} is read-only, but attempting to write into container read-write"
        ));
    }
    Ok(format!("/containers/volumes/{source}/merged"))
}

/// The final `mounts` list of `config.json`, sorted by destination.
pub(crate) fn container_mounts(
    config: &ImageConfig,
    readonly: bool,
    volumes: &BTreeMap<String, bool>,
) -> Result<Vec<Mount>, String> {
    let mut by_dest = default_mounts(readonly);
    for entry in config.tmpfs.iter().flatten() {
        let (dest, opts) = parse_tmpfs(entry)?;
        by_dest.insert(
            dest.clone(),
            mount(&dest, Some("tmpfs"), Some("tmpfs"), opts),
        );
    }
    for entry in config.binds.iter().flatten() {
        let (src, dest, opts) = parse_bind(entry)?;
        let src = volume_source(&src, &opts, volumes)?;
        by_dest.insert(dest.clone(), mount(&dest, Some("bind"), Some(&src), opts));
    }
    for spec in config.mounts.iter().flatten() {
        let m = full_mount(spec, volumes)?;
        by_dest.insert(m.destination.clone(), m);
    }
    Ok(by_dest.into_values().collect())
}

fn full_mount(spec: &MountSpec, volumes: &BTreeMap<String, bool>) -> Result<Mount, String> {
    let source = spec.source.clone().unwrap_or_default();
    let dest = spec.destination.clone().unwrap_or_default();
    let mut kind = spec.kind.clone().unwrap_or_default();
    if kind.is_empty()
        && matches!(
            source.as_str(),
            "mqueue" | "devpts" | "proc" | "sysfs" | "cgroup"
        )
    {
        kind = source.clone();
    }
    if kind.is_empty() && dest == "/dev" {
        kind = "tmpfs".to_string();
    }
    if kind.is_empty() {
        return Err(format!("mount for destination {dest:?} is missing type"));
    }
    let options = spec.options.clone().unwrap_or_default();
    let source = if source.is_empty() {
        kind.clone()
    } else if kind == "bind" {
        volume_source(&source, &options, volumes)?
    } else {
        source
    };
    let dest = if dest.is_empty() {
        default_mountpoint(&kind).to_string()
    } else {
        dest
    };
    if dest.is_empty() {
        return Err(format!("mount type {kind:?} is missing destination"));
    }
    Ok(mount(&dest, Some(&kind), Some(&source), options))
}

fn default_mountpoint(kind: &str) -> &'static str {
    match kind {
        "proc" => "/proc",
        "devpts" => "/dev/pts",
        "sysfs" => "/sys",
        "cgroup" => "/sys/fs/cgroup",
        "mqueue" => "/dev/mqueue",
        _ => "",
    }
}

/// The mounts the builder prepends to `runtime.json` (docs/linuxkit.md §8.3). `bundle` is the bundle path relative to `/`
/// (e.g. `containers/onboot/000-x`); `root` is where the image filesystem is (its own `rootfs`/`lower`, or
/// the first duplicate's).
pub fn rootfs_mounts(bundle: &str, root: &str, readonly: bool) -> Vec<Mount> {
    if readonly {
        return vec![mount(
            &format!("/{bundle}/rootfs"),
            None,
            Some(&format!("/{root}")),
            strings(&["bind"]),
        )];
    }
    let tmp = format!("/{bundle}/tmp");
    let overlay = vec![
        format!("lowerdir=/{root}"),
        format!("upperdir={tmp}/upper"),
        format!("workdir={tmp}/work"),
    ];
    vec![
        mount(&tmp, Some("tmpfs"), Some("tmpfs"), Vec::new()),
        mount(&tmp, None, None, strings(&["remount", "private"])),
        mount(
            &format!("/{bundle}/rootfs"),
            Some("overlay"),
            Some("overlay"),
            overlay,
        ),
    ]
}
