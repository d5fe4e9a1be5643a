//! `file=PATH`: userdata from a local file (LinuxKit's `provider` string is the path).

use std::path::PathBuf;

use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError};
use crate::apply::MAX_USERDATA;
use crate::model::Metadata;

/// A userdata file.
#[derive(Debug)]
pub struct FileProvider {
    path: PathBuf,
}

impl FileProvider {
    /// Userdata from `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn read(&self) -> Result<Vec<u8>, ProviderError> {
        let io = |source| ProviderError::Io {
            provider: "file",
            what: format!("reading {}", self.path.display()),
            source,
        };
        let len = std::fs::metadata(&self.path).map_err(io)?.len();
        if len > MAX_USERDATA as u64 {
            return Err(ProviderError::Parse {
                provider: "file",
                what: self.path.display().to_string(),
                detail: format!("larger than {MAX_USERDATA} bytes"),
            });
        }
        std::fs::read(&self.path).map_err(io)
    }
}

impl Provider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }
    fn locality(&self) -> Locality {
        Locality::Local
    }
    fn probe(&self, _deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move { Ok(self.path.is_file()) })
    }
    fn fetch(&self, _deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let mut meta = Metadata::new(self.path.display().to_string());
            meta.userdata = Some(self.read()?);
            Ok(meta)
        })
    }
}
