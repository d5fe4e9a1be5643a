//! Finding and invoking runc for onboot/onshutdown containers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::sys::wait::WaitStatus;

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
