//! Every network provider against a real HTTP server on loopback that behaves like its cloud.

mod support;

use metadata::run::{Summary, run};
use support::{Handler, Server, clouds, plan, read};
use tempfile::TempDir;

async fn against(handler: Handler, providers: &[&str]) -> (Summary, TempDir, Server) {
    let server = Server::start("127.0.0.1:0", handler);
    let tmp = tempfile::tempdir().unwrap();
    let summary = run(&plan(&server.url(), server.addr, providers, tmp.path())).await;
    (summary, tmp, server)
}

fn assert_applied(summary: &Summary, name: &str) {
    assert!(
        matches!(summary, Summary::Applied { name: n, .. } if *n == name),
        "expected {name} to win: {}",
        summary.line()
    );
}

#[tokio::test]
async fn aws_imdsv2_sends_the_token_on_every_get() {
    let (summary, tmp, server) = against(clouds::aws(clouds::Imds::default()), &["aws"]).await;
    assert_applied(&summary, "aws");
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "provider"), "AWS");
    assert_eq!(read(&root, "hostname"), "ip-10-0-0-1.ec2.internal");
    assert_eq!(read(&root, "availability_zone"), "eu-west-1a");
    assert_eq!(read(&root, "instance_id"), "i-0123");
    assert_eq!(
        read(&root, "ssh/authorized_keys"),
        "ssh-ed25519 AAAA first\nssh-ed25519 BBBB second\n"
    );
    assert_eq!(read(&root, "motd"), "hello from aws");
    let reqs = server.requests();
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(
        reqs[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert!(
        reqs.iter()
            .filter(|r| r.method == "GET")
            .all(|r| r.header("x-aws-ec2-metadata-token").is_some())
    );
}

#[tokio::test]
async fn aws_refreshes_an_expired_token() {
    let (summary, tmp, server) = against(
        clouds::aws(clouds::Imds {
            token_uses: Some(3),
            ..Default::default()
        }),
        &["aws"],
    )
    .await;
    assert_applied(&summary, "aws");
    assert_eq!(
        read(&tmp.path().join("config"), "local_hostname"),
        "ip-10-0-0-1"
    );
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .count()
            > 1,
        "a new token was requested"
    );
}

#[tokio::test]
async fn aws_falls_back_to_v1_only_without_a_token_endpoint() {
    let (summary, tmp, server) = against(
        clouds::aws(clouds::Imds {
            v1_only: true,
            ..Default::default()
        }),
        &["aws"],
    )
    .await;
    assert_applied(&summary, "aws");
    assert_eq!(
        read(&tmp.path().join("config"), "public_ipv4"),
        "203.0.113.7"
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("x-aws-ec2-metadata-token").is_none())
    );
}

#[tokio::test]
async fn aws_does_not_fall_back_when_tokens_are_forbidden() {
    let (summary, _tmp, server) = against(
        clouds::aws(clouds::Imds {
            token_forbidden: true,
            ..Default::default()
        }),
        &["aws"],
    )
    .await;
    assert!(
        matches!(summary, Summary::NoneFound { .. }),
        "{}",
        summary.line()
    );
    assert!(summary.line().contains("403"), "{}", summary.line());
    assert!(
        server.requests().iter().all(|r| r.method == "PUT"),
        "no IMDSv1 GET after a 403"
    );
}

#[tokio::test]
async fn gcp_sends_metadata_flavor() {
    let (summary, tmp, server) = against(clouds::gcp(), &["gcp"]).await;
    assert_applied(&summary, "gcp");
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "provider"), "GCP");
    assert_eq!(
        read(&root, "ssh/authorized_keys"),
        "ssh-rsa AAA alice\nssh-ed25519 BBB bob\n"
    );
    assert_eq!(read(&root, "userdata"), "gcp userdata");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("metadata-flavor") == Some("Google"))
    );
}

#[tokio::test]
async fn hetzner_keys_are_a_json_array() {
    let (summary, tmp, _s) = against(clouds::hetzner(), &["hetzner"]).await;
    assert_applied(&summary, "hetzner");
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "provider"), "Hetzner");
    assert_eq!(
        read(&root, "ssh/authorized_keys"),
        "ssh-ed25519 H1 a\nssh-ed25519 H2 b\n"
    );
    assert_eq!(read(&root, "userdata"), "#cloud-config\n");
}

#[tokio::test]
async fn openstack_uses_the_ec2_paths() {
    let (summary, tmp, _s) = against(clouds::openstack(), &["openstack"]).await;
    assert_applied(&summary, "openstack");
    assert_eq!(read(&tmp.path().join("config"), "provider"), "openstack");
    assert_eq!(
        read(&tmp.path().join("config"), "instance_type"),
        "t3.micro"
    );
}

#[tokio::test]
async fn vultr_digitalocean_metaldata() {
    for (handler, name, label, file, value) in [
        (clouds::vultr(), "vultr", "Vultr", "region_code", "AMS"),
        (
            clouds::digitalocean(),
            "digitalocean",
            "DigitalOcean",
            "id",
            "1234",
        ),
        (
            clouds::metaldata(),
            "metaldata",
            "metaldata",
            "machine_id",
            "m-1",
        ),
    ] {
        let (summary, tmp, _s) = against(handler, &[name]).await;
        assert_applied(&summary, name);
        let root = tmp.path().join("config");
        assert_eq!(read(&root, "provider"), label);
        assert_eq!(read(&root, file), value);
        assert!(read(&root, "ssh/authorized_keys").starts_with("ssh-rsa"));
    }
}

#[tokio::test]
async fn equinix_ipxe_userdata_is_ignored_and_bond_is_planned() {
    let (summary, tmp, _s) = against(clouds::equinix(), &["equinixmetal"]).await;
    assert_applied(&summary, "equinixmetal");
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "hostname"), "metal-host");
    assert!(!root.join("userdata").exists());
    let doc = metadata::providers::equinix::parse_document(clouds::EQUINIX_DOC.as_bytes()).unwrap();
    assert_eq!(
        doc.network.unwrap().links,
        [("eth0".to_string(), "aa:00:00:00:00:01".to_string())]
    );
}

#[tokio::test]
async fn azure_reads_imds_and_reports_ready() {
    let (summary, tmp, server) = against(clouds::azure(), &["azure"]).await;
    assert_applied(&summary, "azure");
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "hostname"), "az-host");
    assert_eq!(read(&root, "userdata"), "azure userdata");
    let health = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/machine/?comp=health")
        .expect("a health report");
    let body = String::from_utf8(health.body).unwrap();
    assert!(
        body.contains("<GoalStateIncarnation>7</GoalStateIncarnation>")
            && body.contains("<State>Ready</State>"),
        "{body}"
    );
}

#[tokio::test]
async fn mmds_v2_uses_its_token() {
    let (summary, tmp, _s) = against(clouds::mmds(), &["mmds"]).await;
    assert_applied(&summary, "mmds");
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "hostname"), "fc-vm");
    assert_eq!(read(&root, "userdata"), "fc userdata");
    assert!(root.join("mmds.json").exists());
}

#[tokio::test]
async fn scaleway_userdata_comes_from_a_privileged_port() {
    support::require_root("binding a source port below 1024");
    let (summary, tmp, server) = against(clouds::scaleway(), &["scaleway"]).await;
    assert_applied(&summary, "scaleway");
    let root = tmp.path().join("config");
    assert_eq!(read(&root, "instance_location"), "par1");
    assert_eq!(read(&root, "ssh/authorized_keys"), "ssh-rsa S1\n");
    assert_eq!(read(&root, "userdata"), "scaleway userdata");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/user_data/cloud-init" && r.peer.port() < 1024)
    );
}

#[tokio::test]
async fn default_order_finds_gcp_behind_the_ec2_providers() {
    let tmp2 = tempfile::tempdir().unwrap();
    let server = Server::start("127.0.0.1:0", clouds::gcp());
    let mut p = plan(&server.url(), server.addr, &[], tmp2.path());
    p.providers = metadata::providers::DEFAULT_ORDER
        .iter()
        .map(|s| s.to_string())
        .collect();
    let summary = run(&p).await;
    assert_applied(&summary, "gcp");
}

#[tokio::test]
async fn dmi_tells_hetzner_from_aws() {
    let server = Server::start(
        "127.0.0.1:0",
        clouds::aws(clouds::Imds {
            v1_only: true,
            ..Default::default()
        }),
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("sys/class/dmi/id")).unwrap();
    std::fs::write(tmp.path().join("sys/class/dmi/id/sys_vendor"), "Hetzner\n").unwrap();
    let summary = run(&plan(
        &server.url(),
        server.addr,
        &["aws", "hetzner", "openstack"],
        tmp.path(),
    ))
    .await;
    assert_applied(&summary, "hetzner");
    assert_eq!(read(&tmp.path().join("config"), "provider"), "Hetzner");
}
