//! The boot mount table of LinuxKit's `rc.init` (docs/linuxkit.md §4.2), in its exact order, as a plan.
//!
//! One deliberate divergence: directories asked for as `01777` really get `01777` (LinuxKit passes the
//! mode as a raw Go `FileMode`, which drops the sticky bit, so its `/var/tmp` ends up `0755`, docs/linuxkit.md §18.21).

use std::path::PathBuf;

use crate::plan::{OnError, Planned, Step, mount, step};

const NNNR: &str = "nodev,nosuid,noexec,relatime";
const NNN: &str = "noexec,nosuid,nodev";

/// Mount points that must exist before `/` turns read-only; creating them is best effort.
const MOUNT_POINTS: [&str; 6] = ["/proc", "/sys", "/dev", "/run", "/tmp", "/var"];

const VAR_DIRS: [(&str, u32); 9] = [
    ("/var/cache", 0o755),
    ("/var/empty", 0o555),
    ("/var/lib", 0o755),
    ("/var/local", 0o755),
    ("/var/lock", 0o755),
    ("/var/log", 0o755),
    ("/var/opt", 0o755),
    ("/var/spool", 0o755),
    ("/var/tmp", 0o1777),
];

/// `(path, mode, major, minor)` of the character devices rc.init creates (EEXIST is fine).
pub const DEVICES: [(&str, u32, u64, u64); 5] = [
    ("/dev/console", 0o600, 5, 1),
    ("/dev/tty1", 0o620, 4, 1),
    ("/dev/tty", 0o666, 5, 0),
    ("/dev/null", 0o666, 1, 3),
    ("/dev/kmsg", 0o660, 1, 11),
];

/// `(link, target)` of the /dev symlinks.
pub const DEV_LINKS: [(&str, &str); 5] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/kcore", "/proc/kcore"),
];

/// `(source, target, fstype, options)` of the silent optional mounts (row 16).
const OPTIONAL: [(&str, &str, &str, &str); 9] = [
    ("securityfs", "/sys/kernel/security", "securityfs", NNN),
    ("debugfs", "/sys/kernel/debug", "debugfs", NNN),
    ("configfs", "/sys/kernel/config", "configfs", NNN),
    ("fusectl", "/sys/fs/fuse/connections", "fusectl", NNN),
    ("selinuxfs", "/sys/fs/selinux", "selinuxfs", "noexec,nosuid"),
    ("pstore", "/sys/fs/pstore", "pstore", NNN),
    ("bpffs", "/sys/fs/bpf", "bpf", "nodev"),
    ("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", NNN),
    (
        "binfmt_misc",
        "/proc/sys/fs/binfmt_misc",
        "binfmt_misc",
        NNN,
    ),
];

fn mkdir(path: &str, mode: u32, on_error: OnError) -> Planned {
    step(
        Step::Mkdir {
            path: path.into(),
            mode,
        },
        on_error,
    )
}

/// Rows 1–16: everything up to (not including) the cgroups.
pub fn filesystems() -> Vec<Planned> {
    let mut plan: Vec<Planned> = MOUNT_POINTS
        .iter()
        .map(|p| mkdir(p, 0o755, OnError::Ignore))
        .collect();
    plan.push(mount("proc", "/proc", "proc", NNNR, OnError::Fatal));
    plan.push(mount("", "/", "", "remount,ro", OnError::Ignore));
    plan.push(mount(
        "tmpfs",
        "/run",
        "tmpfs",
        "nodev,nosuid,noexec,relatime,size=10%,mode=755",
        OnError::Log,
    ));
    plan.push(mount(
        "tmpfs",
        "/tmp",
        "tmpfs",
        "nodev,nosuid,noexec,relatime,size=10%,mode=1777",
        OnError::Log,
    ));
    plan.push(mount(
        "tmpfs",
        "/var",
        "tmpfs",
        "nodev,nosuid,noexec,relatime,size=50%,mode=755",
        OnError::Log,
    ));
    plan.extend(VAR_DIRS.iter().map(|(p, m)| mkdir(p, *m, OnError::Log)));
    plan.push(step(
        Step::Symlink {
            target: "/run".into(),
            link: "/var/run".into(),
        },
        OnError::LogUnlessExists,
    ));
    plan.push(mount(
        "dev",
        "/dev",
        "devtmpfs",
        "nosuid,noexec,relatime,size=10m,nr_inodes=248418,mode=755",
        OnError::Fatal,
    ));
    plan.extend(DEVICES.iter().map(|(p, mode, major, minor)| {
        let dev = Step::CharDevice {
            path: p.into(),
            mode: *mode,
            major: *major,
            minor: *minor,
        };
        step(dev, OnError::LogUnlessExists)
    }));
    plan.extend(DEV_LINKS.iter().map(|(link, target)| {
        step(
            Step::Symlink {
                target: target.into(),
                link: link.into(),
            },
            OnError::LogUnlessExists,
        )
    }));
    plan.push(mkdir("/dev/mqueue", 0o1777, OnError::Log));
    plan.push(mkdir("/dev/shm", 0o1777, OnError::Log));
    plan.push(mkdir("/dev/pts", 0o755, OnError::Log));
    plan.push(mount("mqueue", "/dev/mqueue", "mqueue", NNN, OnError::Log));
    plan.push(mount(
        "shm",
        "/dev/shm",
        "tmpfs",
        "noexec,nosuid,nodev,mode=1777",
        OnError::Log,
    ));
    plan.push(mount(
        "devpts",
        "/dev/pts",
        "devpts",
        "noexec,nosuid,gid=5,mode=0620",
        OnError::Log,
    ));
    plan.push(mount("sysfs", "/sys", "sysfs", NNN, OnError::Fatal));
    plan.extend(
        OPTIONAL
            .iter()
            .map(|(s, t, f, o)| mount(s, t, f, o, OnError::Ignore)),
    );
    plan
}

/// Row 18: make every mount shared, recursively, so container runtimes can choose propagation.
pub fn rshared() -> Vec<Planned> {
    vec![mount("", "/", "", "rshared", OnError::Log)]
}

/// The mount points of the table, in order, for documentation and tests.
pub fn targets(plan: &[Planned]) -> Vec<PathBuf> {
    plan.iter()
        .filter_map(|p| match &p.step {
            Step::Mount(m) => Some(m.target.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use nix::mount::MsFlags;

    use super::*;
    use crate::sys::MountArgs;

    fn find<'a>(plan: &'a [Planned], target: &str) -> &'a MountArgs {
        plan.iter()
            .find_map(|p| match &p.step {
                Step::Mount(m) if m.target == std::path::Path::new(target) => Some(m),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no mount on {target}"))
    }

    #[test]
    fn order_matches_rc_init() {
        let want = [
            "/proc",
            "/",
            "/run",
            "/tmp",
            "/var",
            "/dev",
            "/dev/mqueue",
            "/dev/shm",
            "/dev/pts",
            "/sys",
        ];
        let got = targets(&filesystems());
        let core: Vec<_> = got.iter().take(want.len()).collect();
        assert_eq!(
            core,
            want.iter()
                .map(PathBuf::from)
                .collect::<Vec<_>>()
                .iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(got.len(), want.len() + OPTIONAL.len());
    }

    #[test]
    fn sizes_modes_and_flags() {
        let plan = filesystems();
        let nnnr =
            MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME;
        let nnn = MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        let cases: &[(&str, &str, MsFlags, &str)] = &[
            ("/proc", "proc", nnnr, ""),
            ("/", "", MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, ""),
            ("/run", "tmpfs", nnnr, "size=10%,mode=755"),
            ("/tmp", "tmpfs", nnnr, "size=10%,mode=1777"),
            ("/var", "tmpfs", nnnr, "size=50%,mode=755"),
            (
                "/dev",
                "devtmpfs",
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME,
                "size=10m,nr_inodes=248418,mode=755",
            ),
            ("/dev/mqueue", "mqueue", nnn, ""),
            ("/dev/shm", "tmpfs", nnn, "mode=1777"),
            (
                "/dev/pts",
                "devpts",
                MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID,
                "gid=5,mode=0620",
            ),
            ("/sys", "sysfs", nnn, ""),
            ("/sys/fs/bpf", "bpf", MsFlags::MS_NODEV, ""),
            (
                "/sys/fs/selinux",
                "selinuxfs",
                MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID,
                "",
            ),
        ];
        for (i, (target, fstype, flags, data)) in cases.iter().enumerate() {
            let m = find(&plan, target);
            assert_eq!(
                (m.fstype.as_str(), m.flags, m.data.as_str()),
                (*fstype, *flags, *data),
                "case {i}: {target}"
            );
        }
    }

    #[test]
    fn var_tmp_is_sticky_unlike_linuxkit() {
        let plan = filesystems();
        let var_tmp = Step::Mkdir {
            path: "/var/tmp".into(),
            mode: 0o1777,
        };
        assert!(plan.iter().any(|p| p.step == var_tmp));
    }

    #[test]
    fn only_optional_mounts_and_mount_points_are_silent() {
        let silent: Vec<_> = filesystems()
            .into_iter()
            .filter(|p| p.on_error == OnError::Ignore)
            .collect();
        assert_eq!(silent.len(), MOUNT_POINTS.len() + 1 + OPTIONAL.len());
    }
}
