//! IOAPICs: route global system interrupts (GSIs) from devices to CPUs.
//!
//! At boot every pin of every IOAPIC is masked; NMI sources from the MADT
//! are wired to the boot CPU. Drivers then call [`route_irq`] (or
//! [`route_isa_irq`] for legacy ISA numbers, which applies the MADT's
//! interrupt source overrides).

use super::apic::{self, SELF_TEST_VECTOR};
use super::port::outb;
use super::smp;
use super::trap::{self, TrapFrame};
use crate::acpi::{IsaOverride, Platform};
use crate::sync::IrqSpinlock;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION_BASE: u32 = 0x10;

const DELIVERY_NMI: u64 = 0b100 << 8;
const ACTIVE_LOW: u64 = 1 << 13;
const LEVEL_TRIGGERED: u64 = 1 << 15;
const MASKED: u64 = 1 << 16;

struct IoApic {
    /// Virtual address of the register window.
    base: u64,
    gsi_base: u32,
    pins: u32,
}

impl IoApic {
    fn read(&self, register: u32) -> u32 {
        // SAFETY: `base` maps this IOAPIC's registers uncached; the
        // select/window pair is only used under `IOAPICS`'s lock.
        unsafe {
            ((self.base + IOREGSEL) as *mut u32).write_volatile(register);
            ((self.base + IOWIN) as *const u32).read_volatile()
        }
    }

    fn write(&self, register: u32, value: u32) {
        // SAFETY: as for `read`.
        unsafe {
            ((self.base + IOREGSEL) as *mut u32).write_volatile(register);
            ((self.base + IOWIN) as *mut u32).write_volatile(value);
        }
    }

    /// Writes a redirection entry, high half (destination) first so the
    /// entry is never live with a stale destination.
    fn set_redirection(&self, pin: u32, entry: u64) {
        self.write(REG_REDIRECTION_BASE + 2 * pin + 1, (entry >> 32) as u32);
        self.write(REG_REDIRECTION_BASE + 2 * pin, entry as u32);
    }

    fn covers(&self, gsi: u32) -> bool {
        gsi >= self.gsi_base && gsi - self.gsi_base < self.pins
    }
}

/// Every IOAPIC, behind one lock (routing is rare).
static IOAPICS: IrqSpinlock<Vec<IoApic>> = IrqSpinlock::new(Vec::new());
static OVERRIDES: spin::Once<Vec<IsaOverride>> = spin::Once::new();

/// Why an interrupt could not be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// No IOAPIC has this GSI.
    NoSuchGsi,
    /// The vector is outside [`super::apic::DEVICE_VECTORS`].
    BadVector,
    /// No online CPU has this index.
    NoSuchCpu,
    /// The CPU's APIC id does not fit the IOAPIC's 8-bit destination.
    DestinationTooWide,
}

/// Maps every IOAPIC, masks all pins and wires the MADT's NMI sources.
pub fn init(platform: &Platform) {
    OVERRIDES.call_once(|| platform.isa_overrides.clone());
    let mut ioapics = IOAPICS.lock();
    for info in &platform.io_apics {
        let base = match crate::mm::paging::map_mmio(info.phys, 0x20) {
            Ok(base) => base,
            Err(e) => panic!("ioapic: cannot map the IOAPIC at {:#x}: {e:?}", info.phys),
        };
        let mut ioapic = IoApic { base, gsi_base: info.gsi_base, pins: 0 };
        ioapic.pins = ((ioapic.read(REG_VERSION) >> 16) & 0xff) + 1;
        for pin in 0..ioapic.pins {
            ioapic.set_redirection(pin, MASKED);
        }
        log::info!(
            "ioapic: id {} at {:#x}, GSIs {}..{}, all masked",
            info.id,
            info.phys,
            ioapic.gsi_base,
            ioapic.gsi_base + ioapic.pins
        );
        ioapics.push(ioapic);
    }
    let boot_apic_id = u64::from(super::percpu::current().apic_id.load(Ordering::Relaxed));
    for nmi in &platform.nmi_sources {
        let Some(ioapic) = ioapics.iter().find(|io| io.covers(nmi.gsi)) else { continue };
        let mut entry = DELIVERY_NMI | (boot_apic_id << 56);
        if nmi.flags.active_low(false) {
            entry |= ACTIVE_LOW;
        }
        ioapic.set_redirection(nmi.gsi - ioapic.gsi_base, entry);
        log::debug!("ioapic: GSI {} wired to NMI", nmi.gsi);
    }
}

/// The GSI an ISA IRQ arrives on (the MADT may override the identity mapping).
pub fn isa_irq_to_gsi(irq: u8) -> u32 {
    OVERRIDES.get().and_then(|overrides| overrides.iter().find(|o| o.isa_irq == irq)).map_or(u32::from(irq), |o| o.gsi)
}

/// Polarity and trigger of `gsi`: an override's flags (ISA defaults:
/// active-high, edge) for ISA interrupts, else PCI's active-low, level.
fn gsi_polarity_and_trigger(gsi: u32) -> (bool, bool) {
    let isa_override = OVERRIDES.get().and_then(|overrides| overrides.iter().find(|o| o.gsi == gsi));
    match isa_override {
        Some(o) => (o.flags.active_low(false), o.flags.level_triggered(false)),
        None if gsi < 16 => (false, false),
        None => (true, true),
    }
}

/// Delivers `gsi` as `vector` to the CPU with dense index `cpu`, unmasked.
/// The vector must be one of [`apic::DEVICE_VECTORS`] and have a handler.
pub fn route_irq(gsi: u32, vector: u8, cpu: u32) -> Result<(), RouteError> {
    if !apic::DEVICE_VECTORS.contains(&vector) {
        return Err(RouteError::BadVector);
    }
    let apic_id = smp::cpu(cpu).ok_or(RouteError::NoSuchCpu)?.apic_id.load(Ordering::Relaxed);
    let apic_id = u8::try_from(apic_id).map_err(|_| RouteError::DestinationTooWide)?;
    let (active_low, level) = gsi_polarity_and_trigger(gsi);
    let mut entry = u64::from(vector) | (u64::from(apic_id) << 56);
    if active_low {
        entry |= ACTIVE_LOW;
    }
    if level {
        entry |= LEVEL_TRIGGERED;
    }
    let ioapics = IOAPICS.lock();
    let ioapic = ioapics.iter().find(|io| io.covers(gsi)).ok_or(RouteError::NoSuchGsi)?;
    ioapic.set_redirection(gsi - ioapic.gsi_base, entry);
    Ok(())
}

/// Routes a legacy ISA IRQ (applying the MADT's overrides).
pub fn route_isa_irq(irq: u8, vector: u8, cpu: u32) -> Result<(), RouteError> {
    route_irq(isa_irq_to_gsi(irq), vector, cpu)
}

/// Masks `gsi`.
pub fn mask_irq(gsi: u32) -> Result<(), RouteError> {
    let ioapics = IOAPICS.lock();
    let ioapic = ioapics.iter().find(|io| io.covers(gsi)).ok_or(RouteError::NoSuchGsi)?;
    ioapic.set_redirection(gsi - ioapic.gsi_base, MASKED);
    Ok(())
}

/// When the self-test's interrupt arrived (ns since boot), 0 if not yet.
static SELF_TEST_ARRIVAL: AtomicU64 = AtomicU64::new(0);

fn on_self_test_irq(_frame: &mut TrapFrame) {
    SELF_TEST_ARRIVAL.store(crate::time::now_ns().max(1), Ordering::Release);
    apic::eoi();
}

/// Checks routing end to end on the boot CPU: ISA IRQ 0 (the PIT, which
/// the MADT usually moves to GSI 2) is routed here, the PIT is set to fire
/// once about 1 ms later, and the interrupt must arrive. The pin is masked
/// again afterwards; the PIT stays idle (ending any firmware periodic tick).
pub fn boot_self_test() {
    const PIT_HZ: u64 = 1_193_182;
    if !trap::register_irq(SELF_TEST_VECTOR, on_self_test_irq) {
        log::warn!("ioapic: self-test vector taken; skipping the routing test");
        return;
    }
    let gsi = isa_irq_to_gsi(0);
    if let Err(e) = route_isa_irq(0, SELF_TEST_VECTOR, super::percpu::cpu_index()) {
        log::warn!("ioapic: cannot route ISA IRQ 0 (GSI {gsi}): {e:?}");
        return;
    }
    let count = (PIT_HZ / 1000) as u16;
    let armed_at = crate::time::now_ns();
    // SAFETY: the 8254 PIT's ports belong to no other driver; this is its
    // standard programming sequence (channel 0, low then high byte, mode 0:
    // one interrupt on terminal count).
    unsafe {
        outb(0x43, 0b0011_0000);
        outb(0x40, count as u8);
        outb(0x40, (count >> 8) as u8);
    }
    x86_64::instructions::interrupts::enable();
    while SELF_TEST_ARRIVAL.load(Ordering::Acquire) == 0 && crate::time::now_ns() < armed_at + 100_000_000 {
        core::hint::spin_loop();
    }
    x86_64::instructions::interrupts::disable();
    let _ = mask_irq(gsi);
    match SELF_TEST_ARRIVAL.load(Ordering::Acquire) {
        0 => log::warn!("ioapic: ISA IRQ 0 (PIT) on GSI {gsi} did not arrive within 100 ms"),
        at => log::info!(
            "ioapic: ISA IRQ 0 (PIT) arrived through GSI {gsi} after {} us",
            at.saturating_sub(armed_at) / 1000
        ),
    }
}
