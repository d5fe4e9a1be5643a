//! modules.dep + modules.alias (split at the first NUL), alias lookup, resolution and load ordering.
#![no_main]

use std::collections::HashSet;

use init::modules::ModuleIndex;
use init::modules::glob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (dep, rest) = text.split_once('\0').unwrap_or((text, ""));
    let (alias, query) = rest
        .split_once('\0')
        .unwrap_or((rest, "pci:v00001AF4d00001000"));
    let _ = glob::matches(alias, query);
    assert!(glob::matches("*", query));
    assert!(glob::matches(
        &query.replace(['*', '?', '[', ']', '\\'], "x"),
        &query.replace(['*', '?', '[', ']', '\\'], "x")
    ));
    let Ok(index) = ModuleIndex::parse(dep, alias) else {
        return;
    };
    let wanted = index.resolve(query);
    let order = index.load_order(&wanted);
    let mut seen = HashSet::new();
    for entry in &order {
        assert!(seen.insert(entry.path.clone()), "module listed twice");
    }
    let levels: usize = index
        .load_levels(&wanted, &HashSet::new())
        .iter()
        .map(Vec::len)
        .sum();
    assert_eq!(levels, order.len());
});
