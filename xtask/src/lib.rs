//! Build tooling for guestkit: the LinuxKit-style blueprint parser and image assembler, the local image
//! store, the Debian-derived images (kernel, busybox, runc, containerd) and the qemu VM runner.

pub mod assemble;
pub mod blueprint;
pub mod cpio;
pub mod debian;
pub mod oci_config;
pub mod store;
pub mod vm;
