//! The synchronous trap kinds (magnetar): VMCALL, MSR, CPUID and
//! EXCEPTION. Their errors in `mx_guest_set_trap`'s check order, and each
//! trap firing with its exact packet.

use mx::hypervisor::{Exit, Vcpu};
use mx::{Port, Status};
use mx_abi::types::mx_handle_t;
use mx_abi::{PortPacket, TrapKind, PKT_TYPE_GUEST_VMCALL};

use crate::guests;
use crate::harness::{Failure, Outcome};
use crate::machine::*;
use crate::{cases, expect, expect_eq, expect_status, ok};

const VMCALL: u32 = TrapKind::Vmcall as u32;

fn set_trap(guest: mx_handle_t, kind: u32, addr: u64, len: u64, port: mx_handle_t) -> i32 {
    unsafe { mx::sys::mx_guest_set_trap(guest, kind, addr as usize, len as usize, port, 0) }
}

fn spin() -> Result<Machine, Failure> {
    machine(guests::spin())
}

/// The raw packet of the next exit.
fn packet(v: &Vcpu) -> Result<PortPacket, Failure> {
    v.resume_packet().map_err(|s| Failure::Fail(alloc::format!("vcpu_resume: {s:?}")))
}

/// The payload bytes of a packet.
fn payload(p: &PortPacket) -> [u8; 32] {
    p.payload.bytes()
}

// ------------------------------------------------------------ VMCALL

fn vmcall_trap_len_zero() -> Outcome {
    let m = spin()?;
    expect_status!(set_trap(m.guest.raw(), VMCALL, 0, 0, 0), Status::InvalidArgs);
    Ok(())
}

fn vmcall_trap_outside_space() -> Outcome {
    let m = spin()?;
    expect_status!(set_trap(m.guest.raw(), VMCALL, 1, 1, 0), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), VMCALL, 0, 2, 0), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), VMCALL, u64::MAX, 2, 0), Status::OutOfRange);
    Ok(())
}

fn vmcall_trap_bad_port_handle_first() -> Outcome {
    let m = spin()?;
    expect_status!(set_trap(m.guest.raw(), VMCALL, 0, 0, NOT_A_HANDLE), Status::BadHandle);
    Ok(())
}

fn vmcall_trap_with_port() -> Outcome {
    let m = spin()?;
    let port = ok!(Port::create());
    // The range comes first, then the port, then overlaps.
    expect_status!(set_trap(m.guest.raw(), VMCALL, 1, 1, port.raw()), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), VMCALL, 0, 1, port.raw()), Status::InvalidArgs);
    expect_status!(set_trap(m.guest.raw(), VMCALL, 0, 1, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), VMCALL, 0, 1, port.raw()), Status::InvalidArgs);
    expect_status!(set_trap(m.guest.raw(), VMCALL, 0, 1, 0), Status::AlreadyExists);
    Ok(())
}

fn vmcall_trapped_comes_back_from_resume() -> Outcome {
    let m = machine(guests::vmcall())?;
    ok!(m.guest.set_trap(TrapKind::Vmcall, 0, 1, None, 0x77));
    let v = m.vcpu()?;
    let p = packet(&v)?;
    expect_eq!((p.key, p.packet_type, p.status), (0, PKT_TYPE_GUEST_VMCALL, 0));
    let mut want = [0u8; 32];
    want[0] = 3;
    expect_eq!(payload(&p), want);
    let mut s = ok!(v.read_state());
    expect_eq!((s.rax, s.rcx), (0x1111, 0x2222));
    s.rax = 0x3333;
    ok!(v.write_state(&s));
    // RIP was past the VMMCALL: no #UD, RAX as written.
    expect_eq!(report(&v)?, 0x3333);
    Ok(())
}

fn vmcall_decodes_as_exit() -> Outcome {
    let m = machine(guests::vmcall())?;
    ok!(m.guest.set_trap(TrapKind::Vmcall, 0, 1, None, 0));
    let v = m.vcpu()?;
    let exit = next(&v)?;
    expect!(matches!(exit, Exit::Vmcall { key: 0 }), "{exit:x?}");
    expect_eq!(report(&v)?, 0x1111);
    Ok(())
}

fn vmcall_untrapped_raises_ud() -> Outcome {
    let m = machine(guests::vmcall())?;
    let v = m.vcpu()?;
    expect_eq!(report(&v)?, 6);
    expect_eq!(report(&v)?, 0x1111);
    Ok(())
}

cases![
    vmcall_trap_len_zero,
    vmcall_trap_outside_space,
    vmcall_trap_bad_port_handle_first,
    vmcall_trap_with_port,
    vmcall_trapped_comes_back_from_resume,
    vmcall_decodes_as_exit,
    vmcall_untrapped_raises_ud,
];
