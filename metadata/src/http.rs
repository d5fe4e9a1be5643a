//! Bounded HTTP: one per-request timeout, a size limit on every body, capped exponential backoff on
//! transient failures (connection errors, timeouts, 429, 5xx) and one deadline for the whole fetch.
//!
//! 404 and 410 mean "not there" and are returned as [`Reply::Missing`] at once; other 4xx and every
//! 3xx (redirects are never followed) are final errors. Nothing here retries past the caller's deadline.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

/// Timeouts, backoff and size limits.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Limit for one request, connection and body included.
    pub request_timeout: Duration,
    /// Limit for opening the connection.
    pub connect_timeout: Duration,
    /// First pause between attempts.
    pub backoff_start: Duration,
    /// Longest pause between attempts.
    pub backoff_cap: Duration,
    /// Largest body accepted.
    pub max_body: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            backoff_start: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(1),
            max_body: 1024 * 1024,
        }
    }
}

/// A successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 2xx with this body.
    Body(Vec<u8>),
    /// 404 or 410: the resource does not exist.
    Missing(StatusCode),
}

impl Reply {
    /// The body, if there is one.
    pub fn body(self) -> Option<Vec<u8>> {
        match self {
            Reply::Body(b) => Some(b),
            Reply::Missing(_) => None,
        }
    }

    /// The body as trimmed text, if there is one and it is UTF-8.
    pub fn text(self) -> Option<String> {
        self.body()
            .and_then(|b| String::from_utf8(b).ok())
            .map(|s| s.trim().to_string())
    }
}

/// A fetch that did not produce a [`Reply`].
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The client could not be built.
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    /// A status that is not worth retrying (401, 403, 405, other 4xx).
    #[error("{method} {url}: HTTP {status}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
    },
    /// The body was larger than allowed.
    #[error("{url}: reply larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    /// The deadline passed; `last` says what the last attempt got.
    #[error("{url}: no answer before the deadline ({attempts} attempts, last: {last})")]
    Deadline {
        url: String,
        attempts: u32,
        last: String,
    },
}

impl FetchError {
    /// The HTTP status, for status errors.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Request {
    /// GET, PUT, POST.
    pub method: Method,
    /// Full URL.
    pub url: String,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Body for PUT/POST.
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// Adds a header; invalid names or values are dropped (they come from our own constants or
    /// from tokens already returned by the server as header-safe text).
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }
}

/// An HTTP client with a [`Policy`].
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    policy: Policy,
}

enum Attempt {
    Done(Result<Reply, FetchError>),
    Retry(String),
}

impl Http {
    /// A plain-HTTP client (no CA store needed).
    pub fn new(policy: Policy) -> Result<Self, FetchError> {
        Self::with_roots(policy, Vec::new())
    }

    /// A client that trusts exactly `roots` for HTTPS.
    pub fn with_roots(
        policy: Policy,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<Self, FetchError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .retry(reqwest::retry::never())
            // Metadata servers never redirect; following one would carry the IMDSv2 token (and
            // every other header) to wherever `Location` points. A 3xx is a final error.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            .tls_certs_only(roots)
            .build()
            .map_err(FetchError::Client)?;
        Ok(Self { client, policy })
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Sends `req`, retrying transient failures with capped backoff until `deadline`.
    pub async fn send(&self, req: &Request, deadline: Instant) -> Result<Reply, FetchError> {
        let mut pause = self.policy.backoff_start;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = match self.attempt(req, deadline).await {
                Attempt::Done(result) => return result,
                Attempt::Retry(why) => why,
            };
            log::debug!("{} {}: {last}", req.method, req.url);
            let now = Instant::now();
            if now + pause >= deadline {
                return Err(FetchError::Deadline {
                    url: req.url.clone(),
                    attempts,
                    last,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.policy.backoff_cap);
        }
    }

    /// A GET with retries; see [`Http::send`].
    pub async fn get(&self, url: &str, deadline: Instant) -> Result<Reply, FetchError> {
        self.send(&Request::get(url), deadline).await
    }

    async fn attempt(&self, req: &Request, deadline: Instant) -> Attempt {
        let timeout = self
            .policy
            .request_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        if timeout.is_zero() {
            return Attempt::Retry("deadline reached".into());
        }
        let exchange = self.exchange(req);
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Attempt::Retry(format!("timed out after {timeout:?}")),
            Ok(result) => result,
        }
    }

    async fn exchange(&self, req: &Request) -> Attempt {
        let mut builder = self
            .client
            .request(req.method.clone(), &req.url)
            .headers(req.headers.clone());
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        } else if req.method == Method::PUT || req.method == Method::POST {
            builder = builder.body(Vec::new());
        }
        let mut resp = match builder.send().await {
            Ok(resp) => resp,
            Err(e) => return Attempt::Retry(crate::apply::chain(&e)),
        };
        let status = resp.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Attempt::Done(Ok(Reply::Missing(status)));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Attempt::Retry(format!("HTTP {status}"));
        }
        if !status.is_success() {
            let (method, url) = (req.method.clone(), req.url.clone());
            return Attempt::Done(Err(FetchError::Status {
                method,
                url,
                status,
            }));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.policy.max_body as u64)
        {
            return Attempt::Done(Err(self.too_large(req)));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.policy.max_body {
                        return Attempt::Done(Err(self.too_large(req)));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Attempt::Done(Ok(Reply::Body(body))),
                Err(e) => return Attempt::Retry(crate::apply::chain(&e)),
            }
        }
    }

    fn too_large(&self, req: &Request) -> FetchError {
        FetchError::TooLarge {
            url: req.url.clone(),
            limit: self.policy.max_body,
        }
    }
}

/// Loads a PEM bundle (for example `/etc/ssl/certs/ca-certificates.crt`); a missing or unreadable
/// file gives no roots, so HTTPS then fails with a certificate error naming the host.
pub fn load_roots(path: &std::path::Path) -> Vec<reqwest::Certificate> {
    std::fs::read(path)
        .ok()
        .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok())
        .unwrap_or_default()
}
