//! The assembler lays out what `linuxkit build` lays out: for every blueprint in `examples/`, the assembled
//! initramfs (from the images `cargo xtask images` put in the store) is compared with the listing recorded in
//! `xtask/tests/layout/<example>.listing`: every path with its type, mode, owner and link target, digests of
//! the files the build writes, and each bundle's `config.json` and `runtime.json` in full. The listings
//! follow LinuxKit's rules (`linuxkit build --format kernel+initrd` of the same images): a `.` entry 0755,
//! an empty `/boot`, `ociVersion` 1.2.1, symlink modes from the tar headers (`etc/mtab` 0755, a replaced
//! `etc/resolv.conf` 0644), `files:` leading directories with the file's mode and owner. The kernel's module
//! set and version and the images' file contents are normalised away (see `xtask::assemble::listing`), so
//! a Debian point release does not change them; a change in layout does.
//!
//! `GUESTKIT_RECORD_LAYOUT=1` rewrites the listings from the current output (then fails, so a recording run
//! never passes for a check); review the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use xtask::Paths;
use xtask::assemble::assemble;
use xtask::assemble::listing::{differences, listing};
use xtask::blueprint::Blueprint;
use xtask::store::ImageStore;

const RECORD: &str = "GUESTKIT_RECORD_LAYOUT";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn examples() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(workspace().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no blueprints in examples/");
    found
}

fn store() -> ImageStore {
    let root = Paths::new().store();
    for image in [
        "debian/kernel/latest/rootfs/kernel",
        "guestkit/init/dev.tar",
    ] {
        assert!(
            root.join(image).exists(),
            "{} is missing: run `cargo xtask images` first",
            root.join(image).display()
        );
    }
    ImageStore::new(root)
}

fn actual_listing(store: &ImageStore, blueprint: &Path) -> String {
    let bp = Blueprint::from_path(blueprint).expect("blueprint");
    let dir = blueprint.parent().expect("blueprint dir");
    let assembly = assemble(&bp, dir, store)
        .unwrap_or_else(|e| panic!("assembling {}: {e:?}", blueprint.display()));
    let files: Vec<String> = bp.files.iter().map(|f| f.path.clone()).collect();
    listing(&assembly.tree, &files).expect("listing")
}

fn recorded_path(blueprint: &Path) -> PathBuf {
    let stem = blueprint.file_stem().expect("stem").to_string_lossy();
    workspace()
        .join("xtask/tests/layout")
        .join(format!("{stem}.listing"))
}

/// A copy of `listing` with the first directory's mode changed: the comparison must notice.
fn one_mode_changed(listing: &str) -> String {
    let at = listing.find("  dir  0755  ").expect("a 0755 directory");
    let mut changed = listing.to_string();
    changed.replace_range(at..at + "  dir  0755  ".len(), "  dir  0775  ");
    changed
}

#[test]
fn every_example_matches_its_recorded_linuxkit_layout() {
    let store = store();
    let recording = std::env::var_os(RECORD).is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for blueprint in examples() {
        let actual = actual_listing(&store, &blueprint);
        let path = recorded_path(&blueprint);
        if recording {
            fs::write(&path, &actual).expect("record listing");
            failures.push(format!("recorded {}", path.display()));
            continue;
        }
        let recorded = fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; record it with {RECORD}=1 and review it",
                path.display()
            )
        });
        let diff = differences(&recorded, &actual);
        if !diff.is_empty() {
            failures.push(format!(
                "{} differs from {} (- recorded, + assembled):\n{}",
                blueprint.display(),
                path.display(),
                diff.join("\n")
            ));
        }
        assert!(
            !differences(&one_mode_changed(&recorded), &actual).is_empty(),
            "{}: a changed mode must show up as a difference",
            path.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(!recording, "{RECORD}=1 only records; run again to compare");
}
