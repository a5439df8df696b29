//! ACPI: what the firmware tables say about the machine (CPUs, interrupt
//! controllers, timers), and ACPI power control (soft-off and reset).
//!
//! The tables are read once, at boot, through the `acpi` crate (without its
//! allocator features, which need nightly): the MADT, FADT, HPET table and
//! the DSDT's `_S5_` object. Everything later bring-up needs is copied into a
//! [`Platform`], so nothing maps or parses tables after boot. Tables are
//! mapped through the direct map, write-back and read-only, and stay mapped.
//!
//! This is a low-level module: it maps physical memory and touches the
//! power-management registers, so it carries argued `unsafe` like `arch/`.

use crate::arch::x86::{cpu, port, timer};
use crate::mm::paging;
use acpi::address::{AccessSize, AddressSpace, GenericAddress};
use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, HpetInfo, PhysicalMapping};
use alloc::vec::Vec;
use core::ptr::NonNull;
use kcore::acpi_s5::{find_s5, SleepTypes};

/// A CPU the MADT lists as enabled or as online-capable.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    pub apic_id: u32,
    /// The ACPI processor UID, which local-NMI entries refer to.
    pub acpi_uid: u32,
    /// Present and usable now; otherwise online-capable (may be hot-added
    /// later), and not started at boot.
    pub enabled: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct IoApic {
    pub id: u8,
    pub phys: u64,
    /// The first global system interrupt (GSI) this IOAPIC's pin 0 receives.
    pub gsi_base: u32,
}

/// Polarity and trigger mode as the MADT encodes them (MPS INTI flags):
/// each is either stated or "conforms to the bus", which the caller resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntiFlags(pub u16);

impl IntiFlags {
    /// Whether the line is active-low, given the bus default.
    pub fn active_low(self, bus_default: bool) -> bool {
        match self.0 & 0b11 {
            0b01 => false,
            0b11 => true,
            _ => bus_default,
        }
    }

    /// Whether the line is level-triggered, given the bus default.
    pub fn level_triggered(self, bus_default: bool) -> bool {
        match (self.0 >> 2) & 0b11 {
            0b01 => false,
            0b11 => true,
            _ => bus_default,
        }
    }
}

/// An ISA IRQ that arrives on a different GSI or with non-ISA polarity/trigger.
#[derive(Clone, Copy, Debug)]
pub struct IsaOverride {
    pub isa_irq: u8,
    pub gsi: u32,
    pub flags: IntiFlags,
}

/// A GSI wired to NMI.
#[derive(Clone, Copy, Debug)]
pub struct NmiSource {
    pub gsi: u32,
    pub flags: IntiFlags,
}

/// A local APIC LINT pin wired to NMI.
#[derive(Clone, Copy, Debug)]
pub struct LocalNmi {
    /// The CPU's ACPI processor UID, or `None` for every CPU.
    pub acpi_uid: Option<u32>,
    /// 0 for LINT0, 1 for LINT1.
    pub lint: u8,
    pub flags: IntiFlags,
}

/// A register named by a Generic Address Structure, resolved at boot so
/// using it later needs neither table parsing nor new mappings.
#[derive(Clone, Copy, Debug)]
pub enum Register {
    Port { port: u16, bits: u8 },
    Memory { virt: u64, bits: u8 },
}

impl Register {
    /// Resolves `gas`; `None` for address spaces the kernel does not drive.
    fn from_gas(gas: &GenericAddress, default_bits: u8) -> Option<Register> {
        let bits = match gas.access_size {
            AccessSize::ByteAccess => 8,
            AccessSize::WordAccess => 16,
            AccessSize::DWordAccess => 32,
            AccessSize::QWordAccess => 64,
            AccessSize::Undefined => match gas.bit_width {
                1..=8 => 8,
                9..=16 => 16,
                17..=32 => 32,
                33..=64 => 64,
                _ => default_bits,
            },
        };
        match gas.address_space {
            AddressSpace::SystemIo if gas.address != 0 => {
                // Port I/O is 32-bit at most, and ports are 16-bit.
                Some(Register::Port { port: u16::try_from(gas.address).ok()?, bits: bits.min(32) })
            }
            AddressSpace::SystemMemory if gas.address != 0 => {
                let virt = paging::map_mmio(gas.address, u64::from(bits / 8)).ok()?;
                Some(Register::Memory { virt, bits })
            }
            _ => None,
        }
    }

    pub fn read(&self) -> u64 {
        // SAFETY: a port is one the FADT names as an ACPI fixed-hardware
        // register, which the kernel owns; a memory register was mapped
        // uncached at boot, and the access has its width and alignment.
        unsafe {
            match *self {
                Register::Port { port, bits: 8 } => u64::from(port::inb(port)),
                Register::Port { port, bits: 16 } => u64::from(port::inw(port)),
                Register::Port { port, .. } => u64::from(port::inl(port)),
                Register::Memory { virt, bits: 8 } => u64::from((virt as *const u8).read_volatile()),
                Register::Memory { virt, bits: 16 } => u64::from((virt as *const u16).read_volatile()),
                Register::Memory { virt, bits: 32 } => u64::from((virt as *const u32).read_volatile()),
                Register::Memory { virt, .. } => (virt as *const u64).read_volatile(),
            }
        }
    }

    pub fn write(&self, value: u64) {
        // SAFETY: as for `read`; writing these registers is what the
        // firmware tables define them for.
        unsafe {
            match *self {
                Register::Port { port, bits: 8 } => port::outb(port, value as u8),
                Register::Port { port, bits: 16 } => port::outw(port, value as u16),
                Register::Port { port, .. } => port::outl(port, value as u32),
                Register::Memory { virt, bits: 8 } => (virt as *mut u8).write_volatile(value as u8),
                Register::Memory { virt, bits: 16 } => (virt as *mut u16).write_volatile(value as u16),
                Register::Memory { virt, bits: 32 } => (virt as *mut u32).write_volatile(value as u32),
                Register::Memory { virt, .. } => (virt as *mut u64).write_volatile(value),
            }
        }
    }
}

/// The ACPI power-management timer: 3.579545 MHz, 24 or 32 bits wide.
#[derive(Clone, Copy, Debug)]
pub struct PmTimer {
    pub register: Register,
    pub bits32: bool,
}

impl PmTimer {
    pub const HZ: u64 = 3_579_545;

    pub fn read(&self) -> u64 {
        self.register.read() & self.mask()
    }

    /// The counter wraps at this mask.
    pub fn mask(&self) -> u64 {
        if self.bits32 {
            0xffff_ffff
        } else {
            0x00ff_ffff
        }
    }
}

/// What soft-off and reset need, resolved from the FADT and DSDT.
#[derive(Clone, Copy, Debug, Default)]
struct Power {
    pm1a_control: Option<Register>,
    pm1b_control: Option<Register>,
    s5: Option<SleepTypes>,
    /// The SMI command port and the value that switches the firmware into
    /// ACPI mode (both 0 when the machine is always in ACPI mode).
    smi_command: u16,
    acpi_enable: u8,
    reset: Option<(Register, u8)>,
}

/// The machine as the ACPI tables describe it.
#[derive(Debug)]
pub struct Platform {
    /// Every enabled or online-capable CPU, the boot CPU included, in MADT order.
    pub cpus: Vec<Cpu>,
    pub local_apic_phys: u64,
    pub io_apics: Vec<IoApic>,
    pub isa_overrides: Vec<IsaOverride>,
    pub nmi_sources: Vec<NmiSource>,
    pub local_nmis: Vec<LocalNmi>,
    /// Whether legacy 8259 PICs are present (and must be masked).
    pub has_legacy_pics: bool,
    pub hpet_phys: Option<u64>,
    pub pm_timer: Option<PmTimer>,
    power: Power,
}

static PLATFORM: spin::Once<Platform> = spin::Once::new();

/// The platform description, once [`init`] has run.
pub fn platform() -> Option<&'static Platform> {
    PLATFORM.get()
}

/// Maps firmware tables for the `acpi` crate.
#[derive(Clone, Copy, Debug)]
struct FirmwareMapper;

impl AcpiHandler for FirmwareMapper {
    /// # Safety
    /// `phys..phys + size` must be firmware memory holding a `T` (the `acpi`
    /// crate only asks for table headers and tables it found through the RSDP).
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        // Map at least a whole `T`: the crate reads fixed-layout structs that
        // may be longer than an old table's stated length.
        let len = size.max(core::mem::size_of::<T>());
        let virt = match paging::map_firmware(phys as u64, len as u64) {
            Ok(virt) => virt,
            Err(e) => panic!("acpi: cannot map firmware memory at {phys:#x}: {e:?}"),
        };
        let Some(ptr) = NonNull::new(virt as *mut T) else { panic!("acpi: null mapping for {phys:#x}") };
        // SAFETY: `ptr` maps `len >= size` bytes at `phys`, read-only, for the
        // kernel's lifetime (mappings are never removed).
        unsafe { PhysicalMapping::new(phys, ptr, size, len, *self) }
    }

    /// Mappings live in the shared direct map and are kept.
    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Finds and parses the tables. Boot-time only; panics if the machine has
/// no usable ACPI (the kernel cannot find its CPUs or interrupt controllers
/// without it).
pub fn init() -> &'static Platform {
    PLATFORM.call_once(|| {
        let tables = find_tables();
        let platform = parse(&tables);
        log_summary(&platform);
        platform
    })
}

fn find_tables() -> AcpiTables<FirmwareMapper> {
    let result = match crate::boot_info().rsdp {
        Some(rsdp) => {
            log::debug!("acpi: RSDP at {rsdp:#x}, from the loader");
            // SAFETY: the loader reported an RSDP at this address.
            unsafe { AcpiTables::from_rsdp(FirmwareMapper, rsdp as usize) }
        }
        None => {
            log::debug!("acpi: no RSDP from the loader; scanning the EBDA and BIOS area");
            // SAFETY: the BIOS areas scanned (the EBDA and 0xe0000..0x100000)
            // are readable on PC-compatible machines; only reads are made.
            unsafe { AcpiTables::search_for_rsdp_bios(FirmwareMapper) }
        }
    };
    match result {
        Ok(tables) => tables,
        Err(e) => {
            panic!("acpi: no usable RSDP/RSDT ({e:?}); the kernel needs ACPI to find CPUs and interrupt controllers")
        }
    }
}

fn parse(tables: &AcpiTables<FirmwareMapper>) -> Platform {
    let mut platform = Platform {
        cpus: Vec::new(),
        local_apic_phys: 0,
        io_apics: Vec::new(),
        isa_overrides: Vec::new(),
        nmi_sources: Vec::new(),
        local_nmis: Vec::new(),
        has_legacy_pics: false,
        hpet_phys: None,
        pm_timer: None,
        power: Power::default(),
    };
    parse_madt(tables, &mut platform);
    match tables.find_table::<Fadt>() {
        Ok(fadt) => {
            platform.pm_timer = match fadt.pm_timer_block() {
                Ok(Some(gas)) => Register::from_gas(&gas, 32)
                    .map(|register| PmTimer { register, bits32: { fadt.flags }.pm_timer_is_32_bit() }),
                _ => None,
            };
            platform.power = parse_power(tables, &fadt);
        }
        Err(e) => log::warn!("acpi: no FADT ({e:?}): no PM timer, power-off or ACPI reset"),
    }
    platform.hpet_phys = match HpetInfo::new(tables) {
        Ok(hpet) => Some(hpet.base_address as u64),
        Err(_) => None,
    };
    platform
}

fn parse_madt(tables: &AcpiTables<FirmwareMapper>, platform: &mut Platform) {
    let madt = match tables.find_table::<Madt>() {
        Ok(madt) => madt,
        Err(e) => panic!("acpi: no MADT ({e:?}); cannot find the CPUs and interrupt controllers"),
    };
    platform.local_apic_phys = u64::from(madt.get().local_apic_address);
    platform.has_legacy_pics = madt.get().supports_8259();
    // Flags of local APIC entries: bit 0 enabled, bit 1 online-capable
    // (may be enabled later; ACPI 6.3+).
    let usable = |flags: u32| flags & 0b11 != 0;
    let add_cpu = |cpus: &mut Vec<Cpu>, apic_id: u32, acpi_uid: u32, flags: u32| {
        // Firmware may list a CPU twice (xAPIC and x2APIC entries).
        if !cpus.iter().any(|c| c.apic_id == apic_id) {
            cpus.push(Cpu { apic_id, acpi_uid, enabled: flags & 1 != 0 });
        }
    };
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) if usable(e.flags) && e.apic_id != 0xff => {
                add_cpu(&mut platform.cpus, u32::from(e.apic_id), u32::from(e.processor_id), e.flags);
            }
            MadtEntry::LocalX2Apic(e) if usable(e.flags) && e.x2apic_id != u32::MAX => {
                add_cpu(&mut platform.cpus, e.x2apic_id, e.processor_uid, e.flags);
            }
            MadtEntry::IoApic(e) => platform.io_apics.push(IoApic {
                id: e.io_apic_id,
                phys: u64::from(e.io_apic_address),
                gsi_base: e.global_system_interrupt_base,
            }),
            MadtEntry::InterruptSourceOverride(e) if e.bus == 0 => platform.isa_overrides.push(IsaOverride {
                isa_irq: e.irq,
                gsi: e.global_system_interrupt,
                flags: IntiFlags(e.flags),
            }),
            MadtEntry::NmiSource(e) => {
                platform.nmi_sources.push(NmiSource { gsi: e.global_system_interrupt, flags: IntiFlags(e.flags) })
            }
            MadtEntry::LocalApicNmi(e) => platform.local_nmis.push(LocalNmi {
                acpi_uid: (e.processor_id != 0xff).then_some(u32::from(e.processor_id)),
                lint: e.nmi_line,
                flags: IntiFlags(e.flags),
            }),
            MadtEntry::X2ApicNmi(e) => platform.local_nmis.push(LocalNmi {
                acpi_uid: (e.processor_uid != u32::MAX).then_some(e.processor_uid),
                lint: e.nmi_line,
                flags: IntiFlags(e.flags),
            }),
            MadtEntry::LocalApicAddressOverride(e) => platform.local_apic_phys = e.local_apic_address,
            _ => {}
        }
    }
    if !platform.cpus.iter().any(|c| c.enabled) {
        panic!("acpi: the MADT lists no enabled CPU");
    }
}

fn parse_power(tables: &AcpiTables<FirmwareMapper>, fadt: &Fadt) -> Power {
    let control = |gas: Option<GenericAddress>| gas.and_then(|gas| Register::from_gas(&gas, 16));
    let reset = if { fadt.flags }.supports_system_reset_via_fadt() {
        fadt.reset_register().ok().and_then(|gas| Register::from_gas(&gas, 8)).map(|reg| (reg, fadt.reset_value))
    } else {
        None
    };
    Power {
        pm1a_control: control(fadt.pm1a_control_block().ok()),
        pm1b_control: control(fadt.pm1b_control_block().ok().flatten()),
        s5: find_s5_in_tables(tables),
        smi_command: u16::try_from(fadt.smi_cmd_port).unwrap_or(0),
        acpi_enable: fadt.acpi_enable,
        reset,
    }
}

/// Looks for `_S5_` in the DSDT, then in the SSDTs.
fn find_s5_in_tables(tables: &AcpiTables<FirmwareMapper>) -> Option<SleepTypes> {
    let dsdt = tables.dsdt().ok();
    dsdt.into_iter().chain(tables.ssdts()).find_map(|aml| {
        let virt = paging::map_firmware(aml.address as u64, u64::from(aml.length)).ok()?;
        // SAFETY: the `acpi` crate validated this table's header and length;
        // its body is mapped read-only for the kernel's lifetime.
        let bytes = unsafe { core::slice::from_raw_parts(virt as *const u8, aml.length as usize) };
        find_s5(bytes)
    })
}

fn log_summary(platform: &Platform) {
    let ioapics = platform.io_apics.iter().map(|io| io.phys).collect::<Vec<_>>();
    let enabled = platform.cpus.iter().filter(|c| c.enabled).count();
    let hotplug = match platform.cpus.len() - enabled {
        0 => alloc::string::String::new(),
        n => alloc::format!(" (+{n} hot-pluggable)"),
    };
    log::info!(
        "acpi: {enabled} CPUs{hotplug}, local APIC at {:#x}, IOAPIC at {:x?}, HPET {}, PM timer {}, {} ISA overrides, 8259 PICs {}",
        platform.local_apic_phys,
        ioapics,
        match platform.hpet_phys {
            Some(phys) => alloc::format!("at {phys:#x}"),
            None => "absent".into(),
        },
        if platform.pm_timer.is_some() { "present" } else { "absent" },
        platform.isa_overrides.len(),
        if platform.has_legacy_pics { "present" } else { "absent" },
    );
    for cpu in &platform.cpus {
        let state = if cpu.enabled { "enabled" } else { "online-capable" };
        log::debug!("acpi: cpu apic id {} (processor uid {}), {state}", cpu.apic_id, cpu.acpi_uid);
    }
    for o in &platform.isa_overrides {
        log::debug!("acpi: ISA IRQ {} -> GSI {} (flags {:#x})", o.isa_irq, o.gsi, o.flags.0);
    }
    for nmi in &platform.local_nmis {
        match nmi.acpi_uid {
            Some(uid) => log::debug!("acpi: local NMI on LINT{} of processor uid {uid}", nmi.lint),
            None => log::debug!("acpi: local NMI on LINT{} of every CPU", nmi.lint),
        }
    }
    let power = &platform.power;
    match power.s5 {
        Some(s5) => log::debug!("acpi: S5 sleep types {}/{}", s5.a, s5.b),
        None => log::warn!("acpi: no _S5_ object: ACPI power-off unavailable"),
    }
    match power.reset {
        Some((Register::Port { port, .. }, value)) => {
            log::debug!("acpi: reset by writing {value:#x} to port {port:#x}")
        }
        Some((Register::Memory { virt, .. }, value)) => log::debug!("acpi: reset by writing {value:#x} to {virt:#x}"),
        None => log::debug!("acpi: no FADT reset register; reset uses port 0xcf9"),
    }
}

const SCI_EN: u64 = 1 << 0;
const SLP_TYP_SHIFT: u32 = 10;
const SLP_TYP_MASK: u64 = 0b111 << SLP_TYP_SHIFT;
const SLP_EN: u64 = 1 << 13;

/// Switches the firmware into ACPI mode if it is not (SCI_EN clear), so
/// the PM1 control registers are honoured.
fn enable_acpi_mode(power: &Power, pm1a: &Register) {
    if pm1a.read() & SCI_EN != 0 || power.smi_command == 0 || power.acpi_enable == 0 {
        return;
    }
    // SAFETY: the FADT names this port as the SMI command port and this
    // value as the request to enter ACPI mode.
    unsafe { port::outb(power.smi_command, power.acpi_enable) };
    let give_up = crate::time::now_ns() + 3_000_000_000;
    while pm1a.read() & SCI_EN == 0 && crate::time::now_ns() < give_up {
        core::hint::spin_loop();
    }
}

/// Powers the machine off through the ACPI S5 state. Returns only if that
/// is impossible (then the caller decides what to do).
pub fn power_off() {
    log::info!("acpi: powering off");
    x86_64::instructions::interrupts::disable();
    let Some(power) = PLATFORM.get().map(|p| p.power) else {
        log::error!("acpi: power-off before ACPI was initialised");
        return;
    };
    let (Some(pm1a), Some(s5)) = (power.pm1a_control, power.s5) else {
        log::error!("acpi: power-off unavailable (no PM1a control block or no _S5_ object)");
        return;
    };
    enable_acpi_mode(&power, &pm1a);
    let targets = [(Some(pm1a), s5.a), (power.pm1b_control, s5.b)];
    // Set the sleep type first, then SLP_EN, on both blocks (as ACPICA does).
    for (register, sleep_type) in targets {
        if let Some(register) = register {
            let value = (register.read() & !(SLP_TYP_MASK | SLP_EN)) | (u64::from(sleep_type & 0b111) << SLP_TYP_SHIFT);
            register.write(value);
        }
    }
    for (register, _) in targets {
        if let Some(register) = register {
            register.write(register.read() | SLP_EN);
        }
    }
    timer::delay_ns(500_000_000);
    log::error!("acpi: the machine is still running after the S5 request");
}

/// Resets the machine: the FADT reset register, then the PCI reset port
/// 0xcf9, then the keyboard controller; halts if none of them works.
pub fn reset() -> ! {
    log::info!("acpi: resetting");
    x86_64::instructions::interrupts::disable();
    if let Some((register, value)) = PLATFORM.get().and_then(|p| p.power.reset) {
        register.write(u64::from(value));
        timer::delay_ns(100_000_000);
    }
    // SAFETY: 0xcf9 is the PC reset-control register and 0x64 the 8042
    // command port; writing these values resets the machine, which is the
    // intent. On machines without them the writes are ignored.
    unsafe {
        port::outb(0xcf9, 0x02);
        timer::delay_ns(1_000);
        port::outb(0xcf9, 0x06);
        timer::delay_ns(100_000_000);
        port::outb(0x64, 0xfe);
    }
    timer::delay_ns(100_000_000);
    log::error!("acpi: the machine did not reset; halting");
    cpu::halt_forever()
}
