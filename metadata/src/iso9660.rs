//! A small read-only ISO9660 reader (Rock Ridge `NM` names, Joliet names, plain `NAME;1` names),
//! enough to read a few files from a NoCloud/ConfigDrive/LinuxKit CD without mounting it.
//!
//! Every offset and length comes from the image, so all of them are checked: a broken image gives
//! an error, never a panic (LinuxKit's go-diskfs reader crashed here: #3562, #3714).

use std::io::{Read, Seek, SeekFrom};

const SECTOR: u64 = 2048;
/// Largest directory read (bytes).
const MAX_DIR: u32 = 1024 * 1024;
/// Most directory levels followed.
const MAX_DEPTH: usize = 8;

/// A malformed image or a failed read.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    /// Reading the device failed.
    #[error("reading the image")]
    Io(#[from] std::io::Error),
    /// No primary volume descriptor.
    #[error("not an ISO9660 image")]
    NotIso,
    /// A structure is inconsistent.
    #[error("corrupt image: {0}")]
    Corrupt(&'static str),
    /// A file is larger than the caller allows.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: String, limit: usize },
}

#[derive(Debug, Clone, Copy)]
struct Extent {
    lba: u32,
    len: u32,
    dir: bool,
}

#[derive(Debug, Clone, Copy)]
struct Volume {
    root: Extent,
    block: u64,
    joliet: bool,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

fn read_at<R: Read + Seek>(dev: &mut R, offset: u64, len: usize) -> Result<Vec<u8>, IsoError> {
    dev.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    dev.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(IsoError::Corrupt("short read"));
    }
    Ok(buf)
}

fn volumes<R: Read + Seek>(dev: &mut R) -> Result<Vec<Volume>, IsoError> {
    let mut out = Vec::new();
    for index in 16..32u64 {
        let Ok(vd) = read_at(dev, index * SECTOR, SECTOR as usize) else {
            break;
        };
        if vd.get(1..6) != Some(b"CD001") {
            break;
        }
        let kind = vd.first().copied().unwrap_or(255);
        if kind == 255 {
            break;
        }
        let joliet = kind == 2 && matches!(vd.get(88..91), Some(b"%/@" | b"%/C" | b"%/E"));
        if kind != 1 && !joliet {
            continue;
        }
        let block = u64::from(u16::from_le_bytes([
            *vd.get(128).unwrap_or(&0),
            *vd.get(129).unwrap_or(&0),
        ]));
        if !matches!(block, 512 | 1024 | 2048) {
            return Err(IsoError::Corrupt("logical block size"));
        }
        let root = vd.get(156..190).ok_or(IsoError::Corrupt("root record"))?;
        let root = Extent {
            lba: le32(root, 2).unwrap_or(0),
            len: le32(root, 10).unwrap_or(0),
            dir: true,
        };
        // Joliet first: its names are exact; then the primary volume with Rock Ridge.
        if joliet {
            out.insert(
                0,
                Volume {
                    root,
                    block,
                    joliet,
                },
            )
        } else {
            out.push(Volume {
                root,
                block,
                joliet,
            })
        }
    }
    if out.is_empty() {
        Err(IsoError::NotIso)
    } else {
        Ok(out)
    }
}

/// The Rock Ridge `NM` name in a system-use area, if any.
fn rock_ridge_name(mut su: &[u8]) -> Option<String> {
    let mut name = Vec::new();
    while su.len() >= 4 {
        let len = usize::from(su[2]);
        if len < 4 || len > su.len() {
            break;
        }
        if &su[..2] == b"NM" {
            name.extend_from_slice(su.get(5..len)?);
        }
        su = &su[len..];
    }
    (!name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned())
}

fn plain_name(raw: &[u8], joliet: bool) -> String {
    let name = if joliet {
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(raw).into_owned()
    };
    let name = name.split(';').next().unwrap_or_default();
    name.strip_suffix('.').unwrap_or(name).to_string()
}

/// Entries of one directory: (name, extent).
fn list<R: Read + Seek>(
    dev: &mut R,
    vol: &Volume,
    dir: Extent,
) -> Result<Vec<(String, Extent)>, IsoError> {
    if dir.len > MAX_DIR {
        return Err(IsoError::Corrupt("directory too large"));
    }
    let data = read_at(dev, u64::from(dir.lba) * vol.block, dir.len as usize)?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let len = usize::from(data[pos]);
        if len == 0 {
            pos = (pos / SECTOR as usize + 1) * SECTOR as usize;
            continue;
        }
        let rec = data
            .get(pos..pos + len)
            .ok_or(IsoError::Corrupt("directory record"))?;
        pos += len;
        let name_len = usize::from(*rec.get(32).ok_or(IsoError::Corrupt("record too short"))?);
        let raw = rec
            .get(33..33 + name_len)
            .ok_or(IsoError::Corrupt("record name"))?;
        if raw == [0] || raw == [1] {
            continue;
        }
        let su_start = 33 + name_len + usize::from(name_len % 2 == 0);
        let rr = if vol.joliet {
            None
        } else {
            rec.get(su_start..).and_then(rock_ridge_name)
        };
        let name = rr.unwrap_or_else(|| plain_name(raw, vol.joliet));
        let flags = rec.get(25).copied().unwrap_or(0);
        let extent = Extent {
            lba: le32(rec, 2).unwrap_or(0),
            len: le32(rec, 10).unwrap_or(0),
            dir: flags & 2 != 0,
        };
        out.push((name, extent));
    }
    Ok(out)
}

fn lookup<R: Read + Seek>(
    dev: &mut R,
    vol: &Volume,
    path: &str,
) -> Result<Option<Extent>, IsoError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() > MAX_DEPTH {
        return Ok(None);
    }
    let mut cur = vol.root;
    for (i, part) in parts.iter().enumerate() {
        let entries = list(dev, vol, cur)?;
        let Some((_, found)) = entries
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(part))
        else {
            return Ok(None);
        };
        if i + 1 < parts.len() && !found.dir {
            return Ok(None);
        }
        cur = found;
    }
    Ok((!cur.dir).then_some(cur))
}

/// Reads `path` (`a/b/c`, case-insensitive) from the image; `None` if it is not there.
pub fn read_file<R: Read + Seek>(
    dev: &mut R,
    path: &str,
    limit: usize,
) -> Result<Option<Vec<u8>>, IsoError> {
    for vol in volumes(dev)? {
        if let Some(ext) = lookup(dev, &vol, path)? {
            if ext.len as usize > limit {
                return Err(IsoError::TooLarge {
                    path: path.to_string(),
                    limit,
                });
            }
            return read_at(dev, u64::from(ext.lba) * vol.block, ext.len as usize).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A hand-built image: PVD, terminator, a root directory holding `config` (LinuxKit's layout).
    fn linuxkit_iso(data: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 21 * 2048];
        let pvd = 16 * 2048;
        img[pvd] = 1;
        img[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
        img[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
        let root = pvd + 156;
        img[root] = 34;
        img[root + 2..root + 6].copy_from_slice(&18u32.to_le_bytes());
        img[root + 10..root + 14].copy_from_slice(&2048u32.to_le_bytes());
        img[root + 25] = 2;
        img[17 * 2048] = 255;
        img[17 * 2048 + 1..17 * 2048 + 6].copy_from_slice(b"CD001");
        let dir = 18 * 2048;
        let rec = dir + 68;
        img[dir] = 34;
        img[dir + 32] = 1;
        img[dir + 34] = 34;
        img[dir + 66] = 1;
        img[dir + 67] = 1;
        img[rec] = 40;
        img[rec + 2..rec + 6].copy_from_slice(&20u32.to_le_bytes());
        img[rec + 10..rec + 14].copy_from_slice(&(data.len() as u32).to_le_bytes());
        img[rec + 32] = 6;
        img[rec + 33..rec + 39].copy_from_slice(b"config");
        img[20 * 2048..20 * 2048 + data.len()].copy_from_slice(data);
        img
    }

    #[test]
    fn reads_a_linuxkit_style_image() {
        let mut img = Cursor::new(linuxkit_iso(b"hello"));
        assert_eq!(
            read_file(&mut img, "config", 100).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(read_file(&mut img, "user-data", 100).unwrap(), None);
        assert!(matches!(
            read_file(&mut img, "config", 2),
            Err(IsoError::TooLarge { .. })
        ));
    }

    #[test]
    fn corrupt_images_are_errors() {
        assert!(matches!(
            read_file(&mut Cursor::new(vec![0u8; 40000]), "config", 10),
            Err(IsoError::NotIso)
        ));
        let mut img = linuxkit_iso(b"x");
        img[18 * 2048 + 68 + 32] = 200; // name longer than its record
        assert!(read_file(&mut Cursor::new(img.clone()), "config", 10).is_err());
        img[16 * 2048 + 156 + 10..16 * 2048 + 156 + 14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_file(&mut Cursor::new(img), "config", 10).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(plain_name(b"USER_DAT.;1", false), "USER_DAT");
        assert_eq!(plain_name(&[0, b'a', 0, b'-'], true), "a-");
        assert_eq!(
            rock_ridge_name(b"PX\x04\x01NM\x0e\x01\x00user-data"),
            Some("user-data".into())
        );
        assert_eq!(rock_ridge_name(b"NM\x02"), None);
    }
}
