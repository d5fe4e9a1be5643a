//! Writes confined to one directory (`/run/config`), never following symlinks and never leaving it.
//!
//! Every operation walks the path one component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)`
//! from a descriptor of the root, so a symlink planted anywhere under the root (or a `..` key) can
//! not redirect a write outside it. Files are written to a temporary name and renamed into place.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// A path relative to the config root whose components are all plain names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RelPath(Vec<String>);

/// Why a relative path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// The path was empty.
    #[error("empty path")]
    Empty,
    /// The path started with `/`.
    #[error("absolute path {0:?} is not allowed")]
    Absolute(String),
    /// A component was empty, `.`, `..`, too long or held a NUL byte.
    #[error("path {path:?} has a forbidden component {component:?}")]
    Component { path: String, component: String },
}

/// How the temporary files of [`ConfigDir::write_file`] start (userdata may not use such names).
pub const TEMP_PREFIX: &str = ".metadata-tmp.";

impl RelPath {
    /// Parses `a/b/c`; refuses absolute paths, `.`/`..`, empty components and NUL bytes.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        if path.starts_with('/') {
            return Err(PathError::Absolute(path.to_string()));
        }
        let parts: Vec<String> = path.split('/').map(str::to_string).collect();
        for c in &parts {
            if c.is_empty() || c == "." || c == ".." || c.contains('\0') || c.len() > 255 {
                return Err(PathError::Component {
                    path: path.to_string(),
                    component: c.clone(),
                });
            }
        }
        Ok(Self(parts))
    }

    /// This path with one more component (validated like [`RelPath::parse`]).
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        let extra = Self::parse(name)?;
        let mut parts = self.0.clone();
        parts.extend(extra.0);
        Ok(Self(parts))
    }

    /// A path built from a constant known to be valid (`"ssh/authorized_keys"`).
    pub(crate) fn fixed(path: &'static str) -> Self {
        Self(path.split('/').map(str::to_string).collect())
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.0.len()
    }

    fn split_last(&self) -> Option<(&[String], &String)> {
        self.0.split_last().map(|(last, parent)| (parent, last))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// A failed operation under the config root.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The root itself could not be created or opened.
    #[error("opening config root {root}")]
    OpenRoot {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A directory on the way could not be opened (missing, a symlink, or not a directory).
    #[error("opening directory {path} under the config root")]
    OpenDir {
        path: String,
        #[source]
        source: Errno,
    },
    /// A directory could not be created.
    #[error("creating directory {path}")]
    CreateDir {
        path: String,
        #[source]
        source: Errno,
    },
    /// A file could not be written or renamed into place.
    #[error("writing {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be removed.
    #[error("removing {path}")]
    Remove {
        path: String,
        #[source]
        source: Errno,
    },
}

/// An open config root.
#[derive(Debug)]
pub struct ConfigDir {
    root: PathBuf,
    fd: OwnedFd,
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl ConfigDir {
    /// Creates `root` (0755, with parents) if needed and opens it.
    pub fn open(root: &Path) -> Result<Self, FsError> {
        let err = |source| FsError::OpenRoot {
            root: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(err)?;
        let fd = nix::fcntl::open(root, DIR_FLAGS | OFlag::O_RDONLY, Mode::empty())
            .map_err(|e| err(e.into()))?;
        Ok(Self {
            root: root.to_path_buf(),
            fd,
        })
    }

    /// The root path, for messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn open_dirs(&self, parts: &[String], create: Option<u32>) -> Result<OwnedFd, FsError> {
        let mut dir = self.fd.try_clone().map_err(|e| FsError::OpenDir {
            path: ".".into(),
            source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        for (i, name) in parts.iter().enumerate() {
            let shown = || parts.get(..=i).unwrap_or(parts).join("/");
            if let Some(mode) = create {
                match mkdirat(dir.as_fd(), name.as_str(), Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(source) => {
                        return Err(FsError::CreateDir {
                            path: shown(),
                            source,
                        });
                    }
                }
            }
            dir = openat(
                dir.as_fd(),
                name.as_str(),
                DIR_FLAGS | OFlag::O_RDONLY,
                Mode::empty(),
            )
            .map_err(|source| FsError::OpenDir {
                path: shown(),
                source,
            })?;
        }
        Ok(dir)
    }

    /// Creates the directory `path` with `mode` (through the umask). Its parent must exist; an
    /// existing directory keeps its mode.
    pub fn create_dir(&self, path: &RelPath, mode: u32) -> Result<(), FsError> {
        let Some((parent, name)) = path.split_last() else {
            return Ok(());
        };
        let dir = self.open_dirs(parent, None)?;
        match mkdirat(dir.as_fd(), name.as_str(), Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(source) => {
                return Err(FsError::CreateDir {
                    path: path.to_string(),
                    source,
                });
            }
        }
        // Refuse a symlink or a file sitting where the directory should be.
        openat(
            dir.as_fd(),
            name.as_str(),
            DIR_FLAGS | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map(drop)
        .map_err(|source| FsError::OpenDir {
            path: path.to_string(),
            source,
        })
    }

    /// Writes `data` to `path` atomically (temporary file, then rename). With `make_parents`,
    /// missing parent directories are created 0755; otherwise they must exist.
    pub fn write_file(
        &self,
        path: &RelPath,
        data: &[u8],
        mode: u32,
        make_parents: bool,
    ) -> Result<(), FsError> {
        let Some((parent, name)) = path.split_last() else {
            return Err(FsError::Write {
                path: String::new(),
                source: std::io::ErrorKind::InvalidInput.into(),
            });
        };
        let dir = self.open_dirs(parent, make_parents.then_some(0o755))?;
        let werr = |source| FsError::Write {
            path: path.to_string(),
            source,
        };
        // A fixed short name, so that a final name of up to 255 bytes still has a temporary one.
        let tmp = format!("{TEMP_PREFIX}{}", std::process::id());
        let _ = unlinkat(dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            dir.as_fd(),
            tmp.as_str(),
            flags,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| werr(e.into()))?;
        let mut file = File::from(fd);
        if let Err(e) = file.write_all(data) {
            let _ = unlinkat(dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(werr(e));
        }
        drop(file);
        renameat(dir.as_fd(), tmp.as_str(), dir.as_fd(), name.as_str()).map_err(|e| {
            let _ = unlinkat(dir.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            werr(e.into())
        })
    }

    /// Removes a file, or a directory if it is empty. A missing path or a non-empty directory is
    /// not an error.
    pub fn remove(&self, path: &RelPath) -> Result<(), FsError> {
        let Some((parent, name)) = path.split_last() else {
            return Ok(());
        };
        let dir = match self.open_dirs(parent, None) {
            Ok(dir) => dir,
            Err(FsError::OpenDir {
                source: Errno::ENOENT,
                ..
            }) => return Ok(()),
            Err(e) => return Err(e),
        };
        match unlinkat(dir.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => {
                match unlinkat(dir.as_fd(), name.as_str(), UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOTEMPTY) | Err(Errno::EEXIST) | Err(Errno::ENOENT) => {
                        Ok(())
                    }
                    Err(source) => Err(FsError::Remove {
                        path: path.to_string(),
                        source,
                    }),
                }
            }
            Err(source) => Err(FsError::Remove {
                path: path.to_string(),
                source,
            }),
        }
    }

    /// Reads a small file under the root (no symlinks followed), `None` if it is missing.
    pub fn read(&self, path: &RelPath, limit: usize) -> Option<Vec<u8>> {
        use std::io::Read;
        let (parent, name) = path.split_last()?;
        let dir = self.open_dirs(parent, None).ok()?;
        let fd = openat(
            dir.as_fd(),
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut out = Vec::new();
        File::from(fd)
            .take(limit as u64)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_refuse_escapes() {
        assert!(RelPath::parse("a/b").is_ok());
        assert_eq!(RelPath::parse(""), Err(PathError::Empty));
        assert!(matches!(
            RelPath::parse("/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            RelPath::parse("../x"),
            Err(PathError::Component { .. })
        ));
        assert!(matches!(
            RelPath::parse("a//b"),
            Err(PathError::Component { .. })
        ));
        assert!(matches!(
            RelPath::parse("a/./b"),
            Err(PathError::Component { .. })
        ));
        assert!(matches!(
            RelPath::parse("a\0b"),
            Err(PathError::Component { .. })
        ));
    }

    #[test]
    fn writes_replace_atomically_and_refuse_symlinked_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dir = ConfigDir::open(&tmp.path().join("config")).unwrap();
        let p = RelPath::parse("ssh/authorized_keys").unwrap();
        dir.write_file(&p, b"one", 0o600, true).unwrap();
        dir.write_file(&p, b"two", 0o600, true).unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("config/ssh/authorized_keys")).unwrap(),
            b"two"
        );
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("config/link")).unwrap();
        let err = dir
            .write_file(&RelPath::parse("link/x").unwrap(), b"x", 0o644, false)
            .unwrap_err();
        assert!(
            matches!(
                err,
                FsError::OpenDir {
                    source: Errno::ELOOP | Errno::ENOTDIR,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!outside.path().join("x").exists());
    }

    #[test]
    fn names_up_to_the_filesystem_limit_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir::open(&tmp.path().join("config")).unwrap();
        for len in [1, 237, 238, 255] {
            let name = "n".repeat(len);
            dir.write_file(&RelPath::parse(&name).unwrap(), b"x", 0o644, false)
                .unwrap_or_else(|e| panic!("{len}-byte name: {e}"));
            assert_eq!(
                std::fs::read(tmp.path().join("config").join(&name)).unwrap(),
                b"x"
            );
        }
        assert!(RelPath::parse(&"n".repeat(256)).is_err());
    }
}
