//! The synchronous trap kinds (magnetar): VMCALL, MSR, CPUID and
//! EXCEPTION. Their errors in `mx_guest_set_trap`'s check order, and each
//! trap firing with its exact packet.

use mx::hypervisor::{Exit, Vcpu};
use mx::{Port, Status};
use mx_abi::types::mx_handle_t;
use mx_abi::wire::Wire;
use mx_abi::{
    PacketGuestCpuid, PacketGuestException, PacketGuestMsr, PortPacket, TrapKind, PKT_TYPE_GUEST_CPUID,
    PKT_TYPE_GUEST_EXCEPTION, PKT_TYPE_GUEST_MSR, PKT_TYPE_GUEST_VMCALL,
};

use crate::guests;
use crate::harness::{Failure, Outcome};
use crate::machine::*;
use crate::{cases, expect, expect_eq, expect_status, ok};

const VMCALL: u32 = TrapKind::Vmcall as u32;
const MSR: u32 = TrapKind::Msr as u32;
const CPUID: u32 = TrapKind::Cpuid as u32;
const EXCEPTION: u32 = TrapKind::Exception as u32;

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

// ------------------------------------------------------------ MSR, CPUID

fn msr_cpuid_trap_len_zero() -> Outcome {
    let m = spin()?;
    for kind in [MSR, CPUID] {
        expect_status!(set_trap(m.guest.raw(), kind, 0x4000_0000, 0, 0), Status::InvalidArgs);
    }
    Ok(())
}

fn msr_cpuid_trap_outside_space() -> Outcome {
    let m = spin()?;
    for kind in [MSR, CPUID] {
        expect_status!(set_trap(m.guest.raw(), kind, 0xffff_ffff, 2, 0), Status::OutOfRange);
        expect_status!(set_trap(m.guest.raw(), kind, 1 << 32, 1, 0), Status::OutOfRange);
        expect_status!(set_trap(m.guest.raw(), kind, 0, (1 << 32) + 1, 0), Status::OutOfRange);
        expect_status!(set_trap(m.guest.raw(), kind, u64::MAX, 2, 0), Status::OutOfRange);
    }
    Ok(())
}

fn msr_cpuid_trap_whole_space_ok() -> Outcome {
    let m = spin()?;
    for kind in [MSR, CPUID] {
        expect_status!(set_trap(m.guest.raw(), kind, 0, 1 << 32, 0), Status::Ok);
        expect_status!(set_trap(m.guest.raw(), kind, 0xffff_ffff, 1, 0), Status::AlreadyExists);
    }
    Ok(())
}

fn msr_cpuid_trap_with_port() -> Outcome {
    let m = spin()?;
    let port = ok!(Port::create());
    for kind in [MSR, CPUID] {
        expect_status!(set_trap(m.guest.raw(), kind, 1 << 32, 1, port.raw()), Status::OutOfRange);
        expect_status!(set_trap(m.guest.raw(), kind, 0x4000_0000, 0x10, port.raw()), Status::InvalidArgs);
        expect_status!(set_trap(m.guest.raw(), kind, 0x4000_0000, 0x10, 0), Status::Ok);
        expect_status!(set_trap(m.guest.raw(), kind, 0x4000_0008, 1, port.raw()), Status::InvalidArgs);
        expect_status!(set_trap(m.guest.raw(), kind, 0x4000_0008, 1, 0), Status::AlreadyExists);
        expect_status!(set_trap(m.guest.raw(), kind, 0x4000_0010, 1, 0), Status::Ok);
    }
    // The kinds are separate spaces.
    expect_status!(set_trap(m.guest.raw(), TrapKind::Io as u32, 0, 0x10000, 0), Status::Ok);
    Ok(())
}

fn msr_packet(p: &PortPacket) -> Result<PacketGuestMsr, Failure> {
    expect_eq!((p.key, p.packet_type, p.status), (0, PKT_TYPE_GUEST_MSR, 0));
    Ok(PacketGuestMsr::read(&payload(p)).unwrap_or_default())
}

fn msr_trapped_rdmsr_wrmsr() -> Outcome {
    let m = machine(guests::msr())?;
    ok!(m.guest.set_trap(TrapKind::Msr, 0x4000_0000, 0x100, None, 5));
    let v = m.vcpu()?;
    let p = packet(&v)?;
    let want = PacketGuestMsr { msr: 0x4000_0000, write: 0, inst_len: 2, ..Default::default() };
    expect_eq!(msr_packet(&p)?, want);
    expect_eq!(&payload(&p)[16..], &[0u8; 16]);
    let mut s = ok!(v.read_state());
    s.rax = 0x1122_3344;
    s.rdx = 0x5566_7788;
    ok!(v.write_state(&s));
    expect_eq!(report(&v)?, 0x1122_3344);
    expect_eq!(report(&v)?, 0x5566_7788);
    let p = packet(&v)?;
    let want =
        PacketGuestMsr { msr: 0x4000_0001, write: 1, inst_len: 2, value: 0x0123_4567_89ab_cdef, ..Default::default() };
    expect_eq!(msr_packet(&p)?, want);
    // APIC base and EFER stay the kernel's, and nothing raised #GP.
    expect_eq!(report(&v)?, 0xfee0_0900);
    expect_eq!(report(&v)?, 0x500);
    Ok(())
}

fn msr_kernel_virtualized_not_trapped() -> Outcome {
    let m = machine(guests::msr())?;
    ok!(m.guest.set_trap(TrapKind::Msr, 0, 1 << 32, None, 0));
    let v = m.vcpu()?;
    let exit = next(&v)?;
    expect!(matches!(exit, Exit::Msr { key: 0, msr: 0x4000_0000, write: false, value: 0 }), "{exit:x?}");
    expect_eq!(report(&v)?, 0);
    expect_eq!(report(&v)?, 0);
    let exit = next(&v)?;
    expect!(
        matches!(exit, Exit::Msr { key: 0, msr: 0x4000_0001, write: true, value: 0x0123_4567_89ab_cdef }),
        "{exit:x?}"
    );
    expect_eq!(report(&v)?, 0xfee0_0900);
    expect_eq!(report(&v)?, 0x500);
    Ok(())
}

fn msr_untrapped_unknown_raises_gp() -> Outcome {
    let m = machine(guests::msr())?;
    // A trap on other MSRs does not cover these.
    ok!(m.guest.set_trap(TrapKind::Msr, 0x4000_0002, 0x10, None, 0));
    let v = m.vcpu()?;
    expect_eq!(report(&v)?, 13);
    expect_eq!(report(&v)?, 0);
    expect_eq!(report(&v)?, 0);
    expect_eq!(report(&v)?, 13);
    expect_eq!(report(&v)?, 0xfee0_0900);
    Ok(())
}

fn msr_vmm_raises_gp() -> Outcome {
    let m = machine(guests::msr())?;
    ok!(m.guest.set_trap(TrapKind::Msr, 0x4000_0000, 1, None, 0));
    let v = m.vcpu()?;
    let rip = ok!(v.read_system()).rip;
    let exit = next(&v)?;
    expect!(matches!(exit, Exit::Msr { msr: 0x4000_0000, .. }), "{exit:x?}");
    // RIP back onto the RDMSR, then #GP: the handler reports and skips it.
    let mut s = ok!(v.read_system());
    expect!(s.rip > rip);
    s.rip -= 2;
    ok!(v.write_system(&s));
    ok!(v.interrupt(13));
    expect_eq!(report(&v)?, 13);
    expect_eq!(report(&v)?, 0);
    Ok(())
}

fn cpuid_packet(p: &PortPacket) -> Result<PacketGuestCpuid, Failure> {
    expect_eq!((p.key, p.packet_type, p.status), (0, PKT_TYPE_GUEST_CPUID, 0));
    Ok(PacketGuestCpuid::read(&payload(p)).unwrap_or_default())
}

fn reports(v: &Vcpu, n: usize) -> Result<alloc::vec::Vec<u32>, Failure> {
    (0..n).map(|_| report(v)).collect()
}

fn cpuid_untrapped_does_not_exit() -> Outcome {
    let m = machine(guests::cpuid())?;
    let v = m.vcpu()?;
    let r = reports(&v, 8)?;
    expect_eq!(&r[..4], &[0, 0, 0, 0]);
    expect!(r[4] >= 1 && r[4] <= 0xd, "max basic leaf {:#x}", r[4]);
    Ok(())
}

fn cpuid_trapped_reports_kernel_result() -> Outcome {
    // The kernel's leaf 0, seen untrapped first.
    let plain = {
        let m = machine(guests::cpuid())?;
        let v = m.vcpu()?;
        reports(&v, 8)?
    };
    let m = machine(guests::cpuid())?;
    ok!(m.guest.set_trap(TrapKind::Cpuid, 0, 1, None, 0));
    ok!(m.guest.set_trap(TrapKind::Cpuid, 0x4000_0000, 0x10, None, 0));
    let v = m.vcpu()?;
    let p = packet(&v)?;
    let want = PacketGuestCpuid { leaf: 0x4000_0000, subleaf: 7, ..Default::default() };
    expect_eq!(cpuid_packet(&p)?, want);
    // The kernel's result is in the registers; the manager overwrites it.
    let mut s = ok!(v.read_state());
    expect_eq!((s.rax, s.rbx, s.rcx, s.rdx), (0, 0, 0, 0));
    s.rax = 0x4000_0005;
    s.rbx = 0x7263_694d;
    s.rcx = 0x666f_736f;
    s.rdx = 0x7648_2074;
    ok!(v.write_state(&s));
    expect_eq!(reports(&v, 4)?, [0x4000_0005, 0x7263_694d, 0x666f_736f, 0x7648_2074]);
    let p = packet(&v)?;
    let want = PacketGuestCpuid {
        leaf: 0,
        subleaf: 0,
        eax: plain[4],
        ebx: plain[5],
        ecx: plain[6],
        edx: plain[7],
        reserved: 0,
    };
    expect_eq!(cpuid_packet(&p)?, want);
    // Left alone, the guest sees the kernel's values.
    expect_eq!(reports(&v, 4)?, &plain[4..]);
    Ok(())
}

// ------------------------------------------------------------ EXCEPTION

fn exception_trap_len_zero() -> Outcome {
    let m = spin()?;
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 3, 0, 0), Status::InvalidArgs);
    Ok(())
}

fn exception_trap_outside_space() -> Outcome {
    let m = spin()?;
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 32, 1, 0), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 31, 2, 0), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 0, 33, 0), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, u64::MAX, 2, 0), Status::OutOfRange);
    Ok(())
}

fn exception_trap_nmi_and_mc_refused() -> Outcome {
    let m = spin()?;
    for (addr, len) in [(2, 1), (18, 1), (0, 32), (1, 2), (16, 4)] {
        expect_status!(set_trap(m.guest.raw(), EXCEPTION, addr, len, 0), Status::InvalidArgs);
    }
    // Out of range before the vector rule.
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 18, 15, 0), Status::OutOfRange);
    // Everything else can be trapped.
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 0, 2, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 3, 15, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 19, 13, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 14, 1, 0), Status::AlreadyExists);
    Ok(())
}

fn exception_trap_with_port() -> Outcome {
    let m = spin()?;
    let port = ok!(Port::create());
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 32, 1, port.raw()), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 6, 1, port.raw()), Status::InvalidArgs);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 6, 1, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 6, 1, port.raw()), Status::InvalidArgs);
    expect_status!(set_trap(m.guest.raw(), EXCEPTION, 6, 1, 0), Status::AlreadyExists);
    Ok(())
}

fn exception_packet(p: &PortPacket) -> Result<PacketGuestException, Failure> {
    expect_eq!((p.key, p.packet_type, p.status), (0, PKT_TYPE_GUEST_EXCEPTION, 0));
    expect_eq!(&payload(p)[16..], &[0u8; 16]);
    Ok(PacketGuestException::read(&payload(p)).unwrap_or_default())
}

fn exception_untrapped_delivered() -> Outcome {
    let m = machine(guests::exc())?;
    let v = m.vcpu()?;
    expect_eq!(report(&v)?, 3);
    expect_out(&v, 0x80, 1, 0)?;
    expect_eq!(report(&v)?, 6);
    expect_out(&v, 0x80, 1, 0)?;
    expect_eq!(report(&v)?, 14);
    Ok(())
}

fn exception_ud_trapped() -> Outcome {
    let m = machine(guests::exc())?;
    ok!(m.guest.set_trap(TrapKind::Exception, 6, 1, None, 0));
    let v = m.vcpu()?;
    expect_eq!(report(&v)?, 3);
    expect_out(&v, 0x80, 1, 0)?;
    let p = packet(&v)?;
    expect_eq!(exception_packet(&p)?, PacketGuestException { vector: 6, ..Default::default() });
    expect_eq!(ok!(v.read_system()).rip, CODE + guests::exc_offsets()[1]);
    // Re-raised by the manager: delivered, not trapped again.
    ok!(v.interrupt(6));
    expect_eq!(report(&v)?, 6);
    expect_out(&v, 0x80, 1, 0)?;
    Ok(())
}

fn exception_pf_trapped() -> Outcome {
    let m = machine(guests::exc())?;
    ok!(m.guest.set_trap(TrapKind::Exception, 14, 1, None, 0));
    let v = m.vcpu()?;
    expect_eq!(report(&v)?, 3);
    expect_out(&v, 0x80, 1, 0)?;
    expect_eq!(report(&v)?, 6);
    expect_out(&v, 0x80, 1, 0)?;
    let p = packet(&v)?;
    // A supervisor read of a page that is not present: error code 0.
    let want =
        PacketGuestException { vector: 14, error_code_valid: 1, error_code: 0, cr2: 0x4000_0000, ..Default::default() };
    expect_eq!(exception_packet(&p)?, want);
    let exit = Exit::from_packet(&p, mx::hypervisor::Mode::Bits64);
    expect!(
        matches!(exit, Ok(Exit::Exception { key: 0, vector: 14, error_code: Some(0), cr2: 0x4000_0000 })),
        "{exit:x?}"
    );
    let mut s = ok!(v.read_system());
    expect_eq!(s.rip, CODE + guests::exc_offsets()[2]);
    // The manager emulates the load instead: RIP past it, no fault.
    s.rip += 2;
    ok!(v.write_system(&s));
    expect_out(&v, 0x80, 1, 0)?;
    Ok(())
}

fn exception_bp_trapped_rip_at_int3() -> Outcome {
    let m = machine(guests::exc())?;
    ok!(m.guest.set_trap(TrapKind::Exception, 3, 1, None, 0));
    let v = m.vcpu()?;
    let p = packet(&v)?;
    expect_eq!(exception_packet(&p)?, PacketGuestException { vector: 3, ..Default::default() });
    let mut s = ok!(v.read_system());
    expect_eq!(s.rip, CODE + guests::exc_offsets()[0]);
    // Delivered as the INT3 would have been: RIP past it, then #BP.
    s.rip += 1;
    ok!(v.write_system(&s));
    ok!(v.interrupt(3));
    expect_eq!(report(&v)?, 3);
    expect_out(&v, 0x80, 1, 0)?;
    Ok(())
}

fn exception_bp_trap_leaves_int_n_alone() -> Outcome {
    for trapped in [false, true] {
        let m = machine(guests::intn())?;
        if trapped {
            ok!(m.guest.set_trap(TrapKind::Exception, 3, 2, None, 0));
        }
        let v = m.vcpu()?;
        expect_eq!(report(&v)?, 0x30);
        expect_out(&v, 0x80, 1, 0)?;
        if trapped {
            let p = packet(&v)?;
            expect_eq!(exception_packet(&p)?, PacketGuestException { vector: 3, ..Default::default() });
            let mut s = ok!(v.read_system());
            s.rip += 1;
            ok!(v.write_system(&s));
            ok!(v.interrupt(3));
        }
        expect_eq!(report(&v)?, 3);
        expect_out(&v, 0x80, 1, 0)?;
    }
    Ok(())
}

fn exception_trap_covers_kernel_ud() -> Outcome {
    // VMMCALL without a VMCALL trap: the kernel's #UD is trapped like any.
    let m = machine(guests::vmcall())?;
    ok!(m.guest.set_trap(TrapKind::Exception, 6, 1, None, 0));
    let v = m.vcpu()?;
    let p = packet(&v)?;
    expect_eq!(exception_packet(&p)?, PacketGuestException { vector: 6, ..Default::default() });
    let s = ok!(v.read_state());
    expect_eq!((s.rax, s.rcx), (0x1111, 0x2222));
    ok!(v.interrupt(6));
    expect_eq!(report(&v)?, 6);
    expect_eq!(report(&v)?, 0x1111);
    Ok(())
}

fn exception_trap_covers_kernel_gp() -> Outcome {
    let m = machine(guests::msr())?;
    ok!(m.guest.set_trap(TrapKind::Exception, 13, 1, None, 0));
    let v = m.vcpu()?;
    let p = packet(&v)?;
    let want = PacketGuestException { vector: 13, error_code_valid: 1, ..Default::default() };
    expect_eq!(exception_packet(&p)?, want);
    // The VMM completes the RDMSR itself.
    let mut s = ok!(v.read_system());
    s.rip += 2;
    ok!(v.write_system(&s));
    expect_eq!(report(&v)?, 0);
    Ok(())
}

cases![
    exception_trap_len_zero,
    exception_trap_outside_space,
    exception_trap_nmi_and_mc_refused,
    exception_trap_with_port,
    exception_untrapped_delivered,
    exception_ud_trapped,
    exception_pf_trapped,
    exception_bp_trapped_rip_at_int3,
    exception_bp_trap_leaves_int_n_alone,
    exception_trap_covers_kernel_ud,
    exception_trap_covers_kernel_gp,
    msr_cpuid_trap_len_zero,
    msr_cpuid_trap_outside_space,
    msr_cpuid_trap_whole_space_ok,
    msr_cpuid_trap_with_port,
    msr_trapped_rdmsr_wrmsr,
    msr_kernel_virtualized_not_trapped,
    msr_untrapped_unknown_raises_gp,
    msr_vmm_raises_gp,
    cpuid_untrapped_does_not_exit,
    cpuid_trapped_reports_kernel_result,
    vmcall_trap_len_zero,
    vmcall_trap_outside_space,
    vmcall_trap_bad_port_handle_first,
    vmcall_trap_with_port,
    vmcall_trapped_comes_back_from_resume,
    vmcall_decodes_as_exit,
    vmcall_untrapped_raises_ud,
];
