//! Guest snippets (64-bit GNU assembly, position independent), copied to
//! guest-physical CODE. Port 0x80 is a snippet's "step" port, 0x81 its
//! report port (4-byte OUTs of a value to check); `lidt 0x5000` loads the
//! IDTR image `machine::memory` writes.

core::arch::global_asm!(
    r#"
    .pushsection .rodata.hvtest_guests, "a"
    .macro GATE vec, handler
        lea     \handler(%rip), %rax
        mov     $(0x4000 + \vec * 16), %rdi
        mov     %ax, (%rdi)
        movw    $8, 2(%rdi)
        movw    $0x8e00, 4(%rdi)
        shr     $16, %rax
        mov     %ax, 6(%rdi)
        shr     $16, %rax
        mov     %eax, 8(%rdi)
        movl    $0, 12(%rdi)
    .endm
    .macro REPORT_HANDLER name, vec
    \name:
        push    %rax
        mov     $\vec, %eax
        out     %eax, $0x81
        pop     %rax
        iretq
    .endm

    # 4-byte OUTs of a counter to 0x80, forever.
    .globl hv_count, hv_count_end
hv_count:
        xor     %eax, %eax
2:      out     %eax, $0x80
        inc     %eax
        jmp     2b
hv_count_end:

    # Exactly r12 OUTs of a counter to 0x80, then one OUT of 0xd0e to 0x81, then spin.
    .globl hv_count_n, hv_count_n_end
hv_count_n:
        xor     %eax, %eax
2:      cmp     %r12d, %eax
        je      3f
        out     %eax, $0x80
        inc     %eax
        jmp     2b
3:      mov     $0xd0e, %eax
        out     %eax, $0x81
4:      jmp     4b
hv_count_n_end:

    # OUT and IN of every size (see behaviour::io_*).
    .globl hv_sizes, hv_sizes_end
hv_sizes:
        mov     $0x80, %dx
        mov     $0x11, %al
        out     %al, %dx
        mov     $0x2233, %ax
        out     %ax, %dx
        mov     $0x44556677, %eax
        out     %eax, %dx
        movabs  $0x1122334455667788, %rax
        in      %dx, %al
        out     %eax, $0x81
        in      %dx, %ax
        out     %eax, $0x81
        in      %dx, %eax
        mov     %rax, %rbx
        out     %eax, $0x81
        shr     $32, %rbx
        mov     %ebx, %eax
        out     %eax, $0x81
        mov     $-1, %rax
        in      %dx, %eax
        mov     %rax, %rbx
        out     %eax, $0x81
        shr     $32, %rbx
        mov     %ebx, %eax
        out     %eax, $0x81
2:      jmp     2b
hv_sizes_end:

    # Registers set by the guest, then reported after the manager writes some.
    .globl hv_regs, hv_regs_end
hv_regs:
        movabs  $0x1000000001, %rbx
        movabs  $0x2000000002, %rcx
        movabs  $0x3000000003, %rsi
        movabs  $0x4000000004, %rdi
        movabs  $0x5000000005, %rbp
        movabs  $0x8000000008, %r8
        movabs  $0xf00000000f, %r15
        mov     $0x77, %eax
        stc
        out     %al, $0x80
        mov     %ebx, %eax
        out     %eax, $0x81
        mov     %r15d, %eax
        out     %eax, $0x81
        pushf
        pop     %rax
        and     $1, %eax
        out     %eax, $0x81
2:      jmp     2b
hv_regs_end:

    # MMIO accesses at 0x10000000 (see behaviour::mem_*).
    .globl hv_mmio, hv_mmio_end
hv_mmio:
        mov     $0x10000000, %edi
        mov     (%rdi), %eax
        out     %eax, $0x81
        movl    $0xcafef00d, 4(%rdi)
        mov     $0x5a, %cl
        mov     %cl, 8(%rdi)
        movabs  $0x0102030405060708, %rdx
        mov     %rdx, 16(%rdi)
        movzbl  24(%rdi), %eax
        out     %eax, $0x81
        movswq  26(%rdi), %rax
        mov     %rax, %rbx
        out     %eax, $0x81
        shr     $32, %rbx
        mov     %ebx, %eax
        out     %eax, $0x81
        testb   $1, 32(%rdi)
        setz    %al
        movzbl  %al, %eax
        out     %eax, $0x81
        mov     $0x77, %eax
        stosl
        mov     %edi, %eax
        out     %eax, $0x81
2:      jmp     2b
hv_mmio_end:

    # An ADD to MMIO: a valid instruction the decoder does not model.
    .globl hv_mmio_add, hv_mmio_add_end
hv_mmio_add:
        mov     $0x10000000, %edi
        add     %eax, (%rdi)
        out     %eax, $0x81
2:      jmp     2b
hv_mmio_add_end:

    # A load from 0x20000000: neither RAM nor trapped.
    .globl hv_nowhere, hv_nowhere_end
hv_nowhere:
        mov     $0x20000000, %edi
        mov     (%rdi), %eax
2:      jmp     2b
hv_nowhere_end:

    # A load from RAM page 0x100000 (trapped by the case), reported.
    .globl hv_ram_load, hv_ram_load_end
hv_ram_load:
        mov     $0x100000, %edi
        mov     (%rdi), %eax
        out     %eax, $0x81
2:      jmp     2b
hv_ram_load_end:

    # String I/O.
    .globl hv_outs, hv_outs_end
hv_outs:
        mov     $0x80, %dx
        lea     hv_outs(%rip), %rsi
        outsb
2:      jmp     2b
hv_outs_end:

    # An OUT to untrapped port 0x1234, then to 0x80 and 0x81 in turn.
    .globl hv_probe, hv_probe_end
hv_probe:
        mov     $0x1234, %dx
        mov     $0x5a, %al
        out     %al, %dx
        mov     $0x99, %eax
        out     %eax, $0x80
        out     %eax, $0x81
2:      jmp     2b
hv_probe_end:

    .globl hv_spin, hv_spin_end
hv_spin:
2:      jmp     2b
hv_spin_end:

    # Halts with interrupts off: only a kill ends it.
    .globl hv_halt, hv_halt_end
hv_halt:
        cli
2:      hlt
        jmp     2b
hv_halt_end:

    # CPUID forever with interrupts off: exits the kernel handles itself,
    # back to back (with an interrupt pending, each entry also opens an
    # interrupt window).
    .globl hv_cpuid_loop, hv_cpuid_loop_end
hv_cpuid_loop:
        cli
2:      xor     %eax, %eax
        cpuid
        jmp     2b
hv_cpuid_loop_end:

    # Interrupts: gates for 2, 0x30, 0x40, 0x50 report their vector on 0x81.
    # 0x80 (ready, IF=0), 0x84 (still IF=0), STI, 0x82, then HLT; after each
    # wake-up 0x83.
    .globl hv_irq, hv_irq_end
hv_irq:
        GATE    2, hv_irq_h2
        GATE    0x30, hv_irq_h30
        GATE    0x40, hv_irq_h40
        GATE    0x50, hv_irq_h50
        lidt    0x5000
        out     %al, $0x80
        out     %al, $0x84
        sti
        nop
        out     %al, $0x82
2:      hlt
        out     %al, $0x83
        jmp     2b
    REPORT_HANDLER hv_irq_h2, 2
    REPORT_HANDLER hv_irq_h30, 0x30
    REPORT_HANDLER hv_irq_h40, 0x40
    REPORT_HANDLER hv_irq_h50, 0x50
hv_irq_end:

    # CR8: ready on 0x80 (IF=0), then MOV CR8 of 9 through R9 and of 5
    # through the LOCK form, each read back and reported on 0x81; CR8 back
    # to 0, STI (vector 0x40 reports), 0x82. Then CR8 = 16: #GP (13)
    # reports, and the handler spins.
    .globl hv_cr8, hv_cr8_end
hv_cr8:
        GATE    0x40, hv_cr8_h40
        GATE    13, hv_cr8_h13
        lidt    0x5000
        out     %al, $0x80
        mov     $9, %r9d
        mov     %r9, %cr8
        mov     %cr8, %rax
        out     %eax, $0x81
        mov     $5, %ecx
        .byte   0xf0, 0x0f, 0x22, 0xc1
        mov     %cr8, %rax
        out     %eax, $0x81
        xor     %eax, %eax
        mov     %rax, %cr8
        sti
        nop
        out     %al, $0x82
        mov     $16, %eax
        mov     %rax, %cr8
        out     %al, $0x83
2:      jmp     2b
    REPORT_HANDLER hv_cr8_h40, 0x40
hv_cr8_h13:
        mov     $13, %eax
        out     %eax, $0x81
2:      jmp     2b
hv_cr8_end:

    # Interrupts on, spinning in guest mode: vector 0x40 reports.
    .globl hv_kick, hv_kick_end
hv_kick:
        GATE    0x40, hv_kick_h40
        lidt    0x5000
        sti
2:      jmp     2b
    REPORT_HANDLER hv_kick_h40, 0x40
hv_kick_end:

    # SSE: fills xmm0-15, exits on 0x80, then checks them; reports 0 or the
    # first wrong register + 1.
    .macro XSET k
        movabs  $(0x0101010101010101 * (\k + 1)), %rax
        movq    %rax, %xmm\k
        punpcklqdq %xmm\k, %xmm\k
    .endm
    .macro XCHECK k
        mov     $(\k + 1), %ecx
        movabs  $(0x0101010101010101 * (\k + 1)), %rax
        movq    %xmm\k, %rbx
        cmp     %rax, %rbx
        jne     hv_sse_fail
        pshufd  $0x4e, %xmm\k, %xmm\k
        movq    %xmm\k, %rbx
        cmp     %rax, %rbx
        jne     hv_sse_fail
    .endm
    .globl hv_sse, hv_sse_end
hv_sse:
        mov     %cr4, %rax
        or      $0x600, %rax
        mov     %rax, %cr4
        mov     %cr0, %rax
        and     $-5, %rax
        or      $2, %rax
        mov     %rax, %cr0
        XSET 0
        XSET 1
        XSET 2
        XSET 3
        XSET 4
        XSET 5
        XSET 6
        XSET 7
        XSET 8
        XSET 9
        XSET 10
        XSET 11
        XSET 12
        XSET 13
        XSET 14
        XSET 15
        out     %al, $0x80
        XCHECK 0
        XCHECK 1
        XCHECK 2
        XCHECK 3
        XCHECK 4
        XCHECK 5
        XCHECK 6
        XCHECK 7
        XCHECK 8
        XCHECK 9
        XCHECK 10
        XCHECK 11
        XCHECK 12
        XCHECK 13
        XCHECK 14
        XCHECK 15
        xor     %ecx, %ecx
hv_sse_fail:
        mov     %ecx, %eax
        out     %eax, $0x81
2:      jmp     2b
hv_sse_end:

    # Triple fault: an empty IDT, then #UD.
    .globl hv_triple, hv_triple_end
hv_triple:
        lidt    hv_triple_idtr(%rip)
        ud2
hv_triple_idtr:
        .word   0
        .quad   0
hv_triple_end:
    # MX_VCPU_SYSTEM: reports the dword at virtual 0x40000000 (the case's
    # two page-table trees map it to different pages), then RFLAGS, forever.
    # From hv_system_alt: reports 0x5a5a once.
    .globl hv_system, hv_system_alt, hv_system_end
hv_system:
        mov     $0x40000000, %edi
2:      mov     (%rdi), %eax
        out     %eax, $0x81
        pushf
        pop     %rax
        out     %eax, $0x81
        jmp     2b
hv_system_alt:
        mov     $0x5a5a, %eax
        out     %eax, $0x81
3:      jmp     3b
hv_system_end:
    # VMMCALL with RAX = 0x1111, RCX = 0x2222, then a report of RAX. The
    # #UD handler reports 6 and resumes after the 3-byte VMMCALL.
    .globl hv_vmcall, hv_vmcall_end
hv_vmcall:
        GATE    6, hv_vmcall_ud
        lidt    0x5000
        mov     $0x1111, %eax
        mov     $0x2222, %ecx
        vmmcall
        out     %eax, $0x81
2:      jmp     2b
hv_vmcall_ud:
        push    %rax
        mov     $6, %eax
        out     %eax, $0x81
        pop     %rax
        addq    $3, (%rsp)
        iretq
hv_vmcall_end:

    # RDMSR 0x40000000 (reports EAX, EDX), WRMSR 0x40000001 of
    # 0x0123456789abcdef, RDMSR of the APIC base and of EFER (reports EAX).
    # The #GP handler reports 13 and resumes after the 2-byte instruction.
    .globl hv_msr, hv_msr_end
hv_msr:
        GATE    13, hv_msr_gp
        lidt    0x5000
        mov     $0x40000000, %ecx
        xor     %eax, %eax
        xor     %edx, %edx
        rdmsr
        out     %eax, $0x81
        mov     %edx, %eax
        out     %eax, $0x81
        mov     $0x40000001, %ecx
        mov     $0x89abcdef, %eax
        mov     $0x01234567, %edx
        wrmsr
        mov     $0x1b, %ecx
        rdmsr
        out     %eax, $0x81
        mov     $0xc0000080, %ecx
        rdmsr
        out     %eax, $0x81
2:      jmp     2b
hv_msr_gp:
        add     $8, %rsp
        push    %rax
        mov     $13, %eax
        out     %eax, $0x81
        pop     %rax
        addq    $2, (%rsp)
        iretq
hv_msr_end:

    # CPUID 0x40000000 subleaf 7, then leaf 0: reports EAX, EBX, ECX, EDX
    # of each.
    .macro REPORT4
        out     %eax, $0x81
        mov     %ebx, %eax
        out     %eax, $0x81
        mov     %ecx, %eax
        out     %eax, $0x81
        mov     %edx, %eax
        out     %eax, $0x81
    .endm
    .globl hv_cpuid, hv_cpuid_end
hv_cpuid:
        mov     $0x40000000, %eax
        mov     $7, %ecx
        cpuid
        REPORT4
        xor     %eax, %eax
        xor     %ecx, %ecx
        cpuid
        REPORT4
2:      jmp     2b
hv_cpuid_end:

    # INT3, UD2 and a load from unmapped 0x40000000 (#PF), each followed by
    # a step OUT to 0x80. The handlers report their vector on 0x81 (#PF
    # also CR2's low half) and resume after the instruction.
    .globl hv_exc, hv_exc_int3, hv_exc_ud2, hv_exc_load, hv_exc_end
hv_exc:
        GATE    3, hv_exc_bp
        GATE    6, hv_exc_ud
        GATE    14, hv_exc_pf
        lidt    0x5000
        mov     $0x40000000, %edi
hv_exc_int3:
        int3
        out     %al, $0x80
hv_exc_ud2:
        ud2
        out     %al, $0x80
hv_exc_load:
        mov     (%rdi), %eax
        out     %al, $0x80
2:      jmp     2b
hv_exc_bp:
        push    %rax
        mov     $3, %eax
        out     %eax, $0x81
        pop     %rax
        iretq
hv_exc_ud:
        push    %rax
        mov     $6, %eax
        out     %eax, $0x81
        pop     %rax
        addq    $2, (%rsp)
        iretq
hv_exc_pf:
        add     $8, %rsp
        push    %rax
        mov     $14, %eax
        out     %eax, $0x81
        mov     %cr2, %rax
        out     %eax, $0x81
        pop     %rax
        addq    $2, (%rsp)
        iretq
hv_exc_end:

    # INT 0x30, then INT3, each followed by a step OUT to 0x80; both
    # handlers report their vector.
    .globl hv_intn, hv_intn_end
hv_intn:
        GATE    0x30, hv_intn_h30
        GATE    3, hv_intn_h3
        lidt    0x5000
        xor     %eax, %eax
        int     $0x30
        out     %al, $0x80
        int3
        out     %al, $0x80
2:      jmp     2b
    REPORT_HANDLER hv_intn_h30, 0x30
    REPORT_HANDLER hv_intn_h3, 3
hv_intn_end:

    # Reports the dword at RDI, forever.
    .globl hv_peek, hv_peek_end
hv_peek:
2:      mov     (%rdi), %eax
        out     %eax, $0x81
        jmp     2b
hv_peek_end:

    # Stores ESI at RDI, steps (OUT to 0x80), increments ESI, forever.
    .globl hv_poke, hv_poke_end
hv_poke:
2:      mov     %esi, (%rdi)
        out     %al, $0x80
        inc     %esi
        jmp     2b
hv_poke_end:

    # Reports the dword at RDI each time it changes, without exiting
    # otherwise.
    .globl hv_watch, hv_watch_end
hv_watch:
        mov     (%rdi), %ebx
        mov     %ebx, %eax
        out     %eax, $0x81
2:      mov     (%rdi), %eax
        cmp     %eax, %ebx
        je      2b
        mov     %eax, %ebx
        out     %eax, $0x81
        jmp     2b
hv_watch_end:
    .popsection
"#,
    options(att_syntax)
);

macro_rules! snippets {
    ($($name:ident => $start:ident, $end:ident;)*) => {
        extern "C" {
            $(static $start: u8; static $end: u8;)*
        }
        $(
            /// The snippet's bytes.
            pub fn $name() -> &'static [u8] {
                // SAFETY: both labels are in one section of this binary, in order.
                unsafe {
                    let start = core::ptr::addr_of!($start);
                    let end = core::ptr::addr_of!($end);
                    core::slice::from_raw_parts(start, end as usize - start as usize)
                }
            }
        )*
    };
}

snippets! {
    count => hv_count, hv_count_end;
    count_n => hv_count_n, hv_count_n_end;
    sizes => hv_sizes, hv_sizes_end;
    regs => hv_regs, hv_regs_end;
    mmio => hv_mmio, hv_mmio_end;
    mmio_add => hv_mmio_add, hv_mmio_add_end;
    nowhere => hv_nowhere, hv_nowhere_end;
    ram_load => hv_ram_load, hv_ram_load_end;
    outs => hv_outs, hv_outs_end;
    probe => hv_probe, hv_probe_end;
    spin => hv_spin, hv_spin_end;
    halt => hv_halt, hv_halt_end;
    cpuid_loop => hv_cpuid_loop, hv_cpuid_loop_end;
    irq => hv_irq, hv_irq_end;
    kick => hv_kick, hv_kick_end;
    cr8 => hv_cr8, hv_cr8_end;
    sse => hv_sse, hv_sse_end;
    triple => hv_triple, hv_triple_end;
    system => hv_system, hv_system_end;
    vmcall => hv_vmcall, hv_vmcall_end;
    msr => hv_msr, hv_msr_end;
    cpuid => hv_cpuid, hv_cpuid_end;
    exc => hv_exc, hv_exc_end;
    intn => hv_intn, hv_intn_end;
    peek => hv_peek, hv_peek_end;
    poke => hv_poke, hv_poke_end;
    watch => hv_watch, hv_watch_end;
}

extern "C" {
    static hv_system_alt: u8;
    static hv_exc_int3: u8;
    static hv_exc_ud2: u8;
    static hv_exc_load: u8;
}

/// Where `hv_system_alt` lies in the `system` snippet.
pub fn system_alt_offset() -> u64 {
    // Both labels are in one section of this binary, in order.
    core::ptr::addr_of!(hv_system_alt) as u64 - system().as_ptr() as u64
}

/// Where the INT3, UD2 and faulting load lie in the `exc` snippet.
pub fn exc_offsets() -> [u64; 3] {
    let base = exc().as_ptr() as u64;
    [
        core::ptr::addr_of!(hv_exc_int3) as u64 - base,
        core::ptr::addr_of!(hv_exc_ud2) as u64 - base,
        core::ptr::addr_of!(hv_exc_load) as u64 - base,
    ]
}
