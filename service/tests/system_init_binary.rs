//! The `service` binary end to end against a real containerd it starts itself (system-init): bad bundles
//! do not stop the others, graceful stop of a TERM-handling and a TERM-ignoring service, a crash-looping
//! service restarted by the supervisor under its restart policy, `ls`/`status`, and `shutdown`.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use harness::{
    BundleSpec, TestContainerd, containerd_dir, isolate_thread, require_prerequisites, wait_until,
    write_bundle,
};
use service::layout::Layout;

struct Guest {
    root: PathBuf,
    layout: Layout,
    socket: PathBuf,
}

impl Guest {
    /// Runs the binary with its output in a file: system-init leaves containerd and the supervisor holding
    /// its stdout and stderr, so a pipe would never see end-of-file.
    fn service(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            containerd_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out_file = self.root.join("service-output");
        let file = std::fs::File::create(&out_file).expect("output file");
        let status = Command::new(env!("CARGO_BIN_EXE_service"))
            .args(args)
            .env("GUESTKIT_SERVICE_ROOT", &self.root)
            .env("PATH", path)
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .status()
            .expect("run service");
        Output {
            status,
            stdout: std::fs::read(&out_file).unwrap_or_default(),
            stderr: Vec::new(),
        }
    }

    fn sock(&self) -> &str {
        self.socket.to_str().expect("utf-8 path")
    }

    fn services(&self) -> &str {
        self.layout.services_dir.to_str().expect("utf-8 path")
    }

    fn status(&self, name: &str) -> String {
        text(&self.service(&[
            "status",
            "-sock",
            self.sock(),
            "-path",
            self.services(),
            name,
        ]))
    }

    fn containerd_pid(&self) -> i32 {
        let timeline = std::fs::read_to_string(&self.layout.timeline).expect("timeline");
        timeline
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["event"] == "containerd-spawn")
            .and_then(|r| r["pid"].as_i64())
            .and_then(|p| i32::try_from(p).ok())
            .expect("containerd-spawn in the timeline")
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_default()
        .to_owned()
}

fn write_services(dir: &Path) {
    write_bundle(
        dir,
        "a-ignores-term",
        &BundleSpec {
            script: "echo a-up; exec sleep 1000",
            ..Default::default()
        },
    );
    let bad_runtime = write_bundle(dir, "b-bad-runtime", &BundleSpec::default());
    std::fs::write(
        bad_runtime.join("runtime.json"),
        r#"{"interfaces": [{"name": 5}]}"#,
    )
    .expect("runtime.json");
    let bad_config = write_bundle(dir, "c-bad-config", &BundleSpec::default());
    std::fs::write(
        bad_config.join("config.json"),
        r#"{"ociVersion": "1.0.2", "process": {"args": "sh"}}"#,
    )
    .expect("config.json");
    let crash = write_bundle(
        dir,
        "d-crashloop",
        &BundleSpec {
            script: "echo crash; exit 1",
            ..Default::default()
        },
    );
    std::fs::write(
        crash.join("runtime.json"),
        r#"{"restart": {"policy": "on-failure", "backoff": 0.2, "maxBackoff": 0.4, "resetAfter": 60}}"#,
    )
    .expect("runtime.json");
    let script = "trap 'echo got-term; exit 0' TERM; echo e-up; while true; do sleep 0.1; done";
    let term = write_bundle(
        dir,
        "e-handles-term",
        &BundleSpec {
            script,
            ..Default::default()
        },
    );
    std::fs::write(term.join("runtime.json"), r#"{"stopGracePeriod": 30}"#).expect("runtime.json");
}

#[test]
fn system_init_supervision_graceful_stop_and_shutdown() {
    require_prerequisites();
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_owned();
    let layout = Layout::under(&root);
    let ctd_dir = root.join("ctd");
    std::fs::create_dir_all(&ctd_dir).expect("ctd dir");
    let socket = ctd_dir.join("containerd.sock");
    let config = ctd_dir.join("config.toml");
    std::fs::write(
        &config,
        "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
    )
    .expect("config");
    if harness::containerd_major_version() >= 2 {
        std::fs::write(&config, "version = 3\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.cri.v1.runtime\", \"io.containerd.cri.v1.images\"]\n").expect("config");
    }
    let cliopts = format!(
        "--config {} --root {} --state {} --address {}",
        config.display(),
        ctd_dir.join("root").display(),
        ctd_dir.join("state").display(),
        socket.display()
    );
    std::fs::create_dir_all(layout.runtime_config.parent().expect("parent"))
        .expect("etc/containerd");
    std::fs::write(
        &layout.runtime_config,
        format!(
            "cliopts = \"{cliopts}\"\nstderr = \"{}\"\n",
            ctd_dir.join("log").display()
        ),
    )
    .expect("runtime-config.toml");
    write_services(&layout.services_dir);
    let guest = Guest {
        root: root.clone(),
        layout: layout.clone(),
        socket: socket.clone(),
    };
    let containerd = containerd_dir().join("containerd");

    let out = guest.service(&[
        "system-init",
        "-sock",
        guest.sock(),
        "-path",
        guest.services(),
        "-containerd",
        containerd.to_str().expect("utf-8"),
    ]);
    let _ctd = TestContainerd::adopt(&ctd_dir, &socket, guest.containerd_pid());
    let _supervisor = SupervisorGuard(layout.clone());
    let console = text(&out);
    assert!(out.status.success(), "{console}");
    for name in [
        "a-ignores-term",
        "b-bad-runtime",
        "c-bad-config",
        "d-crashloop",
        "e-handles-term",
    ] {
        assert!(
            console.contains(&format!("Starting service: \"{name}\"")),
            "{name}: {console}"
        );
    }
    assert!(
        console.contains("b-bad-runtime/runtime.json: field `interfaces[0].name`"),
        "{console}"
    );
    assert!(
        console.contains("c-bad-config/config.json: field `process.args`"),
        "{console}"
    );

    for name in ["a-ignores-term", "e-handles-term"] {
        let running = wait_until(Duration::from_secs(10), || {
            field(&guest.status(name), "state") == "running"
        });
        assert!(
            running,
            "{name}: {}\nsystem-init said:\n{console}",
            guest.status(name)
        );
    }
    assert!(
        wait_until(Duration::from_secs(20), || field(
            &guest.status("d-crashloop"),
            "restarts"
        )
        .parse::<u32>()
        .unwrap_or(0)
            >= 2),
        "crash loop restarted by the supervisor: {}",
        guest.status("d-crashloop")
    );
    assert_eq!(
        field(&guest.status("d-crashloop"), "restart policy"),
        "on-failure"
    );
    let ls = text(&guest.service(&["ls", "-sock", guest.sock(), "-path", guest.services()]));
    assert!(
        ls.lines()
            .any(|l| l.starts_with("a-ignores-term") && l.contains("running")),
        "{ls}"
    );

    // TERM-handling service: exits on SIGTERM well within its 30 s grace period, with status 0.
    let out = guest.service(&[
        "stop",
        "-sock",
        guest.sock(),
        "-path",
        guest.services(),
        "e-handles-term",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(field(&guest.status("e-handles-term"), "exit status"), "0");
    let log =
        std::fs::read_to_string(layout.var_log_dir.join("e-handles-term.out.log")).expect("log");
    assert!(log.contains("got-term"), "{log}");

    // TERM-ignoring service: SIGKILL after the grace period.
    let out = guest.service(&[
        "stop",
        "-sock",
        guest.sock(),
        "-path",
        guest.services(),
        "-timeout",
        "0.5",
        "a-ignores-term",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(field(&guest.status("a-ignores-term"), "exit status"), "137");

    // restart works on a stopped service (LinuxKit #3586).
    let out = guest.service(&[
        "restart",
        "-sock",
        guest.sock(),
        "-path",
        guest.services(),
        "a-ignores-term",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(field(&guest.status("a-ignores-term"), "state"), "running");

    let out = guest.service(&[
        "shutdown",
        "-sock",
        guest.sock(),
        "-path",
        guest.services(),
        "-timeout",
        "0.5",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let ls = text(&guest.service(&["ls", "-sock", guest.sock(), "-path", guest.services()]));
    assert!(!ls.contains("running"), "{ls}");
    assert!(
        !layout.state_dir.join("supervisor.pid").exists(),
        "supervisor stopped by shutdown"
    );
}

/// Stops the supervisor if the test fails before `shutdown`.
struct SupervisorGuard(Layout);

impl Drop for SupervisorGuard {
    fn drop(&mut self) {
        service::supervisor::stop_supervisor(&self.0);
    }
}
