//! VPs (reference §3.1, §5.2; README "Guests and VPs"): HvCreateVp,
//! HvDeleteVp, HvGetVpRegisters, HvSetVpRegisters, the start-suspended
//! state and ExplicitSuspend.

use hv::abi::{self, reg, HvStatus, ProximityDomainInfo};

use crate::ctx::Ctx;
use crate::harness::Outcome;
use crate::script::Op;
use crate::vm::{Child, Vm, INIT_PAGES, VP_PAGES};
use crate::{cases, expect, expect_eq, expect_status, mem};

cases![
    create_vp_starts_suspended,
    create_vp_duplicate_index,
    create_vp_index_out_of_range,
    create_vp_nonzero_flags,
    create_vp_bad_proximity,
    create_vp_uninitialized,
    create_vp_unknown_id,
    create_vp_not_a_child,
    delete_vp_frees_index_and_pages,
    delete_vp_unknown_index,
    delete_vp_unknown_id,
    registers_round_trip,
    get_registers_reps_completed,
    register_unknown_name,
    set_registers_stops_at_bad_element,
    registers_unknown_vp,
    registers_unknown_id,
    registers_not_a_child,
    registers_uninitialized,
    suspend_registers_values,
    control_registers_read_only,
    explicit_suspend_runs_and_stops,
    running_vp_only_suspend_registers,
];

fn create_vp_starts_suspended(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    expect_eq!(child.balance()?, (0, (INIT_PAGES + VP_PAGES) as u64));
    let names = [reg::EXPLICIT_SUSPEND, reg::INTERCEPT_SUSPEND, reg::RIP, reg::CR3, reg::RAX, reg::R15];
    let (r, values) = ctx.get_regs(child.id, 0, &names);
    expect_status!(r, SUCCESS);
    expect_eq!(values, alloc::vec![1u128, 0, 0, 0, 0, 0]);
    // 64-bit mode with paging on (decision 9).
    let (_, efer) = ctx.get_reg(child.id, 0, reg::EFER);
    expect!(efer & (1 << 10) != 0, "EFER.LMA clear: {efer:#x}");
    let (_, cr0) = ctx.get_reg(child.id, 0, reg::CR0);
    expect!(cr0 & (1 << 31) != 0 && cr0 & 1 != 0, "CR0.PG/PE clear: {cr0:#x}");
    Ok(())
}

fn create_vp_duplicate_index(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 2 * VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 1), SUCCESS);
    expect_status!(ctx.create_vp(child.id, 1), INVALID_VP_INDEX);
    expect_eq!(child.balance()?, (VP_PAGES as u64, (INIT_PAGES + VP_PAGES) as u64));
    Ok(())
}

fn create_vp_index_out_of_range(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    for vp in [abi::VP_INDEX_ANY, abi::VP_INDEX_SELF, 0x8000_0000, 0x10000] {
        let r = ctx.create_vp(child.id, vp);
        expect!(r.status == HvStatus::INVALID_VP_INDEX, "VP {vp:#x}: {:?}", r.status);
    }
    expect_eq!(child.balance()?, (VP_PAGES as u64, INIT_PAGES as u64));
    Ok(())
}

fn create_vp_nonzero_flags(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    for flags in [1u64, 1 << 63] {
        let r = ctx.create_vp_with(child.id, 0, ProximityDomainInfo::ANY, flags);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "flags {flags:#x}: {:?}", r.status);
    }
    expect_status!(ctx.get_regs(child.id, 0, &[reg::RIP]), INVALID_VP_INDEX);
    Ok(())
}

fn create_vp_bad_proximity(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    let bad = ProximityDomainInfo { id: 0, flags: 1 << 4 };
    expect_status!(ctx.create_vp_with(child.id, 0, bad, 0), INVALID_PARAMETER);
    expect_eq!(child.balance()?, (VP_PAGES as u64, INIT_PAGES as u64));
    Ok(())
}

fn create_vp_uninitialized(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    child.deposit(VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), INVALID_PARTITION_STATE);
    expect_eq!(child.balance()?, (VP_PAGES as u64, 0));
    Ok(())
}

fn create_vp_unknown_id(ctx: &Ctx) -> Outcome {
    for id in [0u64, 0x7fff_ffff_ffff_fffe] {
        expect!(ctx.create_vp(id, 0).status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn create_vp_not_a_child(ctx: &Ctx) -> Outcome {
    ctx.root_pool_at_least(VP_PAGES as u64).map_err(|r| alloc::format!("{r:?}"))?;
    let before = ctx.balance(ctx.root_id).1;
    expect_status!(ctx.create_vp(ctx.root_id, 0), ACCESS_DENIED);
    expect_status!(ctx.delete_vp(ctx.root_id, 0), ACCESS_DENIED);
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    Ok(())
}

fn delete_vp_frees_index_and_pages(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 3), SUCCESS);
    expect_status!(ctx.delete_vp(child.id, 3), SUCCESS);
    expect_eq!(child.balance()?, (VP_PAGES as u64, INIT_PAGES as u64));
    expect_status!(ctx.get_regs(child.id, 3, &[reg::RIP]), INVALID_VP_INDEX);
    // The index can be used again; the fast form deletes too.
    expect_status!(ctx.create_vp(child.id, 3), SUCCESS);
    expect_status!(ctx.fast(abi::call::DELETE_VP, child.id, 3), SUCCESS);
    expect_eq!(child.balance()?, (VP_PAGES as u64, INIT_PAGES as u64));
    Ok(())
}

fn delete_vp_unknown_index(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    for vp in [1u32, abi::VP_INDEX_ANY, abi::VP_INDEX_SELF] {
        let r = ctx.delete_vp(child.id, vp);
        expect!(r.status == HvStatus::INVALID_VP_INDEX, "VP {vp:#x}: {:?}", r.status);
    }
    expect_status!(ctx.get_regs(child.id, 0, &[reg::RIP]), SUCCESS);
    Ok(())
}

fn delete_vp_unknown_id(ctx: &Ctx) -> Outcome {
    for id in [0u64, 0x7fff_ffff_ffff_fffe] {
        expect!(ctx.delete_vp(id, 0).status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn registers_round_trip(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    let regs = [
        (reg::RAX, 0x1111_2222_3333_4444u128),
        (reg::RBX, 0x5555),
        (reg::R15, u64::MAX as u128),
        (reg::RSP, 0x8ff8),
        (reg::RIP, 0x10000),
        (reg::RFLAGS, 0x2 | 0x1 | 0x40),
        (reg::CR3, 0x3000),
    ];
    let r = ctx.set_regs(child.id, 0, &regs);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, regs.len() as u16);
    let names: alloc::vec::Vec<u32> = regs.iter().map(|r| r.0).collect();
    let (r, values) = ctx.get_regs(child.id, 0, &names);
    expect_status!(r, SUCCESS);
    let expected: alloc::vec::Vec<u128> = regs.iter().map(|r| r.1).collect();
    expect_eq!(values, expected);
    Ok(())
}

fn get_registers_reps_completed(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    let names = [reg::RAX, reg::RCX, reg::RDX, reg::RBX, reg::RIP];
    let (r, _) = ctx.get_regs(child.id, 0, &names);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, 5);
    Ok(())
}

fn register_unknown_name(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    for name in [0x0000_0002u32, 0x0002_0012, 0x1234_5678, u32::MAX] {
        let (r, _) = ctx.get_regs(child.id, 0, &[name]);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "get {name:#x}: {:?}", r.status);
        let r = ctx.set_regs(child.id, 0, &[(name, 0)]);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "set {name:#x}: {:?}", r.status);
    }
    // Get stops at the bad element: reps completed counts the good ones.
    let (r, values) = ctx.get_regs(child.id, 0, &[reg::RAX, reg::RBX, 0x1234_5678, reg::RCX]);
    expect_status!(r, INVALID_PARAMETER);
    expect_eq!(r.reps_completed, 2);
    expect_eq!(values[..2], [0u128, 0]);
    Ok(())
}

fn set_registers_stops_at_bad_element(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    let r = ctx.set_regs(child.id, 0, &[(reg::RAX, 7), (0x1234_5678, 1), (reg::RBX, 9)]);
    expect_status!(r, INVALID_PARAMETER);
    expect_eq!(r.reps_completed, 1);
    let (_, values) = ctx.get_regs(child.id, 0, &[reg::RAX, reg::RBX]);
    expect_eq!(values, alloc::vec![7u128, 0]);
    Ok(())
}

fn registers_unknown_vp(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    for vp in [1u32, 0xffff, abi::VP_INDEX_ANY] {
        expect!(ctx.get_regs(child.id, vp, &[reg::RIP]).0.status == HvStatus::INVALID_VP_INDEX, "get VP {vp:#x}");
        expect!(ctx.set_regs(child.id, vp, &[(reg::RIP, 0)]).status == HvStatus::INVALID_VP_INDEX, "set VP {vp:#x}");
    }
    Ok(())
}

fn registers_unknown_id(ctx: &Ctx) -> Outcome {
    for id in [0u64, 0x7fff_ffff_ffff_fffe] {
        expect!(ctx.get_regs(id, 0, &[reg::RIP]).0.status == HvStatus::INVALID_PARTITION_ID, "get {id:#x}");
        expect!(ctx.set_regs(id, 0, &[(reg::RIP, 0)]).status == HvStatus::INVALID_PARTITION_ID, "set {id:#x}");
    }
    Ok(())
}

fn registers_not_a_child(ctx: &Ctx) -> Outcome {
    // Our own partition has no VPs of a child; the root's VP 0 is not ours to read.
    expect_status!(ctx.get_regs(ctx.root_id, 0, &[reg::RIP]), ACCESS_DENIED);
    expect_status!(ctx.set_regs(ctx.root_id, 0, &[(reg::RIP, 0)]), ACCESS_DENIED);
    expect_status!(ctx.get_regs(abi::PARTITION_ID_SELF, abi::VP_INDEX_SELF, &[reg::RIP]), ACCESS_DENIED);
    Ok(())
}

fn registers_uninitialized(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    expect_status!(ctx.get_regs(child.id, 0, &[reg::RIP]), INVALID_PARTITION_STATE);
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::RIP, 0)]), INVALID_PARTITION_STATE);
    Ok(())
}

fn suspend_registers_values(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    // Only the hypervisor sets InterceptSuspend; suspend registers are one bit.
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::INTERCEPT_SUSPEND, 1)]), INVALID_PARAMETER);
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::EXPLICIT_SUSPEND, 2)]), INVALID_PARAMETER);
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::INTERCEPT_SUSPEND, 0)]), SUCCESS);
    let (_, values) = ctx.get_regs(child.id, 0, &[reg::EXPLICIT_SUSPEND, reg::INTERCEPT_SUSPEND]);
    expect_eq!(values, alloc::vec![1u128, 0]);
    // RFLAGS must keep bit 1 set and reserved bits clear.
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::RFLAGS, 0)]), INVALID_PARAMETER);
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::RFLAGS, 0x2 | 1 << 3)]), INVALID_PARAMETER);
    Ok(())
}

fn control_registers_read_only(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    let (_, values) = ctx.get_regs(child.id, 0, &[reg::CR0, reg::CR4, reg::EFER]);
    // The current value may be written back; another is refused.
    let same: alloc::vec::Vec<(u32, u128)> = [reg::CR0, reg::CR4, reg::EFER].into_iter().zip(values.clone()).collect();
    expect_status!(ctx.set_regs(child.id, 0, &same), SUCCESS);
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::CR0, values[0] ^ (1 << 16))]), INVALID_PARAMETER);
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::EFER, values[2] ^ 1)]), INVALID_PARAMETER);
    // CR3 must lie in the guest-physical space; a 128-bit value does not fit a GPR.
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::CR3, 1u128 << 60)]), INVALID_PARAMETER);
    expect_status!(ctx.set_regs(child.id, 0, &[(reg::RAX, 1u128 << 64)]), INVALID_PARAMETER);
    let (_, after) = ctx.get_regs(child.id, 0, &[reg::CR0, reg::CR4, reg::EFER, reg::CR3, reg::RAX]);
    expect_eq!(after, [values, alloc::vec![0, 0]].concat());
    Ok(())
}

/// The guest-physical flag the wait ops of these cases poll.
const FLAG: u64 = 0x3000;

fn explicit_suspend_runs_and_stops(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    vm.script(&[Op::Out { port: 0x1234, value: 1 }]);
    // Not started yet: nothing runs.
    let _ = mx::nanosleep(mx::deadline_after(50_000_000));
    expect_eq!(vm.progress(), 0);
    vm.start()?;
    vm.wait_done()?;
    expect_eq!(vm.result(0, 0), 1);
    Ok(())
}

fn running_vp_only_suspend_registers(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    vm.script(&[Op::WaitExiting { gpa: FLAG }]);
    vm.start()?;
    // Running: only the suspend registers can be used.
    expect_status!(ctx.get_regs(vm.id(), 0, &[reg::RIP]), INVALID_VP_STATE);
    expect_status!(ctx.set_regs(vm.id(), 0, &[(reg::RAX, 1)]), INVALID_VP_STATE);
    let (r, v) = ctx.get_reg(vm.id(), 0, reg::EXPLICIT_SUSPEND);
    expect_status!(r, SUCCESS);
    expect_eq!(v, 0);
    // Suspend it: it stops at its next exit, then its registers are readable.
    expect_status!(ctx.set_regs(vm.id(), 0, &[(reg::EXPLICIT_SUSPEND, 1)]), SUCCESS);
    let deadline = mx::deadline_after(crate::vm::GUEST_TIMEOUT_NS);
    let rip = loop {
        let (r, rip) = ctx.get_reg(vm.id(), 0, reg::RIP);
        if r.status == HvStatus::SUCCESS {
            break rip;
        }
        expect!(r.status == HvStatus::INVALID_VP_STATE, "get RIP while suspending: {:?}", r.status);
        expect!(mx::time_monotonic() < deadline, "the VP never stopped");
        let _ = mx::nanosleep(mx::deadline_after(1_000_000));
    };
    expect!(rip >= crate::script::CODE as u128 && rip < 0x11000, "RIP {rip:#x} outside the code");
    // Suspended: setting the flag does not complete the wait.
    mem::write_u64(vm.addr(FLAG), 0x77);
    let _ = mx::nanosleep(mx::deadline_after(50_000_000));
    expect!(!vm.done(), "a suspended VP ran");
    expect_status!(ctx.set_regs(vm.id(), 0, &[(reg::EXPLICIT_SUSPEND, 0)]), SUCCESS);
    vm.wait_done()?;
    expect_eq!(vm.result(0, 0), 0x77);
    Ok(())
}
