//! Scaleway: `GET /conf` (`KEY=VALUE` lines) and userdata from `GET /user_data/cloud-init`, which the
//! server answers only for requests from a privileged (< 1024) source port.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError, fetch_err};
use crate::dmi::Cloud;
use crate::http::{Http, Reply};
use crate::model::Metadata;

/// The Scaleway metadata server.
#[derive(Debug)]
pub struct Scaleway {
    http: Http,
    addr: SocketAddr,
}

impl Scaleway {
    /// Scaleway at `addr`.
    pub fn new(http: Http, addr: SocketAddr) -> Self {
        Self { http, addr }
    }

    async fn conf(&self, deadline: Instant) -> Result<Reply, ProviderError> {
        self.http
            .get(&format!("http://{}/conf", self.addr), deadline)
            .await
            .map_err(fetch_err("scaleway", "conf"))
    }

    /// `GET /user_data/cloud-init` from a source port below 1024; `None` on 404.
    async fn userdata(&self, deadline: Instant) -> Result<Option<Vec<u8>>, ProviderError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| ProviderError::Io {
                provider: "scaleway",
                what,
                source,
            }
        };
        let work = async {
            let mut stream = privileged_connect(self.addr)
                .await
                .map_err(io("connecting from a privileged port"))?;
            let req = format!(
                "GET /user_data/cloud-init HTTP/1.0\r\nHost: {}\r\n\r\n",
                self.addr.ip()
            );
            stream
                .write_all(req.as_bytes())
                .await
                .map_err(io("sending the userdata request"))?;
            let limit = self.http.policy().max_body + 16 * 1024;
            let raw = read_reply(&mut stream, limit)
                .await
                .map_err(io("reading the userdata reply"))?;
            if raw.len() > limit {
                return Err(ProviderError::Parse {
                    provider: "scaleway",
                    what: "userdata reply".into(),
                    detail: format!("larger than {limit} bytes"),
                });
            }
            let (status, body) =
                parse_http_response(&raw).map_err(|detail| ProviderError::Parse {
                    provider: "scaleway",
                    what: "userdata reply".into(),
                    detail,
                })?;
            match status {
                200 => Ok(Some(body.to_vec())),
                404 => Ok(None),
                other => Err(ProviderError::Parse {
                    provider: "scaleway",
                    what: "userdata reply".into(),
                    detail: format!("HTTP {other}"),
                }),
            }
        };
        let timeout = self
            .http
            .policy()
            .request_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ProviderError::Io {
                provider: "scaleway",
                what: "userdata request timed out".into(),
                source: std::io::ErrorKind::TimedOut.into(),
            })?
    }
}

/// Connects to `addr` from the first free local port in 1..1024 (needs CAP_NET_BIND_SERVICE).
async fn privileged_connect(addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let mut last = std::io::Error::from(std::io::ErrorKind::AddrInUse);
    for port in (1..1024u16).rev() {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        let local = SocketAddr::new(
            if addr.is_ipv4() {
                [0, 0, 0, 0].into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            },
            port,
        );
        if let Err(e) = socket.bind(local) {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                return Err(e);
            }
            last = e;
            continue;
        }
        match socket.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse || e.raw_os_error() == Some(99) => {
                last = e
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Reads until the server closes, the `Content-Length` body is complete, or `limit` is passed.
async fn read_reply(stream: &mut tokio::net::TcpStream, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await?;
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
        if n == 0 || raw.len() > limit || reply_complete(&raw) {
            return Ok(raw);
        }
    }
}

/// Whether `raw` holds the headers and a body as long as its `Content-Length`.
fn reply_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|len| raw.len() >= end + 4 + len)
}

/// Splits a raw HTTP/1.x reply into status code and body.
pub fn parse_http_response(raw: &[u8]) -> Result<(u16, &[u8]), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(raw.get(..end).ok_or("short reply")?)
        .map_err(|_| "headers are not UTF-8")?;
    let body = raw.get(end + 4..).unwrap_or_default();
    let status_line = head.lines().next().ok_or("empty reply")?;
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP reply: {status_line:?}"));
    }
    let code = parts
        .next()
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c));
    code.map(|c| (c, body))
        .ok_or_else(|| format!("bad status line {status_line:?}"))
}

/// Parses `KEY=VALUE` lines; values lose surrounding single quotes.
pub fn parse_conf(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('\'').to_string(),
            )
        })
        .collect()
}

/// Keys from `SSH_PUBLIC_KEYS=<n>` and `SSH_PUBLIC_KEYS_<i>_KEY`.
pub fn conf_keys(conf: &BTreeMap<String, String>) -> Vec<String> {
    let count = conf
        .get("SSH_PUBLIC_KEYS")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(1000);
    (0..count)
        .filter_map(|i| conf.get(&format!("SSH_PUBLIC_KEYS_{i}_KEY")).cloned())
        .collect()
}

impl Provider for Scaleway {
    fn name(&self) -> &'static str {
        "scaleway"
    }
    fn locality(&self) -> Locality {
        Locality::Network
    }
    fn cloud(&self) -> Option<Cloud> {
        Some(Cloud::Scaleway)
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move { Ok(matches!(self.conf(deadline).await?, Reply::Body(_))) })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let text = self
                .conf(deadline)
                .await?
                .text()
                .ok_or(ProviderError::Missing {
                    provider: "scaleway",
                    what: "conf".into(),
                })?;
            let conf = parse_conf(&text);
            let mut meta = Metadata::new("Scaleway");
            let required = |key: &str| {
                conf.get(key).cloned().ok_or(ProviderError::Missing {
                    provider: "scaleway",
                    what: key.to_string(),
                })
            };
            meta.hostname = Some(required("HOSTNAME")?);
            meta.file("instance_id", Some(required("ID")?));
            meta.file("instance_location", Some(required("LOCATION_ZONE_ID")?));
            meta.file("public_ip", conf.get("PUBLIC_IP_ADDRESS").cloned());
            meta.file("private_ip", Some(required("PRIVATE_IP")?));
            meta.keys(conf_keys(&conf));
            meta.userdata = match self.userdata(deadline).await {
                Ok(u) => u,
                Err(e) => {
                    log::info!("scaleway: no userdata: {}", crate::apply::chain(&e));
                    None
                }
            };
            Ok(meta)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_and_keys_parse() {
        let conf = parse_conf(
            "HOSTNAME=web\nSSH_PUBLIC_KEYS=2\nSSH_PUBLIC_KEYS_0_KEY='ssh-rsa A'\nSSH_PUBLIC_KEYS_1_KEY='ssh-rsa B'\ngarbage\n",
        );
        assert_eq!(conf.get("HOSTNAME").map(String::as_str), Some("web"));
        assert_eq!(conf_keys(&conf), ["ssh-rsa A", "ssh-rsa B"]);
    }

    #[test]
    fn raw_replies_parse() {
        assert_eq!(
            parse_http_response(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\nbody"),
            Ok((200, &b"body"[..]))
        );
        assert_eq!(
            parse_http_response(b"HTTP/1.1 404 Not Found\r\n\r\n").map(|r| r.0),
            Ok(404)
        );
        assert!(parse_http_response(b"garbage").is_err());
        assert!(parse_http_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_http_response(b"HTTP/1.1 99999 x\r\n\r\n").is_err());
    }
}
