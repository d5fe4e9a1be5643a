//! The rest of rc.init's setup (docs/linuxkit.md §4.5): loopback, resource limits, hostname and resolv.conf.

use std::path::{Path, PathBuf};

use nix::sys::resource::{RLIM_INFINITY, Resource};

use crate::sys::Sys;

/// LinuxKit's limits: 1048576 open files, unlimited processes (inherited by every child).
pub fn set_limits(sys: &dyn Sys) {
    let limits = [
        (Resource::RLIMIT_NOFILE, 1_048_576, 1_048_576),
        (Resource::RLIMIT_NPROC, RLIM_INFINITY, RLIM_INFINITY),
    ];
    for (resource, soft, hard) in limits {
        if let Err(e) = sys.setrlimit(resource, soft, hard) {
            log::error!("setting {resource:?}: {e}");
        }
    }
}

/// Brings `lo` up; the kernel adds 127.0.0.1/8 and ::1 by itself.
pub fn loopback_up(sys: &dyn Sys) {
    if let Err(e) = sys.interface_up("lo") {
        log::error!("bringing up lo: {e}");
    }
}

/// The hostname to set: `/etc/hostname` when it has content, else `linuxkit-<mac without colons>` if the
/// kernel still has no name (`(none)`) and eth0 has an address.
pub fn choose_hostname(
    etc_hostname: Option<&str>,
    current: &str,
    eth0_mac: Option<&str>,
) -> Option<String> {
    if let Some(name) = etc_hostname.map(str::trim).filter(|n| !n.is_empty()) {
        return Some(name.to_string());
    }
    let current = current.trim();
    if !current.is_empty() && current != "(none)" {
        return None;
    }
    let mac: String = eth0_mac?.trim().chars().filter(|c| *c != ':').collect();
    (!mac.is_empty()).then(|| format!("linuxkit-{mac}"))
}

/// Sets the hostname from `/etc/hostname` or eth0's address.
pub fn set_hostname(sys: &dyn Sys, etc: &Path, sys_class_net: &Path) {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let current = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let chosen = choose_hostname(
        read(etc.join("hostname")).as_deref(),
        &current,
        read(sys_class_net.join("eth0/address")).as_deref(),
    );
    if let Some(name) = chosen {
        match sys.sethostname(&name) {
            Ok(()) => log::info!("hostname {name}"),
            Err(e) => log::error!("setting hostname {name:?}: {e}"),
        }
    }
}

/// Where a `resolv.conf` symlink points, made absolute against the link's directory.
pub fn resolv_target(link: &Path, target: &Path) -> PathBuf {
    match link.parent() {
        Some(dir) if target.is_relative() => dir.join(target),
        _ => target.to_path_buf(),
    }
}

/// If `/etc/resolv.conf` is a symlink, creates its target's directory and an empty target file.
pub fn prepare_resolv_conf(sys: &dyn Sys, link: &Path) {
    let Ok(target) = std::fs::read_link(link) else {
        return;
    };
    let target = resolv_target(link, &target);
    if target.exists() {
        return;
    }
    if let Some(dir) = target.parent()
        && let Err(e) = sys.mkdir_all(dir, 0o755)
    {
        log::error!("creating {}: {e}", dir.display());
        return;
    }
    if let Err(e) = sys.write_file(&target, b"") {
        log::error!("creating {}: {e}", target.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording_sys::{Call, RecordingSys};

    #[test]
    fn hostname_choice() {
        let mac = Some("02:50:00:00:00:01\n");
        let cases = [
            (Some("myhost\n"), "(none)", mac, Some("myhost")),
            (Some("  \n"), "(none)", mac, Some("linuxkit-025000000001")),
            (None, "(none)", mac, Some("linuxkit-025000000001")),
            (None, "", mac, Some("linuxkit-025000000001")),
            (None, "already", mac, None),
            (None, "(none)", None, None),
            (None, "(none)", Some(""), None),
        ];
        for (i, (etc, current, mac, want)) in cases.iter().enumerate() {
            assert_eq!(
                choose_hostname(*etc, current, *mac).as_deref(),
                *want,
                "case {i}"
            );
        }
    }

    #[test]
    fn limits_match_linuxkit() {
        let sys = RecordingSys::new();
        set_limits(&sys);
        assert_eq!(
            sys.calls(),
            vec![
                Call::Setrlimit {
                    resource: Resource::RLIMIT_NOFILE,
                    soft: 1_048_576,
                    hard: 1_048_576
                },
                Call::Setrlimit {
                    resource: Resource::RLIMIT_NPROC,
                    soft: RLIM_INFINITY,
                    hard: RLIM_INFINITY
                },
            ]
        );
    }

    #[test]
    fn resolv_conf_symlink_target_is_created() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let link = dir.path().join("resolv.conf");
        std::os::unix::fs::symlink("/run/resolvconf/resolv.conf", &link)
            .unwrap_or_else(|e| panic!("{e}"));
        let sys = RecordingSys::new();
        prepare_resolv_conf(&sys, &link);
        assert_eq!(
            sys.calls(),
            vec![
                Call::Mkdir {
                    path: "/run/resolvconf".into(),
                    mode: 0o755
                },
                Call::WriteFile {
                    path: "/run/resolvconf/resolv.conf".into(),
                    contents: vec![]
                },
            ]
        );
        assert_eq!(
            resolv_target(Path::new("/etc/resolv.conf"), Path::new("../run/r")),
            PathBuf::from("/etc/../run/r")
        );
    }
}
