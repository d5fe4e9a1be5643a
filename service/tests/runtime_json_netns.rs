//! runtime.json through containerd, inside a network and mount namespace the test creates: overlay and
//! tmpfs mounts, mkdir, interfaces (veth with peer, `add` of a bridge in the container and of an ifb in the root (this kernel has no dummy
//! module; bridges cannot change namespace),
//! moving an existing link), bindNS joined by a second service, mounts undone by stop, and a bad interface.

mod harness;

use std::process::Command;
use std::time::Duration;

use harness::{BundleSpec, TestContainerd, isolate_thread, wait_until, write_bundle};
use service::containerd::Containerd;
use service::layout::Layout;
use service::runtime::Runtime;
use service::services::{ServiceError, Services};

fn ip_link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/thread-self/mountinfo").expect("mountinfo")
}

#[test]
fn interfaces_bind_ns_mounts_and_mkdir() {
    isolate_thread();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::under(tmp.path());
    let ctd = TestContainerd::start(tmp.path());
    let status = Command::new("ip")
        .args(["link", "add", "mv0", "type", "ifb"])
        .status()
        .expect("ip link add");
    assert!(status.success(), "creating mv0 with ip (iproute2)");

    let script = "ip link show; mount; ls -d /var/made && echo made-ok; exec sleep 1000";
    let a = write_bundle(
        &layout.services_dir,
        "net-a",
        &BundleSpec {
            script,
            new_netns: true,
            writable: true,
            ..Default::default()
        },
    );
    let netns_path = tmp.path().join("netns/net-a");
    let abs_dir = tmp.path().join("abs-made");
    let b = a.display();
    let runtime_json = format!(
        r#"{{"mounts": [
            {{"source": "tmpfs", "type": "tmpfs", "destination": "{b}/tmp"}},
            {{"destination": "{b}/tmp", "options": ["remount", "private"]}},
            {{"source": "overlay", "type": "overlay", "destination": "{b}/rootfs",
              "options": ["lowerdir={b}/lower", "upperdir={b}/tmp/upper", "workdir={b}/tmp/work"]}},
            {{"source": "tmpfs", "type": "tmpfs", "destination": "data", "options": ["size=1m", "mode=700", "nosuid"]}}
          ],
          "mkdir": ["var/made", "{abs}"],
          "interfaces": [
            {{"name": "ve0", "peer": "ve0-peer"}},
            {{"name": "br0", "add": "bridge"}},
            {{"name": "if1", "add": "ifb", "createInRoot": true}},
            {{"name": "mv0"}}
          ],
          "bindNS": {{"net": "{ns}", "uts": ""}}}}"#,
        abs = abs_dir.display(),
        ns = netns_path.display()
    );
    std::fs::write(a.join("runtime.json"), runtime_json).expect("runtime.json");
    let ns_path = netns_path.to_string_lossy().into_owned();
    let joiner_script = "ip link show; exec sleep 1000";
    write_bundle(
        &layout.services_dir,
        "net-b",
        &BundleSpec {
            script: joiner_script,
            join_netns: Some(&ns_path),
            ..Default::default()
        },
    );
    let bad = write_bundle(
        &layout.services_dir,
        "net-bad",
        &BundleSpec {
            script: "sleep 1000",
            new_netns: true,
            ..Default::default()
        },
    );
    std::fs::write(
        bad.join("runtime.json"),
        r#"{"interfaces": [{"name": "zz0", "add": "nosuchkind"}]}"#,
    )
    .expect("runtime.json");

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
        .block_on(async {
            let client = Containerd::connect(&ctd.socket).await.expect("connect");
            let services = Services {
                runtime: &client,
                layout: &layout,
                services_dir: layout.services_dir.clone(),
                namespace: "services.linuxkit".into(),
                dump_spec: None,
                grace: Some(Duration::from_millis(200)),
                lock_timeout: service::state::DEFAULT_LOCK_TIMEOUT,
            };
            services
                .start("net-a")
                .await
                .unwrap_or_else(|e| panic!("{}\n{}", service::describe(&e), ctd.log()));
            services
                .start("net-b")
                .await
                .unwrap_or_else(|e| panic!("{}\n{}", service::describe(&e), ctd.log()));

            let log_a = layout.var_log_dir.join("net-a.out.log");
            let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
            assert!(
                wait_until(Duration::from_secs(10), || read(&log_a).contains("made-ok")),
                "{}",
                read(&log_a)
            );
            let out_a = read(&log_a);
            for link in ["ve0", "br0", "if1", "mv0"] {
                assert!(
                    out_a.contains(&format!(": {link}")),
                    "{link} inside net-a: {out_a}"
                );
            }
            assert!(out_a.contains("overlay on / type overlay"), "{out_a}");
            assert!(out_a.contains("tmpfs on /data type tmpfs"), "{out_a}");
            assert!(abs_dir.is_dir());
            assert!(
                ip_link_exists("ve0-peer"),
                "the veth peer stays in the root namespace"
            );
            for moved in ["ve0", "mv0", "if1"] {
                assert!(!ip_link_exists(moved), "{moved} left the root namespace");
            }
            assert!(
                mountinfo().contains(&format!(" {} ", netns_path.display())),
                "bindNS net is a mount"
            );

            let log_b = layout.var_log_dir.join("net-b.out.log");
            assert!(
                wait_until(Duration::from_secs(10), || read(&log_b).contains(": ve0")),
                "net-b joined net-a's namespace: {}",
                read(&log_b)
            );

            match services.start("net-bad").await {
                Err(err @ ServiceError::ProcessSetup { .. }) => {
                    let text = service::describe(&err);
                    assert!(
                        text.contains("zz0") && text.contains("nosuchkind"),
                        "{text}"
                    );
                }
                other => panic!("net-bad: {other:?}"),
            }
            let ids = client
                .list_containers("services.linuxkit")
                .await
                .expect("list");
            assert!(
                !ids.contains(&"net-bad".to_owned()),
                "a failed start leaves no container: {ids:?}"
            );

            services.stop("net-b").await.expect("stop net-b");
            services.stop("net-a").await.expect("stop net-a");
            let mounts = mountinfo();
            assert!(
                !mounts.contains(&format!(" {}/rootfs ", a.display())),
                "overlay undone: {mounts}"
            );
            assert!(
                !mounts.contains(&format!(" {}/tmp ", a.display())),
                "tmpfs undone: {mounts}"
            );
        });
}
