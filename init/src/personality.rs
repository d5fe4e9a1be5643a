//! One binary, several programs: what to be is decided from argv0, the executed path and the PID.

use std::path::Path;

/// What this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Personality {
    /// PID 1.
    Init,
    /// `/sbin/modprobe` (the kernel's `request_module`, or a user).
    Modprobe,
    /// `/sbin/usermode-helper` (the kernel's static usermode helper).
    UsermodeHelper,
    /// `init timeline-svg FILE`.
    TimelineSvg,
    /// Anything else: print usage.
    Usage,
}

fn base(path: &str) -> &str {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

/// Chooses the personality. `exec_path` is what was executed (`AT_EXECFN`), which differs from argv0 when
/// the kernel runs the static usermode helper.
pub fn choose(argv: &[String], exec_path: Option<&str>, pid: i32) -> Personality {
    let argv0 = argv.first().map(String::as_str).unwrap_or("");
    if exec_path.map(base) == Some("usermode-helper") || base(argv0) == "usermode-helper" {
        return Personality::UsermodeHelper;
    }
    if base(argv0) == "modprobe" {
        return Personality::Modprobe;
    }
    if pid == 1 {
        return Personality::Init;
    }
    match argv.get(1).map(String::as_str) {
        Some("timeline-svg") => Personality::TimelineSvg,
        _ => Personality::Usage,
    }
}

/// The usage text for a non-PID-1 invocation.
pub const USAGE: &str = "\
usage: init                                 run as PID 1 (the kernel's /init)
       init timeline-svg FILE.jsonl > OUT.svg  draw a boot timeline
       modprobe [-abnqv] [--] NAME...          as /sbin/modprobe (symlink to init)
       usermode-helper                         as /sbin/usermode-helper (symlink to init)
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_table() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let cases = [
            (v("/init"), None, 1, Personality::Init),
            (v("/init quiet"), None, 1, Personality::Init),
            (
                v("/sbin/modprobe -q -- fs-overlay"),
                Some("/sbin/modprobe"),
                77,
                Personality::Modprobe,
            ),
            (
                v("/sbin/modprobe -q -- fs-overlay"),
                Some("/sbin/usermode-helper"),
                77,
                Personality::UsermodeHelper,
            ),
            (
                v("/sbin/mdev"),
                Some("/sbin/usermode-helper"),
                5,
                Personality::UsermodeHelper,
            ),
            (v("usermode-helper x"), None, 5, Personality::UsermodeHelper),
            (
                v("/init timeline-svg /run/boot-timeline.jsonl"),
                None,
                300,
                Personality::TimelineSvg,
            ),
            (v("/init"), None, 300, Personality::Usage),
            (vec![], None, 300, Personality::Usage),
        ];
        for (i, (argv, exec, pid, want)) in cases.iter().enumerate() {
            assert_eq!(choose(argv, *exec, *pid), *want, "case {i}: {argv:?}");
        }
    }
}
