//! Helpers for the object and IPC cases: threads in the suite's own process
//! ([`spawn`]), and short ways to read a handle's record and signals.

use alloc::string::String;
use core::sync::atomic::{AtomicU32, Ordering};

use mx::sys::*;
use mx::{Handle, Signals, Status, Thread};
use mx_abi::object::{InfoHandleBasic, InfoKernelCounts};
use mx_abi::types::mx_handle_t;

use crate::util::{after, PAST};

/// This process's own handle (`PA_PROC_SELF`), taken from the bootstrap
/// message the first time it is needed and kept for the whole run.
static PROCESS_SELF: AtomicU32 = AtomicU32::new(0);

/// The suite's own process handle (0 if init gave none).
pub fn process_self() -> mx_handle_t {
    let raw = PROCESS_SELF.load(Ordering::Acquire);
    if raw != 0 {
        return raw;
    }
    let taken = mxrt::take_handle(mx_abi::PA_PROC_SELF, 0).map_or(0, Handle::into_raw);
    match PROCESS_SELF.compare_exchange(0, taken, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => taken,
        Err(current) => current,
    }
}

/// A helper thread ([`mxrt::thread`]); dropping it joins it (killing it
/// after a second).
pub struct Spawned<'a>(mxrt::thread::Spawned<'a>);

/// Runs `f(data)` on a new thread of this process.
pub fn spawn<'a, T: Sync>(f: fn(&T), data: &'a T) -> Result<Spawned<'a>, String> {
    // Borrowed: the suite keeps its process handle for the whole run.
    let me = core::mem::ManuallyDrop::new(Handle::from_raw(process_self()));
    mxrt::thread::spawn(&me, "conformance-helper", f, data)
        .map(Spawned)
        .map_err(|(what, s)| alloc::format!("{what}: {s:?}"))
}

impl Spawned<'_> {
    /// The thread's handle.
    pub fn thread(&self) -> &Thread {
        self.0.thread()
    }

    /// Waits up to a second for the thread to end by itself.
    pub fn join(mut self) -> Result<(), String> {
        if self.0.finish(1_000_000_000) {
            Ok(())
        } else {
            Err(String::from("helper thread did not end within 1 s (killed)"))
        }
    }
}

/// Waits (up to a second) until a helper thread is blocked in the kernel,
/// so that what the case does next happens during its wait.
pub fn wait_blocked(spawned: &Spawned<'_>) -> Result<(), String> {
    let deadline = after(1_000_000_000);
    loop {
        let info: mx_abi::object::InfoThread = spawned
            .thread()
            .handle()
            .info(mx_abi::object::InfoTopic::Thread)
            .map_err(|s| alloc::format!("MX_INFO_THREAD: {s:?}"))?;
        if info.state == mx_abi::object::ThreadState::Blocked as u32 {
            return Ok(());
        }
        if mx::time_monotonic() > deadline {
            return Err(String::from("helper thread never blocked"));
        }
        // SAFETY: no pointers.
        unsafe { mx_nanosleep(after(200_000)) };
    }
}

/// `MX_INFO_HANDLE_BASIC` of a raw handle.
pub fn basic(raw: mx_handle_t) -> Result<InfoHandleBasic, String> {
    let mut buf = [0u8; 32];
    let (mut actual, mut avail) = (0usize, 0usize);
    // SAFETY: the buffer and counts are valid.
    let status = unsafe {
        mx_object_get_info(
            raw,
            mx_abi::InfoTopic::HandleBasic as u32,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut actual,
            &mut avail,
        )
    };
    if status != 0 {
        return Err(alloc::format!("MX_INFO_HANDLE_BASIC of {raw:#x}: {:?}", Status::try_from(status)));
    }
    Ok(InfoHandleBasic::from_bytes(&buf))
}

/// The koid of a raw handle's object (0 if the handle is bad).
pub fn koid(raw: mx_handle_t) -> u64 {
    basic(raw).map_or(0, |b| b.koid)
}

/// The rights of a raw handle (0 if the handle is bad).
pub fn rights(raw: mx_handle_t) -> u32 {
    basic(raw).map_or(0, |b| b.rights)
}

/// The object's signals now, read with a wait for nothing that has
/// already timed out.
pub fn signals(raw: mx_handle_t) -> u32 {
    let mut observed = 0;
    // SAFETY: `observed` is valid.
    unsafe { mx_object_wait_one(raw, 0, PAST, &mut observed) };
    observed
}

/// Whether `raw` names a handle of this process (`MX_INFO_HANDLE_VALID`).
pub fn valid(raw: mx_handle_t) -> bool {
    // SAFETY: the topic writes nothing.
    unsafe { mx_object_get_info(raw, 1, core::ptr::null_mut(), 0, core::ptr::null_mut(), core::ptr::null_mut()) == 0 }
}

/// The kernel's counts (fails the case if they cannot be read).
pub fn counts() -> Result<InfoKernelCounts, String> {
    crate::util::kernel_counts().map_err(|s| alloc::format!("MX_INFO_KERNEL_COUNTS: {s:?}"))
}

/// The live objects and handles now.
pub fn objects_and_handles() -> Result<(u64, u64), String> {
    counts().map(|c| (c.objects, c.handles))
}

/// A raw handle that is owned and closed on drop.
pub fn own(raw: mx_handle_t) -> Handle {
    Handle::from_raw(raw)
}

/// Signal constants as raw bits.
pub const LAST: u32 = Signals::LAST_HANDLE.bits();
pub const U0: u32 = Signals::USER_0.bits();
pub const U1: u32 = Signals::USER_1.bits();
pub const SIGNALED: u32 = Signals::SIGNALED.bits();
pub const READABLE: u32 = Signals::READABLE.bits();
pub const WRITABLE: u32 = Signals::WRITABLE.bits();
pub const PEER_CLOSED: u32 = Signals::PEER_CLOSED.bits();
pub const HANDLE_CLOSED: u32 = Signals::HANDLE_CLOSED.bits();
