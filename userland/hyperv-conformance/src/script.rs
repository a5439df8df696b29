//! The one guest program: a tiny interpreter of a script of operations the
//! root writes into the guest's mailbox page before it starts the VP.
//!
//! Guest-physical layout (one contiguous run of root pages mapped at GPA 0;
//! the VP starts in long mode with CR3 = 0, so the PML4 sits at GPA 0 and
//! only RIP and RSP need setting):
//!
//! | GPA | what |
//! |---|---|
//! | 0x0000 | PML4 (entry 0 → PDPT) |
//! | 0x1000 | PDPT (entry 0 → PD) |
//! | 0x2000 | PD: 2 MiB identity pages over the first GiB |
//! | 0x4000 | the hypercall page (the server writes `VMMCALL; RET` there) |
//! | 0x5000 | mailbox: +0 done (0xD0E when the script ended), +8 op count, +0x10 ops completed, ops from +0x100 (64 bytes each) |
//! | 0x6000 | input page for the guest's slow hypercalls |
//! | 0x7000 | output page for the guest's slow hypercalls |
//! | 0x8000 | stack (RSP = 0x9000) |
//! | 0x9000 | SIM page (when the script enables the SynIC) |
//! | 0xA000 | SIEF page |
//! | 0x10000 | this code |
//!
//! An op is `{code, a, b, c, r0, r1, r2, r3}` (u64s); the interpreter runs
//! them in order, writing results to r0..r3, then marks done and halts with
//! interrupts off forever (no IDT: the scripts avoid unintercepted faults).

use alloc::vec::Vec;

pub const PML4: u64 = 0x0000;
pub const HYPERCALL_PAGE: u64 = 0x4000;
pub const MAILBOX: u64 = 0x5000;
pub const INPUT: u64 = 0x6000;
pub const OUTPUT: u64 = 0x7000;
pub const STACK_TOP: u64 = 0x9000;
pub const SIM: u64 = 0x9000;
pub const SIEF: u64 = 0xA000;
pub const CODE: u64 = 0x10000;
/// Pages mapped at GPA 0 for a scripted guest.
pub const PAGES: u64 = 0x11;
/// Where the ops start in the mailbox, and their size.
pub const OPS: u64 = MAILBOX + 0x100;
pub const OP_SIZE: u64 = 64;
pub const MAX_OPS: usize = ((0x1000 - 0x100) / OP_SIZE) as usize;
/// The mailbox's done word once the script has ended.
pub const DONE: u64 = 0xd0e;

core::arch::global_asm!(
    r#"
    .pushsection .rodata.hyperv_guest, "a"
    .globl hvc_guest, hvc_guest_end
hvc_guest:
        mov     $0x5000, %r14d          # r14: the mailbox
        lea     0x100(%r14), %rsi       # rsi: the current op
        mov     8(%r14), %r15           # r15: ops left
1:      test    %r15, %r15
        jz      9f
        mov     (%rsi), %eax
        mov     8(%rsi), %rcx           # a
        mov     16(%rsi), %rdx          # b
        mov     24(%rsi), %r8           # c
        cmp     $1, %eax
        je      10f
        cmp     $2, %eax
        je      20f
        cmp     $3, %eax
        je      30f
        cmp     $4, %eax
        je      40f
        cmp     $5, %eax
        je      50f
        cmp     $6, %eax
        je      60f
        cmp     $7, %eax
        je      70f
        cmp     $8, %eax
        je      80f
        cmp     $9, %eax
        je      90f
        cmp     $10, %eax
        je      100f
        cmp     $11, %eax
        je      110f
        cmp     $12, %eax
        je      120f
        jmp     9f                      # unknown op: stop
    # 1 HYPERCALL: rcx control, rdx input (GPA or fast qword), r8 output.
10:     mov     $0x4000, %eax
        call    *%rax
        mov     %rax, 32(%rsi)
        jmp     2f
    # 2 WRMSR a <- b.
20:     mov     %rdx, %rax
        shr     $32, %rdx
        wrmsr
        jmp     2f
    # 3 RDMSR a -> r0.
30:     rdmsr
        shl     $32, %rdx
        mov     %eax, %eax
        or      %rdx, %rax
        mov     %rax, 32(%rsi)
        jmp     2f
    # 4 CPUID leaf a, subleaf b -> r0..r3 = eax, ebx, ecx, edx.
40:     mov     %rcx, %rax
        mov     %rdx, %rcx
        cpuid
        mov     %rax, 32(%rsi)
        mov     %rbx, 40(%rsi)
        mov     %rcx, 48(%rsi)
        mov     %rdx, 56(%rsi)
        jmp     2f
    # 5 OUT (4 bytes) of b to port a; r0 = 1 once past it.
50:     mov     %rdx, %rax
        mov     %ecx, %edx
        out     %eax, %dx
        movq    $1, 32(%rsi)
        jmp     2f
    # 6 IN (4 bytes) from port a -> r0 (RAX was all ones before).
60:     mov     %ecx, %edx
        mov     $-1, %rax
        in      %dx, %eax
        mov     %rax, 32(%rsi)
        jmp     2f
    # 7 UD2; r0 = 1 once the root moved RIP past it.
70:     ud2
        movq    $1, 32(%rsi)
        jmp     2f
    # 8 WAIT until the qword at GPA a is non-zero; r0 = that value.
80:     mov     (%rcx), %rax
        test    %rax, %rax
        jnz     81f
        pause
        jmp     80b
81:     mov     %rax, 32(%rsi)
        jmp     2f
    # 9 WAIT as 8, with a CPUID (an exit to the server) each round.
90:     mov     8(%rsi), %rcx
        mov     (%rcx), %rax
        test    %rax, %rax
        jnz     91f
        xor     %eax, %eax
        xor     %ecx, %ecx
        cpuid
        pause
        jmp     90b
91:     mov     %rax, 32(%rsi)
        jmp     2f
    # 10 STORE the qword b at GPA a.
100:    mov     %rdx, (%rcx)
        jmp     2f
    # 11 USER: load the GDT image at 0xB000 and go on in ring 3 (needs
    # user page tables: see `user_page_tables`).
110:    lgdt    0xb000
        mov     %rsp, %rax
        pushq   $0x23                   # SS: user data
        push    %rax                    # RSP
        pushfq
        pushq   $0x1b                   # CS: user code, 64-bit
        lea     2f(%rip), %rax
        push    %rax
        iretq
    # 12 INT3; r0 = 1 once the root moved RIP past it.
120:    int3
        movq    $1, 32(%rsi)
2:      add     $64, %rsi
        incq    0x10(%r14)
        dec     %r15
        jmp     1b
9:      movq    $0xd0e, (%r14)
3:      cli
        hlt
        jmp     3b
hvc_guest_end:
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static hvc_guest: u8;
    static hvc_guest_end: u8;
}

/// The interpreter's bytes (copied to GPA CODE).
pub fn code() -> &'static [u8] {
    // SAFETY: both labels are in one section of this binary, in order.
    unsafe {
        let start = core::ptr::addr_of!(hvc_guest);
        let end = core::ptr::addr_of!(hvc_guest_end);
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

/// One operation of a guest script.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// RCX = control, RDX = input, R8 = output; CALL the hypercall page. r0 = RAX.
    Hypercall {
        control: u64,
        input: u64,
        output: u64,
    },
    Wrmsr {
        msr: u32,
        value: u64,
    },
    /// r0 = EDX:EAX.
    Rdmsr {
        msr: u32,
    },
    /// r0..r3 = EAX, EBX, ECX, EDX.
    Cpuid {
        leaf: u32,
        subleaf: u32,
    },
    /// A 4-byte OUT; r0 = 1 once it completed.
    Out {
        port: u16,
        value: u32,
    },
    /// A 4-byte IN with RAX all ones before; r0 = RAX after.
    In {
        port: u16,
    },
    /// `UD2`; r0 = 1 once the root moved RIP past it.
    Ud2,
    /// Spins until the qword at guest-physical `gpa` is non-zero; r0 = it.
    Wait {
        gpa: u64,
    },
    /// As `Wait`, exiting to the server (CPUID 0) each round.
    WaitExiting {
        gpa: u64,
    },
    /// Stores `value` at guest-physical `gpa`.
    Store {
        gpa: u64,
        value: u64,
    },
    /// Continues in ring 3 (with [`user_page_tables`] and [`user_gdt`] in place).
    User,
    /// `INT3`; r0 = 1 once the root moved RIP past it.
    Int3,
}

impl Op {
    /// The op's 64-byte image.
    pub fn words(&self) -> [u64; 8] {
        let (code, a, b, c) = match *self {
            Op::Hypercall { control, input, output } => (1, control, input, output),
            Op::Wrmsr { msr, value } => (2, msr as u64, value, 0),
            Op::Rdmsr { msr } => (3, msr as u64, 0, 0),
            Op::Cpuid { leaf, subleaf } => (4, leaf as u64, subleaf as u64, 0),
            Op::Out { port, value } => (5, port as u64, value as u64, 0),
            Op::In { port } => (6, port as u64, 0, 0),
            Op::Ud2 => (7, 0, 0, 0),
            Op::Wait { gpa } => (8, gpa, 0, 0),
            Op::WaitExiting { gpa } => (9, gpa, 0, 0),
            Op::Store { gpa, value } => (10, gpa, value, 0),
            Op::User => (11, 0, 0, 0),
            Op::Int3 => (12, 0, 0, 0),
        };
        [code, a, b, c, 0, 0, 0, 0]
    }
}

/// The page-table pages of the layout: (GPA, qwords).
pub fn page_tables() -> Vec<(u64, Vec<u64>)> {
    alloc::vec![
        (PML4, alloc::vec![0x1003]),
        (0x1000, alloc::vec![0x2003]),
        (0x2000, (0..512u64).map(|i| (i << 21) | 0x83).collect()),
    ]
}

/// The page tables of [`page_tables`] with the user bit at every level, so
/// the interpreter can go on in ring 3.
pub fn user_page_tables() -> Vec<(u64, Vec<u64>)> {
    alloc::vec![
        (PML4, alloc::vec![0x1007]),
        (0x1000, alloc::vec![0x2007]),
        (0x2000, (0..512u64).map(|i| (i << 21) | 0x87).collect()),
    ]
}

/// Where [`user_gdt`] goes: the `lgdt` operand at 0xB000, the table at 0xB010.
pub const GDT: u64 = 0xb000;

/// The GDT image for `Op::User`: null, kernel code64 0x08, kernel data
/// 0x10, user code64 0x18, user data 0x20; preceded by its pseudo-descriptor.
pub fn user_gdt() -> Vec<u64> {
    alloc::vec![
        0x27 | (GDT + 0x10) << 16,
        (GDT + 0x10) >> 48,
        0,
        0x00af_9a00_0000_ffff,
        0x00cf_9200_0000_ffff,
        0x00af_fa00_0000_ffff,
        0x00cf_f200_0000_ffff,
    ]
}
