//! Debian packages as the source of everything the images carry that we do not build: the kernel, busybox,
//! runc, containerd and their shared libraries.
//!
//! Packages are fetched with `apt-get download` into a cache directory and unpacked with `dpkg-deb -x`, so the
//! images do not depend on what happens to be installed on the build machine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors while fetching or unpacking Debian packages.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    /// A helper program could not be started.
    #[error("running {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A helper program ran and failed.
    #[error("{program} {args} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// Its arguments, space separated.
        args: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on standard error.
        stderr: String,
    },
    /// `apt-cache depends linux-image-amd64` named no concrete kernel package.
    #[error("linux-image-amd64 depends on no linux-image-<version> package; run `apt-get update`")]
    NoKernelPackage,
    /// A downloaded package was not where `apt-get download` should have put it.
    #[error("no .deb for package {package} in {dir}")]
    MissingDeb {
        /// The package name.
        package: String,
        /// The cache directory.
        dir: PathBuf,
    },
    /// A file or process operation failed.
    #[error(transparent)]
    Io(#[from] crate::path_io::PathIo),
}

/// Runs a command and returns its standard output, or an error carrying its standard error.
pub fn run(program: &str, args: &[&str], cwd: Option<&Path>) -> Result<String, DebianError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().map_err(|source| DebianError::Spawn {
        program: program.into(),
        source,
    })?;
    if !out.status.success() {
        return Err(DebianError::Failed {
            program: program.into(),
            args: args.join(" "),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The concrete kernel package `linux-image-amd64` points at today (the ABI number changes with point
/// releases, so it is never hard-coded).
pub fn kernel_package() -> Result<String, DebianError> {
    let deps = run("apt-cache", &["depends", "linux-image-amd64"], None)?;
    parse_kernel_dependency(&deps).ok_or(DebianError::NoKernelPackage)
}

/// Picks `linux-image-<digit>...` out of `apt-cache depends` output.
pub fn parse_kernel_dependency(deps: &str) -> Option<String> {
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| {
            p.strip_prefix("linux-image-")
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// A directory of downloaded `.deb` files and their unpacked trees.
#[derive(Debug, Clone)]
pub struct PackageCache {
    dir: PathBuf,
}

impl PackageCache {
    /// A cache rooted at `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The `.deb` of `package`, downloading it when the cache has none.
    pub fn deb(&self, package: &str) -> Result<PathBuf, DebianError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(crate::path_io::io::<DebianError>("creating", &self.dir))?;
        if let Some(found) = self.find_deb(package)? {
            return Ok(found);
        }
        run("apt-get", &["download", "-q", package], Some(&self.dir))?;
        self.find_deb(package)?
            .ok_or_else(|| DebianError::MissingDeb {
                package: package.into(),
                dir: self.dir.clone(),
            })
    }

    fn find_deb(&self, package: &str) -> Result<Option<PathBuf>, DebianError> {
        let prefix = format!("{package}_");
        let entries = std::fs::read_dir(&self.dir)
            .map_err(crate::path_io::io::<DebianError>("reading", &self.dir))?;
        Ok(entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        }))
    }

    /// The unpacked tree of `package` (downloaded and unpacked once).
    pub fn unpacked(&self, package: &str) -> Result<PathBuf, DebianError> {
        let dest = self.dir.join("unpacked").join(package);
        if dest.join(".complete").exists() {
            return Ok(dest);
        }
        let deb = self.deb(package)?;
        if dest.exists() {
            std::fs::remove_dir_all(&dest)
                .map_err(crate::path_io::io::<DebianError>("removing", &dest))?;
        }
        std::fs::create_dir_all(&dest)
            .map_err(crate::path_io::io::<DebianError>("creating", &dest))?;
        run(
            "dpkg-deb",
            &["-x", &deb.to_string_lossy(), &dest.to_string_lossy()],
            None,
        )?;
        std::fs::write(dest.join(".complete"), b"")
            .map_err(crate::path_io::io::<DebianError>("writing", &dest))?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dependency_is_the_versioned_image() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_kernel_dependency(out).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
    }

    #[test]
    fn kernel_dependency_ignores_other_packages() {
        let out =
            "linux-image-amd64\n  Depends: linux-image-amd64-signed\n  Suggests: linux-image-6.1\n";
        assert_eq!(parse_kernel_dependency(out), None);
    }
}
