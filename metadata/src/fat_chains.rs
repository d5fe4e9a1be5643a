//! Cycle detection for FAT images: before `fatfs` follows any cluster chain, the whole allocation table
//! is checked so that no chain leads back into itself. `fatfs` walks chains as the image gives them, so
//! a root directory whose last cluster points at its first would otherwise be read forever.
//!
//! Pure over `Read + Seek`; every offset comes from the image and is checked.

use std::io::{self, Read, Seek, SeekFrom};

/// The largest allocation table read (bytes): 32 MiB holds 8 M FAT32 entries, a 128 GiB volume with
/// 16 KiB clusters. A larger one is refused rather than read.
pub const MAX_FAT_BYTES: u64 = 32 << 20;

/// Why an image's allocation table was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Reading the image failed.
    #[error("reading the allocation table")]
    Io(#[from] io::Error),
    /// The boot sector's geometry is impossible.
    #[error("corrupt boot sector: {0}")]
    Geometry(&'static str),
    /// The table is larger than [`MAX_FAT_BYTES`].
    #[error(
        "the allocation table is {bytes} bytes, more than the {MAX_FAT_BYTES} bytes read at most"
    )]
    TooLarge { bytes: u64 },
    /// A table entry or directory entry names a cluster that does not exist (0 and 1 are reserved).
    #[error("{what} names cluster {cluster}, which does not exist")]
    BadCluster { what: &'static str, cluster: u32 },
    /// A chain comes back to a cluster it already passed.
    #[error("the cluster chain through cluster {cluster} loops")]
    Loop { cluster: u32 },
}

/// Entry width of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Fat12,
    Fat16,
    Fat32,
}

/// Where the active table is and how many clusters it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Table {
    offset: u64,
    bytes: u64,
    clusters: u32,
    width: Width,
    /// Where cluster 2 starts, and a cluster's size (bytes).
    data: u64,
    cluster_bytes: u64,
    /// FAT12/16: the fixed root directory (offset, bytes); FAT32: `None`, the root is `root_cluster`.
    fixed_root: Option<(u64, u64)>,
    root_cluster: u32,
}

fn le(boot: &[u8], at: usize, len: usize) -> u64 {
    boot.get(at..at + len)
        .unwrap_or_default()
        .iter()
        .rev()
        .fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

/// The active allocation table described by a boot sector (Microsoft's FAT type rule).
fn table(boot: &[u8]) -> Result<Table, ChainError> {
    let sector = le(boot, 11, 2);
    let per_cluster = le(boot, 13, 1);
    let reserved = le(boot, 14, 2);
    let fats = le(boot, 16, 1);
    let root_entries = le(boot, 17, 2);
    let fat_sectors = match le(boot, 22, 2) {
        0 => le(boot, 36, 4),
        n => n,
    };
    let total = match le(boot, 19, 2) {
        0 => le(boot, 32, 4),
        n => n,
    };
    if !matches!(sector, 512 | 1024 | 2048 | 4096) || per_cluster == 0 || fats == 0 {
        return Err(ChainError::Geometry("sector or cluster size"));
    }
    let root_sectors = (root_entries * 32).div_ceil(sector);
    let meta = reserved + fats * fat_sectors + root_sectors;
    let data = total
        .checked_sub(meta)
        .ok_or(ChainError::Geometry("more metadata sectors than sectors"))?;
    let clusters = data / per_cluster;
    let width = match clusters {
        0..4085 => Width::Fat12,
        4085..65525 => Width::Fat16,
        _ => Width::Fat32,
    };
    // FAT32 may name one active table (extended flags bit 7, index in bits 0-3).
    let flags = le(boot, 40, 2);
    let active = if width == Width::Fat32 && flags & 0x80 != 0 {
        flags & 0x0f
    } else {
        0
    };
    if active >= fats {
        return Err(ChainError::Geometry("active table index"));
    }
    let fixed_root = (width != Width::Fat32).then(|| {
        (
            (reserved + fats * fat_sectors) * sector,
            root_sectors * sector,
        )
    });
    Ok(Table {
        offset: (reserved + active * fat_sectors) * sector,
        bytes: fat_sectors * sector,
        clusters: u32::try_from(clusters).map_err(|_| ChainError::Geometry("cluster count"))?,
        width,
        data: meta * sector,
        cluster_bytes: per_cluster * sector,
        fixed_root,
        root_cluster: le(boot, 44, 4) as u32,
    })
}

/// The successor of `cluster` in the chain, if it is a data cluster. A value that a reader would
/// follow but that names no cluster (1, or past the last one, below the bad-cluster marker) is an
/// error: `fatfs` computes `cluster - 2` on it.
fn next(fat: &[u8], table: &Table, cluster: u32) -> Result<Option<u32>, ChainError> {
    let c = cluster as usize;
    let (value, bad) = match table.width {
        Width::Fat12 => {
            let pair = le(fat, c + c / 2, 2) as u32;
            (if c % 2 == 1 { pair >> 4 } else { pair & 0xfff }, 0xff7)
        }
        Width::Fat16 => (le(fat, c * 2, 2) as u32, 0xfff7),
        Width::Fat32 => ((le(fat, c * 4, 4) as u32) & 0x0fff_ffff, 0x0fff_fff7),
    };
    if value == 0 || value >= bad {
        return Ok(None);
    }
    if !(2..table.clusters.saturating_add(2)).contains(&value) {
        return Err(ChainError::BadCluster {
            what: "the allocation table",
            cluster: value,
        });
    }
    Ok(Some(value))
}

/// Checks every chain of the table in `fat` (one pass, each cluster visited once).
fn check_table(fat: &[u8], table: &Table) -> Result<(), ChainError> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    // Clusters past what the table holds have no entry: their chains end there.
    let capacity = match table.width {
        Width::Fat12 => fat.len() * 2 / 3,
        Width::Fat16 => fat.len() / 2,
        Width::Fat32 => fat.len() / 4,
    };
    let end = table
        .clusters
        .saturating_add(2)
        .min(u32::try_from(capacity).unwrap_or(u32::MAX));
    let mut state = vec![NEW; end as usize];
    let mut path = Vec::new();
    for start in 2..end {
        let mut at = Some(start);
        while let Some(cluster) = at {
            match state.get(cluster as usize) {
                Some(&NEW) => {}
                Some(&ON_PATH) => return Err(ChainError::Loop { cluster }),
                _ => break,
            }
            state[cluster as usize] = ON_PATH;
            path.push(cluster);
            at = next(fat, table, cluster)?;
        }
        for cluster in path.drain(..) {
            state[cluster as usize] = DONE;
        }
    }
    Ok(())
}

/// Reads the boot sector and the active allocation table of the image and refuses it if any cluster
/// chain loops. Leaves the position anywhere.
pub fn check<R: Read + Seek>(dev: &mut R) -> Result<(), ChainError> {
    let mut boot = [0u8; 512];
    dev.seek(SeekFrom::Start(0))?;
    dev.read_exact(&mut boot)?;
    let table = table(&boot)?;
    if table.bytes > MAX_FAT_BYTES {
        return Err(ChainError::TooLarge { bytes: table.bytes });
    }
    dev.seek(SeekFrom::Start(table.offset))?;
    let mut fat = Vec::new();
    dev.by_ref().take(table.bytes).read_to_end(&mut fat)?;
    check_table(&fat, &table)?;
    check_directories(dev, &fat, &table)
}

/// Directory levels whose entries are checked (the deepest path read is `openstack/latest/x`).
const CHECKED_DEPTH: usize = 3;

/// Reads `len` bytes at `offset` (fewer at the end of the image).
fn read_at<R: Read + Seek>(dev: &mut R, offset: u64, len: u64) -> Result<Vec<u8>, ChainError> {
    dev.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    dev.by_ref().take(len).read_to_end(&mut out)?;
    Ok(out)
}

/// The bytes of the directory starting at `cluster` (its chain is loop-free: checked before).
fn directory<R: Read + Seek>(
    dev: &mut R,
    fat: &[u8],
    table: &Table,
    cluster: u32,
) -> Result<Vec<u8>, ChainError> {
    let mut out = Vec::new();
    let mut at = Some(cluster);
    while let Some(c) = at {
        let offset = table.data + u64::from(c - 2) * table.cluster_bytes;
        out.extend(read_at(dev, offset, table.cluster_bytes)?);
        at = next(fat, table, c)?;
    }
    Ok(out)
}

/// Checks that every entry of the directories a lookup can reach names cluster 0 or a real cluster
/// (`fatfs` computes `cluster - 2` on 1), following subdirectories to [`CHECKED_DEPTH`] levels.
fn check_directories<R: Read + Seek>(
    dev: &mut R,
    fat: &[u8],
    table: &Table,
) -> Result<(), ChainError> {
    let valid = 2..table.clusters.saturating_add(2);
    let root = match table.fixed_root {
        Some((offset, bytes)) => read_at(dev, offset, bytes)?,
        None if valid.contains(&table.root_cluster) => {
            directory(dev, fat, table, table.root_cluster)?
        }
        None => {
            return Err(ChainError::BadCluster {
                what: "the boot sector's root directory",
                cluster: table.root_cluster,
            });
        }
    };
    let mut pending = vec![(root, 1)];
    let mut seen = std::collections::HashSet::new();
    while let Some((entries, depth)) = pending.pop() {
        for entry in entries.chunks_exact(32) {
            match entry.first() {
                Some(0) => break,
                Some(0xe5 | b'.') => continue,
                _ => {}
            }
            let attributes = entry.get(11).copied().unwrap_or(0);
            if attributes & 0x0f == 0x0f {
                continue;
            }
            let high = if table.width == Width::Fat32 {
                le(entry, 20, 2) << 16
            } else {
                0
            };
            let cluster = (high | le(entry, 26, 2)) as u32;
            if cluster == 0 {
                continue;
            }
            if !valid.contains(&cluster) {
                return Err(ChainError::BadCluster {
                    what: "a directory entry",
                    cluster,
                });
            }
            if attributes & 0x10 != 0 && depth < CHECKED_DEPTH && seen.insert(cluster) {
                pending.push((directory(dev, fat, table, cluster)?, depth + 1));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fat12_table(clusters: u32) -> Table {
        Table {
            offset: 0,
            bytes: 0,
            clusters,
            width: Width::Fat12,
            data: 0,
            cluster_bytes: 512,
            fixed_root: None,
            root_cluster: 2,
        }
    }

    fn fat32(entries: &[u32]) -> (Vec<u8>, Table) {
        let fat = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        let table = Table {
            clusters: entries.len() as u32 - 2,
            ..fat12_table(0)
        };
        let table = Table {
            width: Width::Fat32,
            ..table
        };
        (fat, table)
    }

    #[test]
    fn chains_that_end_are_fine() {
        let (fat, table) = fat32(&[0x0fff_fff8, 0x0fff_ffff, 3, 4, 0x0fff_ffff, 0, 7, 4]);
        check_table(&fat, &table).unwrap();
    }

    #[test]
    fn a_chain_back_into_itself_is_a_loop() {
        let (fat, table) = fat32(&[0x0fff_fff8, 0x0fff_ffff, 2]);
        assert!(matches!(
            check_table(&fat, &table),
            Err(ChainError::Loop { cluster: 2 })
        ));
        let (fat, table) = fat32(&[0, 0, 3, 4, 5, 3]);
        assert!(matches!(
            check_table(&fat, &table),
            Err(ChainError::Loop { cluster: 3 })
        ));
    }

    #[test]
    fn links_to_clusters_that_do_not_exist_are_refused() {
        for bad in [1, 5, 0x0fff_fff6] {
            let (fat, table) = fat32(&[0x0fff_fff8, 0x0fff_ffff, 3, bad, 0]);
            assert!(
                matches!(
                    check_table(&fat, &table),
                    Err(ChainError::BadCluster { cluster, .. }) if cluster == bad
                ),
                "{bad:#x}"
            );
        }
        let (fat, table) = fat32(&[0x0fff_fff8, 0x0fff_ffff, 3, 0x0fff_fff7, 0]);
        check_table(&fat, &table).unwrap();
    }

    #[test]
    fn fat12_entries_are_unpacked() {
        // Clusters 2 -> 3 -> 2, packed 12 bits each.
        let table = Table {
            bytes: 6,
            ..fat12_table(2)
        };
        let fat = [0xf8, 0xff, 0xff, 0x03, 0x20, 0x00];
        assert_eq!(next(&fat, &table, 2).unwrap(), Some(3));
        assert_eq!(next(&fat, &table, 3).unwrap(), Some(2));
        assert!(matches!(
            check_table(&fat, &table),
            Err(ChainError::Loop { .. })
        ));
    }

    #[test]
    fn tables_beyond_the_read_limit_are_refused() {
        let mut boot = [0u8; 512];
        boot[11..13].copy_from_slice(&512u16.to_le_bytes());
        boot[13] = 8;
        boot[14..16].copy_from_slice(&32u16.to_le_bytes());
        boot[16] = 2;
        boot[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        // 65 537 sectors of 512 bytes: one sector more than 32 MiB.
        boot[36..40].copy_from_slice(&65_537u32.to_le_bytes());
        let err = check(&mut std::io::Cursor::new(boot.to_vec())).unwrap_err();
        assert!(
            matches!(err, ChainError::TooLarge { bytes } if bytes == 65_537 * 512),
            "{err}"
        );
        assert!(
            err.to_string().contains("more than the 33554432 bytes"),
            "{err}"
        );
        // Exactly the limit is read (then this image fails later, on its root cluster 0).
        boot[36..40].copy_from_slice(&65_536u32.to_le_bytes());
        let err = check(&mut std::io::Cursor::new(boot.to_vec())).unwrap_err();
        assert!(
            matches!(err, ChainError::BadCluster { cluster: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn impossible_geometry_is_an_error() {
        let mut boot = [0u8; 512];
        assert!(matches!(table(&boot), Err(ChainError::Geometry(_))));
        boot[11..13].copy_from_slice(&512u16.to_le_bytes());
        boot[13] = 1;
        boot[16] = 2;
        boot[14] = 200; // reserved sectors beyond the (zero) total
        assert!(matches!(table(&boot), Err(ChainError::Geometry(_))));
        let mut huge = Vec::new();
        huge.extend_from_slice(&boot);
        assert!(check(&mut std::io::Cursor::new(huge)).is_err());
    }
}
