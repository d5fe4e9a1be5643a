//! `cargo xtask`: builds the images, assembles blueprints and boots them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use xtask::debian::PackageCache;
use xtask::{Paths, images, kernel, packages, vm};

/// guestkit build tooling.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the static guest binaries, every package (out/pkg/*.tar) and the Debian-derived images, all into
    /// the local image store (out/images).
    Images,
    /// Assemble a blueprint into OUT/{kernel,initrd.img,cmdline}.
    Build {
        /// The blueprint (LinuxKit YAML).
        blueprint: PathBuf,
        /// Output directory (default out/build/<blueprint name>).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// `files:` leave existing leading directories' mode and owner alone (`/etc` stays 0755 under
        /// `files: [{path: etc/x}]`); `linuxkit build` gives them the file's mode and owner.
        #[arg(long)]
        keep_existing_dirs: bool,
    },
    /// Build the images, assemble a blueprint and boot it with the console attached (ctrl-a x quits).
    Run {
        /// The blueprint (LinuxKit YAML).
        blueprint: PathBuf,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 1024)]
        memory: u32,
        /// Skip rebuilding the images.
        #[arg(long)]
        no_images: bool,
        /// Extra qemu arguments.
        #[arg(last = true)]
        qemu: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let paths = Paths::new();
    match cli.command {
        Command::Images => build_images(&paths),
        Command::Build {
            blueprint,
            out,
            keep_existing_dirs,
        } => {
            let out = out.unwrap_or_else(|| default_out(&paths, &blueprint));
            let options = xtask::assemble::Options { keep_existing_dirs };
            build(&paths, &blueprint, &out, options).map(|_| ())
        }
        Command::Run {
            blueprint,
            memory,
            no_images,
            qemu,
        } => {
            if !no_images {
                build_images(&paths)?;
            }
            let out = default_out(&paths, &blueprint);
            let mut config = build(&paths, &blueprint, &out, Default::default())?;
            config.memory_mib = memory;
            config.extra_args = qemu;
            let status = vm::run_interactive(&config)?;
            if !status.success() {
                bail!("qemu exited with {status}");
            }
            Ok(())
        }
    }
}

fn default_out(paths: &Paths, blueprint: &Path) -> PathBuf {
    let stem = blueprint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    paths.out().join("build").join(stem)
}

fn build_images(paths: &Paths) -> Result<()> {
    let cache = PackageCache::new(paths.debs());
    let store = paths.store();
    let k = kernel::build(&cache, &store).context("building the kernel image")?;
    eprintln!("xtask: kernel {} in {}", k.version, k.rootfs.display());
    let bins = images::build_guest_binaries(&paths.workspace)?;
    let tools =
        xtask::static_go::build(&paths.static_go()).context("building static runc and ctr")?;
    let stage = paths.out().join("pkg-stage");
    let inputs = packages::Inputs {
        cache: &cache,
        kernel: &k,
        tools: &tools,
        bins: &bins,
        pkg: &paths.pkg(),
        stage: &stage,
    };
    for tarball in packages::build_all(&inputs, &store, &paths.pkg_out())? {
        eprintln!("xtask: package {}", tarball.display());
    }
    eprintln!("xtask: images written to {}", store.display());
    Ok(())
}

fn build(
    paths: &Paths,
    blueprint: &Path,
    out: &Path,
    options: xtask::assemble::Options,
) -> Result<vm::VmConfig> {
    let built = xtask::build::to_dir_with(blueprint, &paths.store(), out, options)
        .with_context(|| format!("assembling {}", blueprint.display()))?;
    eprintln!(
        "xtask: {} -> {}",
        blueprint.display(),
        built.initrd.display()
    );
    let mut config = vm::VmConfig::new(&built.kernel, &built.initrd, &built.cmdline, out);
    config.timeout = Duration::from_secs(24 * 3600);
    Ok(config)
}
