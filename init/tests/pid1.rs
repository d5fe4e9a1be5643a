//! Process tests: the real `init` binary as PID 1 of a fresh PID, mount and UTS namespace
//! (`unshare --pid --fork --mount-proc --uts`), in userspace mode, with hook directories from a temp dir.
//! They need root and util-linux `unshare`; without them they fail saying so.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Generous bound for the namespace to reach a state; only guards against a hung test.
const PATIENCE: Duration = Duration::from_secs(120);

struct Pid1 {
    unshare: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

fn require_root_and_unshare() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (unshare --pid --mount)"
    );
    let ok = Command::new("unshare")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "these tests need util-linux `unshare` on PATH");
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n"))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
}

impl Pid1 {
    /// Starts init with the given boot and shutdown hooks and kernel command line.
    fn start(
        init_d: &[(&str, &str)],
        shutdown_d: &[(&str, &str)],
        cmdline: &str,
        service: Option<&str>,
    ) -> Pid1 {
        require_root_and_unshare();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let d = dir.path();
        for (sub, hooks) in [("init.d", init_d), ("shutdown.d", shutdown_d)] {
            std::fs::create_dir(d.join(sub)).unwrap_or_else(|e| panic!("mkdir: {e}"));
            for (name, body) in hooks {
                write_script(&d.join(sub).join(name), body);
            }
        }
        std::fs::write(d.join("cmdline"), cmdline).unwrap_or_else(|e| panic!("cmdline: {e}"));
        let mut command = Command::new("unshare");
        command
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--uts",
                env!("CARGO_BIN_EXE_init"),
            ])
            .env("GUESTKIT_INIT_D", d.join("init.d"))
            .env("GUESTKIT_SHUTDOWN_D", d.join("shutdown.d"))
            .env("GUESTKIT_TIMELINE", d.join("timeline.jsonl"))
            .env("GUESTKIT_CMDLINE", d.join("cmdline"))
            .env("GUESTKIT_SERVICE", d.join("service"))
            .env("GUESTKIT_CONTAINERD_SOCK", d.join("containerd.sock"))
            .env("TESTDIR", d)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(body) = service {
            write_script(&d.join("service"), body);
            std::fs::write(d.join("containerd.sock"), "").unwrap_or_else(|e| panic!("sock: {e}"));
        }
        let mut unshare = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting unshare: {e}"));
        let (tx, lines) = channel();
        for stream in [
            unshare
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            unshare.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Pid1 {
            unshare,
            lines,
            seen: Vec::new(),
            _dir: dir,
        }
    }

    /// Waits for a console line containing `text`.
    fn expect(&mut self, text: &str) {
        if self.seen.iter().any(|l| l.contains(text)) {
            return;
        }
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    let hit = line.contains(text);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no console line with {text:?}; got:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// init's PID on the host: the only child of `unshare`.
    fn init_pid(&self) -> Pid {
        let pid = self.unshare.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let first = children
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("unshare has no child"));
        Pid::from_raw(
            first
                .parse()
                .unwrap_or_else(|e| panic!("child pid {first:?}: {e}")),
        )
    }

    fn children_list(&self) -> Vec<String> {
        let pid = self.init_pid();
        let path = format!("/proc/{pid}/task/{pid}/children");
        let children = std::fs::read_to_string(path).unwrap_or_default();
        children.split_whitespace().map(String::from).collect()
    }

    fn children(&self) -> usize {
        self.children_list().len()
    }

    /// Children of init that are zombies right now.
    fn zombie_children(&self) -> usize {
        let is_zombie = |c: &&String| {
            let stat = std::fs::read_to_string(format!("/proc/{c}/stat")).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        };
        self.children_list().iter().filter(is_zombie).count()
    }

    /// Sends `signal` to init and waits for the namespace to end; returns the signal that ended init.
    fn signal_and_wait(&mut self, signal: Signal) -> Option<i32> {
        kill(self.init_pid(), signal).unwrap_or_else(|e| panic!("kill: {e}"));
        self.wait()
    }

    fn wait(&mut self) -> Option<i32> {
        let status = self.unshare.wait().unwrap_or_else(|e| panic!("wait: {e}"));
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        status.signal()
    }

    fn output(&self) -> String {
        self.seen.join("\n")
    }
}

#[test]
fn thousands_of_orphans_leave_no_zombie() {
    let storm = "(exec sleep 100000 &); i=0; while [ $i -lt 3000 ]; do (true &); i=$((i+1)); done; echo storm-done";
    let mut init = Pid1::start(&[("010-storm", storm)], &[], "", None);
    init.expect("storm-done");
    init.expect("init: boot complete");
    let mut zombies = usize::MAX;
    for _ in 0..200 {
        zombies = init.zombie_children();
        if zombies == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(zombies, 0, "init left zombies:\n{}", init.output());
    // The long-lived orphan shows we are looking at the right process's children.
    assert!(
        init.children() >= 1,
        "the sleeping orphan is not a child of init"
    );
    assert_eq!(init.signal_and_wait(Signal::SIGUSR2), Some(libc::SIGINT));
}

#[test]
fn busybox_signal_mapping_picks_the_reboot_action() {
    // In a PID namespace reboot(2) ends init with SIGINT for power-off and halt, SIGHUP for restart.
    let cases = [
        (Signal::SIGUSR2, "init: powering off", libc::SIGINT),
        (Signal::SIGPWR, "init: powering off", libc::SIGINT),
        (Signal::SIGUSR1, "init: halting", libc::SIGINT),
        (Signal::SIGTERM, "init: rebooting", libc::SIGHUP),
        (Signal::SIGINT, "init: rebooting", libc::SIGHUP),
    ];
    for (signal, line, ended_by) in cases {
        let mut init = Pid1::start(&[], &[("010-bye", "echo shutdown-hook-ran")], "", None);
        init.expect("init: boot complete");
        assert_eq!(
            init.signal_and_wait(signal),
            Some(ended_by),
            "{signal}:\n{}",
            init.output()
        );
        let out = init.output();
        assert!(
            out.contains(line) && out.contains("shutdown-hook-ran"),
            "{signal}:\n{out}"
        );
    }
}

#[test]
fn hooks_run_in_order_with_argv0_and_a_path() {
    let hook = "echo \"hook $0 PATH=$PATH\"";
    let mut init = Pid1::start(&[("020-b", hook), ("010-a", hook)], &[], "", None);
    init.expect("init: boot complete");
    let out = init.output();
    let a = out
        .find("hook ")
        .and_then(|i| out.get(i..))
        .unwrap_or_default();
    assert!(
        a.starts_with("hook ") && a.contains("/init.d/010-a PATH=/"),
        "{out}"
    );
    assert!(
        out.find("/init.d/010-a PATH").unwrap_or(usize::MAX)
            < out.find("/init.d/020-b PATH").unwrap_or(0),
        "{out}"
    );
    init.signal_and_wait(Signal::SIGUSR2);
}

#[test]
fn power_request_during_a_hanging_hook_still_shuts_down() {
    let mut init = Pid1::start(
        &[("010-hang", "echo hanging; exec sleep 100000")],
        &[],
        "",
        None,
    );
    init.expect("hanging");
    assert_eq!(
        init.signal_and_wait(Signal::SIGUSR2),
        Some(libc::SIGINT),
        "{}",
        init.output()
    );
    assert!(init.output().contains("init: powering off"));
}

#[test]
fn stubborn_processes_get_sigkill_after_the_configured_bound() {
    let stubborn = "(trap '' TERM; echo stubborn-ready; while :; do sleep 1; done) &";
    let mut init = Pid1::start(
        &[("010-stubborn", stubborn)],
        &[],
        "quiet guestkit.shutdown_timeout=1",
        None,
    );
    init.expect("stubborn-ready");
    init.expect("init: boot complete");
    assert_eq!(init.signal_and_wait(Signal::SIGUSR2), Some(libc::SIGINT));
    let out = init.output();
    assert!(
        out.contains("sending SIGTERM") && out.contains("sending SIGKILL"),
        "{out}"
    );
}

/// A shutdown hook and a `service shutdown` that never exit are each killed when their share of
/// `guestkit.shutdown_timeout` is spent, later hooks are skipped, a second power request is acknowledged,
/// and shutdown still powers off.
#[test]
fn hanging_shutdown_hook_and_service_are_killed_at_their_share() {
    let mut init = Pid1::start(
        &[],
        &[
            ("010-hang", "echo hook-hanging; exec sleep 100000"),
            ("020-after", "echo after-ran"),
        ],
        "guestkit.shutdown_timeout=1",
        Some("echo service-hanging; sleep 100000"),
    );
    init.expect("init: boot complete");
    kill(init.init_pid(), Signal::SIGUSR2).unwrap_or_else(|e| panic!("kill: {e}"));
    init.expect("hook-hanging");
    kill(init.init_pid(), Signal::SIGTERM).unwrap_or_else(|e| panic!("kill: {e}"));
    init.expect("reboot requested during shutdown: already shutting down");
    assert_eq!(init.wait(), Some(libc::SIGINT), "{}", init.output());
    let out = init.output();
    let order = [
        "killed shutdown hook ",
        "skipping shutdown hook ",
        "service-hanging",
        "/service shutdown after ",
        "init: powering off",
    ];
    let mut at = 0;
    for text in order {
        at += out[at..]
            .find(text)
            .unwrap_or_else(|| panic!("no {text:?} after the previous step:\n{out}"));
    }
    assert!(!out.contains("after-ran"), "{out}");
}

#[test]
fn graceful_service_stop_runs_when_containerd_is_up() {
    let service = "echo \"service argv: $0 $*\"";
    let mut init = Pid1::start(
        &[],
        &[("010-onshutdown", "echo onshutdown-ran")],
        "",
        Some(service),
    );
    init.expect("init: boot complete");
    init.signal_and_wait(Signal::SIGUSR2);
    let out = init.output();
    let onshutdown = out.find("onshutdown-ran").unwrap_or(usize::MAX);
    let service = out.find("service argv: ").unwrap_or(0);
    assert!(onshutdown < service, "{out}");
    assert!(out.contains("/service shutdown"), "{out}");
}

#[test]
fn timeline_records_each_hook() {
    let mut init = Pid1::start(&[("010-a", "true")], &[], "", None);
    init.expect("init: boot complete");
    let path = PathBuf::from(init._dir.path()).join("timeline.jsonl");
    init.signal_and_wait(Signal::SIGUSR2);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let events: Vec<&str> = text.lines().collect();
    assert!(
        events
            .iter()
            .any(|l| l.contains("\"event\":\"hook-start\"") && l.contains("010-a")),
        "{text}"
    );
    assert!(
        events.iter().any(|l| l.contains("\"event\":\"boot-end\"")),
        "{text}"
    );
    assert!(
        events
            .iter()
            .all(|l| l.starts_with("{\"ms\":") && l.contains("\"src\":\"init\"")),
        "{text}"
    );
    assert!(init.output().contains("timeline: boot-end "));
    let svg = Command::new(env!("CARGO_BIN_EXE_init"))
        .arg("timeline-svg")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("timeline-svg: {e}"));
    let svg = String::from_utf8_lossy(&svg.stdout);
    assert!(
        svg.starts_with("<svg ") && svg.contains("init: hook ") && svg.contains("010-a"),
        "{svg}"
    );
}

#[test]
fn starts_without_descriptors_dev_console_or_dev_null() {
    // The kernel hands PID 1 no descriptors when there is no /dev/console; Rust's runtime would then abort
    // for want of /dev/null. Here /dev is an empty tmpfs and init starts with 0–2 closed.
    require_root_and_unshare();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let d = dir.path();
    for sub in ["init.d", "shutdown.d"] {
        std::fs::create_dir(d.join(sub)).unwrap_or_else(|e| panic!("mkdir: {e}"));
    }
    let report = d.join("fds");
    write_script(
        &d.join("init.d/010-report"),
        "ls -l /proc/1/fd > \"$TESTDIR/fds.tmp\" 2>&1; mv \"$TESTDIR/fds.tmp\" \"$TESTDIR/fds\"",
    );
    std::fs::write(d.join("cmdline"), "").unwrap_or_else(|e| panic!("cmdline: {e}"));
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--uts", "sh", "-c"])
        .arg("mount -t tmpfs none /dev && exec \"$0\" 0<&- 1>&- 2>&-")
        .arg(env!("CARGO_BIN_EXE_init"))
        .env("GUESTKIT_INIT_D", d.join("init.d"))
        .env("GUESTKIT_SHUTDOWN_D", d.join("shutdown.d"))
        .env("GUESTKIT_TIMELINE", d.join("timeline.jsonl"))
        .env("GUESTKIT_CMDLINE", d.join("cmdline"))
        .env("GUESTKIT_SERVICE", d.join("service"))
        .env("GUESTKIT_CONTAINERD_SOCK", d.join("containerd.sock"))
        .env("TESTDIR", d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting unshare: {e}"));
    let deadline = std::time::Instant::now() + PATIENCE;
    while !report.exists() {
        if let Ok(Some(status)) = unshare.try_wait() {
            panic!("init ended before its boot hook ran: {status:?}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the boot hook never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let fds = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("fds: {e}"));
    for fd in 0..=2 {
        assert!(
            fds.lines().any(|l| l.ends_with(&format!(" {fd} -> /"))),
            "descriptor {fd} of init is not the `/` placeholder:\n{fds}"
        );
    }
    let pid = unshare.id();
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let init = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unshare has no child: {children:?}"));
    kill(Pid::from_raw(init), Signal::SIGUSR2).unwrap_or_else(|e| panic!("kill: {e}"));
    let status = unshare.wait().unwrap_or_else(|e| panic!("wait: {e}"));
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}
