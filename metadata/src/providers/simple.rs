//! Providers that are a probe URL plus a table of plain GETs: Vultr, DigitalOcean, Metaldata.

use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError, fetch_err};
use crate::dmi::Cloud;
use crate::http::{Http, Reply};
use crate::model::Metadata;

/// One table-driven provider.
#[derive(Debug)]
pub struct Simple {
    http: Http,
    base: String,
    spec: &'static Spec,
}

/// Paths of one provider, relative to its base URL.
#[derive(Debug)]
pub struct Spec {
    name: &'static str,
    label: &'static str,
    cloud: Option<Cloud>,
    probe: &'static str,
    hostname: &'static str,
    files: &'static [(&'static str, &'static str)],
    keys: &'static str,
    userdata: Option<&'static str>,
}

const VULTR: Spec = Spec {
    name: "vultr",
    label: "Vultr",
    cloud: Some(Cloud::Vultr),
    probe: "/v1/",
    hostname: "/v1/hostname",
    files: &[
        ("public_ipv4", "/v1/interfaces/0/ipv4/address"),
        ("private_ipv4", "/v1/interfaces/1/ipv4/address"),
        ("private_netmask", "/v1/interfaces/1/ipv4/netmask"),
        ("region_code", "/v1/region/regioncode"),
        ("instance_id", "/v1/instanceid"),
    ],
    keys: "/v1/public-keys",
    userdata: None,
};

const DIGITALOCEAN: Spec = Spec {
    name: "digitalocean",
    label: "DigitalOcean",
    cloud: Some(Cloud::DigitalOcean),
    probe: "/metadata/v1/",
    hostname: "/metadata/v1/hostname",
    files: &[
        (
            "public_ipv4",
            "/metadata/v1/interfaces/public/0/ipv4/address",
        ),
        (
            "private_ipv4",
            "/metadata/v1/interfaces/private/0/ipv4/address",
        ),
        ("region", "/metadata/v1/region"),
        ("id", "/metadata/v1/id"),
    ],
    keys: "/metadata/v1/public-keys",
    userdata: Some("/metadata/v1/user-data"),
};

const METALDATA: Spec = Spec {
    name: "metaldata",
    label: "metaldata",
    cloud: None,
    probe: "/get/meta/hostname",
    hostname: "/get/meta/hostname",
    files: &[
        ("public_ipv4", "/get/meta/public-ipv4"),
        ("private_ipv4", "/get/meta/private-ipv4"),
        ("failure_domain", "/get/meta/failure-domain"),
        ("machine_id", "/get/meta/machine-id"),
        ("machine_type", "/get/meta/machine-type"),
    ],
    keys: "/get/meta/authorized-keys",
    userdata: Some("/get/user"),
};

impl Simple {
    /// Vultr at `base`.
    pub fn vultr(http: Http, base: String) -> Self {
        Self {
            http,
            base,
            spec: &VULTR,
        }
    }
    /// DigitalOcean at `base`.
    pub fn digitalocean(http: Http, base: String) -> Self {
        Self {
            http,
            base,
            spec: &DIGITALOCEAN,
        }
    }
    /// Metaldata at `base`.
    pub fn metaldata(http: Http, base: String) -> Self {
        Self {
            http,
            base,
            spec: &METALDATA,
        }
    }

    async fn get(&self, path: &str, deadline: Instant) -> Result<Reply, ProviderError> {
        self.http
            .get(&format!("{}{path}", self.base), deadline)
            .await
            .map_err(fetch_err(self.spec.name, path))
    }
}

impl Provider for Simple {
    fn name(&self) -> &'static str {
        self.spec.name
    }
    fn locality(&self) -> Locality {
        Locality::Network
    }
    fn cloud(&self) -> Option<Cloud> {
        self.spec.cloud
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            Ok(matches!(
                self.get(self.spec.probe, deadline).await?,
                Reply::Body(_)
            ))
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let spec = self.spec;
            let mut meta = Metadata::new(spec.label);
            let missing = || ProviderError::Missing {
                provider: spec.name,
                what: "hostname".into(),
            };
            meta.hostname = Some(
                self.get(spec.hostname, deadline)
                    .await?
                    .text()
                    .ok_or_else(missing)?,
            );
            for (file, path) in spec.files {
                match self.get(path, deadline).await {
                    Ok(reply) => meta.file(file, reply.text()),
                    Err(e) => log::info!(
                        "{}: {file} not available: {}",
                        spec.name,
                        crate::apply::chain(&e)
                    ),
                }
            }
            if let Ok(Some(keys)) = self.get(spec.keys, deadline).await.map(Reply::text) {
                meta.keys([keys]);
            }
            if let Some(path) = spec.userdata {
                meta.userdata = self.get(path, deadline).await.ok().and_then(Reply::body);
            }
            Ok(meta)
        })
    }
}
