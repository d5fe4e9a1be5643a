//! Merging the image label layer (`org.mobyproject.config`) with the YAML entry, as LinuxKit does: the YAML
//! replaces the label field by field, except `binds.add` / `capabilities.add`, which are appended to the
//! label's `binds` / `capabilities` unless the YAML sets `binds` / `capabilities` itself.
//!
//! Divergence (LinuxKit quirk docs/linuxkit.md §18.16): the merged lists are de-duplicated, as LinuxKit intended.

use crate::blueprint::{BindNamespaces, ImageConfig, RuntimeConfig};

/// The effective configuration of a container: `label` first, then `yaml`. The result has no `*.add` keys.
pub fn merge_layers(label: &ImageConfig, yaml: &ImageConfig) -> ImageConfig {
    let y = yaml.clone();
    let l = label.clone();
    ImageConfig {
        capabilities: y
            .capabilities
            .or_else(|| merged(&l.capabilities, &y.capabilities_add)),
        capabilities_add: None,
        ambient: y.ambient.or(l.ambient),
        mounts: y.mounts.or(l.mounts),
        binds: y.binds.or_else(|| merged(&l.binds, &y.binds_add)),
        binds_add: None,
        devices: y.devices.or(l.devices),
        tmpfs: y.tmpfs.or(l.tmpfs),
        command: y.command.or(l.command),
        env: y.env.or(l.env),
        cwd: non_empty(y.cwd).or(non_empty(l.cwd)),
        net: non_empty(y.net).or(non_empty(l.net)),
        pid: non_empty(y.pid).or(non_empty(l.pid)),
        ipc: non_empty(y.ipc).or(non_empty(l.ipc)),
        uts: non_empty(y.uts).or(non_empty(l.uts)),
        userns: non_empty(y.userns).or(non_empty(l.userns)),
        hostname: non_empty(y.hostname).or(non_empty(l.hostname)),
        readonly: y.readonly.or(l.readonly),
        masked_paths: y.masked_paths.or(l.masked_paths),
        readonly_paths: y.readonly_paths.or(l.readonly_paths),
        uid: y.uid.or(l.uid),
        gid: y.gid.or(l.gid),
        additional_gids: y.additional_gids.or(l.additional_gids),
        no_new_privileges: y.no_new_privileges.or(l.no_new_privileges),
        oom_score_adj: y.oom_score_adj.or(l.oom_score_adj),
        rootfs_propagation: y.rootfs_propagation.or(l.rootfs_propagation),
        cgroups_path: y.cgroups_path.or(l.cgroups_path),
        resources: y.resources.or(l.resources),
        sysctl: y.sysctl.or(l.sysctl),
        rlimits: y.rlimits.or(l.rlimits),
        uid_mappings: y.uid_mappings.or(l.uid_mappings),
        gid_mappings: y.gid_mappings.or(l.gid_mappings),
        annotations: y.annotations.or(l.annotations),
        runtime: Some(merge_runtime(
            l.runtime.unwrap_or_default(),
            y.runtime.unwrap_or_default(),
        )),
    }
}

/// `runtime:` fields are replaced whole, `bindNS` per namespace.
fn merge_runtime(l: RuntimeConfig, y: RuntimeConfig) -> RuntimeConfig {
    RuntimeConfig {
        cgroups: y.cgroups.or(l.cgroups),
        mounts: y.mounts.or(l.mounts),
        mkdir: y.mkdir.or(l.mkdir),
        interfaces: y.interfaces.or(l.interfaces),
        bind_ns: BindNamespaces {
            cgroup: y.bind_ns.cgroup.or(l.bind_ns.cgroup),
            ipc: y.bind_ns.ipc.or(l.bind_ns.ipc),
            mnt: y.bind_ns.mnt.or(l.bind_ns.mnt),
            net: y.bind_ns.net.or(l.bind_ns.net),
            pid: y.bind_ns.pid.or(l.bind_ns.pid),
            user: y.bind_ns.user.or(l.bind_ns.user),
            uts: y.bind_ns.uts.or(l.bind_ns.uts),
        },
        namespace: y.namespace.or(l.namespace),
    }
}

fn merged(base: &Option<Vec<String>>, add: &Option<Vec<String>>) -> Option<Vec<String>> {
    match (base, add) {
        (None, None) => None,
        (Some(b), None) => Some(b.clone()),
        (None, Some(a)) => Some(a.clone()),
        (Some(b), Some(a)) => {
            let mut out: Vec<String> = Vec::new();
            for item in b.iter().chain(a) {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Some(out)
        }
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn add_keys_extend_the_label_and_plain_keys_replace_it() {
        let label = ImageConfig {
            capabilities: strings(&["CAP_SYS_ADMIN"]),
            binds: strings(&["/a:/a"]),
            pid: Some("host".into()),
            ..Default::default()
        };
        let yaml = ImageConfig {
            capabilities_add: strings(&["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]),
            binds: strings(&["/b:/b"]),
            binds_add: strings(&["/c:/c"]),
            pid: Some(String::new()),
            ..Default::default()
        };
        let m = merge_layers(&label, &yaml);
        assert_eq!(m.capabilities, strings(&["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]));
        assert_eq!(m.binds, strings(&["/b:/b"]));
        assert_eq!(m.pid.as_deref(), Some("host"));
    }

    #[test]
    fn runtime_fields_are_replaced_whole() {
        let label = ImageConfig {
            runtime: Some(RuntimeConfig {
                mkdir: strings(&["/x"]),
                cgroups: strings(&["a"]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let yaml = ImageConfig {
            runtime: Some(RuntimeConfig {
                mkdir: strings(&["/y"]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let runtime = merge_layers(&label, &yaml).runtime.unwrap_or_default();
        assert_eq!(runtime.mkdir, strings(&["/y"]));
        assert_eq!(runtime.cgroups, strings(&["a"]));
    }
}
