//! Phase A of `runtime.json` (docs/linuxkit.md §10.1): mounts, mkdir and cgroups before the container is
//! created, and their undoing when a container stops (a guestkit addition; LinuxKit only unmounts the rootfs
//! of onboot containers).

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::mount_options::parse_mount_options;
use crate::runtime_json::RuntimeConfig;

/// Errors of Phase A.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// `mkdir -p` failed.
    #[error("creating directory {}", path.display())]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `mount(2)` failed (LinuxKit: `Failed to mount <source>`).
    #[error("mounting {source_name:?} on {} (type {fstype:?}, options {options:?})", target.display())]
    Mount {
        /// The mount source.
        source_name: String,
        /// The destination.
        target: PathBuf,
        /// The filesystem type.
        fstype: String,
        /// The options as written in runtime.json.
        options: Vec<String>,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// Resolves a runtime.json path: relative paths are inside `<bundle>/rootfs`.
pub fn resolve(bundle: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        bundle.join("rootfs").join(path)
    }
}

fn mkdir_all(path: &Path) -> Result<(), PrepareError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|source| PrepareError::Mkdir {
            path: path.to_owned(),
            source,
        })
}

fn non_empty(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

fn mount_one(bundle: &Path, m: &oci_spec::runtime::Mount) -> Result<(), PrepareError> {
    let target = resolve(bundle, m.destination());
    let options = m.options().clone().unwrap_or_default();
    mkdir_all(&target)?;
    for option in &options {
        if let Some(dir) = option
            .strip_prefix("upperdir=")
            .or_else(|| option.strip_prefix("workdir="))
        {
            mkdir_all(Path::new(dir))?;
        }
    }
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fstype = m.typ().clone().unwrap_or_default();
    let args = parse_mount_options(&options);
    let failed = |source_err| PrepareError::Mount {
        source_name: source.clone(),
        target: target.clone(),
        fstype: fstype.clone(),
        options: options.clone(),
        source: source_err,
    };
    let propagation_only = args.flags.is_empty() && source.is_empty() && fstype.is_empty();
    if !propagation_only {
        mount(
            non_empty(&source),
            &target,
            non_empty(&fstype),
            args.flags,
            non_empty(&args.data),
        )
        .map_err(failed)?;
        if args.is_readonly_bind() && !args.flags.contains(MsFlags::MS_REMOUNT) {
            let flags = args.flags | MsFlags::MS_REMOUNT;
            mount(None::<&str>, &target, None::<&str>, flags, None::<&str>).map_err(failed)?;
        }
    }
    if !args.propagation.is_empty() {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            args.propagation,
            None::<&str>,
        )
        .map_err(failed)?;
    }
    Ok(())
}

fn create_cgroups(cgroup_root: &Path, names: &[String]) {
    let parents: Vec<PathBuf> = if cgroup_root.join("cgroup.controllers").exists() {
        vec![cgroup_root.to_owned()]
    } else {
        std::fs::read_dir(cgroup_root)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    for name in names {
        for parent in &parents {
            if let Err(err) = mkdir_all(&parent.join(name)) {
                log::error!("cgroup {name}: {}", crate::describe(&err));
            }
        }
    }
}

/// Phase A: mounts in order (the first failure aborts), then mkdir, then cgroups (failures only logged).
pub fn prepare_filesystem(
    bundle: &Path,
    config: &RuntimeConfig,
    cgroup_root: &Path,
) -> Result<(), PrepareError> {
    for m in &config.mounts {
        mount_one(bundle, m)?;
    }
    for dir in &config.mkdir {
        mkdir_all(&resolve(bundle, Path::new(dir)))?;
    }
    create_cgroups(cgroup_root, &config.cgroups);
    Ok(())
}

/// Unmounts `<bundle>/rootfs` (what LinuxKit does after an onboot container). Errors are ignored.
pub fn unmount_rootfs(bundle: &Path) {
    let _ = umount2(&bundle.join("rootfs"), MntFlags::MNT_DETACH);
}

/// Undoes Phase A's mounts in reverse order (lazily, ignoring mounts that are already gone), so that a
/// restarted service does not stack a second overlay on the first. Entries that only change an existing
/// mount (remount, propagation) are skipped.
pub fn undo_mounts(bundle: &Path, config: &RuntimeConfig) {
    for m in config.mounts.iter().rev() {
        let args = parse_mount_options(m.options().as_deref().unwrap_or_default());
        let creates_mount = m.source().is_some() || m.typ().is_some();
        if !creates_mount || args.flags.contains(MsFlags::MS_REMOUNT) {
            continue;
        }
        let target = resolve(bundle, m.destination());
        if let Err(err) = umount2(&target, MntFlags::MNT_DETACH) {
            log::debug!("unmounting {}: {err}", target.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_inside_the_rootfs() {
        let bundle = Path::new("/containers/services/x");
        assert_eq!(
            resolve(bundle, Path::new("var/lib")),
            PathBuf::from("/containers/services/x/rootfs/var/lib")
        );
        assert_eq!(
            resolve(bundle, Path::new("/run/x")),
            PathBuf::from("/run/x")
        );
    }

    #[test]
    fn mkdir_entries_are_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RuntimeConfig {
            mkdir: vec![
                "a/b".into(),
                dir.path().join("abs").to_string_lossy().into_owned(),
            ],
            ..RuntimeConfig::default()
        };
        prepare_filesystem(dir.path(), &config, &dir.path().join("no-cgroups"))
            .expect("mkdir works");
        assert!(dir.path().join("rootfs/a/b").is_dir());
        assert!(dir.path().join("abs").is_dir());
    }
}
