//! A text listing of an initramfs tree, one entry a line, for comparing the assembler's output with a
//! recorded listing of what `linuxkit build` lays out for the same blueprint.
//!
//! ```text
//! .  dir  0755  0:0
//! etc/mtab  symlink  0755  0:0  -> /proc/mounts
//! etc/www/index.html  file  0644  0:0  sha256:…
//! containers/services/web/config.json  file  0644  0:0  json
//!     | {
//!     |     "ociVersion": "1.2.1",
//! ```
//!
//! What would change with every Debian point release or rebuild is normalised away, so that the listing
//! changes only when the layout does:
//! - the kernel's `lib/modules/<version>/` becomes `lib/modules/VERSION/`, and its contents (the module set)
//!   are summarised as the distinct `(type, mode, owner)` of the entries below it, plus the `depmod` indexes
//!   init reads;
//! - files that come from images (binaries, libraries, scripts) are listed with type, mode and owner but no
//!   digest. Files the build itself writes are fixed and get a digest: `files:` entries, `etc/hosts` and
//!   `etc/resolv.conf`; a bundle's `config.json` and `runtime.json` are listed in full.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;

use sha2::{Digest, Sha256};

use super::{Node, NodeKind, Tree, normalise};

/// The module directory; the component after it is the kernel version.
const MODULES: &str = "lib/modules/";
/// The `depmod` indexes init reads; listed one by one below `lib/modules/VERSION/`.
const MODULE_INDEXES: &[&str] = &["modules.alias", "modules.dep"];

/// Lists `tree`. `files` are the blueprint's `files:` paths (their contents are fixed, so digested).
pub fn listing(tree: &Tree, files: &[String]) -> io::Result<String> {
    let fixed: BTreeSet<String> = files.iter().map(|f| normalise(f)).collect();
    let mut out = String::new();
    line(&mut out, ".", &tree.root_or_default(), "");
    let mut module_summary = BTreeSet::new();
    for (path, node) in tree.iter() {
        match module_path(path) {
            Some(ModulePath::Inside(rest)) if !MODULE_INDEXES.contains(&rest) => {
                module_summary.insert(format!(
                    "{}  {:04o}  {}:{}",
                    kind_name(&node.kind),
                    node.mode,
                    node.uid,
                    node.gid
                ));
            }
            Some(ModulePath::Inside(rest)) => {
                line(&mut out, &format!("{MODULES}VERSION/{rest}"), node, "");
            }
            Some(ModulePath::Version) => line(&mut out, &format!("{MODULES}VERSION"), node, ""),
            None => entry(&mut out, path, node, &fixed)?,
        }
    }
    for summary in module_summary {
        let _ = writeln!(out, "{MODULES}VERSION/**  {summary}");
    }
    Ok(out)
}

enum ModulePath<'a> {
    /// `lib/modules/<version>`.
    Version,
    /// Below it; the part after the version.
    Inside(&'a str),
}

fn module_path(path: &str) -> Option<ModulePath<'_>> {
    let rest = path.strip_prefix(MODULES)?;
    match rest.split_once('/') {
        None => Some(ModulePath::Version),
        Some((_, inside)) => Some(ModulePath::Inside(inside)),
    }
}

fn entry(out: &mut String, path: &str, node: &Node, fixed: &BTreeSet<String>) -> io::Result<()> {
    let NodeKind::File { content, .. } = &node.kind else {
        line(out, path, node, "");
        return Ok(());
    };
    let base = path.rsplit('/').next().unwrap_or(path);
    if path.starts_with("containers/") && (base == "config.json" || base == "runtime.json") {
        line(out, path, node, "json");
        let text = String::from_utf8_lossy(&content.read_all()?).into_owned();
        for json_line in text.lines() {
            let _ = writeln!(out, "    | {json_line}");
        }
    } else if fixed.contains(path)
        || path.ends_with("etc/hosts")
        || path.ends_with("etc/resolv.conf")
    {
        let digest = hex::encode(Sha256::digest(content.read_all()?));
        line(out, path, node, &format!("sha256:{digest}"));
    } else {
        line(out, path, node, "");
    }
    Ok(())
}

fn kind_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Dir => "dir",
        NodeKind::File { .. } => "file",
        NodeKind::Symlink(_) => "symlink",
        NodeKind::CharDevice { .. } => "char",
        NodeKind::BlockDevice { .. } => "block",
        NodeKind::Fifo => "fifo",
    }
}

fn line(out: &mut String, path: &str, node: &Node, extra: &str) {
    let mut text = format!(
        "{path}  {}  {:04o}  {}:{}",
        kind_name(&node.kind),
        node.mode,
        node.uid,
        node.gid
    );
    match &node.kind {
        NodeKind::Symlink(target) => {
            let _ = write!(text, "  -> {target}");
        }
        NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor } => {
            let _ = write!(text, "  {major},{minor}");
        }
        _ if !extra.is_empty() => {
            let _ = write!(text, "  {extra}");
        }
        _ => {}
    }
    let _ = writeln!(out, "{text}");
}

/// The lines of `recorded` and `actual` that differ, as `-recorded` / `+actual` lines in order (a longest
/// common subsequence diff, each line prefixed with the entry it belongs to for JSON lines); empty when
/// they are the same.
pub fn differences(recorded: &str, actual: &str) -> Vec<String> {
    let old: Vec<&str> = recorded.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let head = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let tail = old[head..]
        .iter()
        .rev()
        .zip(new[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (a, b) = (&old[head..old.len() - tail], &new[head..new.len() - tail]);
    if a.len().saturating_mul(b.len()) > MAX_DIFF_CELLS {
        // Too different to align cheaply: everything in between, removed then added.
        let removed = (0..a.len()).map(|i| show_line('-', &old, head + i));
        let added = (0..b.len()).map(|j| show_line('+', &new, head + j));
        return removed.chain(added).collect();
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(show_line('-', &old, head + i));
            i += 1;
        } else {
            out.push(show_line('+', &new, head + j));
            j += 1;
        }
    }
    out
}

/// The largest alignment table [`differences`] builds (cells of the longest-common-subsequence table).
const MAX_DIFF_CELLS: usize = 16 << 20;

/// One diff line; a JSON content line names the entry it belongs to.
fn show_line(sign: char, lines: &[&str], at: usize) -> String {
    let text = lines[at];
    if !text.starts_with("    | ") {
        return format!("{sign}{text}");
    }
    let owner = lines[..at]
        .iter()
        .rev()
        .find(|l| !l.starts_with("    | "))
        .and_then(|l| l.split("  ").next())
        .unwrap_or("");
    format!("{sign}{text}    (in {owner})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let mut tree = Tree::new();
        tree.insert(
            "lib/modules/6.1.0-9-amd64/kernel/a.ko",
            Node::bytes("a", 0o644),
        );
        tree.insert(
            "lib/modules/6.1.0-9-amd64/kernel/b.ko",
            Node::bytes("b", 0o644),
        );
        tree.insert(
            "lib/modules/6.1.0-9-amd64/modules.dep",
            Node::bytes("", 0o644),
        );
        tree.insert("etc/mtab", Node::symlink("/proc/mounts").with_mode(0o755));
        tree.insert("etc/motd", Node::bytes("hi\n", 0o600).owned(100, 0));
        tree.insert("bin/tool", Node::bytes("changes with Debian", 0o755));
        tree.insert(
            "containers/services/x/config.json",
            Node::bytes("{\n}", 0o644),
        );
        tree
    }

    #[test]
    fn versions_module_sets_and_image_contents_are_normalised() {
        let text = listing(&tree(), &["/etc/motd".into()]).expect("listing");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                ".  dir  0755  0:0",
                "bin  dir  0755  0:0",
                "bin/tool  file  0755  0:0",
                "containers  dir  0755  0:0",
                "containers/services  dir  0755  0:0",
                "containers/services/x  dir  0755  0:0",
                "containers/services/x/config.json  file  0644  0:0  json",
                "    | {",
                "    | }",
                "etc  dir  0755  0:0",
                "etc/motd  file  0600  100:0  sha256:98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4",
                "etc/mtab  symlink  0755  0:0  -> /proc/mounts",
                "lib  dir  0755  0:0",
                "lib/modules  dir  0755  0:0",
                "lib/modules/VERSION  dir  0755  0:0",
                "lib/modules/VERSION/modules.dep  file  0644  0:0",
                "lib/modules/VERSION/**  dir  0755  0:0",
                "lib/modules/VERSION/**  file  0644  0:0",
            ]
        );
        let mut other = tree();
        other.insert(
            "lib/modules/6.1.0-10-amd64/kernel/c.ko",
            Node::bytes("c", 0o644),
        );
        other.remove("lib/modules/6.1.0-9-amd64");
        other.insert(
            "lib/modules/6.1.0-10-amd64/modules.dep",
            Node::bytes("x", 0o644),
        );
        other.insert("bin/tool", Node::bytes("a newer build", 0o755));
        assert_eq!(
            listing(&other, &["etc/motd".into()]).expect("listing"),
            text,
            "a new kernel version, module set or binary is the same layout"
        );
    }

    #[test]
    fn one_changed_mode_is_a_difference() {
        let text = listing(&tree(), &[]).expect("listing");
        assert!(differences(&text, &text).is_empty());
        let changed = text.replace("etc/mtab  symlink  0755", "etc/mtab  symlink  0777");
        assert_eq!(
            differences(&changed, &text),
            [
                "-etc/mtab  symlink  0777  0:0  -> /proc/mounts",
                "+etc/mtab  symlink  0755  0:0  -> /proc/mounts"
            ]
        );
        let json = text.replace("    | }", "    | ]");
        assert_eq!(
            differences(&text, &json),
            [
                "-    | }    (in containers/services/x/config.json)",
                "+    | ]    (in containers/services/x/config.json)"
            ]
        );
    }
}
