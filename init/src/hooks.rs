//! `/etc/init.d` and `/etc/shutdown.d`: every regular file (symlinks followed), in name order, run with
//! argv0 = its full path, on the console, one at a time.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::Pid;

/// The `PATH` children get when the kernel gave init none (busybox init's default, plus /usr/local).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The hooks in `dir`, sorted by name. A missing directory has none.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut hooks: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    hooks.sort();
    hooks
}

/// Starts `path` with argv0 = `path` and extra `args`, inheriting stdio, with no blocked signals. The
/// caller reaps it.
pub fn spawn(path: &Path, args: &[&str]) -> std::io::Result<Pid> {
    start(command(path, args))
}

/// Like [`spawn`], in a process group of its own (numbered by its pid), so that shutdown can kill it
/// and everything it started in one `kill(-pgid)` when its share of the time is spent.
pub fn spawn_in_own_group(path: &Path, args: &[&str]) -> std::io::Result<Pid> {
    let mut command = command(path, args);
    command.process_group(0);
    start(command)
}

fn command(path: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(path);
    command.arg0(path).args(args);
    if std::env::var_os("PATH").is_none() {
        command.env("PATH", DEFAULT_PATH);
    }
    crate::sys::unblock_signals_in_child(&mut command);
    command
}

fn start(mut command: Command) -> std::io::Result<Pid> {
    let child = command.spawn()?;
    // Dropping `Child` neither waits nor kills; the supervisor reaps it.
    Ok(Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::wait::waitpid;

    use super::*;

    /// PID 1 blocks the signals it reads from its signalfd; a hook (and all it starts) must not inherit
    /// that, or it ignores the SIGTERM of shutdown and every shutdown waits the whole bound.
    #[test]
    fn hooks_start_with_no_blocked_signals() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let out = dir.path().join("mask");
        let hook = dir.path().join("010-mask");
        let script = format!(
            "#!/bin/sh\ngrep SigBlk /proc/self/status > {}\n",
            out.display()
        );
        std::fs::write(&hook, script).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut mask = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGUSR2, Signal::SIGCHLD] {
            mask.add(s);
        }
        mask.thread_block().unwrap_or_else(|e| panic!("{e}"));
        let spawned = spawn(&hook, &[]);
        let waited = spawned.as_ref().map(|pid| waitpid(*pid, None));
        mask.thread_unblock().unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(waited, Ok(Ok(_))), "{spawned:?} {waited:?}");
        let got = std::fs::read_to_string(&out).unwrap_or_default();
        assert_eq!(
            got.split_whitespace().nth(1),
            Some("0000000000000000"),
            "{got}"
        );
    }

    #[test]
    fn lists_regular_files_and_symlinks_to_them_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let d = dir.path();
        for name in ["020-b", "010-a", "100-c"] {
            std::fs::write(d.join(name), "").unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::create_dir(d.join("015-dir")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(d.join("010-a"), d.join("011-link"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(d.join("missing"), d.join("012-dangling"))
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = list(d)
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect();
        assert_eq!(names, ["010-a", "011-link", "020-b", "100-c"]);
        assert!(list(&d.join("nonexistent")).is_empty());
    }
}
