//! Guests and VCPUs: the kernel objects behind `mx_guest_*` and `mx_vcpu_*`,
//! independent of the virtualization hardware, which sits behind
//! [`backend::GuestBackend`] and [`backend::VcpuBackend`] (AMD SVM with
//! nested paging: `arch::x86::svm`).
//!
//! # Guest memory
//!
//! The guest-physical address space is `MX_GUEST_PHYS_SIZE` = 2^48 bytes
//! (four-level nested paging). The physmem VMO is guest RAM from GPA 0; its
//! pages enter the nested page tables lazily, on the first nested page
//! fault for each. `guest_map` backs more guest pages with other VMOs'
//! pages (kept in a sorted list, `kcore::guestmap`), taking priority over
//! physmem; they too enter the tables lazily. MEM traps may lie anywhere
//! below 2^48 and take priority over both; a trapped page is never mapped.
//! An access to an address that is neither trapped, mapped nor RAM makes
//! `vcpu_resume` return `OUT_OF_RANGE`. The physmem VMO is pinned while the
//! guest lives, a mapped VMO while any mapping holds it: neither can
//! shrink or decommit pages the nested tables may map (`BAD_STATE`).
//!
//! Removing pages from the nested tables (`guest_unmap`, a mapping or a MEM
//! trap over pages already mapped) bumps the tables' generation, so every
//! VCPU's next entry takes a fresh ASID; the caller then shoots down: each
//! VCPU in the guest at that moment is kicked out by IPI and waited for,
//! using the entry count in its `RunState` (no allocation). Only then are
//! the VMOs of removed mappings unpinned.
//!
//! # Traps
//!
//! `guest_set_trap` validates in `kcore::trap`'s order and records the trap
//! in a sorted map per address space: the lookup on the exit path is a
//! binary search plus a reference-count increment, O(log n), no allocation.
//!
//! **Without a port** every access the trap covers (and, as in Magenta, any
//! I/O access no trap covers) comes back from `vcpu_resume` with key 0.
//!
//! **With a port** (decision 2) the trap gets a fixed pool of
//! `MX_GUEST_TRAP_POOL_SIZE` = 256 packets in that port, allocated by
//! `guest_set_trap` (`object::port::PortTrap` over `kcore::port`). Every
//! access the trap covers (`IN`/`OUT`; a memory read or write) completes in
//! the kernel: RIP moves past the instruction, the GUEST_IO packet (with the
//! `OUT` data) or GUEST_MEM packet (GPA and instruction bytes) is queued on
//! the port with the trap's key, and the guest runs on.
//! When the pool is empty the VCPU pauses inside `vcpu_resume` (its thread
//! blocks on the trap's wait queue, `Vcpu::pause_count` counts it) until a
//! `port_wait` or `try_dequeue` by any thread takes one of the trap's
//! packets; each such dequeue hands the freed packet to the oldest paused
//! VCPU and wakes exactly that one, which queues its packet and runs on.
//! Packets are never lost, duplicated or reordered. Nobody supplies a value
//! for a read delivered this way: an `IN` reads zero and a memory load
//! leaves its destination unchanged, so a trap whose reads need answers is
//! set without a port (documented in `syscalls/hypervisor.h`).
//! The register operand of an asynchronous memory write is not captured
//! (a MEM trap with a port is a doorbell).
//!
//! **Teardown.** Closing the guest's last handle destroys its traps: each
//! trap's pool is removed from its port, cancelling only that trap's queued
//! packets (user packets with the same key stay), and VCPUs paused on it
//! wake: their `vcpu_resume` returns `BAD_STATE` (the access completed, its
//! packet is dropped). The VCPUs hold the guest's memory and may run on, as
//! in Zircon, but without traps (accesses behave as untrapped ones: I/O
//! comes back from `vcpu_resume` with key 0). A port that loses its
//! last handle while a guest uses it: paused VCPUs wake, and each access
//! that would queue a packet completes, drops the packet and makes
//! `vcpu_resume` return `BAD_STATE` (Zircon's choice); resuming again runs
//! the guest on, so the guest keeps working. A paused VCPU whose thread is
//! killed returns `CANCELED`, passing on any packet slot it was handed.
//!
//! # VCPUs
//!
//! A VCPU belongs to the thread that created it: `resume`, `read_state` and
//! `write_state` from another thread are `BAD_STATE`. `MX_VCPU_SYSTEM`
//! reads RIP, RFLAGS, CR0/2/3/4, EFER, CS, CPL and the interrupt shadow, and
//! writes RIP, RFLAGS and CR3 only (a new CR3 takes a fresh ASID, so no
//! translation cached under the old one survives). `vcpu_interrupt` may
//! come from any thread: it marks the vector pending, wakes a VCPU halted in
//! HLT, and kicks the CPU running the guest with an IPI so the event is
//! injected at once. Events go in by priority: NMI, then external
//! interrupts (highest vector first, only when RFLAGS.IF is set and there is
//! no interrupt shadow; otherwise an interrupt window is requested), then
//! exceptions (lowest vector first). The kernel handles CPUID, MSRs, HLT,
//! PAUSE, XSETBV, INVD and interrupt windows itself (`x86`); I/O and MEM
//! trap exits go to user space, and so do, through synchronous-only traps,
//! VMMCALL (a VMCALL trap; without it VMMCALL raises #UD), RDMSR/WRMSR of a
//! trapped MSR the kernel does not virtualize (one that would raise #GP;
//! the kernel's own MSRs never leave it) and CPUID of a trapped leaf (after
//! the kernel wrote its own result to the registers); RIP is past the
//! instruction in each case. An EXCEPTION trap makes the guest's
//! exceptions on its vectors (2 and 18 cannot be trapped) exit before
//! delivery, RIP at the instruction, also #BP from INT3 (the backend
//! intercepts software interrupts while #BP or #OF is trapped, completing
//! INT n itself) and the #UD/#GP the kernel raises for an instruction; the
//! intercept bits follow the traps at every entry. Events injected by the
//! kernel (`vcpu_interrupt`) are delivered, never trapped; anything else is `NOT_SUPPORTED` with the
//! guest state intact, and a triple fault is `BAD_STATE` (the VCPU is dead).

pub mod backend;
mod objects;
mod tests;
mod x86;

pub use objects::{supported, Guest, Vcpu};
