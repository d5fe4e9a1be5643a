//! Another path for the config root: `--link /var/config` makes LinuxKit's pre-2018 location resolve to
//! `/run/config` with a symlink, so old blueprints (services binding `/var/config/...`) read the same
//! data without a second copy. LinuxKit moved metadata to `/run/config` because a persistent disk on
//! `/var` hid it; a symlink there costs nothing and always points at this boot's data.
//!
//! Nothing is ever deleted to make room except an empty directory or an older symlink.

use std::io;
use std::path::{Path, PathBuf};

/// Why the alias could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AliasError {
    /// Something that is not ours is in the way.
    #[error("{path} exists and is not empty; leaving it alone (no link to {target})")]
    Occupied { path: PathBuf, target: PathBuf },
    /// A filesystem operation failed.
    #[error("linking {path} to {target}")]
    Io {
        path: PathBuf,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What [`link`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// The link was there already.
    Unchanged,
    /// A new link (replacing nothing, an empty directory or an older link).
    Created,
}

/// Makes `path` a symlink to `target`.
pub fn link(path: &Path, target: &Path) -> Result<Linked, AliasError> {
    let io_err = |source| AliasError::Io {
        path: path.into(),
        target: target.into(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            if std::fs::read_link(path).map_err(io_err)? == target {
                return Ok(Linked::Unchanged);
            }
        }
        Ok(meta) if meta.is_dir() => match std::fs::remove_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                return Err(AliasError::Occupied {
                    path: path.into(),
                    target: target.into(),
                });
            }
            Err(e) => return Err(io_err(e)),
        },
        Ok(_) => {
            return Err(AliasError::Occupied {
                path: path.into(),
                target: target.into(),
            });
        }
    }
    // A new link under a temporary name, renamed over the old one: never a moment without it.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.metadata-link.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(e)
    })?;
    Ok(Linked::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_empty_and_stale_places_get_the_link() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("run/config");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("provider"), "CDROM").unwrap();
        let var = tmp.path().join("var");
        std::fs::create_dir_all(&var).unwrap();
        let alias = var.join("config");
        assert_eq!(link(&alias, &target).unwrap(), Linked::Created);
        assert_eq!(
            std::fs::read_to_string(alias.join("provider")).unwrap(),
            "CDROM"
        );
        assert_eq!(link(&alias, &target).unwrap(), Linked::Unchanged);
        std::fs::remove_file(&alias).unwrap();
        std::os::unix::fs::symlink("/elsewhere", &alias).unwrap();
        assert_eq!(link(&alias, &target).unwrap(), Linked::Created);
        assert_eq!(std::fs::read_link(&alias).unwrap(), target);
        std::fs::remove_file(&alias).unwrap();
        std::fs::create_dir(&alias).unwrap();
        assert_eq!(link(&alias, &target).unwrap(), Linked::Created);
        assert_eq!(std::fs::read_link(&alias).unwrap(), target);
    }

    #[test]
    fn occupied_places_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("run/config");
        let alias = tmp.path().join("config");
        std::fs::create_dir_all(alias.join("docker")).unwrap();
        assert!(matches!(
            link(&alias, &target),
            Err(AliasError::Occupied { .. })
        ));
        assert!(alias.join("docker").is_dir());
        let file = tmp.path().join("file");
        std::fs::write(&file, "mine").unwrap();
        assert!(matches!(
            link(&file, &target),
            Err(AliasError::Occupied { .. })
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    }
}
