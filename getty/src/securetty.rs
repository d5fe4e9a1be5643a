//! `/etc/securetty`: the terminals on which root may log in with a password.
//!
//! LinuxKit greps the file for the tty as a *word*, so a name that only appears inside a comment counts.
//! Here a tty is secure when it is a whole line of the file, comments and blank lines aside, which is
//! how busybox `login` (the program that enforces the list) reads it.

/// The list of secure ttys, one device name (without `/dev/`) per entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecureTtys {
    names: Vec<String>,
}

impl SecureTtys {
    /// Parses the file's contents: one name per line, `#` starts a comment, blank lines ignored.
    pub fn parse(contents: &str) -> SecureTtys {
        let names = contents
            .lines()
            .map(|line| line.split('#').next().unwrap_or("").trim())
            .filter(|name| !name.is_empty())
            .map(|name| name.strip_prefix("/dev/").unwrap_or(name).to_string())
            .collect();
        SecureTtys { names }
    }

    /// Whether root may log in with a password on `tty` (a name under `/dev`, such as `ttyS0`).
    pub fn allows(&self, tty: &str) -> bool {
        let tty = tty.strip_prefix("/dev/").unwrap_or(tty);
        self.names.iter().any(|n| n == tty)
    }
}

/// LinuxKit's warning, written to the tty itself, when root cannot log in there.
pub fn warning(tty: &str, securetty_path: &str) -> String {
    format!(
        "cmdline has console={tty} but does not exist in {securetty_path}; will not be able to log in as root on this tty {tty}."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list shipped in LinuxKit's getty image.
    const LINUXKIT_SECURETTY: &str = "console\ntty1\ntty2\ntty3\ntty4\ntty5\ntty6\ntty7\ntty8\ntty9\ntty10\ntty11\n\n\
        # UART serial ports\nttyS0\nttyS1\nttyS2\nttyS3\n\n# IBM iSeries/pSeries virtual console, Xen\nhvc0\nhvc1\n\n\
        #IBM pSeries console ports\nhvsi0\nhvsi1\n\n# ARM \"AMBA\" serial ports\nttyAM0\nttyAM1\n\n\
        # s390 and s390x ports in LPAR mode\nttysclp0\n";

    #[test]
    fn linuxkit_list() {
        let list = SecureTtys::parse(LINUXKIT_SECURETTY);
        let cases = [
            ("console", true),
            ("tty1", true),
            ("tty11", true),
            ("tty0", false),
            ("tty12", false),
            ("ttyS0", true),
            ("ttyS3", true),
            ("ttyS4", false),
            ("hvc0", true),
            ("hvc1", true),
            ("hvc2", false),
            ("hvsi1", true),
            ("ttyAM0", true),
            ("ttyAMA0", false),
            ("ttysclp0", true),
            ("/dev/ttyS0", true),
            // Words that occur only in comments are not ttys.
            ("Xen", false),
            ("serial", false),
            ("", false),
        ];
        for (tty, want) in cases {
            assert_eq!(list.allows(tty), want, "tty {tty:?}");
        }
    }

    #[test]
    fn entries_may_carry_dev_prefix_spaces_and_comments() {
        let list = SecureTtys::parse("  /dev/pts/3  # test pty\r\n\t\n#ttyS9\nhvc0");
        assert!(list.allows("pts/3"));
        assert!(list.allows("hvc0"));
        assert!(!list.allows("ttyS9"));
        assert!(!SecureTtys::parse("").allows("console"));
    }

    #[test]
    fn warning_is_linuxkits() {
        assert_eq!(
            warning("hvc2", "/etc/securetty"),
            "cmdline has console=hvc2 but does not exist in /etc/securetty; will not be able to log in as root on this tty hvc2."
        );
    }
}
