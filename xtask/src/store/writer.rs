//! Writing an OCI image layout tarball from a tree and an image config: one gzip layer (the config's
//! `diff_ids` holds the digest of the uncompressed tar, as registries and containerd check), the config blob
//! (with the `org.mobyproject.config` label), the manifest, `index.json` (one entry per tag, with the
//! platform, the fully qualified name in `io.containerd.image.name` and the tag in
//! `org.opencontainers.image.ref.name`, as `ctr images export` writes them), `oci-layout`, and a Docker
//! `manifest.json`, so that `ctr images import`, `skopeo`, `docker load` and `linuxkit cache import` accept
//! it. `linuxkit cache import` files the image under `io.containerd.image.name` verbatim and `linuxkit build`
//! looks it up by the normalised name, so the name must be the qualified one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{CONFIG_LABEL, StoreError};
use crate::assemble::{NodeKind, Tree};
use crate::blueprint::ImageConfig;

/// The media type of the layers written.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The image config to write (the Dockerfile-level settings plus labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciImage {
    /// `org/name:tag`, recorded (qualified, see [`qualified_reference`]) in `index.json` and `manifest.json`.
    pub reference: String,
    /// More tags of the same image (`org/name:tag`), each an entry of `index.json` of its own.
    pub extra_references: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
}

impl OciImage {
    /// Sets the `org.mobyproject.config` label from a package's `config:`.
    pub fn with_config_label(
        mut self,
        config: &ImageConfig,
    ) -> Result<OciImage, serde_json::Error> {
        self.labels
            .insert(CONFIG_LABEL.to_string(), serde_json::to_string(config)?);
        Ok(self)
    }
}

/// The fully qualified form of an image reference, as docker and containerd normalise it:
/// `guestkit/init:dev` is `docker.io/guestkit/init:dev`, `busybox` is `docker.io/library/busybox:latest`;
/// a first component with a `.` or `:`, or `localhost`, is a registry and stays.
pub fn qualified_reference(reference: &str) -> String {
    let (first, rest) = reference.split_once('/').unwrap_or(("", reference));
    let has_registry = first.contains('.') || first.contains(':') || first == "localhost";
    let (registry, path) = match (has_registry, first.is_empty()) {
        (true, _) => (first, rest.to_string()),
        (false, true) => ("docker.io", format!("library/{rest}")),
        (false, false) => ("docker.io", reference.to_string()),
    };
    let last = path.rsplit('/').next().unwrap_or_default();
    let tag = if last.contains(':') || last.contains('@') {
        ""
    } else {
        ":latest"
    };
    format!("{registry}/{path}{tag}")
}

/// The tag of a reference (`latest` when it has none).
fn tag_of(reference: &str) -> &str {
    let last = reference.rsplit('/').next().unwrap_or_default();
    last.split_once(':').map_or("latest", |(_, tag)| tag)
}

struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes `tree` as a single-layer OCI image layout tarball at `out`.
pub fn write_oci_tarball(tree: &Tree, image: &OciImage, out: &Path) -> Result<(), StoreError> {
    let fail = |source: io::Error| StoreError::Write {
        path: out.to_path_buf(),
        source,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut layer_file = tempfile::tempfile_in(dir).map_err(fail)?;
    let layer = write_layer(tree, &mut layer_file).map_err(fail)?;
    let config = config_blob(image, &layer.diff_id);
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.size}],
    }))
    .map_err(|e| fail(e.into()))?;
    let manifest_digest = digest(&manifest);
    let names: Vec<String> = std::iter::once(&image.reference)
        .chain(&image.extra_references)
        .map(|r| qualified_reference(r))
        .collect();
    let entries: Vec<_> = names
        .iter()
        .map(|name| {
            json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest.len(),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "org.opencontainers.image.ref.name": tag_of(name),
                    "io.containerd.image.name": name,
                },
            })
        })
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .map_err(|e| fail(e.into()))?;
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let docker = serde_json::to_vec(&json!([{
        "Config": blob(&config_digest),
        "RepoTags": names,
        "Layers": [blob(&layer.digest)],
    }]))
    .map_err(|e| fail(e.into()))?;
    let file = File::create(out).map_err(fail)?;
    let mut outer = tar::Builder::new(file);
    let small: [(&str, &[u8]); 5] = [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        ("manifest.json", &docker),
        (&blob(&config_digest), &config),
        (&blob(&manifest_digest), &manifest),
    ];
    for dir_name in ["blobs", "blobs/sha256"] {
        outer
            .append_data(
                &mut header(tar::EntryType::Directory, 0o755, 0),
                dir_name,
                io::empty(),
            )
            .map_err(fail)?;
    }
    for (name, data) in small {
        outer
            .append_data(
                &mut header(tar::EntryType::Regular, 0o644, data.len() as u64),
                name,
                data,
            )
            .map_err(fail)?;
    }
    layer_file.rewind().map_err(fail)?;
    let mut h = header(tar::EntryType::Regular, 0o644, layer.size);
    outer
        .append_data(&mut h, blob(&layer.digest), &mut layer_file)
        .map_err(fail)?;
    outer.into_inner().and_then(|mut f| f.flush()).map_err(fail)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn config_blob(image: &OciImage, diff_id: &str) -> Vec<u8> {
    let mut config = serde_json::Map::new();
    if let Some(entrypoint) = &image.entrypoint {
        config.insert("Entrypoint".into(), json!(entrypoint));
    }
    if let Some(cmd) = &image.cmd {
        config.insert("Cmd".into(), json!(cmd));
    }
    if !image.env.is_empty() {
        config.insert("Env".into(), json!(image.env));
    }
    if !image.working_dir.is_empty() {
        config.insert("WorkingDir".into(), json!(image.working_dir));
    }
    if !image.labels.is_empty() {
        config.insert("Labels".into(), json!(image.labels));
    }
    let value = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A written layer: the digest and size of the gzip blob, and the digest of the tar inside (`diff_id`).
struct Layer {
    digest: String,
    size: u64,
    diff_id: String,
}

/// Writes the tree as a gzip tar layer (deterministic: no name or time in the gzip header).
fn write_layer(tree: &Tree, file: &mut File) -> io::Result<Layer> {
    let compressed = Hashing {
        inner: &mut *file,
        hasher: Sha256::new(),
        len: 0,
    };
    let gzip = flate2::GzBuilder::new().write(compressed, flate2::Compression::fast());
    let uncompressed = Hashing {
        inner: gzip,
        hasher: Sha256::new(),
        len: 0,
    };
    let uncompressed = write_tree_tar(tree, uncompressed)?;
    let diff_id = format!("sha256:{}", hex::encode(uncompressed.hasher.finalize()));
    let compressed = uncompressed.inner.finish()?;
    Ok(Layer {
        digest: format!("sha256:{}", hex::encode(compressed.hasher.finalize())),
        size: compressed.len,
        diff_id,
    })
}

/// Writes the tree as a tar archive in path order (directories end in `/`, times are 0, owners and modes
/// as in the tree): the form of image layers and of a kernel image's `kernel.tar`. Returns the writer.
pub fn write_tree_tar<W: Write>(tree: &Tree, out: W) -> io::Result<W> {
    let mut builder = tar::Builder::new(out);
    for (path, node) in tree.iter() {
        append_node(&mut builder, path, node)?;
    }
    builder.into_inner()
}

fn append_node<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    node: &crate::assemble::Node,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, node.mode, 0);
    h.set_uid(node.uid.into());
    h.set_gid(node.gid.into());
    match &node.kind {
        NodeKind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            builder.append_data(&mut h, format!("{path}/"), io::empty())
        }
        NodeKind::File { content, size } => {
            h.set_size(*size);
            builder.append_data(&mut h, path, content.open()?)
        }
        NodeKind::Symlink(target) => {
            h.set_entry_type(tar::EntryType::Symlink);
            builder.append_link(&mut h, path, target)
        }
        NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor } => {
            let char = matches!(node.kind, NodeKind::CharDevice { .. });
            h.set_entry_type(if char {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            h.set_device_major(*major)?;
            h.set_device_minor(*minor)?;
            builder.append_data(&mut h, path, io::empty())
        }
        NodeKind::Fifo => {
            h.set_entry_type(tar::EntryType::Fifo);
            builder.append_data(&mut h, path, io::empty())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_qualified_as_docker_normalises_them() {
        for (short, full) in [
            ("guestkit/init:dev", "docker.io/guestkit/init:dev"),
            ("debian/busybox", "docker.io/debian/busybox:latest"),
            ("busybox:1", "docker.io/library/busybox:1"),
            ("docker.io/guestkit/init:dev", "docker.io/guestkit/init:dev"),
            ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
            ("ghcr.io/o/n:t", "ghcr.io/o/n:t"),
            ("localhost/x:1", "localhost/x:1"),
        ] {
            assert_eq!(qualified_reference(short), full, "{short}");
        }
    }

    #[test]
    fn tags_are_the_last_components_suffix() {
        assert_eq!(tag_of("docker.io/guestkit/kernel:6.1"), "6.1");
        assert_eq!(tag_of("localhost:5000/a/b"), "latest");
    }
}
