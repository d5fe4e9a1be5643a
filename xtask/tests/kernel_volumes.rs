//! Assembling the kernel section (boot file out, modules tar and other files in, microcode in front of the
//! initramfs), volumes (image, OCI layout, empty) and binds that name a volume.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};
use xtask::assemble::{NodeKind, Tree, assemble};
use xtask::blueprint::Blueprint;
use xtask::cpio::read_archive;
use xtask::store::ImageStore;

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write");
}

/// Like a LinuxKit kernel image's `kernel.tar`, it starts with the root's own entry `./` (here 0750, to tell
/// it from the 0755 default).
fn modules_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut root = tar::Header::new_gnu();
    root.set_entry_type(tar::EntryType::Directory);
    root.set_mode(0o750);
    root.set_size(0);
    builder
        .append_data(&mut root, "./", std::io::empty())
        .expect("append ./");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(9);
    h.set_uid(0);
    h.set_gid(0);
    builder
        .append_data(&mut h, "lib/modules/6.1.0/kernel/x.ko", &b"module-x\n"[..])
        .expect("append");
    builder.into_inner().expect("tar")
}

fn store(dir: &Path) -> ImageStore {
    let root = dir.join("store");
    let kernel = root.join("debian/kernel/6.1/rootfs");
    write(&kernel.join("bzImage"), b"boot file");
    write(&kernel.join("kernel.tar"), &modules_tar());
    write(&kernel.join("ucode.cpio"), b"UCODE---");
    write(&kernel.join("lib/firmware/fw.bin"), b"fw");
    let data = root.join("guestkit/data/latest/rootfs");
    write(&data.join("srv/index.html"), b"<h1>hi</h1>\n");
    let tool = root.join("guestkit/tool/latest/rootfs");
    write(&tool.join("bin/tool"), b"tool");
    ImageStore::new(root)
}

const BLUEPRINT: &str = r#"
kernel:
  image: debian/kernel:6.1
  binary: bzImage
  ucode: ucode.cpio
  cmdline: console=ttyS0
volumes:
  - name: www
    image: guestkit/data
    readonly: true
  - name: layout
    image: guestkit/data
    format: oci
  - name: scratch
services:
  - name: web
    image: guestkit/tool
    binds: ["www:/srv:ro", "scratch:/scratch"]
    mounts:
      - type: bind
        source: layout
        destination: /layout
        options: [rbind, ro]
"#;

fn file_text(tree: &Tree, path: &str) -> Vec<u8> {
    match tree.get(path).map(|n| &n.kind) {
        Some(NodeKind::File { content, .. }) => content.read_all().expect("read"),
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn the_kernel_section_splits_the_boot_file_from_the_modules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let bp: Blueprint = BLUEPRINT.parse().expect("blueprint");
    let assembly = assemble(&bp, dir.path(), &store).expect("assemble");
    assert_eq!(
        fs::read(assembly.kernel.as_ref().expect("kernel")).expect("read"),
        b"boot file"
    );
    assert_eq!(assembly.cmdline, "console=ttyS0");
    let tree = &assembly.tree;
    assert_eq!(
        file_text(tree, "lib/modules/6.1.0/kernel/x.ko"),
        b"module-x\n"
    );
    assert_eq!(file_text(tree, "lib/firmware/fw.bin"), b"fw");
    for absent in ["bzImage", "kernel.tar", "ucode.cpio"] {
        assert!(
            !tree.contains(absent),
            "/{absent} must not be in the initramfs"
        );
    }
    let initrd = assembly.write_initrd(Vec::new()).expect("initrd");
    assert!(
        initrd.starts_with(b"UCODE---070701"),
        "microcode first, then the newc archive"
    );
    let entries = read_archive(&initrd[8..]).expect("archive");
    assert_eq!(entries.len(), tree.len() + 1, "the tree and `.`");
    assert_eq!(entries[0].header.name, ".");
    assert_eq!(
        entries[0].header.mode, 0o040750,
        "/ comes from kernel.tar's ./"
    );
    assert_eq!(tree.get("boot").map(|n| n.mode), Some(0o755));
}

#[test]
fn an_explicit_kernel_tar_must_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let bp: Blueprint =
        "kernel:\n  image: debian/kernel:6.1\n  binary: bzImage\n  tar: modules.tar\n"
            .parse()
            .expect("bp");
    let err = assemble(&bp, dir.path(), &store).expect_err("missing tar");
    assert!(
        err.to_string()
            .contains("kernel: did not find the kernel tar \"modules.tar\""),
        "{err}"
    );
    let bp: Blueprint = "kernel:\n  image: debian/kernel:6.1\n".parse().expect("bp");
    let err = assemble(&bp, dir.path(), &store).expect_err("missing kernel");
    assert!(
        err.to_string()
            .contains("did not find the kernel file \"kernel\""),
        "{err}"
    );
}

#[test]
fn volumes_are_laid_out_and_binds_point_at_their_merged_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let bp: Blueprint = BLUEPRINT.parse().expect("blueprint");
    let tree = assemble(&bp, dir.path(), &store).expect("assemble").tree;
    for name in ["www", "layout", "scratch"] {
        for sub in ["lower", "tmp", "merged"] {
            let path = format!("containers/volumes/{name}/{sub}");
            assert!(
                tree.get(&path)
                    .is_some_and(|n| n.is_dir() && n.mode == 0o755),
                "{path}"
            );
        }
    }
    assert_eq!(
        file_text(&tree, "containers/volumes/www/lower/srv/index.html"),
        b"<h1>hi</h1>\n"
    );
    let resolv = tree
        .get("containers/volumes/www/lower/etc/resolv.conf")
        .map(|n| n.kind.clone());
    assert_eq!(
        resolv,
        Some(NodeKind::Symlink("/run/resolvconf/resolv.conf".into()))
    );
    let index: Value = serde_json::from_slice(&file_text(
        &tree,
        "containers/volumes/layout/lower/index.json",
    ))
    .expect("index");
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        json!("docker.io/guestkit/data:latest")
    );
    assert!(tree.contains("containers/volumes/layout/lower/oci-layout"));
    assert!(
        !tree
            .paths()
            .any(|p| p.starts_with("containers/volumes/scratch/lower/")),
        "empty volume"
    );

    let config: Value =
        serde_json::from_slice(&file_text(&tree, "containers/services/web/config.json"))
            .expect("config");
    let mounts = config["mounts"].as_array().expect("mounts");
    let by_dest = |d: &str| {
        mounts
            .iter()
            .find(|m| m["destination"] == json!(d))
            .cloned()
            .expect(d)
    };
    assert_eq!(
        by_dest("/srv")["source"],
        json!("/containers/volumes/www/merged")
    );
    assert_eq!(
        by_dest("/scratch")["source"],
        json!("/containers/volumes/scratch/merged")
    );
    assert_eq!(
        by_dest("/layout")["source"],
        json!("/containers/volumes/layout/merged")
    );
}

#[test]
fn a_read_only_volume_cannot_be_bound_read_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let text = BLUEPRINT.replace("\"www:/srv:ro\"", "\"www:/srv\"");
    let bp: Blueprint = text.parse().expect("blueprint");
    let err = assemble(&bp, dir.path(), &store).expect_err("rw bind of a ro volume");
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        chain.contains("services[0] (name \"web\")")
            && chain.contains("volume \"www\" is read-only"),
        "{chain}"
    );
}
