//! Equinix Metal network set-up: rename the links the metadata names (matched by MAC), clear and
//! down them, create `bond0` with the given mode, enslave them, add the addresses and routes
//! (public IPv4 → `0.0.0.0/0`, public IPv6 → `::/0`, private IPv4 → its classful network).
//!
//! [`plan`] is pure; [`execute`] carries a plan out over rtnetlink.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{BondMode, LinkAttribute};
use rtnetlink::{LinkBond, LinkUnspec, RouteMessageBuilder};

/// The bond name LinkuxKit uses.
pub const BOND: &str = "bond0";

/// What the metadata asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BondConfig {
    /// Bonding mode number (4 = 802.3ad).
    pub mode: u8,
    /// `(name, mac)` of each link to enslave.
    pub links: Vec<(String, String)>,
    /// Addresses for the bond.
    pub addresses: Vec<BondAddress>,
}

/// One address of the bond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondAddress {
    /// The address.
    pub ip: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// Gateway for its route.
    pub gateway: Option<IpAddr>,
    /// Public (default route) or private.
    pub public: bool,
}

/// One netlink operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetStep {
    /// Set a link down.
    Down(String),
    /// Rename a link.
    Rename { from: String, to: String },
    /// Remove every address of a link.
    Flush(String),
    /// Create the bond (an existing one is fine).
    CreateBond { mode: u8 },
    /// Set a link up.
    Up(String),
    /// Make `link` a port of the bond.
    Enslave(String),
    /// Add an address to the bond.
    AddAddress { ip: IpAddr, prefix: u8 },
    /// Add a route through the bond.
    AddRoute {
        dest: IpAddr,
        prefix: u8,
        gateway: IpAddr,
    },
}

/// A link that exists: name and MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Current name.
    pub name: String,
    /// MAC as `aa:bb:...`, lowercase.
    pub mac: String,
}

/// The steps that turn `links` into what `config` describes.
pub fn plan(config: &BondConfig, links: &[LinkInfo]) -> Vec<NetStep> {
    let mut steps = Vec::new();
    let mut ports = Vec::new();
    for (want, mac) in &config.links {
        let Some(link) = links.iter().find(|l| l.mac.eq_ignore_ascii_case(mac)) else {
            continue;
        };
        steps.push(NetStep::Down(link.name.clone()));
        if &link.name != want {
            steps.push(NetStep::Rename {
                from: link.name.clone(),
                to: want.clone(),
            });
        }
        steps.push(NetStep::Flush(want.clone()));
        ports.push(want.clone());
    }
    steps.push(NetStep::CreateBond { mode: config.mode });
    steps.extend(ports.into_iter().map(NetStep::Enslave));
    steps.push(NetStep::Up(BOND.into()));
    for a in &config.addresses {
        steps.push(NetStep::AddAddress {
            ip: a.ip,
            prefix: a.prefix,
        });
    }
    for a in &config.addresses {
        if let Some(route) = route_for(a) {
            steps.push(route);
        }
    }
    steps
}

fn route_for(a: &BondAddress) -> Option<NetStep> {
    let gateway = a.gateway?;
    let (dest, prefix) = match (a.ip, a.public) {
        (IpAddr::V4(_), true) => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        (IpAddr::V6(_), true) => (IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
        (IpAddr::V4(v4), false) => classful(v4),
        (IpAddr::V6(_), false) => return None,
    };
    Some(NetStep::AddRoute {
        dest,
        prefix,
        gateway,
    })
}

/// The classful network of a private IPv4 address (10/8, 172.16/12 as /16 in class B, 192.168/24).
fn classful(ip: Ipv4Addr) -> (IpAddr, u8) {
    let o = ip.octets();
    let (mask, prefix) = match o[0] {
        0..=127 => ([255, 0, 0, 0], 8),
        128..=191 => ([255, 255, 0, 0], 16),
        _ => ([255, 255, 255, 0], 24),
    };
    let net = Ipv4Addr::from(u32::from(ip) & u32::from(Ipv4Addr::from(mask)));
    (IpAddr::V4(net), prefix)
}

/// A failed netlink step.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Opening the netlink socket failed.
    #[error("opening a netlink socket")]
    Connect(#[source] std::io::Error),
    /// A step failed.
    #[error("network step {step:?}")]
    Step {
        step: NetStep,
        #[source]
        source: rtnetlink::Error,
    },
    /// A link named in a step does not exist.
    #[error("network step {step:?}: no link named {name}")]
    NoLink { step: NetStep, name: String },
}

/// Lists links with their MACs.
pub async fn links(handle: &rtnetlink::Handle) -> Result<Vec<LinkInfo>, rtnetlink::Error> {
    let mut out = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await? {
        let mut info = LinkInfo {
            name: String::new(),
            mac: String::new(),
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n,
                LinkAttribute::Address(a) => {
                    info.mac = a
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
                _ => {}
            }
        }
        out.push(info);
    }
    Ok(out)
}

/// Plans against the current links and carries the plan out.
pub async fn configure(config: &BondConfig) -> Result<Vec<NetStep>, NetError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
    let task = tokio::spawn(conn);
    let result = async {
        let current = links(&handle).await.map_err(|source| NetError::Step {
            step: NetStep::Up("list links".into()),
            source,
        })?;
        let steps = plan(config, &current);
        for step in &steps {
            execute(&handle, step).await?;
        }
        Ok(steps)
    }
    .await;
    task.abort();
    result
}

async fn index(handle: &rtnetlink::Handle, step: &NetStep, name: &str) -> Result<u32, NetError> {
    let mut stream = handle.link().get().match_name(name.to_string()).execute();
    match stream.try_next().await {
        Ok(Some(msg)) => Ok(msg.header.index),
        Ok(None) | Err(_) => Err(NetError::NoLink {
            step: step.clone(),
            name: name.into(),
        }),
    }
}

/// Carries out one step.
pub async fn execute(handle: &rtnetlink::Handle, step: &NetStep) -> Result<(), NetError> {
    let fail = |source| NetError::Step {
        step: step.clone(),
        source,
    };
    match step {
        NetStep::Down(name) | NetStep::Up(name) => {
            let idx = index(handle, step, name).await?;
            let b = LinkUnspec::new_with_index(idx);
            let msg = if matches!(step, NetStep::Up(_)) {
                b.up()
            } else {
                b.down()
            }
            .build();
            handle.link().set(msg).execute().await.map_err(fail)
        }
        NetStep::Rename { from, to } => {
            let idx = index(handle, step, from).await?;
            handle
                .link()
                .set(LinkUnspec::new_with_index(idx).name(to.clone()).build())
                .execute()
                .await
                .map_err(fail)
        }
        NetStep::Flush(name) => {
            let idx = index(handle, step, name).await?;
            let addrs: Vec<_> = handle
                .address()
                .get()
                .set_link_index_filter(idx)
                .execute()
                .try_collect()
                .await
                .map_err(fail)?;
            for a in addrs {
                handle.address().del(a).execute().await.map_err(fail)?;
            }
            Ok(())
        }
        NetStep::CreateBond { mode } => match handle
            .link()
            .add(LinkBond::new(BOND).mode(BondMode::from(*mode)).build())
            .execute()
            .await
        {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_eexist() => Ok(()),
            other => other.map_err(fail),
        },
        NetStep::Enslave(name) => {
            let (port, bond) = (
                index(handle, step, name).await?,
                index(handle, step, BOND).await?,
            );
            handle
                .link()
                .set(LinkUnspec::new_with_index(port).controller(bond).build())
                .execute()
                .await
                .map_err(fail)
        }
        NetStep::AddAddress { ip, prefix } => {
            let bond = index(handle, step, BOND).await?;
            handle
                .address()
                .add(bond, *ip, *prefix)
                .execute()
                .await
                .map_err(fail)
        }
        NetStep::AddRoute {
            dest,
            prefix,
            gateway,
        } => {
            let bond = index(handle, step, BOND).await?;
            let msg = match (dest, gateway) {
                (IpAddr::V4(d), IpAddr::V4(g)) => RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(*d, *prefix)
                    .gateway(*g)
                    .output_interface(bond)
                    .build(),
                (IpAddr::V6(d), IpAddr::V6(g)) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                    .destination_prefix(*d, *prefix)
                    .gateway(*g)
                    .output_interface(bond)
                    .build(),
                _ => {
                    return Err(NetError::NoLink {
                        step: step.clone(),
                        name: "mixed address families".into(),
                    });
                }
            };
            handle.route().add(msg).execute().await.map_err(fail)
        }
    }
}

fn libc_eexist() -> i32 {
    nix::errno::Errno::EEXIST as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_renames_bonds_and_routes() {
        let config = BondConfig {
            mode: 4,
            links: vec![
                ("eth0".into(), "AA:00:00:00:00:01".into()),
                ("eth1".into(), "aa:00:00:00:00:02".into()),
                ("eth9".into(), "ff:ff:ff:ff:ff:ff".into()),
            ],
            addresses: vec![
                BondAddress {
                    ip: "147.75.1.3".parse().unwrap(),
                    prefix: 31,
                    gateway: Some("147.75.1.2".parse().unwrap()),
                    public: true,
                },
                BondAddress {
                    ip: "10.80.1.3".parse().unwrap(),
                    prefix: 31,
                    gateway: Some("10.80.1.2".parse().unwrap()),
                    public: false,
                },
            ],
        };
        let links = [
            LinkInfo {
                name: "enp1s0".into(),
                mac: "aa:00:00:00:00:01".into(),
            },
            LinkInfo {
                name: "eth1".into(),
                mac: "aa:00:00:00:00:02".into(),
            },
        ];
        let steps = plan(&config, &links);
        assert_eq!(
            steps[..4],
            [
                NetStep::Down("enp1s0".into()),
                NetStep::Rename {
                    from: "enp1s0".into(),
                    to: "eth0".into()
                },
                NetStep::Flush("eth0".into()),
                NetStep::Down("eth1".into())
            ]
        );
        assert!(steps.contains(&NetStep::CreateBond { mode: 4 }));
        assert!(steps.contains(&NetStep::AddRoute {
            dest: "0.0.0.0".parse().unwrap(),
            prefix: 0,
            gateway: "147.75.1.2".parse().unwrap()
        }));
        assert!(steps.contains(&NetStep::AddRoute {
            dest: "10.0.0.0".parse().unwrap(),
            prefix: 8,
            gateway: "10.80.1.2".parse().unwrap()
        }));
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s, NetStep::Enslave(n) if n == "eth9"))
        );
    }
}
