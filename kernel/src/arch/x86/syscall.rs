//! The SYSCALL entry and the way into user mode.
//!
//! SYSCALL arrives with the user's RSP, RIP in RCX, RFLAGS in R11 and
//! interrupts masked (FMASK). The entry switches to the thread's kernel
//! stack (the per-CPU `kernel_stack_top`), saves a [`SyscallFrame`], and
//! calls the dispatcher with interrupts on. It returns with SYSRET after
//! clearing the argument registers the ABI says are clobbered
//! (rdi, rsi, rdx, r8, r9, r10; rcx and r11 by SYSRET itself).

use super::gdt::{KERNEL_CS, USER_CS, USER_DS};
use super::percpu::{KERNEL_STACK_TOP_OFFSET, USER_RSP_SCRATCH_OFFSET};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::gdt::SegmentSelector;
use x86_64::PrivilegeLevel;

/// What the entry saved, lowest address first (the push order reversed).
#[repr(C)]
#[derive(Debug)]
pub struct SyscallFrame {
    pub r13: u64,
    pub r12: u64,
    pub r9: u64,
    pub r8: u64,
    pub r10: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// The syscall number (RAX at entry); the result replaces it on return.
    pub rax: u64,
    pub rflags: u64,
    pub rip: u64,
    pub rsp: u64,
}

impl SyscallFrame {
    /// Arguments 1 to 8 in the kernel ABI's registers.
    pub fn args(&self) -> [u64; 8] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9, self.r12, self.r13]
    }
}

core::arch::global_asm!(
    r#"
    .section .text.syscall, "ax"
    .global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{scratch}], rsp
    mov rsp, gs:[{stack_top}]
    push qword ptr gs:[{scratch}]
    push rcx
    push r11
    push rax
    push rdi
    push rsi
    push rdx
    push r10
    push r8
    push r9
    push r12
    push r13
    mov rdi, rsp
    sti
    call {dispatch}
    cli
    add rsp, 8 * 8
    pop rax
    pop r11
    pop rcx
    pop rsp
    xor edi, edi
    xor esi, esi
    xor edx, edx
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    swapgs
    sysretq
    "#,
    scratch = const USER_RSP_SCRATCH_OFFSET,
    stack_top = const KERNEL_STACK_TOP_OFFSET,
    dispatch = sym syscall_from_user,
);

extern "C" {
    fn syscall_entry();
}

extern "C" fn syscall_from_user(frame: &mut SyscallFrame) {
    crate::syscall::handle(frame);
}

/// Arms SYSCALL on this CPU: kernel and user selectors, the entry point,
/// and the flags masked on entry (interrupts, direction, trap, alignment
/// check, nested task).
pub fn init_this_cpu() {
    let star = Star::write(
        SegmentSelector::new(USER_CS >> 3, PrivilegeLevel::Ring3),
        SegmentSelector::new(USER_DS >> 3, PrivilegeLevel::Ring3),
        SegmentSelector::new(KERNEL_CS >> 3, PrivilegeLevel::Ring0),
        SegmentSelector::new(super::gdt::KERNEL_DS >> 3, PrivilegeLevel::Ring0),
    );
    if let Err(e) = star {
        panic!("syscall: STAR layout rejected: {e}");
    }
    LStar::write(x86_64::VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK,
    );
    // SAFETY: the STAR/LSTAR/FMASK MSRs were set above, so enabling SYSCALL
    // can only make SYSCALL enter `syscall_entry`.
    unsafe { Efer::update(|efer| efer.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// Drops to user mode at `rip` with stack `rsp`, `rdi = arg1`, `rsi = arg2`,
/// every other register zero and RFLAGS = IF, as Magenta starts threads.
///
/// # Safety
/// Must run on a user thread whose address space is active and whose
/// kernel stack top is in the per-CPU slot and TSS, with nothing on the
/// current kernel stack that is still needed.
pub unsafe fn enter_user(rip: u64, rsp: u64, arg1: u64, arg2: u64) -> ! {
    // SAFETY: per the contract; IRETQ loads the user selectors from the
    // frame built here, and SWAPGS leaves the kernel GS base in
    // KERNEL_GS_BASE for the next entry.
    unsafe {
        core::arch::asm!(
            "cli",
            "push {ss}",
            "push {rsp}",
            "push {rflags}",
            "push {cs}",
            "push {rip}",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "swapgs",
            "iretq",
            ss = in(reg) u64::from(USER_DS),
            rsp = in(reg) rsp,
            rflags = const 0x202u64,
            cs = in(reg) u64::from(USER_CS),
            rip = in(reg) rip,
            in("rdi") arg1,
            in("rsi") arg2,
            options(noreturn),
        )
    }
}

/// Drops the calling user thread to user mode at `rip` with stack `rsp`;
/// an entry point or stack outside the user half kills the process instead
/// (IRETQ to a non-canonical address would fault in the kernel).
pub fn enter_user_checked(rip: u64, rsp: u64, arg1: u64, arg2: u64) -> ! {
    let user = |addr: u64| (crate::vm::USER_BASE..crate::vm::USER_END).contains(&addr);
    let is_user_thread = crate::sched::with_current(|t| t.fpu().is_some() && t.address_space().is_some());
    if !is_user_thread {
        panic!("enter_user_checked on a kernel thread");
    }
    if !user(rip) || !(crate::vm::USER_BASE..=crate::vm::USER_END).contains(&rsp) {
        crate::syscall::fatal_user_exception(13, rip, rsp);
    }
    // SAFETY: the current thread is a user thread: it has an FPU area and
    // an address space, which the scheduler activated when switching to it,
    // and its per-CPU stack slot and TSS point at its own kernel stack,
    // which the caller abandons.
    unsafe { enter_user(rip, rsp, arg1, arg2) }
}
