//! Phase B of `runtime.json` (docs/linuxkit.md §10.2): network interfaces and namespace binds, done after
//! the container's process exists and before it starts. Links go through rtnetlink, in the network namespace
//! of the calling thread (the root namespace in the guest).

use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use nix::mount::{MsFlags, mount};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::runtime_json::{Interface, RuntimeConfig};

/// Errors of Phase B.
#[derive(Debug, thiserror::Error)]
pub enum ProcessSetupError {
    /// The netlink socket could not be opened.
    #[error("opening a netlink connection")]
    Netlink(#[source] std::io::Error),
    /// Creating a link failed.
    #[error("creating interface {name} of type {kind}")]
    CreateLink {
        /// The interface.
        name: String,
        /// The link type.
        kind: String,
        /// Why.
        #[source]
        source: rtnetlink::Error,
    },
    /// Looking up a link failed.
    #[error("looking up interface {name}")]
    FindLink {
        /// The interface.
        name: String,
        /// Why (None: no such link).
        #[source]
        source: Option<rtnetlink::Error>,
    },
    /// Moving a link into the container failed.
    #[error("moving interface {name} to pid {pid}")]
    MoveLink {
        /// The interface.
        name: String,
        /// The container's pid.
        pid: u32,
        /// Why.
        #[source]
        source: rtnetlink::Error,
    },
    /// Creating the bind target failed.
    #[error("creating {} for bindNS.{kind}", path.display())]
    BindTarget {
        /// The namespace kind.
        kind: String,
        /// The target file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bind mount failed.
    #[error("binding /proc/{pid}/ns/{kind} to {}", path.display())]
    Bind {
        /// The namespace kind.
        kind: String,
        /// The container's pid.
        pid: u32,
        /// The target file.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// What to do for one interface entry, after LinuxKit's defaulting rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfacePlan {
    /// The link to create, with its type (None: move an existing link).
    pub create: Option<String>,
    /// Whether the link is created in (or already is in) the root namespace and must then be moved.
    pub move_from_root: bool,
}

/// Applies LinuxKit's rules: a peer implies `veth`; veths and `createInRoot` links are made in the root
/// namespace and moved; other links are made directly in the container's namespace.
pub fn plan_interface(interface: &Interface) -> InterfacePlan {
    let kind = if interface.add.is_empty() && !interface.peer.is_empty() {
        "veth"
    } else {
        &interface.add
    };
    if kind.is_empty() {
        return InterfacePlan {
            create: None,
            move_from_root: true,
        };
    }
    InterfacePlan {
        create: Some(kind.to_owned()),
        move_from_root: interface.create_in_root || kind == "veth",
    }
}

async fn link_index(handle: &rtnetlink::Handle, name: &str) -> Result<u32, ProcessSetupError> {
    let found = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await;
    match found {
        Ok(Some(message)) => Ok(message.header.index),
        Ok(None) => Err(ProcessSetupError::FindLink {
            name: name.into(),
            source: None,
        }),
        Err(source) => Err(ProcessSetupError::FindLink {
            name: name.into(),
            source: Some(source),
        }),
    }
}

async fn set_up_interface(
    handle: &rtnetlink::Handle,
    interface: &Interface,
    pid: u32,
) -> Result<(), ProcessSetupError> {
    let plan = plan_interface(interface);
    let name = &interface.name;
    if let Some(kind) = &plan.create {
        let mut message = if kind == "veth" {
            LinkVeth::new(name, &interface.peer).build()
        } else {
            LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::from(kind.as_str()))
                .name(name.clone())
                .build()
        };
        if !plan.move_from_root {
            message.attributes.push(LinkAttribute::NetNsPid(pid));
        }
        handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|source| ProcessSetupError::CreateLink {
                name: name.clone(),
                kind: kind.clone(),
                source,
            })?;
        eprintln!("Created interface {name} type {kind}");
    }
    if plan.move_from_root {
        let index = link_index(handle, name).await?;
        let message = LinkUnspec::new_with_index(index).setns_by_pid(pid).build();
        handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|source| ProcessSetupError::MoveLink {
                name: name.clone(),
                pid,
                source,
            })?;
        eprintln!("Moved interface {name} to pid {pid}");
    }
    Ok(())
}

fn bind_namespace(pid: u32, kind: &str, path: &Path) -> Result<(), ProcessSetupError> {
    let target_err = |source| ProcessSetupError::BindTarget {
        kind: kind.into(),
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(target_err)?;
    }
    // The mount point must exist; an existing file (perhaps someone's data, or an earlier binding) is
    // left as it is, never truncated.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(target_err(err)),
    }
    let source = format!("/proc/{pid}/ns/{kind}");
    mount(
        Some(source.as_str()),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| ProcessSetupError::Bind {
        kind: kind.into(),
        pid,
        path: path.to_owned(),
        source,
    })
}

/// Phase B for the process `pid`: interfaces in order, then namespace binds; the first error aborts.
pub async fn prepare_process(pid: u32, config: &RuntimeConfig) -> Result<(), ProcessSetupError> {
    if !config.interfaces.is_empty() {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(ProcessSetupError::Netlink)?;
        let task = tokio::spawn(connection);
        let result = async {
            for interface in &config.interfaces {
                set_up_interface(&handle, interface, pid).await?;
            }
            Ok(())
        }
        .await;
        task.abort();
        result?;
    }
    for (kind, path) in config.bind_ns.entries() {
        bind_namespace(pid, kind, Path::new(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(add: &str, peer: &str, create_in_root: bool) -> Interface {
        Interface {
            name: "x".into(),
            add: add.into(),
            peer: peer.into(),
            create_in_root,
        }
    }

    #[test]
    fn linuxkit_interface_rules() {
        let cases = [
            (iface("", "", false), None, true),
            (iface("", "p", false), Some("veth"), true),
            (iface("veth", "p", false), Some("veth"), true),
            (iface("dummy", "", false), Some("dummy"), false),
            (iface("wireguard", "", true), Some("wireguard"), true),
        ];
        for (i, (interface, create, move_from_root)) in cases.into_iter().enumerate() {
            let plan = plan_interface(&interface);
            assert_eq!(plan.create.as_deref(), create, "case {i}");
            assert_eq!(plan.move_from_root, move_from_root, "case {i}");
        }
    }
}
