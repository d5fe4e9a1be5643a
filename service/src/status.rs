//! `service ls` and `service status NAME` (not in LinuxKit, whose users run `ctr -n services.linuxkit`).

use std::path::PathBuf;
use std::time::Duration;

use crate::runtime::{Runtime, TaskStatus};
use crate::runtime_json::{RestartMode, read_runtime_json};
use crate::services::Services;
use crate::state::{self, Desired};
use crate::timeline::boottime_ms;

/// One service as `ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// Name (container id).
    pub name: String,
    /// containerd namespace.
    pub namespace: String,
    /// Task state, or `absent` when there is no container or task.
    pub state: String,
    /// Task pid (0 if none).
    pub pid: u32,
    /// Exit status of the current stopped task, or of the last one that ended.
    pub exit: Option<u32>,
    /// Restarts by the supervisor.
    pub restarts: u32,
    /// How long the running task has run.
    pub uptime: Option<Duration>,
    /// Restart policy.
    pub policy: RestartMode,
    /// Whether the last request was stop.
    pub stopped_by_user: bool,
    /// Where stdout goes.
    pub stdout_log: PathBuf,
    /// Where stderr goes.
    pub stderr_log: PathBuf,
}

/// Gathers rows for every bundle and every container in the service namespaces (or only `only`).
pub async fn collect<R: Runtime>(
    services: &Services<'_, R>,
    only: Option<&str>,
) -> Vec<ServiceRow> {
    let mut names: Vec<(String, String)> = Vec::new();
    for name in services.bundle_names() {
        let config = read_runtime_json(&services.services_dir.join(&name)).unwrap_or_default();
        names.push((services.namespace_of(&config).to_owned(), name));
    }
    for ns in services.namespaces() {
        for id in services
            .runtime
            .list_containers(&ns)
            .await
            .unwrap_or_default()
        {
            if !names.iter().any(|(n, i)| *n == ns && *i == id) {
                names.push((ns.clone(), id));
            }
        }
    }
    names.sort_by(|a, b| a.1.cmp(&b.1));
    let mut rows = Vec::new();
    for (ns, name) in names {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        rows.push(row(services, ns, name).await);
    }
    rows
}

async fn row<R: Runtime>(
    services: &Services<'_, R>,
    namespace: String,
    name: String,
) -> ServiceRow {
    let layout = services.layout;
    let record = state::load(&layout.state_dir, &name);
    let task = services
        .runtime
        .task(&namespace, &name)
        .await
        .ok()
        .flatten();
    let policy = read_runtime_json(&services.services_dir.join(&name))
        .map(|c| c.restart.policy)
        .unwrap_or_default();
    let (state, pid, exit) = match task {
        Some(task) if task.status == TaskStatus::Stopped => {
            ("stopped".to_owned(), 0, Some(task.exit_status))
        }
        Some(task) => (task.status.to_string(), task.pid, None),
        None => ("absent".to_owned(), 0, record.last_exit),
    };
    let uptime = (task.is_some_and(|t| t.status == TaskStatus::Running) && record.started_ms > 0)
        .then(|| Duration::from_millis(boottime_ms().saturating_sub(record.started_ms)));
    let (stdout_log, stderr_log) = if layout.memlogd_socket.exists() {
        (
            PathBuf::from(format!("memlogd:{name}.out")),
            PathBuf::from(format!("memlogd:{name}")),
        )
    } else {
        (
            layout.var_log_dir.join(format!("{name}.out.log")),
            layout.var_log_dir.join(format!("{name}.log")),
        )
    };
    ServiceRow {
        name,
        namespace,
        state,
        pid,
        exit,
        restarts: record.restarts,
        uptime,
        policy,
        stopped_by_user: record.desired == Desired::Stopped,
        stdout_log,
        stderr_log,
    }
}

fn uptime_text(uptime: Option<Duration>) -> String {
    match uptime {
        None => "-".into(),
        Some(d) if d.as_secs() < 120 => format!("{}s", d.as_secs()),
        Some(d) if d.as_secs() < 7200 => format!("{}m", d.as_secs() / 60),
        Some(d) => format!("{}h", d.as_secs() / 3600),
    }
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The `ls` table.
pub fn format_table(rows: &[ServiceRow]) -> String {
    let mut text = format!(
        "{:<20} {:<9} {:>7} {:>4} {:>8} {:>6}  {}\n",
        "NAME", "STATE", "PID", "EXIT", "RESTARTS", "UPTIME", "LOG"
    );
    for r in rows {
        let pid = if r.pid == 0 {
            "-".into()
        } else {
            r.pid.to_string()
        };
        text.push_str(&format!(
            "{:<20} {:<9} {:>7} {:>4} {:>8} {:>6}  {}\n",
            r.name,
            r.state,
            pid,
            dash(r.exit),
            r.restarts,
            uptime_text(r.uptime),
            r.stderr_log.display()
        ));
    }
    text
}

/// The `status NAME` text: one `key: value` per line.
pub fn format_detail(rows: &[ServiceRow]) -> String {
    let mut text = String::new();
    for r in rows {
        let policy = match r.policy {
            RestartMode::No => "no",
            RestartMode::OnFailure => "on-failure",
            RestartMode::Always => "always",
        };
        text.push_str(&format!(
            "name: {}\nnamespace: {}\nstate: {}\npid: {}\nexit status: {}\nrestarts: {}\nrestart policy: {policy}\nstopped by user: {}\nuptime: {}\nstdout: {}\nstderr: {}\n",
            r.name,
            r.namespace,
            r.state,
            r.pid,
            dash(r.exit),
            r.restarts,
            r.stopped_by_user,
            uptime_text(r.uptime),
            r.stdout_log.display(),
            r.stderr_log.display()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_state_exit_and_restarts() {
        let row = ServiceRow {
            name: "web".into(),
            namespace: "services.linuxkit".into(),
            state: "stopped".into(),
            pid: 0,
            exit: Some(3),
            restarts: 2,
            uptime: None,
            policy: RestartMode::OnFailure,
            stopped_by_user: false,
            stdout_log: "/var/log/web.out.log".into(),
            stderr_log: "/var/log/web.log".into(),
        };
        let table = format_table(std::slice::from_ref(&row));
        let line = table.lines().nth(1).expect("a row");
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields,
            vec!["web", "stopped", "-", "3", "2", "-", "/var/log/web.log"]
        );
        assert!(format_detail(&[row]).contains("restart policy: on-failure\n"));
    }
}
