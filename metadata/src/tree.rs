//! The LinuxKit userdata tree: a JSON object `{"name": {"perm": "0644", "content": "..."}}` or
//! `{"dir": {"entries": {...}}}` turned into a plan of files and directories under `/run/config`.
//!
//! Pure: [`plan`] only reads bytes. Entries that are invalid (both or neither of `content` and
//! `entries`, a bad `perm`, a key that would leave the root, too deep, too many) are skipped with a
//! reason, as LinuxKit skips them; valid siblings are still written.

use serde_json::{Map, Value};

use crate::confined::RelPath;

/// Default file mode (LinuxKit).
pub const FILE_MODE: u32 = 0o644;
/// Default directory mode (LinuxKit).
pub const DIR_MODE: u32 = 0o755;
/// Deepest directory nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most entries accepted in one tree.
pub const MAX_ENTRIES: usize = 10_000;

/// One step of the plan, in the order it must be carried out (parents first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Create a directory.
    Dir { path: RelPath, mode: u32 },
    /// Write a file.
    File {
        path: RelPath,
        mode: u32,
        content: String,
    },
}

/// An entry that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The key path as written in the userdata (`a/b`).
    pub path: String,
    /// What was wrong.
    pub reason: String,
}

/// What to write, and what was skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Directories and files, parents before children, keys in sorted order.
    pub nodes: Vec<Node>,
    /// Invalid entries.
    pub skipped: Vec<Skipped>,
}

/// Why userdata is not a tree at all (not an error: raw userdata is still written).
#[derive(Debug, thiserror::Error)]
#[error("userdata is not a JSON object")]
pub struct NotATree(#[source] pub Option<serde_json::Error>);

/// Parses userdata into a plan.
pub fn plan(userdata: &[u8]) -> Result<Plan, NotATree> {
    let value: Value = serde_json::from_slice(userdata).map_err(|e| NotATree(Some(e)))?;
    let Value::Object(top) = value else {
        return Err(NotATree(None));
    };
    let mut out = Plan::default();
    walk(&top, None, 1, &mut out);
    Ok(out)
}

/// Parses LinuxKit's octal `perm` text (`"0600"`, `"644"`). Set-id bits are refused.
pub fn parse_perm(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o1777)
}

/// Names metadata keeps for itself at the top of the tree: its manifest, and the files it writes
/// there (which a directory of the same name would make impossible to write in every later run).
pub const MANIFEST: &str = ".written";
/// Top-level files metadata writes itself; userdata may write them as files (LinuxKit's `hostname`
/// entry), never make them directories.
pub const OWN_FILES: [&str; 3] = ["provider", "userdata", "hostname"];

/// Why `key` (at `depth`, 1 = top level) may not be used, if it is reserved.
fn reserved(key: &str, depth: usize, is_dir: bool) -> Option<String> {
    if key.starts_with(crate::confined::TEMP_PREFIX) {
        return Some("is reserved for metadata's temporary files".into());
    }
    if depth == 1 && key == MANIFEST {
        return Some("is reserved for metadata's manifest".into());
    }
    if depth == 1 && is_dir && OWN_FILES.contains(&key) {
        return Some("is a file metadata writes itself and cannot be a directory".into());
    }
    None
}

fn walk(entries: &Map<String, Value>, parent: Option<&RelPath>, depth: usize, out: &mut Plan) {
    for (key, value) in entries {
        let shown = match parent {
            Some(p) => format!("{p}/{key}"),
            None => key.clone(),
        };
        if out.nodes.len() >= MAX_ENTRIES {
            skip(out, &shown, format!("more than {MAX_ENTRIES} entries"));
            return;
        }
        let is_dir = value.get("entries").is_some();
        if let Some(reason) = reserved(key, depth, is_dir) {
            skip(out, &shown, reason);
            continue;
        }
        let path = match parent.map_or_else(|| RelPath::parse(key), |p| p.join(key)) {
            Ok(path) => path,
            Err(e) => {
                skip(out, &shown, e.to_string());
                continue;
            }
        };
        if let Err(reason) = entry(value, path, depth, out) {
            skip(out, &shown, reason);
        }
    }
}

fn entry(value: &Value, path: RelPath, depth: usize, out: &mut Plan) -> Result<(), String> {
    let Value::Object(fields) = value else {
        return Err("entry is not a JSON object".into());
    };
    let perm = match fields.get("perm") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_perm(s).ok_or_else(|| format!("invalid perm {s:?}"))?),
        Some(other) => return Err(format!("invalid perm {other}: must be an octal string")),
    };
    match (fields.get("content"), fields.get("entries")) {
        (Some(Value::String(content)), None) => {
            let mode = perm.unwrap_or(FILE_MODE);
            out.nodes.push(Node::File {
                path,
                mode,
                content: content.clone(),
            });
            Ok(())
        }
        (None, Some(Value::Object(children))) => {
            if depth >= MAX_DEPTH {
                return Err(format!("deeper than {MAX_DEPTH} levels"));
            }
            out.nodes.push(Node::Dir {
                path: path.clone(),
                mode: perm.unwrap_or(DIR_MODE),
            });
            walk(children, Some(&path), depth + 1, out);
            Ok(())
        }
        (Some(_), Some(_)) => Err("is invalid: has both content and entries".into()),
        (None, None) => Err("is invalid: has neither content nor entries".into()),
        (Some(_), None) => Err("is invalid: content must be a string".into()),
        (None, Some(_)) => Err("is invalid: entries must be an object".into()),
    }
}

fn skip(out: &mut Plan, path: &str, reason: String) {
    out.skipped.push(Skipped {
        path: path.to_string(),
        reason,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn linuxkit_example_gives_files_and_dirs() {
        let p = plan(br#"{"ssh":{"entries":{"sshd_config":{"perm":"0600","content":"x"}}},"foo":{"entries":{"bar":{"content":"foobar"}}}}"#).unwrap();
        assert_eq!(
            p.nodes,
            vec![
                Node::Dir {
                    path: rel("foo"),
                    mode: 0o755
                },
                Node::File {
                    path: rel("foo/bar"),
                    mode: 0o644,
                    content: "foobar".into()
                },
                Node::Dir {
                    path: rel("ssh"),
                    mode: 0o755
                },
                Node::File {
                    path: rel("ssh/sshd_config"),
                    mode: 0o600,
                    content: "x".into()
                },
            ]
        );
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn invalid_entries_are_skipped_with_reasons() {
        let p = plan(br#"{"../escape":{"content":"x"},"/abs":{"content":"x"},"both":{"content":"","entries":{}},
            "neither":{"perm":"0644"},"badperm":{"perm":"9","content":"x"},"suid":{"perm":"4755","content":"x"},
            "numperm":{"perm":644,"content":"x"},"ok":{"content":""},"d":{"entries":{"..":{"content":"x"}}}}"#).unwrap();
        let skipped: Vec<&str> = p.skipped.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            skipped,
            [
                "../escape",
                "/abs",
                "badperm",
                "both",
                "d/..",
                "neither",
                "numperm",
                "suid"
            ]
        );
        assert_eq!(
            p.nodes,
            vec![
                Node::Dir {
                    path: rel("d"),
                    mode: 0o755
                },
                Node::File {
                    path: rel("ok"),
                    mode: 0o644,
                    content: String::new()
                }
            ]
        );
    }

    #[test]
    fn metadata_own_names_are_refused() {
        let p = plan(
            br#"{".written":{"entries":{}},"hostname":{"entries":{}},"provider":{"entries":{}},
                 "userdata":{"entries":{}},".metadata-tmp.1":{"content":""},
                 "d":{"entries":{".written":{"content":"fine below the top"}}},
                 "ok":{"content":""}}"#,
        )
        .unwrap();
        let mut skipped: Vec<&str> = p.skipped.iter().map(|s| s.path.as_str()).collect();
        skipped.sort();
        assert_eq!(
            skipped,
            [
                ".metadata-tmp.1",
                ".written",
                "hostname",
                "provider",
                "userdata"
            ]
        );
        let files: Vec<String> = p
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::File { path, .. } => Some(path.to_string()),
                Node::Dir { .. } => None,
            })
            .collect();
        assert_eq!(files, ["d/.written", "ok"]);
        let p = plan(br#"{"hostname":{"content":"h"}}"#).unwrap();
        assert!(p.skipped.is_empty(), "a hostname file is LinuxKit's way");
    }

    #[test]
    fn non_objects_are_not_trees() {
        assert!(plan(b"#cloud-config\n").is_err());
        assert!(plan(br#"["a","b"]"#).is_err());
        assert!(plan(b"42").is_err());
    }

    #[test]
    fn deep_trees_stop_at_the_limit() {
        let mut json = r#"{"content":"leaf"}"#.to_string();
        for _ in 0..(MAX_DEPTH + 5) {
            json = format!(r#"{{"entries":{{"d":{json}}}}}"#);
        }
        let p = plan(format!(r#"{{"top":{json}}}"#).as_bytes()).unwrap();
        assert_eq!(p.nodes.len(), MAX_DEPTH - 1);
        assert_eq!(p.skipped.len(), 1);
        assert!(p.skipped[0].reason.contains("deeper"));
    }

    #[test]
    fn perms_parse_as_octal() {
        assert_eq!(parse_perm("0600"), Some(0o600));
        assert_eq!(parse_perm("777"), Some(0o777));
        assert_eq!(parse_perm("0o640"), Some(0o640));
        assert_eq!(parse_perm("rw"), None);
        assert_eq!(parse_perm("8"), None);
        assert_eq!(parse_perm(""), None);
    }
}
