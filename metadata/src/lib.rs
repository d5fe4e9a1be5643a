//! metadata (placeholder; see README).
