//! Blueprint to bootable files: assembles a blueprint and writes the kernel, the initramfs and the
//! command line into a directory.

use std::path::{Path, PathBuf};

/// The files a VM boots from.
#[derive(Debug, Clone)]
pub struct Built {
    /// The kernel boot file.
    pub kernel: PathBuf,
    /// The newc cpio initramfs.
    pub initrd: PathBuf,
    /// The kernel command line.
    pub cmdline: String,
}

/// Assembles `blueprint` with images from `store` into `out`.
pub fn to_dir(blueprint: &Path, store: &Path, out: &Path) -> anyhow::Result<Built> {
    let _ = (blueprint, store, out);
    anyhow::bail!("assembler not wired yet")
}
