//! Volumes (docs/linuxkit.md §8.4) and container bundles (docs/linuxkit.md §8.2): `/containers/onboot/NNN-name`, `/containers/onshutdown/NNN-name`,
//! `/containers/services/name`, each with `config.json`, `runtime.json` and `rootfs/` (read-only) or
//! `lower/` + `tmp/` + `rootfs/` (writable). An image ref already unpacked by an earlier container is not
//! written again; the later container's runtime mounts point at the first one's root.

use std::collections::BTreeMap;
use std::path::Path;

use super::image_fs::{Use, filtered};
use super::{AssembleError, Node, Tree, open};
use crate::blueprint::{Blueprint, ImageEntry};
use crate::oci_config::{
    BuildContext, bundle_files, config_json, merge_layers, rootfs_mounts, runtime_json,
};
use crate::store::{Image, ImageStore};

pub(super) fn add_volumes(
    bp: &Blueprint,
    bp_dir: &Path,
    store: &ImageStore,
    tree: &mut Tree,
) -> Result<(), AssembleError> {
    for (i, volume) in bp.volumes.iter().enumerate() {
        let location = format!("volumes[{i}] (name {:?})", volume.name);
        let base = format!("containers/volumes/{}", volume.name);
        tree.mkdir_all(&format!("{base}/lower"), 0o755);
        match (&volume.image, volume.format.as_deref()) {
            (Some(reference), Some("oci")) => {
                let layout = store.open_layout(reference, bp_dir).map_err(|source| {
                    AssembleError::Image {
                        location: location.clone(),
                        reference: reference.clone(),
                        source,
                    }
                })?;
                tree.merge(&format!("{base}/lower"), &layout);
            }
            (Some(reference), _) => {
                let image = open(store, reference, bp_dir, &location)?;
                tree.merge(&format!("{base}/lower"), &filtered(&image.fs, Use::Init));
            }
            (None, _) => {}
        }
        tree.mkdir_all(&format!("{base}/tmp"), 0o755);
        tree.mkdir_all(&format!("{base}/merged"), 0o755);
    }
    Ok(())
}

/// Opened images by reference, and where each image key was first unpacked.
struct Unpacked<'a> {
    store: &'a ImageStore,
    bp_dir: &'a Path,
    images: BTreeMap<String, Image>,
    roots: BTreeMap<String, String>,
}

pub(super) fn add_containers(
    bp: &Blueprint,
    bp_dir: &Path,
    store: &ImageStore,
    ctx: &BuildContext,
    tree: &mut Tree,
) -> Result<(), AssembleError> {
    let mut unpacked = Unpacked {
        store,
        bp_dir,
        images: BTreeMap::new(),
        roots: BTreeMap::new(),
    };
    let sections = [
        ("onboot", &bp.onboot, true),
        ("onshutdown", &bp.onshutdown, true),
        ("services", &bp.services, false),
    ];
    for (section, entries, numbered) in sections {
        for (i, entry) in entries.iter().enumerate() {
            let location = format!("{section}[{i}] (name {:?})", entry.name);
            let bundle = if numbered {
                format!("containers/{section}/{i:03}-{}", entry.name)
            } else {
                format!("containers/{section}/{}", entry.name)
            };
            add_bundle(entry, &bundle, &location, ctx, &mut unpacked, tree)?;
        }
    }
    Ok(())
}

fn add_bundle(
    entry: &ImageEntry,
    bundle: &str,
    location: &str,
    ctx: &BuildContext,
    unpacked: &mut Unpacked<'_>,
    tree: &mut Tree,
) -> Result<(), AssembleError> {
    if !unpacked.images.contains_key(&entry.image) {
        let image = open(unpacked.store, &entry.image, unpacked.bp_dir, location)?;
        unpacked.images.insert(entry.image.clone(), image);
    }
    let Some(image) = unpacked.images.get(&entry.image) else {
        return Err(AssembleError::Invalid {
            location: location.into(),
            problem: "image vanished from the cache".into(),
        });
    };
    let config = merge_layers(&image.label_config, &entry.config);
    let readonly = config.readonly.unwrap_or(false);
    let config_err = |source| AssembleError::Config {
        location: location.into(),
        source,
    };
    let spec = config_json(&entry.name, &image.defaults, &config, ctx).map_err(config_err)?;
    tree.mkdir_all(bundle, 0o755);
    let own_root = format!("{bundle}/{}", if readonly { "rootfs" } else { "lower" });
    let root = match unpacked.roots.get(&image.key) {
        Some(first) => {
            if readonly {
                tree.insert(&format!("{bundle}/rootfs"), Node::dir(0o755));
            }
            first.clone()
        }
        None => {
            tree.merge(&own_root, &filtered(&image.fs, Use::Container));
            unpacked.roots.insert(image.key.clone(), own_root.clone());
            own_root
        }
    };
    if !readonly {
        tree.insert(&format!("{bundle}/tmp"), Node::dir(0o755));
        tree.insert(&format!("{bundle}/rootfs"), Node::dir(0o755));
    }
    let runtime = runtime_json(&config, rootfs_mounts(bundle, &root, readonly));
    let (config_bytes, runtime_bytes) =
        bundle_files(&entry.name, &spec, &runtime).map_err(config_err)?;
    tree.insert(
        &format!("{bundle}/config.json"),
        Node::bytes(config_bytes, 0o644),
    );
    tree.insert(
        &format!("{bundle}/runtime.json"),
        Node::bytes(runtime_bytes, 0o644),
    );
    Ok(())
}
