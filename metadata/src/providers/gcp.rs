//! Google Compute Engine: `computeMetadata/v1` with `Metadata-Flavor: Google`.
//!
//! Reached at `169.254.169.254` rather than `metadata.google.internal`, so no DNS is needed.

use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError, fetch_err};
use crate::dmi::Cloud;
use crate::http::{Http, Reply, Request};
use crate::model::Metadata;

/// The GCE metadata server.
#[derive(Debug)]
pub struct Gcp {
    http: Http,
    base: String,
}

impl Gcp {
    /// GCE at `base`.
    pub fn new(http: Http, base: String) -> Self {
        Self { http, base }
    }

    async fn get(&self, path: &str, deadline: Instant) -> Result<Reply, ProviderError> {
        let req = Request::get(format!("{}/computeMetadata/v1/{path}", self.base))
            .header("metadata-flavor", "Google");
        self.http
            .send(&req, deadline)
            .await
            .map_err(fetch_err("gcp", path))
    }
}

/// `user:key` lines to keys (usernames dropped, as LinuxKit does).
pub fn parse_ssh_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(_, key)| key.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

impl Provider for Gcp {
    fn name(&self) -> &'static str {
        "gcp"
    }
    fn locality(&self) -> Locality {
        Locality::Network
    }
    fn cloud(&self) -> Option<Cloud> {
        Some(Cloud::Gcp)
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            Ok(matches!(
                self.get("instance/hostname", deadline).await?,
                Reply::Body(_)
            ))
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let mut meta = Metadata::new("GCP");
            meta.hostname = Some(
                self.get("instance/hostname", deadline)
                    .await?
                    .text()
                    .ok_or(ProviderError::Missing {
                        provider: "gcp",
                        what: "hostname".into(),
                    })?,
            );
            for path in [
                "project/attributes/ssh-keys",
                "instance/attributes/ssh-keys",
            ] {
                if let Ok(Some(text)) = self.get(path, deadline).await.map(Reply::text) {
                    meta.keys(parse_ssh_keys(&text));
                }
            }
            meta.userdata = self
                .get("instance/attributes/user-data", deadline)
                .await
                .ok()
                .and_then(Reply::body);
            Ok(meta)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usernames_are_dropped() {
        assert_eq!(
            super::parse_ssh_keys("alice:ssh-rsa AAA alice\nbad line\nbob:ssh-ed25519 BBB\n"),
            ["ssh-rsa AAA alice", "ssh-ed25519 BBB"]
        );
    }
}
