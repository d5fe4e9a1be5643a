//! A boot plan: a list of [`Step`]s with a failure policy each, and the executor that runs it through
//! [`Sys`].

use std::path::PathBuf;

use nix::errno::Errno;

use crate::mount_options::MountOptions;
use crate::sys::{MountArgs, Sys};

/// One change to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Step {
    Mount(MountArgs),
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    CharDevice {
        path: PathBuf,
        mode: u32,
        major: u64,
        minor: u64,
    },
    WriteFile {
        path: PathBuf,
        contents: String,
    },
    Chdir(PathBuf),
    Chroot(PathBuf),
    Chmod {
        path: PathBuf,
        mode: u32,
    },
}

/// What a failed step means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Boot cannot go on (for example no `/proc`).
    Fatal,
    /// Log it and go on.
    Log,
    /// Log it unless it is `EEXIST`, and go on.
    LogUnlessExists,
    /// Say nothing and go on (LinuxKit's "silent" mounts).
    Ignore,
}

/// A step and its failure policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The change.
    pub step: Step,
    /// What its failure means.
    pub on_error: OnError,
}

/// A step that failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{step}")]
pub struct StepError {
    /// The step, described.
    pub step: String,
    /// The cause.
    #[source]
    pub source: Errno,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Mount(m) if m.fstype.is_empty() => {
                write!(
                    f,
                    "mounting {:?} on {} ({:?})",
                    m.source,
                    m.target.display(),
                    m.flags
                )
            }
            Step::Mount(m) => write!(
                f,
                "mounting {} ({}) on {}",
                m.source,
                m.fstype,
                m.target.display()
            ),
            Step::Mkdir { path, mode } => {
                write!(f, "creating directory {} ({mode:o})", path.display())
            }
            Step::Symlink { target, link } => {
                write!(f, "linking {} to {}", link.display(), target.display())
            }
            Step::CharDevice {
                path, major, minor, ..
            } => {
                write!(f, "creating device {} ({major}:{minor})", path.display())
            }
            Step::WriteFile { path, .. } => write!(f, "writing {}", path.display()),
            Step::Chdir(p) => write!(f, "changing directory to {}", p.display()),
            Step::Chroot(p) => write!(f, "changing root to {}", p.display()),
            Step::Chmod { path, mode } => {
                write!(f, "setting the mode of {} to {mode:04o}", path.display())
            }
        }
    }
}

/// Builds a mount step from an fstab-style option string.
pub fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    options: &str,
    on_error: OnError,
) -> Planned {
    let opts = MountOptions::parse(options);
    Planned {
        step: Step::Mount(MountArgs {
            source: source.into(),
            target: target.into(),
            fstype: fstype.into(),
            flags: opts.flags,
            data: opts.data,
        }),
        on_error,
    }
}

/// Builds a non-mount step.
pub fn step(step: Step, on_error: OnError) -> Planned {
    Planned { step, on_error }
}

fn apply(sys: &dyn Sys, step: &Step) -> nix::Result<()> {
    match step {
        Step::Mount(m) => sys.mount(m),
        Step::Mkdir { path, mode } => sys.mkdir_all(path, *mode),
        Step::Symlink { target, link } => sys.symlink(target, link),
        Step::CharDevice {
            path,
            mode,
            major,
            minor,
        } => sys.mknod_char(path, *mode, *major, *minor),
        Step::WriteFile { path, contents } => sys.write_file(path, contents.as_bytes()),
        Step::Chdir(p) => sys.chdir(p),
        Step::Chroot(p) => sys.chroot(p),
        Step::Chmod { path, mode } => sys.chmod(path, *mode),
    }
}

/// Runs the plan in order. Non-fatal failures are logged (or not, per policy) and skipped; the first fatal
/// failure stops the plan and is returned.
pub fn execute(sys: &dyn Sys, plan: &[Planned]) -> Result<(), StepError> {
    for p in plan {
        let Err(errno) = apply(sys, &p.step) else {
            continue;
        };
        let error = StepError {
            step: p.step.to_string(),
            source: errno,
        };
        match p.on_error {
            OnError::Fatal => return Err(error),
            OnError::Log => log::error!("{error}: {errno}"),
            OnError::LogUnlessExists if errno != Errno::EEXIST => log::error!("{error}: {errno}"),
            OnError::LogUnlessExists | OnError::Ignore => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording_sys::{Call, RecordingSys};

    fn plan() -> Vec<Planned> {
        vec![
            mount("proc", "/proc", "proc", "nodev", OnError::Log),
            mount("x", "/silent", "x", "", OnError::Ignore),
            step(Step::Chdir("/fatal".into()), OnError::Fatal),
            step(Step::Chdir("/after".into()), OnError::Log),
        ]
    }

    #[test]
    fn non_fatal_failures_continue() {
        let sys = RecordingSys::new()
            .failing("/proc", Errno::ENODEV)
            .failing("/silent", Errno::ENODEV);
        assert_eq!(execute(&sys, &plan()), Ok(()));
        assert_eq!(sys.calls().len(), 4);
    }

    #[test]
    fn fatal_failure_stops_the_plan() {
        let sys = RecordingSys::new().failing("/fatal", Errno::ENOENT);
        let err = execute(&sys, &plan()).err();
        assert_eq!(
            err,
            Some(StepError {
                step: "changing directory to /fatal".into(),
                source: Errno::ENOENT
            })
        );
        assert_eq!(sys.calls().last(), Some(&Call::Chdir("/fatal".into())));
    }
}
