//! The command line: vsudd's Go-style single-dash flags, translated for clap, then validated into a
//! [`Config`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{
    Config, Limits, SpecError, check_unique_listeners, parse_forward, parse_inport, parse_syslog,
};
use crate::limits::{
    CONNECT_TIMEOUT, MAX_BUFFER_SIZE, MAX_CONNECTIONS, parse_count, parse_idle_timeout,
    parse_timeout,
};

/// Long flags that Go's `flag` package lets users write with one dash.
const LONG_FLAGS: [&str; 12] = [
    "inport",
    "syslog",
    "pidfile",
    "detach",
    "forward",
    "allow-tcp",
    "max-connections",
    "max-connections-per-rule",
    "buffer-size",
    "connect-timeout",
    "idle-timeout",
    "help",
];

/// Long flags that take no value.
const SWITCHES: [&str; 2] = ["detach", "help"];

/// Forward vsock connections to unix sockets (LinuxKit vsudd compatible) and more.
///
/// Flags may be written with one dash, as in vsudd: `-inport 2374:unix:/run/containerd/containerd.sock`.
#[derive(Debug, Parser)]
#[command(name = "vsock-forwarder", version)]
pub struct Args {
    /// Forward vsock PORT (decimal or Hyper-V GUID) to the unix socket PATH: PORT:unix:PATH (repeatable).
    #[arg(long, value_name = "PORT:unix:PATH")]
    pub inport: Vec<String>,
    /// Forward datagrams from the unixgram PATH to the host (CID 2) vsock PORT, RFC 5425 framed.
    #[arg(long, value_name = "PORT:PATH")]
    pub syslog: Option<String>,
    /// Write the process id to this file.
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
    /// Log to syslog (/dev/log) and point stdin, stdout and stderr at /dev/null; does not fork.
    #[arg(long)]
    pub detach: bool,
    /// Listen on LISTEN and forward each connection to TARGET; endpoints are vsock:CID:PORT (CID "any" to
    /// listen), unix:PATH or tcp:IP:PORT (repeatable).
    #[arg(long, value_name = "LISTEN=TARGET")]
    pub forward: Vec<String>,
    /// Allow -forward targets at this TCP address (repeatable); TCP targets not listed are refused.
    #[arg(long, value_name = "IP:PORT")]
    pub allow_tcp: Vec<SocketAddr>,
    /// Stop accepting while this many connections are being forwarded, over all rules (1 to 1048576).
    #[arg(long, value_name = "N", default_value = "1024")]
    pub max_connections: String,
    /// Stop accepting on one rule while it forwards this many connections (default: -max-connections
    /// divided evenly among the rules).
    #[arg(long, value_name = "N")]
    pub max_connections_per_rule: Option<String>,
    /// Copy buffer per direction of each connection, in bytes (1 to 16777216).
    #[arg(long, value_name = "BYTES", default_value = "32768")]
    pub buffer_size: String,
    /// Keep retrying a target that is not listening yet for this long (0: one attempt; at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub connect_timeout: String,
    /// Close a connection after this long without a byte in either direction (0: never; at most 168h).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub idle_timeout: String,
    /// Log debug messages too.
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Log errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Rewrites Go-style `-flag`/`-flag=value` arguments as `--flag`/`--flag=value`. Flag values, single-letter
/// flags and everything after `--` are left alone; `-detach=true` becomes `--detach`, `-detach=false` is
/// dropped.
pub fn translate_legacy_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut iter = args.into_iter();
    out.extend(iter.next());
    let mut value_next = false;
    while let Some(arg) = iter.next() {
        if value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(iter.by_ref());
            break;
        }
        let body = text.strip_prefix("--").or_else(|| text.strip_prefix('-'));
        let Some(body) = body else {
            out.push(arg);
            continue;
        };
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        if !LONG_FLAGS.contains(&name) {
            out.push(arg);
            continue;
        }
        match (SWITCHES.contains(&name), value) {
            (true, Some("false" | "0" | "f" | "F" | "FALSE" | "False")) => {}
            (true, _) => out.push(format!("--{name}").into()),
            (false, Some(value)) => out.push(format!("--{name}={value}").into()),
            (false, None) => {
                out.push(format!("--{name}").into());
                value_next = true;
            }
        }
    }
    out
}

impl Args {
    /// Parses a command line (`argv[0]` first), Go-style single-dash flags included.
    pub fn try_parse_command_line<I: IntoIterator<Item = OsString>>(
        args: I,
    ) -> Result<Self, clap::Error> {
        Args::try_parse_from(translate_legacy_args(args))
    }
}

impl TryFrom<Args> for Config {
    type Error = SpecError;

    fn try_from(args: Args) -> Result<Self, Self::Error> {
        let mut rules = args
            .inport
            .iter()
            .map(|spec| parse_inport(spec))
            .collect::<Result<Vec<_>, _>>()?;
        for spec in &args.forward {
            rules.push(parse_forward(spec, &args.allow_tcp)?);
        }
        check_unique_listeners(&rules)?;
        let syslog = args.syslog.as_deref().map(parse_syslog).transpose()?;
        let limits = limits(&args)?;
        Ok(Config {
            rules,
            syslog,
            pidfile: args.pidfile,
            detach: args.detach,
            limits,
        })
    }
}

/// The numeric flags, each range-checked.
fn limits(args: &Args) -> Result<Limits, SpecError> {
    let max_connections = parse_count("max-connections", &args.max_connections, MAX_CONNECTIONS)?;
    let max_connections_per_rule = args
        .max_connections_per_rule
        .as_deref()
        .map(|text| parse_count("max-connections-per-rule", text, MAX_CONNECTIONS))
        .transpose()?;
    Ok(Limits {
        max_connections,
        max_connections_per_rule,
        buffer_size: parse_count("buffer-size", &args.buffer_size, MAX_BUFFER_SIZE)?,
        connect_timeout: parse_timeout("connect-timeout", &args.connect_timeout, CONNECT_TIMEOUT)?,
        idle_timeout: parse_idle_timeout(&args.idle_timeout)?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::CommandFactory;

    use super::*;
    use crate::endpoint::Endpoint;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        let args =
            Args::try_parse_from(translate_legacy_args(os(args))).map_err(|e| e.to_string())?;
        Config::try_from(args).map_err(|e| e.to_string())
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn go_style_flags_are_translated() {
        let cases: [(&[&str], &[&str]); 6] = [
            (
                &["vsudd", "-inport", "1:unix:/a"],
                &["vsudd", "--inport", "1:unix:/a"],
            ),
            (
                &["vsudd", "-inport=1:unix:/a", "--detach"],
                &["vsudd", "--inport=1:unix:/a", "--detach"],
            ),
            (
                &["vsudd", "-pidfile", "-inport", "-detach=true"],
                &["vsudd", "--pidfile", "-inport", "--detach"],
            ),
            (&["vsudd", "-detach=false", "-v"], &["vsudd", "-v"]),
            (
                &["vsudd", "-x", "--", "-inport"],
                &["vsudd", "-x", "--", "-inport"],
            ),
            (
                &["vsudd", "-allow-tcp", "1.2.3.4:5", "-help"],
                &["vsudd", "--allow-tcp", "1.2.3.4:5", "--help"],
            ),
        ];
        for (i, (input, expected)) in cases.iter().enumerate() {
            assert_eq!(translate_legacy_args(os(input)), os(expected), "case {i}");
        }
    }

    #[test]
    fn vsudd_command_lines_parse() {
        let config = parse(&[
            "/vsudd",
            "-inport",
            "2374:unix:/run/containerd/containerd.sock",
            "-inport",
            "2376:unix:/var/run/docker.sock",
            "-syslog",
            "514:/run/vsyslog",
            "-pidfile",
            "/run/vsudd.pid",
            "-detach",
        ])
        .unwrap();
        assert_eq!(config.rules.len(), 2);
        assert_eq!(
            config.rules[1].target,
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(config.syslog.map(|s| s.path), Some("/run/vsyslog".into()));
        assert_eq!(config.pidfile, Some("/run/vsudd.pid".into()));
        assert!(config.detach);
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn new_flags_parse() {
        let config = parse(&[
            "vsock-forwarder",
            "-forward",
            "unix:/run/docker.sock=vsock:2:2376",
            "-forward=vsock:any:80=tcp:127.0.0.1:8080",
            "-allow-tcp",
            "127.0.0.1:8080",
            "-max-connections",
            "10",
            "-buffer-size=4096",
            "-connect-timeout",
            "500ms",
            "-max-connections-per-rule",
            "3",
            "-idle-timeout=0",
        ])
        .unwrap();
        assert_eq!(config.rules.len(), 2);
        assert_eq!(config.limits.max_connections, 10);
        assert_eq!(config.limits.buffer_size, 4096);
        assert_eq!(config.limits.connect_timeout, Duration::from_millis(500));
        assert_eq!(config.limits.max_connections_per_rule, Some(3));
        assert_eq!(config.limits.idle_timeout, None);
    }

    #[test]
    fn bad_command_lines_name_the_problem() {
        let cases: [(&[&str], &str); 10] = [
            (&["v", "-inport", "1234"], "Failed to parse: 1234"),
            (
                &["v", "-inport", "1:tcp:/x"],
                "cannot forward incoming port to tcp:/x",
            ),
            (
                &["v", "-max-connections", "0"],
                "flag -max-connections: must be between 1 and 1048576",
            ),
            (
                &["v", "-max-connections", "2305843009213693953"],
                "flag -max-connections: must be between 1 and 1048576",
            ),
            (
                &["v", "-max-connections-per-rule", "1e20"],
                "flag -max-connections-per-rule: not a whole number",
            ),
            (
                &["v", "-buffer-size=-1"],
                "flag -buffer-size: not a whole number",
            ),
            (
                &["v", "-connect-timeout", "5x"],
                "invalid value \"5x\" for flag -connect-timeout",
            ),
            (
                &["v", "-idle-timeout", "NaN"],
                "invalid value \"NaN\" for flag -idle-timeout",
            ),
            (
                &[
                    "v",
                    "-inport",
                    "1:unix:/a",
                    "-forward",
                    "vsock:any:1=unix:/b",
                ],
                "vsock:any:1 is used by two rules",
            ),
            (&["v", "-bogus"], "unexpected argument"),
        ];
        for (i, (args, needle)) in cases.iter().enumerate() {
            let err = parse(args).expect_err("bad command line parsed");
            assert!(err.contains(needle), "case {i}: {err}");
        }
    }
}
