//! The local APIC: each CPU's interrupt controller, in x2APIC mode (MSRs)
//! when the CPU supports it, else in xAPIC mode (uncached MMIO at the
//! address the MADT gives).
//!
//! Every CPU runs [`init_this_cpu`]: it enables its APIC, masks the local
//! interrupt lines the kernel does not use, wires LINT NMIs as the MADT says,
//! and installs the spurious and error vectors. Destinations are always
//! physical APIC ids.

use super::trap::{self, TrapFrame};
use crate::acpi::Platform;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use x86_64::registers::model_specific::Msr;

/// Legacy 8259 vectors (0x20..0x30) stay reserved so a spurious PIC
/// interrupt can never be mistaken for a device vector.
pub const PIC_VECTOR_BASE: u8 = 0x20;
/// The range callers pick device vectors from when routing IOAPIC pins.
pub const DEVICE_VECTORS: core::ops::Range<u8> = 0x30..0xf0;
/// The last device vector, kept by the IOAPIC's boot self-test.
pub const SELF_TEST_VECTOR: u8 = 0xef;
/// The local timer.
pub const TIMER_VECTOR: u8 = 0xf0;
/// Cross-CPU function calls.
pub const CALL_VECTOR: u8 = 0xf1;
/// Reschedule requests: the target CPU re-checks its run queue.
pub const RESCHEDULE_VECTOR: u8 = 0xf2;
/// APIC internal errors (illegal vector, send/receive errors).
pub const ERROR_VECTOR: u8 = 0xfe;
/// Delivered, without an in-service bit, when an interrupt vanishes between
/// being signalled and acknowledged. Its low four bits must be set on old APICs.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Register offsets in the xAPIC page; the x2APIC MSR is `0x800 + offset / 16`.
mod reg {
    pub const ID: u32 = 0x20;
    pub const VERSION: u32 = 0x30;
    pub const TPR: u32 = 0x80;
    pub const EOI: u32 = 0xb0;
    pub const SVR: u32 = 0xf0;
    pub const ISR: u32 = 0x100;
    pub const ESR: u32 = 0x280;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_THERMAL: u32 = 0x330;
    pub const LVT_PERF: u32 = 0x340;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_LINT1: u32 = 0x360;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3e0;
}
pub use reg::{LVT_TIMER, TIMER_CURRENT, TIMER_DIVIDE, TIMER_INITIAL};

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const X2APIC_MSR_BASE: u32 = 0x800;
const X2APIC_ICR: u32 = 0x830;

pub const LVT_MASKED: u32 = 1 << 16;
const LVT_DELIVERY_NMI: u32 = 0b100 << 8;
const LVT_ACTIVE_LOW: u32 = 1 << 13;
const SVR_ENABLE: u32 = 1 << 8;
const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_ALL_BUT_SELF: u32 = 0b11 << 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Off = 0,
    XApic = 1,
    X2Apic = 2,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Off as u8);
/// Virtual address of the xAPIC register page (xAPIC mode only).
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0);

fn mode() -> Mode {
    match MODE.load(Ordering::Acquire) {
        1 => Mode::XApic,
        2 => Mode::X2Apic,
        _ => Mode::Off,
    }
}

/// Whether the local APICs are in use (after [`init_boot_cpu`]).
pub fn is_ready() -> bool {
    mode() != Mode::Off
}

pub fn is_x2apic() -> bool {
    mode() == Mode::X2Apic
}

fn read(register: u32) -> u32 {
    match mode() {
        // SAFETY: x2APIC mode is on, so the APIC MSR range exists; reading
        // a register has no side effects.
        Mode::X2Apic => unsafe { Msr::new(X2APIC_MSR_BASE + register / 16).read() as u32 },
        // SAFETY: the register page is mapped uncached at XAPIC_BASE, and
        // every register is a naturally aligned 32-bit word.
        Mode::XApic => unsafe {
            ((XAPIC_BASE.load(Ordering::Relaxed) + u64::from(register)) as *const u32).read_volatile()
        },
        Mode::Off => 0,
    }
}

fn write(register: u32, value: u32) {
    match mode() {
        // SAFETY: as for `read`; the kernel owns this CPU's APIC.
        Mode::X2Apic => unsafe { Msr::new(X2APIC_MSR_BASE + register / 16).write(u64::from(value)) },
        // SAFETY: as for `read`.
        Mode::XApic => unsafe {
            ((XAPIC_BASE.load(Ordering::Relaxed) + u64::from(register)) as *mut u32).write_volatile(value)
        },
        Mode::Off => {}
    }
}

/// Reads a local APIC register (for the timer module).
pub fn read_register(register: u32) -> u32 {
    read(register)
}

/// Writes a local APIC register (for the timer module).
pub fn write_register(register: u32, value: u32) {
    write(register, value)
}

/// Picks the APIC mode for every CPU, maps the xAPIC page if needed, installs
/// the spurious and error handlers, and sets up the boot CPU's APIC.
pub fn init_boot_cpu(platform: &Platform) {
    let x2apic = super::cpu::features().x2apic;
    if x2apic {
        MODE.store(Mode::X2Apic as u8, Ordering::Release);
    } else {
        let virt = match crate::mm::paging::map_mmio(platform.local_apic_phys, 4096) {
            Ok(virt) => virt,
            Err(e) => panic!("apic: cannot map the local APIC at {:#x}: {e:?}", platform.local_apic_phys),
        };
        XAPIC_BASE.store(virt, Ordering::Relaxed);
        MODE.store(Mode::XApic as u8, Ordering::Release);
    }
    let installed = trap::register_irq(SPURIOUS_VECTOR, on_spurious) && trap::register_irq(ERROR_VECTOR, on_error);
    if !installed {
        panic!("apic: spurious or error vector already taken");
    }
    let percpu = super::percpu::current();
    init_this_cpu(platform);
    log::info!(
        "apic: {} mode, boot CPU APIC id {}, version {:#x}",
        if x2apic { "x2APIC" } else { "xAPIC" },
        percpu.apic_id.load(Ordering::Relaxed),
        read(reg::VERSION) & 0xff
    );
    super::smp::register_online(percpu);
}

/// Enables and configures the calling CPU's local APIC and records its id
/// in the CPU's per-CPU block.
pub fn init_this_cpu(platform: &Platform) {
    let mut base = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU. Enabling the
    // APIC (and then x2APIC mode, in that order: going straight from
    // disabled to x2APIC is invalid) changes only how this CPU's APIC is
    // reached, which this module owns.
    unsafe {
        let value = base.read();
        base.write(value | APIC_BASE_ENABLE);
        if is_x2apic() {
            base.write(value | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
        }
    }
    let apic_id = id();
    let percpu = super::percpu::current();
    percpu.apic_id.store(apic_id, Ordering::Relaxed);

    // Accept every priority class.
    write(reg::TPR, 0);
    let max_lvt = (read(reg::VERSION) >> 16) & 0xff;
    write(reg::LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    // Registers beyond the APIC's last LVT fault in x2APIC mode.
    if max_lvt >= 4 {
        write(reg::LVT_PERF, LVT_MASKED);
    }
    if max_lvt >= 5 {
        write(reg::LVT_THERMAL, LVT_MASKED);
    }
    // LINT0 carries the 8259's ExtINT, unused with the PICs masked; LINT1
    // is normally NMI, and the MADT says which lines are.
    let mut lint = [LVT_MASKED, LVT_MASKED];
    let uid = platform.cpus.iter().find(|c| c.apic_id == apic_id).map(|c| c.acpi_uid);
    for nmi in platform.local_nmis.iter().filter(|n| n.acpi_uid.is_none() || n.acpi_uid == uid) {
        if let Some(slot) = lint.get_mut(usize::from(nmi.lint)) {
            // NMI delivery is always edge-triggered; only polarity applies.
            *slot = LVT_DELIVERY_NMI | if nmi.flags.active_low(false) { LVT_ACTIVE_LOW } else { 0 };
        }
    }
    write(reg::LVT_LINT0, lint[0]);
    write(reg::LVT_LINT1, lint[1]);
    write(reg::LVT_ERROR, u32::from(ERROR_VECTOR));
    // The error status register latches on write; two writes clear stale state.
    write(reg::ESR, 0);
    write(reg::ESR, 0);
    write(reg::SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    eoi();
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    match mode() {
        Mode::X2Apic => read(reg::ID),
        _ => read(reg::ID) >> 24,
    }
}

/// Signals the end of the interrupt being handled.
pub fn eoi() {
    write(reg::EOI, 0);
}

/// Sends EOI if `vector` is in service on this CPU's APIC (it is not for
/// the spurious vector, 8259 interrupts, or exceptions).
pub fn eoi_if_in_service(vector: u64) {
    let Ok(vector) = u32::try_from(vector) else { return };
    if !is_ready() || vector > 0xff || vector == u32::from(SPURIOUS_VECTOR) {
        return;
    }
    if read(reg::ISR + (vector / 32) * 0x10) & (1 << (vector % 32)) != 0 {
        eoi();
    }
}

/// Where an IPI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiTarget {
    /// One CPU, by APIC id.
    Apic(u32),
    /// Every CPU but the sender.
    AllButSelf,
}

/// What an IPI delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiKind {
    Fixed(u8),
    Nmi,
    /// INIT (assert): resets the target into wait-for-SIPI.
    Init,
    /// Start-up: the target starts in real mode at `page * 4096`.
    Startup(u8),
}

/// Sends an inter-processor interrupt.
pub fn send_ipi(target: IpiTarget, kind: IpiKind) {
    let low = match kind {
        IpiKind::Fixed(vector) => u32::from(vector),
        IpiKind::Nmi => 0b100 << 8,
        IpiKind::Init => 0b101 << 8,
        IpiKind::Startup(page) => (0b110 << 8) | u32::from(page),
    } | ICR_LEVEL_ASSERT
        | match target {
            IpiTarget::Apic(_) => 0,
            IpiTarget::AllButSelf => ICR_ALL_BUT_SELF,
        };
    let destination = match target {
        IpiTarget::Apic(id) => id,
        IpiTarget::AllButSelf => 0,
    };
    match mode() {
        Mode::X2Apic => {
            // WRMSR to the x2APIC is not serialising: fence so memory writes
            // made before the IPI are visible to its handler.
            // SAFETY: fences have no effect besides ordering.
            unsafe { core::arch::asm!("mfence", "lfence", options(nostack, preserves_flags)) };
            let mut icr = Msr::new(X2APIC_ICR);
            // SAFETY: the ICR is this CPU's; the command is well formed.
            unsafe { icr.write((u64::from(destination) << 32) | u64::from(low)) };
        }
        Mode::XApic => {
            // The two ICR halves must not be interleaved with another IPI
            // sent from an interrupt handler on this CPU.
            x86_64::instructions::interrupts::without_interrupts(|| {
                wait_icr_idle();
                write(reg::ICR_HIGH, destination << 24);
                write(reg::ICR_LOW, low);
                wait_icr_idle();
            });
        }
        Mode::Off => {}
    }
}

/// Waits (bounded) until the xAPIC has sent the previous IPI.
fn wait_icr_idle() {
    for _ in 0..1_000_000 {
        if read(reg::ICR_LOW) & ICR_DELIVERY_PENDING == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

fn on_spurious(_frame: &mut TrapFrame) {
    // No EOI: a spurious interrupt sets no in-service bit.
}

fn on_error(_frame: &mut TrapFrame) {
    write(reg::ESR, 0);
    let status = read(reg::ESR);
    eoi();
    log::warn!("apic: error interrupt, status {status:#x}");
}
