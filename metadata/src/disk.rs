//! Reading files from a labelled device without mounting it: ISO9660 through [`crate::iso9660`],
//! FAT through the `fatfs` crate, both over a read-only file descriptor. No mount means no
//! CAP_SYS_ADMIN, no temporary mount points and no kernel filesystem driver parsing the medium.

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

/// A read-only device handed to `fatfs`, which wants `Write` as well: every write fails.
#[derive(Debug)]
struct ReadOnly<R>(R);

impl<R: Read> Read for ReadOnly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl<R: Seek> Seek for ReadOnly<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
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

/// Reads `path` from a FAT image; `None` if it is not there.
pub fn fat_read_file<R: Read + Seek>(
    dev: R,
    path: &str,
    limit: usize,
) -> io::Result<Option<Vec<u8>>> {
    let fs = fatfs::FileSystem::new(
        ReadOnly(dev),
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
