//! The kernel's page tables: building them at boot and changing the kernel
//! half afterwards (MMIO mappings, kernel stacks).
//!
//! All 256 kernel-half PML4 entries point at page-directory-pointer tables
//! allocated at boot and never freed, so every future address space can share
//! the kernel half by copying those entries once: kernel mappings made later
//! land in shared lower-level tables and are seen everywhere.

use super::{phys_to_virt, KERNEL_VIRT_BASE, PAGE_SIZE, PHYS_MAP_BASE};
use crate::arch::x86::cpu::features;
use crate::boot::BootInfo;
use crate::sync::IrqSpinlock;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTable, PageTableFlags as F};
use x86_64::PhysAddr;

const HUGE_2M: u64 = 2 * 1024 * 1024;

/// Where page-table frames come from.
pub trait TableSource {
    /// A zeroed frame, or None when memory is exhausted.
    fn zeroed_frame(&mut self) -> Option<u64>;
}

impl TableSource for super::frame::EarlyAllocator {
    fn zeroed_frame(&mut self) -> Option<u64> {
        Some(self.alloc(1))
    }
}

/// Frames from the buddy allocator, once it exists.
pub struct BuddySource;

impl TableSource for BuddySource {
    fn zeroed_frame(&mut self) -> Option<u64> {
        super::frame::alloc_zeroed_frame()
    }
}

/// Physical address of the kernel's PML4.
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);
/// Serialises changes to the kernel half.
static KERNEL_TABLES_LOCK: IrqSpinlock<()> = IrqSpinlock::new(());

pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.load(Ordering::Relaxed)
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    OutOfMemory,
    /// The page is already mapped to something else.
    AlreadyMapped,
}

/// The page table in frame `phys`.
///
/// Callers own the table: either it is fresh and not yet reachable by any
/// CPU, or it is part of the kernel's tables and they hold
/// `KERNEL_TABLES_LOCK` (or run single-threaded at boot).
pub(crate) fn table(phys: u64) -> &'static mut PageTable {
    // SAFETY: page-table frames are RAM reachable through the current
    // physical offset; exclusive access is the caller's contract above.
    unsafe { &mut *(phys_to_virt(phys) as *mut PageTable) }
}

/// Points the kernel half of the fresh root table `pml4` at the kernel's
/// own page-directory-pointer tables, so every kernel mapping, present or
/// future, is visible through it.
pub fn share_kernel_half(pml4: u64) {
    debug_assert_ne!(pml4, kernel_pml4());
    let kernel = table(kernel_pml4());
    let root = table(pml4);
    for i in 256..512 {
        root[i] = kernel[i].clone();
    }
}

fn next_level(entry: &mut PageTableEntry, source: &mut dyn TableSource) -> Result<u64, MapError> {
    if entry.is_unused() {
        let frame = source.zeroed_frame().ok_or(MapError::OutOfMemory)?;
        entry.set_addr(PhysAddr::new(frame), F::PRESENT | F::WRITABLE);
    } else if entry.flags().contains(F::HUGE_PAGE) {
        return Err(MapError::AlreadyMapped);
    }
    Ok(entry.addr().as_u64())
}

fn indices(virt: u64) -> [usize; 4] {
    [(virt >> 39) as usize & 511, (virt >> 30) as usize & 511, (virt >> 21) as usize & 511, (virt >> 12) as usize & 511]
}

/// Maps one 4 KiB page. An identical existing mapping is not an error.
fn map_4k(pml4: u64, virt: u64, phys: u64, flags: F, source: &mut dyn TableSource) -> Result<(), MapError> {
    let [i4, i3, i2, i1] = indices(virt);
    let pdpt = next_level(&mut table(pml4)[i4], source)?;
    let pd = next_level(&mut table(pdpt)[i3], source)?;
    let pd_entry = &mut table(pd)[i2];
    if pd_entry.flags().contains(F::HUGE_PAGE) {
        // Already covered by a 2 MiB mapping (e.g. MMIO inside RAM's range).
        return if pd_entry.addr().as_u64() + (virt & (HUGE_2M - 1)) == phys {
            Ok(())
        } else {
            Err(MapError::AlreadyMapped)
        };
    }
    let pt = next_level(pd_entry, source)?;
    let entry = &mut table(pt)[i1];
    if !entry.is_unused() {
        return if entry.addr().as_u64() == phys { Ok(()) } else { Err(MapError::AlreadyMapped) };
    }
    entry.set_addr(PhysAddr::new(phys), flags | F::PRESENT);
    Ok(())
}

/// Maps `[virt, virt + len)` to `[phys, ...)`, with 2 MiB pages where both
/// addresses are aligned and the directory slot is free.
fn map_range(
    pml4: u64,
    virt: u64,
    phys: u64,
    len: u64,
    flags: F,
    source: &mut dyn TableSource,
) -> Result<(), MapError> {
    let mut offset = 0;
    while offset < len {
        let (v, p) = (virt + offset, phys + offset);
        if v % HUGE_2M == 0 && p % HUGE_2M == 0 && len - offset >= HUGE_2M {
            let [i4, i3, i2, _] = indices(v);
            let pdpt = next_level(&mut table(pml4)[i4], source)?;
            let pd = next_level(&mut table(pdpt)[i3], source)?;
            let entry = &mut table(pd)[i2];
            if entry.is_unused() {
                entry.set_addr(PhysAddr::new(p), flags | F::PRESENT | F::HUGE_PAGE);
                offset += HUGE_2M;
                continue;
            }
        }
        map_4k(pml4, v, p, flags, source)?;
        offset += PAGE_SIZE;
    }
    Ok(())
}

fn nx() -> F {
    if features().nx {
        F::NO_EXECUTE
    } else {
        F::empty()
    }
}

fn global() -> F {
    if features().global_pages {
        F::GLOBAL
    } else {
        F::empty()
    }
}

extern "C" {
    static __kernel_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __kernel_end: u8;
}

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Builds the kernel's page tables (direct map, kernel image with W^X, the
/// kernel half's PDPTs) and returns the PML4's physical address.
pub fn build_kernel_tables(info: &BootInfo, source: &mut dyn TableSource) -> u64 {
    let Some(pml4) = source.zeroed_frame() else { panic!("mm: no memory for page tables") };
    for i in 256..512 {
        let Some(pdpt) = source.zeroed_frame() else { panic!("mm: no memory for page tables") };
        table(pml4)[i].set_addr(PhysAddr::new(pdpt), F::PRESENT | F::WRITABLE);
    }
    let data = F::WRITABLE | nx() | global();
    for region in info.memory_map.regions().iter().filter(|r| r.kind.is_ram()) {
        let start = region.start / PAGE_SIZE * PAGE_SIZE;
        let end = region.end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        if let Err(e) = map_range(pml4, PHYS_MAP_BASE + start, start, end - start, data, source) {
            panic!("mm: direct map of {start:#x}..{end:#x}: {e:?}");
        }
    }
    // SAFETY: taking the addresses of linker symbols; nothing is read.
    let (kstart, sections) = unsafe {
        (
            symbol(&__kernel_start),
            [
                (symbol(&__text_start), symbol(&__text_end), global()),
                (symbol(&__rodata_start), symbol(&__rodata_end), nx() | global()),
                (symbol(&__data_start), symbol(&__kernel_end), F::WRITABLE | nx() | global()),
            ],
        )
    };
    debug_assert!(kstart >= KERNEL_VIRT_BASE);
    for (start, end, flags) in sections {
        let end = end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let phys = info.kernel_phys_base + (start - kstart);
        for page in (start..end).step_by(PAGE_SIZE as usize) {
            if let Err(e) = map_4k(pml4, page, phys + (page - start), flags, source) {
                panic!("mm: kernel image mapping at {page:#x}: {e:?}");
            }
        }
    }
    KERNEL_PML4.store(pml4, Ordering::Relaxed);
    pml4
}

/// Maps a writable kernel-half data page (kernel stacks), taking any
/// page-table frames from `source`.
pub fn map_kernel_page_with(virt: u64, phys: u64, source: &mut dyn TableSource) -> Result<(), MapError> {
    let _guard = KERNEL_TABLES_LOCK.lock();
    map_4k(kernel_pml4(), virt, phys, F::WRITABLE | nx() | global(), source)
}

/// Unmaps a 4 KiB kernel-half page on this CPU and returns the frame it
/// mapped. Other CPUs must not hold the translation (kernel stacks are only
/// touched by the CPU running their thread; cross-CPU shootdown arrives with
/// user address spaces).
pub fn unmap_kernel_page(virt: u64) -> Option<u64> {
    let _guard = KERNEL_TABLES_LOCK.lock();
    let [i4, i3, i2, i1] = indices(virt);
    let pdpt = table(kernel_pml4())[i4].addr().as_u64();
    let pd_entry = &table(pdpt)[i3];
    if pd_entry.is_unused() || pd_entry.flags().contains(F::HUGE_PAGE) {
        return None;
    }
    let pt_entry = &table(pd_entry.addr().as_u64())[i2];
    if pt_entry.is_unused() || pt_entry.flags().contains(F::HUGE_PAGE) {
        return None;
    }
    let entry = &mut table(pt_entry.addr().as_u64())[i1];
    if entry.is_unused() {
        return None;
    }
    let phys = entry.addr().as_u64();
    entry.set_unused();
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(virt));
    Some(phys)
}

/// Makes `[phys, phys + len)` of device memory reachable, uncached, through
/// the direct map, and returns its virtual address. RAM is already mapped
/// write-back and is returned as is.
pub fn map_mmio(phys: u64, len: u64) -> Result<u64, MapError> {
    map_physical(phys, len, F::WRITABLE | F::NO_CACHE | F::WRITE_THROUGH | nx() | global())
}

/// Maps firmware tables (ACPI) write-back, read-only, through the direct map.
pub fn map_firmware(phys: u64, len: u64) -> Result<u64, MapError> {
    map_physical(phys, len, nx() | global())
}

fn map_physical(phys: u64, len: u64, flags: F) -> Result<u64, MapError> {
    let start = phys / PAGE_SIZE * PAGE_SIZE;
    let end = (phys + len.max(1)).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let _guard = KERNEL_TABLES_LOCK.lock();
    for page in (start..end).step_by(PAGE_SIZE as usize) {
        map_4k(kernel_pml4(), PHYS_MAP_BASE + page, page, flags, &mut BuddySource)?;
    }
    Ok(PHYS_MAP_BASE + phys)
}

/// Loads `pml4` into CR3, moves onto the stack at `stack_top`, and calls
/// `next(arg)`, which never returns.
///
/// # Safety
/// `pml4` must map the running kernel image at its link address and
/// `stack_top` must be the top of a mapped, unused stack.
pub unsafe fn activate(pml4: u64, stack_top: u64, next: extern "C" fn(u64) -> !, arg: u64) -> ! {
    // SAFETY: per the contract the code, the new stack and `next` are all
    // mapped in the new tables; nothing on the old stack is used afterwards.
    unsafe {
        core::arch::asm!(
            "mov cr3, {pml4}",
            "mov rsp, {stack}",
            "xor ebp, ebp",
            "call {next}",
            "ud2",
            pml4 = in(reg) pml4,
            stack = in(reg) stack_top,
            next = in(reg) next,
            in("rdi") arg,
            options(noreturn),
        )
    }
}
