//! `init`: PID 1, `/sbin/modprobe` or `/sbin/usermode-helper` depending on how it is run (see the library).

use std::path::Path;
use std::process::ExitCode;

use init::layout::Layout;
use init::personality::{self, Personality};
use init::sys::{self, RealSys};
use init::{boot, modules, panic_hook, timeline_svg, usermode_helper};

fn main() -> ExitCode {
    sys::early_stdio::keep();
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let exec_path = sys::exec_path().map(|p| p.to_string_lossy().into_owned());
    let pid = nix::unistd::getpid().as_raw();
    match personality::choose(&argv, exec_path.as_deref(), pid) {
        Personality::Init => {
            panic_hook::install();
            logging::init("init", logging::Verbosity::Normal);
            boot::run(
                &RealSys,
                Layout::with_overrides(|name| std::env::var(name).ok()),
            )
        }
        Personality::Modprobe => {
            logging::init("modprobe", logging::Verbosity::Normal);
            let args = argv.get(1..).unwrap_or_default();
            // GUESTKIT_LIB_MODULES points tests at a module tree; the kernel's environment never sets it.
            let lib_modules =
                std::env::var_os("GUESTKIT_LIB_MODULES").unwrap_or_else(|| "/lib/modules".into());
            ExitCode::from(modules::modprobe::run(
                &RealSys,
                args,
                Path::new(&lib_modules),
            ))
        }
        Personality::UsermodeHelper => ExitCode::from(usermode_helper::run(&argv)),
        Personality::TimelineSvg => timeline_svg(argv.get(2)),
        Personality::Usage => {
            eprint!("{}", personality::USAGE);
            ExitCode::from(2)
        }
    }
}

fn timeline_svg(path: Option<&String>) -> ExitCode {
    let Some(path) = path else {
        eprint!("{}", personality::USAGE);
        return ExitCode::from(2);
    };
    match timeline_svg::render_file(Path::new(path)) {
        Ok(svg) => {
            use std::io::Write;
            match std::io::stdout().lock().write_all(svg.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("writing the SVG: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("reading {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
