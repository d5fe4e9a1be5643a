//! [`Runtime`] over containerd's gRPC API with the `containerd-client` crate (calls known to work on
//! containerd 1.6 through 2.x, docs/linuxkit.md §20).

use containerd_client::services::v1::container::Runtime as ContainerRuntime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetRequest, KillRequest, ListContainersRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::v1::Status as ProcessStatus;
use oci_spec::runtime::Spec;
use std::future::Future;
use std::time::Duration;

use crate::runtime::{
    Runtime, RuntimeError, RuntimeErrorKind, RuntimeOp, TaskInfo, TaskStatus, TaskStdio,
};

/// The OCI spec type URL containerd expects in `Container.spec`.
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// The runtime LinuxKit's services use (containerd's default).
const RUNC_V2: &str = "io.containerd.runc.v2";

/// How long one containerd call (and the connection) may take unless `-rpc-timeout` says otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one containerd. Every call but [`Runtime::wait_task`] (whose callers bound it) has a
/// deadline, so a containerd that stops answering cannot hang `service`.
#[derive(Debug, Clone)]
pub struct Containerd {
    channel: Channel,
    call_timeout: Duration,
}

/// containerd did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("containerd did not answer within {:.1}s", .0.as_secs_f64())]
pub struct NoAnswer(pub Duration);

fn timed_out(op: RuntimeOp, ns: &str, id: &str, bound: Duration) -> RuntimeError {
    RuntimeError {
        op,
        namespace: ns.into(),
        id: id.into(),
        kind: RuntimeErrorKind::Other,
        source: Box::new(NoAnswer(bound)),
    }
}

fn error(op: RuntimeOp, ns: &str, id: &str, status: Status) -> RuntimeError {
    let kind = match status.code() {
        Code::NotFound => RuntimeErrorKind::NotFound,
        Code::AlreadyExists => RuntimeErrorKind::AlreadyExists,
        _ => RuntimeErrorKind::Other,
    };
    RuntimeError {
        op,
        namespace: ns.into(),
        id: id.into(),
        kind,
        source: Box::new(status),
    }
}

/// A request carrying the namespace header; an invalid namespace is an error, not a panic.
fn request<T>(op: RuntimeOp, ns: &str, id: &str, message: T) -> Result<Request<T>, RuntimeError> {
    let value: MetadataValue<_> = ns.parse().map_err(|e| RuntimeError {
        op,
        namespace: ns.into(),
        id: id.into(),
        kind: RuntimeErrorKind::Other,
        source: Box::new(e),
    })?;
    let mut request = Request::new(message);
    request.metadata_mut().insert("containerd-namespace", value);
    Ok(request)
}

impl Containerd {
    /// Connects to containerd's socket, with [`DEFAULT_CALL_TIMEOUT`] on the connection and every call.
    pub async fn connect(socket: &std::path::Path) -> Result<Containerd, RuntimeError> {
        Containerd::connect_with(socket, DEFAULT_CALL_TIMEOUT).await
    }

    /// Connects to containerd's socket; the connection and every later call may take `call_timeout`.
    pub async fn connect_with(
        socket: &std::path::Path,
        call_timeout: Duration,
    ) -> Result<Containerd, RuntimeError> {
        let id = socket.display().to_string();
        let channel = tokio::time::timeout(call_timeout, containerd_client::connect(socket))
            .await
            .map_err(|_| timed_out(RuntimeOp::Connect, "", &id, call_timeout))?
            .map_err(|e| RuntimeError {
                op: RuntimeOp::Connect,
                namespace: String::new(),
                id,
                kind: RuntimeErrorKind::Other,
                source: Box::new(e),
            })?;
        Ok(Containerd {
            channel,
            call_timeout,
        })
    }

    /// The same connection with another deadline for each call.
    pub fn with_call_timeout(self, call_timeout: Duration) -> Containerd {
        Containerd {
            call_timeout,
            ..self
        }
    }

    /// Awaits one call with the deadline.
    async fn call<T>(
        &self,
        (op, ns, id): (RuntimeOp, &str, &str),
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, RuntimeError> {
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(result) => result.map_err(|s| error(op, ns, id, s)),
            Err(_) => Err(timed_out(op, ns, id, self.call_timeout)),
        }
    }

    fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
}

fn task_status(status: i32) -> TaskStatus {
    match ProcessStatus::try_from(status) {
        Ok(ProcessStatus::Created) => TaskStatus::Created,
        Ok(ProcessStatus::Running) => TaskStatus::Running,
        Ok(ProcessStatus::Stopped) => TaskStatus::Stopped,
        Ok(ProcessStatus::Paused | ProcessStatus::Pausing) => TaskStatus::Paused,
        _ => TaskStatus::Unknown,
    }
}

impl Runtime for Containerd {
    async fn create_container(&self, ns: &str, id: &str, spec: &Spec) -> Result<(), RuntimeError> {
        let op = RuntimeOp::CreateContainer;
        let value = serde_json::to_vec(spec).map_err(|e| RuntimeError {
            op,
            namespace: ns.into(),
            id: id.into(),
            kind: RuntimeErrorKind::Other,
            source: Box::new(e),
        })?;
        let container = Container {
            id: id.into(),
            runtime: Some(ContainerRuntime {
                name: RUNC_V2.into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE_URL.into(),
                value,
            }),
            ..Default::default()
        };
        let req = request(
            op,
            ns,
            id,
            CreateContainerRequest {
                container: Some(container),
            },
        )?;
        self.call((op, ns, id), self.containers().create(req))
            .await?;
        Ok(())
    }

    async fn delete_container(&self, ns: &str, id: &str) -> Result<(), RuntimeError> {
        let op = RuntimeOp::DeleteContainer;
        let req = request(op, ns, id, DeleteContainerRequest { id: id.into() })?;
        self.call((op, ns, id), self.containers().delete(req))
            .await?;
        Ok(())
    }

    async fn list_containers(&self, ns: &str) -> Result<Vec<String>, RuntimeError> {
        let op = RuntimeOp::ListContainers;
        let req = request(op, ns, "", ListContainersRequest { filters: vec![] })?;
        let reply = self.call((op, ns, ""), self.containers().list(req)).await?;
        Ok(reply
            .into_inner()
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    async fn create_task(
        &self,
        ns: &str,
        id: &str,
        stdio: &TaskStdio,
    ) -> Result<u32, RuntimeError> {
        let op = RuntimeOp::CreateTask;
        let message = CreateTaskRequest {
            container_id: id.into(),
            stdin: stdio.stdin.clone(),
            stdout: stdio.stdout.clone(),
            stderr: stdio.stderr.clone(),
            terminal: false,
            ..Default::default()
        };
        let reply = self
            .call(
                (op, ns, id),
                self.tasks().create(request(op, ns, id, message)?),
            )
            .await?;
        Ok(reply.into_inner().pid)
    }

    async fn start_task(&self, ns: &str, id: &str) -> Result<(), RuntimeError> {
        let op = RuntimeOp::StartTask;
        let req = request(
            op,
            ns,
            id,
            StartRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        )?;
        self.call((op, ns, id), self.tasks().start(req)).await?;
        Ok(())
    }

    async fn kill_task(
        &self,
        ns: &str,
        id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), RuntimeError> {
        let op = RuntimeOp::KillTask;
        let req = request(
            op,
            ns,
            id,
            KillRequest {
                container_id: id.into(),
                exec_id: String::new(),
                signal,
                all,
            },
        )?;
        self.call((op, ns, id), self.tasks().kill(req)).await?;
        Ok(())
    }

    async fn wait_task(&self, ns: &str, id: &str) -> Result<u32, RuntimeError> {
        let op = RuntimeOp::WaitTask;
        let req = request(
            op,
            ns,
            id,
            WaitRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        )?;
        let reply = self
            .tasks()
            .wait(req)
            .await
            .map_err(|s| error(op, ns, id, s))?;
        Ok(reply.into_inner().exit_status)
    }

    async fn delete_task(&self, ns: &str, id: &str) -> Result<u32, RuntimeError> {
        let op = RuntimeOp::DeleteTask;
        let req = request(
            op,
            ns,
            id,
            DeleteTaskRequest {
                container_id: id.into(),
            },
        )?;
        let reply = self.call((op, ns, id), self.tasks().delete(req)).await?;
        Ok(reply.into_inner().exit_status)
    }

    async fn task(&self, ns: &str, id: &str) -> Result<Option<TaskInfo>, RuntimeError> {
        let op = RuntimeOp::GetTask;
        let req = request(
            op,
            ns,
            id,
            GetRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        )?;
        match tokio::time::timeout(self.call_timeout, self.tasks().get(req)).await {
            Ok(Ok(reply)) => Ok(reply.into_inner().process.map(|p| TaskInfo {
                pid: p.pid,
                status: task_status(p.status),
                exit_status: p.exit_status,
            })),
            Ok(Err(status)) if status.code() == Code::NotFound => Ok(None),
            Ok(Err(status)) => Err(error(op, ns, id, status)),
            Err(_) => Err(timed_out(op, ns, id, self.call_timeout)),
        }
    }
}
