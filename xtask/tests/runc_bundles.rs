//! End to end with real parts: the assembled cpio is unpacked with the system `cpio`, the `runtime.json`
//! rootfs mounts are carried out (tmpfs, overlay, bind), and real `runc` runs the read-only, the writable
//! and the de-duplicated bundles. Needs root, `cpio`, `runc`, overlayfs and a static busybox.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use xtask::assemble::assemble;
use xtask::blueprint::Blueprint;
use xtask::store::ImageStore;

const BLUEPRINT: &str = r#"
onboot:
  - name: ro
    image: guestkit/busybox
    readonly: true
    command: ["/bin/sh", "-c", "echo ro-ok; touch /probe 2>/dev/null && echo writable || echo readonly"]
  - name: rw
    image: guestkit/busybox
    command: ["/bin/sh", "-c", "echo written > /probe && cat /probe && cat /etc/resolv.conf"]
services:
  - name: svc
    image: guestkit/busybox
    readonly: true
    command: ["/bin/sh", "-c", "id -u; ls /probe 2>&1 || echo no-probe"]
    uid: rw
"#;

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("this test needs {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn store(dir: &Path) -> ImageStore {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "this test needs a static busybox at /bin/busybox (apt-get install busybox-static)"
    );
    let rootfs = dir.join("store/guestkit/busybox/latest/rootfs/bin");
    fs::create_dir_all(&rootfs).expect("mkdir");
    fs::copy(busybox, rootfs.join("busybox")).expect("copy");
    for applet in ["sh", "cat", "touch", "id", "ls"] {
        std::os::unix::fs::symlink("busybox", rootfs.join(applet)).expect("symlink");
    }
    ImageStore::new(dir.join("store"))
}

/// Mounts done for the test, undone (in reverse) on drop.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for target in self.0.iter().rev() {
            let _ = Command::new("umount").arg(target).status();
        }
    }
}

/// Carries out the rootfs mounts of a runtime.json below `root` (where the cpio was unpacked).
fn prepare(root: &Path, runtime: &Value, mounts: &mut Mounts) {
    let under = |p: &str| root.join(p.trim_start_matches('/'));
    for m in runtime["mounts"].as_array().expect("mounts") {
        let dest = under(m["destination"].as_str().expect("destination"));
        let options: Vec<String> = m["options"]
            .as_array()
            .map(|o| {
                o.iter()
                    .filter_map(|v| v.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut cmd = Command::new("mount");
        match m["type"].as_str() {
            Some("tmpfs") => cmd.args(["-t", "tmpfs", "tmpfs"]),
            Some("overlay") => {
                let opts: Vec<String> = options
                    .iter()
                    .map(|o| match o.split_once('=') {
                        Some((k, v)) => {
                            let path = under(v);
                            if k != "lowerdir" {
                                fs::create_dir_all(&path).expect("mkdir upper/work");
                            }
                            format!("{k}={}", path.display())
                        }
                        None => o.clone(),
                    })
                    .collect();
                cmd.args(["-t", "overlay", "overlay", "-o", &opts.join(",")])
            }
            None if options.contains(&"bind".to_string()) => cmd
                .arg("--bind")
                .arg(under(m["source"].as_str().expect("source"))),
            None => continue, // the remount,private step
            Some(other) => panic!("unexpected mount type {other}"),
        };
        fs::create_dir_all(&dest).expect("mount point");
        run(cmd.arg(&dest), "mount");
        mounts.0.push(dest);
    }
}

fn runc(root: &Path, state: &Path, bundle: &str, id: &str) -> String {
    let out = run(
        Command::new("runc")
            .arg("--root")
            .arg(state)
            .args(["run", "--bundle"])
            .arg(root.join(bundle))
            .arg(id),
        "runc (apt-get install runc) and root",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn runc_runs_the_assembled_bundles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let bp: Blueprint = BLUEPRINT.parse().expect("blueprint");
    let assembly = assemble(&bp, dir.path(), &store).expect("assemble");
    let initrd = dir.path().join("initrd.cpio");
    assembly
        .tree
        .write_cpio(fs::File::create(&initrd).expect("create"))
        .expect("write cpio");
    let root = dir.path().join("root");
    fs::create_dir_all(&root).expect("mkdir");
    run(
        Command::new("cpio")
            .args(["-idm", "--quiet", "-D"])
            .arg(&root)
            .stdin(fs::File::open(&initrd).expect("open")),
        "cpio (apt-get install cpio)",
    );
    let state = dir.path().join("runc-state");
    let id = |name: &str| format!("guestkit-asm-{name}-{}", std::process::id());
    let mut mounts = Mounts(Vec::new());
    let runtime = |bundle: &str| -> Value {
        serde_json::from_slice(
            &fs::read(root.join(bundle).join("runtime.json")).expect("runtime.json"),
        )
        .expect("json")
    };

    prepare(&root, &runtime("containers/onboot/000-ro"), &mut mounts);
    let out = runc(&root, &state, "containers/onboot/000-ro", &id("ro"));
    assert_eq!(out, "ro-ok\nreadonly\n");

    prepare(&root, &runtime("containers/onboot/001-rw"), &mut mounts);
    let out = runc(&root, &state, "containers/onboot/001-rw", &id("rw"));
    assert_eq!(out, "written\n\n# no resolv.conf configured\n");
    assert!(
        !root.join("containers/onboot/000-ro/rootfs/probe").exists(),
        "writes go to the overlay's upper layer"
    );

    prepare(&root, &runtime("containers/services/svc"), &mut mounts);
    let out = runc(&root, &state, "containers/services/svc", &id("svc"));
    assert!(
        out.starts_with("101\n"),
        "uid by container name (rw is the second container): {out}"
    );
    assert!(
        out.contains("no-probe") || out.contains("No such file"),
        "{out}"
    );
}
