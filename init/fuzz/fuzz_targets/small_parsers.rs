//! The other parsers of outside input: /proc/cgroups, /proc/mounts, modprobe arguments, uevents,
//! timeline lines, input events.
#![no_main]

use init::modules::{hotplug, modprobe};
use init::{cgroups, power_button, shutdown, timeline_svg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hotplug::parse_uevent(data);
    let _ = power_button::has_power_press(data);
    let text = String::from_utf8_lossy(data);
    let _ = cgroups::plan(true, &text);
    let _ = shutdown::unmount_order(&text);
    let args: Vec<String> = text.split_whitespace().map(String::from).collect();
    let _ = modprobe::parse_args(&args);
    let records: Vec<_> = text
        .lines()
        .filter_map(|l| timeline_svg::parse_record(l).ok())
        .collect();
    let _ = timeline_svg::render(&records);
});
