//! The guest side (reference §1.6, §4.2-4.3, §6; README "Guests issuing
//! hypercalls"): a child VP discovers the hypervisor through CPUID, enables
//! hypercalls with GUEST_OS_ID and HYPERCALL, and issues slow and fast
//! hypercalls through the hypercall page with its partition's privileges;
//! the depth limit; SynIC MSRs; messages and events from the child to the
//! root's SynIC pages.

use alloc::vec::Vec;

use hv::abi::{self, call, cpuid, msr, port_type, privilege, Control, HvStatus, PortInfo};

use crate::ctx::{flag_set, Ctx};
use crate::harness::Outcome;
use crate::script::{self, Op};
use crate::vm::{enable_hypercalls, guest_call, Vm, GUEST_OS_ID};
use crate::{cases, expect, expect_eq, mem};

cases![
    cpuid_hyperv_leaves,
    cpuid_reports_changed_privileges,
    hypercall_msr_needs_guest_os_id,
    hypercall_page_holds_vmmcall_ret,
    vp_index_and_synic_msr_reset_values,
    unknown_call_code,
    input_value_checks,
    misaligned_and_straddling_blocks,
    get_partition_id_needs_privilege,
    memory_pool_needs_privilege,
    own_balance_with_privilege,
    create_partition_needs_privilege,
    create_partition_too_deep,
    parent_only_calls_denied,
    own_vp_registers_readable,
    hypercall_from_cpl3_is_ud,
    signal_event_fast_and_slow_to_root,
    signal_event_needs_privilege,
    signal_event_raises_only_when_clear,
    signal_event_bad_connection_and_flag,
    post_message_to_root,
    post_message_needs_privilege,
    post_message_sixteen_buffers_to_root,
];

/// Guest-physical flags the root sets for waiting scripts.
const FLAG: u64 = 0x3000;
const FLAG2: u64 = 0x3008;

/// The status of a guest hypercall result (op `i`).
fn status(vm: &Vm, i: usize) -> HvStatus {
    HvStatus(vm.result(i, 0) as u16)
}

/// Fails unless op `i` of the script returned `expected`.
fn expect_guest(vm: &Vm, i: usize, expected: HvStatus) -> Outcome {
    let got = status(vm, i);
    expect!(got == expected, "guest op {i}: expected {expected:?} got {got:?} (result {:#x})", vm.result(i, 0));
    Ok(())
}

fn cpuid_hyperv_leaves(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    vm.run(&[
        Op::Cpuid { leaf: cpuid::VENDOR, subleaf: 0 },
        Op::Cpuid { leaf: cpuid::INTERFACE, subleaf: 0 },
        Op::Cpuid { leaf: cpuid::FEATURES, subleaf: 0 },
        Op::Cpuid { leaf: 1, subleaf: 0 },
    ])?;
    let leaf = |i: usize| [0, 1, 2, 3].map(|k| vm.result(i, k) as u32);
    expect_eq!(leaf(0), [cpuid::MAX_LEAF, cpuid::VENDOR_EBX, cpuid::VENDOR_ECX, cpuid::VENDOR_EDX]);
    expect_eq!(leaf(0)[1].to_le_bytes(), *b"Micr");
    expect_eq!(leaf(1)[0], 0x3123_7648);
    expect_eq!([leaf(2)[0], leaf(2)[1]], [0x5ff, 0]);
    expect!(leaf(3)[2] & cpuid::HYPERVISOR_PRESENT != 0, "CPUID.1:ECX[31] clear: {:#x}", leaf(3)[2]);
    Ok(())
}

fn cpuid_reports_changed_privileges(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    let mask = privilege::CHILD_DEFAULT | privilege::ACCESS_PARTITION_ID | privilege::SIGNAL_EVENTS;
    crate::expect_status!(ctx.set_privileges(vm.id(), mask), SUCCESS);
    vm.run(&[Op::Cpuid { leaf: cpuid::FEATURES, subleaf: 0 }])?;
    expect_eq!([vm.result(0, 0), vm.result(0, 1)], [mask & 0xffff_ffff, mask >> 32]);
    expect_eq!(vm.result(0, 1), 0x22);
    Ok(())
}

fn hypercall_msr_needs_guest_os_id(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    let enable = script::HYPERCALL_PAGE | msr::HYPERCALL_ENABLE;
    vm.run(&[
        Op::Rdmsr { msr: msr::GUEST_OS_ID },
        Op::Wrmsr { msr: msr::HYPERCALL, value: enable },
        Op::Rdmsr { msr: msr::HYPERCALL },
        Op::Wrmsr { msr: msr::GUEST_OS_ID, value: GUEST_OS_ID },
        Op::Rdmsr { msr: msr::GUEST_OS_ID },
        Op::Wrmsr { msr: msr::HYPERCALL, value: enable },
        Op::Rdmsr { msr: msr::HYPERCALL },
        // GUEST_OS_ID = 0 disables the page again.
        Op::Wrmsr { msr: msr::GUEST_OS_ID, value: 0 },
        Op::Rdmsr { msr: msr::HYPERCALL },
    ])?;
    expect_eq!(vm.result(0, 0), 0);
    expect_eq!(vm.result(2, 0) & msr::HYPERCALL_ENABLE, 0);
    expect_eq!(vm.result(4, 0), GUEST_OS_ID);
    expect_eq!(vm.result(6, 0), enable);
    expect_eq!(vm.result(8, 0) & msr::HYPERCALL_ENABLE, 0);
    Ok(())
}

fn hypercall_page_holds_vmmcall_ret(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    vm.write(script::HYPERCALL_PAGE, &[0xcc; 16]);
    // A call through the page returns to the caller with the result in RAX.
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(guest_call(0x7777));
    vm.run(&ops)?;
    expect_eq!(vm.read(script::HYPERCALL_PAGE, 4), abi::HYPERCALL_PAGE_CODE.to_vec());
    expect_eq!(vm.result(2, 0), HvStatus::INVALID_HYPERCALL_CODE.0 as u64);
    Ok(())
}

fn vp_index_and_synic_msr_reset_values(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    vm.run(&[
        Op::Rdmsr { msr: msr::VP_INDEX },
        Op::Rdmsr { msr: msr::SVERSION },
        Op::Rdmsr { msr: msr::SCONTROL },
        Op::Rdmsr { msr: msr::SIMP },
        Op::Rdmsr { msr: msr::SIEFP },
        Op::Rdmsr { msr: msr::SINT0 },
        Op::Rdmsr { msr: msr::SINT15 },
        Op::Wrmsr { msr: msr::SINT0 + 4, value: 0x40 | msr::SINT_AUTO_EOI },
        Op::Rdmsr { msr: msr::SINT0 + 4 },
        Op::Wrmsr { msr: msr::SIMP, value: 0x9000 | msr::ENABLE },
        Op::Rdmsr { msr: msr::SIMP },
        Op::Rdmsr { msr: msr::EOM },
    ])?;
    let got: Vec<u64> = [0, 1, 2, 3, 4, 5, 6, 8, 10, 11].iter().map(|&i| vm.result(i, 0)).collect();
    let expected = alloc::vec![
        0,
        msr::SVERSION_VALUE,
        0,
        0,
        0,
        msr::SINT_RESET,
        msr::SINT_RESET,
        0x40 | msr::SINT_AUTO_EOI,
        0x9000 | msr::ENABLE,
        0
    ];
    expect_eq!(got, expected);
    Ok(())
}

fn unknown_call_code(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    let mut ops = Vec::from(enable_hypercalls());
    for code in [0u16, 0x3f, 0x5e, 0xffff] {
        ops.push(guest_call(code));
    }
    vm.run(&ops)?;
    for i in 2..ops.len() {
        expect_guest(&vm, i, HvStatus::INVALID_HYPERCALL_CODE)?;
    }
    Ok(())
}

fn input_value_checks(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    let balance = Control::simple(call::GET_MEMORY_BALANCE).raw();
    let hc = |control: u64| Op::Hypercall { control, input: script::INPUT, output: script::OUTPUT };
    let mut ops = Vec::from(enable_hypercalls());
    ops.extend([
        hc(balance | 1 << 20),                              // reserved bit
        hc(balance | 1 << 62),                              // reserved bit
        hc(balance | 1 << Control::REP_COUNT_SHIFT),        // rep count on a simple call
        hc(balance | Control::FAST),                        // fast on a memory-only call
        hc(Control::rep(call::DEPOSIT_MEMORY, 1, 1).raw()), // start not below count
    ]);
    vm.run(&ops)?;
    for i in 2..ops.len() {
        expect_guest(&vm, i, HvStatus::INVALID_HYPERCALL_INPUT)?;
    }
    Ok(())
}

fn misaligned_and_straddling_blocks(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    let balance = Control::simple(call::GET_MEMORY_BALANCE).raw();
    let mut ops = Vec::from(enable_hypercalls());
    ops.extend([
        Op::Hypercall { control: balance, input: script::INPUT + 4, output: script::OUTPUT },
        Op::Hypercall { control: balance, input: script::INPUT, output: script::OUTPUT + 2 },
        Op::Hypercall { control: balance, input: script::INPUT + 0xff8, output: script::OUTPUT },
        Op::Hypercall { control: balance, input: script::INPUT, output: script::OUTPUT + 0xff8 },
        // Outside the guest's GPA space.
        Op::Hypercall { control: balance, input: 1 << 52, output: script::OUTPUT },
    ]);
    vm.run(&ops)?;
    for i in 2..ops.len() {
        expect_guest(&vm, i, HvStatus::INVALID_ALIGNMENT)?;
    }
    Ok(())
}

fn get_partition_id_needs_privilege(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    let mut ops = Vec::from(enable_hypercalls());
    ops.extend([guest_call(call::GET_PARTITION_ID), Op::Wait { gpa: FLAG }, guest_call(call::GET_PARTITION_ID)]);
    vm.script(&ops);
    vm.start()?;
    vm.wait_progress(3)?;
    expect_guest(&vm, 2, HvStatus::ACCESS_DENIED)?;
    crate::expect_status!(
        ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::ACCESS_PARTITION_ID),
        SUCCESS
    );
    mem::write_u64(vm.addr(FLAG), 1);
    vm.wait_done()?;
    expect_guest(&vm, 4, HvStatus::SUCCESS)?;
    expect_eq!(mem::read_u64(vm.addr(script::OUTPUT)), vm.id());
    Ok(())
}

fn memory_pool_needs_privilege(ctx: &Ctx) -> Outcome {
    // Without AccessMemoryPool a child cannot read even its own balance.
    let vm = Vm::new(ctx, 2)?;
    let input =
        abi::GetMemoryBalanceIn { partition_id: abi::PARTITION_ID_SELF, proximity_domain_info: Default::default() };
    vm.write(script::INPUT, &input.to_bytes());
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(guest_call(call::GET_MEMORY_BALANCE));
    vm.run(&ops)?;
    expect_guest(&vm, 2, HvStatus::ACCESS_DENIED)
}

fn own_balance_with_privilege(ctx: &Ctx) -> Outcome {
    // HvGetMemoryBalance is "Parent/self / AccessMemoryPool" (reference §2,
    // §4.2): with the privilege a child reads its own pool.
    let vm = Vm::new(ctx, 2)?;
    crate::expect_status!(
        ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::ACCESS_MEMORY_POOL),
        SUCCESS
    );
    let input =
        abi::GetMemoryBalanceIn { partition_id: abi::PARTITION_ID_SELF, proximity_domain_info: Default::default() };
    vm.write(script::INPUT, &input.to_bytes());
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(guest_call(call::GET_MEMORY_BALANCE));
    vm.run(&ops)?;
    expect_guest(&vm, 2, HvStatus::SUCCESS)?;
    let out = vm.read(script::OUTPUT, 16);
    expect_eq!((mem::qword(&out, 0), mem::qword(&out, 8)), vm.child.balance()?);
    expect_eq!(mem::qword(&out, 0), 2);
    Ok(())
}

fn create_partition_needs_privilege(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 2)?;
    vm.write(script::INPUT, &[0; 16]);
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(guest_call(call::CREATE_PARTITION));
    vm.run(&ops)?;
    expect_guest(&vm, 2, HvStatus::ACCESS_DENIED)?;
    expect_eq!(vm.child.balance()?, (2, 21));
    Ok(())
}

fn create_partition_too_deep(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 2)?;
    crate::expect_status!(
        ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::CREATE_PARTITIONS),
        SUCCESS
    );
    vm.write(script::INPUT, &[0; 16]);
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(guest_call(call::CREATE_PARTITION));
    vm.run(&ops)?;
    expect_guest(&vm, 2, HvStatus::PARTITION_TOO_DEEP)?;
    expect_eq!(vm.child.balance()?, (2, 21));
    expect_eq!(ctx.next_child(vm.id(), 0).1, 0);
    Ok(())
}

fn parent_only_calls_denied(ctx: &Ctx) -> Outcome {
    // From the child, on itself: calls only a parent (or a root on itself,
    // or the holder of a privilege the child lacks) may make.
    let vm = Vm::new(ctx, 2)?;
    let me = abi::PARTITION_ID_SELF;
    let inputs: [(u16, Vec<u8>, u16); 11] = [
        (
            call::GET_PARTITION_PROPERTY,
            abi::GetPartitionPropertyIn { partition_id: me, property_code: abi::property::PRIVILEGE_FLAGS, padding: 0 }
                .to_bytes()
                .to_vec(),
            0,
        ),
        (
            call::SET_PARTITION_PROPERTY,
            abi::SetPartitionPropertyIn {
                partition_id: me,
                property_code: abi::property::PRIVILEGE_FLAGS,
                padding: 0,
                property_value: privilege::ALL,
            }
            .to_bytes()
            .to_vec(),
            0,
        ),
        (call::INITIALIZE_PARTITION, abi::PartitionIdIn { partition_id: me }.to_bytes().to_vec(), 0),
        (call::FINALIZE_PARTITION, abi::PartitionIdIn { partition_id: me }.to_bytes().to_vec(), 0),
        (
            call::WITHDRAW_MEMORY,
            abi::WithdrawMemoryIn { partition_id: me, proximity_domain_info: Default::default() }.to_bytes().to_vec(),
            1,
        ),
        (
            call::INSTALL_INTERCEPT,
            abi::InstallInterceptIn {
                partition_id: me,
                access_type: 3,
                intercept_type: abi::intercept::X64_IO_PORT,
                intercept_parameter: 0x80,
            }
            .to_bytes()
            .to_vec(),
            0,
        ),
        (
            call::CREATE_VP,
            abi::CreateVpIn {
                partition_id: me,
                vp_index: 1,
                padding: 0,
                proximity_domain_info: Default::default(),
                flags: 0,
            }
            .to_bytes()
            .to_vec(),
            0,
        ),
        (
            call::UNMAP_GPA_PAGES,
            abi::UnmapGpaPagesIn { target_partition_id: me, target_gpa_base: 0 }.to_bytes().to_vec(),
            1,
        ),
        (
            call::SET_VP_REGISTERS,
            [
                abi::VpRegistersIn { partition_id: me, vp_index: abi::VP_INDEX_SELF, padding: 0 }.to_bytes().to_vec(),
                abi::RegisterAssoc { name: abi::reg::RAX, reserved: [0; 12], value: 1 }.to_bytes().to_vec(),
            ]
            .concat(),
            1,
        ),
        (
            call::CREATE_PORT,
            abi::CreatePortIn {
                port_partition_id: me,
                port_id: 1,
                padding: 0,
                connection_partition_id: ctx.root_id,
                port_info: PortInfo::message(1, abi::VP_INDEX_ANY),
            }
            .to_bytes()
            .to_vec(),
            0,
        ),
        (
            call::DISCONNECT_PORT,
            abi::DisconnectPortIn { connection_partition_id: me, connection_id: 1, padding: 0 }.to_bytes().to_vec(),
            0,
        ),
    ];
    // Each input on its own page-offset slot of the input page (256 bytes apart).
    let mut ops = Vec::from(enable_hypercalls());
    for (i, (code, input, reps)) in inputs.iter().enumerate() {
        let at = script::INPUT + 256 * i as u64;
        vm.write(at, input);
        let control = if *reps > 0 { Control::rep(*code, *reps, 0) } else { Control::simple(*code) };
        ops.push(Op::Hypercall { control: control.raw(), input: at, output: script::OUTPUT });
    }
    let before = vm.child.balance()?;
    vm.run(&ops)?;
    for (i, (code, _, _)) in inputs.iter().enumerate() {
        let got = status(&vm, i + 2);
        expect!(got == HvStatus::ACCESS_DENIED, "code {code:#x}: {got:?}");
    }
    expect_eq!(vm.child.balance()?, before);
    expect_eq!(ctx.privileges(vm.id()).1, privilege::CHILD_DEFAULT);
    Ok(())
}

fn own_vp_registers_readable(ctx: &Ctx) -> Outcome {
    // A guest may read its own VP's registers (HV_VP_INDEX_SELF of itself).
    let vm = Vm::new(ctx, 0)?;
    let header = abi::VpRegistersIn { partition_id: abi::PARTITION_ID_SELF, vp_index: abi::VP_INDEX_SELF, padding: 0 };
    let mut input = header.to_bytes().to_vec();
    input.extend_from_slice(&abi::reg::R14.to_le_bytes());
    input.extend_from_slice(&abi::reg::RSI.to_le_bytes());
    vm.write(script::INPUT, &input);
    let mut ops = Vec::from(enable_hypercalls());
    let control = Control::rep(call::GET_VP_REGISTERS, 2, 0).raw();
    ops.push(Op::Hypercall { control, input: script::INPUT, output: script::OUTPUT });
    vm.run(&ops)?;
    let r = abi::HvResult::from_raw(vm.result(2, 0));
    expect_eq!(r, abi::HvResult::new(HvStatus::SUCCESS, 2));
    let out = vm.read(script::OUTPUT, 32);
    // R14 is the mailbox; RSI the op being run (op 2).
    expect_eq!(mem::qword(&out, 0), script::MAILBOX);
    expect_eq!(mem::qword(&out, 16), script::OPS + 2 * script::OP_SIZE);
    Ok(())
}

fn hypercall_from_cpl3_is_ud(ctx: &Ctx) -> Outcome {
    // A hypercall from ring 3 is #UD (reference §1.6): the call is not
    // served. The guest has no IDT, so the #UD ends in a triple fault and
    // an UnrecoverableException message; the signal never reaches us.
    let vm = Vm::new(ctx, 1)?;
    let (_, cr4) = ctx.get_reg(vm.id(), 0, abi::reg::CR4);
    expect!(cr4 & (3 << 20) == 0, "the VP starts with SMEP/SMAP on (CR4 {cr4:#x}): ring 0 cannot run on user pages");
    for (gpa, words) in script::user_page_tables() {
        vm.write(gpa, &mem::qwords(&words));
    }
    vm.write(script::GDT, &mem::qwords(&script::user_gdt()));
    crate::expect_status!(ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS), SUCCESS);
    let port = root_event_port(ctx, &vm, 0x305, 0x405)?;
    ctx.notified();
    let mut ops = Vec::from(enable_hypercalls());
    ops.extend([Op::User, signal_fast(0x405, 0)]);
    vm.script(&ops);
    let result = (|| -> Outcome {
        vm.start()?;
        let m = ctx.wait_message(0)?;
        expect_eq!(m.header.message_type, abi::message_type::UNRECOVERABLE_EXCEPTION);
        expect_eq!(vm.progress(), 3);
        expect_eq!(vm.result(3, 0), 0);
        expect!(crate::ctx::flags_set(&ctx.root.event_flags(1)).is_empty(), "the ring-3 signal was served");
        expect_eq!(ctx.consume_message(0), HvStatus::SUCCESS);
        Ok(())
    })();
    drop_root_port(ctx, port);
    result
}

/// An event port on our own partition (SINT 1, flags 20..24) and the
/// child's connection `connection` to it; returns the port id.
fn root_event_port(ctx: &Ctx, vm: &Vm, port: u32, connection: u32) -> Result<u32, alloc::string::String> {
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    crate::vm::setup("root event port", ctx.create_port(ctx.root_id, port, vm.id(), PortInfo::event(1, 0, 20, 4)))?;
    crate::vm::setup("child connection", ctx.connect(vm.id(), connection, ctx.root_id, port, port_type::EVENT))?;
    Ok(port)
}

/// Deletes our port and clears our SINT1 flags.
fn drop_root_port(ctx: &Ctx, port: u32) {
    let _ = ctx.delete_port(ctx.root_id, port);
    for flag in 0..abi::EVENT_FLAGS_COUNT {
        ctx.root.test_and_clear_event_flag(1, flag);
    }
    ctx.notified();
}

fn signal_fast(connection: u32, flag: u16) -> Op {
    Op::Hypercall {
        control: Control::fast(call::SIGNAL_EVENT).raw(),
        input: connection as u64 | (flag as u64) << 32,
        output: 0,
    }
}

fn signal_event_fast_and_slow_to_root(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    crate::expect_status!(ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS), SUCCESS);
    let port = root_event_port(ctx, &vm, 0x301, 0x401)?;
    ctx.notified();
    vm.write(script::INPUT, &abi::SignalEventIn { connection_id: 0x401, flag_number: 3, reserved: 0 }.to_bytes());
    let mut ops = Vec::from(enable_hypercalls());
    ops.extend([signal_fast(0x401, 1), guest_call(call::SIGNAL_EVENT)]);
    let run = vm.run(&ops);
    let area = ctx.root.event_flags(1);
    let notified = ctx.notified();
    drop_root_port(ctx, port);
    run?;
    expect_guest(&vm, 2, HvStatus::SUCCESS)?;
    expect_guest(&vm, 3, HvStatus::SUCCESS)?;
    expect_eq!(crate::ctx::flags_set(&area), alloc::vec![21u32, 23]);
    expect!(notified, "no notification");
    Ok(())
}

fn signal_event_needs_privilege(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    let port = root_event_port(ctx, &vm, 0x302, 0x402)?;
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(signal_fast(0x402, 0));
    let run = vm.run(&ops);
    let area = ctx.root.event_flags(1);
    drop_root_port(ctx, port);
    run?;
    expect_guest(&vm, 2, HvStatus::ACCESS_DENIED)?;
    expect!(crate::ctx::flags_set(&area).is_empty(), "a flag was set");
    Ok(())
}

fn signal_event_raises_only_when_clear(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    crate::expect_status!(ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS), SUCCESS);
    let port = root_event_port(ctx, &vm, 0x303, 0x403)?;
    let result = (|| -> Outcome {
        ctx.notified();
        let mut ops = Vec::from(enable_hypercalls());
        ops.extend([
            signal_fast(0x403, 2),
            Op::Wait { gpa: FLAG },
            signal_fast(0x403, 2),
            Op::Wait { gpa: FLAG2 },
            signal_fast(0x403, 2),
        ]);
        vm.script(&ops);
        vm.start()?;
        vm.wait_progress(3)?;
        ctx.wait_flag(1, 22)?;
        expect!(ctx.notified(), "the first signal raised nothing");
        mem::write_u64(vm.addr(FLAG), 1);
        vm.wait_progress(5)?;
        expect!(flag_set(&ctx.root.event_flags(1), 22));
        expect!(!ctx.notified(), "a signal of a set flag raised the SINT");
        // Cleared by the root: the next signal raises again.
        expect!(ctx.root.test_and_clear_event_flag(1, 22));
        mem::write_u64(vm.addr(FLAG2), 1);
        vm.wait_done()?;
        expect!(flag_set(&ctx.root.event_flags(1), 22));
        expect!(ctx.notified(), "the signal after the clear raised nothing");
        for i in [2, 4, 6] {
            expect_guest(&vm, i, HvStatus::SUCCESS)?;
        }
        Ok(())
    })();
    drop_root_port(ctx, port);
    result
}

fn signal_event_bad_connection_and_flag(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    crate::expect_status!(ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS), SUCCESS);
    let port = root_event_port(ctx, &vm, 0x304, 0x404)?;
    let mut ops = Vec::from(enable_hypercalls());
    ops.extend([signal_fast(0x405, 0), signal_fast(0x404, 4), signal_fast(0x404, 0xffff)]);
    let run = vm.run(&ops);
    let area = ctx.root.event_flags(1);
    drop_root_port(ctx, port);
    run?;
    expect_guest(&vm, 2, HvStatus::INVALID_CONNECTION_ID)?;
    expect_guest(&vm, 3, HvStatus::INVALID_PARAMETER)?;
    expect_guest(&vm, 4, HvStatus::INVALID_PARAMETER)?;
    expect!(crate::ctx::flags_set(&area).is_empty(), "a flag was set");
    Ok(())
}

/// A message port on our own partition (SINT 2) and the child's connection.
fn root_message_port(ctx: &Ctx, vm: &Vm, port: u32, connection: u32) -> Outcome {
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    crate::vm::setup("root message port", ctx.create_port(ctx.root_id, port, vm.id(), PortInfo::message(2, 0)))?;
    crate::vm::setup("child connection", ctx.connect(vm.id(), connection, ctx.root_id, port, port_type::MESSAGE))
}

/// Empties our SINT2 slot and queue; the messages seen.
fn drain_root_messages(ctx: &Ctx) -> Vec<abi::HvMessage> {
    let mut seen = Vec::new();
    for _ in 0..64 {
        let m = ctx.root.message(2);
        if m.header.message_type == abi::message_type::NONE {
            break;
        }
        seen.push(m);
        ctx.consume_message(2);
    }
    seen
}

fn post_input(connection: u32, message_type: u32, payload: &[u8]) -> [u8; 256] {
    let mut input = [0u8; 256];
    abi::PostMessageIn { connection_id: connection, padding: 0, message_type, payload_size: payload.len() as u32 }
        .write(&mut input);
    input[16..16 + payload.len()].copy_from_slice(payload);
    input
}

fn post_message_to_root(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    crate::expect_status!(ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::POST_MESSAGES), SUCCESS);
    root_message_port(ctx, &vm, 0x311, 0x411)?;
    let payload: Vec<u8> = (1..=20u8).collect();
    vm.write(script::INPUT, &post_input(0x411, 0x4242, &payload));
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(guest_call(call::POST_MESSAGE));
    let result = (|| -> Outcome {
        vm.run(&ops)?;
        expect_guest(&vm, 2, HvStatus::SUCCESS)?;
        let m = ctx.wait_message(2)?;
        expect_eq!(m.header.message_type, 0x4242);
        expect_eq!(m.header.payload_size, 20);
        expect_eq!(m.header.origination_id, 0x311);
        expect_eq!(m.payload[..20], payload[..]);
        Ok(())
    })();
    drain_root_messages(ctx);
    let _ = ctx.delete_port(ctx.root_id, 0x311);
    result
}

fn post_message_needs_privilege(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    root_message_port(ctx, &vm, 0x312, 0x412)?;
    vm.write(script::INPUT, &post_input(0x412, 1, &[]));
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(guest_call(call::POST_MESSAGE));
    let run = vm.run(&ops);
    let seen = drain_root_messages(ctx);
    let _ = ctx.delete_port(ctx.root_id, 0x312);
    run?;
    expect_guest(&vm, 2, HvStatus::ACCESS_DENIED)?;
    expect!(seen.is_empty(), "a message arrived: {seen:?}");
    Ok(())
}

fn post_message_sixteen_buffers_to_root(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 1)?;
    crate::expect_status!(ctx.set_privileges(vm.id(), privilege::CHILD_DEFAULT | privilege::POST_MESSAGES), SUCCESS);
    root_message_port(ctx, &vm, 0x313, 0x413)?;
    // 18 posts of the same input; we do not empty the slot meanwhile.
    vm.write(script::INPUT, &post_input(0x413, 0x77, &[9]));
    let mut ops = Vec::from(enable_hypercalls());
    ops.extend(core::iter::repeat_n(guest_call(call::POST_MESSAGE), 18));
    let run = vm.run(&ops);
    let seen = drain_root_messages(ctx);
    let _ = ctx.delete_port(ctx.root_id, 0x313);
    run?;
    let statuses: Vec<HvStatus> = (2..20).map(|i| status(&vm, i)).collect();
    let mut expected = alloc::vec![HvStatus::SUCCESS; 1 + abi::PORT_MESSAGE_BUFFERS];
    expected.push(HvStatus::INSUFFICIENT_BUFFERS);
    expect_eq!(statuses, expected);
    // Every accepted message arrives once the root empties its slot.
    expect_eq!(seen.len(), 1 + abi::PORT_MESSAGE_BUFFERS);
    expect!(seen.iter().all(|m| m.header.message_type == 0x77 && m.payload[0] == 9), "{seen:?}");
    Ok(())
}
