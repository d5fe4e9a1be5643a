//! The kernel command line, tokenised as the kernel does (being filled in).
