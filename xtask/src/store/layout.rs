//! Reading OCI image layouts (a directory or a tarball): index → manifest → config and layers; layers
//! (tar or tar+gzip) are applied in order with whiteouts. Layer members are referenced as byte ranges of
//! the layout files (gzip layers are decompressed once into the store's scratch directory).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ImageStore, OciConfigFile, StoreError, parse_config_blob};
use crate::assemble::{Content, Node, NodeKind, Tree, normalise};

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// A file region: (file, offset, length).
type Region = (PathBuf, u64, u64);

/// Where the blobs of a layout live.
enum Blobs {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        members: BTreeMap<String, (u64, u64)>,
    },
}

impl Blobs {
    fn region(&self, reference: &str, name: &str) -> Result<Region, StoreError> {
        let missing = || StoreError::Format {
            reference: reference.into(),
            problem: format!("layout has no {name}"),
        };
        match self {
            Blobs::Dir(dir) => {
                let path = dir.join(name);
                let len = std::fs::metadata(&path).map_err(|_| missing())?.len();
                Ok((path, 0, len))
            }
            Blobs::Tar { file, members } => {
                let (offset, len) = members.get(name).ok_or_else(missing)?;
                Ok((file.clone(), *offset, *len))
            }
        }
    }

    fn read(&self, reference: &str, name: &str) -> Result<Vec<u8>, StoreError> {
        let region = self.region(reference, name)?;
        let mut out = Vec::new();
        open_region(&region)
            .and_then(|mut r| r.read_to_end(&mut out))
            .map_err(|source| StoreError::Read {
                reference: reference.into(),
                path: region.0.clone(),
                source,
            })?;
        Ok(out)
    }
}

fn open_region((path, offset, len): &Region) -> io::Result<io::Take<File>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(*offset))?;
    Ok(file.take(*len))
}

fn blob_name(reference: &str, digest: &str) -> Result<String, StoreError> {
    let (alg, hex) = digest.split_once(':').ok_or_else(|| StoreError::Format {
        reference: reference.into(),
        problem: format!("bad digest {digest:?}"),
    })?;
    if alg.contains('/') || hex.contains('/') || hex.is_empty() {
        return Err(StoreError::Format {
            reference: reference.into(),
            problem: format!("bad digest {digest:?}"),
        });
    }
    Ok(format!("blobs/{alg}/{hex}"))
}

pub(super) fn read_layout_dir(
    store: &ImageStore,
    reference: &str,
    dir: &Path,
) -> Result<(Tree, OciConfigFile), StoreError> {
    read_layout(store, reference, &Blobs::Dir(dir.to_path_buf()))
}

pub(super) fn read_layout_tar(
    store: &ImageStore,
    reference: &str,
    file: &Path,
) -> Result<(Tree, OciConfigFile), StoreError> {
    let members = tar_members(file).map_err(|source| StoreError::Read {
        reference: reference.into(),
        path: file.to_path_buf(),
        source,
    })?;
    read_layout(
        store,
        reference,
        &Blobs::Tar {
            file: file.to_path_buf(),
            members,
        },
    )
}

/// Regular-file members of a tarball: normalised name → (data offset, size).
fn tar_members(file: &Path) -> io::Result<BTreeMap<String, (u64, u64)>> {
    let mut archive = tar::Archive::new(File::open(file)?);
    let mut members = BTreeMap::new();
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.header().entry_type().is_file() {
            let name = normalise(&entry.path()?.to_string_lossy());
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
    }
    Ok(members)
}

/// The files of a layout tarball as a tree (contents referenced in place).
pub(super) fn layout_tar_tree(reference: &str, file: &Path) -> Result<Tree, StoreError> {
    let members = tar_members(file).map_err(|source| StoreError::Read {
        reference: reference.into(),
        path: file.to_path_buf(),
        source,
    })?;
    let mut tree = Tree::new();
    for (name, (offset, len)) in members {
        let content = Content::Range {
            path: file.to_path_buf(),
            offset,
            len,
        };
        tree.insert(&name, Node::file(content, len, 0o644));
    }
    Ok(tree)
}

fn read_layout(
    store: &ImageStore,
    reference: &str,
    blobs: &Blobs,
) -> Result<(Tree, OciConfigFile), StoreError> {
    let index: Index = json(
        reference,
        &blobs.read(reference, "index.json")?,
        "index.json",
    )?;
    let manifest = find_manifest(reference, blobs, index, 0)?;
    let config_bytes = blobs.read(reference, &blob_name(reference, &manifest.config.digest)?)?;
    let config = parse_config_blob(reference, &config_bytes)?;
    let mut tree = Tree::new();
    for layer in &manifest.layers {
        let region = blobs.region(reference, &blob_name(reference, &layer.digest)?)?;
        let region = decompressed(store, reference, region)?;
        apply_layer(&mut tree, &region).map_err(|source| StoreError::Read {
            reference: reference.into(),
            path: region.0.clone(),
            source,
        })?;
    }
    Ok((tree, config))
}

pub(super) fn tree_from_region(
    store: &ImageStore,
    reference: &str,
    region: Region,
) -> Result<Tree, StoreError> {
    let region = decompressed(store, reference, region)?;
    let mut tree = Tree::new();
    apply_layer(&mut tree, &region).map_err(|source| StoreError::Read {
        reference: reference.into(),
        path: region.0.clone(),
        source,
    })?;
    Ok(tree)
}

fn json<T: for<'de> Deserialize<'de>>(
    reference: &str,
    bytes: &[u8],
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Format {
        reference: reference.into(),
        problem: format!("bad {what}: {e}"),
    })
}

/// Picks the linux/amd64 manifest (or the only/first one), following nested indexes.
fn find_manifest(
    reference: &str,
    blobs: &Blobs,
    index: Index,
    depth: u32,
) -> Result<Manifest, StoreError> {
    let format = |problem: String| StoreError::Format {
        reference: reference.into(),
        problem,
    };
    let chosen = index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .or_else(|| index.manifests.first())
        .ok_or_else(|| format("index lists no manifests".into()))?;
    let bytes = blobs.read(reference, &blob_name(reference, &chosen.digest)?)?;
    if INDEX_TYPES.contains(&chosen.media_type.as_str()) {
        if depth > 4 {
            return Err(format("image indexes nested too deeply".into()));
        }
        let nested: Index = json(reference, &bytes, "nested index")?;
        return find_manifest(reference, blobs, nested, depth + 1);
    }
    json(reference, &bytes, "manifest")
}

/// Gzip layers are decompressed into a scratch file; plain tar layers are used in place.
fn decompressed(store: &ImageStore, reference: &str, region: Region) -> Result<Region, StoreError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Read {
            reference: reference.into(),
            path: path.clone(),
            source,
        }
    };
    let mut magic = [0u8; 2];
    let mut reader = open_region(&region).map_err(read_err(&region.0))?;
    let n = reader.read(&mut magic).map_err(read_err(&region.0))?;
    if n < 2 || magic != [0x1f, 0x8b] {
        return Ok(region);
    }
    let key = (region.0.clone(), region.1);
    let mut cache = store.decompressed.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((path, len)) = cache.get(&key) {
        return Ok((path.clone(), 0, *len));
    }
    let (mut file, path) = store.scratch_file(reference)?;
    let mut gz = flate2::read::GzDecoder::new(open_region(&region).map_err(read_err(&region.0))?);
    let len = io::copy(&mut gz, &mut file).map_err(read_err(&region.0))?;
    cache.insert(key, (path.clone(), len));
    Ok((path, 0, len))
}

/// Applies one layer: whiteouts first (`.wh..wh..opq` empties a directory of lower-layer entries, `.wh.x`
/// deletes `x`), then the entries in order. Hard links copy their target's node.
fn apply_layer(tree: &mut Tree, region: &Region) -> io::Result<()> {
    let mut archive = tar::Archive::new(open_region(region)?);
    let mut adds = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let path = normalise(&entry.path()?.to_string_lossy());
        let (dir, base) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        if base == ".wh..wh..opq" {
            let children: Vec<String> = tree
                .paths()
                .filter(|p| p.starts_with(&format!("{dir}/")) || dir.is_empty())
                .map(str::to_string)
                .collect();
            for child in children {
                tree.remove(&child);
            }
        } else if let Some(victim) = base.strip_prefix(".wh.") {
            tree.remove(&format!("{dir}/{victim}"));
        } else {
            // `./` (path "") is the root directory's own entry; the tree keeps it apart.
            adds.push(layer_node(&entry, path, region)?);
        }
    }
    for (path, node) in adds {
        match node {
            Added::Node(node) => tree.insert(&path, node),
            Added::HardLink(target) => {
                if let Some(node) = tree.get(&target).cloned() {
                    tree.insert(&path, node);
                }
            }
            Added::Skip => {}
        }
    }
    Ok(())
}

enum Added {
    Node(Node),
    HardLink(String),
    /// Entry types an initramfs cannot hold (sockets, sparse files, …).
    Skip,
}

fn layer_node<R: Read>(
    entry: &tar::Entry<R>,
    path: String,
    region: &Region,
) -> io::Result<(String, Added)> {
    let h = entry.header();
    let mode = h.mode()? & 0o7777;
    // Blank numeric owner fields read as 0, as Go's archive/tar does.
    let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
    let link = || -> io::Result<String> {
        Ok(entry
            .link_name()?
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default())
    };
    let device = || -> io::Result<(u32, u32)> {
        Ok((
            h.device_major()?.unwrap_or(0),
            h.device_minor()?.unwrap_or(0),
        ))
    };
    let kind = match h.entry_type() {
        tar::EntryType::Directory => NodeKind::Dir,
        tar::EntryType::Symlink => NodeKind::Symlink(link()?),
        tar::EntryType::Link => return Ok((path, Added::HardLink(normalise(&link()?)))),
        tar::EntryType::Char => {
            let (major, minor) = device()?;
            NodeKind::CharDevice { major, minor }
        }
        tar::EntryType::Block => {
            let (major, minor) = device()?;
            NodeKind::BlockDevice { major, minor }
        }
        tar::EntryType::Fifo => NodeKind::Fifo,
        t if t.is_file() => NodeKind::File {
            content: Content::Range {
                path: region.0.clone(),
                offset: region.1 + entry.raw_file_position(),
                len: entry.size(),
            },
            size: entry.size(),
        },
        _ => return Ok((path, Added::Skip)),
    };
    Ok((
        path,
        Added::Node(Node {
            kind,
            mode,
            uid,
            gid,
        }),
    ))
}
