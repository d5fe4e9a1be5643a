//! Which consoles get a login session: LinuxKit's `console=` rules, as pure functions.
//!
//! The kernel command line is read, never `/proc/consoles`: two 8250 consoles register only one kernel
//! console, but both should get a login.

/// The speed used when a `console=` value has no options.
pub const DEFAULT_SPEED: &str = "115200";
/// The speed of a virtual terminal (`tty0`..`tty9`), whatever the command line says.
pub const VT_SPEED: &str = "38400";

/// What kind of line a console is, which decides its speed, terminal type and modem control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `ttyS*`, `ttyAMA*`, `ttyUSB*`, `ttyMFD*`: a local line (no modem control), terminal `vt100`.
    Serial,
    /// `tty` plus one character (`tty0`..`tty9`): 38400 baud and no terminal type from the command line.
    VirtualTerminal,
    /// Anything else (`hvc0`, `ttysclp0`, `tty10`, ...): terminal `linux`.
    Other,
}

impl LineKind {
    /// Classifies a device name the way LinuxKit's shell `case` does (first match wins).
    pub fn of(tty: &str) -> LineKind {
        const SERIAL_PREFIXES: [&str; 4] = ["ttyS", "ttyAMA", "ttyUSB", "ttyMFD"];
        if SERIAL_PREFIXES.iter().any(|p| tty.starts_with(p)) {
            LineKind::Serial
        } else if tty
            .strip_prefix("tty")
            .is_some_and(|rest| rest.chars().count() == 1)
        {
            LineKind::VirtualTerminal
        } else {
            LineKind::Other
        }
    }

    /// The terminal type exported as `TERM`. A virtual terminal gets none from LinuxKit, so it gets
    /// agetty's default for a virtual console, `linux`.
    pub fn term(self) -> &'static str {
        match self {
            LineKind::Serial => "vt100",
            LineKind::VirtualTerminal | LineKind::Other => "linux",
        }
    }

    /// Whether the line ignores modem control lines (agetty `-L`).
    pub fn is_local(self) -> bool {
        self == LineKind::Serial
    }
}

/// One console that gets a login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// The device name under `/dev` (`ttyS0`, `hvc0`, `pts/3`).
    pub tty: String,
    /// The speed as written after the first comma (`115200n8`), or the default.
    pub speed: String,
    /// The line kind that decided speed and terminal type.
    pub kind: LineKind,
}

impl Console {
    /// The baud rate to set: the leading digits of the first speed in the list (agetty reads
    /// `115200n8` as 115200), or `None` when there are none.
    pub fn baud(&self) -> Option<u32> {
        parse_baud(&self.speed)
    }
}

/// Reads a baud rate from a speed option: leading digits of its first comma-separated item.
pub fn parse_baud(speed: &str) -> Option<u32> {
    let first = speed.split(',').next().unwrap_or("");
    let digits: &str = &first[..first
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(first.len())];
    digits.parse().ok()
}

/// What to do with one `console=` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start a session on this console.
    Start(Console),
    /// The same device came earlier on the command line.
    Duplicate(String),
    /// `/dev/<tty>` is missing or not a character device.
    NotCharDevice(String),
}

impl Decision {
    /// LinuxKit's message for a skipped console, `None` for one that starts.
    pub fn skip_message(&self) -> Option<String> {
        match self {
            Decision::Start(_) => None,
            Decision::Duplicate(tty) => Some(format!(
                "already processed tty for {tty}, not starting twice"
            )),
            Decision::NotCharDevice(tty) => Some(format!(
                "cmdline has console={tty} but /dev/{tty} is not a character device; not starting getty for {tty}"
            )),
        }
    }
}

/// The values of every `console=` token on a kernel command line, in order.
pub fn console_values(cmdline: &str) -> Vec<&str> {
    cmdline
        .split_whitespace()
        .filter_map(|t| t.strip_prefix("console="))
        .collect()
}

/// Splits a `console=` value into device and speed: the device is everything before the **last**
/// comma, the speed everything after the **first** (LinuxKit's `${v%,*}` and `${v#*,}`).
pub fn split_value(value: &str) -> (&str, &str) {
    match (value.rfind(','), value.find(',')) {
        (Some(last), Some(first)) => (&value[..last], &value[first + 1..]),
        _ => (value, DEFAULT_SPEED),
    }
}

/// Applies LinuxKit's rules to a kernel command line. `is_char_device` answers for a device name
/// whether `/dev/<name>` is a character device.
pub fn plan(cmdline: &str, is_char_device: impl Fn(&str) -> bool) -> Vec<Decision> {
    let mut seen: Vec<&str> = Vec::new();
    let mut decisions = Vec::new();
    for value in console_values(cmdline) {
        let (tty, speed) = split_value(value);
        if seen.contains(&tty) {
            decisions.push(Decision::Duplicate(tty.to_string()));
            continue;
        }
        seen.push(tty);
        if !is_char_device(tty) {
            decisions.push(Decision::NotCharDevice(tty.to_string()));
            continue;
        }
        let kind = LineKind::of(tty);
        let speed = if kind == LineKind::VirtualTerminal {
            VT_SPEED
        } else {
            speed
        };
        decisions.push(Decision::Start(Console {
            tty: tty.to_string(),
            speed: speed.to_string(),
            kind,
        }));
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_exist(_: &str) -> bool {
        true
    }

    fn started(cmdline: &str) -> Vec<(String, String, LineKind)> {
        plan(cmdline, all_exist)
            .into_iter()
            .filter_map(|d| match d {
                Decision::Start(c) => Some((c.tty, c.speed, c.kind)),
                _ => None,
            })
            .collect()
    }

    type Expected = &'static [(&'static str, &'static str, LineKind)];

    #[test]
    fn linuxkit_examples() {
        use LineKind::*;
        let cases: &[(&str, Expected)] = &[
            ("console=ttyS0", &[("ttyS0", "115200", Serial)]),
            (
                "console=tty0 console=ttyS0",
                &[
                    ("tty0", "38400", VirtualTerminal),
                    ("ttyS0", "115200", Serial),
                ],
            ),
            ("console=ttyS0,115200n8", &[("ttyS0", "115200n8", Serial)]),
            ("console=ttyS1,9600", &[("ttyS1", "9600", Serial)]),
            ("console=tty1,115200", &[("tty1", "38400", VirtualTerminal)]),
            ("console=hvc0", &[("hvc0", "115200", Other)]),
            ("console=ttyAMA0", &[("ttyAMA0", "115200", Serial)]),
            ("console=ttyUSB0,57600", &[("ttyUSB0", "57600", Serial)]),
            ("console=ttyMFD2", &[("ttyMFD2", "115200", Serial)]),
            ("console=ttysclp0", &[("ttysclp0", "115200", Other)]),
            ("console=tty10", &[("tty10", "115200", Other)]),
            ("root=/dev/sda quiet", &[]),
            (
                "console=ttyS0 console=hvc0 console=ttyS1 panic=-1",
                &[
                    ("ttyS0", "115200", Serial),
                    ("hvc0", "115200", Other),
                    ("ttyS1", "115200", Serial),
                ],
            ),
        ];
        for (cmdline, want) in cases {
            let want: Vec<_> = want
                .iter()
                .map(|(t, s, k)| (t.to_string(), s.to_string(), *k))
                .collect();
            assert_eq!(started(cmdline), want, "cmdline {cmdline:?}");
        }
    }

    #[test]
    fn device_is_before_last_comma_and_speed_after_first() {
        let cases = [
            ("ttyS0", ("ttyS0", "115200")),
            ("ttyS0,115200n8", ("ttyS0", "115200n8")),
            (
                "uart8250,io,0x3f8,115200",
                ("uart8250,io,0x3f8", "io,0x3f8,115200"),
            ),
            ("ttyS0,", ("ttyS0", "")),
            ("", ("", "115200")),
        ];
        for (value, want) in cases {
            assert_eq!(split_value(value), want, "value {value:?}");
        }
    }

    #[test]
    fn duplicates_and_missing_devices_are_skipped_with_linuxkit_messages() {
        let decisions = plan(
            "console=ttyS0 console=ttyS0,9600 console=ttyS9 console=ttyS9",
            |t| t != "ttyS9",
        );
        assert_eq!(decisions.len(), 4);
        assert!(
            matches!(&decisions[0], Decision::Start(c) if c.tty == "ttyS0" && c.speed == "115200")
        );
        assert_eq!(
            decisions[1].skip_message().as_deref(),
            Some("already processed tty for ttyS0, not starting twice")
        );
        assert_eq!(
            decisions[2].skip_message().as_deref(),
            Some(
                "cmdline has console=ttyS9 but /dev/ttyS9 is not a character device; not starting getty for ttyS9"
            )
        );
        // A device is remembered before the character-device check, as in LinuxKit.
        assert_eq!(decisions[3], Decision::Duplicate("ttyS9".into()));
    }

    #[test]
    fn line_kinds_give_terms_and_local_mode() {
        let cases = [
            ("ttyS0", "vt100", true),
            ("ttyAMA1", "vt100", true),
            ("tty0", "linux", false),
            ("tty9", "linux", false),
            ("tty10", "linux", false),
            ("hvc0", "linux", false),
            ("pts/3", "linux", false),
        ];
        for (tty, term, local) in cases {
            let kind = LineKind::of(tty);
            assert_eq!((kind.term(), kind.is_local()), (term, local), "tty {tty}");
        }
    }

    #[test]
    fn baud_is_the_leading_number_of_the_first_speed() {
        let cases = [
            ("115200", Some(115200)),
            ("115200n8", Some(115200)),
            ("38400,9600", Some(38400)),
            ("io,0x3f8,115200", None),
            ("", None),
            ("99999999999999999999", None),
        ];
        for (speed, want) in cases {
            assert_eq!(parse_baud(speed), want, "speed {speed:?}");
        }
    }
}
