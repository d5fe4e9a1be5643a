//! System-test helpers shared by the VM tests.
