//! What ends the system: the three `reboot(2)` actions and the signals busybox init maps to them.

use nix::sys::signal::Signal;

/// How the machine stops at the end of shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// `RB_POWER_OFF`.
    Poweroff,
    /// `RB_AUTOBOOT`.
    Reboot,
    /// `RB_HALT_SYSTEM`.
    Halt,
}

impl PowerAction {
    /// busybox init's mapping: SIGUSR2 → poweroff, SIGTERM → reboot, SIGUSR1 → halt; SIGINT (Ctrl-Alt-Del,
    /// inittab `ctrlaltdel:rc.shutdown reboot`) → reboot. SIGPWR (a power failure or the kernel's tiny
    /// ACPI power button) → poweroff. Other signals request nothing.
    pub fn from_signal(signal: Signal) -> Option<PowerAction> {
        match signal {
            Signal::SIGUSR2 | Signal::SIGPWR => Some(PowerAction::Poweroff),
            Signal::SIGTERM | Signal::SIGINT => Some(PowerAction::Reboot),
            Signal::SIGUSR1 => Some(PowerAction::Halt),
            _ => None,
        }
    }

    /// The console progress line's verb: `init: powering off`.
    pub fn progress(self) -> &'static str {
        match self {
            PowerAction::Poweroff => "powering off",
            PowerAction::Reboot => "rebooting",
            PowerAction::Halt => "halting",
        }
    }

    /// The action's name as a word (`poweroff`, `reboot`, `halt`).
    pub fn name(self) -> &'static str {
        match self {
            PowerAction::Poweroff => "poweroff",
            PowerAction::Reboot => "reboot",
            PowerAction::Halt => "halt",
        }
    }
}

/// The signals PID 1 handles: the power requests above plus SIGCHLD for reaping.
pub const HANDLED_SIGNALS: [Signal; 6] = [
    Signal::SIGCHLD,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGPWR,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_signal_mapping() {
        let cases = [
            (Signal::SIGUSR2, Some(PowerAction::Poweroff)),
            (Signal::SIGPWR, Some(PowerAction::Poweroff)),
            (Signal::SIGTERM, Some(PowerAction::Reboot)),
            (Signal::SIGINT, Some(PowerAction::Reboot)),
            (Signal::SIGUSR1, Some(PowerAction::Halt)),
            (Signal::SIGCHLD, None),
            (Signal::SIGHUP, None),
        ];
        for (i, (sig, want)) in cases.iter().enumerate() {
            assert_eq!(PowerAction::from_signal(*sig), *want, "case {i}: {sig}");
        }
    }
}
