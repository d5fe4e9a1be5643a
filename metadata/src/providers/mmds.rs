//! Firecracker MMDS (version 2): `PUT /latest/api/token` with `X-metadata-token-ttl-seconds`, then
//! `GET /` with `X-metadata-token` and `Accept: application/json`. The store is free-form JSON; we
//! take `hostname`, `public-keys` and `user-data` from the top level or from an EC2-shaped
//! `latest/meta-data` tree, and write the whole document to `mmds.json`.

use serde_json::Value;
use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError, fetch_err};
use crate::http::{Http, Reply, Request};
use crate::model::Metadata;

/// The MMDS client.
#[derive(Debug)]
pub struct Mmds {
    http: Http,
    base: String,
}

impl Mmds {
    /// MMDS at `base`.
    pub fn new(http: Http, base: String) -> Self {
        Self { http, base }
    }

    async fn document(&self, deadline: Instant) -> Result<Reply, ProviderError> {
        let mut put = Request::get(format!("{}/latest/api/token", self.base))
            .header("x-metadata-token-ttl-seconds", "300");
        put.method = reqwest::Method::PUT;
        let token = self
            .http
            .send(&put, deadline)
            .await
            .map_err(fetch_err("mmds", "the session token"))?;
        let Some(token) = token.text() else {
            return Ok(Reply::Missing(reqwest::StatusCode::NOT_FOUND));
        };
        let get = Request::get(format!("{}/", self.base))
            .header("x-metadata-token", &token)
            .header("accept", "application/json");
        self.http
            .send(&get, deadline)
            .await
            .map_err(fetch_err("mmds", "the data store"))
    }
}

fn lookup<'a>(doc: &'a Value, paths: &[&[&str]]) -> Option<&'a Value> {
    paths
        .iter()
        .find_map(|path| path.iter().try_fold(doc, |v, k| v.get(*k)))
}

/// Turns the MMDS JSON document into metadata.
pub fn parse_document(body: &[u8]) -> Result<Metadata, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !doc.is_object() {
        return Err("the MMDS document is not a JSON object".into());
    }
    let mut meta = Metadata::new("MMDS");
    meta.hostname = lookup(&doc, &[&["hostname"], &["latest", "meta-data", "hostname"]])
        .and_then(Value::as_str)
        .map(str::to_string);
    match lookup(
        &doc,
        &[&["public-keys"], &["latest", "meta-data", "public-keys"]],
    ) {
        Some(Value::Array(keys)) => {
            meta.keys(keys.iter().filter_map(Value::as_str).map(str::to_string))
        }
        Some(Value::String(k)) => meta.keys([k.clone()]),
        Some(Value::Object(map)) => meta.keys(
            map.values()
                .filter_map(|v| v.get("openssh-key").and_then(Value::as_str))
                .map(str::to_string),
        ),
        _ => {}
    }
    meta.userdata = lookup(&doc, &[&["user-data"], &["latest", "user-data"]])
        .and_then(Value::as_str)
        .map(|s| s.as_bytes().to_vec());
    meta.files.insert("mmds.json".into(), body.to_vec());
    Ok(meta)
}

impl Provider for Mmds {
    fn name(&self) -> &'static str {
        "mmds"
    }
    fn locality(&self) -> Locality {
        Locality::Network
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            Ok(match self.document(deadline).await? {
                Reply::Body(b) => parse_document(&b).is_ok(),
                Reply::Missing(_) => false,
            })
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let body = self
                .document(deadline)
                .await?
                .body()
                .ok_or(ProviderError::Missing {
                    provider: "mmds",
                    what: "data store".into(),
                })?;
            parse_document(&body).map_err(|detail| ProviderError::Parse {
                provider: "mmds",
                what: "data store".into(),
                detail,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ec2_shaped_and_flat_documents() {
        let m = super::parse_document(br#"{"latest":{"meta-data":{"hostname":"fc","public-keys":{"0":{"openssh-key":"ssh-ed25519 K"}}},"user-data":"hi"}}"#).unwrap();
        assert_eq!(m.hostname.as_deref(), Some("fc"));
        assert_eq!(m.ssh_keys, ["ssh-ed25519 K"]);
        assert_eq!(m.userdata.as_deref(), Some(&b"hi"[..]));
        assert!(super::parse_document(b"[1]").is_err());
    }
}
