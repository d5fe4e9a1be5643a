//! Cold plug: load a driver for every device the kernel found before init ran.

use std::path::Path;

use super::{LoadError, Loader, ModuleIndex};

/// The distinct `modalias` strings of `<sys>/bus/*/devices/*/modalias`, in directory order.
pub fn read_modaliases(sys: &Path) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for bus in sorted_entries(&sys.join("bus")) {
        for device in sorted_entries(&bus.join("devices")) {
            let Ok(text) = std::fs::read_to_string(device.join("modalias")) else {
                continue;
            };
            let alias = text.trim();
            if !alias.is_empty() && !found.iter().any(|a| a == alias) {
                found.push(alias.to_string());
            }
        }
    }
    found
}

fn sorted_entries(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    paths
}

/// The modules the devices need, in first-seen order, without duplicates.
pub fn modules_for(index: &ModuleIndex, modaliases: &[String]) -> Vec<String> {
    let mut wanted: Vec<String> = Vec::new();
    for alias in modaliases {
        for module in index.lookup_alias(alias) {
            if !wanted.contains(&module) {
                wanted.push(module);
            }
        }
    }
    wanted
}

/// Loads every module the devices need; returns the failures.
pub fn coldplug(
    loader: &mut Loader<'_>,
    index: &ModuleIndex,
    modaliases: &[String],
) -> Vec<LoadError> {
    loader.load(&modules_for(index, modaliases), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_modaliases_from_a_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let add = |bus: &str, dev: &str, alias: &str| {
            let d = dir.path().join("bus").join(bus).join("devices").join(dev);
            std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir: {e}"));
            std::fs::write(d.join("modalias"), alias).unwrap_or_else(|e| panic!("write: {e}"));
        };
        add("virtio", "virtio0", "virtio:d00000001v00001AF4\n");
        add("acpi", "LNXPWRBN:00", "acpi:LNXPWRBN:\n");
        add("acpi", "LNXPWRBN:01", "acpi:LNXPWRBN:\n");
        add("pci", "0000:00:00.0", "\n");
        std::fs::create_dir_all(dir.path().join("bus/pci/devices/nomodalias"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read_modaliases(dir.path()),
            ["acpi:LNXPWRBN:", "virtio:d00000001v00001AF4"]
        );
    }

    #[test]
    fn maps_devices_to_distinct_modules() {
        let index = ModuleIndex::parse(
            "button.ko:\nevdev.ko:\n",
            "alias acpi*:LNXPWRBN:* button\nalias acpi*:PNP0C0C:* button\nalias input:b* evdev\n",
        )
        .unwrap_or_default();
        let aliases: Vec<String> = [
            "acpi:PNP0C0C:",
            "acpi:LNXPWRBN:",
            "input:b0019v0000p0001e0000-e0,1",
        ]
        .map(String::from)
        .into();
        assert_eq!(modules_for(&index, &aliases), ["button", "evdev"]);
    }
}
