//! Services through a real containerd and runc: start/stop/restart/ls, logs, graceful stop, leftovers.

mod harness;

use std::time::Duration;

use harness::{BundleSpec, TestContainerd, isolate_thread, write_bundle};
use service::containerd::Containerd;
use service::layout::Layout;
use service::runtime::{Runtime, TaskStatus};
use service::services::{ServiceError, Services};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn start_logs_stop_restart_and_ls() {
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::under(tmp.path());
    let ctd = TestContainerd::start(tmp.path());
    let script = "echo hello-out; echo hello-err >&2; exec sleep 1000";
    write_bundle(
        &layout.services_dir,
        "web",
        &BundleSpec {
            script,
            ..Default::default()
        },
    );
    runtime().block_on(async {
        let client = Containerd::connect(&ctd.socket).await.expect("connect");
        let services = Services {
            runtime: &client,
            layout: &layout,
            services_dir: layout.services_dir.clone(),
            namespace: "services.linuxkit".into(),
            dump_spec: Some(tmp.path().join("spec.json")),
            grace: Some(Duration::from_millis(500)),
            lock_timeout: service::state::DEFAULT_LOCK_TIMEOUT,
        };
        let pid = services.start("web").await.expect("start web");
        assert!(pid > 0);
        let task = client
            .task("services.linuxkit", "web")
            .await
            .expect("task")
            .expect("a task");
        assert_eq!(task.status, TaskStatus::Running, "{}", ctd.log());
        let out_log = layout.var_log_dir.join("web.out.log");
        let err_log = layout.var_log_dir.join("web.log");
        assert!(harness::wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&out_log)
                .unwrap_or_default()
                .contains("hello-out")
                && std::fs::read_to_string(&err_log)
                    .unwrap_or_default()
                    .contains("hello-err")
        }));
        let dumped = std::fs::read_to_string(tmp.path().join("spec.json")).expect("dumped spec");
        assert!(
            dumped.contains(&layout.services_dir.join("web/rootfs").display().to_string()),
            "{dumped}"
        );

        match services.start("web").await {
            Err(ServiceError::AlreadyRunning { .. }) => {}
            other => panic!("second start: {other:?}"),
        }
        let rows = service::status::collect(&services, None).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].name.as_str(), rows[0].state.as_str(), rows[0].pid),
            ("web", "running", pid)
        );

        let new_pid = services.restart("web").await.expect("restart");
        assert_ne!(new_pid, pid);
        // sleep ignores SIGTERM as PID 1, so stop needs the SIGKILL after the grace period.
        let exit = services.stop("web").await.expect("stop");
        assert_eq!(exit, Some(137));
        assert!(
            client
                .list_containers("services.linuxkit")
                .await
                .expect("list")
                .is_empty()
        );
        match services.stop("web").await {
            Err(ServiceError::NotRunning { .. }) => {}
            other => panic!("stop of a stopped service: {other:?}"),
        }
        let rows = service::status::collect(&services, Some("web")).await;
        assert_eq!(
            (rows[0].state.as_str(), rows[0].exit),
            ("absent", Some(137))
        );
    });
}

#[test]
fn a_chatty_service_log_is_rotated_and_the_shim_writes_on_at_the_new_end() {
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::under(tmp.path());
    let ctd = TestContainerd::start(tmp.path());
    let script = "i=0; while :; do echo \"line $i\"; i=$((i+1)); done";
    write_bundle(
        &layout.services_dir,
        "chatty",
        &BundleSpec {
            script,
            ..Default::default()
        },
    );
    const CAP: u64 = 64 * 1024;
    runtime().block_on(async {
        let client = Containerd::connect(&ctd.socket).await.expect("connect");
        let services = Services {
            runtime: &client,
            layout: &layout,
            services_dir: layout.services_dir.clone(),
            namespace: "services.linuxkit".into(),
            dump_spec: None,
            grace: Some(Duration::from_millis(500)),
            lock_timeout: service::state::DEFAULT_LOCK_TIMEOUT,
        };
        services.start("chatty").await.expect("start chatty");
        let log = layout.var_log_dir.join("chatty.out.log");
        let size = || std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        assert!(
            harness::wait_until(Duration::from_secs(60), || size() > CAP),
            "the log never grew past {CAP} bytes: {}",
            ctd.log()
        );
        service::logs::cap_log_files(&layout.var_log_dir, CAP);
        let previous = std::fs::read(layout.var_log_dir.join("chatty.out.log.1")).expect(".1");
        assert!(previous.len() as u64 > CAP, "{}", previous.len());
        // The shim writes with O_APPEND: what follows the rotation line is new lines, not a hole of zeros
        // at the old offset.
        assert!(
            harness::wait_until(Duration::from_secs(60), || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with("line "))
                    .count()
                    > 10
            }),
            "no new lines after the rotation"
        );
        let after = std::fs::read(&log).expect("log");
        // The shim may get lines in between emptying the file and the rotation line.
        let text = String::from_utf8_lossy(&after);
        assert!(
            text.lines()
                .any(|l| l == "[log rotated at 65536 bytes: the previous part is chatty.out.log.1]"),
            "{:?}",
            text.get(..200)
        );
        assert!(!after.contains(&0), "the rotated log has a hole of zeros");
        services.stop("chatty").await.expect("stop");
    });
}
