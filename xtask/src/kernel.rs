//! The kernel image: Debian's current amd64 kernel as an uncompressed `vmlinux` (qemu enters it through the
//! PVH note, skipping about 3 s of XZ decompression under TCG) plus the modules an image may need, with the
//! `modules.dep`/`modules.alias` indexes that `init` uses for native cold plug.
//!
//! The image is written to the store as `debian/kernel:latest`: `rootfs/kernel` is the boot file and
//! `rootfs/lib/modules/<version>/` is merged into the initramfs by the assembler. The same files are also
//! packaged as LinuxKit lays out its kernel images ([`package_tree`]): `/kernel` and `/kernel.tar` (a tar of
//! `lib/modules/<version>/`), the two files `linuxkit build` reads, published as `guestkit/kernel` with the
//! tags of [`package_tags`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::assemble::{Content, Node, Tree};
use crate::debian::{self, DebianError, PackageCache};
use crate::store::{tree_from_dir, write_tree_tar};

/// The repository of the kernel package.
pub const PACKAGE_REPO: &str = "guestkit/kernel";

/// The modules the kernel image carries (dependencies are added automatically). Everything a guestkit
/// image can meet under qemu: virtio devices, CD-ROMs, file systems, vsock, the ACPI power button, pvpanic
/// and the link types `runtime.json` can create.
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_scsi",
    "virtio_console",
    "virtio_rng",
    "ahci",
    "ata_piix",
    "sr_mod",
    "sd_mod",
    "isofs",
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
    "ext4",
    "squashfs",
    "overlay",
    "loop",
    "vsock",
    "vmw_vsock_virtio_transport",
    "vsock_loopback",
    "button",
    "evdev",
    "pvpanic_mmio",
    "pvpanic_pci",
    "veth",
    "bridge",
    "dummy",
    "bonding",
    "wireguard",
    "tun",
    "macvlan",
    "qemu_fw_cfg",
    "9pnet_virtio",
    "9p",
];

/// Errors while building the kernel image.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Fetching or unpacking the package failed.
    #[error(transparent)]
    Debian(#[from] DebianError),
    /// The compressed kernel holds no XZ stream.
    #[error("{0} holds no XZ stream")]
    NoXz(PathBuf),
    /// `modprobe --show-depends` did not know a module.
    #[error("module {module} is not in kernel {version}: {detail}")]
    UnknownModule {
        /// The module name.
        module: String,
        /// The kernel version.
        version: String,
        /// What modprobe said.
        detail: String,
    },
    /// A file or process operation failed.
    #[error(transparent)]
    Io(#[from] crate::path_io::PathIo),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KernelError + use<> {
    crate::path_io::io(op, path)
}

/// What was built.
#[derive(Debug, Clone)]
pub struct KernelImage {
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub version: String,
    /// Debian's version of the kernel package, e.g. `6.1.192-3`.
    pub package_version: String,
    /// The image's root (`.../debian/kernel/latest/rootfs`).
    pub rootfs: PathBuf,
}

/// Builds `debian/kernel:latest` under `store` from the package cache, unless it is already there for the
/// current kernel package.
pub fn build(cache: &PackageCache, store: &Path) -> Result<KernelImage, KernelError> {
    let package = debian::kernel_package()?;
    let version = package.trim_start_matches("linux-image-").to_string();
    let image = store.join("debian/kernel/latest");
    let rootfs = image.join("rootfs");
    let stamp = image.join("version");
    let deb = cache.deb(&package)?;
    let package_version =
        debian::run("dpkg-deb", &["-f", &deb.to_string_lossy(), "Version"], None)?
            .trim()
            .to_string();
    let built = KernelImage {
        version: version.clone(),
        package_version,
        rootfs: rootfs.clone(),
    };
    if fs::read_to_string(&stamp).is_ok_and(|v| v.trim() == version)
        && rootfs.join("kernel").exists()
    {
        return Ok(built);
    }
    let tree = cache.unpacked(&package)?;
    if image.exists() {
        fs::remove_dir_all(&image).map_err(io("removing", &image))?;
    }
    fs::create_dir_all(&rootfs).map_err(io("creating", &rootfs))?;
    extract_vmlinux(
        &tree.join(format!("boot/vmlinuz-{version}")),
        &rootfs.join("kernel"),
    )?;
    copy_modules(&tree, &rootfs, &version)?;
    fs::write(&stamp, &version).map_err(io("writing", &stamp))?;
    Ok(built)
}

/// The tags of the kernel package, most stable first: the series (`6.1`, which stays valid when Debian
/// publishes a point release, and which the examples use), Debian's package version (`6.1.192-3`) and the
/// kernel release (`6.1.0-57-amd64`, what `uname -r` says). Characters a tag cannot hold become `_`.
pub fn package_tags(kernel: &KernelImage) -> Vec<String> {
    let series: Vec<&str> = kernel.version.split(['.', '-']).take(2).collect();
    let tag = |s: &str| -> String {
        s.chars()
            .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
                true => c,
                false => '_',
            })
            .collect()
    };
    vec![
        tag(&series.join(".")),
        tag(&kernel.package_version),
        tag(&kernel.version),
    ]
}

/// The kernel package's filesystem, as LinuxKit's kernel images hold it: `kernel` (the boot file) and
/// `kernel.tar` (`lib/modules/<version>/` with the depmod indexes), written to `stage/kernel.tar`.
pub fn package_tree(kernel: &KernelImage, stage: &Path) -> Result<Tree, KernelError> {
    let lib = kernel.rootfs.join("lib");
    let mut modules = Tree::new();
    modules.insert("lib", Node::dir(0o755));
    modules.merge("lib", &tree_from_dir(&lib).map_err(io("reading", &lib))?);
    fs::create_dir_all(stage).map_err(io("creating", stage))?;
    let tar_path = stage.join("kernel.tar");
    let file = fs::File::create(&tar_path).map_err(io("creating", &tar_path))?;
    write_tree_tar(&modules, std::io::BufWriter::new(file))
        .and_then(|mut w| w.flush())
        .map_err(io("writing", &tar_path))?;
    let mut tree = Tree::new();
    for (name, path) in [
        ("kernel", kernel.rootfs.join("kernel")),
        ("kernel.tar", tar_path),
    ] {
        let size = fs::metadata(&path).map_err(io("reading", &path))?.len();
        tree.insert(name, Node::file(Content::Path(path), size, 0o644));
    }
    Ok(tree)
}

/// Finds the XZ stream in a bzImage and decompresses it into an ELF `vmlinux`.
fn extract_vmlinux(vmlinuz: &Path, out: &Path) -> Result<(), KernelError> {
    let data = fs::read(vmlinuz).map_err(io("reading", vmlinuz))?;
    let magic = b"\xfd7zXZ\x00";
    let start = data
        .windows(magic.len())
        .position(|w| w == magic)
        .ok_or_else(|| KernelError::NoXz(vmlinuz.to_path_buf()))?;
    let file = fs::File::create(out).map_err(io("creating", out))?;
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .map_err(io("running xz for", vmlinuz))?;
    if let Some(mut stdin) = child.stdin.take() {
        // xz stops reading at the end of the stream; the padding after it is not needed.
        match stdin.write_all(&data[start..]) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(io("decompressing", vmlinuz)(e));
            }
            _ => {}
        }
    }
    let status = child.wait().map_err(io("waiting for xz on", vmlinuz))?;
    if !status.success() {
        return Err(KernelError::NoXz(vmlinuz.to_path_buf()));
    }
    Ok(())
}

/// Copies [`MODULES`] and their dependencies into `rootfs/lib/modules/<version>` and indexes them.
fn copy_modules(tree: &Path, rootfs: &Path, version: &str) -> Result<(), KernelError> {
    let tree_s = tree.to_string_lossy().into_owned();
    debian::run("depmod", &["-b", &tree_s, version], None)?;
    let src = tree.join("lib/modules").join(version);
    let dst = rootfs.join("lib/modules").join(version);
    for module in MODULES {
        let out = debian::run(
            "modprobe",
            &["-d", &tree_s, "-S", version, "--show-depends", module],
            None,
        )
        .map_err(|e| KernelError::UnknownModule {
            module: (*module).into(),
            version: version.into(),
            detail: e.to_string(),
        })?;
        for path in out.lines().filter_map(|l| l.strip_prefix("insmod ")) {
            let path = PathBuf::from(path.split_whitespace().next().unwrap_or_default());
            let rel = path.strip_prefix(&src).unwrap_or(&path);
            copy_file(&src.join(rel), &dst.join(rel))?;
        }
    }
    for index in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        if src.join(index).exists() {
            copy_file(&src.join(index), &dst.join(index))?;
        }
    }
    debian::run("depmod", &["-b", &rootfs.to_string_lossy(), version], None)?;
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<(), KernelError> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    fs::copy(from, to).map_err(io("copying", from))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_tags_are_the_series_the_debian_version_and_the_release() {
        let kernel = KernelImage {
            version: "6.1.0-57-amd64".into(),
            package_version: "6.1.192-3~bpo12+1".into(),
            rootfs: PathBuf::new(),
        };
        assert_eq!(
            package_tags(&kernel),
            ["6.1", "6.1.192-3_bpo12_1", "6.1.0-57-amd64"]
        );
    }
}
