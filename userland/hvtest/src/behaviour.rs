//! Exits, state and interrupts on one thread.

use mx::hypervisor::{Error, Exit, Extend, Kind, Reg, Source, Vcpu};
use mx::{Port, Status};
use mx_abi::{TrapKind, VcpuState, VCPU_FLAGS_APPLY, VCPU_FLAGS_USER};

use crate::guests;
use crate::harness::{Failure, Outcome};
use crate::machine::*;
use crate::{cases, expect, expect_eq, ok};

fn io_out_sizes() -> Outcome {
    let m = machine(guests::sizes())?;
    ok!(m.guest.set_trap(TrapKind::Io, 0x80, 2, None, 0));
    let v = m.vcpu()?;
    expect_out(&v, 0x80, 1, 0x11)?;
    expect_out(&v, 0x80, 2, 0x2233)?;
    expect_out(&v, 0x80, 4, 0x4455_6677)?;
    Ok(())
}

fn skip_outs(v: &Vcpu, n: usize) -> Result<(), Failure> {
    for _ in 0..n {
        next(v)?;
    }
    Ok(())
}

fn io_in_sizes_and_write_io() -> Outcome {
    let m = machine(guests::sizes())?;
    let v = m.vcpu()?;
    skip_outs(&v, 3)?;
    match next(&v)? {
        Exit::Io { key: 0, port: 0x80, size: 1, input: true, .. } => {}
        other => return Err(alloc::format!("expected IN 1, got {other:x?}").into()),
    }
    ok!(v.write_io(1, 0xaa));
    expect_eq!(report(&v)?, 0x5566_77aa);
    expect!(matches!(next(&v)?, Exit::Io { size: 2, input: true, .. }));
    ok!(v.write_io(2, 0xbbcc));
    expect_eq!(report(&v)?, 0x5566_bbcc);
    expect!(matches!(next(&v)?, Exit::Io { size: 4, input: true, .. }));
    ok!(v.write_io(4, 0xddee_ff00));
    expect_eq!(report(&v)?, 0xddee_ff00);
    expect_eq!(report(&v)?, 0);
    Ok(())
}

fn io_in4_zeroes_rax() -> Outcome {
    let m = machine(guests::sizes())?;
    let v = m.vcpu()?;
    skip_outs(&v, 3)?;
    for (size, value) in [(1u8, 0u32), (2, 0), (4, 0)] {
        next(&v)?;
        ok!(v.write_io(size, value));
        next(&v)?;
    }
    next(&v)?; // the high half report
               // IN 4 without an answer: RAX was zeroed by the kernel.
    expect!(matches!(next(&v)?, Exit::Io { size: 4, input: true, .. }));
    expect_eq!(report(&v)?, 0);
    expect_eq!(report(&v)?, 0);
    Ok(())
}

fn io_untrapped_out_exits_with_key_0() -> Outcome {
    let m = machine(guests::probe())?;
    let v = m.vcpu()?;
    expect_out(&v, 0x1234, 1, 0x5a)?;
    Ok(())
}

fn io_sync_trap_key_0() -> Outcome {
    let m = machine(guests::probe())?;
    ok!(m.guest.set_trap(TrapKind::Io, 0x1234, 1, None, 99));
    let v = m.vcpu()?;
    expect_out(&v, 0x1234, 1, 0x5a)?;
    Ok(())
}

/// Whether a trap with a port delivers through the port (async) or, as in
/// phase 1, through `vcpu_resume` with its key.
pub fn async_delivery() -> Result<bool, Failure> {
    let m = machine(guests::probe())?;
    let port = ok!(Port::create());
    ok!(m.guest.set_trap(TrapKind::Io, 0x80, 1, Some(&port), 77));
    let v = m.vcpu()?;
    expect_out(&v, 0x1234, 1, 0x5a)?;
    match next(&v)? {
        Exit::Io { key: 77, port: 0x80, data: 0x99, .. } => Ok(false),
        Exit::Io { key: 0, port: 0x81, data: 0x99, .. } => {
            let p = ok!(port.wait(after(1_000_000_000)));
            expect_eq!(p.key, 77);
            Ok(true)
        }
        other => Err(alloc::format!("unexpected exit {other:x?}").into()),
    }
}

fn io_port_trap_carries_its_key() -> Outcome {
    // Either way, the trap's key reaches the manager (decision 2).
    async_delivery().map(drop)
}

fn mem_exits_decode() -> Outcome {
    let m = machine(guests::mmio())?;
    ok!(m.guest.set_trap(TrapKind::Mem, MMIO, 0x1000, None, 0));
    let v = m.vcpu()?;
    let mem = |v: &Vcpu| -> Result<(u64, mx::hypervisor::Instruction), Failure> {
        match next(v)? {
            Exit::Mem { key: 0, addr, instruction } => Ok((addr, instruction)),
            other => Err(alloc::format!("expected a MEM exit, got {other:x?}").into()),
        }
    };
    // mov eax, [rdi]
    let (addr, i) = mem(&v)?;
    expect_eq!(addr, MMIO);
    expect_eq!(i.kind, Kind::Read { dst: Reg::new(0), size: 4, dst_size: 4, extend: Extend::None });
    let mut s = ok!(v.read_state());
    i.complete(&mut s, 0x1234_5678);
    ok!(v.write_state(&s));
    expect_eq!(report(&v)?, 0x1234_5678);
    // movl $0xcafef00d, 4(%rdi)
    let (addr, i) = mem(&v)?;
    expect_eq!(addr, MMIO + 4);
    expect_eq!(i.kind, Kind::Write { src: Source::Imm(0xcafe_f00d), size: 4 });
    // mov %cl, 8(%rdi)
    let (addr, i) = mem(&v)?;
    expect_eq!(addr, MMIO + 8);
    expect_eq!(i.kind, Kind::Write { src: Source::Reg(Reg::new(1)), size: 1 });
    expect_eq!(i.store_value(&ok!(v.read_state())), Some(0x5a));
    // mov %rdx, 16(%rdi)
    let (addr, i) = mem(&v)?;
    expect_eq!(addr, MMIO + 16);
    expect_eq!(i.store_value(&ok!(v.read_state())), Some(0x0102_0304_0506_0708));
    // movzbl 24(%rdi), %eax
    let (addr, i) = mem(&v)?;
    expect_eq!(addr, MMIO + 24);
    expect_eq!(i.kind, Kind::Read { dst: Reg::new(0), size: 1, dst_size: 4, extend: Extend::Zero });
    let mut s = ok!(v.read_state());
    i.complete(&mut s, 0xfe);
    ok!(v.write_state(&s));
    expect_eq!(report(&v)?, 0xfe);
    // movswq 26(%rdi), %rax
    let (addr, i) = mem(&v)?;
    expect_eq!(addr, MMIO + 26);
    expect_eq!(i.kind, Kind::Read { dst: Reg::new(0), size: 2, dst_size: 8, extend: Extend::Sign });
    let mut s = ok!(v.read_state());
    i.complete(&mut s, 0x8001);
    ok!(v.write_state(&s));
    expect_eq!(report(&v)?, 0xffff_8001);
    expect_eq!(report(&v)?, 0xffff_ffff);
    // testb $1, 32(%rdi) with 0: ZF
    let (addr, i) = mem(&v)?;
    expect_eq!(addr, MMIO + 32);
    expect_eq!(i.kind, Kind::Test { src: Source::Imm(1), size: 1 });
    let mut s = ok!(v.read_state());
    i.complete(&mut s, 0);
    ok!(v.write_state(&s));
    expect_eq!(report(&v)?, 1);
    // stosl at rdi = MMIO
    let (addr, i) = mem(&v)?;
    expect_eq!(addr, MMIO);
    expect_eq!(i.kind, Kind::Stos { size: 4, rep: false });
    let mut s = ok!(v.read_state());
    expect_eq!(i.store_value(&s), Some(0x77));
    i.complete(&mut s, 0);
    ok!(v.write_state(&s));
    expect_eq!(report(&v)?, (MMIO + 4) as u32);
    Ok(())
}

fn mem_undecodable_instruction() -> Outcome {
    let m = machine(guests::mmio_add())?;
    ok!(m.guest.set_trap(TrapKind::Mem, MMIO, 0x1000, None, 0));
    let v = m.vcpu()?;
    match v.resume() {
        Err(Error::Undecodable { addr, len: 2, bytes, .. }) => {
            expect_eq!(addr, MMIO);
            expect_eq!(&bytes[..2], &[0x01, 0x07]);
        }
        other => return Err(alloc::format!("expected an undecodable MEM exit, got {other:x?}").into()),
    }
    // The RIP moved past it: the next exit is the report.
    expect!(matches!(next(&v)?, Exit::Io { port: 0x81, .. }));
    Ok(())
}

fn mem_neither_ram_nor_trap_is_out_of_range() -> Outcome {
    let m = machine(guests::nowhere())?;
    let v = m.vcpu()?;
    expect_eq!(v.resume_packet().map(drop), Err(Status::OutOfRange));
    Ok(())
}

fn mem_trap_over_ram_hides_it() -> Outcome {
    let m = machine(guests::ram_load())?;
    ok!(m.ram.write_all(&0x5555_5555u32.to_le_bytes(), 0x100000));
    ok!(m.guest.set_trap(TrapKind::Mem, 0x100000, 0x1000, None, 0));
    let v = m.vcpu()?;
    match next(&v)? {
        Exit::Mem { addr: 0x100000, instruction, .. } => {
            let mut s = ok!(v.read_state());
            instruction.complete(&mut s, 0x6666);
            ok!(v.write_state(&s));
        }
        other => return Err(alloc::format!("expected a MEM exit, got {other:x?}").into()),
    }
    expect_eq!(report(&v)?, 0x6666);
    Ok(())
}

fn mem_untrapped_ram_does_not_exit() -> Outcome {
    let m = machine(guests::ram_load())?;
    ok!(m.ram.write_all(&0x5555_5555u32.to_le_bytes(), 0x100000));
    let v = m.vcpu()?;
    expect_eq!(report(&v)?, 0x5555_5555);
    Ok(())
}

fn string_io_not_supported() -> Outcome {
    let m = machine(guests::outs())?;
    let v = m.vcpu()?;
    expect_eq!(v.resume_packet().map(drop), Err(Status::NotSupported));
    Ok(())
}

fn triple_fault_is_bad_state() -> Outcome {
    let m = machine(guests::triple())?;
    let v = m.vcpu()?;
    expect_eq!(v.resume_packet().map(drop), Err(Status::BadState));
    expect_eq!(v.resume_packet().map(drop), Err(Status::BadState));
    Ok(())
}

fn state_round_trip() -> Outcome {
    let m = machine(guests::spin())?;
    let v = m.vcpu()?;
    let want = VcpuState {
        rax: 1,
        rcx: 2,
        rdx: 3,
        rbx: 4,
        rsp: 0x8000,
        rbp: 6,
        rsi: 7,
        rdi: 8,
        r8: 9,
        r9: 10,
        r10: 11,
        r11: 12,
        r12: 13,
        r13: 14,
        r14: 15,
        r15: u64::MAX,
        flags: 0,
    };
    ok!(v.write_state(&want));
    expect_eq!(ok!(v.read_state()), want);
    Ok(())
}

fn state_flags_need_bit_1() -> Outcome {
    let m = machine(guests::spin())?;
    let v = m.vcpu()?;
    let mut s = ok!(v.read_state());
    s.flags = 0x1; // CF without the apply bit: ignored
    ok!(v.write_state(&s));
    expect_eq!(ok!(v.read_state()).flags, 0);
    s.flags = 0x1 | VCPU_FLAGS_APPLY;
    ok!(v.write_state(&s));
    expect_eq!(ok!(v.read_state()).flags, 0x1);
    Ok(())
}

fn state_flags_only_user_bits() -> Outcome {
    let m = machine(guests::spin())?;
    let v = m.vcpu()?;
    let mut s = ok!(v.read_state());
    s.flags = u32::MAX;
    ok!(v.write_state(&s));
    expect_eq!(ok!(v.read_state()).flags, VCPU_FLAGS_USER);
    Ok(())
}

fn state_set_by_guest_is_read() -> Outcome {
    let m = machine(guests::regs())?;
    let v = m.vcpu()?;
    expect_out(&v, 0x80, 1, 0x77)?;
    let s = ok!(v.read_state());
    expect_eq!(
        (s.rbx, s.rcx, s.rsi, s.rdi, s.rbp, s.r8, s.r15, s.rax),
        (
            0x10_0000_0001,
            0x20_0000_0002,
            0x30_0000_0003,
            0x40_0000_0004,
            0x50_0000_0005,
            0x80_0000_0008,
            0xf0_0000_000f,
            0x77
        )
    );
    expect_eq!(s.flags & 1, 1);
    expect_eq!(s.rsp, STACK_TOP);
    Ok(())
}

fn state_written_is_seen_by_guest() -> Outcome {
    let m = machine(guests::regs())?;
    let v = m.vcpu()?;
    next(&v)?;
    let mut s = ok!(v.read_state());
    s.rbx = 0xabcdef;
    s.r15 = 0x1234;
    s.flags = VCPU_FLAGS_APPLY; // clear CF
    ok!(v.write_state(&s));
    expect_eq!(report(&v)?, 0xabcdef);
    expect_eq!(report(&v)?, 0x1234);
    expect_eq!(report(&v)?, 0);
    Ok(())
}

/// The irq snippet at its ready exit (0x80).
fn irq_ready() -> Result<(Machine, Vcpu), Failure> {
    let m = machine(guests::irq())?;
    let v = m.vcpu()?;
    expect!(matches!(next(&v)?, Exit::Io { port: 0x80, .. }));
    Ok((m, v))
}

fn port_of(e: Exit) -> (u16, u32) {
    match e {
        Exit::Io { port, data, .. } => (port, data),
        _ => (0, 0),
    }
}

fn interrupt_held_while_if_clear() -> Outcome {
    let (_m, v) = irq_ready()?;
    ok!(v.interrupt(0x40));
    expect_eq!(port_of(next(&v)?).0, 0x84);
    expect_eq!(port_of(next(&v)?), (0x81, 0x40));
    expect_eq!(port_of(next(&v)?).0, 0x82);
    Ok(())
}

fn interrupt_priority_highest_vector_first() -> Outcome {
    let (_m, v) = irq_ready()?;
    for vector in [0x30, 0x50, 0x40] {
        ok!(v.interrupt(vector));
    }
    expect_eq!(port_of(next(&v)?).0, 0x84);
    expect_eq!(port_of(next(&v)?), (0x81, 0x50));
    expect_eq!(port_of(next(&v)?), (0x81, 0x40));
    expect_eq!(port_of(next(&v)?), (0x81, 0x30));
    expect_eq!(port_of(next(&v)?).0, 0x82);
    Ok(())
}

fn interrupt_nmi_before_external() -> Outcome {
    let (_m, v) = irq_ready()?;
    ok!(v.interrupt(0x40));
    ok!(v.interrupt(2));
    // The NMI does not wait for IF: it comes before the 0x84 step.
    expect_eq!(port_of(next(&v)?), (0x81, 2));
    expect_eq!(port_of(next(&v)?).0, 0x84);
    expect_eq!(port_of(next(&v)?), (0x81, 0x40));
    Ok(())
}

fn interrupt_same_vector_twice_is_one() -> Outcome {
    let (_m, v) = irq_ready()?;
    ok!(v.interrupt(0x40));
    ok!(v.interrupt(0x40));
    expect_eq!(port_of(next(&v)?).0, 0x84);
    expect_eq!(port_of(next(&v)?), (0x81, 0x40));
    expect_eq!(port_of(next(&v)?).0, 0x82);
    Ok(())
}

fn interrupt_taken_at_once_when_if_set() -> Outcome {
    let (_m, v) = irq_ready()?;
    expect_eq!(port_of(next(&v)?).0, 0x84);
    expect_eq!(port_of(next(&v)?).0, 0x82);
    // IF is set and the guest is about to halt: the interrupt goes in at
    // the next entry. (A guest halted with nothing pending is woken from
    // another thread: threads::hlt_woken_from_other_thread.)
    ok!(v.interrupt(0x30));
    expect_eq!(port_of(next(&v)?), (0x81, 0x30));
    Ok(())
}

/// MOV to CR8 with an interrupt window open (a vector waits for IF): the
/// kernel intercepts and emulates it, where QEMU's own emulation aborted
/// the whole machine. Both encodings set the priority CR8 reads back, and
/// a value above 15 is #GP.
fn cr8_write_with_interrupt_window_open() -> Outcome {
    let m = machine(guests::cr8())?;
    let v = m.vcpu()?;
    expect_eq!(port_of(next(&v)?).0, 0x80);
    ok!(v.interrupt(0x40));
    expect_eq!(port_of(next(&v)?), (0x81, 9));
    expect_eq!(port_of(next(&v)?), (0x81, 5));
    expect_eq!(port_of(next(&v)?), (0x81, 0x40));
    expect_eq!(port_of(next(&v)?).0, 0x82);
    expect_eq!(port_of(next(&v)?), (0x81, 13));
    Ok(())
}

/// A MEM trap on the page directory: the CPU itself faults on it while
/// walking the guest's page tables to fetch the next instruction. That is
/// no instruction's own access, so `vcpu_resume` gives NOT_SUPPORTED (an
/// unhandled exit). Treated as the access of the instruction at RIP, it
/// gave OUT_OF_RANGE here (that fetch fails on the same trapped page).
fn page_walk_through_trapped_page_is_unhandled() -> Outcome {
    let m = machine(guests::ram_load())?;
    ok!(m.guest.set_trap(TrapKind::Mem, PML4 + 0x2000, 0x1000, None, 5));
    // The PD is at PML4 + 0x2000. ram_load: `mov $0x100000, %edi` (5
    // bytes), then `mov (%rdi), %eax`.
    let v = ok!(Vcpu::create(&m.guest, CODE + 5, PML4, &m.apic));
    let mut state = ok!(v.read_state());
    state.rsp = STACK_TOP;
    state.rdi = 0x100000;
    ok!(v.write_state(&state));
    expect_eq!(v.resume_packet().map(drop), Err(Status::NotSupported));
    Ok(())
}

#[inline(never)]
fn clobber_sse() -> u64 {
    let mut x: u64 = 0x5555_5555_5555_5555;
    // SAFETY: only vector registers declared as clobbered are touched.
    unsafe {
        core::arch::asm!(
            "pcmpeqd xmm0, xmm0", "pcmpeqd xmm1, xmm1", "pxor xmm2, xmm2", "pcmpeqd xmm3, xmm3",
            "pcmpeqd xmm4, xmm4", "pcmpeqd xmm5, xmm5", "pcmpeqd xmm6, xmm6", "pcmpeqd xmm7, xmm7",
            "pcmpeqd xmm8, xmm8", "pcmpeqd xmm9, xmm9", "pcmpeqd xmm10, xmm10", "pcmpeqd xmm11, xmm11",
            "pcmpeqd xmm12, xmm12", "pcmpeqd xmm13, xmm13", "pcmpeqd xmm14, xmm14", "pcmpeqd xmm15, xmm15",
            "movq xmm0, {x}", "paddq xmm0, xmm1", "movq {x}, xmm0",
            x = inout(reg) x,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _, out("xmm4") _, out("xmm5") _,
            out("xmm6") _, out("xmm7") _, out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        );
    }
    x
}

fn sse_state_preserved_across_exits() -> Outcome {
    let m = machine(guests::sse())?;
    let v = m.vcpu()?;
    expect!(matches!(next(&v)?, Exit::Io { port: 0x80, .. }));
    expect_eq!(clobber_sse(), 0x5555_5555_5555_5554);
    sleep(2_000_000); // let other threads (and the kernel) run
    expect_eq!(clobber_sse(), 0x5555_5555_5555_5554);
    let bad = report(&v)?;
    expect!(bad == 0, "xmm{} differs after the exit", bad.wrapping_sub(1));
    Ok(())
}

fn vcpu_outlives_guest_handle() -> Outcome {
    let m = machine(guests::probe())?;
    let v = m.vcpu()?;
    let Machine { guest, ram, apic } = m;
    drop(guest);
    drop(ram);
    drop(apic);
    expect_out(&v, 0x1234, 1, 0x5a)?;
    Ok(())
}

cases![
    io_out_sizes,
    io_in_sizes_and_write_io,
    io_in4_zeroes_rax,
    io_untrapped_out_exits_with_key_0,
    io_sync_trap_key_0,
    io_port_trap_carries_its_key,
    mem_exits_decode,
    mem_undecodable_instruction,
    mem_neither_ram_nor_trap_is_out_of_range,
    mem_trap_over_ram_hides_it,
    mem_untrapped_ram_does_not_exit,
    string_io_not_supported,
    triple_fault_is_bad_state,
    state_round_trip,
    state_flags_need_bit_1,
    state_flags_only_user_bits,
    state_set_by_guest_is_read,
    state_written_is_seen_by_guest,
    interrupt_held_while_if_clear,
    interrupt_priority_highest_vector_first,
    interrupt_nmi_before_external,
    interrupt_same_vector_twice_is_one,
    interrupt_taken_at_once_when_if_set,
    cr8_write_with_interrupt_window_open,
    page_walk_through_trapped_page_is_unhandled,
    sse_state_preserved_across_exits,
    vcpu_outlives_guest_handle,
];
