//! The kernel command line parser: never panics; every parameter key is non-empty unless quoted empty.
#![no_main]

use init::cmdline::Cmdline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let c = Cmdline::parse(text);
    let _ = c.shutdown_timeout();
    let _ = c.wants_cgroup_v1();
    let _ = c.values("console").count();
    for p in &c.params {
        assert!(!p.key.contains(char::is_whitespace) || text.contains('"'));
    }
});
