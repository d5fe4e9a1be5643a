//! The tarballs `cargo xtask images` writes to `out/pkg/` are accepted by real OCI tools, as
//! `linuxkit cache import` needs them: every one is imported by `ctr images import` into a containerd of the
//! test's own and listed under its fully qualified name, containers run from the busybox base and from the
//! package images (their binaries work inside a container), and `skopeo copy oci-archive:` reads every one
//! with gzip layers whose `diff_ids` match. `linuxkit cache import` files images under
//! `io.containerd.image.name` verbatim and `linuxkit build` looks them up by the normalised name, which is
//! why the names are checked to be fully qualified.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use sha2::{Digest, Sha256};
use system_tests::{paths, require_images};
use xtask::store::{LAYER_MEDIA_TYPE, qualified_reference};

/// How long containerd may take to answer on its socket.
const CONTAINERD_START: Duration = Duration::from_secs(60);

/// The tarballs and the names each must be listed under.
fn tarballs() -> Result<Vec<(PathBuf, Vec<String>)>> {
    require_images()?;
    let dir = paths().pkg_out();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tar") {
            let names = index_names(&path)?;
            out.push((path, names));
        }
    }
    out.sort();
    let files: BTreeSet<String> = out
        .iter()
        .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "guestkit-init.tar",
        "guestkit-runc.tar",
        "guestkit-containerd.tar",
        "guestkit-metadata.tar",
        "guestkit-getty.tar",
        "guestkit-vsudd.tar",
        "guestkit-kernel.tar",
        "debian-busybox.tar",
    ] {
        ensure!(
            files.contains(expected),
            "{} lacks {expected}",
            dir.display()
        );
    }
    Ok(out)
}

/// The `io.containerd.image.name` of every entry of the tarball's `index.json`, checked to be qualified.
fn index_names(tarball: &Path) -> Result<Vec<String>> {
    let index: Value = serde_json::from_slice(&member(tarball, "index.json")?)?;
    let mut names = Vec::new();
    for entry in index["manifests"]
        .as_array()
        .context("index without manifests")?
    {
        let name = entry["annotations"]["io.containerd.image.name"]
            .as_str()
            .with_context(|| format!("{}: entry without a name", tarball.display()))?;
        ensure!(
            qualified_reference(name) == name,
            "{}: {name} is not fully qualified",
            tarball.display()
        );
        let tag = name.rsplit_once(':').map(|(_, t)| t);
        ensure!(
            entry["annotations"]["org.opencontainers.image.ref.name"].as_str() == tag,
            "{}: ref.name is not the tag of {name}",
            tarball.display()
        );
        ensure!(
            entry["platform"]["architecture"] == "amd64" && entry["platform"]["os"] == "linux",
            "{}: {name} has no linux/amd64 platform",
            tarball.display()
        );
        names.push(name.to_string());
    }
    ensure!(!names.is_empty(), "{}: empty index", tarball.display());
    Ok(names)
}

fn member(tarball: &Path, name: &str) -> Result<Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(tarball)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.to_string_lossy() == name {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            return Ok(data);
        }
    }
    bail!("{} has no {name}", tarball.display())
}

/// A containerd of the test's own (private root, state and socket), stopped on drop.
struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Containerd {
    fn start(name: &str) -> Result<Containerd> {
        let dir = system_tests::scratch(name)?;
        let socket = dir.join("containerd.sock");
        let child = Command::new("containerd")
            .args(["-c", "/dev/null", "--root"])
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("this test needs containerd (apt-get install containerd) and root")?;
        let mut containerd = Containerd { child, socket };
        let deadline = Instant::now() + CONTAINERD_START;
        while Instant::now() < deadline {
            if containerd.ctr(&["version"])?.status.success() {
                return Ok(containerd);
            }
            if let Some(status) = containerd.child.try_wait()? {
                bail!("containerd exited with {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "containerd did not answer on {} in {CONTAINERD_START:?}",
            containerd.socket.display()
        )
    }

    fn ctr(&mut self, args: &[&str]) -> Result<Output> {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "linuxkit-compat"])
            .args(args)
            .output()
            .context("this test needs ctr (apt-get install containerd)")
    }

    /// Runs `ctr` and returns its standard output, failing with its standard error.
    fn ok(&mut self, args: &[&str]) -> Result<String> {
        let out = self.ctr(args)?;
        ensure!(
            out.status.success(),
            "ctr {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(image, argv, text the output must contain)`: the busybox base and a binary of each package image,
/// run inside a container from the imported image (so the image carries what the binary needs).
const RUNS: &[(&str, &[&str], &str)] = &[
    (
        "docker.io/debian/busybox:latest",
        &["/bin/sh", "-c", "echo busybox-$((40+2))"],
        "busybox-42",
    ),
    (
        "docker.io/guestkit/getty:dev",
        &["/usr/bin/getty", "--help"],
        "Starts a login session",
    ),
    (
        "docker.io/guestkit/vsudd:dev",
        &["/vsudd", "--help"],
        "Forward vsock connections",
    ),
    (
        "docker.io/guestkit/metadata:dev",
        &["/usr/bin/metadata", "no-such-provider"],
        "no-such-provider",
    ),
    (
        "docker.io/guestkit/runc:dev",
        &["/usr/bin/runc", "--version"],
        "runc version",
    ),
    (
        "docker.io/guestkit/containerd:dev",
        &["/usr/bin/ctr", "--version"],
        "ctr github.com/containerd/containerd",
    ),
];

#[test]
fn ctr_imports_every_tarball_and_runs_containers_from_them() -> Result<()> {
    let tarballs = tarballs()?;
    let mut containerd = Containerd::start("linuxkit-compat-ctr")?;
    for (tarball, _) in &tarballs {
        let path = tarball.to_string_lossy();
        containerd.ok(&["images", "import", "--snapshotter", "native", &path])?;
    }
    let listed: BTreeSet<String> = containerd
        .ok(&["images", "ls", "-q"])?
        .lines()
        .map(str::to_string)
        .collect();
    for (tarball, names) in &tarballs {
        for name in names {
            ensure!(
                listed.contains(name),
                "{} imported, but {name} is not listed: {listed:?}",
                tarball.display()
            );
        }
    }
    for (i, (image, argv, expected)) in RUNS.iter().enumerate() {
        let id = format!("compat-{i}");
        let mut args = vec!["run", "--rm", "--snapshotter", "native", image, &id];
        args.extend_from_slice(argv);
        let out = containerd.ctr(&args)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            text.contains(expected),
            "{image} {argv:?}: expected {expected:?} in {text:?}"
        );
    }
    Ok(())
}

#[test]
fn skopeo_copies_every_tarball_with_gzip_layers_and_matching_diff_ids() -> Result<()> {
    // One tag each: skopeo unpacks the whole archive per copy, and the tags share one manifest.
    for (tarball, names) in tarballs()? {
        for name in names.iter().take(1) {
            let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
            let dest = system_tests::scratch(&format!("linuxkit-compat-skopeo-{tag}"))?;
            let source = format!("oci-archive:{}:{tag}", tarball.display());
            let out = Command::new("skopeo")
                .args(["copy", "-q", &source])
                .arg(format!("dir:{}", dest.display()))
                .output()
                .context("this test needs skopeo (apt-get install skopeo)")?;
            ensure!(
                out.status.success(),
                "skopeo copy {source}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            check_copied(&dest).with_context(|| format!("skopeo's copy of {source}"))?;
            std::fs::remove_dir_all(&dest)?;
        }
    }
    Ok(())
}

/// Checks a `dir:` copy: gzip layers whose decompressed digests are the config's `diff_ids`.
fn check_copied(dir: &Path) -> Result<()> {
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json"))?)?;
    let blob = |digest: &Value| -> Result<Vec<u8>> {
        let digest = digest.as_str().context("descriptor without digest")?;
        let hex = digest.strip_prefix("sha256:").context("not sha256")?;
        let data = std::fs::read(dir.join(hex))?;
        ensure!(
            hex::encode(Sha256::digest(&data)) == hex,
            "{digest} does not match its content"
        );
        Ok(data)
    };
    let config: Value = serde_json::from_slice(&blob(&manifest["config"]["digest"])?)?;
    ensure!(config["architecture"] == "amd64" && config["os"] == "linux");
    let layers = manifest["layers"].as_array().context("no layers")?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .context("no diff_ids")?;
    ensure!(
        layers.len() == diff_ids.len(),
        "{} layers, {} diff_ids",
        layers.len(),
        diff_ids.len()
    );
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        ensure!(
            layer["mediaType"] == LAYER_MEDIA_TYPE,
            "layer type {}",
            layer["mediaType"]
        );
        let mut tar = Vec::new();
        gunzip(&blob(&layer["digest"])?, &mut tar)?;
        ensure!(
            diff_id.as_str() == Some(&format!("sha256:{}", hex::encode(Sha256::digest(&tar)))),
            "diff_id {diff_id} is not the digest of the uncompressed layer"
        );
    }
    Ok(())
}

/// Decompresses gzip with the system's `gzip`, so the check does not share a library with the writer.
fn gunzip(data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    child
        .stdout
        .take()
        .context("gzip stdout")?
        .read_to_end(out)?;
    let status = child.wait()?;
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))?;
    written?;
    ensure!(status.success(), "gzip -dc failed: the layer is not gzip");
    Ok(())
}
