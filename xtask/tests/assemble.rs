//! Builds a small image store (busybox as a rootfs directory image, a tools image as an OCI layout tarball and
//! directory written by the store's own writer, a kernel image), assembles a blueprint with read-only and
//! writable onboot containers and services, and checks the layout, config.json, runtime.json, de-duplication
//! and that the cpio archive reads back (with the system `cpio` and our reader).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use xtask::assemble::{Node, NodeKind, Options, Tree, assemble, assemble_with};
use xtask::blueprint::{Blueprint, ImageConfig};
use xtask::cpio::read_archive;
use xtask::store::{ImageStore, OciImage, tree_from_dir, write_oci_tarball};

const BLUEPRINT: &str = r#"
kernel:
  image: guestkit/kernel:6.1
  cmdline: "console=ttyS0 quiet"
init:
  - guestkit/init
onboot:
  - name: ro
    image: guestkit/busybox
    command: ["/bin/busybox", "true"]
  - name: rw
    image: guestkit/tools:1.0
    capabilities.add: [CAP_NET_ADMIN]
  - name: rw-again
    image: guestkit/tools:1.0
    readonly: false
services:
  - name: getty
    image: guestkit/busybox:latest
    binds.add: ["/etc:/hostetc:ro"]
  - name: tools-dir
    image: ./layouts/tools
    readonly: true
files:
  - path: etc/motd
    contents: "welcome\n"
    mode: "0644"
    uid: getty
  - path: /etc/guestkit/secret
    contents: "s"
    mode: "0640"
  - path: srv/www
    directory: true
  - path: srv/link
    symlink: www
  - path: etc/blueprint.json
    metadata: json
"#;

fn busybox() -> PathBuf {
    let path = PathBuf::from("/bin/busybox");
    assert!(
        path.is_file(),
        "this test needs a static busybox at /bin/busybox (apt-get install busybox-static)"
    );
    path
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write");
}

/// The busybox image: a rootfs directory with an image.json whose label makes it read-only.
fn busybox_image(store: &Path) {
    let dir = store.join("guestkit/busybox/latest");
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).expect("mkdir");
    fs::copy(busybox(), rootfs.join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).expect("symlink");
    write(&rootfs.join("etc/hostname"), b"dropped\n");
    write(&rootfs.join("etc/hosts"), b"replaced\n");
    let label = r#"{"readonly": true, "capabilities": ["CAP_SYS_ADMIN"], "binds": ["/run:/run"]}"#;
    let config = json!({"config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Labels": {"org.mobyproject.config": label}}});
    write(&dir.join("image.json"), config.to_string().as_bytes());
}

/// The tools image: written with the store's OCI writer as a tarball, and unpacked as a layout directory.
fn tools_image(store: &Path, blueprint_dir: &Path) {
    let mut tree = Tree::new();
    tree.insert("usr/bin/tool", Node::bytes("#!/bin/sh\necho tool\n", 0o755));
    tree.insert(
        "etc/resolv.conf",
        Node::bytes("nameserver 1.1.1.1\n", 0o644),
    );
    let label = ImageConfig {
        pid: Some("host".into()),
        capabilities: Some(vec!["CAP_SYS_TIME".into()]),
        ..Default::default()
    };
    let image = OciImage {
        reference: "guestkit/tools:1.0".into(),
        entrypoint: Some(vec!["/usr/bin/tool".into()]),
        working_dir: "/usr".into(),
        ..Default::default()
    }
    .with_config_label(&label)
    .expect("label");
    let tarball = store.join("guestkit/tools/1.0.tar");
    fs::create_dir_all(tarball.parent().expect("parent")).expect("mkdir");
    write_oci_tarball(&tree, &image, &tarball).expect("write OCI tarball");
    let layout = blueprint_dir.join("layouts/tools");
    fs::create_dir_all(&layout).expect("mkdir");
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&layout)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar -x of the OCI tarball failed");
}

fn kernel_and_init_images(store: &Path) {
    let kernel = store.join("guestkit/kernel/6.1/rootfs");
    write(&kernel.join("kernel"), b"not really a bzImage");
    write(&kernel.join("lib/modules/6.1.0/modules.dep"), b"");
    let init = store.join("guestkit/init/latest/rootfs");
    fs::create_dir_all(init.join("bin")).expect("mkdir");
    fs::copy(busybox(), init.join("bin/busybox")).expect("copy busybox");
    write(
        &init.join("etc/init.d/000-hello"),
        b"#!/bin/sh\necho hello\n",
    );
    write(&init.join("etc/resolv.conf"), b"nameserver 9.9.9.9\n");
    write(&init.join("Dockerfile"), b"FROM scratch\n");
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: ImageStore,
    blueprint_dir: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_root = dir.path().join("store");
    let blueprint_dir = dir.path().join("blueprints");
    busybox_image(&store_root);
    tools_image(&store_root, &blueprint_dir);
    kernel_and_init_images(&store_root);
    Fixture {
        store: ImageStore::new(store_root),
        blueprint_dir,
        _dir: dir,
    }
}

fn json_file(tree: &Tree, path: &str) -> Value {
    match tree.get(path).map(|n| &n.kind) {
        Some(NodeKind::File { content, .. }) => {
            serde_json::from_slice(&content.read_all().expect("read")).expect(path)
        }
        other => panic!("{path}: expected a file, found {other:?}"),
    }
}

#[test]
fn assembles_the_linuxkit_layout_and_a_readable_cpio() {
    let fx = fixture();
    let bp: Blueprint = BLUEPRINT.parse().expect("blueprint");
    let assembly = assemble(&bp, &fx.blueprint_dir, &fx.store).expect("assemble");
    assert_eq!(assembly.cmdline, "console=ttyS0 quiet");
    let kernel = assembly.kernel.as_ref().expect("kernel file");
    assert_eq!(fs::read(kernel).expect("kernel"), b"not really a bzImage");
    let tree = &assembly.tree;
    check_paths(tree);
    check_read_only(tree);
    check_writable(tree);
    check_dedup(tree);
    check_files(tree);
    check_cpio(tree);
}

fn check_paths(tree: &Tree) {
    let expected = [
        "bin/busybox",
        "etc/init.d/000-hello",
        "lib/modules/6.1.0/modules.dep",
        "dev/pts",
        "dev/shm",
        "proc",
        "sys",
        "containers/onboot/000-ro/config.json",
        "containers/onboot/000-ro/runtime.json",
        "containers/onboot/000-ro/rootfs/bin/busybox",
        "containers/onboot/000-ro/rootfs/bin/sh",
        "containers/onboot/001-rw/lower/usr/bin/tool",
        "containers/onboot/001-rw/tmp",
        "containers/onboot/001-rw/rootfs",
        "containers/onboot/002-rw-again/tmp",
        "containers/onboot/002-rw-again/rootfs",
        "containers/services/getty/config.json",
        "containers/services/getty/rootfs",
        "containers/services/tools-dir/rootfs/usr/bin/tool",
    ];
    for path in expected {
        assert!(tree.contains(path), "missing /{path}");
    }
    assert_eq!(
        tree.get("boot"),
        Some(&Node::dir(0o755)),
        "linuxkit build leaves an empty /boot"
    );
    assert_eq!(tree.root(), None, "no image here has a ./ entry");
    for absent in [
        "kernel",
        "Dockerfile",
        "containers/onboot/000-ro/rootfs/etc/hostname",
        "boot/kernel",
    ] {
        assert!(
            !tree.contains(absent),
            "/{absent} should not be in the initramfs"
        );
    }
    let resolv = tree.get("etc/resolv.conf").map(|n| n.kind.clone());
    assert_eq!(
        resolv,
        Some(NodeKind::Symlink("/run/resolvconf/resolv.conf".into()))
    );
    let hosts = tree
        .get("containers/onboot/000-ro/rootfs/etc/hosts")
        .expect("hosts");
    assert!(
        matches!(&hosts.kind, NodeKind::File { size, .. } if *size > 100),
        "etc/hosts replaced"
    );
    let tool_resolv = tree
        .get("containers/onboot/001-rw/lower/etc/resolv.conf")
        .expect("resolv.conf");
    assert_eq!(
        tool_resolv,
        &Node::bytes("\n# no resolv.conf configured\n", 0o644)
    );
    assert_eq!(
        tree.get("etc/mtab"),
        Some(&Node::symlink("/proc/mounts").with_mode(0o755)),
        "linuxkit build's etc/mtab header is 0755"
    );
}

fn check_read_only(tree: &Tree) {
    let config = json_file(tree, "containers/onboot/000-ro/config.json");
    assert_eq!(config["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(config["process"]["args"], json!(["/bin/busybox", "true"]));
    assert_eq!(config["process"]["env"], json!(["PATH=/bin"]));
    assert_eq!(
        config["process"]["capabilities"]["effective"],
        json!(["CAP_SYS_ADMIN"])
    );
    let runtime = json_file(tree, "containers/onboot/000-ro/runtime.json");
    assert_eq!(
        runtime["mounts"],
        json!([{"destination": "/containers/onboot/000-ro/rootfs", "source": "/containers/onboot/000-ro/rootfs", "options": ["bind"]}])
    );
    for key in ["cgroups", "mkdir", "interfaces", "bindNS", "namespace"] {
        assert!(runtime.get(key).is_some(), "runtime.json lacks {key}");
    }
}

fn check_writable(tree: &Tree) {
    let config = json_file(tree, "containers/onboot/001-rw/config.json");
    assert_eq!(config["root"], json!({"path": "rootfs"}));
    assert_eq!(config["process"]["args"], json!(["/usr/bin/tool"]));
    assert_eq!(config["process"]["cwd"], json!("/usr"));
    assert_eq!(
        config["process"]["capabilities"]["effective"],
        json!(["CAP_SYS_TIME", "CAP_NET_ADMIN"])
    );
    assert_eq!(
        config["linux"]["namespaces"],
        json!([{"type": "mount"}]),
        "label pid: host"
    );
    let runtime = json_file(tree, "containers/onboot/001-rw/runtime.json");
    let p = "/containers/onboot/001-rw";
    assert_eq!(
        runtime["mounts"],
        json!([
            {"destination": format!("{p}/tmp"), "type": "tmpfs", "source": "tmpfs"},
            {"destination": format!("{p}/tmp"), "options": ["remount", "private"]},
            {"destination": format!("{p}/rootfs"), "type": "overlay", "source": "overlay",
             "options": [format!("lowerdir={p}/lower"), format!("upperdir={p}/tmp/upper"), format!("workdir={p}/tmp/work")]},
        ])
    );
    let text = match &tree
        .get("containers/onboot/001-rw/config.json")
        .expect("config")
        .kind
    {
        NodeKind::File { content, .. } => {
            String::from_utf8(content.read_all().expect("read")).expect("utf8")
        }
        other => panic!("{other:?}"),
    };
    assert!(
        text.starts_with("{\n    \"ociVersion\""),
        "4-space pretty JSON: {text}"
    );
}

fn check_dedup(tree: &Tree) {
    assert!(
        !tree.contains("containers/onboot/002-rw-again/lower"),
        "duplicate image written twice"
    );
    let runtime = json_file(tree, "containers/onboot/002-rw-again/runtime.json");
    assert_eq!(
        runtime["mounts"][2]["options"][0],
        json!("lowerdir=/containers/onboot/001-rw/lower")
    );
    let getty = json_file(tree, "containers/services/getty/runtime.json");
    assert_eq!(
        getty["mounts"][0]["source"],
        json!("/containers/onboot/000-ro/rootfs")
    );
    assert_eq!(
        getty["mounts"][0]["destination"],
        json!("/containers/services/getty/rootfs")
    );
    let rootfs = tree
        .get("containers/services/getty/rootfs")
        .expect("mount point");
    assert!(rootfs.is_dir());
    assert!(
        !tree
            .paths()
            .any(|p| p.starts_with("containers/services/getty/rootfs/")),
        "empty mount point"
    );
    let config = json_file(tree, "containers/services/getty/config.json");
    let binds: BTreeMap<String, Value> = config["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| Some((m["destination"].as_str()?.to_string(), m.clone())))
        .collect();
    assert_eq!(
        binds["/run"]["options"],
        json!(["rw", "rbind", "rshared"]),
        "label binds kept"
    );
    assert_eq!(
        binds["/hostetc"]["options"],
        json!(["ro", "rbind"]),
        "binds.add merged"
    );
}

fn check_files(tree: &Tree) {
    let motd = tree.get("etc/motd").expect("motd");
    assert_eq!(
        (motd.mode, motd.uid, motd.gid),
        (0o644, 103, 0),
        "uid by container name: getty is the 4th container"
    );
    let etc = tree.get("etc").expect("etc");
    assert_eq!(
        (etc.mode, etc.uid),
        (0o755, 103),
        "as in linuxkit build, an existing leading directory takes the first file's mode (+x) and owner"
    );
    let new_dir = tree.get("etc/guestkit").expect("created leading directory");
    assert_eq!(
        (new_dir.mode, new_dir.uid, new_dir.is_dir()),
        (0o750, 0, true)
    );
    assert_eq!(tree.get("etc/guestkit/secret").map(|n| n.mode), Some(0o640));
    assert!(
        tree.get("srv/www").is_some_and(Node::is_dir),
        "directory: true"
    );
    assert_eq!(tree.get("srv/www").map(|n| n.mode), Some(0o700));
    assert_eq!(
        tree.get("srv/link").map(|n| n.kind.clone()),
        Some(NodeKind::Symlink("www".into()))
    );
    let metadata = match tree.get("etc/blueprint.json").map(|n| &n.kind) {
        Some(NodeKind::File { content, .. }) => {
            serde_json::from_slice::<Value>(&content.read_all().expect("read")).expect("json")
        }
        other => panic!("metadata file: {other:?}"),
    };
    assert_eq!(metadata["services"][0]["name"], json!("getty"));
}

fn check_cpio(tree: &Tree) {
    let bytes = tree.write_cpio(Vec::new()).expect("write cpio");
    let entries = read_archive(&bytes[..]).expect("read back");
    let names: Vec<&str> = entries.iter().map(|e| e.header.name.as_str()).collect();
    let paths: Vec<&str> = std::iter::once(".").chain(tree.paths()).collect();
    assert_eq!(names, paths);
    assert_eq!(
        (entries[0].header.mode, entries[0].header.uid),
        (0o040755, 0),
        "/ is 0755 root"
    );
    let busybox_entry = entries
        .iter()
        .find(|e| e.header.name == "bin/busybox")
        .expect("busybox");
    assert_eq!(busybox_entry.data, fs::read(busybox()).expect("busybox"));
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("initrd.cpio");
    fs::write(&archive, &bytes).expect("write archive");
    let out = Command::new("cpio")
        .arg("-it")
        .arg("--quiet")
        .stdin(fs::File::open(&archive).expect("open"))
        .output();
    let out = out.expect("this test needs the system cpio (apt-get install cpio)");
    assert!(
        out.status.success(),
        "cpio -it failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(listed.lines().collect::<Vec<_>>(), paths);
}

#[test]
fn keep_existing_dirs_leaves_etc_alone_and_files_elsewhere_as_linuxkit() {
    let fx = fixture();
    let bp: Blueprint = BLUEPRINT.parse().expect("blueprint");
    let options = Options {
        keep_existing_dirs: true,
    };
    let tree = assemble_with(&bp, &fx.blueprint_dir, &fx.store, options)
        .expect("assemble")
        .tree;
    let etc = tree.get("etc").expect("etc");
    assert_eq!((etc.mode, etc.uid), (0o755, 0), "existing /etc untouched");
    let new_dir = tree.get("etc/guestkit").expect("created leading directory");
    assert_eq!(
        (new_dir.mode, new_dir.uid),
        (0o750, 0),
        "new ones as linuxkit"
    );
}

#[test]
fn the_written_tree_matches_a_directory_read_back() {
    let fx = fixture();
    let bp: Blueprint = BLUEPRINT.parse().expect("blueprint");
    let assembly = assemble(&bp, &fx.blueprint_dir, &fx.store).expect("assemble");
    let out = tempfile::tempdir().expect("tempdir");
    assembly.tree.write_dir(out.path()).expect("write dir");
    let back = tree_from_dir(out.path()).expect("read back");
    let original: Vec<&str> = assembly.tree.paths().collect();
    let read: Vec<&str> = back.paths().collect();
    assert_eq!(original, read);
    let tool = fs::read(
        out.path()
            .join("containers/onboot/001-rw/lower/usr/bin/tool"),
    )
    .expect("tool");
    assert_eq!(tool, b"#!/bin/sh\necho tool\n");
}

#[test]
fn a_missing_image_names_the_container_and_the_paths_tried() {
    let fx = fixture();
    let bp: Blueprint = "services:\n  - name: x\n    image: nobody/here\n"
        .parse()
        .expect("blueprint");
    let err = assemble(&bp, &fx.blueprint_dir, &fx.store).expect_err("missing image");
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        text.contains("services[0] (name \"x\")") && text.contains("nobody/here/latest"),
        "{text}"
    );
}

#[test]
fn assembling_twice_gives_byte_identical_archives() {
    let fx = fixture();
    let bp: Blueprint = BLUEPRINT.parse().expect("blueprint");
    let first = assemble(&bp, &fx.blueprint_dir, &fx.store).expect("assemble");
    let second = assemble(&bp, &fx.blueprint_dir, &fx.store).expect("assemble again");
    let a = first.tree.write_cpio(Vec::new()).expect("cpio");
    let b = second.tree.write_cpio(Vec::new()).expect("cpio");
    assert!(a == b, "the archive is deterministic");
}
