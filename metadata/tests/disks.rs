//! Disk sources with real images built here (genisoimage, xorriso, mkfs.vfat) on loop devices.
//! Each test gets its own sysfs/dev roots holding only its loop device, so host disks are never
//! looked at.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use metadata::run::{Summary, run};
use support::{read, require_root, require_tool, run as sh};
use tempfile::TempDir;

/// A read-only loop device, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(image: &Path) -> Loop {
        require_tool("losetup");
        Loop(
            sh(Command::new("losetup")
                .args(["--find", "--show", "--read-only"])
                .arg(image))
            .trim()
            .to_string(),
        )
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).output();
    }
}

/// sysfs/dev roots under `tmp` in which `name` is the loop device.
fn expose(tmp: &Path, name: &str, dev: &Loop) {
    std::fs::create_dir_all(tmp.join("sys/class/block").join(name)).unwrap();
    std::fs::create_dir_all(tmp.join("dev")).unwrap();
    std::os::unix::fs::symlink(&dev.0, tmp.join("dev").join(name)).unwrap();
}

fn files(dir: &Path, entries: &[(&str, &str)]) {
    for (name, content) in entries {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

fn iso(tool: &str, tmp: &Path, label: &str, entries: &[(&str, &str)]) -> PathBuf {
    iso_with(tool, tmp, label, &["-r", "-J"], entries)
}

fn iso_with(
    tool: &str,
    tmp: &Path,
    label: &str,
    names: &[&str],
    entries: &[(&str, &str)],
) -> PathBuf {
    require_root("attaching loop devices");
    require_tool(tool);
    let src = tmp.join(format!("src-{label}"));
    files(&src, entries);
    let out = tmp.join(format!("{label}.iso"));
    let mut cmd = Command::new(tool);
    if tool == "xorriso" {
        cmd.args(["-as", "mkisofs"]);
    }
    sh(cmd
        .args(["-quiet", "-o"])
        .arg(&out)
        .args(["-V", label])
        .args(names)
        .arg(&src));
    out
}

fn fat(tmp: &Path, label: &str, entries: &[(&str, &str)]) -> PathBuf {
    require_root("attaching loop devices");
    require_tool("mkfs.vfat");
    require_tool("mcopy");
    let img = tmp.join("fat.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 * 1024 * 1024)
        .unwrap();
    sh(Command::new("mkfs.vfat").args(["-n", label]).arg(&img));
    let src = tmp.join("fat-src");
    files(&src, entries);
    for (name, _) in entries {
        sh(Command::new("mcopy")
            .arg("-i")
            .arg(&img)
            .arg(src.join(name))
            .arg(format!("::{name}")));
    }
    img
}

async fn run_disk(tmp: &TempDir, providers: &[&str]) -> Summary {
    // No network provider present: every endpoint is a closed loopback port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut plan = support::plan(&format!("http://{closed}"), closed, providers, tmp.path());
    if providers.is_empty() {
        plan.providers = metadata::providers::DEFAULT_ORDER
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    plan.deadline = Duration::from_secs(2);
    run(&plan).await
}

#[tokio::test]
async fn nocloud_iso9660_by_label() {
    let tmp = tempfile::tempdir().unwrap();
    let img = iso(
        "genisoimage",
        tmp.path(),
        "cidata",
        &[
            ("user-data", r#"{"greeting":{"content":"hi"}}"#),
            ("meta-data", "instance-id: iid-1\nlocal-hostname: cd-host\n"),
        ],
    );
    let dev = Loop::attach(&img);
    expose(tmp.path(), "vdb", &dev);
    let summary = run_disk(&tmp, &[]).await;
    assert!(
        matches!(&summary, Summary::Applied { name: "cdrom", .. }),
        "{}",
        summary.line()
    );
    let root = tmp.path().join("config");
    assert_eq!(
        read(&root, "provider"),
        format!("CDROM {}", tmp.path().join("dev/vdb").display())
    );
    assert_eq!(read(&root, "greeting"), "hi");
    assert_eq!(read(&root, "hostname"), "cd-host");
    assert_eq!(read(&root, "instance_id"), "iid-1");
}

#[tokio::test]
async fn nocloud_fat_by_label() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fat(
        tmp.path(),
        "CIDATA",
        &[("user-data", "#cloud-config\nfat: true\n")],
    );
    let dev = Loop::attach(&img);
    expose(tmp.path(), "vdc", &dev);
    let summary = run_disk(&tmp, &["cdrom"]).await;
    assert!(
        matches!(&summary, Summary::Applied { name: "cdrom", .. }),
        "{}",
        summary.line()
    );
    assert_eq!(
        read(&tmp.path().join("config"), "userdata"),
        "#cloud-config\nfat: true\n"
    );
}

#[tokio::test]
async fn linuxkit_config_iso_through_sr_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let img = iso(
        "xorriso",
        tmp.path(),
        "config",
        &[("config", "linuxkit run --data")],
    );
    let dev = Loop::attach(&img);
    expose(tmp.path(), "sr0", &dev);
    let summary = run_disk(&tmp, &["cdrom"]).await;
    assert!(
        matches!(&summary, Summary::Applied { .. }),
        "{}",
        summary.line()
    );
    assert_eq!(
        read(&tmp.path().join("config"), "userdata"),
        "linuxkit run --data"
    );
}

#[tokio::test]
async fn configdrive_config_2() {
    let tmp = tempfile::tempdir().unwrap();
    let img = iso(
        "xorriso",
        tmp.path(),
        "config-2",
        &[
            (
                "openstack/latest/meta_data.json",
                r#"{"uuid":"u-1","hostname":"os-host","public_keys":{"k":"ssh-rsa OS"}}"#,
            ),
            ("openstack/latest/user_data", "os userdata"),
        ],
    );
    let dev = Loop::attach(&img);
    expose(tmp.path(), "vdd", &dev);
    let summary = run_disk(&tmp, &[]).await;
    assert!(
        matches!(
            &summary,
            Summary::Applied {
                name: "configdrive",
                ..
            }
        ),
        "{}",
        summary.line()
    );
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "hostname"), "os-host");
    assert_eq!(read(&root, "instance_id"), "u-1");
    assert_eq!(read(&root, "ssh/authorized_keys"), "ssh-rsa OS\n");
    assert_eq!(read(&root, "userdata"), "os userdata");
}

#[tokio::test]
async fn unlabelled_disks_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let img = iso(
        "genisoimage",
        tmp.path(),
        "random",
        &[("user-data", "nope")],
    );
    let dev = Loop::attach(&img);
    expose(tmp.path(), "vde", &dev);
    let summary = run_disk(&tmp, &["cdrom", "configdrive"]).await;
    assert!(
        matches!(&summary, Summary::NoneFound { .. }),
        "{}",
        summary.line()
    );
}

#[tokio::test]
async fn dmi_cloud_is_waited_for_before_a_local_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let img = iso(
        "genisoimage",
        tmp.path(),
        "cidata",
        &[("user-data", "disk")],
    );
    let dev = Loop::attach(&img);
    expose(tmp.path(), "vdb", &dev);
    std::fs::create_dir_all(tmp.path().join("sys/class/dmi/id")).unwrap();
    std::fs::write(tmp.path().join("sys/class/dmi/id/sys_vendor"), "Amazon EC2").unwrap();
    let summary = run_disk(&tmp, &["aws", "cdrom"]).await;
    let Summary::Applied { name, .. } = &summary else {
        panic!("{}", summary.line())
    };
    assert_eq!(
        *name, "cdrom",
        "aws (named by DMI) was given until the deadline, then the disk won"
    );
}

#[tokio::test]
async fn joliet_names_without_rock_ridge() {
    let tmp = tempfile::tempdir().unwrap();
    let img = iso_with(
        "genisoimage",
        tmp.path(),
        "cidata",
        &["-J"],
        &[("user-data", "joliet only")],
    );
    let dev = Loop::attach(&img);
    expose(tmp.path(), "vdf", &dev);
    let summary = run_disk(&tmp, &["cdrom"]).await;
    assert!(
        matches!(&summary, Summary::Applied { .. }),
        "{}",
        summary.line()
    );
    assert_eq!(read(&tmp.path().join("config"), "userdata"), "joliet only");
}

#[tokio::test]
async fn looping_fat_root_is_an_error_naming_the_device() {
    let tmp = tempfile::tempdir().unwrap();
    require_root("attaching loop devices");
    let img = tmp.path().join("loop.img");
    support::fat_loop::make_looping_fat(&img, "CIDATA");
    let dev = Loop::attach(&img);
    expose(tmp.path(), "vdd", &dev);
    let mut plan = support::plan(
        "http://127.0.0.1:9",
        ([127, 0, 0, 1], 9).into(),
        &["cdrom"],
        tmp.path(),
    );
    // Far more than the bounded read needs, so only the read budget can end it.
    plan.deadline = Duration::from_secs(600);
    let summary = run(&plan).await;
    let line = summary.line();
    assert!(matches!(summary, Summary::NoneFound { .. }), "{line}");
    assert!(line.contains("dev/vdd"), "{line}");
    assert!(
        line.contains("cluster chain through cluster 2 loops"),
        "{line}"
    );
}

/// A device whose open never returns: a FIFO with no writer stands in for a hung block device.
#[tokio::test]
async fn hung_device_is_abandoned_at_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("sys/class/block/sr0")).unwrap();
    std::fs::create_dir_all(tmp.path().join("dev")).unwrap();
    nix::unistd::mkfifo(&tmp.path().join("dev/sr0"), nix::sys::stat::Mode::S_IRUSR).unwrap();
    let mut plan = support::plan(
        "http://127.0.0.1:9",
        ([127, 0, 0, 1], 9).into(),
        &["cdrom", "configdrive"],
        tmp.path(),
    );
    plan.deadline = Duration::from_millis(500);
    let summary = run(&plan).await;
    let line = summary.line();
    assert!(matches!(summary, Summary::NoneFound { .. }), "{line}");
    assert!(
        line.contains(&format!(
            "still reading {}",
            tmp.path().join("dev/sr0").display()
        )),
        "{line}"
    );
}
