//! Composing image filesystems: the `debian/busybox` base image and the filesystems of the guestkit
//! packages, which [`crate::packages`] turns into OCI tarballs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::debian::{self, DebianError, PackageCache};
use crate::static_go::{StaticGoError, StaticTools};

/// Errors while composing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Fetching or unpacking a package failed.
    #[error(transparent)]
    Debian(#[from] DebianError),
    /// Building the static runc or ctr failed.
    #[error(transparent)]
    StaticGo(#[from] StaticGoError),
    /// `cargo build` of the guest binaries failed.
    #[error("building the guest binaries failed ({0})")]
    Cargo(std::process::ExitStatus),
    /// A file or process operation failed.
    #[error(transparent)]
    Io(#[from] crate::path_io::PathIo),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + use<> {
    crate::path_io::io(op, path)
}

/// The guest programs, built static for musl.
pub const GUEST_CRATES: &[&str] = &["init", "service", "metadata", "getty", "vsock-forwarder"];

/// The musl target the guest binaries are built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds the static guest binaries in release mode and returns the directory holding them.
pub fn build_guest_binaries(workspace: &Path) -> Result<PathBuf, ImageError> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", GUEST_TARGET]);
    for krate in GUEST_CRATES {
        cmd.args(["-p", krate]);
    }
    let status = cmd.status().map_err(io("running cargo in", workspace))?;
    if !status.success() {
        return Err(ImageError::Cargo(status));
    }
    Ok(target_dir.join(GUEST_TARGET).join("release"))
}

/// A directory image being written into the store.
#[derive(Debug)]
pub struct ImageDir {
    root: PathBuf,
}

impl ImageDir {
    /// Starts `<parent>/<reference>` afresh (in the store, `reference` is `org/name/tag`).
    pub fn create(store: &Path, reference: &str) -> Result<Self, ImageError> {
        let root = store.join(reference);
        if root.exists() {
            fs::remove_dir_all(&root).map_err(io("removing", &root))?;
        }
        fs::create_dir_all(root.join("rootfs")).map_err(io("creating", &root))?;
        Ok(Self { root })
    }

    /// The image's filesystem root.
    pub fn rootfs(&self) -> PathBuf {
        self.root.join("rootfs")
    }

    /// Writes `contents` at `path` (relative to the rootfs) with `mode`.
    pub fn file(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), ImageError> {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.rootfs().join(path);
        make_parent(&dest)?;
        fs::write(&dest, contents).map_err(io("writing", &dest))?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(io("chmod", &dest))
    }

    /// Creates the directory `path` in the rootfs with `mode`.
    pub fn dir(&self, path: &str, mode: u32) -> Result<(), ImageError> {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.rootfs().join(path);
        fs::create_dir_all(&dest).map_err(io("creating", &dest))?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(io("chmod", &dest))
    }

    /// Copies a host file to `path` in the rootfs, keeping its mode.
    pub fn copy(&self, from: &Path, path: &str) -> Result<(), ImageError> {
        let dest = self.rootfs().join(path);
        make_parent(&dest)?;
        fs::copy(from, &dest).map_err(io("copying", from))?;
        Ok(())
    }

    /// Copies the directory `from` to `path` in the rootfs, recursively, keeping modes.
    pub fn copy_tree(&self, from: &Path, path: &str) -> Result<(), ImageError> {
        for entry in fs::read_dir(from).map_err(io("reading", from))? {
            let entry = entry.map_err(io("reading", from))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{path}/{name}");
            if entry
                .file_type()
                .map_err(io("reading", &entry.path()))?
                .is_dir()
            {
                self.copy_tree(&entry.path(), &rel)?;
            } else {
                self.copy(&entry.path(), &rel)?;
            }
        }
        Ok(())
    }

    /// Makes `path` a symlink to `target`.
    pub fn link(&self, target: &str, path: &str) -> Result<(), ImageError> {
        let dest = self.rootfs().join(path);
        make_parent(&dest)?;
        let _ = fs::remove_file(&dest);
        symlink(target, &dest).map_err(io("linking", &dest))
    }

    /// Copies `path` out of an unpacked package tree, following symlinks inside the tree so that library
    /// links (`libseccomp.so.2 -> libseccomp.so.2.5.4`) arrive with their targets.
    pub fn copy_from_tree(&self, tree: &Path, path: &str) -> Result<(), ImageError> {
        let src = tree.join(path);
        let meta = fs::symlink_metadata(&src).map_err(io("reading", &src))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&src).map_err(io("reading link", &src))?;
            self.link(&target.to_string_lossy(), path)?;
            let resolved = match target.is_absolute() {
                true => target.strip_prefix("/").unwrap_or(&target).to_path_buf(),
                false => Path::new(path)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(&target),
            };
            return self.copy_from_tree(tree, &resolved.to_string_lossy());
        }
        self.copy(&src, path)
    }
}

fn make_parent(path: &Path) -> Result<(), ImageError> {
    match path.parent() {
        Some(dir) => fs::create_dir_all(dir).map_err(io("creating", dir)),
        None => Ok(()),
    }
}

/// The `PATH` every image sets.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The libraries Debian's dynamically linked containerd and shim need.
const LIBC: &[&str] = &[
    "lib64/ld-linux-x86-64.so.2",
    "lib/x86_64-linux-gnu/libc.so.6",
];

/// The filesystem of `debian/busybox:latest`; returns its `Cmd`.
pub fn busybox(
    cache: &PackageCache,
    image: &ImageDir,
) -> Result<&'static [&'static str], ImageError> {
    let tree = cache.unpacked("busybox-static")?;
    install_busybox(image, &tree.join("bin/busybox"), &[])?;
    image.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)?;
    image.file("etc/group", b"root:x:0:\n", 0o644)?;
    Ok(&["/bin/sh"])
}

/// Copies busybox to `/bin/busybox` and links every applet except those in `skip`.
fn install_busybox(image: &ImageDir, busybox: &Path, skip: &[&str]) -> Result<(), ImageError> {
    image.copy(busybox, "bin/busybox")?;
    let list = debian::run(&busybox.to_string_lossy(), &["--list-full"], None)?;
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !skip.contains(a))
    {
        if applet != "bin/busybox" {
            image.link("/bin/busybox", applet)?;
        }
    }
    Ok(())
}

/// The runc package: a static runc (built from Debian's sources, see [`crate::static_go`]) at LinuxKit's
/// path, `/usr/bin/runc`, so that it also runs where getty and sshd bind it into their containers, and the
/// onboot/onshutdown hooks.
pub fn runc_fs(image: &ImageDir, tools: &StaticTools) -> Result<(), ImageError> {
    image.copy(&tools.runc, "usr/bin/runc")?;
    image.link("/usr/bin/service", "etc/init.d/010-onboot")?;
    image.link("/usr/bin/service", "etc/shutdown.d/010-onshutdown")
}

/// The containerd package: Debian's containerd and shim with their libraries, a static ctr (it is bound
/// into getty and sshd containers) and the system-init hook (its configuration comes from
/// `pkg/containerd/etc`).
pub fn containerd_fs(
    cache: &PackageCache,
    image: &ImageDir,
    tools: &StaticTools,
) -> Result<(), ImageError> {
    let tree = cache.unpacked("containerd")?;
    for bin in ["containerd", "containerd-shim-runc-v2"] {
        image.copy(&tree.join("usr/bin").join(bin), &format!("usr/bin/{bin}"))?;
    }
    image.copy(&tools.ctr, "usr/bin/ctr")?;
    let libc = cache.unpacked("libc6")?;
    for lib in LIBC {
        image.copy_from_tree(&libc, lib)?;
    }
    image.link("/usr/bin/service", "etc/init.d/020-containerd")
}

/// The init package: our `/init` (also `/sbin/init`, `/sbin/modprobe` for the kernel's module requests
/// and `/sbin/usermode-helper` for kernels with a static usermode helper), `/usr/bin/service` with the
/// volumes hook, and busybox for the shell and the tools hooks call (its own `init` and `modprobe` applets
/// are left out). `/etc` comes from `pkg/init/etc`.
pub fn init_fs(cache: &PackageCache, image: &ImageDir, bins: &Path) -> Result<(), ImageError> {
    let busybox = cache.unpacked("busybox-static")?;
    install_busybox(
        image,
        &busybox.join("bin/busybox"),
        &["sbin/init", "linuxrc", "sbin/modprobe"],
    )?;
    image.copy(&bins.join("init"), "init")?;
    image.link("/init", "sbin/init")?;
    image.link("/init", "sbin/modprobe")?;
    image.link("/init", "sbin/usermode-helper")?;
    image.copy(&bins.join("service"), "usr/bin/service")?;
    // Bind sources of LinuxKit's packages that no other image provides: metadata binds /etc/ssl/certs (the
    // CA bundle, when a ca-certificates image fills it), so the directory must exist, empty, as in
    // linuxkit/init.
    for dir in INIT_BIND_SOURCES {
        image.dir(dir, 0o755)?;
    }
    image.link("/usr/bin/service", "etc/init.d/005-volumes")
}

/// Directories the init image carries because LinuxKit's packages bind them from the host.
pub const INIT_BIND_SOURCES: &[&str] = &["etc/ssl/certs"];

/// The getty package: our getty and busybox for login shells. `/etc` comes from `pkg/getty/etc`.
pub fn getty_fs(cache: &PackageCache, image: &ImageDir, bins: &Path) -> Result<(), ImageError> {
    let busybox = cache.unpacked("busybox-static")?;
    install_busybox(
        image,
        &busybox.join("bin/busybox"),
        &["sbin/init", "linuxrc", "sbin/getty"],
    )?;
    image.dir("root", 0o700)?;
    image.copy(&bins.join("getty"), "usr/bin/getty")
}
