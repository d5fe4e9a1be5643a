//! The EC2-style metadata service: AWS (IMDSv2 with tokens, IPv4 and IPv6 endpoints), and
//! Hetzner and OpenStack, which serve the same `/latest/meta-data/` paths without tokens.

use std::sync::Mutex;

use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError, fetch_err};
use crate::dmi::Cloud;
use crate::http::{FetchError, Http, Reply, Request};
use crate::model::Metadata;

const TOKEN_PATH: &str = "/latest/api/token";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// Token lifetime asked for (6 hours, as Afterburn and the AWS CLI do).
pub const TOKEN_TTL: &str = "21600";
const META: &str = "/latest/meta-data/";

/// Files AWS and OpenStack write besides `hostname` (LinuxKit's table).
const AWS_FILES: &[(&str, &str)] = &[
    ("public_ipv4", "public-ipv4"),
    ("local_ipv4", "local-ipv4"),
    ("availability_zone", "placement/availability-zone"),
    ("instance_type", "instance-type"),
    ("instance_id", "instance-id"),
    ("local_hostname", "local-hostname"),
];
const HETZNER_FILES: &[(&str, &str)] = &[
    ("public_ipv4", "public-ipv4"),
    ("local_ipv4", "local-ipv4"),
    ("instance_id", "instance-id"),
];

/// A connection to one IMDS endpoint: its base URL and, for IMDSv2, the current token.
#[derive(Debug)]
struct Session {
    http: Http,
    base: String,
    /// `None`: no token endpoint (IMDSv1). `Some(t)`: the token to send.
    token: Mutex<Option<String>>,
}

impl Session {
    /// PUTs for a token. `Ok(None)` means the endpoint does not exist (404/405): use IMDSv1.
    async fn open(http: Http, base: String, deadline: Instant) -> Result<Self, FetchError> {
        let token = Self::request_token(&http, &base, deadline).await?;
        Ok(Self {
            http,
            base,
            token: Mutex::new(token),
        })
    }

    async fn request_token(
        http: &Http,
        base: &str,
        deadline: Instant,
    ) -> Result<Option<String>, FetchError> {
        let mut req = Request::get(format!("{base}{TOKEN_PATH}")).header(TTL_HEADER, TOKEN_TTL);
        req.method = reqwest::Method::PUT;
        match http.send(&req, deadline).await {
            Ok(Reply::Body(b)) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
            Ok(Reply::Missing(_)) => Ok(None),
            Err(e) if e.status() == Some(reqwest::StatusCode::METHOD_NOT_ALLOWED) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn current(&self) -> Option<String> {
        self.token.lock().map(|t| t.clone()).unwrap_or(None)
    }

    /// GETs `path` under the base with the token; on 401 gets a fresh token and tries once more.
    async fn get(&self, path: &str, deadline: Instant) -> Result<Reply, FetchError> {
        let url = format!("{}{path}", self.base);
        let first = self.get_with(&url, self.current(), deadline).await;
        match first {
            Err(e)
                if e.status() == Some(reqwest::StatusCode::UNAUTHORIZED)
                    && self.current().is_some() =>
            {
                log::debug!("IMDS token rejected, requesting a new one");
                let fresh = Self::request_token(&self.http, &self.base, deadline).await?;
                if let Ok(mut t) = self.token.lock() {
                    t.clone_from(&fresh);
                }
                self.get_with(&url, fresh, deadline).await
            }
            other => other,
        }
    }

    async fn get_with(
        &self,
        url: &str,
        token: Option<String>,
        deadline: Instant,
    ) -> Result<Reply, FetchError> {
        let mut req = Request::get(url);
        if let Some(t) = token {
            req = req.header(TOKEN_HEADER, &t);
        }
        self.http.send(&req, deadline).await
    }
}

/// AWS: IMDSv2 (token PUT, token on every GET, refresh on 401), IMDSv1 only when there is no token
/// endpoint, and the IPv6 endpoint raced against the IPv4 one.
#[derive(Debug)]
pub struct Aws {
    http: Http,
    bases: Vec<String>,
    session: tokio::sync::OnceCell<Session>,
}

impl Aws {
    /// AWS at `v4` (and `v6` if given).
    pub fn new(http: Http, v4: String, v6: Option<String>) -> Self {
        Self {
            http,
            bases: std::iter::once(v4).chain(v6).collect(),
            session: tokio::sync::OnceCell::new(),
        }
    }

    async fn connect(&self, deadline: Instant) -> Result<&Session, ProviderError> {
        self.session
            .get_or_try_init(|| async {
                let attempts = self
                    .bases
                    .iter()
                    .map(|b| Box::pin(Session::open(self.http.clone(), b.clone(), deadline)));
                futures_util::future::select_ok(attempts)
                    .await
                    .map(|(s, _)| s)
            })
            .await
            .map_err(fetch_err("aws", "the IMDSv2 token"))
    }
}

impl Provider for Aws {
    fn name(&self) -> &'static str {
        "aws"
    }
    fn locality(&self) -> Locality {
        Locality::Network
    }
    fn cloud(&self) -> Option<Cloud> {
        Some(Cloud::Aws)
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            let session = self.connect(deadline).await?;
            let reply = session
                .get(&format!("{META}hostname"), deadline)
                .await
                .map_err(fetch_err("aws", "hostname"))?;
            Ok(matches!(reply, Reply::Body(_)))
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let session = self.connect(deadline).await?;
            let mut meta = ec2_fetch(session, "aws", "AWS", AWS_FILES, deadline).await?;
            meta.keys(aws_keys(session, deadline).await);
            Ok(meta)
        })
    }
}

/// All `public-keys/N/openssh-key` entries (LinuxKit reads only `0`).
async fn aws_keys(s: &Session, deadline: Instant) -> Vec<String> {
    let list = s
        .get(&format!("{META}public-keys/"), deadline)
        .await
        .ok()
        .and_then(Reply::text)
        .unwrap_or_default();
    let mut keys = Vec::new();
    for idx in list
        .lines()
        .filter_map(|l| l.split('=').next())
        .filter(|i| i.parse::<u32>().is_ok())
    {
        let path = format!("{META}public-keys/{idx}/openssh-key");
        if let Some(k) = s.get(&path, deadline).await.ok().and_then(Reply::text) {
            keys.push(k);
        }
    }
    keys
}

/// `hostname` (required), the optional files, and `/latest/user-data` (404: none).
async fn ec2_fetch(
    s: &Session,
    provider: &'static str,
    label: &str,
    files: &[(&str, &str)],
    deadline: Instant,
) -> Result<Metadata, ProviderError> {
    let mut meta = Metadata::new(label);
    let host = s
        .get(&format!("{META}hostname"), deadline)
        .await
        .map_err(fetch_err(provider, "hostname"))?;
    meta.hostname = Some(host.text().ok_or(ProviderError::Missing {
        provider,
        what: "hostname".into(),
    })?);
    for (file, path) in files {
        match s.get(&format!("{META}{path}"), deadline).await {
            Ok(reply) => meta.file(file, reply.text()),
            Err(e) => log::info!(
                "{provider}: {file} not available: {}",
                crate::apply::chain(&e)
            ),
        }
    }
    meta.userdata = match s.get("/latest/user-data", deadline).await {
        Ok(reply) => reply.body(),
        Err(e) => {
            log::info!("{provider}: no userdata: {}", crate::apply::chain(&e));
            None
        }
    };
    Ok(meta)
}

/// Hetzner and OpenStack: the EC2 paths over plain GETs.
#[derive(Debug)]
pub struct Ec2Style {
    session: Session,
    name: &'static str,
    label: &'static str,
    cloud: Cloud,
    files: &'static [(&'static str, &'static str)],
}

impl Ec2Style {
    fn new(
        http: Http,
        base: String,
        name: &'static str,
        label: &'static str,
        cloud: Cloud,
        files: &'static [(&'static str, &'static str)],
    ) -> Self {
        Self {
            session: Session {
                http,
                base,
                token: Mutex::new(None),
            },
            name,
            label,
            cloud,
            files,
        }
    }
    /// Hetzner Cloud.
    pub fn hetzner(http: Http, base: String) -> Self {
        Self::new(
            http,
            base,
            "hetzner",
            "Hetzner",
            Cloud::Hetzner,
            HETZNER_FILES,
        )
    }
    /// OpenStack's EC2-compatible service.
    pub fn openstack(http: Http, base: String) -> Self {
        Self::new(
            http,
            base,
            "openstack",
            "openstack",
            Cloud::OpenStack,
            AWS_FILES,
        )
    }
}

impl Provider for Ec2Style {
    fn name(&self) -> &'static str {
        self.name
    }
    fn locality(&self) -> Locality {
        Locality::Network
    }
    fn cloud(&self) -> Option<Cloud> {
        Some(self.cloud)
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            let reply = self
                .session
                .get(&format!("{META}hostname"), deadline)
                .await
                .map_err(fetch_err(self.name, "hostname"))?;
            Ok(matches!(reply, Reply::Body(_)))
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let mut meta =
                ec2_fetch(&self.session, self.name, self.label, self.files, deadline).await?;
            let keys = self
                .session
                .get(&format!("{META}public-keys"), deadline)
                .await
                .ok()
                .and_then(Reply::body);
            if let Some(keys) = keys {
                meta.keys(match self.cloud {
                    Cloud::Hetzner => {
                        parse_key_array(&keys).map_err(|detail| ProviderError::Parse {
                            provider: self.name,
                            what: "public-keys".into(),
                            detail,
                        })?
                    }
                    _ => openstack_keys(&self.session, &keys, deadline).await,
                });
            }
            Ok(meta)
        })
    }
}

async fn openstack_keys(s: &Session, list: &[u8], deadline: Instant) -> Vec<String> {
    let mut keys = Vec::new();
    for idx in String::from_utf8_lossy(list)
        .lines()
        .filter_map(|l| l.split('=').next())
    {
        if idx.parse::<u32>().is_ok()
            && let Some(k) = s
                .get(&format!("{META}public-keys/{idx}/openssh-key"), deadline)
                .await
                .ok()
                .and_then(Reply::text)
        {
            keys.push(k);
        }
    }
    keys
}

/// Hetzner's `public-keys`: a JSON array of strings.
pub fn parse_key_array(body: &[u8]) -> Result<Vec<String>, String> {
    serde_json::from_slice::<Vec<String>>(body).map_err(|e| e.to_string())
}
