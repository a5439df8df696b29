//! Time at boot and per-CPU deadline timers.
//!
//! [`calibrate`] measures the TSC once, on the boot CPU, against a timer of
//! known frequency: CPUID leaf 0x15 when it states the frequency exactly,
//! else the HPET, else the ACPI PM timer, else CPUID leaf 0x16's nominal
//! figure. The monotonic clock (`time::now_ns`) is the TSC from then on.
//!
//! Each CPU's local APIC timer is one-shot and deadline-driven: in
//! TSC-deadline mode when the CPU has it, else in one-shot mode with a count
//! derived from the APIC timer's frequency (measured against the TSC). A
//! deadline is in nanoseconds since boot; an interrupt that comes early (a
//! one-shot count is only 32 bits) re-arms itself, so the expiry hook runs
//! only once the deadline has passed.

use super::apic::{self, LVT_MASKED, LVT_TIMER, TIMER_CURRENT, TIMER_DIVIDE, TIMER_INITIAL, TIMER_VECTOR};
use super::cpu::{features, rdtsc};
use super::percpu::cpu_index;
use super::smp::MAX_CPUS;
use super::trap::{self, TrapFrame};
use crate::acpi::{Platform, PmTimer};
use crate::time;
use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use x86_64::registers::model_specific::Msr;

const NS_PER_SEC: u64 = 1_000_000_000;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const LVT_TSC_DEADLINE_MODE: u32 = 0b10 << 17;
/// Divide configuration 0b1011: the APIC timer counts at its input clock.
const DIVIDE_BY_1: u32 = 0b1011;
/// No deadline armed.
const NONE: u64 = u64::MAX;

static TSC_DEADLINE_MODE: AtomicBool = AtomicBool::new(false);
/// APIC timer ticks per second (one-shot mode only).
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// Each CPU's armed deadline (ns since boot), or [`NONE`].
static DEADLINES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(NONE) }; MAX_CPUS];
/// When each CPU's timer last expired (ns since boot), for the boot self-test.
static LAST_EXPIRY: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// The expiry hook: a `fn(u64)`, or 0 for none.
static EXPIRY_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Busy-waits for `ns` nanoseconds (after [`calibrate`]).
pub fn delay_ns(ns: u64) {
    let hz = time::tsc_hz();
    if hz == 0 {
        return;
    }
    let start = rdtsc();
    let ticks = ns_to_ticks(ns, hz);
    while rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// `ns` in ticks of a `hz` clock, rounded up (so a deadline is never early).
fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    let ticks = (u128::from(ns) * u128::from(hz)).div_ceil(u128::from(NS_PER_SEC));
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// A reference clock for measuring the TSC.
struct Reference<'a> {
    hz: u64,
    /// The counter wraps at this mask.
    mask: u64,
    read: &'a dyn Fn() -> u64,
}

/// Measures the TSC frequency against `reference`: three 10 ms windows, the
/// median kept. Each endpoint pairs a reference read with the TSC read
/// closest to it in time. `None` if the reference does not advance.
fn measure_tsc(reference: &Reference) -> Option<u64> {
    let sample = || {
        let mut best = (u64::MAX, 0, 0);
        for _ in 0..5 {
            let before = rdtsc();
            let value = (reference.read)();
            let after = rdtsc();
            if after - before < best.0 {
                best = (after - before, before + (after - before) / 2, value);
            }
        }
        (best.1, best.2)
    };
    let window = reference.hz / 100;
    let mut results = [0u64; 3];
    for result in &mut results {
        let (tsc0, ref0) = sample();
        let mut spins = 0u64;
        while ((reference.read)().wrapping_sub(ref0) & reference.mask) < window {
            spins += 1;
            if spins > 100_000_000 {
                return None;
            }
            core::hint::spin_loop();
        }
        let (tsc1, ref1) = sample();
        let ref_ticks = ref1.wrapping_sub(ref0) & reference.mask;
        if ref_ticks == 0 {
            return None;
        }
        let hz = u128::from(tsc1 - tsc0) * u128::from(reference.hz) / u128::from(ref_ticks);
        *result = u64::try_from(hz).ok()?;
    }
    results.sort_unstable();
    Some(results[1])
}

/// TSC frequency from CPUID leaf 0x15 (TSC/crystal ratio and crystal
/// frequency), when the CPU states all three.
fn cpuid_tsc_hz() -> Option<u64> {
    if __cpuid(0).eax < 0x15 {
        return None;
    }
    let leaf = __cpuid(0x15);
    (leaf.eax != 0 && leaf.ebx != 0 && leaf.ecx != 0)
        .then(|| u64::from(leaf.ecx) * u64::from(leaf.ebx) / u64::from(leaf.eax))
}

/// Nominal base frequency from CPUID leaf 0x16 (close to the TSC's on Intel).
fn cpuid_base_hz() -> Option<u64> {
    if __cpuid(0).eax < 0x16 {
        return None;
    }
    let mhz = __cpuid(0x16).eax & 0xffff;
    (mhz != 0).then(|| u64::from(mhz) * 1_000_000)
}

/// Maps and enables the HPET; returns the main counter's virtual address,
/// its frequency in Hz and the mask it wraps at.
fn hpet_counter(phys: u64) -> Option<(u64, u64, u64)> {
    const CAPABILITIES: u64 = 0x000;
    const CONFIG: u64 = 0x010;
    const MAIN_COUNTER: u64 = 0x0f0;
    let base = crate::mm::paging::map_mmio(phys, 0x400).ok()?;
    // SAFETY: the ACPI HPET table places the HPET's 1 KiB register block at
    // `phys`, now mapped uncached at `base`; the registers are 64-bit.
    let capabilities = unsafe { ((base + CAPABILITIES) as *const u64).read_volatile() };
    let period_fs = capabilities >> 32;
    // The specification caps the period at 100 ns.
    if period_fs == 0 || period_fs > 100_000_000 {
        return None;
    }
    // SAFETY: as above; setting ENABLE_CNF starts the main counter and
    // changes nothing else (no comparator has interrupts enabled).
    unsafe {
        let config = ((base + CONFIG) as *const u64).read_volatile();
        ((base + CONFIG) as *mut u64).write_volatile(config | 1);
    }
    let mask = if capabilities & (1 << 13) != 0 { u64::MAX } else { 0xffff_ffff };
    Some((base + MAIN_COUNTER, 1_000_000_000_000_000 / period_fs, mask))
}

/// Measures the TSC and sets `time::set_tsc_hz`. Boot CPU, interrupts off.
pub fn calibrate(platform: &Platform) {
    let (hz, source) = x86_64::instructions::interrupts::without_interrupts(|| calibrate_tsc(platform));
    time::set_tsc_hz(hz);
    log::info!(
        "time: TSC at {}.{:03} MHz (from {source}){}",
        hz / 1_000_000,
        (hz / 1000) % 1000,
        if features().invariant_tsc { ", invariant" } else { ", not invariant" }
    );
}

fn calibrate_tsc(platform: &Platform) -> (u64, &'static str) {
    if let Some(hz) = cpuid_tsc_hz() {
        return (hz, "CPUID 0x15");
    }
    if let Some((counter, hz, mask)) = platform.hpet_phys.and_then(hpet_counter) {
        // SAFETY: `counter` is the HPET main counter mapped by `hpet_counter`.
        let read = || unsafe { (counter as *const u64).read_volatile() };
        if let Some(tsc) = measure_tsc(&Reference { hz, mask, read: &read }) {
            return (tsc, "HPET");
        }
        log::warn!("time: the HPET does not count; trying the PM timer");
    }
    if let Some(pm) = platform.pm_timer {
        let read = || PmTimer::read(&pm);
        if let Some(tsc) = measure_tsc(&Reference { hz: PmTimer::HZ, mask: pm.mask(), read: &read }) {
            return (tsc, "ACPI PM timer");
        }
    }
    if let Some(hz) = cpuid_base_hz() {
        return (hz, "CPUID 0x16 nominal frequency");
    }
    panic!("time: no way to measure the TSC (no CPUID 0x15, HPET or PM timer)");
}

/// Sets up the calling CPU's timer (masked until a deadline is armed). The
/// first call, on the boot CPU, also picks the mode, measures the APIC timer
/// if needed and installs the interrupt handler.
pub fn init_this_cpu() {
    static FIRST: spin::Once<()> = spin::Once::new();
    let deadline_mode = features().tsc_deadline;
    if deadline_mode {
        apic::write_register(LVT_TIMER, LVT_TSC_DEADLINE_MODE | u32::from(TIMER_VECTOR));
        // The MSR write must not be reordered before the mode switch.
        core::sync::atomic::fence(Ordering::SeqCst);
        write_tsc_deadline(0);
    } else {
        apic::write_register(TIMER_DIVIDE, DIVIDE_BY_1);
        apic::write_register(TIMER_INITIAL, 0);
        apic::write_register(LVT_TIMER, u32::from(TIMER_VECTOR));
    }
    FIRST.call_once(|| {
        TSC_DEADLINE_MODE.store(deadline_mode, Ordering::Release);
        if !trap::register_irq(TIMER_VECTOR, on_timer) {
            panic!("timer: vector {TIMER_VECTOR:#x} already taken");
        }
        set_expiry_hook(record_expiry);
        if deadline_mode {
            log::info!("timer: local APIC timer in TSC-deadline mode");
        } else {
            let hz = measure_apic_timer();
            APIC_TIMER_HZ.store(hz, Ordering::Release);
            log::info!("timer: local APIC timer one-shot at {}.{:03} MHz", hz / 1_000_000, (hz / 1000) % 1000);
        }
    });
}

/// Counts APIC timer ticks over 10 ms of TSC time.
fn measure_apic_timer() -> u64 {
    x86_64::instructions::interrupts::without_interrupts(|| {
        apic::write_register(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
        let start = rdtsc();
        apic::write_register(TIMER_INITIAL, u32::MAX);
        delay_ns(10_000_000);
        let remaining = apic::read_register(TIMER_CURRENT);
        let elapsed_tsc = rdtsc() - start;
        apic::write_register(TIMER_INITIAL, 0);
        apic::write_register(LVT_TIMER, u32::from(TIMER_VECTOR));
        let ticks = u64::from(u32::MAX - remaining);
        let elapsed_ns = u128::from(elapsed_tsc) * u128::from(NS_PER_SEC) / u128::from(time::tsc_hz().max(1));
        match u64::try_from(u128::from(ticks) * u128::from(NS_PER_SEC) / elapsed_ns.max(1)) {
            Ok(hz) if hz > 0 => hz,
            _ => panic!("timer: the local APIC timer does not count"),
        }
    })
}

fn write_tsc_deadline(tsc: u64) {
    let mut msr = Msr::new(IA32_TSC_DEADLINE);
    // SAFETY: the CPU supports TSC-deadline mode (checked by callers via
    // the mode flag) and the timer's LVT is in that mode; the write only
    // arms or disarms this CPU's timer.
    unsafe { msr.write(tsc) };
}

/// Programs this CPU's hardware for `deadline` (ns since boot).
fn program(deadline: u64) {
    let delta_ns = deadline.saturating_sub(time::now_ns());
    if TSC_DEADLINE_MODE.load(Ordering::Relaxed) {
        // A deadline in the past fires at once; 0 would disarm, so use 1.
        write_tsc_deadline(rdtsc().saturating_add(ns_to_ticks(delta_ns, time::tsc_hz())).max(1));
    } else {
        let ticks = ns_to_ticks(delta_ns, APIC_TIMER_HZ.load(Ordering::Relaxed)).clamp(1, u64::from(u32::MAX));
        apic::write_register(TIMER_INITIAL, ticks as u32);
    }
}

/// Arms this CPU's timer to fire at `deadline` (ns since boot), replacing
/// any earlier deadline. A deadline in the past fires at once.
pub fn set_deadline(deadline: u64) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        DEADLINES[cpu_index() as usize].store(deadline, Ordering::Relaxed);
        program(deadline);
    });
}

/// Disarms this CPU's timer.
pub fn cancel() {
    x86_64::instructions::interrupts::without_interrupts(|| {
        DEADLINES[cpu_index() as usize].store(NONE, Ordering::Relaxed);
        if TSC_DEADLINE_MODE.load(Ordering::Relaxed) {
            write_tsc_deadline(0);
        } else {
            apic::write_register(TIMER_INITIAL, 0);
        }
    });
}

/// Installs the function every CPU's timer calls when its deadline passes,
/// with interrupts off and the interrupt already acknowledged (so the hook
/// may switch threads). It receives the current time; it may re-arm.
pub fn set_expiry_hook(hook: fn(u64)) {
    EXPIRY_HOOK.store(hook as usize, Ordering::Release);
}

fn on_timer(_frame: &mut TrapFrame) {
    apic::eoi();
    let cpu = cpu_index() as usize;
    let deadline = DEADLINES[cpu].load(Ordering::Relaxed);
    if deadline == NONE {
        return; // cancelled after the interrupt was raised
    }
    let now = time::now_ns();
    if now < deadline {
        program(deadline);
        return;
    }
    DEADLINES[cpu].store(NONE, Ordering::Relaxed);
    let hook = EXPIRY_HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: only `set_expiry_hook` stores non-zero values, and it
        // stores `fn(u64)` pointers.
        let hook = unsafe { core::mem::transmute::<usize, fn(u64)>(hook) };
        hook(now);
    }
}

/// The boot-time hook: remembers when each CPU's timer expired.
fn record_expiry(now: u64) {
    LAST_EXPIRY[cpu_index() as usize].store(now, Ordering::Release);
}

/// Arms a deadline 1 ms ahead on this CPU and waits (up to 1 s) for it to
/// fire, logging the outcome. Runs on every CPU at bring-up.
pub fn boot_self_test() {
    const AHEAD_NS: u64 = 1_000_000;
    let cpu = cpu_index() as usize;
    LAST_EXPIRY[cpu].store(0, Ordering::Release);
    let armed_at = time::now_ns();
    set_deadline(armed_at + AHEAD_NS);
    let give_up = armed_at + NS_PER_SEC;
    x86_64::instructions::interrupts::enable();
    while LAST_EXPIRY[cpu].load(Ordering::Acquire) == 0 && time::now_ns() < give_up {
        core::hint::spin_loop();
    }
    x86_64::instructions::interrupts::disable();
    match LAST_EXPIRY[cpu].load(Ordering::Acquire) {
        0 => {
            cancel();
            log::error!("timer: deadline 1 ms ahead did not fire within 1 s");
        }
        fired => {
            let after = fired - armed_at;
            log::info!("timer: deadline 1 ms ahead fired after {}.{:03} ms", after / 1_000_000, (after / 1000) % 1000);
        }
    }
}
