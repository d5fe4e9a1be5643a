use super::*;

fn kinds(tree: &Tree) -> Vec<String> {
    tree.iter()
        .map(|(p, n)| match &n.kind {
            NodeKind::Dir => format!("{p}/"),
            NodeKind::Symlink(t) => format!("{p} -> {t}"),
            _ => p.to_string(),
        })
        .collect()
}

#[test]
fn paths_are_normalised() {
    assert_eq!(normalise("/a//b/./c/"), "a/b/c");
    assert_eq!(normalise("../../etc/../x"), "x");
    assert_eq!(normalise("/"), "");
}

#[test]
fn insert_creates_parents_and_replaces_like_tar_extraction() {
    let mut tree = Tree::new();
    tree.insert("/etc/ssh/sshd_config", Node::bytes("x", 0o600));
    assert_eq!(
        tree.get("etc").map(|n| (n.is_dir(), n.mode)),
        Some((true, 0o755))
    );
    tree.insert("etc", Node::dir(0o700));
    assert!(
        tree.contains("etc/ssh/sshd_config"),
        "a directory over a directory keeps the children"
    );
    assert_eq!(tree.get("etc").map(|n| n.mode), Some(0o700));
    tree.insert("etc/ssh", Node::bytes("now a file", 0o644));
    assert_eq!(kinds(&tree), ["etc/", "etc/ssh"]);
}

#[test]
fn parents_that_are_symlinks_are_followed() {
    let mut tree = Tree::new();
    tree.insert("usr/lib", Node::dir(0o755));
    tree.insert("lib", Node::symlink("usr/lib"));
    tree.insert("bin", Node::symlink("/usr/bin"));
    tree.insert("lib/modules/6.1/x.ko", Node::bytes("ko", 0o644));
    tree.insert("bin/sh", Node::bytes("sh", 0o755));
    assert!(tree.contains("usr/lib/modules/6.1/x.ko"));
    assert!(tree.contains("usr/bin/sh"));
    assert!(
        !tree
            .paths()
            .any(|p| p.starts_with("lib/") || p.starts_with("bin/"))
    );
}

#[test]
fn a_symlink_over_a_directory_moves_its_children_to_the_target() {
    let mut tree = Tree::new();
    tree.insert("lib/modules/6.1/x.ko", Node::bytes("ko", 0o644));
    tree.insert("usr/lib/libc.so", Node::bytes("c", 0o644));
    tree.insert("lib", Node::symlink("usr/lib"));
    assert_eq!(
        kinds(&tree),
        [
            "lib -> usr/lib",
            "usr/",
            "usr/lib/",
            "usr/lib/libc.so",
            "usr/lib/modules/",
            "usr/lib/modules/6.1/",
            "usr/lib/modules/6.1/x.ko"
        ]
    );
}

#[test]
fn symlink_loops_do_not_hang() {
    let mut tree = Tree::new();
    tree.insert("a", Node::symlink("b"));
    tree.insert("b", Node::symlink("a"));
    tree.insert("a/x", Node::bytes("x", 0o644));
    assert!(tree.len() >= 3);
}

#[test]
fn merging_below_a_prefix_keeps_image_paths_as_they_are() {
    let mut root = Tree::new();
    root.insert("usr/bin", Node::dir(0o755));
    root.insert("bin", Node::symlink("/usr/bin"));
    let mut image = Tree::new();
    image.insert("bin/busybox", Node::bytes("bb", 0o755));
    root.merge("containers/onboot/000-x/rootfs", &image);
    assert!(root.contains("containers/onboot/000-x/rootfs/bin/busybox"));
    assert!(!root.contains("usr/bin/busybox"));
    root.merge("", &image);
    assert!(
        root.contains("usr/bin/busybox"),
        "at the root, existing symlinks are followed"
    );
    assert_eq!(
        root.get("bin").map(|n| n.kind.clone()),
        Some(NodeKind::Symlink("/usr/bin".into()))
    );
    let mut dangling = Tree::new();
    dangling.insert("sbin", Node::symlink("nowhere"));
    dangling.insert("sbin", Node::dir(0o755));
    assert!(
        dangling.get("sbin").is_some_and(Node::is_dir),
        "a dangling symlink is replaced by a directory"
    );
}

#[test]
fn remove_takes_the_subtree() {
    let mut tree = Tree::new();
    tree.insert("a/b/c", Node::bytes("c", 0o644));
    tree.insert("a-b", Node::bytes("ab", 0o644));
    let removed = tree.remove("a");
    assert_eq!(removed.len(), 2);
    assert_eq!(kinds(&tree), ["a-b"]);
}

#[test]
fn a_file_in_the_way_of_a_directory_is_replaced() {
    let mut tree = Tree::new();
    tree.insert("opt", Node::bytes("file", 0o644));
    tree.insert("opt/app/run", Node::bytes("x", 0o755));
    assert!(tree.get("opt").is_some_and(Node::is_dir));
    assert!(tree.contains("opt/app/run"));
}

#[test]
fn root_entries_follow_tar_precedence() {
    let mut tree = Tree::new();
    assert_eq!(tree.root(), None);
    assert_eq!(tree.root_or_default(), Node::dir(0o755));
    tree.insert("./", Node::bytes("a file cannot be the root", 0o777));
    assert_eq!(tree.root(), None, "only a directory can be the root");
    let mut kernel = Tree::new();
    kernel.insert("./", Node::dir(0o755));
    let mut init = Tree::new();
    init.insert("", Node::dir(0o700).owned(1, 1));
    tree.merge("", &kernel);
    tree.merge("", &Tree::new());
    assert_eq!(
        tree.root(),
        Some(&Node::dir(0o755)),
        "a tree without ./ keeps the root"
    );
    tree.merge("", &init);
    assert_eq!(
        tree.root(),
        Some(&Node::dir(0o700).owned(1, 1)),
        "the later ./ wins"
    );
    tree.merge("containers/onboot/000-x/lower", &init);
    assert_eq!(
        tree.get("containers/onboot/000-x/lower"),
        Some(&Node::dir(0o700).owned(1, 1)),
        "below a prefix, ./ is the prefix directory"
    );
    assert_eq!(tree.get("containers").map(|n| n.mode), Some(0o755));
}
