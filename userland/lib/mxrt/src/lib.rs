//! `mxrt`: the runtime of Rust programs on magnetar.
//!
//! A program is `#![no_std] #![no_main]`, depends on `mxrt`, names its main
//! function with [`entry!`] and links with the userspace linker script (a
//! three-line `build.rs`, see `userland/hello`):
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! mxrt::entry!(main);
//! fn main() -> i32 {
//!     mxrt::println!("hello");
//!     0
//! }
//! ```
//!
//! What happens before `main` ([`start`]): `_start` aligns the stack and calls
//! in with `rdi` = the bootstrap channel and `rsi` = the vDSO base; the vDSO is
//! resolved (a process without one traps: it could not even exit); the
//! bootstrap message is read ([`startup`]); the heap starts on the root VMAR
//! ([`heap`]); `println!` finds a log ([`log`]). `main`'s result (an `i32`,
//! `()`, or a `Result` whose error is printed) becomes the exit code through
//! `mx_process_exit`. A panic prints and exits with [`PANIC_EXIT_CODE`].

#![no_std]

extern crate alloc;

pub mod heap;
pub mod log;
pub mod startup;
pub mod thread;

pub use startup::{args, environ, take_handle, vmar_root};

/// Exit code of a process whose main panicked.
pub const PANIC_EXIT_CODE: i32 = 101;

/// What `main` may return: converted to the process exit code.
pub trait Termination {
    /// The exit code.
    fn report(self) -> i32;
}

impl Termination for () {
    fn report(self) -> i32 {
        0
    }
}

impl Termination for i32 {
    fn report(self) -> i32 {
        self
    }
}

impl<T: Termination, E: core::fmt::Debug> Termination for Result<T, E> {
    fn report(self) -> i32 {
        match self {
            Ok(v) => v.report(),
            Err(e) => {
                eprintln!("error: {e:?}");
                1
            }
        }
    }
}

/// Declares the program's main function and its `_start`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        // The process entry: rdi = bootstrap channel, rsi = vDSO base. The
        // stack is realigned whatever the loader did; the frame chain ends here.
        ::core::arch::global_asm!(
            ".globl _start",
            ".type _start,@function",
            "_start:",
            "xor %ebp, %ebp",
            "and $-16, %rsp",
            "call {start}",
            "ud2",
            start = sym __mxrt_start,
            options(att_syntax)
        );

        extern "C" fn __mxrt_start(bootstrap: u32, vdso: usize) -> ! {
            $crate::start(bootstrap, vdso, || $crate::Termination::report($main()))
        }
    };
}

/// The runtime's part of `_start`: sets everything up, runs `main`, exits
/// with its code. Called by the code [`entry!`] generates.
pub fn start(bootstrap: u32, vdso: usize, main: impl FnOnce() -> i32) -> ! {
    // SAFETY: the loader passes the base of the vDSO it mapped in rsi
    // (contract §2.6); nothing else runs yet.
    if unsafe { mx::vdso::resolve(vdso) }.is_err() {
        // Without the vDSO there is no way to print or even exit.
        mx::vdso::unresolved();
    }
    startup::init(mx::Handle::from_raw(bootstrap));
    let code = main();
    log::flush();
    mx::exit(code)
}

/// Prints to the process log (see [`log`]).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::log::print(format_args!($($arg)*)) };
}

/// Prints a line to the process log (see [`log`]).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::log::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints a line to the process log (there is one output stream).
#[macro_export]
macro_rules! eprintln {
    ($($arg:tt)*) => { $crate::println!($($arg)*) };
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    log::emergency(format_args!("panic: {info}\n"));
    mx::exit(PANIC_EXIT_CODE)
}

/// A spin lock for the runtime's globals (a process may have threads).
pub(crate) struct Lock<T> {
    locked: core::sync::atomic::AtomicBool,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by `locked`.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    pub(crate) const fn new(value: T) -> Self {
        Lock { locked: core::sync::atomic::AtomicBool::new(false), value: core::cell::UnsafeCell::new(value) }
    }

    /// Runs `f` with the value locked; `None` if it is locked already and `wait` is false.
    pub(crate) fn with<R>(&self, wait: bool, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        use core::sync::atomic::Ordering;
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            if !wait {
                return None;
            }
            core::hint::spin_loop();
        }
        // SAFETY: the flag is ours until the store below, so this is the only reference.
        let r = f(unsafe { &mut *self.value.get() });
        self.locked.store(false, Ordering::Release);
        Some(r)
    }
}
