//! Regression: in the guest, containers start with SIGUSR1 blocked (the mask leaks from their ancestors
//! across exec), so the SIGUSR1 report never came and SIGTERM would not stop the forwarder gracefully. The
//! forwarder must unblock the signals it handles, as vsudd's Go runtime does.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_vsock-forwarder");

mod sys {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

    /// Makes the child start with SIGUSR1 and SIGTERM blocked.
    pub fn block_in_child(command: &mut Command) {
        let mut set = SigSet::empty();
        set.add(Signal::SIGUSR1);
        set.add(Signal::SIGTERM);
        // SAFETY: the closure runs between fork and exec and only calls sigprocmask, which is
        // async-signal-safe; it allocates nothing and touches no lock.
        unsafe {
            command.pre_exec(move || {
                sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(Into::into)
            });
        }
    }
}

fn wait_for(what: &str, path: &Path, needle: &str) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < until, "no {what} in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signals_blocked_by_the_parent_still_reach_the_forwarder() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let spec = format!(
        "unix:{}=unix:{}",
        dir.path().join("in.sock").display(),
        dir.path().join("backend.sock").display()
    );
    let mut command = Command::new(BIN);
    command
        .args(["-forward", &spec])
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    sys::block_in_child(&mut command);
    let mut child = command.spawn().unwrap();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    wait_for("listener", &log, "Listening on");

    kill(pid, Signal::SIGUSR1).unwrap();
    wait_for("SIGUSR1 report", &log, "Totals:");
    kill(pid, Signal::SIGTERM).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("SIGTERM did not stop the forwarder");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("Totals:").count(), 2, "{text}");
}
