//! The Docker-less package build: every `pkg/<dir>` becomes an OCI image layout tarball, written from the
//! static release binaries and Debian's packages, with the `org.mobyproject.config` label taken from the
//! package's `build.yml` `config:`. The tarballs go to `out/pkg/<org>-<image>.tar` (for `docker load`,
//! `skopeo`, `ctr images import` or `linuxkit cache import`) and into the image store as
//! `<org>/<image>:dev`, where the assembler and the system tests take them from.
//!
//! The two images the examples need besides these are exported the same way, so that a LinuxKit cache
//! filled only from `out/pkg/` builds every example: the kernel package (`guestkit/kernel`, see
//! [`crate::kernel::package_tree`]) and the busybox base (`debian/busybox:latest`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::assemble::Tree;
use crate::blueprint::{ImageConfig, parse_image_config};
use crate::debian::PackageCache;
use crate::images::{self, ImageDir, ImageError};
use crate::kernel::{self, KernelError, KernelImage};
use crate::static_go::StaticTools;
use crate::store::{OciImage, split_reference, tree_from_dir, write_oci_tarball};

/// The tag the package build writes.
pub const TAG: &str = "dev";

/// Errors of the package build.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Composing the package's filesystem failed.
    #[error("package {package}")]
    Image {
        /// The package directory name.
        package: String,
        /// The cause.
        #[source]
        source: ImageError,
    },
    /// `build.yml` could not be read or parsed.
    #[error("{path}: {problem}")]
    BuildYml {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Packaging the kernel failed.
    #[error("kernel package")]
    Kernel(#[from] KernelError),
    /// Writing the tarball failed.
    #[error("writing {path}")]
    Write {
        /// The tarball.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The parts of LinuxKit's `build.yml` the package build uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildYml {
    /// The image name.
    pub image: String,
    /// The organisation (LinuxKit's default is `linuxkit`).
    #[serde(default = "default_org")]
    pub org: String,
    /// The image label config, kept as YAML and parsed with the blueprint's image-entry rules.
    #[serde(default)]
    pub config: Option<serde_yaml::Value>,
}

fn default_org() -> String {
    "linuxkit".into()
}

impl BuildYml {
    /// Reads `dir/build.yml`.
    pub fn read(dir: &Path) -> Result<Self, PackageError> {
        let path = dir.join("build.yml");
        let bad = |problem: String| PackageError::BuildYml {
            path: path.clone(),
            problem,
        };
        let text = fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))
    }

    /// The `config:` as the label's model, validated like a blueprint entry.
    pub fn label(&self, path: &Path) -> Result<Option<ImageConfig>, PackageError> {
        let Some(config) = &self.config else {
            return Ok(None);
        };
        let bad = |problem: String| PackageError::BuildYml {
            path: path.join("build.yml"),
            problem,
        };
        let text = serde_yaml::to_string(config).map_err(|e| bad(e.to_string()))?;
        parse_image_config(&text, "config")
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    /// `org/image:dev`.
    pub fn reference(&self) -> String {
        format!("{}/{}:{TAG}", self.org, self.image)
    }
}

/// What each package directory holds and how its filesystem is made.
const PACKAGES: &[&str] = &[
    "init",
    "runc",
    "containerd",
    "metadata",
    "getty",
    "vsock-forwarder",
];

/// Inputs of the package build.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The Debian package cache.
    pub cache: &'a PackageCache,
    /// The kernel image (`debian/kernel`), packaged as `guestkit/kernel`.
    pub kernel: &'a KernelImage,
    /// The static runc and ctr.
    pub tools: &'a StaticTools,
    /// The static guest binaries.
    pub bins: &'a Path,
    /// `pkg/`.
    pub pkg: &'a Path,
    /// Scratch space for staging.
    pub stage: &'a Path,
}

/// The busybox base image, `debian/busybox:latest`, and its tarball name.
pub const BUSYBOX: (&str, &str) = ("debian/busybox:latest", "debian-busybox.tar");

/// The kernel package's tarball name.
pub const KERNEL_TARBALL: &str = "guestkit-kernel.tar";

/// Builds every package, the kernel package and the busybox base; returns the tarballs written to
/// `out_dir`.
pub fn build_all(
    inputs: &Inputs,
    store: &Path,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, PackageError> {
    let mut written: Vec<PathBuf> = PACKAGES
        .iter()
        .map(|p| build_one(inputs, p, store, out_dir))
        .collect::<Result<_, _>>()?;
    written.push(build_busybox(inputs, store, out_dir)?);
    written.push(build_kernel(inputs, store, out_dir)?);
    Ok(written)
}

fn build_one(
    inputs: &Inputs,
    package: &str,
    store: &Path,
    out_dir: &Path,
) -> Result<PathBuf, PackageError> {
    let dir = inputs.pkg.join(package);
    let build = BuildYml::read(&dir)?;
    let wrap = |source| PackageError::Image {
        package: package.into(),
        source,
    };
    let image = ImageDir::create(inputs.stage, package).map_err(wrap)?;
    let cmd = populate(inputs, package, &image).map_err(wrap)?;
    let mut oci = OciImage {
        reference: build.reference(),
        cmd,
        ..OciImage::default()
    };
    oci.env = vec![images::PATH_ENV.into()];
    if let Some(label) = build.label(&dir)? {
        oci = oci
            .with_config_label(&label)
            .map_err(|e| write_err(out_dir, e))?;
    }
    let tarball = out_dir.join(format!("{}-{}.tar", build.org, build.image));
    let tree = tree_from_dir(&image.rootfs()).map_err(|e| write_err(&tarball, e))?;
    export(&tree, &oci, &tarball, store)?;
    Ok(tarball)
}

fn build_busybox(inputs: &Inputs, store: &Path, out_dir: &Path) -> Result<PathBuf, PackageError> {
    let (reference, name) = BUSYBOX;
    let wrap = |source| PackageError::Image {
        package: reference.into(),
        source,
    };
    let image = ImageDir::create(inputs.stage, "busybox").map_err(wrap)?;
    let cmd = images::busybox(inputs.cache, &image).map_err(wrap)?;
    let oci = OciImage {
        reference: reference.into(),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        env: vec![images::PATH_ENV.into()],
        ..OciImage::default()
    };
    let tarball = out_dir.join(name);
    let tree = tree_from_dir(&image.rootfs()).map_err(|e| write_err(&tarball, e))?;
    export(&tree, &oci, &tarball, store)?;
    Ok(tarball)
}

fn build_kernel(inputs: &Inputs, store: &Path, out_dir: &Path) -> Result<PathBuf, PackageError> {
    let tree = kernel::package_tree(inputs.kernel, &inputs.stage.join("kernel"))?;
    let mut tags = kernel::package_tags(inputs.kernel)
        .into_iter()
        .map(|tag| format!("{}:{tag}", kernel::PACKAGE_REPO));
    let oci = OciImage {
        reference: tags.next().unwrap_or_else(|| kernel::PACKAGE_REPO.into()),
        extra_references: tags.collect(),
        ..OciImage::default()
    };
    let tarball = out_dir.join(KERNEL_TARBALL);
    export(&tree, &oci, &tarball, store)?;
    Ok(tarball)
}

/// Writes `tree` as the tarball and places it in the store under every reference of `oci`.
fn export(tree: &Tree, oci: &OciImage, tarball: &Path, store: &Path) -> Result<(), PackageError> {
    let out_dir = tarball.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(out_dir).map_err(|e| write_err(out_dir, e))?;
    write_oci_tarball(tree, oci, tarball).map_err(|e| write_err(tarball, e))?;
    std::iter::once(&oci.reference)
        .chain(&oci.extra_references)
        .try_for_each(|reference| install_in_store(tarball, store, reference))
}

fn write_err(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> PackageError {
    PackageError::Write {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

/// Places the tarball in the store as `<org>/<image>/<tag>.tar`, replacing any earlier form of the image
/// (a hard link where the file system allows, a copy otherwise).
fn install_in_store(tarball: &Path, store: &Path, reference: &str) -> Result<(), PackageError> {
    let (repo, tag) = split_reference(reference).map_err(|e| write_err(tarball, e))?;
    let repo = store.join(repo);
    let dir_form = repo.join(&tag);
    if dir_form.exists() {
        fs::remove_dir_all(&dir_form).map_err(|e| write_err(&dir_form, e))?;
    }
    fs::create_dir_all(&repo).map_err(|e| write_err(&repo, e))?;
    let dest = repo.join(format!("{tag}.tar"));
    let _ = fs::remove_file(&dest);
    if fs::hard_link(tarball, &dest).is_err() {
        fs::copy(tarball, &dest).map_err(|e| write_err(&dest, e))?;
    }
    Ok(())
}

/// Directories the metadata image must hold for the binds and tmpfs in `pkg/metadata/build.yml`.
const METADATA_MOUNT_POINTS: [&str; 5] = ["etc/ssl/certs", "run", "var", "sys", "tmp"];

/// Writes a package's filesystem (what its Dockerfile's final stage holds) and returns its `Cmd`.
fn populate(
    inputs: &Inputs,
    package: &str,
    image: &ImageDir,
) -> Result<Option<Vec<String>>, ImageError> {
    let etc = inputs.pkg.join(package).join("etc");
    if etc.is_dir() {
        image.copy_tree(&etc, "etc")?;
    }
    let cmd = |args: &[&str]| Some(args.iter().map(|s| s.to_string()).collect());
    match package {
        "init" => images::init_fs(inputs.cache, image, inputs.bins).map(|_| None),
        "runc" => images::runc_fs(image, inputs.tools).map(|_| None),
        "containerd" => images::containerd_fs(inputs.cache, image, inputs.tools).map(|_| None),
        "metadata" => {
            image.copy(&inputs.bins.join("metadata"), "usr/bin/metadata")?;
            // Mount points for build.yml's binds: the container is read-only, so runc cannot make them.
            for dir in METADATA_MOUNT_POINTS {
                image.dir(dir, 0o755)?;
            }
            Ok(cmd(&["/usr/bin/metadata"]))
        }
        "getty" => {
            images::getty_fs(inputs.cache, image, inputs.bins)?;
            Ok(cmd(&["/usr/bin/getty"]))
        }
        _ => {
            image.copy(&inputs.bins.join("vsock-forwarder"), "vsudd")?;
            image.link("/vsudd", "usr/bin/vsock-forwarder")?;
            Ok(cmd(&["/vsudd"]))
        }
    }
}
