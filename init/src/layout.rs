//! Where things are. The defaults are LinuxKit's paths; `GUESTKIT_*` environment variables override the
//! hook directories and the service binary, so process tests can run the real binary as PID 1 on a host
//! without touching the host's own `/etc/init.d`. (The kernel passes dot-less `key=value` command-line
//! words to init as environment variables, so the overrides also work in a VM.)

use std::path::PathBuf;

/// The paths init uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Boot hooks (`/etc/init.d`).
    pub init_d: PathBuf,
    /// Shutdown hooks (`/etc/shutdown.d`).
    pub shutdown_d: PathBuf,
    /// The service binary whose `shutdown` subcommand stops services gracefully.
    pub service: PathBuf,
    /// containerd's socket; graceful service stop runs only when it exists.
    pub containerd_sock: PathBuf,
    /// The boot timeline file.
    pub timeline: PathBuf,
    /// `/lib/modules`.
    pub lib_modules: PathBuf,
    /// Input devices watched for the power button.
    pub dev_input: PathBuf,
    /// The emergency shell.
    pub shell: PathBuf,
    /// The kernel command line.
    pub cmdline: PathBuf,
}

impl Layout {
    /// LinuxKit's paths.
    pub fn standard() -> Layout {
        Layout {
            init_d: "/etc/init.d".into(),
            shutdown_d: "/etc/shutdown.d".into(),
            service: "/usr/bin/service".into(),
            containerd_sock: "/run/containerd/containerd.sock".into(),
            timeline: crate::timeline::DEFAULT_PATH.into(),
            lib_modules: "/lib/modules".into(),
            dev_input: "/dev/input".into(),
            shell: "/bin/sh".into(),
            cmdline: "/proc/cmdline".into(),
        }
    }

    /// The standard paths with overrides from `GUESTKIT_INIT_D`, `GUESTKIT_SHUTDOWN_D`, `GUESTKIT_SERVICE`,
    /// `GUESTKIT_TIMELINE`, `GUESTKIT_CONTAINERD_SOCK` and `GUESTKIT_CMDLINE`, looked up through `var`.
    pub fn with_overrides(var: impl Fn(&str) -> Option<String>) -> Layout {
        let mut layout = Layout::standard();
        let fields = [
            ("GUESTKIT_INIT_D", &mut layout.init_d),
            ("GUESTKIT_SHUTDOWN_D", &mut layout.shutdown_d),
            ("GUESTKIT_SERVICE", &mut layout.service),
            ("GUESTKIT_TIMELINE", &mut layout.timeline),
            ("GUESTKIT_CONTAINERD_SOCK", &mut layout.containerd_sock),
            ("GUESTKIT_CMDLINE", &mut layout.cmdline),
        ];
        for (name, field) in fields {
            if let Some(value) = var(name).filter(|v| !v.is_empty()) {
                *field = value.into();
            }
        }
        layout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_named_paths() {
        let layout = Layout::with_overrides(|name| match name {
            "GUESTKIT_INIT_D" => Some("/tmp/x/init.d".into()),
            "GUESTKIT_SERVICE" => Some(String::new()),
            _ => None,
        });
        assert_eq!(layout.init_d, PathBuf::from("/tmp/x/init.d"));
        assert_eq!(layout.service, PathBuf::from("/usr/bin/service"));
        assert_eq!(layout.shutdown_d, PathBuf::from("/etc/shutdown.d"));
    }
}
