//! The Linux capability names LinuxKit's build tool knows (`capability.ListKnown()`), in kernel number order.
//! LinuxKit accepts only the upper-case `CAP_` spelling, plus a single `all` or `none` (any case).

/// Every capability known to the build, by number (0 = `CAP_CHOWN` … 40 = `CAP_CHECKPOINT_RESTORE`).
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// True for an exact known name such as `CAP_NET_ADMIN`.
pub fn is_known_capability(name: &str) -> bool {
    ALL_CAPABILITIES.contains(&name)
}

/// Checks a capability list as LinuxKit does: a lone `all`/`none` (any case), else known `CAP_` names only.
/// The error text names the bad entry and, when it is a near miss, the accepted spelling.
pub(crate) fn check_list(list: &[String]) -> Result<(), String> {
    if let [only] = list {
        let lower = only.to_ascii_lowercase();
        if lower == "all" || lower == "none" {
            return Ok(());
        }
    }
    for name in list {
        if is_known_capability(name) {
            continue;
        }
        let upper = name.to_ascii_uppercase();
        let suggestion = if upper.starts_with("CAP_") {
            upper.clone()
        } else {
            format!("CAP_{upper}")
        };
        let hint = if is_known_capability(&suggestion) {
            format!(" (did you mean {suggestion:?}?)")
        } else if matches!(upper.as_str(), "ALL" | "NONE") {
            " (\"all\" and \"none\" must be the only entry)".to_string()
        } else {
            String::new()
        };
        return Err(format!("unknown capability {name:?}{hint}"));
    }
    Ok(())
}
