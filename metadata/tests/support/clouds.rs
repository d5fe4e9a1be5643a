//! Fake cloud endpoints that behave like the real ones: paths, required headers, tokens.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Answer, Handler, Seen};

/// Path → body; anything else is 404. `guard` may refuse a request first.
pub fn routes(
    table: &[(&str, &str)],
    guard: impl Fn(&Seen) -> Option<Answer> + Send + Sync + 'static,
) -> Handler {
    let table: BTreeMap<String, String> = table
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(move |req: &Seen| {
        if let Some(refusal) = guard(req) {
            return refusal;
        }
        table
            .get(&req.path)
            .map_or(Answer::status(404), |b| Answer::ok(b.as_bytes()))
    })
}

pub const EC2_META: &[(&str, &str)] = &[
    ("/latest/meta-data/hostname", "ip-10-0-0-1.ec2.internal\n"),
    ("/latest/meta-data/public-ipv4", "203.0.113.7"),
    ("/latest/meta-data/local-ipv4", "10.0.0.1"),
    (
        "/latest/meta-data/placement/availability-zone",
        "eu-west-1a",
    ),
    ("/latest/meta-data/instance-type", "t3.micro"),
    ("/latest/meta-data/instance-id", "i-0123"),
    ("/latest/meta-data/local-hostname", "ip-10-0-0-1"),
    ("/latest/meta-data/public-keys/", "0=first\n1=second"),
    (
        "/latest/meta-data/public-keys/0/openssh-key",
        "ssh-ed25519 AAAA first",
    ),
    (
        "/latest/meta-data/public-keys/1/openssh-key",
        "ssh-ed25519 BBBB second",
    ),
    (
        "/latest/user-data",
        r#"{"motd":{"content":"hello from aws"}}"#,
    ),
];

/// How the fake IMDS behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Imds {
    /// No token endpoint at all (an IMDSv1-only server): PUT gives 404.
    pub v1_only: bool,
    /// Each token is good for this many GETs, then 401 (token expiry).
    pub token_uses: Option<usize>,
    /// PUT for a token answers 403 (IMDS tokens disabled by policy).
    pub token_forbidden: bool,
}

/// AWS IMDS: IMDSv2 required unless `v1_only`.
pub fn aws(opts: Imds) -> Handler {
    let tokens: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let counter = AtomicUsize::new(0);
    let meta = routes(EC2_META, |_| None);
    Arc::new(move |req: &Seen| {
        if req.path == "/latest/api/token" {
            if opts.v1_only {
                return Answer::status(404);
            }
            if opts.token_forbidden {
                return Answer::status(403);
            }
            if req.method != "PUT" {
                return Answer::status(405);
            }
            if req.header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                return Answer::status(400);
            }
            let token = format!("token-{}", counter.fetch_add(1, Ordering::SeqCst));
            tokens
                .lock()
                .unwrap()
                .insert(token.clone(), opts.token_uses.unwrap_or(usize::MAX));
            return Answer::Reply(
                200,
                vec![(
                    "x-aws-ec2-metadata-token-ttl-seconds".into(),
                    "21600".into(),
                )],
                token.into_bytes(),
            );
        }
        if !opts.v1_only {
            let mut tokens = tokens.lock().unwrap();
            let Some(left) = req
                .header("x-aws-ec2-metadata-token")
                .and_then(|t| tokens.get_mut(t))
            else {
                return Answer::status(401);
            };
            if *left == 0 {
                return Answer::status(401);
            }
            *left -= 1;
        }
        meta(req)
    })
}

/// Hetzner: EC2 paths, `public-keys` as a JSON array.
pub fn hetzner() -> Handler {
    routes(
        &[
            ("/latest/meta-data/hostname", "hetzner-1"),
            ("/latest/meta-data/public-ipv4", "198.51.100.2"),
            ("/latest/meta-data/instance-id", "4711"),
            (
                "/latest/meta-data/public-keys",
                r#"["ssh-ed25519 H1 a","ssh-ed25519 H2 b"]"#,
            ),
            ("/latest/user-data", "#cloud-config\n"),
        ],
        |_| None,
    )
}

/// OpenStack's EC2-compatible paths, no tokens.
pub fn openstack() -> Handler {
    routes(EC2_META, |req| {
        (req.method == "PUT").then(|| Answer::status(405))
    })
}

/// GCE: refuses requests without `Metadata-Flavor: Google`.
pub fn gcp() -> Handler {
    routes(
        &[
            (
                "/computeMetadata/v1/instance/hostname",
                "gce-1.c.project.internal",
            ),
            (
                "/computeMetadata/v1/project/attributes/ssh-keys",
                "alice:ssh-rsa AAA alice\nbob:ssh-ed25519 BBB bob",
            ),
            (
                "/computeMetadata/v1/instance/attributes/user-data",
                "gcp userdata",
            ),
        ],
        |req| (req.header("metadata-flavor") != Some("Google")).then(|| Answer::status(403)),
    )
}

pub fn vultr() -> Handler {
    routes(
        &[
            ("/v1/", "ok"),
            ("/v1/hostname", "vultr-1"),
            ("/v1/interfaces/0/ipv4/address", "192.0.2.10"),
            ("/v1/interfaces/1/ipv4/address", "10.1.0.10"),
            ("/v1/interfaces/1/ipv4/netmask", "255.255.0.0"),
            ("/v1/region/regioncode", "AMS"),
            ("/v1/instanceid", "v-1"),
            ("/v1/public-keys", "ssh-rsa V1\nssh-rsa V2\n"),
        ],
        |_| None,
    )
}

pub fn digitalocean() -> Handler {
    routes(
        &[
            ("/metadata/v1/", "ok"),
            ("/metadata/v1/hostname", "droplet-1"),
            (
                "/metadata/v1/interfaces/public/0/ipv4/address",
                "192.0.2.20",
            ),
            ("/metadata/v1/region", "ams3"),
            ("/metadata/v1/id", "1234"),
            ("/metadata/v1/public-keys", "ssh-rsa D1"),
            ("/metadata/v1/user-data", "do userdata"),
        ],
        |_| None,
    )
}

pub fn metaldata() -> Handler {
    routes(
        &[
            ("/get/meta/hostname", "metal-1"),
            ("/get/meta/machine-id", "m-1"),
            ("/get/meta/authorized-keys", "ssh-rsa M1"),
            ("/get/user", "metal userdata"),
        ],
        |_| None,
    )
}

pub const EQUINIX_DOC: &str = r#"{"id":"e-1","hostname":"metal-host","ssh_keys":["ssh-rsa E1"],
  "network":{"bonding":{"mode":4},"interfaces":[{"name":"eth0","mac":"aa:00:00:00:00:01"}],
  "addresses":[{"address":"147.75.1.3","cidr":31,"gateway":"147.75.1.2","public":true}]}}"#;

pub fn equinix() -> Handler {
    routes(
        &[
            ("/metadata", EQUINIX_DOC),
            ("/userdata", "#!ipxe\nchain http://x"),
        ],
        |_| None,
    )
}

pub const AZURE_DOC: &str = r#"{"compute":{"name":"az-vm","osProfile":{"computerName":"az-host"},"vmId":"vm-1","location":"westeurope",
  "vmSize":"Standard_B1s","publicKeys":[{"keyData":"ssh-rsa AZ"}]},
  "network":{"interface":[{"ipv4":{"ipAddress":[{"privateIpAddress":"10.0.0.4","publicIpAddress":"20.1.2.3"}]}}]}}"#;

pub const GOAL_STATE: &str = "<GoalState><Incarnation>7</Incarnation><Container><ContainerId>cid</ContainerId>\
<RoleInstanceList><RoleInstance><InstanceId>iid</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>";

/// Azure IMDS (needs `Metadata: true` and `api-version`) and WireServer (needs `x-ms-version`).
pub fn azure() -> Handler {
    Arc::new(|req: &Seen| {
        if req.path.starts_with("/metadata/") {
            if req.header("metadata") != Some("true") || !req.path.contains("api-version=") {
                return Answer::status(400);
            }
            return match req.path.split('?').next() {
                Some("/metadata/instance") => Answer::ok(AZURE_DOC),
                Some("/metadata/instance/compute/userData") => Answer::ok("YXp1cmUgdXNlcmRhdGE="),
                _ => Answer::status(404),
            };
        }
        if req.path.starts_with("/machine/") && req.header("x-ms-version").is_none() {
            return Answer::status(400);
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/machine/?comp=goalstate") => Answer::ok(GOAL_STATE),
            ("POST", "/machine/?comp=health") => Answer::status(200),
            _ => Answer::status(404),
        }
    })
}

/// Firecracker MMDS v2.
pub fn mmds() -> Handler {
    Arc::new(
        |req: &Seen| match (req.method.as_str(), req.path.as_str()) {
            ("PUT", "/latest/api/token")
                if req.header("x-metadata-token-ttl-seconds").is_some() =>
            {
                Answer::ok("mmds-token")
            }
            ("PUT", _) => Answer::status(400),
            ("GET", "/") if req.header("x-metadata-token") == Some("mmds-token") => Answer::ok(
                r#"{"latest":{"meta-data":{"hostname":"fc-vm","public-keys":{"0":{"openssh-key":"ssh-ed25519 FC"}}},"user-data":"fc userdata"}}"#,
            ),
            _ => Answer::status(401),
        },
    )
}

/// Scaleway: `/conf`, and userdata only for privileged source ports.
pub fn scaleway() -> Handler {
    Arc::new(|req: &Seen| match req.path.as_str() {
        "/conf" => Answer::ok(
            "HOSTNAME=scw-1\nID=s-1\nLOCATION_ZONE_ID=par1\nPRIVATE_IP=10.2.0.2\nPUBLIC_IP_ADDRESS=51.15.0.1\nSSH_PUBLIC_KEYS=1\nSSH_PUBLIC_KEYS_0_KEY='ssh-rsa S1'\n",
        ),
        "/user_data/cloud-init" if req.peer.port() < 1024 => Answer::ok("scaleway userdata"),
        "/user_data/cloud-init" => Answer::status(403),
        _ => Answer::status(404),
    })
}
