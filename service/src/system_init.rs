//! `system-init` (what `/etc/init.d/020-containerd` runs, docs/linuxkit.md §11.5): start containerd as
//! `/etc/containerd/runtime-config.toml` says, wait for its socket (with a timeout, unlike LinuxKit), clean
//! stale containers, start every service, and leave containerd running.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::bundle::joins_namespace_paths;
use crate::runtime::Runtime;
use crate::services::Services;

/// Errors of system-init before services start.
#[derive(Debug, thiserror::Error)]
pub enum SystemInitError {
    /// runtime-config.toml could not be read.
    #[error("reading {}", file.display())]
    ReadConfig {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// runtime-config.toml is not valid.
    #[error("parsing {}", file.display())]
    ParseConfig {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// `stdout`/`stderr` is neither `stdout`, `stderr` nor an absolute path.
    #[error("{}: field `{field}`: {value:?} is not \"stdout\", \"stderr\" or an absolute path", file.display())]
    BadOutput {
        /// The file.
        file: PathBuf,
        /// The key.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// An output file could not be opened.
    #[error("opening {} for containerd's {field}", path.display())]
    OpenOutput {
        /// The key.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// containerd could not be started.
    #[error("starting {}", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// containerd exited before its socket appeared.
    #[error("containerd process exited ({status}) before creating {}", socket.display())]
    Exited {
        /// The socket.
        socket: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The socket did not appear in time.
    #[error("containerd did not create {} within {:.1}s", socket.display(), timeout.as_secs_f64())]
    Timeout {
        /// The socket.
        socket: PathBuf,
        /// The limit.
        timeout: Duration,
    },
}

/// Where one of containerd's output streams goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// service's own stdout (the console).
    Stdout,
    /// service's own stderr (the console).
    Stderr,
    /// A file opened for append.
    File(PathBuf),
}

/// The containerd process configuration (`cliopts`, `stdout`, `stderr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdProcess {
    /// Extra arguments, split on whitespace.
    pub args: Vec<String>,
    /// containerd's stdout.
    pub stdout: Output,
    /// containerd's stderr.
    pub stderr: Output,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfigToml {
    cliopts: String,
    stdout: String,
    stderr: String,
}

fn parse_output(
    value: &str,
    field: &'static str,
    default: Output,
    file: &Path,
) -> Result<Output, SystemInitError> {
    match value {
        "" => Ok(default),
        "stdout" => Ok(Output::Stdout),
        "stderr" => Ok(Output::Stderr),
        path if path.starts_with('/') => Ok(Output::File(path.into())),
        _ => Err(SystemInitError::BadOutput {
            file: file.to_owned(),
            field,
            value: value.into(),
        }),
    }
}

/// Parses runtime-config.toml text.
pub fn parse_containerd_process(
    text: &str,
    file: &Path,
) -> Result<ContainerdProcess, SystemInitError> {
    let raw: RuntimeConfigToml =
        toml::from_str(text).map_err(|source| SystemInitError::ParseConfig {
            file: file.to_owned(),
            source,
        })?;
    Ok(ContainerdProcess {
        args: raw.cliopts.split_whitespace().map(str::to_owned).collect(),
        stdout: parse_output(&raw.stdout, "stdout", Output::Stdout, file)?,
        stderr: parse_output(&raw.stderr, "stderr", Output::Stderr, file)?,
    })
}

/// Reads runtime-config.toml; a missing file gives the defaults (no arguments, console output).
pub fn read_containerd_process(file: &Path) -> Result<ContainerdProcess, SystemInitError> {
    match std::fs::read_to_string(file) {
        Ok(text) => parse_containerd_process(&text, file),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(ContainerdProcess {
            args: vec![],
            stdout: Output::Stdout,
            stderr: Output::Stderr,
        }),
        Err(source) => Err(SystemInitError::ReadConfig {
            file: file.to_owned(),
            source,
        }),
    }
}

fn open_output(output: &Output, field: &'static str) -> Result<Stdio, SystemInitError> {
    let dup = |fd: std::io::Result<std::os::fd::OwnedFd>| {
        fd.map(Stdio::from)
            .map_err(|source| SystemInitError::OpenOutput {
                field,
                path: PathBuf::from(field),
                source,
            })
    };
    match output {
        Output::Stdout => dup(std::io::stdout().as_fd_owned()),
        Output::Stderr => dup(std::io::stderr().as_fd_owned()),
        Output::File(path) => OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(path)
            .map(Stdio::from)
            .map_err(|source| SystemInitError::OpenOutput {
                field,
                path: path.clone(),
                source,
            }),
    }
}

trait AsFdOwned {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd>;
}

impl<T: std::os::fd::AsFd> AsFdOwned for T {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }
}

/// Removes a stale socket and starts containerd (not waited for; it outlives `service`).
pub fn spawn_containerd(
    binary: &Path,
    process: &ContainerdProcess,
    socket: &Path,
) -> Result<Child, SystemInitError> {
    let _ = std::fs::remove_file(socket);
    Command::new(binary)
        .args(&process.args)
        .stdin(Stdio::null())
        .stdout(open_output(&process.stdout, "stdout")?)
        .stderr(open_output(&process.stderr, "stderr")?)
        .spawn()
        .map_err(|source| SystemInitError::Spawn {
            binary: binary.to_owned(),
            source,
        })
}

/// Polls for the socket every 100 ms until `timeout`, failing early if containerd exits.
pub fn wait_for_socket(
    child: &mut Child,
    socket: &Path,
    timeout: Duration,
) -> Result<(), SystemInitError> {
    let deadline = Instant::now() + timeout;
    loop {
        if socket.exists() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SystemInitError::Exited {
                socket: socket.to_owned(),
                status,
            });
        }
        if Instant::now() >= deadline {
            return Err(SystemInitError::Timeout {
                socket: socket.to_owned(),
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a service must start on its own, in name order, before the concurrent rest: it moves links,
/// binds namespaces, or joins namespaces by path (which another service may bind).
fn needs_ordered_start<R: Runtime>(services: &Services<'_, R>, name: &str) -> bool {
    match services.load(name) {
        Ok((_, config, spec)) => {
            !config.interfaces.is_empty()
                || !config.bind_ns.entries().is_empty()
                || joins_namespace_paths(&spec)
        }
        Err(_) => false,
    }
}

/// Starts every bundle: the ones with namespace side effects one after another in name order, then the
/// others concurrently. Errors are logged per service and the others still start. Returns the failed names.
pub async fn start_all<R: Runtime>(services: &Services<'_, R>) -> Vec<String> {
    let names = services.bundle_names();
    let (ordered, concurrent): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|name| needs_ordered_start(services, name));
    let mut failed = Vec::new();
    for name in ordered {
        if let Err(err) = services.start(&name).await {
            log::error!("{}", crate::describe(&err));
            failed.push(name);
        }
    }
    let starts = concurrent
        .iter()
        .map(|name| async move { (name, services.start(name).await) });
    for (name, result) in futures_util::future::join_all(starts).await {
        if let Err(err) = result {
            log::error!("{}", crate::describe(&err));
            failed.push(name.clone());
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_keys() {
        let file = Path::new("/etc/containerd/runtime-config.toml");
        let process = parse_containerd_process(
            "cliopts = \"--log-level debug\"\nstderr = \"/var/log/containerd.log\"\n",
            file,
        )
        .expect("valid");
        assert_eq!(process.args, vec!["--log-level", "debug"]);
        assert_eq!(process.stdout, Output::Stdout);
        assert_eq!(
            process.stderr,
            Output::File("/var/log/containerd.log".into())
        );
        let err = parse_containerd_process("stdout = \"console\"", file).expect_err("bad output");
        assert!(err.to_string().contains("field `stdout`"), "{err}");
        assert!(parse_containerd_process("cliopts = [", file).is_err());
    }
}
