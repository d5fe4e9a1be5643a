//! Benchmark: start 20 services from bundles with `service` (concurrently as system-init does, and one by
//! one) against `ctr run -d --rootfs` doing the same, on a private containerd. Prints times and ratios.
//! Run as root: `cargo bench -p service --bench start_services` (`GUESTKIT_CONTAINERD_DIR` for 2.x).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{BundleSpec, TestContainerd, containerd_dir, isolate_thread, write_bundle};
use service::containerd::Containerd;
use service::layout::Layout;
use service::runtime::Runtime;
use service::services::Services;

const COUNT: usize = 20;
const ROUNDS: usize = 3;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn main() {
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::under(tmp.path());
    let mut ctd = TestContainerd::start(tmp.path());
    ctd.track_namespace("bench-ctr");
    let names: Vec<String> = (0..COUNT).map(|i| format!("svc-{i:02}")).collect();
    for name in &names {
        write_bundle(
            &layout.services_dir,
            name,
            &BundleSpec {
                script: "exec sleep 1000",
                ..Default::default()
            },
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let client = rt
        .block_on(Containerd::connect(&ctd.socket))
        .expect("connect");
    let services = Services {
        runtime: &client,
        layout: &layout,
        services_dir: layout.services_dir.clone(),
        namespace: "services.linuxkit".into(),
        dump_spec: None,
        grace: Some(Duration::ZERO),
        lock_timeout: service::state::DEFAULT_LOCK_TIMEOUT,
    };
    let (mut concurrent, mut sequential, mut ctr) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let failed = rt.block_on(service::system_init::start_all(&services));
        concurrent.push(t.elapsed());
        assert!(failed.is_empty(), "failed: {failed:?}");
        rt.block_on(services.shutdown());

        let t = Instant::now();
        for name in &names {
            rt.block_on(services.start(name)).expect("start");
        }
        sequential.push(t.elapsed());
        rt.block_on(services.shutdown());

        let t = Instant::now();
        for name in &names {
            let rootfs = layout.services_dir.join(name).join("rootfs");
            let status = Command::new(containerd_dir().join("ctr"))
                .arg("-a")
                .arg(&ctd.socket)
                .args(["-n", "bench-ctr", "run", "-d", "--rootfs"])
                .arg(&rootfs)
                .args([name.as_str(), "/bin/sleep", "1000"])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("ctr run");
            assert!(status.success(), "ctr run {name}");
        }
        ctr.push(t.elapsed());
        rt.block_on(async {
            for id in client.list_containers("bench-ctr").await.expect("list") {
                let bench = Services {
                    namespace: "bench-ctr".into(),
                    ..services_clone(&services)
                };
                bench.remove("bench-ctr", &id).await;
            }
        });
    }
    let (c, s, r) = (median(concurrent), median(sequential), median(ctr));
    println!("start {COUNT} services from bundles, median of {ROUNDS} rounds:");
    println!(
        "  service, concurrent (system-init): {:>7.1} ms",
        c.as_secs_f64() * 1e3
    );
    println!(
        "  service, one by one:               {:>7.1} ms",
        s.as_secs_f64() * 1e3
    );
    println!(
        "  ctr run -d --rootfs, one by one:    {:>7.1} ms",
        r.as_secs_f64() * 1e3
    );
    println!(
        "  ratio ctr / service concurrent: {:.2}",
        r.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "  ratio ctr / service one by one: {:.2}",
        r.as_secs_f64() / s.as_secs_f64()
    );
}

fn services_clone<'a>(s: &Services<'a, Containerd>) -> Services<'a, Containerd> {
    Services {
        runtime: s.runtime,
        layout: s.layout,
        services_dir: s.services_dir.clone(),
        namespace: s.namespace.clone(),
        dump_spec: None,
        grace: s.grace,
        lock_timeout: s.lock_timeout,
    }
}
