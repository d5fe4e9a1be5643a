//! The onboot / onshutdown runner (docs/linuxkit.md §11.6): each bundle of `/containers/onboot` (or
//! `onshutdown`) in name order, run to completion with runc, its logs dumped to the console afterwards.
//!
//! Differences from LinuxKit, all deliberate: a bad runtime.json fails that container only; a container that
//! runs longer than `guestkit.onboot_timeout=SECS` is killed; each exit status is printed and recorded in the
//! boot timeline; finished containers are `runc delete`d; log files are truncated before a run.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::cmdline::BootOptions;
use crate::layout::Layout;
use crate::logs::{
    DEFAULT_ONBOOT_LOG_CAP, LogError, copy_capped, create_log_file, dump_file, dump_memlogd,
    send_to_memlogd,
};
use crate::prepare::{PrepareError, prepare_filesystem, unmount_rootfs};
use crate::process_setup::{ProcessSetupError, prepare_process};
pub use crate::runc::find_runc;
use crate::runc::{exit_code, runc_args};
use crate::runtime_json::{RuntimeJsonError, read_runtime_json};
use crate::services::bundle_names;
use crate::timeline;

/// Which directory runs, and what its logs are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `/containers/onboot`, logs `onboot.*`.
    Onboot,
    /// `/containers/onshutdown`, logs `shutdown.*`.
    Onshutdown,
}

impl Phase {
    /// LinuxKit's log type: `onboot` or `shutdown`.
    pub fn log_type(self) -> &'static str {
        match self {
            Phase::Onboot => "onboot",
            Phase::Onshutdown => "shutdown",
        }
    }

    fn dir(self, layout: &Layout) -> &Path {
        match self {
            Phase::Onboot => &layout.onboot_dir,
            Phase::Onshutdown => &layout.onshutdown_dir,
        }
    }
}

/// Errors of one container; the runner reports them and goes on with the next.
#[derive(Debug, thiserror::Error)]
pub enum OnbootError {
    /// runtime.json is bad.
    #[error("{name}")]
    RuntimeJson {
        /// The container.
        name: String,
        /// Why.
        #[source]
        source: Box<RuntimeJsonError>,
    },
    /// Phase A failed (LinuxKit: `Error preparing <name>`).
    #[error("Error preparing {name}")]
    Prepare {
        /// The container.
        name: String,
        /// Why.
        #[source]
        source: Box<PrepareError>,
    },
    /// Phase B failed.
    #[error("{name}: preparing the process")]
    ProcessSetup {
        /// The container.
        name: String,
        /// Why.
        #[source]
        source: Box<ProcessSetupError>,
    },
    /// The logs could not be set up.
    #[error("{name}: setting up logs")]
    Logs {
        /// The container.
        name: String,
        /// Why.
        #[source]
        source: Box<LogError>,
    },
    /// runc could not be run.
    #[error("{name}: running runc {step}")]
    RuncSpawn {
        /// The container.
        name: String,
        /// create, start, ...
        step: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// runc failed.
    #[error("{name}: runc {step} failed ({status})")]
    Runc {
        /// The container.
        name: String,
        /// create, start, ...
        step: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// A runc step did not end within its bound and was killed.
    #[error("{name}: runc {step} did not finish within {limit:?}; killed")]
    RuncTimeout {
        /// The container.
        name: String,
        /// create, start, ...
        step: &'static str,
        /// The bound.
        limit: std::time::Duration,
    },
    /// The pid file runc wrote is unreadable.
    #[error("{name}: reading pid file {}", path.display())]
    PidFile {
        /// The container.
        name: String,
        /// The file.
        path: PathBuf,
    },
}

/// Runs one directory of containers.
#[derive(Debug)]
pub struct Runner<'a> {
    /// Paths.
    pub layout: &'a Layout,
    /// runc.
    pub runc: PathBuf,
    /// Kernel command line switches.
    pub boot: BootOptions,
    /// Onboot or onshutdown.
    pub phase: Phase,
}

struct Logs {
    stdout: Stdio,
    stderr: Stdio,
}

impl Runner<'_> {
    fn runc(
        &self,
        name: &str,
        step_name: &'static str,
        step: &[OsString],
        stdio: Option<Logs>,
    ) -> Result<(), OnbootError> {
        let mut command = Command::new(&self.runc);
        command
            .args(runc_args(
                self.boot.runc_debug,
                self.layout.runc_root.as_deref(),
                step,
            ))
            .stdin(Stdio::null());
        if let Some(logs) = stdio {
            command.stdout(logs.stdout).stderr(logs.stderr);
        }
        log::debug!(
            "runc {}",
            step.iter()
                .map(|s| s.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let spawn_error = |source| OnbootError::RuncSpawn {
            name: name.into(),
            step: step_name,
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        let status = crate::runc::wait_bounded(&mut child, crate::runc::STEP_TIMEOUT)
            .map_err(spawn_error)?
            .ok_or_else(|| OnbootError::RuncTimeout {
                name: name.into(),
                step: step_name,
                limit: crate::runc::STEP_TIMEOUT,
            })?;
        if !status.success() {
            return Err(OnbootError::Runc {
                name: name.into(),
                step: step_name,
                status,
            });
        }
        Ok(())
    }

    fn log_dir(&self) -> PathBuf {
        self.layout.run_log_dir.join(self.phase.log_type())
    }

    fn memlogd(&self) -> bool {
        self.layout.memlogd_socket.exists()
    }

    fn log_name(&self, name: &str, out: bool) -> String {
        format!(
            "{}.{name}{}",
            self.phase.log_type(),
            if out { ".out" } else { "" }
        )
    }

    /// The container's stdout and stderr, and for log files the copies that cap them (to wait for).
    fn open_logs(&self, name: &str) -> Result<(Option<Logs>, Vec<Pump>), OnbootError> {
        if self.boot.runc_console {
            return Ok((None, Vec::new()));
        }
        let err = |source: LogError| OnbootError::Logs {
            name: name.into(),
            source: Box::new(source),
        };
        if self.memlogd() {
            let mut ends = Vec::new();
            for out in [true, false] {
                let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|source| {
                    err(LogError::Open {
                        path: "socketpair".into(),
                        source,
                    })
                })?;
                send_to_memlogd(
                    &self.layout.memlogd_socket,
                    &self.log_name(name, out),
                    &OwnedFd::from(ours),
                )
                .map_err(err)?;
                ends.push(Stdio::from(OwnedFd::from(theirs)));
            }
            let stderr = ends.pop().unwrap_or_else(Stdio::null);
            let stdout = ends.pop().unwrap_or_else(Stdio::null);
            return Ok((Some(Logs { stdout, stderr }), Vec::new()));
        }
        let cap = self
            .boot
            .onboot_log_max_bytes
            .unwrap_or(DEFAULT_ONBOOT_LOG_CAP);
        let open = |out| -> Result<(Stdio, Pump), OnbootError> {
            let path = self
                .log_dir()
                .join(format!("{}.log", self.log_name(name, out)));
            let file = create_log_file(&path).map_err(err)?;
            let (reader, writer) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| {
                    err(LogError::Open {
                        path: "pipe".into(),
                        source: source.into(),
                    })
                })?;
            Ok((writer.into(), Pump::start(File::from(reader), file, cap)))
        };
        let (stdout, out_pump) = open(true)?;
        let (stderr, err_pump) = open(false)?;
        Ok((Some(Logs { stdout, stderr }), vec![out_pump, err_pump]))
    }

    fn dump_logs(&self, name: &str, out: &mut dyn Write) {
        for stdout in [true, false] {
            let log_name = self.log_name(name, stdout);
            if self.memlogd() {
                dump_memlogd(&self.layout.memlogd_query_socket, &log_name, out);
            } else {
                dump_file(&self.log_dir().join(format!("{log_name}.log")), out);
            }
        }
        let _ = out.flush();
    }

    /// Runs every container; returns 0, or 1 if any failed (including a non-zero exit status).
    pub fn run(&self, out: &mut dyn Write) -> i32 {
        let dir = self.phase.dir(self.layout);
        if !dir.is_dir() {
            return 0;
        }
        if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
            log::error!(
                "{}: cannot become a child subreaper: {err}",
                self.phase.log_type()
            );
            return 1;
        }
        let _ = std::fs::create_dir_all(self.log_dir());
        if self.layout.cgroup_root.join("cgroup.controllers").exists() {
            log::info!("Using cgroup v2");
        } else {
            log::info!("Using cgroup v1");
        }
        let pid_dir = match tempdir_for(dir) {
            Ok(pid_dir) => pid_dir,
            Err(err) => {
                log::error!("creating a directory for pid files: {err}");
                return 1;
            }
        };
        let mut status = 0;
        for name in bundle_names(dir) {
            log::info!(
                "{} {name}: from {}",
                self.phase.log_type(),
                dir.join(&name).display()
            );
            match self.run_one(&dir.join(&name), &name, &pid_dir, out) {
                Ok(0) => {}
                Ok(code) => {
                    log::error!(
                        "{} {name}: exited with status {code}",
                        self.phase.log_type()
                    );
                    status = 1;
                }
                Err(err) => {
                    log::error!("{}", crate::describe(&err));
                    status = 1;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&pid_dir);
        if !self.memlogd() {
            let var_log = &self.layout.var_log_dir;
            let _ = std::fs::create_dir_all(var_log);
            let _ = std::os::unix::fs::symlink(self.log_dir(), var_log.join(self.phase.log_type()));
        }
        status
    }

    fn run_one(
        &self,
        bundle: &Path,
        name: &str,
        pid_dir: &Path,
        out: &mut dyn Write,
    ) -> Result<u32, OnbootError> {
        let event = self.phase.log_type();
        let config = read_runtime_json(bundle).map_err(|source| OnbootError::RuntimeJson {
            name: name.into(),
            source: Box::new(source),
        })?;
        prepare_filesystem(bundle, &config, &self.layout.cgroup_root).map_err(|source| {
            OnbootError::Prepare {
                name: name.into(),
                source: Box::new(source),
            }
        })?;
        timeline::record(&self.layout.timeline, &format!("{event}-start"), name, &[]);
        let mut pumps = Vec::new();
        let result = self.create_start_wait(bundle, name, &config, pid_dir, &mut pumps);
        let _ = self.runc(
            name,
            "delete",
            &["delete".into(), "--force".into(), name.into()],
            None,
        );
        for pump in pumps {
            pump.finish(name);
        }
        unmount_rootfs(bundle);
        let _ = std::fs::remove_file(pid_dir.join(name));
        let extra: Vec<(&str, serde_json::Value)> = match &result {
            Ok(code) => vec![("exit", (*code).into())],
            Err(_) => vec![("error", true.into())],
        };
        timeline::record(
            &self.layout.timeline,
            &format!("{event}-exit"),
            name,
            &extra,
        );
        self.dump_logs(name, out);
        result
    }

    fn create_start_wait(
        &self,
        bundle: &Path,
        name: &str,
        config: &crate::runtime_json::RuntimeConfig,
        pid_dir: &Path,
        pumps: &mut Vec<Pump>,
    ) -> Result<u32, OnbootError> {
        let pid_file = pid_dir.join(name);
        let create: Vec<OsString> = vec![
            "create".into(),
            "--bundle".into(),
            bundle.into(),
            "--pid-file".into(),
            pid_file.clone().into(),
            name.into(),
        ];
        let (logs, started_pumps) = self.open_logs(name)?;
        pumps.extend(started_pumps);
        self.runc(name, "create", &create, logs)?;
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .ok_or_else(|| OnbootError::PidFile {
                name: name.into(),
                path: pid_file.clone(),
            })?;
        let (sender, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(waitpid(Pid::from_raw(pid), None).ok().and_then(exit_code));
        });
        let setup = self.process_setup(u32::try_from(pid).unwrap_or(0), config);
        let started = setup
            .map_err(|source| OnbootError::ProcessSetup {
                name: name.into(),
                source: Box::new(source),
            })
            .and_then(|()| self.runc(name, "start", &["start".into(), name.into()], None));
        if let Err(err) = started {
            self.kill(name);
            let _ = exited.recv_timeout(KILL_WAIT);
            return Err(err);
        }
        Ok(self.wait(name, &exited))
    }

    fn process_setup(
        &self,
        pid: u32,
        config: &crate::runtime_json::RuntimeConfig,
    ) -> Result<(), ProcessSetupError> {
        if config.interfaces.is_empty() && config.bind_ns.entries().is_empty() {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ProcessSetupError::Netlink)?;
        runtime.block_on(prepare_process(pid, config))
    }

    fn kill(&self, name: &str) {
        let _ = self.runc(
            name,
            "kill",
            &["kill".into(), "--all".into(), name.into(), "KILL".into()],
            None,
        );
    }

    fn wait(&self, name: &str, exited: &mpsc::Receiver<Option<u32>>) -> u32 {
        let first = match self.boot.onboot_timeout {
            Some(limit) => exited.recv_timeout(limit).map_err(|_| limit),
            None => exited.recv().map_err(|_| Duration::ZERO),
        };
        match first {
            Ok(code) => code.unwrap_or(255),
            Err(limit) => {
                log::error!(
                    "{} {name}: still running after {:.1}s: killing it",
                    self.phase.log_type(),
                    limit.as_secs_f64()
                );
                self.kill(name);
                match exited.recv_timeout(KILL_WAIT) {
                    Ok(code) => code.unwrap_or(137),
                    Err(_) => {
                        log::error!(
                            "{} {name}: did not exit within {:.1}s of SIGKILL",
                            self.phase.log_type(),
                            KILL_WAIT.as_secs_f64()
                        );
                        137
                    }
                }
            }
        }
    }
}

/// A thread copying one of a container's streams into its log file, capped.
struct Pump {
    done: mpsc::Receiver<()>,
}

impl Pump {
    fn start(mut reader: File, mut file: File, cap: u64) -> Pump {
        let (sender, done) = mpsc::channel();
        std::thread::spawn(move || {
            if let Err(err) = copy_capped(&mut reader, &mut file, cap) {
                log::warn!("writing a log: {err}");
            }
            let _ = sender.send(());
        });
        Pump { done }
    }

    /// Waits for the copy to reach end of file (every writer gone) at most [`KILL_WAIT`]: a process the
    /// container left behind may keep its stdout open.
    fn finish(self, name: &str) {
        if self.done.recv_timeout(KILL_WAIT).is_err() {
            log::warn!(
                "{name}: its output is still open after {:.1}s: the log may be incomplete",
                KILL_WAIT.as_secs_f64()
            );
        }
    }
}

/// How long an onboot container's exit is awaited after `runc kill --all KILL`.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A directory for runc pid files named after `dir` (LinuxKit: `ioutil.TempDir("", "onboot")`), in
/// `$TMPDIR`/`/tmp`, or in `/run` when that is not writable yet.
fn tempdir_for(dir: &Path) -> nix::Result<PathBuf> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "onboot".into());
    let template = format!("{base}.XXXXXX");
    nix::unistd::mkdtemp(&std::env::temp_dir().join(&template))
        .or_else(|_| nix::unistd::mkdtemp(&Path::new("/run").join(&template)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names() {
        let layout = Layout::default();
        let runner = Runner {
            layout: &layout,
            runc: "runc".into(),
            boot: BootOptions::default(),
            phase: Phase::Onshutdown,
        };
        assert_eq!(runner.log_name("000-x", true), "shutdown.000-x.out");
        assert_eq!(runner.log_dir(), PathBuf::from("/run/log/shutdown"));
    }
}
