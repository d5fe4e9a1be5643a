//! fstab-style mount option strings (`nodev,nosuid,size=10%,mode=755`) split into `mount(2)` flags and the
//! filesystem data string.
//!
//! Unlike LinuxKit's `parseMountOptions` (docs/linuxkit.md §18.5), propagation words (`rshared`, `rprivate`, ...) and
//! `defaults` are flags, never data.

use nix::mount::MsFlags;

/// The two halves of an option string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for `mount(2)`.
    pub flags: MsFlags,
    /// Everything that is not a flag, comma-joined, in order (for example `size=10%,mode=755`).
    pub data: String,
}

/// What one option word does to the flags.
enum Effect {
    Set(MsFlags),
    Clear(MsFlags),
}

fn effect(word: &str) -> Option<Effect> {
    use Effect::{Clear, Set};
    Some(match word {
        "defaults" => Set(MsFlags::empty()),
        "ro" => Set(MsFlags::MS_RDONLY),
        "rw" => Clear(MsFlags::MS_RDONLY),
        "nosuid" => Set(MsFlags::MS_NOSUID),
        "suid" => Clear(MsFlags::MS_NOSUID),
        "nodev" => Set(MsFlags::MS_NODEV),
        "dev" => Clear(MsFlags::MS_NODEV),
        "noexec" => Set(MsFlags::MS_NOEXEC),
        "exec" => Clear(MsFlags::MS_NOEXEC),
        "sync" => Set(MsFlags::MS_SYNCHRONOUS),
        "async" => Clear(MsFlags::MS_SYNCHRONOUS),
        "remount" => Set(MsFlags::MS_REMOUNT),
        "mand" => Set(MsFlags::MS_MANDLOCK),
        "nomand" => Clear(MsFlags::MS_MANDLOCK),
        "dirsync" => Set(MsFlags::MS_DIRSYNC),
        "noatime" => Set(MsFlags::MS_NOATIME),
        "atime" => Clear(MsFlags::MS_NOATIME),
        "nodiratime" => Set(MsFlags::MS_NODIRATIME),
        "diratime" => Clear(MsFlags::MS_NODIRATIME),
        "bind" => Set(MsFlags::MS_BIND),
        "rbind" => Set(MsFlags::MS_BIND.union(MsFlags::MS_REC)),
        "move" => Set(MsFlags::MS_MOVE),
        "silent" => Set(MsFlags::MS_SILENT),
        "relatime" => Set(MsFlags::MS_RELATIME),
        "norelatime" => Clear(MsFlags::MS_RELATIME),
        "strictatime" => Set(MsFlags::MS_STRICTATIME),
        "lazytime" => Set(MsFlags::MS_LAZYTIME),
        "shared" => Set(MsFlags::MS_SHARED),
        "rshared" => Set(MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
        "private" => Set(MsFlags::MS_PRIVATE),
        "rprivate" => Set(MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
        "slave" => Set(MsFlags::MS_SLAVE),
        "rslave" => Set(MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
        "unbindable" => Set(MsFlags::MS_UNBINDABLE),
        "runbindable" => Set(MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
        _ => return None,
    })
}

impl MountOptions {
    /// Splits an option string. Never fails: unknown words are filesystem data; empty words are dropped.
    pub fn parse(options: &str) -> MountOptions {
        let mut parsed = MountOptions {
            flags: MsFlags::empty(),
            data: String::new(),
        };
        let mut data: Vec<&str> = Vec::new();
        for word in options.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match effect(word) {
                Some(Effect::Set(f)) => parsed.flags.insert(f),
                Some(Effect::Clear(f)) => parsed.flags.remove(f),
                None => data.push(word),
            }
        }
        parsed.data = data.join(",");
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NNNR: MsFlags = MsFlags::MS_NODEV
        .union(MsFlags::MS_NOSUID)
        .union(MsFlags::MS_NOEXEC)
        .union(MsFlags::MS_RELATIME);

    #[test]
    fn splits_flags_from_data() {
        let cases: &[(&str, MsFlags, &str)] = &[
            ("", MsFlags::empty(), ""),
            ("defaults", MsFlags::empty(), ""),
            ("nodev,nosuid,noexec,relatime", NNNR, ""),
            (
                "nodev,nosuid,noexec,relatime,size=10%,mode=755",
                NNNR,
                "size=10%,mode=755",
            ),
            ("mode=1777,noexec", MsFlags::MS_NOEXEC, "mode=1777"),
            ("ro,rw", MsFlags::empty(), ""),
            ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC), ""),
            (
                "rbind,ro",
                MsFlags::MS_BIND
                    .union(MsFlags::MS_REC)
                    .union(MsFlags::MS_RDONLY),
                "",
            ),
            (",,gid=5, mode=0620 ,", MsFlags::empty(), "gid=5,mode=0620"),
            ("none,name=systemd", MsFlags::empty(), "none,name=systemd"),
            (
                "remount,ro",
                MsFlags::MS_REMOUNT.union(MsFlags::MS_RDONLY),
                "",
            ),
        ];
        for (i, (input, flags, data)) in cases.iter().enumerate() {
            let got = MountOptions::parse(input);
            assert_eq!(got.flags, *flags, "case {i}: {input:?}");
            assert_eq!(got.data, *data, "case {i}: {input:?}");
        }
    }
}
