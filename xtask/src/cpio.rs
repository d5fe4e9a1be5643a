//! A newc ("070701") cpio writer for initramfs images, and a small reader for checking archives.
//! Entries are written in the order given (the tree gives sorted order, parents first); mtimes are 0 so the
//! output is deterministic; inode numbers count up from 1; the archive ends with `TRAILER!!!`.

use std::io::{self, Read, Write};

use crate::assemble::{Node, NodeKind};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;

/// The header fields of one newc entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// Streams entries into a newc archive (buffered internally).
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: io::BufWriter<W>,
    next_ino: u32,
}

fn padding(len: u64) -> usize {
    ((4 - (len % 4)) % 4) as usize
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> CpioWriter<W> {
        CpioWriter {
            out: io::BufWriter::with_capacity(1 << 20, out),
            next_ino: 1,
        }
    }

    fn header(&mut self, h: &Header) -> io::Result<()> {
        let size = u32::try_from(h.size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: larger than 4 GiB", h.name),
            )
        })?;
        let ino = if h.name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let namesize = h.name.len() + 1;
        let fields = [
            ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            0,
            size,
            0,
            0,
            h.rdev_major,
            h.rdev_minor,
            namesize as u32,
            0,
        ];
        let mut text = String::from("070701");
        for field in fields {
            text.push_str(&format!("{field:08x}"));
        }
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(h.name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.out
            .write_all(&[0; 3][..padding(110 + namesize as u64)])
    }

    /// Writes one entry; `data` must yield exactly `h.size` bytes.
    pub fn write_entry(&mut self, h: &Header, data: &mut dyn Read) -> io::Result<()> {
        self.header(h)?;
        let copied = io::copy(&mut data.take(h.size), &mut self.out)?;
        if copied != h.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: expected {} bytes, source gave {copied}",
                    h.name, h.size
                ),
            ));
        }
        self.out.write_all(&[0; 3][..padding(h.size)])
    }

    /// Writes a tree node at `path` (relative, no leading `/`).
    pub fn write_node(&mut self, path: &str, node: &Node) -> io::Result<()> {
        let mut h = Header {
            name: path.to_string(),
            uid: node.uid,
            gid: node.gid,
            nlink: 1,
            ..Header::default()
        };
        let perm = node.mode & 0o7777;
        let context = |e: io::Error| io::Error::new(e.kind(), format!("/{path}: {e}"));
        match &node.kind {
            NodeKind::Dir => {
                h.mode = S_IFDIR | perm;
                h.nlink = 2;
                self.write_entry(&h, &mut io::empty())
            }
            NodeKind::File { content, size } => {
                h.mode = S_IFREG | perm;
                h.size = *size;
                let mut reader = content.open().map_err(context)?;
                self.write_entry(&h, &mut reader).map_err(context)
            }
            NodeKind::Symlink(target) => {
                // The permission bits are kept as given (a tar header's), as `linuxkit build` does;
                // Linux ignores them.
                h.mode = S_IFLNK | perm;
                h.size = target.len() as u64;
                self.write_entry(&h, &mut target.as_bytes())
            }
            NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor } => {
                let kind = if matches!(node.kind, NodeKind::CharDevice { .. }) {
                    S_IFCHR
                } else {
                    S_IFBLK
                };
                h.mode = kind | perm;
                h.rdev_major = *major;
                h.rdev_minor = *minor;
                self.write_entry(&h, &mut io::empty())
            }
            NodeKind::Fifo => {
                h.mode = S_IFIFO | perm;
                self.write_entry(&h, &mut io::empty())
            }
        }
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        let h = Header {
            name: TRAILER.to_string(),
            nlink: 1,
            ..Header::default()
        };
        self.write_entry(&h, &mut io::empty())?;
        self.out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }
}

/// One entry read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub header: Header,
    pub data: Vec<u8>,
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads a whole newc archive (up to the trailer) into memory. Intended for tests and inspection.
pub fn read_archive(mut input: impl Read) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    loop {
        let mut raw = [0u8; 110];
        input.read_exact(&mut raw)?;
        if &raw[..6] != MAGIC {
            return Err(bad(format!(
                "entry {}: bad magic {:?}",
                entries.len(),
                &raw[..6]
            )));
        }
        let field = |i: usize| -> io::Result<u32> {
            let text =
                std::str::from_utf8(&raw[6 + i * 8..14 + i * 8]).map_err(|e| bad(e.to_string()))?;
            u32::from_str_radix(text, 16).map_err(|e| bad(format!("header field {i}: {e}")))
        };
        let namesize = field(11)? as usize;
        let mut name = vec![0u8; namesize];
        input.read_exact(&mut name)?;
        io::copy(
            &mut (&mut input).take(padding(110 + namesize as u64) as u64),
            &mut io::sink(),
        )?;
        name.pop();
        let name = String::from_utf8(name).map_err(|e| bad(e.to_string()))?;
        if name == TRAILER {
            return Ok(entries);
        }
        let size = u64::from(field(6)?);
        let mut data = vec![0u8; size as usize];
        input.read_exact(&mut data)?;
        io::copy(
            &mut (&mut input).take(padding(size) as u64),
            &mut io::sink(),
        )?;
        let header = Header {
            name,
            mode: field(1)?,
            uid: field(2)?,
            gid: field(3)?,
            nlink: field(4)?,
            size,
            rdev_major: field(9)?,
            rdev_minor: field(10)?,
        };
        entries.push(Entry { header, data });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::{Node, Tree};

    #[test]
    fn round_trips_every_node_kind() {
        let mut tree = Tree::new();
        tree.insert("etc/hosts", Node::bytes("127.0.0.1 localhost\n", 0o644));
        tree.insert("bin/sh", Node::symlink("busybox"));
        tree.insert(
            "dev/console",
            Node {
                kind: NodeKind::CharDevice { major: 5, minor: 1 },
                mode: 0o600,
                uid: 0,
                gid: 0,
            },
        );
        tree.insert("odd", Node::bytes("abcde", 0o755).owned(100, 101));
        let bytes = tree.write_cpio(Vec::new()).expect("write");
        assert_eq!(bytes.len() % 4, 0);
        let entries = read_archive(&bytes[..]).expect("read");
        let names: Vec<&str> = entries.iter().map(|e| e.header.name.as_str()).collect();
        assert_eq!(
            names,
            [
                ".",
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "etc",
                "etc/hosts",
                "odd"
            ]
        );
        assert_eq!(entries[0].header.mode, S_IFDIR | 0o755, "default root");
        assert_eq!(entries[2].data, b"busybox");
        assert_eq!(entries[2].header.mode, S_IFLNK | 0o777);
        assert_eq!(
            (entries[4].header.rdev_major, entries[4].header.rdev_minor),
            (5, 1)
        );
        assert_eq!(entries[4].header.mode, S_IFCHR | 0o600);
        assert_eq!(entries[7].data, b"abcde");
        assert_eq!((entries[7].header.uid, entries[7].header.gid), (100, 101));
        assert_eq!(entries[1].header.mode, S_IFDIR | 0o755);
    }

    #[test]
    fn the_root_entry_and_symlink_modes_are_written_as_recorded() {
        let mut tree = Tree::new();
        tree.insert("", Node::dir(0o750).owned(1, 2));
        let mut link = Node::symlink("/proc/mounts");
        link.mode = 0o755;
        tree.insert("etc/mtab", link);
        let entries = read_archive(&tree.write_cpio(Vec::new()).expect("write")[..]).expect("read");
        assert_eq!(entries[0].header.name, ".");
        assert_eq!(entries[0].header.mode, S_IFDIR | 0o750);
        assert_eq!((entries[0].header.uid, entries[0].header.gid), (1, 2));
        assert_eq!(entries[2].header.mode, S_IFLNK | 0o755);
    }

    #[test]
    fn a_short_source_is_an_error_not_a_corrupt_archive() {
        let mut tree = Tree::new();
        let node = Node::file(crate::assemble::Content::bytes("abc"), 10, 0o644);
        tree.insert("short", node);
        let err = tree.write_cpio(Vec::new()).expect_err("must fail");
        assert!(err.to_string().contains("/short"), "{err}");
    }
}
