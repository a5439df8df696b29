//! AMD SVM with nested paging: the hardware backend of the hypervisor
//! (implements `hypervisor::backend`).
//!
//! - **Per CPU**, on the first VM entry there: EFER.SVME is set and
//!   `VM_HSAVE_PA` points at a host save page; a second page holds the
//!   host's VMSAVE state (FS/GS/TR/LDTR hidden state, KERNEL_GS_BASE and the
//!   SYSCALL/SYSENTER MSRs), which VMRUN does not switch.
//! - **ASIDs** are handed out per CPU with a generation, as KVM does: a VCPU
//!   entering on a CPU where it holds no ASID of the current generation takes
//!   the next one; when they run out the generation moves on and the whole
//!   TLB is flushed. So a VCPU may migrate freely, an ASID is never shared by
//!   two VCPUs within a generation, and VCPUs never run out of ASIDs. A VCPU
//!   whose guest lost a nested mapping also takes a fresh ASID.
//! - **Entry** ([`SvmVcpu::enter`]): interrupts off; host extended state
//!   saved and the guest's loaded (and the guest's XCR0); CLGI, STI (so a
//!   host interrupt makes the guest exit while GIF holds it), VMSAVE host,
//!   VMLOAD/VMRUN/VMSAVE guest, VMLOAD host, CLI, STGI; then everything
//!   back. The guest's general registers live in [`GuestGprs`] and are
//!   swapped by `svm_run` (VMRUN only switches RAX, RSP, RIP and RFLAGS).
//! - **Intercepts**: physical INTR/NMI/INIT, CPUID, HLT, PAUSE, INVD, all
//!   I/O ports and MSRs (bitmaps of ones), shutdown, XSETBV, the SVM
//!   instructions, VMMCALL, MONITOR/MWAIT, #MC, and the exception vectors
//!   the guest's EXCEPTION traps name (set before every entry), and CR8
//!   writes (emulated: a QEMU bug). Other CR accesses are not intercepted:
//!   with nested paging the guest owns its CR0/CR3/CR4.
//! - **Events**: one per entry through EVENTINJ; an event whose delivery an
//!   exit interrupted (EXITINTINFO) is re-injected first. Interrupt windows
//!   use V_IRQ with VINTR intercepted.
//!
//! QEMU's emulator has no NRIPS or DecodeAssists, so nothing here relies on
//! the next-RIP or instruction-bytes fields: I/O exits carry the next RIP in
//! EXITINFO2, and the object layer knows the other instructions' lengths.

mod npt;
mod vmcb;

use super::fpu::FpuState;
use super::percpu::cpu_index;
use super::smp::MAX_CPUS;
use crate::hypervisor::backend::{Event, Exit, Gprs, GuestBackend, RunState, VcpuBackend, VcpuEntry, NOT_RUNNING};
use crate::mm::frame;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kcore::x86decode::Mode;
use kcore::x86paging::PagingRegs;
use mx_abi::{Status, VcpuSystem};
use npt::NestedTables;
use vmcb::Page;
use x86_64::instructions::interrupts;
use x86_64::registers::model_specific::Msr;

const MSR_EFER: u32 = 0xc000_0080;
const MSR_VM_CR: u32 = 0xc001_0114;
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
const EFER_SVME: u64 = 1 << 12;
const VM_CR_SVMDIS: u64 = 1 << 4;

// Exit codes.
const EXIT_CR8_WRITE: u64 = 0x18;
const EXIT_EXCP_BASE: u64 = 0x40;
const EXIT_EXCP_MC: u64 = 0x52;
const EXIT_EXCP_LAST: u64 = 0x5f;
const EXIT_INTR: u64 = 0x60;
const EXIT_NMI: u64 = 0x61;
const EXIT_SMI: u64 = 0x62;
const EXIT_INIT: u64 = 0x63;
const EXIT_VINTR: u64 = 0x64;
const EXIT_CPUID: u64 = 0x72;
const EXIT_SWINT: u64 = 0x75;
const EXIT_INVD: u64 = 0x76;
const EXIT_PAUSE: u64 = 0x77;
const EXIT_HLT: u64 = 0x78;
const EXIT_IOIO: u64 = 0x7b;
const EXIT_MSR: u64 = 0x7c;
const EXIT_SHUTDOWN: u64 = 0x7f;
const EXIT_VMRUN: u64 = 0x80;
const EXIT_VMMCALL: u64 = 0x81;
const EXIT_SKINIT: u64 = 0x86;
const EXIT_MONITOR: u64 = 0x8a;
const EXIT_MWAIT_COND: u64 = 0x8c;
const EXIT_XSETBV: u64 = 0x8d;
const EXIT_NPF: u64 = 0x400;
const EXIT_INVALID: u64 = u64::MAX;

// Intercept bits.
/// Writes to CR8: see [`SvmVcpu::new`].
const CR_WRITE_CR8: u32 = 1 << (16 + 8);
const MISC1_INTR: u32 = 1 << 0;
const MISC1_NMI: u32 = 1 << 1;
const MISC1_INIT: u32 = 1 << 3;
const MISC1_VINTR: u32 = 1 << 4;
const MISC1_CPUID: u32 = 1 << 18;
const MISC1_INTN: u32 = 1 << 21;
const MISC1_INVD: u32 = 1 << 22;
const MISC1_PAUSE: u32 = 1 << 23;
const MISC1_HLT: u32 = 1 << 24;
const MISC1_IOIO: u32 = 1 << 27;
const MISC1_MSR: u32 = 1 << 28;
const MISC1_SHUTDOWN: u32 = 1 << 31;
/// VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, MONITOR, MWAIT, XSETBV.
const MISC2_ALL: u32 = 0x7f | (1 << 10) | (1 << 11) | (1 << 13);

/// #MC always exits: a machine check is the host's.
const INTERCEPT_MC: u32 = 1 << 18;

const V_TPR: u64 = 0xf;
const V_IRQ: u64 = 1 << 8;
const V_IGN_TPR: u64 = 1 << 20;
const V_INTR_MASKING: u64 = 1 << 24;
const EVENT_VALID: u64 = 1 << 31;
/// EXITINFO1 of a nested page fault: it hit during the guest's page walk.
const NPF_GUEST_PAGE_WALK: u64 = 1 << 33;
const EVENT_ERROR_VALID: u64 = 1 << 11;
const EVENT_TYPE_INTR: u64 = 0 << 8;
const EVENT_TYPE_NMI: u64 = 2 << 8;
const EVENT_TYPE_EXCEPTION: u64 = 3 << 8;
const EVENT_TYPE_SOFT: u64 = 4 << 8;
const EVENT_TYPE_MASK: u64 = 7 << 8;
/// TLB_CONTROL: flush everything (every ASID) on this entry.
const TLB_FLUSH_ALL: u8 = 1;

const RFLAGS_IF: u64 = 1 << 9;

/// Guest general registers VMRUN does not switch, in `svm_run`'s layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct GuestGprs {
    rbx: u64,
    rcx: u64,
    rdx: u64,
    rsi: u64,
    rdi: u64,
    rbp: u64,
    r8: u64,
    r9: u64,
    r10: u64,
    r11: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
}

core::arch::global_asm!(
    r#"
    .text
    .balign 16
    .global svm_run
    // rdi: *mut GuestGprs; rsi: guest VMCB (phys); rdx: host save VMCB (phys).
    // Called with GIF clear. Returns after the #VMEXIT with every host
    // callee-saved register intact.
svm_run:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi
    push rdx
    push rsi
    mov rax, rdx
    vmsave rax
    mov rax, rsi
    mov rbx, [rdi + 0]
    mov rcx, [rdi + 8]
    mov rdx, [rdi + 16]
    mov rsi, [rdi + 24]
    mov rbp, [rdi + 40]
    mov r8, [rdi + 48]
    mov r9, [rdi + 56]
    mov r10, [rdi + 64]
    mov r11, [rdi + 72]
    mov r12, [rdi + 80]
    mov r13, [rdi + 88]
    mov r14, [rdi + 96]
    mov r15, [rdi + 104]
    mov rdi, [rdi + 32]
    vmload rax
    vmrun rax
    vmsave rax
    // VMRUN restored the host's RAX and RSP: [rsp] guest VMCB,
    // [rsp + 8] host VMCB, [rsp + 16] the GuestGprs pointer.
    mov rax, [rsp + 16]
    mov [rax + 0], rbx
    mov [rax + 8], rcx
    mov [rax + 16], rdx
    mov [rax + 24], rsi
    mov [rax + 32], rdi
    mov [rax + 40], rbp
    mov [rax + 48], r8
    mov [rax + 56], r9
    mov [rax + 64], r10
    mov [rax + 72], r11
    mov [rax + 80], r12
    mov [rax + 88], r13
    mov [rax + 96], r14
    mov [rax + 104], r15
    mov rax, [rsp + 8]
    vmload rax
    add rsp, 24
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
);

extern "C" {
    fn svm_run(gprs: *mut GuestGprs, guest_vmcb: u64, host_vmcb: u64);
}

const _: () = {
    assert!(core::mem::offset_of!(GuestGprs, rdi) == 32);
    assert!(core::mem::offset_of!(GuestGprs, r15) == 104);
};

/// Whether guests can run: SVM and nested paging present and SVM not
/// disabled by the firmware (VM_CR.SVMDIS).
pub fn supported() -> bool {
    let f = super::cpu::features();
    if !(f.svm && f.npt) {
        return false;
    }
    // SAFETY: VM_CR exists on every CPU that reports SVM.
    let vm_cr = unsafe { Msr::new(MSR_VM_CR).read() };
    vm_cr & VM_CR_SVMDIS == 0
}

/// Per-CPU SVM state; each CPU touches only its own, with interrupts off.
struct CpuState {
    /// `VM_HSAVE_PA` page (0 until SVM is on here).
    hsave: AtomicU64,
    /// The host's VMSAVE area.
    host_vmcb: AtomicU64,
    /// Next ASID to hand out, and the current ASID generation.
    next_asid: AtomicU32,
    generation: AtomicU64,
}

static CPUS: [CpuState; MAX_CPUS] = [const {
    CpuState {
        hsave: AtomicU64::new(0),
        host_vmcb: AtomicU64::new(0),
        next_asid: AtomicU32::new(1),
        generation: AtomicU64::new(1),
    }
}; MAX_CPUS];

/// Number of ASIDs (CPUID 8000_000A EBX); ASID 0 is the host's.
fn asid_count() -> u32 {
    static COUNT: spin::Once<u32> = spin::Once::new();
    *COUNT.call_once(|| __cpuid(0x8000_000a).ebx.max(2))
}

/// The I/O and MSR permission maps: all ones (every port and MSR exits),
/// shared by every VCPU. 12 KiB and 8 KiB, physically contiguous.
/// A failed allocation is not remembered: NO_MEMORY is temporary, and the
/// next guest or VCPU creation tries again.
fn permission_maps() -> Option<(u64, u64)> {
    static MAPS: spin::Once<(u64, u64)> = spin::Once::new();
    let maps = MAPS.try_call_once(|| {
        let iopm = frame::alloc_contiguous(3, 0).ok_or(())?;
        let Some(msrpm) = frame::alloc_contiguous(2, 0) else {
            frame::free_contiguous(iopm, 3);
            return Err(());
        };
        for (base, pages) in [(iopm, 3u64), (msrpm, 2)] {
            // SAFETY: the frames were just allocated for us, in the direct map.
            unsafe { core::ptr::write_bytes(crate::mm::phys_to_virt(base) as *mut u8, 0xff, (pages * 4096) as usize) };
        }
        Ok((iopm, msrpm))
    });
    maps.ok().copied()
}

/// Frames a CPU keeps for good once a guest has run there (the host save
/// page and the host VMSAVE area).
pub const FRAMES_PER_PREPARED_CPU: u64 = 2;

/// How many CPUs have run a guest (and keep [`FRAMES_PER_PREPARED_CPU`]).
pub fn prepared_cpus() -> u64 {
    CPUS.iter().filter(|cpu| cpu.hsave.load(Ordering::Relaxed) != 0).count() as u64
}

/// Turns SVM on for this CPU if it is not yet (interrupts off).
fn prepare_this_cpu(cpu: &CpuState) -> Result<(), Status> {
    if cpu.hsave.load(Ordering::Relaxed) != 0 {
        return Ok(());
    }
    let hsave = frame::alloc_zeroed_frame().ok_or(Status::NoMemory)?;
    let Some(host_vmcb) = frame::alloc_zeroed_frame() else {
        frame::free_frame(hsave);
        return Err(Status::NoMemory);
    };
    // SAFETY: the CPU supports SVM (checked at guest creation) and the
    // firmware did not lock it off; SVME only enables the SVM
    // instructions, and VM_HSAVE_PA points at a page reserved for good.
    unsafe {
        let mut efer = Msr::new(MSR_EFER);
        let value = efer.read();
        efer.write(value | EFER_SVME);
        Msr::new(MSR_VM_HSAVE_PA).write(hsave);
    }
    cpu.host_vmcb.store(host_vmcb, Ordering::Relaxed);
    cpu.hsave.store(hsave, Ordering::Relaxed);
    Ok(())
}

/// A guest: its nested page tables.
pub struct SvmGuest {
    tables: Arc<NestedTables>,
}

impl SvmGuest {
    pub fn new() -> Result<SvmGuest, Status> {
        permission_maps().ok_or(Status::NoMemory)?;
        Ok(SvmGuest { tables: Arc::new(NestedTables::new()?) })
    }
}

impl GuestBackend for SvmGuest {
    fn map_page(&self, gpa: u64, hpa: u64) -> Result<(), Status> {
        self.tables.map(gpa, hpa)
    }

    fn unmap_range(&self, gpa: u64, len: u64) -> bool {
        self.tables.unmap(gpa, gpa.saturating_add(len))
    }

    fn create_vcpu(&self, entry: VcpuEntry) -> Result<Box<dyn VcpuBackend>, Status> {
        Ok(Box::new(SvmVcpu::new(self.tables.clone(), entry)?))
    }
}

/// One VCPU: its VMCB, the registers VMRUN leaves alone, its extended state.
pub struct SvmVcpu {
    vmcb: Page,
    gprs: GuestGprs,
    guest_fpu: Box<FpuState>,
    /// Where the thread's own extended state waits while the guest runs.
    host_fpu: Box<FpuState>,
    guest_xcr0: u64,
    tables: Arc<NestedTables>,
    /// On which CPU, of which generation, and with which nested tables'
    /// generation this VCPU's ASID (the VMCB's GUEST_ASID) was handed out.
    asid_cpu: u32,
    asid_generation: u64,
    tables_generation: u64,
}

/// Segment attributes (type, S, DPL, P in bits 0-7; AVL, L, D/B, G in 8-11).
const ATTR_CODE64: u16 = 0xa9b;
const ATTR_DATA: u16 = 0xc93;
const ATTR_TSS64_BUSY: u16 = 0x8b;
const ATTR_LDT: u16 = 0x82;

impl SvmVcpu {
    fn new(tables: Arc<NestedTables>, entry: VcpuEntry) -> Result<SvmVcpu, Status> {
        let (iopm, msrpm) = permission_maps().ok_or(Status::NoMemory)?;
        let mut vmcb = Page::new().ok_or(Status::NoMemory)?;
        let guest_fpu = FpuState::try_new().ok_or(Status::NoMemory)?;
        let host_fpu = FpuState::try_new().ok_or(Status::NoMemory)?;
        // Control area. CR8 writes are emulated (the guest's TPR is V_TPR
        // either way, with V_INTR_MASKING): QEMU 7.2's emulator, executing
        // one itself while V_IRQ is pending (an interrupt window we asked
        // for), raises an interrupt without its global lock and aborts the
        // whole machine.
        vmcb.write32(vmcb::INTERCEPT_CR, CR_WRITE_CR8);
        vmcb.write32(vmcb::INTERCEPT_EXCEPTIONS, INTERCEPT_MC);
        vmcb.write32(
            vmcb::INTERCEPT_MISC1,
            MISC1_INTR
                | MISC1_NMI
                | MISC1_INIT
                | MISC1_CPUID
                | MISC1_INVD
                | MISC1_PAUSE
                | MISC1_HLT
                | MISC1_IOIO
                | MISC1_MSR
                | MISC1_SHUTDOWN,
        );
        vmcb.write32(vmcb::INTERCEPT_MISC2, MISC2_ALL);
        vmcb.write64(vmcb::IOPM_BASE, iopm);
        vmcb.write64(vmcb::MSRPM_BASE, msrpm);
        vmcb.write64(vmcb::TSC_OFFSET, 0);
        vmcb.write64(vmcb::V_INTR, V_INTR_MASKING);
        vmcb.write64(vmcb::NP_ENABLE, 1);
        vmcb.write64(vmcb::N_CR3, tables.root());
        // Save area: decision 9 (64-bit mode, paging on, flat segments,
        // interrupts off, everything else zero).
        vmcb.set_segment(vmcb::CS, 0x08, ATTR_CODE64, 0xffff_ffff, 0);
        for seg in [vmcb::DS, vmcb::ES, vmcb::SS, vmcb::FS, vmcb::GS] {
            vmcb.set_segment(seg, 0x10, ATTR_DATA, 0xffff_ffff, 0);
        }
        vmcb.set_segment(vmcb::TR, 0, ATTR_TSS64_BUSY, 0xffff, 0);
        vmcb.set_segment(vmcb::LDTR, 0, ATTR_LDT, 0xffff, 0);
        vmcb.set_segment(vmcb::GDTR, 0, 0, 0xffff, 0);
        vmcb.set_segment(vmcb::IDTR, 0, 0, 0xffff, 0);
        vmcb.write8(vmcb::CPL, 0);
        // PE, ET, NE, PG; PAE; LME, LMA (and SVME, which the guest never sees).
        vmcb.write64(vmcb::CR0, 0x8000_0031);
        vmcb.write64(vmcb::CR3, entry.cr3);
        vmcb.write64(vmcb::CR4, 0x20);
        vmcb.write64(vmcb::EFER, (1 << 8) | (1 << 10) | EFER_SVME);
        vmcb.write64(vmcb::DR7, 0x400);
        vmcb.write64(vmcb::DR6, 0xffff_0ff0);
        vmcb.write64(vmcb::RFLAGS, 0x2);
        vmcb.write64(vmcb::RIP, entry.ip);
        vmcb.write64(vmcb::RSP, 0);
        vmcb.write64(vmcb::RAX, 0);
        vmcb.write64(vmcb::G_PAT, 0x0007_0406_0007_0406);
        Ok(SvmVcpu {
            vmcb,
            gprs: GuestGprs::default(),
            guest_fpu,
            host_fpu,
            guest_xcr0: 1,
            tables_generation: tables.generation(),
            tables,
            asid_cpu: NOT_RUNNING,
            asid_generation: 0,
        })
    }

    /// Makes sure this VCPU holds a clean ASID on this CPU (interrupts off).
    fn assign_asid(&mut self, me: u32, cpu: &CpuState) {
        let tables_generation = self.tables.generation();
        let generation = cpu.generation.load(Ordering::Relaxed);
        if self.asid_cpu == me && self.asid_generation == generation && self.tables_generation == tables_generation {
            return;
        }
        let mut next = cpu.next_asid.load(Ordering::Relaxed);
        let mut flush = false;
        if next >= asid_count() {
            cpu.generation.store(generation + 1, Ordering::Relaxed);
            next = 1;
            flush = true;
        }
        cpu.next_asid.store(next + 1, Ordering::Relaxed);
        self.asid_cpu = me;
        self.asid_generation = cpu.generation.load(Ordering::Relaxed);
        self.tables_generation = tables_generation;
        self.vmcb.write32(vmcb::GUEST_ASID, next);
        if flush {
            self.vmcb.write8(vmcb::TLB_CONTROL, TLB_FLUSH_ALL);
        }
    }

    fn decode_exit(&mut self) -> Exit {
        let code = self.vmcb.read64(vmcb::EXIT_CODE);
        let info1 = self.vmcb.read64(vmcb::EXIT_INFO1);
        let info2 = self.vmcb.read64(vmcb::EXIT_INFO2);
        match code {
            EXIT_INTR | EXIT_NMI | EXIT_SMI | EXIT_INIT => Exit::ExternalInterrupt,
            EXIT_VINTR => {
                self.set_interrupt_window(false);
                Exit::InterruptWindow
            }
            EXIT_CPUID => Exit::Cpuid,
            EXIT_SWINT => Exit::SoftwareInterrupt,
            EXIT_INVD => Exit::NoOp { len: 2 },
            EXIT_PAUSE => Exit::Pause,
            EXIT_HLT => Exit::Hlt,
            EXIT_IOIO => {
                let size = match (info1 >> 4) & 7 {
                    1 => 1,
                    2 => 2,
                    _ => 4,
                };
                Exit::Io {
                    port: (info1 >> 16) as u16,
                    size,
                    input: info1 & 1 != 0,
                    string: info1 & (1 << 2) != 0,
                    rep: info1 & (1 << 3) != 0,
                    next_rip: info2,
                }
            }
            EXIT_MSR => Exit::Msr { write: info1 & 1 != 0 },
            EXIT_SHUTDOWN => Exit::Shutdown,
            EXIT_VMMCALL => Exit::Vmcall,
            EXIT_VMRUN..=EXIT_SKINIT | EXIT_MONITOR..=EXIT_MWAIT_COND => Exit::Undefined,
            EXIT_XSETBV => Exit::Xsetbv,
            EXIT_CR8_WRITE => Exit::Cr8Write,
            EXIT_NPF => {
                let walk = info1 & NPF_GUEST_PAGE_WALK != 0;
                let delivering = self.vmcb.read64(vmcb::EXIT_INT_INFO) & EVENT_VALID != 0;
                Exit::NestedPageFault { gpa: info2, by_cpu: walk || delivering }
            }
            EXIT_INVALID => Exit::EntryFailed,
            EXIT_EXCP_MC => Exit::Unknown(code),
            EXIT_EXCP_BASE..=EXIT_EXCP_LAST => {
                Exit::Exception { vector: (code - EXIT_EXCP_BASE) as u8, error_code: info1 as u32, address: info2 }
            }
            other => Exit::Unknown(other),
        }
    }
}

fn xcr0_read() -> u64 {
    x86_64::registers::xcontrol::XCr0::read_raw()
}

fn xcr0_write(value: u64) {
    // SAFETY: callers pass either the host's XCR0 or a guest value that
    // was validated as a subset of it with x87 set (the object layer's
    // XSETBV checks), so XSETBV cannot fault.
    unsafe { x86_64::registers::xcontrol::XCr0::write_raw(value) }
}

impl VcpuBackend for SvmVcpu {
    fn enter(&mut self, run: &RunState) -> Result<Exit, Status> {
        let irq_on = interrupts::are_enabled();
        interrupts::disable();
        let me = cpu_index();
        run.cpu.store(me, Ordering::SeqCst);
        run.entries.fetch_add(1, Ordering::SeqCst);
        if run.kick.swap(false, Ordering::SeqCst) {
            run.cpu.store(NOT_RUNNING, Ordering::SeqCst);
            if irq_on {
                interrupts::enable();
            }
            return Ok(Exit::Kicked);
        }
        let Some(cpu) = CPUS.get(me as usize) else {
            run.cpu.store(NOT_RUNNING, Ordering::SeqCst);
            if irq_on {
                interrupts::enable();
            }
            return Err(Status::Internal);
        };
        if let Err(status) = prepare_this_cpu(cpu) {
            run.cpu.store(NOT_RUNNING, Ordering::SeqCst);
            if irq_on {
                interrupts::enable();
            }
            return Err(status);
        }
        self.assign_asid(me, cpu);
        // Nothing is cached across entries: every field is "dirty".
        self.vmcb.write32(vmcb::CLEAN_BITS, 0);
        let xsave = super::cpu::features().xsave;
        let host_xcr0 = if xsave { xcr0_read() } else { 0 };
        // SAFETY: interrupts are off, so this thread stays on this CPU and
        // the scheduler does not touch the FPU until they are back on; both
        // areas are this VCPU's and hold states saved by `save` (or reset).
        unsafe {
            self.host_fpu.save();
            self.guest_fpu.restore();
        }
        if xsave && self.guest_xcr0 != host_xcr0 {
            xcr0_write(self.guest_xcr0);
        }
        let host_vmcb = cpu.host_vmcb.load(Ordering::Relaxed);
        let guest_vmcb = self.vmcb.phys();
        let injected = self.vmcb.read64(vmcb::EVENT_INJ) & EVENT_VALID != 0;
        let rip_at_entry = self.vmcb.read64(vmcb::RIP);
        // SAFETY: SVM is on for this CPU (prepare_this_cpu) with a host save
        // area; the VMCB is a complete, consistent control block of ours and
        // its nested tables, IOPM and MSRPM are live. GIF is cleared around
        // the run so no interrupt or NMI is taken while GS and the other
        // VMLOAD state belong to the guest; STI makes host interrupts exit
        // the guest (they stay pending until STGI and the final STI).
        unsafe {
            core::arch::asm!("clgi", "sti", options(nomem, nostack));
            svm_run(&mut self.gprs, guest_vmcb, host_vmcb);
            core::arch::asm!("cli", "stgi", options(nomem, nostack));
        }
        if xsave {
            // Also catches an XCR0 the guest set without an XSETBV exit.
            let current = xcr0_read();
            if current != host_xcr0 {
                self.guest_xcr0 = current;
                xcr0_write(host_xcr0);
            }
        }
        // SAFETY: as above.
        unsafe {
            self.guest_fpu.save();
            self.host_fpu.restore();
        }
        run.cpu.store(NOT_RUNNING, Ordering::SeqCst);
        self.vmcb.write8(vmcb::TLB_CONTROL, 0);
        // An event whose delivery the exit cut short goes in again first,
        // except the guest's own INT3, INTO or INT n: RIP is still at the
        // instruction, which runs again (re-injected, it would push its own
        // address as the return address: there is no NRIPS here). An event
        // we injected whose delivery never got anywhere (RIP unchanged) is
        // ours and goes in again whatever its type.
        let interrupted = self.vmcb.read64(vmcb::EXIT_INT_INFO);
        let ours = injected && self.vmcb.read64(vmcb::RIP) == rip_at_entry;
        let guest_soft = match interrupted & EVENT_TYPE_MASK {
            EVENT_TYPE_SOFT => true,
            EVENT_TYPE_EXCEPTION => matches!(interrupted & 0xff, 3 | 4),
            _ => false,
        };
        let reinject = if interrupted & EVENT_VALID != 0 && (ours || !guest_soft) { interrupted } else { 0 };
        self.vmcb.write64(vmcb::EVENT_INJ, reinject);
        let exit = self.decode_exit();
        if irq_on {
            interrupts::enable();
        }
        Ok(exit)
    }

    fn gprs(&self) -> Gprs {
        let g = &self.gprs;
        [
            self.vmcb.read64(vmcb::RAX),
            g.rcx,
            g.rdx,
            g.rbx,
            self.vmcb.read64(vmcb::RSP),
            g.rbp,
            g.rsi,
            g.rdi,
            g.r8,
            g.r9,
            g.r10,
            g.r11,
            g.r12,
            g.r13,
            g.r14,
            g.r15,
        ]
    }

    fn set_gprs(&mut self, r: &Gprs) {
        self.vmcb.write64(vmcb::RAX, r[0]);
        self.vmcb.write64(vmcb::RSP, r[4]);
        self.gprs = GuestGprs {
            rcx: r[1],
            rdx: r[2],
            rbx: r[3],
            rbp: r[5],
            rsi: r[6],
            rdi: r[7],
            r8: r[8],
            r9: r[9],
            r10: r[10],
            r11: r[11],
            r12: r[12],
            r13: r[13],
            r14: r[14],
            r15: r[15],
        };
    }

    fn rip(&self) -> u64 {
        self.vmcb.read64(vmcb::RIP)
    }

    fn set_rip(&mut self, rip: u64) {
        self.vmcb.write64(vmcb::RIP, rip);
        // Moving past an instruction ends any interrupt shadow it began.
        self.vmcb.write64(vmcb::INTERRUPT_SHADOW, 0);
    }

    fn rflags(&self) -> u64 {
        self.vmcb.read64(vmcb::RFLAGS)
    }

    fn set_rflags(&mut self, rflags: u64) {
        self.vmcb.write64(vmcb::RFLAGS, rflags);
    }

    fn paging_regs(&self) -> PagingRegs {
        PagingRegs {
            cr0: self.vmcb.read64(vmcb::CR0),
            cr3: self.vmcb.read64(vmcb::CR3),
            cr4: self.vmcb.read64(vmcb::CR4),
            efer: self.vmcb.read64(vmcb::EFER) & !EFER_SVME,
        }
    }

    fn code_segment(&self) -> (u64, Mode) {
        let attrib = self.vmcb.read16(vmcb::CS + vmcb::SEG_ATTRIB);
        let base = self.vmcb.read64(vmcb::CS + vmcb::SEG_BASE);
        let regs = self.paging_regs();
        let mode = Mode::from_state(
            regs.cr0 & 1 != 0,
            regs.efer & (1 << 10) != 0,
            attrib & (1 << 9) != 0,
            attrib & (1 << 10) != 0,
        );
        (base, mode)
    }

    fn system(&self) -> VcpuSystem {
        let attrib = self.vmcb.read16(vmcb::CS + vmcb::SEG_ATTRIB);
        VcpuSystem {
            rip: self.rip(),
            rflags: self.rflags(),
            cr0: self.vmcb.read64(vmcb::CR0),
            cr2: self.vmcb.read64(vmcb::CR2),
            cr3: self.vmcb.read64(vmcb::CR3),
            cr4: self.vmcb.read64(vmcb::CR4),
            efer: self.vmcb.read64(vmcb::EFER) & !EFER_SVME,
            cs_base: self.vmcb.read64(vmcb::CS + vmcb::SEG_BASE),
            cs_limit: self.vmcb.read32(vmcb::CS + vmcb::SEG_LIMIT),
            cs_selector: self.vmcb.read16(vmcb::CS + vmcb::SEG_SELECTOR),
            // The VMCB packs AVL, L, D/B and G into bits 8-11; the
            // descriptor layout has them in 12-15.
            cs_attrib: (attrib & 0xff) | ((attrib & 0xf00) << 4),
            cpl: self.vmcb.read8(vmcb::CPL),
            interrupt_shadow: (self.vmcb.read64(vmcb::INTERRUPT_SHADOW) & 1) as u8,
            reserved: [0; 6],
        }
    }

    fn set_cr3(&mut self, cr3: u64) {
        self.vmcb.write64(vmcb::CR3, cr3);
        // A fresh ASID at the next entry: nothing cached under the old CR3
        // survives, without flushing other guests' translations.
        self.asid_cpu = NOT_RUNNING;
    }

    fn interruptible(&self) -> bool {
        self.rflags() & RFLAGS_IF != 0 && self.vmcb.read64(vmcb::INTERRUPT_SHADOW) & 1 == 0
    }

    fn event_pending(&self) -> bool {
        self.vmcb.read64(vmcb::EVENT_INJ) & EVENT_VALID != 0
    }

    fn inject(&mut self, event: Event) {
        let value = match event {
            Event::Nmi => EVENT_VALID | EVENT_TYPE_NMI | 2,
            Event::External(vector) => EVENT_VALID | EVENT_TYPE_INTR | u64::from(vector),
            Event::Software(vector) => EVENT_VALID | EVENT_TYPE_SOFT | u64::from(vector),
            Event::Exception { vector, error_code: None } => EVENT_VALID | EVENT_TYPE_EXCEPTION | u64::from(vector),
            Event::Exception { vector, error_code: Some(code) } => {
                EVENT_VALID | EVENT_TYPE_EXCEPTION | EVENT_ERROR_VALID | u64::from(vector) | (u64::from(code) << 32)
            }
        };
        self.vmcb.write64(vmcb::EVENT_INJ, value);
    }

    fn set_exception_intercepts(&mut self, vectors: u32) {
        self.vmcb.write32(vmcb::INTERCEPT_EXCEPTIONS, vectors | INTERCEPT_MC);
        // QEMU raises INT3 and INTO as software interrupts, checked against
        // the INTn intercept, not #BP's or #OF's.
        let misc1 = self.vmcb.read32(vmcb::INTERCEPT_MISC1) & !MISC1_INTN;
        let soft = vectors & ((1 << 3) | (1 << 4)) != 0;
        self.vmcb.write32(vmcb::INTERCEPT_MISC1, if soft { misc1 | MISC1_INTN } else { misc1 });
    }

    fn set_cr2(&mut self, cr2: u64) {
        self.vmcb.write64(vmcb::CR2, cr2);
    }

    fn set_tpr(&mut self, tpr: u8) {
        let v_intr = self.vmcb.read64(vmcb::V_INTR) & !V_TPR;
        self.vmcb.write64(vmcb::V_INTR, v_intr | (u64::from(tpr) & V_TPR));
    }

    fn set_interrupt_window(&mut self, on: bool) {
        let v_intr = self.vmcb.read64(vmcb::V_INTR) & !(V_IRQ | V_IGN_TPR | (0xff << 32));
        let misc1 = self.vmcb.read32(vmcb::INTERCEPT_MISC1) & !MISC1_VINTR;
        if on {
            self.vmcb.write64(vmcb::V_INTR, v_intr | V_IRQ | V_IGN_TPR);
            self.vmcb.write32(vmcb::INTERCEPT_MISC1, misc1 | MISC1_VINTR);
        } else {
            self.vmcb.write64(vmcb::V_INTR, v_intr);
            self.vmcb.write32(vmcb::INTERCEPT_MISC1, misc1);
        }
    }

    fn read_msr(&self, msr: u32) -> Option<u64> {
        Some(match msr {
            0x10 => super::cpu::rdtsc().wrapping_add(self.vmcb.read64(vmcb::TSC_OFFSET)),
            MSR_EFER => self.vmcb.read64(vmcb::EFER) & !EFER_SVME,
            _ => self.vmcb.read64(save_area_msr(msr)?),
        })
    }

    fn write_msr(&mut self, msr: u32, value: u64) -> Option<Result<(), ()>> {
        match msr {
            0x10 => {
                self.vmcb.write64(vmcb::TSC_OFFSET, value.wrapping_sub(super::cpu::rdtsc()));
                Some(Ok(()))
            }
            MSR_EFER => {
                // SCE, LME, LMA, NXE; LMA itself is the CPU's to change, and
                // LME cannot change while paging is on.
                const ALLOWED: u64 = 1 | (1 << 8) | (1 << 10) | (1 << 11);
                let old = self.vmcb.read64(vmcb::EFER);
                let paging = self.vmcb.read64(vmcb::CR0) & (1 << 31) != 0;
                if value & !ALLOWED != 0 || (paging && (value ^ old) & (1 << 8) != 0) {
                    return Some(Err(()));
                }
                let new = (value & (1 | (1 << 8) | (1 << 11))) | (old & (1 << 10)) | EFER_SVME;
                self.vmcb.write64(vmcb::EFER, new);
                Some(Ok(()))
            }
            0x277 => {
                if value.to_le_bytes().iter().any(|&t| !matches!(t, 0 | 1 | 4 | 5 | 6 | 7)) {
                    return Some(Err(()));
                }
                self.vmcb.write64(vmcb::G_PAT, value);
                Some(Ok(()))
            }
            _ => {
                let offset = save_area_msr(msr)?;
                let canonical = matches!(msr, 0xc000_0082 | 0xc000_0083 | 0xc000_0100..=0xc000_0102 | 0x175 | 0x176);
                if canonical && !is_canonical(value) {
                    return Some(Err(()));
                }
                let value = if msr == 0xc000_0084 || msr == 0x174 { value & 0xffff_ffff } else { value };
                self.vmcb.write64(offset, value);
                Some(Ok(()))
            }
        }
    }

    fn set_xcr0(&mut self, value: u64) {
        self.guest_xcr0 = value;
    }
}

fn is_canonical(addr: u64) -> bool {
    let top = (addr as i64) >> 47;
    top == 0 || top == -1
}

/// Where an MSR kept in the VMCB's save area lives.
fn save_area_msr(msr: u32) -> Option<usize> {
    Some(match msr {
        0x174 => vmcb::SYSENTER_CS,
        0x175 => vmcb::SYSENTER_ESP,
        0x176 => vmcb::SYSENTER_EIP,
        0x277 => vmcb::G_PAT,
        0xc000_0081 => vmcb::STAR,
        0xc000_0082 => vmcb::LSTAR,
        0xc000_0083 => vmcb::CSTAR,
        0xc000_0084 => vmcb::SFMASK,
        0xc000_0100 => vmcb::FS + vmcb::SEG_BASE,
        0xc000_0101 => vmcb::GS + vmcb::SEG_BASE,
        0xc000_0102 => vmcb::KERNEL_GS_BASE,
        _ => return None,
    })
}
