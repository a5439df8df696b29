//! The conformance suite of the Hyper-V personality server (`etc/hyperv.rc`).
//!
//! A root partition (a `+hyperv` client of `bin/hyperv-server`) checks every
//! hypercall of the design (`userland/hyperv-server/README.md`) against the
//! status tables of `shared/specs/hyperv-reference.md` §3.1 and the three
//! `hv-*.txt` pages: the exact `HV_STATUS` and the exact effect (pool
//! balances, states, register values, message and event-flag bytes).
//!
//! Groups:
//! - [`common`]: the input value, rep fields, the fast flag, and where
//!   input and output blocks lie (decision 9).
//! - [`partitions`]: create, initialize, finalize, delete, properties, ids,
//!   enumeration, and which calls each state permits.
//! - [`pools`]: deposit, withdraw, balance, refused pages, and
//!   INSUFFICIENT_MEMORY exactly at each object's page cost.
//! - [`gpa`]: MapGpaPages / UnmapGpaPages.
//! - [`vps`]: CreateVp, DeleteVp, Get/SetVpRegisters, suspension.
//! - [`intercepts`]: HvInstallIntercept, and the I/O, MSR, CPUID and
//!   exception intercept messages with the VP held until InterceptSuspend
//!   is cleared.
//! - [`ports`]: ports, connections, HvPostMessage (16 buffers per port)
//!   and HvSignalEvent, root to child.
//! - [`guest`]: the guest side: the Hyper-V CPUID leaves, the
//!   GUEST_OS_ID / HYPERCALL MSRs, slow and fast hypercalls from a child
//!   VP through the hypercall page, privileges, the depth limit, and
//!   messages and events from a child to the root's SynIC.
//! - [`e2e`]: the scenario of the issue, start to end.
//! - [`hostile`]: garbage input values, huge counts, bad ids and pointers;
//!   the server answers with the TLFS status and keeps serving.
//!
//! Guests run [`script`]'s interpreter: the root writes a list of
//! operations (hypercall, WRMSR, RDMSR, CPUID, OUT, IN, UD2, wait for a
//! flag) into the guest's mailbox page and reads the results back from the
//! same shared memory.
//!
//! One line per case (`ok NAME` or `FAIL NAME: why`), then exactly
//! `hyperv: N passed, M failed`; the exit code is the number of failures
//! (capped at 100). `filter=TEXT` runs the cases whose names contain TEXT.

#![no_std]
#![no_main]

extern crate alloc;

mod ctx;
mod harness;
mod mem;
mod script;
mod vm;

mod common;
mod e2e;
mod gpa;
mod guest;
mod hostile;
mod intercepts;
mod partitions;
mod pools;
mod ports;
mod vps;

use hv::client::Root;

mxrt::entry!(main);

fn main() -> i32 {
    let root = match Root::connect() {
        Ok(root) => root,
        Err(e) => {
            mxrt::println!("FAIL connect: {e:?} (the manifest line needs +hyperv and a running server)");
            mxrt::println!("hyperv: 0 passed, 1 failed");
            return 1;
        }
    };
    let ctx = match ctx::Ctx::new(root) {
        Ok(ctx) => ctx,
        Err(e) => {
            mxrt::println!("FAIL setup: {e}");
            mxrt::println!("hyperv: 0 passed, 1 failed");
            return 1;
        }
    };
    let filter = mxrt::args().iter().find_map(|a| a.strip_prefix("filter=").map(alloc::string::String::from));
    let groups: &[&[harness::Case]] = &[
        common::CASES,
        partitions::CASES,
        pools::CASES,
        gpa::CASES,
        vps::CASES,
        intercepts::CASES,
        ports::CASES,
        guest::CASES,
        e2e::CASES,
        hostile::CASES,
    ];
    let (passed, failed) = harness::run(&ctx, groups, filter.as_deref().unwrap_or(""));
    mxrt::println!("hyperv: {passed} passed, {failed} failed");
    failed.min(100) as i32
}
