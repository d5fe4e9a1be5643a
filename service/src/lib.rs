//! service (placeholder; see README).
