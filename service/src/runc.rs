//! Finding and invoking runc for onboot/onshutdown containers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::wait::WaitStatus;

/// How long one runc step (`create`, `start`, `kill`, `delete`) may take: runc itself, not the container it
/// starts. A runc wedged on a hung device or a stuck cgroup would otherwise hold the boot or the shutdown.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a runc killed at [`STEP_TIMEOUT`] may take to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits for `child` at most `limit`; past it the child is killed and `Ok(None)` returned.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    if let Some(status) = poll_until(child, limit)? {
        return Ok(Some(status));
    }
    // Already gone between the last poll and now: kill fails, which is fine.
    let _ = child.kill();
    let _ = poll_until(child, REAP_TIMEOUT)?;
    Ok(None)
}

/// Polls `child` until it exits or `limit` has passed (1 ms at first, backing off to 50 ms).
fn poll_until(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Finds runc: `/usr/bin/runc`, `/usr/sbin/runc` (Debian), then `$PATH`.
pub fn find_runc() -> PathBuf {
    let candidates = [
        PathBuf::from("/usr/bin/runc"),
        PathBuf::from("/usr/sbin/runc"),
    ];
    let from_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("runc"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain(from_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("runc"))
}

/// The runc command line for `step` (global options first).
pub fn runc_args(debug: bool, root: Option<&Path>, step: &[OsString]) -> Vec<OsString> {
    let mut args = Vec::new();
    if debug {
        args.push("--debug".into());
    }
    if let Some(root) = root {
        args.push("--root".into());
        args.push(root.into());
    }
    args.extend(step.iter().cloned());
    args
}

/// The exit status of a wait: the code, or 128 + signal.
pub fn exit_code(status: WaitStatus) -> Option<u32> {
    match status {
        WaitStatus::Exited(_, code) => u32::try_from(code).ok(),
        WaitStatus::Signaled(_, signal, _) => u32::try_from(128 + signal as i32).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use nix::unistd::Pid;

    use super::*;

    #[test]
    fn runc_command_lines() {
        let step: Vec<OsString> = vec!["start".into(), "000-x".into()];
        assert_eq!(runc_args(false, None, &step), step);
        let args = runc_args(true, Some(Path::new("/r")), &step);
        assert_eq!(
            args,
            vec![
                OsString::from("--debug"),
                "--root".into(),
                "/r".into(),
                "start".into(),
                "000-x".into()
            ]
        );
    }

    #[test]
    fn exit_codes() {
        let pid = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(
                pid,
                nix::sys::signal::Signal::SIGKILL,
                false
            )),
            Some(137)
        );
    }
}

#[cfg(test)]
mod bounded_tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_quick_child_is_reaped_with_its_status() {
        let mut child = Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .expect("sh");
        let status = wait_bounded(&mut child, Duration::from_secs(60)).expect("wait");
        assert_eq!(status.and_then(|s| s.code()), Some(3));
    }

    #[test]
    fn a_hung_child_is_killed_at_the_limit() {
        let mut child = Command::new("sleep").arg("1000").spawn().expect("sleep");
        let status = wait_bounded(&mut child, Duration::from_millis(100)).expect("wait");
        assert_eq!(status, None);
        // Killed and reaped: nothing is left to wait for.
        assert!(child.try_wait().expect("try_wait").is_some());
    }
}
