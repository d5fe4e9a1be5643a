//! The `/etc/issue` banner and its agetty-style escapes.

/// The values the banner escapes stand for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemNames {
    /// `\n`: the node name (host name).
    pub nodename: String,
    /// `\s`: the system name (`Linux`).
    pub sysname: String,
    /// `\r`: the kernel release.
    pub release: String,
    /// `\v`: the kernel version string.
    pub version: String,
    /// `\m`: the machine architecture.
    pub machine: String,
    /// `\o`: the NIS domain name.
    pub domainname: String,
}

impl SystemNames {
    /// The names of the running kernel (`uname`), with `(none)` as the node name when unknown.
    pub fn current() -> SystemNames {
        match nix::sys::utsname::uname() {
            Ok(u) => SystemNames {
                nodename: u.nodename().to_string_lossy().into_owned(),
                sysname: u.sysname().to_string_lossy().into_owned(),
                release: u.release().to_string_lossy().into_owned(),
                version: u.version().to_string_lossy().into_owned(),
                machine: u.machine().to_string_lossy().into_owned(),
                domainname: u.domainname().to_string_lossy().into_owned(),
            },
            Err(_) => SystemNames {
                nodename: "(none)".into(),
                ..SystemNames::default()
            },
        }
    }
}

/// Expands the escapes agetty understands in the common case: `\n` `\s` `\r` `\v` `\m` `\o` `\l`
/// (the tty) and `\\`. Unknown escapes are kept as written.
pub fn expand(text: &str, names: &SystemNames, tty: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push_str(&names.nodename),
            Some('s') => out.push_str(&names.sysname),
            Some('r') => out.push_str(&names.release),
            Some('v') => out.push_str(&names.version),
            Some('m') => out.push_str(&names.machine),
            Some('o') => out.push_str(&names.domainname),
            Some('l') => out.push_str(tty),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_expanded() {
        let names = SystemNames {
            nodename: "linuxkit-1".into(),
            sysname: "Linux".into(),
            release: "6.1.0".into(),
            version: "#1 SMP".into(),
            machine: "x86_64".into(),
            domainname: "(none)".into(),
        };
        let cases = [
            ("Welcome to LinuxKit\n", "Welcome to LinuxKit\n"),
            ("\\s \\r on \\m (\\l)\n", "Linux 6.1.0 on x86_64 (ttyS0)\n"),
            ("\\n.\\o \\v", "linuxkit-1.(none) #1 SMP"),
            ("a\\\\b \\q \\", "a\\b \\q \\"),
            ("ünïcode \\l", "ünïcode ttyS0"),
        ];
        for (text, want) in cases {
            assert_eq!(expand(text, &names, "ttyS0"), want, "text {text:?}");
        }
    }
}
