//! `modules.dep` and `modules.alias` (as written by depmod) as a lookup table: names to files,
//! dependencies, and alias globs to module names.

use std::collections::{HashMap, HashSet};

use super::glob;

/// A malformed line in one of depmod's files.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    /// A `modules.dep` line without the `path:` part.
    #[error("modules.dep line {line}: expected \"path.ko: deps...\", got {text:?}")]
    Dep {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A `modules.alias` line that is not `alias PATTERN MODULE`.
    #[error("modules.alias line {line}: expected \"alias PATTERN MODULE\", got {text:?}")]
    Alias {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// The kernel's module name for a name or file name: directory, `.ko` and compression suffixes dropped,
/// `-` turned into `_`.
pub fn module_name(name_or_path: &str) -> String {
    let file = name_or_path.rsplit('/').next().unwrap_or(name_or_path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .unwrap_or(file);
    stem.replace('-', "_")
}

/// One module file from `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleEntry {
    /// Path relative to `/lib/modules/$(uname -r)`.
    pub path: String,
    /// Names of every module it needs (depmod lists them transitively).
    pub deps: Vec<String>,
}

/// Aliases grouped by the part before the first `:` (the bus), so a lookup scans only its bus.
#[derive(Debug, Default, Clone)]
struct AliasTable {
    by_bus: HashMap<String, Vec<(String, String)>>,
    /// Patterns whose bus part itself has wildcards: checked for every lookup.
    general: Vec<(String, String)>,
}

/// What depmod knows about the installed modules.
#[derive(Debug, Default, Clone)]
pub struct ModuleIndex {
    modules: HashMap<String, ModuleEntry>,
    aliases: AliasTable,
}

fn bus(text: &str) -> &str {
    text.split(':').next().unwrap_or(text)
}

impl ModuleIndex {
    /// Parses the text of `modules.dep` and `modules.alias`.
    pub fn parse(modules_dep: &str, modules_alias: &str) -> Result<ModuleIndex, IndexError> {
        let mut index = ModuleIndex::default();
        for (i, line) in modules_dep.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((path, deps)) = line.split_once(':').filter(|(p, _)| !p.trim().is_empty())
            else {
                return Err(IndexError::Dep {
                    line: i + 1,
                    text: line.to_string(),
                });
            };
            let path = path.trim().to_string();
            let deps = deps.split_whitespace().map(module_name).collect();
            index
                .modules
                .insert(module_name(&path), ModuleEntry { path, deps });
        }
        for (i, line) in modules_alias.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let ["alias", pattern, module] = words.as_slice() else {
                return Err(IndexError::Alias {
                    line: i + 1,
                    text: line.to_string(),
                });
            };
            index.add_alias(pattern, &module_name(module));
        }
        Ok(index)
    }

    fn add_alias(&mut self, pattern: &str, module: &str) {
        let entry = (pattern.to_string(), module.to_string());
        let key = bus(pattern);
        if key.contains(['*', '?', '[']) {
            self.aliases.general.push(entry);
        } else {
            self.aliases
                .by_bus
                .entry(key.to_string())
                .or_default()
                .push(entry);
        }
    }

    /// The entry of a module by (normalised) name.
    pub fn module(&self, name: &str) -> Option<&ModuleEntry> {
        self.modules.get(&module_name(name))
    }

    /// Modules whose alias globs match `alias` (a device modalias or a name such as `fs-overlay`), in
    /// `modules.alias` order, without duplicates.
    pub fn lookup_alias(&self, alias: &str) -> Vec<String> {
        let bucket = self
            .aliases
            .by_bus
            .get(bus(alias))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut found: Vec<String> = Vec::new();
        for (pattern, module) in bucket.iter().chain(&self.aliases.general) {
            if glob::matches(pattern, alias) && !found.contains(module) {
                found.push(module.clone());
            }
        }
        found
    }

    /// What `modprobe NAME` would load: the module itself if installed, else everything its aliases name.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let normalised = module_name(name);
        if self.modules.contains_key(&normalised) {
            vec![normalised]
        } else {
            self.lookup_alias(name)
        }
    }

    /// Installed modules in a valid load order (dependencies first) for loading all of `wanted`.
    /// Names that are not installed (built in, or missing) are left out.
    pub fn load_order(&self, wanted: &[String]) -> Vec<&ModuleEntry> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        for name in wanted {
            self.visit(name, &mut seen, &mut order);
        }
        order
    }

    /// The modules to load for `wanted`, minus those in `loaded`, grouped in levels: every module's
    /// dependencies are in earlier levels (or loaded), so the modules of one level can load in parallel.
    pub fn load_levels(
        &self,
        wanted: &[String],
        loaded: &HashSet<String>,
    ) -> Vec<Vec<&ModuleEntry>> {
        let mut level_of: HashMap<String, usize> = HashMap::new();
        let mut levels: Vec<Vec<&ModuleEntry>> = Vec::new();
        for entry in self.load_order(wanted) {
            let name = module_name(&entry.path);
            if loaded.contains(&name) {
                continue;
            }
            // load_order puts dependencies first, so their levels are known here.
            let level = entry
                .deps
                .iter()
                .filter_map(|d| level_of.get(d))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            level_of.insert(name, level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            if let Some(group) = levels.get_mut(level) {
                group.push(entry);
            }
        }
        levels
    }

    fn visit<'a>(
        &'a self,
        name: &str,
        seen: &mut HashSet<String>,
        order: &mut Vec<&'a ModuleEntry>,
    ) {
        let name = module_name(name);
        let Some(entry) = self.modules.get(&name) else {
            return;
        };
        if !seen.insert(name) {
            return;
        }
        for dep in &entry.deps {
            self.visit(dep, seen, order);
        }
        order.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/overlayfs/overlay.ko.xz:
kernel/drivers/acpi/button.ko:
kernel/drivers/input/evdev.ko:
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias virtio:d00000001v* virtio_net
alias fs-overlay overlay
alias acpi*:PNP0C0C:* button
alias acpi*:LNXPWRBN:* button
alias input:b*v*p*e*-e*k*r*a*m*l*s*f*w* evdev
alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_pci
";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(DEP, ALIAS).unwrap_or_default()
    }

    #[test]
    fn module_names_are_normalised() {
        let cases = [
            ("kernel/fs/overlayfs/overlay.ko", "overlay"),
            ("a/pvpanic-mmio.ko.zst", "pvpanic_mmio"),
            ("pvpanic-mmio", "pvpanic_mmio"),
            ("x.ko.gz", "x"),
            ("", ""),
        ];
        for (i, (input, want)) in cases.iter().enumerate() {
            assert_eq!(module_name(input), *want, "case {i}");
        }
    }

    #[test]
    fn rejects_malformed_lines() {
        assert_eq!(
            ModuleIndex::parse("no colon here", "").err(),
            Some(IndexError::Dep {
                line: 1,
                text: "no colon here".into()
            })
        );
        assert_eq!(
            ModuleIndex::parse(": x.ko", "").err(),
            Some(IndexError::Dep {
                line: 1,
                text: ": x.ko".into()
            })
        );
        assert_eq!(
            ModuleIndex::parse("", "\nalias onlyone").err(),
            Some(IndexError::Alias {
                line: 2,
                text: "alias onlyone".into()
            })
        );
    }

    #[test]
    fn alias_lookup_by_bus_and_general() {
        let idx = index();
        let cases: &[(&str, &[&str])] = &[
            ("virtio:d00000001v00001AF4", &["virtio_net"]),
            ("acpi:LNXPWRBN:", &["button"]),
            ("fs-overlay", &["overlay"]),
            (
                "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
                &["virtio_pci"],
            ),
            ("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", &[]),
            ("", &[]),
        ];
        for (i, (alias, want)) in cases.iter().enumerate() {
            assert_eq!(idx.lookup_alias(alias), *want, "case {i}: {alias}");
        }
    }

    #[test]
    fn resolve_prefers_names_over_aliases() {
        let idx = index();
        assert_eq!(idx.resolve("overlay"), ["overlay"]);
        assert_eq!(idx.resolve("fs-overlay"), ["overlay"]);
        assert_eq!(idx.resolve("net-failover"), ["net_failover"]);
        assert!(idx.resolve("nonexistent").is_empty());
    }

    #[test]
    fn levels_group_independent_modules() {
        let idx = ModuleIndex::parse(
            "a.ko: b.ko c.ko\nb.ko: c.ko\nc.ko:\nd.ko:\ne.ko: d.ko\n",
            "",
        )
        .unwrap_or_default();
        let names = |levels: Vec<Vec<&ModuleEntry>>| -> Vec<Vec<String>> {
            levels
                .into_iter()
                .map(|l| l.into_iter().map(|e| e.path.clone()).collect())
                .collect()
        };
        let want = ["a", "e"].map(String::from);
        assert_eq!(
            names(idx.load_levels(&want, &HashSet::new())),
            [vec!["c.ko", "d.ko"], vec!["b.ko", "e.ko"], vec!["a.ko"]]
        );
        let loaded: HashSet<String> = ["c".to_string()].into();
        assert_eq!(
            names(idx.load_levels(&want, &loaded)),
            [vec!["b.ko", "d.ko"], vec!["a.ko", "e.ko"]]
        );
    }

    #[test]
    fn load_order_puts_dependencies_first_once() {
        let idx = index();
        let order: Vec<&str> = idx
            .load_order(&[
                "virtio_net".into(),
                "net_failover".into(),
                "builtin_thing".into(),
            ])
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko"
            ]
        );
    }
}
