//! Every documented error of the guest and VCPU calls, in check order
//! (`magenta-abi.md` §5.30-§5.35, `syscalls/src/table.rs`).

use core::ptr;
use core::sync::atomic::{AtomicI32, Ordering};

use mx::hypervisor::{Guest, Vcpu};
use mx::sys::*;
use mx::{Event, Handle, Port, Rights, Status, Vmo};
use mx_abi::types::mx_handle_t;
use mx_abi::{ResourceKind, TrapKind, VcpuCreateArgs, VcpuIo, VcpuState, VcpuStateKind};

use crate::harness::Outcome;
use crate::machine::*;
use crate::{cases, expect, expect_eq, expect_status, ok};

const IO: u32 = TrapKind::Io as u32;
const MEM: u32 = TrapKind::Mem as u32;
const STATE: u32 = VcpuStateKind::State as u32;
const VIO: u32 = VcpuStateKind::Io as u32;

fn ram() -> Vmo {
    Vmo::create(RAM).expect("vmo")
}

fn guest_create(resource: mx_handle_t, options: u32, vmo: mx_handle_t) -> i32 {
    let mut out = 0;
    let status = unsafe { mx_guest_create(resource, options, vmo, &mut out) };
    if status == 0 {
        drop(own(out));
    }
    status
}

fn set_trap(guest: mx_handle_t, kind: u32, addr: u64, len: u64, port: mx_handle_t) -> i32 {
    unsafe { mx_guest_set_trap(guest, kind, addr as usize, len as usize, port, 0) }
}

fn vcpu_create(guest: mx_handle_t, options: u32, ip: u64, cr3: u64, apic: mx_handle_t) -> i32 {
    let args = VcpuCreateArgs { ip, cr3, apic_vmo: apic };
    let mut out = 0;
    let status = unsafe { mx_vcpu_create(guest, options, &args, &mut out) };
    if status == 0 {
        drop(own(out));
    }
    status
}

fn state_rw(vcpu: mx_handle_t, write: bool, kind: u32, len: u32) -> i32 {
    let mut buf = [0u8; 256];
    if write {
        buf[0] = 1; // MX_VCPU_IO access_size 1 for kind IO
        unsafe { mx_vcpu_write_state(vcpu, kind, buf.as_ptr().cast(), len) }
    } else {
        unsafe { mx_vcpu_read_state(vcpu, kind, buf.as_mut_ptr().cast(), len) }
    }
}

fn event() -> Event {
    Event::create().expect("event")
}

/// A guest of RAM size and a VCPU of it (on this thread).
fn guest_and_vcpu() -> Result<(Machine, Vcpu), crate::harness::Failure> {
    let m = machine(crate::guests::spin())?;
    let v = m.vcpu()?;
    Ok((m, v))
}

// ------------------------------------------------------------ guest_create

fn create_options_checked_first() -> Outcome {
    expect_status!(guest_create(NOT_A_HANDLE, 1, NOT_A_HANDLE), Status::InvalidArgs);
    Ok(())
}

fn create_options_nonzero_with_good_handles() -> Outcome {
    need_hv()?;
    let vmo = ram();
    expect_status!(guest_create(hyp(), 0x8000_0000, vmo.raw()), Status::InvalidArgs);
    Ok(())
}

fn create_bad_resource() -> Outcome {
    let vmo = ram();
    expect_status!(guest_create(NOT_A_HANDLE, 0, vmo.raw()), Status::BadHandle);
    Ok(())
}

fn create_invalid_resource_handle() -> Outcome {
    let vmo = ram();
    expect_status!(guest_create(0, 0, vmo.raw()), Status::BadHandle);
    Ok(())
}

fn create_resource_wrong_type() -> Outcome {
    let vmo = ram();
    let e = event();
    expect_status!(guest_create(e.raw(), 0, vmo.raw()), Status::WrongType);
    Ok(())
}

fn create_resource_wrong_kind() -> Outcome {
    let vmo = ram();
    let root = borrowed(root(), mx::Resource::from_handle);
    let mmio = ok!(root.create_child(ResourceKind::Mmio as u32, 0, 0x1000));
    expect_status!(guest_create(mmio.raw(), 0, vmo.raw()), Status::AccessDenied);
    Ok(())
}

fn create_resource_wrong_kind_before_vmo() -> Outcome {
    let root = borrowed(root(), mx::Resource::from_handle);
    let irq = ok!(root.create_child(ResourceKind::Irq as u32, 0, 0));
    expect_status!(guest_create(irq.raw(), 0, NOT_A_HANDLE), Status::AccessDenied);
    Ok(())
}

fn create_resource_wrong_type_before_vmo() -> Outcome {
    let e = event();
    expect_status!(guest_create(e.raw(), 0, NOT_A_HANDLE), Status::WrongType);
    Ok(())
}

fn create_resource_needs_no_rights() -> Outcome {
    need_hv()?;
    let vmo = ram();
    let bare = with_rights(hyp(), 0)?;
    expect_status!(guest_create(bare.raw(), 0, vmo.raw()), Status::Ok);
    Ok(())
}

fn create_with_root_resource() -> Outcome {
    need_hv()?;
    let vmo = ram();
    expect_status!(guest_create(root(), 0, vmo.raw()), Status::Ok);
    Ok(())
}

fn create_with_hypervisor_resource() -> Outcome {
    need_hv()?;
    let vmo = ram();
    expect_status!(guest_create(hyp(), 0, vmo.raw()), Status::Ok);
    Ok(())
}

fn create_bad_vmo() -> Outcome {
    expect_status!(guest_create(hyp(), 0, NOT_A_HANDLE), Status::BadHandle);
    Ok(())
}

fn create_vmo_rights(drop_right: Rights) -> Outcome {
    let vmo = ram();
    let rights = (Rights::READ | Rights::WRITE | Rights::EXECUTE | Rights::MAP | Rights::DUPLICATE) - drop_right;
    let less = with_rights(vmo.raw(), rights.bits())?;
    expect_status!(guest_create(hyp(), 0, less.raw()), Status::AccessDenied);
    Ok(())
}

fn create_vmo_without_read() -> Outcome {
    create_vmo_rights(Rights::READ)
}

fn create_vmo_without_write() -> Outcome {
    create_vmo_rights(Rights::WRITE)
}

fn create_vmo_without_execute() -> Outcome {
    create_vmo_rights(Rights::EXECUTE)
}

fn create_vmo_wrong_type() -> Outcome {
    // A VCPU handle has READ, WRITE and EXECUTE: the type check decides.
    let (_m, vcpu) = guest_and_vcpu()?;
    expect_status!(guest_create(hyp(), 0, vcpu.raw()), Status::WrongType);
    Ok(())
}

fn create_vmo_without_rights_before_type() -> Outcome {
    let e = event(); // lacks EXECUTE: rights come before type
    expect_status!(guest_create(hyp(), 0, e.raw()), Status::AccessDenied);
    Ok(())
}

fn create_out_null() -> Outcome {
    need_hv()?;
    let vmo = ram();
    let before = counts()?;
    expect_status!(unsafe { mx_guest_create(hyp(), 0, vmo.raw(), ptr::null_mut()) }, Status::InvalidArgs);
    expect_eq!(counts()?, before);
    Ok(())
}

fn create_out_kernel_address() -> Outcome {
    need_hv()?;
    let vmo = ram();
    expect_status!(unsafe { mx_guest_create(hyp(), 0, vmo.raw(), KERNEL_ADDR as *mut _) }, Status::InvalidArgs);
    Ok(())
}

fn create_out_unmapped() -> Outcome {
    need_hv()?;
    let vmo = ram();
    expect_status!(unsafe { mx_guest_create(hyp(), 0, vmo.raw(), UNMAPPED_ADDR as *mut _) }, Status::InvalidArgs);
    Ok(())
}

fn guest_rights_and_type() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let (rights, ty) = rights_and_type(m.guest.raw())?;
    expect_eq!(rights, 0x000b);
    expect_eq!(ty, mx_abi::object::ObjType::Guest as u32);
    Ok(())
}

fn guest_close_restores_counts() -> Outcome {
    need_hv()?;
    let before = counts()?;
    {
        let m = machine(crate::guests::spin())?;
        let _v = m.vcpu()?;
    }
    expect_eq!(counts()?, before);
    Ok(())
}

// ------------------------------------------------------------ guest_set_trap

fn trap_bad_guest() -> Outcome {
    expect_status!(set_trap(NOT_A_HANDLE, IO, 0x80, 1, 0), Status::BadHandle);
    Ok(())
}

fn trap_guest_without_write() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let ro = with_rights(m.guest.raw(), Rights::DUPLICATE.bits())?;
    expect_status!(set_trap(ro.raw(), IO, 0x80, 1, 0), Status::AccessDenied);
    Ok(())
}

fn trap_guest_wrong_type() -> Outcome {
    let e = event();
    expect_status!(set_trap(e.raw(), IO, 0x80, 1, 0), Status::WrongType);
    Ok(())
}

fn trap_guest_checked_before_port() -> Outcome {
    let e = event();
    expect_status!(set_trap(e.raw(), IO, 0x80, 1, NOT_A_HANDLE), Status::WrongType);
    Ok(())
}

fn trap_bad_port() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x80, 1, NOT_A_HANDLE), Status::BadHandle);
    Ok(())
}

fn trap_port_without_write() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let port = ok!(Port::create());
    let ro = with_rights(port.raw(), Rights::READ.bits())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x80, 1, ro.raw()), Status::AccessDenied);
    Ok(())
}

fn trap_port_wrong_type() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let e = event();
    expect_status!(set_trap(m.guest.raw(), IO, 0x80, 1, e.raw()), Status::WrongType);
    Ok(())
}

fn trap_port_checked_before_len() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x80, 0, NOT_A_HANDLE), Status::BadHandle);
    Ok(())
}

fn trap_port_with_write_only() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let port = ok!(Port::create());
    let wo = with_rights(port.raw(), Rights::WRITE.bits())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x80, 1, wo.raw()), Status::Ok);
    Ok(())
}

fn trap_io_len_zero() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x80, 0, 0), Status::InvalidArgs);
    Ok(())
}

fn trap_mem_len_zero() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO, 0, 0), Status::InvalidArgs);
    Ok(())
}

fn trap_len_zero_before_kind() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), 7, 0x80, 0, 0), Status::InvalidArgs);
    Ok(())
}

fn trap_io_overflow() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, u64::MAX, 2, 0), Status::OutOfRange);
    Ok(())
}

fn trap_mem_overflow_before_alignment() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, u64::MAX, 1, 0), Status::OutOfRange);
    Ok(())
}

fn trap_mem_misaligned_addr() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO + 8, 0x1000, 0), Status::InvalidArgs);
    Ok(())
}

fn trap_mem_misaligned_len() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO, 0x800, 0), Status::InvalidArgs);
    Ok(())
}

fn trap_mem_beyond_phys_size() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, 1 << 48, 0x1000, 0), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), MEM, (1 << 48) - 0x1000, 0x2000, 0), Status::OutOfRange);
    Ok(())
}

fn trap_mem_last_page_ok() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, (1 << 48) - 0x1000, 0x1000, 0), Status::Ok);
    Ok(())
}

fn trap_mem_in_ram_ok() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, 0x100000, 0x2000, 0), Status::Ok);
    Ok(())
}

fn trap_io_end_past_space() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0xfff0, 0x11, 0), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), IO, 0x10000, 1, 0), Status::OutOfRange);
    Ok(())
}

fn trap_io_port_ffff_ok() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0xffff, 1, 0), Status::Ok);
    Ok(())
}

fn trap_io_whole_space_ok() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0, 0x10000, 0), Status::Ok);
    Ok(())
}

fn trap_io_overlap_same() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x3f8, 8, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), IO, 0x3f8, 8, 0), Status::AlreadyExists);
    Ok(())
}

fn trap_io_overlap_partial() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x3f8, 8, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), IO, 0x3f0, 9, 0), Status::AlreadyExists);
    expect_status!(set_trap(m.guest.raw(), IO, 0x3ff, 4, 0), Status::AlreadyExists);
    Ok(())
}

fn trap_io_overlap_containing() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x3f8, 8, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), IO, 0x300, 0x200, 0), Status::AlreadyExists);
    expect_status!(set_trap(m.guest.raw(), IO, 0x3fa, 1, 0), Status::AlreadyExists);
    Ok(())
}

fn trap_io_adjacent_ok() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x3f8, 8, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), IO, 0x3f0, 8, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), IO, 0x400, 1, 0), Status::Ok);
    Ok(())
}

fn trap_mem_overlap() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO, 0x2000, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO + 0x1000, 0x1000, 0), Status::AlreadyExists);
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO - 0x1000, 0x2000, 0), Status::AlreadyExists);
    Ok(())
}

fn trap_mem_adjacent_ok() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO, 0x1000, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO + 0x1000, 0x1000, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), MEM, MMIO - 0x1000, 0x1000, 0), Status::Ok);
    Ok(())
}

fn trap_kinds_are_separate_spaces() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0x1000, 0x1000, 0), Status::Ok);
    expect_status!(set_trap(m.guest.raw(), MEM, 0x1000, 0x1000, 0), Status::Ok);
    Ok(())
}

fn trap_bad_kind() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), 6, 0x80, 1, 0), Status::InvalidArgs);
    expect_status!(set_trap(m.guest.raw(), u32::MAX, 0x1000, 0x1000, 0), Status::InvalidArgs);
    Ok(())
}

fn trap_failed_set_registers_nothing() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(set_trap(m.guest.raw(), IO, 0xfff0, 0x11, 0), Status::OutOfRange);
    expect_status!(set_trap(m.guest.raw(), IO, 0xfff0, 0x10, 0), Status::Ok);
    Ok(())
}

// ------------------------------------------------------------ vcpu_create

fn vcpu_options_checked_first() -> Outcome {
    expect_status!(vcpu_create(NOT_A_HANDLE, 1, CODE, PML4, NOT_A_HANDLE), Status::InvalidArgs);
    Ok(())
}

fn vcpu_bad_guest() -> Outcome {
    let apic = ram();
    expect_status!(vcpu_create(NOT_A_HANDLE, 0, CODE, PML4, apic.raw()), Status::BadHandle);
    Ok(())
}

fn vcpu_guest_without_write() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let ro = with_rights(m.guest.raw(), Rights::DUPLICATE.bits())?;
    expect_status!(vcpu_create(ro.raw(), 0, CODE, PML4, m.apic.raw()), Status::AccessDenied);
    Ok(())
}

fn vcpu_guest_wrong_type() -> Outcome {
    let e = event();
    let apic = ram();
    expect_status!(vcpu_create(e.raw(), 0, CODE, PML4, apic.raw()), Status::WrongType);
    Ok(())
}

fn vcpu_guest_checked_before_args() -> Outcome {
    let mut out = 0;
    expect_status!(unsafe { mx_vcpu_create(NOT_A_HANDLE, 0, ptr::null(), &mut out) }, Status::BadHandle);
    Ok(())
}

fn vcpu_args_null() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let mut out = 0;
    expect_status!(unsafe { mx_vcpu_create(m.guest.raw(), 0, ptr::null(), &mut out) }, Status::InvalidArgs);
    Ok(())
}

fn vcpu_args_kernel_address() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let mut out = 0;
    expect_status!(unsafe { mx_vcpu_create(m.guest.raw(), 0, KERNEL_ADDR as *const _, &mut out) }, Status::InvalidArgs);
    Ok(())
}

fn vcpu_bad_apic() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, PML4, NOT_A_HANDLE), Status::BadHandle);
    Ok(())
}

fn vcpu_apic_without_read() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let less = with_rights(m.apic.raw(), (Rights::WRITE | Rights::DUPLICATE).bits())?;
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, PML4, less.raw()), Status::AccessDenied);
    Ok(())
}

fn vcpu_apic_without_write() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let less = with_rights(m.apic.raw(), (Rights::READ | Rights::DUPLICATE).bits())?;
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, PML4, less.raw()), Status::AccessDenied);
    Ok(())
}

fn vcpu_apic_wrong_type() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let e = event();
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, PML4, e.raw()), Status::WrongType);
    Ok(())
}

fn vcpu_apic_checked_before_ip() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(vcpu_create(m.guest.raw(), 0, 1 << 48, PML4, NOT_A_HANDLE), Status::BadHandle);
    Ok(())
}

fn vcpu_ip_outside_guest_space() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(vcpu_create(m.guest.raw(), 0, 1 << 48, PML4, m.apic.raw()), Status::InvalidArgs);
    expect_status!(vcpu_create(m.guest.raw(), 0, u64::MAX, PML4, m.apic.raw()), Status::InvalidArgs);
    Ok(())
}

fn vcpu_ip_beyond_ram_ok() -> Outcome {
    // The limit is the guest-physical space, not the physmem size.
    let m = machine(crate::guests::spin())?;
    expect_status!(vcpu_create(m.guest.raw(), 0, RAM, PML4, m.apic.raw()), Status::Ok);
    expect_status!(vcpu_create(m.guest.raw(), 0, (1 << 48) - 1, PML4, m.apic.raw()), Status::Ok);
    Ok(())
}

fn vcpu_cr3_too_high() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, (1 << 48) - 0xfff, m.apic.raw()), Status::InvalidArgs);
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, 1 << 48, m.apic.raw()), Status::InvalidArgs);
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, u64::MAX, m.apic.raw()), Status::InvalidArgs);
    Ok(())
}

fn vcpu_cr3_highest_ok() -> Outcome {
    let m = machine(crate::guests::spin())?;
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, (1 << 48) - 0x1000, m.apic.raw()), Status::Ok);
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, RAM, m.apic.raw()), Status::Ok);
    // Not page-aligned is fine too.
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, PML4 + 8, m.apic.raw()), Status::Ok);
    Ok(())
}

fn vcpu_apic_smaller_than_a_page() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let small = ok!(Vmo::create(100));
    expect_status!(vcpu_create(m.guest.raw(), 0, CODE, PML4, small.raw()), Status::InvalidArgs);
    Ok(())
}

fn vcpu_empty_guest_memory() -> Outcome {
    need_hv()?;
    let empty = ok!(Vmo::create(0));
    let guest = ok!(Guest::create(&borrowed(hyp(), mx::Resource::from_handle), &empty));
    let apic = ok!(Vmo::create(4096));
    expect_status!(vcpu_create(guest.raw(), 0, 0, 0, apic.raw()), Status::Ok);
    expect_status!(vcpu_create(guest.raw(), 0, CODE, PML4, apic.raw()), Status::Ok);
    Ok(())
}

fn empty_guest_runs_on_a_mapping() -> Outcome {
    // A guest with no physmem at all: its memory is one mapped VMO, as a
    // Hyper-V child's is.
    need_hv()?;
    let empty = ok!(Vmo::create(0));
    let guest = ok!(Guest::create(&borrowed(hyp(), mx::Resource::from_handle), &empty));
    let memory = memory(crate::guests::probe())?;
    ok!(guest.map(0, &memory, 0, RAM));
    let apic = ok!(Vmo::create(4096));
    let v = ok!(Vcpu::create(&guest, CODE, PML4, &apic));
    expect_out(&v, 0x1234, 1, 0x5a)?;
    expect_out(&v, 0x80, 4, 0x99)?;
    // Without the mapping nothing backs the code: OUT_OF_RANGE.
    let v2 = ok!(Vcpu::create(&guest, CODE, PML4, &apic));
    ok!(guest.unmap(0, RAM));
    expect_eq!(v2.resume_packet().map(drop), Err(Status::OutOfRange));
    Ok(())
}

fn vcpu_out_null() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let before = counts()?;
    let args = VcpuCreateArgs { ip: CODE, cr3: PML4, apic_vmo: m.apic.raw() };
    expect_status!(unsafe { mx_vcpu_create(m.guest.raw(), 0, &args, ptr::null_mut()) }, Status::InvalidArgs);
    expect_eq!(counts()?, before);
    Ok(())
}

fn vcpu_rights_and_type() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let (rights, ty) = rights_and_type(v.raw())?;
    expect_eq!(rights, 0x101f);
    expect_eq!(ty, mx_abi::object::ObjType::Vcpu as u32);
    Ok(())
}

fn vcpu_several_per_guest() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let vcpus: alloc::vec::Vec<Vcpu> = (0..4).map(|_| m.vcpu()).collect::<Result<_, _>>()?;
    expect_eq!(vcpus.len(), 4);
    Ok(())
}

// ------------------------------------------------------------ vcpu_resume

fn resume_bad_handle() -> Outcome {
    let mut p = [0u8; 48];
    expect_status!(unsafe { mx_vcpu_resume(NOT_A_HANDLE, p.as_mut_ptr().cast()) }, Status::BadHandle);
    Ok(())
}

fn resume_without_execute() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let less = with_rights(v.raw(), (Rights::READ | Rights::WRITE | Rights::SIGNAL).bits())?;
    let mut p = [0u8; 48];
    expect_status!(unsafe { mx_vcpu_resume(less.raw(), p.as_mut_ptr().cast()) }, Status::AccessDenied);
    Ok(())
}

fn resume_wrong_type() -> Outcome {
    let vmo = ram(); // a VMO has EXECUTE
    let mut p = [0u8; 48];
    expect_status!(unsafe { mx_vcpu_resume(vmo.raw(), p.as_mut_ptr().cast()) }, Status::WrongType);
    Ok(())
}

/// Runs `call(vcpu)` on another thread; its status.
pub(crate) fn from_other_thread(vcpu: &Vcpu, call: fn(mx_handle_t) -> i32) -> Result<i32, crate::harness::Failure> {
    struct Job {
        vcpu: mx_handle_t,
        call: fn(mx_handle_t) -> i32,
        status: AtomicI32,
    }
    let job = Job { vcpu: vcpu.raw(), call, status: AtomicI32::new(1) };
    let t = spawn(|j: &Job| j.status.store((j.call)(j.vcpu), Ordering::SeqCst), &job)?;
    t.join()?;
    Ok(job.status.load(Ordering::SeqCst))
}

fn resume_from_other_thread() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let status = from_other_thread(&v, |h| {
        let mut p = [0u8; 48];
        unsafe { mx_vcpu_resume(h, p.as_mut_ptr().cast()) }
    })?;
    expect_status!(status, Status::BadState);
    Ok(())
}

fn resume_packet_null() -> Outcome {
    let m = machine(crate::guests::count())?;
    let v = m.vcpu()?;
    expect_status!(unsafe { mx_vcpu_resume(v.raw(), ptr::null_mut()) }, Status::InvalidArgs);
    Ok(())
}

fn resume_packet_kernel_address() -> Outcome {
    let m = machine(crate::guests::count())?;
    let v = m.vcpu()?;
    expect_status!(unsafe { mx_vcpu_resume(v.raw(), KERNEL_ADDR as *mut _) }, Status::InvalidArgs);
    Ok(())
}

// ------------------------------------------------------------ vcpu_interrupt

fn interrupt_bad_handle() -> Outcome {
    expect_status!(unsafe { mx_vcpu_interrupt(NOT_A_HANDLE, 0x40) }, Status::BadHandle);
    Ok(())
}

fn interrupt_bad_handle_before_vector() -> Outcome {
    expect_status!(unsafe { mx_vcpu_interrupt(NOT_A_HANDLE, 1000) }, Status::BadHandle);
    Ok(())
}

fn interrupt_without_signal() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let less = with_rights(v.raw(), (Rights::READ | Rights::WRITE | Rights::EXECUTE).bits())?;
    expect_status!(unsafe { mx_vcpu_interrupt(less.raw(), 0x40) }, Status::AccessDenied);
    Ok(())
}

fn interrupt_wrong_type() -> Outcome {
    let e = event();
    expect_status!(unsafe { mx_vcpu_interrupt(e.raw(), 0x40) }, Status::WrongType);
    Ok(())
}

fn interrupt_vector_256() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(unsafe { mx_vcpu_interrupt(v.raw(), 256) }, Status::OutOfRange);
    Ok(())
}

fn interrupt_vector_max() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(unsafe { mx_vcpu_interrupt(v.raw(), u32::MAX) }, Status::OutOfRange);
    Ok(())
}

fn interrupt_vectors_0_2_32_255_ok() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    for vector in [0, 2, 14, 32, 255] {
        expect_status!(unsafe { mx_vcpu_interrupt(v.raw(), vector) }, Status::Ok);
    }
    Ok(())
}

fn interrupt_from_other_thread_ok() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let status = from_other_thread(&v, |h| unsafe { mx_vcpu_interrupt(h, 0x40) })?;
    expect_status!(status, Status::Ok);
    Ok(())
}

// ------------------------------------------------------------ vcpu_read_state

fn read_bad_handle() -> Outcome {
    expect_status!(state_rw(NOT_A_HANDLE, false, STATE, 136), Status::BadHandle);
    Ok(())
}

fn read_without_read() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let less = with_rights(v.raw(), (Rights::WRITE | Rights::EXECUTE).bits())?;
    expect_status!(state_rw(less.raw(), false, STATE, 136), Status::AccessDenied);
    Ok(())
}

fn read_wrong_type() -> Outcome {
    let e = event();
    expect_status!(state_rw(e.raw(), false, STATE, 136), Status::WrongType);
    Ok(())
}

fn read_len_too_big() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(state_rw(v.raw(), false, STATE, 137), Status::InvalidArgs);
    expect_status!(state_rw(v.raw(), false, STATE, u32::MAX), Status::InvalidArgs);
    Ok(())
}

fn read_len_checked_before_thread() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let status = from_other_thread(&v, |h| state_rw(h, false, STATE, 137))?;
    expect_status!(status, Status::InvalidArgs);
    Ok(())
}

fn read_from_other_thread() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let status = from_other_thread(&v, |h| state_rw(h, false, STATE, 136))?;
    expect_status!(status, Status::BadState);
    Ok(())
}

fn read_thread_checked_before_kind() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let status = from_other_thread(&v, |h| state_rw(h, false, 9, 136))?;
    expect_status!(status, Status::BadState);
    Ok(())
}

fn read_io_kind() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(state_rw(v.raw(), false, VIO, 8), Status::InvalidArgs);
    Ok(())
}

fn read_unknown_kind() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    for kind in [3, u32::MAX] {
        expect_status!(state_rw(v.raw(), false, kind, 136), Status::InvalidArgs);
        expect_status!(state_rw(v.raw(), false, kind, 80), Status::InvalidArgs);
    }
    Ok(())
}

fn read_short_len() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(state_rw(v.raw(), false, STATE, 135), Status::InvalidArgs);
    expect_status!(state_rw(v.raw(), false, STATE, 0), Status::InvalidArgs);
    Ok(())
}

fn read_buffer_null() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(unsafe { mx_vcpu_read_state(v.raw(), STATE, ptr::null_mut(), 136) }, Status::InvalidArgs);
    Ok(())
}

fn read_buffer_kernel_address() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(unsafe { mx_vcpu_read_state(v.raw(), STATE, KERNEL_ADDR as *mut _, 136) }, Status::InvalidArgs);
    Ok(())
}

fn read_fresh_vcpu_is_zero() -> Outcome {
    let m = machine(crate::guests::spin())?;
    let v = ok!(Vcpu::create(&m.guest, CODE, PML4, &m.apic));
    let s = ok!(v.read_state());
    expect_eq!(s, VcpuState::default());
    Ok(())
}

// ------------------------------------------------------------ vcpu_write_state

fn write_bad_handle() -> Outcome {
    expect_status!(state_rw(NOT_A_HANDLE, true, STATE, 136), Status::BadHandle);
    Ok(())
}

fn write_without_write() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let less = with_rights(v.raw(), (Rights::READ | Rights::EXECUTE).bits())?;
    expect_status!(state_rw(less.raw(), true, STATE, 136), Status::AccessDenied);
    Ok(())
}

fn write_wrong_type() -> Outcome {
    let e = event();
    expect_status!(state_rw(e.raw(), true, STATE, 136), Status::WrongType);
    Ok(())
}

fn write_len_too_big() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(state_rw(v.raw(), true, STATE, 137), Status::InvalidArgs);
    Ok(())
}

fn write_buffer_null() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(unsafe { mx_vcpu_write_state(v.raw(), STATE, ptr::null(), 136) }, Status::InvalidArgs);
    Ok(())
}

fn write_buffer_checked_before_thread() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let status = from_other_thread(&v, |h| unsafe { mx_vcpu_write_state(h, STATE, KERNEL_ADDR as *const _, 136) })?;
    expect_status!(status, Status::InvalidArgs);
    Ok(())
}

fn write_from_other_thread() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let status = from_other_thread(&v, |h| state_rw(h, true, STATE, 136))?;
    expect_status!(status, Status::BadState);
    Ok(())
}

fn write_thread_checked_before_kind() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let status = from_other_thread(&v, |h| state_rw(h, true, 9, 8))?;
    expect_status!(status, Status::BadState);
    Ok(())
}

fn write_unknown_kind() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    for kind in [3, u32::MAX] {
        expect_status!(state_rw(v.raw(), true, kind, 136), Status::InvalidArgs);
        expect_status!(state_rw(v.raw(), true, kind, 80), Status::InvalidArgs);
    }
    Ok(())
}

fn write_state_wrong_len() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(state_rw(v.raw(), true, STATE, 8), Status::InvalidArgs);
    expect_status!(state_rw(v.raw(), true, STATE, 135), Status::InvalidArgs);
    expect_status!(state_rw(v.raw(), true, STATE, 0), Status::InvalidArgs);
    Ok(())
}

fn write_io_wrong_len() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(state_rw(v.raw(), true, VIO, 136), Status::InvalidArgs);
    expect_status!(state_rw(v.raw(), true, VIO, 4), Status::InvalidArgs);
    Ok(())
}

fn io_size_status(v: &Vcpu, size: u8) -> i32 {
    let bytes = VcpuIo { access_size: size, data: 0x1234_5678 }.to_bytes();
    unsafe { mx_vcpu_write_state(v.raw(), VIO, bytes.as_ptr().cast(), bytes.len() as u32) }
}

fn write_io_size_0() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(io_size_status(&v, 0), Status::InvalidArgs);
    Ok(())
}

fn write_io_size_3() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(io_size_status(&v, 3), Status::InvalidArgs);
    Ok(())
}

fn write_io_size_8() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    expect_status!(io_size_status(&v, 8), Status::InvalidArgs);
    expect_status!(io_size_status(&v, 255), Status::InvalidArgs);
    Ok(())
}

fn write_io_sizes_1_2_4_ok() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    for size in [1, 2, 4] {
        expect_status!(io_size_status(&v, size), Status::Ok);
    }
    Ok(())
}

fn write_io_sets_low_bytes_of_rax() -> Outcome {
    let (_m, v) = guest_and_vcpu()?;
    let mut s = ok!(v.read_state());
    s.rax = 0x1111_2222_3333_4444;
    ok!(v.write_state(&s));
    ok!(v.write_io(1, 0xaa));
    expect_eq!(ok!(v.read_state()).rax, 0x1111_2222_3333_44aa);
    ok!(v.write_io(2, 0xbbcc));
    expect_eq!(ok!(v.read_state()).rax, 0x1111_2222_3333_bbcc);
    ok!(v.write_io(4, 0xddee_ff00));
    expect_eq!(ok!(v.read_state()).rax, 0x1111_2222_ddee_ff00);
    Ok(())
}

fn not_waitable() -> Outcome {
    let (m, v) = guest_and_vcpu()?;
    for raw in [m.guest.raw(), v.raw()] {
        let h = core::mem::ManuallyDrop::new(Handle::from_raw(raw));
        let r = h.wait_one(mx::Signals::USER_0, 1);
        expect!(r.is_err() && r != Err(Status::TimedOut), "wait_one on a non-waitable object: {r:?}");
    }
    Ok(())
}

cases![
    create_options_checked_first,
    create_options_nonzero_with_good_handles,
    create_bad_resource,
    create_invalid_resource_handle,
    create_resource_wrong_type,
    create_resource_wrong_kind,
    create_resource_wrong_kind_before_vmo,
    create_resource_wrong_type_before_vmo,
    create_resource_needs_no_rights,
    create_with_root_resource,
    create_with_hypervisor_resource,
    create_bad_vmo,
    create_vmo_without_read,
    create_vmo_without_write,
    create_vmo_without_execute,
    create_vmo_wrong_type,
    create_vmo_without_rights_before_type,
    create_out_null,
    create_out_kernel_address,
    create_out_unmapped,
    guest_rights_and_type,
    guest_close_restores_counts,
    trap_bad_guest,
    trap_guest_without_write,
    trap_guest_wrong_type,
    trap_guest_checked_before_port,
    trap_bad_port,
    trap_port_without_write,
    trap_port_wrong_type,
    trap_port_checked_before_len,
    trap_port_with_write_only,
    trap_io_len_zero,
    trap_mem_len_zero,
    trap_len_zero_before_kind,
    trap_io_overflow,
    trap_mem_overflow_before_alignment,
    trap_mem_misaligned_addr,
    trap_mem_misaligned_len,
    trap_mem_beyond_phys_size,
    trap_mem_last_page_ok,
    trap_mem_in_ram_ok,
    trap_io_end_past_space,
    trap_io_port_ffff_ok,
    trap_io_whole_space_ok,
    trap_io_overlap_same,
    trap_io_overlap_partial,
    trap_io_overlap_containing,
    trap_io_adjacent_ok,
    trap_mem_overlap,
    trap_mem_adjacent_ok,
    trap_kinds_are_separate_spaces,
    trap_bad_kind,
    trap_failed_set_registers_nothing,
    vcpu_options_checked_first,
    vcpu_bad_guest,
    vcpu_guest_without_write,
    vcpu_guest_wrong_type,
    vcpu_guest_checked_before_args,
    vcpu_args_null,
    vcpu_args_kernel_address,
    vcpu_bad_apic,
    vcpu_apic_without_read,
    vcpu_apic_without_write,
    vcpu_apic_wrong_type,
    vcpu_apic_checked_before_ip,
    vcpu_ip_outside_guest_space,
    vcpu_ip_beyond_ram_ok,
    vcpu_cr3_too_high,
    vcpu_cr3_highest_ok,
    vcpu_apic_smaller_than_a_page,
    vcpu_empty_guest_memory,
    empty_guest_runs_on_a_mapping,
    vcpu_out_null,
    vcpu_rights_and_type,
    vcpu_several_per_guest,
    resume_bad_handle,
    resume_without_execute,
    resume_wrong_type,
    resume_from_other_thread,
    resume_packet_null,
    resume_packet_kernel_address,
    interrupt_bad_handle,
    interrupt_bad_handle_before_vector,
    interrupt_without_signal,
    interrupt_wrong_type,
    interrupt_vector_256,
    interrupt_vector_max,
    interrupt_vectors_0_2_32_255_ok,
    interrupt_from_other_thread_ok,
    read_bad_handle,
    read_without_read,
    read_wrong_type,
    read_len_too_big,
    read_len_checked_before_thread,
    read_from_other_thread,
    read_thread_checked_before_kind,
    read_io_kind,
    read_unknown_kind,
    read_short_len,
    read_buffer_null,
    read_buffer_kernel_address,
    read_fresh_vcpu_is_zero,
    write_bad_handle,
    write_without_write,
    write_wrong_type,
    write_len_too_big,
    write_buffer_null,
    write_buffer_checked_before_thread,
    write_from_other_thread,
    write_thread_checked_before_kind,
    write_unknown_kind,
    write_state_wrong_len,
    write_io_wrong_len,
    write_io_size_0,
    write_io_size_3,
    write_io_size_8,
    write_io_sizes_1_2_4_ok,
    write_io_sets_low_bytes_of_rax,
    not_waitable,
];
