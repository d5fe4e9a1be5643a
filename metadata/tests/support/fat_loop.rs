//! A FAT32 `cidata` image whose root directory's cluster chain loops: the root's first cluster holds
//! only deleted entries (so a lookup must go on to the next cluster) and its FAT entry points back at
//! itself. A reader without a bound walks it forever. Shared by the host and VM tests.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

/// Size of the image: enough clusters for mkfs.vfat to accept FAT32 with 512-byte clusters.
pub const LOOPING_FAT_SIZE: u64 = 40 * 1024 * 1024;

/// Writes the image to `path` (mkfs.vfat, then the patch).
pub fn make_looping_fat(path: &Path, label: &str) {
    File::create(path)
        .and_then(|f| f.set_len(LOOPING_FAT_SIZE))
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let out = Command::new("mkfs.vfat")
        .args(["-F", "32", "-s", "1", "-n", label])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("mkfs.vfat is needed (dosfstools): {e}"));
    assert!(out.status.success(), "mkfs.vfat: {out:?}");
    loop_root_chain(path);
}

fn le(bytes: &[u8], at: usize, len: usize) -> u64 {
    bytes[at..at + len]
        .iter()
        .rev()
        .fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

fn loop_root_chain(path: &Path) {
    let mut image = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut boot = [0u8; 512];
    image.read_exact(&mut boot).unwrap();
    let sector = le(&boot, 11, 2);
    let cluster = sector * le(&boot, 13, 1);
    let reserved = le(&boot, 14, 2);
    let fats = le(&boot, 16, 1);
    let fat_sectors = le(&boot, 36, 4);
    let root = le(&boot, 44, 4);
    assert!(
        sector > 0 && fats > 0 && fat_sectors > 0 && root >= 2,
        "not FAT32: {boot:?}"
    );
    let data = (reserved + fats * fat_sectors) * sector;
    let deleted: Vec<u8> = (0..cluster)
        .map(|i| if i % 32 == 0 { 0xE5 } else { 0 })
        .collect();
    image
        .seek(SeekFrom::Start(data + (root - 2) * cluster))
        .unwrap();
    image.write_all(&deleted).unwrap();
    for copy in 0..fats {
        let entry = (reserved + copy * fat_sectors) * sector + root * 4;
        image.seek(SeekFrom::Start(entry)).unwrap();
        image
            .write_all(&u32::try_from(root).unwrap().to_le_bytes())
            .unwrap();
    }
    image.sync_all().unwrap();
}
