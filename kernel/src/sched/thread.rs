//! Threads: creation, the current thread, yield, exit, join, kill, priority.

use super::wait::{self, WaitQueue, WakeReason};
use super::{lock, reschedule, Sched, SchedGuard, INFINITE, PRIORITY_DEFAULT, PRIORITY_HIGH, PRIORITY_HIGHEST};
use crate::arch::x86::fpu::FpuState;
use crate::arch::x86::{context, percpu};
use crate::mm::kstack::KernelStack;
use crate::sync::IrqSpinlock;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use intrusive_collections::{LinkedList, LinkedListAtomicLink, RBTreeAtomicLink};
use mx_abi::Status;

/// Longest name kept (longer names are cut at a character boundary).
pub const NAME_LEN: usize = 32;
/// `affinity` value meaning "any CPU".
const ANY_CPU: u32 = u32::MAX;

/// A thread's scheduling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThreadState {
    /// Created, not started.
    New = 0,
    /// On a run queue.
    Ready = 1,
    /// On a CPU.
    Running = 2,
    /// On a wait queue (and maybe a timer queue).
    Blocked = 3,
    /// Has called `exit`; its stack is still in use or awaits the reaper.
    Dying = 4,
    /// Exited and its kernel stack freed; `join` returns.
    Dead = 5,
}

pub(super) use ThreadState as State;

impl ThreadState {
    fn from_raw(raw: u8) -> ThreadState {
        match raw {
            0 => ThreadState::New,
            1 => ThreadState::Ready,
            2 => ThreadState::Running,
            3 => ThreadState::Blocked,
            4 => ThreadState::Dying,
            _ => ThreadState::Dead,
        }
    }
}

/// Why a wait ended, as stored in a thread (tag in the high half).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WakeCode {
    None,
    Woken(i32),
    TimedOut,
    Interrupted,
}

impl WakeCode {
    fn to_raw(self) -> u64 {
        match self {
            WakeCode::None => 0,
            WakeCode::Woken(status) => (1 << 32) | u64::from(status as u32),
            WakeCode::TimedOut => 2 << 32,
            WakeCode::Interrupted => 3 << 32,
        }
    }

    fn from_raw(raw: u64) -> WakeCode {
        match raw >> 32 {
            1 => WakeCode::Woken(raw as u32 as i32),
            2 => WakeCode::TimedOut,
            3 => WakeCode::Interrupted,
            _ => WakeCode::None,
        }
    }
}

/// How to create a thread.
#[derive(Clone, Debug)]
pub struct ThreadOptions<'a> {
    pub name: &'a str,
    /// 0..=31 (`MX_PRIORITY_LOWEST..=MX_PRIORITY_HIGHEST`).
    pub priority: i32,
    /// Run only on this CPU (by dense index), or anywhere.
    pub affinity: Option<u32>,
    /// Give the thread an x87/SSE/AVX save area (threads running user or
    /// guest code); kernel-only threads need none.
    pub fpu: bool,
    /// The user address space the thread runs in (None: kernel only). The
    /// thread keeps it alive, and the switch activates it through `vm`, so
    /// TLB shootdowns reach every CPU running it.
    pub address_space: Option<Arc<crate::vm::AddressSpace>>,
}

impl<'a> ThreadOptions<'a> {
    pub fn new(name: &'a str) -> Self {
        ThreadOptions { name, priority: PRIORITY_DEFAULT, affinity: None, fpu: false, address_space: None }
    }
}

/// A new thread's entry closure, boxed.
trait Entry: Send {
    /// Frees the box, then runs the closure: if the closure ends in
    /// [`exit`], only what it captured (on the stack by then) is leaked.
    fn run(self: Box<Self>);
}

struct Closure<F>(F);

impl<F: FnOnce() + Send> Entry for Closure<F> {
    fn run(self: Box<Self>) {
        #[allow(clippy::boxed_local, reason = "moving out frees the box before the closure runs")]
        fn unbox<T>(boxed: Box<T>) -> T {
            *boxed
        }
        let Closure(f) = unbox(self);
        f()
    }
}

/// A kernel thread, or the kernel side of a user thread.
pub struct Thread {
    id: u64,
    name: ([u8; NAME_LEN], u8),
    idle: bool,
    /// Run queue, wait queue or dead list (never two at once).
    pub(super) queue_link: LinkedListAtomicLink,
    /// Its CPU's timer queue, while blocked with a deadline.
    pub(super) timer_link: RBTreeAtomicLink,
    pub(super) timer_deadline: AtomicU64,
    pub(super) timer_cpu: AtomicU32,
    /// The stack pointer saved by the context switch.
    pub(super) saved_rsp: AtomicU64,
    /// Whether a CPU runs this thread's context (cleared when it switches out).
    pub(super) on_cpu: AtomicBool,
    /// The wait queue it is on while blocked (null otherwise).
    pub(super) waiting_on: AtomicPtr<WaitQueue>,
    // The scheduler fields below change only under the scheduler lock.
    state: AtomicU8,
    priority: AtomicU8,
    /// Last (or current) CPU.
    cpu: AtomicU32,
    affinity: AtomicU32,
    wake_code: AtomicU64,
    killed: AtomicBool,
    /// Set while the thread resolves a page fault of its own user code:
    /// fault injection spares those allocations (`mm::heap::fault`), since
    /// a failed one has no status to report, only a kill.
    fault_inject_exempt: AtomicBool,
    exit_code: AtomicI32,
    /// `[low, high)` of its kernel stack (0, 0 for an idle thread).
    stack_bounds: (u64, u64),
    /// Freed by the reaper once the thread has exited.
    stack: IrqSpinlock<Option<KernelStack>>,
    entry: IrqSpinlock<Option<Box<dyn Entry>>>,
    /// Whether the thread is dead (its stack freed); joiners wait on `joiners`.
    dead: IrqSpinlock<bool>,
    joiners: WaitQueue,
    address_space: spin::Once<Arc<crate::vm::AddressSpace>>,
    fpu: Option<Box<FpuState>>,
    /// Time spent running before the current stint, and when that began.
    pub(super) runtime: AtomicU64,
    pub(super) switched_in_at: AtomicU64,
    /// The object this thread runs for (a user thread's), if any.
    owner: IrqSpinlock<Option<Owner>>,
}

/// What a thread can be owned by: any kernel object (the scheduler does not
/// know their types; owners downcast).
pub type Owner = Arc<dyn core::any::Any + Send + Sync>;

impl core::fmt::Debug for Thread {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.id)
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn name_bytes(name: &str) -> ([u8; NAME_LEN], u8) {
    let mut len = name.len().min(NAME_LEN);
    while !name.is_char_boundary(len) {
        len -= 1;
    }
    let mut bytes = [0; NAME_LEN];
    bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
    (bytes, len as u8)
}

fn check_priority(priority: i32) -> Result<u8, Status> {
    u8::try_from(priority).ok().filter(|&p| i32::from(p) <= PRIORITY_HIGHEST).ok_or(Status::InvalidArgs)
}

impl Thread {
    fn bare(name: &str, priority: u8, idle: bool, stack: Option<KernelStack>, fpu: Option<Box<FpuState>>) -> Thread {
        let stack_bounds = stack.as_ref().map_or((0, 0), |s| (s.bottom(), s.top()));
        Thread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: name_bytes(name),
            idle,
            queue_link: LinkedListAtomicLink::new(),
            timer_link: RBTreeAtomicLink::new(),
            timer_deadline: AtomicU64::new(INFINITE),
            timer_cpu: AtomicU32::new(0),
            saved_rsp: AtomicU64::new(0),
            on_cpu: AtomicBool::new(false),
            waiting_on: AtomicPtr::new(core::ptr::null_mut()),
            state: AtomicU8::new(State::New as u8),
            priority: AtomicU8::new(priority),
            cpu: AtomicU32::new(percpu::cpu_index()),
            affinity: AtomicU32::new(ANY_CPU),
            wake_code: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            fault_inject_exempt: AtomicBool::new(false),
            exit_code: AtomicI32::new(0),
            stack_bounds,
            stack: IrqSpinlock::new(stack),
            entry: IrqSpinlock::new(None),
            dead: IrqSpinlock::new(false),
            joiners: WaitQueue::new(),
            address_space: spin::Once::new(),
            fpu,
            runtime: AtomicU64::new(0),
            switched_in_at: AtomicU64::new(0),
            owner: IrqSpinlock::new(None),
        }
    }

    /// Creates a thread that will run `entry` once started ([`Thread::start`]).
    /// Errors: `INVALID_ARGS` for a bad priority, `NO_MEMORY`.
    pub fn create(options: &ThreadOptions, f: impl FnOnce() + Send + 'static) -> Result<Arc<Thread>, Status> {
        let priority = check_priority(options.priority)?;
        let stack = KernelStack::new().ok_or(Status::NoMemory)?;
        let high = stack.top();
        let fpu = if options.fpu { Some(FpuState::try_new().ok_or(Status::NoMemory)?) } else { None };
        let thread = Thread::bare(options.name, priority, false, Some(stack), fpu);
        thread.affinity.store(options.affinity.unwrap_or(ANY_CPU), Ordering::Relaxed);
        if let Some(space) = &options.address_space {
            thread.address_space.call_once(|| space.clone());
        }
        *thread.entry.lock() = Some(Box::new(Closure(f)));
        // SAFETY: the stack is fresh and mapped, and no thread runs on it.
        let rsp = unsafe { context::init_stack(high, thread_entry) };
        thread.saved_rsp.store(rsp, Ordering::Relaxed);
        Ok(Arc::new(thread))
    }

    /// The idle thread of `cpu`: the CPU's boot context, already running.
    pub(super) fn new_idle(cpu: u32) -> Result<Arc<Thread>, Status> {
        let mut name = *b"idle/000";
        let digits = [cpu / 100 % 10, cpu / 10 % 10, cpu % 10];
        for (slot, digit) in name[5..].iter_mut().zip(digits) {
            *slot = b'0' + digit as u8;
        }
        let name = core::str::from_utf8(&name).unwrap_or("idle");
        let thread = Thread::bare(name, 0, true, None, None);
        thread.state.store(State::Running as u8, Ordering::Relaxed);
        thread.on_cpu.store(true, Ordering::Relaxed);
        thread.cpu.store(cpu, Ordering::Relaxed);
        thread.affinity.store(cpu, Ordering::Relaxed);
        Ok(Arc::new(thread))
    }

    /// Makes a new thread runnable, on the least-loaded CPU (or its pinned
    /// one). `BAD_STATE` if it was started before.
    pub fn start(self: &Arc<Self>) -> Result<(), Status> {
        let mut g = lock();
        if self.state() != State::New {
            return Err(Status::BadState);
        }
        let cpu = g.place_new(self);
        g.enqueue_on(cpu, self.clone());
        super::preempt_if_needed(&mut g);
        Ok(())
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn name(&self) -> &str {
        let (bytes, len) = &self.name;
        core::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("?")
    }

    pub fn state(&self) -> ThreadState {
        State::from_raw(self.state.load(Ordering::Relaxed))
    }

    pub(super) fn set_state(&self, state: ThreadState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub fn priority(&self) -> i32 {
        i32::from(self.priority.load(Ordering::Relaxed))
    }

    /// The CPU it runs on, or ran on last.
    pub fn cpu(&self) -> u32 {
        self.cpu.load(Ordering::Relaxed)
    }

    pub(super) fn set_cpu(&self, cpu: u32) {
        self.cpu.store(cpu, Ordering::Relaxed);
    }

    pub fn affinity(&self) -> Option<u32> {
        Some(self.affinity.load(Ordering::Relaxed)).filter(|&a| a != ANY_CPU)
    }

    pub fn is_idle(&self) -> bool {
        self.idle
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// The code passed to [`exit`] (0 until then).
    pub fn exit_code(&self) -> i32 {
        self.exit_code.load(Ordering::Relaxed)
    }

    /// The user address space it runs in (None: the kernel's tables).
    pub fn address_space(&self) -> Option<&Arc<crate::vm::AddressSpace>> {
        self.address_space.get()
    }

    /// Nanoseconds the thread has run (`MX_CLOCK_THREAD`).
    pub fn runtime_ns(&self) -> u64 {
        let total = self.runtime.load(Ordering::Relaxed);
        if self.on_cpu.load(Ordering::Relaxed) {
            let since = crate::time::now_ns().saturating_sub(self.switched_in_at.load(Ordering::Relaxed));
            total + since
        } else {
            total
        }
    }

    /// Records the object this thread runs for (e.g. a user thread object).
    /// The reaper drops it once the thread is dead, breaking any cycle.
    pub fn set_owner(&self, owner: Owner) {
        let old = self.owner.lock().replace(owner);
        drop(old);
    }

    /// The object this thread runs for, if any.
    pub fn owner(&self) -> Option<Owner> {
        self.owner.lock().clone()
    }

    /// Forgets the owner.
    pub fn clear_owner(&self) {
        let old = self.owner.lock().take();
        drop(old);
    }

    pub fn fpu(&self) -> Option<&FpuState> {
        self.fpu.as_deref()
    }

    /// `[low, high)` of its kernel stack; `high` is what TSS.RSP0 and the
    /// per-CPU syscall stack slot hold while it runs. (0, 0) for idle threads.
    pub fn stack_bounds(&self) -> (u64, u64) {
        self.stack_bounds
    }

    pub(super) fn set_wake_code(&self, code: WakeCode) {
        self.wake_code.store(code.to_raw(), Ordering::Relaxed);
    }

    pub(super) fn take_wake_code(&self) -> WakeCode {
        WakeCode::from_raw(self.wake_code.swap(0, Ordering::Relaxed))
    }

    /// Asks the thread to stop: sets its kill flag and, if it is blocked,
    /// ends the wait with [`WakeReason::Interrupted`]. Later blocking calls
    /// return `Interrupted` at once. The thread itself decides when to exit.
    pub fn kill(&self) {
        let mut g = lock();
        self.killed.store(true, Ordering::Relaxed);
        g.unblock(self, WakeCode::Interrupted);
        super::preempt_if_needed(&mut g);
    }

    /// Sets the priority (0..=31). A ready thread moves to its new queue; a
    /// running one is preempted if a ready thread now beats it.
    pub fn set_priority(&self, priority: i32) -> Result<(), Status> {
        let priority = check_priority(priority)?;
        if self.idle {
            return Err(Status::BadState);
        }
        let mut g = lock();
        let old = self.priority();
        let cpu = self.cpu() as usize;
        match self.state() {
            State::Ready => {
                let queued = g.cpus[cpu].remove(self, old);
                self.priority.store(priority, Ordering::Relaxed);
                if let Some(thread) = queued {
                    g.enqueue_on(cpu, thread);
                }
            }
            State::Running => {
                self.priority.store(priority, Ordering::Relaxed);
                g.request_resched_if_beaten(cpu);
            }
            _ => self.priority.store(priority, Ordering::Relaxed),
        }
        super::preempt_if_needed(&mut g);
        Ok(())
    }

    /// Pins the thread to `cpu` (a dense CPU index), or lets it run
    /// anywhere (`None`). A pinned thread moves at its next switch.
    /// `INVALID_ARGS` if the CPU does not run the scheduler.
    pub fn set_affinity(&self, cpu: Option<u32>) -> Result<(), Status> {
        if self.idle {
            return Err(Status::BadState);
        }
        let mut g = lock();
        if let Some(target) = cpu {
            if !g.is_active(target as usize) {
                return Err(Status::InvalidArgs);
            }
        }
        self.affinity.store(cpu.unwrap_or(ANY_CPU), Ordering::Relaxed);
        let here = self.cpu() as usize;
        let Some(target) = cpu.map(|c| c as usize).filter(|&t| t != here) else { return Ok(()) };
        match self.state() {
            State::Ready => {
                if let Some(thread) = g.cpus[here].remove(self, self.priority()) {
                    g.enqueue_on(target, thread);
                }
            }
            State::Running => {
                // Its CPU requeues it on the pinned one when it switches.
                g.cpus[here].need_resched = true;
                if here != super::this_cpu() {
                    crate::arch::x86::ipi::send(here as u32, crate::arch::x86::apic::RESCHEDULE_VECTOR);
                }
            }
            _ => {}
        }
        super::preempt_if_needed(&mut g);
        Ok(())
    }

    /// Waits until the thread is dead (exited and its stack freed) and
    /// returns its exit code. Errors: `TIMED_OUT` at `deadline` (absolute
    /// ns; `INFINITE` for none), `INTERNAL_INTR_RETRY` if the caller is
    /// killed meanwhile, `BAD_STATE` when joining itself.
    pub fn join(&self, deadline: u64) -> Result<i32, Status> {
        if core::ptr::eq(self, percpu::current_thread_ptr() as *const Thread) {
            return Err(Status::BadState);
        }
        loop {
            let dead = self.dead.lock();
            if *dead {
                return Ok(self.exit_code());
            }
            match self.joiners.block(dead, deadline) {
                WakeReason::Woken(_) => continue,
                WakeReason::TimedOut => {
                    return if *self.dead.lock() { Ok(self.exit_code()) } else { Err(Status::TimedOut) }
                }
                WakeReason::Interrupted => return Err(Status::InternalIntrRetry),
            }
        }
    }

    /// Frees what an exited thread no longer needs and wakes its joiners.
    /// The reaper's job, outside the scheduler lock.
    fn reap(&self) {
        let stack = self.stack.lock().take();
        drop(stack);
        self.clear_owner();
        let mut dead = self.dead.lock();
        *dead = true;
        self.set_state(State::Dead);
        self.joiners.wake_all(Status::Ok.into_raw());
        drop(dead);
    }
}

impl Sched {
    /// Makes `cpu` preempt its running thread if a ready one now beats it.
    fn request_resched_if_beaten(&mut self, cpu: usize) {
        let Some(c) = self.cpus.get_mut(cpu) else { return };
        if c.highest_ready() > c.current_priority() && !c.need_resched {
            c.need_resched = true;
            if cpu != super::this_cpu() {
                crate::arch::x86::ipi::send(cpu as u32, crate::arch::x86::apic::RESCHEDULE_VECTOR);
            }
        }
    }
}

/// The running thread, borrowed without touching its reference count. It
/// stays valid while the calling thread runs (its CPU, or the queue it
/// waits on, holds it), and cannot leave the thread (neither `Send` nor `Sync`).
pub struct CurrentRef {
    ptr: *const Thread,
}

impl core::ops::Deref for CurrentRef {
    type Target = Thread;
    fn deref(&self) -> &Thread {
        // SAFETY: `ptr` is the calling thread, alive as long as it runs;
        // `CurrentRef` cannot be moved to another thread.
        unsafe { &*self.ptr }
    }
}

/// The running thread, without reference counting. Panics before the
/// scheduler runs on this CPU (a kernel bug, not reachable from user mode).
pub fn current_ref() -> CurrentRef {
    let ptr = percpu::current_thread_ptr() as *const Thread;
    if ptr.is_null() {
        panic!("sched: no current thread on cpu{}", percpu::cpu_index());
    }
    CurrentRef { ptr }
}

/// Runs `f` with fault injection off for the running thread's allocations
/// (a user page fault: see `Thread::fault_inject_exempt`).
pub fn without_fault_injection<R>(f: impl FnOnce() -> R) -> R {
    let thread = current_ref();
    let was = thread.fault_inject_exempt.swap(true, Ordering::Relaxed);
    let result = f();
    thread.fault_inject_exempt.store(was, Ordering::Relaxed);
    result
}

/// Whether the running thread (if any) is exempt from fault injection.
pub fn fault_injection_exempt() -> bool {
    let ptr = percpu::current_thread_ptr() as *const Thread;
    // SAFETY: a non-null slot is the running thread, alive while it runs.
    !ptr.is_null() && unsafe { &*ptr }.fault_inject_exempt.load(Ordering::Relaxed)
}

/// Runs `f` with the running thread.
pub fn with_current<R>(f: impl FnOnce(&Thread) -> R) -> R {
    f(&current_ref())
}

/// The running thread, as a new reference.
pub fn current() -> Arc<Thread> {
    let ptr = current_ref().ptr;
    // SAFETY: `ptr` came from `Arc::as_ptr` of the Arc this CPU's `current`
    // slot holds while the thread runs, so the allocation is live and one
    // more strong reference may be made from it.
    unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    }
}

/// Creates and starts a kernel thread running `f`; it exits with code 0
/// when `f` returns. Errors: `INVALID_ARGS` (priority), `NO_MEMORY`.
pub fn spawn_kernel_thread(
    name: &str,
    priority: i32,
    f: impl FnOnce() + Send + 'static,
) -> Result<Arc<Thread>, Status> {
    let options = ThreadOptions { priority, ..ThreadOptions::new(name) };
    spawn(&options, f)
}

/// [`spawn_kernel_thread`] with full options.
pub fn spawn(options: &ThreadOptions, f: impl FnOnce() + Send + 'static) -> Result<Arc<Thread>, Status> {
    let thread = Thread::create(options, f)?;
    thread.start()?;
    Ok(thread)
}

/// Where every new thread starts, with the scheduler lock handed over by
/// the switch and interrupts off.
extern "C" fn thread_entry() -> ! {
    super::release_after_first_switch();
    x86_64::instructions::interrupts::enable();
    let entry = with_current(|t| t.entry.lock().take());
    if let Some(entry) = entry {
        entry.run();
    }
    exit(0)
}

/// Gives the CPU to another ready thread of the same or higher priority,
/// if there is one. Must not be called while holding a spinlock.
pub fn yield_now() {
    debug_assert!(x86_64::instructions::interrupts::are_enabled(), "yield with interrupts off");
    let mut g = lock();
    reschedule(&mut g);
}

/// Ends the calling thread with `code` (see [`Thread::join`]). There is no
/// unwinding: whatever the thread's stack still owns (e.g. what its closure
/// captured) is leaked, so call it with nothing live, or just return from
/// the thread's closure (code 0).
pub fn exit(code: i32) -> ! {
    let mut g = lock();
    let me = current_ref();
    if me.is_idle() {
        panic!("sched: the idle thread cannot exit");
    }
    me.exit_code.store(code, Ordering::Relaxed);
    me.set_state(State::Dying);
    // The reaper cannot take the thread off the dead list before this CPU
    // has switched away: that needs the lock, which the switch hands on.
    wait::wake_locked(&mut g, &REAPER_QUEUE, WakeCode::Woken(0));
    reschedule(&mut g);
    panic!("sched: an exited thread was resumed");
}

/// The reaper waits here for exited threads.
static REAPER_QUEUE: WaitQueue = WaitQueue::new();

/// Starts the thread that frees exited threads' stacks.
pub(super) fn start_reaper() -> Result<(), Status> {
    spawn_kernel_thread("reaper", PRIORITY_HIGH, reaper_main).map(drop)
}

fn reaper_main() {
    loop {
        let mut batch = LinkedList::new(super::QueueAdapter::new());
        {
            let mut g: SchedGuard = lock();
            while g.dead.is_empty() {
                let _ = wait::wait_locked(&mut g, &REAPER_QUEUE, INFINITE);
            }
            core::mem::swap(&mut batch, &mut g.dead);
        }
        while let Some(thread) = batch.pop_front() {
            thread.reap();
        }
        crate::mm::kstack::recycle_freed();
    }
}
