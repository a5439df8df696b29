//! The syscall fuzzer (`bin/fuzz`, issue "Reliability").
//!
//! The parent ([`parent`]) runs rounds: each round launches a few worker
//! processes (this binary again, `role=worker`), each with several threads
//! that call every syscall of `mx_abi::SYSCALLS` through the vDSO function
//! table (`mx::sys::SLOTS`) with arguments from [`gen`]: handles of every
//! object type with random rights, stale and forged handle values, bad
//! pointers and lengths, random options, short deadlines. Every return value
//! must be a status the table documents for that call ([`check`]). At the
//! end of a round the workers are killed and the kernel's counts
//! (`MX_INFO_KERNEL_COUNTS`) must come back to what they were before it.
//!
//! Parameters (arguments or environment strings; init passes the kernel
//! command line's words): `fuzz.seed=N` (default 1), `fuzz.iters=N` total
//! calls (default 100000), `fuzz.round=N` calls per round (default 4000),
//! `fuzz.workers=N` processes per round (2), `fuzz.threads=N` threads per
//! worker (3), `fuzz.first=R` first round (to replay one), `fuzz.rounds=N`,
//! `fuzz.trace=1` (print every call before making it). With `fault_inject=`
//! on the command line, NO_MEMORY is accepted from every call.
//!
//! With `fuzz.mode=guest` it is the guest fuzzer instead ([`guest`]: random
//! guest code against random traps, `guest-fuzz: PASS ...`); with
//! `fuzz.mode=hyperv` the Hyper-V fuzzer ([`hyperv`]: a root client of the
//! personality server issuing random hypercalls, its children's guests
//! too, `hyperv-fuzz: PASS ...`).
//!
//! The last line is `fuzz: PASS ...` or `fuzz: FAIL ...`; the exit code is
//! 0 or 1. A failure prints the seed, round, worker and thread and the exact
//! call: number, name and arguments.

#![no_std]
#![no_main]
// The fuzzer calls raw vDSO functions with deliberately bad arguments (the
// kernel must refuse them); a SAFETY note on each would say only that.
#![allow(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod check;
mod config;
mod gen;
mod guest;
mod guestmodel;
mod hyperv;
mod parent;
mod pool;
mod rng;
mod shared;
mod worker;

mxrt::entry!(main);

fn main() -> i32 {
    let cfg = config::Config::load();
    if cfg.guest {
        guest::run(&cfg)
    } else if cfg.hyperv {
        hyperv::run(&cfg)
    } else if cfg.worker {
        worker::run(&cfg)
    } else {
        parent::run(&cfg)
    }
}
