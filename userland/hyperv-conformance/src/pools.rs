//! Memory pools (reference §4.4; README "Memory pools"): deposit, withdraw
//! and balance arithmetic, the refused pages, and INSUFFICIENT_MEMORY
//! exactly at the documented page cost of each object, cured by depositing.

use alloc::vec::Vec;

use hv::abi::{self, intercept, map_flags, HvStatus, PortInfo, ProximityDomainInfo};

use crate::ctx::Ctx;
use crate::harness::Outcome;
use crate::vm::{Child, INIT_PAGES, VP_PAGES};
use crate::{cases, expect, expect_eq, expect_status, ok};

cases![
    deposit_into_own_pool,
    deposit_into_child,
    deposit_twice_refused,
    deposit_stops_at_bad_element,
    deposit_duplicate_in_one_list,
    deposit_outside_root_memory,
    deposit_mapped_page,
    deposit_unknown_id,
    withdraw_arithmetic,
    withdraw_empty_pool,
    withdraw_leaves_pages_in_use,
    withdrawn_page_deposits_again,
    withdrawn_pages_are_zeroed,
    withdraw_bad_proximity,
    withdraw_unknown_id,
    balance_bad_proximity,
    balance_unknown_id,
    vp_costs_four_pages,
    mapping_costs_a_page_per_2mib_block,
    port_costs_one_page,
    connection_costs_one_page,
    cpuid_intercept_costs_one_page,
    other_intercepts_cost_nothing,
];

const UNKNOWN_IDS: [u64; 2] = [0, 0x7fff_ffff_ffff_fffe];

fn deposit_into_own_pool(ctx: &Ctx) -> Outcome {
    let (available, in_use) = ctx.balance(ctx.root_id).1;
    ok!(ctx.deposit_new(ctx.root_id, 3));
    expect_eq!(ctx.balance(ctx.root_id).1, (available + 3, in_use));
    Ok(())
}

fn deposit_into_child(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let pages = ctx.pages(5);
    let r = ctx.deposit(child.id, &pages);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, 5);
    expect_eq!(child.balance()?, (5, 0));
    Ok(())
}

fn deposit_twice_refused(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let pages = child.deposit(1)?;
    let root_before = ctx.balance(ctx.root_id).1;
    let r = ctx.deposit(child.id, &pages);
    expect_status!(r, OPERATION_DENIED);
    expect_eq!(r.reps_completed, 0);
    // Not into another pool either.
    expect_status!(ctx.deposit(ctx.root_id, &pages), OPERATION_DENIED);
    expect_eq!(child.balance()?, (1, 0));
    expect_eq!(ctx.balance(ctx.root_id).1, root_before);
    Ok(())
}

fn deposit_stops_at_bad_element(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let old = child.deposit(1)?;
    let fresh = ctx.pages(3);
    let list = [fresh[0], fresh[1], old[0], fresh[2]];
    let r = ctx.deposit(child.id, &list);
    expect_status!(r, OPERATION_DENIED);
    expect_eq!(r.reps_completed, 2);
    expect_eq!(child.balance()?, (3, 0));
    // The element after the bad one was not deposited.
    expect_status!(ctx.deposit(child.id, &fresh[2..]), SUCCESS);
    expect_eq!(child.balance()?, (4, 0));
    Ok(())
}

fn deposit_duplicate_in_one_list(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let page = ctx.pages(1)[0];
    let r = ctx.deposit(child.id, &[page, page]);
    expect_status!(r, OPERATION_DENIED);
    expect_eq!(r.reps_completed, 1);
    expect_eq!(child.balance()?, (1, 0));
    Ok(())
}

fn deposit_outside_root_memory(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let (base, _) = ctx.root.memory();
    let local = [0u8; 16];
    for page in [ctx.outside_page(), base as u64 / 4096 - 1, 0, local.as_ptr() as u64 / 4096, u64::MAX] {
        let r = ctx.deposit(child.id, &[page]);
        expect!(r.status == HvStatus::OPERATION_DENIED, "page {page:#x}: {:?}", r.status);
        expect_eq!(r.reps_completed, 0);
    }
    expect_eq!(child.balance()?, (0, 0));
    Ok(())
}

fn deposit_mapped_page(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 1)?;
    let mapped = child.map_new(0x10, 1)?;
    let other = Child::new(ctx)?;
    expect_status!(ctx.deposit(other.id, &mapped), OPERATION_DENIED);
    expect_status!(ctx.deposit(child.id, &mapped), OPERATION_DENIED);
    expect_eq!(other.balance()?, (0, 0));
    Ok(())
}

fn deposit_unknown_id(ctx: &Ctx) -> Outcome {
    let page = ctx.pages(1);
    for id in UNKNOWN_IDS {
        let r = ctx.deposit(id, &page);
        expect!(r.status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}: {:?}", r.status);
        expect_eq!(r.reps_completed, 0);
    }
    // The page is still free to deposit.
    expect_status!(ctx.deposit(ctx.root_id, &page), SUCCESS);
    Ok(())
}

fn withdraw_arithmetic(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let pages = child.deposit(5)?;
    let (r, got) = ctx.withdraw(child.id, 3);
    expect_status!(r, SUCCESS);
    expect_eq!(r.reps_completed, 3);
    expect!(got.iter().all(|p| pages.contains(p)), "withdrew {got:x?}, deposited {pages:x?}");
    let mut unique = got.clone();
    unique.sort_unstable();
    unique.dedup();
    expect_eq!(unique.len(), 3);
    expect_eq!(child.balance()?, (2, 0));
    ctx.recycle(&got);
    let (r, rest) = ctx.withdraw(child.id, 2);
    expect_status!(r, SUCCESS);
    expect_eq!(rest.len(), 2);
    expect!(rest.iter().all(|p| pages.contains(p) && !got.contains(p)), "second withdrawal {rest:x?}");
    expect_eq!(child.balance()?, (0, 0));
    ctx.recycle(&rest);
    Ok(())
}

fn withdraw_empty_pool(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let (r, got) = ctx.withdraw(child.id, 1);
    expect_status!(r, NO_RESOURCES);
    expect_eq!(r.reps_completed, 0);
    expect!(got.is_empty());
    child.deposit(1)?;
    let (r, got) = ctx.withdraw(child.id, 1);
    expect_status!(r, SUCCESS);
    ctx.recycle(&got);
    expect_status!(ctx.withdraw(child.id, 1), NO_RESOURCES);
    Ok(())
}

fn withdraw_leaves_pages_in_use(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 2)?;
    // Two available, sixteen in use: only the two come back.
    let (r, got) = ctx.withdraw(child.id, 2);
    expect_status!(r, SUCCESS);
    expect_eq!(got.len(), 2);
    ctx.recycle(&got);
    let (r, got) = ctx.withdraw(child.id, 1);
    expect_status!(r, NO_RESOURCES);
    expect!(got.is_empty());
    expect_eq!(child.balance()?, (0, INIT_PAGES as u64));
    Ok(())
}

fn withdrawn_page_deposits_again(ctx: &Ctx) -> Outcome {
    let a = Child::new(ctx)?;
    let b = Child::new(ctx)?;
    let pages = a.deposit(1)?;
    let (r, got) = ctx.withdraw(a.id, 1);
    expect_status!(r, SUCCESS);
    expect_eq!(got, pages);
    expect_status!(ctx.deposit(b.id, &got), SUCCESS);
    expect_eq!(b.balance()?, (1, 0));
    expect_eq!(a.balance()?, (0, 0));
    Ok(())
}

fn withdrawn_pages_are_zeroed(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    let pages = child.deposit(2)?;
    for &p in &pages {
        crate::mem::fill(p * 4096, 4096, 0x6b);
    }
    let (r, got) = ctx.withdraw(child.id, 2);
    expect_status!(r, SUCCESS);
    for &p in &got {
        let bytes = crate::mem::read(p * 4096, 4096);
        expect!(bytes.iter().all(|&b| b == 0), "page {p:#x} not zeroed");
    }
    ctx.recycle(&got);
    Ok(())
}

fn withdraw_bad_proximity(ctx: &Ctx) -> Outcome {
    let child = Child::new(ctx)?;
    child.deposit(1)?;
    let (r, _) = ctx.withdraw_with(child.id, 1, ProximityDomainInfo { id: 0, flags: 1 << 3 });
    expect_status!(r, INVALID_PARAMETER);
    expect_eq!(child.balance()?, (1, 0));
    Ok(())
}

fn withdraw_unknown_id(ctx: &Ctx) -> Outcome {
    for id in UNKNOWN_IDS {
        let (r, _) = ctx.withdraw(id, 1);
        expect!(r.status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}: {:?}", r.status);
    }
    Ok(())
}

fn balance_bad_proximity(ctx: &Ctx) -> Outcome {
    let (r, _) = ctx.balance_with(ctx.root_id, ProximityDomainInfo { id: 0, flags: 1 << 1 });
    expect_status!(r, INVALID_PARAMETER);
    Ok(())
}

fn balance_unknown_id(ctx: &Ctx) -> Outcome {
    for id in UNKNOWN_IDS {
        expect!(ctx.balance(id).0.status == HvStatus::INVALID_PARTITION_ID, "id {id:#x}");
    }
    Ok(())
}

fn vp_costs_four_pages(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, VP_PAGES - 1)?;
    expect_status!(ctx.create_vp(child.id, 0), INSUFFICIENT_MEMORY);
    expect_eq!(child.balance()?, (VP_PAGES as u64 - 1, INIT_PAGES as u64));
    expect_status!(ctx.get_regs(child.id, 0, &[abi::reg::RIP]), INVALID_VP_INDEX);
    child.deposit(1)?;
    expect_status!(ctx.create_vp(child.id, 0), SUCCESS);
    expect_eq!(child.balance()?, (0, (INIT_PAGES + VP_PAGES) as u64));
    expect_status!(ctx.delete_vp(child.id, 0), SUCCESS);
    expect_eq!(child.balance()?, (VP_PAGES as u64, INIT_PAGES as u64));
    Ok(())
}

fn mapping_costs_a_page_per_2mib_block(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    let pages = ctx.pages(3);
    let used = INIT_PAGES as u64;
    expect_status!(ctx.map(child.id, 0, map_flags::ALL, &pages[..1]), INSUFFICIENT_MEMORY);
    child.deposit(1)?;
    expect_status!(ctx.map(child.id, 0, map_flags::ALL, &pages[..1]), SUCCESS);
    child.note_mapped(&pages[..1]);
    expect_eq!(child.balance()?, (0, used + 1));
    // Same 2 MiB block (GPA pages 0-511): no new page.
    expect_status!(ctx.map(child.id, 511, map_flags::ALL, &pages[1..2]), SUCCESS);
    child.note_mapped(&pages[1..2]);
    expect_eq!(child.balance()?, (0, used + 1));
    // The next block needs one more.
    expect_status!(ctx.map(child.id, 512, map_flags::ALL, &pages[2..3]), INSUFFICIENT_MEMORY);
    child.deposit(1)?;
    expect_status!(ctx.map(child.id, 512, map_flags::ALL, &pages[2..3]), SUCCESS);
    child.note_mapped(&pages[2..3]);
    expect_eq!(child.balance()?, (0, used + 2));
    // A block whose last page is unmapped gives its page back.
    expect_status!(ctx.unmap(child.id, 512, 1), SUCCESS);
    expect_eq!(child.balance()?, (1, used + 1));
    expect_status!(ctx.unmap(child.id, 0, 1), SUCCESS);
    expect_eq!(child.balance()?, (1, used + 1));
    expect_status!(ctx.unmap(child.id, 511, 1), SUCCESS);
    expect_eq!(child.balance()?, (2, used));
    Ok(())
}

fn port_costs_one_page(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    let info = PortInfo::message(1, abi::VP_INDEX_ANY);
    expect_status!(ctx.create_port(child.id, 5, ctx.root_id, info), INSUFFICIENT_MEMORY);
    child.deposit(1)?;
    expect_status!(ctx.create_port(child.id, 5, ctx.root_id, info), SUCCESS);
    expect_eq!(child.balance()?, (0, INIT_PAGES as u64 + 1));
    expect_status!(ctx.delete_port(child.id, 5), SUCCESS);
    expect_eq!(child.balance()?, (1, INIT_PAGES as u64));
    Ok(())
}

fn connection_costs_one_page(ctx: &Ctx) -> Outcome {
    // Port in A (paid by A), connection in B (paid by B).
    let a = Child::active(ctx, 1)?;
    let b = Child::active(ctx, 0)?;
    expect_status!(ctx.create_port(a.id, 6, b.id, PortInfo::event(1, abi::VP_INDEX_ANY, 0, 1)), SUCCESS);
    expect_status!(ctx.connect(b.id, 7, a.id, 6, abi::port_type::EVENT), INSUFFICIENT_MEMORY);
    expect_eq!(b.balance()?, (0, INIT_PAGES as u64));
    b.deposit(1)?;
    expect_status!(ctx.connect(b.id, 7, a.id, 6, abi::port_type::EVENT), SUCCESS);
    expect_eq!(b.balance()?, (0, INIT_PAGES as u64 + 1));
    expect_eq!(a.balance()?, (0, INIT_PAGES as u64 + 1));
    expect_status!(ctx.disconnect(b.id, 7), SUCCESS);
    expect_eq!(b.balance()?, (1, INIT_PAGES as u64));
    Ok(())
}

fn cpuid_intercept_costs_one_page(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    let exec = intercept::ACCESS_EXECUTE;
    expect_status!(ctx.intercept(child.id, exec, intercept::X64_CPUID, 0x1357), INSUFFICIENT_MEMORY);
    child.deposit(1)?;
    expect_status!(ctx.intercept(child.id, exec, intercept::X64_CPUID, 0x1357), SUCCESS);
    expect_eq!(child.balance()?, (0, INIT_PAGES as u64 + 1));
    // Installing the same leaf again is no new leaf.
    expect_status!(ctx.intercept(child.id, exec, intercept::X64_CPUID, 0x1357), SUCCESS);
    expect_eq!(child.balance()?, (0, INIT_PAGES as u64 + 1));
    // Removing it gives the page back.
    expect_status!(ctx.intercept(child.id, intercept::ACCESS_NONE, intercept::X64_CPUID, 0x1357), SUCCESS);
    expect_eq!(child.balance()?, (1, INIT_PAGES as u64));
    Ok(())
}

fn other_intercepts_cost_nothing(ctx: &Ctx) -> Outcome {
    let child = Child::active(ctx, 0)?;
    let rw = intercept::ACCESS_READ | intercept::ACCESS_WRITE;
    let results: Vec<HvStatus> = [
        ctx.intercept(child.id, rw, intercept::X64_IO_PORT, 0x60),
        ctx.intercept(child.id, rw, intercept::X64_MSR, 0),
        ctx.intercept(child.id, intercept::ACCESS_EXECUTE, intercept::X64_EXCEPTION, 6),
    ]
    .iter()
    .map(|r| r.status)
    .collect();
    expect_eq!(results, alloc::vec![HvStatus::SUCCESS; 3]);
    expect_eq!(child.balance()?, (0, INIT_PAGES as u64));
    Ok(())
}
