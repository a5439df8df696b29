//! Interrupt and exception entry: the IDT, the assembly stubs that build a
//! [`TrapFrame`], and the dispatcher.
//!
//! Every one of the 256 vectors has a 16-byte stub that pushes a uniform
//! error code and the vector number. NMI, #DF and #MC run on IST stacks and
//! may interrupt the kernel at any instruction (even between `swapgs` and the
//! next one), so their common path decides whether to `swapgs` by looking at
//! the GS base itself rather than at the interrupted CS.

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};
use core::sync::atomic::{AtomicUsize, Ordering};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::{PrivilegeLevel, VirtAddr};

/// Registers saved on every trap, in stack order (lowest address first).
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    pub fn is_user_mode(&self) -> bool {
        self.cs & 3 == 3
    }
}

// Vectors whose exceptions push an error code (bit n set for vector n).
const ERROR_CODE_VECTORS: u32 = (1 << 8)
    | (1 << 10)
    | (1 << 11)
    | (1 << 12)
    | (1 << 13)
    | (1 << 14)
    | (1 << 17)
    | (1 << 21)
    | (1 << 29)
    | (1 << 30);

core::arch::global_asm!(
    r#"
    .section .text.trap, "ax"
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vec, 0
    .rept 256
        .balign 16
        .if vec < 32
            .if ((({errmask}) >> vec) & 1) == 0
                push 0
            .endif
        .else
            push 0
        .endif
        push vec
        .if (vec == 2) || (vec == 8) || (vec == 18)
            jmp trap_paranoid
        .else
            jmp trap_common
        .endif
        .set vec, vec + 1
    .endr

    .macro SAVE_REGS
        push rax
        push rbx
        push rcx
        push rdx
        push rsi
        push rdi
        push rbp
        push r8
        push r9
        push r10
        push r11
        push r12
        push r13
        push r14
        push r15
    .endm
    .macro RESTORE_REGS
        pop r15
        pop r14
        pop r13
        pop r12
        pop r11
        pop r10
        pop r9
        pop r8
        pop rbp
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        pop rbx
        pop rax
    .endm

    // Stack on entry: vector, error code, RIP, CS, RFLAGS, RSP, SS.
trap_common:
    test byte ptr [rsp + 24], 3
    jz 1f
    swapgs
1:
    SAVE_REGS
    cld
    mov rdi, rsp
    call {dispatch}
    RESTORE_REGS
    test byte ptr [rsp + 24], 3
    jz 2f
    swapgs
2:
    add rsp, 16
    iretq

trap_paranoid:
    SAVE_REGS
    cld
    // A kernel GS base is a higher-half address: if the current one is not,
    // we interrupted code running with the user's GS and must swap.
    mov ecx, 0xc0000101
    rdmsr
    xor ebx, ebx
    test edx, edx
    js 3f
    swapgs
    mov ebx, 1
3:
    mov rdi, rsp
    call {dispatch}
    test ebx, ebx
    jz 4f
    swapgs
4:
    RESTORE_REGS
    add rsp, 16
    iretq
    "#,
    errmask = const ERROR_CODE_VECTORS,
    dispatch = sym trap_dispatch,
);

extern "C" {
    static trap_stubs: [u8; 256 * 16];
}

/// A handler for a vector at or above 32. It must acknowledge the interrupt
/// controller itself.
pub type IrqHandler = fn(&mut TrapFrame);

static IRQ_HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Installs `handler` for `vector` (32..=255). Returns false if it is taken.
pub fn register_irq(vector: u8, handler: IrqHandler) -> bool {
    debug_assert!(vector >= 32);
    IRQ_HANDLERS[usize::from(vector)].compare_exchange(0, handler as usize, Ordering::AcqRel, Ordering::Acquire).is_ok()
}

static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

fn build_idt() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    let base = core::ptr::addr_of!(trap_stubs) as u64;
    let stub = |vector: u64| VirtAddr::new(base + vector * 16);
    // SAFETY: every stub is a valid interrupt entry point that ends in
    // `iretq` and preserves all registers.
    unsafe {
        idt.divide_error.set_handler_addr(stub(0));
        idt.debug.set_handler_addr(stub(1));
        idt.non_maskable_interrupt.set_handler_addr(stub(2)).set_stack_index(IST_NMI - 1);
        idt.breakpoint.set_handler_addr(stub(3)).set_privilege_level(PrivilegeLevel::Ring3);
        idt.overflow.set_handler_addr(stub(4));
        idt.bound_range_exceeded.set_handler_addr(stub(5));
        idt.invalid_opcode.set_handler_addr(stub(6));
        idt.device_not_available.set_handler_addr(stub(7));
        idt.double_fault.set_handler_addr(stub(8)).set_stack_index(IST_DOUBLE_FAULT - 1);
        idt.invalid_tss.set_handler_addr(stub(10));
        idt.segment_not_present.set_handler_addr(stub(11));
        idt.stack_segment_fault.set_handler_addr(stub(12));
        idt.general_protection_fault.set_handler_addr(stub(13));
        idt.page_fault.set_handler_addr(stub(14));
        idt.x87_floating_point.set_handler_addr(stub(16));
        idt.alignment_check.set_handler_addr(stub(17));
        idt.machine_check.set_handler_addr(stub(18)).set_stack_index(IST_MACHINE_CHECK - 1);
        idt.simd_floating_point.set_handler_addr(stub(19));
        idt.virtualization.set_handler_addr(stub(20));
        idt.cp_protection_exception.set_handler_addr(stub(21));
        idt.hv_injection_exception.set_handler_addr(stub(28));
        idt.vmm_communication_exception.set_handler_addr(stub(29));
        idt.security_exception.set_handler_addr(stub(30));
        for vector in 32..=255u8 {
            idt[vector].set_handler_addr(stub(u64::from(vector)));
        }
    }
    idt
}

/// Loads the shared IDT on the calling CPU.
pub fn load_idt() {
    IDT.call_once(build_idt).load();
}

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack-segment fault",
    "#GP general protection",
    "#PF page fault",
    "reserved (15)",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved (31)",
];

/// Name of an exception vector, for diagnostics.
pub fn exception_name(vector: u64) -> &'static str {
    EXCEPTION_NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

/// Hook for NMIs (the panic path uses them to stop CPUs).
static NMI_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the function every NMI calls first.
pub fn set_nmi_hook(hook: fn(&mut TrapFrame)) {
    NMI_HOOK.store(hook as usize, Ordering::Release);
}

/// What the layers above do about user mode: `returning` runs before every
/// return to user mode from an interrupt (a thread told to die dies there);
/// `fatal` takes an exception user mode cannot survive (vector, rip, fault
/// address) and never returns.
pub struct UserHooks {
    pub returning: fn(),
    pub fatal: fn(u64, u64, u64) -> !,
}

static USER_HOOKS: spin::Once<UserHooks> = spin::Once::new();

/// Installs the user-mode hooks (once, at boot).
pub fn set_user_hooks(hooks: UserHooks) {
    USER_HOOKS.call_once(|| hooks);
}

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector;
    if vector >= 32 {
        dispatch_irq(frame);
        if frame.is_user_mode() {
            if let Some(hooks) = USER_HOOKS.get() {
                (hooks.returning)();
            }
        }
        return;
    }
    if vector == 2 {
        let hook = NMI_HOOK.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: only `set_nmi_hook` stores non-zero values, and it
            // stores `fn(&mut TrapFrame)` pointers.
            let hook: fn(&mut TrapFrame) = unsafe { core::mem::transmute::<usize, fn(&mut TrapFrame)>(hook) };
            hook(frame);
            return;
        }
    }
    if vector == 14 && page_fault(frame) {
        return;
    }
    if frame.is_user_mode() {
        if let Some(hooks) = USER_HOOKS.get() {
            let addr = if vector == 14 { read_cr2() } else { 0 };
            (hooks.fatal)(vector, frame.rip, addr);
        }
    }
    // A kernel fault is a bug.
    crate::panic::fatal_trap(frame);
}

fn dispatch_irq(frame: &mut TrapFrame) {
    let vector = frame.vector;
    let handler = IRQ_HANDLERS[vector as usize].load(Ordering::Acquire);
    if handler != 0 {
        // SAFETY: only `register_irq` stores non-zero values, and it stores
        // `IrqHandler` function pointers.
        let handler: IrqHandler = unsafe { core::mem::transmute::<usize, IrqHandler>(handler) };
        handler(frame);
    } else {
        log::warn!("trap: spurious vector {vector} at rip {:#x}", frame.rip);
        super::apic_eoi_if_needed(vector);
    }
}

/// Routes a page fault on a user address, from user mode or from a
/// user-copy routine, to the VM. Returns true if the faulting code can
/// resume: the page was faulted in, or a user copy failed and resumes at
/// its fixup. Anything else (a kernel fault elsewhere, an unresolved
/// user-mode fault, until processes exist to take it) is fatal.
fn page_fault(frame: &mut TrapFrame) -> bool {
    let addr = read_cr2();
    let from_user = frame.is_user_mode();
    let fixup = if from_user { None } else { super::usercopy::fixup_for(frame.rip) };
    if !from_user && fixup.is_none() {
        return false;
    }
    super::usercopy::clac_if_smap();
    match crate::vm::handle_page_fault(addr, frame.error_code, from_user) {
        Ok(()) => true,
        Err(fault) => match fixup {
            Some(fixup) => {
                frame.rip = fixup;
                true
            }
            None => {
                log::error!("trap: unresolved user page fault at {addr:#x}, rip {:#x}: {fault:?}", frame.rip);
                false
            }
        },
    }
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn read_cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}
