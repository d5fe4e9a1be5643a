//! Making an initramfs root usable by `pivot_root` (runc needs it).
//!
//! LinuxKit copies the initramfs into a fresh tmpfs (§2). That is not needed: `pivot_root` only fails
//! because the initramfs `rootfs` is not a mount with a parent. A recursive bind of `/` onto a
//! directory, moved over `/` and entered with `chroot`, gives `/` a parent at no copying cost; the files
//! stay where the kernel unpacked them. Any other root filesystem (ISO, squashfs, ext4, ...) is left alone.

use crate::plan::{OnError, Planned, Step, mount, step};

/// `statfs` magic of ramfs.
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;
/// `statfs` magic of tmpfs.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// Whether a root of this filesystem type is the initramfs and needs the bind-and-move.
pub fn needs_move(fs_magic: u64) -> bool {
    fs_magic == RAMFS_MAGIC || fs_magic == TMPFS_MAGIC
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
