//! Equinix Metal (formerly Packet): `GET /metadata` (JSON) and `GET /userdata` over HTTPS, with the
//! same timeouts as every other provider (LinuxKit's had none). Also returns the bond set-up that
//! [`crate::network`] applies.

use serde::Deserialize;
use tokio::time::Instant;

use super::{BoxFut, Env, Locality, Provider, ProviderError, fetch_err};
use crate::http::{Http, Reply, load_roots};
use crate::model::Metadata;
use crate::network::{BondAddress, BondConfig};

/// Equinix Metal.
#[derive(Debug)]
pub struct Equinix {
    http: Result<Http, String>,
    base: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Doc {
    id: String,
    hostname: String,
    ssh_keys: Vec<String>,
    network: Net,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Net {
    bonding: Bonding,
    interfaces: Vec<Iface>,
    addresses: Vec<Addr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Bonding {
    mode: u8,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Iface {
    name: String,
    mac: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Addr {
    address: String,
    cidr: u8,
    gateway: String,
    public: bool,
}

/// Parses the `/metadata` document.
pub fn parse_document(body: &[u8]) -> Result<Metadata, String> {
    let doc: Doc = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut meta = Metadata::new("EquinixMetal");
    meta.hostname = Some(doc.hostname).filter(|h| !h.is_empty());
    meta.file("instance_id", Some(doc.id));
    meta.keys(doc.ssh_keys);
    if !doc.network.interfaces.is_empty() {
        let addresses = doc.network.addresses.iter().filter_map(|a| {
            Some(BondAddress {
                ip: a.address.parse().ok()?,
                prefix: a.cidr,
                gateway: a.gateway.parse().ok(),
                public: a.public,
            })
        });
        meta.network = Some(BondConfig {
            mode: doc.network.bonding.mode,
            links: doc
                .network
                .interfaces
                .into_iter()
                .map(|i| (i.name, i.mac))
                .collect(),
            addresses: addresses.collect(),
        });
    }
    Ok(meta)
}

impl Equinix {
    /// Equinix Metal at `env.endpoints.equinix`, trusting `env.ca_bundle`.
    pub fn new(env: &Env) -> Self {
        let http = Http::with_roots(env.policy, load_roots(&env.ca_bundle))
            .map_err(|e| crate::apply::chain(&e));
        Self {
            http,
            base: env.endpoints.equinix.clone(),
        }
    }

    async fn get(&self, path: &str, deadline: Instant) -> Result<Reply, ProviderError> {
        let http = self.http.as_ref().map_err(|e| ProviderError::Parse {
            provider: "equinixmetal",
            what: "HTTPS client".into(),
            detail: e.clone(),
        })?;
        http.get(&format!("{}{path}", self.base), deadline)
            .await
            .map_err(fetch_err("equinixmetal", path))
    }
}

impl Provider for Equinix {
    fn name(&self) -> &'static str {
        "equinixmetal"
    }
    fn locality(&self) -> Locality {
        Locality::Network
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            Ok(
                matches!(self.get("/metadata", deadline).await?, Reply::Body(b) if parse_document(&b).is_ok()),
            )
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let body =
                self.get("/metadata", deadline)
                    .await?
                    .body()
                    .ok_or(ProviderError::Missing {
                        provider: "equinixmetal",
                        what: "metadata".into(),
                    })?;
            let mut meta = parse_document(&body).map_err(|detail| ProviderError::Parse {
                provider: "equinixmetal",
                what: "metadata".into(),
                detail,
            })?;
            meta.userdata = self
                .get("/userdata", deadline)
                .await
                .ok()
                .and_then(Reply::body)
                .filter(|u| !u.is_empty() && !u.starts_with(b"#!ipxe"));
            Ok(meta)
        })
    }
}
