//! How an image's filesystem is placed into the build (§8.1): some paths are dropped, `etc/hosts` and
//! `etc/resolv.conf` are replaced, and a few paths always exist.

use super::{Node, Tree};

/// Paths never copied from an image.
const EXCLUDE: &[&str] = &[
    ".dockerenv",
    "Dockerfile",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "etc/hostname",
];

/// The fixed `etc/hosts`.
pub const HOSTS: &str = "127.0.0.1       localhost\n::1     localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n";

/// `etc/resolv.conf` in container bundles.
pub const NO_RESOLV_CONF: &str = "\n# no resolv.conf configured\n";

/// Where init images (and filesystem volumes) point `etc/resolv.conf`.
pub const RESOLV_CONF_LINK: &str = "/run/resolvconf/resolv.conf";

/// Where the image goes: `init:`/volumes get a resolv.conf symlink, containers a placeholder file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Init,
    Container,
}

/// The image filesystem as it is written into the build.
pub fn filtered(fs: &Tree, usage: Use) -> Tree {
    let mut out = Tree::new();
    for (path, node) in fs.iter() {
        let excluded =
            EXCLUDE.contains(&path) || EXCLUDE.iter().any(|e| path.starts_with(&format!("{e}/")));
        if !excluded && path != "etc/hosts" && path != "etc/resolv.conf" {
            out.insert(path, node.clone());
        }
    }
    for dir in ["dev", "dev/pts", "dev/shm", "etc", "proc", "sys"] {
        if !out.get(dir).is_some_and(Node::is_dir) {
            out.insert(dir, Node::dir(0o755));
        }
    }
    if !out.contains("etc/mtab") {
        out.insert("etc/mtab", Node::symlink("/proc/mounts"));
    }
    out.insert("etc/hosts", Node::bytes(HOSTS, 0o644));
    let resolv = match usage {
        Use::Init => Node::symlink(RESOLV_CONF_LINK),
        Use::Container => Node::bytes(NO_RESOLV_CONF, 0o644),
    };
    out.insert("etc/resolv.conf", resolv);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::NodeKind;

    #[test]
    fn excluded_replaced_and_always_present_paths() {
        let mut fs = Tree::new();
        fs.insert("etc/hostname", Node::bytes("x", 0o644));
        fs.insert("etc/hosts", Node::bytes("junk", 0o600));
        fs.insert("dev/console", Node::bytes("", 0o600));
        fs.insert("Dockerfile", Node::bytes("FROM x", 0o644));
        fs.insert("bin/sh", Node::symlink("busybox"));
        let init = filtered(&fs, Use::Init);
        for gone in ["etc/hostname", "dev/console", "Dockerfile"] {
            assert!(!init.contains(gone), "{gone}");
        }
        for dir in ["dev", "dev/pts", "dev/shm", "etc", "proc", "sys"] {
            assert!(init.get(dir).is_some_and(Node::is_dir), "{dir}");
        }
        assert_eq!(
            init.get("etc/mtab").map(|n| &n.kind),
            Some(&NodeKind::Symlink("/proc/mounts".into()))
        );
        assert_eq!(
            init.get("etc/resolv.conf").map(|n| &n.kind),
            Some(&NodeKind::Symlink(RESOLV_CONF_LINK.into()))
        );
        let hosts = init.get("etc/hosts").expect("hosts");
        assert_eq!(hosts.mode, 0o644);
        let container = filtered(&fs, Use::Container);
        let resolv = container.get("etc/resolv.conf").expect("resolv.conf");
        assert_eq!(resolv, &Node::bytes(NO_RESOLV_CONF, 0o644));
        assert!(container.contains("bin/sh"));
    }
}
