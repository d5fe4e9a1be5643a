//! guestkit's own per-service records (`<state_dir>/<name>.json`), shared by `start`, `stop`, the supervisor
//! and `ls`/`status`, plus a per-service lock that serialises operations on one service across processes.

use std::fs::File;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// What the user last asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Started (by system-init, `start` or `restart`): the supervisor may restart it.
    #[default]
    Running,
    /// Stopped by `stop` or `shutdown`: never restarted.
    Stopped,
}

/// One service's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRecord {
    /// What the user last asked for.
    pub desired: Desired,
    /// Restarts done by the supervisor since the last manual start.
    pub restarts: u32,
    /// Exit status of the last task that ended.
    pub last_exit: Option<u32>,
    /// CLOCK_BOOTTIME ms of the last start.
    pub started_ms: u64,
    /// Pid of the current task.
    pub pid: u32,
    /// containerd namespace.
    pub namespace: String,
}

fn record_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("{name}.json"))
}

/// The record of `name`; a missing or unreadable record is the default.
pub fn load(state_dir: &Path, name: &str) -> ServiceRecord {
    std::fs::read(record_path(state_dir, name))
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default()
}

/// Changes the record of `name` (write to a temporary file, then rename). Failures are logged: records are
/// bookkeeping and must not stop a service operation.
pub fn update(
    state_dir: &Path,
    name: &str,
    change: impl FnOnce(&mut ServiceRecord),
) -> ServiceRecord {
    let mut record = load(state_dir, name);
    change(&mut record);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let tmp = state_dir.join(format!(".{name}.json.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&record).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, record_path(state_dir, name))
    };
    if let Err(err) = write() {
        log::warn!(
            "recording the state of service {name} in {}: {err}",
            state_dir.display()
        );
    }
    record
}

/// How long an operation waits for a service's lock unless `-rpc-timeout` says otherwise (the holder may
/// be stuck in a containerd call, which has that deadline too).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_POLL: Duration = Duration::from_millis(50);

/// Holds the exclusive lock of one service until dropped, waiting at most `bound` for it. None if the lock
/// could not be taken in time (logged): the operation then goes on without it, so a holder that is stuck
/// cannot stop a shutdown.
pub async fn lock(state_dir: &Path, name: &str, bound: Duration) -> Option<Flock<File>> {
    let path = state_dir.join(format!("{name}.lock"));
    let mut file = match std::fs::create_dir_all(state_dir).and_then(|()| File::create(&path)) {
        Ok(file) => file,
        Err(err) => {
            log::warn!("creating {}: {err}", path.display());
            return None;
        }
    };
    let deadline = Instant::now() + bound;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Some(lock),
            Err((back, Errno::EWOULDBLOCK | Errno::EINTR)) if Instant::now() < deadline => {
                file = back;
                tokio::time::sleep(LOCK_POLL).await;
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                log::warn!(
                    "{} is still held after {:.1}s: going on without it",
                    path.display(),
                    bound.as_secs_f64()
                );
                return None;
            }
            Err((_, err)) => {
                log::warn!("locking {}: {err}", path.display());
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path(), "a"), ServiceRecord::default());
        update(dir.path(), "a", |r| {
            r.restarts = 3;
            r.desired = Desired::Stopped;
        });
        let record = load(dir.path(), "a");
        assert_eq!(record.restarts, 3);
        assert_eq!(record.desired, Desired::Stopped);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        let held = runtime.block_on(lock(dir.path(), "a", Duration::ZERO));
        assert!(held.is_some());
        // flock locks belong to the open file: a second open contends, and gives up at the bound.
        let contended = runtime.block_on(lock(dir.path(), "a", Duration::from_millis(120)));
        assert!(contended.is_none());
        drop(held);
        assert!(
            runtime
                .block_on(lock(dir.path(), "a", Duration::ZERO))
                .is_some()
        );
    }
}
