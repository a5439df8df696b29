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
