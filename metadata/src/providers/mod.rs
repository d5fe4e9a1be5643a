//! One module per source. Every provider answers two questions, [`Provider::probe`] ("is this
//! you?") and [`Provider::fetch`] ("what do you know?"), and returns data; none writes files.
//! [`build`] is the single table from LinuxKit's command-line names to providers.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::time::Instant;

use crate::dmi::Cloud;
use crate::http::{FetchError, Http, Policy};
use crate::model::Metadata;

pub mod azure;
pub mod cdrom;
pub mod ec2;
pub mod equinix;
pub mod file;
pub mod fwcfg;
pub mod gcp;
pub mod mmds;
pub mod scaleway;
pub mod simple;
pub mod vmware;

/// A boxed future, so that the trait stays object safe.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a provider looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locality {
    /// Disks, firmware, files, tools: answers at once, no network.
    Local,
    /// An HTTP endpoint.
    Network,
}

/// A provider that could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// An HTTP exchange failed.
    #[error("{provider}: fetching {what}")]
    Fetch {
        provider: &'static str,
        what: String,
        #[source]
        source: FetchError,
    },
    /// A reply or file did not parse.
    #[error("{provider}: {what} is malformed: {detail}")]
    Parse {
        provider: &'static str,
        what: String,
        detail: String,
    },
    /// A required item was absent.
    #[error("{provider}: {what} is missing")]
    Missing {
        provider: &'static str,
        what: String,
    },
    /// A local operation (mount, read, run a tool, netlink) failed.
    #[error("{provider}: {what}")]
    Io {
        provider: &'static str,
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// A metadata source.
pub trait Provider: std::fmt::Debug + Send + Sync {
    /// The command-line name (`aws`, `cdrom`).
    fn name(&self) -> &'static str;
    /// Local or network.
    fn locality(&self) -> Locality;
    /// The cloud DMI/SMBIOS must name for this provider, if the platform has a DMI signature.
    fn cloud(&self) -> Option<Cloud> {
        None
    }
    /// Whether this source is present. `Ok(false)` is a definite "no".
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>>;
    /// Everything the source offers; called only after a successful probe.
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>>;
    /// What a probe still running at the deadline was stuck on (`still reading /dev/vda ...`), for the
    /// summary; `None` when there is nothing more to say than "no answer".
    fn stalled(&self) -> Option<String> {
        None
    }
    /// Tells the platform that provisioning finished (Azure); nothing for most.
    fn report_ready(&self, _deadline: Instant) -> BoxFut<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Endpoints, overridable for tests and unusual set-ups.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The link-local metadata server (`http://169.254.169.254`): AWS, GCP, Hetzner, OpenStack,
    /// Vultr, DigitalOcean, Azure IMDS.
    pub imds: String,
    /// AWS's IPv6 endpoint (`http://[fd00:ec2::254]`).
    pub imds_v6: Option<String>,
    /// Firecracker MMDS (`http://169.254.169.254`).
    pub mmds: String,
    /// Scaleway (`169.254.42.42:80`).
    pub scaleway: SocketAddr,
    /// Equinix Metal (`https://metadata.platformequinix.com`).
    pub equinix: String,
    /// Metaldata (`http://metaldata`).
    pub metaldata: String,
    /// Azure WireServer (`http://168.63.129.16`).
    pub wireserver: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        let imds = "http://169.254.169.254".to_string();
        Self {
            mmds: imds.clone(),
            imds,
            imds_v6: Some("http://[fd00:ec2::254]".into()),
            scaleway: SocketAddr::from(([169, 254, 42, 42], 80)),
            equinix: "https://metadata.platformequinix.com".into(),
            metaldata: "http://metaldata".into(),
            wireserver: "http://168.63.129.16".into(),
        }
    }
}

impl Endpoints {
    /// Every HTTP endpoint at `base` and Scaleway at `scaleway` (a test server).
    pub fn all_at(base: &str, scaleway: SocketAddr) -> Self {
        Self {
            imds: base.into(),
            imds_v6: None,
            mmds: base.into(),
            scaleway,
            equinix: base.into(),
            metaldata: base.into(),
            wireserver: base.into(),
        }
    }
}

/// Roots and settings the providers work with. Nothing reads a fixed path.
#[derive(Debug, Clone)]
pub struct Env {
    /// `/sys`.
    pub sysfs: PathBuf,
    /// `/dev`.
    pub dev: PathBuf,
    /// HTTP endpoints.
    pub endpoints: Endpoints,
    /// HTTP limits.
    pub policy: Policy,
    /// CA bundle for HTTPS (Equinix Metal).
    pub ca_bundle: PathBuf,
    /// `vmware-rpctool`.
    pub rpctool: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        Self {
            sysfs: "/sys".into(),
            dev: "/dev".into(),
            endpoints: Endpoints::default(),
            policy: Policy::default(),
            ca_bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
            rpctool: "/usr/bin/vmware-rpctool".into(),
        }
    }
}

/// LinuxKit's default order, with the sources LinuxKit lacks inserted where they cannot shadow it.
pub const DEFAULT_ORDER: &[&str] = &[
    "aws",
    "gcp",
    "hetzner",
    "openstack",
    "scaleway",
    "vultr",
    "digitalocean",
    "azure",
    "equinixmetal",
    "metaldata",
    "mmds",
    "vmware",
    "configdrive",
    "cdrom",
    "fwcfg",
];

/// Every name [`build`] accepts (besides `file=PATH`).
pub const NAMES: &[&str] = DEFAULT_ORDER;

/// A name that is not a provider.
#[derive(Debug, thiserror::Error)]
#[error("Unrecognised metadata provider: {0}")]
pub struct UnknownProvider(pub String);

/// Builds the provider for one command-line token.
pub fn build(token: &str, env: &Env, http: &Http) -> Result<Box<dyn Provider>, UnknownProvider> {
    if let Some(path) = token.strip_prefix("file=") {
        return Ok(Box::new(file::FileProvider::new(path.into())));
    }
    let imds = env.endpoints.imds.clone();
    Ok(match token {
        "aws" => Box::new(ec2::Aws::new(
            http.clone(),
            imds,
            env.endpoints.imds_v6.clone(),
        )),
        "hetzner" => Box::new(ec2::Ec2Style::hetzner(http.clone(), imds)),
        "openstack" => Box::new(ec2::Ec2Style::openstack(http.clone(), imds)),
        "gcp" => Box::new(gcp::Gcp::new(http.clone(), imds)),
        "scaleway" => Box::new(scaleway::Scaleway::new(
            http.clone(),
            env.endpoints.scaleway,
        )),
        "vultr" => Box::new(simple::Simple::vultr(http.clone(), imds)),
        "digitalocean" => Box::new(simple::Simple::digitalocean(http.clone(), imds)),
        "metaldata" => Box::new(simple::Simple::metaldata(
            http.clone(),
            env.endpoints.metaldata.clone(),
        )),
        "equinixmetal" => Box::new(equinix::Equinix::new(env)),
        "azure" => Box::new(azure::Azure::new(
            http.clone(),
            imds,
            env.endpoints.wireserver.clone(),
        )),
        "mmds" => Box::new(mmds::Mmds::new(http.clone(), env.endpoints.mmds.clone())),
        "vmware" => Box::new(vmware::Vmware::new(env.rpctool.clone())),
        "cdrom" => Box::new(cdrom::Cdrom::nocloud(env)),
        "configdrive" => Box::new(cdrom::Cdrom::configdrive(env)),
        "fwcfg" => Box::new(fwcfg::FwCfg::new(env.sysfs.clone())),
        other => return Err(UnknownProvider(other.to_string())),
    })
}

/// Wraps a fetch error with the provider and item.
pub(crate) fn fetch_err<'a>(
    provider: &'static str,
    what: &'a str,
) -> impl FnOnce(FetchError) -> ProviderError + 'a {
    move |source| ProviderError::Fetch {
        provider,
        what: what.to_string(),
        source,
    }
}
