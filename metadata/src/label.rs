//! Filesystem type and label from the first 34 KiB of a block device: ISO9660 (primary volume
//! descriptor at 32 KiB) and FAT12/16/32 (boot sector). Pure and bounded; never panics on input.

/// How many bytes [`detect`] needs.
pub const PROBE_LEN: usize = 32 * 1024 + 2048;

/// A filesystem we can mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    /// ISO9660 (CD-ROM images).
    Iso9660,
    /// FAT (NoCloud/ConfigDrive on a disk).
    Vfat,
}

impl FsType {
    /// The name `mount(2)` wants.
    pub fn mount_name(self) -> &'static str {
        match self {
            FsType::Iso9660 => "iso9660",
            FsType::Vfat => "vfat",
        }
    }
}

/// The type and (trimmed) label found in `head`, if it is ISO9660 or FAT.
pub fn detect(head: &[u8]) -> Option<(FsType, String)> {
    iso9660(head)
        .map(|l| (FsType::Iso9660, l))
        .or_else(|| fat(head).map(|l| (FsType::Vfat, l)))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_matches(|c: char| c == ' ' || c == '\0')
        .to_string()
}

fn iso9660(head: &[u8]) -> Option<String> {
    let pvd = head.get(32 * 1024..32 * 1024 + 2048)?;
    if pvd.first() != Some(&1) || pvd.get(1..6) != Some(b"CD001") {
        return None;
    }
    pvd.get(40..72).map(text)
}

fn fat(head: &[u8]) -> Option<String> {
    let boot = head.get(..512)?;
    if boot.get(510..512) != Some(&[0x55, 0xAA]) {
        return None;
    }
    let bytes_per_sector = u16::from_le_bytes([*boot.get(11)?, *boot.get(12)?]);
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096) || *boot.get(16)? == 0 {
        return None;
    }
    let sectors_per_fat16 = u16::from_le_bytes([*boot.get(22)?, *boot.get(23)?]);
    let (sig, label) = if sectors_per_fat16 == 0 {
        (66, 71)
    } else {
        (38, 43)
    };
    if *boot.get(sig)? != 0x29 {
        return Some(String::new());
    }
    let label = text(boot.get(label..label + 11)?);
    Some(if label == "NO NAME" {
        String::new()
    } else {
        label
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_label() {
        let mut img = vec![0u8; PROBE_LEN];
        img[32768] = 1;
        img[32769..32774].copy_from_slice(b"CD001");
        img[32768 + 40..32768 + 46].copy_from_slice(b"cidata");
        img[32768 + 46..32768 + 72].fill(b' ');
        assert_eq!(detect(&img), Some((FsType::Iso9660, "cidata".into())));
    }

    #[test]
    fn fat16_label() {
        let mut img = vec![0u8; 1024];
        img[11..13].copy_from_slice(&512u16.to_le_bytes());
        img[16] = 2;
        img[22] = 8;
        img[38] = 0x29;
        img[43..54].copy_from_slice(b"CIDATA     ");
        img[510] = 0x55;
        img[511] = 0xAA;
        assert_eq!(detect(&img), Some((FsType::Vfat, "CIDATA".into())));
    }

    #[test]
    fn junk_is_nothing() {
        assert_eq!(detect(&[]), None);
        assert_eq!(detect(&[0xFF; PROBE_LEN]), None);
    }
}
