//! PID 1 from start to power-off: the boot sequence, the steady state and shutdown.
//!
//! Real boot (no `/proc` yet): root made pivot-able, the docs/linuxkit.md §4.2 mounts, cgroups, cold plug, power button,
//! loopback, limits, hostname, resolv.conf, `/etc/init.d/*`. Userspace mode (`/proc/self` already exists:
//! a container or a test PID namespace) does only the limits and the hooks, then the same reaping and
//! shutdown, without unmounting.

use std::path::Path;

use nix::sys::statfs::statfs;
use nix::sys::wait::WaitStatus;

use crate::cmdline::Cmdline;
use crate::layout::Layout;
use crate::modules::{self, Loader};
use crate::plan::{self, StepError};
use crate::power::PowerAction;
use crate::shutdown::{Budget, ShutdownContext, shutdown};
use crate::supervisor::{Signals, Waited, describe, reap_until_power_request, wait_for};
use crate::sys::Sys;
use crate::timeline::Timeline;
use crate::{cgroups, console, hooks, mdev, mount_table, power_button, root, sysctl, system};

/// Everything the boot sequence works with.
#[derive(Debug)]
pub struct Boot<'a> {
    sys: &'a dyn Sys,
    signals: Signals,
    layout: Layout,
    timeline: Timeline,
    real_boot: bool,
    cmdline: Cmdline,
}

/// How the boot part ended.
enum BootEnd {
    /// All hooks ran.
    Done,
    /// A power request arrived during boot.
    PowerRequest(PowerAction),
    /// Boot could not continue.
    Fatal(StepError),
}

/// Runs PID 1 to the end; returns only if the final `reboot(2)` keeps failing is impossible: it loops.
pub fn run(sys: &dyn Sys, layout: Layout) -> ! {
    let real_boot = !Path::new("/proc/self").exists();
    let mut timeline = Timeline::new();
    timeline.event("init", None);
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            log::error!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            let _ = sys.reboot(PowerAction::Poweroff);
            park()
        }
    };
    let mut boot = Boot {
        sys,
        signals,
        layout,
        timeline,
        real_boot,
        cmdline: Cmdline::default(),
    };
    let action = match boot.boot() {
        BootEnd::Done => {
            boot.timeline.event("boot-end", None);
            log::info!("boot complete");
            reap_until_power_request(&boot.signals)
        }
        BootEnd::PowerRequest(action) => action,
        BootEnd::Fatal(e) => boot.emergency(&e),
    };
    boot.finish(action)
}

fn park() -> ! {
    loop {
        nix::unistd::pause();
    }
}

impl Boot<'_> {
    fn boot(&mut self) -> BootEnd {
        if self.real_boot {
            if let Err(e) = self.mount_everything() {
                return BootEnd::Fatal(e);
            }
        } else {
            self.cmdline =
                Cmdline::parse(&std::fs::read_to_string(&self.layout.cmdline).unwrap_or_default());
            self.timeline.attach(&self.layout.timeline);
        }
        if self.real_boot {
            if let Some(action) = self.start_mdev() {
                return BootEnd::PowerRequest(action);
            }
            self.load_modules();
            power_button::spawn(&self.layout.dev_input);
            if let Some(action) =
                self.run_helper(Path::new("/sbin/hwclock"), &["--hctosys", "--utc"])
            {
                return BootEnd::PowerRequest(action);
            }
            system::loopback_up(self.sys);
        }
        system::set_limits(self.sys);
        if self.real_boot {
            system::set_hostname(self.sys, Path::new("/etc"), Path::new("/sys/class/net"));
            system::prepare_resolv_conf(self.sys, Path::new("/etc/resolv.conf"));
            sysctl::apply_dir(self.sys, Path::new("/etc/sysctl.d"), Path::new("/proc/sys"));
        }
        self.run_init_d()
    }

    fn mount_everything(&mut self) -> Result<(), StepError> {
        self.timeline.event("mounts-start", None);
        self.make_root_pivotable();
        plan::execute(self.sys, &mount_table::filesystems())?;
        console::ensure_stdio(Path::new("/dev/console"));
        if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
            log::warn!("disabling Ctrl-Alt-Del: {e}");
        }
        self.timeline.attach(&self.layout.timeline);
        self.cmdline =
            Cmdline::parse(&std::fs::read_to_string(&self.layout.cmdline).unwrap_or_default());
        let proc_cgroups = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
        match cgroups::plan(self.cmdline.wants_cgroup_v1(), &proc_cgroups) {
            Ok(p) => plan::execute(self.sys, &p)?,
            Err(e) => log::error!("{e}"),
        }
        plan::execute(self.sys, &mount_table::rshared())?;
        self.timeline.event("mounts-end", None);
        Ok(())
    }

    fn make_root_pivotable(&self) {
        self.protect_root();
        let magic = match statfs("/") {
            // `f_type` is i64 with glibc and unsigned long with musl; magics are positive 32-bit values.
            #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
            Ok(s) => s.filesystem_type().0 as u64,
            Err(e) => {
                log::error!("statfs /: {e}");
                return;
            }
        };
        if !root::needs_move(magic) {
            return;
        }
        if let Err(e) = plan::execute(self.sys, &root::plan("/mnt")) {
            log::error!("{e}: {}; container runtimes cannot pivot_root", e.source);
            let _ = self.sys.chdir(Path::new("/"));
        }
    }

    /// Says what `/` is on the console and takes write access away from others (any builder's image).
    fn protect_root(&self) {
        match nix::sys::stat::stat("/") {
            Ok(st) => {
                log::info!("{}", root::describe(st.st_mode, st.st_uid, st.st_gid));
                if let Some(fix) = root::protect(st.st_mode) {
                    log::warn!(
                        "root: / is world-writable; setting it to {:04o}",
                        root::SAFE_ROOT_MODE
                    );
                    // A failure is logged by the plan; boot goes on.
                    let _ = plan::execute(self.sys, &[fix]);
                }
            }
            Err(e) => log::error!("root: stat /: {e}"),
        }
    }

    fn load_modules(&mut self) {
        self.timeline.event("modules-start", None);
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = modules::modules_dir(&self.layout.lib_modules, &release);
        check_modprobe_path();
        match modules::read_index(&dir) {
            Ok(index) => {
                let index = std::sync::Arc::new(index);
                modules::hotplug::spawn(dir.clone(), std::sync::Arc::clone(&index));
                let loaded = modules::loaded_modules(
                    &std::fs::read_to_string("/proc/modules").unwrap_or_default(),
                );
                let mut loader = Loader::new(self.sys, &dir, &index, loaded);
                let (devices, errors) =
                    modules::coldplug::coldplug(&mut loader, &index, Path::new("/sys"));
                for e in errors {
                    log::warn!("{e}: {}", e.source);
                }
                log::info!(
                    "cold plug: {} modules loaded for {devices} devices",
                    loader.loaded().len()
                );
            }
            Err(e) => log::warn!("no cold plug: {e}: {}", error_source(&e)),
        }
        self.timeline.event("modules-end", None);
    }

    /// mdev compatibility (only for images with `/etc/mdev.conf`).
    fn start_mdev(&mut self) -> Option<PowerAction> {
        if !mdev::wanted(Path::new("/")) {
            return None;
        }
        mdev::prepare(
            self.sys,
            Path::new("/proc/sys/kernel"),
            Path::new("/sys/devices"),
        );
        self.run_helper(Path::new(mdev::MDEV), &["-s"])
    }

    /// Runs an optional helper program to completion if it exists; a power request interrupts the wait.
    fn run_helper(&mut self, path: &Path, args: &[&str]) -> Option<PowerAction> {
        if !path.exists() {
            return None;
        }
        match hooks::spawn(path, args) {
            Ok(pid) => match wait_for(&self.signals, pid) {
                Waited::Exited(WaitStatus::Exited(_, 0)) => None,
                Waited::Exited(status) => {
                    log::error!(
                        "{} {}: {}",
                        path.display(),
                        args.join(" "),
                        describe(status)
                    );
                    None
                }
                Waited::PowerRequest(action) => Some(action),
            },
            Err(e) => {
                log::error!("starting {}: {e}", path.display());
                None
            }
        }
    }

    fn run_init_d(&mut self) -> BootEnd {
        for hook in hooks::list(&self.layout.init_d) {
            let name = hook.display().to_string();
            log::info!("starting {name}");
            self.timeline.event("hook-start", Some(&name));
            match hooks::spawn(&hook, &[]) {
                Ok(pid) => match wait_for(&self.signals, pid) {
                    // LinuxKit ignores the status; saying it helps whoever reads the console.
                    Waited::Exited(WaitStatus::Exited(_, 0)) => {}
                    Waited::Exited(status) => log::warn!("{name}: {}", describe(status)),
                    Waited::PowerRequest(action) => return BootEnd::PowerRequest(action),
                },
                Err(e) => log::error!("starting {name}: {e}"),
            }
            self.timeline.event("hook-end", Some(&name));
        }
        BootEnd::Done
    }

    /// Boot failed: say what failed, give the console a shell if there is one, then power off.
    fn emergency(&mut self, error: &StepError) -> PowerAction {
        log::error!("boot failed: {error}: {}", error.source);
        console::ensure_stdio(Path::new("/dev/console"));
        if !self.layout.shell.is_file() {
            return PowerAction::Poweroff;
        }
        log::error!(
            "starting emergency shell {}; exit it to power off",
            self.layout.shell.display()
        );
        match hooks::spawn(&self.layout.shell, &[]) {
            Ok(pid) => match wait_for(&self.signals, pid) {
                Waited::PowerRequest(action) => action,
                Waited::Exited(_) => PowerAction::Poweroff,
            },
            Err(e) => {
                log::error!("starting {}: {e}", self.layout.shell.display());
                PowerAction::Poweroff
            }
        }
    }

    fn finish(&mut self, action: PowerAction) -> ! {
        let timeout = self.cmdline.shutdown_timeout().unwrap_or_else(|e| {
            log::warn!(
                "{e}; using {}s",
                crate::cmdline::DEFAULT_SHUTDOWN_TIMEOUT.as_secs()
            );
            crate::cmdline::DEFAULT_SHUTDOWN_TIMEOUT
        });
        let ctx = ShutdownContext {
            sys: self.sys,
            signals: &self.signals,
            layout: &self.layout,
            budget: Budget::split(timeout),
            unmount: self.real_boot,
        };
        shutdown(&ctx, &mut self.timeline, action);
        // reboot(2) failed: keep reaping, and try again on the next request.
        loop {
            let action = reap_until_power_request(&self.signals);
            log::info!("{}", action.progress());
            let errno = self.sys.reboot(action);
            log::error!("reboot(2) for {} failed: {errno}", action.name());
        }
    }
}

fn error_source(e: &dyn std::error::Error) -> String {
    e.source().map(|s| s.to_string()).unwrap_or_default()
}

/// The kernel's `request_module` runs `/proc/sys/kernel/modprobe`; say so when that program is missing.
fn check_modprobe_path() {
    let Ok(path) = std::fs::read_to_string("/proc/sys/kernel/modprobe") else {
        return;
    };
    let path = path.trim();
    if !path.is_empty() && !Path::new(path).exists() {
        log::warn!("{path} (kernel.modprobe) is missing: modules will not load on demand");
    }
}
