//! What the kernel emulates for every x86 guest, whatever the backend:
//! CPUID (the host's leaves, filtered: no virtualization extensions, no
//! features the kernel does not virtualize, the hypervisor bit set), the
//! MSRs the backend does not keep (APIC base, MTRRs and a few read-only
//! ones; anything unknown is #GP unless an MSR trap hands it to the VMM),
//! XSETBV, and MOV to CR8 where the backend intercepts it.

#![forbid(unsafe_code)]

use super::backend::{VcpuBackend, RAX, RBX, RCX, RDX};
use core::arch::x86_64::{__cpuid, __cpuid_count};

/// Highest basic and extended leaves the guest sees.
const MAX_BASIC: u32 = 0xd;
const MAX_EXTENDED: u32 = 0x8000_0008;

const CR4_OSXSAVE: u64 = 1 << 18;

/// The CPUID values the guest sees for `leaf`/`subleaf`.
pub fn guest_cpuid(leaf: u32, subleaf: u32, guest_cr4: u64) -> [u32; 4] {
    let max_basic = __cpuid(0).eax.min(MAX_BASIC);
    let max_ext = __cpuid(0x8000_0000).eax.min(MAX_EXTENDED);
    let host = |leaf: u32| {
        let r = __cpuid_count(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    };
    match leaf {
        0 => {
            let [_, b, c, d] = host(0);
            [max_basic, b, c, d]
        }
        1 => {
            let [a, b, mut c, d] = host(1);
            // No MONITOR, VMX, SMX, PCID, x2APIC, TSC deadline; OSXSAVE
            // mirrors the guest's CR4; we are a hypervisor.
            c &= !((1 << 3) | (1 << 5) | (1 << 6) | (1 << 17) | (1 << 21) | (1 << 24) | (1 << 27));
            if guest_cr4 & CR4_OSXSAVE != 0 {
                c |= 1 << 27;
            }
            c |= 1 << 31;
            // One logical processor, APIC id 0, no HTT.
            [a, (b & 0xffff) | (1 << 16), c, d & !(1 << 28)]
        }
        7 if subleaf == 0 => {
            let [_, b, c, d] = host(7);
            // No WAITPKG (UMWAIT), nothing else changes.
            [0, b, c & !(1 << 5), d]
        }
        2 | 4 | 0xd if leaf <= max_basic => host(leaf),
        0x8000_0000 => {
            let [_, b, c, d] = host(0x8000_0000);
            [max_ext, b, c, d]
        }
        0x8000_0001 if leaf <= max_ext => {
            let [a, b, c, d] = host(leaf);
            // No CmpLegacy, SVM, ExtApicSpace, IBS, SKINIT, WDT, LWP,
            // TOPOEXT or the extended performance counters.
            let hidden = (1 << 1)
                | (1 << 2)
                | (1 << 3)
                | (1 << 10)
                | (1 << 12)
                | (1 << 13)
                | (1 << 15)
                | (1 << 22)
                | (1 << 23)
                | (1 << 24);
            [a, b, c & !hidden, d]
        }
        0x8000_0002..=0x8000_0007 if leaf <= max_ext => host(leaf),
        0x8000_0008 if leaf <= max_ext => {
            let [a, b, _, _] = host(leaf);
            [a, b, 0, 0]
        }
        _ => [0; 4],
    }
}

/// CPUID: fills RAX, RBX, RCX, RDX (the caller moves RIP on). Returns the
/// leaf, the subleaf and the result.
pub fn cpuid(backend: &mut dyn VcpuBackend) -> (u32, u32, [u32; 4]) {
    let mut regs = backend.gprs();
    let cr4 = backend.paging_regs().cr4;
    let (leaf, subleaf) = (regs[RAX] as u32, regs[RCX] as u32);
    let result = guest_cpuid(leaf, subleaf, cr4);
    let [a, b, c, d] = result;
    regs[RAX] = u64::from(a);
    regs[RBX] = u64::from(b);
    regs[RCX] = u64::from(c);
    regs[RDX] = u64::from(d);
    backend.set_gprs(&regs);
    (leaf, subleaf, result)
}

fn is_mtrr(msr: u32) -> bool {
    matches!(msr, 0x200..=0x20f | 0x250 | 0x258 | 0x259 | 0x268..=0x26f | 0x2ff)
}

/// What the kernel made of an RDMSR or WRMSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAccess {
    /// Emulated (the caller moves RIP on).
    Done,
    /// An MSR the kernel virtualizes, given a value it refuses: #GP.
    Refused,
    /// An MSR the kernel does not virtualize (#GP unless a trap covers it).
    Unknown,
}

/// RDMSR or WRMSR of the MSR in ECX (the value in EDX:EAX).
pub fn msr(backend: &mut dyn VcpuBackend, write: bool) -> MsrAccess {
    let mut regs = backend.gprs();
    let msr = regs[RCX] as u32;
    if write {
        let value = (regs[RDX] << 32) | (regs[RAX] & 0xffff_ffff);
        if let Some(result) = backend.write_msr(msr, value) {
            return if result.is_ok() { MsrAccess::Done } else { MsrAccess::Refused };
        }
        // Accepted and ignored: the APIC base (no APIC to move), microcode
        // loading, MTRRs (nested paging decides the memory types) and
        // MISC_ENABLE.
        return match msr {
            0x1b | 0x79 | 0x8b | 0x1a0 => MsrAccess::Done,
            _ if is_mtrr(msr) => MsrAccess::Done,
            _ => MsrAccess::Unknown,
        };
    }
    let value = match backend.read_msr(msr) {
        Some(value) => value,
        None => match msr {
            // APIC base: the default address, enabled, bootstrap processor.
            0x1b => 0xfee0_0000 | (1 << 11) | (1 << 8),
            0x8b => 0,
            // MTRRs: no variable ranges, write-back by default.
            0xfe => 0,
            0x2ff => (1 << 11) | 6,
            _ if is_mtrr(msr) => 0,
            // MISC_ENABLE: fast strings.
            0x1a0 => 1,
            _ => return MsrAccess::Unknown,
        },
    };
    regs[RAX] = value & 0xffff_ffff;
    regs[RDX] = value >> 32;
    backend.set_gprs(&regs);
    MsrAccess::Done
}

/// XSETBV: XCR0 only, x87 always on, a subset of what the host enables,
/// AVX only with SSE. `Err` means #GP.
pub fn xsetbv(backend: &mut dyn VcpuBackend) -> Result<(), ()> {
    let regs = backend.gprs();
    if regs[RCX] as u32 != 0 {
        return Err(());
    }
    let value = (regs[RDX] << 32) | (regs[RAX] & 0xffff_ffff);
    let host = x86_64::registers::xcontrol::XCr0::read_raw();
    if value & 1 == 0 || value & !host != 0 || (value & 4 != 0 && value & 2 == 0) {
        return Err(());
    }
    backend.set_xcr0(value);
    Ok(())
}
