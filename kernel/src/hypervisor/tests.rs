//! In-kernel hypervisor tests (`test=ktest ktest=hypervisor`): tiny 64-bit
//! guests, hand-assembled, in a 4 MiB memory object with identity page
//! tables, each run on a kernel thread with an FPU area (the VCPU belongs to
//! the thread that creates it). Without SVM and nested paging every test
//! logs "skipped" and passes.
//!
//! Guest memory layout: GDT at 0 (null, 0x08 code64, 0x10 data), PML4 at
//! 0x1000, PDPT at 0x2000, PD at 0x3000 (2 MiB pages over the first GiB),
//! IDT at 0x4000, IDTR at 0x5000, handlers from 0x6000, stack below 0x9000,
//! code at 0x10000.

use super::{Guest, Vcpu};
use crate::object::port::Port;
use crate::object::Handle;
use crate::sched::{self, ThreadOptions, INFINITE};
use crate::sync::IrqSpinlock;
use crate::vm::Vmo;
use crate::{kassert, ktest};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use kcore::port::{Packet, PKT_TYPE_GUEST_IO, PKT_TYPE_GUEST_MEM, PKT_TYPE_USER};
use mx_abi::{PacketGuestIo, PacketGuestMem, Payload, Rights, Status, VcpuIo};

const MEM: u64 = 4 << 20;
const CODE: u64 = 0x10000;
const STACK_TOP: u64 = 0x9000;
const IDT: u64 = 0x4000;
const IDTR: u64 = 0x5000;
const HANDLERS: u64 = 0x6000;

type TestResult = Result<(), String>;

fn skip() -> bool {
    if super::supported() {
        return false;
    }
    log::info!("ktest: hypervisor test skipped: no SVM with nested paging");
    true
}

fn st(what: &str) -> impl FnOnce(Status) -> String + '_ {
    move |s| format!("{what}: {s:?}")
}

fn write_u64s(vmo: &Vmo, at: u64, words: &[u64]) -> TestResult {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    vmo.write(at, &bytes).map(drop).map_err(st("vmo write"))
}

/// Guest memory with the GDT, identity page tables and `code` at CODE.
fn guest_memory(code: &[u8]) -> Result<Arc<Vmo>, String> {
    let vmo = Vmo::create(MEM).map_err(st("vmo"))?;
    write_u64s(&vmo, 0, &[0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff])?;
    write_u64s(&vmo, 0x1000, &[0x2003])?;
    write_u64s(&vmo, 0x2000, &[0x3003])?;
    let pd: Vec<u64> = (0..512u64).map(|i| (i << 21) | 0x83).collect();
    write_u64s(&vmo, 0x3000, &pd)?;
    vmo.write(CODE, code).map_err(st("code"))?;
    Ok(vmo)
}

/// A guest and its VCPU (bound to the calling thread), RSP at STACK_TOP.
fn machine_with(vmo: Arc<Vmo>) -> Result<(Arc<Guest>, Arc<Vcpu>), String> {
    let guest = Guest::create(vmo).map_err(st("guest_create"))?;
    let apic = Vmo::create(4096).map_err(st("apic vmo"))?;
    let vcpu = Vcpu::create(&guest, CODE, 0x1000, apic).map_err(st("vcpu_create"))?;
    let mut state = vcpu.read_state().map_err(st("read_state"))?;
    state.rsp = STACK_TOP;
    vcpu.write_state(&state).map_err(st("write_state"))?;
    Ok((guest, vcpu))
}

fn machine(code: &[u8]) -> Result<(Arc<Guest>, Arc<Vcpu>), String> {
    machine_with(guest_memory(code)?)
}

fn next_io(vcpu: &Vcpu) -> Result<(u64, PacketGuestIo), String> {
    let packet = vcpu.resume().map_err(st("resume"))?;
    match packet.payload() {
        Ok(Payload::GuestIo(io)) if packet.status == 0 => Ok((packet.key, io)),
        other => Err(format!("expected an IO packet, got {other:?}")),
    }
}

/// Resumes and checks the IO packet (port, size, direction, data) and the
/// guest RIP afterwards (an offset from CODE).
fn expect_io(vcpu: &Vcpu, port: u16, size: u8, input: bool, data: u32, rip: u64) -> TestResult {
    let (key, io) = next_io(vcpu)?;
    kassert!(key == 0, "key {key}");
    kassert!(
        io.port == port && io.access_size == size && io.input == u8::from(input) && io.data == data,
        "got port {:#x} size {} input {} data {:#x}, want {port:#x} {size} {input} {data:#x}",
        io.port,
        io.access_size,
        io.input,
        io.data
    );
    let got = vcpu.guest_rip().map_err(st("rip"))?;
    kassert!(got == CODE + rip, "rip {got:#x}, want {:#x}", CODE + rip);
    Ok(())
}

/// An OUT of one byte to port 0x81 (what the test handlers do), or 0x80.
fn expect_out8(vcpu: &Vcpu, port: u16, value: u8) -> TestResult {
    let (_, io) = next_io(vcpu)?;
    kassert!(
        io.port == port && io.data == u32::from(value) && io.input == 0,
        "got port {:#x} data {:#x}, want {port:#x} {value:#x}",
        io.port,
        io.data
    );
    Ok(())
}

/// Runs `f` on a new kernel thread with an FPU area and waits for it.
fn on_vcpu_thread(name: &str, f: impl FnOnce() -> TestResult + Send + 'static) -> TestResult {
    let thread = spawn_vcpu_thread(name, f)?;
    join_vcpu_thread(thread)
}

type Spawned = (Arc<sched::Thread>, Arc<IrqSpinlock<Option<TestResult>>>);

fn spawn_vcpu_thread(name: &str, f: impl FnOnce() -> TestResult + Send + 'static) -> Result<Spawned, String> {
    let result = Arc::new(IrqSpinlock::new(None));
    let slot = result.clone();
    let options = ThreadOptions { fpu: true, ..ThreadOptions::new(name) };
    let thread = sched::spawn(&options, move || {
        let r = f();
        *slot.lock() = Some(r);
    })
    .map_err(st("spawn"))?;
    Ok((thread, result))
}

fn join_vcpu_thread((thread, result): Spawned) -> TestResult {
    thread.join(INFINITE).map_err(st("join"))?;
    let r = result.lock().take();
    r.unwrap_or_else(|| Err(String::from("the VCPU thread ended without a result")))
}

fn sleep_ms(ms: u64) {
    let _ = sched::sleep_until(crate::time::now_ns() + ms * 1_000_000);
}

// mov dx,0x3f8; mov al,0x42; out dx,al; mov eax,0x12345678; out 0x80,eax;
// in eax,dx; out 0x81,eax; mov eax,-1; in al,0x60; out 0x82,eax;
// in ax,dx; out 0x83,eax; 1: hlt; jmp 1b
const IO_CODE: &[u8] = &[
    0x66, 0xba, 0xf8, 0x03, 0xb0, 0x42, 0xee, 0xb8, 0x78, 0x56, 0x34, 0x12, 0xe7, 0x80, 0xed, 0xe7, 0x81, 0xb8, 0xff,
    0xff, 0xff, 0xff, 0xe4, 0x60, 0xe7, 0x82, 0x66, 0xed, 0xe7, 0x83, 0xf4, 0xeb, 0xfd,
];

ktest!(hypervisor_io_out_and_in, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-io", || {
        let (_guest, vcpu) = machine(IO_CODE)?;
        expect_io(&vcpu, 0x3f8, 1, false, 0x42, 0x07)?;
        expect_io(&vcpu, 0x80, 4, false, 0x1234_5678, 0x0e)?;
        // IN eax: RAX is zeroed, then the VMM supplies the value.
        expect_io(&vcpu, 0x3f8, 4, true, 0, 0x0f)?;
        kassert!(vcpu.read_state().map_err(st("state"))?.rax == 0);
        kassert!(vcpu.write_io(&VcpuIo { access_size: 3, data: 1 }) == Err(Status::InvalidArgs));
        vcpu.write_io(&VcpuIo { access_size: 4, data: 0xcafe_babe }).map_err(st("io"))?;
        expect_io(&vcpu, 0x81, 4, false, 0xcafe_babe, 0x11)?;
        // IN al keeps RAX's other bytes.
        expect_io(&vcpu, 0x60, 1, true, 0, 0x18)?;
        vcpu.write_io(&VcpuIo { access_size: 1, data: 0x5a }).map_err(st("io"))?;
        expect_io(&vcpu, 0x82, 4, false, 0xffff_ff5a, 0x1a)?;
        expect_io(&vcpu, 0x3f8, 2, true, 0, 0x1c)?;
        vcpu.write_io(&VcpuIo { access_size: 2, data: 0x1234_beef }).map_err(st("io"))?;
        expect_io(&vcpu, 0x83, 4, false, 0xffff_beef, 0x1e)?;
        Ok(())
    })
});

ktest!(hypervisor_io_trap_keys, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-io-keys", || {
        let (guest, vcpu) = machine(IO_CODE)?;
        // A trap without a port: key 0, through vcpu_resume. With a port:
        // every access goes through the port with the trap's key and the
        // guest runs on (an IN delivered that way reads zero).
        guest.set_trap(1, 0x3f8, 8, None, 55).map_err(st("trap"))?;
        let (port, _port_handle) = port_with_handle();
        guest.set_trap(1, 0x80, 1, Some(port.clone()), 66).map_err(st("trap"))?;
        guest.set_trap(1, 0x60, 1, Some(port.clone()), 77).map_err(st("trap"))?;
        expect_io(&vcpu, 0x3f8, 1, false, 0x42, 0x07)?;
        // OUT 0x80 went to the port; the next exit is the IN from 0x3f8.
        expect_io(&vcpu, 0x3f8, 4, true, 0, 0x0f)?;
        let (key, io) = port_io(&port)?;
        kassert!(key == 66 && io.port == 0x80 && io.data == 0x1234_5678 && io.input == 0, "key {key} {io:?}");
        kassert!(port.try_dequeue().is_none());
        vcpu.write_io(&VcpuIo { access_size: 4, data: 7 }).map_err(st("io"))?;
        expect_io(&vcpu, 0x81, 4, false, 7, 0x11)?;
        // The IN from 0x60 went to the port; its byte read zero, which the
        // guest's next OUT shows.
        let (key, io) = next_io(&vcpu)?;
        kassert!(key == 0 && io.port == 0x82 && io.data & 0xff == 0, "key {key} {io:?}");
        let (key, io) = port_io(&port)?;
        kassert!(key == 77 && io.port == 0x60 && io.input == 1, "key {key} {io:?}");
        kassert!(vcpu.pause_count() == 0);
        // Trap map rules through the guest (decisions 3 and 4).
        kassert!(guest.set_trap(1, 0x3fc, 1, None, 0) == Err(Status::AlreadyExists));
        kassert!(guest.set_trap(1, 0xffff, 1, None, 0) == Ok(()));
        kassert!(guest.set_trap(1, 0xffff, 2, None, 0) == Err(Status::OutOfRange));
        kassert!(guest.set_trap(0, 0x1001, 0x1000, None, 0) == Err(Status::InvalidArgs));
        kassert!(guest.set_trap(0, 1 << 48, 0x1000, None, 0) == Err(Status::OutOfRange));
        kassert!(guest.set_trap(6, 0, 1, None, 0) == Err(Status::InvalidArgs));
        kassert!(guest.set_trap(0, 0, 0, None, 0) == Err(Status::InvalidArgs));
        Ok(())
    })
});

// mov dword [0x400010], 0x12345678; mov rbx, 0x400000; mov rcx, 2;
// mov [rbx+rcx*4+8], rax; movzx eax, word [rbx+0x20]; out 0x80, eax;
// mov byte [0x300004], 7; mov al, 1; out 0x80, al; 1: hlt; jmp 1b
const MMIO_CODE: &[u8] = &[
    0xc7, 0x04, 0x25, 0x10, 0x00, 0x40, 0x00, 0x78, 0x56, 0x34, 0x12, 0x48, 0xc7, 0xc3, 0x00, 0x00, 0x40, 0x00, 0x48,
    0xc7, 0xc1, 0x02, 0x00, 0x00, 0x00, 0x48, 0x89, 0x44, 0x8b, 0x08, 0x0f, 0xb7, 0x43, 0x20, 0xe7, 0x80, 0xc6, 0x04,
    0x25, 0x04, 0x00, 0x30, 0x00, 0x07, 0xb0, 0x01, 0xe6, 0x80, 0xf4, 0xeb, 0xfd,
];

fn next_mem(vcpu: &Vcpu) -> Result<(u64, PacketGuestMem), String> {
    let packet = vcpu.resume().map_err(st("resume"))?;
    match packet.payload() {
        Ok(Payload::GuestMem(mem)) => Ok((packet.key, mem)),
        other => Err(format!("expected a MEM packet, got {other:?}")),
    }
}

fn expect_mem(vcpu: &Vcpu, key: u64, gpa: u64, code: &[u8], at: usize, len: usize) -> TestResult {
    let (got_key, mem) = next_mem(vcpu)?;
    kassert!(got_key == key, "key {got_key}, want {key}");
    kassert!(mem.addr == gpa, "gpa {:#x}, want {gpa:#x}", mem.addr);
    kassert!(mem.instruction() == &code[at..at + len], "bytes {:x?}", mem.instruction());
    kassert!(mem.inst_buf[len..].iter().all(|&b| b == 0), "unused bytes not zero");
    let rip = vcpu.guest_rip().map_err(st("rip"))?;
    kassert!(rip == CODE + (at + len) as u64, "rip {rip:#x}");
    Ok(())
}

ktest!(hypervisor_mmio_trap_exit, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-mmio", || {
        let (guest, vcpu) = machine(MMIO_CODE)?;
        // MMIO above RAM (no port: key 0), and a page of RAM (port: key 77).
        guest.set_trap(0, 0x40_0000, 0x1000, None, 9).map_err(st("trap"))?;
        let (port, _port_handle) = port_with_handle();
        guest.set_trap(0, 0x30_0000, 0x1000, Some(port.clone()), 77).map_err(st("trap"))?;
        expect_mem(&vcpu, 0, 0x40_0010, MMIO_CODE, 0, 11)?;
        expect_mem(&vcpu, 0, 0x40_0010, MMIO_CODE, 0x19, 5)?;
        expect_mem(&vcpu, 0, 0x40_0020, MMIO_CODE, 0x1e, 4)?;
        // The VMM completes the MOVZX read by writing RAX.
        let mut state = vcpu.read_state().map_err(st("state"))?;
        state.rax = 0xbeef;
        vcpu.write_state(&state).map_err(st("state"))?;
        expect_io(&vcpu, 0x80, 4, false, 0xbeef, 0x24)?;
        // The write to the port trap went through the port; the guest ran on.
        kassert!(port.is_empty());
        expect_io(&vcpu, 0x80, 1, false, 1, 0x30)?;
        let packet = port.try_dequeue().ok_or("no MEM packet on the port")?;
        let mem = PacketGuestMem::from_bytes(&packet.payload);
        kassert!(packet.key == 77 && packet.kind == PKT_TYPE_GUEST_MEM && mem.addr == 0x30_0004, "{packet:?}");
        kassert!(mem.instruction() == &MMIO_CODE[0x24..0x2c], "bytes {:x?}", mem.instruction());
        Ok(())
    })
});

// mov eax, [0x300000] (touches the page, mapping it); out 0x80, eax;
// mov dword [0x300000], 1; out 0x80, al; hlt
const REMAP_CODE: &[u8] = &[
    0x8b, 0x04, 0x25, 0x00, 0x00, 0x30, 0x00, 0xe7, 0x80, 0xc7, 0x04, 0x25, 0x00, 0x00, 0x30, 0x00, 0x01, 0x00, 0x00,
    0x00, 0xe6, 0x80, 0xf4,
];

ktest!(hypervisor_trap_after_mapping, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-remap", || {
        let vmo = guest_memory(REMAP_CODE)?;
        vmo.write(0x30_0000, &0x1234u32.to_le_bytes()).map_err(st("write"))?;
        let (guest, vcpu) = machine_with(vmo.clone())?;
        expect_io(&vcpu, 0x80, 4, false, 0x1234, 9)?;
        // The page is mapped now; trapping it must unmap it for the VCPU.
        guest.set_trap(0, 0x30_0000, 0x1000, None, 0).map_err(st("trap"))?;
        expect_mem(&vcpu, 0, 0x30_0000, REMAP_CODE, 9, 11)?;
        // The pinned memory cannot shrink under the guest.
        kassert!(vmo.set_size(0x1000) == Err(Status::BadState));
        Ok(())
    })
});

// xor eax,eax; cpuid; out 0x80,eax; mov eax,ebx; out 0x81,eax;
// mov eax,0x80000001; cpuid; mov eax,ecx; out 0x82,eax; mov eax,1; cpuid;
// mov eax,ecx; out 0x83,eax; mov ecx,0xc0000082; mov eax,0x11223344;
// mov edx,0xffff8000; wrmsr; xor eax,eax; xor edx,edx; rdmsr;
// out 0x84,eax; mov eax,edx; out 0x85,eax; 1: hlt; jmp 1b
const CPUID_CODE: &[u8] = &[
    0x31, 0xc0, 0x0f, 0xa2, 0xe7, 0x80, 0x89, 0xd8, 0xe7, 0x81, 0xb8, 0x01, 0x00, 0x00, 0x80, 0x0f, 0xa2, 0x89, 0xc8,
    0xe7, 0x82, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0x89, 0xc8, 0xe7, 0x83, 0xb9, 0x82, 0x00, 0x00, 0xc0, 0xb8,
    0x44, 0x33, 0x22, 0x11, 0xba, 0x00, 0x80, 0xff, 0xff, 0x0f, 0x30, 0x31, 0xc0, 0x31, 0xd2, 0x0f, 0x32, 0xe7, 0x84,
    0x89, 0xd0, 0xe7, 0x85, 0xf4, 0xeb, 0xfd,
];

ktest!(hypervisor_cpuid_and_msrs_in_kernel, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-cpuid", || {
        let (_guest, vcpu) = machine(CPUID_CODE)?;
        let (_, max) = next_io(&vcpu)?;
        kassert!(max.port == 0x80 && (1..=0xd).contains(&max.data), "max leaf {:#x}", max.data);
        let (_, vendor) = next_io(&vcpu)?;
        let host_vendor = core::arch::x86_64::__cpuid(0).ebx;
        kassert!(vendor.port == 0x81 && vendor.data == host_vendor);
        let (_, ext) = next_io(&vcpu)?;
        kassert!(ext.port == 0x82 && ext.data & (1 << 2) == 0, "SVM visible: {:#x}", ext.data);
        let (_, basic) = next_io(&vcpu)?;
        kassert!(basic.port == 0x83 && basic.data & (1 << 31) != 0 && basic.data & (1 << 5) == 0);
        // WRMSR/RDMSR of LSTAR stay in the kernel.
        expect_io(&vcpu, 0x84, 4, false, 0x1122_3344, 0x39)?;
        expect_io(&vcpu, 0x85, 4, false, 0xffff_8000, 0x3d)?;
        Ok(())
    })
});

// lidt [0x5000]; sti; hlt; mov al,1; out 0x80,al; 1: hlt; jmp 1b
const HLT_CODE: &[u8] =
    &[0x0f, 0x01, 0x1c, 0x25, 0x00, 0x50, 0x00, 0x00, 0xfb, 0xf4, 0xb0, 0x01, 0xe6, 0x80, 0xf4, 0xeb, 0xfd];

ktest!(hypervisor_hlt_wakes_on_interrupt, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-hlt", || {
        // Interrupts on: an external interrupt ends the HLT (with IF clear
        // it would not: hvtest's hlt_with_interrupts_off_ignores_interrupts).
        let vmo = guest_memory(HLT_CODE)?;
        install_idt(&vmo, &[32], &[])?;
        let (_guest, vcpu) = machine_with(vmo)?;
        let waker_vcpu = vcpu.clone();
        sched::spawn_kernel_thread("hv-waker", sched::PRIORITY_DEFAULT, move || {
            sleep_ms(30);
            let _ = waker_vcpu.interrupt(32);
        })
        .map_err(st("spawn"))?;
        let start = crate::time::now_ns();
        expect_out8(&vcpu, 0x81, 32)?;
        let waited = crate::time::now_ns() - start;
        kassert!(waited >= 20_000_000, "HLT returned after {waited} ns");
        expect_io(&vcpu, 0x80, 1, false, 1, 14)?;
        kassert!(vcpu.interrupt(256) == Err(Status::OutOfRange));
        Ok(())
    })
});

/// Writes an IDT of trap gates for `vectors` with handlers that OUT their
/// vector to 0x81 (`skip` bytes of the faulting instruction are stepped over
/// for the listed faults) and the IDTR.
fn install_idt(vmo: &Vmo, vectors: &[u8], skip_after: &[(u8, u8)]) -> TestResult {
    for &vector in vectors {
        let handler = HANDLERS + u64::from(vector) * 0x20;
        let mut code: Vec<u8> = alloc::vec![0x50, 0xb0, vector, 0xe6, 0x81, 0x58];
        let error_code = matches!(vector, 8 | 10..=14 | 17);
        if error_code {
            code.extend_from_slice(&[0x48, 0x83, 0xc4, 0x08]); // add rsp, 8
        }
        if let Some(&(_, n)) = skip_after.iter().find(|(v, _)| *v == vector) {
            code.extend_from_slice(&[0x48, 0x83, 0x04, 0x24, n]); // add qword [rsp], n
        }
        code.extend_from_slice(&[0x48, 0xcf]); // iretq
        vmo.write(handler, &code).map_err(st("handler"))?;
        let low = (handler & 0xffff) | (0x08 << 16) | (0x8f00u64 << 32) | ((handler >> 16 & 0xffff) << 48);
        write_u64s(vmo, IDT + u64::from(vector) * 16, &[low, handler >> 32])?;
    }
    let mut idtr = [0u8; 10];
    idtr[..2].copy_from_slice(&0x0fffu16.to_le_bytes());
    idtr[2..].copy_from_slice(&IDT.to_le_bytes());
    vmo.write(IDTR, &idtr).map(drop).map_err(st("idtr"))
}

// lidt [0x5000]; mov ecx,0x12345; rdmsr (#GP); vmmcall (#UD); sti;
// mov al,1; out 0x80,al; mov al,2; out 0x80,al; cli; mov al,3; out 0x80,al;
// nop; mov al,5; out 0x80,al; sti; nop; mov al,4; out 0x80,al; 1: hlt; jmp 1b
const IRQ_CODE: &[u8] = &[
    0x0f, 0x01, 0x1c, 0x25, 0x00, 0x50, 0x00, 0x00, 0xb9, 0x45, 0x23, 0x01, 0x00, 0x0f, 0x32, 0x0f, 0x01, 0xd9, 0xfb,
    0xb0, 0x01, 0xe6, 0x80, 0xb0, 0x02, 0xe6, 0x80, 0xfa, 0xb0, 0x03, 0xe6, 0x80, 0x90, 0xb0, 0x05, 0xe6, 0x80, 0xfb,
    0x90, 0xb0, 0x04, 0xe6, 0x80, 0xf4, 0xeb, 0xfd,
];

ktest!(hypervisor_interrupts_through_guest_idt, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-irq", || {
        let vmo = guest_memory(IRQ_CODE)?;
        install_idt(&vmo, &[2, 6, 13, 16, 32], &[(13, 2), (6, 3)])?;
        let (_guest, vcpu) = machine_with(vmo)?;
        // Unknown MSR: #GP; VMMCALL: #UD (both through the guest's IDT).
        expect_out8(&vcpu, 0x81, 13)?;
        expect_out8(&vcpu, 0x81, 6)?;
        expect_out8(&vcpu, 0x80, 1)?;
        // Interrupts on: NMI first, then the external interrupt, then the exception.
        vcpu.interrupt(16).map_err(st("irq"))?;
        vcpu.interrupt(32).map_err(st("irq"))?;
        vcpu.interrupt(2).map_err(st("irq"))?;
        expect_out8(&vcpu, 0x81, 2)?;
        expect_out8(&vcpu, 0x81, 32)?;
        expect_out8(&vcpu, 0x81, 16)?;
        expect_out8(&vcpu, 0x80, 2)?;
        expect_out8(&vcpu, 0x80, 3)?;
        // Interrupts off: 32 waits (the guest reaches OUT 5), then comes in
        // through the interrupt window right after STI's shadow.
        vcpu.interrupt(32).map_err(st("irq"))?;
        expect_out8(&vcpu, 0x80, 5)?;
        expect_out8(&vcpu, 0x81, 32)?;
        expect_out8(&vcpu, 0x80, 4)?;
        Ok(())
    })
});

ktest!(hypervisor_interrupt_from_another_thread_kicks, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-kick", || {
        // sti; 1: jmp 1b (spins with interrupts on; only a kick gets 32 in).
        let mut code = alloc::vec![0x0f, 0x01, 0x1c, 0x25, 0x00, 0x50, 0x00, 0x00, 0xfb, 0xeb, 0xfe];
        code.resize(16, 0x90);
        let vmo = guest_memory(&code)?;
        install_idt(&vmo, &[32], &[])?;
        let (_guest, vcpu) = machine_with(vmo)?;
        let other = vcpu.clone();
        sched::spawn_kernel_thread("hv-kicker", sched::PRIORITY_DEFAULT, move || {
            sleep_ms(20);
            let _ = other.interrupt(32);
        })
        .map_err(st("spawn"))?;
        expect_out8(&vcpu, 0x81, 32)
    })
});

ktest!(hypervisor_state_round_trip_and_thread_binding, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-state", || {
        // add rax, rbx; out 0x80, eax; 1: hlt; jmp 1b
        let (_guest, vcpu) = machine(&[0x48, 0x01, 0xd8, 0xe7, 0x80, 0xf4, 0xeb, 0xfd])?;
        let mut state = vcpu.read_state().map_err(st("read"))?;
        kassert!(state.flags == 0 && state.rsp == STACK_TOP, "initial flags {:#x}", state.flags);
        let values: Vec<u64> = (1..=16u64).map(|i| i * 0x0101_0101_0101).collect();
        state.rax = values[0];
        state.rcx = values[1];
        state.rdx = values[2];
        state.rbx = values[3];
        state.rsp = values[4];
        state.rbp = values[5];
        state.rsi = values[6];
        state.rdi = values[7];
        state.r8 = values[8];
        state.r9 = values[9];
        state.r10 = values[10];
        state.r11 = values[11];
        state.r12 = values[12];
        state.r13 = values[13];
        state.r14 = values[14];
        state.r15 = values[15];
        // CF and ZF, without the apply bit: ignored.
        state.flags = 0x41;
        vcpu.write_state(&state).map_err(st("write"))?;
        let back = vcpu.read_state().map_err(st("read"))?;
        kassert!(back.flags == 0, "flags applied without bit 1: {:#x}", back.flags);
        state.flags = 0x41 | 0x2 | (1 << 9);
        vcpu.write_state(&state).map_err(st("write"))?;
        let back = vcpu.read_state().map_err(st("read"))?;
        kassert!(back.flags == 0x41, "flags {:#x}", back.flags);
        state.flags = 0x41;
        kassert!(back == state, "round trip: {back:?}");
        // Another thread: BAD_STATE for resume and state, OK for interrupt.
        let other = vcpu.clone();
        on_vcpu_thread("hv-other", move || {
            kassert!(other.resume().err() == Some(Status::BadState));
            kassert!(other.read_state().err() == Some(Status::BadState));
            kassert!(other.write_io(&VcpuIo { access_size: 1, data: 0 }) == Err(Status::BadState));
            kassert!(other.interrupt(40) == Ok(()));
            Ok(())
        })?;
        // The registers reach the guest: rax + rbx.
        let sum = (values[0] + values[3]) as u32;
        expect_io(&vcpu, 0x80, 4, false, sum, 5)?;
        Ok(())
    })
});

// mov rax,cr4; or eax,0x600; mov cr4,rax; movd eax,xmm0; out 0x80,eax;
// mov eax,0x11223344; movd xmm0,eax; out 0x81,eax; movd eax,xmm0;
// out 0x82,eax; 1: hlt; jmp 1b
const SSE_CODE: &[u8] = &[
    0x0f, 0x20, 0xe0, 0x0d, 0x00, 0x06, 0x00, 0x00, 0x0f, 0x22, 0xe0, 0x66, 0x0f, 0x7e, 0xc0, 0xe7, 0x80, 0xb8, 0x44,
    0x33, 0x22, 0x11, 0x66, 0x0f, 0x6e, 0xc0, 0xe7, 0x81, 0x66, 0x0f, 0x7e, 0xc0, 0xe7, 0x82, 0xf4, 0xeb, 0xfd,
];

ktest!(hypervisor_guest_sse_state_is_separate, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-sse", || {
        use crate::arch::x86::fpu::{test_read_xmm0, test_write_xmm0};
        let (_guest, vcpu) = machine(SSE_CODE)?;
        test_write_xmm0(0xdead_beef_cafe_f00d);
        // The guest starts from the reset state, not the host's XMM0.
        expect_io(&vcpu, 0x80, 4, false, 0, 0x11)?;
        kassert!(test_read_xmm0() == 0xdead_beef_cafe_f00d, "host xmm0 clobbered");
        expect_io(&vcpu, 0x81, 4, false, 0x1122_3344, 0x1c)?;
        kassert!(test_read_xmm0() == 0xdead_beef_cafe_f00d, "guest xmm0 leaked into the host");
        test_write_xmm0(0x5555_5555_5555_5555);
        expect_io(&vcpu, 0x82, 4, false, 0x1122_3344, 0x22)?;
        kassert!(test_read_xmm0() == 0x5555_5555_5555_5555);
        Ok(())
    })
});

// xor ecx,ecx; 1: mov eax,ecx; out 0x80,eax; inc ecx; jmp 1b
const COUNT_CODE: &[u8] = &[0x31, 0xc9, 0x89, 0xc8, 0xe7, 0x80, 0xff, 0xc1, 0xeb, 0xf8];

fn count_guest(rounds: u32) -> TestResult {
    let (_guest, vcpu) = machine(COUNT_CODE)?;
    for i in 0..rounds {
        let (_, io) = next_io(&vcpu)?;
        kassert!(io.port == 0x80 && io.data == i, "round {i}: {:#x}", io.data);
    }
    Ok(())
}

ktest!(hypervisor_two_guests_at_once, || {
    if skip() {
        return Ok(());
    }
    let a = spawn_vcpu_thread("hv-two-a", || count_guest(300))?;
    let b = spawn_vcpu_thread("hv-two-b", || count_guest(300))?;
    join_vcpu_thread(a)?;
    join_vcpu_thread(b)?;
    // And two guests alternating on one thread.
    on_vcpu_thread("hv-two-c", || {
        let (_g1, v1) = machine(COUNT_CODE)?;
        let (_g2, v2) = machine(COUNT_CODE)?;
        for i in 0..50 {
            for v in [&v1, &v2] {
                let (_, io) = next_io(v)?;
                kassert!(io.data == i, "{i}: {:#x}", io.data);
            }
        }
        Ok(())
    })
});

ktest!(hypervisor_bad_guests_do_not_crash_the_host, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-bad", || {
        // ud2 with no IDT: #UD, #DF, triple fault: BAD_STATE, for good.
        let (_guest, vcpu) = machine(&[0x0f, 0x0b])?;
        kassert!(vcpu.resume().err() == Some(Status::BadState));
        kassert!(vcpu.resume().err() == Some(Status::BadState));
        // A jump to guest-physical memory that does not exist: OUT_OF_RANGE,
        // state intact (the same again).
        let (_guest, vcpu) = machine(&[0xb8, 0x00, 0x00, 0x00, 0x30, 0xff, 0xe0])?;
        kassert!(vcpu.resume().err() == Some(Status::OutOfRange));
        kassert!(vcpu.guest_rip() == Ok(0x3000_0000));
        kassert!(vcpu.resume().err() == Some(Status::OutOfRange));
        // String I/O: NOT_SUPPORTED (outsb).
        let (_guest, vcpu) = machine(&[0x6e])?;
        kassert!(vcpu.resume().err() == Some(Status::NotSupported));
        // VMRUN from the guest is #UD (no IDT: triple fault).
        let (_guest, vcpu) = machine(&[0x0f, 0x01, 0xd8])?;
        kassert!(vcpu.resume().err() == Some(Status::BadState));
        Ok(())
    })?;
    // Random bytes: whatever they do, the host survives. A watchdog kills
    // the VCPU thread if the guest spins or halts for good.
    for seed in 1..=6u64 {
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        let spawned = spawn_vcpu_thread("hv-garbage", move || {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut code = Vec::new();
            for _ in 0..4096 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                code.push(x as u8);
            }
            let (_guest, vcpu) = machine(&code)?;
            for _ in 0..64 {
                if vcpu.resume().is_err() {
                    break;
                }
            }
            finished.store(true, Ordering::Release);
            Ok(())
        })?;
        let thread = spawned.0.clone();
        for _ in 0..30 {
            if done.load(Ordering::Acquire) {
                break;
            }
            sleep_ms(10);
        }
        thread.kill();
        join_vcpu_thread(spawned)?;
    }
    // Still healthy: a normal guest runs.
    on_vcpu_thread("hv-after", || count_guest(10))
});

// ---- asynchronous traps (phase 2) ----

/// A port with one handle (a port without handles refuses trap packets).
fn port_with_handle() -> (Arc<Port>, Handle) {
    let port = Port::new();
    let handle = Handle::new(port.clone(), Rights::DEFAULT_PORT);
    (port, handle)
}

fn io_of(packet: &Packet) -> Result<(u64, PacketGuestIo), String> {
    kassert!(packet.kind == PKT_TYPE_GUEST_IO && packet.status == 0, "not an IO packet: {packet:?}");
    Ok((packet.key, PacketGuestIo::from_bytes(&packet.payload)))
}

/// The next packet of `port`, which must be an IO packet.
fn port_io(port: &Port) -> Result<(u64, PacketGuestIo), String> {
    let packet = port.try_dequeue().ok_or_else(|| String::from("port empty"))?;
    io_of(&packet)
}

/// Polls `cond` every millisecond, for up to 20 s.
fn wait_for(what: &str, cond: impl Fn() -> bool) -> TestResult {
    let deadline = crate::time::now_ns() + 20_000_000_000;
    while !cond() {
        if crate::time::now_ns() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        sleep_ms(1);
    }
    Ok(())
}

/// xor ecx,ecx; 1: mov eax,ecx; out `port`,eax; inc ecx; cmp ecx,`n`; jne 1b;
/// mov al,1; out 0x81,al (at 0x12, RIP 0x14 after it); 2: hlt; jmp 2b
fn out_loop_code(port: u8, n: u32) -> Vec<u8> {
    let mut code = alloc::vec![0x31, 0xc9, 0x89, 0xc8, 0xe7, port, 0xff, 0xc1, 0x81, 0xf9];
    code.extend_from_slice(&n.to_le_bytes());
    code.extend_from_slice(&[0x75, 0xf2, 0xb0, 0x01, 0xe6, 0x81, 0xf4, 0xeb, 0xfd]);
    code
}

/// RIP after the final `out 0x81, al` of `out_loop_code`.
const OUT_LOOP_END: u64 = 0x14;
const TRAP_PORT: u64 = 0x90;
const STOP_KEY: u64 = u64::MAX;

type Slot<T> = Arc<IrqSpinlock<Option<T>>>;

fn slot<T>() -> Slot<T> {
    Arc::new(IrqSpinlock::new(None))
}

/// What a VCPU thread running `out_loop_code` shares with the test.
struct Loop {
    vcpu: IrqSpinlock<Option<Arc<Vcpu>>>,
    /// The guest reached its final synchronous OUT: every trap packet is queued.
    looped: AtomicBool,
    /// The test is done with the port: the guest may go.
    done: AtomicBool,
}

impl Default for Loop {
    fn default() -> Self {
        Loop { vcpu: IrqSpinlock::new(None), looped: AtomicBool::new(false), done: AtomicBool::new(false) }
    }
}

impl Loop {
    fn pauses(&self) -> u64 {
        self.vcpu.lock().as_ref().map_or(0, |v| v.pause_count())
    }
}

/// Starts a VCPU thread running `out_loop_code(TRAP_PORT, n)` with an IO
/// trap on TRAP_PORT to `port` with `key`. It runs until the final
/// synchronous OUT, then keeps the guest (and its queued packets) alive
/// until `done` is set.
fn spawn_out_loop(name: &str, port: &Arc<Port>, key: u64, n: u32, shared: &Arc<Loop>) -> Result<Spawned, String> {
    let (port, shared) = (port.clone(), shared.clone());
    spawn_vcpu_thread(name, move || {
        let (guest, v) = machine(&out_loop_code(TRAP_PORT as u8, n))?;
        guest.set_trap(1, TRAP_PORT, 1, Some(port), key).map_err(st("trap"))?;
        *shared.vcpu.lock() = Some(v.clone());
        expect_io(&v, 0x81, 1, false, 1, OUT_LOOP_END)?;
        shared.looped.store(true, Ordering::Release);
        wait_for("the consumers", || shared.done.load(Ordering::Acquire))?;
        drop(shared.vcpu.lock().take());
        Ok(())
    })
}

/// One consumer: takes packets until a STOP_KEY user packet; returns the
/// counters of the trap packets in the order it got them.
fn spawn_consumer(port: &Arc<Port>, key: u64, slow: bool, out: Slot<Vec<u32>>) -> Result<Spawned, String> {
    let port = port.clone();
    spawn_vcpu_thread("hv-consumer", move || {
        let mut got = Vec::new();
        loop {
            let deadline = crate::time::now_ns() + 20_000_000_000;
            let packet = port.wait(deadline).map_err(st("port_wait"))?;
            if packet.key == STOP_KEY && packet.kind == PKT_TYPE_USER {
                break;
            }
            let (k, io) = io_of(&packet)?;
            kassert!(k == key, "key {k}, want {key}");
            kassert!(io.port == TRAP_PORT as u16 && io.access_size == 4 && io.input == 0, "{io:?}");
            got.push(io.data);
            if slow && got.len() % 64 == 0 {
                sleep_ms(1);
            }
        }
        *out.lock() = Some(got);
        Ok(())
    })
}

/// `n` asynchronous OUTs through a port-backed trap with `consumers` threads
/// draining the port: every packet arrives exactly once, each consumer sees
/// them in order, and with one consumer the order is exactly 0..n. Returns
/// how many times the VCPU paused on the empty pool.
fn async_out_run(n: u32, consumers: usize, slow: bool) -> Result<u64, String> {
    const KEY: u64 = 0x5eed;
    let (port, _port_handle) = port_with_handle();
    let shared = Arc::new(Loop::default());
    let guest_thread = spawn_out_loop("hv-async", &port, KEY, n, &shared)?;
    if slow {
        // Let the pool run dry before anyone drains it.
        wait_for("a pause", || shared.pauses() > 0)?;
    }
    let mut outs = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..consumers {
        let out = slot::<Vec<u32>>();
        threads.push(spawn_consumer(&port, KEY, slow, out.clone())?);
        outs.push(out);
    }
    // The stop packets queue behind every trap packet.
    wait_for("the guest's loop", || shared.looped.load(Ordering::Acquire))?;
    for _ in 0..consumers {
        port.queue_user(STOP_KEY, 0, [0; 32]).map_err(st("stop"))?;
    }
    let mut seen = alloc::vec![false; n as usize];
    let mut total = 0usize;
    for (thread, out) in threads.into_iter().zip(outs.iter()) {
        join_vcpu_thread(thread)?;
        let got = out.lock().take().ok_or("no result")?;
        kassert!(got.windows(2).all(|w| w[0] < w[1]), "a consumer saw packets out of order");
        for &d in &got {
            kassert!((d as usize) < seen.len() && !seen[d as usize], "packet {d} twice or out of range");
            seen[d as usize] = true;
        }
        total += got.len();
    }
    kassert!(total == n as usize, "{total} packets of {n}");
    let pauses = shared.pauses();
    shared.done.store(true, Ordering::Release);
    join_vcpu_thread(guest_thread)?;
    kassert!(port.is_empty());
    Ok(pauses)
}

/// Counts after making freed stack slots reusable, as the reaper's next
/// pass would: a slot left dirty sends the next thread to a fresh slot,
/// which may need a page-table frame. A VCPU that lands on a CPU no guest
/// ran on before makes that CPU keep its SVM pages for good: those frames
/// count as free.
fn counts() -> (u64, usize, u64) {
    use crate::arch::x86::svm::{prepared_cpus, FRAMES_PER_PREPARED_CPU};
    crate::mm::kstack::recycle_freed();
    let free = crate::mm::frame::stats().free_frames + prepared_cpus() * FRAMES_PER_PREPARED_CPU;
    (crate::object::live_objects_total(), crate::mm::heap::in_use(), free)
}

ktest!(hypervisor_async_io_ten_thousand_with_slow_consumer, || {
    if skip() {
        return Ok(());
    }
    // A warm-up run grows what only ever grows (slabs, stack slots).
    let pauses = async_out_run(600, 1, true)?;
    kassert!(pauses > 0, "no pause in the warm-up");
    let before = counts();
    let pauses = async_out_run(10_000, 1, true)?;
    kassert!(pauses > 0, "the VCPU never paused");
    log::info!("ktest: 10000 async OUTs, {pauses} pauses");
    let after = counts();
    kassert!(after == before, "objects/heap/free frames {before:?} -> {after:?}");
    Ok(())
});

ktest!(hypervisor_async_io_several_consumers, || {
    if skip() {
        return Ok(());
    }
    async_out_run(4000, 3, false).map(drop)
});

ktest!(hypervisor_async_io_two_guests_share_a_port, || {
    if skip() {
        return Ok(());
    }
    const N: u32 = 1500;
    let (port, _port_handle) = port_with_handle();
    let shared = [Arc::new(Loop::default()), Arc::new(Loop::default())];
    let a = spawn_out_loop("hv-share-a", &port, 1, N, &shared[0])?;
    let b = spawn_out_loop("hv-share-b", &port, 2, N, &shared[1])?;
    let mut next = [0u32; 2];
    while next != [N, N] {
        let packet = port.wait(crate::time::now_ns() + 20_000_000_000).map_err(st("port_wait"))?;
        let (key, io) = io_of(&packet)?;
        kassert!(key == 1 || key == 2, "key {key}");
        let i = key as usize - 1;
        kassert!(io.data == next[i], "guest {key}: got {}, want {}", io.data, next[i]);
        next[i] += 1;
        if next[i] % 128 == 0 {
            sleep_ms(1);
        }
    }
    for s in &shared {
        wait_for("the loop", || s.looped.load(Ordering::Acquire))?;
        s.done.store(true, Ordering::Release);
    }
    join_vcpu_thread(a)?;
    join_vcpu_thread(b)?;
    kassert!(port.is_empty());
    Ok(())
});

// mov dword [0x300010], 0xabcd; mov eax, [0x300020]; out 0x80, eax; 1: hlt; jmp 1b
const ASYNC_MEM_CODE: &[u8] = &[
    0xc7, 0x04, 0x25, 0x10, 0x00, 0x30, 0x00, 0xcd, 0xab, 0x00, 0x00, 0x8b, 0x04, 0x25, 0x20, 0x00, 0x30, 0x00, 0xe7,
    0x80, 0xf4, 0xeb, 0xfd,
];

ktest!(hypervisor_async_mem_trap, || {
    if skip() {
        return Ok(());
    }
    on_vcpu_thread("hv-async-mem", || {
        let (guest, vcpu) = machine(ASYNC_MEM_CODE)?;
        let (port, _port_handle) = port_with_handle();
        guest.set_trap(0, 0x30_0000, 0x1000, Some(port.clone()), 77).map_err(st("trap"))?;
        // Both the write and the read go through the port (man page: every
        // access) and the guest runs on; the read leaves EAX as it was (0).
        expect_io(&vcpu, 0x80, 4, false, 0, 20)?;
        for (gpa, at, len) in [(0x30_0010, 0, 11), (0x30_0020, 11, 7)] {
            let packet = port.try_dequeue().ok_or("no MEM packet on the port")?;
            let mem = PacketGuestMem::from_bytes(&packet.payload);
            kassert!(packet.key == 77 && packet.kind == PKT_TYPE_GUEST_MEM && packet.status == 0, "{packet:?}");
            kassert!(mem.addr == gpa && mem.instruction() == &ASYNC_MEM_CODE[at..at + len], "{mem:?}");
            kassert!(mem.inst_buf[len..].iter().all(|&b| b == 0));
        }
        kassert!(port.is_empty());
        Ok(())
    })
});

ktest!(hypervisor_guest_destroy_cancels_only_its_packets, || {
    if skip() {
        return Ok(());
    }
    const KEY: u64 = 42;
    let (port, _port_handle) = port_with_handle();
    port.queue_user(KEY, 0, [1; 32]).map_err(st("queue"))?;
    let handle_slot: Slot<Handle> = slot();
    let shared = Arc::new(Loop::default());
    let (p, sh, hs) = (port.clone(), shared.clone(), handle_slot.clone());
    let thread = spawn_vcpu_thread("hv-destroy", move || {
        let (guest, vcpu) = machine(&out_loop_code(TRAP_PORT as u8, 300))?;
        guest.set_trap(1, TRAP_PORT, 1, Some(p), KEY).map_err(st("trap"))?;
        *hs.lock() = Some(Handle::new(guest.clone(), Rights::DEFAULT_GUEST));
        drop(guest);
        *sh.vcpu.lock() = Some(vcpu.clone());
        // 256 OUTs fill the pool, the 257th pauses; the guest's destruction
        // wakes the VCPU with BAD_STATE (that packet is dropped). The VCPU
        // runs on without traps: the next OUT to the port is synchronous.
        let r = vcpu.resume();
        kassert!(r.as_ref().err() == Some(&Status::BadState), "resume: {r:?}");
        expect_io(&vcpu, TRAP_PORT as u16, 4, false, 257, 6)?;
        kassert!(vcpu.pause_count() == 1);
        drop(sh.vcpu.lock().take());
        Ok(())
    })?;
    wait_for("a pause", || shared.pauses() > 0)?;
    kassert!(port.len() == 1 + 256, "{} queued", port.len());
    port.queue_user(KEY, 0, [2; 32]).map_err(st("queue"))?;
    let handle = handle_slot.lock().take().ok_or("no guest handle")?;
    drop(handle);
    join_vcpu_thread(thread)?;
    // Only the guest's packets went; both user packets with its key remain.
    for fill in [1u8, 2] {
        let packet = port.try_dequeue().ok_or("a user packet was cancelled")?;
        kassert!(packet.key == KEY && packet.kind == PKT_TYPE_USER && packet.payload == [fill; 32], "{packet:?}");
    }
    kassert!(port.is_empty());
    Ok(())
});

ktest!(hypervisor_trap_port_closed_while_guest_runs, || {
    if skip() {
        return Ok(());
    }
    let (port, port_handle) = port_with_handle();
    let shared = Arc::new(Loop::default());
    let (p, sh) = (port.clone(), shared.clone());
    let thread = spawn_vcpu_thread("hv-port-closed", move || {
        let (guest, vcpu) = machine(&out_loop_code(TRAP_PORT as u8, 300))?;
        guest.set_trap(1, TRAP_PORT, 1, Some(p), 9).map_err(st("trap"))?;
        *sh.vcpu.lock() = Some(vcpu.clone());
        // The paused OUT and every later one fail with BAD_STATE (each
        // completed, packet dropped); the guest runs on to its final OUT.
        let mut failures = 0;
        loop {
            match vcpu.resume() {
                Err(Status::BadState) => failures += 1,
                Ok(packet) => {
                    kassert!(packet.key == 0, "key {}", packet.key);
                    break;
                }
                Err(e) => return Err(format!("resume: {e:?}")),
            }
        }
        kassert!(failures == 300 - 256, "{failures} failures");
        kassert!(vcpu.guest_rip().map_err(st("rip"))? == CODE + OUT_LOOP_END);
        kassert!(vcpu.pause_count() == 1);
        drop(sh.vcpu.lock().take());
        Ok(())
    })?;
    wait_for("a pause", || shared.pauses() > 0)?;
    kassert!(port.len() == 256);
    drop(port_handle);
    join_vcpu_thread(thread)?;
    // The guest is gone, and its trap's packets with it.
    kassert!(port.is_empty());
    Ok(())
});

ktest!(hypervisor_paused_vcpu_thread_killed, || {
    if skip() {
        return Ok(());
    }
    let (port, _port_handle) = port_with_handle();
    let shared = Arc::new(Loop::default());
    let (p, sh) = (port.clone(), shared.clone());
    let spawned = spawn_vcpu_thread("hv-killed", move || {
        let (guest, vcpu) = machine(&out_loop_code(TRAP_PORT as u8, 300))?;
        guest.set_trap(1, TRAP_PORT, 1, Some(p), 5).map_err(st("trap"))?;
        *sh.vcpu.lock() = Some(vcpu.clone());
        let r = vcpu.resume();
        drop(sh.vcpu.lock().take());
        kassert!(r.as_ref().err() == Some(&Status::Canceled), "resume: {r:?}");
        Ok(())
    })?;
    wait_for("a pause", || shared.pauses() > 0)?;
    spawned.0.kill();
    join_vcpu_thread(spawned)?;
    kassert!(port.is_empty());
    Ok(())
});
