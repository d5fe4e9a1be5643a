//! The process exits as soon as it has its answer, even while a probe that lost the race is still in a
//! host-name lookup. Found in a VM: with no nameserver, musl's getaddrinfo for `metaldata` and Equinix's
//! host waited 5 s on the blocking pool, and dropping the tokio runtime waited for it, so an onboot
//! metadata that had IMDS's answer in 0.7 s took 5 s. Here the lookup never ends (`/etc/hosts` is a FIFO
//! nobody writes, bound over the real one in a private mount namespace), so the old behaviour hangs.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Netns, Server, clouds};

/// A deadline against hangs only: a correct run ends in well under a second.
const HANG: Duration = Duration::from_secs(60);

#[test]
fn exits_while_a_losing_probe_is_stuck_in_a_lookup() {
    support::require_tool("unshare");
    support::require_tool("mkfifo");
    let ns = Netns::new("stuckdns", &["169.254.169.254/32"]);
    let _server = Server::start_in(
        &ns.name,
        "169.254.169.254:80",
        clouds::aws(clouds::Imds::default()),
    );
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("hosts");
    support::run(Command::new("mkfifo").arg(&fifo));
    for dir in ["sys", "dev"] {
        std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
    }
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "unshare", "--uts", "--mount"])
        .args([
            "sh",
            "-c",
            r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#,
            "sh",
        ])
        .arg(&fifo)
        .arg(support::binary())
        .arg("--no-hostname")
        .arg("--config-root")
        .arg(tmp.path().join("config"))
        .arg("--sysfs")
        .arg(tmp.path().join("sys"))
        .arg("--dev")
        .arg(tmp.path().join("dev"))
        // aws answers; metaldata's host name `metaldata` needs a lookup, which reads /etc/hosts first.
        .args(["aws", "metaldata"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running metadata");
    let until = Instant::now() + HANG;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("metadata had not exited after {HANG:?}: it waits for the stuck lookup");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("aws answered: provider \"AWS\""),
        "{stderr}"
    );
}
