//! Ports and connections from the root's side (reference §3.1, §6;
//! decisions 6, 8; README "SynIC, ports and connections"): HvCreatePort,
//! HvDeletePort, HvConnectPort, HvDisconnectPort, HvGetPortProperty,
//! HvPostMessage into a child's SIM page (16 buffers per port), and
//! HvSignalEvent into a child's SIEF page. The child enables its SynIC
//! with WRMSRs; its SIM and SIEF pages are root pages we read directly.

use alloc::vec::Vec;

use hv::abi::{self, msr, port_property, port_type, HvStatus, PortInfo};

use crate::ctx::{flags_set, Ctx};
use crate::harness::Outcome;
use crate::script::{self, Op};
use crate::vm::{Child, Vm};
use crate::{cases, expect, expect_eq, expect_status, mem};

cases![
    create_port_message_and_event,
    create_port_id_in_use,
    create_port_id_high_bits,
    create_port_same_partition_twice,
    create_port_unknown_partitions,
    create_port_bad_sint,
    create_port_bad_type,
    create_port_event_flag_range,
    create_port_reserved_fields,
    create_port_unknown_vp,
    create_port_uninitialized,
    delete_port_twice,
    delete_port_unknown_partition,
    connect_port_already_connected,
    connect_connection_id_in_use,
    connect_connection_id_high_bits,
    connect_no_such_port,
    connect_partition_not_named_by_port,
    disconnect_twice,
    disconnect_unknown_partition,
    port_property_codes,
    post_message_delivers_bytes,
    post_message_bad_type,
    post_message_payload_too_big,
    post_message_unknown_connection,
    post_message_wrong_port_type,
    post_message_port_deleted,
    post_message_synic_disabled,
    post_message_sixteen_buffers,
    post_and_signal_target_vp_gone,
    end_of_message_delivers_queued_in_order,
    delete_port_frees_its_buffers,
    signal_event_sets_flag,
    signal_event_flag_out_of_range,
    signal_event_wrong_port_type,
    signal_event_unknown_connection,
    signal_event_masked_sint,
    signal_event_synic_disabled,
];

/// SINT vectors the child programs (never delivered: it halts with IF = 0).
const MESSAGE_SINT: u32 = 1;
const EVENT_SINT: u32 = 2;
/// A SINT the child leaves masked.
const MASKED_SINT: u32 = 3;

/// A child with VP 0 that enabled its SynIC (SIM 0x9000, SIEF 0xA000,
/// SINT1 and SINT2 unmasked) and halted; `extra` pages left in its pool.
fn synic_vm(ctx: &Ctx, extra: usize) -> Result<Vm<'_>, alloc::string::String> {
    let vm = Vm::new(ctx, extra)?;
    vm.run(&[
        Op::Wrmsr { msr: msr::SIMP, value: script::SIM | msr::ENABLE },
        Op::Wrmsr { msr: msr::SIEFP, value: script::SIEF | msr::ENABLE },
        Op::Wrmsr { msr: msr::SINT0 + MESSAGE_SINT, value: 0x50 },
        Op::Wrmsr { msr: msr::SINT0 + EVENT_SINT, value: 0x51 },
        Op::Wrmsr { msr: msr::SCONTROL, value: msr::ENABLE },
        Op::Rdmsr { msr: msr::SINT0 + MASKED_SINT },
    ])?;
    expect_eq!(vm.result(5, 0), msr::SINT_RESET);
    Ok(vm)
}

/// Message port `port` on `vm`'s VP 0 SINT1 and our connection `connection` to it.
fn message_channel(ctx: &Ctx, vm: &Vm, port: u32, connection: u32) -> Outcome {
    expect_status!(ctx.create_port(vm.id(), port, ctx.root_id, PortInfo::message(MESSAGE_SINT, 0)), SUCCESS);
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    expect_status!(ctx.connect(ctx.root_id, connection, vm.id(), port, port_type::MESSAGE), SUCCESS);
    Ok(())
}

fn create_port_message_and_event(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 2)?;
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, PortInfo::message(1, abi::VP_INDEX_ANY)), SUCCESS);
    expect_status!(
        ctx.create_port(child.id, 0xff_ffff, ctx.root_id, PortInfo::event(15, abi::VP_INDEX_ANY, 0, 1)),
        SUCCESS
    );
    expect_eq!(child.balance()?, (0, 18));
    Ok(())
}

fn create_port_id_in_use(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 2)?;
    let info = PortInfo::message(1, abi::VP_INDEX_ANY);
    expect_status!(ctx.create_port(child.id, 9, ctx.root_id, info), SUCCESS);
    expect_status!(ctx.create_port(child.id, 9, ctx.root_id, info), INVALID_PORT_ID);
    expect_eq!(child.balance()?, (1, 17));
    Ok(())
}

fn create_port_id_high_bits(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let info = PortInfo::message(1, abi::VP_INDEX_ANY);
    for port in [0x0100_0009u32, 0x8000_0000, u32::MAX] {
        let r = ctx.create_port(child.id, port, ctx.root_id, info);
        expect!(r.status == HvStatus::INVALID_PORT_ID, "port {port:#x}: {:?}", r.status);
    }
    Ok(())
}

fn create_port_same_partition_twice(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    expect_status!(
        ctx.create_port(child.id, 1, child.id, PortInfo::message(1, abi::VP_INDEX_ANY)),
        INVALID_PARTITION_ID
    );
    expect_eq!(child.balance()?, (1, 16));
    Ok(())
}

fn create_port_unknown_partitions(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let info = PortInfo::message(1, abi::VP_INDEX_ANY);
    expect_status!(ctx.create_port(0x7fff_ffff_ffff_fffe, 1, ctx.root_id, info), INVALID_PARTITION_ID);
    expect_status!(ctx.create_port(child.id, 1, 0x7fff_ffff_ffff_fffe, info), INVALID_PARTITION_ID);
    expect_status!(ctx.create_port(child.id, 1, 0, info), INVALID_PARTITION_ID);
    expect_eq!(child.balance()?, (1, 16));
    Ok(())
}

fn create_port_bad_sint(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    for sint in [0u32, 16, u32::MAX] {
        let r = ctx.create_port(child.id, 1, ctx.root_id, PortInfo::message(sint, abi::VP_INDEX_ANY));
        expect!(r.status == HvStatus::INVALID_PARAMETER, "message SINT {sint}: {:?}", r.status);
        let r = ctx.create_port(child.id, 1, ctx.root_id, PortInfo::event(sint, abi::VP_INDEX_ANY, 0, 1));
        expect!(r.status == HvStatus::INVALID_PARAMETER, "event SINT {sint}: {:?}", r.status);
    }
    Ok(())
}

fn create_port_bad_type(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    for ty in [0u32, 5, 0x100] {
        let mut info = PortInfo::message(1, abi::VP_INDEX_ANY);
        info.port_type = ty;
        let r = ctx.create_port(child.id, 1, ctx.root_id, info);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "type {ty}: {:?}", r.status);
    }
    expect_eq!(child.balance()?, (1, 16));
    Ok(())
}

fn create_port_event_flag_range(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 3)?;
    let any = abi::VP_INDEX_ANY;
    for (base, count) in [(0u16, 0u16), (2000, 49), (2047, 2), (2048, 1), (0, 2049)] {
        let r = ctx.create_port(child.id, 1, ctx.root_id, PortInfo::event(1, any, base, count));
        expect!(r.status == HvStatus::INVALID_PARAMETER, "base {base} count {count}: {:?}", r.status);
    }
    // Decision 6: base + count <= 2048 is valid.
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, PortInfo::event(1, any, 2000, 48)), SUCCESS);
    expect_status!(ctx.create_port(child.id, 2, ctx.root_id, PortInfo::event(1, any, 0, 2048)), SUCCESS);
    expect_status!(ctx.create_port(child.id, 3, ctx.root_id, PortInfo::event(1, any, 2047, 1)), SUCCESS);
    Ok(())
}

fn create_port_reserved_fields(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let mut message = PortInfo::message(1, abi::VP_INDEX_ANY);
    message.base_flag_number = 1; // message ports: bytes 16-23 are RsvdZ
    let mut event = PortInfo::event(1, abi::VP_INDEX_ANY, 0, 1);
    event.reserved = 1;
    for info in [message, event] {
        let r = ctx.create_port(child.id, 1, ctx.root_id, info);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "{info:?}: {:?}", r.status);
    }
    expect_eq!(child.balance()?, (1, 16));
    Ok(())
}

fn create_port_unknown_vp(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1 + crate::vm::VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    for vp in [1u32, 64, abi::VP_INDEX_SELF] {
        let r = ctx.create_port(child.id, 1, ctx.root_id, PortInfo::message(1, vp));
        expect!(r.status == HvStatus::INVALID_VP_INDEX, "VP {vp:#x}: {:?}", r.status);
    }
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, PortInfo::message(1, 0)), SUCCESS);
    Ok(())
}

fn create_port_uninitialized(ctx: &Ctx) -> Outcome {
    let active = Child::active(ctx, 1)?;
    let fresh = Child::new(ctx)?;
    fresh.deposit(1)?;
    let info = PortInfo::message(1, abi::VP_INDEX_ANY);
    expect_status!(ctx.create_port(fresh.id, 1, ctx.root_id, info), INVALID_PARTITION_STATE);
    // Either partition must be active.
    expect_status!(ctx.create_port(active.id, 1, fresh.id, info), INVALID_PARTITION_STATE);
    expect_eq!(active.balance()?, (1, 16));
    Ok(())
}

fn delete_port_twice(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 2)?;
    let info = PortInfo::message(1, abi::VP_INDEX_ANY);
    expect_status!(ctx.create_port(child.id, 4, ctx.root_id, info), SUCCESS);
    expect_status!(ctx.create_port(child.id, 5, ctx.root_id, info), SUCCESS);
    expect_status!(ctx.delete_port(child.id, 4), SUCCESS);
    expect_status!(ctx.delete_port(child.id, 4), INVALID_PORT_ID);
    expect_status!(ctx.fast(abi::call::DELETE_PORT, child.id, 5), SUCCESS);
    expect_status!(ctx.delete_port(child.id, 6), INVALID_PORT_ID);
    expect_eq!(child.balance()?, (2, 16));
    // The id is free again.
    expect_status!(ctx.create_port(child.id, 4, ctx.root_id, info), SUCCESS);
    Ok(())
}

fn delete_port_unknown_partition(ctx: &Ctx) -> Outcome {
    for id in [0u64, 0x7fff_ffff_ffff_fffe] {
        expect!(ctx.delete_port(id, 1).status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn connect_port_already_connected(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    ctx.root_pool_at_least(2).map_err(|r| alloc::format!("{r:?}"))?;
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, PortInfo::message(1, abi::VP_INDEX_ANY)), SUCCESS);
    let before = ctx.balance(ctx.root_id).1;
    expect_status!(ctx.connect(ctx.root_id, 20, child.id, 1, port_type::MESSAGE), SUCCESS);
    expect_eq!(ctx.balance(ctx.root_id).1, (before.0 - 1, before.1 + 1));
    expect_status!(ctx.connect(ctx.root_id, 21, child.id, 1, port_type::MESSAGE), INVALID_PORT_ID);
    expect_eq!(ctx.balance(ctx.root_id).1, (before.0 - 1, before.1 + 1));
    expect_status!(ctx.disconnect(ctx.root_id, 20), SUCCESS);
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    Ok(())
}

fn connect_connection_id_in_use(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 2)?;
    ctx.root_pool_at_least(2).map_err(|r| alloc::format!("{r:?}"))?;
    let info = PortInfo::message(1, abi::VP_INDEX_ANY);
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, info), SUCCESS);
    expect_status!(ctx.create_port(child.id, 2, ctx.root_id, info), SUCCESS);
    expect_status!(ctx.connect(ctx.root_id, 30, child.id, 1, port_type::MESSAGE), SUCCESS);
    expect_status!(ctx.connect(ctx.root_id, 30, child.id, 2, port_type::MESSAGE), INVALID_CONNECTION_ID);
    expect_status!(ctx.disconnect(ctx.root_id, 30), SUCCESS);
    Ok(())
}

fn connect_connection_id_high_bits(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, PortInfo::message(1, abi::VP_INDEX_ANY)), SUCCESS);
    for connection in [0x0100_0000u32, u32::MAX] {
        let r = ctx.connect(ctx.root_id, connection, child.id, 1, port_type::MESSAGE);
        expect!(r.status == HvStatus::INVALID_CONNECTION_ID, "connection {connection:#x}: {:?}", r.status);
    }
    Ok(())
}

fn connect_no_such_port(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    for port in [1u32, 0x0100_0001] {
        let r = ctx.connect(ctx.root_id, 40, child.id, port, port_type::MESSAGE);
        expect!(r.status == HvStatus::INVALID_PORT_ID, "port {port:#x}: {:?}", r.status);
    }
    Ok(())
}

fn connect_partition_not_named_by_port(ctx: &Ctx) -> Outcome {
    // The port names A as the only partition allowed to connect; B tries.
    let owner = Child::active(ctx, 1)?;
    let a = Child::active(ctx, 1)?;
    let b = Child::active(ctx, 1)?;
    expect_status!(ctx.create_port(owner.id, 1, a.id, PortInfo::event(1, abi::VP_INDEX_ANY, 0, 4)), SUCCESS);
    expect_status!(ctx.connect(b.id, 1, owner.id, 1, port_type::EVENT), INVALID_PARTITION_ID);
    expect_eq!(b.balance()?, (1, 16));
    expect_status!(ctx.connect(a.id, 1, owner.id, 1, port_type::EVENT), SUCCESS);
    Ok(())
}

fn disconnect_twice(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    message_channel(ctx, &vm, 1, 50)?;
    expect_status!(ctx.disconnect(ctx.root_id, 50), SUCCESS);
    expect_status!(ctx.disconnect(ctx.root_id, 50), INVALID_CONNECTION_ID);
    expect_status!(ctx.post(50, 1, 0, &[]), INVALID_CONNECTION_ID);
    // The port is free for a new connection; the fast form disconnects too.
    expect_status!(ctx.connect(ctx.root_id, 51, vm.id(), 1, port_type::MESSAGE), SUCCESS);
    expect_status!(ctx.fast(abi::call::DISCONNECT_PORT, ctx.root_id, 51), SUCCESS);
    Ok(())
}

fn disconnect_unknown_partition(ctx: &Ctx) -> Outcome {
    for id in [0u64, 0x7fff_ffff_ffff_fffe] {
        expect!(ctx.disconnect(id, 1).status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn port_property_codes(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    message_channel(ctx, &vm, 2, 60)?;
    expect_eq!(ctx.port_property(vm.id(), 2, port_property::POST_COUNT), (abi::HvResult::new(HvStatus::SUCCESS, 0), 0));
    // PostCount: messages held in the port's buffers. The first post goes
    // straight into the empty slot; the next two wait in buffers.
    for _ in 0..3 {
        expect_status!(ctx.post(60, 7, 0, &[]), SUCCESS);
    }
    expect_eq!(ctx.port_property(vm.id(), 2, port_property::POST_COUNT).1, 2);
    expect_eq!(ctx.port_property(vm.id(), 2, port_property::PREFERRED_TARGET_VP).1, 0);
    expect_status!(ctx.port_property(vm.id(), 2, 0x1234), UNKNOWN_PROPERTY);
    expect_status!(ctx.port_property(vm.id(), 3, port_property::POST_COUNT), INVALID_PORT_ID);
    expect_status!(ctx.port_property(0x7fff_ffff_ffff_fffe, 2, port_property::POST_COUNT), INVALID_PARTITION_ID);
    expect_status!(ctx.disconnect(ctx.root_id, 60), SUCCESS);
    Ok(())
}

fn post_message_delivers_bytes(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    message_channel(ctx, &vm, 0x42, 70)?;
    let payload: Vec<u8> = (0..240u32).map(|i| i as u8 ^ 0x5a).collect();
    expect_status!(ctx.post(70, 0x1234, 24, &payload), SUCCESS);
    let slot = vm.read(script::SIM + 256 * MESSAGE_SINT as u64, 256);
    let m = abi::HvMessage::read(&slot).ok_or("slot")?;
    expect_eq!(m.header.message_type, 0x1234);
    expect_eq!(m.header.payload_size, 24);
    expect_eq!(m.header.message_flags, 0);
    expect_eq!(m.header.origination_id, 0x42);
    expect_eq!(m.payload[..24], payload[..24]);
    // Nothing in the other slots.
    expect_eq!(vm.read(script::SIM, 8), alloc::vec![0u8; 8]);
    expect_status!(ctx.disconnect(ctx.root_id, 70), SUCCESS);
    Ok(())
}

fn post_message_bad_type(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    message_channel(ctx, &vm, 1, 71)?;
    for ty in [0u32, 0x8000_0000, 0x8001_0000, u32::MAX] {
        let r = ctx.post(71, ty, 0, &[]);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "type {ty:#x}: {:?}", r.status);
    }
    expect_eq!(vm.read(script::SIM + 256 * MESSAGE_SINT as u64, 4), alloc::vec![0u8; 4]);
    expect_status!(ctx.disconnect(ctx.root_id, 71), SUCCESS);
    Ok(())
}

fn post_message_payload_too_big(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    message_channel(ctx, &vm, 1, 72)?;
    for size in [241u32, 256, u32::MAX] {
        let r = ctx.post(72, 1, size, &[]);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "size {size}: {:?}", r.status);
    }
    expect_status!(ctx.post(72, 1, 240, &[0xab; 240]), SUCCESS);
    expect_eq!(vm.read(script::SIM + 256 * MESSAGE_SINT as u64 + 4, 1), alloc::vec![240u8]);
    expect_status!(ctx.disconnect(ctx.root_id, 72), SUCCESS);
    Ok(())
}

fn post_message_unknown_connection(ctx: &Ctx) -> Outcome {
    for connection in [0u32, 0x77_7777, 0x0100_0000] {
        let r = ctx.post(connection, 1, 0, &[]);
        expect!(r.status == HvStatus::INVALID_CONNECTION_ID, "connection {connection:#x}: {:?}", r.status);
    }
    Ok(())
}

fn post_message_wrong_port_type(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    expect_status!(ctx.create_port(vm.id(), 1, ctx.root_id, PortInfo::event(EVENT_SINT, 0, 0, 8)), SUCCESS);
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    expect_status!(ctx.connect(ctx.root_id, 73, vm.id(), 1, port_type::EVENT), SUCCESS);
    expect_status!(ctx.post(73, 1, 0, &[]), INVALID_PORT_ID);
    expect_status!(ctx.disconnect(ctx.root_id, 73), SUCCESS);
    Ok(())
}

fn post_message_port_deleted(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    message_channel(ctx, &vm, 1, 74)?;
    expect_status!(ctx.delete_port(vm.id(), 1), SUCCESS);
    expect_status!(ctx.post(74, 1, 0, &[]), INVALID_PORT_ID);
    expect_status!(ctx.disconnect(ctx.root_id, 74), SUCCESS);
    Ok(())
}

fn post_message_synic_disabled(ctx: &Ctx) -> Outcome {
    // VP 0 exists but never enabled its SynIC.
    let child = Child::active(ctx, 1 + crate::vm::VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, PortInfo::message(1, 0)), SUCCESS);
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    expect_status!(ctx.connect(ctx.root_id, 75, child.id, 1, port_type::MESSAGE), SUCCESS);
    expect_status!(ctx.post(75, 1, 0, &[]), INVALID_SYNIC_STATE);
    expect_status!(ctx.disconnect(ctx.root_id, 75), SUCCESS);
    Ok(())
}

fn post_message_sixteen_buffers(ctx: &Ctx) -> Outcome {
    // The guest never empties its slot: the first message is delivered into
    // it, the next sixteen wait in the port's buffers, the one after fails.
    let vm = synic_vm(ctx, 1)?;
    message_channel(ctx, &vm, 1, 76)?;
    let mut statuses = Vec::new();
    for i in 0..18u8 {
        statuses.push(ctx.post(76, 0x100 + i as u32, 1, &[i]).status);
    }
    let mut expected = alloc::vec![HvStatus::SUCCESS; 1 + abi::PORT_MESSAGE_BUFFERS];
    expected.push(HvStatus::INSUFFICIENT_BUFFERS);
    expect_eq!(statuses, expected);
    // The slot holds the first.
    let slot = vm.read(script::SIM + 256 * MESSAGE_SINT as u64, 17);
    expect_eq!(u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]), 0x100);
    expect_eq!(slot[16], 0);
    expect_status!(ctx.disconnect(ctx.root_id, 76), SUCCESS);
    Ok(())
}

fn post_and_signal_target_vp_gone(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 2 + crate::vm::VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 2), SUCCESS);
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, PortInfo::message(1, 2)), SUCCESS);
    expect_status!(ctx.create_port(child.id, 2, ctx.root_id, PortInfo::event(1, 2, 0, 1)), SUCCESS);
    ctx.root_pool_at_least(2).map_err(|r| alloc::format!("{r:?}"))?;
    expect_status!(ctx.connect(ctx.root_id, 86, child.id, 1, port_type::MESSAGE), SUCCESS);
    expect_status!(ctx.connect(ctx.root_id, 87, child.id, 2, port_type::EVENT), SUCCESS);
    expect_status!(ctx.delete_vp(child.id, 2), SUCCESS);
    expect_status!(ctx.post(86, 1, 0, &[]), INVALID_VP_INDEX);
    expect_status!(ctx.signal(87, 0), INVALID_VP_INDEX);
    expect_status!(ctx.disconnect(ctx.root_id, 86), SUCCESS);
    expect_status!(ctx.disconnect(ctx.root_id, 87), SUCCESS);
    Ok(())
}

fn end_of_message_delivers_queued_in_order(ctx: &Ctx) -> Outcome {
    // The child empties its slot and writes EOM twice; each EOM moves the
    // next queued message into the slot, MessagePending set while more wait.
    let vm = Vm::new(ctx, 1)?;
    let slot = script::SIM + 256 * MESSAGE_SINT as u64;
    let (flag1, flag2) = (0x3000, 0x3008);
    vm.script(&[
        Op::Wrmsr { msr: msr::SIMP, value: script::SIM | msr::ENABLE },
        Op::Wrmsr { msr: msr::SINT0 + MESSAGE_SINT, value: 0x50 },
        Op::Wrmsr { msr: msr::SCONTROL, value: msr::ENABLE },
        Op::Wait { gpa: flag1 },
        Op::Store { gpa: slot, value: 0 },
        Op::Wrmsr { msr: msr::EOM, value: 0 },
        Op::Wait { gpa: flag2 },
        Op::Store { gpa: slot, value: 0 },
        Op::Wrmsr { msr: msr::EOM, value: 0 },
    ]);
    vm.start()?;
    vm.wait_progress(3)?;
    message_channel(ctx, &vm, 1, 88)?;
    for (i, ty) in [0x11u32, 0x22, 0x33].iter().enumerate() {
        expect_status!(ctx.post(88, *ty, 1, &[i as u8]), SUCCESS);
    }
    let header = |vm: &Vm| abi::MessageHeader::read(&vm.read(slot, 16)).unwrap_or_default();
    expect_eq!((header(&vm).message_type, header(&vm).message_flags), (0x11, abi::MessageHeader::MESSAGE_PENDING));
    expect_eq!(ctx.port_property(vm.id(), 1, port_property::POST_COUNT).1, 2);
    mem::write_u64(vm.addr(flag1), 1);
    vm.wait_progress(6)?;
    expect_eq!((header(&vm).message_type, header(&vm).message_flags), (0x22, abi::MessageHeader::MESSAGE_PENDING));
    expect_eq!(vm.read(slot + 16, 1), alloc::vec![1u8]);
    expect_eq!(ctx.port_property(vm.id(), 1, port_property::POST_COUNT).1, 1);
    mem::write_u64(vm.addr(flag2), 1);
    vm.wait_done()?;
    expect_eq!((header(&vm).message_type, header(&vm).message_flags), (0x33, 0));
    expect_eq!(vm.read(slot + 16, 1), alloc::vec![2u8]);
    expect_eq!(ctx.port_property(vm.id(), 1, port_property::POST_COUNT).1, 0);
    expect_status!(ctx.disconnect(ctx.root_id, 88), SUCCESS);
    Ok(())
}

fn delete_port_frees_its_buffers(ctx: &Ctx) -> Outcome {
    // Deleting a port drops its queued messages; a new port starts with 16
    // free buffers (the slot still holds the old port's first message).
    let vm = synic_vm(ctx, 2)?;
    message_channel(ctx, &vm, 1, 89)?;
    for _ in 0..17 {
        expect_status!(ctx.post(89, 0x44, 0, &[]), SUCCESS);
    }
    expect_status!(ctx.post(89, 0x44, 0, &[]), INSUFFICIENT_BUFFERS);
    expect_status!(ctx.delete_port(vm.id(), 1), SUCCESS);
    expect_status!(ctx.disconnect(ctx.root_id, 89), SUCCESS);
    message_channel(ctx, &vm, 1, 90)?;
    expect_eq!(ctx.port_property(vm.id(), 1, port_property::POST_COUNT).1, 0);
    for _ in 0..16 {
        expect_status!(ctx.post(90, 0x55, 0, &[]), SUCCESS);
    }
    expect_status!(ctx.post(90, 0x55, 0, &[]), INSUFFICIENT_BUFFERS);
    let slot = vm.read(script::SIM + 256 * MESSAGE_SINT as u64, 4);
    expect_eq!(slot, 0x44u32.to_le_bytes().to_vec());
    expect_status!(ctx.disconnect(ctx.root_id, 90), SUCCESS);
    Ok(())
}

/// Event port `port` on `vm` (EVENT_SINT, flags 10..18) and our connection.
fn event_channel(ctx: &Ctx, vm: &Vm, port: u32, sint: u32, connection: u32) -> Outcome {
    expect_status!(ctx.create_port(vm.id(), port, ctx.root_id, PortInfo::event(sint, 0, 10, 8)), SUCCESS);
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    expect_status!(ctx.connect(ctx.root_id, connection, vm.id(), port, port_type::EVENT), SUCCESS);
    Ok(())
}

fn signal_event_sets_flag(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    event_channel(ctx, &vm, 1, EVENT_SINT, 80)?;
    let area = script::SIEF + 256 * EVENT_SINT as u64;
    expect_status!(ctx.signal(80, 3), SUCCESS);
    expect_eq!(flags_set(&vm.read(area, 256)), alloc::vec![13u32]);
    // Again: the bit stays set, nothing else changes.
    expect_status!(ctx.signal(80, 3), SUCCESS);
    expect_eq!(flags_set(&vm.read(area, 256)), alloc::vec![13u32]);
    // The fast form, the last flag of the port.
    expect_status!(ctx.signal_fast(80, 7), SUCCESS);
    expect_eq!(flags_set(&vm.read(area, 256)), alloc::vec![13u32, 17]);
    // Other SINTs' areas untouched.
    expect!(flags_set(&vm.read(script::SIEF, 4096)).len() == 2, "flags outside the port's area");
    expect_status!(ctx.disconnect(ctx.root_id, 80), SUCCESS);
    Ok(())
}

fn signal_event_flag_out_of_range(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    event_channel(ctx, &vm, 1, EVENT_SINT, 81)?;
    for flag in [8u16, 9, 2038, u16::MAX] {
        let r = ctx.signal(81, flag);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "flag {flag}: {:?}", r.status);
    }
    expect!(flags_set(&vm.read(script::SIEF, 4096)).is_empty(), "a flag was set");
    expect_status!(ctx.disconnect(ctx.root_id, 81), SUCCESS);
    Ok(())
}

fn signal_event_wrong_port_type(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    message_channel(ctx, &vm, 1, 82)?;
    expect_status!(ctx.signal(82, 0), INVALID_PORT_ID);
    expect_status!(ctx.signal_fast(82, 0), INVALID_PORT_ID);
    expect_status!(ctx.disconnect(ctx.root_id, 82), SUCCESS);
    Ok(())
}

fn signal_event_unknown_connection(ctx: &Ctx) -> Outcome {
    for connection in [0u32, 0x66_6666] {
        let r = ctx.signal(connection, 0);
        expect!(r.status == HvStatus::INVALID_CONNECTION_ID, "connection {connection:#x}: {:?}", r.status);
    }
    let vm = synic_vm(ctx, 1)?;
    event_channel(ctx, &vm, 1, EVENT_SINT, 83)?;
    expect_status!(ctx.delete_port(vm.id(), 1), SUCCESS);
    expect_status!(ctx.signal(83, 0), INVALID_PORT_ID);
    expect_status!(ctx.disconnect(ctx.root_id, 83), SUCCESS);
    expect_status!(ctx.signal(83, 0), INVALID_CONNECTION_ID);
    Ok(())
}

fn signal_event_masked_sint(ctx: &Ctx) -> Outcome {
    let vm = synic_vm(ctx, 1)?;
    event_channel(ctx, &vm, 1, MASKED_SINT, 84)?;
    expect_status!(ctx.signal(84, 0), INVALID_SYNIC_STATE);
    expect!(flags_set(&vm.read(script::SIEF, 4096)).is_empty(), "a flag was set");
    expect_status!(ctx.disconnect(ctx.root_id, 84), SUCCESS);
    Ok(())
}

fn signal_event_synic_disabled(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1 + crate::vm::VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    expect_status!(ctx.create_port(child.id, 1, ctx.root_id, PortInfo::event(1, 0, 0, 1)), SUCCESS);
    ctx.root_pool_at_least(1).map_err(|r| alloc::format!("{r:?}"))?;
    expect_status!(ctx.connect(ctx.root_id, 85, child.id, 1, port_type::EVENT), SUCCESS);
    expect_status!(ctx.signal(85, 0), INVALID_SYNIC_STATE);
    expect_status!(ctx.disconnect(ctx.root_id, 85), SUCCESS);
    Ok(())
}
