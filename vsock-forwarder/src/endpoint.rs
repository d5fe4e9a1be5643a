//! Addresses the forwarder listens on or dials: `vsock:CID:PORT`, `unix:PATH` and `tcp:IP:PORT`.
//!
//! Vsock ports are decimal numbers or Hyper-V service GUIDs of the form
//! `XXXXXXXX-facb-11e6-bd58-64006a7986d3`, which map to port `0xXXXXXXXX` as in LinuxKit's vsudd.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// The vsock CID meaning "any local address" (listeners bind to it).
pub const CID_ANY: u32 = u32::MAX;
/// The vsock CID of the host.
pub const CID_HOST: u32 = 2;

/// The tail every Hyper-V service GUID that maps to a vsock port must have.
const GUID_TEMPLATE_TAIL: &str = "-facb-11e6-bd58-64006a7986d3";

/// One side of a forward.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An AF_VSOCK address; a listener uses `cid` [`CID_ANY`].
    Vsock {
        /// Context id (2 is the host, 1 the local loopback, [`CID_ANY`] any).
        cid: u32,
        /// Port number.
        port: u32,
    },
    /// A unix stream socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

/// Why an endpoint or a port did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// No `scheme:` prefix.
    #[error("endpoint {spec:?} has no scheme: expected vsock:CID:PORT, unix:PATH or tcp:IP:PORT")]
    MissingScheme {
        /// The whole endpoint text.
        spec: String,
    },
    /// A scheme other than vsock, unix or tcp.
    #[error("endpoint {spec:?} has unknown scheme {scheme:?}: expected vsock, unix or tcp")]
    UnknownScheme {
        /// The whole endpoint text.
        spec: String,
        /// The scheme found.
        scheme: String,
    },
    /// `vsock:` without both a CID and a port.
    #[error("vsock endpoint {spec:?} must be vsock:CID:PORT")]
    VsockShape {
        /// The whole endpoint text.
        spec: String,
    },
    /// A CID that is neither a number nor `any`.
    #[error("vsock CID {value:?} is neither a number nor \"any\"")]
    Cid {
        /// The CID text.
        value: String,
    },
    /// A port that is neither a number nor a Hyper-V GUID.
    #[error("vsock port {value:?} is neither a decimal number below 2^32 nor a Hyper-V GUID")]
    Port {
        /// The port text.
        value: String,
    },
    /// A GUID that does not follow the `XXXXXXXX-facb-11e6-bd58-64006a7986d3` template.
    #[error(
        "Hyper-V GUID {value:?} does not match the template XXXXXXXX-facb-11e6-bd58-64006a7986d3"
    )]
    Guid {
        /// The GUID text.
        value: String,
    },
    /// `unix:` with nothing after it.
    #[error("unix endpoint {spec:?} has an empty path")]
    EmptyPath {
        /// The whole endpoint text.
        spec: String,
    },
    /// `tcp:` with something that is not `IP:PORT`.
    #[error("tcp endpoint {spec:?} is not IP:PORT (IPv6 as [ADDR]:PORT)")]
    Tcp {
        /// The whole endpoint text.
        spec: String,
    },
}

/// Parses a vsock port: a decimal number, or a Hyper-V GUID following the LinuxKit template.
pub fn parse_vsock_port(value: &str) -> Result<u32, EndpointError> {
    if value.contains('-') {
        return parse_guid_port(value);
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointError::Port {
            value: value.to_owned(),
        });
    }
    value.parse().map_err(|_| EndpointError::Port {
        value: value.to_owned(),
    })
}

fn parse_guid_port(value: &str) -> Result<u32, EndpointError> {
    let bad = || EndpointError::Guid {
        value: value.to_owned(),
    };
    let (head, tail) = value.split_at_checked(8).ok_or_else(bad)?;
    if !tail.eq_ignore_ascii_case(GUID_TEMPLATE_TAIL)
        || !head.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(bad());
    }
    u32::from_str_radix(head, 16).map_err(|_| bad())
}

/// Formats a port as the Hyper-V service GUID that maps to it.
pub fn guid_for_port(port: u32) -> String {
    format!("{port:08x}{GUID_TEMPLATE_TAIL}")
}

fn parse_cid(value: &str) -> Result<u32, EndpointError> {
    if value == "any" {
        return Ok(CID_ANY);
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointError::Cid {
            value: value.to_owned(),
        });
    }
    value.parse().map_err(|_| EndpointError::Cid {
        value: value.to_owned(),
    })
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = spec
            .split_once(':')
            .ok_or_else(|| EndpointError::MissingScheme {
                spec: spec.to_owned(),
            })?;
        match scheme {
            "vsock" => {
                let (cid, port) =
                    rest.split_once(':')
                        .ok_or_else(|| EndpointError::VsockShape {
                            spec: spec.to_owned(),
                        })?;
                Ok(Endpoint::Vsock {
                    cid: parse_cid(cid)?,
                    port: parse_vsock_port(port)?,
                })
            }
            "unix" if rest.is_empty() => Err(EndpointError::EmptyPath {
                spec: spec.to_owned(),
            }),
            "unix" => Ok(Endpoint::Unix(PathBuf::from(rest))),
            "tcp" => rest
                .parse()
                .map(Endpoint::Tcp)
                .map_err(|_| EndpointError::Tcp {
                    spec: spec.to_owned(),
                }),
            _ => Err(EndpointError::UnknownScheme {
                spec: spec.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Vsock { cid: CID_ANY, port } => write!(f, "vsock:any:{port}"),
            Endpoint::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

impl Endpoint {
    /// The short name of the socket family (`vsock`, `unix`, `tcp`), for log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Vsock { .. } => "vsock",
            Endpoint::Unix(_) => "unix",
            Endpoint::Tcp(_) => "tcp",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_trip_through_display() {
        let cases = [
            Endpoint::Vsock {
                cid: CID_ANY,
                port: 2374,
            },
            Endpoint::Vsock { cid: 2, port: 0 },
            Endpoint::Vsock {
                cid: 1,
                port: u32::MAX,
            },
            Endpoint::Unix(PathBuf::from("/run/containerd/containerd.sock")),
            Endpoint::Unix(PathBuf::from("/odd:path=with/colons")),
            Endpoint::Tcp("127.0.0.1:80".parse().unwrap()),
            Endpoint::Tcp("[::1]:8080".parse().unwrap()),
        ];
        for (i, endpoint) in cases.iter().enumerate() {
            let text = endpoint.to_string();
            assert_eq!(
                text.parse::<Endpoint>().as_ref(),
                Ok(endpoint),
                "case {i}: {text}"
            );
        }
    }

    #[test]
    fn endpoints_parse_from_text() {
        let cases = [
            (
                "vsock:any:2376",
                Endpoint::Vsock {
                    cid: CID_ANY,
                    port: 2376,
                },
            ),
            (
                "vsock:2:00000946-facb-11e6-bd58-64006a7986d3",
                Endpoint::Vsock { cid: 2, port: 2374 },
            ),
            (
                "unix:relative.sock",
                Endpoint::Unix(PathBuf::from("relative.sock")),
            ),
            (
                "tcp:10.0.2.2:2375",
                Endpoint::Tcp("10.0.2.2:2375".parse().unwrap()),
            ),
        ];
        for (i, (text, expected)) in cases.iter().enumerate() {
            assert_eq!(
                text.parse::<Endpoint>().as_ref(),
                Ok(expected),
                "case {i}: {text}"
            );
        }
    }

    #[test]
    fn malformed_endpoints_name_the_problem() {
        let cases = [
            ("", "has no scheme"),
            ("/run/x.sock", "has no scheme"),
            ("udp:1.2.3.4:5", "unknown scheme \"udp\""),
            ("vsock:2", "must be vsock:CID:PORT"),
            ("vsock:host:2", "CID \"host\""),
            ("vsock:2:-1", "Hyper-V GUID \"-1\""),
            ("vsock:2:99999999999", "port \"99999999999\""),
            ("vsock:2:+5", "port \"+5\""),
            ("unix:", "empty path"),
            ("tcp:localhost:80", "is not IP:PORT"),
            ("tcp:1.2.3.4", "is not IP:PORT"),
        ];
        for (i, (text, needle)) in cases.iter().enumerate() {
            match text.parse::<Endpoint>() {
                Ok(parsed) => panic!("case {i}: {text:?} parsed as {parsed:?}"),
                Err(err) => assert!(
                    err.to_string().contains(needle),
                    "case {i}: {text:?} gave {err}"
                ),
            }
        }
    }

    #[test]
    fn hyper_v_guids_map_to_ports_like_vsudd() {
        assert_eq!(
            parse_vsock_port("00000946-facb-11e6-bd58-64006a7986d3"),
            Ok(2374)
        );
        assert_eq!(
            parse_vsock_port("0000094A-FACB-11E6-BD58-64006A7986D3"),
            Ok(2378)
        );
        assert_eq!(
            parse_vsock_port("ffffffff-facb-11e6-bd58-64006a7986d3"),
            Ok(u32::MAX)
        );
        assert_eq!(
            parse_vsock_port(&guid_for_port(0x1234_5678)),
            Ok(0x1234_5678)
        );
        for bad in [
            "00000946-facb-11e6-bd58-64006a7986d4",
            "0946-facb-11e6-bd58-64006a7986d3",
            "zzzzzzzz-facb-11e6-bd58-64006a7986d3",
        ] {
            assert!(
                matches!(parse_vsock_port(bad), Err(EndpointError::Guid { .. })),
                "{bad}"
            );
        }
    }
}
