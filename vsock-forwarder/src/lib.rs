//! vsock-forwarder: a drop-in for LinuxKit's `vsudd`, plus outbound forwarding.
//!
//! In a LinuxKit image it runs as a service container. Each `-inport PORT:unix:PATH` listens on AF_VSOCK
//! and forwards every connection to a unix socket in the guest (for example containerd's); `-syslog` sends
//! guest syslog datagrams to the host; `-forward LISTEN=TARGET` adds any-to-any forwards (guest unix
//! socket to a host vsock port, vsock to an allow-listed TCP address, …). See `README.md` for the flags.
//!
//! Modules, from pure to effectful:
//! - [`endpoint`]: the [`endpoint::Endpoint`] address type (`vsock:CID:PORT`, `unix:PATH`, `tcp:IP:PORT`).
//! - [`config`] and [`cli`]: specs and flags into a validated [`config::Config`].
//! - [`copy`]: the copy engine, generic over `AsyncRead + AsyncWrite` (half-close, backpressure, counters).
//! - [`dial`]: retrying a target that is not listening yet.
//! - [`stream`]: the [`stream::Stream`]/[`stream::Listener`] enums and the [`stream::Acceptor`] trait;
//!   AF_VSOCK lives only there and in [`sys`].
//! - [`forward`]: the accept loop (connection cap) and the per-connection task.
//! - [`syslog`], [`detach`], [`stats`], [`ratelimit`], [`daemon`]: the rest of the daemon.
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod copy;
pub mod daemon;
pub mod detach;
pub mod dial;
pub mod endpoint;
pub mod forward;
pub mod limits;
pub mod ratelimit;
pub mod stats;
pub mod stream;
pub mod sys;
pub mod syslog;
