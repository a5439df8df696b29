//! User address spaces: a root page table of their own (kernel half shared),
//! the VMAR tree over the user half, the CPUs that have them loaded, TLB
//! shootdown, and page-fault resolution.
//!
//! Locking: one lock per address space guards its VMAR tree and its page
//! tables. Inside it a VMO's lock may be taken (faults, mapping), never the
//! other way round: a VMO that must unmap pages (shrink, decommit) drops its
//! own lock before taking the address spaces'. TLB shootdowns are sent after
//! the address-space lock is released (another CPU may be spinning on it
//! with interrupts off), and frames are freed only after the shootdown.

#![deny(unsafe_code)]

use super::vmar::Vmar;
use super::vmo::Vmo;
use crate::arch::x86::ipi;
use crate::arch::x86::percpu::cpu_index;
use crate::arch::x86::smp::MAX_CPUS;
use crate::mm::{paging, PAGE_SIZE};
use crate::sync::IrqSpinlock;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use kcore::vmar::{Child, Mapping, Perms, Region, FLAG_CAN_MAP_MASK, FLAG_CAN_MAP_SPECIFIC};
use mx_abi::Status;

/// Lowest user address (`magenta-abi.md` §1.7): nothing is mapped below
/// it, so NULL and small integers never name user memory.
pub const USER_BASE: u64 = 0x0000_0000_0100_0000;
/// One past the highest user address.
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;

/// The root VMAR's id in every address space.
pub(super) const ROOT_VMAR: u64 = 0;

/// A mapping's reference to its VMO. Every piece of a mapping (they split
/// on partial unmap and protect) registers itself with the VMO, so the VMO
/// knows which address spaces to visit when pages go away.
pub(super) struct MapRef {
    pub vmo: Arc<Vmo>,
    space: Weak<AddressSpace>,
}

impl MapRef {
    pub fn new(vmo: Arc<Vmo>, space: Weak<AddressSpace>) -> MapRef {
        vmo.add_mapping(&space);
        MapRef { vmo, space }
    }
}

impl Clone for MapRef {
    fn clone(&self) -> MapRef {
        MapRef::new(self.vmo.clone(), self.space.clone())
    }
}

impl Drop for MapRef {
    fn drop(&mut self) {
        self.vmo.remove_mapping(&self.space);
    }
}

pub(super) type KVmar = kcore::vmar::Vmar<u64, MapRef>;
pub(super) type KChild = Child<u64, MapRef>;

/// One VMAR of the tree.
pub(super) struct VmarNode {
    pub v: KVmar,
    pub parent: Option<u64>,
    /// Live [`Vmar`] handles naming this region. A destroyed region leaves
    /// the table when its last handle goes.
    pub handles: usize,
}

pub(super) struct State {
    pub vmars: BTreeMap<u64, VmarNode>,
    pub next_id: u64,
    /// `[base, end)` of the live vDSO code mapping.
    pub vdso_code: Option<(u64, u64)>,
    /// Whether a vDSO code mapping was ever made: at most one per address
    /// space, even after it was destroyed with its region.
    pub vdso_used: bool,
}

/// TLB entries to drop after page-table changes: up to a few pages, else
/// everything. Fixed size: no allocation.
pub(super) struct Flush {
    pages: [u64; Flush::MAX_PAGES],
    count: usize,
    all: bool,
    /// Page tables unlinked by the unmap, freed when this is dropped: after
    /// the shootdown (callers drop the flush after [`AddressSpace::shootdown`]),
    /// or when no CPU can use the space any more. A list through each
    /// table's first entry (see `paging::unmap_user_range_reclaiming`); 0
    /// ends it.
    tables: u64,
}

impl Flush {
    const MAX_PAGES: usize = 32;

    pub fn new() -> Flush {
        Flush { pages: [0; Flush::MAX_PAGES], count: 0, all: false, tables: 0 }
    }

    pub fn add(&mut self, virt: u64) {
        if self.all {
            return;
        }
        match self.pages.get_mut(self.count) {
            Some(slot) => {
                *slot = virt;
                self.count += 1;
            }
            None => self.all = true,
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.count == 0
    }

    /// Takes a list of page tables the unmap unlinked (linked through their
    /// first entries): freed once every CPU flushed, with a full flush,
    /// which drops paging-structure caches too.
    fn take_tables(&mut self, list: u64) {
        let mut last = list;
        loop {
            let next = paging::table(last)[0].addr().as_u64();
            if next == 0 {
                break;
            }
            last = next;
        }
        paging::table(last)[0]
            .set_addr(x86_64::PhysAddr::new(self.tables), x86_64::structures::paging::PageTableFlags::empty());
        self.tables = list;
        self.all = true;
    }

    /// Drops the entries from this CPU's TLB.
    fn apply_local(&self) {
        if self.all {
            x86_64::instructions::tlb::flush_all();
        } else {
            for &page in &self.pages[..self.count] {
                x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page));
            }
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        let mut table = self.tables;
        while table != 0 {
            let next = paging::table(table)[0].addr().as_u64();
            crate::mm::frame::free_frame(table);
            table = next;
        }
    }
}

/// What a page fault tried to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

/// Why a page fault could not be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// This CPU has no user address space loaded.
    NoAddressSpace,
    /// The address is not a user address.
    NotUser,
    /// No mapping covers the address.
    NotMapped,
    /// The mapping does not allow the access.
    AccessDenied,
    /// The mapping reaches past the end of its VMO here.
    OutOfRange,
    /// No frame was left to commit the page or its tables.
    NoMemory,
    /// A reserved bit was set in a page-table entry (a kernel bug).
    ReservedBit,
}

const ACTIVE_WORDS: usize = MAX_CPUS.div_ceil(64);

/// A user address space.
pub struct AddressSpace {
    /// Physical address of the root table; fixed for the space's life.
    root: u64,
    this: Weak<AddressSpace>,
    /// CPUs that have the root loaded, one bit each.
    active: [AtomicU64; ACTIVE_WORDS],
    /// Its process is dead, so no thread runs in it again: CPUs must not
    /// keep it loaded lazily.
    retired: AtomicBool,
    pub(super) state: IrqSpinlock<State>,
}

impl core::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AddressSpace").field("root", &format_args!("{:#x}", self.root)).finish()
    }
}

/// What one CPU has in CR3.
struct Loaded {
    /// The slot's reference keeps the root table alive while it is in CR3.
    space: Option<Arc<AddressSpace>>,
    /// Kept only because a kernel thread (idle, the reaper) runs here: kernel
    /// threads never touch user memory, and leaving the space loaded spares
    /// its thread the TLB refill when it comes back (TCG, like a CPU without
    /// PCIDs, flushes everything on a CR3 load). Not the current thread's.
    lazy: bool,
}

/// Which address space each CPU has loaded.
static ACTIVE: [IrqSpinlock<Loaded>; MAX_CPUS] =
    [const { IrqSpinlock::new(Loaded { space: None, lazy: false }) }; MAX_CPUS];

impl AddressSpace {
    /// A new address space with an empty root VMAR covering
    /// `[USER_BASE, USER_END)` (every `CAN_MAP_*` flag, as a process root
    /// VMAR has). `NO_MEMORY` if no frame is left for the root table.
    pub fn new() -> Result<Arc<AddressSpace>, Status> {
        let root_vmar = KVmar::new(USER_BASE, USER_END - USER_BASE, FLAG_CAN_MAP_SPECIFIC | FLAG_CAN_MAP_MASK)
            .map_err(|_| Status::Internal)?;
        let root = paging::new_user_root().ok_or(Status::NoMemory)?;
        let mut vmars = BTreeMap::new();
        // The address space itself holds its root region.
        vmars.insert(ROOT_VMAR, VmarNode { v: root_vmar, parent: None, handles: 1 });
        Ok(Arc::new_cyclic(|this| AddressSpace {
            root,
            this: this.clone(),
            active: [const { AtomicU64::new(0) }; ACTIVE_WORDS],
            retired: AtomicBool::new(false),
            state: IrqSpinlock::new(State { vmars, next_id: ROOT_VMAR + 1, vdso_code: None, vdso_used: false }),
        }))
    }

    /// Physical address of the root page table (what CR3 holds).
    pub fn root_phys(&self) -> u64 {
        self.root
    }

    pub(super) fn weak(&self) -> Weak<AddressSpace> {
        self.this.clone()
    }

    /// A handle object for the root VMAR.
    pub fn root_vmar(self: &Arc<Self>) -> Vmar {
        Vmar::new_handle(self.clone(), ROOT_VMAR)
    }

    /// `[base, end)` of the vDSO code mapping, once one was made.
    pub fn vdso_code_range(&self) -> Option<(u64, u64)> {
        self.state.lock().vdso_code
    }

    /// Tears the address space down (process exit): destroys the root VMAR
    /// and everything in it. `BAD_STATE` if already done.
    pub fn destroy(self: &Arc<Self>) -> Result<(), Status> {
        self.root_vmar().destroy()
    }

    fn set_active(&self, cpu: usize, on: bool) {
        if let Some(word) = self.active.get(cpu / 64) {
            let bit = 1u64 << (cpu % 64);
            if on {
                word.fetch_or(bit, Ordering::SeqCst);
            } else {
                word.fetch_and(!bit, Ordering::SeqCst);
            }
        }
    }

    /// Whether CPU `cpu` has this address space loaded.
    pub fn is_active_on(&self, cpu: u32) -> bool {
        let cpu = cpu as usize;
        self.active.get(cpu / 64).is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (cpu % 64)) != 0)
    }

    fn active_elsewhere(&self, me: u32) -> bool {
        self.active.iter().enumerate().any(|(i, w)| {
            let mut bits = w.load(Ordering::SeqCst);
            if i == me as usize / 64 {
                bits &= !(1u64 << (me % 64));
            }
            bits != 0
        })
    }

    /// `MX_INFO_TASK_STATS`: (mapped bytes, committed bytes of VMOs mapped
    /// only here, committed bytes of VMOs also mapped elsewhere, this space's
    /// share of those).
    pub fn memory_stats(&self) -> Result<(u64, u64, u64, u64), Status> {
        let (mut mapped, mut private, mut shared, mut scaled) = (0, 0, 0, 0);
        // One entry per mapping, gathered under the lock (interrupts off)
        // with no search; duplicates go after it, by sorting.
        let mut vmos: alloc::vec::Vec<Arc<Vmo>> = alloc::vec::Vec::new();
        {
            let state = self.state.lock();
            for node in state.vmars.values() {
                for child in node.v.iter() {
                    if let Region::Mapping(mapping) = &child.region {
                        mapped += child.size;
                        vmos.try_reserve(1).map_err(|_| Status::NoMemory)?;
                        vmos.push(mapping.object.vmo.clone());
                    }
                }
            }
        }
        vmos.sort_unstable_by_key(|vmo| Arc::as_ptr(vmo) as usize);
        vmos.dedup_by(|a, b| Arc::ptr_eq(a, b));
        for vmo in vmos {
            let committed = vmo.committed_bytes();
            match vmo.mapping_spaces() {
                0 | 1 => private += committed,
                n => {
                    shared += committed;
                    scaled += committed / n as u64;
                }
            }
        }
        Ok((mapped, private, shared, scaled))
    }

    /// Loads this address space on the calling CPU (the scheduler calls it
    /// when switching to one of its threads). Nothing is loaded if it already
    /// is here, lazily or not.
    pub fn activate(self: &Arc<Self>) {
        let cpu = cpu_index() as usize;
        let Some(slot) = ACTIVE.get(cpu) else { return };
        let old = {
            let mut slot = slot.lock();
            slot.lazy = false;
            if slot.space.as_ref().is_some_and(|s| Arc::ptr_eq(s, self)) {
                return;
            }
            // Visible to shootdowns before any translation can be cached.
            self.set_active(cpu, true);
            fence(Ordering::SeqCst);
            // SAFETY: the root came from `new_user_root`, and the reference
            // stored in this CPU's slot keeps it allocated until this CPU
            // loads another root (here or in `deactivate`).
            #[allow(unsafe_code)]
            unsafe {
                paging::load_root(self.root)
            };
            let old = slot.space.replace(self.clone());
            if let Some(old) = &old {
                old.set_active(cpu, false);
            }
            old
        };
        // May be the last reference: its root is no longer loaded anywhere.
        drop(old);
    }

    /// Switches the calling CPU back to the kernel's own tables, releasing
    /// the address space it had loaded.
    pub fn deactivate() {
        let cpu = cpu_index() as usize;
        let Some(slot) = ACTIVE.get(cpu) else { return };
        let old = {
            let mut slot = slot.lock();
            slot.lazy = false;
            let Some(old) = slot.space.take() else { return };
            // SAFETY: the kernel's root maps everything the kernel uses and
            // lives for good.
            #[allow(unsafe_code)]
            unsafe {
                paging::load_root(paging::kernel_pml4())
            };
            old.set_active(cpu, false);
            old
        };
        drop(old);
    }

    /// The scheduler is switching the calling CPU to a kernel thread: the
    /// loaded space stays, lazily, unless it is retired.
    pub fn enter_kernel_thread() {
        let cpu = cpu_index() as usize;
        let Some(slot) = ACTIVE.get(cpu) else { return };
        let retired = {
            let mut slot = slot.lock();
            slot.lazy = true;
            slot.space.as_ref().is_some_and(|s| s.retired.load(Ordering::SeqCst))
        };
        if retired {
            Self::deactivate();
        }
    }

    /// The idle loop calls this each time it wakes: the space it holds (the
    /// idle thread never needs one) goes if it is retired, so
    /// [`AddressSpace::retire`]'s kick is enough.
    pub fn idle_release_retired() {
        Self::release_if_retired(false);
    }

    /// Loads the kernel's tables if the calling CPU holds a retired space,
    /// and holds it lazily or `lazy_only` is false.
    fn release_if_retired(lazy_only: bool) {
        let cpu = cpu_index() as usize;
        let Some(slot) = ACTIVE.get(cpu) else { return };
        let release = {
            let slot = slot.lock();
            (slot.lazy || !lazy_only) && slot.space.as_ref().is_some_and(|s| s.retired.load(Ordering::SeqCst))
        };
        if release {
            Self::deactivate();
        }
    }

    /// Its process is dead, so no thread runs in this space again: CPUs
    /// keeping it loaded lazily let go of it, so its memory comes back now
    /// and not when they next run a user thread. Other CPUs are only kicked
    /// (no waiting), so any context may call this.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        let me = cpu_index();
        for (word_index, word) in self.active.iter().enumerate() {
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                let cpu = (word_index * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                if cpu != me {
                    crate::sched::kick_idle(cpu);
                }
            }
        }
        // Here only if lazily: the thread retiring it may still run in it.
        Self::release_if_retired(true);
    }

    /// The address space of the thread running on the calling CPU (none for
    /// a kernel thread, even where a user space stays loaded lazily).
    pub fn current() -> Option<Arc<AddressSpace>> {
        let slot = ACTIVE.get(cpu_index() as usize)?.lock();
        if slot.lazy {
            return None;
        }
        slot.space.clone()
    }

    /// Drops `flush`'s entries from every CPU that has this address space
    /// loaded, and waits for them. Call without holding any lock.
    pub(super) fn shootdown(&self, flush: &Flush) {
        if flush.is_empty() {
            return;
        }
        // Order the page-table writes before reading who has the space.
        fence(Ordering::SeqCst);
        // Interrupts off: a thread moved to another CPU between reading its
        // index and the cross-CPU call would skip the CPU it now runs on.
        x86_64::instructions::interrupts::without_interrupts(|| {
            let me = cpu_index();
            if self.is_active_on(me) {
                flush.apply_local();
            }
            if self.active_elsewhere(me) {
                ipi::call_on_others(&|| {
                    if self.is_active_on(cpu_index()) {
                        flush.apply_local();
                    }
                });
            }
        });
    }

    /// Unmaps VMO pages `[first, end)` of `vmo` from every mapping of it in
    /// this address space, with a shootdown (a VMO shrinking or
    /// decommitting, before it frees the frames).
    pub(super) fn unmap_vmo_pages(&self, vmo: &Vmo, first: u64, end: u64) {
        let mut flush = Flush::new();
        {
            let state = self.state.lock();
            for node in state.vmars.values() {
                for child in node.v.iter() {
                    let Region::Mapping(m) = &child.region else { continue };
                    if !core::ptr::eq(Arc::as_ptr(&m.object.vmo), vmo) {
                        continue;
                    }
                    let m_first = m.vmo_offset / PAGE_SIZE;
                    let m_end = m_first + child.size / PAGE_SIZE;
                    let (lo, hi) = (first.max(m_first), end.min(m_end));
                    if lo < hi {
                        let start = child.base + (lo - m_first) * PAGE_SIZE;
                        let stop = child.base + (hi - m_first) * PAGE_SIZE;
                        paging::unmap_user_range(self.root, start, stop, &mut |va, _| flush.add(va));
                    }
                }
            }
        }
        self.shootdown(&flush);
    }

    /// Removes the page-table entries of a removed child's range.
    pub(super) fn unmap_ptes(&self, start: u64, end: u64, flush: &mut Flush) {
        let mut tables = 0;
        paging::unmap_user_range_reclaiming(self.root, start, end, &mut |va, _| flush.add(va), &mut |table| {
            paging::table(table)[0]
                .set_addr(x86_64::PhysAddr::new(tables), x86_64::structures::paging::PageTableFlags::empty());
            tables = table;
        });
        if tables != 0 {
            flush.take_tables(tables);
        }
    }

    /// Rewrites the entries of `[start, end)` for new permissions: removed
    /// for none, else re-flagged (pages not yet faulted in stay absent).
    pub(super) fn protect_ptes(&self, start: u64, end: u64, perms: Perms, read_only: bool, flush: &mut Flush) {
        if perms.contains(Perms::READ) {
            let flags = leaf_flags(perms, read_only);
            paging::protect_user_range(self.root, start, end, flags, &mut |va| flush.add(va));
        } else {
            self.unmap_ptes(start, end, flush);
        }
    }

    /// Maps every committed page of a new mapping now (`MAP_RANGE`, after
    /// the VMO pages were committed). `NO_MEMORY` if a page table cannot be
    /// allocated.
    pub(super) fn map_committed(&self, base: u64, size: u64, m: &Mapping<MapRef>) -> Result<(), Status> {
        if !m.perms.contains(Perms::READ) {
            return Ok(());
        }
        let flags = leaf_flags(m.perms, m.object.vmo.is_read_only());
        let first = m.vmo_offset / PAGE_SIZE;
        let mut result = Ok(());
        m.object.vmo.committed_in(first, first + size / PAGE_SIZE, &mut |index, phys| {
            if result.is_ok() {
                let va = base + (index - first) * PAGE_SIZE;
                if paging::map_user_page(self.root, va, phys, flags).is_err() {
                    result = Err(Status::NoMemory);
                }
            }
        });
        result
    }

    /// Resolves a page fault at `addr` in this address space: finds the
    /// mapping, checks the access against its permissions, commits the VMO
    /// page (zero-filled) and maps it. Allocates only frames (the page,
    /// page tables, VMO page-list nodes).
    pub fn handle_fault(&self, addr: u64, access: Access) -> Result<(), Fault> {
        if !(USER_BASE..USER_END).contains(&addr) {
            return Err(Fault::NotUser);
        }
        let page = addr & !(PAGE_SIZE - 1);
        let state = self.state.lock();
        let (base, m) = find_mapping(&state, addr).ok_or(Fault::NotMapped)?;
        let read_only = m.object.vmo.is_read_only();
        let allowed = match access {
            Access::Read => m.perms.contains(Perms::READ),
            Access::Write => m.perms.contains(Perms::WRITE) && !read_only,
            Access::Execute => m.perms.contains(Perms::EXECUTE),
        };
        if !allowed || !m.perms.contains(Perms::READ) {
            return Err(Fault::AccessDenied);
        }
        let index = m.vmo_offset / PAGE_SIZE + (page - base) / PAGE_SIZE;
        let phys = m.object.vmo.commit_page(index).map_err(|status| match status {
            Status::OutOfRange => Fault::OutOfRange,
            _ => Fault::NoMemory,
        })?;
        let flags = leaf_flags(m.perms, read_only);
        paging::map_user_page(self.root, page, phys, flags).map_err(|_| Fault::NoMemory)?;
        // A stale, stricter entry may be cached here (a spurious fault after
        // a permission upgrade); other CPUs fix theirs when they fault.
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page));
        Ok(())
    }

    /// The frame and whether it is writable, for the page at `addr` (tests
    /// and diagnostics).
    pub fn translate(&self, addr: u64) -> Option<(u64, bool)> {
        let _state = self.state.lock();
        paging::translate_user(self.root, addr & !(PAGE_SIZE - 1))
            .map(|(phys, flags)| (phys, flags.contains(x86_64::structures::paging::PageTableFlags::WRITABLE)))
    }
}

/// Leaf flags for a mapping's permissions.
fn leaf_flags(perms: Perms, read_only: bool) -> x86_64::structures::paging::PageTableFlags {
    paging::user_leaf_flags(perms.contains(Perms::WRITE) && !read_only, perms.contains(Perms::EXECUTE))
}

/// The mapping covering `addr` and its base, descending through sub-VMARs.
fn find_mapping(state: &State, addr: u64) -> Option<(u64, &Mapping<MapRef>)> {
    let mut id = ROOT_VMAR;
    loop {
        let child = state.vmars.get(&id)?.v.find(addr)?;
        match &child.region {
            Region::Vmar(sub) => id = *sub,
            Region::Mapping(m) => return Some((child.base, m)),
        }
    }
}

/// Retires removed children: unmaps mapping pieces' page-table entries and
/// destroys removed sub-VMARs with everything inside (iteratively: user
/// code chooses the nesting depth). The pieces go to `dead`, to be dropped
/// after the shootdown (a VMO's last reference may free its frames).
pub(super) fn retire(
    space: &AddressSpace,
    state: &mut State,
    children: Vec<KChild>,
    flush: &mut Flush,
    dead: &mut Vec<KChild>,
) {
    let mut work = children;
    while let Some(child) = work.pop() {
        match &child.region {
            Region::Vmar(id) => {
                if let Some(node) = state.vmars.get_mut(id) {
                    if let Ok(inner) = node.v.destroy() {
                        work.extend(inner);
                    }
                    if node.handles == 0 {
                        state.vmars.remove(id);
                    }
                }
            }
            Region::Mapping(_) => {
                if state.vdso_code.is_some_and(|(base, end)| child.base < end && base < child.end()) {
                    state.vdso_code = None;
                }
                space.unmap_ptes(child.base, child.end(), flush);
            }
        }
        dead.push(child);
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // Every CPU that had this space loaded, lazily or not, held a
        // reference, so none has it now, and loading another root flushed
        // their user translations.
        let vmars = core::mem::take(&mut self.state.lock().vmars);
        drop(vmars);
        paging::free_user_root(self.root);
    }
}

/// Resolves a page fault at `addr` with hardware error code `error_code` in
/// the calling CPU's loaded address space. `from_user` only selects the log
/// wording; kernel accesses (user-copy) are checked the same way.
pub fn handle_page_fault(addr: u64, error_code: u64, from_user: bool) -> Result<(), Fault> {
    const RESERVED: u64 = 1 << 3;
    const WRITE: u64 = 1 << 1;
    const FETCH: u64 = 1 << 4;
    if error_code & RESERVED != 0 {
        return Err(Fault::ReservedBit);
    }
    let access = if error_code & FETCH != 0 {
        Access::Execute
    } else if error_code & WRITE != 0 {
        Access::Write
    } else {
        Access::Read
    };
    let space = AddressSpace::current().ok_or(Fault::NoAddressSpace)?;
    let result = if from_user {
        crate::sched::without_fault_injection(|| space.handle_fault(addr, access))
    } else {
        space.handle_fault(addr, access)
    };
    if let Err(fault) = result {
        log::debug!(
            "vm: unresolved {} page fault at {addr:#x} ({access:?}): {fault:?}",
            if from_user { "user" } else { "user-copy" }
        );
    }
    result
}

/// Makes sure every page of `[addr, addr + len)` in the calling CPU's
/// address space can take a write (committing and mapping pages as a write
/// fault would), so a copy to user memory that then runs cannot stop half
/// way unless the mappings change meanwhile. The caller checked the range.
pub fn prefault_for_write(addr: u64, len: u64) -> Result<(), Fault> {
    if len == 0 {
        return Ok(());
    }
    let space = AddressSpace::current().ok_or(Fault::NoAddressSpace)?;
    let last = addr.checked_add(len - 1).ok_or(Fault::NotUser)? & !(PAGE_SIZE - 1);
    let mut page = addr & !(PAGE_SIZE - 1);
    loop {
        space.handle_fault(page, Access::Write)?;
        if page == last {
            return Ok(());
        }
        page += PAGE_SIZE;
    }
}
