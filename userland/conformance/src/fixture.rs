//! Memory fixtures shared by the memory, task and hostile cases: regions of
//! the suite's own address space that are destroyed when dropped, and a
//! page followed by a guaranteed hole.

use alloc::string::String;

use mx::{Vmar, Vmo};
use mx_abi::object::InfoKernelCounts;
use mx_abi::VmFlags;

/// A duplicate of the suite's root VMAR.
pub fn root() -> Result<Vmar, String> {
    mxrt::vmar_root().ok_or_else(|| String::from("no root VMAR"))
}

/// A sub-region of the root VMAR, destroyed (with everything in it) on drop.
pub struct Region {
    pub vmar: Vmar,
    pub addr: usize,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: nothing outside the case that made it uses this region.
        let _ = unsafe { self.vmar.destroy() };
    }
}

/// R/W/specific-mappable.
pub const RW_SPECIFIC: VmFlags = VmFlags::CAN_MAP_READ.union(VmFlags::CAN_MAP_WRITE).union(VmFlags::CAN_MAP_SPECIFIC);

/// A new region of `pages` pages with `flags`.
pub fn region(pages: usize, flags: VmFlags) -> Result<Region, String> {
    let root = root()?;
    let size = pages * 4096;
    let (vmar, addr) = root.allocate(0, size, flags).map_err(|s| alloc::format!("vmar_allocate: {s:?}"))?;
    Ok(Region { vmar, addr })
}

/// A VMO of `pages` pages mapped R/W in a region of its own.
pub struct Mapped {
    pub region: Region,
    pub vmo: Vmo,
    pub addr: usize,
}

/// `pages` pages of a new VMO mapped R/W in a region of `region_pages`
/// pages (the rest of the region stays a hole).
pub fn mapped(pages: usize, region_pages: usize) -> Result<Mapped, String> {
    let region = region(region_pages, RW_SPECIFIC)?;
    let vmo = Vmo::create((pages * 4096) as u64).map_err(|s| alloc::format!("vmo_create: {s:?}"))?;
    let addr = region
        .vmar
        .map(0, &vmo, 0, pages * 4096, VmFlags::PERM_READ | VmFlags::PERM_WRITE | VmFlags::SPECIFIC)
        .map_err(|s| alloc::format!("vmar_map: {s:?}"))?;
    Ok(Mapped { region, vmo, addr })
}

/// One writable page followed by an unmapped page: `(fixture, address of
/// the writable page)`.
pub fn page_then_hole() -> Result<(Mapped, usize), String> {
    let m = mapped(1, 2)?;
    let addr = m.addr;
    Ok((m, addr))
}

/// The kernel's counts (objects, handles, VMOs, pages, processes, threads).
pub fn counts() -> Result<InfoKernelCounts, String> {
    crate::util::kernel_counts().map_err(|s| alloc::format!("MX_INFO_KERNEL_COUNTS: {s:?}"))
}

/// `MX_INFO_HANDLE_BASIC` of a raw handle value.
pub fn basic(raw: u32) -> Result<mx_abi::object::InfoHandleBasic, mx::Status> {
    let h = core::mem::ManuallyDrop::new(mx::Handle::from_raw(raw));
    h.info(mx_abi::object::InfoTopic::HandleBasic)
}

/// Reads a `u64` through a raw address.
pub fn peek(addr: usize) -> u64 {
    // SAFETY: callers pass addresses of pages they mapped readable.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Writes a `u64` through a raw address.
pub fn poke(addr: usize, value: u64) {
    // SAFETY: callers pass addresses of pages they mapped writable.
    unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
}
