//! `/run/config` writing: the userdata tree, traversal attempts, stale files, modes, hostname.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use metadata::apply::apply;
use metadata::model::Metadata;
use support::read;

fn with_userdata(json: &str) -> Metadata {
    let mut m = Metadata::new("test");
    m.userdata = Some(json.as_bytes().to_vec());
    m
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn linuxkit_tree_with_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("config");
    let applied = apply(&with_userdata(r#"{"ssh":{"entries":{"sshd_config":{"perm":"0600","content":"Port 22"}}},"foo":{"entries":{"bar":{"content":"foobar"}}},"d":{"perm":"0700","entries":{}}}"#), &root).unwrap();
    assert_eq!(read(&root, "ssh/sshd_config"), "Port 22");
    assert_eq!(mode(&root.join("ssh/sshd_config")), 0o600);
    assert_eq!(mode(&root.join("foo/bar")), 0o644);
    assert_eq!(mode(&root.join("d")), 0o700);
    assert_eq!(read(&root, "provider"), "test");
    assert!(read(&root, "userdata").starts_with("{\"ssh\""));
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
}

#[test]
fn traversal_attempts_stay_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("run/config");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), root.join("filelink")).unwrap();
    let json = format!(
        r#"{{"../escape":{{"content":"x"}},"{abs}":{{"content":"x"}},"a/../../b":{{"content":"x"}},
        "link":{{"entries":{{"planted":{{"content":"x"}}}}}},"link/planted2":{{"content":"x"}},
        "filelink":{{"content":"replaced the link, not its target"}},"ok":{{"content":"fine"}}}}"#,
        abs = outside.join("abs").display()
    );
    let applied = apply(&with_userdata(&json), &root).unwrap();
    assert!(!tmp.path().join("run/escape").exists());
    assert!(!tmp.path().join("b").exists());
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through links or absolute keys"
    );
    assert_eq!(read(&root, "ok"), "fine");
    assert!(
        std::fs::symlink_metadata(root.join("filelink"))
            .unwrap()
            .is_file(),
        "a symlink is replaced, never followed"
    );
    assert!(applied.warnings.len() >= 4, "{:?}", applied.warnings);
}

#[test]
fn invalid_entries_are_skipped_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("config");
    let applied = apply(&with_userdata(r#"{"both":{"content":"","entries":{}},"neither":{},"perm":{"perm":"0999","content":"x"},
        "setuid":{"perm":"4755","content":"x"},"good":{"content":""}}"#), &root).unwrap();
    for bad in ["both", "neither", "perm", "setuid"] {
        assert!(!root.join(bad).exists(), "{bad} skipped");
        assert!(
            applied
                .warnings
                .iter()
                .any(|w| w.contains(&format!("{bad:?}"))),
            "{bad} reported: {:?}",
            applied.warnings
        );
    }
    assert_eq!(read(&root, "good"), "");
}

fn nested(levels: usize) -> String {
    let mut json = r#"{"content":"leaf"}"#.to_string();
    for _ in 0..levels {
        json = format!(r#"{{"entries":{{"d":{json}}}}}"#);
    }
    format!(r#"{{"top":{json}}}"#)
}

#[test]
fn deep_trees_are_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let applied = apply(&with_userdata(&nested(40)), &tmp.path().join("c")).unwrap();
    assert!(
        applied.warnings.iter().any(|w| w.contains("deeper")),
        "{:?}",
        applied.warnings
    );
    assert!(tmp.path().join("c/top/d/d").is_dir());
    // Past serde_json's nesting limit the userdata is not a tree at all: kept raw, nothing expanded.
    let applied = apply(&with_userdata(&nested(100)), &tmp.path().join("c")).unwrap();
    assert!(!tmp.path().join("c/top").exists());
    assert!(tmp.path().join("c/userdata").is_file());
    assert!(applied.warnings.is_empty());
}

#[test]
fn non_json_userdata_is_kept_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("config");
    for raw in ["#!/bin/sh\necho hi\n", r#"["a","b"]"#, "{not json"] {
        let applied = apply(&with_userdata(raw), &root).unwrap();
        assert_eq!(read(&root, "userdata"), raw);
        assert!(applied.warnings.is_empty());
    }
}

#[test]
fn stale_files_from_an_earlier_run_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("config");
    let mut first =
        with_userdata(r#"{"old":{"content":"x"},"hostname":{"content":"first-host\n"}}"#);
    first
        .files
        .insert("public_ipv4".into(), b"1.2.3.4".to_vec());
    first.ssh_keys = vec!["ssh-rsa OLD".into()];
    assert_eq!(
        apply(&first, &root).unwrap().hostname.as_deref(),
        Some("first-host")
    );
    std::fs::write(root.join("not-ours"), "kept").unwrap();
    let second = Metadata::new("second");
    let applied = apply(&second, &root).unwrap();
    assert_eq!(applied.hostname, None, "no stale hostname re-applied");
    for gone in [
        "old",
        "hostname",
        "public_ipv4",
        "userdata",
        "ssh/authorized_keys",
        "ssh",
    ] {
        assert!(!root.join(gone).exists(), "{gone} removed");
    }
    assert_eq!(read(&root, "not-ours"), "kept");
    assert_eq!(read(&root, "provider"), "second");
}

#[test]
fn existing_ssh_dir_is_fine_and_keys_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("config");
    std::fs::create_dir_all(root.join("ssh")).unwrap();
    std::fs::write(root.join("ssh/other"), "x").unwrap();
    let mut m = Metadata::new("p");
    m.ssh_keys = vec!["ssh-ed25519 K".into()];
    apply(&m, &root).unwrap();
    assert_eq!(read(&root, "ssh/authorized_keys"), "ssh-ed25519 K\n");
    assert_eq!(mode(&root.join("ssh/authorized_keys")), 0o600);
    apply(&Metadata::new("p"), &root).unwrap();
    assert!(
        root.join("ssh/other").exists(),
        "a directory that is not empty is kept"
    );
}

#[test]
fn hostname_is_validated_and_trimmed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("config");
    let mut m = Metadata::new("p");
    m.hostname = Some("  web-1.example.com\n".into());
    assert_eq!(
        apply(&m, &root).unwrap().hostname.as_deref(),
        Some("web-1.example.com")
    );
    assert_eq!(read(&root, "hostname"), "web-1.example.com");
    m.hostname = Some("evil;rm -rf /".into());
    let applied = apply(&m, &root).unwrap();
    assert_eq!(applied.hostname, None);
    assert!(!root.join("hostname").exists());
    assert!(applied.warnings.iter().any(|w| w.contains("not a valid")));
}
