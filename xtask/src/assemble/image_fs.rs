//! How an image's filesystem is placed into the build (docs/linuxkit.md §8.1): some paths are dropped, `etc/hosts` and
//! `etc/resolv.conf` are replaced, and a few paths always exist.

use super::{Content, Node, NodeKind, Tree};

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

/// The image filesystem as it is written into the build. Replaced entries keep the image's header (mode and
/// owner) and only change their contents or type, as `linuxkit build` rewrites the tar header in place;
/// entries the image lacks get `linuxkit build`'s fixed headers (`etc/mtab` a 0755 symlink, `etc/hosts` and
/// `etc/resolv.conf` 0644, directories 0755).
pub fn filtered(fs: &Tree, usage: Use) -> Tree {
    let mut out = Tree::new();
    if let Some(root) = fs.root() {
        out.insert("", root.clone());
    }
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
        out.insert("etc/mtab", Node::symlink("/proc/mounts").with_mode(0o755));
    }
    let header = |path: &str, kind: NodeKind| match fs.get(path) {
        Some(image) => Node {
            kind,
            ..image.clone()
        },
        None => Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
    };
    let bytes = |text: &str| NodeKind::File {
        content: Content::bytes(text),
        size: text.len() as u64,
    };
    out.insert("etc/hosts", header("etc/hosts", bytes(HOSTS)));
    let resolv = match usage {
        Use::Init => NodeKind::Symlink(RESOLV_CONF_LINK.into()),
        Use::Container => bytes(NO_RESOLV_CONF),
    };
    out.insert("etc/resolv.conf", header("etc/resolv.conf", resolv));
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
            init.get("etc/resolv.conf").map(|n| (&n.kind, n.mode)),
            Some((&NodeKind::Symlink(RESOLV_CONF_LINK.into()), 0o644))
        );
        assert_eq!(init.get("etc/mtab").map(|n| n.mode), Some(0o755));
        let hosts = init.get("etc/hosts").expect("hosts");
        assert_eq!(
            hosts,
            &Node::bytes(HOSTS, 0o600),
            "the image's header, new contents"
        );
        let container = filtered(&fs, Use::Container);
        let resolv = container.get("etc/resolv.conf").expect("resolv.conf");
        assert_eq!(resolv, &Node::bytes(NO_RESOLV_CONF, 0o644));
        assert!(container.contains("bin/sh"));
        assert_eq!(container.root(), None);
    }

    #[test]
    fn the_image_root_entry_and_symlink_headers_are_kept() {
        let mut fs = Tree::new();
        fs.insert("", Node::dir(0o750));
        fs.insert("etc/mtab", Node::symlink("../proc/self/mounts"));
        fs.insert("etc/resolv.conf", Node::bytes("x", 0o640).owned(3, 4));
        let init = filtered(&fs, Use::Init);
        assert_eq!(init.root(), Some(&Node::dir(0o750)));
        assert_eq!(
            init.get("etc/mtab"),
            Some(&Node::symlink("../proc/self/mounts"))
        );
        let resolv = init.get("etc/resolv.conf").expect("resolv.conf");
        assert_eq!((resolv.mode, resolv.uid, resolv.gid), (0o640, 3, 4));
        assert_eq!(resolv.kind, NodeKind::Symlink(RESOLV_CONF_LINK.into()));
    }
}
