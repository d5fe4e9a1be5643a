//! The store's OCI side: an image layout tarball written by `write_oci_tarball` has consistent digests, reads
//! back through the store, and is accepted by real tooling (a private containerd imports and runs it); a
//! hand-made layout directory with a gzip layer, whiteouts, an opaque directory, a hard link and a nested
//! index is applied in order.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xtask::assemble::{Node, NodeKind, Tree};
use xtask::blueprint::ImageConfig;
use xtask::store::{ImageStore, OciImage, write_oci_tarball};

fn busybox_tree() -> Tree {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "this test needs a static busybox at /bin/busybox (apt-get install busybox-static)"
    );
    let size = fs::metadata(busybox).expect("busybox").len();
    let mut tree = Tree::new();
    tree.insert(
        "bin/busybox",
        Node::file(xtask::assemble::Content::Path(busybox.into()), size, 0o755),
    );
    tree.insert("bin/sh", Node::symlink("busybox"));
    tree.insert("etc/motd", Node::bytes("hi\n", 0o644).owned(7, 8));
    tree
}

fn image(reference: &str) -> OciImage {
    let label = ImageConfig {
        readonly: Some(true),
        ..Default::default()
    };
    OciImage {
        reference: reference.into(),
        cmd: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo hello-from-oci".into(),
        ]),
        env: vec!["PATH=/bin".into()],
        ..Default::default()
    }
    .with_config_label(&label)
    .expect("label")
}

fn members(tarball: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(fs::File::open(tarball).expect("open"));
    let mut out = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
        out.push((name, data));
    }
    out
}

#[test]
fn written_tarballs_have_consistent_digests_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = dir.path().join("store/guestkit/bb/1.tar");
    fs::create_dir_all(tarball.parent().expect("parent")).expect("mkdir");
    write_oci_tarball(&busybox_tree(), &image("guestkit/bb:1"), &tarball).expect("write");
    let files = members(&tarball);
    let get = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .expect(name)
    };
    let mut blobs = 0;
    for (name, data) in &files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(
                hex::encode(Sha256::digest(data)),
                hex,
                "{name}: content does not match its digest"
            );
            blobs += 1;
        }
    }
    assert_eq!(blobs, 3, "config, manifest and one layer");
    let index: Value = serde_json::from_slice(&get("index.json")).expect("index");
    let manifest_desc = &index["manifests"][0];
    assert_eq!(
        manifest_desc["annotations"]["io.containerd.image.name"],
        json!("docker.io/guestkit/bb:1")
    );
    assert_eq!(
        manifest_desc["annotations"]["org.opencontainers.image.ref.name"],
        json!("1")
    );
    assert_eq!(
        manifest_desc["platform"],
        json!({"architecture": "amd64", "os": "linux"})
    );
    let manifest_name = format!(
        "blobs/sha256/{}",
        manifest_desc["digest"]
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:")
    );
    let manifest: Value = serde_json::from_slice(&get(&manifest_name)).expect("manifest");
    assert_eq!(manifest_desc["size"], json!(get(&manifest_name).len()));
    let layer_name = format!(
        "blobs/sha256/{}",
        manifest["layers"][0]["digest"]
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:")
    );
    assert_eq!(manifest["layers"][0]["size"], json!(get(&layer_name).len()));
    let docker: Value = serde_json::from_slice(&get("manifest.json")).expect("docker manifest");
    assert_eq!(docker[0]["RepoTags"], json!(["docker.io/guestkit/bb:1"]));
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        json!("application/vnd.oci.image.layer.v1.tar+gzip")
    );
    let layer = get(&layer_name);
    assert_eq!(&layer[..2], b"\x1f\x8b", "the layer is gzip");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&layer[..])
        .read_to_end(&mut tar)
        .expect("gunzip");
    let config_name = format!(
        "blobs/sha256/{}",
        manifest["config"]["digest"]
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:")
    );
    let config: Value = serde_json::from_slice(&get(&config_name)).expect("config");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([format!("sha256:{}", hex::encode(Sha256::digest(&tar)))]),
        "diff_ids hold the digest of the uncompressed layer"
    );

    let store = ImageStore::new(dir.path().join("store"));
    let read = store.open("guestkit/bb:1", dir.path()).expect("open");
    assert_eq!(read.defaults.cmd, ["/bin/sh", "-c", "echo hello-from-oci"]);
    assert_eq!(read.label_config.readonly, Some(true));
    assert_eq!(read.key, "guestkit/bb:1");
    let paths: Vec<&str> = read.fs.paths().collect();
    assert_eq!(paths, ["bin", "bin/busybox", "bin/sh", "etc", "etc/motd"]);
    let motd = read.fs.get("etc/motd").expect("motd");
    assert_eq!((motd.uid, motd.gid, motd.mode), (7, 8, 0o644));
    match &read.fs.get("bin/busybox").expect("busybox").kind {
        NodeKind::File { content, .. } => assert_eq!(
            content.read_all().expect("read"),
            fs::read("/bin/busybox").expect("read")
        ),
        other => panic!("{other:?}"),
    }
}

/// A containerd of our own (root, private state and socket), stopped on drop.
struct Containerd {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("containerd.sock");
        let child = Command::new("containerd")
            .args(["-c", "/dev/null", "--root"])
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs containerd (apt-get install containerd) and root");
        let mut ctr = Containerd {
            child,
            socket,
            _dir: dir,
        };
        for _ in 0..100 {
            if ctr.ctr(&["version"]).status.success() {
                return ctr;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = ctr.child.kill();
        panic!("containerd did not come up on {}", ctr.socket.display());
    }

    fn ctr(&mut self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "guestkit-test"])
            .args(args)
            .output()
            .expect("this test needs ctr (apt-get install containerd)")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn containerd_imports_and_runs_a_written_tarball() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = dir.path().join("bb.tar");
    write_oci_tarball(&busybox_tree(), &image("guestkit/bb:1"), &tarball).expect("write");
    let mut containerd = Containerd::start();
    let out = containerd.ctr(&[
        "images",
        "import",
        "--snapshotter",
        "native",
        tarball.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "ctr import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = containerd.ctr(&["images", "ls", "-q"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("docker.io/guestkit/bb:1"),
        "image listed"
    );
    let out = containerd.ctr(&[
        "run",
        "--rm",
        "--snapshotter",
        "native",
        "docker.io/guestkit/bb:1",
        "bb-test",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ctr run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "hello-from-oci");
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn blob(layout: &Path, data: &[u8]) -> String {
    let hex = sha(data);
    let path = layout.join("blobs/sha256").join(&hex);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write blob");
    format!("sha256:{hex}")
}

fn layer(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if kind.is_symlink() || kind.is_hard_link() {
            builder.append_link(&mut h, path, link).expect("link");
        } else {
            builder.append_data(&mut h, path, *data).expect("append");
        }
    }
    builder.into_inner().expect("finish")
}

#[test]
fn layout_directories_apply_layers_with_whiteouts_gzip_and_nested_indexes() {
    use tar::EntryType::{Directory, Link, Regular};
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("store/guestkit/layered/v2");
    let lower = layer(&[
        ("etc/", Directory, b"", ""),
        ("etc/keep", Regular, b"keep", ""),
        ("etc/gone", Regular, b"gone", ""),
        ("opaque/", Directory, b"", ""),
        ("opaque/old", Regular, b"old", ""),
    ]);
    let upper = layer(&[
        ("etc/.wh.gone", Regular, b"", ""),
        ("opaque/.wh..wh..opq", Regular, b"", ""),
        ("opaque/new", Regular, b"new", ""),
        ("etc/hard", Link, b"", "etc/keep"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&upper).expect("gzip");
    let upper_gz = gz.finish().expect("gzip");
    let config = json!({"config": {"Entrypoint": ["/bin/x"], "WorkingDir": "/etc"}}).to_string();
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(&layout, config.as_bytes()), "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(&layout, &lower), "size": lower.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(&layout, &upper_gz), "size": upper_gz.len()},
        ],
    })
    .to_string();
    let arm = json!({"schemaVersion": 2, "config": {"digest": blob(&layout, b"{}")}, "layers": []})
        .to_string();
    let nested = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(&layout, arm.as_bytes()), "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(&layout, manifest.as_bytes()), "platform": {"os": "linux", "architecture": "amd64"}},
    ]})
    .to_string();
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": blob(&layout, nested.as_bytes())},
    ]});
    fs::write(layout.join("index.json"), index.to_string()).expect("index");
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");

    let store = ImageStore::new(dir.path().join("store"));
    let image = store
        .open("guestkit/layered:v2", dir.path())
        .expect("open layout");
    let paths: Vec<&str> = image.fs.paths().collect();
    assert_eq!(
        paths,
        ["etc", "etc/hard", "etc/keep", "opaque", "opaque/new"]
    );
    assert_eq!(image.defaults.entrypoint, ["/bin/x"]);
    assert_eq!(image.defaults.working_dir, "/etc");
    let read = |path: &str| match &image.fs.get(path).expect(path).kind {
        NodeKind::File { content, .. } => content.read_all().expect("read"),
        other => panic!("{path}: {other:?}"),
    };
    assert_eq!(read("etc/hard"), b"keep");
    assert_eq!(read("opaque/new"), b"new");
    let by_path = store
        .open("./store/guestkit/layered/v2", dir.path())
        .expect("open by path");
    assert_eq!(by_path.fs.paths().collect::<Vec<_>>(), paths);
    assert!(
        by_path.key.ends_with("store/guestkit/layered/v2") && !by_path.key.contains("./"),
        "{}",
        by_path.key
    );
}
