//! QEMU fw_cfg: `-fw_cfg name=opt/org.linuxkit/user-data,file=...` (and optionally
//! `opt/org.linuxkit/hostname`), read from `/sys/firmware/qemu_fw_cfg/by_name/<name>/raw` (the
//! `qemu_fw_cfg` kernel module must be loaded).

use std::path::PathBuf;

use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError};
use crate::apply::MAX_USERDATA;
use crate::model::Metadata;

/// The fw_cfg entry holding userdata.
pub const USERDATA_ENTRY: &str = "opt/org.linuxkit/user-data";
/// The fw_cfg entry holding the hostname.
pub const HOSTNAME_ENTRY: &str = "opt/org.linuxkit/hostname";

/// fw_cfg under a sysfs root.
#[derive(Debug)]
pub struct FwCfg {
    sysfs: PathBuf,
}

impl FwCfg {
    /// fw_cfg under `sysfs`.
    pub fn new(sysfs: PathBuf) -> Self {
        Self { sysfs }
    }

    fn read(&self, entry: &str) -> Result<Option<Vec<u8>>, ProviderError> {
        let path = self
            .sysfs
            .join("firmware/qemu_fw_cfg/by_name")
            .join(entry)
            .join("raw");
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Ok(m) if m.len() > MAX_USERDATA as u64 => {
                return Err(ProviderError::Parse {
                    provider: "fwcfg",
                    what: entry.into(),
                    detail: format!("larger than {MAX_USERDATA} bytes"),
                });
            }
            _ => {}
        }
        std::fs::read(&path)
            .map(Some)
            .map_err(|source| ProviderError::Io {
                provider: "fwcfg",
                what: format!("reading {}", path.display()),
                source,
            })
    }
}

impl Provider for FwCfg {
    fn name(&self) -> &'static str {
        "fwcfg"
    }
    fn locality(&self) -> Locality {
        Locality::Local
    }
    fn probe(&self, _deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            Ok(self.read(USERDATA_ENTRY)?.is_some() || self.read(HOSTNAME_ENTRY)?.is_some())
        })
    }
    fn fetch(&self, _deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let mut meta = Metadata::new("fw_cfg");
            meta.userdata = self.read(USERDATA_ENTRY)?;
            meta.hostname = self
                .read(HOSTNAME_ENTRY)?
                .map(|h| String::from_utf8_lossy(&h).trim().to_string());
            Ok(meta)
        })
    }
}
