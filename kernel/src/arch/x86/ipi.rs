//! Inter-processor interrupts: fixed vectors, NMIs, and "run this function
//! on the other CPUs and wait" (the base for TLB shootdown and VCPU kicks).
//!
//! Also the panic path's "stop every other CPU": an NMI broadcast, whose
//! handler halts its CPU for good once a panic is under way.

use super::apic::{self, IpiKind, IpiTarget, CALL_VECTOR};
use super::percpu::cpu_index;
use super::smp::{self, MAX_CPUS};
use super::trap::{self, TrapFrame};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

/// Sends a fixed-vector interrupt to online CPU `cpu`. Returns false if
/// there is no such CPU.
pub fn send(cpu: u32, vector: u8) -> bool {
    match smp::cpu(cpu) {
        Some(target) => {
            apic::send_ipi(IpiTarget::Apic(target.apic_id.load(Ordering::Relaxed)), IpiKind::Fixed(vector));
            true
        }
        None => false,
    }
}

/// The vector that kicks a CPU out of a running guest: the interrupt makes
/// the guest exit (physical interrupts are intercepted), and its handler
/// only acknowledges it; the VCPU loop then sees what the kicker queued.
pub const KICK_VECTOR: u8 = 0xf3;

/// Makes CPU `cpu` leave the guest it may be running (see [`KICK_VECTOR`]).
pub fn kick(cpu: u32) {
    send(cpu, KICK_VECTOR);
}

fn on_kick(_frame: &mut TrapFrame) {
    apic::eoi();
}

/// Sends a fixed-vector interrupt to every CPU but this one.
#[allow(dead_code, reason = "IPI API for the scheduler (reschedule broadcasts)")]
pub fn send_all_but_self(vector: u8) {
    apic::send_ipi(IpiTarget::AllButSelf, IpiKind::Fixed(vector));
}

/// Sends an NMI to every CPU but this one.
pub fn nmi_all_but_self() {
    apic::send_ipi(IpiTarget::AllButSelf, IpiKind::Nmi);
}

/// A cross-CPU call in progress; lives on the caller's stack.
struct CallRequest<'a> {
    func: &'a (dyn Fn() + Sync),
    remaining: AtomicU32,
}

/// Serialises callers: one request is in flight at a time.
static CALL_LOCK: spin::Mutex<()> = spin::Mutex::new(());
/// The request in flight (a `CallRequest`), or null.
static CURRENT_CALL: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Which CPUs still have to run the request in flight.
static CALL_PENDING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Runs `func` on every other online CPU (in interrupt context, interrupts
/// off) and returns once all have finished it.
///
/// Callable with interrupts on or off: while waiting for its turn a caller
/// answers requests aimed at it, so two CPUs calling at once cannot
/// deadlock. It must not be called while holding a lock `func` takes, or
/// one that other CPUs may spin on with interrupts off.
pub fn call_on_others(func: &(dyn Fn() + Sync)) {
    // With interrupts on, the caller could be preempted while holding the
    // call lock, and a thread on the same CPU with interrupts off would then
    // spin on it forever: the whole call runs with interrupts off (this CPU
    // still answers others' requests while it waits, by polling).
    x86_64::instructions::interrupts::without_interrupts(|| call_on_others_locked(func));
}

fn call_on_others_locked(func: &(dyn Fn() + Sync)) {
    let me = cpu_index();
    let _guard = loop {
        if let Some(guard) = CALL_LOCK.try_lock() {
            break guard;
        }
        service_call();
        core::hint::spin_loop();
    };
    let request = CallRequest { func, remaining: AtomicU32::new(0) };
    CURRENT_CALL.store(&request as *const CallRequest as *mut (), Ordering::Release);
    let targets = || smp::online_cpus().filter(|cpu| cpu.index != me);
    request.remaining.store(targets().count() as u32, Ordering::Release);
    for cpu in targets() {
        CALL_PENDING[cpu.index as usize].store(true, Ordering::Release);
        send(cpu.index, CALL_VECTOR);
    }
    let warn_at = crate::time::now_ns() + 1_000_000_000;
    let mut warned = false;
    while request.remaining.load(Ordering::Acquire) != 0 {
        if !warned && crate::time::now_ns() > warn_at {
            warned = true;
            log::warn!("ipi: a cross-CPU call has waited 1 s for {} CPUs", request.remaining.load(Ordering::Relaxed));
        }
        core::hint::spin_loop();
    }
    CURRENT_CALL.store(core::ptr::null_mut(), Ordering::Release);
}

/// Runs the request in flight if it is aimed at this CPU and not yet run here.
fn service_call() {
    let Some(pending) = CALL_PENDING.get(cpu_index() as usize) else { return };
    if !pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let ptr = CURRENT_CALL.load(Ordering::Acquire) as *const CallRequest;
    // SAFETY: a CPU's pending flag is set only while `CURRENT_CALL` points
    // at a live request: the caller keeps the request on its stack until
    // every target has decremented `remaining`, which this CPU has not yet.
    let request = unsafe { &*ptr };
    (request.func)();
    request.remaining.fetch_sub(1, Ordering::AcqRel);
}

fn on_call(_frame: &mut TrapFrame) {
    apic::eoi();
    service_call();
}

/// Stops every other CPU, for the panic path.
fn stop_others() {
    if apic::is_ready() {
        nmi_all_but_self();
    }
}

/// NMIs: a CPU told to stop by a panicking CPU halts for good. Any other
/// NMI (a hardware error line, the QEMU monitor's `nmi`) is reported.
fn on_nmi(frame: &mut TrapFrame) {
    if crate::panic::panicking() {
        super::cpu::halt_forever();
    }
    // Not the logger: this NMI may have interrupted a CPU holding its lock.
    crate::log::write_unlocked(format_args!("nmi: unexpected NMI on cpu{} at rip {:#x}\n", cpu_index(), frame.rip));
}

/// Installs the call vector, the NMI hook and the panic's stop hook.
pub fn init() {
    if !trap::register_irq(CALL_VECTOR, on_call) {
        panic!("ipi: vector {CALL_VECTOR:#x} already taken");
    }
    if !trap::register_irq(KICK_VECTOR, on_kick) {
        panic!("ipi: vector {KICK_VECTOR:#x} already taken");
    }
    trap::set_nmi_hook(on_nmi);
    crate::panic::set_stop_others(stop_others);
}

/// Rounds each CPU runs in the concurrent part of the self-test.
const STRESS_ROUNDS: u32 = 16;
static STRESS_REQUESTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static STRESS_FINISHED: AtomicU32 = AtomicU32::new(0);
static STRESS_ANSWERS: AtomicU32 = AtomicU32::new(0);

fn stress_rounds() {
    for _ in 0..STRESS_ROUNDS {
        call_on_others(&|| {
            STRESS_ANSWERS.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// For idle CPUs (interrupts off): joins the self-test's concurrent
/// calls if the boot CPU asked this CPU to. Runs them with interrupts on,
/// while the boot CPU runs its own with interrupts off, so both ways of
/// answering (interrupt and polling while waiting) are exercised.
pub fn join_boot_self_test() {
    let Some(requested) = STRESS_REQUESTED.get(cpu_index() as usize) else { return };
    if requested.swap(false, Ordering::AcqRel) {
        x86_64::instructions::interrupts::enable();
        stress_rounds();
        x86_64::instructions::interrupts::disable();
        STRESS_FINISHED.fetch_add(1, Ordering::AcqRel);
    }
}

/// Checks cross-CPU calls: one call must reach every other online CPU, and
/// then all CPUs calling each other at once must neither deadlock nor lose
/// a call. Boot CPU, interrupts off, other CPUs idle.
pub fn boot_self_test() {
    let cpus = smp::online_count();
    let others = cpus.saturating_sub(1);
    if others == 0 {
        return;
    }
    let answered = AtomicU32::new(0);
    let started = crate::time::now_ns();
    call_on_others(&|| {
        answered.fetch_add(1, Ordering::Relaxed);
    });
    let took = crate::time::now_ns() - started;
    let answered = answered.load(Ordering::Relaxed);
    if answered != others {
        log::error!("ipi: cross-CPU call answered by {answered} of {others} other CPUs");
        return;
    }
    log::info!("ipi: cross-CPU call answered by all {others} other CPUs in {} us", took / 1000);

    let started = crate::time::now_ns();
    call_on_others(&|| {
        if let Some(requested) = STRESS_REQUESTED.get(cpu_index() as usize) {
            requested.store(true, Ordering::Release);
        }
    });
    stress_rounds();
    let give_up = crate::time::now_ns() + 10_000_000_000;
    // Interrupts are off here: answer the others' calls while waiting.
    while STRESS_FINISHED.load(Ordering::Acquire) < others && crate::time::now_ns() < give_up {
        service_call();
        core::hint::spin_loop();
    }
    let took = crate::time::now_ns() - started;
    let expected = STRESS_ROUNDS * cpus * others;
    let answers = STRESS_ANSWERS.load(Ordering::Acquire);
    if answers == expected {
        log::info!("ipi: {cpus} CPUs calling each other at once: all {expected} calls answered in {} us", took / 1000);
    } else {
        log::error!("ipi: {cpus} CPUs calling each other at once: {answers} of {expected} calls answered");
    }
}
