//! The interface between the arch-neutral guest and VCPU objects and a
//! hardware virtualization backend (AMD SVM today: `arch::x86::svm`; an
//! Intel VMX backend would implement the same two traits).
//!
//! A backend owns the hardware state: the nested page tables of a guest, and
//! per VCPU the control block, the guest registers the hardware does not
//! keep, and the guest's extended (x87/SSE/AVX) state. It runs the guest
//! until an exit and reports the exit decoded into [`Exit`]; everything that
//! is policy (which exits go to user space, CPUID and MSR emulation, event
//! priority, HLT) is the object layer's.

#![forbid(unsafe_code)]

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use kcore::x86decode::Mode;
use kcore::x86paging::PagingRegs;
use mx_abi::{Status, VcpuSystem};

/// Where a new VCPU starts (decision 9: 64-bit mode, paging on).
#[derive(Clone, Copy, Debug)]
pub struct VcpuEntry {
    pub ip: u64,
    pub cr3: u64,
}

/// The sixteen general registers, in `mx_vcpu_state_t` order: rax, rcx,
/// rdx, rbx, rsp, rbp, rsi, rdi, r8 to r15.
pub type Gprs = [u64; 16];
pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RBX: usize = 3;

/// An event to deliver through the guest's IDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Nmi,
    /// A fault or trap (vectors 0-31 but 2), with its error code if it has one.
    Exception {
        vector: u8,
        error_code: Option<u32>,
    },
    /// An external interrupt (only when the guest can take it).
    External(u8),
    /// A software interrupt (INT3, INTO or INT n completed for the guest):
    /// delivered with the gate's DPL check, pushing RIP as it is (already
    /// past the instruction).
    Software(u8),
}

/// Why the guest stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A kick arrived before the guest was entered: re-evaluate events.
    Kicked,
    /// A host interrupt or NMI (handled by the host once the exit is done).
    ExternalInterrupt,
    /// The guest can now take an external interrupt (the window asked for).
    InterruptWindow,
    /// IN or OUT. `next_rip` is the address of the following instruction.
    Io { port: u16, size: u8, input: bool, string: bool, rep: bool, next_rip: u64 },
    /// A guest-physical access the nested page tables do not map.
    /// `by_cpu`: the CPU made it itself, walking the guest's page tables or
    /// delivering an event, not as the data access of the instruction at RIP.
    NestedPageFault { gpa: u64, by_cpu: bool },
    /// CPUID (2 bytes).
    Cpuid,
    /// RDMSR or WRMSR (2 bytes).
    Msr { write: bool },
    /// HLT (1 byte).
    Hlt,
    /// PAUSE (2 bytes).
    Pause,
    /// XSETBV (3 bytes).
    Xsetbv,
    /// MOV to CR8 (the task priority), not executed; RIP at it.
    Cr8Write,
    /// An instruction with no effect to emulate (INVD), of this length.
    NoOp { len: u8 },
    /// VMMCALL (3 bytes).
    Vmcall,
    /// INT3, INTO or INT n, not executed (RIP at it): the backend
    /// intercepts them while #BP or #OF is, for CPUs that check INT3 and
    /// INTO against the INTn intercept rather than the exception's.
    SoftwareInterrupt,
    /// An exception the guest raised on an intercepted vector, not
    /// delivered; RIP is at the instruction that raised it. `error_code`
    /// is meaningful only for vectors that push one; `address` is the
    /// faulting address of a #PF.
    Exception { vector: u8, error_code: u32, address: u64 },
    /// An instruction the guest must see raise #UD (virtualization
    /// instructions of a CPU that does not offer them, MONITOR).
    Undefined,
    /// The guest shut down (triple fault).
    Shutdown,
    /// The hardware refused to enter the guest (inconsistent state).
    EntryFailed,
    /// An exit the kernel does not handle (the backend's raw exit code).
    Unknown(u64),
}

/// Shared between a running VCPU and the threads that interrupt it or
/// wait for it to leave the guest.
#[derive(Debug)]
pub struct RunState {
    /// The CPU running the guest right now, or [`NOT_RUNNING`]. Set
    /// before the entry reads anything that decides what the guest can
    /// reach (the nested tables' generation), cleared after the exit.
    pub cpu: AtomicU32,
    /// Entries begun so far, counted right after `cpu` is set: a waiter
    /// that saw entry n running knows it ended once this moves on.
    pub entries: AtomicU64,
    /// Set by `vcpu_interrupt`: the next entry must re-evaluate events.
    pub kick: AtomicBool,
    /// The entry a guest-memory shootdown waits for, or [`NO_ENTRY`]
    /// (owned by the shootdown in progress; see `Guest::shoot_down`).
    pub awaited: AtomicU64,
}

pub const NOT_RUNNING: u32 = u32::MAX;
/// No entry awaited.
pub const NO_ENTRY: u64 = u64::MAX;

impl RunState {
    pub const fn new() -> RunState {
        RunState {
            cpu: AtomicU32::new(NOT_RUNNING),
            entries: AtomicU64::new(0),
            kick: AtomicBool::new(false),
            awaited: AtomicU64::new(NO_ENTRY),
        }
    }
}

/// A guest's physical address space, as the hardware sees it.
pub trait GuestBackend: Send + Sync {
    /// Maps the 4 KiB guest page at `gpa` to the host frame `hpa`, readable,
    /// writable and executable. `NO_MEMORY` if a table cannot be allocated.
    fn map_page(&self, gpa: u64, hpa: u64) -> Result<(), Status>;
    /// Removes every mapping in `[gpa, gpa + len)`. VCPUs drop cached
    /// translations at their next entry; a VCPU in the guest now may still
    /// use them until it exits. True if anything was mapped there.
    fn unmap_range(&self, gpa: u64, len: u64) -> bool;
    /// A VCPU of this guest in the state of decision 9.
    fn create_vcpu(&self, entry: VcpuEntry) -> Result<Box<dyn VcpuBackend>, Status>;
}

/// One VCPU's hardware state. Only the VCPU's thread calls these.
pub trait VcpuBackend: Send {
    /// Enters the guest and runs it until the next exit. Sets `run.cpu`
    /// while the guest runs; if `run.kick` is set it is cleared and
    /// [`Exit::Kicked`] returned without entering. `NO_MEMORY` if this CPU
    /// cannot be prepared for guests.
    fn enter(&mut self, run: &RunState) -> Result<Exit, Status>;
    fn gprs(&self) -> Gprs;
    fn set_gprs(&mut self, gprs: &Gprs);
    fn rip(&self) -> u64;
    fn set_rip(&mut self, rip: u64);
    fn rflags(&self) -> u64;
    fn set_rflags(&mut self, rflags: u64);
    /// CR0, CR3, CR4 and EFER as the guest sees them.
    fn paging_regs(&self) -> PagingRegs;
    /// The code segment's base and the code size.
    fn code_segment(&self) -> (u64, Mode);
    /// RIP, RFLAGS, the control registers, EFER, CS, CPL and the interrupt
    /// shadow as `MX_VCPU_SYSTEM` reports them.
    fn system(&self) -> VcpuSystem;
    /// Loads the guest's CR3 (already validated); the next entry runs with
    /// no translation cached from the old one.
    fn set_cr3(&mut self, cr3: u64);
    /// RFLAGS.IF set and no interrupt shadow.
    fn interruptible(&self) -> bool;
    /// An event is already queued for the next entry (an interrupted
    /// delivery being retried, or an injection not yet made).
    fn event_pending(&self) -> bool;
    /// Queues `event` for the next entry (at most one at a time). Injected
    /// events are delivered, never intercepted.
    fn inject(&mut self, event: Event);
    /// The exception vectors (bit n = vector n) that exit as
    /// [`Exit::Exception`] instead of being delivered, from the next entry
    /// (with #BP or #OF, software interrupts exit as
    /// [`Exit::SoftwareInterrupt`] too).
    fn set_exception_intercepts(&mut self, vectors: u32);
    /// Sets the guest's CR2 (before injecting a #PF).
    fn set_cr2(&mut self, cr2: u64);
    /// Asks for [`Exit::InterruptWindow`] as soon as the guest can take an
    /// external interrupt (or stops asking).
    fn set_interrupt_window(&mut self, on: bool);
    /// Sets the guest's task priority (CR8, 0-15).
    fn set_tpr(&mut self, tpr: u8);
    /// An MSR the backend keeps in hardware state; `None` if it is not one.
    fn read_msr(&self, msr: u32) -> Option<u64>;
    /// Writes such an MSR: `None` if it is not one, `Some(Err(()))` if the
    /// value is invalid (the guest gets #GP).
    fn write_msr(&mut self, msr: u32, value: u64) -> Option<Result<(), ()>>;
    /// Sets the guest's XCR0 (already validated).
    fn set_xcr0(&mut self, value: u64);
}
