//! The `/sbin/modprobe` personality: enough of kmod's command line for the kernel's `request_module`
//! (`modprobe -q -- fs-overlay`) and for LinuxKit's cold plug (`modprobe -abq ALIAS...`).

/// A parsed modprobe command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModprobeArgs {
    /// `-q`: say nothing about modules that are not found.
    pub quiet: bool,
    /// `-a`: every argument is a module; otherwise the first is and the rest are its parameters.
    pub all: bool,
    /// `-n`: only print what would be loaded.
    pub dry_run: bool,
    /// `-v`: print each module as it is loaded.
    pub verbose: bool,
    /// Module names or aliases.
    pub names: Vec<String>,
    /// Parameters for the module (without `-a`).
    pub params: Vec<String>,
}

/// An unsupported or malformed modprobe command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModprobeError {
    /// An option this modprobe does not implement (for example `-r`).
    #[error("unsupported option {0:?}")]
    Unsupported(String),
    /// No module named.
    #[error("no module name given")]
    NoModule,
}

fn short_flag(args: &mut ModprobeArgs, c: char) -> Result<(), ModprobeError> {
    match c {
        'q' => args.quiet = true,
        'a' => args.all = true,
        'n' => args.dry_run = true,
        'v' => args.verbose = true,
        // -b (blacklist) and -s (syslog): accepted, no effect: there is no modprobe.d.
        'b' | 's' => {}
        other => return Err(ModprobeError::Unsupported(format!("-{other}"))),
    }
    Ok(())
}

fn long_flag(args: &mut ModprobeArgs, flag: &str) -> Result<(), ModprobeError> {
    match flag {
        "--quiet" => short_flag(args, 'q'),
        "--all" => short_flag(args, 'a'),
        "--dry-run" | "--show" => short_flag(args, 'n'),
        "--verbose" => short_flag(args, 'v'),
        "--use-blacklist" | "--syslog" => Ok(()),
        other => Err(ModprobeError::Unsupported(other.to_string())),
    }
}

/// Parses the arguments after argv0.
pub fn parse_args(argv: &[String]) -> Result<ModprobeArgs, ModprobeError> {
    let mut args = ModprobeArgs::default();
    let mut words = Vec::new();
    let mut options_done = false;
    for arg in argv {
        if options_done || !arg.starts_with('-') || arg == "-" {
            words.push(arg.clone());
        } else if arg == "--" {
            options_done = true;
        } else if arg.starts_with("--") {
            long_flag(&mut args, arg)?;
        } else {
            for c in arg.chars().skip(1) {
                short_flag(&mut args, c)?;
            }
        }
    }
    if args.all {
        args.names = words;
    } else {
        let mut rest = words.into_iter();
        args.names.extend(rest.next());
        args.params = rest.collect();
    }
    if args.names.is_empty() {
        return Err(ModprobeError::NoModule);
    }
    Ok(args)
}

/// Runs modprobe with the arguments after argv0; returns the exit status (0: every module loaded).
pub fn run(sys: &dyn crate::sys::Sys, argv: &[String], lib_modules: &std::path::Path) -> u8 {
    let args = match parse_args(argv) {
        Ok(a) => a,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = super::modules_dir(lib_modules, &release);
    let index = match super::read_index(&dir) {
        Ok(i) => i,
        Err(e) => {
            log::error!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            return 1;
        }
    };
    let loaded =
        super::loaded_modules(&std::fs::read_to_string("/proc/modules").unwrap_or_default());
    let mut loader = super::Loader::new(sys, &dir, &index, loaded);
    let mut status = 0;
    for name in &args.names {
        let modules = index.resolve(name);
        if modules.is_empty() {
            if !args.quiet {
                log::error!("module {name} not found in {}", dir.display());
            }
            status = 1;
            continue;
        }
        if args.dry_run || args.verbose {
            for entry in index.load_order(&modules) {
                log::info!("insmod {}", dir.join(&entry.path).display());
            }
        }
        if args.dry_run {
            continue;
        }
        for e in loader.load(&modules, &args.params.join(" ")) {
            log::error!("{e}: {}", e.source);
            status = 1;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn command_lines() {
        let ok = |names: &[&str], params: &[&str], quiet, all| ModprobeArgs {
            quiet,
            all,
            names: names.iter().map(|s| s.to_string()).collect(),
            params: params.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let cases = [
            (
                "-q -- fs-overlay",
                Ok(ok(&["fs-overlay"], &[], true, false)),
            ),
            (
                "-abq pci:v1 virtio:d1",
                Ok(ok(&["pci:v1", "virtio:d1"], &[], true, true)),
            ),
            (
                "loop max_loop=8",
                Ok(ok(&["loop"], &["max_loop=8"], false, false)),
            ),
            ("-- -weird", Ok(ok(&["-weird"], &[], false, false))),
            ("--quiet --all a b", Ok(ok(&["a", "b"], &[], true, true))),
            ("-r loop", Err(ModprobeError::Unsupported("-r".into()))),
            (
                "--remove loop",
                Err(ModprobeError::Unsupported("--remove".into())),
            ),
            ("-q", Err(ModprobeError::NoModule)),
            ("", Err(ModprobeError::NoModule)),
        ];
        for (i, (input, want)) in cases.iter().enumerate() {
            assert_eq!(&parse_args(&args(input)), want, "case {i}: {input:?}");
        }
    }
}
