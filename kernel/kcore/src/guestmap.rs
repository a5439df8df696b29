//! The guest memory mappings behind `mx_guest_map` and `mx_guest_unmap`.
//!
//! A mapping backs guest-physical pages `[gpa, gpa + len)` with the pages of
//! a VMO from `offset`. Mappings never overlap; they are kept in a vector
//! sorted by GPA, so [`GuestMappings::lookup`] (the nested-page-fault path)
//! is a binary search with no allocation. `map` and `unmap` reserve what
//! they need with `try_reserve` before changing anything, so they either
//! succeed entirely or fail with [`MapError::NoMemory`] and change nothing.
//!
//! # Checks of `mx_guest_map` after the handle checks, in order
//!
//! 1. `gpa`, `offset` or `len` not page-aligned, or `len == 0` →
//!    [`MapError::InvalidArgs`].
//! 2. `gpa + len` overflows or exceeds the guest-physical size →
//!    [`MapError::OutOfRange`].
//! 3. `offset + len` overflows or exceeds the VMO's size → `OutOfRange`.
//! 4. The range intersects a mapping → [`MapError::AlreadyExists`].
//! 5. No memory for the entry → [`MapError::NoMemory`].
//!
//! # Checks of `mx_guest_unmap`
//!
//! 1. `gpa` or `len` not page-aligned, or `len == 0` → `InvalidArgs`.
//! 2. `gpa + len` overflows or exceeds the guest-physical size → `OutOfRange`.
//! 3. No memory to split a mapping or hand back the removed ones →
//!    `NoMemory`.
//!
//! Unmapping pages no mapping covers is fine; a mapping partly covered is
//! trimmed, or split in two when the range lies inside it.

use alloc::vec::Vec;

/// The page size mappings are aligned to.
pub const PAGE_SIZE: u64 = 4096;

/// Why a map or unmap failed. Each variant is exactly one `mx_status_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `MX_ERR_INVALID_ARGS`: misaligned or empty.
    InvalidArgs,
    /// `MX_ERR_OUT_OF_RANGE`: outside the guest space or the VMO.
    OutOfRange,
    /// `MX_ERR_ALREADY_EXISTS`: overlaps a mapping.
    AlreadyExists,
    /// `MX_ERR_NO_MEMORY`.
    NoMemory,
}

/// Guest pages `[gpa, gpa + len)` backed by `vmo` from `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping<V> {
    /// First guest-physical address (page-aligned).
    pub gpa: u64,
    /// Bytes (a non-zero multiple of the page size).
    pub len: u64,
    /// Where `gpa` lies in the VMO (page-aligned).
    pub offset: u64,
    /// The VMO (whatever the kernel keeps for it).
    pub vmo: V,
}

impl<V> Mapping<V> {
    /// One past the last address (no overflow: checked at insertion).
    pub fn end(&self) -> u64 {
        self.gpa + self.len
    }
}

/// Checks `mx_guest_unmap`'s range (steps 1-2).
pub fn validate_unmap(gpa: u64, len: u64, space_size: u64) -> Result<(), MapError> {
    if !(gpa | len).is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(MapError::InvalidArgs);
    }
    match gpa.checked_add(len) {
        Some(end) if end <= space_size => Ok(()),
        _ => Err(MapError::OutOfRange),
    }
}

/// Checks `mx_guest_map`'s arguments against everything but the existing
/// mappings (steps 1-3).
pub fn validate_map(gpa: u64, offset: u64, len: u64, space_size: u64, vmo_size: u64) -> Result<(), MapError> {
    if !(gpa | offset | len).is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(MapError::InvalidArgs);
    }
    validate_unmap(gpa, len, space_size)?;
    match offset.checked_add(len) {
        Some(end) if end <= vmo_size => Ok(()),
        _ => Err(MapError::OutOfRange),
    }
}

/// A guest's mappings.
#[derive(Debug)]
pub struct GuestMappings<V> {
    /// Sorted by `gpa`, never overlapping.
    list: Vec<Mapping<V>>,
}

impl<V> Default for GuestMappings<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> GuestMappings<V> {
    pub const fn new() -> Self {
        GuestMappings { list: Vec::new() }
    }

    /// Number of mappings.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The mappings in GPA order.
    pub fn iter(&self) -> impl Iterator<Item = &Mapping<V>> {
        self.list.iter()
    }

    /// Index of the first mapping ending after `addr`.
    fn first_ending_after(&self, addr: u64) -> usize {
        self.list.partition_point(|m| m.end() <= addr)
    }

    /// Adds a mapping of validated arguments ([`validate_map`]):
    /// `AlreadyExists` if it intersects one, `NoMemory`.
    pub fn map(&mut self, gpa: u64, len: u64, offset: u64, vmo: V) -> Result<(), MapError> {
        let at = self.first_ending_after(gpa);
        if self.list.get(at).is_some_and(|m| m.gpa < gpa + len) {
            return Err(MapError::AlreadyExists);
        }
        self.list.try_reserve(1).map_err(|_| MapError::NoMemory)?;
        self.list.insert(at, Mapping { gpa, len, offset, vmo });
        Ok(())
    }

    /// The VMO and the offset in it of the page holding `gpa`: a binary
    /// search, no allocation.
    pub fn lookup(&self, gpa: u64) -> Option<(&V, u64)> {
        let m = self.list.get(self.first_ending_after(gpa))?;
        (m.gpa <= gpa).then(|| (&m.vmo, m.offset + ((gpa - m.gpa) & !(PAGE_SIZE - 1))))
    }

    /// Whether any mapping intersects `[gpa, gpa + len)`.
    pub fn intersects(&self, gpa: u64, len: u64) -> bool {
        self.list.get(self.first_ending_after(gpa)).is_some_and(|m| m.gpa < gpa.saturating_add(len))
    }
}

impl<V: Clone> GuestMappings<V> {
    /// Removes every mapped page in the validated range `[gpa, gpa + len)`
    /// ([`validate_unmap`]): mappings inside it go to `removed` (so the
    /// caller decides when their VMOs are released), mappings across its
    /// edges are trimmed, a mapping holding it entirely is split (its VMO
    /// cloned). Returns whether any page was mapped there. `NoMemory`
    /// before anything changes.
    pub fn unmap(&mut self, gpa: u64, len: u64, removed: &mut Vec<V>) -> Result<bool, MapError> {
        let end = gpa + len;
        let first = self.first_ending_after(gpa);
        let last = first + self.list[first..].partition_point(|m| m.gpa < end);
        if first == last {
            return Ok(false);
        }
        let split = last - first == 1 && self.list[first].gpa < gpa && self.list[first].end() > end;
        if split {
            self.list.try_reserve(1).map_err(|_| MapError::NoMemory)?;
            let m = &mut self.list[first];
            let tail = Mapping { gpa: end, len: m.end() - end, offset: m.offset + (end - m.gpa), vmo: m.vmo.clone() };
            m.len = gpa - m.gpa;
            self.list.insert(first + 1, tail);
            return Ok(true);
        }
        // Only the first and last mappings can stick out of the range; the
        // ones between lie inside it.
        let inner_first = if self.list[first].gpa < gpa { first + 1 } else { first };
        let inner_last = if self.list[last - 1].end() > end { last - 1 } else { last };
        let inner_last = inner_last.max(inner_first);
        removed.try_reserve(inner_last - inner_first).map_err(|_| MapError::NoMemory)?;
        let head = &mut self.list[first];
        if head.gpa < gpa {
            head.len = gpa - head.gpa;
        }
        let tail = &mut self.list[last - 1];
        if tail.end() > end {
            tail.offset += end - tail.gpa;
            tail.len = tail.end() - end;
            tail.gpa = end;
        }
        removed.extend(self.list.drain(inner_first..inner_last).map(|m| m.vmo));
        Ok(true)
    }

    /// Removes everything (guest destruction), handing the VMOs out.
    pub fn drain(&mut self) -> impl Iterator<Item = V> + '_ {
        self.list.drain(..).map(|m| m.vmo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    const PG: u64 = PAGE_SIZE;
    const SPACE: u64 = 1 << 48;

    #[test]
    fn map_checks_in_order() {
        assert_eq!(validate_map(1, 0, PG, SPACE, PG), Err(MapError::InvalidArgs));
        assert_eq!(validate_map(0, 8, PG, SPACE, 2 * PG), Err(MapError::InvalidArgs));
        assert_eq!(validate_map(0, 0, 100, SPACE, PG), Err(MapError::InvalidArgs));
        assert_eq!(validate_map(0, 0, 0, SPACE, PG), Err(MapError::InvalidArgs));
        // Alignment before range.
        assert_eq!(validate_map(SPACE + 1, 0, PG, SPACE, PG), Err(MapError::InvalidArgs));
        assert_eq!(validate_map(SPACE, 0, PG, SPACE, PG), Err(MapError::OutOfRange));
        assert_eq!(validate_map(SPACE - PG, 0, 2 * PG, SPACE, 2 * PG), Err(MapError::OutOfRange));
        assert_eq!(validate_map(u64::MAX - PG + 1, 0, PG, SPACE, PG), Err(MapError::OutOfRange));
        // The guest range before the VMO range.
        assert_eq!(validate_map(SPACE, PG, PG, SPACE, PG), Err(MapError::OutOfRange));
        assert_eq!(validate_map(0, PG, PG, SPACE, PG), Err(MapError::OutOfRange));
        assert_eq!(validate_map(0, u64::MAX - PG + 1, PG, SPACE, u64::MAX), Err(MapError::OutOfRange));
        assert_eq!(validate_map(SPACE - PG, PG, PG, SPACE, 2 * PG), Ok(()));
        assert_eq!(validate_unmap(0, 0, SPACE), Err(MapError::InvalidArgs));
        assert_eq!(validate_unmap(PG, 1, SPACE), Err(MapError::InvalidArgs));
        assert_eq!(validate_unmap(SPACE - PG, 2 * PG, SPACE), Err(MapError::OutOfRange));
        assert_eq!(validate_unmap(0, SPACE, SPACE), Ok(()));
    }

    #[test]
    fn overlap_lookup_split_trim() {
        let mut m = GuestMappings::new();
        assert_eq!(m.map(4 * PG, 4 * PG, 10 * PG, 'a'), Ok(()));
        assert_eq!(m.map(8 * PG, PG, 0, 'b'), Ok(()));
        assert_eq!(m.map(3 * PG, 2 * PG, 0, 'x'), Err(MapError::AlreadyExists));
        assert_eq!(m.map(7 * PG, PG, 0, 'x'), Err(MapError::AlreadyExists));
        assert_eq!(m.map(0, 100 * PG, 0, 'x'), Err(MapError::AlreadyExists));
        assert_eq!(m.lookup(4 * PG + 5), Some((&'a', 10 * PG)));
        assert_eq!(m.lookup(7 * PG + 4095), Some((&'a', 13 * PG)));
        assert_eq!(m.lookup(8 * PG), Some((&'b', 0)));
        assert_eq!(m.lookup(9 * PG), None);
        assert_eq!(m.lookup(3 * PG), None);
        let mut removed = Vec::new();
        // Split 'a' around page 5.
        assert_eq!(m.unmap(5 * PG, PG, &mut removed), Ok(true));
        assert!(removed.is_empty());
        assert_eq!(m.len(), 3);
        assert_eq!(m.lookup(5 * PG), None);
        assert_eq!(m.lookup(6 * PG), Some((&'a', 12 * PG)));
        assert_eq!(m.lookup(4 * PG), Some((&'a', 10 * PG)));
        // Trim both edges and remove 'b' whole.
        assert_eq!(m.unmap(4 * PG, 5 * PG, &mut removed), Ok(true));
        assert_eq!(removed, ['a', 'a', 'b']);
        assert!(m.is_empty());
        assert_eq!(m.unmap(0, SPACE, &mut removed), Ok(false));
        assert_eq!(m.map(0, 3 * PG, 0, 'c'), Ok(()));
        assert_eq!(m.unmap(2 * PG, 5 * PG, &mut removed), Ok(true));
        assert_eq!(m.lookup(PG), Some((&'c', PG)));
        assert_eq!(m.lookup(2 * PG), None);
        assert_eq!(m.map(3 * PG, 3 * PG, 0, 'd'), Ok(()));
        assert_eq!(m.unmap(0, 4 * PG, &mut removed), Ok(true));
        assert_eq!(m.lookup(4 * PG), Some((&'d', PG)));
        assert_eq!(m.iter().count(), 1);
        assert_eq!(m.drain().collect::<Vec<_>>(), ['d']);
    }

    /// Against a per-page model: owner and VMO page of every page.
    #[test]
    fn randomized_against_page_model() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut m: GuestMappings<u64> = GuestMappings::new();
        const PAGES: usize = 64;
        let mut model: [Option<(u64, u64)>; PAGES] = [None; PAGES];
        for step in 1..20_000u64 {
            let r = rng.next();
            let page = (r % PAGES as u64) as usize;
            let count = ((r >> 8) % 8 + 1) as usize;
            let count = count.min(PAGES - page);
            let (gpa, len) = (page as u64 * PG, count as u64 * PG);
            let op = (r >> 20) % 3;
            if op == 0 {
                let free = model[page..page + count].iter().all(Option::is_none);
                let offset = (r >> 32) % 16 * PG;
                let got = m.map(gpa, len, offset, step);
                assert_eq!(got.is_ok(), free);
                if free {
                    for (i, slot) in model[page..page + count].iter_mut().enumerate() {
                        *slot = Some((step, offset / PG + i as u64));
                    }
                }
            } else if op == 1 {
                let mut removed = Vec::new();
                let any = model[page..page + count].iter().any(Option::is_some);
                let before = m.len();
                assert_eq!(m.unmap(gpa, len, &mut removed), Ok(any));
                // Only mappings of the range come out, and no piece is lost
                // or invented: a split adds one, a removal takes one.
                for v in &removed {
                    assert!(model[page..page + count].iter().flatten().any(|&(o, _)| o == *v), "removed {v}");
                }
                assert!(m.len() + removed.len() <= before + 1);
                model[page..page + count].iter_mut().for_each(|s| *s = None);
            }
            for (i, slot) in model.iter().enumerate() {
                let got = m.lookup(i as u64 * PG + 7).map(|(&v, off)| (v, off / PG));
                assert_eq!(got, *slot, "page {i} at step {step}");
            }
        }
    }
}
