//! The syscall conformance suite.
//!
//! Every implemented `mx_*` call gets cases for its success paths and for
//! each documented error, in check order: handles lacking exactly the right
//! needed (ACCESS_DENIED) and of the wrong type (WRONG_TYPE), bad pointers,
//! options, and cases across processes. One line per case, then
//! `syscalls: N passed, M failed`; the exit code is the number of failures.
//!
//! init runs it from the boot filesystem with the root resource, job, vDSO
//! and boot filesystem (userland/README.md), and checks afterwards that the
//! kernel's object, handle and memory counts came back to where they were.
//! An argument `filter=TEXT` runs only the cases whose names contain TEXT.

#![no_std]
#![no_main]
// Cases call the raw vDSO functions, often with deliberately bad pointers
// (the kernel must refuse them); a SAFETY note on each would say only that.
#![allow(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod harness;
#[allow(dead_code, reason = "helpers shared by cases; not every module uses all")]
mod util;

mod handle;

// Memory, tasks and hostile input; `child` runs the child roles (`role=...`).
mod child;
mod fixture;
mod hostile;
mod process;
mod regress;
mod thread;
mod vmar;
mod vmo;

// Objects and IPC; `support` holds their helpers (threads in this process).
mod channel;
mod event;
mod log;
mod object;
mod port;
mod resource;
#[allow(dead_code, reason = "helpers shared by cases; not every module uses all")]
mod support;
mod time;
mod timer;

mxrt::entry!(main);

fn main() -> i32 {
    // Launched by the suite itself as a child with `role=NAME` (see child.rs).
    if let Some(code) = child::run_role() {
        return code;
    }
    util::take_root_resource();
    child::take_grants();
    let filter = mxrt::args().iter().find_map(|a| a.strip_prefix("filter=").map(alloc::string::String::from));
    let groups: &[&[harness::Case]] = &[
        handle::CASES,
        vmo::CASES,
        vmar::CASES,
        process::CASES,
        thread::CASES,
        hostile::CASES,
        object::CASES,
        event::CASES,
        channel::CASES,
        port::CASES,
        timer::CASES,
        time::CASES,
        log::CASES,
        resource::CASES,
        regress::CASES,
    ];
    let failed = harness::run(groups, filter.as_deref().unwrap_or(""));
    failed.min(100) as i32
}
