//! guestkit `init`: a sinit-style PID 1 that replaces LinuxKit's `/init`, busybox `/sbin/init` and
//! `rc.init`/`rc.shutdown` in one process, plus the `/sbin/modprobe` and `/sbin/usermode-helper`
//! personalities of the same binary.
//!
//! Map:
//! - pure parsers over `&str`: [`cmdline`], [`mount_options`], [`modules::index`], [`modules::modprobe`],
//!   [`cgroups`], [`shutdown::unmount_order`], [`sysctl`];
//! - plans: [`root`], [`mount_table`], [`cgroups`] build [`plan::Step`] lists that [`plan::execute`] runs
//!   through the [`sys::Sys`] seam ([`sys::RealSys`], or [`recording_sys::RecordingSys`] in tests);
//! - the imperative shell: [`boot`] (sequence), [`supervisor`] (signals, reaping), [`shutdown`],
//!   [`power_button`], [`hooks`], [`timeline`] and [`timeline_svg`].
//!
//! All `unsafe` is in [`sys`].

#![warn(missing_docs)]

pub mod boot;
pub mod cgroups;
pub mod cmdline;
pub mod console;
pub mod hooks;
pub mod layout;
pub mod mdev;
pub mod modules;
pub mod mount_options;
pub mod mount_table;
pub mod panic_hook;
pub mod personality;
pub mod plan;
pub mod power;
pub mod power_button;
pub mod recording_sys;
pub mod root;
pub mod shutdown;
pub mod supervisor;
pub mod sys;
pub mod sysctl;
pub mod system;
pub mod timeline;
pub mod timeline_svg;
pub mod usermode_helper;
