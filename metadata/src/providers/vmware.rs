//! VMware guestinfo (`guestinfo.metadata`, `.userdata`, `.vendordata`, each with an optional
//! `.encoding` of `base64` or `gzip+base64`), read through `vmware-rpctool "info-get KEY"`.
//!
//! NOTE: the VMware backdoor I/O port only exists under VMware; rather than poke it with `unsafe`
//! port I/O, we use the `vmware-rpctool` from open-vm-tools when the image carries it. Without the
//! tool (or outside VMware) the provider reports itself absent.

use std::io::Read;
use std::path::PathBuf;

use base64::Engine;
use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError};
use crate::dmi::Cloud;
use crate::model::Metadata;

/// guestinfo through `vmware-rpctool`.
#[derive(Debug)]
pub struct Vmware {
    rpctool: PathBuf,
}

/// Decodes a guestinfo value by its `.encoding`.
pub fn decode(value: &str, encoding: &str) -> Result<Vec<u8>, String> {
    let b64 = || {
        base64::engine::general_purpose::STANDARD
            .decode(value.trim().as_bytes())
            .map_err(|e| format!("bad base64: {e}"))
    };
    match encoding.trim() {
        "" => Ok(value.as_bytes().to_vec()),
        "base64" | "b64" => b64(),
        "gzip+base64" | "gz+b64" => {
            let limit = crate::apply::MAX_USERDATA;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(b64()?.as_slice())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad gzip: {e}"))?;
            if out.len() > limit {
                return Err(format!("gzip expands to more than {limit} bytes"));
            }
            Ok(out)
        }
        other => Err(format!("unknown encoding {other:?}")),
    }
}

impl Vmware {
    /// guestinfo through the tool at `rpctool`.
    pub fn new(rpctool: PathBuf) -> Self {
        Self { rpctool }
    }

    /// One `vmware-rpctool "info-get KEY"`, killed if it has not answered by `deadline`.
    async fn info_get(
        &self,
        key: &str,
        deadline: Instant,
    ) -> Result<Option<String>, ProviderError> {
        let run = tokio::process::Command::new(&self.rpctool)
            .arg(format!("info-get {key}"))
            .kill_on_drop(true)
            .output();
        let io = |what: String, source| ProviderError::Io {
            provider: "vmware",
            what,
            source,
        };
        let out = tokio::time::timeout_at(deadline, run)
            .await
            .map_err(|_| {
                io(
                    format!(
                        "{} info-get {key} did not answer before the deadline",
                        self.rpctool.display()
                    ),
                    std::io::ErrorKind::TimedOut.into(),
                )
            })?
            .map_err(|source| io(format!("running {}", self.rpctool.display()), source))?;
        Ok(out
            .status
            .success()
            .then(|| {
                String::from_utf8_lossy(&out.stdout)
                    .trim_end_matches('\n')
                    .to_string()
            })
            .filter(|s| !s.is_empty()))
    }

    async fn value(&self, key: &str, deadline: Instant) -> Result<Option<Vec<u8>>, ProviderError> {
        let Some(raw) = self.info_get(&format!("guestinfo.{key}"), deadline).await? else {
            return Ok(None);
        };
        let encoding = self
            .info_get(&format!("guestinfo.{key}.encoding"), deadline)
            .await?
            .unwrap_or_default();
        decode(&raw, &encoding)
            .map(Some)
            .map_err(|detail| ProviderError::Parse {
                provider: "vmware",
                what: format!("guestinfo.{key}"),
                detail,
            })
    }
}

impl Provider for Vmware {
    fn name(&self) -> &'static str {
        "vmware"
    }
    fn locality(&self) -> Locality {
        Locality::Local
    }
    fn cloud(&self) -> Option<Cloud> {
        Some(Cloud::Vmware)
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            if !self.rpctool.is_file() {
                return Ok(false);
            }
            Ok(self
                .info_get("guestinfo.metadata", deadline)
                .await?
                .is_some()
                || self
                    .info_get("guestinfo.userdata", deadline)
                    .await?
                    .is_some())
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let mut meta = Metadata::new("VMware");
            if let Some(m) = self.value("metadata", deadline).await? {
                meta.files.insert("metadata".into(), m);
            }
            if let Some(v) = self.value("vendordata", deadline).await? {
                meta.files.insert("vendordata".into(), v);
            }
            meta.userdata = self.value("userdata", deadline).await?;
            Ok(meta)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn encodings() {
        assert_eq!(super::decode("aGk=", "base64").unwrap(), b"hi");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"zipped").unwrap();
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            gz.finish().unwrap(),
        );
        assert_eq!(super::decode(&b64, "gzip+base64").unwrap(), b"zipped");
        assert!(super::decode("x", "rot13").is_err());
        // A bomb: more than the userdata limit once inflated is an error, not a silent cut.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; crate::apply::MAX_USERDATA + 1])
            .unwrap();
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            gz.finish().unwrap(),
        );
        let err = super::decode(&b64, "gzip+base64").unwrap_err();
        assert!(err.contains("more than 16777216 bytes"), "{err}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; crate::apply::MAX_USERDATA])
            .unwrap();
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            gz.finish().unwrap(),
        );
        assert_eq!(
            super::decode(&b64, "gzip+base64").unwrap().len(),
            crate::apply::MAX_USERDATA
        );
    }
}
