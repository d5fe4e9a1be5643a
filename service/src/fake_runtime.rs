//! An in-memory [`Runtime`] for unit tests of the service logic (passed in explicitly, never chosen by
//! `cfg!(test)`). Tasks "exit" on SIGTERM unless their id is in `ignores_term`, and always on SIGKILL.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use oci_spec::runtime::Spec;

use crate::runtime::{
    Runtime, RuntimeError, RuntimeErrorKind, RuntimeOp, TaskInfo, TaskStatus, TaskStdio,
};

/// A fake container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeContainer {
    /// Its task, if created.
    pub task: Option<TaskInfo>,
    /// stdio given at task creation.
    pub stdio: Option<TaskStdio>,
}

/// The fake runtime.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    /// Containers by (namespace, id).
    pub containers: Mutex<BTreeMap<(String, String), FakeContainer>>,
    /// Ids whose tasks ignore SIGTERM.
    pub ignores_term: Mutex<HashSet<String>>,
    /// Every call, as `op ns/id [detail]`.
    pub calls: Mutex<Vec<String>>,
    next_pid: Mutex<u32>,
}

fn not_found(op: RuntimeOp, ns: &str, id: &str) -> RuntimeError {
    RuntimeError {
        op,
        namespace: ns.into(),
        id: id.into(),
        kind: RuntimeErrorKind::NotFound,
        source: "not found".into(),
    }
}

impl FakeRuntime {
    fn record(&self, call: String) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<(String, String), FakeContainer>) -> T) -> T {
        let mut guard = self
            .containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Makes a running task exit by itself (a crash).
    pub fn crash(&self, ns: &str, id: &str, exit_status: u32) {
        self.with(|c| {
            if let Some(task) = c
                .get_mut(&(ns.into(), id.into()))
                .and_then(|c| c.task.as_mut())
            {
                task.status = TaskStatus::Stopped;
                task.exit_status = exit_status;
            }
        });
    }

    /// The recorded calls.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Runtime for FakeRuntime {
    async fn create_container(&self, ns: &str, id: &str, _spec: &Spec) -> Result<(), RuntimeError> {
        self.record(format!("create_container {ns}/{id}"));
        self.with(|c| {
            let key = (ns.to_owned(), id.to_owned());
            if c.contains_key(&key) {
                return Err(RuntimeError {
                    op: RuntimeOp::CreateContainer,
                    namespace: ns.into(),
                    id: id.into(),
                    kind: RuntimeErrorKind::AlreadyExists,
                    source: "already exists".into(),
                });
            }
            c.insert(
                key,
                FakeContainer {
                    task: None,
                    stdio: None,
                },
            );
            Ok(())
        })
    }

    async fn delete_container(&self, ns: &str, id: &str) -> Result<(), RuntimeError> {
        self.record(format!("delete_container {ns}/{id}"));
        self.with(|c| {
            c.remove(&(ns.into(), id.into()))
                .map(|_| ())
                .ok_or_else(|| not_found(RuntimeOp::DeleteContainer, ns, id))
        })
    }

    async fn list_containers(&self, ns: &str) -> Result<Vec<String>, RuntimeError> {
        Ok(self.with(|c| {
            c.keys()
                .filter(|(n, _)| n == ns)
                .map(|(_, id)| id.clone())
                .collect()
        }))
    }

    async fn create_task(
        &self,
        ns: &str,
        id: &str,
        stdio: &TaskStdio,
    ) -> Result<u32, RuntimeError> {
        self.record(format!("create_task {ns}/{id}"));
        let pid = {
            let mut next = self
                .next_pid
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *next += 1;
            1000 + *next
        };
        self.with(|c| {
            let container = c
                .get_mut(&(ns.into(), id.into()))
                .ok_or_else(|| not_found(RuntimeOp::CreateTask, ns, id))?;
            container.task = Some(TaskInfo {
                pid,
                status: TaskStatus::Created,
                exit_status: 0,
            });
            container.stdio = Some(stdio.clone());
            Ok(pid)
        })
    }

    async fn start_task(&self, ns: &str, id: &str) -> Result<(), RuntimeError> {
        self.record(format!("start_task {ns}/{id}"));
        self.with(|c| {
            let task = c
                .get_mut(&(ns.into(), id.into()))
                .and_then(|c| c.task.as_mut());
            let task = task.ok_or_else(|| not_found(RuntimeOp::StartTask, ns, id))?;
            task.status = TaskStatus::Running;
            Ok(())
        })
    }

    async fn kill_task(
        &self,
        ns: &str,
        id: &str,
        signal: u32,
        _all: bool,
    ) -> Result<(), RuntimeError> {
        self.record(format!("kill_task {ns}/{id} {signal}"));
        let ignores = self
            .ignores_term
            .lock()
            .map(|s| s.contains(id))
            .unwrap_or(false);
        self.with(|c| {
            let task = c
                .get_mut(&(ns.into(), id.into()))
                .and_then(|c| c.task.as_mut());
            let task = task.ok_or_else(|| not_found(RuntimeOp::KillTask, ns, id))?;
            if task.status != TaskStatus::Stopped && (signal == 9 || !ignores) {
                task.status = TaskStatus::Stopped;
                task.exit_status = 128 + signal;
            }
            Ok(())
        })
    }

    async fn wait_task(&self, ns: &str, id: &str) -> Result<u32, RuntimeError> {
        loop {
            let state = self.with(|c| c.get(&(ns.into(), id.into())).and_then(|c| c.task));
            match state {
                None => return Err(not_found(RuntimeOp::WaitTask, ns, id)),
                Some(task) if task.status == TaskStatus::Stopped => return Ok(task.exit_status),
                Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    async fn delete_task(&self, ns: &str, id: &str) -> Result<u32, RuntimeError> {
        self.record(format!("delete_task {ns}/{id}"));
        self.with(|c| {
            let container = c
                .get_mut(&(ns.into(), id.into()))
                .ok_or_else(|| not_found(RuntimeOp::DeleteTask, ns, id))?;
            let task = container
                .task
                .take()
                .ok_or_else(|| not_found(RuntimeOp::DeleteTask, ns, id))?;
            Ok(task.exit_status)
        })
    }

    async fn task(&self, ns: &str, id: &str) -> Result<Option<TaskInfo>, RuntimeError> {
        Ok(self.with(|c| c.get(&(ns.into(), id.into())).and_then(|c| c.task)))
    }
}
