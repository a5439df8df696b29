//! `mx_guest_map` and `mx_guest_unmap` (magnetar): their errors in check
//! order, pages shared both ways, priority over physmem, unmapping (split,
//! trim, the guest's view afterwards, shootdown of a running VCPU), pinning,
//! and the kernel's counts back at their baseline.

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use mx::hypervisor::{Exit, Vcpu};
use mx::sys::*;
use mx::{Event, Rights, Status, Vmo};
use mx_abi::types::mx_handle_t;
use mx_abi::GUEST_PHYS_SIZE;

use crate::guests;
use crate::harness::{Failure, Outcome};
use crate::machine::*;
use crate::{cases, expect, expect_eq, expect_status, ok};

/// A guest-physical address above RAM, inside the snippets' identity map.
const SHARED: u64 = 0x0800_0000;
const PG: u64 = 0x1000;

fn map(guest: mx_handle_t, options: u32, gpa: u64, vmo: mx_handle_t, offset: u64, len: u64) -> i32 {
    unsafe { mx_guest_map(guest, options, gpa as usize, vmo, offset, len as usize) }
}

fn unmap(guest: mx_handle_t, gpa: u64, len: u64) -> i32 {
    unsafe { mx_guest_unmap(guest, gpa as usize, len as usize) }
}

fn vmo(size: u64) -> Result<Vmo, Failure> {
    Vmo::create(size).map_err(|s| Failure::Fail(alloc::format!("vmo: {s:?}")))
}

fn put(vmo: &Vmo, at: u64, value: u32) -> Result<(), Failure> {
    vmo.write_all(&value.to_le_bytes(), at).map_err(|s| Failure::Fail(alloc::format!("vmo write: {s:?}")))
}

fn get(vmo: &Vmo, at: u64) -> Result<u32, Failure> {
    let mut b = [0u8; 4];
    vmo.read_exact(&mut b, at).map_err(|s| Failure::Fail(alloc::format!("vmo read: {s:?}")))?;
    Ok(u32::from_le_bytes(b))
}

/// A VCPU of `m` at CODE with RDI (and RSI) set.
fn vcpu_with(m: &Machine, rdi: u64, rsi: u64) -> Result<Vcpu, Failure> {
    let v = m.vcpu()?;
    let mut s = ok!(v.read_state());
    s.rdi = rdi;
    s.rsi = rsi;
    ok!(v.write_state(&s));
    Ok(v)
}

/// Points the peek snippet at another address (at a report exit).
fn peek_at(v: &Vcpu, rdi: u64) -> Result<(), Failure> {
    let mut s = ok!(v.read_state());
    s.rdi = rdi;
    ok!(v.write_state(&s));
    Ok(())
}

// ------------------------------------------------------------ map errors

fn map_options_checked_first() -> Outcome {
    expect_status!(map(NOT_A_HANDLE, 1, SHARED, NOT_A_HANDLE, 0, PG), Status::InvalidArgs);
    Ok(())
}

fn map_bad_guest() -> Outcome {
    let v = vmo(PG)?;
    expect_status!(map(NOT_A_HANDLE, 0, SHARED, v.raw(), 0, PG), Status::BadHandle);
    expect_status!(map(0, 0, SHARED, v.raw(), 0, PG), Status::BadHandle);
    Ok(())
}

fn map_guest_without_write() -> Outcome {
    let m = machine(guests::spin())?;
    let v = vmo(PG)?;
    let ro = with_rights(m.guest.raw(), Rights::DUPLICATE.bits())?;
    expect_status!(map(ro.raw(), 0, SHARED, v.raw(), 0, PG), Status::AccessDenied);
    Ok(())
}

fn map_guest_wrong_type_before_vmo() -> Outcome {
    let e = Event::create().map_err(|s| alloc::format!("{s:?}"))?;
    expect_status!(map(e.raw(), 0, SHARED, NOT_A_HANDLE, 0, PG), Status::WrongType);
    Ok(())
}

fn map_bad_vmo() -> Outcome {
    let m = machine(guests::spin())?;
    expect_status!(map(m.guest.raw(), 0, SHARED, NOT_A_HANDLE, 0, PG), Status::BadHandle);
    // The VMO's handle comes before every range check.
    expect_status!(map(m.guest.raw(), 0, 1, NOT_A_HANDLE, 0, 0), Status::BadHandle);
    Ok(())
}

fn map_vmo_rights() -> Outcome {
    let m = machine(guests::spin())?;
    let v = vmo(PG)?;
    for missing in [Rights::READ, Rights::WRITE, Rights::EXECUTE] {
        let rights = (Rights::READ | Rights::WRITE | Rights::EXECUTE | Rights::MAP | Rights::DUPLICATE) - missing;
        let less = with_rights(v.raw(), rights.bits())?;
        expect_status!(map(m.guest.raw(), 0, SHARED, less.raw(), 0, PG), Status::AccessDenied);
    }
    let exact = with_rights(v.raw(), (Rights::READ | Rights::WRITE | Rights::EXECUTE).bits())?;
    expect_status!(map(m.guest.raw(), 0, SHARED, exact.raw(), 0, PG), Status::Ok);
    Ok(())
}

fn map_vmo_wrong_type() -> Outcome {
    let m = machine(guests::spin())?;
    let vcpu = m.vcpu()?; // READ, WRITE and EXECUTE: the type decides
    expect_status!(map(m.guest.raw(), 0, SHARED, vcpu.raw(), 0, PG), Status::WrongType);
    let e = Event::create().map_err(|s| alloc::format!("{s:?}"))?; // no EXECUTE: rights first
    expect_status!(map(m.guest.raw(), 0, SHARED, e.raw(), 0, PG), Status::AccessDenied);
    Ok(())
}

fn map_misaligned_or_empty() -> Outcome {
    let m = machine(guests::spin())?;
    let v = vmo(4 * PG)?;
    for (gpa, offset, len) in [(SHARED + 8, 0, PG), (SHARED, 8, PG), (SHARED, 0, PG + 1), (SHARED, 0, 0)] {
        expect_status!(map(m.guest.raw(), 0, gpa, v.raw(), offset, len), Status::InvalidArgs);
    }
    // Alignment comes before the range.
    expect_status!(map(m.guest.raw(), 0, GUEST_PHYS_SIZE + 8, v.raw(), 0, PG), Status::InvalidArgs);
    expect_status!(map(m.guest.raw(), 0, SHARED, v.raw(), 100 * PG, 0x800), Status::InvalidArgs);
    Ok(())
}

fn map_outside_guest_space() -> Outcome {
    let m = machine(guests::spin())?;
    let v = vmo(4 * PG)?;
    expect_status!(map(m.guest.raw(), 0, GUEST_PHYS_SIZE, v.raw(), 0, PG), Status::OutOfRange);
    expect_status!(map(m.guest.raw(), 0, GUEST_PHYS_SIZE - PG, v.raw(), 0, 2 * PG), Status::OutOfRange);
    expect_status!(map(m.guest.raw(), 0, u64::MAX - PG + 1, v.raw(), 0, PG), Status::OutOfRange);
    // The guest range is checked before the VMO's.
    expect_status!(map(m.guest.raw(), 0, GUEST_PHYS_SIZE, v.raw(), 8 * PG, PG), Status::OutOfRange);
    expect_status!(map(m.guest.raw(), 0, GUEST_PHYS_SIZE - PG, v.raw(), 3 * PG, PG), Status::Ok);
    Ok(())
}

fn map_outside_vmo() -> Outcome {
    let m = machine(guests::spin())?;
    let v = vmo(4 * PG)?;
    expect_status!(map(m.guest.raw(), 0, SHARED, v.raw(), 0, 5 * PG), Status::OutOfRange);
    expect_status!(map(m.guest.raw(), 0, SHARED, v.raw(), 4 * PG, PG), Status::OutOfRange);
    expect_status!(map(m.guest.raw(), 0, SHARED, v.raw(), u64::MAX - PG + 1, 2 * PG), Status::OutOfRange);
    expect_status!(map(m.guest.raw(), 0, SHARED, v.raw(), 0, 4 * PG), Status::Ok);
    Ok(())
}

fn map_overlap() -> Outcome {
    let m = machine(guests::spin())?;
    let v = vmo(8 * PG)?;
    expect_status!(map(m.guest.raw(), 0, SHARED, v.raw(), 0, 2 * PG), Status::Ok);
    expect_status!(map(m.guest.raw(), 0, SHARED, v.raw(), 0, 2 * PG), Status::AlreadyExists);
    expect_status!(map(m.guest.raw(), 0, SHARED + PG, v.raw(), 0, 2 * PG), Status::AlreadyExists);
    expect_status!(map(m.guest.raw(), 0, SHARED - PG, v.raw(), 0, 2 * PG), Status::AlreadyExists);
    expect_status!(map(m.guest.raw(), 0, SHARED - PG, v.raw(), 0, 8 * PG), Status::AlreadyExists);
    // Adjacent on both sides, and the same VMO pages twice, are fine.
    expect_status!(map(m.guest.raw(), 0, SHARED - PG, v.raw(), 0, PG), Status::Ok);
    expect_status!(map(m.guest.raw(), 0, SHARED + 2 * PG, v.raw(), 0, PG), Status::Ok);
    Ok(())
}

fn map_over_trap_and_physmem_ok() -> Outcome {
    let m = machine(guests::spin())?;
    let v = vmo(PG)?;
    ok!(m.guest.set_trap(mx_abi::TrapKind::Mem, MMIO, PG, None, 0));
    expect_status!(map(m.guest.raw(), 0, MMIO, v.raw(), 0, PG), Status::Ok);
    expect_status!(map(m.guest.raw(), 0, 0x100000, v.raw(), 0, PG), Status::Ok);
    Ok(())
}

// ------------------------------------------------------------ unmap errors

fn unmap_bad_guest() -> Outcome {
    expect_status!(unmap(NOT_A_HANDLE, SHARED, PG), Status::BadHandle);
    expect_status!(unmap(NOT_A_HANDLE, 1, 0), Status::BadHandle);
    Ok(())
}

fn unmap_guest_without_write() -> Outcome {
    let m = machine(guests::spin())?;
    let ro = with_rights(m.guest.raw(), Rights::DUPLICATE.bits())?;
    expect_status!(unmap(ro.raw(), SHARED, PG), Status::AccessDenied);
    Ok(())
}

fn unmap_guest_wrong_type() -> Outcome {
    let v = vmo(PG)?;
    let e = with_rights(v.raw(), Rights::WRITE.bits())?;
    expect_status!(unmap(e.raw(), SHARED, PG), Status::WrongType);
    Ok(())
}

fn unmap_misaligned_or_empty() -> Outcome {
    let m = machine(guests::spin())?;
    expect_status!(unmap(m.guest.raw(), SHARED + 8, PG), Status::InvalidArgs);
    expect_status!(unmap(m.guest.raw(), SHARED, 8), Status::InvalidArgs);
    expect_status!(unmap(m.guest.raw(), SHARED, 0), Status::InvalidArgs);
    expect_status!(unmap(m.guest.raw(), GUEST_PHYS_SIZE + 8, PG), Status::InvalidArgs);
    Ok(())
}

fn unmap_outside_guest_space() -> Outcome {
    let m = machine(guests::spin())?;
    expect_status!(unmap(m.guest.raw(), GUEST_PHYS_SIZE, PG), Status::OutOfRange);
    expect_status!(unmap(m.guest.raw(), GUEST_PHYS_SIZE - PG, 2 * PG), Status::OutOfRange);
    expect_status!(unmap(m.guest.raw(), u64::MAX - PG + 1, PG), Status::OutOfRange);
    // Nothing mapped: fine, all of it.
    expect_status!(unmap(m.guest.raw(), 0, GUEST_PHYS_SIZE), Status::Ok);
    Ok(())
}

// ------------------------------------------------------------ effects

fn map_shares_pages_both_ways() -> Outcome {
    let m = machine(guests::peek())?;
    let v = vmo(4 * PG)?;
    put(&v, PG, 0x1111_1111)?;
    ok!(m.guest.map(SHARED, &v, PG, 2 * PG));
    let cpu = vcpu_with(&m, SHARED, 0)?;
    expect_eq!(report(&cpu)?, 0x1111_1111);
    // Host writes through the VMO reach the guest: same page, no copy.
    put(&v, PG, 0x2222_2222)?;
    expect_eq!(report(&cpu)?, 0x2222_2222);
    peek_at(&cpu, SHARED + PG + 12)?;
    put(&v, 2 * PG + 12, 0x3333_3333)?;
    expect_eq!(report(&cpu)?, 0x3333_3333);
    Ok(())
}

fn guest_writes_seen_through_vmo() -> Outcome {
    let m = machine(guests::poke())?;
    let v = vmo(2 * PG)?;
    ok!(m.guest.map(SHARED, &v, PG, PG));
    let cpu = vcpu_with(&m, SHARED + 4, 0x600d_cafe)?;
    expect_out(&cpu, 0x80, 1, 0)?;
    expect_eq!(get(&v, PG + 4)?, 0x600d_cafe);
    expect_out(&cpu, 0x80, 1, 0)?;
    expect_eq!(get(&v, PG + 4)?, 0x600d_caff);
    expect_eq!(get(&v, 4)?, 0);
    Ok(())
}

fn map_over_physmem_then_unmap() -> Outcome {
    let m = machine(guests::peek())?;
    put(&m.ram, 0x100000, 0x5555_5555)?;
    let v = vmo(PG)?;
    put(&v, 0, 0x7777_7777)?;
    let cpu = vcpu_with(&m, 0x100000, 0)?;
    expect_eq!(report(&cpu)?, 0x5555_5555);
    // Mapped over RAM the guest already touched: the mapping wins.
    ok!(m.guest.map(0x100000, &v, 0, PG));
    expect_eq!(report(&cpu)?, 0x7777_7777);
    put(&v, 0, 0x8888_8888)?;
    expect_eq!(report(&cpu)?, 0x8888_8888);
    // Unmapped: physmem shows through again.
    ok!(m.guest.unmap(0x100000, PG));
    expect_eq!(report(&cpu)?, 0x5555_5555);
    expect_eq!(get(&v, 0)?, 0x8888_8888);
    Ok(())
}

fn mem_trap_over_mapping_wins() -> Outcome {
    let m = machine(guests::peek())?;
    let v = vmo(PG)?;
    put(&v, 0, 0x4444)?;
    ok!(m.guest.map(SHARED, &v, 0, PG));
    let cpu = vcpu_with(&m, SHARED, 0)?;
    expect_eq!(report(&cpu)?, 0x4444);
    ok!(m.guest.set_trap(mx_abi::TrapKind::Mem, SHARED, PG, None, 0));
    let exit = next(&cpu)?;
    expect!(matches!(exit, Exit::Mem { addr: SHARED, .. }), "{exit:x?}");
    Ok(())
}

fn unmap_then_access_is_out_of_range() -> Outcome {
    let m = machine(guests::peek())?;
    let v = vmo(PG)?;
    put(&v, 0, 0x1234)?;
    ok!(m.guest.map(SHARED, &v, 0, PG));
    let cpu = vcpu_with(&m, SHARED, 0)?;
    expect_eq!(report(&cpu)?, 0x1234);
    ok!(m.guest.unmap(SHARED - PG, 3 * PG));
    // Neither physmem nor a mapping nor a trap: as before mx_guest_map.
    expect_eq!(cpu.resume_packet().map(drop), Err(Status::OutOfRange));
    Ok(())
}

fn unmap_splits_a_mapping() -> Outcome {
    let m = machine(guests::peek())?;
    let v = vmo(3 * PG)?;
    for page in 0..3 {
        put(&v, page * PG, 0xa0 + page as u32)?;
    }
    ok!(m.guest.map(SHARED, &v, 0, 3 * PG));
    let cpu = vcpu_with(&m, SHARED, 0)?;
    expect_eq!(report(&cpu)?, 0xa0);
    ok!(m.guest.unmap(SHARED + PG, PG));
    expect_eq!(report(&cpu)?, 0xa0);
    peek_at(&cpu, SHARED + 2 * PG)?;
    expect_eq!(report(&cpu)?, 0xa2);
    // The hole can be mapped again, from another VMO.
    let w = vmo(PG)?;
    put(&w, 0, 0xb1)?;
    ok!(m.guest.map(SHARED + PG, &w, 0, PG));
    expect_status!(map(m.guest.raw(), 0, SHARED, w.raw(), 0, PG), Status::AlreadyExists);
    peek_at(&cpu, SHARED + PG)?;
    expect_eq!(report(&cpu)?, 0xb1);
    // Two whole mappings out, the first stays.
    ok!(m.guest.unmap(SHARED + PG, 2 * PG));
    peek_at(&cpu, SHARED)?;
    expect_eq!(report(&cpu)?, 0xa0);
    peek_at(&cpu, SHARED + 2 * PG)?;
    expect_eq!(cpu.resume_packet().map(drop), Err(Status::OutOfRange));
    Ok(())
}

fn unmap_trims_a_mapping() -> Outcome {
    let m = machine(guests::peek())?;
    let v = vmo(3 * PG)?;
    for page in 0..3 {
        put(&v, page * PG, 0xc0 + page as u32)?;
    }
    ok!(m.guest.map(SHARED, &v, 0, 3 * PG));
    let cpu = vcpu_with(&m, SHARED + PG, 0)?;
    expect_eq!(report(&cpu)?, 0xc1);
    // From before its start into it: the rest keeps its VMO offsets.
    ok!(m.guest.unmap(SHARED - 4 * PG, 5 * PG));
    expect_eq!(report(&cpu)?, 0xc1);
    peek_at(&cpu, SHARED + 2 * PG)?;
    expect_eq!(report(&cpu)?, 0xc2);
    peek_at(&cpu, SHARED)?;
    expect_eq!(cpu.resume_packet().map(drop), Err(Status::OutOfRange));
    Ok(())
}

fn mapped_vmo_is_pinned() -> Outcome {
    let m = machine(guests::spin())?;
    let v = vmo(4 * PG)?;
    ok!(m.guest.map(SHARED, &v, 2 * PG, PG));
    expect_eq!(v.set_size(PG), Err(Status::BadState));
    expect_eq!(v.set_size(8 * PG), Ok(()));
    ok!(m.guest.map(SHARED + PG, &v, 0, PG));
    // Still mapped once: still pinned.
    ok!(m.guest.unmap(SHARED, PG));
    expect_eq!(v.set_size(PG), Err(Status::BadState));
    ok!(m.guest.unmap(SHARED + PG, PG));
    expect_eq!(v.set_size(PG), Ok(()));
    // A split mapping pins for both halves.
    ok!(m.guest.map(SHARED, &v, 0, PG));
    ok!(v.set_size(3 * PG));
    ok!(m.guest.unmap(SHARED, PG));
    ok!(m.guest.map(SHARED, &v, 0, 3 * PG));
    ok!(m.guest.unmap(SHARED + PG, PG));
    ok!(m.guest.unmap(SHARED, PG));
    expect_eq!(v.set_size(0), Err(Status::BadState));
    ok!(m.guest.unmap(SHARED + 2 * PG, PG));
    expect_eq!(v.set_size(0), Ok(()));
    Ok(())
}

fn counts_back_after_guest_with_mappings() -> Outcome {
    need_hv()?;
    let before = counts_and_pages()?;
    {
        let m = machine(guests::peek())?;
        let v = vmo(4 * PG)?;
        put(&v, 0, 9)?;
        ok!(m.guest.map(SHARED, &v, 0, 2 * PG));
        ok!(m.guest.map(SHARED + 4 * PG, &v, 0, 4 * PG));
        ok!(m.guest.unmap(SHARED + 5 * PG, PG));
        let cpu = vcpu_with(&m, SHARED, 0)?;
        expect_eq!(report(&cpu)?, 9);
        // The VMO's handle goes first: the mappings keep it alive.
        drop(v);
        expect_eq!(report(&cpu)?, 9);
    }
    expect_eq!(counts_and_pages()?, before);
    Ok(())
}

/// A VCPU on another thread spins reading a mapped page. Once
/// `mx_guest_unmap` returns, nothing the host writes to the VMO may reach
/// the guest: its next read ends in OUT_OF_RANGE.
fn unmap_shoots_down_running_vcpu() -> Outcome {
    struct Shared {
        guest: mx_handle_t,
        apic: mx_handle_t,
        seen: AtomicU32,
        reports: AtomicU32,
        status: AtomicI32,
    }
    let m = machine(guests::watch())?;
    let v = vmo(PG)?;
    put(&v, 0, 1)?;
    ok!(m.guest.map(SHARED, &v, 0, PG));
    let shared = Shared {
        guest: m.guest.raw(),
        apic: m.apic.raw(),
        seen: AtomicU32::new(0),
        reports: AtomicU32::new(0),
        status: AtomicI32::new(1),
    };
    let runner = spawn(
        |s: &Shared| {
            let guest = borrowed(s.guest, mx::hypervisor::Guest::from_handle);
            let apic = borrowed(s.apic, Vmo::from_handle);
            let Ok(cpu) = Vcpu::create(&guest, CODE, PML4, &apic) else { return };
            let Ok(mut state) = cpu.read_state() else { return };
            state.rsp = STACK_TOP;
            state.rdi = SHARED;
            if cpu.write_state(&state).is_err() {
                return;
            }
            loop {
                match cpu.resume_packet() {
                    Ok(p) => {
                        if let Ok(mx_abi::Payload::GuestIo(io)) = p.payload() {
                            s.seen.store(io.data, Ordering::SeqCst);
                            s.reports.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(status) => {
                        s.status.store(status.into_raw(), Ordering::SeqCst);
                        return;
                    }
                }
            }
        },
        &shared,
    )?;
    let deadline = after(5_000_000_000);
    let wait_for = |value: u32| {
        while shared.seen.load(Ordering::SeqCst) != value && mx::time_monotonic() < deadline {
            sleep(200_000);
        }
    };
    wait_for(1);
    expect_eq!(shared.seen.load(Ordering::SeqCst), 1);
    put(&v, 0, 2)?;
    wait_for(2);
    expect_eq!(shared.seen.load(Ordering::SeqCst), 2);
    ok!(m.guest.unmap(SHARED, PG));
    let reports = shared.reports.load(Ordering::SeqCst);
    put(&v, 0, 3)?;
    runner.join()?;
    expect_eq!(shared.status.load(Ordering::SeqCst), Status::OutOfRange.into_raw());
    expect_eq!(shared.reports.load(Ordering::SeqCst), reports);
    expect_eq!(shared.seen.load(Ordering::SeqCst), 2);
    Ok(())
}

cases![
    map_options_checked_first,
    map_bad_guest,
    map_guest_without_write,
    map_guest_wrong_type_before_vmo,
    map_bad_vmo,
    map_vmo_rights,
    map_vmo_wrong_type,
    map_misaligned_or_empty,
    map_outside_guest_space,
    map_outside_vmo,
    map_overlap,
    map_over_trap_and_physmem_ok,
    unmap_bad_guest,
    unmap_guest_without_write,
    unmap_guest_wrong_type,
    unmap_misaligned_or_empty,
    unmap_outside_guest_space,
    map_shares_pages_both_ways,
    guest_writes_seen_through_vmo,
    map_over_physmem_then_unmap,
    mem_trap_over_mapping_wins,
    unmap_then_access_is_out_of_range,
    unmap_splits_a_mapping,
    unmap_trims_a_mapping,
    mapped_vmo_is_pinned,
    counts_back_after_guest_with_mappings,
    unmap_shoots_down_running_vcpu,
];
