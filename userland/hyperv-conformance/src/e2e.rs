//! The end-to-end scenario of the issue, through the typed client
//! (`hv::client::Root`'s method per call, not the raw hypercall): create a
//! partition, deposit, initialize, map memory, create a VP running a small
//! guest, install an I/O intercept, receive the intercept message when the
//! guest executes OUT, resume it (RIP advanced, InterceptSuspend cleared),
//! and see the guest's HvSignalEvent (through a connection to our event
//! port) in our SIEF page. Then tear it all down and find our pool back.

use alloc::vec::Vec;

use hv::abi::{self, intercept, message_type, port_type, privilege, reg, ConnectionInfo, HvStatus};
use hv::abi::{InterceptDescriptor, PortInfo, ProximityDomainInfo};
use hv::client::Root;

use crate::ctx::{flags_set, Ctx, PAGE};
use crate::harness::Outcome;
use crate::script::{self, Op};
use crate::vm::{enable_hypercalls, INIT_PAGES, VP_PAGES};
use crate::{cases, expect, expect_eq, mem, ok};

cases![scenario];

const PORT: u32 = 0xe2e;
const CONNECTION: u32 = 0xe2f;
const IO_PORT: u16 = 0x0e2e;
const FLAG: u16 = 5;
const BASE_FLAG: u16 = 40;

fn scenario(ctx: &Ctx) -> Outcome {
    let root: &Root = &ctx.root;
    ok!(ctx.root_pool_at_least(2));
    let (pool_before, used_before) = ok!(root.get_memory_balance(ctx.root_id, ProximityDomainInfo::ANY));

    // Create, deposit (init + one GPA block + a VP + the connection), initialize.
    let id = ok!(root.create_partition(0, ProximityDomainInfo::ANY));
    let deposit: Vec<u64> = ctx.pages(INIT_PAGES + 1 + VP_PAGES + 1);
    ok!(root.deposit_memory(id, &deposit));
    ok!(root.initialize_partition(id));
    let result = run(ctx, id);

    // Tear down: finalize, withdraw everything, delete; our port goes too.
    let _ = root.delete_port(ctx.root_id, PORT);
    ok!(root.finalize_partition(id));
    let mut back = alloc::vec![0u64; deposit.len()];
    let withdrawn = root.withdraw_memory(id, ProximityDomainInfo::ANY, &mut back);
    ok!(root.delete_partition(id));
    for flag in 0..abi::EVENT_FLAGS_COUNT {
        root.test_and_clear_event_flag(1, flag);
    }
    ctx.notified();
    result?;
    let n = ok!(withdrawn);
    let mut back = back[..n].to_vec();
    back.sort_unstable();
    let mut deposited = deposit.clone();
    deposited.sort_unstable();
    expect_eq!(back, deposited);
    ctx.recycle(&back);
    expect_eq!(ok!(root.get_memory_balance(ctx.root_id, ProximityDomainInfo::ANY)), (pool_before, used_before));
    Ok(())
}

fn run(ctx: &Ctx, id: u64) -> Outcome {
    let root: &Root = &ctx.root;
    // Guest memory: the script guest at GPA 0.
    let base = ctx.contiguous(script::PAGES as usize).ok_or("out of root memory")?;
    for (gpa, words) in script::page_tables() {
        mem::write(base + gpa, &mem::qwords(&words));
    }
    mem::write(base + script::CODE, script::code());
    let pages: Vec<u64> = (0..script::PAGES).map(|i| Root::page_number(base as usize) + i).collect();
    ok!(root.map_gpa_pages(id, 0, abi::map_flags::ALL, &pages));

    // A VP, started where the script begins.
    ok!(root.create_vp(id, ProximityDomainInfo::ANY, 0, 0));
    ok!(root.set_vp_registers(id, 0, &[(reg::RIP, script::CODE as u128), (reg::RSP, script::STACK_TOP as u128)]));

    // An I/O intercept, our event port, the child's connection to it.
    let descriptor = InterceptDescriptor { intercept_type: intercept::X64_IO_PORT, parameter: IO_PORT as u64 };
    ok!(root.install_intercept(id, intercept::ACCESS_WRITE, descriptor));
    ok!(root.create_port(ctx.root_id, PORT, id, &PortInfo::event(1, 0, BASE_FLAG, 8)));
    ok!(root.connect_port(id, CONNECTION, ctx.root_id, PORT, &ConnectionInfo::new(port_type::EVENT)));
    ok!(root.set_partition_property(
        id,
        abi::property::PRIVILEGE_FLAGS,
        privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS
    ));
    expect_eq!(ok!(root.get_memory_balance(id, ProximityDomainInfo::ANY)), (0, (INIT_PAGES + 1 + VP_PAGES + 1) as u64));

    // The guest: enable hypercalls, OUT (intercepted), then signal our port.
    let mut ops = Vec::from(enable_hypercalls());
    ops.push(Op::Out { port: IO_PORT, value: 0x600d });
    ops.push(Op::Hypercall {
        control: abi::Control::fast(abi::call::SIGNAL_EVENT).raw(),
        input: CONNECTION as u64 | (FLAG as u64) << 32,
        output: 0,
    });
    for (i, op) in ops.iter().enumerate() {
        mem::write(base + script::OPS + i as u64 * script::OP_SIZE, &mem::qwords(&op.words()));
    }
    mem::write_u64(base + script::MAILBOX + 8, ops.len() as u64);
    ctx.notified();
    ok!(root.set_vp_register(id, 0, reg::EXPLICIT_SUSPEND, 0));

    // The intercept message.
    let m = ctx.wait_message(0)?;
    expect_eq!(m.header.message_type, message_type::X64_IO_PORT_INTERCEPT);
    expect_eq!(m.header.origination_id, id);
    let io = abi::IoPortIntercept::read(&m.payload).ok_or("short payload")?;
    expect_eq!(io.header.vp_index, 0);
    expect_eq!(io.header.intercept_access_type, intercept::ACCESS_TYPE_WRITE);
    expect_eq!(io.port_number, IO_PORT);
    expect_eq!(io.rax as u32, 0x600d);
    expect_eq!(io.header.instruction_length, 1);
    expect_eq!(ok!(root.get_vp_register(id, 0, reg::INTERCEPT_SUSPEND)), 1);
    expect_eq!(ok!(root.get_vp_register(id, 0, reg::RIP)), io.header.rip as u128);
    // No event yet: the guest is held at its OUT.
    expect!(flags_set(&root.event_flags(1)).is_empty(), "a flag before the resume");

    // Resume: past the OUT, slot emptied, InterceptSuspend cleared.
    ok!(root.set_vp_register(id, 0, reg::RIP, (io.header.rip + 1) as u128));
    root.clear_message(0);
    ok!(root.end_of_message(0));
    ok!(root.set_vp_register(id, 0, reg::INTERCEPT_SUSPEND, 0));

    // The event in our SIEF page, and the notification.
    ctx.wait_flag(1, (BASE_FLAG + FLAG) as u32)?;
    expect_eq!(flags_set(&root.event_flags(1)), alloc::vec![(BASE_FLAG + FLAG) as u32]);
    expect!(ctx.notified(), "no notification for the event");
    let deadline = mx::deadline_after(crate::vm::GUEST_TIMEOUT_NS);
    while mem::read_u64(base + script::MAILBOX) != script::DONE {
        expect!(mx::time_monotonic() < deadline, "the guest did not finish");
        let _ = mx::nanosleep(mx::deadline_after(1_000_000));
    }
    let op_result = |i: u64| mem::read_u64(base + script::OPS + i * script::OP_SIZE + 32);
    expect_eq!(op_result(2), 1);
    expect_eq!(HvStatus(op_result(3) as u16), HvStatus::SUCCESS);
    ok!(root.delete_vp(id, 0));
    ok!(root.unmap_gpa_pages(id, 0, script::PAGES as u32));
    for p in pages {
        root.free_pages((p * PAGE) as usize, 1);
    }
    Ok(())
}
