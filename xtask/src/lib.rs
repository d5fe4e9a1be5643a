//! Build tooling for guestkit: the LinuxKit-style blueprint parser and image assembler, the local image
//! store, the Debian-derived images (kernel, busybox, runc, containerd) and the qemu VM runner.

pub mod assemble;
pub mod blueprint;
pub mod build;
pub mod cpio;
pub mod debian;
pub mod images;
pub mod kernel;
pub mod oci_config;
pub mod packages;
pub mod path_io;
pub mod static_go;
pub mod store;
pub mod vm;

use std::path::PathBuf;

/// Where the tooling keeps its files: everything generated lives under `out/` in the workspace.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace root.
    pub workspace: PathBuf,
}

impl Paths {
    /// The paths of the workspace this crate belongs to (`GUESTKIT_OUT` moves `out/`).
    pub fn new() -> Self {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let workspace = manifest.parent().map(PathBuf::from).unwrap_or(manifest);
        Self { workspace }
    }

    /// The directory for generated files.
    pub fn out(&self) -> PathBuf {
        std::env::var_os("GUESTKIT_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.workspace.join("out"))
    }

    /// The local image store.
    pub fn store(&self) -> PathBuf {
        self.out().join("images")
    }

    /// The LinuxKit package definitions (`pkg/`).
    pub fn pkg(&self) -> PathBuf {
        self.workspace.join("pkg")
    }

    /// Where the package build writes its tarballs.
    pub fn pkg_out(&self) -> PathBuf {
        self.out().join("pkg")
    }

    /// The Debian package cache.
    pub fn debs(&self) -> PathBuf {
        self.out().join("debs")
    }

    /// The static runc and ctr and their Go build cache.
    pub fn static_go(&self) -> PathBuf {
        self.out().join("static-go")
    }
}

impl Default for Paths {
    fn default() -> Self {
        Self::new()
    }
}
