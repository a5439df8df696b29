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

// ---------------------------------------------------------------- user tables
//
// A user address space is a root table of its own whose kernel half (entries
// 256..512) points at the kernel's shared tables, and whose user half holds
// tables only it uses. The owner (`vm::AddressSpace`) serialises every call
// below on one root with its lock, which is what makes the `table()` accesses
// exclusive.

/// Number of root entries covering the user half.
const USER_ROOT_ENTRIES: usize = 256;
/// One past the last user-half address.
const USER_HALF_END: u64 = 1 << 47;

/// Allocates a root table for a new user address space: user half empty,
/// kernel half shared. None when memory is exhausted.
pub fn new_user_root() -> Option<u64> {
    let pml4 = super::frame::alloc_zeroed_frame()?;
    share_kernel_half(pml4);
    Some(pml4)
}

/// Leaf flags for a user page: present, user, writable only with `write`,
/// no-execute unless `execute` (when the CPU has NX).
pub fn user_leaf_flags(write: bool, execute: bool) -> F {
    let mut flags = F::PRESENT | F::USER_ACCESSIBLE;
    if write {
        flags |= F::WRITABLE;
    }
    if !execute {
        flags |= nx();
    }
    flags
}

fn user_next_level(entry: &mut PageTableEntry) -> Result<u64, MapError> {
    if entry.is_unused() {
        let frame = super::frame::alloc_zeroed_frame().ok_or(MapError::OutOfMemory)?;
        // Intermediate levels allow everything; the leaf decides.
        entry.set_addr(PhysAddr::new(frame), F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE);
    } else if entry.flags().contains(F::HUGE_PAGE) {
        return Err(MapError::AlreadyMapped);
    }
    Ok(entry.addr().as_u64())
}

/// Maps the user page `virt` to `phys` with `flags` in the address space
/// rooted at `pml4`, replacing any existing entry. Returns the frame the
/// entry mapped before, if any (the caller flushes it from the TLBs).
pub fn map_user_page(pml4: u64, virt: u64, phys: u64, flags: F) -> Result<Option<u64>, MapError> {
    debug_assert!(virt < USER_HALF_END && virt.is_multiple_of(PAGE_SIZE));
    let [i4, i3, i2, i1] = indices(virt);
    let pdpt = user_next_level(&mut table(pml4)[i4])?;
    let pd = user_next_level(&mut table(pdpt)[i3])?;
    let pt = user_next_level(&mut table(pd)[i2])?;
    let entry = &mut table(pt)[i1];
    let old = (!entry.is_unused()).then(|| entry.addr().as_u64());
    entry.set_addr(PhysAddr::new(phys), flags | F::PRESENT);
    Ok(old)
}

/// The frame and flags the user page `virt` maps to, if present.
pub fn translate_user(pml4: u64, virt: u64) -> Option<(u64, F)> {
    if virt >= USER_HALF_END {
        return None;
    }
    let mut phys = pml4;
    for (level, index) in indices(virt).into_iter().enumerate() {
        let entry = &table(phys)[index];
        if entry.is_unused() || !entry.flags().contains(F::PRESENT) {
            return None;
        }
        if level == 3 {
            return Some((entry.addr().as_u64(), entry.flags()));
        }
        if entry.flags().contains(F::HUGE_PAGE) {
            return None;
        }
        phys = entry.addr().as_u64();
    }
    None
}

/// Calls `visit(virt, entry)` for every present leaf entry of user pages in
/// `[start, end)`, skipping absent tables (so a huge, sparse range is cheap).
fn walk_user_range(pml4: u64, start: u64, end: u64, visit: &mut dyn FnMut(u64, &mut PageTableEntry)) {
    let end = end.min(USER_HALF_END);
    if start >= end {
        return;
    }
    walk_level(pml4, 4, 0, start, end, visit);
}

/// The entry shift of a table at `level` whose first entry maps `base`, and
/// the indices of its entries that `[start, end)` touches.
fn slots_covering(level: u32, base: u64, start: u64, end: u64) -> (u32, core::ops::RangeInclusive<u64>) {
    let shift = 12 + 9 * (level - 1);
    let first = (start.max(base) - base) >> shift;
    let last = ((end - 1 - base) >> shift).min(511);
    (shift, first..=last)
}

fn walk_level(
    table_phys: u64,
    level: u32,
    base: u64,
    start: u64,
    end: u64,
    visit: &mut dyn FnMut(u64, &mut PageTableEntry),
) {
    let (shift, slots) = slots_covering(level, base, start, end);
    for i in slots {
        let entry = &mut table(table_phys)[i as usize];
        if entry.is_unused() {
            continue;
        }
        let va = base + (i << shift);
        if level == 1 {
            visit(va, entry);
        } else if !entry.flags().contains(F::HUGE_PAGE) {
            walk_level(entry.addr().as_u64(), level - 1, va, start, end, visit);
        }
    }
}

/// Clears every user mapping in `[start, end)` and calls `unmapped(virt,
/// phys)` for each one cleared. Page tables stay (they are freed with the
/// root). The caller flushes the TLBs before reusing the frames.
pub fn unmap_user_range(pml4: u64, start: u64, end: u64, unmapped: &mut dyn FnMut(u64, u64)) {
    walk_user_range(pml4, start, end, &mut |va, entry| {
        let phys = entry.addr().as_u64();
        entry.set_unused();
        unmapped(va, phys);
    });
}

/// [`unmap_user_range`] that also takes out the tables left empty under
/// `[start, end)` (never the root): each is unlinked from its parent and
/// handed to `freed_table` with its first entry set to `next` (a
/// page-aligned address, so the entry reads as not present to a CPU still
/// walking the table through a stale cache). The caller links the tables
/// into a list that way, flushes every TLB and paging-structure cache that
/// may hold them (a full flush), and only then frees them. Without this a
/// long-lived process that maps and unmaps at random addresses keeps every
/// table it ever needed.
pub fn unmap_user_range_reclaiming(
    pml4: u64,
    start: u64,
    end: u64,
    unmapped: &mut dyn FnMut(u64, u64),
    freed_table: &mut dyn FnMut(u64),
) {
    let end = end.min(USER_HALF_END);
    if start >= end {
        return;
    }
    reclaim_level(pml4, 4, 0, start, end, unmapped, freed_table);
}

/// Clears the leaves of `[start, end)` under `table_phys` (a table of
/// `level`) and unlinks child tables that become empty; true if this
/// table is now empty.
fn reclaim_level(
    table_phys: u64,
    level: u32,
    base: u64,
    start: u64,
    end: u64,
    unmapped: &mut dyn FnMut(u64, u64),
    freed_table: &mut dyn FnMut(u64),
) -> bool {
    let (shift, slots) = slots_covering(level, base, start, end);
    for i in slots {
        let entry = &mut table(table_phys)[i as usize];
        if entry.is_unused() {
            continue;
        }
        let va = base + (i << shift);
        if level == 1 {
            let phys = entry.addr().as_u64();
            entry.set_unused();
            unmapped(va, phys);
        } else if !entry.flags().contains(F::HUGE_PAGE) {
            let child = entry.addr().as_u64();
            if reclaim_level(child, level - 1, va, start, end, unmapped, freed_table) {
                table(table_phys)[i as usize].set_unused();
                freed_table(child);
            }
        }
    }
    level < 4 && table(table_phys).iter().all(|e| e.is_unused())
}

/// Sets the flags of every present user mapping in `[start, end)` to
/// `flags` and calls `changed(virt)` for each one changed.
pub fn protect_user_range(pml4: u64, start: u64, end: u64, flags: F, changed: &mut dyn FnMut(u64)) {
    walk_user_range(pml4, start, end, &mut |va, entry| {
        let flags = flags | F::PRESENT;
        if entry.flags() != flags {
            entry.set_flags(flags);
            changed(va);
        }
    });
}

/// Frees the root `pml4` of a user address space and every user-half table
/// under it (not the frames the leaves map). No CPU may still use it.
pub fn free_user_root(pml4: u64) {
    fn free_level(table_phys: u64, level: u32, entries: usize) {
        if level > 1 {
            for i in 0..entries {
                let entry = &table(table_phys)[i];
                if !entry.is_unused() && !entry.flags().contains(F::HUGE_PAGE) {
                    free_level(entry.addr().as_u64(), level - 1, 512);
                }
            }
        }
        super::frame::free_frame(table_phys);
    }
    debug_assert_ne!(pml4, kernel_pml4());
    free_level(pml4, 4, USER_ROOT_ENTRIES);
}

/// Loads `pml4` into CR3 on this CPU (which also flushes its non-global TLB
/// entries, i.e. every user translation).
///
/// # Safety
/// `pml4` must be the kernel's root or a root from [`new_user_root`] that
/// stays allocated until this CPU loads another root.
pub unsafe fn load_root(pml4: u64) {
    // SAFETY: per the contract the root shares the kernel half (so the
    // running code, stack and data stay mapped) and outlives its use.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) };
}

/// Copies `dst.len()` bytes at `offset` in the RAM frame `phys` into `dst`.
/// The caller owns the frame (or it is read-only memory nobody writes).
pub fn copy_from_frame(phys: u64, offset: usize, dst: &mut [u8]) {
    assert!(offset.checked_add(dst.len()).is_some_and(|end| end <= PAGE_SIZE as usize));
    let src = (phys_to_virt(phys) + offset as u64) as *const u8;
    // SAFETY: the range lies inside one RAM frame reached through the
    // direct map (asserted above), which the caller owns; `dst` is a
    // distinct kernel buffer.
    unsafe { core::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
}

/// Copies `src` to `offset` in the RAM frame `phys`, which the caller owns.
pub fn copy_to_frame(phys: u64, offset: usize, src: &[u8]) {
    assert!(offset.checked_add(src.len()).is_some_and(|end| end <= PAGE_SIZE as usize));
    let dst = (phys_to_virt(phys) + offset as u64) as *mut u8;
    // SAFETY: as for `copy_from_frame`; the caller owns the frame, so no
    // one else holds a reference to these bytes.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
}
