//! Cold plug: load a driver for every device the kernel found before init ran.

use std::path::Path;

use super::{LoadError, Loader, ModuleIndex};

/// The distinct `modalias` strings of every device under `<sys>/bus/*/devices/*` and of class devices
/// that sit on no bus (`<sys>/class/*/*`, for example input devices, which `evdev` binds), in directory order.
pub fn read_modaliases(sys: &Path) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let bus_devices = sorted_entries(&sys.join("bus"))
        .into_iter()
        .map(|bus| bus.join("devices"));
    let groups: Vec<_> = bus_devices
        .chain(sorted_entries(&sys.join("class")))
        .collect();
    for device in groups.iter().flat_map(|g| sorted_entries(g)) {
        let Ok(text) = std::fs::read_to_string(device.join("modalias")) else {
            continue;
        };
        let alias = text.trim();
        if !alias.is_empty() && !found.iter().any(|a| a == alias) {
            found.push(alias.to_string());
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

/// Threads loading one dependency level of modules at once (module init often waits on hardware).
const WORKERS: usize = 4;

/// Most rounds of cold plug: loading a bus driver (virtio_pci) reveals devices (virtio-net) that need more.
const MAX_ROUNDS: usize = 8;

/// Loads every module the devices under `sys` need, scanning again after each round until no new device
/// needs anything. Returns the number of devices seen and the failures.
pub fn coldplug(
    loader: &mut Loader<'_>,
    index: &ModuleIndex,
    sys: &Path,
) -> (usize, Vec<LoadError>) {
    let mut seen: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let fresh: Vec<String> = read_modaliases(sys)
            .into_iter()
            .filter(|a| !seen.contains(a))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let wanted: Vec<String> = modules_for(index, &fresh)
            .into_iter()
            .filter(|m| !loader.loaded().contains(m))
            .collect();
        seen.extend(fresh);
        if wanted.is_empty() {
            break;
        }
        errors.extend(loader.load_parallel(&wanted, WORKERS));
    }
    (seen.len(), errors)
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
        let input = dir.path().join("class/input/input0");
        std::fs::create_dir_all(&input).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(
            input.join("modalias"),
            "input:b0019v0000p0001e0000-e0,1,k74,",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("bus/pci/devices/nomodalias"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read_modaliases(dir.path()),
            [
                "acpi:LNXPWRBN:",
                "virtio:d00000001v00001AF4",
                "input:b0019v0000p0001e0000-e0,1,k74,"
            ]
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
