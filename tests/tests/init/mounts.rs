//! The docs/linuxkit.md §4.2 mount table as `/proc/mounts` shows it on the Debian 6.1 kernel, and the comparison with what a
//! guest reported.
//!
//! Options are compared as sets of the words the kernel prints. Special words: `size=10%` / `size=50%`
//! mean `size=<N>k` with N that share of `MemTotal` (tmpfs rounds to pages); `key=*` means the key is
//! present with any value. tmpfs hides `mode=1777` and `size=50%` (its defaults) and adds `inode64`.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

/// One `/proc/mounts` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: Vec<String>,
}

impl Mount {
    /// Parses `source target fstype options 0 0`.
    pub fn parse(line: &str) -> Result<Self> {
        let mut f = line.split_whitespace();
        let mut next = |what: &str| {
            f.next()
                .map(str::to_string)
                .with_context(|| format!("no {what} in /proc/mounts line {line:?}"))
        };
        Ok(Self {
            source: next("source")?,
            target: next("target")?,
            fstype: next("type")?,
            options: next("options")?.split(',').map(str::to_string).collect(),
        })
    }
}

/// An expected mount.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub target: &'static str,
    pub source: &'static str,
    pub fstype: &'static str,
    pub options: &'static str,
    /// Row 16's silent mounts: required only when the kernel knows the filesystem type.
    pub optional: bool,
}

const fn row(
    target: &'static str,
    source: &'static str,
    fstype: &'static str,
    options: &'static str,
) -> Row {
    Row {
        target,
        source,
        fstype,
        options,
        optional: false,
    }
}

const fn silent(
    target: &'static str,
    source: &'static str,
    fstype: &'static str,
    options: &'static str,
) -> Row {
    Row {
        target,
        source,
        fstype,
        options,
        optional: true,
    }
}

const NNNR: &str = "rw,nosuid,nodev,noexec,relatime";

/// docs/linuxkit.md §4.2 in mount order, then the cgroup v2 mount of docs/linuxkit.md §4.3.
pub const TABLE: &[Row] = &[
    row("/proc", "proc", "proc", NNNR),
    row(
        "/run",
        "tmpfs",
        "tmpfs",
        "rw,nosuid,nodev,noexec,relatime,size=10%,mode=755,inode64",
    ),
    row(
        "/tmp",
        "tmpfs",
        "tmpfs",
        "rw,nosuid,nodev,noexec,relatime,size=10%,inode64",
    ),
    row(
        "/var",
        "tmpfs",
        "tmpfs",
        "rw,nosuid,nodev,noexec,relatime,mode=755,inode64",
    ),
    row(
        "/dev",
        "dev",
        "devtmpfs",
        "rw,nosuid,noexec,relatime,size=10240k,nr_inodes=248418,mode=755,inode64",
    ),
    row("/dev/mqueue", "mqueue", "mqueue", NNNR),
    row(
        "/dev/shm",
        "shm",
        "tmpfs",
        "rw,nosuid,nodev,noexec,relatime,inode64",
    ),
    row(
        "/dev/pts",
        "devpts",
        "devpts",
        "rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000",
    ),
    row("/sys", "sysfs", "sysfs", NNNR),
    silent("/sys/kernel/security", "securityfs", "securityfs", NNNR),
    silent("/sys/kernel/debug", "debugfs", "debugfs", NNNR),
    silent("/sys/kernel/config", "configfs", "configfs", NNNR),
    silent("/sys/fs/fuse/connections", "fusectl", "fusectl", NNNR),
    silent(
        "/sys/fs/selinux",
        "selinuxfs",
        "selinuxfs",
        "rw,nosuid,noexec,relatime",
    ),
    silent("/sys/fs/pstore", "pstore", "pstore", NNNR),
    silent("/sys/fs/bpf", "bpffs", "bpf", "rw,nodev,relatime"),
    silent("/sys/firmware/efi/efivars", "efivarfs", "efivarfs", NNNR),
    silent(
        "/proc/sys/fs/binfmt_misc",
        "binfmt_misc",
        "binfmt_misc",
        NNNR,
    ),
    row("/sys/fs/cgroup", "cgroup2", "cgroup2", NNNR),
];

fn option_matches(want: &str, got: &[String], mem_total_kib: u64) -> bool {
    if let Some(percent) = want.strip_prefix("size=").and_then(|p| p.strip_suffix('%')) {
        let Ok(percent) = percent.parse::<u64>() else {
            return false;
        };
        let expected = mem_total_kib * percent / 100;
        return got.iter().any(|o| {
            o.strip_prefix("size=")
                .and_then(|v| v.strip_suffix('k'))
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|k| k.abs_diff(expected) <= 8)
        });
    }
    if let Some(key) = want.strip_suffix("=*") {
        return got
            .iter()
            .any(|o| o.split_once('=').is_some_and(|(k, _)| k == key));
    }
    got.iter().any(|o| o == want)
}

/// The differences between `row` and what the guest has mounted there (empty: it matches).
fn compare(row: &Row, got: &Mount, mem_total_kib: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if got.source != row.source || got.fstype != row.fstype {
        problems.push(format!(
            "{}: want source {} type {}, got {} {}",
            row.target, row.source, row.fstype, got.source, got.fstype
        ));
    }
    let want: Vec<&str> = row.options.split(',').collect();
    for w in &want {
        if !option_matches(w, &got.options, mem_total_kib) {
            problems.push(format!(
                "{}: option {w} missing from {:?}",
                row.target, got.options
            ));
        }
    }
    let keys = |o: &str| o.split('=').next().unwrap_or(o).to_string();
    let want_keys: BTreeSet<String> = want.iter().map(|w| keys(w)).collect();
    for extra in got.options.iter().filter(|o| !want_keys.contains(&keys(o))) {
        problems.push(format!(
            "{}: unexpected option {extra} in {:?}",
            row.target, got.options
        ));
    }
    problems
}

/// Checks `mounts` (in `/proc/mounts` order) against [`TABLE`]: every required row mounted exactly once with
/// its source, type and options; every silent row whose type is in `filesystems` likewise; the rows in
/// table order; `/` read-only. Returns every problem found.
pub fn check(mounts: &[Mount], filesystems: &BTreeSet<String>, mem_total_kib: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let mut order = Vec::new();
    for row in TABLE {
        let at: Vec<(usize, &Mount)> = mounts
            .iter()
            .enumerate()
            .filter(|(_, m)| m.target == row.target)
            .collect();
        match at.as_slice() {
            [] if row.optional && !filesystems.contains(row.fstype) => {}
            [] => problems.push(format!("{} ({}) is not mounted", row.target, row.fstype)),
            [(i, m)] => {
                problems.extend(compare(row, m, mem_total_kib));
                order.push((*i, row.target));
            }
            many => problems.push(format!("{} is mounted {} times", row.target, many.len())),
        }
    }
    let mut sorted = order.clone();
    sorted.sort();
    if sorted != order {
        problems.push(format!(
            "mounted out of order: {:?}",
            sorted.iter().map(|(_, t)| *t).collect::<Vec<_>>()
        ));
    }
    match mounts.iter().rev().find(|m| m.target == "/") {
        Some(root) if root.options.first().map(String::as_str) == Some("ro") => {}
        Some(root) => problems.push(format!("/ is not read-only: {:?}", root.options)),
        None => problems.push("/ is not in /proc/mounts".into()),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(text: &str) -> Vec<Mount> {
        text.lines()
            .map(|l| Mount::parse(l).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn options_match_sizes_wildcards_and_words() {
        let got: Vec<String> = ["rw", "size=102400k", "mode=755"]
            .map(String::from)
            .to_vec();
        assert!(option_matches("size=10%", &got, 1_024_000));
        assert!(!option_matches("size=50%", &got, 1_024_000));
        assert!(option_matches("mode=*", &got, 0));
        assert!(!option_matches("gid=*", &got, 0));
        assert!(option_matches("rw", &got, 0));
        assert!(!option_matches("ro", &got, 0));
    }

    #[test]
    fn a_wrong_mode_and_a_missing_mount_are_reported() {
        let m = mounts(
            "rootfs / rootfs ro 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\ntmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=100k,mode=700 0 0\n",
        );
        let problems = check(&m, &BTreeSet::new(), 1000);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("/run: option mode=755 missing")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("/tmp (tmpfs) is not mounted")),
            "{problems:?}"
        );
        assert!(
            !problems.iter().any(|p| p.contains("/proc")),
            "{problems:?}"
        );
        assert!(
            !problems.iter().any(|p| p.contains("debugfs")),
            "{problems:?}"
        );
    }
}
