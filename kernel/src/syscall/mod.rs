//! The syscall layer: from the SYSCALL entry to the objects.
//!
//! [`handle`] checks that the `syscall` instruction was one of the vDSO's
//! (its return address must be one the vDSO layout lists for that number;
//! anything else is `MX_ERR_BAD_SYSCALL`), then decodes the arguments with
//! the generated `mx_abi::dispatch` and runs the matching [`Ctx`] method.
//! Handle arguments are resolved in the contract's order (BAD_HANDLE, then
//! ACCESS_DENIED, then WRONG_TYPE); user memory is only touched through the
//! fault-safe `usercopy` routines.

#![forbid(unsafe_code)]

mod handlers;

use crate::arch::x86::syscall::SyscallFrame;
use crate::arch::x86::usercopy;
use crate::object::process::Process;
use crate::object::thread::{ThreadObject, UserEntry};
use crate::object::{Handle, KernelObject};
use alloc::sync::Arc;
use mx_abi::{HandleArg, HandleOut, Rights, Status};

/// The vDSO layout (return offsets per syscall, constants page), generated
/// from the vDSO the kernel embeds.
#[allow(dead_code, reason = "generated: not every constant is used")]
pub mod vdso_layout {
    include!("../../../build/vdso-layout.rs");
}

/// The calling thread's view of the system during one syscall.
///
/// It owns its references as `Option`s so the calls that never return
/// (`thread_exit`, `process_exit`) can let go of them first: the frames
/// below are abandoned, and what they held would never be released.
pub struct Ctx {
    thread: Option<Arc<ThreadObject>>,
    process: Option<Arc<Process>>,
}

impl Ctx {
    fn new(thread: Arc<ThreadObject>) -> Ctx {
        let process = thread.process.clone();
        Ctx { thread: Some(thread), process: Some(process) }
    }

    fn thread(&self) -> &Arc<ThreadObject> {
        match &self.thread {
            Some(thread) => thread,
            // Only the exit calls release it, and they never come back.
            None => unreachable!("syscall context used after release"),
        }
    }

    fn process(&self) -> &Arc<Process> {
        match &self.process {
            Some(process) => process,
            None => unreachable!("syscall context used after release"),
        }
    }

    /// Drops the references, before a call that never returns.
    fn release(&mut self) {
        self.thread = None;
        self.process = None;
    }

    /// Resolves a handle argument as its declaration says.
    fn object(&self, arg: HandleArg) -> Result<(Arc<dyn KernelObject>, Rights), Status> {
        self.process().handles.get(arg.raw, &arg.spec)
    }

    /// Resolves a handle argument that must name a `T` (its declared rights
    /// checked first, then the type).
    fn typed<T: KernelObject>(&self, arg: HandleArg) -> Result<(Arc<T>, Rights), Status> {
        self.process().handles.get_as::<T>(arg.raw, arg.spec.rights)
    }

    /// Installs `handle` and writes its value to `out`; if the write faults
    /// the handle is closed again and INVALID_ARGS returned.
    fn give(&self, handle: Handle, out: HandleOut) -> Result<(), Status> {
        let value = self.process().handles.add(handle)?;
        if let Err(status) = usercopy::write(out, &value) {
            drop(self.process().handles.remove(value));
            return Err(status);
        }
        Ok(())
    }

    /// As [`Self::give`] for two handles, all or nothing.
    fn give_pair(&self, first: (Handle, HandleOut), second: (Handle, HandleOut)) -> Result<(), Status> {
        let a = self.process().handles.add(first.0)?;
        let b = match self.process().handles.add(second.0) {
            Ok(b) => b,
            Err(status) => {
                drop(self.process().handles.remove(a));
                return Err(status);
            }
        };
        if let Err(status) = usercopy::write(first.1, &a).and_then(|()| usercopy::write(second.1, &b)) {
            drop(self.process().handles.remove(a));
            drop(self.process().handles.remove(b));
            return Err(status);
        }
        Ok(())
    }
}

/// The user thread running on this CPU.
pub fn current_thread() -> Option<Arc<ThreadObject>> {
    crate::sched::with_current(|t| t.owner()).and_then(|owner| owner.downcast::<ThreadObject>().ok())
}

/// Entry from the SYSCALL stub, on the thread's kernel stack with
/// interrupts on.
pub fn handle(frame: &mut SyscallFrame) {
    frame.rax = match current_thread() {
        Some(thread) => {
            let number = frame.rax;
            let base = thread.process.vdso_base();
            let offset = frame.rip.wrapping_sub(base);
            let from_vdso = usize::try_from(number)
                .ok()
                .and_then(|n| vdso_layout::VDSO_SYSRET.get(n))
                .is_some_and(|sites| base != 0 && sites.iter().any(|&site| site as u64 == offset));
            if from_vdso {
                let mut ctx = Ctx::new(thread);
                mx_abi::dispatch::dispatch(&mut ctx, number, &frame.args())
            } else {
                Status::BadSyscall as i32 as i64 as u64
            }
        }
        // Only user threads execute SYSCALL; this is unreachable.
        None => Status::BadSyscall as i32 as i64 as u64,
    };
    // Nothing of this call is held any more: the thread may die here.
    return_to_user();
}

/// Called on every way back to user mode: a thread told to die dies here.
pub fn return_to_user() {
    if crate::sched::with_current(|t| t.is_killed()) {
        exit_current_thread();
    }
}

/// Ends the calling user thread (its kernel thread exits too).
pub fn exit_current_thread() -> ! {
    if let Some(thread) = current_thread() {
        crate::sched::with_current(|t| t.clear_owner());
        thread.exited();
    }
    crate::sched::exit(0)
}

/// The body of a user thread's kernel thread: drops to user mode.
pub fn run_user_thread(thread: Arc<ThreadObject>, entry: UserEntry) {
    // Nothing may stay referenced from this stack frame: it is abandoned
    // when the thread enters user mode.
    drop(thread);
    // SAFETY: this is a user thread (created with FPU state and its
    // process's address space), on its own kernel stack, which holds
    // nothing still needed.
    crate::arch::x86::syscall::enter_user_checked(entry.rip, entry.rsp, entry.arg1, entry.arg2)
}

/// A user-mode exception nobody handles: the process dies (exit code -1),
/// as Magenta does when no exception port is bound.
pub fn fatal_user_exception(vector: u64, rip: u64, addr: u64) -> ! {
    if let Some(thread) = current_thread() {
        let (name, len) = thread.process.name();
        ::log::warn!(
            "process {} ({}): fatal exception {} at rip {rip:#x} (addr {addr:#x}); killing it",
            core::str::from_utf8(&name[..len]).unwrap_or("?"),
            thread.process.koid(),
            crate::arch::x86::trap::exception_name(vector),
        );
        thread.process.exit(-1);
    }
    exit_current_thread()
}
