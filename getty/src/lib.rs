//! getty (placeholder; see README).
