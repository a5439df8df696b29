//! Partition objects (reference §3.1, §4.1-4.3; README "Partitions"):
//! create, initialize, finalize, delete, properties, ids, enumeration, and
//! the state machine (which calls each state permits).

use alloc::vec::Vec;

use hv::abi::{self, call, privilege, property, HvResult, HvStatus, ProximityDomainInfo};

use crate::ctx::Ctx;
use crate::harness::Outcome;
use crate::vm::{Child, INIT_PAGES};
use crate::{cases, expect, expect_eq, expect_status, ok};

cases![
    create_draws_one_page_from_callers_pool,
    create_insufficient_memory_then_deposit,
    create_reserved_flags,
    create_reserved_proximity_bits,
    create_proximity_domain,
    ids_never_reused,
    create_no_resources_at_limit,
    initialize_draws_sixteen_pages,
    initialize_insufficient_memory_then_deposit,
    initialize_fast,
    initialize_twice,
    initialize_unknown_id,
    initialize_not_a_child,
    finalize_active,
    finalize_uninitialized,
    finalize_twice,
    finalize_unknown_id,
    finalize_not_a_child,
    finalize_stops_running_vps,
    delete_uninitialized,
    delete_active,
    delete_pool_not_drained,
    delete_finalized_drained,
    delete_twice,
    delete_not_a_child,
    get_partition_id_root,
    next_child_in_creation_order,
    next_child_previous_not_a_child,
    next_child_unknown_parent,
    next_child_after_delete,
    privileges_child_default,
    privileges_root,
    set_privileges_round_trip,
    property_unknown_code,
    property_unknown_id,
    property_not_a_child,
    property_read_only_values,
    set_privileges_undefined_bits,
    state_uninitialized_permits,
    state_uninitialized_refuses,
    state_active_refuses,
    state_finalized_permits,
    state_finalized_refuses,
];

const UNKNOWN_IDS: [u64; 3] = [0, 0x7fff_ffff_ffff_fffe, 0x8000_0000_0000_0000];

fn create_draws_one_page_from_callers_pool(ctx: &Ctx) -> Outcome {
    ok!(ctx.root_pool_at_least(1));
    let (available, in_use) = ctx.balance(ctx.root_id).1;
    let (r, id) = ctx.create_partition();
    expect_status!(r, SUCCESS);
    expect!(id != 0 && id != ctx.root_id && id != u64::MAX, "new id {id:#x}");
    expect_eq!(ctx.balance(ctx.root_id).1, (available - 1, in_use + 1));
    // The new pool is empty.
    expect_eq!(ctx.balance(id), (HvResult::new(HvStatus::SUCCESS, 0), (0, 0)));
    expect_status!(ctx.delete(id), SUCCESS);
    expect_eq!(ctx.balance(ctx.root_id).1, (available, in_use));
    Ok(())
}

fn create_insufficient_memory_then_deposit(ctx: &Ctx) -> Outcome {
    ctx.drain(ctx.root_id);
    expect_eq!(ctx.balance(ctx.root_id).1 .0, 0);
    let (r, _) = ctx.create_partition();
    expect_status!(r, INSUFFICIENT_MEMORY);
    expect_eq!(ctx.next_child(ctx.root_id, 0).1, 0);
    ok!(ctx.deposit_new(ctx.root_id, 1));
    let (r, id) = ctx.create_partition();
    expect_status!(r, SUCCESS);
    expect_eq!(ctx.balance(ctx.root_id).1 .0, 0);
    expect_status!(ctx.delete(id), SUCCESS);
    Ok(())
}

fn create_reserved_flags(ctx: &Ctx) -> Outcome {
    ok!(ctx.root_pool_at_least(1));
    let before = ctx.balance(ctx.root_id).1;
    for flags in [1u64, 1 << 13, 1 << 63, u64::MAX] {
        let (r, _) = ctx.create_partition_with(flags, ProximityDomainInfo::ANY);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "flags {flags:#x}: {:?}", r.status);
    }
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    expect_eq!(ctx.next_child(ctx.root_id, 0).1, 0);
    Ok(())
}

fn create_reserved_proximity_bits(ctx: &Ctx) -> Outcome {
    ok!(ctx.root_pool_at_least(1));
    for flags in [1u32 << 1, 1 << 30, ProximityDomainInfo::VALID | 1 << 5] {
        let (r, _) = ctx.create_partition_with(0, ProximityDomainInfo { id: 0, flags });
        expect!(r.status == HvStatus::INVALID_PARAMETER, "proximity flags {flags:#x}: {:?}", r.status);
    }
    expect_eq!(ctx.next_child(ctx.root_id, 0).1, 0);
    Ok(())
}

fn create_proximity_domain(ctx: &Ctx) -> Outcome {
    ok!(ctx.root_pool_at_least(2));
    // A required domain that does not exist is refused; domain 0 and a
    // mere preference for another are accepted.
    let required = ProximityDomainInfo { id: 1, flags: ProximityDomainInfo::VALID };
    expect_status!(ctx.create_partition_with(0, required), INVALID_PARAMETER);
    let zero = ProximityDomainInfo { id: 0, flags: ProximityDomainInfo::VALID };
    let (r, a) = ctx.create_partition_with(0, zero);
    expect_status!(r, SUCCESS);
    let preferred = ProximityDomainInfo { id: 7, flags: ProximityDomainInfo::VALID | ProximityDomainInfo::PREFERRED };
    let (r, b) = ctx.create_partition_with(0, preferred);
    expect_status!(r, SUCCESS);
    expect_status!(ctx.delete(a), SUCCESS);
    expect_status!(ctx.delete(b), SUCCESS);
    Ok(())
}

fn ids_never_reused(ctx: &Ctx) -> Outcome {
    let mut seen = Vec::new();
    for _ in 0..4 {
        ok!(ctx.root_pool_at_least(1));
        let (r, id) = ctx.create_partition();
        expect_status!(r, SUCCESS);
        expect!(!seen.contains(&id), "id {id:#x} given twice");
        expect!(seen.last().is_none_or(|&last| id > last), "ids go up: {id:#x} after {seen:x?}");
        seen.push(id);
        expect_status!(ctx.delete(id), SUCCESS);
        expect_status!(ctx.balance(id), INVALID_PARTITION_ID);
    }
    Ok(())
}

fn create_no_resources_at_limit(ctx: &Ctx) -> Outcome {
    // The server keeps a bounded number of partitions: creating past it is
    // NO_RESOURCES (an implementation limit), takes no page, and deleting
    // one makes room again.
    const CAP: usize = 4096;
    let mut made = Vec::new();
    let result = (|| -> Outcome {
        loop {
            ok!(ctx.root_pool_at_least(1));
            let (r, id) = ctx.create_partition();
            if r.status == HvStatus::NO_RESOURCES {
                break;
            }
            expect_status!(r, SUCCESS);
            made.push(id);
            expect!(made.len() < CAP, "no limit after {CAP} partitions");
        }
        let before = ctx.balance(ctx.root_id).1;
        expect_status!(ctx.create_partition(), NO_RESOURCES);
        expect_eq!(ctx.balance(ctx.root_id).1, before);
        let last = made.pop().ok_or("the limit is zero")?;
        expect_status!(ctx.delete(last), SUCCESS);
        let (r, id) = ctx.create_partition();
        expect_status!(r, SUCCESS);
        made.push(id);
        Ok(())
    })();
    for id in made {
        let _ = ctx.delete(id);
    }
    ctx.drain(ctx.root_id);
    result
}

fn initialize_draws_sixteen_pages(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    child.deposit(INIT_PAGES + 2)?;
    expect_status!(ctx.initialize(child.id), SUCCESS);
    expect_eq!(child.balance()?, (2, INIT_PAGES as u64));
    // Active: properties can be read now.
    expect_status!(ctx.privileges(child.id), SUCCESS);
    Ok(())
}

fn initialize_insufficient_memory_then_deposit(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    child.deposit(INIT_PAGES - 1)?;
    expect_status!(ctx.initialize(child.id), INSUFFICIENT_MEMORY);
    expect_eq!(child.balance()?, (INIT_PAGES as u64 - 1, 0));
    // Still uninitialized.
    expect_status!(ctx.privileges(child.id), INVALID_PARTITION_STATE);
    child.deposit(1)?;
    expect_status!(ctx.initialize(child.id), SUCCESS);
    expect_eq!(child.balance()?, (0, INIT_PAGES as u64));
    Ok(())
}

fn initialize_fast(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    child.deposit(INIT_PAGES)?;
    expect_status!(ctx.fast(call::INITIALIZE_PARTITION, child.id, 0), SUCCESS);
    expect_eq!(child.balance()?, (0, INIT_PAGES as u64));
    Ok(())
}

fn initialize_twice(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, INIT_PAGES)?;
    expect_status!(ctx.initialize(child.id), INVALID_PARTITION_STATE);
    expect_eq!(child.balance()?, (INIT_PAGES as u64, INIT_PAGES as u64));
    Ok(())
}

fn initialize_unknown_id(ctx: &Ctx) -> Outcome {
    for id in UNKNOWN_IDS {
        expect!(ctx.initialize(id).status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn initialize_not_a_child(ctx: &Ctx) -> Outcome {
    // Our own partition is nobody's child of ours.
    expect_status!(ctx.initialize(ctx.root_id), ACCESS_DENIED);
    Ok(())
}

fn finalize_active(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 3)?;
    expect_status!(ctx.finalize(child.id), SUCCESS);
    // Everything the partition held goes back to its pool (T2 §5.4.1).
    expect_eq!(child.balance()?, (INIT_PAGES as u64 + 3, 0));
    Ok(())
}

fn finalize_uninitialized(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    expect_status!(ctx.finalize(child.id), INVALID_PARTITION_STATE);
    // Still uninitialized: it can be initialized.
    child.deposit(INIT_PAGES)?;
    expect_status!(ctx.initialize(child.id), SUCCESS);
    Ok(())
}

fn finalize_twice(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    expect_status!(ctx.fast(call::FINALIZE_PARTITION, child.id, 0), SUCCESS);
    expect_status!(ctx.finalize(child.id), INVALID_PARTITION_STATE);
    Ok(())
}

fn finalize_unknown_id(ctx: &Ctx) -> Outcome {
    for id in UNKNOWN_IDS {
        expect!(ctx.finalize(id).status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn finalize_not_a_child(ctx: &Ctx) -> Outcome {
    expect_status!(ctx.finalize(ctx.root_id), ACCESS_DENIED);
    expect_status!(ctx.partition_id(), SUCCESS);
    Ok(())
}

fn finalize_stops_running_vps(ctx: &Ctx) -> Outcome {
    // Finalization deletes the VPs: a running guest runs no more, and
    // every page (VP, mapping, initialization) is back in the pool.
    let vm = crate::vm::Vm::new(ctx, 0)?;
    vm.script(&[crate::script::Op::WaitExiting { gpa: 0x3000 }]);
    vm.start()?;
    let _ = mx::nanosleep(mx::deadline_after(20_000_000));
    expect_status!(ctx.finalize(vm.id()), SUCCESS);
    expect_eq!(vm.child.balance()?, (21, 0));
    crate::mem::write_u64(vm.addr(0x3000), 1);
    let _ = mx::nanosleep(mx::deadline_after(50_000_000));
    expect!(!vm.done(), "the guest ran after its partition was finalized");
    expect_status!(ctx.get_regs(vm.id(), 0, &[abi::reg::RIP]), INVALID_PARTITION_STATE);
    Ok(())
}

fn delete_uninitialized(ctx: &Ctx) -> Outcome {
    ok!(ctx.root_pool_at_least(1));
    let before = ctx.balance(ctx.root_id).1;
    let (r, id) = ctx.create_partition();
    expect_status!(r, SUCCESS);
    expect_status!(ctx.fast(call::DELETE_PARTITION, id, 0), SUCCESS);
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    expect_status!(ctx.balance(id), INVALID_PARTITION_ID);
    expect_status!(ctx.initialize(id), INVALID_PARTITION_ID);
    expect_status!(ctx.delete(id), INVALID_PARTITION_ID);
    Ok(())
}

fn delete_active(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    expect_status!(ctx.delete(child.id), INVALID_PARTITION_STATE);
    expect_status!(ctx.privileges(child.id), SUCCESS);
    Ok(())
}

fn delete_pool_not_drained(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    child.deposit(2)?;
    expect_status!(ctx.delete(child.id), OPERATION_DENIED);
    expect_eq!(child.balance()?, (2, 0));
    let child = Child::active(ctx, 0)?;
    expect_status!(ctx.finalize(child.id), SUCCESS);
    expect_status!(ctx.delete(child.id), OPERATION_DENIED);
    expect_eq!(child.balance()?, (INIT_PAGES as u64, 0));
    Ok(())
}

fn delete_finalized_drained(ctx: &Ctx) -> Outcome {
    ok!(ctx.root_pool_at_least(1));
    let before = ctx.balance(ctx.root_id).1;
    let child = Child::active(ctx, 0)?;
    expect_status!(ctx.finalize(child.id), SUCCESS);
    expect_eq!(ctx.drain(child.id), INIT_PAGES);
    expect_status!(ctx.delete(child.id), SUCCESS);
    expect_eq!(ctx.balance(ctx.root_id).1, before);
    expect_status!(ctx.balance(child.id), INVALID_PARTITION_ID);
    Ok(())
}

fn delete_twice(ctx: &Ctx) -> Outcome {
    ok!(ctx.root_pool_at_least(1));
    let (_, id) = ctx.create_partition();
    expect_status!(ctx.delete(id), SUCCESS);
    expect_status!(ctx.delete(id), INVALID_PARTITION_ID);
    for id in UNKNOWN_IDS {
        expect!(ctx.delete(id).status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn delete_not_a_child(ctx: &Ctx) -> Outcome {
    expect_status!(ctx.delete(ctx.root_id), ACCESS_DENIED);
    expect_status!(ctx.partition_id(), SUCCESS);
    Ok(())
}

fn get_partition_id_root(ctx: &Ctx) -> Outcome {
    let (r, id) = ctx.partition_id();
    expect_status!(r, SUCCESS);
    expect_eq!(id, ctx.root_id);
    expect_eq!(id, ctx.root.partition_id());
    Ok(())
}

fn next_child_in_creation_order(ctx: &Ctx) -> Outcome {
    let a = Child::new(ctx)?;
    let b = Child::active(ctx, 0)?;
    let c = Child::new(ctx)?;
    let mut seen = Vec::new();
    let mut previous = 0;
    for _ in 0..5 {
        let (r, next) = ctx.next_child(ctx.root_id, previous);
        expect_status!(r, SUCCESS);
        if next == 0 {
            break;
        }
        seen.push(next);
        previous = next;
    }
    expect_eq!(seen, alloc::vec![a.id, b.id, c.id]);
    // A partition enumerates its own children only.
    expect_status!(ctx.next_child(b.id, 0), ACCESS_DENIED);
    Ok(())
}

fn next_child_previous_not_a_child(ctx: &Ctx) -> Outcome {
    let a = Child::new(ctx)?;
    for previous in [ctx.root_id, 0x1234_5678_9abc, a.id + 1000] {
        let (r, _) = ctx.next_child(ctx.root_id, previous);
        expect!(r.status == HvStatus::INVALID_PARTITION_ID, "previous {previous:#x}: {:?}", r.status);
    }
    Ok(())
}

fn next_child_unknown_parent(ctx: &Ctx) -> Outcome {
    for id in UNKNOWN_IDS {
        expect!(ctx.next_child(id, 0).0.status == HvStatus::INVALID_PARTITION_ID, "parent {id:#x}");
    }
    Ok(())
}

fn next_child_after_delete(ctx: &Ctx) -> Outcome {
    let a = Child::new(ctx)?;
    ok!(ctx.root_pool_at_least(1));
    let (_, gone) = ctx.create_partition();
    let c = Child::new(ctx)?;
    expect_status!(ctx.delete(gone), SUCCESS);
    expect_eq!(ctx.next_child(ctx.root_id, a.id).1, c.id);
    expect_status!(ctx.next_child(ctx.root_id, gone), INVALID_PARTITION_ID);
    Ok(())
}

fn privileges_child_default(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    let (r, mask) = ctx.privileges(child.id);
    expect_status!(r, SUCCESS);
    expect_eq!(mask, privilege::CHILD_DEFAULT);
    expect_eq!(mask, 0x5ff);
    Ok(())
}

fn privileges_root(ctx: &Ctx) -> Outcome {
    let (r, mask) = ctx.privileges(ctx.root_id);
    expect_status!(r, SUCCESS);
    expect_eq!(mask, privilege::ALL);
    Ok(())
}

fn set_privileges_round_trip(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    let mask = privilege::CHILD_DEFAULT | privilege::POST_MESSAGES | privilege::CREATE_PARTITIONS;
    expect_status!(ctx.set_privileges(child.id, mask), SUCCESS);
    expect_eq!(ctx.privileges(child.id).1, mask);
    expect_status!(ctx.set_privileges(child.id, 0), SUCCESS);
    expect_eq!(ctx.privileges(child.id).1, 0);
    Ok(())
}

fn property_unknown_code(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    for code in [0u32, 0x0001_0001, 0x0009_0000, u32::MAX] {
        expect!(ctx.get_property(child.id, code).0.status == HvStatus::UNKNOWN_PROPERTY, "get {code:#x}");
        expect!(ctx.set_property(child.id, code, 1).status == HvStatus::UNKNOWN_PROPERTY, "set {code:#x}");
    }
    expect_eq!(ctx.privileges(child.id).1, privilege::CHILD_DEFAULT);
    Ok(())
}

fn property_unknown_id(ctx: &Ctx) -> Outcome {
    for id in UNKNOWN_IDS {
        expect!(ctx.privileges(id).0.status == HvStatus::INVALID_PARTITION_ID, "get {id:#x}");
        expect!(ctx.set_privileges(id, 0).status == HvStatus::INVALID_PARTITION_ID, "set {id:#x}");
    }
    Ok(())
}

fn property_read_only_values(ctx: &Ctx) -> Outcome {
    // Our own mask is readable (root on itself) but fixed: a read-only
    // privilege cannot be modified (PROPERTY_VALUE_OUT_OF_RANGE).
    let before = ctx.privileges(ctx.root_id).1;
    expect_status!(ctx.set_privileges(ctx.root_id, 0), PROPERTY_VALUE_OUT_OF_RANGE);
    expect_eq!(ctx.privileges(ctx.root_id).1, before);
    // ProcessorVendor is read-only: AMD here.
    let child = Child::active(ctx, 0)?;
    expect_eq!(
        ctx.get_property(child.id, property::PROCESSOR_VENDOR),
        (HvResult::new(HvStatus::SUCCESS, 0), property::VENDOR_AMD)
    );
    expect_status!(ctx.set_property(child.id, property::PROCESSOR_VENDOR, 1), PROPERTY_VALUE_OUT_OF_RANGE);
    Ok(())
}

fn set_privileges_undefined_bits(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    for bit in [11u32, 16, 31, 41, 46, 63] {
        let r = ctx.set_privileges(child.id, privilege::CHILD_DEFAULT | 1 << bit);
        expect!(r.status == HvStatus::PROPERTY_VALUE_OUT_OF_RANGE, "bit {bit}: {:?}", r.status);
    }
    expect_eq!(ctx.privileges(child.id).1, privilege::CHILD_DEFAULT);
    Ok(())
}

fn property_not_a_child(ctx: &Ctx) -> Outcome {
    // A child of another child is nobody here; a partition of ours that is
    // not active has no properties to read.
    let child = Child::new(ctx)?;
    expect_status!(ctx.privileges(child.id), INVALID_PARTITION_STATE);
    expect_status!(ctx.set_privileges(child.id, 0), INVALID_PARTITION_STATE);
    Ok(())
}

/// Calls that need an active partition, on `id`: (name, status).
fn active_only_calls(ctx: &Ctx, id: u64) -> Vec<(&'static str, HvStatus)> {
    let page = ctx.pages(1);
    let results = alloc::vec![
        ("GetPartitionProperty", ctx.privileges(id).0.status),
        ("SetPartitionProperty", ctx.set_privileges(id, privilege::CHILD_DEFAULT).status),
        ("MapGpaPages", ctx.map(id, 0, abi::map_flags::ALL, &page).status),
        ("UnmapGpaPages", ctx.unmap(id, 0, 1).status),
        ("InstallIntercept", ctx.intercept(id, 3, abi::intercept::X64_IO_PORT, 0x80).status),
        ("CreateVp", ctx.create_vp(id, 0).status),
        ("DeleteVp", ctx.delete_vp(id, 0).status),
        ("GetVpRegisters", ctx.get_regs(id, 0, &[abi::reg::RIP]).0.status),
        ("SetVpRegisters", ctx.set_regs(id, 0, &[(abi::reg::RAX, 1)]).status),
        ("CreatePort", ctx.create_port(id, 1, ctx.root_id, abi::PortInfo::message(1, abi::VP_INDEX_ANY)).status),
        ("ConnectPort", ctx.connect(id, 1, ctx.root_id, 1, abi::port_type::MESSAGE).status),
    ];
    ctx.recycle(&page);
    results
}

fn all_are(results: &[(&str, HvStatus)], expected: HvStatus) -> Outcome {
    let wrong: Vec<_> = results.iter().filter(|(_, s)| *s != expected).collect();
    expect!(wrong.is_empty(), "expected {expected:?} from all; got {wrong:?}");
    Ok(())
}

fn state_uninitialized_permits(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let pages = child.deposit(3)?;
    expect_eq!(child.balance()?, (3, 0));
    let (r, back) = ctx.withdraw(child.id, 1);
    expect_status!(r, SUCCESS);
    expect!(back.len() == 1 && pages.contains(&back[0]), "withdrew {back:x?} of {pages:x?}");
    expect_eq!(ctx.next_child(ctx.root_id, 0).1, child.id);
    ctx.recycle(&back);
    child.deposit(INIT_PAGES - 2)?;
    expect_status!(ctx.initialize(child.id), SUCCESS);
    Ok(())
}

fn state_uninitialized_refuses(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    child.deposit(INIT_PAGES)?;
    let mut results = active_only_calls(ctx, child.id);
    results.push(("FinalizePartition", ctx.finalize(child.id).status));
    all_are(&results, HvStatus::INVALID_PARTITION_STATE)?;
    expect_eq!(child.balance()?, (INIT_PAGES as u64, 0));
    Ok(())
}

fn state_active_refuses(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    let results =
        [("InitializePartition", ctx.initialize(child.id).status), ("DeletePartition", ctx.delete(child.id).status)];
    all_are(&results, HvStatus::INVALID_PARTITION_STATE)
}

fn state_finalized_permits(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    expect_status!(ctx.finalize(child.id), SUCCESS);
    expect_eq!(child.balance()?, (INIT_PAGES as u64 + 1, 0));
    let (r, back) = ctx.withdraw(child.id, 2);
    expect_status!(r, SUCCESS);
    expect_eq!(back.len(), 2);
    ctx.recycle(&back);
    expect_eq!(ctx.next_child(ctx.root_id, 0).1, child.id);
    expect_eq!(ctx.drain(child.id), INIT_PAGES - 1);
    expect_status!(ctx.delete(child.id), SUCCESS);
    Ok(())
}

fn state_finalized_refuses(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    expect_status!(ctx.finalize(child.id), SUCCESS);
    let page = ctx.pages(1);
    let mut results = active_only_calls(ctx, child.id);
    results.push(("DepositMemory", ctx.deposit(child.id, &page).status));
    results.push(("InitializePartition", ctx.initialize(child.id).status));
    results.push(("FinalizePartition", ctx.finalize(child.id).status));
    ctx.recycle(&page);
    all_are(&results, HvStatus::INVALID_PARTITION_STATE)
}
