//! The `metadata` binary against servers on the real link-local addresses, inside network
//! namespaces created here (never the host's network), each run in its own UTS namespace.

mod support;

use std::process::Output;

use support::{Netns, Server, clouds, read};

fn metadata(ns: &Netns, tmp: &std::path::Path, args: &[&str]) -> Output {
    std::fs::create_dir_all(tmp.join("sys")).unwrap();
    std::fs::create_dir_all(tmp.join("dev")).unwrap();
    let mut cmd = ns.command(&support::binary());
    cmd.arg("--config-root")
        .arg(tmp.join("config"))
        .arg("--sysfs")
        .arg(tmp.join("sys"))
        .arg("--dev")
        .arg(tmp.join("dev"));
    cmd.args(args).output().expect("running metadata")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn aws_imdsv2_on_169_254_169_254() {
    let ns = Netns::new("aws", &["169.254.169.254/32"]);
    let server = Server::start_in(
        &ns.name,
        "169.254.169.254:80",
        clouds::aws(clouds::Imds::default()),
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = metadata(&ns, tmp.path(), &["-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("metadata: aws answered: provider \"AWS\""),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Set hostname to: ip-10-0-0-1.ec2.internal"),
        "{}",
        stderr(&out)
    );
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "provider"), "AWS");
    assert_eq!(read(&root, "motd"), "hello from aws");
    assert!(server.requests().iter().any(|r| r.method == "PUT"));
}

#[test]
fn aws_ipv6_endpoint() {
    let ns = Netns::new("aws6", &["fd00:ec2::254/128"]);
    let _server = Server::start_in(
        &ns.name,
        "[fd00:ec2::254]:80",
        clouds::aws(clouds::Imds::default()),
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = metadata(&ns, tmp.path(), &["aws"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read(&tmp.path().join("config"), "instance_id"), "i-0123");
}

#[test]
fn scaleway_on_169_254_42_42_with_a_privileged_port() {
    let ns = Netns::new("scw", &["169.254.42.42/32"]);
    let server = Server::start_in(&ns.name, "169.254.42.42:80", clouds::scaleway());
    let tmp = tempfile::tempdir().unwrap();
    let out = metadata(&ns, tmp.path(), &["scaleway"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        read(&tmp.path().join("config"), "userdata"),
        "scaleway userdata"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/user_data/cloud-init" && r.peer.port() < 1024)
    );
}

#[test]
fn no_provider_ends_within_the_deadline_with_a_reason() {
    let ns = Netns::new("none", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = metadata(&ns, tmp.path(), &["--deadline", "1.5"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("metadata: no provider answered: aws:"),
        "{err}"
    );
    assert!(err.contains("cdrom: not present"), "{err}");
}

#[test]
fn unknown_provider_is_fatal_with_linuxkits_message() {
    let ns = Netns::new("usage", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = metadata(&ns, tmp.path(), &["aws", "nimbus"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Unrecognised metadata provider: nimbus"),
        "{}",
        stderr(&out)
    );
}
