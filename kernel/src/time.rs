//! Monotonic time in nanoseconds, from the TSC.
//!
//! Until the TSC is calibrated (see `calibrate`) the clock reads 0.

use crate::arch::x86::cpu::rdtsc;
use core::sync::atomic::{AtomicU64, Ordering};

/// TSC ticks per second; 0 until calibrated.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// TSC value at boot (time zero).
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Marks time zero. Called first thing on the boot CPU.
pub fn mark_boot() {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
}

/// Sets the TSC frequency once it has been measured.
pub fn set_tsc_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Release);
}

/// TSC ticks per second (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Acquire)
}

/// Nanoseconds since boot.
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let ticks = rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    // 128-bit product: no overflow for centuries of uptime.
    ((u128::from(ticks) * 1_000_000_000) / u128::from(hz)) as u64
}
