//! `start`, `stop`, `restart` and `shutdown` of services from bundles (docs/linuxkit.md §11.2–docs/linuxkit.md §11.4),
//! over any [`Runtime`].
//!
//! Differences from LinuxKit, all deliberate: `stop` sends SIGTERM, waits a grace period, then SIGKILL, and
//! undoes the runtime.json mounts; `start` clears a stopped leftover container of the same name (so `restart`
//! works on a crashed service) and removes what it created when a step fails; config.json is validated before
//! anything is mounted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::Spec;

use crate::bundle::{SpecError, dump_spec, load_spec};
use crate::layout::Layout;
use crate::logs::{LogError, service_log_paths};
use crate::prepare::{PrepareError, prepare_filesystem, undo_mounts};
use crate::process_setup::{ProcessSetupError, prepare_process};
use crate::runtime::{Runtime, RuntimeError, TaskInfo, TaskStatus, TaskStdio};
use crate::runtime_json::{RuntimeConfig, RuntimeJsonError, read_runtime_json};
use crate::state::{self, Desired};
use crate::timeline;

/// The grace period between SIGTERM and SIGKILL when neither `-timeout` nor runtime.json sets one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// The largest stop grace period (`-timeout`, `stopGracePeriod`, the annotation) accepted.
pub const MAX_GRACE: Duration = Duration::from_secs(3600);
/// How long a task's exit is awaited after SIGKILL.
pub const KILL_WAIT: Duration = Duration::from_secs(10);
const SIGTERM: u32 = 15;
const SIGKILL: u32 = 9;

/// Errors of service operations; each names the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The name cannot be a bundle directory name.
    #[error("invalid service name {name:?}")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// There is no bundle directory.
    #[error("service {name}: no bundle directory {}", bundle.display())]
    NoBundle {
        /// The service.
        name: String,
        /// Where it was looked for.
        bundle: PathBuf,
    },
    /// runtime.json is bad.
    #[error("service {name}")]
    RuntimeJson {
        /// The service.
        name: String,
        /// Why.
        #[source]
        source: Box<RuntimeJsonError>,
    },
    /// config.json is bad, or the spec could not be dumped.
    #[error("service {name}")]
    Spec {
        /// The service.
        name: String,
        /// Why.
        #[source]
        source: Box<SpecError>,
    },
    /// Phase A failed.
    #[error("service {name}: preparing the filesystem")]
    Prepare {
        /// The service.
        name: String,
        /// Why.
        #[source]
        source: Box<PrepareError>,
    },
    /// Phase B failed.
    #[error("service {name}: preparing the process")]
    ProcessSetup {
        /// The service.
        name: String,
        /// Why.
        #[source]
        source: Box<ProcessSetupError>,
    },
    /// The logs could not be set up.
    #[error("service {name}: setting up logs")]
    Logs {
        /// The service.
        name: String,
        /// Why.
        #[source]
        source: Box<LogError>,
    },
    /// A containerd call failed.
    #[error("service {name}")]
    Runtime {
        /// The service.
        name: String,
        /// Why.
        #[source]
        source: Box<RuntimeError>,
    },
    /// `start` of a running service.
    #[error("service {name} is already running (pid {pid})")]
    AlreadyRunning {
        /// The service.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// The task did not exit within [`KILL_WAIT`] of SIGKILL.
    #[error("service {name} did not exit within {:.1}s of SIGKILL", waited.as_secs_f64())]
    NoExit {
        /// The service.
        name: String,
        /// How long it was waited for.
        waited: Duration,
    },
    /// `stop` of a service that has no container.
    #[error("service {name} is not running")]
    NotRunning {
        /// The service.
        name: String,
    },
}

/// The context of service operations.
#[derive(Debug)]
pub struct Services<'a, R: Runtime> {
    /// containerd.
    pub runtime: &'a R,
    /// Paths.
    pub layout: &'a Layout,
    /// Where bundles are (`-path`).
    pub services_dir: PathBuf,
    /// The containerd namespace (`-containerd-namespace`), unless runtime.json names another.
    pub namespace: String,
    /// `-dump-spec FILE`.
    pub dump_spec: Option<PathBuf>,
    /// `-timeout` of stop: overrides runtime.json's `stopGracePeriod` and the default.
    pub grace: Option<Duration>,
    /// How long to wait for a service's lock (`-rpc-timeout`).
    pub lock_timeout: Duration,
}

/// Whether `name` can be a bundle directory name.
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn runtime_err(name: &str) -> impl FnOnce(RuntimeError) -> ServiceError + '_ {
    move |source| ServiceError::Runtime {
        name: name.into(),
        source: Box::new(source),
    }
}

impl<R: Runtime> Services<'_, R> {
    fn bundle(&self, name: &str) -> Result<PathBuf, ServiceError> {
        if !valid_service_name(name) {
            return Err(ServiceError::InvalidName { name: name.into() });
        }
        Ok(self.services_dir.join(name))
    }

    /// The containerd namespace of a service.
    pub fn namespace_of<'c>(&'c self, config: &'c RuntimeConfig) -> &'c str {
        if config.namespace.is_empty() {
            &self.namespace
        } else {
            &config.namespace
        }
    }

    /// Reads a bundle's runtime.json and config.json.
    pub fn load(&self, name: &str) -> Result<(PathBuf, RuntimeConfig, Spec), ServiceError> {
        let bundle = self.bundle(name)?;
        if !bundle.is_dir() {
            return Err(ServiceError::NoBundle {
                name: name.into(),
                bundle,
            });
        }
        let config = read_runtime_json(&bundle).map_err(|source| ServiceError::RuntimeJson {
            name: name.into(),
            source: Box::new(source),
        })?;
        let spec = load_spec(&bundle).map_err(|source| ServiceError::Spec {
            name: name.into(),
            source: Box::new(source),
        })?;
        Ok((bundle, config, spec))
    }

    /// `start NAME`: prints `Starting service: "NAME"`, returns the task's pid.
    pub async fn start(&self, name: &str) -> Result<u32, ServiceError> {
        log::info!("Starting service: {name:?}");
        let _lock = state::lock(&self.layout.state_dir, name, self.lock_timeout).await;
        self.start_unlocked(name).await
    }

    /// Start for the supervisor, which already holds the lock.
    pub(crate) async fn start_unlocked_for_revive(&self, name: &str) -> Result<u32, ServiceError> {
        self.start_unlocked(name).await
    }

    async fn start_unlocked(&self, name: &str) -> Result<u32, ServiceError> {
        let (bundle, config, spec) = self.load(name)?;
        let ns = self.namespace_of(&config);
        self.clear_leftover(ns, name).await?;
        prepare_filesystem(&bundle, &config, &self.layout.cgroup_root).map_err(|source| {
            ServiceError::Prepare {
                name: name.into(),
                source: Box::new(source),
            }
        })?;
        let started = async {
            if let Some(file) = &self.dump_spec {
                dump_spec(&spec, file).map_err(|source| ServiceError::Spec {
                    name: name.into(),
                    source: Box::new(source),
                })?;
            }
            self.create_and_start(ns, name, &config, &spec).await
        }
        .await;
        let pid = match started {
            Ok(pid) => pid,
            Err(err) => {
                undo_mounts(&bundle, &config);
                return Err(err);
            }
        };
        log::debug!("Started {name} pid {pid}");
        state::update(&self.layout.state_dir, name, |r| {
            r.desired = Desired::Running;
            r.started_ms = timeline::boottime_ms();
            r.pid = pid;
            r.namespace = ns.to_owned();
        });
        timeline::record(
            &self.layout.timeline,
            "service-start",
            name,
            &[("pid", pid.into())],
        );
        Ok(pid)
    }

    /// A container of the same name that is not running (crashed, or left by a failed start) is removed.
    async fn clear_leftover(&self, ns: &str, name: &str) -> Result<(), ServiceError> {
        match self
            .runtime
            .task(ns, name)
            .await
            .map_err(runtime_err(name))?
        {
            Some(TaskInfo {
                status: TaskStatus::Running | TaskStatus::Paused,
                pid,
                ..
            }) => Err(ServiceError::AlreadyRunning {
                name: name.into(),
                pid,
            }),
            _ => {
                self.remove(ns, name).await;
                Ok(())
            }
        }
    }

    async fn create_and_start(
        &self,
        ns: &str,
        name: &str,
        config: &RuntimeConfig,
        spec: &Spec,
    ) -> Result<u32, ServiceError> {
        self.runtime
            .create_container(ns, name, spec)
            .await
            .map_err(runtime_err(name))?;
        let result = async {
            let (stdout, stderr) = service_log_paths(
                name,
                &self.layout.var_log_dir,
                &self.layout.fifo_dir,
                &self.layout.memlogd_socket,
            )
            .map_err(|source| ServiceError::Logs {
                name: name.into(),
                source: Box::new(source),
            })?;
            let stdio = TaskStdio {
                stdin: "/dev/null".into(),
                stdout: stdout.to_string_lossy().into_owned(),
                stderr: stderr.to_string_lossy().into_owned(),
            };
            let pid = match self.runtime.create_task(ns, name, &stdio).await {
                Ok(pid) => pid,
                Err(err) => {
                    if self.layout.memlogd_socket.exists() {
                        crate::logs::release_fifos(&[&stdout, &stderr]);
                    }
                    return Err(runtime_err(name)(err));
                }
            };
            prepare_process(pid, config)
                .await
                .map_err(|source| ServiceError::ProcessSetup {
                    name: name.into(),
                    source: Box::new(source),
                })?;
            self.runtime
                .start_task(ns, name)
                .await
                .map_err(runtime_err(name))?;
            Ok(pid)
        }
        .await;
        if result.is_err() {
            self.remove(ns, name).await;
        }
        result
    }

    /// Kills and deletes the task and the container, ignoring every error (cleanup paths).
    pub async fn remove(&self, ns: &str, name: &str) {
        if let Ok(Some(task)) = self.runtime.task(ns, name).await {
            if task.status != TaskStatus::Stopped {
                let _ = self.runtime.kill_task(ns, name, SIGKILL, true).await;
                let _ = tokio::time::timeout(KILL_WAIT, self.runtime.wait_task(ns, name)).await;
            }
            let _ = self.runtime.delete_task(ns, name).await;
        }
        let _ = self.runtime.delete_container(ns, name).await;
    }

    pub(crate) fn grace_of(&self, config: &RuntimeConfig) -> Duration {
        self.grace
            .or(config
                .stop_grace_period
                .and_then(|g| crate::runtime_json::GRACE_LIMIT.seconds(g).ok()))
            .unwrap_or(DEFAULT_GRACE)
    }

    /// `stop NAME`: prints `Stopping service: "NAME"`; SIGTERM, grace period, SIGKILL; deletes the task and
    /// the container; undoes the runtime mounts. Returns the exit status if there was a task.
    pub async fn stop(&self, name: &str) -> Result<Option<u32>, ServiceError> {
        log::info!("Stopping service: {name:?}");
        let _lock = state::lock(&self.layout.state_dir, name, self.lock_timeout).await;
        self.stop_unlocked(name).await
    }

    async fn stop_unlocked(&self, name: &str) -> Result<Option<u32>, ServiceError> {
        let bundle = self.bundle(name)?;
        // A bad runtime.json must not make a running service unstoppable: fall back to the defaults.
        let config = read_runtime_json(&bundle).unwrap_or_else(|err| {
            log::warn!("{err}; stopping with the default namespace and grace period");
            RuntimeConfig::default()
        });
        let ns = self.namespace_of(&config).to_owned();
        state::update(&self.layout.state_dir, name, |r| {
            r.desired = Desired::Stopped
        });
        let pid = state::load(&self.layout.state_dir, name).pid;
        let exit = self.stop_container(&ns, name, self.grace_of(&config)).await;
        log::debug!("Stopped {name} pid {pid}");
        undo_mounts(&bundle, &config);
        let exit = exit?;
        state::update(&self.layout.state_dir, name, |r| {
            r.last_exit = exit.or(r.last_exit);
            r.pid = 0;
        });
        let extra: Vec<(&str, serde_json::Value)> =
            exit.map(|e| ("exit", e.into())).into_iter().collect();
        timeline::record(&self.layout.timeline, "service-stop", name, &extra);
        Ok(exit)
    }

    /// Stops and deletes one container; an error if there is neither a task nor a container.
    pub async fn stop_container(
        &self,
        ns: &str,
        name: &str,
        grace: Duration,
    ) -> Result<Option<u32>, ServiceError> {
        let task = self
            .runtime
            .task(ns, name)
            .await
            .map_err(runtime_err(name))?;
        let exit = match task {
            Some(task) if task.status == TaskStatus::Stopped => Some(task.exit_status),
            Some(task) => Some(self.terminate(ns, name, task, grace).await?),
            None => None,
        };
        if task.is_some() {
            match self.runtime.delete_task(ns, name).await {
                Err(err) if !err.is_not_found() => return Err(runtime_err(name)(err)),
                _ => {}
            }
        }
        match self.runtime.delete_container(ns, name).await {
            Ok(()) => Ok(exit),
            Err(err) if err.is_not_found() && task.is_none() => {
                Err(ServiceError::NotRunning { name: name.into() })
            }
            Err(err) if err.is_not_found() => Ok(exit),
            Err(err) => Err(runtime_err(name)(err)),
        }
    }

    /// SIGTERM, then SIGKILL to every process after `grace`; returns the exit status.
    async fn terminate(
        &self,
        ns: &str,
        name: &str,
        task: TaskInfo,
        grace: Duration,
    ) -> Result<u32, ServiceError> {
        let mut wait = std::pin::pin!(self.runtime.wait_task(ns, name));
        if task.status == TaskStatus::Running {
            let term_then_grace = async {
                if let Err(err) = self.runtime.kill_task(ns, name, SIGTERM, false).await {
                    log::debug!("{err}");
                }
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                biased;
                exit = &mut wait => return exit.map_err(runtime_err(name)),
                () = term_then_grace => {}
            }
            log::info!(
                "Service {name:?} did not exit within {:.1}s of SIGTERM: sending SIGKILL",
                grace.as_secs_f64()
            );
        }
        if let Err(err) = self.runtime.kill_task(ns, name, SIGKILL, true).await
            && !err.is_not_found()
        {
            return Err(runtime_err(name)(err));
        }
        match tokio::time::timeout(KILL_WAIT, wait).await {
            Ok(exit) => exit.map_err(runtime_err(name)),
            Err(_) => Err(ServiceError::NoExit {
                name: name.into(),
                waited: KILL_WAIT,
            }),
        }
    }

    /// `restart NAME`: stop (a service that is not running is fine), then start.
    pub async fn restart(&self, name: &str) -> Result<u32, ServiceError> {
        let _lock = state::lock(&self.layout.state_dir, name, self.lock_timeout).await;
        log::info!("Stopping service: {name:?}");
        match self.stop_unlocked(name).await {
            Ok(_) | Err(ServiceError::NotRunning { .. }) => {}
            Err(err) => return Err(err),
        }
        log::info!("Starting service: {name:?}");
        state::update(&self.layout.state_dir, name, |r| r.restarts = 0);
        self.start_unlocked(name).await
    }

    /// Bundle names under the services directory, in name order (a missing directory is empty).
    pub fn bundle_names(&self) -> Vec<String> {
        bundle_names(&self.services_dir)
    }
}

/// Directory entries of `dir` in name order (a missing directory is empty).
pub fn bundle_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
