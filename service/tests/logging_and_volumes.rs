//! memlogd fd passing for services (FIFOs) and onboot containers (socketpairs, console dump through the
//! query socket), against a stand-in memlogd; volumes mounted as overlays.

mod harness;

use std::time::Duration;

use harness::{
    BundleSpec, TestContainerd, isolate_thread, require_prerequisites, wait_until, write_bundle,
};
use service::cmdline::BootOptions;
use service::containerd::Containerd;
use service::layout::Layout;
use service::onboot::{Phase, Runner, find_runc};
use service::services::Services;

#[test]
fn service_logs_reach_memlogd_through_fifos() {
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::under(tmp.path());
    let ctd = TestContainerd::start(tmp.path());
    let memlogd = harness::memlogd::start(&layout.memlogd_socket, &layout.memlogd_query_socket);
    let script = "echo hello-out; echo hello-err >&2; exec sleep 1000";
    write_bundle(
        &layout.services_dir,
        "svc",
        &BundleSpec {
            script,
            ..Default::default()
        },
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
        .block_on(async {
            let client = Containerd::connect(&ctd.socket).await.expect("connect");
            let services = Services {
                runtime: &client,
                layout: &layout,
                services_dir: layout.services_dir.clone(),
                namespace: "services.linuxkit".into(),
                dump_spec: None,
                grace: Some(Duration::from_millis(100)),
                lock_timeout: service::state::DEFAULT_LOCK_TIMEOUT,
            };
            services
                .start("svc")
                .await
                .unwrap_or_else(|e| panic!("{}", service::describe(&e)));
            let got = |name: &str, line: &str| {
                memlogd
                    .lock()
                    .map(|s| s.lines.iter().any(|(n, l)| n == name && l == line))
                    .unwrap_or(false)
            };
            assert!(wait_until(Duration::from_secs(10), || got(
                "svc.out",
                "hello-out"
            ) && got(
                "svc",
                "hello-err"
            )));
            assert!(
                layout.fifo_dir.join("svc.out.log").exists()
                    && layout.fifo_dir.join("svc.log").exists()
            );
            assert!(
                !layout.var_log_dir.join("svc.log").exists(),
                "no log files when memlogd runs"
            );
            services.stop("svc").await.expect("stop");
        });
}

#[test]
fn onboot_logs_go_to_memlogd_and_are_dumped_from_it() {
    require_prerequisites();
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::under(tmp.path());
    let memlogd = harness::memlogd::start(&layout.memlogd_socket, &layout.memlogd_query_socket);
    write_bundle(
        &layout.onboot_dir,
        "000-test",
        &BundleSpec {
            script: "echo 'memlogd suite PASSED'; echo warn >&2",
            ..Default::default()
        },
    );
    let runner = Runner {
        layout: &layout,
        runc: find_runc(),
        boot: BootOptions::default(),
        phase: Phase::Onboot,
    };
    let mut console = Vec::new();
    assert_eq!(runner.run(&mut console), 0);
    let console = String::from_utf8_lossy(&console);
    assert!(
        console.contains("memlogd suite PASSED"),
        "dump through memlogd: {console}"
    );
    let names = memlogd.lock().map(|s| s.names.clone()).unwrap_or_default();
    assert_eq!(names, vec!["onboot.000-test.out", "onboot.000-test"]);
    assert!(
        !layout.var_log_dir.join("onboot").exists(),
        "no /var/log/onboot symlink with memlogd"
    );
}

#[test]
fn volumes_are_overlays_read_write_or_read_only() {
    require_prerequisites();
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("volumes");
    for (name, writable) in [("rw", true), ("ro", false)] {
        std::fs::create_dir_all(dir.join(name).join("lower")).expect("lower");
        std::fs::create_dir_all(dir.join(name).join("merged")).expect("merged");
        std::fs::write(dir.join(name).join("lower/file"), name).expect("file");
        if writable {
            std::fs::create_dir_all(dir.join(name).join("tmp")).expect("tmp");
        }
    }
    std::fs::create_dir_all(dir.join("broken/lower")).expect("broken");
    assert_eq!(
        service::volumes::mount_volumes(&dir),
        1,
        "the broken volume is reported"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("rw/merged/file")).expect("rw file"),
        "rw"
    );
    std::fs::write(dir.join("rw/merged/new"), "x").expect("rw volume is writable");
    assert!(
        dir.join("rw/tmp/upper/new").exists(),
        "writes land in the tmpfs upper layer"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("ro/merged/file")).expect("ro file"),
        "ro"
    );
    let err = std::fs::write(dir.join("ro/merged/new"), "x").expect_err("ro volume");
    assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{err}");
}

fn libc_erofs() -> i32 {
    nix::errno::Errno::EROFS as i32
}
