//! The physical memory map both boot paths converge on.
//!
//! Limine hands over a sorted, non-overlapping map; PVH hands over the
//! firmware's e820 table, which may overlap, be unsorted, and call the pages
//! holding the kernel and its modules "usable". [`MemoryMap::normalize`] turns
//! either into one sorted, non-overlapping, page-aligned map in which the more
//! restrictive kind wins wherever entries overlap.

/// What a physical range holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegionKind {
    /// Free RAM.
    Usable,
    /// Holds the loader's data (page tables, stack, boot info); free once the
    /// kernel has copied what it needs and left the loader's page tables.
    BootloaderReclaimable,
    /// The kernel image and boot modules.
    KernelAndModules,
    /// ACPI tables; free once they have been parsed.
    AcpiReclaimable,
    /// Firmware data the OS must preserve.
    AcpiNvs,
    /// Framebuffer memory.
    Framebuffer,
    /// Firmware-reserved or device memory.
    Reserved,
    /// RAM that failed firmware tests.
    Bad,
}

impl RegionKind {
    /// Overlap resolution: the higher rank wins.
    fn rank(self) -> u8 {
        match self {
            RegionKind::Usable => 0,
            RegionKind::BootloaderReclaimable => 1,
            RegionKind::AcpiReclaimable => 2,
            RegionKind::KernelAndModules => 3,
            RegionKind::Framebuffer => 4,
            RegionKind::AcpiNvs => 5,
            RegionKind::Reserved => 6,
            RegionKind::Bad => 7,
        }
    }

    /// Whether the range is RAM the kernel may map write-back in its direct map.
    pub fn is_ram(self) -> bool {
        matches!(
            self,
            RegionKind::Usable
                | RegionKind::BootloaderReclaimable
                | RegionKind::KernelAndModules
                | RegionKind::AcpiReclaimable
                | RegionKind::AcpiNvs
        )
    }

    /// Maps an e820 type (as PVH reports it) to a kind.
    pub fn from_e820(kind: u32) -> RegionKind {
        match kind {
            1 => RegionKind::Usable,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Bad,
            _ => RegionKind::Reserved,
        }
    }
}

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub kind: RegionKind,
}

impl Region {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The map is full; the entry was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFull;

const PAGE: u64 = 4096;

/// A fixed-capacity memory map (no allocation: it exists before the heap).
#[derive(Clone, Debug)]
pub struct MemoryMap<const N: usize> {
    regions: [Region; N],
    len: usize,
}

impl<const N: usize> Default for MemoryMap<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MemoryMap<N> {
    pub const fn new() -> Self {
        MemoryMap { regions: [Region { start: 0, end: 0, kind: RegionKind::Reserved }; N], len: 0 }
    }

    /// Adds `[start, start + len)`; empty or overflowing ranges are clamped or ignored.
    pub fn push(&mut self, start: u64, len: u64, kind: RegionKind) -> Result<(), MapFull> {
        let end = start.saturating_add(len);
        if end <= start {
            return Ok(());
        }
        if self.len == N {
            return Err(MapFull);
        }
        self.regions[self.len] = Region { start, end, kind };
        self.len += 1;
        Ok(())
    }

    /// Marks `[start, end)` as `kind` over whatever was there, if `kind`
    /// outranks it, and renormalizes.
    pub fn carve(&mut self, start: u64, end: u64, kind: RegionKind) -> Result<(), MapFull> {
        if end > start {
            self.push(start, end - start, kind)?;
        }
        self.normalize();
        Ok(())
    }

    /// Makes the map sorted and non-overlapping (the higher-ranked kind wins
    /// each overlap), merges touching ranges of one kind, and shrinks usable
    /// ranges to whole pages.
    pub fn normalize(&mut self) {
        // Elementary intervals between all boundaries; at most 2N of them.
        // Each is assigned the best-ranked kind covering it. Quadratic, but N
        // is a few hundred and this runs once at boot.
        let mut points = [0u64; 512];
        let count = (self.len * 2).min(points.len());
        for (i, region) in self.regions[..self.len].iter().enumerate().take(points.len() / 2) {
            points[2 * i] = region.start;
            points[2 * i + 1] = region.end;
        }
        let points = &mut points[..count];
        points.sort_unstable();
        let mut out: MemoryMap<N> = MemoryMap::new();
        let mut previous: Option<u64> = None;
        for &point in points.iter() {
            let Some(start) = previous.replace(point) else {
                continue;
            };
            if start == point {
                continue;
            }
            let kind = self.regions[..self.len]
                .iter()
                .filter(|r| r.start <= start && r.end >= point)
                .map(|r| r.kind)
                .max_by_key(|k| k.rank());
            let Some(kind) = kind else { continue };
            match out.len.checked_sub(1).map(|i| &mut out.regions[i]) {
                Some(last) if last.kind == kind && last.end == start => last.end = point,
                _ => {
                    // Capacity: merged intervals never outnumber the inputs by
                    // more than N, and `out` is checked like any push.
                    let _ = out.push(start, point - start, kind);
                }
            }
        }
        // Partial pages of usable RAM cannot be handed out.
        let mut kept = 0;
        for i in 0..out.len {
            let mut region = out.regions[i];
            if region.kind == RegionKind::Usable {
                let Some(start) = region.start.div_ceil(PAGE).checked_mul(PAGE) else { continue };
                region.start = start;
                region.end = region.end / PAGE * PAGE;
                if region.is_empty() {
                    continue;
                }
            }
            out.regions[kept] = region;
            kept += 1;
        }
        out.len = kept;
        *self = out;
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    /// Bytes of a given kind.
    pub fn total(&self, kind: RegionKind) -> u64 {
        self.regions().iter().filter(|r| r.kind == kind).map(Region::len).sum()
    }

    /// One past the highest RAM address.
    pub fn ram_end(&self) -> u64 {
        self.regions().iter().filter(|r| r.kind.is_ram()).map(|r| r.end).max().unwrap_or(0)
    }

    /// Turns every region of kind `from` into `to` (e.g. reclaiming the
    /// loader's memory once it is no longer used).
    pub fn retype(&mut self, from: RegionKind, to: RegionKind) {
        for region in &mut self.regions[..self.len] {
            if region.kind == from {
                region.kind = to;
            }
        }
        self.normalize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegionKind::*;

    fn map(entries: &[(u64, u64, RegionKind)]) -> MemoryMap<32> {
        let mut m = MemoryMap::new();
        for &(s, e, k) in entries {
            m.push(s, e - s, k).unwrap();
        }
        m.normalize();
        m
    }

    #[test]
    fn sorts_and_merges() {
        let m = map(&[(0x2000, 0x3000, Usable), (0x0, 0x1000, Usable), (0x1000, 0x2000, Usable)]);
        assert_eq!(m.regions(), &[Region { start: 0, end: 0x3000, kind: Usable }]);
    }

    #[test]
    fn restrictive_kind_wins_overlap() {
        let m = map(&[(0x0, 0x10000, Usable), (0x4000, 0x6000, Reserved)]);
        assert_eq!(
            m.regions(),
            &[
                Region { start: 0, end: 0x4000, kind: Usable },
                Region { start: 0x4000, end: 0x6000, kind: Reserved },
                Region { start: 0x6000, end: 0x10000, kind: Usable },
            ]
        );
    }

    #[test]
    fn carve_kernel_out_of_usable() {
        let mut m = map(&[(0x100000, 0x4000000, Usable)]);
        m.carve(0x200000, 0x400000, KernelAndModules).unwrap();
        assert_eq!(m.total(Usable), 0x4000000 - 0x100000 - 0x200000);
        assert_eq!(m.total(KernelAndModules), 0x200000);
        // Usable cannot override something already more restrictive.
        m.carve(0x200000, 0x300000, Usable).unwrap();
        assert_eq!(m.total(KernelAndModules), 0x200000);
    }

    #[test]
    fn usable_shrinks_to_pages() {
        let m = map(&[(0x9fc00, 0xa0000, Reserved), (0x0, 0x9fc00, Usable)]);
        assert_eq!(m.regions()[0], Region { start: 0, end: 0x9f000, kind: Usable });
        assert_eq!(m.total(Reserved), 0x400);
    }

    #[test]
    fn empty_and_overflowing_entries_are_ignored() {
        let mut m: MemoryMap<4> = MemoryMap::new();
        m.push(0x1000, 0, Usable).unwrap();
        m.push(u64::MAX - 10, 100, Usable).unwrap();
        m.normalize();
        assert!(m.regions().iter().all(|r| !r.is_empty()));
        assert_eq!(m.ram_end(), 0);
    }

    #[test]
    fn full_map_reports_error() {
        let mut m: MemoryMap<2> = MemoryMap::new();
        m.push(0, 0x1000, Usable).unwrap();
        m.push(0x2000, 0x1000, Usable).unwrap();
        assert_eq!(m.push(0x4000, 0x1000, Usable), Err(MapFull));
    }

    #[test]
    fn retype_reclaims() {
        let mut m = map(&[(0, 0x1000, Usable), (0x1000, 0x2000, BootloaderReclaimable)]);
        m.retype(BootloaderReclaimable, Usable);
        assert_eq!(m.regions(), &[Region { start: 0, end: 0x2000, kind: Usable }]);
    }
}
