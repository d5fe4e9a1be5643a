//! Volumes (`/etc/init.d/005-volumes`, docs/linuxkit.md §11.7): an overlay of `lower` with a tmpfs upper
//! layer mounted on `merged` for each `/containers/volumes/<name>`.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

use crate::services::bundle_names;

/// Errors mounting one volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// `lower/` or `merged/` is missing.
    #[error("volume {name}: {} is missing", path.display())]
    Missing {
        /// The volume.
        name: String,
        /// The missing directory.
        path: PathBuf,
    },
    /// mkdir of the upper or work directory failed.
    #[error("volume {name}: creating {}", path.display())]
    Mkdir {
        /// The volume.
        name: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A mount failed.
    #[error("volume {name}: mounting {fstype} on {}", target.display())]
    Mount {
        /// The volume.
        name: String,
        /// tmpfs or overlay.
        fstype: &'static str,
        /// The mount point.
        target: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// The overlay options of a read-write volume.
pub fn overlay_options(volume: &Path) -> String {
    let lower = volume.join("lower");
    let upper = volume.join("tmp/upper");
    let work = volume.join("tmp/work");
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    )
}

fn mount_volume(dir: &Path, name: &str) -> Result<(), VolumeError> {
    let volume = dir.join(name);
    for sub in ["lower", "merged"] {
        if !volume.join(sub).is_dir() {
            return Err(VolumeError::Missing {
                name: name.into(),
                path: volume.join(sub),
            });
        }
    }
    let tmp = volume.join("tmp");
    let writable = tmp.is_dir();
    let failed = |fstype, target: &Path| {
        let (name, target) = (name.to_owned(), target.to_owned());
        move |source| VolumeError::Mount {
            name,
            fstype,
            target,
            source,
        }
    };
    if writable {
        mount(
            Some("tmpfs"),
            &tmp,
            Some("tmpfs"),
            MsFlags::MS_RELATIME,
            None::<&str>,
        )
        .map_err(failed("tmpfs", &tmp))?;
        for sub in ["upper", "work"] {
            let path = tmp.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| VolumeError::Mkdir {
                name: name.into(),
                path,
                source,
            })?;
        }
        log::info!("Volume {name} is read-write");
    } else {
        log::info!("Volume {name} is read-only");
    }
    let merged = volume.join("merged");
    if writable {
        let data = overlay_options(&volume);
        return mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::MS_RELATIME,
            Some(data.as_str()),
        )
        .map_err(failed("overlay", &merged));
    }
    // overlayfs needs an upper layer or two lower ones; a read-only bind of `lower` is the same view.
    let lower = volume.join("lower");
    mount(
        Some(&lower),
        &merged,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(failed("bind", &merged))?;
    let readonly = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(None::<&str>, &merged, None::<&str>, readonly, None::<&str>)
        .map_err(failed("bind", &merged))
}

/// Mounts every volume; returns 1 if the directory cannot be read or any volume failed, else 0. An image
/// without volumes has no `/containers/volumes`: that is 0 (LinuxKit returns 1, docs/linuxkit.md §18.19, which made init
/// report a failed `005-volumes` hook on every boot).
pub fn mount_volumes(dir: &Path) -> i32 {
    match std::fs::read_dir(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(err) => {
            log::error!("reading {}: {err}", dir.display());
            return 1;
        }
        Ok(_) => {}
    }
    let mut status = 0;
    for name in bundle_names(dir) {
        if let Err(err) = mount_volume(dir, &name) {
            log::error!("{}", crate::describe(&err));
            status = 1;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_of_a_volume() {
        let data = overlay_options(Path::new("/containers/volumes/v"));
        assert_eq!(
            data,
            "lowerdir=/containers/volumes/v/lower,upperdir=/containers/volumes/v/tmp/upper,workdir=/containers/volumes/v/tmp/work"
        );
    }

    #[test]
    fn no_volumes_directory_is_success() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(mount_volumes(&dir.path().join("volumes")), 0);
    }

    #[test]
    fn missing_lower_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("v/merged")).expect("mkdir");
        let err = mount_volume(dir.path(), "v").expect_err("no lower");
        assert!(err.to_string().contains("lower"), "{err}");
    }
}
