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
//! fault for each. MEM traps may lie anywhere below 2^48, RAM or not (MMIO
//! above RAM is the usual case); a trapped page is never mapped. An access
//! to an address that is neither RAM nor trapped makes `vcpu_resume` return
//! `OUT_OF_RANGE`. The physmem VMO is pinned while the guest lives: it
//! cannot shrink or decommit pages the nested tables may map (`BAD_STATE`).
//!
//! # Traps (phase 1)
//!
//! `guest_set_trap` is complete for validation and the trap map
//! (`kcore::trap`). Every trap exit is delivered **synchronously**, through
//! `vcpu_resume`: with key 0 for a trap without a port (and for accesses no
//! trap covers, as Magenta did for I/O), and with the trap's key for a trap
//! with a port. Asynchronous delivery through the port, from the per-trap
//! packet pool with VCPU pausing (decision 2, `kcore::port`), comes next;
//! until then a port trap behaves like a synchronous one with its key.
//!
//! # VCPUs
//!
//! A VCPU belongs to the thread that created it: `resume`, `read_state` and
//! `write_state` from another thread are `BAD_STATE`. `vcpu_interrupt` may
//! come from any thread: it marks the vector pending, wakes a VCPU halted in
//! HLT, and kicks the CPU running the guest with an IPI so the event is
//! injected at once. Events go in by priority: NMI, then external
//! interrupts (highest vector first, only when RFLAGS.IF is set and there is
//! no interrupt shadow; otherwise an interrupt window is requested), then
//! exceptions (lowest vector first). The kernel handles CPUID, MSRs, HLT,
//! PAUSE, XSETBV, INVD and interrupt windows itself (`x86`); I/O and MEM
//! trap exits go to user space; anything else is `NOT_SUPPORTED` with the
//! guest state intact, and a triple fault is `BAD_STATE` (the VCPU is dead).

pub mod backend;
mod objects;
mod tests;
mod x86;

pub use objects::{supported, Guest, Vcpu};
