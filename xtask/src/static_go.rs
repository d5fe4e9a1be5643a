//! Static `runc` and `ctr`, built from Debian's Go sources with Debian's Go.
//!
//! LinuxKit's getty and sshd packages bind the init image's `/usr/bin/ctr` and `/usr/bin/runc` into their
//! containers, whose root file systems have no glibc: Debian's binaries are dynamically linked and fail
//! there (`ctr: not found`, the loader is missing). So the runc and containerd packages carry static builds:
//! runc with cgo and Debian's static libseccomp (`-static-pie`), ctr without cgo. The sources are the
//! `golang-github-opencontainers-runc-dev` and `golang-github-containerd-containerd-dev` packages (the
//! same versions as Debian's runc and containerd), built in GOPATH mode against the other Go source
//! packages they depend on. The results are kept under `out/static-go/<versions>/`, so only the first
//! `cargo xtask images` after a version change pays for the build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages the build needs (`scripts/install-deps` installs them).
pub const BUILD_PACKAGES: &[&str] = &[
    "golang-go",
    "libseccomp-dev",
    "golang-github-opencontainers-runc-dev",
    "golang-github-containerd-containerd-dev",
];

/// Where Debian's Go source packages install their sources.
const GOPATH: &str = "/usr/share/gocode";

/// The `main` of ctr: Debian's containerd source package carries `cmd/ctr/app` but not the few lines of
/// `cmd/ctr/main.go` that run it. The Dockerfile builds the same file.
const CTR_MAIN: &str = include_str!("../../pkg/containerd/ctr/main.go");

/// Errors of the static build.
#[derive(Debug, thiserror::Error)]
pub enum StaticGoError {
    /// A package the build needs is not installed.
    #[error("{package} is not installed (scripts/install-deps installs it)")]
    Missing {
        /// The Debian package.
        package: String,
    },
    /// `go build` failed.
    #[error("go build of {tool} failed ({status}): {stderr}")]
    Build {
        /// runc or ctr.
        tool: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        stderr: String,
    },
    /// A file or process operation failed.
    #[error(transparent)]
    Io(#[from] crate::path_io::PathIo),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StaticGoError + use<> {
    crate::path_io::io(op, path)
}

/// The static binaries.
#[derive(Debug, Clone)]
pub struct StaticTools {
    /// `runc`.
    pub runc: PathBuf,
    /// `ctr`.
    pub ctr: PathBuf,
}

/// The installed version of a Debian package.
fn installed_version(package: &str) -> Result<String, StaticGoError> {
    let missing = || StaticGoError::Missing {
        package: package.into(),
    };
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", package])
        .output()
        .map_err(|_| missing())?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.strip_prefix("install ok installed ") {
        Some(version) if out.status.success() => Ok(version.trim().to_string()),
        _ => Err(missing()),
    }
}

/// The version recorded in the binaries: Debian's version without its revision (`1.1.5+ds1-1+deb12u1` is
/// `1.1.5`).
pub fn upstream_version(debian: &str) -> &str {
    let end = debian.find(['+', '~', '-']).unwrap_or(debian.len());
    &debian[..end]
}

/// Builds (or finds, from an earlier build of the same versions) static runc and ctr under `dir`.
pub fn build(dir: &Path) -> Result<StaticTools, StaticGoError> {
    let mut versions = Vec::new();
    for package in BUILD_PACKAGES {
        versions.push(installed_version(package)?);
    }
    let runc_version = upstream_version(&versions[2]).to_string();
    let containerd_version = upstream_version(&versions[3]).to_string();
    let out = dir.join(format!("runc-{}-containerd-{}", versions[2], versions[3]));
    let tools = StaticTools {
        runc: out.join("runc"),
        ctr: out.join("ctr"),
    };
    if tools.runc.exists() && tools.ctr.exists() {
        return Ok(tools);
    }
    std::fs::create_dir_all(&out).map_err(io("creating", &out))?;
    let cache = dir.join("cache");
    let runc_flags = format!("-s -w -X main.version={runc_version} -extldflags -static-pie");
    go_build(
        "runc",
        &cache,
        None,
        &[
            "-buildmode=pie",
            "-tags",
            "seccomp netgo osusergo",
            "-ldflags",
            &runc_flags,
        ],
        &tools.runc,
        "github.com/opencontainers/runc",
    )?;
    let main_dir = dir.join("ctr-main");
    std::fs::create_dir_all(&main_dir).map_err(io("creating", &main_dir))?;
    let main = main_dir.join("main.go");
    std::fs::write(&main, CTR_MAIN).map_err(io("writing", &main))?;
    let ctr_flags =
        format!("-s -w -X github.com/containerd/containerd/version.Version={containerd_version}");
    go_build(
        "ctr",
        &cache,
        Some(&main_dir),
        &["-tags", "netgo osusergo", "-ldflags", &ctr_flags],
        &tools.ctr,
        ".",
    )?;
    Ok(tools)
}

fn go_build(
    tool: &'static str,
    cache: &Path,
    cwd: Option<&Path>,
    flags: &[&str],
    output: &Path,
    package: &str,
) -> Result<(), StaticGoError> {
    let mut cmd = Command::new("go");
    cmd.env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOCACHE", cache)
        .env("CGO_ENABLED", if tool == "runc" { "1" } else { "0" })
        .args(["build", "-trimpath"])
        .args(flags)
        .arg("-o")
        .arg(output)
        .arg(package);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let result = cmd.output().map_err(io("running go build for", output))?;
    if !result.status.success() {
        return Err(StaticGoError::Build {
            tool,
            status: result.status,
            stderr: String::from_utf8_lossy(&result.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_versions_drop_debian_suffixes() {
        assert_eq!(upstream_version("1.1.5+ds1-1+deb12u1"), "1.1.5");
        assert_eq!(upstream_version("1.6.20~ds1-1+deb12u3"), "1.6.20");
        assert_eq!(upstream_version("2.0"), "2.0");
    }
}
