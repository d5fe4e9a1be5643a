//! Writing an OCI image layout tarball from a tree and an image config: one uncompressed layer, the config
//! blob (with the `org.mobyproject.config` label), the manifest, `index.json`, `oci-layout`, and a Docker
//! `manifest.json`, so that both OCI tools and `docker load`-style tools accept it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{CONFIG_LABEL, StoreError};
use crate::assemble::{NodeKind, Tree};
use crate::blueprint::ImageConfig;

/// The image config to write (the Dockerfile-level settings plus labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciImage {
    /// `org/name:tag`, recorded in `index.json` and `manifest.json`.
    pub reference: String,
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
    let (layer_digest, layer_size) = write_layer(tree, &mut layer_file).map_err(fail)?;
    let config = config_blob(image, &layer_digest);
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }))
    .map_err(|e| fail(e.into()))?;
    let manifest_digest = digest(&manifest);
    let tag = image
        .reference
        .rsplit(':')
        .next()
        .filter(|t| !t.contains('/'))
        .unwrap_or("latest");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": image.reference},
        }],
    }))
    .map_err(|e| fail(e.into()))?;
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let docker = serde_json::to_vec(&json!([{
        "Config": blob(&config_digest),
        "RepoTags": [image.reference],
        "Layers": [blob(&layer_digest)],
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
    let mut h = header(tar::EntryType::Regular, 0o644, layer_size);
    outer
        .append_data(&mut h, blob(&layer_digest), &mut layer_file)
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

fn config_blob(image: &OciImage, layer_digest: &str) -> Vec<u8> {
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
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Writes the tree as an uncompressed tar layer; returns its digest and size.
fn write_layer(tree: &Tree, file: &mut File) -> io::Result<(String, u64)> {
    let hashing = Hashing {
        inner: &mut *file,
        hasher: Sha256::new(),
        len: 0,
    };
    let mut builder = tar::Builder::new(hashing);
    for (path, node) in tree.iter() {
        let mut h = header(tar::EntryType::Regular, node.mode, 0);
        h.set_uid(node.uid.into());
        h.set_gid(node.gid.into());
        match &node.kind {
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut h, format!("{path}/"), io::empty())?;
            }
            NodeKind::File { content, size } => {
                h.set_size(*size);
                builder.append_data(&mut h, path, content.open()?)?;
            }
            NodeKind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut h, path, target)?;
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
                builder.append_data(&mut h, path, io::empty())?;
            }
            NodeKind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                builder.append_data(&mut h, path, io::empty())?;
            }
        }
    }
    let hashing = builder.into_inner()?;
    Ok((
        format!("sha256:{}", hex::encode(hashing.hasher.finalize())),
        hashing.len,
    ))
}
