//! `service`: guestkit's containerd/runc client, a drop-in for LinuxKit's `/usr/bin/service`.
//!
//! In the LinuxKit boot sequence it runs as the hooks `/etc/init.d/005-volumes` (mount volumes),
//! `010-onboot` (run `/containers/onboot/*` to completion with runc), `020-containerd` (`system-init`: start
//! containerd and every `/containers/services/*` through it) and `/etc/shutdown.d/010-onshutdown`. As a
//! command it starts, stops, restarts and lists services, stops them all at shutdown, and supervises
//! restart policies.
//!
//! Modules: [`cli`] (flags, argv0 table) → [`commands`] (glue); [`runtime_json`], [`mount_options`],
//! [`bundle`] (parsers); [`prepare`] and [`process_setup`] (runtime.json phases A and B); [`runtime`] (the
//! containerd trait) with [`containerd`] (and `fake_runtime`, for tests: the `test-support` feature); [`services`] (start/stop/restart/shutdown),
//! [`system_init`], [`onboot`], [`volumes`], [`supervisor`], [`status`]; [`logs`], [`state`], [`timeline`],
//! [`layout`], [`cmdline`].
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod annotations;
pub mod bundle;
pub mod cli;
pub mod cmdline;
pub mod commands;
pub mod containerd;
#[cfg(any(test, feature = "test-support"))]
pub mod fake_runtime;
pub mod layout;
pub mod logs;
pub mod mount_options;
pub mod onboot;
pub mod prepare;
pub mod process_setup;
pub mod runc;
pub mod runtime;
pub mod runtime_json;
pub mod services;
pub mod shutdown;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod system_init;
pub mod timeline;
pub mod volumes;

/// An error and its causes on one line: `outer: cause: root cause`.
pub use logging::error_chain as describe;
