//! metadata in a booted guest (issue 5, "VM tests"). Both tests boot `examples/metadata.yml` itself: a
//! DHCP onboot step (busybox udhcpc), `guestkit/metadata:dev` as an onboot container with its package
//! config and LinuxKit's default provider list, and an sshd-style service that prints what it finds under
//! `/run/config` and the hostname as `sshd: ...` console lines.
//! - from a NoCloud CD-ROM the test builds with genisoimage (label `cidata`, a JSON userdata tree with
//!   `ssh/authorized_keys` entries and a `hostname`, plus `meta-data`), attached with `-cdrom` (no NIC);
//! - from an IMDSv2 server in the test on 127.0.0.1, which the guest reaches as 169.254.169.254:80
//!   through qemu user networking (`restrict=on`, `guestfwd` to `nc`); its tokens expire after a few
//!   uses, so metadata's refresh on 401 runs in the guest too.
//!
//!   The same boot has a second disk, a FAT32 `cidata` image whose root directory's cluster chain loops:
//!   metadata must name it as broken on the console and still finish, so the boot goes on.
//!
//! The server checks are made on what the server recorded after the guest powered off.

#[path = "../../metadata/tests/support/fat_loop.rs"]
mod fat_loop;
#[path = "metadata/imds.rs"]
mod imds;

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use imds::{Imds, Instance, Served};
use system_tests::{
    EXIT_TIMEOUT, LINE_TIMEOUT, Vm, VmConfig, VmExit, assemble, boot, require_images, scratch,
    workspace_file,
};

const CDROM_KEYS: [&str; 2] = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICdromFirstKeyForTheGuestkitVmTest0000000 first@cidata",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCdromSecondKeyForTheGuestkitVmTest second@cidata",
];
const IMDS_KEYS: [&str; 2] = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIImdsKeyZeroForTheGuestkitVmTest00000000 zero@imds",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIImdsKeyOneForTheGuestkitVmTest000000000 one@imds",
];

/// Fails unless the metadata image is in the store (the other images are checked by `assemble`).
fn require_metadata_image() -> Result<()> {
    let image = require_images()?.join("guestkit/metadata/dev.tar");
    ensure!(
        image.exists(),
        "{} is missing: run `cargo xtask images` (scripts/test does) first",
        image.display()
    );
    Ok(())
}

/// Assembles `examples/metadata.yml` for `test`, with `extra` qemu arguments.
fn example(test: &str, extra: Vec<String>) -> Result<VmConfig> {
    require_metadata_image()?;
    let mut config = assemble(&workspace_file("examples/metadata.yml"), test)?;
    config.extra_args.extend(extra);
    Ok(config)
}

/// Waits for every pattern (whole console), then powers off; the error lists every missing line and the
/// console lines from the guest's steps.
fn expect_then_power_off(vm: &mut Vm, patterns: &[String]) -> Result<()> {
    let mut missing = Vec::new();
    for pattern in patterns {
        let wait = if missing.is_empty() {
            LINE_TIMEOUT
        } else {
            std::time::Duration::from_millis(100)
        };
        if vm.wait_for_line(pattern, wait).is_err() {
            missing.push(pattern.clone());
        }
    }
    if !missing.is_empty() {
        let text = vm.console().text();
        let steps: Vec<&str> = text
            .lines()
            .filter(|l| ["dhcp", "metadata", "sshd"].iter().any(|w| l.contains(w)))
            .collect();
        bail!(
            "missing console lines {missing:#?}\nguest steps:\n{}\nconsole log: {}",
            steps.join("\n"),
            vm.console().log_path().display()
        );
    }
    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT);
    ensure!(
        exit == VmExit::PoweredOff,
        "guest ended {exit:?} after the power button; console log: {}",
        vm.console().log_path().display()
    );
    Ok(())
}

/// The lines the sshd stand-in prints for these keys, hostname and provider, and `files` under
/// `/run/config`.
fn consumer_lines(hostname: &str, provider: &str, keys: &[&str], files: &[&str]) -> Vec<String> {
    let mut lines = vec![
        format!("sshd: hostname {hostname}"),
        format!("sshd: provider {provider}"),
        "sshd: authorized_keys mode 600".to_string(),
    ];
    lines.extend(keys.iter().map(|k| format!("sshd: authorized key: {k}")));
    lines.extend(files.iter().map(|f| format!("sshd: file /run/config/{f}")));
    lines.push("sshd: ready".into());
    lines
}

fn cidata_userdata() -> String {
    let keys: String = CDROM_KEYS.iter().map(|k| format!("{k}\n")).collect();
    serde_json::json!({
        "ssh": {"entries": {"authorized_keys": {"perm": "0600", "content": keys}}},
        "hostname": {"content": "cidata-vm\n"},
        "app": {"entries": {"motd": {"content": "configured from the cidata CD-ROM\n"}}},
    })
    .to_string()
}

#[test]
fn cdrom_cidata_reaches_a_later_service() -> Result<()> {
    let dir = scratch("metadata-cdrom-iso")?;
    let iso = system_tests::cidata_iso(&dir, &cidata_userdata(), "iid-cidata-vm-test")?;
    let config = example(
        "metadata-cdrom",
        vec!["-cdrom".into(), iso.display().to_string()],
    )?;
    let mut vm = boot(&config)?;
    let mut lines = vec![
        // `/` as the assembler wrote it (init prints it before it would fix a world-writable one).
        "root: / is 0755, owned by 0:0".to_string(),
        "dhcp: no eth0, no network".to_string(),
        "metadata: cdrom answered: provider \"CDROM /dev/sr0\"".to_string(),
        "metadata: Set hostname to: cidata-vm".to_string(),
    ];
    lines.extend(consumer_lines(
        "cidata-vm",
        "CDROM /dev/sr0",
        &CDROM_KEYS,
        &[
            "app/motd",
            "hostname",
            "instance_id",
            "provider",
            "ssh/authorized_keys",
            "userdata",
        ],
    ));
    expect_then_power_off(&mut vm, &lines)
}

/// Requires the host's busybox, whose `nc` qemu runs for each guest connection.
fn host_busybox() -> Result<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("busybox is not installed on the host: qemu's guestfwd runs `busybox nc` (apt-get install busybox)")
}

/// The guest's 169.254.169.254:80 → `nc 127.0.0.1 port`, and nothing else reachable.
fn imds_network(port: u16) -> Result<Vec<String>> {
    let nc = host_busybox()?;
    Ok(vec![
        "-netdev".into(),
        format!(
            "user,id=n0,restrict=on,net=169.254.169.0/24,guestfwd=tcp:169.254.169.254:80-cmd:{} nc 127.0.0.1 {port}",
            nc.display()
        ),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ])
}

fn imds_instance() -> Instance {
    let meta = [
        ("hostname", "imds-vm.ec2.internal"),
        ("instance-id", "i-0123456789abcdef0"),
        ("local-ipv4", "169.254.169.15"),
        ("placement/availability-zone", "eu-west-1b"),
        ("instance-type", "t3.micro"),
    ];
    Instance {
        meta: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        keys: IMDS_KEYS.iter().map(|k| k.to_string()).collect(),
        userdata: serde_json::json!({
            "app": {"entries": {"greeting": {"content": "hello from IMDS userdata\n"}}}
        })
        .to_string(),
        token_uses: 4,
    }
}

/// What the server must have seen: tokens asked for with the TTL header, every answered GET carrying a
/// live token, the keys and userdata fetched, and at least one expired token replaced after its 401.
fn check_imds_log(log: &[Served]) -> Result<()> {
    let puts: Vec<&Served> = log.iter().filter(|s| s.method == "PUT").collect();
    ensure!(
        puts.iter()
            .any(|s| s.status == 200 && s.ttl.as_deref() == Some("21600")),
        "no token PUT with a 21600 s TTL was answered: {puts:#?}"
    );
    let ok_gets: Vec<&str> = log
        .iter()
        .filter(|s| s.method == "GET" && s.status == 200)
        .map(|s| s.path.as_str())
        .collect();
    for path in [
        "/latest/meta-data/hostname",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/latest/meta-data/public-keys/1/openssh-key",
        "/latest/user-data",
    ] {
        ensure!(
            ok_gets.contains(&path),
            "{path} was never fetched: {log:#?}"
        );
    }
    let refreshed = log.windows(3).any(|w| {
        w[0].status == 401
            && w[0].token.is_some()
            && w[1].method == "PUT"
            && w[1].status == 200
            && w[2].path == w[0].path
            && w[2].status == 200
    });
    ensure!(
        refreshed,
        "no expired token was replaced (401, PUT, retried GET): {log:#?}"
    );
    Ok(())
}

#[test]
fn imdsv2_through_qemu_user_networking_reaches_a_later_service() -> Result<()> {
    let server = Imds::start(imds_instance())?;
    let looping = scratch("metadata-imds-looping-fat")?.join("looping-cidata.img");
    fat_loop::make_looping_fat(&looping, "CIDATA");
    let mut qemu = imds_network(server.port())?;
    qemu.extend([
        "-drive".into(),
        format!(
            "file={},format=raw,if=virtio,readonly=on",
            looping.display()
        ),
    ]);
    let config = example("metadata-imds", qemu)?;
    let mut vm = boot(&config)?;
    let mut lines = vec![
        "dhcp: eth0 169.254.169.15/24".to_string(),
        "cdrom: reading user-data from /dev/vda: the cluster chain through cluster 2 loops"
            .to_string(),
        "metadata: aws answered: provider \"AWS\"".to_string(),
        "metadata: Set hostname to: imds-vm.ec2.internal".to_string(),
    ];
    lines.extend(consumer_lines(
        "imds-vm.ec2.internal",
        "AWS",
        &IMDS_KEYS,
        &[
            "app/greeting",
            "availability_zone",
            "hostname",
            "instance_id",
            "instance_type",
            "local_ipv4",
            "provider",
            "ssh/authorized_keys",
            "userdata",
        ],
    ));
    let result = expect_then_power_off(&mut vm, &lines);
    drop(vm);
    let log = server.log();
    drop(server);
    result?;
    check_imds_log(&log)
}

/// The test's own server, without a VM: IMDSv2 semantics the guest tests rely on.
#[test]
fn imds_server_requires_a_live_token() -> Result<()> {
    use std::io::{Read, Write};
    let server = Imds::start(imds_instance())?;
    let exchange = |request: &str| -> Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port()))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        s.write_all(request.as_bytes())?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    };
    let get = |token: &str| {
        exchange(&format!(
            "GET /latest/meta-data/hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n"
        ))
    };
    let no_ttl = exchange("PUT /latest/api/token HTTP/1.1\r\nConnection: close\r\n\r\n")?;
    ensure!(no_ttl.starts_with("HTTP/1.1 400 "), "{no_ttl}");
    let put = exchange(
        "PUT /latest/api/token HTTP/1.1\r\nConnection: close\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n",
    )?;
    ensure!(put.starts_with("HTTP/1.1 200 "), "{put}");
    let token = put
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    ensure!(
        get("wrong")?.starts_with("HTTP/1.1 401 "),
        "a wrong token was accepted"
    );
    for _ in 0..4 {
        let reply = get(&token)?;
        ensure!(reply.ends_with("\r\n\r\nimds-vm.ec2.internal"), "{reply}");
    }
    ensure!(
        get(&token)?.starts_with("HTTP/1.1 401 "),
        "a used-up token was accepted"
    );
    Ok(())
}
