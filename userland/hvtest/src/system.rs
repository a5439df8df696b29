//! `MX_VCPU_SYSTEM`: the errors of reading and writing it in check order,
//! the state of a new VCPU, and RIP, RFLAGS and CR3 written by the manager
//! as the guest sees them.

use mx::hypervisor::Vcpu;
use mx::sys::*;
use mx::Status;
use mx_abi::types::mx_handle_t;
use mx_abi::wire::Wire;
use mx_abi::{VcpuStateKind, VcpuSystem, GUEST_PHYS_SIZE};

use crate::errors::from_other_thread;
use crate::guests;
use crate::harness::{Failure, Outcome};
use crate::machine::*;
use crate::{cases, expect_eq, expect_status, ok};

const SYSTEM: u32 = VcpuStateKind::System as u32;

fn read_raw(vcpu: mx_handle_t, len: u32) -> i32 {
    let mut buf = [0u8; 256];
    unsafe { mx_vcpu_read_state(vcpu, SYSTEM, buf.as_mut_ptr().cast(), len) }
}

fn write_raw(vcpu: mx_handle_t, system: &VcpuSystem, len: u32) -> i32 {
    let mut buf = [0u8; 256];
    buf[..VcpuSystem::SIZE].copy_from_slice(&system.to_bytes());
    unsafe { mx_vcpu_write_state(vcpu, SYSTEM, buf.as_ptr().cast(), len) }
}

fn spinning() -> Result<(Machine, Vcpu), Failure> {
    let m = machine(guests::spin())?;
    let v = m.vcpu()?;
    Ok((m, v))
}

/// What decision 9 promises for a new VCPU at CODE with CR3 = PML4.
fn fresh() -> VcpuSystem {
    VcpuSystem {
        rip: CODE,
        rflags: 0x2,
        cr0: 0x8000_0031,
        cr2: 0,
        cr3: PML4,
        cr4: 0x20,
        efer: 0x500,
        cs_base: 0,
        cs_limit: 0xffff_ffff,
        cs_selector: 0x08,
        cs_attrib: 0xa09b,
        cpl: 0,
        interrupt_shadow: 0,
        reserved: [0; 6],
    }
}

fn system_read_after_create() -> Outcome {
    let (_m, v) = spinning()?;
    expect_eq!(ok!(v.read_system()), fresh());
    Ok(())
}

fn system_read_len_must_be_80() -> Outcome {
    let (_m, v) = spinning()?;
    expect_status!(read_raw(v.raw(), 80), Status::Ok);
    for len in [0, 79, 81, 136] {
        expect_status!(read_raw(v.raw(), len), Status::InvalidArgs);
    }
    Ok(())
}

fn system_read_len_over_136_first() -> Outcome {
    let (_m, v) = spinning()?;
    let status = from_other_thread(&v, |h| read_raw(h, 137))?;
    expect_status!(status, Status::InvalidArgs);
    Ok(())
}

fn system_read_from_other_thread() -> Outcome {
    let (_m, v) = spinning()?;
    let status = from_other_thread(&v, |h| read_raw(h, 80))?;
    expect_status!(status, Status::BadState);
    Ok(())
}

fn system_read_buffer_null() -> Outcome {
    let (_m, v) = spinning()?;
    expect_status!(unsafe { mx_vcpu_read_state(v.raw(), SYSTEM, core::ptr::null_mut(), 80) }, Status::InvalidArgs);
    Ok(())
}

fn system_write_len_must_be_80() -> Outcome {
    let (_m, v) = spinning()?;
    let s = fresh();
    for len in [0, 8, 79, 81, 136, 137] {
        expect_status!(write_raw(v.raw(), &s, len), Status::InvalidArgs);
    }
    expect_status!(write_raw(v.raw(), &s, 80), Status::Ok);
    Ok(())
}

fn system_write_from_other_thread() -> Outcome {
    let (_m, v) = spinning()?;
    let status = from_other_thread(&v, |h| write_raw(h, &fresh(), 80))?;
    expect_status!(status, Status::BadState);
    Ok(())
}

fn system_write_bad_rflags_changes_nothing() -> Outcome {
    let (_m, v) = spinning()?;
    for rflags in [0, 0x1, 0x2 | (1 << 3), 0x2 | (1 << 5), 0x2 | (1 << 15), 0x2 | (1 << 22), 0x2 | (1 << 63)] {
        let s = VcpuSystem { rip: CODE + 1, rflags, cr3: 0x6000, ..fresh() };
        expect_status!(write_raw(v.raw(), &s, 80), Status::InvalidArgs);
        expect_eq!(ok!(v.read_system()), fresh());
    }
    Ok(())
}

fn system_write_cr3_outside_guest_space() -> Outcome {
    let (_m, v) = spinning()?;
    for cr3 in [GUEST_PHYS_SIZE, GUEST_PHYS_SIZE + 0x1000, u64::MAX] {
        let s = VcpuSystem { rip: CODE + 1, rflags: 0x3, cr3, ..fresh() };
        expect_status!(write_raw(v.raw(), &s, 80), Status::InvalidArgs);
        expect_eq!(ok!(v.read_system()), fresh());
    }
    let last = VcpuSystem { cr3: GUEST_PHYS_SIZE - 0x1000, ..fresh() };
    ok!(v.write_system(&last));
    expect_eq!(ok!(v.read_system()), last);
    Ok(())
}

fn system_write_ignores_other_fields() -> Outcome {
    let (_m, v) = spinning()?;
    let s = VcpuSystem {
        rip: CODE + 2,
        rflags: 0x2 | 0x1 | 0x40 | (1 << 21),
        cr0: 0,
        cr2: 0x1234,
        cr3: 0x7000,
        cr4: 0,
        efer: 0,
        cs_base: 0x1000,
        cs_limit: 7,
        cs_selector: 0x33,
        cs_attrib: 0,
        cpl: 3,
        interrupt_shadow: 1,
        reserved: [0xff; 6],
    };
    ok!(v.write_system(&s));
    let want = VcpuSystem { rip: s.rip, rflags: s.rflags, cr3: s.cr3, ..fresh() };
    expect_eq!(ok!(v.read_system()), want);
    Ok(())
}

/// Virtual 0x40000000 maps to 0x107000 (holding 0xaaaa) through the
/// standard tree at PML4, and to 0x104000 (holding 0xbbbb) through a second
/// tree at 0x100000 that shares the identity map of the first GiB.
fn two_trees(m: &Machine) -> Result<(), Failure> {
    let put = |at: u64, value: u64| m.ram.write_all(&value.to_le_bytes(), at).map_err(|s| alloc::format!("{s:?}"));
    // Tree A (PML4 -> PDPT 0x2000): PDPT[1] -> PD 0x105000 -> PT 0x106000.
    put(0x2000 + 8, 0x105003)?;
    put(0x105000, 0x106003)?;
    put(0x106000, 0x107003)?;
    put(0x107000, 0xaaaa)?;
    // Tree B: PML4 0x100000 -> PDPT 0x101000 ([0] = the identity PD,
    // [1] -> PD 0x102000 -> PT 0x103000 -> 0x104000).
    put(0x100000, 0x101003)?;
    put(0x101000, 0x3003)?;
    put(0x101008, 0x102003)?;
    put(0x102000, 0x103003)?;
    put(0x103000, 0x104003)?;
    put(0x104000, 0xbbbb)?;
    Ok(())
}

fn system_written_is_seen_by_guest() -> Outcome {
    let m = machine(guests::system())?;
    two_trees(&m)?;
    let v = m.vcpu()?;
    expect_eq!(report(&v)?, 0xaaaa);
    expect_eq!(report(&v)?, 0x2);
    // New CR3 and RFLAGS (CF, ZF, ID) at the loop's end: the same virtual
    // address now reads through tree B.
    let mut s = ok!(v.read_system());
    s.cr3 = 0x100000;
    s.rflags = 0x2 | 0x1 | 0x40 | (1 << 21);
    ok!(v.write_system(&s));
    expect_eq!(report(&v)?, 0xbbbb);
    expect_eq!(report(&v)?, 0x0020_0043);
    expect_eq!(ok!(v.read_system()).cr3, 0x100000);
    // Back to tree A: nothing cached from B may survive.
    s = ok!(v.read_system());
    s.cr3 = PML4;
    ok!(v.write_system(&s));
    expect_eq!(report(&v)?, 0xaaaa);
    // RIP moved to the other branch.
    s = ok!(v.read_system());
    s.rip = CODE + guests::system_alt_offset();
    ok!(v.write_system(&s));
    expect_eq!(report(&v)?, 0x5a5a);
    // mov $0x5a5a, %eax (5 bytes), out %eax, $0x81 (2 bytes): RIP is past the OUT.
    expect_eq!(ok!(v.read_system()).rip, CODE + guests::system_alt_offset() + 7);
    Ok(())
}

cases![
    system_read_after_create,
    system_read_len_must_be_80,
    system_read_len_over_136_first,
    system_read_from_other_thread,
    system_read_buffer_null,
    system_write_len_must_be_80,
    system_write_from_other_thread,
    system_write_bad_rflags_changes_nothing,
    system_write_cr3_outside_guest_space,
    system_write_ignores_other_fields,
    system_written_is_seen_by_guest,
];
