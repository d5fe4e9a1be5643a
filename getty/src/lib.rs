//! A console getty for guestkit images, compatible with LinuxKit's `pkg/getty`.
//!
//! It reads the `console=` tokens of the kernel command line, starts one login session per console and
//! respawns each session when it ends. The pure rules (which consoles, which speed and terminal type,
//! which ttys are secure, how passwords are checked) live in their own modules; the syscalls are in
//! [`sys`] (all `unsafe`), [`tty`], [`shell`], [`session`] and [`supervisor`].

pub mod accounts;
pub mod console;
pub mod crypt;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod issue;
pub mod login;
pub mod securetty;
pub mod session;
pub mod shell;
pub mod startup;
pub mod supervisor;
pub mod sys;
pub mod tty;
