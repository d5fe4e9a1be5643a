//! The in-memory filesystem tree (`path → node`). File contents are referenced lazily (a source path, a byte
//! range of a file, or small in-memory bytes), so large binaries are streamed only when written out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Arc<[u8]>),
    /// A whole file on the host.
    Path(PathBuf),
    /// `len` bytes of a host file starting at `offset` (a member of an uncompressed tar).
    Range {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Content {
    pub fn bytes(data: impl Into<Vec<u8>>) -> Content {
        Content::Bytes(Arc::from(data.into()))
    }

    /// Opens the content for streaming, limited to its length.
    pub fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        match self {
            Content::Bytes(data) => Ok(Box::new(&data[..])),
            Content::Path(path) => Ok(Box::new(File::open(path)?)),
            Content::Range { path, offset, len } => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(*offset))?;
                Ok(Box::new(file.take(*len)))
            }
        }
    }

    /// Reads the whole content into memory (for small files and tests).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open()?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File { content: Content, size: u64 },
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
}

/// One entry: its kind, permission bits (`0o7777`), owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Node {
    pub fn dir(mode: u32) -> Node {
        Node {
            kind: NodeKind::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn file(content: Content, size: u64, mode: u32) -> Node {
        Node {
            kind: NodeKind::File { content, size },
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn bytes(data: impl Into<Vec<u8>>, mode: u32) -> Node {
        let data = data.into();
        let size = data.len() as u64;
        Node::file(Content::bytes(data), size, mode)
    }

    pub fn symlink(target: impl Into<String>) -> Node {
        Node {
            kind: NodeKind::Symlink(target.into()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }

    pub fn with_mode(mut self, mode: u32) -> Node {
        self.mode = mode;
        self
    }

    pub fn owned(mut self, uid: u32, gid: u32) -> Node {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn is_dir(&self) -> bool {
        self.kind == NodeKind::Dir
    }
}

/// A filesystem tree keyed by normalised relative paths (`etc/hosts`). The root directory's own entry (a
/// layer's `./`) is kept apart: `None` until some source gives one. Iteration is sorted, so parents come
/// before their children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    root: Option<Node>,
    nodes: BTreeMap<String, Node>,
}

/// The root directory written when no merged source has a `./` entry: 0755, owned by root (never the
/// kernel's world-writable rootfs default).
pub const DEFAULT_ROOT_MODE: u32 = 0o755;

/// Normalises `/a//b/./c/` to `a/b/c`; `..` is resolved lexically and cannot climb above the root.
pub fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&normalise(path))
    }

    /// The root directory's entry (a source's `./`), if any source had one.
    pub fn root(&self) -> Option<&Node> {
        self.root.as_ref()
    }

    /// The root directory's entry as written out: the recorded one, or 0755 root:root.
    pub fn root_or_default(&self) -> Node {
        self.root
            .clone()
            .unwrap_or_else(|| Node::dir(DEFAULT_ROOT_MODE))
    }

    pub fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// Every path, sorted, without a leading `/`.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Creates the missing directories of `path` (itself included) with `mode`; a non-directory in the way is
    /// replaced (so the tree never has entries below a file).
    pub fn mkdir_all(&mut self, path: &str, mode: u32) {
        let path = self.resolve_parents(&normalise(path));
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            match self.nodes.get(&prefix).map(|n| &n.kind) {
                None => {
                    self.nodes.insert(prefix.clone(), Node::dir(mode));
                }
                Some(NodeKind::Dir | NodeKind::Symlink(_)) => {}
                Some(_) => {
                    log::warn!("/{prefix}: a file where a directory is needed; replacing it");
                    self.nodes.insert(prefix.clone(), Node::dir(mode));
                }
            }
        }
    }

    /// Adds or replaces `path`, like extracting one tar entry onto a filesystem: missing parents are created
    /// (0755), a parent that is a symlink inside the tree is followed, a directory over a directory keeps the
    /// children, and anything else over a directory replaces the subtree.
    ///
    /// Merged-/usr images (`lib -> usr/lib`) are kept working, where the kernel's cpio unpacking would not:
    /// a directory over a symlink to a directory keeps the symlink (as `tar --keep-directory-symlink`), and a
    /// symlink over a directory moves the directory's children to the link target.
    pub fn insert(&mut self, path: &str, node: Node) {
        let path = self.resolve_parents(&normalise(path));
        if path.is_empty() {
            // A `./` entry re-modes and re-owns the root, as a later tar entry does when extracted.
            if node.is_dir() {
                self.root = Some(node);
            }
            return;
        }
        if node.is_dir() {
            let target = self.follow(&path, 0);
            if target != path && self.nodes.get(&target).is_some_and(Node::is_dir) {
                return;
            }
        }
        if let Some(dir) = parent(&path) {
            self.mkdir_all(dir, 0o755);
        }
        let replaces_dir = self.nodes.get(&path).is_some_and(Node::is_dir);
        if replaces_dir && !node.is_dir() {
            let children = self.take_subtree(&path);
            if let NodeKind::Symlink(target) = &node.kind {
                self.rehome(&path, target, children);
            } else if !children.is_empty() {
                log::warn!(
                    "/{path}: replacing a directory drops {} entries below it",
                    children.len()
                );
            }
        }
        self.nodes.insert(path, node);
    }

    /// Removes `path` and everything below it; returns what was below.
    pub fn remove(&mut self, path: &str) -> Vec<(String, Node)> {
        let path = normalise(path);
        let children = self.take_subtree(&path);
        self.nodes.remove(&path);
        children
    }

    /// Removes everything strictly below `path`, returning (relative path, node).
    fn take_subtree(&mut self, path: &str) -> Vec<(String, Node)> {
        let prefix = format!("{path}/");
        let keys: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                self.nodes
                    .remove(&k)
                    .map(|n| (k[prefix.len()..].to_string(), n))
            })
            .collect()
    }

    fn rehome(&mut self, link: &str, target: &str, children: Vec<(String, Node)>) {
        if children.is_empty() {
            return;
        }
        let base = match target.strip_prefix('/') {
            Some(abs) => normalise(abs),
            None => normalise(&format!("{}/{target}", parent(link).unwrap_or(""))),
        };
        log::warn!(
            "/{link}: symlink to {target} replaces a directory; moving {} entries to /{base}",
            children.len()
        );
        self.mkdir_all(&base, 0o755);
        for (rel, node) in children {
            let dest = format!("{base}/{rel}");
            if !(node.is_dir() && self.nodes.get(&dest).is_some_and(Node::is_dir)) {
                self.nodes.insert(dest, node);
            }
        }
    }

    /// Follows symlinks in the tree for every parent component of `path` (not the last component).
    fn resolve_parents(&self, path: &str) -> String {
        let mut resolved = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            let candidate = if resolved.is_empty() {
                part.to_string()
            } else {
                format!("{resolved}/{part}")
            };
            resolved = if i + 1 < parts.len() {
                self.follow(&candidate, 0)
            } else {
                candidate
            };
        }
        resolved
    }

    fn follow(&self, path: &str, depth: usize) -> String {
        let Some(Node {
            kind: NodeKind::Symlink(target),
            ..
        }) = self.nodes.get(path)
        else {
            return path.to_string();
        };
        if depth > 40 {
            return path.to_string();
        }
        let next = match target.strip_prefix('/') {
            Some(abs) => normalise(abs),
            None => normalise(&format!("{}/{target}", parent(path).unwrap_or(""))),
        };
        let next = self.resolve_parents(&next);
        self.follow(&next, depth + 1)
    }

    /// Merges `other` below `prefix`. At the root, entry by entry with [`Tree::insert`] semantics (symlinks
    /// already in the tree are followed). Below a prefix (a fresh bundle directory), paths are taken as they
    /// are: `other` was resolved on its own, where absolute links point into the image, not the initramfs.
    /// `other`'s root entry, if it has one, wins over the current root (at `/`) or the prefix directory's
    /// mode and owner, as the later `./` entry does in `linuxkit build`'s tar.
    pub fn merge(&mut self, prefix: &str, other: &Tree) {
        let prefix = normalise(prefix);
        if prefix.is_empty() {
            if let Some(root) = &other.root {
                self.root = Some(root.clone());
            }
            for (path, node) in other.iter() {
                self.insert(path, node.clone());
            }
            return;
        }
        self.mkdir_all(&prefix, 0o755);
        if let Some(root) = &other.root {
            self.nodes.insert(prefix.clone(), root.clone());
        }
        for (path, node) in other.iter() {
            self.nodes.insert(format!("{prefix}/{path}"), node.clone());
        }
    }

    /// Writes the tree as a newc cpio archive (see [`crate::cpio`]), starting with the root as `.`.
    pub fn write_cpio<W: io::Write>(&self, out: W) -> io::Result<W> {
        let mut writer = crate::cpio::CpioWriter::new(out);
        writer.write_node(".", &self.root_or_default())?;
        for (path, node) in self.iter() {
            writer.write_node(path, node)?;
        }
        writer.finish()
    }

    /// Materialises the tree under `dir` (for inspection). Device nodes become empty files; owners are not set.
    pub fn write_dir(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::{PermissionsExt, symlink};
        std::fs::create_dir_all(dir)?;
        for (path, node) in self.iter() {
            let dest = dir.join(path);
            match &node.kind {
                NodeKind::Dir => std::fs::create_dir_all(&dest)?,
                NodeKind::File { content, .. } => {
                    io::copy(&mut content.open()?, &mut File::create(&dest)?)?;
                }
                NodeKind::Symlink(target) => symlink(target, &dest)?,
                _ => {
                    File::create(&dest)?;
                }
            }
            if !matches!(node.kind, NodeKind::Symlink(_)) {
                std::fs::set_permissions(
                    &dest,
                    std::fs::Permissions::from_mode(node.mode | 0o200),
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
