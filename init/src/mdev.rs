//! Compatibility for images that use busybox `mdev` (docs/linuxkit.md §4.4): when `/sbin/mdev` and `/etc/mdev.conf` exist,
//! the kernel's uevent helper becomes `/sbin/mdev`, USB devices' `add` events are replayed, and
//! `mdev -s` runs once. Without an `mdev.conf` none of this happens: devtmpfs already makes the nodes,
//! cold plug loads the drivers, and one mdev process per uevent would only slow the boot.

use std::path::{Path, PathBuf};

use crate::sys::Sys;

/// The mdev binary.
pub const MDEV: &str = "/sbin/mdev";

/// Whether the image opts in to mdev.
pub fn wanted(root: &Path) -> bool {
    root.join("sbin/mdev").exists() && root.join("etc/mdev.conf").exists()
}

/// `<sys>/devices/usb*` entries with a `uevent` file, in name order.
pub fn usb_uevents(sys_devices: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(sys_devices) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("usb"))
        .map(|e| e.path().join("uevent"))
        .filter(|p| p.exists())
        .collect();
    files.sort();
    files
}

/// Sets the uevent helper and replays the USB events (mdev -s is run by the caller, which reaps it).
pub fn prepare(sys: &dyn Sys, proc_sys_kernel: &Path, sys_devices: &Path) {
    let hotplug = proc_sys_kernel.join("hotplug");
    if let Err(e) = sys.write_file(&hotplug, MDEV.as_bytes()) {
        log::error!("writing {}: {e}", hotplug.display());
    }
    for uevent in usb_uevents(sys_devices) {
        if let Err(e) = sys.write_file(&uevent, b"add") {
            log::error!("writing {}: {e}", uevent.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording_sys::{Call, RecordingSys};

    #[test]
    fn sets_helper_and_replays_usb_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let devices = dir.path().join("devices");
        for d in ["usb1", "usb2", "pci0000:00", "usb3-nouevent"] {
            std::fs::create_dir_all(devices.join(d)).unwrap_or_else(|e| panic!("{e}"));
        }
        for d in ["usb2", "usb1", "pci0000:00"] {
            std::fs::write(devices.join(d).join("uevent"), "").unwrap_or_else(|e| panic!("{e}"));
        }
        let sys = RecordingSys::new();
        prepare(&sys, Path::new("/proc/sys/kernel"), &devices);
        let w = |p: PathBuf, v: &str| Call::WriteFile {
            path: p,
            contents: v.as_bytes().to_vec(),
        };
        assert_eq!(
            sys.calls(),
            vec![
                w("/proc/sys/kernel/hotplug".into(), "/sbin/mdev"),
                w(devices.join("usb1/uevent"), "add"),
                w(devices.join("usb2/uevent"), "add"),
            ]
        );
    }

    #[test]
    fn needs_both_binary_and_config() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("sbin")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("etc")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("sbin/mdev"), "").unwrap_or_else(|e| panic!("{e}"));
        assert!(!wanted(dir.path()));
        std::fs::write(dir.path().join("etc/mdev.conf"), "").unwrap_or_else(|e| panic!("{e}"));
        assert!(wanted(dir.path()));
    }
}
