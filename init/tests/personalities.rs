//! The binary's other names: `modprobe` and `usermode-helper` (through symlinks, as in the image), and
//! the usage text when run as an ordinary process.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

fn linked(dir: &Path, name: &str) -> std::path::PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_init"), &link)
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    link
}

fn run(command: &mut Command) -> (Output, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn modprobe_resolves_names_and_aliases_in_a_module_tree() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let tree = dir.path().join("modules").join(&release);
    std::fs::create_dir_all(&tree).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        tree.join("modules.dep"),
        "kernel/fs/overlayfs/overlay.ko: kernel/lib/dep.ko\nkernel/lib/dep.ko:\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tree.join("modules.alias"), "alias fs-overlay overlay\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let modprobe = linked(dir.path(), "modprobe");
    let (out, text) = run(Command::new(&modprobe)
        .args(["-n", "--", "fs-overlay"])
        .env("GUESTKIT_LIB_MODULES", dir.path().join("modules")));
    assert!(out.status.success(), "{text}");
    let dep = text.find("kernel/lib/dep.ko").unwrap_or(usize::MAX);
    let overlay = text.find("kernel/fs/overlayfs/overlay.ko").unwrap_or(0);
    assert!(dep < overlay, "dependency first:\n{text}");
    let (out, text) = run(Command::new(&modprobe)
        .args(["-n", "nonexistent"])
        .env("GUESTKIT_LIB_MODULES", dir.path().join("modules")));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("module nonexistent not found"), "{text}");
    let (out, _) = run(Command::new(&modprobe)
        .args(["-q", "-n", "nonexistent"])
        .env("GUESTKIT_LIB_MODULES", dir.path().join("modules")));
    assert_eq!(out.status.code(), Some(1));
    let (out, text) = run(Command::new(&modprobe).args(["-r", "overlay"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("unsupported option \"-r\""), "{text}");
}

#[test]
fn usermode_helper_refuses_helpers_outside_the_whitelist() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let helper = linked(dir.path(), "usermode-helper");
    let (out, text) = run(Command::new(&helper)
        .arg0("/usr/share/apport/apport")
        .arg("-p1"));
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("usermodehelper: /usr/share/apport/apport -p1"),
        "{text}"
    );
}

#[test]
fn usermode_helper_execs_whitelisted_helpers() {
    // /sbin/modprobe is whitelisted; `--version` keeps it harmless. Without one on the host the exec
    // fails, which is exit status 1 with "exec failed".
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let helper = linked(dir.path(), "usermode-helper");
    let (out, text) = run(Command::new(&helper)
        .arg0("/sbin/modprobe")
        .arg("--version"));
    assert!(
        text.contains("usermodehelper: /sbin/modprobe --version"),
        "{text}"
    );
    if Path::new("/sbin/modprobe").exists() {
        assert!(
            !text.contains("exec failed") && out.status.success(),
            "{text}"
        );
    } else {
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("exec failed"), "{text}");
    }
}

#[test]
fn plain_process_prints_usage() {
    let (out, text) = run(&mut Command::new(env!("CARGO_BIN_EXE_init")));
    assert_eq!(out.status.code(), Some(2));
    assert!(text.contains("timeline-svg"), "{text}");
}
