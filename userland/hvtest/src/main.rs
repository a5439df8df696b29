//! The hypervisor conformance suite (`etc/hvtest.rc`).
//!
//! Every documented error of `mx_guest_create`, `mx_guest_set_trap`,
//! `mx_vcpu_create`, `mx_vcpu_resume`, `mx_vcpu_interrupt`,
//! `mx_vcpu_read_state` and `mx_vcpu_write_state` in check order, the trap
//! rules of `specs/README.md` (decisions 2-5), synchronous IO and MEM exits,
//! interrupts (HLT wake-up from another thread, priority, NMI), state round
//! trips, FPU/SSE preservation, several guests and VCPUs on threads, guest
//! and thread teardown, and asynchronous trap delivery through ports.
//!
//! One line per case (`ok`, `FAIL`, `skip`), then `hypervisor: N passed, M
//! failed` (and `, K skipped` when some cases could not run: no SVM). The exit code is the number of
//! failures. Guests are snippets of GNU assembly in [`guests`] copied to
//! guest-physical 0x10000 of a 2 MiB guest with identity page tables
//! ([`machine`]). `filter=TEXT` runs only the cases whose names contain TEXT.

#![no_std]
#![no_main]
// Cases call the raw vDSO functions, often with deliberately bad pointers.
#![allow(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod harness;
#[allow(dead_code, reason = "helpers shared by cases; not every module uses all")]
mod machine;

mod behaviour;
mod errors;
mod guests;
mod isolation;
mod mappings;
mod system;
mod threads;
mod traps;

mxrt::entry!(main);

fn main() -> i32 {
    machine::take_grants();
    let filter = mxrt::args().iter().find_map(|a| a.strip_prefix("filter=").map(alloc::string::String::from));
    let groups: &[&[harness::Case]] = &[
        errors::CASES,
        behaviour::CASES,
        threads::CASES,
        system::CASES,
        traps::CASES,
        mappings::CASES,
        isolation::CASES,
    ];
    let failed = harness::run(groups, filter.as_deref().unwrap_or(""));
    failed.min(100) as i32
}
