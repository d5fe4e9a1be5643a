//! Shutdown (LinuxKit `rc.shutdown`, §6, plus a graceful service stop): shutdown hooks, `service
//! shutdown`, SIGTERM to everyone, a bounded wait, SIGKILL, sync, unmount disk filesystems in reverse
//! mount order, then `reboot(2)`.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use crate::hooks;
use crate::layout::Layout;
use crate::power::PowerAction;
use crate::supervisor::{OnPowerRequest, Signals, Waited, describe, wait_for, wait_for_all};
use crate::sys::Sys;
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

/// What shutdown needs.
#[derive(Debug)]
pub struct ShutdownContext<'a> {
    /// The system.
    pub sys: &'a dyn Sys,
    /// Signals (for reaping while waiting).
    pub signals: &'a Signals,
    /// Paths.
    pub layout: &'a Layout,
    /// How long to wait after SIGTERM.
    pub timeout: Duration,
    /// Whether init owns the machine's mounts (false when running in a container or test namespace).
    pub unmount: bool,
}

fn run_hook(
    ctx: &ShutdownContext<'_>,
    timeline: &mut Timeline,
    path: &std::path::Path,
    args: &[&str],
) {
    let name = path.display().to_string();
    log::info!(
        "starting {name}{}",
        args.iter().map(|a| format!(" {a}")).collect::<String>()
    );
    timeline.event("hook-start", Some(&name));
    match hooks::spawn(path, args) {
        Ok(pid) => {
            let waited = wait_for(ctx.signals, pid, OnPowerRequest::Ignore);
            match waited {
                Waited::Exited(WaitStatus::Exited(_, 0)) => {}
                Waited::Exited(status) => log::warn!("{name}: {}", describe(status)),
                Waited::PowerRequest(_) => {}
            }
        }
        Err(e) => log::error!("starting {name}: {e}"),
    }
    timeline.event("hook-end", Some(&name));
}

/// Runs the whole sequence and makes the `reboot(2)` call. Returns only if that call failed.
pub fn shutdown(ctx: &ShutdownContext<'_>, timeline: &mut Timeline, action: PowerAction) {
    log::info!("shutting down ({})", action.name());
    timeline.event("shutdown-start", Some(action.name()));
    for hook in hooks::list(&ctx.layout.shutdown_d) {
        run_hook(ctx, timeline, &hook, &[]);
    }
    if ctx.layout.service.is_file() && ctx.layout.containerd_sock.exists() {
        run_hook(ctx, timeline, &ctx.layout.service, &["shutdown"]);
    }
    stop_everything(ctx);
    ctx.sys.sync();
    if ctx.unmount {
        unmount_all(ctx);
    }
    timeline.event("shutdown-end", Some(action.name()));
    log::info!("{}", action.progress());
    let errno = ctx.sys.reboot(action);
    log::error!("reboot(2) for {} failed: {errno}", action.name());
}

fn stop_everything(ctx: &ShutdownContext<'_>) {
    log::info!("sending SIGTERM to all processes");
    if ctx.sys.kill_all(Signal::SIGTERM).is_ok() && !wait_for_all(ctx.signals, ctx.timeout) {
        log::info!("sending SIGKILL to all processes");
        let _ = ctx.sys.kill_all(Signal::SIGKILL);
        if !wait_for_all(ctx.signals, Duration::from_secs(2)) {
            log::warn!("some processes did not exit after SIGKILL");
        }
    }
}

fn unmount_all(ctx: &ShutdownContext<'_>) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return;
    };
    for (target, detach) in unmount_order(&mounts) {
        if let Err(e) = ctx.sys.umount(&target, detach) {
            log::warn!("unmounting {}: {e}", target.display());
        }
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
