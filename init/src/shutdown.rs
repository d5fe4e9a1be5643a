//! Shutdown (LinuxKit `rc.shutdown`, docs/linuxkit.md §6, plus a graceful service stop): shutdown hooks, `service
//! shutdown`, SIGTERM to everyone, a bounded wait, SIGKILL, sync, unmount disk filesystems in reverse
//! mount order (each of sync and the unmounts bounded by T), then `reboot(2)`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::MsFlags;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::hooks;
use crate::layout::Layout;
use crate::power::PowerAction;
use crate::supervisor::{Signals, describe, wait_for_all, wait_until};
use crate::sys::{MountArgs, RealSys, Sys};
use crate::timeline::Timeline;

/// Filesystem types unmounted normally at shutdown.
const UNMOUNT: [&str; 13] = [
    "ext2", "ext3", "ext4", "btrfs", "xfs", "vfat", "msdos", "exfat", "f2fs", "overlay", "iso9660",
    "squashfs", "fuseblk",
];
/// Network filesystems, detached lazily.
const DETACH: [&str; 5] = ["nfs", "nfs4", "cifs", "smb3", "9p"];

/// Decodes the octal escapes (`\040` for space) of `/proc/mounts` fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal.map(|d| d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'))) {
            Some(v) if v <= 0xff => {
                out.push(v as u8);
                i += 4;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to unmount, from `/proc/mounts` text: disk and network filesystems, last-mounted first, never `/`.
/// The flag says whether to detach lazily.
pub fn unmount_order(proc_mounts: &str) -> Vec<(PathBuf, bool)> {
    let mut order = Vec::new();
    for line in proc_mounts.lines().rev() {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(target), Some(fstype)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let target = unescape(target);
        if target == "/" {
            continue;
        }
        if UNMOUNT.contains(&fstype) {
            order.push((PathBuf::from(target), false));
        } else if DETACH.contains(&fstype) {
            order.push((PathBuf::from(target), true));
        }
    }
    order
}

/// How long shutdown waits for a child it killed (with SIGKILL) to be reaped.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

/// The shares of `guestkit.shutdown_timeout` (T): each step of shutdown that waits gets one, so the whole
/// of shutdown's waiting is bounded by [`Budget::total`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// All shutdown hooks together: a hook still running when it is spent is killed (its process group),
    /// later hooks are skipped.
    pub hooks: Duration,
    /// `service shutdown`: killed (its process group) when it is spent.
    pub service: Duration,
    /// The wait after SIGTERM to every process, before SIGKILL.
    pub term: Duration,
}

impl Budget {
    /// 2T for the hooks, 2T for `service shutdown`, T after SIGTERM to everyone. The graceful steps get
    /// twice the forced one: onshutdown containers and graceful service stops (10 s grace by default) do
    /// real work, while the wait after SIGTERM only gives processes time to exit.
    pub fn split(timeout: Duration) -> Budget {
        Budget {
            hooks: timeout * 2,
            service: timeout * 2,
            term: timeout,
        }
    }

    /// The longest shutdown waits in all: every share, [`KILL_WAIT`] after each of the three kills, and
    /// `sync` and the unmounts, which get the SIGTERM share again each.
    pub fn total(&self) -> Duration {
        self.hooks + self.service + self.term * 3 + KILL_WAIT * 3
    }
}

/// What shutdown needs.
#[derive(Debug)]
pub struct ShutdownContext<'a> {
    /// The system.
    pub sys: &'a dyn Sys,
    /// Signals (for reaping while waiting).
    pub signals: &'a Signals,
    /// Paths.
    pub layout: &'a Layout,
    /// How long each step may wait.
    pub budget: Budget,
    /// Whether init owns the machine's mounts (false when running in a container or test namespace).
    pub unmount: bool,
}

/// Runs one shutdown child (`what` names it on the console) in its own process group, until it exits or
/// `deadline` passes; then kills the group. True when it ended by itself.
fn run_bounded(
    ctx: &ShutdownContext<'_>,
    timeline: &mut Timeline,
    (path, args): (&Path, &[&str]),
    what: &str,
    deadline: Instant,
) -> bool {
    let name = path.display().to_string();
    log::info!(
        "starting {name}{}",
        args.iter().map(|a| format!(" {a}")).collect::<String>()
    );
    timeline.event("hook-start", Some(&name));
    let started = Instant::now();
    let finished = match hooks::spawn_in_own_group(path, args) {
        Ok(pid) => match wait_until(ctx.signals, pid, deadline) {
            Some(WaitStatus::Exited(_, 0)) => true,
            Some(status) => {
                log::warn!("{name}: {}", describe(status));
                true
            }
            None => {
                kill_group(ctx, pid);
                log::warn!(
                    "killed {what} after {:.1}s: its share of guestkit.shutdown_timeout is spent",
                    started.elapsed().as_secs_f64()
                );
                false
            }
        },
        Err(e) => {
            log::error!("starting {name}: {e}");
            true
        }
    };
    timeline.event("hook-end", Some(&name));
    finished
}

/// SIGKILL to the process group `pid` leads (and to `pid`, in case it left it), then waits for `pid` at
/// most [`KILL_WAIT`].
fn kill_group(ctx: &ShutdownContext<'_>, pid: Pid) {
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = kill(pid, Signal::SIGKILL);
    if wait_until(ctx.signals, pid, Instant::now() + KILL_WAIT).is_none() {
        log::warn!("pid {pid} did not end within {KILL_WAIT:?} of SIGKILL");
    }
}

/// Runs the whole sequence and makes the `reboot(2)` call. Returns only if that call failed.
pub fn shutdown(ctx: &ShutdownContext<'_>, timeline: &mut Timeline, action: PowerAction) {
    log::info!(
        "shutting down ({}); bounded by {:.1}s",
        action.name(),
        ctx.budget.total().as_secs_f64()
    );
    timeline.event("shutdown-start", Some(action.name()));
    run_shutdown_hooks(ctx, timeline);
    if ctx.layout.service.is_file() && ctx.layout.containerd_sock.exists() {
        let what = format!("{} shutdown", ctx.layout.service.display());
        let deadline = Instant::now() + ctx.budget.service;
        run_bounded(
            ctx,
            timeline,
            (&ctx.layout.service, &["shutdown"]),
            &what,
            deadline,
        );
    }
    stop_everything(ctx);
    if !ctx.sys.sync(ctx.budget.term) {
        log::warn!(
            "sync did not finish within {:.1}s; going on",
            ctx.budget.term.as_secs_f64()
        );
    }
    if ctx.unmount {
        unmount_all(ctx.budget.term);
    }
    timeline.event("shutdown-end", Some(action.name()));
    log::info!("{}", action.progress());
    let errno = ctx.sys.reboot(action);
    log::error!("reboot(2) for {} failed: {errno}", action.name());
}

/// `/etc/shutdown.d/*` in order, all within the hooks' share.
fn run_shutdown_hooks(ctx: &ShutdownContext<'_>, timeline: &mut Timeline) {
    let deadline = Instant::now() + ctx.budget.hooks;
    for hook in hooks::list(&ctx.layout.shutdown_d) {
        let what = format!("shutdown hook {}", hook.display());
        if Instant::now() >= deadline {
            log::warn!(
                "skipping {what}: the shutdown hooks' share of guestkit.shutdown_timeout is spent"
            );
            continue;
        }
        run_bounded(ctx, timeline, (&hook, &[]), &what, deadline);
    }
}

fn stop_everything(ctx: &ShutdownContext<'_>) {
    log::info!("sending SIGTERM to all processes");
    if ctx.sys.kill_all(Signal::SIGTERM).is_ok() && !wait_for_all(ctx.signals, ctx.budget.term) {
        log::info!("sending SIGKILL to all processes");
        let _ = ctx.sys.kill_all(Signal::SIGKILL);
        if !wait_for_all(ctx.signals, KILL_WAIT) {
            log::warn!("some processes did not exit after SIGKILL");
        }
    }
}

/// Unmounts the machine's filesystems with the real system, at most T.
fn unmount_all(bound: Duration) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return;
    };
    if !unmount_bounded(&RealSys, mounts, bound) {
        log::warn!(
            "unmounting did not finish within {:.1}s (guestkit.shutdown_timeout); going on",
            bound.as_secs_f64()
        );
    }
}

/// [`unmount_mounts`] on a thread, waited for at most `bound`: an unmount can block for good on a dead disk
/// or server, and power-off must go on. False when the bound was spent (the thread is left behind).
pub fn unmount_bounded(sys: &'static dyn Sys, proc_mounts: String, bound: Duration) -> bool {
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("unmount".into())
        .spawn(move || {
            unmount_mounts(sys, &proc_mounts);
            let _ = done.send(());
        });
    match spawned {
        Ok(_) => finished.recv_timeout(bound).is_ok(),
        Err(e) => {
            log::warn!("unmounting: no thread ({e}); leaving filesystems mounted");
            true
        }
    }
}

/// Unmounts what [`unmount_order`] lists; a disk filesystem that stays busy is remounted read-only
/// instead, and a disk root is remounted read-only last, so nothing is left half-written.
pub fn unmount_mounts(sys: &dyn Sys, proc_mounts: &str) {
    for (target, detach) in unmount_order(proc_mounts) {
        match sys.umount(&target, detach) {
            Ok(()) => {}
            Err(e) if detach => log::warn!("unmounting {}: {e}", target.display()),
            Err(e) => match sys.mount(&read_only(&target)) {
                Ok(()) => log::warn!("unmounting {}: {e}; remounted read-only", target.display()),
                Err(ro) => log::warn!(
                    "unmounting {}: {e}; remounting read-only: {ro}",
                    target.display()
                ),
            },
        }
    }
    if root_is_disk(proc_mounts)
        && let Err(e) = sys.mount(&read_only(Path::new("/")))
    {
        log::warn!("remounting / read-only: {e}");
    }
}

/// Whether the filesystem mounted last on `/` is a disk filesystem (not the initramfs).
fn root_is_disk(proc_mounts: &str) -> bool {
    proc_mounts
        .lines()
        .rev()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            (target == "/").then_some(fstype)
        })
        .next()
        .is_some_and(|fstype| UNMOUNT.contains(&fstype))
}

fn read_only(target: &Path) -> MountArgs {
    MountArgs {
        source: String::new(),
        target: target.to_path_buf(),
        fstype: String::new(),
        flags: MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        data: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmounts_disks_in_reverse_and_detaches_network() {
        let mounts = "\
rootfs / rootfs rw 0 0
/dev/vda1 / ext4 rw 0 0
proc /proc proc rw 0 0
/dev/vdb /var/lib ext4 rw 0 0
/dev/vdc /var/lib/data xfs rw 0 0
server:/x /mnt/nfs nfs4 rw 0 0
overlay /containers/x/rootfs overlay rw 0 0
/dev/sr0 /mnt/my\\040cd iso9660 ro 0 0
tmpfs /run tmpfs rw 0 0
short line
";
        assert_eq!(
            unmount_order(mounts),
            vec![
                (PathBuf::from("/mnt/my cd"), false),
                (PathBuf::from("/containers/x/rootfs"), false),
                (PathBuf::from("/mnt/nfs"), true),
                (PathBuf::from("/var/lib/data"), false),
                (PathBuf::from("/var/lib"), false),
            ]
        );
    }

    #[test]
    fn busy_disks_are_remounted_read_only_and_a_disk_root_last() {
        use crate::recording_sys::{Call, RecordingSys};
        let mounts =
            "/dev/vda1 / ext4 rw 0 0\n/dev/vdb /data ext4 rw 0 0\n/dev/vdc /ok xfs rw 0 0\n";
        let sys = RecordingSys::new().failing("/data", nix::errno::Errno::EBUSY);
        unmount_mounts(&sys, mounts);
        assert_eq!(
            sys.calls(),
            vec![
                Call::Umount {
                    target: "/ok".into(),
                    detach: false
                },
                Call::Umount {
                    target: "/data".into(),
                    detach: false
                },
                Call::Mount(read_only(Path::new("/data"))),
                Call::Mount(read_only(Path::new("/"))),
            ]
        );
        let ramfs_root = RecordingSys::new();
        unmount_mounts(&ramfs_root, "rootfs / rootfs rw 0 0\n");
        assert!(ramfs_root.calls().is_empty());
    }

    #[test]
    fn budget_bounds_every_step() {
        let budget = Budget::split(Duration::from_secs(2));
        assert_eq!(budget.hooks, Duration::from_secs(4));
        assert_eq!(budget.service, Duration::from_secs(4));
        assert_eq!(budget.term, Duration::from_secs(2));
        assert_eq!(budget.total(), Duration::from_secs(20));
        let default = Budget::split(crate::cmdline::DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(default.total(), Duration::from_secs(41));
        let max = Budget::split(crate::cmdline::MAX_SHUTDOWN_TIMEOUT);
        assert_eq!(max.total(), Duration::from_secs(7 * 3600 + 6));
    }

    #[test]
    fn unescapes_octal_only_when_valid() {
        let cases = [
            ("a\\040b", "a b"),
            ("a\\04", "a\\04"),
            ("a\\999", "a\\999"),
            ("\\134", "\\"),
            ("", ""),
        ];
        for (i, (input, want)) in cases.iter().enumerate() {
            assert_eq!(unescape(input), *want, "case {i}");
        }
    }
}
