//! Physical address and page frame number newtypes.
//!
//! Kept distinct from virtual addresses (and from each other) so a frame
//! number can never be passed where a byte address is expected.

use core::fmt;

/// log2 of the page (frame) size.
pub const PAGE_SHIFT: u32 = 12;
/// The page (frame) size in bytes: 4 KiB.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// A physical byte address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(pub u64);

/// A physical page frame number: the physical address divided by [`PAGE_SIZE`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Pfn(pub u64);

impl PhysAddr {
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The frame containing this address.
    pub const fn pfn(self) -> Pfn {
        Pfn(self.0 >> PAGE_SHIFT)
    }

    /// Byte offset of this address within its frame.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }

    pub const fn is_page_aligned(self) -> bool {
        self.page_offset() == 0
    }

    /// Rounds down to the start of the containing frame.
    pub const fn page_align_down(self) -> Self {
        Self(self.0 & !(PAGE_SIZE - 1))
    }

    /// Rounds up to a frame boundary; `None` if that overflows.
    pub const fn page_align_up(self) -> Option<Self> {
        match self.0.checked_add(PAGE_SIZE - 1) {
            Some(v) => Some(Self(v & !(PAGE_SIZE - 1))),
            None => None,
        }
    }

    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<Self> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }
}

impl Pfn {
    pub const fn new(pfn: u64) -> Self {
        Self(pfn)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Physical address of the first byte of the frame, or `None` if the frame
    /// number is too large to have a 64-bit address.
    pub const fn checked_addr(self) -> Option<PhysAddr> {
        if self.0 > (u64::MAX >> PAGE_SHIFT) {
            None
        } else {
            Some(PhysAddr(self.0 << PAGE_SHIFT))
        }
    }

    /// Physical address of the first byte of the frame. Frame numbers above
    /// 2^52 lose their high bits; real hardware never has them.
    pub const fn addr(self) -> PhysAddr {
        PhysAddr(self.0 << PAGE_SHIFT)
    }

    /// `self + frames`, or `None` on overflow.
    pub const fn checked_add(self, frames: u64) -> Option<Self> {
        match self.0.checked_add(frames) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// Whether this frame number is a multiple of `2^order`.
    pub const fn is_aligned(self, order: u32) -> bool {
        order < 64 && self.0 & ((1u64 << order) - 1) == 0
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:#x})", self.0)
    }
}

impl fmt::Display for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl From<Pfn> for PhysAddr {
    fn from(pfn: Pfn) -> Self {
        pfn.addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        let a = PhysAddr::new(0x12_3456);
        assert_eq!(a.pfn(), Pfn(0x123));
        assert_eq!(a.page_offset(), 0x456);
        assert_eq!(a.page_align_down(), PhysAddr(0x12_3000));
        assert_eq!(a.page_align_up(), Some(PhysAddr(0x12_4000)));
        assert_eq!(PhysAddr(0x5000).page_align_up(), Some(PhysAddr(0x5000)));
        assert_eq!(PhysAddr(u64::MAX).page_align_up(), None);
        assert_eq!(Pfn(0x123).addr(), PhysAddr(0x12_3000));
        assert_eq!(Pfn(0x123).checked_addr(), Some(PhysAddr(0x12_3000)));
        assert_eq!(Pfn(u64::MAX).checked_addr(), None);
        assert_eq!(PhysAddr::from(Pfn(2)), PhysAddr(0x2000));
        assert!(Pfn(0x400).is_aligned(10));
        assert!(!Pfn(0x401).is_aligned(1));
        assert!(Pfn(0).is_aligned(63));
        assert!(!Pfn(0).is_aligned(64));
        assert_eq!(format!("{:?}", Pfn(16)), "Pfn(0x10)");
        assert_eq!(Pfn(u64::MAX).checked_add(1), None);
    }
}
