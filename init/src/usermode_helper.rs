//! The `/sbin/usermode-helper` personality (docs/linuxkit.md §7): LinuxKit kernels run every usermode helper through
//! `CONFIG_STATIC_USERMODEHELPER_PATH`, with the wanted helper as argv0. Only mdev, modprobe, poweroff and
//! reboot may run; anything else exits 2.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The helpers that may run.
pub const ALLOWED: [&str; 4] = [
    "/sbin/mdev",
    "/sbin/modprobe",
    "/sbin/poweroff",
    "/sbin/reboot",
];

/// Whether the kernel may run this helper.
pub fn allowed(helper: &str) -> bool {
    ALLOWED.contains(&helper)
}

/// Logs the call, then execs the helper if allowed. Returns the exit status when it does not exec.
pub fn run(argv: &[String]) -> u8 {
    crate::console::line(&format!("usermodehelper: {}", argv.join(" ")));
    let Some((helper, args)) = argv.split_first() else {
        return 2;
    };
    if !allowed(helper) {
        return 2;
    }
    let err = Command::new(helper).arg0(helper).args(args).exec();
    crate::console::line(&format!("usermodehelper: exec failed: {err}"));
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_is_exact() {
        let cases = [
            ("/sbin/mdev", true),
            ("/sbin/modprobe", true),
            ("/sbin/poweroff", true),
            ("/sbin/reboot", true),
            ("/sbin/halt", false),
            ("/usr/share/apport/apport", false),
            ("modprobe", false),
            ("/sbin/modprobe ", false),
        ];
        for (i, (helper, want)) in cases.iter().enumerate() {
            assert_eq!(allowed(helper), *want, "case {i}: {helper}");
        }
    }
}
