//! A [`Sys`] that performs nothing and records every call, for unit tests of plans and shutdown.
//! Tests pass it in explicitly; production code never picks it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;

use crate::power::PowerAction;
use crate::sys::{MountArgs, Sys};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Call {
    Mount(MountArgs),
    Umount {
        target: PathBuf,
        detach: bool,
    },
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    MknodChar {
        path: PathBuf,
        mode: u32,
        major: u64,
        minor: u64,
    },
    WriteFile {
        path: PathBuf,
        contents: Vec<u8>,
    },
    Chdir(PathBuf),
    Chroot(PathBuf),
    Chmod {
        path: PathBuf,
        mode: u32,
    },
    Sethostname(String),
    Setrlimit {
        resource: Resource,
        soft: u64,
        hard: u64,
    },
    InterfaceUp(String),
    LoadModule {
        path: PathBuf,
        params: String,
    },
    KillAll(Signal),
    Sync,
    Reboot(PowerAction),
}

/// Records calls; fails those whose path (mount target, file, link) is in `failures`.
#[derive(Debug, Default)]
pub struct RecordingSys {
    calls: Mutex<Vec<Call>>,
    failures: HashMap<PathBuf, Errno>,
}

impl RecordingSys {
    /// A fake on which every call succeeds.
    pub fn new() -> RecordingSys {
        RecordingSys::default()
    }

    /// Makes every call on `path` fail with `errno`.
    pub fn failing(mut self, path: &str, errno: Errno) -> RecordingSys {
        self.failures.insert(PathBuf::from(path), errno);
        self
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.log().clone()
    }

    fn log(&self) -> MutexGuard<'_, Vec<Call>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, call: Call, path: Option<&Path>) -> nix::Result<()> {
        self.log().push(call);
        match path.and_then(|p| self.failures.get(p)) {
            Some(errno) => Err(*errno),
            None => Ok(()),
        }
    }
}

impl Sys for RecordingSys {
    fn mount(&self, args: &MountArgs) -> nix::Result<()> {
        self.record(Call::Mount(args.clone()), Some(&args.target))
    }
    fn umount(&self, target: &Path, detach: bool) -> nix::Result<()> {
        self.record(
            Call::Umount {
                target: target.into(),
                detach,
            },
            Some(target),
        )
    }
    fn mkdir_all(&self, path: &Path, mode: u32) -> nix::Result<()> {
        self.record(
            Call::Mkdir {
                path: path.into(),
                mode,
            },
            Some(path),
        )
    }
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        self.record(
            Call::Symlink {
                target: target.into(),
                link: link.into(),
            },
            Some(link),
        )
    }
    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> nix::Result<()> {
        self.record(
            Call::MknodChar {
                path: path.into(),
                mode,
                major,
                minor,
            },
            Some(path),
        )
    }
    fn write_file(&self, path: &Path, contents: &[u8]) -> nix::Result<()> {
        self.record(
            Call::WriteFile {
                path: path.into(),
                contents: contents.to_vec(),
            },
            Some(path),
        )
    }
    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chdir(path.into()), Some(path))
    }
    fn chroot(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chroot(path.into()), Some(path))
    }
    fn chmod(&self, path: &Path, mode: u32) -> nix::Result<()> {
        self.record(
            Call::Chmod {
                path: path.into(),
                mode,
            },
            Some(path),
        )
    }
    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.record(Call::Sethostname(name.into()), None)
    }
    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()> {
        self.record(
            Call::Setrlimit {
                resource,
                soft,
                hard,
            },
            None,
        )
    }
    fn interface_up(&self, name: &str) -> nix::Result<()> {
        self.record(Call::InterfaceUp(name.into()), None)
    }
    fn load_module(&self, path: &Path, params: &str) -> nix::Result<()> {
        self.record(
            Call::LoadModule {
                path: path.into(),
                params: params.into(),
            },
            Some(path),
        )
    }
    fn kill_all(&self, signal: Signal) -> nix::Result<()> {
        self.record(Call::KillAll(signal), None)
    }
    fn sync(&self, _bound: std::time::Duration) -> bool {
        self.log().push(Call::Sync);
        true
    }
    fn reboot(&self, action: PowerAction) -> Errno {
        self.log().push(Call::Reboot(action));
        Errno::EPERM
    }
}
