//! Boot benchmark (issue 3): the same image booted with guestkit's init and with a busybox-shell init that
//! does the same work the way LinuxKit's rc.init does (mounts, `modprobe -abq` per modalias, the
//! `/etc/init.d` hooks in order), alternating, in one run.
//!
//! Measured per boot, from host timestamps of console lines: the kernel's `Run /init as init process` → the
//! service's
//! `hello from the greeter service` (kernel hand-off to the last service started), and PID 1's `VmRSS`
//! printed by a hook after the services started. Reported as medians and ratios.
//!
//!     cargo xtask images && cargo run --release -p system-tests --example boot_bench [-- ROUNDS]

use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use system_tests::{LINE_TIMEOUT, Vm, VmConfig, require_images, scratch, workspace_file};
use xtask::assemble::{Node, Tree, assemble};
use xtask::blueprint::Blueprint;
use xtask::store::ImageStore;

/// The busybox-shell PID 1: LinuxKit's rc.init sequence in sh, then wait for poweroff.
const SHELL_INIT: &str = r#"#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ ! -e /.moved ]; then
	touch /.moved; mkdir -p /mnt; mount --rbind / /mnt
	cd /mnt && mount --move . / && exec chroot . /init
fi
echo "bench: pid1 start"
mount -t proc -o nodev,nosuid,noexec,relatime proc /proc
mount -t tmpfs -o nodev,nosuid,noexec,relatime,size=10%,mode=755 tmpfs /run
mount -t tmpfs -o nodev,nosuid,noexec,relatime,size=10%,mode=1777 tmpfs /tmp
mount -t tmpfs -o nodev,nosuid,noexec,relatime,size=50%,mode=755 tmpfs /var
mkdir -p /var/lib /var/log /var/tmp; ln -s /run /var/run
mount -t devtmpfs -o nosuid,noexec,relatime,size=10m,mode=755 dev /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o noexec,nosuid,gid=5,mode=0620 devpts /dev/pts
mount -t tmpfs -o noexec,nosuid,nodev,mode=1777 shm /dev/shm
mount -t mqueue -o noexec,nosuid,nodev mqueue /dev/mqueue
mount -t sysfs -o noexec,nosuid,nodev sysfs /sys
mount -t cgroup2 -o noexec,nosuid,nodev cgroup2 /sys/fs/cgroup
mount --make-rshared /
for f in /sys/bus/*/devices/*/modalias; do modprobe -abq "$(cat "$f")"; done
for f in /sys/bus/*/devices/*/modalias; do modprobe -abq "$(cat "$f")"; done
ip link set lo up
ulimit -n 1048576
for h in /etc/init.d/*; do [ -f "$h" ] && "$h"; done
trap 'poweroff -f' USR2 TERM
while :; do sleep 1; done
"#;

/// Prints PID 1's resident memory once the services are up.
const RSS_HOOK: &str = "#!/bin/sh\necho \"bench: pid1 $(grep VmRSS /proc/1/status)\"\n";

struct Sample {
    boot_to_service: Duration,
    rss_kib: u64,
}

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(3);
    let (ours, shell) = images()?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        a.push(boot(&ours, round)?);
        b.push(boot(&shell, round)?);
    }
    report("guestkit init", &a, "busybox sh init", &b);
    Ok(())
}

/// Assembles examples/hello.yml plus the RSS hook, and writes it twice: as built, and with the shell init.
fn images() -> Result<(VmConfig, VmConfig)> {
    let store = ImageStore::new(require_images()?);
    let blueprint = workspace_file("examples/hello.yml");
    let bp = Blueprint::from_path(&blueprint)?;
    let mut assembly = assemble(&bp, blueprint.parent().unwrap_or(Path::new(".")), &store)?;
    let kernel = assembly.kernel.clone().context("hello.yml has a kernel")?;
    assembly
        .tree
        .insert("etc/init.d/099-bench-rss", Node::bytes(RSS_HOOK, 0o755));
    let dir = scratch("boot-bench")?;
    let ours = write(&assembly.tree, &dir.join("guestkit.img"))?;
    let mut shell = assembly.tree.clone();
    shell.insert("init", Node::bytes(SHELL_INIT, 0o755));
    shell.insert("sbin/modprobe", Node::symlink("/bin/busybox"));
    let shell = write(&shell, &dir.join("shell.img"))?;
    let config = |initrd: &Path, name: &str| {
        let mut c = VmConfig::new(&kernel, initrd, &assembly.cmdline, &dir.join(name));
        c.timeout = Duration::from_secs(300);
        c
    };
    Ok((config(&ours, "guestkit"), config(&shell, "shell")))
}

fn write(tree: &Tree, path: &Path) -> Result<std::path::PathBuf> {
    tree.write_cpio(BufWriter::new(std::fs::File::create(path)?))?;
    Ok(path.to_path_buf())
}

fn boot(config: &VmConfig, round: usize) -> Result<Sample> {
    let mut vm = Vm::start(config)?;
    vm.wait_for_line("Run /init as init process", LINE_TIMEOUT)?;
    let start = Instant::now();
    vm.wait_for_line("hello from the greeter service", LINE_TIMEOUT)?;
    let boot_to_service = start.elapsed();
    let rss = vm.wait_for_line("bench: pid1 VmRSS", LINE_TIMEOUT)?;
    let rss_kib = rss
        .split_whitespace()
        .rev()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .context("VmRSS value")?;
    eprintln!(
        "round {round} {}: {boot_to_service:?}, PID 1 RSS {rss_kib} KiB",
        config.workdir.display()
    );
    Ok(Sample {
        boot_to_service,
        rss_kib,
    })
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn report(a_name: &str, a: &[Sample], b_name: &str, b: &[Sample]) {
    let (ta, tb) = (
        median(a.iter().map(|s| s.boot_to_service).collect()),
        median(b.iter().map(|s| s.boot_to_service).collect()),
    );
    let (ra, rb) = (
        median(a.iter().map(|s| s.rss_kib).collect()),
        median(b.iter().map(|s| s.rss_kib).collect()),
    );
    println!(
        "kernel hand-off -> last service started (median of {}): {a_name} {ta:?}, {b_name} {tb:?}, ratio {:.2}",
        a.len(),
        ta.as_secs_f64() / tb.as_secs_f64()
    );
    println!(
        "PID 1 VmRSS after boot (median): {a_name} {ra} KiB, {b_name} {rb} KiB, ratio {:.2}",
        ra as f64 / rb as f64
    );
}
