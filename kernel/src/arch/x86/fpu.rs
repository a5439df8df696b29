//! Per-thread x87/SSE/AVX state for threads that run user (or guest) code.
//!
//! The kernel is built soft-float and never touches these registers, so a
//! kernel-only thread has no save area and the switch leaves the registers
//! alone. A thread with a [`FpuState`] has it saved when it is switched out
//! and restored when it is switched in, with XSAVE/XRSTOR over every
//! component enabled in XCR0, or FXSAVE/FXRSTOR on a CPU without XSAVE.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::arch::x86_64::__cpuid_count;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Largest save area supported (x87, SSE, AVX and AVX-512 fit in 2.7 KiB).
const AREA_SIZE: usize = 4096;
/// Offsets in the legacy region (both FXSAVE and XSAVE layouts).
const FCW_OFFSET: usize = 0;
const MXCSR_OFFSET: usize = 24;
/// x87 control word and MXCSR at reset (all exceptions masked).
const FCW_DEFAULT: u16 = 0x037f;
const MXCSR_DEFAULT: u32 = 0x1f80;

const MODE_UNSET: u8 = 0;
const MODE_FXSAVE: u8 = 1;
const MODE_XSAVE: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_UNSET);
/// XCR0: the components XSAVE saves.
static XCR0_MASK: AtomicU64 = AtomicU64::new(0);

#[repr(C, align(64))]
struct Area([u8; AREA_SIZE]);

/// One thread's saved extended register state.
pub struct FpuState {
    area: UnsafeCell<Area>,
}

// SAFETY: the area is touched only by `save`/`restore`, whose callers
// guarantee exclusive access (the scheduler, for a thread not running).
unsafe impl Sync for FpuState {}
// SAFETY: as above; the state has no ties to a CPU.
unsafe impl Send for FpuState {}

/// Picks XSAVE or FXSAVE and checks the save area is large enough. Called
/// on the boot CPU after `cpu::enable_features`; returns the mode's name.
pub fn init() -> &'static str {
    let features = super::cpu::features();
    if features.xsave {
        let xcr0 = x86_64::registers::xcontrol::XCr0::read_raw();
        // CPUID.(EAX=0xD, ECX=0).EBX: save-area size for the components in XCR0.
        let size = __cpuid_count(0xd, 0).ebx as usize;
        if size <= AREA_SIZE {
            XCR0_MASK.store(xcr0, Ordering::Relaxed);
            MODE.store(MODE_XSAVE, Ordering::Release);
            return "xsave";
        }
        log::warn!("fpu: XSAVE area of {size} bytes exceeds {AREA_SIZE}; using FXSAVE");
    }
    MODE.store(MODE_FXSAVE, Ordering::Release);
    "fxsave"
}

impl FpuState {
    /// A save area holding the reset state, or `None` when memory is short.
    pub fn try_new() -> Option<Box<FpuState>> {
        let mut one: Vec<FpuState> = Vec::new();
        one.try_reserve_exact(1).ok()?;
        let mut area = Area([0; AREA_SIZE]);
        area.0[FCW_OFFSET..FCW_OFFSET + 2].copy_from_slice(&FCW_DEFAULT.to_le_bytes());
        area.0[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&MXCSR_DEFAULT.to_le_bytes());
        // XSTATE_BV (bytes 512..520) stays 0: XRSTOR puts every component
        // in its initial state, but loads MXCSR from the legacy region.
        one.push(FpuState { area: UnsafeCell::new(area) });
        // Exact capacity 1, so this does not reallocate.
        let slice: Box<[FpuState]> = one.into_boxed_slice();
        let array: Box<[FpuState; 1]> = slice.try_into().ok()?;
        // SAFETY: `[FpuState; 1]` and `FpuState` have the same layout, so
        // the allocation is a valid `Box<FpuState>`.
        Some(unsafe { Box::from_raw(Box::into_raw(array).cast::<FpuState>()) })
    }

    /// Saves this CPU's extended registers here.
    ///
    /// # Safety
    /// No other CPU may access this state at the same time, and [`init`] has run.
    pub unsafe fn save(&self) {
        let area = self.area.get().cast::<u8>();
        let mask = XCR0_MASK.load(Ordering::Relaxed);
        if MODE.load(Ordering::Relaxed) == MODE_XSAVE {
            // SAFETY: the area is 64-byte aligned, large enough for XCR0's
            // components (checked in `init`), and exclusively ours.
            unsafe {
                core::arch::asm!("xsave64 [{}]", in(reg) area, in("eax") mask as u32, in("edx") (mask >> 32) as u32,
                    options(nostack, preserves_flags))
            };
        } else {
            // SAFETY: the area is 16-byte aligned and 512+ bytes, exclusively ours.
            unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
        }
    }

    /// Loads this CPU's extended registers from here.
    ///
    /// # Safety
    /// As for [`FpuState::save`]; the area holds a state saved by `save` or
    /// the reset state from [`FpuState::try_new`].
    pub unsafe fn restore(&self) {
        let area = self.area.get().cast::<u8>();
        let mask = XCR0_MASK.load(Ordering::Relaxed);
        if MODE.load(Ordering::Relaxed) == MODE_XSAVE {
            // SAFETY: as for `save`; the header is valid (zero or written by XSAVE).
            unsafe {
                core::arch::asm!("xrstor64 [{}]", in(reg) area, in("eax") mask as u32, in("edx") (mask >> 32) as u32,
                    options(nostack, preserves_flags))
            };
        } else {
            // SAFETY: as for `save`; MXCSR holds a valid value.
            unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
        }
    }
}

/// Test helper: writes `value` to the low half of XMM0. The kernel itself
/// never uses XMM registers, so only threads with an [`FpuState`] may care.
pub fn test_write_xmm0(value: u64) {
    // SAFETY: only XMM0 changes; kernel code does not use SSE registers.
    unsafe { core::arch::asm!("movq xmm0, {}", in(reg) value, options(nomem, nostack, preserves_flags)) };
}

/// Test helper: reads the low half of XMM0.
pub fn test_read_xmm0() -> u64 {
    let value: u64;
    // SAFETY: reading XMM0 has no side effects.
    unsafe { core::arch::asm!("movq {}, xmm0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}
