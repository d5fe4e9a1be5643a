//! The `files:` section (docs/linuxkit.md §8.5): written last, relative to `/`. Default mode 0600 (files) / 0700
//! (`directory: true`). Leading directories get the file's mode plus the matching x bits and the file's
//! owner, the first time a `files:` entry passes through them.
//!
//! That is `linuxkit build`'s rule, and it applies to directories that already exist too: LinuxKit writes a
//! header for every leading directory, which (when the kernel unpacks the cpio) re-modes and re-owns them, so
//! `files: [{path: etc/x, uid: svc}]` hands `/etc` to `svc` with mode 0700. With
//! [`Options::keep_existing_dirs`] existing directories keep their mode and owner instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{AssembleError, Content, Node, NodeKind, Options, Tree, normalise};
use crate::blueprint::validate::{parse_mode, resolve_id};
use crate::blueprint::{Blueprint, FileEntry};
use crate::oci_config::BuildContext;

pub(super) fn add_files(
    bp: &Blueprint,
    bp_dir: &Path,
    ctx: &BuildContext,
    options: Options,
    tree: &mut Tree,
) -> Result<(), AssembleError> {
    let mut added: BTreeSet<String> = BTreeSet::new();
    for (i, file) in bp.files.iter().enumerate() {
        let location = format!("files[{i}] (path {:?})", file.path);
        let invalid = |problem: String| AssembleError::Invalid {
            location: location.clone(),
            problem,
        };
        let path = normalise(&file.path);
        let mode = match &file.mode {
            Some(mode) => parse_mode(mode).map_err(|p| invalid(format!("key \"mode\": {p}")))?,
            None if file.directory => 0o700,
            None => 0o600,
        };
        let id = |id: &Option<crate::blueprint::Id>, key: &str| match id {
            Some(id) => resolve_id(id, &ctx.ids).map_err(|p| invalid(format!("key {key:?}: {p}"))),
            None => Ok(0),
        };
        let (uid, gid) = (id(&file.uid, "uid")?, id(&file.gid, "gid")?);
        let Some(kind) = node_kind(bp, bp_dir, file, &location)? else {
            continue;
        };
        let dir_mode = with_x_bits(mode);
        let mut prefix = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            prefix = if prefix.is_empty() {
                part.to_string()
            } else {
                format!("{prefix}/{part}")
            };
            let keep = options.keep_existing_dirs && tree.get(&prefix).is_some_and(Node::is_dir);
            if added.insert(prefix.clone()) && !keep {
                tree.insert(&prefix, Node::dir(dir_mode).owned(uid, gid));
            }
        }
        added.insert(path.clone());
        tree.insert(
            &path,
            Node {
                kind,
                mode,
                uid,
                gid,
            },
        );
    }
    Ok(())
}

/// Adds x for each of user/group/other that has any permission.
fn with_x_bits(mode: u32) -> u32 {
    let mut dir = mode;
    for (any, x) in [(0o700, 0o100), (0o070, 0o010), (0o007, 0o001)] {
        if mode & any != 0 {
            dir |= x;
        }
    }
    dir
}

/// The node for one entry, or `None` for an optional source that is missing.
fn node_kind(
    bp: &Blueprint,
    bp_dir: &Path,
    file: &FileEntry,
    location: &str,
) -> Result<Option<NodeKind>, AssembleError> {
    let invalid = |problem: String| AssembleError::Invalid {
        location: location.into(),
        problem,
    };
    if file.directory {
        return Ok(Some(NodeKind::Dir));
    }
    if let Some(target) = &file.symlink {
        return Ok(Some(NodeKind::Symlink(target.clone())));
    }
    if let Some(contents) = &file.contents {
        return Ok(Some(NodeKind::File {
            content: Content::bytes(contents.as_bytes()),
            size: contents.len() as u64,
        }));
    }
    if let Some(source) = &file.source {
        let path = source_path(source, bp_dir);
        return match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(NodeKind::File {
                content: Content::Path(path),
                size: meta.len(),
            })),
            Ok(_) => Err(invalid(format!(
                "key \"source\": {} is not a regular file",
                path.display()
            ))),
            Err(_) if file.optional => Ok(None),
            Err(source) => Err(AssembleError::Read {
                location: location.into(),
                path,
                source,
            }),
        };
    }
    let text = match file.metadata.as_deref() {
        Some("json") => crate::oci_config::to_pretty_json(bp)
            .map_err(|e| invalid(format!("cannot dump metadata: {e}")))?,
        Some("yaml") => serde_yaml::to_string(bp)
            .map_err(|e| invalid(format!("cannot dump metadata: {e}")))?
            .into_bytes(),
        other => {
            return Err(invalid(format!(
                "no contents, source, metadata ({other:?}) or symlink"
            )));
        }
    };
    Ok(Some(NodeKind::File {
        size: text.len() as u64,
        content: Content::bytes(text),
    }))
}

/// `~/` expands to `$HOME`; a relative source is relative to the blueprint's directory.
fn source_path(source: &str, bp_dir: &Path) -> PathBuf {
    if let Some(rest) = source.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    bp_dir.join(source)
}

#[cfg(test)]
mod tests {
    use super::with_x_bits;

    #[test]
    fn leading_directories_get_matching_x_bits() {
        assert_eq!(with_x_bits(0o600), 0o700);
        assert_eq!(with_x_bits(0o644), 0o755);
        assert_eq!(with_x_bits(0o640), 0o750);
        assert_eq!(with_x_bits(0o000), 0o000);
    }
}
