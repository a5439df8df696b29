//! HvMapGpaPages and HvUnmapGpaPages (reference §3.1; README "The root's
//! memory", "Guests and VPs"): mapped pages are shared between the root
//! and the guest; the refused flags, sources and targets.

use hv::abi::{map_flags, HvStatus};

use crate::ctx::Ctx;
use crate::harness::Outcome;
use crate::script::Op;
use crate::vm::{Child, Vm};
use crate::{cases, expect, expect_eq, expect_status};

cases![
    map_pages,
    map_shared_with_guest,
    remap_supersedes,
    unmap_removes_guest_access,
    map_uninitialized,
    map_unknown_id,
    map_not_a_child,
    map_reserved_flag,
    map_illegal_combination,
    map_source_outside_root_memory,
    map_deposited_source,
    map_stops_at_bad_element,
    map_target_outside_gpa_space,
    unmap_pages,
    unmap_unmapped_is_silent,
    unmap_uninitialized,
    unmap_not_a_child,
    unmap_unknown_id,
    unmap_target_outside_gpa_space,
];

/// A guest-physical page number far beyond any guest's space.
const FAR_GPA_PAGE: u64 = 1 << 40;

fn map_pages(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let pages = ctx.pages(4);
    let r = ctx.map(child.id, 0x100, map_flags::READABLE | map_flags::WRITABLE, &pages);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, 4);
    child.note_mapped(&pages);
    // Read-only and read-execute are legal too (same 2 MiB block: no new page).
    let more = ctx.pages(2);
    expect_status!(ctx.map(child.id, 0x180, map_flags::READABLE, &more[..1]), SUCCESS);
    expect_status!(ctx.map(child.id, 0x181, map_flags::READABLE | map_flags::EXECUTABLE, &more[1..]), SUCCESS);
    child.note_mapped(&more);
    expect_eq!(child.balance()?, (0, 17));
    Ok(())
}

fn map_shared_with_guest(ctx: &Ctx) -> Outcome {
    let vm = Vm::new(ctx, 0)?;
    // A page mapped at GPA 0x40000 (same 2 MiB block: no new pool page).
    let page = ctx.pages(1);
    expect_status!(ctx.map(vm.id(), 0x40, map_flags::ALL, &page), SUCCESS);
    vm.child.note_mapped(&page);
    crate::mem::write_u64(page[0] * 4096 + 8, 0x1122_3344_5566_7788);
    vm.run(&[Op::Wait { gpa: 0x40008 }])?;
    expect_eq!(vm.result(0, 0), 0x1122_3344_5566_7788);
    Ok(())
}

fn remap_supersedes(ctx: &Ctx) -> Outcome {
    // Mapping another page at a mapped GPA replaces it: the guest sees the
    // new page, and the old one is free again (it can be deposited).
    let vm = Vm::new(ctx, 1)?;
    let pages = ctx.pages(2);
    crate::mem::write_u64(pages[0] * 4096, 0xaaaa);
    crate::mem::write_u64(pages[1] * 4096, 0xbbbb);
    expect_status!(ctx.map(vm.id(), 0x40, map_flags::ALL, &pages[..1]), SUCCESS);
    expect_status!(ctx.map(vm.id(), 0x40, map_flags::ALL, &pages[1..]), SUCCESS);
    vm.child.note_mapped(&pages[1..]);
    expect_eq!(vm.child.balance()?, (1, 21));
    vm.run(&[Op::Wait { gpa: 0x40000 }])?;
    expect_eq!(vm.result(0, 0), 0xbbbb);
    expect_status!(ctx.deposit(vm.id(), &pages[..1]), SUCCESS);
    Ok(())
}

fn unmap_removes_guest_access(ctx: &Ctx) -> Outcome {
    // A guest touching a GPA that was unmapped cannot run on: there is no
    // memory behind it (UnrecoverableException to the parent).
    let vm = Vm::new(ctx, 0)?;
    let page = ctx.pages(1);
    crate::mem::write_u64(page[0] * 4096, 0x5a5a);
    expect_status!(ctx.map(vm.id(), 0x40, map_flags::ALL, &page), SUCCESS);
    vm.script(&[Op::Wait { gpa: 0x40000 }, Op::Wait { gpa: 0x3000 }, Op::Wait { gpa: 0x40000 }]);
    vm.start()?;
    vm.wait_progress(1)?;
    expect_eq!(vm.result(0, 0), 0x5a5a);
    expect_status!(ctx.unmap(vm.id(), 0x40, 1), SUCCESS);
    ctx.recycle(&page);
    crate::mem::write_u64(vm.addr(0x3000), 1);
    let m = ctx.wait_message(0)?;
    expect_eq!(m.header.message_type, hv::abi::message_type::UNRECOVERABLE_EXCEPTION);
    expect_eq!(vm.progress(), 2);
    expect_eq!(ctx.consume_message(0), HvStatus::SUCCESS);
    Ok(())
}

fn map_uninitialized(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    child.deposit(2)?;
    let page = ctx.pages(1);
    expect_status!(ctx.map(child.id, 0, map_flags::ALL, &page), INVALID_PARTITION_STATE);
    expect_eq!(child.balance()?, (2, 0));
    ctx.recycle(&page);
    Ok(())
}

fn map_unknown_id(ctx: &Ctx) -> Outcome {
    let page = ctx.pages(1);
    for id in [0u64, 0x7fff_ffff_ffff_fffe] {
        let r = ctx.map(id, 0, map_flags::ALL, &page);
        expect!(r.status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}: {:?}", r.status);
    }
    ctx.recycle(&page);
    Ok(())
}

fn map_not_a_child(ctx: &Ctx) -> Outcome {
    // Our own space is our virtual memory: nothing to map into it.
    let page = ctx.pages(1);
    expect_status!(ctx.map(ctx.root_id, 0x100, map_flags::ALL, &page), ACCESS_DENIED);
    ctx.recycle(&page);
    Ok(())
}

fn map_reserved_flag(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let page = ctx.pages(1);
    for flags in [map_flags::ALL | 1 << 3, map_flags::READABLE | 1 << 31, u32::MAX] {
        let r = ctx.map(child.id, 0, flags, &page);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "flags {flags:#x}: {:?}", r.status);
    }
    expect_eq!(child.balance()?, (1, 16));
    ctx.recycle(&page);
    Ok(())
}

fn map_illegal_combination(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let page = ctx.pages(1);
    for flags in [map_flags::WRITABLE, map_flags::EXECUTABLE, map_flags::WRITABLE | map_flags::EXECUTABLE] {
        let r = ctx.map(child.id, 0, flags, &page);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "flags {flags:#x}: {:?}", r.status);
    }
    expect_eq!(child.balance()?, (1, 16));
    ctx.recycle(&page);
    Ok(())
}

fn map_source_outside_root_memory(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let local = [0u8; 8];
    for source in [ctx.outside_page(), 0, local.as_ptr() as u64 / 4096, u64::MAX] {
        let r = ctx.map(child.id, 0, map_flags::ALL, &[source]);
        expect!(r.status == HvStatus::OPERATION_DENIED, "source {source:#x}: {:?}", r.status);
        expect_eq!(r.reps_completed, 0);
    }
    expect_eq!(child.balance()?, (1, 16));
    Ok(())
}

fn map_deposited_source(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 2)?;
    let deposited = ctx.pages(1);
    expect_status!(ctx.deposit(ctx.root_id, &deposited), SUCCESS);
    expect_status!(ctx.map(child.id, 0, map_flags::ALL, &deposited), OPERATION_DENIED);
    // Nor a page of the target's own pool.
    let (_, own) = ctx.withdraw(child.id, 1);
    expect_status!(ctx.deposit(child.id, &own), SUCCESS);
    expect_status!(ctx.map(child.id, 0, map_flags::ALL, &own), OPERATION_DENIED);
    expect_eq!(child.balance()?, (2, 16));
    Ok(())
}

fn map_stops_at_bad_element(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let good = ctx.pages(3);
    let list = [good[0], good[1], ctx.outside_page(), good[2]];
    let r = ctx.map(child.id, 0x10, map_flags::ALL, &list);
    expect_status!(r, OPERATION_DENIED);
    expect_eq!(r.reps_completed, 2);
    child.note_mapped(&good[..2]);
    // good[2] was not mapped: it can still be deposited.
    expect_status!(ctx.deposit(child.id, &good[2..]), SUCCESS);
    // good[0] is mapped: it cannot.
    expect_status!(ctx.deposit(child.id, &good[..1]), OPERATION_DENIED);
    Ok(())
}

fn map_target_outside_gpa_space(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let page = ctx.pages(1);
    for target in [FAR_GPA_PAGE, u64::MAX >> 12, u64::MAX] {
        let r = ctx.map(child.id, target, map_flags::ALL, &page);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "target {target:#x}: {:?}", r.status);
    }
    expect_eq!(child.balance()?, (1, 16));
    ctx.recycle(&page);
    Ok(())
}

fn unmap_pages(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let pages = child.map_new(0x30, 3)?;
    let r = ctx.unmap(child.id, 0x30, 3);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, 3);
    // Unmapped pages are free again: they can be deposited.
    expect_status!(ctx.deposit(child.id, &pages), SUCCESS);
    expect_eq!(child.balance()?, (4, 16));
    Ok(())
}

fn unmap_unmapped_is_silent(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    let r = ctx.unmap(child.id, 0x500, 8);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, 8);
    expect_eq!(child.balance()?, (0, 16));
    Ok(())
}

fn unmap_uninitialized(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    expect_status!(ctx.unmap(child.id, 0, 1), INVALID_PARTITION_STATE);
    Ok(())
}

fn unmap_not_a_child(ctx: &Ctx) -> Outcome {
    expect_status!(ctx.unmap(ctx.root_id, 0x100, 1), ACCESS_DENIED);
    Ok(())
}

fn unmap_unknown_id(ctx: &Ctx) -> Outcome {
    for id in [0u64, 0x7fff_ffff_ffff_fffe] {
        expect!(ctx.unmap(id, 0, 1).status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn unmap_target_outside_gpa_space(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    for target in [FAR_GPA_PAGE, u64::MAX] {
        let r = ctx.unmap(child.id, target, 1);
        expect!(r.status == HvStatus::INVALID_PARAMETER, "target {target:#x}: {:?}", r.status);
    }
    Ok(())
}
