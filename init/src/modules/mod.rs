//! Kernel modules without kmod: cold plug at boot (every device's `modalias` matched against
//! `modules.alias`) and the `/sbin/modprobe` personality the kernel's `request_module` runs.

pub mod coldplug;
pub mod glob;
pub mod hotplug;
pub mod index;
pub mod modprobe;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

pub use self::index::{IndexError, ModuleEntry, ModuleIndex, module_name};
use crate::sys::Sys;

/// Reading the module tree failed.
#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    /// `modules.dep` or `modules.alias` could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// One of depmod's files is malformed.
    #[error("parsing the module index in {dir}")]
    Parse {
        /// The module directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: IndexError,
    },
}

/// A module that could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("loading module {name} from {path}")]
pub struct LoadError {
    /// The module name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: Errno,
}

/// `/lib/modules/<release>` for a kernel release.
pub fn modules_dir(lib_modules: &Path, release: &str) -> PathBuf {
    lib_modules.join(release)
}

/// Reads the depmod index of a module directory.
pub fn read_index(dir: &Path) -> Result<ModuleIndex, ModulesError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| ModulesError::Read { path, source })
    };
    let dep = read("modules.dep")?;
    let alias = match read("modules.alias") {
        Ok(text) => text,
        Err(ModulesError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            String::new()
        }
        Err(e) => return Err(e),
    };
    ModuleIndex::parse(&dep, &alias).map_err(|source| ModulesError::Parse {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Names of the modules in `/proc/modules` (first column).
pub fn loaded_modules(proc_modules: &str) -> HashSet<String> {
    proc_modules
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(module_name)
        .collect()
}

/// Loads modules (with their dependencies) from one module directory, remembering what is loaded.
#[derive(Debug)]
pub struct Loader<'a> {
    sys: &'a dyn Sys,
    dir: PathBuf,
    index: &'a ModuleIndex,
    loaded: HashSet<String>,
}

impl<'a> Loader<'a> {
    /// A loader that treats `loaded` as already in the kernel.
    pub fn new(
        sys: &'a dyn Sys,
        dir: &Path,
        index: &'a ModuleIndex,
        loaded: HashSet<String>,
    ) -> Loader<'a> {
        Loader {
            sys,
            dir: dir.to_path_buf(),
            index,
            loaded,
        }
    }

    /// Loads the named modules and their dependencies in order. `params` go to the named modules only.
    /// Returns every failure; a failed dependency is reported and its dependants are still tried.
    pub fn load(&mut self, names: &[String], params: &str) -> Vec<LoadError> {
        let wanted: HashSet<String> = names.iter().map(|n| module_name(n)).collect();
        let mut errors = Vec::new();
        for entry in self.index.load_order(names) {
            let name = module_name(&entry.path);
            if self.loaded.contains(&name) {
                continue;
            }
            let path = self.dir.join(&entry.path);
            let p = if wanted.contains(&name) { params } else { "" };
            match self.sys.load_module(&path, p) {
                Ok(()) | Err(Errno::EEXIST) => {
                    log::debug!("loaded module {name}");
                    self.loaded.insert(name);
                }
                Err(source) => errors.push(LoadError { name, path, source }),
            }
        }
        errors
    }

    /// Like [`Loader::load`] without parameters, but the modules of each dependency level load in parallel
    /// on up to `workers` threads.
    pub fn load_parallel(&mut self, names: &[String], workers: usize) -> Vec<LoadError> {
        let mut errors = Vec::new();
        let index = self.index;
        for level in index.load_levels(names, &self.loaded) {
            let chunk = level.len().div_ceil(workers.max(1)).max(1);
            let this: &Loader<'_> = self;
            let results: Vec<(String, PathBuf, nix::Result<()>)> = std::thread::scope(|scope| {
                let handles: Vec<_> = level
                    .chunks(chunk)
                    .map(|entries| scope.spawn(move || this.load_entries(entries)))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            for (name, path, result) in results {
                match result {
                    Ok(()) | Err(Errno::EEXIST) => {
                        self.loaded.insert(name);
                    }
                    Err(source) => errors.push(LoadError { name, path, source }),
                }
            }
        }
        errors
    }

    fn load_entries(&self, entries: &[&ModuleEntry]) -> Vec<(String, PathBuf, nix::Result<()>)> {
        entries
            .iter()
            .map(|entry| {
                let path = self.dir.join(&entry.path);
                let result = self.sys.load_module(&path, "");
                (module_name(&entry.path), path, result)
            })
            .collect()
    }

    /// Modules loaded (or found loaded) so far.
    pub fn loaded(&self) -> &HashSet<String> {
        &self.loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording_sys::{Call, RecordingSys};

    #[test]
    fn loads_dependencies_first_and_skips_loaded() {
        let index =
            ModuleIndex::parse("a.ko: b.ko c.ko\nb.ko: c.ko\nc.ko:\n", "").unwrap_or_default();
        let sys = RecordingSys::new();
        let mut loader = Loader::new(
            &sys,
            Path::new("/m"),
            &index,
            loaded_modules("c 16384 0 - Live 0x0\n"),
        );
        assert_eq!(loader.load(&["a".into()], "x=1"), vec![]);
        assert_eq!(
            sys.calls(),
            vec![
                Call::LoadModule {
                    path: "/m/b.ko".into(),
                    params: String::new()
                },
                Call::LoadModule {
                    path: "/m/a.ko".into(),
                    params: "x=1".into()
                },
            ]
        );
        assert_eq!(loader.load(&["a".into()], ""), vec![]);
        assert_eq!(sys.calls().len(), 2);
    }

    #[test]
    fn parallel_loading_loads_each_module_once_after_its_dependencies() {
        let index = ModuleIndex::parse("a.ko: b.ko c.ko\nb.ko: c.ko\nc.ko:\nd.ko:\n", "")
            .unwrap_or_default();
        let sys = RecordingSys::new();
        let mut loader = Loader::new(&sys, Path::new("/m"), &index, HashSet::new());
        assert_eq!(loader.load_parallel(&["a".into(), "d".into()], 4), vec![]);
        let paths: Vec<PathBuf> = sys
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::LoadModule { path, .. } => Some(path),
                _ => None,
            })
            .collect();
        let pos = |p: &str| {
            paths
                .iter()
                .position(|x| x == Path::new(p))
                .unwrap_or(usize::MAX)
        };
        assert_eq!(paths.len(), 4);
        assert!(
            pos("/m/c.ko") < pos("/m/b.ko") && pos("/m/b.ko") < pos("/m/a.ko"),
            "{paths:?}"
        );
        assert_eq!(loader.loaded().len(), 4);
    }

    #[test]
    fn failures_are_reported_not_fatal() {
        let index = ModuleIndex::parse("a.ko: b.ko\nb.ko:\n", "").unwrap_or_default();
        let sys = RecordingSys::new().failing("/m/b.ko", Errno::ENOEXEC);
        let mut loader = Loader::new(&sys, Path::new("/m"), &index, HashSet::new());
        let errors = loader.load(&["a".into()], "");
        assert_eq!(
            errors,
            vec![LoadError {
                name: "b".into(),
                path: "/m/b.ko".into(),
                source: Errno::ENOEXEC
            }]
        );
        assert_eq!(sys.calls().len(), 2);
    }
}
