//! The image assembler: builds the initramfs tree `linuxkit build` writes (docs/linuxkit.md §8), in LinuxKit's order:
//! kernel modules, init images, volumes, onboot, onshutdown and service bundles, then `files:`.
//! The kernel boot file is handed back separately; it is not part of the initramfs.

mod bundle;
mod files;
mod image_fs;
pub mod listing;
pub mod tree;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::blueprint::{Blueprint, Kernel};
use crate::oci_config::{BuildContext, ConfigError};
use crate::store::{ImageStore, StoreError};

pub use tree::{Content, Node, NodeKind, Tree, normalise};

/// The result of assembling a blueprint.
#[derive(Debug, Clone)]
pub struct Assembly {
    /// The kernel boot file, copied out of the kernel image (`None` without a `kernel:` section). It may live
    /// in the store's scratch directory, so use it before the [`ImageStore`] is dropped.
    pub kernel: Option<PathBuf>,
    /// The microcode cpio to prepend to the initramfs (`kernel.ucode`), if any.
    pub ucode: Option<PathBuf>,
    /// `kernel.cmdline`.
    pub cmdline: String,
    /// The initramfs contents.
    pub tree: Tree,
}

impl Assembly {
    /// Writes the initramfs: the microcode cpio (if any) followed by the newc archive of the tree.
    pub fn write_initrd<W: Write>(&self, mut out: W) -> io::Result<W> {
        if let Some(ucode) = &self.ucode {
            io::copy(&mut std::fs::File::open(ucode)?, &mut out)?;
        }
        self.tree.write_cpio(out)
    }
}

/// Why a blueprint could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("{location}: cannot use image {reference:?}")]
    Image {
        location: String,
        reference: String,
        #[source]
        source: StoreError,
    },
    #[error("{location}: invalid container configuration")]
    Config {
        location: String,
        #[source]
        source: ConfigError,
    },
    #[error("{location}: {problem}")]
    Invalid { location: String, problem: String },
    #[error("{location}: cannot read {path}")]
    Read {
        location: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Choices where the assembler may differ from `linuxkit build`. The default is `linuxkit build`'s layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `files:` leave the mode and owner of leading directories that already exist alone (`/etc` stays
    /// 0755 under `files: [{path: etc/x}]`) instead of giving them the file's mode and owner.
    pub keep_existing_dirs: bool,
}

/// Assembles `bp` (whose file is in `bp_dir`) with images from `store`, laid out as `linuxkit build` does.
pub fn assemble(
    bp: &Blueprint,
    bp_dir: &Path,
    store: &ImageStore,
) -> Result<Assembly, AssembleError> {
    assemble_with(bp, bp_dir, store, Options::default())
}

/// [`assemble`] with explicit [`Options`].
pub fn assemble_with(
    bp: &Blueprint,
    bp_dir: &Path,
    store: &ImageStore,
    options: Options,
) -> Result<Assembly, AssembleError> {
    let mut tree = Tree::new();
    let mut assembly = Assembly {
        kernel: None,
        ucode: None,
        cmdline: String::new(),
        tree: Tree::new(),
    };
    if let Some(kernel) = &bp.kernel {
        add_kernel(kernel, bp_dir, store, &mut tree, &mut assembly)?;
    }
    for (i, reference) in bp.init.iter().enumerate() {
        let image = open(store, reference, bp_dir, &format!("init[{i}]"))?;
        tree.merge("", &image_fs::filtered(&image.fs, image_fs::Use::Init));
    }
    let ctx = BuildContext {
        ids: bp.id_map(),
        volumes: bp
            .volumes
            .iter()
            .map(|v| (v.name.clone(), v.readonly))
            .collect(),
    };
    bundle::add_volumes(bp, bp_dir, store, &mut tree)?;
    bundle::add_containers(bp, bp_dir, store, &ctx, &mut tree)?;
    files::add_files(bp, bp_dir, &ctx, options, &mut tree)?;
    assembly.tree = tree;
    Ok(assembly)
}

pub(crate) fn open(
    store: &ImageStore,
    reference: &str,
    bp_dir: &Path,
    location: &str,
) -> Result<crate::store::Image, AssembleError> {
    store
        .open(reference, bp_dir)
        .map_err(|source| AssembleError::Image {
            location: location.to_string(),
            reference: reference.to_string(),
            source,
        })
}

/// The kernel image holds the boot file (`binary`, default `kernel`), optionally a modules tar (`tar`, default
/// `kernel.tar`, `none` for none) and microcode (`ucode`). The tar's contents and every other file of the
/// image (e.g. `lib/modules/…`) are merged into the root; the boot file and microcode are handed back.
fn add_kernel(
    kernel: &Kernel,
    bp_dir: &Path,
    store: &ImageStore,
    tree: &mut Tree,
    assembly: &mut Assembly,
) -> Result<(), AssembleError> {
    let image = open(store, &kernel.image, bp_dir, "kernel")?;
    let invalid = |problem: String| AssembleError::Invalid {
        location: "kernel".into(),
        problem,
    };
    let store_err = |source| AssembleError::Image {
        location: "kernel".into(),
        reference: kernel.image.clone(),
        source,
    };
    let binary = normalise(kernel.binary.as_deref().unwrap_or("kernel"));
    let tar_name = match kernel.tar.as_deref() {
        Some("none") => None,
        Some(name) => Some((normalise(name), true)),
        None => Some(("kernel.tar".to_string(), false)),
    };
    let ucode = kernel.ucode.as_deref().map(normalise);
    let Some(Node {
        kind: NodeKind::File { content, .. },
        ..
    }) = image.fs.get(&binary)
    else {
        return Err(invalid(format!(
            "did not find the kernel file {binary:?} in image {:?}",
            kernel.image
        )));
    };
    assembly.kernel = Some(
        store
            .materialise(&kernel.image, content)
            .map_err(store_err)?,
    );
    assembly.cmdline = kernel.cmdline.clone();
    // `linuxkit build` writes `boot/` (then `boot/kernel`, `boot/cmdline`, which it splits off the initrd).
    tree.insert("boot", Node::dir(0o755));
    if let Some(name) = &ucode {
        let Some(Node {
            kind: NodeKind::File { content, .. },
            ..
        }) = image.fs.get(name)
        else {
            return Err(invalid(format!(
                "did not find the microcode {name:?} in image {:?}",
                kernel.image
            )));
        };
        assembly.ucode = Some(
            store
                .materialise(&kernel.image, content)
                .map_err(store_err)?,
        );
    }
    let mut rest = image.fs.clone();
    rest.remove(&binary);
    if let Some(name) = &ucode {
        rest.remove(name);
    }
    if let Some((name, explicit)) = &tar_name {
        match image.fs.get(name) {
            Some(Node {
                kind: NodeKind::File { content, size },
                ..
            }) => {
                let modules = store
                    .tree_from_tar(&kernel.image, content, *size)
                    .map_err(store_err)?;
                rest.remove(name);
                tree.merge("", &modules);
            }
            _ if *explicit => {
                return Err(invalid(format!(
                    "did not find the kernel tar {name:?} in image {:?}",
                    kernel.image
                )));
            }
            _ => {}
        }
    }
    tree.merge("", &rest);
    Ok(())
}
