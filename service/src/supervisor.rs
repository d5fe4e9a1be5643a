//! The restart supervisor: a long-lived `service supervise` process that system-init leaves behind (LinuxKit
//! has none, #4121). It polls the tasks of services whose runtime.json has a `restart` policy and restarts
//! them after a capped exponential backoff; a task that ran `resetAfter` seconds resets the backoff.
//! Services stopped with `stop`/`shutdown` are never restarted. It also keeps service log files under their
//! cap (`guestkit.service_log_max_bytes`), rotating them once a second when they grow past it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cli::{Globals, Target};
use crate::layout::Layout;
use crate::runtime::{Runtime, TaskStatus};
use crate::runtime_json::{RestartMode, RestartPolicy, read_runtime_json};
use crate::services::{ServiceError, Services};
use crate::state::{self, Desired};
use crate::timeline::{self, boottime_ms};

/// How often tasks are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Service log files are checked against their cap every this many polls (once a second).
const POLLS_PER_LOG_CHECK: u32 = 4;

/// Backoff bookkeeping of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Restarts since the last healthy period.
    pub attempt: u32,
    /// When the pending restart is due.
    pub due: Option<Instant>,
}

/// What the supervisor decided for one service on one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Idle,
    /// The task ended and will be restarted after the delay.
    Schedule(Duration),
    /// The delay has passed: restart now.
    RestartNow,
}

/// The pure decision: given the policy, what the user wants, the task state and the backoff so far.
pub fn decide(
    policy: &RestartPolicy,
    desired: Desired,
    task: Option<(TaskStatus, u32)>,
    running_for: Duration,
    backoff: &mut Backoff,
    now: Instant,
) -> Decision {
    if policy.policy == RestartMode::No || desired == Desired::Stopped {
        *backoff = Backoff::default();
        return Decision::Idle;
    }
    match task {
        Some((TaskStatus::Stopped, exit)) if policy.wants_restart(exit) => match backoff.due {
            None => {
                let delay = policy.delay(backoff.attempt);
                backoff.due = Some(now + delay);
                Decision::Schedule(delay)
            }
            Some(due) if now >= due => {
                backoff.due = None;
                backoff.attempt = backoff.attempt.saturating_add(1);
                Decision::RestartNow
            }
            Some(_) => Decision::Idle,
        },
        Some((TaskStatus::Running, _)) => {
            if running_for >= Duration::from_secs_f64(policy.reset_after) {
                backoff.attempt = 0;
            }
            backoff.due = None;
            Decision::Idle
        }
        _ => Decision::Idle,
    }
}

impl<R: Runtime> Services<'_, R> {
    /// Restarts a service whose task has ended, counting the restart.
    pub async fn revive(&self, name: &str) -> Result<u32, ServiceError> {
        let _lock = state::lock(&self.layout.state_dir, name, self.lock_timeout).await;
        if state::load(&self.layout.state_dir, name).desired == Desired::Stopped {
            return Err(ServiceError::NotRunning { name: name.into() });
        }
        let (bundle, config, _) = self.load(name)?;
        let ns = self.namespace_of(&config).to_owned();
        self.remove(&ns, name).await;
        crate::prepare::undo_mounts(&bundle, &config);
        log::info!("Restarting service: {name:?}");
        let pid = self.start_unlocked_for_revive(name).await?;
        let record = state::update(&self.layout.state_dir, name, |r| r.restarts += 1);
        timeline::record(
            &self.layout.timeline,
            "service-restart",
            name,
            &[("restarts", record.restarts.into())],
        );
        Ok(pid)
    }

    /// One poll over every supervised service.
    pub async fn supervise_once(&self, backoffs: &mut HashMap<String, Backoff>) {
        for name in self.bundle_names() {
            let Ok(config) = read_runtime_json(&self.services_dir.join(&name)) else {
                continue;
            };
            if config.restart.policy == RestartMode::No {
                continue;
            }
            let record = state::load(&self.layout.state_dir, &name);
            if record.started_ms == 0 {
                continue;
            }
            let ns = self.namespace_of(&config);
            let task = self
                .runtime
                .task(ns, &name)
                .await
                .ok()
                .flatten()
                .map(|t| (t.status, t.exit_status));
            let running_for =
                Duration::from_millis(boottime_ms().saturating_sub(record.started_ms));
            let backoff = backoffs.entry(name.clone()).or_default();
            match decide(
                &config.restart,
                record.desired,
                task,
                running_for,
                backoff,
                Instant::now(),
            ) {
                Decision::Idle => {}
                Decision::Schedule(delay) => {
                    let exit = task.map(|t| t.1).unwrap_or_default();
                    state::update(&self.layout.state_dir, &name, |r| r.last_exit = Some(exit));
                    log::info!(
                        "Service {name:?} exited with status {exit}: restarting in {:.1}s",
                        delay.as_secs_f64()
                    );
                }
                Decision::RestartNow => {
                    if let Err(err) = self.revive(&name).await {
                        log::error!("{}", crate::describe(&err));
                    }
                }
            }
        }
    }
}

fn pid_file(layout: &Layout) -> PathBuf {
    layout.state_dir.join("supervisor.pid")
}

/// `service supervise`: polls until SIGTERM.
pub async fn supervise<R: Runtime>(services: &Services<'_, R>) -> u8 {
    let layout = services.layout;
    let _ = std::fs::create_dir_all(&layout.state_dir);
    let _ = std::fs::write(pid_file(layout), format!("{}\n", std::process::id()));
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            log::error!("supervisor: installing a SIGTERM handler: {err}");
            return 1;
        }
    };
    let log_cap = service_log_cap(layout);
    let mut backoffs = HashMap::new();
    let mut polls = 0u32;
    loop {
        services.supervise_once(&mut backoffs).await;
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(POLLS_PER_LOG_CHECK) {
            crate::logs::cap_log_files(&layout.var_log_dir, log_cap);
        }
        tokio::select! {
            _ = term.recv() => break,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
    let _ = std::fs::remove_file(pid_file(layout));
    0
}

/// `guestkit.service_log_max_bytes` from the kernel command line, or the default.
fn service_log_cap(layout: &Layout) -> u64 {
    let cmdline = std::fs::read_to_string(&layout.cmdline).unwrap_or_default();
    let (boot, warnings) = crate::cmdline::parse_boot_options(&cmdline);
    for warning in warnings {
        log::warn!("{warning}");
    }
    boot.service_log_max_bytes
        .unwrap_or(crate::logs::DEFAULT_SERVICE_LOG_CAP)
}

/// Starts `service supervise` in its own process group, detached (system-init exits right after).
pub fn spawn_supervisor(layout: &Layout, namespace: &str, target: &Target, globals: &Globals) {
    use std::os::unix::process::CommandExt;
    if let Some(pid) = running_supervisor(layout) {
        log::debug!("service supervisor already running as pid {pid}");
        return;
    }
    let mut command = std::process::Command::new("/proc/self/exe");
    if globals.verbose {
        command.arg("-v");
    }
    if globals.quiet {
        command.arg("-q");
    }
    command
        .arg("-containerd-namespace")
        .arg(namespace)
        .arg("supervise")
        .arg("-sock")
        .arg(&target.socket)
        .arg("-path")
        .arg(&target.path)
        .arg("-rpc-timeout")
        .arg(target.rpc_timeout.as_secs_f64().to_string())
        .stdin(std::process::Stdio::null())
        .process_group(0);
    match command.spawn() {
        Ok(child) => {
            timeline::record(
                &layout.timeline,
                "supervisor-start",
                "supervisor",
                &[("pid", child.id().into())],
            );
        }
        Err(err) => log::error!("starting the service supervisor: {err}"),
    }
}

/// The pid of a live supervisor, from its pid file.
fn running_supervisor(layout: &Layout) -> Option<nix::unistd::Pid> {
    let pid = std::fs::read_to_string(pid_file(layout))
        .ok()?
        .trim()
        .parse::<i32>()
        .ok()?;
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(pid, None).is_ok().then_some(pid)
}

/// Stops a running supervisor (before `shutdown` stops services), waiting up to two seconds.
pub fn stop_supervisor(layout: &Layout) {
    let Some(pid) = running_supervisor(layout) else {
        return;
    };
    if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && nix::sys::signal::kill(pid, None).is_ok() {
        // Reap it if it happens to be our child; otherwise its parent (init) does.
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: RestartMode) -> RestartPolicy {
        RestartPolicy {
            policy: mode,
            backoff: 1.0,
            max_backoff: 4.0,
            reset_after: 10.0,
        }
    }

    #[test]
    fn crash_schedules_then_restarts_with_growing_delays() {
        let p = policy(RestartMode::OnFailure);
        let mut backoff = Backoff::default();
        let t0 = Instant::now();
        let crashed = Some((TaskStatus::Stopped, 1));
        let mut delays = Vec::new();
        let mut now = t0;
        for _ in 0..4 {
            let Decision::Schedule(delay) = decide(
                &p,
                Desired::Running,
                crashed,
                Duration::ZERO,
                &mut backoff,
                now,
            ) else {
                panic!("expected a scheduled restart");
            };
            delays.push(delay.as_secs());
            assert_eq!(
                decide(
                    &p,
                    Desired::Running,
                    crashed,
                    Duration::ZERO,
                    &mut backoff,
                    now
                ),
                Decision::Idle
            );
            now += delay;
            assert_eq!(
                decide(
                    &p,
                    Desired::Running,
                    crashed,
                    Duration::ZERO,
                    &mut backoff,
                    now
                ),
                Decision::RestartNow
            );
        }
        assert_eq!(delays, vec![1, 2, 4, 4]);
        decide(
            &p,
            Desired::Running,
            Some((TaskStatus::Running, 0)),
            Duration::from_secs(11),
            &mut backoff,
            now,
        );
        assert_eq!(backoff.attempt, 0);
    }

    #[test]
    fn clean_exit_stop_request_and_no_policy_are_left_alone() {
        let now = Instant::now();
        let mut backoff = Backoff::default();
        let cases = [
            (
                policy(RestartMode::OnFailure),
                Desired::Running,
                Some((TaskStatus::Stopped, 0)),
            ),
            (
                policy(RestartMode::Always),
                Desired::Stopped,
                Some((TaskStatus::Stopped, 1)),
            ),
            (
                policy(RestartMode::No),
                Desired::Running,
                Some((TaskStatus::Stopped, 1)),
            ),
            (policy(RestartMode::Always), Desired::Running, None),
        ];
        for (i, (p, desired, task)) in cases.into_iter().enumerate() {
            assert_eq!(
                decide(&p, desired, task, Duration::ZERO, &mut backoff, now),
                Decision::Idle,
                "case {i}"
            );
        }
        let always = policy(RestartMode::Always);
        let decision = decide(
            &always,
            Desired::Running,
            Some((TaskStatus::Stopped, 0)),
            Duration::ZERO,
            &mut backoff,
            now,
        );
        assert_eq!(decision, Decision::Schedule(Duration::from_secs(1)));
    }
}
