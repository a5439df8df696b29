//! Scoped helper threads: [`spawn`] runs `f(data)` on a new thread of this
//! process, on a stack of its own, and the returned [`Spawned`] borrows
//! `data` until the thread is gone (dropping it waits a second for the
//! thread, then kills it).

use core::marker::PhantomData;
use mx::{Handle, Signals, Status, Thread, Vmar, Vmo};
use mx_abi::VmFlags;

/// Each helper's stack.
pub const STACK_SIZE: usize = 64 * 1024;

/// A running helper thread and its stack.
pub struct Spawned<'a> {
    thread: Option<Thread>,
    vmar: Vmar,
    stack: usize,
    _data: PhantomData<&'a ()>,
}

extern "C" fn trampoline<T: Sync>(f: usize, data: usize) -> ! {
    // SAFETY: `spawn` passes a `fn(&T)` and a `&T` that outlives the thread
    // (the `Spawned` borrowing it ends the thread before it goes).
    unsafe {
        let f: fn(&T) = core::mem::transmute::<usize, fn(&T)>(f);
        f(&*(data as *const T));
        mx::sys::mx_thread_exit()
    }
}

/// Runs `f(data)` on a new thread named `name` of `process` (this process's
/// own handle), on a [`STACK_SIZE`] stack mapped in the root VMAR. The
/// error names the step that failed.
pub fn spawn<'a, T: Sync>(
    process: &Handle,
    name: &str,
    f: fn(&T),
    data: &'a T,
) -> Result<Spawned<'a>, (&'static str, Status)> {
    let vmar = crate::vmar_root().ok_or(("root VMAR", Status::BadState))?;
    let vmo = Vmo::create(STACK_SIZE as u64).map_err(|s| ("stack VMO", s))?;
    let stack =
        vmar.map(0, &vmo, 0, STACK_SIZE, VmFlags::PERM_READ | VmFlags::PERM_WRITE).map_err(|s| ("stack map", s))?;
    drop(vmo);
    let mut spawned = Spawned { thread: None, vmar, stack, _data: PhantomData };
    let mut raw = 0;
    // SAFETY: the name and the out-pointer are valid for the call.
    let status =
        unsafe { mx::sys::mx_thread_create(process.raw(), name.as_ptr().cast(), name.len() as u32, 0, &mut raw) };
    mx::ok(status).map_err(|s| ("mx_thread_create", s))?;
    let thread = Thread::from_handle(Handle::from_raw(raw));
    // The entry sees the stack as a call would leave it: rsp + 8 16-aligned.
    let top = stack + STACK_SIZE - 8;
    let entry = trampoline::<T> as extern "C" fn(usize, usize) -> ! as usize;
    let start = thread.start(entry, top, f as usize, data as *const T as usize);
    spawned.thread = Some(thread);
    start.map_err(|s| ("mx_thread_start", s))?;
    Ok(spawned)
}

impl Spawned<'_> {
    /// The thread.
    pub fn thread(&self) -> &Thread {
        self.thread.as_ref().expect("a Spawned has its thread until it finishes")
    }

    /// Kills the thread (it ends; [`Spawned::finish`] still waits for it).
    pub fn kill(&self) -> Result<(), Status> {
        // SAFETY: no pointers.
        mx::ok(unsafe { mx::sys::mx_task_kill(self.thread().raw()) }).map(drop)
    }

    /// Waits until `timeout_ns` from now for the thread to end, kills it if
    /// it has not, and unmaps its stack. Whether it ended by itself.
    pub fn finish(&mut self, timeout_ns: u64) -> bool {
        let Some(thread) = self.thread.take() else { return true };
        let ended = thread.handle().wait_one(Signals::THREAD_TERMINATED, mx::deadline_after(timeout_ns)).is_ok();
        if !ended {
            // SAFETY: no pointers.
            let _ = unsafe { mx::sys::mx_task_kill(thread.raw()) };
            let _ = thread.handle().wait_one(Signals::THREAD_TERMINATED, u64::MAX);
        }
        // SAFETY: the thread is gone; nothing uses its stack any more.
        let _ = unsafe { self.vmar.unmap(self.stack, STACK_SIZE) };
        ended
    }
}

impl Drop for Spawned<'_> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.finish(1_000_000_000);
        } else {
            // A failed start: only the stack to release.
            // SAFETY: no thread ever ran on it.
            let _ = unsafe { self.vmar.unmap(self.stack, STACK_SIZE) };
        }
    }
}
