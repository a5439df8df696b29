//! HvInstallIntercept and the intercept messages (reference §5; decisions
//! 2, 3, 7; README "Intercepts"): the message lands in the root's SINT0
//! slot with the §5.4 layout, the VP stays suspended (InterceptSuspend = 1)
//! until the root clears it, and access type NONE removes an intercept.

use hv::abi::{self, intercept, message_type, reg, HvMessage, HvStatus, InterceptHeader};

use crate::ctx::Ctx;
use crate::harness::Outcome;
use crate::script::{self, Op};
use crate::vm::{Child, Vm};
use crate::{cases, expect, expect_eq, expect_status};

cases![
    install_each_type,
    install_uninitialized,
    install_unknown_id,
    install_not_a_child,
    install_unknown_type,
    install_access_not_allowed_for_type,
    install_parameter_out_of_range,
    io_write_message_and_suspend,
    io_read_message_and_emulated_value,
    io_read_only_intercept_lets_out_pass,
    io_none_removes,
    msr_write_message,
    msr_read_message_and_emulated_value,
    cpuid_message_and_emulated_result,
    cpuid_none_removes,
    exception_message,
    triple_fault_is_unrecoverable_exception,
    msr_none_removes,
    exception_none_removes,
    breakpoint_message_at_int3,
];

const RW: u32 = intercept::ACCESS_READ | intercept::ACCESS_WRITE;
const EXEC: u32 = intercept::ACCESS_EXECUTE;
/// A port no device uses.
const PORT: u16 = 0x1234;
/// An MSR no CPU implements.
const MSR: u32 = 0x0000_1357;
/// A CPUID leaf no CPU implements.
const LEAF: u32 = 0x0000_1357;

fn install_each_type(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    expect_status!(ctx.intercept(child.id, RW, intercept::X64_IO_PORT, PORT as u64), SUCCESS);
    expect_status!(ctx.intercept(child.id, intercept::ACCESS_READ, intercept::X64_IO_PORT, 0xffff), SUCCESS);
    expect_status!(ctx.intercept(child.id, intercept::ACCESS_WRITE, intercept::X64_MSR, 0), SUCCESS);
    expect_status!(ctx.intercept(child.id, EXEC, intercept::X64_CPUID, LEAF as u64), SUCCESS);
    expect_status!(ctx.intercept(child.id, EXEC, intercept::X64_EXCEPTION, 31), SUCCESS);
    // Removal of each.
    for (ty, parameter) in
        [(intercept::X64_IO_PORT, PORT as u64), (intercept::X64_MSR, 0), (intercept::X64_EXCEPTION, 31)]
    {
        expect_status!(ctx.intercept(child.id, intercept::ACCESS_NONE, ty, parameter), SUCCESS);
    }
    Ok(())
}

fn install_uninitialized(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    expect_status!(ctx.intercept(child.id, RW, intercept::X64_IO_PORT, PORT as u64), INVALID_PARTITION_STATE);
    Ok(())
}

fn install_unknown_id(ctx: &Ctx) -> Outcome {
    for id in [0u64, 0x7fff_ffff_ffff_fffe] {
        let r = ctx.intercept(id, RW, intercept::X64_IO_PORT, PORT as u64);
        expect!(r.status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}: {:?}", r.status);
    }
    Ok(())
}

fn install_not_a_child(ctx: &Ctx) -> Outcome {
    expect_status!(ctx.intercept(ctx.root_id, RW, intercept::X64_IO_PORT, PORT as u64), ACCESS_DENIED);
    Ok(())
}

fn install_unknown_type(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    for ty in [4u32, 5, 0x11, u32::MAX] {
        let r = ctx.intercept(child.id, RW, ty, 0);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "type {ty:#x}: {:?}", r.status);
    }
    Ok(())
}

fn install_access_not_allowed_for_type(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let cases = [
        (intercept::X64_IO_PORT, EXEC),
        (intercept::X64_IO_PORT, RW | EXEC),
        (intercept::X64_IO_PORT, 8),
        (intercept::X64_MSR, EXEC),
        (intercept::X64_MSR, 0x10),
        (intercept::X64_CPUID, intercept::ACCESS_READ),
        (intercept::X64_CPUID, RW | EXEC),
        (intercept::X64_EXCEPTION, intercept::ACCESS_WRITE),
        (intercept::X64_EXCEPTION, EXEC | 8),
    ];
    for (ty, access) in cases {
        let r = ctx.intercept(child.id, access, ty, 6);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "type {ty} access {access:#x}: {:?}", r.status);
    }
    // Nothing was installed: the pool is untouched.
    expect_eq!(child.balance()?, (1, 16));
    Ok(())
}

fn install_parameter_out_of_range(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let cases = [
        (intercept::X64_IO_PORT, RW, 0x1_0000u64),
        (intercept::X64_IO_PORT, RW, u64::MAX),
        (intercept::X64_EXCEPTION, EXEC, 32),
        (intercept::X64_EXCEPTION, EXEC, 0x1_0006),
        (intercept::X64_CPUID, EXEC, 1 << 32),
    ];
    for (ty, access, parameter) in cases {
        let r = ctx.intercept(child.id, access, ty, parameter);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "type {ty} parameter {parameter:#x}: {:?}", r.status);
    }
    expect_eq!(child.balance()?, (1, 16));
    Ok(())
}

/// Checks the intercept header every message carries: VP 0 of `vm`, 64-bit
/// CPL 0, RIP at `opcode` in the guest's code.
fn check_header(
    vm: &Vm,
    m: &HvMessage,
    ty: u32,
    access: u8,
    opcode: &[u8],
) -> Result<InterceptHeader, alloc::string::String> {
    expect_eq!(m.header.message_type, ty);
    expect_eq!(m.header.origination_id, vm.id());
    let h = m.intercept_header().ok_or("no intercept header")?;
    expect_eq!(h.vp_index, 0);
    expect_eq!(h.intercept_access_type, access);
    expect_eq!(h.execution_state & 0x13, InterceptHeader::EXEC_EFER_LMA);
    expect!(h.execution_state & InterceptHeader::EXEC_CR0_PE != 0, "CR0.PE clear: {:#x}", h.execution_state);
    expect!(h.cs.attributes & (1 << 13) != 0, "CS not a 64-bit segment: {:#x}", h.cs.attributes);
    expect!(h.rflags & 2 != 0, "RFLAGS bit 1 clear: {:#x}", h.rflags);
    expect!(h.rip >= script::CODE && h.rip < script::CODE + 0x1000, "RIP {:#x}", h.rip);
    expect_eq!(vm.read(h.rip, opcode.len()), opcode.to_vec());
    Ok(h)
}

/// The root's answer to an intercept: registers set (RIP moved past the
/// instruction), the message slot emptied, then InterceptSuspend cleared.
fn resume(ctx: &Ctx, vm: &Vm, next_rip: u64, regs: &[(u32, u128)]) -> Outcome {
    let mut all = alloc::vec::Vec::from(regs);
    all.push((reg::RIP, next_rip as u128));
    expect_status!(ctx.set_regs(vm.id(), 0, &all), SUCCESS);
    expect_status!(ctx.consume_message(0), SUCCESS);
    expect_status!(ctx.set_regs(vm.id(), 0, &[(reg::INTERCEPT_SUSPEND, 0)]), SUCCESS);
    Ok(())
}

fn io_write_message_and_suspend(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), intercept::ACCESS_WRITE, intercept::X64_IO_PORT, PORT as u64), SUCCESS);
    vm.script(&[Op::Out { port: PORT, value: 0xcafe_babe }, Op::Out { port: 0x1235, value: 2 }]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    let h = check_header(&vm, &m, message_type::X64_IO_PORT_INTERCEPT, intercept::ACCESS_TYPE_WRITE, &[0xef])?;
    expect_eq!(h.instruction_length, 1);
    expect_eq!(m.header.payload_size as usize, abi::IoPortIntercept::SIZE);
    let io = abi::IoPortIntercept::read(&m.payload).ok_or("short payload")?;
    expect_eq!(io.port_number, PORT);
    expect_eq!(io.access_info, 0b100);
    expect_eq!(io.rax as u32, 0xcafe_babe);
    // Held: InterceptSuspend set, the OUT not completed.
    let (r, values) = ctx.get_regs(vm.id(), 0, &[reg::INTERCEPT_SUSPEND, reg::EXPLICIT_SUSPEND, reg::RIP]);
    expect_status!(r, SUCCESS);
    expect_eq!(values, alloc::vec![1u128, 0, h.rip as u128]);
    let _ = mx::nanosleep(mx::deadline_after(50_000_000));
    expect_eq!(vm.progress(), 0);
    resume(ctx, &vm, h.rip + 1, &[])?;
    vm.wait_done()?;
    expect_eq!(vm.result(0, 0), 1);
    expect_eq!(vm.result(1, 0), 1);
    // Only the one port was intercepted.
    expect_eq!(ctx.root.message(0).header.message_type, message_type::NONE);
    Ok(())
}

fn io_read_message_and_emulated_value(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), RW, intercept::X64_IO_PORT, PORT as u64), SUCCESS);
    vm.script(&[Op::In { port: PORT }]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    let h = check_header(&vm, &m, message_type::X64_IO_PORT_INTERCEPT, intercept::ACCESS_TYPE_READ, &[0xed])?;
    let io = abi::IoPortIntercept::read(&m.payload).ok_or("short payload")?;
    expect_eq!(io.port_number, PORT);
    expect_eq!(io.access_info, 0b100);
    resume(ctx, &vm, h.rip + h.instruction_length as u64, &[(reg::RAX, 0x1234_5678)])?;
    vm.wait_done()?;
    expect_eq!(vm.result(0, 0), 0x1234_5678);
    Ok(())
}

fn io_read_only_intercept_lets_out_pass(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), intercept::ACCESS_READ, intercept::X64_IO_PORT, PORT as u64), SUCCESS);
    vm.run(&[Op::Out { port: PORT, value: 5 }])?;
    expect_eq!(vm.result(0, 0), 1);
    expect_eq!(ctx.root.message(0).header.message_type, message_type::NONE);
    Ok(())
}

fn io_none_removes(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), RW, intercept::X64_IO_PORT, PORT as u64), SUCCESS);
    expect_status!(ctx.intercept(vm.id(), intercept::ACCESS_NONE, intercept::X64_IO_PORT, PORT as u64), SUCCESS);
    // With no intercept an OUT is dropped and an IN reads all ones.
    vm.run(&[Op::Out { port: PORT, value: 5 }, Op::In { port: PORT }])?;
    expect_eq!(vm.result(0, 0), 1);
    expect_eq!(vm.result(1, 0), 0xffff_ffff);
    expect_eq!(ctx.root.message(0).header.message_type, message_type::NONE);
    Ok(())
}

fn msr_write_message(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), RW, intercept::X64_MSR, 0), SUCCESS);
    vm.script(&[Op::Wrmsr { msr: MSR, value: 0x1111_2222_3333_4444 }]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    let h = check_header(&vm, &m, message_type::X64_MSR_INTERCEPT, intercept::ACCESS_TYPE_WRITE, &[0x0f, 0x30])?;
    expect_eq!(h.instruction_length, 2);
    expect_eq!(m.header.payload_size as usize, abi::MsrIntercept::SIZE);
    let msr = abi::MsrIntercept::read(&m.payload).ok_or("short payload")?;
    expect_eq!(msr.msr_number, MSR);
    expect_eq!((msr.rdx as u32, msr.rax as u32), (0x1111_2222, 0x3333_4444));
    resume(ctx, &vm, h.rip + 2, &[])?;
    vm.wait_done()
}

fn msr_read_message_and_emulated_value(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), intercept::ACCESS_READ, intercept::X64_MSR, 0), SUCCESS);
    vm.script(&[Op::Rdmsr { msr: MSR }]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    let h = check_header(&vm, &m, message_type::X64_MSR_INTERCEPT, intercept::ACCESS_TYPE_READ, &[0x0f, 0x32])?;
    let msr = abi::MsrIntercept::read(&m.payload).ok_or("short payload")?;
    expect_eq!(msr.msr_number, MSR);
    resume(ctx, &vm, h.rip + 2, &[(reg::RAX, 0x5555_6666), (reg::RDX, 0x7777_8888)])?;
    vm.wait_done()?;
    expect_eq!(vm.result(0, 0), 0x7777_8888_5555_6666);
    Ok(())
}

fn cpuid_message_and_emulated_result(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    expect_status!(ctx.intercept(vm.id(), EXEC, intercept::X64_CPUID, LEAF as u64), SUCCESS);
    vm.script(&[Op::Cpuid { leaf: LEAF, subleaf: 5 }]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    let h = check_header(&vm, &m, message_type::X64_CPUID_INTERCEPT, intercept::ACCESS_TYPE_EXECUTE, &[0x0f, 0xa2])?;
    expect_eq!(h.instruction_length, 2);
    expect_eq!(m.header.payload_size as usize, abi::CpuidIntercept::SIZE);
    let c = abi::CpuidIntercept::read(&m.payload).ok_or("short payload")?;
    expect_eq!((c.rax as u32, c.rcx as u32), (LEAF, 5));
    let regs = [(reg::RAX, 0xa0u128), (reg::RBX, 0xb0), (reg::RCX, 0xc0), (reg::RDX, 0xd0)];
    resume(ctx, &vm, h.rip + 2, &regs)?;
    vm.wait_done()?;
    expect_eq!([vm.result(0, 0), vm.result(0, 1), vm.result(0, 2), vm.result(0, 3)], [0xa0, 0xb0, 0xc0, 0xd0]);
    Ok(())
}

fn cpuid_none_removes(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    expect_status!(ctx.intercept(vm.id(), EXEC, intercept::X64_CPUID, abi::cpuid::VENDOR as u64), SUCCESS);
    expect_status!(
        ctx.intercept(vm.id(), intercept::ACCESS_NONE, intercept::X64_CPUID, abi::cpuid::VENDOR as u64),
        SUCCESS
    );
    vm.run(&[Op::Cpuid { leaf: abi::cpuid::VENDOR, subleaf: 0 }])?;
    expect_eq!(vm.result(0, 1) as u32, abi::cpuid::VENDOR_EBX);
    expect_eq!(ctx.root.message(0).header.message_type, message_type::NONE);
    Ok(())
}

fn exception_message(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), EXEC, intercept::X64_EXCEPTION, 6), SUCCESS);
    vm.script(&[Op::Ud2]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    let h =
        check_header(&vm, &m, message_type::X64_EXCEPTION_INTERCEPT, intercept::ACCESS_TYPE_EXECUTE, &[0x0f, 0x0b])?;
    let e = abi::ExceptionIntercept::read(&m.payload).ok_or("short payload")?;
    expect_eq!(e.exception_vector, 6);
    expect_eq!(e.exception_info & 1, 0);
    expect_eq!(e.r14, script::MAILBOX);
    expect_eq!(ctx.get_reg(vm.id(), 0, reg::INTERCEPT_SUSPEND).1, 1);
    resume(ctx, &vm, h.rip + 2, &[])?;
    vm.wait_done()?;
    expect_eq!(vm.result(0, 0), 1);
    Ok(())
}

fn triple_fault_is_unrecoverable_exception(ctx: &Ctx) -> Outcome {
    // No exception intercept and no IDT: the #UD cannot be delivered, the
    // guest triple-faults, and the parent gets the unsolicited
    // UnrecoverableException message (reference §5.2) with the VP held.
    let vm = Vm::new(ctx, 0)?;
    vm.script(&[Op::Ud2]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    expect_eq!(m.header.message_type, message_type::UNRECOVERABLE_EXCEPTION);
    expect_eq!(m.header.origination_id, vm.id());
    let h = m.intercept_header().ok_or("no intercept header")?;
    expect_eq!(h.vp_index, 0);
    expect_eq!(ctx.get_reg(vm.id(), 0, reg::INTERCEPT_SUSPEND).1, 1);
    expect_eq!(ctx.consume_message(0), HvStatus::SUCCESS);
    let _ = mx::nanosleep(mx::deadline_after(20_000_000));
    expect!(!vm.done(), "the guest ran on after a triple fault");
    Ok(())
}

/// Runs `op` in a guest after `install`, expecting no intercept message of
/// `removed` but the triple fault of an undeliverable exception (#GP for
/// the MSR, #UD) that follows once the intercept is gone.
fn removed_intercept_lets_fault_through(
    ctx: &Ctx,
    ty: u32,
    access: u32,
    parameter: u64,
    op: Op,
    removed: u32,
) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), access, ty, parameter), SUCCESS);
    expect_status!(ctx.intercept(vm.id(), intercept::ACCESS_NONE, ty, parameter), SUCCESS);
    vm.script(&[op]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    expect!(m.header.message_type != removed, "an intercept message after its removal");
    expect_eq!(m.header.message_type, message_type::UNRECOVERABLE_EXCEPTION);
    expect_eq!(ctx.consume_message(0), HvStatus::SUCCESS);
    Ok(())
}

fn msr_none_removes(ctx: &Ctx) -> Outcome {
    let op = Op::Wrmsr { msr: MSR, value: 1 };
    removed_intercept_lets_fault_through(ctx, intercept::X64_MSR, RW, 0, op, message_type::X64_MSR_INTERCEPT)
}

fn exception_none_removes(ctx: &Ctx) -> Outcome {
    let ty = intercept::X64_EXCEPTION;
    removed_intercept_lets_fault_through(ctx, ty, EXEC, 6, Op::Ud2, message_type::X64_EXCEPTION_INTERCEPT)
}

fn breakpoint_message_at_int3(ctx: &Ctx) -> Outcome {
    // #BP is trap-like, but its message has RIP at the INT3 and
    // InstructionLength 1, so the root resumes past it.
    let vm = Vm::new(ctx, 0)?;
    expect_status!(ctx.intercept(vm.id(), EXEC, intercept::X64_EXCEPTION, 3), SUCCESS);
    vm.script(&[Op::Int3]);
    vm.start()?;
    let m = ctx.wait_message(0)?;
    let h = check_header(&vm, &m, message_type::X64_EXCEPTION_INTERCEPT, intercept::ACCESS_TYPE_EXECUTE, &[0xcc])?;
    expect_eq!(h.instruction_length, 1);
    let e = abi::ExceptionIntercept::read(&m.payload).ok_or("short payload")?;
    expect_eq!(e.exception_vector, 3);
    resume(ctx, &vm, h.rip + 1, &[])?;
    vm.wait_done()?;
    expect_eq!(vm.result(0, 0), 1);
    Ok(())
}
