//! The validated configuration: forwarding rules, the syslog forward and the limits.
//!
//! Pure parsing of the vsudd specs (`-inport PORT:unix:PATH`, `-syslog PORT:PATH`) and of the guestkit
//! `-forward LISTEN=TARGET` spec; nothing here touches a socket.

pub use crate::limits::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::endpoint::{
    CID_ANY, CID_HOST, Endpoint, EndpointError, guid_for_port, parse_vsock_port,
};

/// The schemes a `-forward` target may start with; the `=` before one of them splits the spec.
const SCHEMES: [&str; 3] = ["vsock:", "unix:", "tcp:"];

/// One listener and where its connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where to accept connections.
    pub listen: Endpoint,
    /// Where each accepted connection is forwarded.
    pub target: Endpoint,
    /// How log lines name the listener: the port text for `-inport` (as vsudd), the endpoint otherwise.
    pub label: String,
    /// Whether the rule came from `-inport` (vsudd's log lines) or `-forward`.
    pub legacy: bool,
}

/// `-syslog PORT:PATH`: datagrams on the unixgram `path` go to the host on `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSpec {
    /// Where the framed messages go (vsock CID 2 in production).
    pub target: Endpoint,
    /// The port text as given, for log lines.
    pub label: String,
    /// The unixgram socket to create.
    pub path: PathBuf,
}

/// Everything the daemon was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// Listeners in command-line order (`-inport` first, then `-forward`).
    pub rules: Vec<Rule>,
    /// The optional syslog forward.
    pub syslog: Option<SyslogSpec>,
    /// Where to write the pid.
    pub pidfile: Option<PathBuf>,
    /// Log to syslog and point stdio at `/dev/null` (does not fork, as in vsudd).
    pub detach: bool,
    /// Limits for every rule.
    pub limits: Limits,
}

/// A spec on the command line that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// An `-inport` or `-syslog` spec with too few `:`-separated parts (vsudd's wording).
    #[error("invalid value {spec:?} for flag -{flag}: Failed to parse: {spec}")]
    Shape {
        /// The flag name.
        flag: &'static str,
        /// The spec as given.
        spec: String,
    },
    /// `-inport` with a network other than `unix` (vsudd's wording).
    #[error("cannot forward incoming port to {net}:{path}")]
    InportNetwork {
        /// The network given.
        net: String,
        /// The path given.
        path: String,
    },
    /// A bad port or endpoint inside a spec.
    #[error("invalid value {spec:?} for flag -{flag}")]
    Endpoint {
        /// The flag name.
        flag: &'static str,
        /// The spec as given.
        spec: String,
        /// What was wrong.
        #[source]
        source: EndpointError,
    },
    /// `-forward` without `=` before a scheme.
    #[error(
        "invalid value {spec:?} for flag -forward: expected LISTEN=TARGET, for example unix:/run/docker.sock=vsock:2:2376"
    )]
    ForwardShape {
        /// The spec as given.
        spec: String,
    },
    /// A TCP target that no `-allow-tcp` names.
    #[error("-forward {spec:?}: TCP target {addr} is not allow-listed (add -allow-tcp {addr})")]
    TcpNotAllowed {
        /// The spec as given.
        spec: String,
        /// The target address.
        addr: SocketAddr,
    },
    /// A vsock listener with a specific CID.
    #[error("-forward {spec:?}: a vsock listener must use CID any (vsock:any:PORT)")]
    ListenCid {
        /// The spec as given.
        spec: String,
    },
    /// Two rules on the same listener.
    #[error("{listen} is used by two rules")]
    DuplicateListener {
        /// The listener.
        listen: Endpoint,
    },
    /// A numeric flag out of range or malformed.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
}

/// Parses a vsudd `-inport` spec `PORT:unix:PATH` (split on the first two colons).
pub fn parse_inport(spec: &str) -> Result<Rule, SpecError> {
    let mut parts = spec.splitn(3, ':');
    let (Some(port), Some(net), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SpecError::Shape {
            flag: "inport",
            spec: spec.to_owned(),
        });
    };
    if net != "unix" {
        return Err(SpecError::InportNetwork {
            net: net.to_owned(),
            path: path.to_owned(),
        });
    }
    let port = parse_vsock_port(port).map_err(|source| SpecError::Endpoint {
        flag: "inport",
        spec: spec.to_owned(),
        source,
    })?;
    if path.is_empty() {
        let source = EndpointError::EmptyPath {
            spec: format!("unix:{path}"),
        };
        return Err(SpecError::Endpoint {
            flag: "inport",
            spec: spec.to_owned(),
            source,
        });
    }
    Ok(Rule {
        listen: Endpoint::Vsock { cid: CID_ANY, port },
        target: Endpoint::Unix(PathBuf::from(path)),
        label: spec.split(':').next().unwrap_or_default().to_owned(),
        legacy: true,
    })
}

/// Parses a vsudd `-syslog` spec `PORT:PATH`; messages go to the host (CID 2).
pub fn parse_syslog(spec: &str) -> Result<SyslogSpec, SpecError> {
    let Some((port_text, path)) = spec.split_once(':') else {
        return Err(SpecError::Shape {
            flag: "syslog",
            spec: spec.to_owned(),
        });
    };
    let port = parse_vsock_port(port_text).map_err(|source| SpecError::Endpoint {
        flag: "syslog",
        spec: spec.to_owned(),
        source,
    })?;
    if path.is_empty() {
        return Err(SpecError::Shape {
            flag: "syslog",
            spec: spec.to_owned(),
        });
    }
    Ok(SyslogSpec {
        target: Endpoint::Vsock {
            cid: CID_HOST,
            port,
        },
        label: port_text.to_owned(),
        path: PathBuf::from(path),
    })
}

/// Parses `-forward LISTEN=TARGET`. The spec splits at the first `=` that is followed by `vsock:`, `unix:`
/// or `tcp:`, so a listening path may itself contain `=`. TCP targets must be in `allow_tcp`.
pub fn parse_forward(spec: &str, allow_tcp: &[SocketAddr]) -> Result<Rule, SpecError> {
    let split = spec
        .match_indices('=')
        .map(|(at, _)| at)
        .find(|&at| {
            SCHEMES
                .iter()
                .any(|scheme| spec[at + 1..].starts_with(scheme))
        })
        .ok_or_else(|| SpecError::ForwardShape {
            spec: spec.to_owned(),
        })?;
    let endpoint = |text: &str| {
        text.parse::<Endpoint>()
            .map_err(|source| SpecError::Endpoint {
                flag: "forward",
                spec: spec.to_owned(),
                source,
            })
    };
    let listen = endpoint(&spec[..split])?;
    let target = endpoint(&spec[split + 1..])?;
    if let Endpoint::Tcp(addr) = target
        && !allow_tcp.contains(&addr)
    {
        return Err(SpecError::TcpNotAllowed {
            spec: spec.to_owned(),
            addr,
        });
    }
    if matches!(listen, Endpoint::Vsock { cid, .. } if cid != CID_ANY) {
        return Err(SpecError::ListenCid {
            spec: spec.to_owned(),
        });
    }
    Ok(Rule {
        label: listen.to_string(),
        listen,
        target,
        legacy: false,
    })
}

/// Rejects two rules listening on the same endpoint.
pub fn check_unique_listeners(rules: &[Rule]) -> Result<(), SpecError> {
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i]
            .iter()
            .any(|earlier| earlier.listen == rule.listen)
        {
            return Err(SpecError::DuplicateListener {
                listen: rule.listen.clone(),
            });
        }
    }
    Ok(())
}

/// How a legacy rule's listener is described at startup, exactly as vsudd does.
pub fn listening_line(rule: &Rule) -> String {
    match (&rule.listen, rule.legacy && rule.label.contains('-')) {
        (Endpoint::Vsock { port, .. }, true) => format!(
            "Listening on ServiceId {} using vsock",
            guid_for_port(*port)
        ),
        (_, false) if rule.legacy => format!("Listening on port {}", rule.label),
        _ => format!("Listening on {}", rule.listen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inport_specs_parse_like_vsudd() {
        let rule = parse_inport("2374:unix:/run/containerd/containerd.sock").unwrap();
        assert_eq!(
            rule.listen,
            Endpoint::Vsock {
                cid: CID_ANY,
                port: 2374
            }
        );
        assert_eq!(
            rule.target,
            Endpoint::Unix("/run/containerd/containerd.sock".into())
        );
        assert_eq!(rule.label, "2374");
        assert_eq!(listening_line(&rule), "Listening on port 2374");

        let rule = parse_inport("00000946-FACB-11e6-bd58-64006a7986d3:unix:/a:b").unwrap();
        assert_eq!(
            rule.listen,
            Endpoint::Vsock {
                cid: CID_ANY,
                port: 2374
            }
        );
        assert_eq!(rule.target, Endpoint::Unix("/a:b".into()));
        assert_eq!(
            listening_line(&rule),
            "Listening on ServiceId 00000946-facb-11e6-bd58-64006a7986d3 using vsock"
        );
    }

    #[test]
    fn malformed_inport_specs_are_rejected_with_vsudd_wording() {
        let cases = [
            (
                "1234",
                "invalid value \"1234\" for flag -inport: Failed to parse: 1234",
            ),
            ("1234:unix", "Failed to parse: 1234:unix"),
            (
                "1234:tcp:1.2.3.4:5",
                "cannot forward incoming port to tcp:1.2.3.4:5",
            ),
            ("abc:unix:/x", "vsock port \"abc\""),
            ("4294967296:unix:/x", "vsock port \"4294967296\""),
            ("1234:unix:", "empty path"),
            (
                "00000946-0000-11e6-bd58-64006a7986d3:unix:/x",
                "does not match the template",
            ),
        ];
        for (i, (spec, needle)) in cases.iter().enumerate() {
            let err = parse_inport(spec).expect_err(spec);
            let chain = error_chain(&err);
            assert!(chain.contains(needle), "case {i}: {spec:?} gave {chain}");
        }
    }

    #[test]
    fn syslog_specs_target_the_host() {
        let spec = parse_syslog("514:/var/run/syslog.sock").unwrap();
        assert_eq!(
            spec.target,
            Endpoint::Vsock {
                cid: CID_HOST,
                port: 514
            }
        );
        assert_eq!(spec.path, PathBuf::from("/var/run/syslog.sock"));
        for bad in ["514", "514:", "x:/a", ""] {
            assert!(parse_syslog(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn forward_specs_split_before_the_target_scheme() {
        let allow: Vec<SocketAddr> = vec!["10.0.2.2:2375".parse().unwrap()];
        let rule = parse_forward("unix:/run/docker.sock=vsock:2:2376", &allow).unwrap();
        assert_eq!(rule.listen, Endpoint::Unix("/run/docker.sock".into()));
        assert_eq!(rule.target, Endpoint::Vsock { cid: 2, port: 2376 });
        assert_eq!(listening_line(&rule), "Listening on unix:/run/docker.sock");

        let rule = parse_forward("unix:/run/a=b.sock=unix:/c=d", &allow).unwrap();
        assert_eq!(rule.listen, Endpoint::Unix("/run/a=b.sock".into()));
        assert_eq!(rule.target, Endpoint::Unix("/c=d".into()));

        let rule = parse_forward("vsock:any:2375=tcp:10.0.2.2:2375", &allow).unwrap();
        assert_eq!(rule.target, Endpoint::Tcp(allow[0]));
    }

    #[test]
    fn malformed_forward_specs_are_rejected() {
        let allow: Vec<SocketAddr> = vec!["10.0.2.2:2375".parse().unwrap()];
        let cases = [
            ("unix:/a", "expected LISTEN=TARGET"),
            ("unix:/a=udp:1.2.3.4:5", "expected LISTEN=TARGET"),
            ("=unix:/b", "has no scheme"),
            ("vsock:any:x=unix:/b", "vsock port \"x\""),
            (
                "vsock:any:1=tcp:10.0.2.2:2376",
                "not allow-listed (add -allow-tcp 10.0.2.2:2376)",
            ),
            ("vsock:3:1=unix:/b", "must use CID any"),
        ];
        for (i, (spec, needle)) in cases.iter().enumerate() {
            let err = parse_forward(spec, &allow).expect_err(spec);
            let chain = error_chain(&err);
            assert!(chain.contains(needle), "case {i}: {spec:?} gave {chain}");
        }
    }

    #[test]
    fn duplicate_listeners_are_rejected() {
        let a = parse_inport("1:unix:/a").unwrap();
        let b = parse_inport("1:unix:/b").unwrap();
        assert!(check_unique_listeners(std::slice::from_ref(&a)).is_ok());
        assert!(check_unique_listeners(&[a, b]).is_err());
    }

    use logging::error_chain;
}
