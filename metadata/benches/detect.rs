//! Time to a result for the `metadata` binary, ours (DMI → local → parallel probes under one
//! deadline) against LinuxKit's method (`--sequential`: one provider after another, 2 s each, no
//! retries), in the same run, with LinuxKit's default provider list:
//!
//! - **cdrom**: a NoCloud ISO on a loop device and no network provider: link-local traffic leaves
//!   through a veth into a namespace that drops it, as on a machine where nothing answers.
//! - **imdsv2**: an AWS IMDSv2 server on 169.254.169.254.
//!
//! Run as root: `cargo bench -p metadata --bench detect` (needs ip, losetup, genisoimage).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Netns, Server, clouds, run as sh};

const LINUXKIT_ORDER: &[&str] = &[
    "aws",
    "gcp",
    "hetzner",
    "openstack",
    "scaleway",
    "vultr",
    "digitalocean",
    "equinixmetal",
    "metaldata",
    "vmware",
    "cdrom",
];

/// Sends everything that is not local into a namespace that drops it.
fn black_hole(ns: &Netns) -> Netns {
    let sink = Netns::new("sink", &[]);
    let ip = |args: &[&str]| sh(Command::new("ip").args(args));
    ip(&[
        "-n", &ns.name, "link", "add", "md-a", "type", "veth", "peer", "name", "md-b", "netns",
        &sink.name,
    ]);
    ip(&["-n", &ns.name, "addr", "add", "10.99.0.1/24", "dev", "md-a"]);
    ip(&["-n", &ns.name, "link", "set", "md-a", "up"]);
    ip(&["-n", &sink.name, "link", "set", "md-b", "up"]);
    ip(&[
        "-n",
        &ns.name,
        "neigh",
        "add",
        "10.99.0.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        "md-a",
        "nud",
        "permanent",
    ]);
    ip(&[
        "-n",
        &ns.name,
        "route",
        "add",
        "default",
        "via",
        "10.99.0.2",
    ]);
    sink
}

fn cdrom_roots(tmp: &Path) -> String {
    support::require_tool("genisoimage");
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("user-data"), r#"{"bench":{"content":"yes"}}"#).unwrap();
    let img = tmp.join("cidata.iso");
    sh(Command::new("genisoimage")
        .args(["-quiet", "-V", "cidata", "-r", "-J", "-o"])
        .arg(&img)
        .arg(&src));
    let dev = sh(Command::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(&img))
    .trim()
    .to_string();
    std::fs::create_dir_all(tmp.join("sys/class/block/vdb")).unwrap();
    std::fs::create_dir_all(tmp.join("dev")).unwrap();
    std::os::unix::fs::symlink(&dev, tmp.join("dev/vdb")).unwrap();
    dev
}

fn time_run(ns: &Netns, tmp: &Path, sequential: bool) -> (Duration, i32) {
    let mut cmd = ns.command(&support::binary());
    cmd.args(["--no-hostname", "--config-root"])
        .arg(tmp.join("config"))
        .arg("--sysfs")
        .arg(tmp.join("sys"))
        .arg("--dev")
        .arg(tmp.join("dev"));
    if sequential {
        cmd.arg("--sequential");
    }
    cmd.args(LINUXKIT_ORDER);
    let start = Instant::now();
    let out = cmd.output().expect("running metadata");
    (start.elapsed(), out.status.code().unwrap_or(-1))
}

fn median(ns: &Netns, tmp: &Path, sequential: bool, runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let (t, code) = time_run(ns, tmp, sequential);
            assert_eq!(
                code, 0,
                "metadata did not find the source (sequential={sequential})"
            );
            t
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn report(name: &str, ours: Duration, linuxkit: Duration) {
    println!(
        "{name:<8} ours {:>9.1} ms   linuxkit-method {:>9.1} ms   ratio {:>7.1}x",
        ours.as_secs_f64() * 1e3,
        linuxkit.as_secs_f64() * 1e3,
        linuxkit.as_secs_f64() / ours.as_secs_f64()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    support::require_root("the detection benchmark");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);

    let tmp = tempfile::tempdir().unwrap();
    let ns = Netns::new("bcd", &[]);
    let _sink = black_hole(&ns);
    let dev = cdrom_roots(tmp.path());
    let (ours, lk) = (
        median(&ns, tmp.path(), false, runs),
        median(&ns, tmp.path(), true, runs.min(3)),
    );
    let _ = Command::new("losetup").args(["-d", &dev]).output();
    report("cdrom", ours, lk);

    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("sys")).unwrap();
    let ns = Netns::new("bimds", &["169.254.169.254/32"]);
    let _server = Server::start_in(
        &ns.name,
        "169.254.169.254:80",
        clouds::aws(clouds::Imds::default()),
    );
    let (ours, lk) = (
        median(&ns, tmp.path(), false, runs),
        median(&ns, tmp.path(), true, runs),
    );
    report("imdsv2", ours, lk);
}
