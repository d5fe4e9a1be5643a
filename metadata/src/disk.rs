//! Reading files from a labelled device without mounting it: ISO9660 through [`crate::iso9660`],
//! FAT through the `fatfs` crate, both over a read-only file descriptor. No mount means no
//! CAP_SYS_ADMIN, no temporary mount points and no kernel filesystem driver parsing the medium.
//!
//! Both readers are bounded. The ISO9660 reader walks one directory per path component, each at most
//! 1 MiB, so it cannot loop. `fatfs` follows cluster chains as the image gives them, and a chain that
//! loops back on itself (a root directory whose last cluster points at its first) would be walked
//! forever; so the allocation table is first checked for loops ([`crate::fat_chains`]), and every FAT
//! read is also capped at [`fat_budget`] bytes, stopping with an error once it is spent.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::iso9660::{self, IsoError};
use crate::label::FsType;

/// A failed read from a device.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The device could not be opened.
    #[error("opening {device}")]
    Open {
        device: String,
        #[source]
        source: io::Error,
    },
    /// The ISO9660 filesystem is broken.
    #[error("reading {path} from {device}")]
    Iso {
        device: String,
        path: String,
        #[source]
        source: IsoError,
    },
    /// The FAT filesystem is broken.
    #[error("reading {path} from {device}")]
    Fat {
        device: String,
        path: String,
        #[source]
        source: io::Error,
    },
    /// A file is larger than allowed.
    #[error("{path} on {device} is larger than {limit} bytes")]
    TooLarge {
        device: String,
        path: String,
        limit: usize,
    },
}

/// The fixed part of a FAT read budget: boot sector, FAT and directory reads of a small image.
pub const FAT_BUDGET_BASE: u64 = 4 << 20;

/// How many bytes `fatfs` may read to find and read one file of at most `limit` bytes on an image of
/// `image_len` bytes: every byte of the image twice (a file and its directories are each read once, FAT
/// entries once per cluster), never more than four times the file limit, plus [`FAT_BUDGET_BASE`].
/// A looping cluster chain spends it in well under a second.
pub fn fat_budget(image_len: u64, limit: usize) -> u64 {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    image_len
        .saturating_mul(2)
        .min(limit.saturating_mul(4))
        .saturating_add(FAT_BUDGET_BASE)
}

/// A read-only device handed to `fatfs`, which wants `Write` as well: every write fails, and reads stop
/// with an error once `left` bytes have been read (each read call costs at least one byte).
#[derive(Debug)]
struct ReadOnly<R> {
    inner: R,
    left: u64,
    budget: u64,
}

impl<R> ReadOnly<R> {
    fn new(inner: R, budget: u64) -> Self {
        Self {
            inner,
            left: budget,
            budget,
        }
    }
}

impl<R: Read> Read for ReadOnly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "gave up after reading {} bytes: a cluster chain loops or the image is corrupt",
                    self.budget
                ),
            ));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        self.left = self.left.saturating_sub((n as u64).max(1));
        Ok(n)
    }
}
impl<R: Seek> Seek for ReadOnly<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}
impl<R> Write for ReadOnly<R> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::PermissionDenied.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `path` from a FAT image; `None` if it is not there. At most [`fat_budget`] bytes are read.
///
/// `fatfs` has arithmetic that overflows on some corrupt images (a directory entry naming cluster 0
/// or 1 makes it compute `cluster - 2`): release builds wrap (no overflow checks) and the read then
/// fails or stays within the budget; builds with overflow checks (tests, fuzzing) would panic, so a
/// panic inside the reader is turned into an error here too.
pub fn fat_read_file<R: Read + Seek>(
    dev: R,
    path: &str,
    limit: usize,
) -> io::Result<Option<Vec<u8>>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fat_read_file_unguarded(dev, path, limit)
    }))
    .unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the FAT reader failed on a corrupt structure",
        ))
    })
}

fn fat_read_file_unguarded<R: Read + Seek>(
    mut dev: R,
    path: &str,
    limit: usize,
) -> io::Result<Option<Vec<u8>>> {
    crate::fat_chains::check(&mut dev)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, crate::apply::chain(&e)))?;
    let image_len = dev.seek(SeekFrom::End(0))?;
    dev.seek(SeekFrom::Start(0))?;
    let fs = fatfs::FileSystem::new(
        ReadOnly::new(dev, fat_budget(image_len, limit)),
        fatfs::FsOptions::new().update_accessed_date(false),
    )?;
    let file = match fs.root_dir().open_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut data)?;
    if data.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(Some(data))
}

/// Reads `path` from the filesystem `fs` on `device`.
pub fn read_file(
    device: &Path,
    fs: FsType,
    path: &str,
    limit: usize,
) -> Result<Option<Vec<u8>>, DiskError> {
    let shown = || device.display().to_string();
    let file = File::open(device).map_err(|source| DiskError::Open {
        device: shown(),
        source,
    })?;
    match fs {
        FsType::Iso9660 => match iso9660::read_file(&mut io::BufReader::new(file), path, limit) {
            Err(IsoError::TooLarge { limit, .. }) => Err(DiskError::TooLarge {
                device: shown(),
                path: path.into(),
                limit,
            }),
            other => other.map_err(|source| DiskError::Iso {
                device: shown(),
                path: path.into(),
                source,
            }),
        },
        FsType::Vfat => {
            fat_read_file(io::BufReader::new(file), path, limit).map_err(|source| DiskError::Fat {
                device: shown(),
                path: path.into(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_budget_saturates_at_the_extremes() {
        assert_eq!(fat_budget(0, 0), FAT_BUDGET_BASE);
        assert_eq!(fat_budget(u64::MAX, usize::MAX), u64::MAX);
        assert_eq!(fat_budget(1 << 20, 16 << 20), (2 << 20) + FAT_BUDGET_BASE);
        assert_eq!(fat_budget(u64::MAX, 1), 4 + FAT_BUDGET_BASE);
    }

    #[test]
    fn reads_stop_when_the_budget_is_spent() {
        let mut dev = ReadOnly::new(io::Cursor::new(vec![7u8; 100]), 10);
        let mut buf = [0u8; 64];
        assert_eq!(dev.read(&mut buf).unwrap(), 10);
        let err = dev.read(&mut buf).unwrap_err();
        assert!(
            err.to_string().contains("gave up after reading 10 bytes"),
            "{err}"
        );
    }
}
