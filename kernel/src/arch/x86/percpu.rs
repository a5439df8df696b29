//! Per-CPU data, reached through the GS base.
//!
//! Each CPU owns one `PerCpu`, whose first word points at itself so
//! `mov rax, gs:[0]` yields a normal reference. The boot CPU's lives in .bss
//! (it is needed before the heap exists); the others are allocated when they
//! are brought up and never freed.

use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

/// Stacks a CPU may be running on, for the backtrace's sanity checks.
pub const MAX_STACKS: usize = 5;

#[repr(C)]
pub struct PerCpu {
    self_ptr: *const PerCpu,
    /// Dense index 0..n, assigned in bring-up order (the boot CPU is 0).
    pub index: u32,
    /// Local APIC id, from the MADT.
    pub apic_id: AtomicU32,
    /// Written only by its own CPU (IST and RSP0 slots) and read by the CPU.
    pub tss: core::cell::UnsafeCell<TaskStateSegment>,
    /// Filled once by its own CPU in `gdt::load`.
    pub gdt: core::cell::UnsafeCell<GlobalDescriptorTable<8>>,
    /// `[low, high)` ranges of every stack this CPU runs on.
    pub stacks: spin::Mutex<[(u64, u64); MAX_STACKS]>,
    /// The running thread (a `*const sched::Thread`), null until the
    /// scheduler runs on this CPU. Written by the scheduler with interrupts
    /// off; read with one GS-relative load by [`current_thread_ptr`].
    pub current_thread: AtomicPtr<()>,
    /// Top of the running thread's kernel stack: where SYSCALL entry
    /// switches to (TSS.RSP0 holds the same value for interrupts).
    pub kernel_stack_top: AtomicU64,
    /// Scratch slot for the user RSP during SYSCALL entry.
    pub user_rsp_scratch: AtomicU64,
    /// `[low, high)` of the running thread's kernel stack, for backtraces
    /// (both 0 when the thread runs on one of `stacks`).
    pub thread_stack: [AtomicU64; 2],
}

/// Offsets in [`PerCpu`] for GS-relative access from assembly.
pub const CURRENT_THREAD_OFFSET: usize = core::mem::offset_of!(PerCpu, current_thread);
#[allow(dead_code, reason = "for the SYSCALL entry to come")]
pub const KERNEL_STACK_TOP_OFFSET: usize = core::mem::offset_of!(PerCpu, kernel_stack_top);
#[allow(dead_code, reason = "for the SYSCALL entry to come")]
pub const USER_RSP_SCRATCH_OFFSET: usize = core::mem::offset_of!(PerCpu, user_rsp_scratch);

// SAFETY: `self_ptr` is only ever read by its own CPU and points at 'static
// data; every other field is Sync.
unsafe impl Sync for PerCpu {}
// SAFETY: as above.
unsafe impl Send for PerCpu {}

impl PerCpu {
    pub const fn new(index: u32) -> Self {
        PerCpu {
            self_ptr: core::ptr::null(),
            index,
            apic_id: AtomicU32::new(0),
            tss: core::cell::UnsafeCell::new(TaskStateSegment::new()),
            gdt: core::cell::UnsafeCell::new(GlobalDescriptorTable::empty()),
            stacks: spin::Mutex::new([(0, 0); MAX_STACKS]),
            current_thread: AtomicPtr::new(core::ptr::null_mut()),
            kernel_stack_top: AtomicU64::new(0),
            user_rsp_scratch: AtomicU64::new(0),
            thread_stack: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Records a stack this CPU runs on.
    pub fn add_stack(&self, low: u64, high: u64) {
        let mut stacks = self.stacks.lock();
        if let Some(slot) = stacks.iter_mut().find(|s| s.0 == s.1) {
            *slot = (low, high);
        }
    }

    /// Whether `[addr, addr+len)` lies within one of this CPU's stacks.
    pub fn on_stack(&self, addr: u64, len: u64) -> bool {
        let (lo, hi) = (self.thread_stack[0].load(Ordering::Relaxed), self.thread_stack[1].load(Ordering::Relaxed));
        if addr >= lo && addr.checked_add(len).is_some_and(|end| end <= hi) {
            return true;
        }
        // try_lock: the panic path must not wait on a lock it may hold.
        match self.stacks.try_lock() {
            Some(stacks) => {
                stacks.iter().any(|&(lo, hi)| addr >= lo && addr.checked_add(len).is_some_and(|end| end <= hi))
            }
            None => false,
        }
    }
}

static BOOT_CPU: StaticPerCpu = StaticPerCpu(core::cell::UnsafeCell::new(PerCpu::new(0)));

#[repr(transparent)]
pub struct StaticPerCpu(core::cell::UnsafeCell<PerCpu>);
// SAFETY: only the boot CPU mutates it, once, in `install_boot_cpu`, before
// any other CPU runs.
unsafe impl Sync for StaticPerCpu {}

static ONLINE: AtomicU32 = AtomicU32::new(0);

/// Installs the boot CPU's per-CPU block. Must run first on the boot CPU.
pub fn install_boot_cpu() -> &'static PerCpu {
    let ptr = BOOT_CPU.0.get();
    // SAFETY: called once on the boot CPU before any other CPU starts and
    // before anything reads the block; afterwards it is only shared.
    unsafe { (*ptr).self_ptr = ptr };
    // SAFETY: `ptr` is a valid 'static PerCpu.
    let percpu = unsafe { &*ptr };
    set_gs_base(percpu);
    ONLINE.fetch_add(1, Ordering::Release);
    percpu
}

/// Installs a freshly allocated per-CPU block on the calling CPU.
pub fn install(percpu: &'static mut PerCpu) -> &'static PerCpu {
    percpu.self_ptr = percpu as *const PerCpu;
    let percpu: &'static PerCpu = percpu;
    set_gs_base(percpu);
    ONLINE.fetch_add(1, Ordering::Release);
    percpu
}

fn set_gs_base(percpu: &'static PerCpu) {
    use x86_64::registers::model_specific::{GsBase, KernelGsBase};
    GsBase::write(x86_64::VirtAddr::new(percpu as *const PerCpu as u64));
    // User GS starts at zero; `swapgs` on kernel entry exchanges the two.
    KernelGsBase::write(x86_64::VirtAddr::new(0));
}

/// The calling CPU's block, or `None` before `install_boot_cpu`.
#[inline]
pub fn try_current() -> Option<&'static PerCpu> {
    let ptr: *const PerCpu;
    if ONLINE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    // SAFETY: once any CPU is online every running CPU has its GS base set
    // to its own block (APs install theirs before running Rust code that
    // logs), whose first word is the block's own address.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags)) };
    // SAFETY: the pointer came from `install*`, which only stores 'static blocks.
    unsafe { ptr.as_ref() }
}

/// The running thread's `sched::Thread` pointer (null before the
/// scheduler runs on this CPU). One GS-relative load, so it cannot be torn
/// by a migration to another CPU.
#[inline]
pub fn current_thread_ptr() -> *mut () {
    if ONLINE.load(Ordering::Relaxed) == 0 {
        return core::ptr::null_mut();
    }
    let ptr: *mut ();
    // SAFETY: as in `try_current`, GS points at this CPU's block; the
    // field is a pointer-sized atomic at a fixed offset.
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) ptr, off = const CURRENT_THREAD_OFFSET,
            options(nostack, readonly, preserves_flags))
    };
    ptr
}

/// The calling CPU's block. Panics if called before the boot CPU installed its own.
#[inline]
pub fn current() -> &'static PerCpu {
    match try_current() {
        Some(percpu) => percpu,
        None => panic!("per-CPU data used before install"),
    }
}

/// The calling CPU's dense index (0 before per-CPU setup).
#[inline]
pub fn cpu_index() -> u32 {
    try_current().map_or(0, |p| p.index)
}
