//! Helpers shared by the cases.

use mx::{Handle, Rights};
use mx_abi::types::mx_handle_t;

/// A deadline `ns` from now.
pub fn after(ns: u64) -> u64 {
    // SAFETY: no pointers.
    unsafe { mx::sys::mx_deadline_after(ns) }
}

/// A deadline already in the past.
pub const PAST: u64 = 1;

/// A handle value that is certainly not in this process's table (even,
/// hence never a valid handle value).
pub const NOT_A_HANDLE: mx_handle_t = 0x7ffe_0002;

/// An address in the kernel half.
pub const KERNEL_ADDR: usize = 0xffff_ffff_8020_0000;

/// A user address with nothing mapped (below the user base).
pub const UNMAPPED_ADDR: usize = 0x1000;

/// A duplicate of `handle` with exactly `rights` (fails the case otherwise).
pub fn with_rights(handle: &Handle, rights: Rights) -> Result<Handle, alloc::string::String> {
    handle.duplicate(rights).map_err(|s| alloc::format!("duplicate with {rights:?}: {s:?}"))
}

/// The root resource's handle value (taken from the bootstrap message at
/// startup and kept for the whole run), or 0.
static ROOT_RESOURCE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Takes the root resource init hands the suite (`PA_RESOURCE`).
pub fn take_root_resource() {
    if let Some(root) = mxrt::take_handle(mx_abi::PA_RESOURCE, 0) {
        ROOT_RESOURCE.store(root.into_raw(), core::sync::atomic::Ordering::Release);
    }
}

/// The root resource's handle value (0 if init gave none).
pub fn root_resource() -> mx_handle_t {
    ROOT_RESOURCE.load(core::sync::atomic::Ordering::Acquire)
}

/// `MX_INFO_KERNEL_COUNTS` from the root resource.
pub fn kernel_counts() -> mx::Result<mx_abi::object::InfoKernelCounts> {
    let mut record = [0u8; 64];
    let (mut actual, mut avail) = (0usize, 0usize);
    // SAFETY: the buffer and counts are valid for their sizes.
    mx::ok(unsafe {
        mx::sys::mx_object_get_info(
            root_resource(),
            mx_abi::object::INFO_KERNEL_COUNTS,
            record.as_mut_ptr().cast(),
            record.len(),
            &mut actual,
            &mut avail,
        )
    })?;
    Ok(mx_abi::object::InfoKernelCounts::from_bytes(&record))
}
