//! The local image store (there is no registry). A reference `org/name[:tag]` (tag `latest` by default) is
//! looked up under the store root as
//! - `<root>/<org>/<name>/<tag>/` holding `rootfs/` and an optional `image.json` (OCI image config), or
//! - `<root>/<org>/<name>/<tag>/` holding an OCI image layout (`oci-layout`, `index.json`, `blobs/`), or
//! - `<root>/<org>/<name>/<tag>.tar`, an OCI image layout tarball.
//!
//! A reference starting with `/`, `./` or `../` is a path to such a directory or tarball, relative to the
//! blueprint's directory. The `org.mobyproject.config` label is parsed into the image-entry model.

mod layout;
mod writer;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

use crate::assemble::{Content, Node, NodeKind, Tree};
use crate::blueprint::{BlueprintError, ImageConfig, parse_image_config};
use crate::oci_config::ImageDefaults;

pub use writer::{
    LAYER_MEDIA_TYPE, OciImage, qualified_reference, write_oci_tarball, write_tree_tar,
};

/// The label holding a package's `build.yml` `config:`.
pub const CONFIG_LABEL: &str = "org.mobyproject.config";

/// An image read from the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The reference as written in the blueprint.
    pub reference: String,
    /// The normalised reference used for de-duplication (`org/name:tag`, or the canonical path).
    pub key: String,
    pub defaults: ImageDefaults,
    pub labels: BTreeMap<String, String>,
    /// The parsed `org.mobyproject.config` label (empty if none).
    pub label_config: ImageConfig,
    /// The image filesystem.
    pub fs: Tree,
}

/// Why an image could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid image reference {reference:?}: {problem}")]
    Reference { reference: String, problem: String },
    #[error("image {reference:?} not found (looked for {tried})")]
    NotFound { reference: String, tried: String },
    #[error("image {reference:?}: cannot read {path}")]
    Read {
        reference: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {reference:?}: {problem}")]
    Format { reference: String, problem: String },
    #[error("image {reference:?}: bad {CONFIG_LABEL} label")]
    Label {
        reference: String,
        #[source]
        source: BlueprintError,
    },
    #[error("cannot write OCI image {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A directory of images.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    scratch: Mutex<Option<tempfile::TempDir>>,
    /// Gzip layers already decompressed: (blob file, offset) → decompressed file and length.
    decompressed: Mutex<BTreeMap<(PathBuf, u64), (PathBuf, u64)>>,
}

/// The part of an OCI image config (`image.json` / config blob) the build uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct OciConfigFile {
    #[serde(default)]
    pub config: OciConfigSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OciConfigSection {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ImageStore {
    pub fn new(root: impl Into<PathBuf>) -> ImageStore {
        ImageStore {
            root: root.into(),
            scratch: Mutex::new(None),
            decompressed: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Finds and reads an image. `base_dir` anchors path references (the blueprint's directory).
    pub fn open(&self, reference: &str, base_dir: &Path) -> Result<Image, StoreError> {
        let (location, key) = self.locate(reference, base_dir)?;
        let (fs, config) = match &location {
            Location::Rootfs(dir) => (
                tree_from_dir(&dir.join("rootfs")).map_err(read_err(reference, dir))?,
                read_image_json(reference, dir)?,
            ),
            Location::LayoutDir(dir) => layout::read_layout_dir(self, reference, dir)?,
            Location::LayoutTar(file) => layout::read_layout_tar(self, reference, file)?,
        };
        image_from_parts(reference, key, fs, config)
    }

    /// The image as an OCI image layout tree (`oci-layout`, `index.json`, `blobs/…`), for `format: oci`
    /// volumes. Directory images are converted with [`write_oci_tarball`] first.
    pub fn open_layout(&self, reference: &str, base_dir: &Path) -> Result<Tree, StoreError> {
        let (location, key) = self.locate(reference, base_dir)?;
        match &location {
            Location::LayoutDir(dir) => tree_from_dir(dir).map_err(read_err(reference, dir)),
            Location::LayoutTar(file) => layout::layout_tar_tree(reference, file),
            Location::Rootfs(_) => {
                let image = self.open(reference, base_dir)?;
                let (_, path) = self.scratch_file(reference)?;
                let d = image.defaults;
                let oci = OciImage {
                    reference: key,
                    entrypoint: Some(d.entrypoint).filter(|e| !e.is_empty()),
                    cmd: Some(d.cmd).filter(|c| !c.is_empty()),
                    env: d.env,
                    working_dir: d.working_dir,
                    labels: image.labels,
                    ..OciImage::default()
                };
                write_oci_tarball(&image.fs, &oci, &path)?;
                layout::layout_tar_tree(reference, &path)
            }
        }
    }

    fn locate(&self, reference: &str, base_dir: &Path) -> Result<(Location, String), StoreError> {
        if ["/", "./", "../"].iter().any(|p| reference.starts_with(p)) {
            let path = base_dir.join(reference);
            let key = fs::canonicalize(&path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string();
            return Location::classify(&path).map(|l| (l, key)).ok_or_else(|| {
                StoreError::NotFound {
                    reference: reference.into(),
                    tried: path.display().to_string(),
                }
            });
        }
        let (repo, tag) = split_reference(reference)?;
        let dir = self.root.join(&repo).join(&tag);
        let tarball = self.root.join(&repo).join(format!("{tag}.tar"));
        let key = format!("{repo}:{tag}");
        if let Some(location) = Location::classify(&dir).or_else(|| Location::classify(&tarball)) {
            return Ok((location, key));
        }
        let tried = format!(
            "{} (with rootfs/ or an OCI layout) and {}",
            dir.display(),
            tarball.display()
        );
        Err(StoreError::NotFound {
            reference: reference.into(),
            tried,
        })
    }

    /// A host path holding `content` (the file itself, or a copy in the scratch directory).
    pub fn materialise(&self, reference: &str, content: &Content) -> Result<PathBuf, StoreError> {
        if let Content::Path(path) = content {
            return Ok(path.clone());
        }
        let (mut file, path) = self.scratch_file(reference)?;
        content
            .open()
            .and_then(|mut r| std::io::copy(&mut r, &mut file))
            .map_err(|source| StoreError::Read {
                reference: reference.into(),
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }

    /// Reads a tar (or tar+gzip) file of an image into a tree, e.g. a kernel image's `kernel.tar`.
    pub fn tree_from_tar(
        &self,
        reference: &str,
        content: &Content,
        size: u64,
    ) -> Result<Tree, StoreError> {
        let region = match content {
            Content::Path(path) => (path.clone(), 0, size),
            Content::Range { path, offset, len } => (path.clone(), *offset, *len),
            Content::Bytes(_) => (self.materialise(reference, content)?, 0, size),
        };
        layout::tree_from_region(self, reference, region)
    }

    /// A private scratch directory (decompressed layers, extracted files), removed with the store.
    pub(crate) fn scratch_file(&self, reference: &str) -> Result<(fs::File, PathBuf), StoreError> {
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("guestkit-store-")
                .tempdir()
                .map_err(|source| StoreError::Read {
                    reference: reference.into(),
                    path: std::env::temp_dir(),
                    source,
                })?;
            *guard = Some(dir);
        }
        let dir = guard
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_else(std::env::temp_dir);
        let file = tempfile::Builder::new()
            .tempfile_in(&dir)
            .and_then(|f| f.keep().map_err(|e| e.error));
        file.map_err(|source| StoreError::Read {
            reference: reference.into(),
            path: dir,
            source,
        })
    }
}

enum Location {
    Rootfs(PathBuf),
    LayoutDir(PathBuf),
    LayoutTar(PathBuf),
}

impl Location {
    fn classify(path: &Path) -> Option<Location> {
        if path.join("oci-layout").is_file() {
            Some(Location::LayoutDir(path.to_path_buf()))
        } else if path.join("rootfs").is_dir() {
            Some(Location::Rootfs(path.to_path_buf()))
        } else if path.is_file() {
            Some(Location::LayoutTar(path.to_path_buf()))
        } else {
            None
        }
    }
}

/// Splits `org/name[:tag]` into (`org/name`, `tag`); a digest (`@sha256:…`) is not supported.
pub fn split_reference(reference: &str) -> Result<(String, String), StoreError> {
    let bad = |problem: &str| StoreError::Reference {
        reference: reference.into(),
        problem: problem.into(),
    };
    if reference.contains('@') {
        return Err(bad(
            "digest references are not supported by the local store",
        ));
    }
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    };
    let parts_ok = repo
        .split('/')
        .all(|p| !p.is_empty() && p != "." && p != "..");
    if repo.is_empty() || !parts_ok {
        return Err(bad("expected org/name[:tag]"));
    }
    if tag.is_empty() || tag.contains('/') || tag == "." || tag == ".." {
        return Err(bad("empty or invalid tag"));
    }
    Ok((repo.to_string(), tag.to_string()))
}

fn read_err<'a>(reference: &'a str, path: &'a Path) -> impl Fn(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Read {
        reference: reference.into(),
        path: path.to_path_buf(),
        source,
    }
}

fn read_image_json(reference: &str, dir: &Path) -> Result<OciConfigFile, StoreError> {
    let path = dir.join("image.json");
    if !path.exists() {
        return Ok(OciConfigFile::default());
    }
    let text = fs::read(&path).map_err(read_err(reference, &path))?;
    parse_config_blob(reference, &text)
}

pub(crate) fn parse_config_blob(
    reference: &str,
    bytes: &[u8],
) -> Result<OciConfigFile, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Format {
        reference: reference.into(),
        problem: format!("image config is not valid OCI image config JSON: {e}"),
    })
}

fn image_from_parts(
    reference: &str,
    key: String,
    fs: Tree,
    file: OciConfigFile,
) -> Result<Image, StoreError> {
    let c = file.config;
    let labels = c.labels.unwrap_or_default();
    let label_config = match labels.get(CONFIG_LABEL).filter(|l| !l.trim().is_empty()) {
        Some(text) => parse_image_config(text, &format!("label of image {reference:?}")).map_err(
            |source| StoreError::Label {
                reference: reference.into(),
                source,
            },
        )?,
        None => ImageConfig::default(),
    };
    let defaults = ImageDefaults {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
    };
    Ok(Image {
        reference: reference.into(),
        key,
        defaults,
        labels,
        label_config,
        fs,
    })
}

/// Reads a host directory into a tree (owner root; files are referenced by path, not read).
pub fn tree_from_dir(dir: &Path) -> std::io::Result<Tree> {
    let mut tree = Tree::new();
    walk(dir, "", &mut tree)?;
    Ok(tree)
}

fn walk(dir: &Path, prefix: &str, tree: &mut Tree) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(entry.path())?;
        let mode = meta.mode() & 0o7777;
        let ft = meta.file_type();
        let (major, minor) = split_rdev(meta.rdev());
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_file() {
            NodeKind::File {
                content: Content::Path(entry.path()),
                size: meta.len(),
            }
        } else if ft.is_symlink() {
            NodeKind::Symlink(fs::read_link(entry.path())?.to_string_lossy().into_owned())
        } else if ft.is_char_device() {
            NodeKind::CharDevice { major, minor }
        } else if ft.is_block_device() {
            NodeKind::BlockDevice { major, minor }
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else {
            continue;
        };
        tree.insert(
            &rel,
            Node {
                kind,
                mode,
                uid: 0,
                gid: 0,
            },
        );
        if ft.is_dir() {
            walk(&entry.path(), &rel, tree)?;
        }
    }
    Ok(())
}

fn split_rdev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repo_and_tag() {
        let ok = |r: &str| split_reference(r).expect(r);
        assert_eq!(
            ok("linuxkit/init"),
            ("linuxkit/init".into(), "latest".into())
        );
        assert_eq!(
            ok("linuxkit/init:v1"),
            ("linuxkit/init".into(), "v1".into())
        );
        assert_eq!(
            ok("localhost:5000/a/b"),
            ("localhost:5000/a/b".into(), "latest".into())
        );
        for bad in ["", "a/../b", "a:", "a@sha256:00", "/x"] {
            assert!(split_reference(bad).is_err(), "{bad}");
        }
    }
}
