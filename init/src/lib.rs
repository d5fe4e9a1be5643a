//! init (placeholder; see README).
