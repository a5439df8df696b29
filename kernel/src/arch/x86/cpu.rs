//! Per-CPU feature detection and control-register setup.

use core::arch::x86_64::{__cpuid, __cpuid_count, _rdtsc};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::registers::xcontrol::{XCr0, XCr0Flags};

/// The CPU features the kernel cares about, read once from CPUID.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub vendor_amd: bool,
    pub nx: bool,
    pub smep: bool,
    pub smap: bool,
    pub xsave: bool,
    pub avx: bool,
    pub x2apic: bool,
    pub tsc_deadline: bool,
    pub invariant_tsc: bool,
    pub pdpe1gb: bool,
    pub global_pages: bool,
    pub fsgsbase: bool,
    pub svm: bool,
    pub npt: bool,
    pub hypervisor: bool,
}

impl Features {
    pub fn detect() -> Self {
        let leaf0 = __cpuid(0);
        let vendor_amd = leaf0.ebx == u32::from_le_bytes(*b"Auth");
        let leaf1 = __cpuid(1);
        let leaf7 = if leaf0.eax >= 7 { __cpuid_count(7, 0) } else { __cpuid(0) };
        let leaf7_valid = leaf0.eax >= 7;
        let ext_max = __cpuid(0x8000_0000).eax;
        let ext1 = if ext_max >= 0x8000_0001 { Some(__cpuid(0x8000_0001)) } else { None };
        let invariant_tsc = ext_max >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0;
        let npt = ext_max >= 0x8000_000a && __cpuid(0x8000_000a).edx & 1 != 0;
        let bit = |reg: u32, n: u32| reg & (1 << n) != 0;
        Features {
            vendor_amd,
            nx: ext1.is_some_and(|l| bit(l.edx, 20)),
            pdpe1gb: ext1.is_some_and(|l| bit(l.edx, 26)),
            svm: ext1.is_some_and(|l| bit(l.ecx, 2)),
            npt,
            smep: leaf7_valid && bit(leaf7.ebx, 7),
            smap: leaf7_valid && bit(leaf7.ebx, 20),
            fsgsbase: leaf7_valid && bit(leaf7.ebx, 0),
            xsave: bit(leaf1.ecx, 26),
            avx: bit(leaf1.ecx, 28),
            x2apic: bit(leaf1.ecx, 21),
            tsc_deadline: bit(leaf1.ecx, 24),
            hypervisor: bit(leaf1.ecx, 31),
            global_pages: bit(leaf1.edx, 13),
            invariant_tsc,
        }
    }
}

static FEATURES: spin::Once<Features> = spin::Once::new();

/// The boot CPU's features; every CPU is assumed to match it.
pub fn features() -> &'static Features {
    FEATURES.call_once(Features::detect)
}

/// Turns on what every CPU runs with: write protection in ring 0, no-execute
/// pages, SSE and XSAVE state for user and guest code, and SMEP/SMAP so the
/// kernel can neither run nor silently read user pages.
pub fn enable_features() {
    let f = features();
    // SAFETY: WP only makes the kernel honour read-only mappings; MP/NE are the
    // architectural settings for native x87 error reporting; EM/TS off let
    // SSE instructions run (the kernel itself is built soft-float).
    unsafe {
        Cr0::update(|cr0| {
            cr0.insert(Cr0Flags::WRITE_PROTECT | Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
            cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
        });
    }
    let mut cr4 = Cr4::read();
    cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
    if f.global_pages {
        cr4.insert(Cr4Flags::PAGE_GLOBAL);
    }
    if f.xsave {
        cr4.insert(Cr4Flags::OSXSAVE);
    }
    if f.smep {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
    }
    if f.smap {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
    }
    if f.fsgsbase {
        cr4.insert(Cr4Flags::FSGSBASE);
    }
    // SAFETY: each bit set is backed by the CPUID feature checked above, and
    // the kernel never touches user memory outside the user-copy routines,
    // which toggle RFLAGS.AC (so SMAP is safe to turn on).
    unsafe { Cr4::write(cr4) };
    if f.xsave {
        let mut xcr0 = XCr0Flags::X87 | XCr0Flags::SSE;
        if f.avx {
            xcr0 |= XCr0Flags::AVX;
        }
        // SAFETY: OSXSAVE is on and only supported components are enabled.
        unsafe { XCr0::write(xcr0) };
    }
    if f.nx {
        // SAFETY: the CPU supports NX; existing mappings do not set the bit
        // unless NX was already enabled.
        unsafe { Efer::update(|efer| efer.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is always available on x86-64.
    unsafe { _rdtsc() }
}

/// Stops this CPU for good: interrupts off, then halt forever (an NMI may
/// still wake it, which lands back in the loop).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
