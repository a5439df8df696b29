//! Leak checks: `MX_INFO_KERNEL_COUNTS` read before and after a piece of
//! work must agree (init after each program, the fuzzers after each round).

use alloc::format;
use alloc::string::String;
use mx_abi::object::{InfoKernelCounts, InfoTaskStats, InfoTopic, INFO_KERNEL_COUNTS};

use crate::{Handle, Result};

/// The kernel's counts (`resource` must carry the grant), with the memory of
/// the processes in `exclude` taken out of the committed pages: the
/// checker's own heap, or a long-running service's, may grow meanwhile, and
/// that is not a leak of the work being checked. A process that has exited
/// has no memory left to take out.
pub fn read(resource: &Handle, exclude: &[&Handle]) -> Result<InfoKernelCounts> {
    let mut counts: InfoKernelCounts = resource.info_raw(INFO_KERNEL_COUNTS)?;
    for process in exclude {
        if let Ok(stats) = process.info::<InfoTaskStats>(InfoTopic::TaskStats) {
            let pages = (stats.mem_private_bytes + stats.mem_shared_bytes) / crate::PAGE_SIZE as u64;
            counts.committed_pages = counts.committed_pages.saturating_sub(pages);
        }
    }
    Ok(counts)
}

/// [`read`], once two reads 5 ms apart agree (or `timeout_ns` has passed):
/// a baseline must not include what the kernel is still freeing in the
/// background (an exited thread's stack, a retired address space, an
/// object whose last handle just closed), or the check after the work
/// would find fewer objects than before and call it a leak.
pub fn read_settled(resource: &Handle, exclude: &[&Handle], timeout_ns: u64) -> Result<InfoKernelCounts> {
    let key = |c: &InfoKernelCounts| (c.objects, c.handles, c.vmos, c.committed_pages, c.processes, c.threads);
    let deadline = crate::deadline_after(timeout_ns);
    let mut last = read(resource, exclude)?;
    loop {
        let _ = crate::nanosleep(crate::deadline_after(5_000_000));
        let now = read(resource, exclude)?;
        if key(&now) == key(&last) || crate::time_monotonic() >= deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// Waits up to `timeout_ns` for the counts that must not leak (objects,
/// handles, VMOs, committed pages, processes, threads) to come back to
/// `before`: the kernel frees exited threads' stacks and retired address
/// spaces in the background. The error says which moved, and how.
pub fn settle(
    resource: &Handle,
    exclude: &[&Handle],
    before: &InfoKernelCounts,
    timeout_ns: u64,
) -> core::result::Result<(), String> {
    let key = |c: &InfoKernelCounts| (c.objects, c.handles, c.vmos, c.committed_pages, c.processes, c.threads);
    let deadline = crate::deadline_after(timeout_ns);
    loop {
        let now = read(resource, exclude).map_err(|s| format!("cannot read the counts: {s}"))?;
        if key(&now) == key(before) {
            return Ok(());
        }
        if crate::time_monotonic() >= deadline {
            return Err(format!(
                "objects {} -> {}, handles {} -> {}, vmos {} -> {}, committed pages {} -> {}, processes {} -> {}, threads {} -> {}",
                before.objects, now.objects, before.handles, now.handles, before.vmos, now.vmos,
                before.committed_pages, now.committed_pages, before.processes, now.processes, before.threads, now.threads
            ));
        }
        let _ = crate::nanosleep(crate::deadline_after(10_000_000));
    }
}
