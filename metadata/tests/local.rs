//! Local sources that need no device: QEMU fw_cfg (a sysfs tree), VMware guestinfo (through a
//! `vmware-rpctool` stand-in, since the backdoor exists only under VMware) and `file=`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use metadata::run::{Summary, run};
use support::read;

fn closed_plan(tmp: &Path, providers: &[&str]) -> metadata::run::Plan {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    support::plan(&format!("http://{closed}"), closed, providers, tmp)
}

#[tokio::test]
async fn qemu_fw_cfg_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let entry = tmp
        .path()
        .join("sys/firmware/qemu_fw_cfg/by_name/opt/org.linuxkit");
    std::fs::create_dir_all(entry.join("user-data")).unwrap();
    std::fs::create_dir_all(entry.join("hostname")).unwrap();
    std::fs::write(
        entry.join("user-data/raw"),
        r#"{"from":{"content":"fw_cfg"}}"#,
    )
    .unwrap();
    std::fs::write(entry.join("hostname/raw"), "fwcfg-host\n").unwrap();
    let summary = run(&closed_plan(tmp.path(), &["aws", "fwcfg"])).await;
    assert!(
        matches!(&summary, Summary::Applied { name: "fwcfg", .. }),
        "{}",
        summary.line()
    );
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "from"), "fw_cfg");
    assert_eq!(read(&root, "hostname"), "fwcfg-host");
}

#[tokio::test]
async fn vmware_guestinfo_through_rpctool() {
    let tmp = tempfile::tempdir().unwrap();
    let tool = tmp.path().join("vmware-rpctool");
    std::fs::write(
        &tool,
        "#!/bin/sh\ncase \"$1\" in\n\
         'info-get guestinfo.userdata') echo dm13YXJlIHVzZXJkYXRh ;;\n\
         'info-get guestinfo.userdata.encoding') echo base64 ;;\n\
         'info-get guestinfo.metadata') echo 'local-hostname: vm1' ;;\n\
         *) echo 'No value found' >&2; exit 1 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut plan = closed_plan(tmp.path(), &["vmware"]);
    plan.env.rpctool = tool;
    let summary = run(&plan).await;
    assert!(
        matches!(&summary, Summary::Applied { name: "vmware", .. }),
        "{}",
        summary.line()
    );
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "userdata"), "vmware userdata");
    assert_eq!(read(&root, "metadata"), "local-hostname: vm1");
    assert_eq!(read(&root, "provider"), "VMware");
}

/// A tool that never answers is killed at the deadline and named.
#[tokio::test]
async fn vmware_rpctool_that_hangs_is_abandoned_at_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let tool = tmp.path().join("vmware-rpctool");
    std::fs::write(
        &tool,
        "#!/bin/sh
exec sleep 3600
",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut plan = closed_plan(tmp.path(), &["vmware"]);
    plan.env.rpctool = tool;
    plan.deadline = std::time::Duration::from_millis(500);
    let summary = run(&plan).await;
    assert!(
        matches!(summary, Summary::NoneFound { .. }),
        "{}",
        summary.line()
    );
    assert!(
        summary
            .line()
            .contains("did not answer before the deadline")
            || summary
                .line()
                .contains("vmware: no answer before the deadline"),
        "{}",
        summary.line()
    );
}

#[tokio::test]
async fn vmware_without_its_tool_is_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let mut plan = closed_plan(tmp.path(), &["vmware"]);
    plan.env.rpctool = tmp.path().join("missing");
    let summary = run(&plan).await;
    assert!(
        summary.line().contains("vmware: not present"),
        "{}",
        summary.line()
    );
}

#[tokio::test]
async fn file_provider_reads_userdata() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("userdata.json");
    std::fs::write(&file, r#"{"f":{"content":"from file"}}"#).unwrap();
    let token = format!("file={}", file.display());
    let summary = run(&closed_plan(tmp.path(), &["cdrom", &token])).await;
    assert!(
        matches!(&summary, Summary::Applied { name: "file", .. }),
        "{}",
        summary.line()
    );
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "provider"), file.display().to_string());
    assert_eq!(read(&root, "f"), "from file");
}

/// `--link`: the pre-2018 `/var/config` resolves to the one copy under the config root, on every run.
#[tokio::test]
async fn var_config_link_points_at_the_single_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("userdata.json");
    std::fs::write(
        &file,
        r#"{"docker":{"entries":{"daemon.json":{"content":"{}"}}}}"#,
    )
    .unwrap();
    let var_config = tmp.path().join("var/config");
    std::fs::create_dir_all(&var_config).unwrap();
    let mut plan = closed_plan(tmp.path(), &[&format!("file={}", file.display())]);
    plan.links = vec![var_config.clone()];
    for _ in 0..2 {
        let summary = run(&plan).await;
        assert!(
            matches!(&summary, Summary::Applied { warnings, .. } if warnings.is_empty()),
            "{summary:?}"
        );
        assert_eq!(std::fs::read_link(&var_config).unwrap(), plan.config_root);
        assert_eq!(read(&var_config, "docker/daemon.json"), "{}");
    }
}
