//! The package build's output: each `out/pkg/*.tar` is an OCI image layout whose blobs match their
//! digests, whose config carries the `org.mobyproject.config` label from the package's `build.yml`, and
//! whose filesystem holds what the package promises (the LinuxKit hook layout for init, runc and containerd).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use sha2::{Digest, Sha256};
use system_tests::{paths, require_images};
use xtask::packages::BuildYml;
use xtask::store::{CONFIG_LABEL, ImageStore};

/// `(pkg dir, store reference, paths the image must hold)`.
const PACKAGES: &[(&str, &str, &[&str])] = &[
    (
        "init",
        "guestkit/init:dev",
        &[
            "init",
            "sbin/init",
            "sbin/modprobe",
            "sbin/usermode-helper",
            "usr/bin/service",
            "bin/sh",
            "bin/busybox",
            "etc/init.d/000-issue",
            "etc/init.d/005-volumes",
            "etc/issue",
            "etc/passwd",
            // linuxkit/init carries it empty so that metadata's bind of it works without a CA image.
            "etc/ssl/certs",
        ],
    ),
    (
        "runc",
        "guestkit/runc:dev",
        &[
            "usr/bin/runc",
            "etc/init.d/010-onboot",
            "etc/shutdown.d/010-onshutdown",
        ],
    ),
    (
        "containerd",
        "guestkit/containerd:dev",
        &[
            "usr/bin/containerd",
            "usr/bin/containerd-shim-runc-v2",
            "usr/bin/ctr",
            "etc/containerd/config.toml",
            "etc/init.d/020-containerd",
        ],
    ),
    ("metadata", "guestkit/metadata:dev", &["usr/bin/metadata"]),
    (
        "getty",
        "guestkit/getty:dev",
        &[
            "usr/bin/getty",
            "bin/sh",
            "etc/securetty",
            "etc/init.d/001-getty",
        ],
    ),
    ("vsock-forwarder", "guestkit/vsudd:dev", &["vsudd"]),
];

#[test]
fn the_kernel_package_is_laid_out_as_linuxkit_kernel_images_are() -> Result<()> {
    let store = ImageStore::new(require_images()?);
    let image = store.open("guestkit/kernel:6.1", Path::new("."))?;
    let mut paths: Vec<&str> = image.fs.paths().collect();
    paths.sort();
    assert_eq!(
        paths,
        ["kernel", "kernel.tar"],
        "what `linuxkit build` reads"
    );
    let read = |path: &str| -> Result<Vec<u8>> {
        match &image.fs.get(path).context(path.to_string())?.kind {
            xtask::assemble::NodeKind::File { content, .. } => Ok(content.read_all()?),
            other => anyhow::bail!("{path} is {other:?}"),
        }
    };
    assert_eq!(
        &read("kernel")?[..4],
        b"\x7fELF",
        "an uncompressed vmlinux (PVH)"
    );
    let modules = read("kernel.tar")?;
    let mut names = Vec::new();
    for entry in tar::Archive::new(&modules[..]).entries()? {
        names.push(entry?.path()?.to_string_lossy().into_owned());
    }
    assert_eq!(
        names.first().map(String::as_str),
        Some("lib/"),
        "a tar of lib/, as LinuxKit's"
    );
    for index in ["modules.dep", "modules.alias", "modules.builtin"] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("lib/modules/") && n.ends_with(index)),
            "kernel.tar lacks {index}"
        );
    }
    assert!(
        names.iter().any(|n| n.ends_with("/virtio_net.ko")),
        "kernel.tar lacks the virtio_net module"
    );
    let debian = store.open("debian/kernel", Path::new("."))?;
    assert!(debian.fs.contains("kernel"), "debian/kernel still resolves");
    Ok(())
}

/// The members of a tarball, by name.
fn members(tarball: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut archive = tar::Archive::new(std::fs::File::open(tarball)?);
    let mut out = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        out.insert(name, data);
    }
    Ok(out)
}

/// The blob a descriptor points at, after checking its size and digest.
fn blob<'a>(members: &'a BTreeMap<String, Vec<u8>>, descriptor: &Value) -> Result<&'a [u8]> {
    let digest = descriptor["digest"]
        .as_str()
        .context("descriptor without digest")?;
    let hex = digest
        .strip_prefix("sha256:")
        .context("digest is not sha256")?;
    let data = members
        .get(&format!("blobs/sha256/{hex}"))
        .with_context(|| format!("blob {digest} missing"))?;
    ensure!(
        descriptor["size"].as_u64() == Some(data.len() as u64),
        "size of {digest} does not match"
    );
    ensure!(
        hex::encode(Sha256::digest(data)) == hex,
        "content of {digest} does not match its digest"
    );
    Ok(data)
}

#[test]
fn every_package_tarball_is_a_valid_oci_layout_with_its_label() -> Result<()> {
    require_images()?;
    let paths = paths();
    for (dir, reference, _) in PACKAGES {
        let build = BuildYml::read(&paths.pkg().join(dir))?;
        let tarball = paths
            .pkg_out()
            .join(format!("{}-{}.tar", build.org, build.image));
        let members =
            members(&tarball).with_context(|| format!("reading {}", tarball.display()))?;
        ensure!(members.contains_key("oci-layout"), "{dir}: no oci-layout");
        let index: Value = serde_json::from_slice(&members["index.json"])?;
        let manifest: Value = serde_json::from_slice(blob(&members, &index["manifests"][0])?)?;
        let config: Value = serde_json::from_slice(blob(&members, &manifest["config"])?)?;
        for layer in manifest["layers"].as_array().context("no layers")? {
            blob(&members, layer)?;
        }
        let name = &index["manifests"][0]["annotations"]["io.containerd.image.name"];
        assert!(
            name.as_str()
                .is_some_and(|n| n.contains(&reference.replace(":dev", ""))),
            "{dir}: {name}"
        );
        let label = config["config"]["Labels"][CONFIG_LABEL].as_str();
        match build.label(&paths.pkg().join(dir))? {
            Some(expected) => {
                let label = label.with_context(|| format!("{dir}: no {CONFIG_LABEL} label"))?;
                let got: Value = serde_json::from_str(label)?;
                assert_eq!(
                    got,
                    serde_json::to_value(&expected)?,
                    "{dir}: label differs from build.yml"
                );
            }
            None => assert!(label.is_none(), "{dir}: unexpected label {label:?}"),
        }
    }
    Ok(())
}

#[test]
fn every_package_holds_its_files_and_the_store_reads_it() -> Result<()> {
    let store = ImageStore::new(require_images()?);
    for (dir, reference, files) in PACKAGES {
        let image = store.open(reference, Path::new("."))?;
        for file in *files {
            assert!(image.fs.contains(file), "{dir}: {reference} lacks {file}");
        }
    }
    Ok(())
}

#[test]
fn hook_symlinks_point_at_service() -> Result<()> {
    let store = ImageStore::new(require_images()?);
    let hooks = [
        ("guestkit/init:dev", "etc/init.d/005-volumes"),
        ("guestkit/runc:dev", "etc/init.d/010-onboot"),
        ("guestkit/runc:dev", "etc/shutdown.d/010-onshutdown"),
        ("guestkit/containerd:dev", "etc/init.d/020-containerd"),
    ];
    for (reference, hook) in hooks {
        let image = store.open(reference, Path::new("."))?;
        let node = image
            .fs
            .get(hook)
            .with_context(|| format!("{reference}: no {hook}"))?;
        assert_eq!(
            node.kind,
            xtask::assemble::NodeKind::Symlink("/usr/bin/service".into()),
            "{reference}: {hook}"
        );
    }
    Ok(())
}

/// Whether an ELF64 file names a program interpreter (is dynamically linked).
fn has_interpreter(elf: &[u8]) -> Result<bool> {
    ensure!(elf.len() > 0x40 && &elf[..4] == b"\x7fELF", "not ELF64");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&elf[0x20..0x28]);
    let (phoff, size, count) = (
        u64::from_le_bytes(offset) as usize,
        u16_at(0x36),
        u16_at(0x38),
    );
    for i in 0..count {
        let at = phoff + i * size;
        let header = elf.get(at..at + 4).context("program header past the end")?;
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

#[test]
fn runc_and_ctr_are_static_so_they_run_in_any_container() -> Result<()> {
    let store = ImageStore::new(require_images()?);
    for (reference, path) in [
        ("guestkit/runc:dev", "usr/bin/runc"),
        ("guestkit/containerd:dev", "usr/bin/ctr"),
    ] {
        let image = store.open(reference, Path::new("."))?;
        let data = match &image
            .fs
            .get(path)
            .with_context(|| format!("{reference}: no {path}"))?
            .kind
        {
            xtask::assemble::NodeKind::File { content, .. } => content.read_all()?,
            other => anyhow::bail!("{reference}: {path} is {other:?}"),
        };
        ensure!(
            !has_interpreter(&data)?,
            "{reference}: {path} is dynamically linked; getty and sshd bind it into containers without glibc"
        );
    }
    let host_runc = std::fs::read("/usr/sbin/runc")?;
    ensure!(
        has_interpreter(&host_runc)?,
        "the check sees Debian's dynamic runc as dynamic"
    );
    Ok(())
}
