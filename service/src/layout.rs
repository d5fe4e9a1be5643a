//! Every path `service` reads or writes, in one value so that tests can point it at a temporary directory.

use std::path::PathBuf;

/// Where things are. [`Layout::default`] is the guest's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Onboot bundles (`NNN-name`).
    pub onboot_dir: PathBuf,
    /// Onshutdown bundles.
    pub onshutdown_dir: PathBuf,
    /// Service bundles (the `-path` default).
    pub services_dir: PathBuf,
    /// Volumes (`<name>/{lower,tmp,merged}`).
    pub volumes_dir: PathBuf,
    /// Parent of `onboot/` and `shutdown/` log directories.
    pub run_log_dir: PathBuf,
    /// Service log files (`<name>.log`, `<name>.out.log`).
    pub var_log_dir: PathBuf,
    /// memlogd's datagram socket; when it exists logs go to memlogd.
    pub memlogd_socket: PathBuf,
    /// memlogd's query socket.
    pub memlogd_query_socket: PathBuf,
    /// Where memlogd FIFOs for services are made.
    pub fifo_dir: PathBuf,
    /// The boot timeline shared with `init`.
    pub timeline: PathBuf,
    /// guestkit state: per-service records, the supervisor's pid file, locks.
    pub state_dir: PathBuf,
    /// The kernel command line.
    pub cmdline: PathBuf,
    /// The cgroup filesystem.
    pub cgroup_root: PathBuf,
    /// `system-init`'s configuration of the containerd process.
    pub runtime_config: PathBuf,
    /// `runc --root` (None: runc's default).
    pub runc_root: Option<PathBuf>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            onboot_dir: "/containers/onboot".into(),
            onshutdown_dir: "/containers/onshutdown".into(),
            services_dir: "/containers/services".into(),
            volumes_dir: "/containers/volumes".into(),
            run_log_dir: "/run/log".into(),
            var_log_dir: "/var/log".into(),
            memlogd_socket: "/var/run/linuxkit-external-logging.sock".into(),
            memlogd_query_socket: "/var/run/memlogdq.sock".into(),
            fifo_dir: "/var/run".into(),
            timeline: "/run/boot-timeline.jsonl".into(),
            state_dir: "/run/guestkit/service".into(),
            cmdline: "/proc/cmdline".into(),
            cgroup_root: "/sys/fs/cgroup".into(),
            runtime_config: "/etc/containerd/runtime-config.toml".into(),
            runc_root: None,
        }
    }
}

impl Layout {
    /// A layout with every path under `root` (for tests), keeping the guest's relative structure.
    pub fn under(root: &std::path::Path) -> Layout {
        let base = Layout::default();
        let rebase = |p: PathBuf| root.join(p.strip_prefix("/").unwrap_or(&p));
        Layout {
            onboot_dir: rebase(base.onboot_dir),
            onshutdown_dir: rebase(base.onshutdown_dir),
            services_dir: rebase(base.services_dir),
            volumes_dir: rebase(base.volumes_dir),
            run_log_dir: rebase(base.run_log_dir),
            var_log_dir: rebase(base.var_log_dir),
            memlogd_socket: rebase(base.memlogd_socket),
            memlogd_query_socket: rebase(base.memlogd_query_socket),
            fifo_dir: rebase(base.fifo_dir),
            timeline: rebase(base.timeline),
            state_dir: rebase(base.state_dir),
            cmdline: rebase(base.cmdline),
            cgroup_root: base.cgroup_root,
            runtime_config: rebase(base.runtime_config),
            runc_root: Some(root.join("runc")),
        }
    }
}
