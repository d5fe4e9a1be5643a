//! Runs a parsed [`Invocation`]: the glue between the command line and the modules. Returns the exit status.

use std::time::Duration;

use crate::cli::{Command, Invocation, Target, USAGE};
use crate::cmdline::parse_boot_options;
use crate::containerd::Containerd;
use crate::layout::Layout;
use crate::onboot::{Phase, Runner, find_runc};
use crate::services::Services;
use crate::system_init::{read_containerd_process, spawn_containerd, start_all, wait_for_socket};
use crate::volumes::mount_volumes;
use crate::{describe, status, supervisor, timeline};

/// How long system-init waits for containerd's socket unless `-timeout` says otherwise.
pub const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the command; returns the process exit status.
pub fn run(invocation: Invocation, layout: &Layout) -> u8 {
    let namespace = invocation.globals.namespace.clone();
    match invocation.command {
        Command::Help => {
            print!("{USAGE}");
            0
        }
        Command::Onboot => run_phase(layout, Phase::Onboot),
        Command::Onshutdown => run_phase(layout, Phase::Onshutdown),
        Command::Volumes(path) => u8::from(mount_volumes(&path) != 0),
        Command::SystemInit(target) => {
            system_init(layout, &namespace, &target, &invocation.globals)
        }
        Command::Start(target, name) => {
            with_services(layout, &namespace, &target, async |s| {
                match s.start(&name).await {
                    Ok(_) => 0,
                    Err(err) => fail(&err),
                }
            })
        }
        Command::Stop(target, name) => {
            with_services(layout, &namespace, &target, async |s| {
                match s.stop(&name).await {
                    Ok(_) => 0,
                    Err(err) => fail(&err),
                }
            })
        }
        Command::Restart(target, name) => with_services(layout, &namespace, &target, async |s| {
            match s.restart(&name).await {
                Ok(_) => 0,
                Err(err) => fail(&err),
            }
        }),
        Command::Shutdown(target) => {
            supervisor::stop_supervisor(layout);
            with_services(layout, &namespace, &target, async |s| {
                u8::from(!s.shutdown().await.is_empty())
            })
        }
        Command::Ls(target) => with_services(layout, &namespace, &target, async |s| {
            print!("{}", status::format_table(&status::collect(s, None).await));
            0
        }),
        Command::Status(target, name) => with_services(layout, &namespace, &target, async |s| {
            let rows = status::collect(s, Some(&name)).await;
            print!("{}", status::format_detail(&rows));
            u8::from(rows.is_empty())
        }),
        Command::Supervise(target) => with_services(layout, &namespace, &target, async |s| {
            supervisor::supervise(s).await
        }),
    }
}

fn fail(err: &dyn std::error::Error) -> u8 {
    log::error!("{}", describe(err));
    1
}

fn run_phase(layout: &Layout, phase: Phase) -> u8 {
    let cmdline = std::fs::read_to_string(&layout.cmdline).unwrap_or_default();
    let (boot, warnings) = parse_boot_options(&cmdline);
    for warning in warnings {
        log::warn!("{warning}");
    }
    if boot.runc_debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
    let runner = Runner {
        layout,
        runc: find_runc(),
        boot,
        phase,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    u8::from(runner.run(&mut out) != 0)
}

fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Connects to containerd, retrying until `-rpc-timeout` passes: the socket file exists a moment before
/// containerd accepts.
async fn connect(target: &Target) -> Result<Containerd, crate::runtime::RuntimeError> {
    let deadline = tokio::time::Instant::now() + target.rpc_timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match Containerd::connect_with(&target.socket, target.rpc_timeout.min(left)).await {
            Ok(client) => {
                return Ok(client.with_call_timeout(target.rpc_timeout));
            }
            Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn with_services(
    layout: &Layout,
    namespace: &str,
    target: &Target,
    body: impl AsyncFnOnce(&Services<'_, Containerd>) -> u8,
) -> u8 {
    let runtime = match tokio_runtime() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&err),
    };
    runtime.block_on(async {
        let client = match connect(target).await {
            Ok(client) => client,
            Err(err) => return fail(&err),
        };
        let services = Services {
            runtime: &client,
            layout,
            services_dir: target.path.clone(),
            namespace: namespace.to_owned(),
            dump_spec: target.dump_spec.clone(),
            grace: target.timeout,
            lock_timeout: target.rpc_timeout,
        };
        body(&services).await
    })
}

fn system_init(
    layout: &Layout,
    namespace: &str,
    target: &Target,
    globals: &crate::cli::Globals,
) -> u8 {
    let process = match read_containerd_process(&layout.runtime_config) {
        Ok(process) => process,
        Err(err) => return fail(&err),
    };
    let mut child = match spawn_containerd(&target.containerd, &process, &target.socket) {
        Ok(child) => child,
        Err(err) => return fail(&err),
    };
    timeline::record(
        &layout.timeline,
        "containerd-spawn",
        "containerd",
        &[("pid", child.id().into())],
    );
    if let Err(err) = wait_for_socket(
        &mut child,
        &target.socket,
        target.timeout.unwrap_or(DEFAULT_SOCKET_TIMEOUT),
    ) {
        return fail(&err);
    }
    timeline::record(&layout.timeline, "containerd-ready", "containerd", &[]);
    let target = Target {
        timeout: None,
        ..target.clone()
    };
    with_services(layout, namespace, &target, async |services| {
        services.clean_stale().await;
        let failed = start_all(services).await;
        if !failed.is_empty() {
            log::error!("services that failed to start: {}", failed.join(", "));
        }
        0
    });
    supervisor::spawn_supervisor(layout, namespace, &target, globals);
    // LinuxKit's system-init exits 0 whatever happened to individual services.
    0
}
