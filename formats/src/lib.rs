//! LinuxKit's on-disk formats, defined once and shared by the assembler (`xtask`), which writes them, and the
//! programs in the guest, which read them.
//!
//! - [`bundle`]: where bundles live (`/containers/...`) and what each holds.
//! - [`runtime`]: `runtime.json`, with guestkit's extensions.
//! - [`annotations`]: the annotation keys guestkit reads from `config.json`.
//! - [`timeline`]: one record of the boot timeline (`/run/boot-timeline.jsonl`).

pub mod annotations;
pub mod bundle;
pub mod runtime;
pub mod timeline;
