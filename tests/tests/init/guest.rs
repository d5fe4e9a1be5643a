//! The guest side of the init VM tests: blueprints made of the packaged images plus `/etc/init.d` and
//! `/etc/shutdown.d` hooks (busybox `sh`) that report on the console as `initvm: <kind> <rest>` lines, and
//! the host side that reads those lines back.

use anyhow::{Context, Result, bail};

/// What every report line starts with.
pub const MARK: &str = "initvm: ";

/// Shell functions every hook gets: `r` reports a line, `wait_boot_end` waits until init has written
/// `boot-end` to the timeline (all hooks ran, PID 1 is in its steady state).
pub const PRELUDE: &str = r#"#!/bin/sh
r() { echo "initvm: $*"; }
wait_boot_end() {
  until grep -q '"boot-end"' /run/boot-timeline.jsonl 2>/dev/null; do sleep 0.2; done
}
"#;

/// Which `init:` images the blueprint has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// `guestkit/init:dev` only: hooks, no containers.
    Init,
    /// Plus `guestkit/runc:dev`: onboot and onshutdown containers.
    Runc,
    /// Plus `guestkit/containerd:dev`: services.
    Full,
}

/// A LinuxKit YAML blueprint under construction.
#[derive(Debug, Clone)]
pub struct Blueprint {
    stack: Stack,
    cmdline: String,
    sections: String,
    files: String,
}

/// Indents every line of `text` by `n` spaces (YAML block scalars).
fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{pad}{l}\n")
            }
        })
        .collect()
}

impl Blueprint {
    /// A blueprint with `console=ttyS0 quiet` (kernel messages would split report lines).
    pub fn new(stack: Stack) -> Self {
        Self {
            stack,
            cmdline: "console=ttyS0 quiet".into(),
            sections: String::new(),
            files: String::new(),
        }
    }

    /// Appends words to the kernel command line.
    pub fn cmdline(mut self, words: &str) -> Self {
        self.cmdline = format!("{} {words}", self.cmdline);
        self
    }

    /// Adds an executable file at `path` (no leading `/`) whose contents are [`PRELUDE`] plus `script`.
    pub fn script(mut self, path: &str, script: &str) -> Self {
        self.files += &format!(
            "  - path: {path}\n    mode: \"0755\"\n    contents: |\n{}",
            indent(&format!("{PRELUDE}{script}"), 6)
        );
        self
    }

    /// Adds `/etc/init.d/<name>`.
    pub fn hook(self, name: &str, script: &str) -> Self {
        self.script(&format!("etc/init.d/{name}"), script)
    }

    /// Adds `/etc/shutdown.d/<name>`.
    pub fn shutdown_hook(self, name: &str, script: &str) -> Self {
        self.script(&format!("etc/shutdown.d/{name}"), script)
    }

    /// Adds a top-level section (`onboot:`, `onshutdown:`, `services:` with their entries) verbatim.
    pub fn section(mut self, yaml: &str) -> Self {
        self.sections += yaml;
        if !yaml.ends_with('\n') {
            self.sections.push('\n');
        }
        self
    }

    /// The YAML text.
    pub fn yaml(&self) -> String {
        let images: &[&str] = match self.stack {
            Stack::Init => &["guestkit/init:dev"],
            Stack::Runc => &["guestkit/init:dev", "guestkit/runc:dev"],
            Stack::Full => &[
                "guestkit/init:dev",
                "guestkit/runc:dev",
                "guestkit/containerd:dev",
            ],
        };
        let init: String = images.iter().map(|i| format!("  - {i}\n")).collect();
        let files = if self.files.is_empty() {
            String::new()
        } else {
            format!("files:\n{}", self.files)
        };
        format!(
            "kernel:\n  image: guestkit/kernel:6.1\n  cmdline: \"{}\"\ninit:\n{init}{}{files}",
            self.cmdline, self.sections
        )
    }
}

/// A busybox container entry (for `onboot:`, `onshutdown:` or `services:`) running `sh -c script` with the
/// console bound and as its standard output, so that what it prints reaches the serial console directly.
pub fn console_container(name: &str, script: &str) -> String {
    let script = format!("exec >/dev/console 2>&1; {script}");
    format!(
        r#"  - name: {name}
    image: debian/busybox
    command: ["/bin/sh", "-c", {script:?}]
    binds:
      - /dev/console:/dev/console
    devices:
      - path: /dev/console
        type: c
        major: 5
        minor: 1
        mode: "0666"
"#
    )
}

/// The `initvm:` lines of a console log, split into kind and rest.
#[derive(Debug, Clone, Default)]
pub struct Report {
    lines: Vec<(String, String)>,
}

impl Report {
    /// Collects every line containing [`MARK`] (kernel messages may precede it on the same line).
    pub fn parse(console: &str) -> Self {
        let lines = console
            .lines()
            .filter_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..]))
            .map(|rest| match rest.split_once(' ') {
                Some((kind, rest)) => (kind.to_string(), rest.to_string()),
                None => (rest.to_string(), String::new()),
            })
            .collect();
        Self { lines }
    }

    /// Every line of `kind`, in console order.
    pub fn all(&self, kind: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, rest)| rest.as_str())
            .collect()
    }

    /// The single line of `kind`.
    pub fn one(&self, kind: &str) -> Result<&str> {
        match self.all(kind).as_slice() {
            [one] => Ok(one),
            [] => bail!("the guest reported no `{MARK}{kind}` line"),
            many => bail!("the guest reported {} `{kind}` lines: {many:?}", many.len()),
        }
    }

    /// The value the guest reported as `<kind> <key> <value>` (for example `mode /tmp 1777`).
    pub fn keyed(&self, kind: &str, key: &str) -> Result<&str> {
        self.all(kind)
            .into_iter()
            .find_map(|rest| rest.strip_prefix(key)?.strip_prefix(' '))
            .with_context(|| format!("the guest reported no `{MARK}{kind} {key} ...` line"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_are_found_after_kernel_noise() {
        let r = Report::parse(
            "x\n[ 1.0] foo initvm: mode /tmp 1777\ninitvm: done\ninitvm: mode /run 755\n",
        );
        assert_eq!(r.all("mode"), vec!["/tmp 1777", "/run 755"]);
        assert_eq!(r.keyed("mode", "/run").ok(), Some("755"));
        assert_eq!(r.one("done").ok(), Some(""));
        assert!(r.one("mode").is_err());
        assert!(r.keyed("mode", "/var").is_err());
    }

    #[test]
    fn scripts_are_indented_into_the_yaml() {
        let yaml = Blueprint::new(Stack::Init)
            .cmdline("a=b")
            .hook("050-x", "r hello\n\nr bye\n")
            .yaml();
        assert!(
            yaml.contains("cmdline: \"console=ttyS0 quiet a=b\""),
            "{yaml}"
        );
        assert!(
            yaml.contains(
                "  - path: etc/init.d/050-x\n    mode: \"0755\"\n    contents: |\n      #!/bin/sh\n"
            ),
            "{yaml}"
        );
        assert!(yaml.contains("      r hello\n\n      r bye\n"), "{yaml}");
        assert!(!yaml.contains("guestkit/runc"), "{yaml}");
    }
}
