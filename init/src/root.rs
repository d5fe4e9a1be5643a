//! Making an initramfs root usable by `pivot_root` (runc needs it).
//!
//! LinuxKit copies the initramfs into a fresh tmpfs (docs/linuxkit.md §2). That is not needed: `pivot_root` only fails
//! because the initramfs `rootfs` is not a mount with a parent. A recursive bind of `/` onto a
//! directory, moved over `/` and entered with `chroot`, gives `/` a parent at no copying cost; the files
//! stay where the kernel unpacked them. Any other root filesystem (ISO, squashfs, ext4, ...) is left alone.
//!
//! `/` itself must not be world-writable. The kernel's rootfs starts out 1777 and keeps that mode unless the
//! initramfs has a `.` entry; `cargo xtask build` and `linuxkit build` (from a kernel image whose
//! `kernel.tar` starts with `./`) write one, other builders may not. Init sets such a root to 0755.

use crate::plan::{OnError, Planned, Step, mount, step};

/// `statfs` magic of ramfs.
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;
/// `statfs` magic of tmpfs.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// Whether a root of this filesystem type is the initramfs and needs the bind-and-move.
pub fn needs_move(fs_magic: u64) -> bool {
    fs_magic == RAMFS_MAGIC || fs_magic == TMPFS_MAGIC
}

/// The mode a world-writable `/` is given.
pub const SAFE_ROOT_MODE: u32 = 0o755;

/// The console line saying what `/` is: `root: / is 0755, owned by 0:0`.
pub fn describe(mode: u32, uid: u32, gid: u32) -> String {
    format!("root: / is {:04o}, owned by {uid}:{gid}", mode & 0o7777)
}

/// The step that takes write access to `/` away from others, when `mode` (`st_mode` of `/`) grants it.
pub fn protect(mode: u32) -> Option<Planned> {
    (mode & 0o002 != 0).then(|| {
        step(
            Step::Chmod {
                path: "/".into(),
                mode: SAFE_ROOT_MODE,
            },
            OnError::Log,
        )
    })
}

/// Bind `/` onto `staging`, move that mount over `/`, and chroot into it.
pub fn plan(staging: &str) -> Vec<Planned> {
    vec![
        step(
            Step::Mkdir {
                path: staging.into(),
                mode: 0o755,
            },
            OnError::Fatal,
        ),
        mount("/", staging, "", "rbind", OnError::Fatal),
        step(Step::Chdir(staging.into()), OnError::Fatal),
        mount(".", "/", "", "move", OnError::Fatal),
        step(Step::Chroot(".".into()), OnError::Fatal),
        step(Step::Chdir("/".into()), OnError::Fatal),
    ]
}

#[cfg(test)]
mod tests {
    use nix::mount::MsFlags;

    use super::*;
    use crate::plan::execute;
    use crate::recording_sys::{Call, RecordingSys};
    use crate::sys::MountArgs;

    #[test]
    fn only_ramfs_and_tmpfs_move() {
        let cases = [
            (RAMFS_MAGIC, true),
            (TMPFS_MAGIC, true),
            (0xEF53, false),
            (0x9660, false),
            (0x73717368, false),
        ];
        for (i, (magic, want)) in cases.iter().enumerate() {
            assert_eq!(needs_move(*magic), *want, "case {i}: {magic:#x}");
        }
    }

    #[test]
    fn a_world_writable_root_is_set_to_0755_and_nothing_else_is_touched() {
        for mode in [0o041777, 0o1777, 0o777, 0o757, 0o002] {
            let sys = RecordingSys::new();
            let plan: Vec<Planned> = protect(mode).into_iter().collect();
            assert_eq!(execute(&sys, &plan), Ok(()), "{mode:o}");
            assert_eq!(
                sys.calls(),
                vec![Call::Chmod {
                    path: "/".into(),
                    mode: 0o755
                }],
                "{mode:o}"
            );
        }
        for mode in [0o040755, 0o755, 0o700, 0o775, 0o1775, 0o000] {
            assert_eq!(protect(mode), None, "{mode:o}");
        }
    }

    #[test]
    fn a_failed_chmod_is_logged_not_fatal() {
        let sys = RecordingSys::new().failing("/", nix::errno::Errno::EROFS);
        let plan: Vec<Planned> = protect(0o1777).into_iter().collect();
        assert_eq!(execute(&sys, &plan), Ok(()));
    }

    #[test]
    fn the_console_line_shows_permission_bits_and_owner() {
        assert_eq!(describe(0o040755, 0, 0), "root: / is 0755, owned by 0:0");
        assert_eq!(describe(0o41777, 5, 6), "root: / is 1777, owned by 5:6");
    }

    #[test]
    fn binds_moves_and_chroots() {
        let sys = RecordingSys::new();
        assert_eq!(execute(&sys, &plan("/mnt")), Ok(()));
        let m = |source: &str, target: &str, flags| {
            Call::Mount(MountArgs {
                source: source.into(),
                target: target.into(),
                fstype: String::new(),
                flags,
                data: String::new(),
            })
        };
        assert_eq!(
            sys.calls(),
            vec![
                Call::Mkdir {
                    path: "/mnt".into(),
                    mode: 0o755
                },
                m("/", "/mnt", MsFlags::MS_BIND | MsFlags::MS_REC),
                Call::Chdir("/mnt".into()),
                m(".", "/", MsFlags::MS_MOVE),
                Call::Chroot(".".into()),
                Call::Chdir("/".into()),
            ]
        );
    }
}
