//! Per-CPU GDT and TSS.
//!
//! Selector layout is fixed by SYSCALL/SYSRET: kernel code, kernel data, then
//! a 32-bit user code placeholder, user data, user 64-bit code, so that
//! STAR's user base (0x18) yields SS = 0x20 and CS = 0x28.

use super::percpu::PerCpu;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::Descriptor;
use x86_64::PrivilegeLevel;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_DS: u16 = 0x20 | 3;
pub const USER_CS: u16 = 0x28 | 3;

/// IST slots (1-based in the IDT, 0-based in the TSS).
pub const IST_DOUBLE_FAULT: u16 = 1;
pub const IST_NMI: u16 = 2;
pub const IST_MACHINE_CHECK: u16 = 3;

/// Builds and loads this CPU's GDT and TSS. The TSS's IST entries must
/// already point at valid stacks.
pub fn load(percpu: &'static PerCpu) {
    // SAFETY: the GDT is only written here, on its own CPU, before it is
    // loaded; `PerCpu` is 'static so the loaded table never moves.
    let gdt = unsafe { &mut *percpu.gdt.get() };
    *gdt = x86_64::structures::gdt::GlobalDescriptorTable::empty();
    let kcode = gdt.append(Descriptor::kernel_code_segment());
    let kdata = gdt.append(Descriptor::kernel_data_segment());
    // 32-bit user code is never used; the slot keeps SYSRET's layout.
    let _ucode32 = gdt.append(Descriptor::UserSegment(0x00cf_fa00_0000_ffff));
    let udata = gdt.append(Descriptor::user_data_segment());
    let ucode = gdt.append(Descriptor::user_code_segment());
    // SAFETY: the TSS is 'static; the descriptor only records its address.
    let tss = gdt.append(Descriptor::tss_segment(unsafe { &*percpu.tss.get() }));
    debug_assert_eq!(kcode.0, KERNEL_CS);
    debug_assert_eq!(kdata.0, KERNEL_DS);
    debug_assert_eq!(udata.0, USER_DS);
    debug_assert_eq!(ucode.0, USER_CS);
    let gdt: &'static _ = gdt;
    gdt.load();
    // SAFETY: the selectors index descriptors just loaded above; FS/GS get
    // the null selector (their bases are set through MSRs).
    unsafe {
        CS::set_reg(kcode);
        SS::set_reg(kdata);
        DS::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        ES::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        // Loading FS/GS selectors clears their bases on some CPUs, so write
        // them before the per-CPU GS base is set (callers do this first).
        let _ = (FS::get_reg(), GS::get_reg());
        load_tss(tss);
    }
}

/// Points an IST slot of this CPU's TSS at `stack_top`.
///
/// # Safety
/// `stack_top` must be the top of a stack reserved for this slot on this CPU,
/// and the slot must not be in use (no exception on it is being handled).
pub unsafe fn set_ist(percpu: &PerCpu, slot: u16, stack_top: u64) {
    let tss = percpu.tss.get();
    // SAFETY: per the caller's contract, nothing reads this slot concurrently;
    // the CPU reads the TSS only on exception entry.
    unsafe { (*tss).interrupt_stack_table[usize::from(slot - 1)] = x86_64::VirtAddr::new(stack_top) };
}

/// Points this CPU's TSS.RSP0 (the stack an interrupt from user mode
/// switches to) at `top`, the running thread's kernel stack top.
///
/// # Safety
/// Must be called on `percpu`'s own CPU with interrupts off, and `top` must
/// be the top of the kernel stack of the thread about to run there.
pub unsafe fn set_kernel_stack(percpu: &PerCpu, top: u64) {
    let tss = percpu.tss.get();
    // SAFETY: only this CPU writes its TSS, with interrupts off; the CPU
    // reads RSP0 only on a privilege change, which cannot happen meanwhile.
    unsafe { (*tss).privilege_stack_table[0] = x86_64::VirtAddr::new(top) };
}
