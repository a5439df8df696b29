//! Threads and the scheduler: per-CPU run queues with priorities, time
//! slices, deadline timers, and the wait queue every blocking call uses.
//!
//! # Design
//!
//! - **Threads** ([`Thread`]) are shared through `Arc`. A thread that is not
//!   running is always held by exactly one queue: a CPU's run queue, a wait
//!   queue ([`WaitQueue`]; a sleeping thread waits on a private one), or the
//!   dead list the reaper drains. A blocked thread with a deadline is also
//!   on its CPU's timer queue. The running thread is held by its CPU's
//!   `current` slot. So the scheduler never drops the last reference to a
//!   thread while switching, and queues need no allocation: the links are
//!   inside the thread (`intrusive-collections`).
//! - **Run queues**: one per CPU, 32 FIFO lists (one per priority, Magenta's
//!   0..=31) and a bitmap of the non-empty ones, so picking the next thread
//!   is one `leading_zeros`. Each CPU has an idle thread (its boot stack).
//!   Right after a switch to it, it spins for [`IDLE_POLL_NS`] watching a
//!   kick flag (a waker that sees it polling stores the flag instead of
//!   sending an IPI), then halts with interrupts on. Idle and other kernel
//!   threads keep the last user address space loaded (lazy CR3; a dead
//!   process's space is retired and let go, see `vm::AddressSpace`).
//! - **Placement**: a new thread goes to the least-loaded CPU; a woken one
//!   to its last CPU, or to an idle CPU if its last one is busy with an equal
//!   or higher priority; a pinned thread (affinity) only to its CPU. When
//!   the target CPU should preempt, it gets a reschedule IPI; this CPU gets
//!   a self-IPI when it cannot switch right away (the waker holds a
//!   spinlock), so the switch happens as soon as interrupts are back on.
//! - **Preemption**: each CPU's deadline timer (`timer::set_deadline`)
//!   fires by the earlier of its first timer-queue deadline and the end of
//!   the running thread's time slice ([`TIME_SLICE_NS`]); an earlier armed
//!   deadline is left armed rather than re-armed on every switch. The
//!   expiry hook runs in interrupt context, wakes expired sleepers and
//!   rotates the run queue when the slice is over and another thread of the
//!   same or higher priority is ready. Threads that loop in the kernel (a
//!   VCPU handling exits) also call [`preempt_point`].
//! - **Timers**: a per-CPU red-black tree of blocked threads ordered by
//!   (deadline, thread id); arming and cancelling move links only.
//! - **Exit**: an exiting thread moves itself to the dead list and switches
//!   away for good; the reaper thread frees its kernel stack and FPU area,
//!   then marks it dead and wakes its joiners.
//!
//! # Locking
//!
//! One scheduler lock (like Magenta's `thread_lock`) guards every run
//! queue, timer queue, thread state and wait-queue membership. It is taken
//! with interrupts off, and it is held across a context switch: the thread
//! switched to releases it (a new thread does so in `thread_entry`).
//!
//! Lock order (outer first):
//! 1. object locks (`IrqSpinlock`s of kernel objects; a thread's join state);
//! 2. the scheduler lock (`SCHED`);
//! 3. a wait queue's list lock (`WaitQueue::list`);
//! 4. leaf locks taken by arch code while the scheduler lock is held (the
//!    timer's and APIC's register accesses; no allocation happens here).
//!
//! The scheduler never calls back into objects, and nothing that may send
//! a cross-CPU call (`ipi::call_on_others`, e.g. `kstack::recycle_freed`)
//! runs under the scheduler lock: another CPU may spin on it with
//! interrupts off and would never answer.

#![allow(dead_code, reason = "part of the API is for the syscall layer to come")]

mod thread;
mod wait;

mod tests;

#[allow(unused_imports, reason = "API for the syscall layer and objects to come")]
pub use thread::{
    current, current_ref, exit, fault_injection_exempt, spawn, spawn_kernel_thread, with_current,
    without_fault_injection, yield_now, CurrentRef, Owner, Thread, ThreadOptions, ThreadState,
};
pub use wait::{sleep_until, WaitQueue, WakeReason};

use crate::arch::x86::apic::RESCHEDULE_VECTOR;
use crate::arch::x86::percpu::{self, PerCpu};
use crate::arch::x86::smp::MAX_CPUS;
use crate::arch::x86::{context, fpu, gdt, ipi, timer, trap};
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use intrusive_collections::{
    intrusive_adapter, KeyAdapter, LinkedList, LinkedListAtomicLink, RBTree, RBTreeAtomicLink,
};
use thread::{State, WakeCode};
use x86_64::instructions::interrupts;

/// Magenta's priorities (`MX_PRIORITY_*`): higher runs first.
pub const PRIORITY_LOWEST: i32 = 0;
pub const PRIORITY_LOW: i32 = 8;
pub const PRIORITY_DEFAULT: i32 = 16;
pub const PRIORITY_HIGH: i32 = 24;
pub const PRIORITY_HIGHEST: i32 = 31;
const NUM_PRIORITIES: usize = 32;

/// How long a thread runs before others of its priority get a turn.
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// No deadline.
pub const INFINITE: u64 = u64::MAX;

intrusive_adapter!(QueueAdapter = Arc<Thread>: Thread { queue_link => LinkedListAtomicLink });
intrusive_adapter!(TimerAdapter = Arc<Thread>: Thread { timer_link => RBTreeAtomicLink });

impl<'a> KeyAdapter<'a> for TimerAdapter {
    type Key = (u64, u64);
    fn get_key(&self, thread: &'a Thread) -> (u64, u64) {
        (thread.timer_deadline.load(Ordering::Relaxed), thread.id())
    }
}

/// One CPU's scheduling state.
struct CpuQueue {
    /// Ready threads, one FIFO per priority.
    ready: [LinkedList<QueueAdapter>; NUM_PRIORITIES],
    /// Bit `p` set iff `ready[p]` is not empty.
    mask: u32,
    /// How many threads are in `ready`.
    nr_ready: u32,
    /// Blocked threads with a deadline, earliest first.
    timers: RBTree<TimerAdapter>,
    /// The running thread (the idle thread when nothing else runs).
    current: Option<Arc<Thread>>,
    idle: Option<Arc<Thread>>,
    /// When the running thread's slice ends (ns since boot).
    slice_end: u64,
    /// The deadline the hardware timer is armed for, or `INFINITE`.
    programmed: u64,
    /// This CPU should switch threads at the next opportunity.
    need_resched: bool,
    /// Whether this CPU runs the scheduler (placement only considers these).
    active: bool,
    /// The idle thread spins here with interrupts on, watching
    /// `POLL_KICK`, so a wake-up needs no IPI (see [`IDLE_POLL_NS`]).
    polling: bool,
    /// The idle thread was switched in after another thread, which may be
    /// woken again soon: it polls before it halts.
    just_idle: bool,
}

impl CpuQueue {
    const fn new() -> CpuQueue {
        CpuQueue {
            ready: [const { LinkedList::new(QueueAdapter::NEW) }; NUM_PRIORITIES],
            mask: 0,
            nr_ready: 0,
            timers: RBTree::new(TimerAdapter::NEW),
            current: None,
            idle: None,
            slice_end: INFINITE,
            programmed: INFINITE,
            need_resched: false,
            active: false,
            polling: false,
            just_idle: false,
        }
    }

    /// The priority a newly ready thread must beat to preempt this CPU.
    fn current_priority(&self) -> i32 {
        match &self.current {
            Some(t) if !t.is_idle() => t.priority(),
            _ => -1,
        }
    }

    fn highest_ready(&self) -> i32 {
        if self.mask == 0 {
            -1
        } else {
            31 - self.mask.leading_zeros() as i32
        }
    }

    /// Load for placement: ready threads plus a running non-idle thread.
    fn load(&self) -> u32 {
        self.nr_ready + u32::from(self.current_priority() >= 0)
    }

    fn push(&mut self, thread: Arc<Thread>) {
        let prio = thread.priority() as usize;
        self.ready[prio].push_back(thread);
        self.mask |= 1 << prio;
        self.nr_ready += 1;
    }

    fn pop(&mut self) -> Option<Arc<Thread>> {
        let prio = usize::try_from(self.highest_ready()).ok()?;
        let thread = self.ready[prio].pop_front();
        if self.ready[prio].is_empty() {
            self.mask &= !(1 << prio);
        }
        if thread.is_some() {
            self.nr_ready -= 1;
        }
        thread
    }

    /// Removes a ready thread queued here at priority `prio`.
    fn remove(&mut self, thread: &Thread, prio: i32) -> Option<Arc<Thread>> {
        let list = self.ready.get_mut(usize::try_from(prio).ok()?)?;
        if !thread.queue_link.is_linked() {
            return None;
        }
        // SAFETY: a Ready thread whose `cpu` is this CPU and whose priority
        // is `prio` is linked into exactly `ready[prio]` here (callers hold
        // the scheduler lock, under which all three are kept in step).
        let removed = unsafe { list.cursor_mut_from_ptr(thread) }.remove();
        if list.is_empty() {
            self.mask &= !(1 << prio);
        }
        if removed.is_some() {
            self.nr_ready -= 1;
        }
        removed
    }

    /// The first timer deadline, or `INFINITE`.
    fn next_timer(&self) -> u64 {
        self.timers.front().get().map_or(INFINITE, |t| t.timer_deadline.load(Ordering::Relaxed))
    }
}

/// Everything the scheduler lock guards.
struct Sched {
    cpus: [CpuQueue; MAX_CPUS],
    /// One past the highest active CPU index: placement scans only
    /// `cpus[..active_end]`, not all `MAX_CPUS` slots, under the lock.
    active_end: usize,
    /// Exited threads waiting for the reaper.
    dead: LinkedList<QueueAdapter>,
}

/// The scheduler lock: a spinlock taken with interrupts off, which a
/// context switch hands from the old thread to the new one.
struct SchedLock {
    locked: AtomicBool,
    data: UnsafeCell<Sched>,
}

// SAFETY: `data` is only reached through a `SchedGuard`, which exists only
// while `locked` is held by this CPU.
unsafe impl Sync for SchedLock {}

static SCHED: SchedLock = SchedLock {
    locked: AtomicBool::new(false),
    data: UnsafeCell::new(Sched {
        cpus: [const { CpuQueue::new() }; MAX_CPUS],
        active_end: 0,
        dead: LinkedList::new(QueueAdapter::NEW),
    }),
};

/// Proof that this CPU holds the scheduler lock; restores the interrupt
/// state of the thread that took it when dropped.
struct SchedGuard {
    /// Whether interrupts were on before locking: the holder may switch
    /// threads right away (it holds no spinlock).
    irq_on: bool,
}

fn lock() -> SchedGuard {
    let irq_on = interrupts::are_enabled();
    interrupts::disable();
    while SCHED.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        while SCHED.locked.load(Ordering::Relaxed) {
            core::hint::spin_loop();
        }
    }
    SchedGuard { irq_on }
}

/// Releases the lock a switch handed to a new thread (which has no guard).
fn release_after_first_switch() {
    SCHED.locked.store(false, Ordering::Release);
}

impl Deref for SchedGuard {
    type Target = Sched;
    fn deref(&self) -> &Sched {
        // SAFETY: the guard proves this CPU holds the lock; references do
        // not outlive the guard's borrow, and none is kept across a switch.
        unsafe { &*SCHED.data.get() }
    }
}

impl DerefMut for SchedGuard {
    fn deref_mut(&mut self) -> &mut Sched {
        // SAFETY: as for `deref`; `&mut self` makes the borrow unique.
        unsafe { &mut *SCHED.data.get() }
    }
}

impl Drop for SchedGuard {
    fn drop(&mut self) {
        SCHED.locked.store(false, Ordering::Release);
        if self.irq_on {
            interrupts::enable();
        }
    }
}

fn this_cpu() -> usize {
    percpu::cpu_index() as usize
}

/// Set once the scheduler is running on the boot CPU; other CPUs wait for it.
static READY: AtomicBool = AtomicBool::new(false);

/// How long a CPU that has just gone idle spins before it halts. Halting
/// under an emulator or hypervisor puts its host thread to sleep, and an
/// IPI must then wake that thread through the host's scheduler: a cross-CPU
/// ping-pong pays that twice per round trip. Spinning a little first, the
/// way Linux's haltpoll does in guests, takes the wake-up as a store (and
/// costs some CPU time only right after a thread blocked).
const IDLE_POLL_NS: u64 = 50_000;

/// Set by a CPU that queued work for a polling CPU instead of sending it an
/// IPI; cleared by the poller.
static POLL_KICK: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Whether CPUs may enter the scheduler (for `smp::ap_entry`).
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Starts scheduling on the boot CPU: its boot context becomes its idle
/// thread, and `boot` runs in a kernel thread. Never returns.
pub fn start(boot: fn()) -> ! {
    let fpu_mode = fpu::init();
    if !trap::register_irq(RESCHEDULE_VECTOR, on_reschedule_ipi) {
        panic!("sched: vector {RESCHEDULE_VECTOR:#x} already taken");
    }
    timer::set_expiry_hook(on_timer_expiry);
    adopt_boot_context();
    if let Err(status) = thread::start_reaper() {
        panic!("sched: cannot start the reaper: {status}");
    }
    if let Err(status) = spawn_kernel_thread("boot", PRIORITY_DEFAULT, boot) {
        panic!("sched: cannot start the boot thread: {status}");
    }
    let cpus = crate::arch::x86::smp::online_count();
    log::info!("sched: {cpus} CPUs scheduling, time slice {} ms, fpu via {fpu_mode}", TIME_SLICE_NS / 1_000_000);
    READY.store(true, Ordering::Release);
    // Wake the other CPUs from their pre-scheduler halt.
    let me = percpu::cpu_index();
    for cpu in crate::arch::x86::smp::online_cpus().filter(|c| c.index != me) {
        ipi::send(cpu.index, RESCHEDULE_VECTOR);
    }
    idle_loop()
}

/// Enters the scheduler on a secondary CPU (after [`is_ready`]). Never returns.
pub fn enter_secondary() -> ! {
    adopt_boot_context();
    idle_loop()
}

/// Turns the calling CPU's boot context into its idle thread and marks the
/// CPU active.
fn adopt_boot_context() {
    let cpu = this_cpu();
    let idle = match Thread::new_idle(cpu as u32) {
        Ok(idle) => idle,
        Err(status) => panic!("sched: no idle thread for cpu{cpu}: {status}"),
    };
    let ptr = Arc::as_ptr(&idle);
    let mut g = lock();
    let c = &mut g.cpus[cpu];
    c.idle = Some(idle.clone());
    c.current = Some(idle);
    c.active = true;
    g.active_end = g.active_end.max(cpu + 1);
    percpu::current().current_thread.store(ptr as *mut (), Ordering::Release);
    drop(g);
}

/// The idle thread's loop: run whatever is ready, else halt with interrupts
/// on. Interrupts are off from the check to the `hlt` (`sti` takes effect
/// after it), so a wake-up IPI in between is not lost.
fn idle_loop() -> ! {
    loop {
        interrupts::disable();
        crate::vm::AddressSpace::idle_release_retired();
        let mut g = lock();
        let cpu = this_cpu();
        // A set `need_resched` makes wakers skip the IPI (or kick): it must
        // not outlive the work it was set for, or this CPU would halt with
        // a later thread queued.
        if g.cpus[cpu].mask != 0 || g.cpus[cpu].need_resched {
            reschedule(&mut g);
            drop(g);
            continue;
        }
        // Poll only right after running something (however the idle thread
        // was switched out: from this loop or from an interrupt while
        // halted): a thread that just blocked is likely to be woken soon.
        if core::mem::take(&mut g.cpus[cpu].just_idle) {
            g.cpus[cpu].polling = true;
            drop(g);
            interrupts::enable();
            let kick = &POLL_KICK[cpu];
            let until = crate::time::now_ns().saturating_add(IDLE_POLL_NS);
            while !kick.load(Ordering::Acquire) && crate::time::now_ns() < until {
                core::hint::spin_loop();
            }
            interrupts::disable();
            // Under the lock: a waker that still saw `polling` queued its
            // thread before this, and the check above finds it.
            lock().cpus[cpu].polling = false;
            kick.store(false, Ordering::Relaxed);
            continue;
        }
        drop(g);
        interrupts::enable_and_hlt();
    }
}

/// Switches this CPU to the best ready thread. A still-runnable current
/// thread goes to the back of its priority's queue first, so it keeps the
/// CPU only if nothing of its priority or higher is ready. Returns (with
/// the lock held again) when the calling thread next runs.
fn reschedule(g: &mut SchedGuard) {
    let cpu = this_cpu();
    let now = crate::time::now_ns();
    let (prev_ptr, next_ptr) = {
        let s: &mut Sched = g;
        let c = &mut s.cpus[cpu];
        c.need_resched = false;
        // Whatever runs next, nobody polls here any more: wake-ups need IPIs.
        c.polling = false;
        let Some(prev) = c.current.take() else { return };
        let prev_ptr = Arc::as_ptr(&prev);
        let mut requeued = false;
        match prev.state() {
            State::Running if prev.is_idle() => {}
            State::Running => {
                let target = prev.affinity().map_or(cpu, |a| a as usize);
                if target == cpu || !s.cpus.get(target).is_some_and(|t| t.active) {
                    prev.set_state(State::Ready);
                    s.cpus[cpu].push(prev);
                    requeued = true;
                } else {
                    // Pinned elsewhere since it last ran: move it there
                    // (one reschedule IPI at most, as for any wake-up).
                    s.enqueue_on(target, prev);
                }
            }
            State::Dying => s.dead.push_back(prev),
            // Blocked: its wait queue (and timer queue) hold it.
            _ => debug_assert!(Arc::strong_count(&prev) > 1, "a blocked thread must be queued"),
        }
        let c = &mut s.cpus[cpu];
        let next = match c.pop() {
            Some(next) => next,
            None => match &c.idle {
                Some(idle) => idle.clone(),
                None => return,
            },
        };
        let next_ptr = Arc::as_ptr(&next);
        next.set_state(State::Running);
        next.set_cpu(cpu as u32);
        c.just_idle = next.is_idle() && next_ptr != prev_ptr;
        c.current = Some(next);
        if next_ptr == prev_ptr {
            // Nothing better was ready: keep running with a fresh slice.
            debug_assert!(requeued || prev_ptr == c.idle.as_ref().map_or(core::ptr::null(), Arc::as_ptr));
            start_slice(c, now);
            program_timer(c);
            return;
        }
        start_slice(c, now);
        program_timer(c);
        (prev_ptr, next_ptr)
    };
    // SAFETY: both threads are kept alive by scheduler structures (a queue,
    // the dead list, or `current`), none of which can let go of them before
    // this CPU releases the lock, which happens only after the switch.
    let (prev, next) = unsafe { (&*prev_ptr, &*next_ptr) };
    let ran = now.saturating_sub(prev.switched_in_at.load(Ordering::Relaxed));
    prev.runtime.fetch_add(ran, Ordering::Relaxed);
    next.switched_in_at.store(now, Ordering::Relaxed);
    prev.on_cpu.store(false, Ordering::Relaxed);
    next.on_cpu.store(true, Ordering::Relaxed);
    install_on_cpu(next);
    if let Some(state) = prev.fpu() {
        // SAFETY: `prev` is running here, so its state is in the registers
        // and no other CPU touches its save area.
        unsafe { state.save() };
    }
    if let Some(state) = next.fpu() {
        // SAFETY: `next` runs nowhere; its area holds a saved or reset state.
        unsafe { state.restore() };
    }
    // A kernel thread keeps the user space that is loaded (its slot keeps it
    // alive), so a thread woken here after idling needs no CR3 load.
    match next.address_space() {
        Some(space) => space.activate(),
        None => crate::vm::AddressSpace::enter_kernel_thread(),
    }
    // SAFETY: interrupts are off; `prev.saved_rsp` lives as long as `prev`
    // (see above); the lock, held until the other side of the switch
    // releases it, keeps any CPU from resuming `prev` before its RSP is
    // saved; `next` saved its RSP the same way (or is new) and runs nowhere.
    unsafe { context::switch(prev.saved_rsp.as_ptr(), next.saved_rsp.load(Ordering::Relaxed)) };
}

/// Points this CPU's per-CPU slots at `thread` (about to run here).
fn install_on_cpu(thread: &Thread) {
    let percpu: &PerCpu = percpu::current();
    percpu.current_thread.store(thread as *const Thread as *mut (), Ordering::Release);
    let (low, high) = thread.stack_bounds();
    percpu.thread_stack[0].store(low, Ordering::Relaxed);
    percpu.thread_stack[1].store(high, Ordering::Relaxed);
    if high != 0 {
        percpu.kernel_stack_top.store(high, Ordering::Relaxed);
        // SAFETY: this CPU, interrupts off, and `high` tops the kernel
        // stack of the thread about to run here.
        unsafe { gdt::set_kernel_stack(percpu, high) };
    }
}

fn start_slice(c: &mut CpuQueue, now: u64) {
    c.slice_end = match &c.current {
        Some(t) if !t.is_idle() => now.saturating_add(TIME_SLICE_NS),
        _ => INFINITE,
    };
    SLICE_END[this_cpu()].store(c.slice_end, Ordering::Relaxed);
}

/// Each CPU's `slice_end`, readable without the lock by [`preempt_point`].
static SLICE_END: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(INFINITE) }; MAX_CPUS];

/// For a thread that may loop in the kernel without blocking (a VCPU
/// handling guest exits): switches if its slice is over and a thread of its
/// priority or higher waits here, without waiting for the timer interrupt.
/// A VCPU spinning on HLT exits under QEMU was seen taking no timer
/// interrupt at all (why is not known), and nothing else could preempt it.
pub fn preempt_point() {
    if crate::time::now_ns() < SLICE_END[this_cpu()].load(Ordering::Relaxed) {
        return;
    }
    let mut g = lock();
    let now = crate::time::now_ns();
    let c = &mut g.cpus[this_cpu()];
    if c.slice_end <= now {
        if c.highest_ready() >= c.current_priority() {
            c.need_resched = true;
        } else {
            start_slice(c, now);
            program_timer(c);
        }
    }
    if g.cpus[this_cpu()].need_resched {
        reschedule(&mut g);
    }
}

/// Makes sure this CPU's timer fires by the earlier of its first timer
/// deadline and the end of the running thread's slice. `c` must be this
/// CPU's queue.
///
/// A timer already armed for an earlier moment is left alone: when it
/// fires, `on_timer_expiry` finds nothing due and arms the later deadline
/// (at most once a slice). Re-arming on every switch, as each new slice
/// asks for a later end, cost an APIC write per switch, which under QEMU
/// is a host timer update and a wake-up of its main loop.
fn program_timer(c: &mut CpuQueue) {
    /// An armed deadline this far in the past has lost its interrupt: arm
    /// again rather than wait for it.
    const OVERDUE_NS: u64 = 1_000_000;
    let deadline = c.next_timer().min(c.slice_end);
    if deadline == c.programmed {
        return;
    }
    if c.programmed != INFINITE
        && deadline > c.programmed
        && c.programmed.saturating_add(OVERDUE_NS) > crate::time::now_ns()
    {
        return;
    }
    c.programmed = deadline;
    if deadline == INFINITE {
        timer::cancel();
    } else {
        timer::set_deadline(deadline);
    }
}

impl Sched {
    /// Makes a thread whose wait ended runnable. A thread still on its CPU
    /// (it has not switched out since it queued itself) just keeps running.
    fn make_ready(&mut self, thread: Arc<Thread>) {
        if thread.on_cpu.load(Ordering::Relaxed) {
            thread.set_state(State::Running);
            return;
        }
        let target = self.place_woken(&thread);
        self.enqueue_on(target, thread);
    }

    /// Queues a ready thread on `target` and makes that CPU preempt if the
    /// thread beats what it runs.
    fn enqueue_on(&mut self, target: usize, thread: Arc<Thread>) {
        thread.set_state(State::Ready);
        thread.set_cpu(target as u32);
        let prio = thread.priority();
        let c = &mut self.cpus[target];
        c.push(thread);
        if prio > c.current_priority() && !c.need_resched {
            c.need_resched = true;
            if target != this_cpu() {
                if c.polling {
                    POLL_KICK[target].store(true, Ordering::Release);
                } else {
                    ipi::send(target as u32, RESCHEDULE_VECTOR);
                }
            }
        }
    }

    /// Where a woken thread runs: its pinned CPU; else its last CPU, unless
    /// that one is busy at the same or a higher priority and another CPU idles.
    fn place_woken(&self, thread: &Thread) -> usize {
        if let Some(cpu) = thread.affinity().map(|a| a as usize).filter(|&a| self.is_active(a)) {
            return cpu;
        }
        let last = thread.cpu() as usize;
        let last = if self.is_active(last) { last } else { this_cpu() };
        if self.cpus[last].load() == 0 {
            return last;
        }
        self.cpus[..self.active_end].iter().position(|c| c.active && c.load() == 0).unwrap_or(last)
    }

    /// Where a new thread starts: its pinned CPU, else the least-loaded one
    /// (the lowest index among equals, this CPU first).
    fn place_new(&self, thread: &Thread) -> usize {
        if let Some(cpu) = thread.affinity().map(|a| a as usize).filter(|&a| self.is_active(a)) {
            return cpu;
        }
        let me = this_cpu();
        let mut best = (self.cpus[me].load(), me);
        for (index, c) in self.cpus[..self.active_end].iter().enumerate() {
            if c.active && c.load() < best.0 {
                best = (c.load(), index);
            }
        }
        best.1
    }

    fn is_active(&self, cpu: usize) -> bool {
        self.cpus.get(cpu).is_some_and(|c| c.active)
    }

    /// Ends a blocked thread's wait with `code`: takes it off its wait and
    /// timer queues and makes it runnable. False if it was not blocked.
    fn unblock(&mut self, thread: &Thread, code: WakeCode) -> bool {
        if thread.state() != State::Blocked {
            return false;
        }
        let from_queue = thread.leave_wait_queue();
        let from_timer = self.cancel_timer(thread);
        thread.set_wake_code(code);
        match from_queue.or(from_timer) {
            Some(arc) => {
                self.make_ready(arc);
                true
            }
            None => false,
        }
    }

    /// Puts a blocking thread on `cpu`'s timer queue.
    fn arm_timer(&mut self, cpu: usize, thread: Arc<Thread>, deadline: u64) {
        thread.timer_deadline.store(deadline, Ordering::Relaxed);
        thread.timer_cpu.store(cpu as u32, Ordering::Relaxed);
        self.cpus[cpu].timers.insert(thread);
    }

    /// Takes a thread off the timer queue it is on, if any.
    fn cancel_timer(&mut self, thread: &Thread) -> Option<Arc<Thread>> {
        if !thread.timer_link.is_linked() {
            return None;
        }
        let cpu = thread.timer_cpu.load(Ordering::Relaxed) as usize;
        let tree = &mut self.cpus.get_mut(cpu)?.timers;
        // SAFETY: a linked timer link is in the tree of CPU `timer_cpu`
        // (both set together in `arm_timer`, under the scheduler lock).
        unsafe { tree.cursor_mut_from_ptr(thread) }.remove()
    }
}

/// After waking threads: if this CPU should now run another thread, switch
/// at once when the caller can (interrupts were on: it holds no spinlock),
/// else raise a self-IPI that switches once interrupts are back on.
fn preempt_if_needed(g: &mut SchedGuard) {
    let cpu = this_cpu();
    if !g.cpus[cpu].need_resched {
        return;
    }
    if g.irq_on {
        reschedule(g);
    } else {
        ipi::send(cpu as u32, RESCHEDULE_VECTOR);
    }
}

/// Wakes CPU `cpu` if it idles, so its idle loop looks again at what it
/// holds (a retired address space); a busy CPU only checks its queues.
pub fn kick_idle(cpu: u32) {
    ipi::send(cpu, RESCHEDULE_VECTOR);
}

/// Reschedule IPI: another CPU queued work here that should preempt.
fn on_reschedule_ipi(_frame: &mut trap::TrapFrame) {
    crate::arch::x86::apic::eoi();
    if !READY.load(Ordering::Acquire) || percpu::current().current_thread.load(Ordering::Relaxed).is_null() {
        return; // a CPU waiting to enter the scheduler: just woken
    }
    let mut g = lock();
    let c = &g.cpus[this_cpu()];
    if c.need_resched || c.highest_ready() > c.current_priority() {
        reschedule(&mut g);
    }
}

/// The deadline timer's hook (interrupt context, interrupts off, EOI sent):
/// wakes expired sleepers and ends the running thread's slice when due.
fn on_timer_expiry(now: u64) {
    let mut g = lock();
    let cpu = this_cpu();
    g.cpus[cpu].programmed = INFINITE;
    loop {
        let c = &mut g.cpus[cpu];
        let expired = c.timers.front().get().is_some_and(|t| t.timer_deadline.load(Ordering::Relaxed) <= now);
        if !expired {
            break;
        }
        let Some(thread) = c.timers.front_mut().remove() else { break };
        g.unblock(&thread, WakeCode::TimedOut);
    }
    let c = &mut g.cpus[cpu];
    if c.slice_end <= now {
        if c.highest_ready() >= c.current_priority() {
            c.need_resched = true;
        } else {
            start_slice(c, now);
        }
    }
    if c.need_resched {
        reschedule(&mut g);
    } else {
        program_timer(c);
    }
}
