//! System-test helpers: assemble a blueprint with the images `cargo xtask images` wrote, boot it under
//! qemu and wait for console lines with deadlines.
//!
//! A missing prerequisite (qemu, the kernel image, the guest images) makes a test **fail** with a message
//! naming the command that provides it; nothing is skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
pub use xtask::vm::{Vm, VmConfig, VmExit};
use xtask::{Paths, build};

/// How long a test waits for a console line: generous, because TCG on a loaded 2-core machine is slow and
/// the guest clock is skewed. This is a deadline against hangs, not a performance assertion.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a guest may take to go down after it was asked to.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace paths.
pub fn paths() -> Paths {
    Paths::new()
}

/// A test's own scratch directory under `out/test/<name>`, emptied first.
pub fn scratch(name: &str) -> Result<PathBuf> {
    let dir = paths().out().join("test").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Fails unless the image store holds the kernel and guest images.
pub fn require_images() -> Result<PathBuf> {
    let store = paths().store();
    for image in [
        "debian/kernel/latest/rootfs/kernel",
        "guestkit/init/dev.tar",
        "debian/busybox/latest",
    ] {
        if !store.join(image).exists() {
            bail!(
                "{} is missing: run `cargo xtask images` (scripts/test does) first",
                store.join(image).display()
            );
        }
    }
    Ok(store)
}

/// The kernel boot file from the store.
pub fn kernel() -> Result<PathBuf> {
    Ok(require_images()?.join("debian/kernel/latest/rootfs/kernel"))
}

/// Assembles `blueprint` into the test's scratch directory and returns a VM configuration for it.
pub fn assemble(blueprint: &Path, test: &str) -> Result<VmConfig> {
    let store = require_images()?;
    let dir = scratch(test)?;
    let built = build::to_dir(blueprint, &store, &dir.join("image"))?;
    Ok(VmConfig::new(
        &built.kernel,
        &built.initrd,
        &built.cmdline,
        &dir,
    ))
}

/// Writes `yaml` as the test's blueprint (next to the workspace's `examples/`, so relative image paths
/// resolve the same way) and assembles it.
pub fn assemble_yaml(yaml: &str, test: &str) -> Result<VmConfig> {
    let dir = paths().out().join("test-blueprints");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{test}.yml"));
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    assemble(&path, test)
}

/// A workspace-relative path (e.g. `examples/hello.yml`).
pub fn workspace_file(rel: &str) -> PathBuf {
    paths().workspace.join(rel)
}

/// Boots a configuration, failing with a clear message when qemu is missing.
pub fn boot(config: &VmConfig) -> Result<Vm> {
    Vm::start(config).context("booting the VM")
}

/// Waits for each pattern in turn.
pub fn expect_lines(vm: &mut Vm, patterns: &[&str]) -> Result<Vec<String>> {
    patterns
        .iter()
        .map(|p| vm.wait_for_line(p, LINE_TIMEOUT).map_err(Into::into))
        .collect()
}
