//! Standard descriptors for PID 1 before Rust's runtime starts.
//!
//! Rust's start-up code reopens closed descriptors 0–2 on `/dev/null` before `main`, and aborts the process
//! when `/dev/null` cannot be opened. A kernel that starts init with no `/dev/console` (a disk root without
//! `/dev`, say) hands PID 1 no descriptors at all, and such a root usually has no `/dev/null` either: PID 1
//! would die before its first line of code, and the kernel would panic.
//!
//! A constructor in `.init_array` runs before that start-up code. In PID 1 only, it opens each closed
//! descriptor 0–2 on `/dev/console`, or, when that is missing too, on `/` read-only: a placeholder that keeps
//! the runtime from aborting. [`crate::console::ensure_stdio`] replaces placeholders with the console once
//! `/dev` is mounted.

/// The constructor, kept by `#[used]` and run by the C library before `main`.
#[used]
// SAFETY: `.init_array` holds pointers to `extern "C" fn()` constructors, which is what this is; it takes no
// arguments (musl passes none, glibc's extra arguments are ignored by the C calling convention).
#[unsafe(link_section = ".init_array")]
static EARLY_STDIO: extern "C" fn() = open_missing_stdio;

/// Makes sure the constructor's object file is linked into the binary: an unreferenced object of a library
/// is left out by the linker, constructor and all. `main` calls this.
pub fn keep() {
    std::hint::black_box(&EARLY_STDIO);
}

extern "C" fn open_missing_stdio() {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        return;
    }
    for fd in 0..=2 {
        // SAFETY: F_GETFD only reads the descriptor table; an unused number yields EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        let opened = open_placeholder();
        if opened < 0 || opened == fd {
            continue;
        }
        // SAFETY: `opened` is a descriptor this function just opened and owns; dup2 puts a copy on the
        // closed number `fd` (without close-on-exec) and close drops the original.
        unsafe {
            libc::dup2(opened, fd);
            libc::close(opened);
        }
    }
}

/// `/dev/console` read-write, else `/` read-only; -1 when neither opens. Plain libc: the runtime is not set
/// up yet, so nothing here allocates.
fn open_placeholder() -> libc::c_int {
    // SAFETY: the path is a NUL-terminated literal; open has no other preconditions.
    let console = unsafe { libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if console >= 0 {
        return console;
    }
    // SAFETY: as above.
    unsafe { libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) }
}
