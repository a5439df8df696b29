//! hello: prints a greeting, its arguments and a heap-built line, then exits 0.
//! For tests: an argument `exit=N` makes it exit with N, `panic` makes it panic.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

mxrt::entry!(main);

fn main() -> i32 {
    mxrt::println!("hello from Rust on magnetar");
    let args = mxrt::args();
    mxrt::println!("hello: {} argument(s): {:?}", args.len(), args);
    let squares: Vec<u32> = (1..=5).map(|n| n * n).collect();
    mxrt::println!("hello: squares {squares:?}, {} CPU(s)", cpus());
    if args.iter().any(|a| a == "panic") {
        panic!("hello was asked to panic");
    }
    args.iter().find_map(|a| a.strip_prefix("exit=")?.parse().ok()).unwrap_or(0)
}

fn cpus() -> u32 {
    // SAFETY: no pointers.
    unsafe { mx::sys::mx_system_get_num_cpus() }
}
