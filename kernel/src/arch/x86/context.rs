//! Kernel thread context switch.
//!
//! A thread that is not running keeps its callee-saved registers and RFLAGS
//! on its own kernel stack; the thread records only the stack pointer.
//! [`switch`] pushes them, stores RSP, loads the other thread's RSP and pops
//! its registers, so the other thread returns from its own call to `switch`
//! (or, the first time, enters [`thread_trampoline`] through the frame that
//! [`init_stack`] built). RFLAGS travels with the thread so a flag such as
//! AC (set around user copies) cannot leak into another thread.

core::arch::global_asm!(
    r#"
    .text
    .balign 16
    .global context_switch
    // rdi: where to store the old RSP; rsi: the RSP to resume.
context_switch:
    pushfq
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    popfq
    ret

    .balign 16
    .global thread_trampoline
    // First entry of a new thread: r12 holds its entry function. RBP = 0
    // ends backtraces here; RSP is 16-byte aligned before the call.
thread_trampoline:
    xor ebp, ebp
    call r12
    ud2
"#
);

extern "C" {
    fn context_switch(save_rsp: *mut u64, resume_rsp: u64);
    fn thread_trampoline();
}

/// RFLAGS a new thread starts with: interrupts off (the scheduler hands
/// the new thread its lock with interrupts disabled), reserved bit 1 set.
const INITIAL_RFLAGS: u64 = 0x2;
/// Bytes of the frame [`init_stack`] builds: r15, r14, r13, r12, rbx, rbp,
/// rflags, return address.
const INITIAL_FRAME: u64 = 8 * 8;

/// Builds the first frame of a new thread on the stack ending at `top`, so
/// that switching to the returned RSP calls `entry` (which must never return).
///
/// # Safety
/// `[top - 64, top)` must be writable memory of a stack no thread runs on.
pub unsafe fn init_stack(top: u64, entry: extern "C" fn() -> !) -> u64 {
    debug_assert!(top.is_multiple_of(16));
    let rsp = top - INITIAL_FRAME;
    let frame: [u64; 8] = [
        0,                                     // r15
        0,                                     // r14
        0,                                     // r13
        entry as *const () as u64,             // r12: the trampoline calls it
        0,                                     // rbx
        0,                                     // rbp
        INITIAL_RFLAGS,                        // popfq
        thread_trampoline as *const () as u64, // ret
    ];
    // SAFETY: per the contract, the 64 bytes below `top` are writable and
    // unused; `rsp` is 8-byte aligned.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, frame.len()) };
    rsp
}

/// Saves the running context's stack pointer at `save_rsp` and resumes the
/// context whose stack pointer is `resume_rsp`. Returns when something
/// switches back to the saved context.
///
/// # Safety
/// Interrupts must be off. `save_rsp` must stay valid until this returns,
/// and nothing may resume the saved context before the store completes
/// (the scheduler holds its lock across the switch). `resume_rsp` must be
/// an RSP saved by this function (or built by [`init_stack`]) whose context
/// is not running anywhere.
#[inline(never)]
pub unsafe fn switch(save_rsp: *mut u64, resume_rsp: u64) {
    // SAFETY: per the contract; `context_switch` preserves every
    // callee-saved register and RFLAGS for the saved context.
    unsafe { context_switch(save_rsp, resume_rsp) }
}
