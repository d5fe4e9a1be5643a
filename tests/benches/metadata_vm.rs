//! Issue 5's benchmark in a guest: time to a result for the `metadata` binary, ours (DMI → local →
//! parallel probes under one deadline) against LinuxKit's method (`--sequential`: one provider after
//! another, 2 s each), in the same boot, with LinuxKit's default provider list:
//!
//! - **cdrom**: a `cidata` ISO on `/dev/sr0` and no network provider answering (`--imds` names an
//!   on-link address nothing answers, as on a machine that is not a cloud);
//! - **imdsv2**: the test's IMDSv2 server on the host's loopback, reached as 169.254.169.254 through
//!   qemu's `guestfwd` (the list without `cdrom`).
//!
//! The guest times each run with `/proc/uptime` (10 ms resolution) and prints `bench: ...` lines; the
//! medians and their ratio are printed here. `cargo xtask images` first, then
//! `cargo bench -p system-tests --bench metadata_vm` (`BENCH_RUNS`, default 3).

#[path = "../tests/metadata/imds.rs"]
#[allow(dead_code)] // the request log is for the tests
mod imds;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use system_tests::{EXIT_TIMEOUT, assemble_yaml, boot, paths, scratch};

const LINUXKIT_NETWORK: &str =
    "aws gcp hetzner openstack scaleway vultr digitalocean equinixmetal metaldata vmware";

fn metadata_binary() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths().workspace.join("target"));
    let path = target
        .join(xtask::images::GUEST_TARGET)
        .join("release/metadata");
    ensure!(
        path.is_file(),
        "{} is missing: run `cargo xtask images` with the same CARGO_TARGET_DIR first",
        path.display()
    );
    Ok(path)
}

fn blueprint(binary: &std::path::Path, runs: usize) -> String {
    let script = format!(
        r#"
        for i in $(seq 1 20); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
        ip link set eth0 up
        ip addr add 169.254.169.15/24 dev eth0
        mkdir -p /tmp
        now() {{ cut -d' ' -f1 /proc/uptime; }}
        for i in $(seq 1 {runs}); do
          for mode in parallel sequential; do
            flag=; [ $mode = sequential ] && flag=--sequential
            for case in cdrom imdsv2; do
              if [ $case = cdrom ]; then extra="--imds http://169.254.169.99 {LINUXKIT_NETWORK} cdrom"; else extra="{LINUXKIT_NETWORK}"; fi
              start=$(now)
              /usr/bin/metadata --no-hostname --config-root /tmp/config-$case-$mode-$i $flag $extra 2>/tmp/log
              rc=$?
              end=$(now)
              echo "bench: $case $mode rc $rc seconds $(awk "BEGIN {{ print $end - $start }}") $(tail -n 1 /tmp/log)"
            done
          done
        done
        echo "bench: done"
"#
    );
    let command = serde_json::to_string(&script).unwrap_or_default();
    format!(
        r#"
kernel:
  image: guestkit/kernel:6.1
  cmdline: "console=ttyS0"
init:
  - guestkit/init:dev
  - guestkit/runc:dev
onboot:
  - name: bench
    image: debian/busybox
    capabilities: [CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE]
    binds:
      - /dev:/dev
      - /sys:/sys
      - /usr/bin/metadata:/usr/bin/metadata
    devices:
      - path: all
        type: b
    command: ["/bin/sh", "-c", {command}]
  - name: poweroff
    image: debian/busybox
    command: ["/sbin/poweroff", "-f"]
    pid: host
    readonly: true
    capabilities: [CAP_SYS_BOOT]
files:
  - path: usr/bin/metadata
    source: {}
    mode: "0755"
"#,
        binary.display()
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let dir = scratch("metadata-bench-iso")?;
    std::fs::create_dir_all(dir.join("cidata"))?;
    std::fs::write(
        dir.join("cidata/user-data"),
        r#"{"bench":{"content":"yes"}}"#,
    )?;
    let iso = dir.join("cidata.iso");
    let out = Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
        .arg(&iso)
        .arg(dir.join("cidata"))
        .output()
        .context("running genisoimage (apt-get install genisoimage)")?;
    ensure!(out.status.success(), "genisoimage failed");
    let server = imds::Imds::start(imds::Instance {
        meta: vec![("hostname".into(), "bench-vm".into())],
        keys: vec!["ssh-ed25519 AAAAbench bench@imds".into()],
        userdata: String::new(),
        token_uses: 100_000,
    })?;
    let mut config = assemble_yaml(&blueprint(&metadata_binary()?, runs), "metadata-bench")?;
    config.timeout = Duration::from_secs(60 + 60 * runs as u64);
    config.extra_args.extend([
        "-cdrom".into(),
        iso.display().to_string(),
        "-netdev".into(),
        format!(
            "user,id=n0,restrict=on,net=169.254.169.0/24,guestfwd=tcp:169.254.169.254:80-cmd:/bin/busybox nc 127.0.0.1 {}",
            server.port()
        ),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ]);
    let mut vm = boot(&config)?;
    vm.wait_for_line("bench: done", config.timeout)?;
    let _ = vm.wait_exit(EXIT_TIMEOUT);
    let text = vm.console().text();
    let mut results: std::collections::BTreeMap<(String, String), Vec<f64>> = Default::default();
    for line in text
        .lines()
        .filter(|l| l.starts_with("bench: ") && l.contains(" rc "))
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(case), Some(mode), Some(rc), Some(secs)) =
            (w.get(1), w.get(2), w.get(4), w.get(6))
        else {
            bail!("unparsable line {line:?}");
        };
        ensure!(*rc == "0", "metadata did not find the source: {line}");
        let secs: f64 = secs.parse().with_context(|| format!("in {line:?}"))?;
        results
            .entry((case.to_string(), mode.to_string()))
            .or_default()
            .push(secs);
    }
    for case in ["cdrom", "imdsv2"] {
        let get = |mode: &str| {
            results
                .get(&(case.to_string(), mode.to_string()))
                .cloned()
                .context("no results")
        };
        let (ours, lk) = (median(get("parallel")?), median(get("sequential")?));
        println!(
            "{case:<8} ours {:>8.0} ms   linuxkit-method {:>8.0} ms   ratio {:>6.1}x   (guest under TCG, median of {runs})",
            ours * 1e3,
            lk * 1e3,
            lk / ours
        );
    }
    Ok(())
}
