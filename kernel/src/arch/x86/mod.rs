//! x86-64: CPU setup, traps, interrupt controllers, timers, SMP.

pub mod apic;
pub mod context;
pub mod cpu;
pub mod fpu;
pub mod gdt;
pub mod ioapic;
pub mod ipi;
pub mod percpu;
pub mod pic;
pub mod port;
pub mod qemu;
pub mod serial;
pub mod smp;
pub mod svm;
pub mod syscall;
pub mod timer;
pub mod trap;
pub mod usercopy;

/// Acknowledges a stray interrupt so the controller keeps delivering others.
pub fn apic_eoi_if_needed(vector: u64) {
    apic::eoi_if_in_service(vector);
}
