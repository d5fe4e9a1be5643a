//! Shared parts of the integration tests: a private containerd (own root, state and socket in a temporary
//! directory, CRI disabled) and busybox bundles. Tests that lack root, containerd, runc or busybox fail
//! with a message naming what is missing.
#![allow(dead_code)]

pub mod memlogd;
pub mod sys;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use serde_json::json;
use service::layout::Layout;

/// The directory holding `containerd` and its `containerd-shim-runc-v2` (`GUESTKIT_CONTAINERD_DIR`,
/// default `/usr/bin`).
pub fn containerd_dir() -> PathBuf {
    std::env::var_os("GUESTKIT_CONTAINERD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin".into())
}

/// Fails the test unless we are root and the tools exist.
pub fn require_prerequisites() {
    assert!(nix::unistd::geteuid().is_root(), "these tests need root");
    let dir = containerd_dir();
    for tool in ["containerd", "containerd-shim-runc-v2"] {
        assert!(
            dir.join(tool).is_file(),
            "missing {} (set GUESTKIT_CONTAINERD_DIR)",
            dir.join(tool).display()
        );
    }
    assert!(
        service::onboot::find_runc().is_file(),
        "missing runc (apt-get install runc)"
    );
    assert!(
        busybox().is_file(),
        "missing busybox (apt-get install busybox-static)"
    );
}

/// The static busybox.
pub fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| "/bin/busybox".into())
}

/// Gives the calling thread private mount and network namespaces, so that runtime.json mounts and
/// interfaces never touch the host. Everything the test spawns afterwards (containerd, runc) inherits them.
pub fn isolate_thread() {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET)
        .expect("unshare mount and network namespaces");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
}

/// The major version of the containerd under test.
pub fn containerd_major_version() -> u32 {
    containerd_major(&containerd_dir().join("containerd"))
}

fn containerd_major(binary: &Path) -> u32 {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .expect("containerd --version");
    let text = String::from_utf8_lossy(&out.stdout);
    // "containerd github.com/containerd/containerd 1.6.20~ds1 ..." or ".../v2 v2.1.9 ..."
    text.split_whitespace()
        .nth(2)
        .and_then(|v| {
            v.trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
        })
        .unwrap_or(1)
}

/// A containerd of our own.
pub struct TestContainerd {
    /// Its socket.
    pub socket: PathBuf,
    /// Its directory.
    pub dir: PathBuf,
    child: Option<Child>,
    pid: i32,
    namespaces: Vec<String>,
}

impl TestContainerd {
    /// Starts containerd under `dir` and waits until it answers.
    pub fn start(dir: &Path) -> TestContainerd {
        require_prerequisites();
        let bin = containerd_dir();
        let binary = bin.join("containerd");
        let config = if containerd_major(&binary) >= 2 {
            "version = 3\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.cri.v1.runtime\", \"io.containerd.cri.v1.images\"]\n"
        } else {
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        };
        let dir = dir.join("containerd");
        std::fs::create_dir_all(&dir).expect("containerd dir");
        std::fs::write(dir.join("config.toml"), config).expect("config");
        let socket = dir.join("containerd.sock");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        let child = Command::new(&binary)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(&socket)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not create its socket; see {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = i32::try_from(child.id()).expect("pid");
        TestContainerd {
            socket,
            dir,
            child: Some(child),
            pid,
            namespaces: vec!["services.linuxkit".into()],
        }
    }

    /// Takes charge of a containerd started by someone else (system-init): cleaned up and killed on drop.
    pub fn adopt(dir: &Path, socket: &Path, pid: i32) -> TestContainerd {
        TestContainerd {
            socket: socket.to_owned(),
            dir: dir.to_owned(),
            child: None,
            pid,
            namespaces: vec!["services.linuxkit".into()],
        }
    }

    /// Also clean this namespace at the end.
    pub fn track_namespace(&mut self, ns: &str) {
        self.namespaces.push(ns.into());
    }

    /// containerd's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        let socket = self.socket.clone();
        let namespaces = self.namespaces.clone();
        // Runs on a fresh thread: the test may be inside a tokio runtime, which cannot nest another.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(client) = service::containerd::Containerd::connect(&socket).await else {
                    return;
                };
                let layout = Layout::default();
                for ns in namespaces {
                    let services = service::services::Services {
                        runtime: &client,
                        layout: &layout,
                        services_dir: "/nonexistent".into(),
                        namespace: ns.clone(),
                        dump_spec: None,
                        grace: Some(Duration::ZERO),
                        lock_timeout: service::state::DEFAULT_LOCK_TIMEOUT,
                    };
                    use service::runtime::Runtime;
                    for id in client.list_containers(&ns).await.unwrap_or_default() {
                        services.remove(&ns, &id).await;
                    }
                }
            });
        })
        .join();
        let pid = nix::unistd::Pid::from_raw(self.pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        match &mut self.child {
            Some(child) => {
                let _ = child.wait();
            }
            None => {
                wait_until(Duration::from_secs(5), || {
                    nix::sys::signal::kill(pid, None).is_err()
                });
            }
        }
    }
}

/// Capabilities for test containers: the usual container set, without CAP_SYS_RESOURCE (stack notes, pitfall 7).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_NET_ADMIN",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];

/// What a test bundle looks like.
pub struct BundleSpec<'a> {
    /// The command (run by busybox sh -c).
    pub script: &'a str,
    /// A new network namespace (otherwise the host's, i.e. the test thread's).
    pub new_netns: bool,
    /// Join this network namespace path.
    pub join_netns: Option<&'a str>,
    /// runtime.json text, if any.
    pub runtime_json: Option<String>,
    /// LinuxKit's writable layout (`lower/` + overlay mounts in runtime.json) instead of a read-only rootfs.
    pub writable: bool,
}

impl Default for BundleSpec<'_> {
    fn default() -> Self {
        BundleSpec {
            script: "true",
            new_netns: false,
            join_netns: None,
            runtime_json: None,
            writable: false,
        }
    }
}

fn busybox_root(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).expect("rootfs/bin");
    for dir in ["proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(dir)).expect("rootfs dir");
    }
    std::fs::copy(busybox(), root.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "sleep", "echo", "cat", "ip", "ls", "touch", "test", "true", "false", "mount", "grep",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
}

/// Writes a bundle `dir/name` running `spec.script` under busybox sh.
pub fn write_bundle(dir: &Path, name: &str, spec: &BundleSpec) -> PathBuf {
    let bundle = dir.join(name);
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
    ];
    if spec.new_netns {
        namespaces.push(json!({"type": "network"}));
    }
    if let Some(path) = spec.join_netns {
        namespaces.push(json!({"type": "network", "path": path}));
    }
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", spec.script],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
        },
        "root": {"path": "rootfs", "readonly": !spec.writable},
        "hostname": name,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "nodev", "noexec"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        ],
        "linux": {"namespaces": namespaces},
    });
    std::fs::create_dir_all(&bundle).expect("bundle dir");
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&config).expect("json"),
    )
    .expect("config.json");
    if spec.writable {
        busybox_root(&bundle.join("lower"));
        std::fs::create_dir_all(bundle.join("tmp")).expect("tmp");
        std::fs::create_dir_all(bundle.join("rootfs")).expect("rootfs");
    } else {
        busybox_root(&bundle.join("rootfs"));
    }
    let runtime_json = match (&spec.runtime_json, spec.writable) {
        (Some(text), _) => Some(text.clone()),
        (None, true) => Some(writable_runtime_json(&bundle, "")),
        (None, false) => None,
    };
    if let Some(text) = runtime_json {
        std::fs::write(bundle.join("runtime.json"), text).expect("runtime.json");
    }
    bundle
}

/// LinuxKit's runtime.json for a writable container (docs/linuxkit.md §8.3), followed by `extra` (comma-led JSON fields).
pub fn writable_runtime_json(bundle: &Path, extra: &str) -> String {
    let b = bundle.display();
    format!(
        r#"{{"mounts": [
            {{"source": "tmpfs", "type": "tmpfs", "destination": "{b}/tmp"}},
            {{"destination": "{b}/tmp", "options": ["remount", "private"]}},
            {{"source": "overlay", "type": "overlay", "destination": "{b}/rootfs",
              "options": ["lowerdir={b}/lower", "upperdir={b}/tmp/upper", "workdir={b}/tmp/work"]}}
        ]{extra}}}"#
    )
}

/// Polls `check` every 20 ms until it is true or `limit` passes; returns whether it became true.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
