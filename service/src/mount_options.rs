//! fstab-style mount options (`runtime.json` `mounts[].options`) turned into `mount(2)` arguments.
//!
//! Differences from LinuxKit's `parseMountOptions`, all deliberate:
//! - `defaults` means "no flag" and is not passed to the filesystem as data.
//! - `rshared`, `rprivate`, `rslave` and `runbindable` are recursive propagation flags, not data.
//! - Propagation flags are kept apart from the other flags ([`MountArgs::propagation`]) so that the caller
//!   can apply them in a second `mount(2)` call: the kernel ignores them when `MS_REMOUNT` or `MS_BIND` is
//!   set, and treats a new mount carrying them as a pure propagation change (LinuxKit quirk docs/linuxkit.md §18.4).

use nix::mount::MsFlags;

/// What one list of options means to `mount(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountArgs {
    /// Flags for the main `mount(2)` call.
    pub flags: MsFlags,
    /// Propagation flags (`MS_SHARED`, `MS_PRIVATE`, ... possibly with `MS_REC`) for a second call.
    pub propagation: MsFlags,
    /// Comma-joined options the filesystem interprets itself (`size=1m`, `lowerdir=...`).
    pub data: String,
}

impl Default for MountArgs {
    fn default() -> Self {
        MountArgs {
            flags: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: String::new(),
        }
    }
}

impl MountArgs {
    /// Whether the bind mount asked for read-only, which needs a separate remount to take effect.
    pub fn is_readonly_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND) && self.flags.contains(MsFlags::MS_RDONLY)
    }
}

enum OptionEffect {
    Set(MsFlags),
    Clear(MsFlags),
    Propagation(MsFlags),
}

fn option_effect(option: &str) -> Option<OptionEffect> {
    use OptionEffect::{Clear, Propagation, Set};
    let effect = match option {
        "defaults" => Set(MsFlags::empty()),
        "bind" => Set(MsFlags::MS_BIND),
        "rbind" => Set(MsFlags::MS_BIND | MsFlags::MS_REC),
        "dirsync" => Set(MsFlags::MS_DIRSYNC),
        "mand" => Set(MsFlags::MS_MANDLOCK),
        "noatime" => Set(MsFlags::MS_NOATIME),
        "nodev" => Set(MsFlags::MS_NODEV),
        "nodiratime" => Set(MsFlags::MS_NODIRATIME),
        "noexec" => Set(MsFlags::MS_NOEXEC),
        "nosuid" => Set(MsFlags::MS_NOSUID),
        "relatime" => Set(MsFlags::MS_RELATIME),
        "remount" => Set(MsFlags::MS_REMOUNT),
        "ro" => Set(MsFlags::MS_RDONLY),
        "strictatime" => Set(MsFlags::MS_STRICTATIME),
        "sync" => Set(MsFlags::MS_SYNCHRONOUS),
        "async" => Clear(MsFlags::MS_SYNCHRONOUS),
        "atime" => Clear(MsFlags::MS_NOATIME),
        "dev" => Clear(MsFlags::MS_NODEV),
        "diratime" => Clear(MsFlags::MS_NODIRATIME),
        "exec" => Clear(MsFlags::MS_NOEXEC),
        "nomand" => Clear(MsFlags::MS_MANDLOCK),
        "norelatime" => Clear(MsFlags::MS_RELATIME),
        "nostrictatime" => Clear(MsFlags::MS_STRICTATIME),
        "rw" => Clear(MsFlags::MS_RDONLY),
        "suid" => Clear(MsFlags::MS_NOSUID),
        "private" => Propagation(MsFlags::MS_PRIVATE),
        "shared" => Propagation(MsFlags::MS_SHARED),
        "slave" => Propagation(MsFlags::MS_SLAVE),
        "unbindable" => Propagation(MsFlags::MS_UNBINDABLE),
        "rprivate" => Propagation(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
        "rshared" => Propagation(MsFlags::MS_SHARED | MsFlags::MS_REC),
        "rslave" => Propagation(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        "runbindable" => Propagation(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        _ => return None,
    };
    Some(effect)
}

/// Parses mount options in order; later options override earlier ones (`ro,rw` is read-write).
pub fn parse_mount_options<S: AsRef<str>>(options: &[S]) -> MountArgs {
    let mut args = MountArgs::default();
    let mut data: Vec<&str> = Vec::new();
    for option in options {
        let option = option.as_ref();
        match option_effect(option) {
            Some(OptionEffect::Set(flag)) => args.flags.insert(flag),
            Some(OptionEffect::Clear(flag)) => args.flags.remove(flag),
            Some(OptionEffect::Propagation(flag)) => args.propagation.insert(flag),
            None => data.push(option),
        }
    }
    args.data = data.join(",");
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_map_to_flags_propagation_and_data() {
        let cases: Vec<(Vec<&str>, MsFlags, MsFlags, &str)> = vec![
            (vec![], MsFlags::empty(), MsFlags::empty(), ""),
            (vec!["bind"], MsFlags::MS_BIND, MsFlags::empty(), ""),
            (
                vec!["rbind", "ro"],
                MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY,
                MsFlags::empty(),
                "",
            ),
            (vec!["ro", "rw"], MsFlags::empty(), MsFlags::empty(), ""),
            (
                vec!["remount", "private"],
                MsFlags::MS_REMOUNT,
                MsFlags::MS_PRIVATE,
                "",
            ),
            (
                vec!["defaults", "size=1m", "mode=700"],
                MsFlags::empty(),
                MsFlags::empty(),
                "size=1m,mode=700",
            ),
            (
                vec!["rshared"],
                MsFlags::empty(),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                "",
            ),
            (
                vec!["lowerdir=/a", "upperdir=/b", "workdir=/c", "nosuid"],
                MsFlags::MS_NOSUID,
                MsFlags::empty(),
                "lowerdir=/a,upperdir=/b,workdir=/c",
            ),
        ];
        for (i, (options, flags, propagation, data)) in cases.into_iter().enumerate() {
            let args = parse_mount_options(&options);
            assert_eq!(args.flags, flags, "case {i}: flags of {options:?}");
            assert_eq!(
                args.propagation, propagation,
                "case {i}: propagation of {options:?}"
            );
            assert_eq!(args.data, data, "case {i}: data of {options:?}");
        }
    }

    #[test]
    fn readonly_bind_is_detected() {
        assert!(parse_mount_options(&["bind", "ro"]).is_readonly_bind());
        assert!(!parse_mount_options(&["ro"]).is_readonly_bind());
    }
}
