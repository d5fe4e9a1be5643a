//! The container runtime as `service` sees it: a narrow trait over containerd's task and container calls,
//! so that start/stop/restart/shutdown/supervision logic can be tested against [`crate::fake_runtime`].

use std::future::Future;

use oci_spec::runtime::Spec;

/// What went wrong, as far as callers need to distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeErrorKind {
    /// The container or task does not exist.
    NotFound,
    /// The container already exists.
    AlreadyExists,
    /// Anything else.
    Other,
}

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeOp {
    #[allow(missing_docs)]
    Connect,
    #[allow(missing_docs)]
    CreateContainer,
    #[allow(missing_docs)]
    DeleteContainer,
    #[allow(missing_docs)]
    ListContainers,
    #[allow(missing_docs)]
    CreateTask,
    #[allow(missing_docs)]
    StartTask,
    #[allow(missing_docs)]
    KillTask,
    #[allow(missing_docs)]
    WaitTask,
    #[allow(missing_docs)]
    DeleteTask,
    #[allow(missing_docs)]
    GetTask,
}

impl std::fmt::Display for RuntimeOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            RuntimeOp::Connect => "connecting to containerd",
            RuntimeOp::CreateContainer => "creating container",
            RuntimeOp::DeleteContainer => "deleting container",
            RuntimeOp::ListContainers => "listing containers",
            RuntimeOp::CreateTask => "creating task",
            RuntimeOp::StartTask => "starting task",
            RuntimeOp::KillTask => "signalling task",
            RuntimeOp::WaitTask => "waiting for task",
            RuntimeOp::DeleteTask => "deleting task",
            RuntimeOp::GetTask => "getting task",
        };
        f.write_str(text)
    }
}

/// A failed runtime call.
#[derive(Debug, thiserror::Error)]
#[error("{op} {id:?} in namespace {namespace:?}")]
pub struct RuntimeError {
    /// The call.
    pub op: RuntimeOp,
    /// The containerd namespace.
    pub namespace: String,
    /// The container id (empty for namespace-wide calls).
    pub id: String,
    /// How callers should treat it.
    pub kind: RuntimeErrorKind,
    /// The cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl RuntimeError {
    /// Whether the container or task was not there.
    pub fn is_not_found(&self) -> bool {
        self.kind == RuntimeErrorKind::NotFound
    }
}

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Stopped,
    /// Paused or pausing.
    Paused,
    /// Anything else.
    Unknown,
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            TaskStatus::Created => "created",
            TaskStatus::Running => "running",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Paused => "paused",
            TaskStatus::Unknown => "unknown",
        };
        f.write_str(text)
    }
}

/// A task's pid and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskInfo {
    /// The init process's pid on the host.
    pub pid: u32,
    /// The state.
    pub status: TaskStatus,
    /// The exit status once stopped (128+signal for a signal).
    pub exit_status: u32,
}

/// Standard streams of a task: paths the runtime opens (stdin `/dev/null`, files or FIFOs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStdio {
    /// stdin.
    pub stdin: String,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// The calls `service` makes on containerd. Every call takes the containerd namespace.
pub trait Runtime: Sync {
    /// Creates a container from a spec with an absolute root (no image, no snapshotter).
    fn create_container(
        &self,
        ns: &str,
        id: &str,
        spec: &Spec,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Deletes a container (its task must be gone).
    fn delete_container(
        &self,
        ns: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Ids of all containers in the namespace.
    fn list_containers(
        &self,
        ns: &str,
    ) -> impl Future<Output = Result<Vec<String>, RuntimeError>> + Send;
    /// Creates the task (process exists, not started); returns its pid.
    fn create_task(
        &self,
        ns: &str,
        id: &str,
        stdio: &TaskStdio,
    ) -> impl Future<Output = Result<u32, RuntimeError>> + Send;
    /// Starts a created task.
    fn start_task(
        &self,
        ns: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Sends a signal; `all` sends it to every process of the container.
    fn kill_task(
        &self,
        ns: &str,
        id: &str,
        signal: u32,
        all: bool,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Waits until the task exits; returns its exit status.
    fn wait_task(
        &self,
        ns: &str,
        id: &str,
    ) -> impl Future<Output = Result<u32, RuntimeError>> + Send;
    /// Deletes an exited task; returns its exit status.
    fn delete_task(
        &self,
        ns: &str,
        id: &str,
    ) -> impl Future<Output = Result<u32, RuntimeError>> + Send;
    /// The task of a container, None if the container has none.
    fn task(
        &self,
        ns: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<TaskInfo>, RuntimeError>> + Send;
}
