//! Hot plug: a thread listening to the kernel's uevents (`NETLINK_KOBJECT_UEVENT`) loads the driver of
//! every device added after cold plug began, for example disks and CD-ROMs found by an asynchronous SCSI
//! scan, or hot-plugged NICs. It starts before the cold plug scan so no device falls in between.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};

use super::{Loader, ModuleIndex, loaded_modules};
use crate::sys::RealSys;

/// The parts of a kernel uevent that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `ACTION` (`add`, `remove`, `bind`, ...).
    pub action: String,
    /// `MODALIAS`, when the device has one.
    pub modalias: Option<String>,
}

/// Parses a kernel uevent datagram (`add@/devices/...\0ACTION=add\0...MODALIAS=...\0`). Messages from
/// udev (`libudev` magic) and anything without an `ACTION` give `None`.
pub fn parse_uevent(msg: &[u8]) -> Option<Uevent> {
    let mut fields = msg.split(|&b| b == 0);
    let header = fields.next()?;
    if !header.contains(&b'@') {
        return None;
    }
    let mut action = None;
    let mut modalias = None;
    for field in fields {
        let text = String::from_utf8_lossy(field);
        if let Some(v) = text.strip_prefix("ACTION=") {
            action = Some(v.to_string());
        } else if let Some(v) = text.strip_prefix("MODALIAS=") {
            modalias = Some(v.to_string());
        }
    }
    Some(Uevent {
        action: action?,
        modalias,
    })
}

fn open_socket() -> nix::Result<std::os::fd::OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1))?;
    Ok(fd)
}

fn listen(fd: std::os::fd::OwnedFd, dir: PathBuf, index: Arc<ModuleIndex>) {
    let sys = RealSys;
    let loaded = loaded_modules(&std::fs::read_to_string("/proc/modules").unwrap_or_default());
    let mut loader = Loader::new(&sys, &dir, &index, loaded);
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::ENOBUFS) => continue,
            Err(e) => {
                log::error!("reading uevents: {e}; hot plug stops");
                return;
            }
        };
        let Some(event) = parse_uevent(buf.get(..n).unwrap_or_default()) else {
            continue;
        };
        let Some(alias) = event.modalias.filter(|_| event.action == "add") else {
            continue;
        };
        let modules = index.lookup_alias(&alias);
        for e in loader.load(&modules, "") {
            log::warn!("hot plug: {e}: {}", e.source);
        }
    }
}

/// Starts the listener thread (call after the signals are blocked).
pub fn spawn(dir: PathBuf, index: Arc<ModuleIndex>) {
    let fd = match open_socket() {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("opening the uevent socket: {e}; no hot plug");
            return;
        }
    };
    let started = std::thread::Builder::new()
        .name("hotplug".into())
        .spawn(move || listen(fd, dir, index));
    if let Err(e) = started {
        log::error!("starting the hot plug thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_uevents_only() {
        let ev = |action: &str, modalias: Option<&str>| {
            Some(Uevent {
                action: action.into(),
                modalias: modalias.map(Into::into),
            })
        };
        let cases: &[(&[u8], Option<Uevent>)] = &[
            (
                b"add@/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0\0ACTION=add\0DEVPATH=/devices/x\0SUBSYSTEM=scsi\0MODALIAS=scsi:t-0x05\0SEQNUM=1\0",
                ev("add", Some("scsi:t-0x05")),
            ),
            (b"remove@/devices/x\0ACTION=remove\0MODALIAS=pci:v1\0", ev("remove", Some("pci:v1"))),
            (b"add@/devices/x\0ACTION=add\0SUBSYSTEM=block\0", ev("add", None)),
            (b"libudev\0\xfe\xed\xca\xfe", None),
            (b"add@/devices/x\0SUBSYSTEM=block\0", None),
            (b"", None),
        ];
        for (i, (msg, want)) in cases.iter().enumerate() {
            assert_eq!(&parse_uevent(msg), want, "case {i}");
        }
    }
}
