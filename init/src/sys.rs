//! The narrow system-call seam: [`Sys`] is everything the boot plan and shutdown do to the machine.
//! [`RealSys`] performs the calls; [`crate::recording_sys::RecordingSys`] records them for unit tests.
//!
//! All of the crate's `unsafe` lives in this module.

pub mod early_stdio;

use std::ffi::CStr;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::ModuleInitFlags;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::reboot::RebootMode;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;
use nix::sys::socket::{AddressFamily, SockFlag, SockType};
use nix::sys::stat::{Mode, SFlag};

use crate::power::PowerAction;

/// `finit_module` flag asking the kernel to decompress the file (Linux 6.4+, `CONFIG_MODULE_DECOMPRESS`);
/// nix does not name it.
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

// The ioctl request type is `c_ulong` with glibc and `c_int` with musl.
#[allow(clippy::unnecessary_cast, clippy::cast_possible_truncation)]
const SIOCGIFFLAGS: libc::Ioctl = libc::SIOCGIFFLAGS as libc::Ioctl;
#[allow(clippy::unnecessary_cast, clippy::cast_possible_truncation)]
const SIOCSIFFLAGS: libc::Ioctl = libc::SIOCSIFFLAGS as libc::Ioctl;

/// Arguments of one `mount(2)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountArgs {
    /// The source (device, or a name such as `proc`); empty for remounts and propagation changes.
    pub source: String,
    /// The mount point.
    pub target: PathBuf,
    /// The filesystem type; empty for remounts, binds and moves.
    pub fstype: String,
    /// `MS_*` flags.
    pub flags: MsFlags,
    /// Filesystem-specific data (`size=10%,mode=755`).
    pub data: String,
}

/// The system calls init makes, one method per operation.
pub trait Sys: std::fmt::Debug + Sync {
    /// `mount(2)`.
    fn mount(&self, args: &MountArgs) -> nix::Result<()>;
    /// `umount2(2)`, lazily (`MNT_DETACH`) when `detach`.
    fn umount(&self, target: &Path, detach: bool) -> nix::Result<()>;
    /// `mkdir -p`; a directory it creates gets exactly `mode` (no umask). An existing one is left alone.
    fn mkdir_all(&self, path: &Path, mode: u32) -> nix::Result<()>;
    /// `symlink(2)`: a link at `link` pointing to `target`.
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()>;
    /// `mknod(2)` of a character device with exactly `mode` (no umask).
    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> nix::Result<()>;
    /// Creates or truncates a file and writes `contents`.
    fn write_file(&self, path: &Path, contents: &[u8]) -> nix::Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    /// `chroot(2)`.
    fn chroot(&self, path: &Path) -> nix::Result<()>;
    /// `chmod(2)` (permission bits only).
    fn chmod(&self, path: &Path, mode: u32) -> nix::Result<()>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    /// Sets a resource limit of this process (children inherit it).
    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()>;
    /// Sets `IFF_UP` on a network interface.
    fn interface_up(&self, name: &str) -> nix::Result<()>;
    /// `finit_module(2)` of a module file with parameters (compressed files are handed to the kernel to
    /// decompress).
    fn load_module(&self, path: &Path, params: &str) -> nix::Result<()>;
    /// `kill(-1, signal)`: every process except PID 1 and the caller.
    fn kill_all(&self, signal: Signal) -> nix::Result<()>;
    /// `sync(2)`, waited for at most `bound` (a dead disk can block it forever); false when it did not
    /// finish in time (it goes on in the background).
    fn sync(&self, bound: std::time::Duration) -> bool;
    /// `reboot(2)`; returns only on failure.
    fn reboot(&self, action: PowerAction) -> Errno;
}

/// The real system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSys;

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn opt_str(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

impl Sys for RealSys {
    fn mount(&self, a: &MountArgs) -> nix::Result<()> {
        nix::mount::mount(
            opt_str(&a.source),
            &a.target,
            opt_str(&a.fstype),
            a.flags,
            opt_str(&a.data),
        )
    }

    fn umount(&self, target: &Path, detach: bool) -> nix::Result<()> {
        let flags = if detach {
            MntFlags::MNT_DETACH
        } else {
            MntFlags::empty()
        };
        nix::mount::umount2(target, flags)
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> nix::Result<()> {
        if path.is_dir() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| io_errno(&e))?;
        }
        match DirBuilder::new().mode(mode).create(path) {
            Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(|e| io_errno(&e)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            Err(e) => Err(io_errno(&e)),
        }
    }

    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        std::os::unix::fs::symlink(target, link).map_err(|e| io_errno(&e))
    }

    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> nix::Result<()> {
        let perm = Mode::from_bits_truncate(mode);
        nix::sys::stat::mknod(
            path,
            SFlag::S_IFCHR,
            perm,
            nix::sys::stat::makedev(major, minor),
        )?;
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            path,
            perm,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> nix::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| io_errno(&e))?;
        f.write_all(contents).map_err(|e| io_errno(&e))
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chroot(path)
    }

    fn chmod(&self, path: &Path, mode: u32) -> nix::Result<()> {
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            path,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()> {
        nix::sys::resource::setrlimit(resource, soft, hard)
    }

    fn interface_up(&self, name: &str) -> nix::Result<()> {
        let sock = nix::sys::socket::socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let mut req = ifreq_named(name)?;
        // SAFETY: `sock` is an open socket for the whole call and `req` is a valid, NUL-terminated
        // `ifreq` that the kernel reads and fills in; SIOCGIFFLAGS writes only `ifr_flags`.
        // JUSTIFICATION: nix has no wrapper for the interface-flag ioctls.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut req) };
        Errno::result(rc)?;
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel initialised the `ifru_flags` member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
        // JUSTIFICATION: nix has no wrapper for the interface-flag ioctls.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCSIFFLAGS, &req) };
        Errno::result(rc).map(drop)
    }

    fn load_module(&self, path: &Path, params: &str) -> nix::Result<()> {
        let file = fs::File::open(path).map_err(|e| io_errno(&e))?;
        let params = std::ffi::CString::new(params).map_err(|_| Errno::EINVAL)?;
        let compressed = [".xz", ".zst", ".gz"]
            .iter()
            .any(|s| path.as_os_str().as_bytes().ends_with(s.as_bytes()));
        let flags = if compressed {
            ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
        } else {
            ModuleInitFlags::empty()
        };
        nix::kmod::finit_module(&file, &params, flags)
    }

    fn kill_all(&self, signal: Signal) -> nix::Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(-1), signal)
    }

    fn sync(&self, bound: std::time::Duration) -> bool {
        let (done, finished) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("sync".into())
            .spawn(move || {
                nix::unistd::sync();
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => finished.recv_timeout(bound).is_ok(),
            // No thread to spare: sync here; nothing else is left to do anyway.
            Err(_) => {
                nix::unistd::sync();
                true
            }
        }
    }

    fn reboot(&self, action: PowerAction) -> Errno {
        let mode = match action {
            PowerAction::Poweroff => RebootMode::RB_POWER_OFF,
            PowerAction::Reboot => RebootMode::RB_AUTOBOOT,
            PowerAction::Halt => RebootMode::RB_HALT_SYSTEM,
        };
        match nix::sys::reboot::reboot(mode) {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }
}

fn ifreq_named(name: &str) -> nix::Result<libc::ifreq> {
    // SAFETY: `ifreq` is plain old data (integers, arrays and a union of them); all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(Errno::EINVAL);
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// The path this program was executed as (`AT_EXECFN`), which tells a call through the
/// `/sbin/usermode-helper` symlink apart from the kernel's argv0 (the helper it wants).
pub fn exec_path() -> Option<PathBuf> {
    // SAFETY: getauxval has no preconditions; it returns 0 when the entry is absent.
    let ptr = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: AT_EXECFN points at the NUL-terminated path string the kernel put on the initial stack,
    // which lives (unmodified) for the whole life of the process.
    let path = unsafe { CStr::from_ptr(ptr) };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes())))
}

/// Makes the child of `command` start with no blocked signals. PID 1 blocks the signals it reads from
/// its signalfd, and the mask survives fork and exec: without this, a booted guest's hooks, and all they
/// start (containerd, services, shells), kept SIGTERM blocked, so every shutdown waited out its bound
/// and ended in SIGKILL, and their `trap ... TERM` never ran.
pub fn unblock_signals_in_child(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec; it only calls sigprocmask(2), which is
    // async-signal-safe, on a stack-local empty set, and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(std::io::Error::from)
        });
    }
}

/// What a standard descriptor (0–2) of this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioState {
    /// Not open.
    Closed,
    /// The `/dev/null` character device (1:3), as Rust's runtime leaves a descriptor the kernel did not
    /// open: before `main` it reopens closed 0–2 on `/dev/null`.
    Null,
    /// A directory: the placeholder [`early_stdio`] opens when the kernel gave PID 1 no descriptors and there
    /// was no `/dev/console` to open.
    Placeholder,
    /// Anything else (the console, a pipe, a file).
    Other,
}

/// What descriptor `fd` is.
pub fn stdio_state(fd: std::os::fd::RawFd) -> StdioState {
    // SAFETY: `stat` is plain old data; all-zero is a valid value that fstat overwrites.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only reads the descriptor table and writes the `stat` we own; an unused number
    // yields EBADF, nothing else.
    // JUSTIFICATION: nix's fstat needs a BorrowedFd, which may only be made for an fd known to be open.
    if unsafe { libc::fstat(fd, &mut stat) } == -1 {
        return StdioState::Closed;
    }
    let is_char = stat.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
        StdioState::Placeholder
    } else if is_char && libc::major(stat.st_rdev) == 1 && libc::minor(stat.st_rdev) == 3 {
        StdioState::Null
    } else {
        StdioState::Other
    }
}

/// Makes descriptor number `fd` a copy of `file` (without close-on-exec), replacing what it was.
pub fn replace_fd(file: &std::fs::File, fd: std::os::fd::RawFd) -> nix::Result<()> {
    // SAFETY: dup2 on a descriptor we own onto a standard descriptor number; it closes and replaces
    // whatever that number was, which no Rust object of ours owns (stdio is accessed by number).
    let rc = unsafe { libc::dup2(file.as_raw_fd(), fd) };
    Errno::result(rc).map(drop)
}
