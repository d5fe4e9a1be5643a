//! The one error for a failed file or process operation on a path, shared by every xtask module's error.

use std::path::{Path, PathBuf};

/// A file or process operation on `path` failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub struct PathIo {
    /// What was being done (`creating`, `reading`, ...).
    pub op: &'static str,
    /// The path.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// A `map_err` adapter: `std::fs::read(p).map_err(io("reading", p))`, into any error that wraps [`PathIo`].
pub fn io<E: From<PathIo>>(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> E + use<E> {
    let path = path.to_path_buf();
    move |source| E::from(PathIo { op, path, source })
}
