//! Build tooling: blueprint assembler, image store, VM runner.
