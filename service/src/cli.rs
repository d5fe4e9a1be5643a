//! Command line: LinuxKit's Go-style flags (`-flag`, `--flag`, `-flag=value`, `-flag value`; parsing stops
//! at the first non-flag) and the argv0 personalities.
//!
//! argv0 dispatch uses an exact basename table ([`mode_from_argv0`]) instead of LinuxKit's substring match,
//! so that a binary merely *containing* `containerd` in its path no longer starts system-init.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use durations::Limit;

/// The usage text.
pub const USAGE: &str = "\
USAGE: service [options] COMMAND

Commands:
  system-init   Start containerd and every service in name order
  start NAME    Start a service
  stop NAME     Stop a service (SIGTERM, grace period, SIGKILL)
  restart NAME  Stop (if running) and start a service
  ls            List services with state, pid, exit status, restarts, uptime and logs
  status NAME   Show one service
  shutdown      Stop every service concurrently (used by init at shutdown)
  onboot        Run /containers/onboot with runc
  onshutdown    Run /containers/onshutdown with runc
  volumes       Mount /containers/volumes
  help          Print this text

Options (before COMMAND):
  -containerd-namespace NS  containerd namespace (default services.linuxkit)
  -q                        Quiet: errors only
  -v                        Verbose: debug messages

Command options:
  -sock PATH        containerd socket (default /run/containerd/containerd.sock)
  -path DIR         bundle directory (default /containers/services, /containers/volumes for volumes)
  -containerd PATH  containerd binary for system-init (default /usr/bin/containerd)
  -dump-spec FILE   start/restart: write the final OCI spec to FILE
  -timeout SECS     stop/restart/shutdown: grace period before SIGKILL (default: runtime.json
                    stopGracePeriod, else 10; at most 3600); system-init: containerd socket wait
                    (default 60, at most 3600)
  -rpc-timeout SECS deadline of the connection and of each containerd call, and of the wait for a
                    service's lock (default 30, at most 3600)
";

/// The default containerd namespace.
pub const DEFAULT_NAMESPACE: &str = "services.linuxkit";
/// The default containerd socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";

/// A command line that cannot be run; the caller prints it with [`USAGE`] and exits 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The modes chosen by argv0 when no arguments are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// `005-volumes`, `volumes`.
    Volumes,
    /// `010-onboot`, `onboot`.
    Onboot,
    /// `010-onshutdown`, `onshutdown`.
    Onshutdown,
    /// `020-containerd`, `containerd`: system-init.
    SystemInit,
}

/// Exact basename table: the stock hook symlink names plus LinuxKit's bare names.
pub fn mode_from_argv0(argv0: &str) -> Option<Personality> {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    match base {
        "005-volumes" | "volumes" => Some(Personality::Volumes),
        "010-onboot" | "onboot" => Some(Personality::Onboot),
        "010-onshutdown" | "onshutdown" => Some(Personality::Onshutdown),
        "020-containerd" | "containerd" => Some(Personality::SystemInit),
        _ => None,
    }
}

/// Global options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Globals {
    /// `-q`.
    pub quiet: bool,
    /// `-v`.
    pub verbose: bool,
    /// `-containerd-namespace`.
    pub namespace: String,
}

/// Options shared by the commands that talk to containerd.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `-sock`.
    pub socket: PathBuf,
    /// `-path`.
    pub path: PathBuf,
    /// `-timeout` (meaning depends on the command).
    pub timeout: Option<Duration>,
    /// `-rpc-timeout`: the deadline of each containerd call.
    pub rpc_timeout: Duration,
    /// `-dump-spec`.
    pub dump_spec: Option<PathBuf>,
    /// `-containerd`.
    pub containerd: PathBuf,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `start NAME`.
    Start(Target, String),
    /// `stop NAME`.
    Stop(Target, String),
    /// `restart NAME`.
    Restart(Target, String),
    /// `status NAME`.
    Status(Target, String),
    /// `ls`.
    Ls(Target),
    /// `system-init`.
    SystemInit(Target),
    /// `shutdown`.
    Shutdown(Target),
    /// `supervise` (started by system-init).
    Supervise(Target),
    /// `onboot`.
    Onboot,
    /// `onshutdown`.
    Onshutdown,
    /// `volumes`.
    Volumes(PathBuf),
    /// `help`.
    Help,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Global options.
    pub globals: Globals,
    /// The command.
    pub command: Command,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, UsageError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(UsageError(format!(
            "invalid boolean value {value:?} for -{name}"
        ))),
    }
}

/// Go `flag` parsing: returns the flag values and the remaining arguments. `bools` take no value.
pub fn parse_go_flags(
    args: &[String],
    valued: &[&str],
    bools: &[&str],
) -> Result<(HashMap<String, String>, Vec<String>), UsageError> {
    let mut values = HashMap::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(flag) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|f| !f.is_empty())
        else {
            break;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        if bools.contains(&name) {
            let value = parse_bool(name, inline.as_deref().unwrap_or("true"))?;
            values.insert(name.to_owned(), value.to_string());
        } else if valued.contains(&name) {
            let value = match inline {
                Some(value) => value,
                None => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| UsageError(format!("flag needs an argument: -{name}")))?
                }
            };
            values.insert(name.to_owned(), value);
        } else {
            return Err(UsageError(format!(
                "flag provided but not defined: -{name}"
            )));
        }
        i += 1;
    }
    Ok((values, args.get(i..).unwrap_or_default().to_vec()))
}

/// The largest `-timeout` and `-rpc-timeout` accepted.
pub const MAX_FLAG_TIMEOUT: Duration = Duration::from_secs(3600);

fn seconds(name: &str, value: &str) -> Result<Duration, UsageError> {
    Limit::up_to(MAX_FLAG_TIMEOUT)
        .parse(value)
        .map_err(|e| UsageError(format!("invalid value {value:?} for -{name}: {e}")))
}

fn target(values: &HashMap<String, String>, default_path: &str) -> Result<Target, UsageError> {
    let get = |k: &str, d: &str| PathBuf::from(values.get(k).map(String::as_str).unwrap_or(d));
    Ok(Target {
        socket: get("sock", DEFAULT_SOCKET),
        path: get("path", default_path),
        timeout: values
            .get("timeout")
            .map(|v| seconds("timeout", v))
            .transpose()?,
        rpc_timeout: values
            .get("rpc-timeout")
            .map(|v| seconds("rpc-timeout", v))
            .transpose()?
            .unwrap_or(crate::containerd::DEFAULT_CALL_TIMEOUT),
        dump_spec: values.get("dump-spec").map(PathBuf::from),
        containerd: get("containerd", "/usr/bin/containerd"),
    })
}

const TARGET_FLAGS: &[&str] = &[
    "sock",
    "path",
    "dump-spec",
    "timeout",
    "rpc-timeout",
    "containerd",
];

fn one_name(mut rest: Vec<String>) -> Result<String, UsageError> {
    match (rest.pop(), rest.is_empty()) {
        (Some(name), true) => Ok(name),
        _ => Err(UsageError("Please specify the service".into())),
    }
}

fn parse_command(command: &str, args: &[String]) -> Result<Command, UsageError> {
    let (values, rest) = parse_go_flags(args, TARGET_FLAGS, &[])?;
    let services = "/containers/services";
    let no_args = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(UsageError(format!("unexpected arguments: {rest:?}")))
        }
    };
    match command {
        "start" => Ok(Command::Start(target(&values, services)?, one_name(rest)?)),
        "stop" => Ok(Command::Stop(target(&values, services)?, one_name(rest)?)),
        "restart" => Ok(Command::Restart(
            target(&values, services)?,
            one_name(rest)?,
        )),
        "status" => Ok(Command::Status(target(&values, services)?, one_name(rest)?)),
        "ls" => no_args(Command::Ls(target(&values, services)?)),
        "system-init" => no_args(Command::SystemInit(target(&values, services)?)),
        "shutdown" => no_args(Command::Shutdown(target(&values, services)?)),
        "supervise" => no_args(Command::Supervise(target(&values, services)?)),
        "onboot" => no_args(Command::Onboot),
        "onshutdown" => no_args(Command::Onshutdown),
        "volumes" => no_args(Command::Volumes(
            target(&values, "/containers/volumes")?.path,
        )),
        "help" => Ok(Command::Help),
        other => Err(UsageError(format!("{other:?} is not valid command."))),
    }
}

/// Parses `argv` (including argv0).
pub fn parse_invocation(argv: &[String]) -> Result<Invocation, UsageError> {
    let argv0 = argv.first().map(String::as_str).unwrap_or("service");
    let args = argv.get(1..).unwrap_or_default();
    let (values, rest) = parse_go_flags(args, &["containerd-namespace"], &["q", "v"])?;
    let flag = |k: &str| values.get(k).is_some_and(|v| v == "true");
    let globals = Globals {
        quiet: flag("q"),
        verbose: flag("v"),
        namespace: values
            .get("containerd-namespace")
            .cloned()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
    };
    if globals.quiet && globals.verbose {
        return Err(UsageError(
            "Can't set quiet and verbose flag at the same time".into(),
        ));
    }
    let command = match rest.split_first() {
        Some((command, args)) => parse_command(command, args)?,
        None => match mode_from_argv0(argv0) {
            Some(Personality::Volumes) => Command::Volumes("/containers/volumes".into()),
            Some(Personality::Onboot) => Command::Onboot,
            Some(Personality::Onshutdown) => Command::Onshutdown,
            Some(Personality::SystemInit) => {
                Command::SystemInit(target(&HashMap::new(), "/containers/services")?)
            }
            None => return Err(UsageError("no command given".into())),
        },
    };
    Ok(Invocation { globals, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn argv0_table_is_exact() {
        let cases = [
            ("/etc/init.d/005-volumes", Some(Personality::Volumes)),
            ("/etc/init.d/010-onboot", Some(Personality::Onboot)),
            (
                "/etc/shutdown.d/010-onshutdown",
                Some(Personality::Onshutdown),
            ),
            ("/etc/init.d/020-containerd", Some(Personality::SystemInit)),
            ("onboot", Some(Personality::Onboot)),
            ("containerd", Some(Personality::SystemInit)),
            ("/usr/bin/service", None),
            ("/tmp/containerd-test/service", None),
            ("my-onboot-thing", None),
        ];
        for (i, (argv0, mode)) in cases.into_iter().enumerate() {
            assert_eq!(mode_from_argv0(argv0), mode, "case {i}: {argv0}");
        }
    }

    #[test]
    fn hook_symlinks_pick_their_mode() {
        let inv = parse_invocation(&argv("/etc/init.d/020-containerd")).expect("mode");
        let Command::SystemInit(t) = inv.command else {
            panic!("expected system-init")
        };
        assert_eq!(t.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(t.containerd, PathBuf::from("/usr/bin/containerd"));
        assert_eq!(
            parse_invocation(&argv("/etc/init.d/010-onboot"))
                .expect("onboot")
                .command,
            Command::Onboot
        );
        assert!(parse_invocation(&argv("/usr/bin/service")).is_err());
    }

    #[test]
    fn go_style_flags() {
        let inv = parse_invocation(&argv(
            "service -v --containerd-namespace=x start -sock /s -dump-spec=/d sshd",
        ))
        .expect("valid");
        assert!(inv.globals.verbose);
        assert_eq!(inv.globals.namespace, "x");
        let Command::Start(t, name) = inv.command else {
            panic!("expected start")
        };
        assert_eq!(
            (t.socket, t.dump_spec, t.path, name),
            (
                "/s".into(),
                Some("/d".into()),
                "/containers/services".into(),
                "sshd".into()
            )
        );
    }

    #[test]
    fn usage_errors() {
        let cases = [
            ("service -q -v ls", "quiet and verbose"),
            ("service start", "Please specify the service"),
            ("service start a b", "Please specify the service"),
            ("service start a -sock /x", "Please specify the service"),
            ("service stop -bogus a", "not defined: -bogus"),
            ("service stop -timeout soon a", "-timeout"),
            ("service stop -timeout 1e20 a", "above the maximum"),
            ("service stop -timeout NaN a", "-timeout"),
            ("service stop -timeout -1 a", "negative"),
            ("service stop -timeout 3601 a", "above the maximum"),
            ("service shutdown -rpc-timeout 1e19", "above the maximum"),
            ("service shutdown -rpc-timeout -0.5", "negative"),
            ("service stop -sock", "needs an argument"),
            ("service frobnicate", "is not valid command"),
        ];
        for (i, (line, expected)) in cases.into_iter().enumerate() {
            let err = parse_invocation(&argv(line)).expect_err(line);
            assert!(err.0.contains(expected), "case {i}: {line}: {err}");
        }
    }

    #[test]
    fn stop_timeout_and_help() {
        let inv = parse_invocation(&argv("service stop -timeout 2.5 web")).expect("valid");
        let Command::Stop(t, _) = inv.command else {
            panic!("expected stop")
        };
        assert_eq!(t.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(t.rpc_timeout, crate::containerd::DEFAULT_CALL_TIMEOUT);
        for (line, want) in [
            ("service stop -timeout 0 web", Duration::ZERO),
            ("service stop -timeout 3600 web", MAX_FLAG_TIMEOUT),
            ("service stop -timeout 1m web", Duration::from_secs(60)),
        ] {
            let Command::Stop(t, _) = parse_invocation(&argv(line)).expect(line).command else {
                panic!("expected stop")
            };
            assert_eq!(t.timeout, Some(want), "{line}");
        }
        let Command::Shutdown(t) = parse_invocation(&argv("service shutdown -rpc-timeout 2"))
            .expect("valid")
            .command
        else {
            panic!("expected shutdown")
        };
        assert_eq!(t.rpc_timeout, Duration::from_secs(2));
        assert_eq!(
            parse_invocation(&argv("service help"))
                .expect("help")
                .command,
            Command::Help
        );
    }
}
