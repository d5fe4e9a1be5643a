//! vsock-forwarder (placeholder; see README).
