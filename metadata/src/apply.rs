//! The one place that writes `/run/config`.
//!
//! Order (LinuxKit's): provider files, `ssh/authorized_keys`, `provider`, raw `userdata`, the
//! userdata tree, then `hostname`. Every path written is recorded in a manifest (`.written`); the
//! next run removes what the previous run wrote before writing, so nothing stale survives.

use std::path::Path;

use crate::confined::{ConfigDir, FsError, RelPath};
use crate::model::{Metadata, validate_hostname};
use crate::tree::{self, MANIFEST, Node};

/// Largest userdata accepted (bytes).
pub const MAX_USERDATA: usize = 16 * 1024 * 1024;

/// What [`apply`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The validated hostname to set, if any (from the tree's `hostname` file or the provider).
    pub hostname: Option<String>,
    /// Paths written, relative to the root.
    pub written: Vec<String>,
    /// Problems that did not stop the run (skipped tree entries, refused hostname, ...).
    pub warnings: Vec<String>,
}

/// A failure that stops [`apply`].
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The root could not be opened or a required file could not be written.
    #[error("writing the config tree")]
    Fs(#[from] FsError),
}

/// Removes whatever a previous run recorded in its manifest.
pub fn remove_stale(dir: &ConfigDir) -> Result<Vec<String>, ApplyError> {
    let manifest = rel(MANIFEST);
    let Some(old) = dir.read(&manifest, 4 * 1024 * 1024) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for line in String::from_utf8_lossy(&old).lines().rev() {
        if let Ok(path) = RelPath::parse(line) {
            dir.remove(&path)?;
            removed.push(line.to_string());
        }
    }
    dir.remove(&manifest)?;
    Ok(removed)
}

/// Writes `meta` under `root` (creating it) after removing the previous run's files.
pub fn apply(meta: &Metadata, root: &Path) -> Result<Applied, ApplyError> {
    let dir = ConfigDir::open(root)?;
    remove_stale(&dir)?;
    let mut out = Applied::default();
    let result = write_all(meta, &dir, &mut out);
    write_manifest(&dir, &out)?;
    result.map(|()| out)
}

fn write_all(meta: &Metadata, dir: &ConfigDir, out: &mut Applied) -> Result<(), ApplyError> {
    for (name, data) in &meta.files {
        match RelPath::parse(name) {
            Ok(path) => write(dir, out, &path, data, 0o644, false)?,
            Err(e) => out.warnings.push(format!("provider file refused: {e}")),
        }
    }
    if !meta.ssh_keys.is_empty() {
        let keys: String = meta.ssh_keys.iter().map(|k| format!("{k}\n")).collect();
        let ssh = rel("ssh");
        dir.create_dir(&ssh, 0o755)?;
        out.written.push("ssh".into());
        write(
            dir,
            out,
            &rel("ssh/authorized_keys"),
            keys.as_bytes(),
            0o600,
            false,
        )?;
    }
    write(
        dir,
        out,
        &rel("provider"),
        meta.provider.as_bytes(),
        0o644,
        false,
    )?;
    let mut hostname = meta.hostname.clone();
    if let Some(userdata) = &meta.userdata {
        write(dir, out, &rel("userdata"), userdata, 0o644, false)?;
        if let Some(h) = write_tree(dir, userdata, out) {
            hostname = Some(h);
        }
    }
    if let Some(raw) = hostname {
        match validate_hostname(&raw) {
            Ok(h) => {
                write(dir, out, &rel("hostname"), h.as_bytes(), 0o644, false)?;
                out.hostname = Some(h);
            }
            Err(e) => out.warnings.push(e),
        }
    }
    Ok(())
}

/// Writes the tree; returns the content of a top-level `hostname` file if the tree has one.
fn write_tree(dir: &ConfigDir, userdata: &[u8], out: &mut Applied) -> Option<String> {
    let plan = match tree::plan(userdata) {
        Ok(plan) => plan,
        Err(e) => {
            log::info!(
                "Userdata is not a config tree ({}), kept as raw userdata only",
                e.0.as_ref()
                    .map_or("not an object".to_string(), ToString::to_string)
            );
            return None;
        }
    };
    out.warnings.extend(
        plan.skipped
            .iter()
            .map(|s| format!("userdata entry {:?} skipped: {}", s.path, s.reason)),
    );
    let mut hostname = None;
    let mut failed: Vec<RelPath> = Vec::new();
    for node in &plan.nodes {
        let (path, result) = match node {
            Node::Dir { path, .. } | Node::File { path, .. }
                if failed.iter().any(|f| is_under(path, f)) =>
            {
                continue;
            }
            Node::Dir { path, mode } => (path, dir.create_dir(path, *mode)),
            Node::File {
                path,
                mode,
                content,
            } => {
                if path.to_string() == "hostname" {
                    hostname = Some(content.clone());
                    continue;
                }
                (path, dir.write_file(path, content.as_bytes(), *mode, false))
            }
        };
        match result {
            Ok(()) => out.written.push(path.to_string()),
            Err(e) => {
                out.warnings
                    .push(format!("userdata entry {path}: {}", chain(&e)));
                failed.push(path.clone());
            }
        }
    }
    hostname
}

fn is_under(path: &RelPath, parent: &RelPath) -> bool {
    path.to_string().starts_with(&format!("{parent}/"))
}

fn write(
    dir: &ConfigDir,
    out: &mut Applied,
    path: &RelPath,
    data: &[u8],
    mode: u32,
    parents: bool,
) -> Result<(), ApplyError> {
    dir.write_file(path, data, mode, parents)?;
    out.written.push(path.to_string());
    Ok(())
}

fn write_manifest(dir: &ConfigDir, out: &Applied) -> Result<(), ApplyError> {
    let text: String = out.written.iter().map(|p| format!("{p}\n")).collect();
    dir.write_file(&rel(MANIFEST), text.as_bytes(), 0o600, false)?;
    Ok(())
}

fn rel(s: &'static str) -> RelPath {
    RelPath::fixed(s)
}

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
