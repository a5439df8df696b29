//! The record a worker keeps of each thread's current call, in a VMO the
//! parent also holds: after a hang (the parent's watchdog) or a worker that
//! died, the parent reads what every thread was doing.

use mx_abi::SYSCALLS;

/// u64 words per thread slot.
pub const SLOT_WORDS: usize = 16;
/// Most threads per worker.
pub const MAX_THREADS: usize = 8;
/// Bytes of the VMO.
pub const SIZE: usize = SLOT_WORDS * MAX_THREADS * 8;

/// Word offsets in a slot.
pub const SEQ: usize = 0; // the call's number in the thread's sequence
pub const CALL: usize = 1; // index in SYSCALLS + 1 (0: none yet)
pub const ARGS: usize = 2; // 8 arguments
pub const STATE: usize = 10; // 1: in the call, 2: returned, 3: thread finished
pub const RET: usize = 11; // the raw return value

pub const IN_CALL: u64 = 1;
pub const RETURNED: u64 = 2;
pub const FINISHED: u64 = 3;

/// Formats one call: `mx_name (#num)(arg=value, ...)`.
pub fn describe(index: usize, args: &[u64; 8]) -> alloc::string::String {
    use core::fmt::Write;
    let mut out = alloc::string::String::new();
    let Some(decl) = SYSCALLS.get(index) else {
        let _ = write!(out, "syscall index {index}?");
        return out;
    };
    let num = decl.num.map_or_else(|| alloc::string::String::from("vdso"), |n| alloc::format!("#{n}"));
    let _ = write!(out, "mx_{} ({num})(", decl.name);
    for (i, arg) in decl.args.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{}={:#x}", arg.name, args[i]);
    }
    out.push(')');
    out
}
