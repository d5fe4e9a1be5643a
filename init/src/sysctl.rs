//! `/etc/sysctl.d/*.conf`: `key = value` lines applied to `/proc/sys` at boot (what LinuxKit's `sysctl`
//! onboot package does, done natively).
//!
//! Syntax as in sysctl.d(5): `#` or `;` starts a comment line; a leading `-` on the key ignores a failed
//! write; `.` separates key components unless the first separator is `/`, and then `/` does (so
//! `net.ipv4.conf.eth0/100.forwarding` names `net/ipv4/conf/eth0.100/forwarding`). Globs are not supported.

use std::path::{Component, Path, PathBuf};

use crate::sys::Sys;

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key as written (without a leading `-`).
    pub key: String,
    /// The file under `/proc/sys`.
    pub path: PathBuf,
    /// The value, surrounding whitespace trimmed.
    pub value: String,
    /// Whether a failed write is ignored (`-key = value`).
    pub ignore_failure: bool,
}

/// A line that is not a setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SysctlError {
    /// No `=`.
    #[error("line {line}: expected \"key = value\", got {text:?}")]
    NoValue {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// An empty key, an empty component, or `..`.
    #[error("line {line}: invalid key {key:?}")]
    BadKey {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
    },
}

/// The path under `/proc/sys` for a key, or `None` if the key is unusable.
pub fn key_path(key: &str) -> Option<PathBuf> {
    let slash_first = key
        .find(['.', '/'])
        .is_some_and(|i| key.as_bytes().get(i) == Some(&b'/'));
    let relative: String = if slash_first {
        key.to_string()
    } else {
        key.chars()
            .map(|c| {
                if c == '.' {
                    '/'
                } else if c == '/' {
                    '.'
                } else {
                    c
                }
            })
            .collect()
    };
    let path = PathBuf::from(relative);
    let usable = !key.is_empty()
        && !key.split(['.', '/']).any(str::is_empty)
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(n) if n != ".."));
    usable.then_some(path)
}

/// Parses one file's text; each non-blank, non-comment line gives a setting or an error.
pub fn parse(text: &str) -> Vec<Result<Setting, SysctlError>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            out.push(Err(SysctlError::NoValue {
                line: i + 1,
                text: raw.to_string(),
            }));
            continue;
        };
        let key = key.trim();
        let (ignore_failure, key) = match key.strip_prefix('-') {
            Some(k) => (true, k.trim()),
            None => (false, key),
        };
        out.push(match key_path(key) {
            Some(path) => Ok(Setting {
                key: key.to_string(),
                path,
                value: value.trim().to_string(),
                ignore_failure,
            }),
            None => Err(SysctlError::BadKey {
                line: i + 1,
                key: key.to_string(),
            }),
        });
    }
    out
}

/// The `*.conf` files of a directory, in name order.
pub fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// Applies every file in `dir` to `proc_sys`; problems are logged with the file name.
pub fn apply_dir(sys: &dyn Sys, dir: &Path, proc_sys: &Path) {
    for file in conf_files(dir) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            log::error!("reading {}", file.display());
            continue;
        };
        for result in parse(&text) {
            match result {
                Ok(s) => match sys.write_file(&proc_sys.join(&s.path), s.value.as_bytes()) {
                    Err(e) if !s.ignore_failure => {
                        log::error!("{}: setting {} = {}: {e}", file.display(), s.key, s.value);
                    }
                    _ => {}
                },
                Err(e) => log::error!("{}: {e}", file.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;
    use crate::recording_sys::{Call, RecordingSys};

    #[test]
    fn key_paths() {
        let cases = [
            ("net.ipv4.ip_forward", Some("net/ipv4/ip_forward")),
            ("net/ipv4/ip_forward", Some("net/ipv4/ip_forward")),
            (
                "net.ipv4.conf.eth0/100.forwarding",
                Some("net/ipv4/conf/eth0.100/forwarding"),
            ),
            (
                "net/ipv4/conf/eth0.100/forwarding",
                Some("net/ipv4/conf/eth0.100/forwarding"),
            ),
            ("kernel.", None),
            ("", None),
            ("/abs", None),
            ("a..b", None),
            ("../etc/passwd", None),
            ("a/../../b", None),
        ];
        for (i, (key, want)) in cases.iter().enumerate() {
            assert_eq!(key_path(key), want.map(PathBuf::from), "case {i}: {key:?}");
        }
    }

    #[test]
    fn parses_lines() {
        let text = "# comment\n; also\n\nnet.ipv4.ip_forward = 1\n-vm.swappiness=10 \nbad line\n = 3\nkernel.x = a = b\n";
        let setting = |key: &str, path: &str, value: &str, ignore_failure| {
            Ok(Setting {
                key: key.into(),
                path: path.into(),
                value: value.into(),
                ignore_failure,
            })
        };
        assert_eq!(
            parse(text),
            vec![
                setting("net.ipv4.ip_forward", "net/ipv4/ip_forward", "1", false),
                setting("vm.swappiness", "vm/swappiness", "10", true),
                Err(SysctlError::NoValue {
                    line: 6,
                    text: "bad line".into()
                }),
                Err(SysctlError::BadKey {
                    line: 7,
                    key: String::new()
                }),
                setting("kernel.x", "kernel/x", "a = b", false),
            ]
        );
    }

    #[test]
    fn applies_files_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("20-b.conf"), "b.c = 2\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("10-a.conf"), "a = 1\n-x.y = 3\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("README"), "not = read\n").unwrap_or_else(|e| panic!("{e}"));
        let sys = RecordingSys::new().failing("/proc/sys/x/y", Errno::ENOENT);
        apply_dir(&sys, dir.path(), Path::new("/proc/sys"));
        let w = |p: &str, v: &str| Call::WriteFile {
            path: p.into(),
            contents: v.as_bytes().to_vec(),
        };
        assert_eq!(
            sys.calls(),
            vec![
                w("/proc/sys/a", "1"),
                w("/proc/sys/x/y", "3"),
                w("/proc/sys/b/c", "2")
            ]
        );
    }
}
