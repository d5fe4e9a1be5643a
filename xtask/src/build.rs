//! Blueprint to bootable files: assembles a blueprint and writes the kernel, the initramfs and the
//! command line into a directory.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::assemble::{Options, assemble_with};
use crate::blueprint::Blueprint;
use crate::store::ImageStore;

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

/// Assembles `blueprint` with images from `store` into `out/{kernel,initrd.img,cmdline}`, laid out as
/// `linuxkit build` does.
pub fn to_dir(blueprint: &Path, store: &Path, out: &Path) -> Result<Built> {
    to_dir_with(blueprint, store, out, Options::default())
}

/// [`to_dir`] with explicit assembler [`Options`].
pub fn to_dir_with(blueprint: &Path, store: &Path, out: &Path, options: Options) -> Result<Built> {
    let bp = Blueprint::from_path(blueprint)?;
    let bp_dir = blueprint.parent().unwrap_or(Path::new("."));
    let store = ImageStore::new(store);
    let assembly = assemble_with(&bp, bp_dir, &store, options)?;
    let Some(kernel_src) = &assembly.kernel else {
        bail!("{} has no kernel: section", blueprint.display());
    };
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let kernel = out.join("kernel");
    fs::copy(kernel_src, &kernel).with_context(|| format!("copying {}", kernel_src.display()))?;
    let initrd = out.join("initrd.img");
    let file =
        fs::File::create(&initrd).with_context(|| format!("creating {}", initrd.display()))?;
    assembly
        .write_initrd(BufWriter::new(file))
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .with_context(|| format!("writing {}", initrd.display()))?;
    fs::write(out.join("cmdline"), &assembly.cmdline)?;
    Ok(Built {
        kernel,
        initrd,
        cmdline: assembly.cmdline,
    })
}
