//! The kernel image: Debian's current amd64 kernel as an uncompressed `vmlinux` (qemu enters it through the
//! PVH note, skipping about 3 s of XZ decompression under TCG) plus the modules an image may need, with the
//! `modules.dep`/`modules.alias` indexes that `init` uses for native cold plug.
//!
//! The image is written to the store as `debian/kernel:latest`: `rootfs/kernel` is the boot file and
//! `rootfs/lib/modules/<version>/` is merged into the initramfs by the assembler, like the `kernel.tar` of a
//! LinuxKit kernel image.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::debian::{self, DebianError, PackageCache};

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
    /// A filesystem operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KernelError + use<> {
    let path = path.to_path_buf();
    move |source| KernelError::Io { op, path, source }
}

/// What was built.
#[derive(Debug, Clone)]
pub struct KernelImage {
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub version: String,
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
    if fs::read_to_string(&stamp).is_ok_and(|v| v.trim() == version)
        && rootfs.join("kernel").exists()
    {
        return Ok(KernelImage { version, rootfs });
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
    Ok(KernelImage { version, rootfs })
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
