//! cgroup mounts (docs/linuxkit.md §4.3): v2 by default; v1 only with `linuxkit.unified_cgroup_hierarchy=0`.

use crate::plan::{OnError, Planned, Step, mount, step};

const ROOT: &str = "/sys/fs/cgroup";

/// `/proc/cgroups` could not be understood.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CgroupsError {
    /// A line did not have the four tab-separated fields.
    #[error("/proc/cgroups line {line}: expected 4 fields, got {text:?}")]
    Fields {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// The names of the enabled controllers in `/proc/cgroups` (`subsys_name hierarchy num_cgroups enabled`).
pub fn enabled_controllers(proc_cgroups: &str) -> Result<Vec<String>, CgroupsError> {
    let mut names = Vec::new();
    for (i, line) in proc_cgroups.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, _, _, enabled] = fields.as_slice() else {
            return Err(CgroupsError::Fields {
                line: i + 1,
                text: line.to_string(),
            });
        };
        if *enabled == "1" {
            names.push((*name).to_string());
        }
    }
    Ok(names)
}

/// The unified hierarchy.
pub fn v2() -> Vec<Planned> {
    vec![mount(
        "cgroup2",
        ROOT,
        "cgroup2",
        "noexec,nosuid,nodev",
        OnError::Log,
    )]
}

/// One hierarchy per enabled controller on a tmpfs, plus the named `systemd` hierarchy.
pub fn v1(controllers: &[String]) -> Vec<Planned> {
    let mut plan = vec![mount(
        "cgroup_root",
        ROOT,
        "tmpfs",
        "nodev,noexec,nosuid,mode=755,size=10m",
        OnError::Log,
    )];
    for name in controllers {
        let dir = format!("{ROOT}/{name}");
        plan.push(step(
            Step::Mkdir {
                path: dir.clone().into(),
                mode: 0o555,
            },
            OnError::Log,
        ));
        plan.push(mount(
            "cgroup",
            &dir,
            "cgroup",
            &format!("noexec,nosuid,nodev,{name}"),
            OnError::Log,
        ));
    }
    if controllers.iter().any(|c| c == "memory") {
        let path = format!("{ROOT}/memory/memory.use_hierarchy");
        plan.push(step(
            Step::WriteFile {
                path: path.into(),
                contents: "1".into(),
            },
            OnError::Log,
        ));
    }
    let systemd = format!("{ROOT}/systemd");
    plan.push(step(
        Step::Mkdir {
            path: systemd.clone().into(),
            mode: 0o555,
        },
        OnError::Log,
    ));
    plan.push(mount(
        "cgroup",
        &systemd,
        "cgroup",
        "none,name=systemd",
        OnError::Log,
    ));
    plan
}

/// The plan for either version; an unreadable `/proc/cgroups` in v1 mode mounts nothing (as LinuxKit).
pub fn plan(want_v1: bool, proc_cgroups: &str) -> Result<Vec<Planned>, CgroupsError> {
    if want_v1 {
        enabled_controllers(proc_cgroups).map(|c| v1(&c))
    } else {
        Ok(v2())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Step;

    const PROC_CGROUPS: &str = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
        cpuset\t0\t1\t1\ncpu\t0\t1\t1\nmemory\t0\t1\t1\nhugetlb\t0\t1\t0\n";

    #[test]
    fn parses_enabled_controllers() {
        let cases: &[(&str, Result<Vec<&str>, CgroupsError>)] = &[
            (PROC_CGROUPS, Ok(vec!["cpuset", "cpu", "memory"])),
            ("", Ok(vec![])),
            ("#header only\n", Ok(vec![])),
            (
                "cpu 0 1\n",
                Err(CgroupsError::Fields {
                    line: 1,
                    text: "cpu 0 1".into(),
                }),
            ),
            (
                "cpu\t0\t1\t1\textra\n",
                Err(CgroupsError::Fields {
                    line: 1,
                    text: "cpu\t0\t1\t1\textra".into(),
                }),
            ),
        ];
        for (i, (input, want)) in cases.iter().enumerate() {
            let want = want
                .clone()
                .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(enabled_controllers(input), want, "case {i}");
        }
    }

    #[test]
    fn v2_is_the_default() {
        assert_eq!(plan(false, "garbage"), Ok(v2()));
    }

    #[test]
    fn v1_mounts_each_controller_and_systemd() {
        let p = plan(true, PROC_CGROUPS).unwrap_or_default();
        let mounts: Vec<String> = p
            .iter()
            .filter_map(|s| match &s.step {
                Step::Mount(m) => Some(format!("{} {}", m.target.display(), m.data)),
                _ => None,
            })
            .collect();
        assert_eq!(
            mounts,
            [
                "/sys/fs/cgroup mode=755,size=10m",
                "/sys/fs/cgroup/cpuset cpuset",
                "/sys/fs/cgroup/cpu cpu",
                "/sys/fs/cgroup/memory memory",
                "/sys/fs/cgroup/systemd none,name=systemd",
            ]
        );
        assert!(
            p.iter()
                .any(|s| matches!(&s.step, Step::WriteFile { contents, .. } if contents == "1"))
        );
    }

    #[test]
    fn v1_with_bad_proc_cgroups_mounts_nothing() {
        assert!(plan(true, "bad line\n").is_err());
    }
}
