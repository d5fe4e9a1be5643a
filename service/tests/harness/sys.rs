//! The tests' only unsafe code: taking ownership of file descriptors received with SCM_RIGHTS.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Wraps a descriptor that `recvmsg` just installed in this process.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` for this process while delivering SCM_RIGHTS; nothing else knows
    // it, so this is its only owner. JUSTIFICATION: nix returns received descriptors as raw integers.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
