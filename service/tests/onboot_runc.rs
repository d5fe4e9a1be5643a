//! The onboot runner with a real runc: name order, writable overlay rootfs, logs dumped to the console,
//! exit statuses reported, a bad runtime.json failing only its own container, the onboot timeout.

mod harness;

use std::time::Duration;

use harness::{
    BundleSpec, isolate_thread, require_prerequisites, writable_runtime_json, write_bundle,
};
use service::cmdline::BootOptions;
use service::layout::Layout;
use service::onboot::{Phase, Runner, find_runc};

#[test]
fn onboot_containers_run_in_order_with_logs_statuses_and_timeout() {
    require_prerequisites();
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::under(tmp.path());
    let dir = &layout.onboot_dir;
    let first = write_bundle(
        dir,
        "000-first",
        &BundleSpec {
            script: "echo written > /etc/marker && cat /etc/marker && echo 'first suite PASSED'",
            writable: true,
            ..Default::default()
        },
    );
    let bad = write_bundle(
        dir,
        "001-bad",
        &BundleSpec {
            script: "echo never",
            ..Default::default()
        },
    );
    std::fs::write(
        bad.join("runtime.json"),
        r#"{"mounts": [{"destination": 7}]}"#,
    )
    .expect("bad runtime.json");
    write_bundle(
        dir,
        "002-fails",
        &BundleSpec {
            script: "echo about to fail >&2; exit 3",
            ..Default::default()
        },
    );
    write_bundle(
        dir,
        "003-hangs",
        &BundleSpec {
            script: "exec sleep 1000",
            ..Default::default()
        },
    );
    let mkdir_target = tmp.path().join("made/by/runtime");
    let extra = format!(r#", "mkdir": ["{}", "var/made"]"#, mkdir_target.display());
    let last = write_bundle(
        dir,
        "004-last",
        &BundleSpec {
            script: "ls /var && echo 'last suite PASSED'",
            writable: true,
            ..Default::default()
        },
    );
    std::fs::write(
        last.join("runtime.json"),
        writable_runtime_json(&last, &extra),
    )
    .expect("runtime.json");

    write_bundle(
        dir,
        "005-chatty",
        &BundleSpec {
            script: "i=0; while [ $i -lt 2000 ]; do echo 'chatty line of fifty bytes, over and over again ..'; i=$((i+1)); done",
            ..Default::default()
        },
    );

    let boot = BootOptions {
        onboot_timeout: Some(Duration::from_secs(2)),
        onboot_log_max_bytes: Some(4096),
        ..Default::default()
    };
    let runner = Runner {
        layout: &layout,
        runc: find_runc(),
        boot,
        phase: Phase::Onboot,
    };
    let mut console = Vec::new();
    let status = runner.run(&mut console);
    let console = String::from_utf8_lossy(&console);

    assert_eq!(
        status, 1,
        "a failing container makes the runner fail: {console}"
    );
    let first_at = console
        .find("first suite PASSED")
        .unwrap_or_else(|| panic!("first output on the console: {console}"));
    let last_at = console
        .find("last suite PASSED")
        .unwrap_or_else(|| panic!("last output on the console: {console}"));
    assert!(first_at < last_at, "name order: {console}");
    assert!(console.contains("written"), "{console}");
    assert!(
        console.contains("about to fail"),
        "stderr log dumped too: {console}"
    );
    assert!(
        console.contains("made"),
        "relative mkdir inside the rootfs: {console}"
    );
    assert!(
        !console.contains("never"),
        "the container with a bad runtime.json must not run: {console}"
    );
    assert!(mkdir_target.is_dir());

    let logs = layout.run_log_dir.join("onboot");
    let out = std::fs::read_to_string(logs.join("onboot.000-first.out.log")).expect("stdout log");
    assert!(out.contains("first suite PASSED"));
    assert!(
        std::fs::read_to_string(logs.join("onboot.002-fails.log"))
            .expect("stderr log")
            .contains("about to fail")
    );
    assert!(layout.var_log_dir.join("onboot").is_symlink());
    // 2000 lines written, the first 4096 bytes kept, and a line saying how much was dropped.
    let written = 2000 * "chatty line of fifty bytes, over and over again ..\n".len();
    let chatty =
        std::fs::read_to_string(logs.join("onboot.005-chatty.out.log")).expect("chatty log");
    assert!(
        chatty.starts_with("chatty line") && chatty.len() < 4096 + 100,
        "{} bytes",
        chatty.len()
    );
    assert!(
        chatty.ends_with(&format!(
            "[log capped at 4096 bytes: {} more bytes dropped]\n",
            written - 4096
        )),
        "{:?}",
        chatty.get(4000..)
    );

    let timeline = std::fs::read_to_string(&layout.timeline).expect("timeline");
    let exits: Vec<(String, serde_json::Value)> = timeline
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|r| r["event"] == "onboot-exit")
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["exit"].clone(),
            )
        })
        .collect();
    let expected = vec![
        ("000-first".to_owned(), serde_json::json!(0)),
        ("002-fails".to_owned(), serde_json::json!(3)),
        ("003-hangs".to_owned(), serde_json::json!(137)),
        ("004-last".to_owned(), serde_json::json!(0)),
        ("005-chatty".to_owned(), serde_json::json!(0)),
    ];
    assert_eq!(exits, expected, "{timeline}");

    // Finished containers are deleted from runc and their rootfs unmounted.
    let list = std::process::Command::new(find_runc())
        .arg("--root")
        .arg(layout.runc_root.as_ref().expect("runc root"))
        .arg("list")
        .arg("-q")
        .output()
        .expect("runc list");
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).trim(),
        "",
        "runc list after the run"
    );
    let mounts = std::fs::read_to_string("/proc/thread-self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&format!("{} ", first.join("rootfs").display())),
        "rootfs still mounted"
    );
}
