//! Per-process handle tables.
//!
//! A handle value names a slot of one process's table. As in Magenta, the
//! value is XORed with a per-process random mask whose top bit and low two
//! bits are clear, so every valid value is odd and positive and values are
//! not guessable across processes. Unlike Magenta, each slot carries a
//! generation that is bumped when the slot is freed, so a stale value stops
//! working instead of silently naming whatever object reuses the slot (until
//! the generation wraps after [`GENERATIONS`] reuses of that one slot).
//!
//! Layout of the unmasked value: bit 0 is 1, bits 1..=20 the slot index,
//! bits 21..=30 the generation, bit 31 is 0.
//!
//! Lookup is two array indexes plus two compares: no hashing, no allocation.
//! The slots live in chunks of [`CHUNK`] that never move, so a table grows
//! one small allocation at a time: the kernel heap hands out at most 4 MiB
//! in one piece, and one flat array of slots could not pass 65536 handles.

use alloc::vec::Vec;

const INDEX_BITS: u32 = 20;
/// log2 of the slots per chunk.
const CHUNK_BITS: u32 = 8;
/// Slots per chunk (one allocation of a few KiB).
pub const CHUNK: usize = 1 << CHUNK_BITS;
const GENERATION_SHIFT: u32 = INDEX_BITS + 1;
const GENERATION_BITS: u32 = 31 - GENERATION_SHIFT;
/// The most live handles one table may hold.
pub const MAX_HANDLES: usize = 1 << INDEX_BITS;
/// How many times a slot can be reused before a stale value could match again.
pub const GENERATIONS: u32 = 1 << GENERATION_BITS;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// `MX_HANDLE_INVALID`.
pub const INVALID: u32 = 0;

/// Why a table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleError {
    /// The value names no live handle of this table (`MX_ERR_BAD_HANDLE`).
    BadHandle,
    /// The table is full or memory ran out (`MX_ERR_NO_MEMORY`).
    NoMemory,
}

enum Slot<T> {
    Used { generation: u32, entry: T },
    Free { generation: u32, next_free: Option<u32> },
}

/// A handle table holding entries of type `T` (the kernel stores an object
/// reference plus rights).
pub struct HandleTable<T> {
    /// Slot `i` is `chunks[i / CHUNK][i % CHUNK]`; every chunk has capacity
    /// `CHUNK` from the start (pushing never reallocates) and only the one
    /// holding slot `created - 1` may be partly filled; chunks after it are
    /// empty (made by `reserve`).
    chunks: Vec<Vec<Slot<T>>>,
    /// Slots ever created (used or free).
    created: usize,
    free_head: Option<u32>,
    mask: u32,
    live: usize,
}

impl<T> HandleTable<T> {
    /// A table whose values are scrambled with `secret` (any random value).
    pub fn new(secret: u32) -> Self {
        HandleTable { chunks: Vec::new(), created: 0, free_head: None, mask: (secret << 2) & i32::MAX as u32, live: 0 }
    }

    /// Number of live handles.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn encode(&self, index: u32, generation: u32) -> u32 {
        self.mask ^ ((generation << GENERATION_SHIFT) | (index << 1) | 1)
    }

    /// Splits a value into (index, generation) if it is well-formed.
    fn decode(&self, value: u32) -> Option<(usize, u32)> {
        let raw = value ^ self.mask;
        if raw & 1 == 0 || raw & (1 << 31) != 0 {
            return None;
        }
        Some((((raw >> 1) & INDEX_MASK) as usize, (raw >> GENERATION_SHIFT) & GENERATION_MASK))
    }

    /// Slot `index`, if it was ever created.
    #[inline]
    fn slot(&self, index: usize) -> Option<&Slot<T>> {
        self.chunks.get(index >> CHUNK_BITS)?.get(index & (CHUNK - 1))
    }

    #[inline]
    fn slot_mut(&mut self, index: usize) -> Option<&mut Slot<T>> {
        self.chunks.get_mut(index >> CHUNK_BITS)?.get_mut(index & (CHUNK - 1))
    }

    /// Makes sure the chunks can hold `extra` more slots without allocating.
    fn grow(&mut self, extra: usize) -> Result<(), HandleError> {
        let need = (self.created + extra).div_ceil(CHUNK);
        if need > self.chunks.len() {
            self.chunks.try_reserve(need - self.chunks.len()).map_err(|_| HandleError::NoMemory)?;
        }
        while self.chunks.len() < need {
            let mut chunk = Vec::new();
            chunk.try_reserve_exact(CHUNK).map_err(|_| HandleError::NoMemory)?;
            self.chunks.push(chunk);
        }
        Ok(())
    }

    /// Installs `entry` and returns its handle value.
    pub fn insert(&mut self, entry: T) -> Result<u32, HandleError> {
        self.try_insert(entry).map_err(|(error, _)| error)
    }

    /// [`insert`](Self::insert) that hands `entry` back on failure, so the
    /// caller can drop it after releasing whatever lock guards the table.
    pub fn try_insert(&mut self, entry: T) -> Result<u32, (HandleError, T)> {
        if let Some(index) = self.free_head {
            let Some(slot) = self.slot_mut(index as usize) else { unreachable!("free list names no slot") };
            let Slot::Free { generation, next_free } = *slot else { unreachable!("free list names a used slot") };
            *slot = Slot::Used { generation, entry };
            self.free_head = next_free;
            self.live += 1;
            return Ok(self.encode(index, generation));
        }
        if self.created >= MAX_HANDLES {
            return Err((HandleError::NoMemory, entry));
        }
        if let Err(error) = self.grow(1) {
            return Err((error, entry));
        }
        let index = self.created as u32;
        self.chunks[self.created >> CHUNK_BITS].push(Slot::Used { generation: 0, entry });
        self.created += 1;
        self.live += 1;
        Ok(self.encode(index, 0))
    }

    /// Reserves room so the next `count` inserts cannot fail for lack of
    /// memory (for installing several handles all-or-nothing).
    pub fn reserve(&mut self, count: usize) -> Result<(), HandleError> {
        let mut free = 0;
        let mut cursor = self.free_head;
        while let (Some(index), true) = (cursor, free < count) {
            free += 1;
            cursor = match self.slot(index as usize) {
                Some(Slot::Free { next_free, .. }) => *next_free,
                _ => None,
            };
        }
        let needed = count - free;
        if self.created + needed > MAX_HANDLES {
            return Err(HandleError::NoMemory);
        }
        self.grow(needed)
    }

    /// The entry named by `value`.
    pub fn get(&self, value: u32) -> Result<&T, HandleError> {
        let (index, generation) = self.decode(value).ok_or(HandleError::BadHandle)?;
        match self.slot(index) {
            Some(Slot::Used { generation: g, entry }) if *g == generation => Ok(entry),
            _ => Err(HandleError::BadHandle),
        }
    }

    /// The entry named by `value`, mutably.
    pub fn get_mut(&mut self, value: u32) -> Result<&mut T, HandleError> {
        let (index, generation) = self.decode(value).ok_or(HandleError::BadHandle)?;
        match self.slot_mut(index) {
            Some(Slot::Used { generation: g, entry }) if *g == generation => Ok(entry),
            _ => Err(HandleError::BadHandle),
        }
    }

    /// Removes the handle and returns its entry; the value (and any copy of
    /// it) stops naming anything.
    pub fn remove(&mut self, value: u32) -> Result<T, HandleError> {
        let (index, generation) = self.decode(value).ok_or(HandleError::BadHandle)?;
        match self.slot(index) {
            Some(Slot::Used { generation: g, .. }) if *g == generation => {}
            _ => return Err(HandleError::BadHandle),
        }
        let free_head = self.free_head;
        let Some(slot) = self.slot_mut(index) else { unreachable!("checked above") };
        let freed = Slot::Free { generation: (generation + 1) & GENERATION_MASK, next_free: free_head };
        let Slot::Used { entry, .. } = core::mem::replace(slot, freed) else { unreachable!("checked above") };
        self.free_head = Some(index as u32);
        self.live -= 1;
        Ok(entry)
    }

    /// Removes every handle (process teardown), yielding the entries.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.free_head = None;
        self.live = 0;
        self.created = 0;
        core::mem::take(&mut self.chunks).into_iter().flatten().filter_map(|slot| match slot {
            Slot::Used { entry, .. } => Some(entry),
            Slot::Free { .. } => None,
        })
    }

    /// Live `(value, entry)` pairs, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        self.chunks.iter().flatten().enumerate().filter_map(|(index, slot)| match slot {
            Slot::Used { generation, entry } => Some((self.encode(index as u32, *generation), entry)),
            Slot::Free { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_odd_positive_and_resolve() {
        let mut table = HandleTable::new(0xdead_beef);
        let values: Vec<u32> = (0..1000).map(|i| table.insert(i).unwrap()).collect();
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(v & 1, 1);
            assert!(v < 1 << 31);
            assert_ne!(v, INVALID);
            assert_eq!(*table.get(v).unwrap(), i);
        }
        assert_eq!(table.len(), 1000);
    }

    #[test]
    fn invalid_and_even_values_are_bad() {
        let mut table = HandleTable::new(12345);
        let v = table.insert(()).unwrap();
        assert_eq!(table.get(INVALID), Err(HandleError::BadHandle));
        assert_eq!(table.get(v ^ 1), Err(HandleError::BadHandle));
        assert_eq!(table.get(v | 1 << 31), Err(HandleError::BadHandle));
        assert_eq!(table.get(v ^ 2), Err(HandleError::BadHandle)); // a slot never used
    }

    #[test]
    fn stale_values_do_not_name_reused_slots() {
        let mut table = HandleTable::new(7);
        let first = table.insert("a").unwrap();
        assert_eq!(table.remove(first), Ok("a"));
        assert_eq!(table.get(first), Err(HandleError::BadHandle));
        assert_eq!(table.remove(first), Err(HandleError::BadHandle));
        let second = table.insert("b").unwrap();
        assert_ne!(first, second, "the reused slot has a new generation");
        assert_eq!(table.get(first), Err(HandleError::BadHandle));
        assert_eq!(table.get(second), Ok(&"b"));
    }

    #[test]
    fn generation_wraps_only_after_many_reuses() {
        let mut table = HandleTable::new(99);
        let first = table.insert(0).unwrap();
        table.remove(first).unwrap();
        let mut seen_again = None;
        for round in 1..=GENERATIONS {
            let v = table.insert(round).unwrap();
            if v == first {
                seen_again = Some(round);
                break;
            }
            table.remove(v).unwrap();
        }
        assert_eq!(seen_again, Some(GENERATIONS));
    }

    #[test]
    fn tables_with_different_secrets_disagree() {
        let mut a = HandleTable::new(1);
        let mut b = HandleTable::new(2);
        let va = a.insert(()).unwrap();
        let vb = b.insert(()).unwrap();
        assert_ne!(va, vb);
        assert_eq!(b.get(va), Err(HandleError::BadHandle));
    }

    #[test]
    fn drain_and_iter() {
        let mut table = HandleTable::new(3);
        let values: Vec<u32> = (0..10).map(|i| table.insert(i).unwrap()).collect();
        table.remove(values[3]).unwrap();
        let listed: Vec<(u32, i32)> = table.iter().map(|(v, &e)| (v, e)).collect();
        assert_eq!(listed.len(), 9);
        assert!(listed.iter().all(|&(v, e)| table.get(v) == Ok(&e)));
        let drained: Vec<i32> = table.drain().collect();
        assert_eq!(drained, vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
        assert!(table.is_empty());
        assert_eq!(table.get(values[0]), Err(HandleError::BadHandle));
    }

    #[test]
    fn reserve_counts_free_slots() {
        let mut table = HandleTable::new(5);
        let v = table.insert(1).unwrap();
        table.remove(v).unwrap();
        table.reserve(4).unwrap();
        assert!(table.chunks.iter().map(Vec::capacity).sum::<usize>() >= 4);
    }

    #[test]
    fn grows_past_one_chunk_and_reserves_across_chunks() {
        let mut table = HandleTable::new(77);
        let values: Vec<u32> = (0..3 * CHUNK + 5).map(|i| table.insert(i).unwrap()).collect();
        assert_eq!(table.chunks.len(), 4);
        assert!(table.chunks.iter().all(|c| c.capacity() == CHUNK));
        table.reserve(2 * CHUNK).unwrap();
        assert_eq!(table.chunks.len(), 6, "reserve makes whole empty chunks ahead");
        let more: Vec<u32> = (0..2 * CHUNK).map(|i| table.insert(i).unwrap()).collect();
        assert_eq!(table.chunks.len(), 6, "no allocation after reserve");
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(table.get(v), Ok(&i));
        }
        assert_eq!(table.get(more[CHUNK + 3]), Ok(&(CHUNK + 3)));
        assert_eq!(table.iter().count(), 5 * CHUNK + 5);
        assert_eq!(table.remove(values[CHUNK]), Ok(CHUNK));
        assert_eq!(table.drain().count(), 5 * CHUNK + 4);
    }

    #[test]
    fn random_ops_match_a_model() {
        let mut table = HandleTable::new(0x1234_5678);
        let mut model: std::collections::HashMap<u32, u64> = Default::default();
        let mut dead: Vec<u32> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..20_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if !seed.is_multiple_of(3) || model.is_empty() {
                let v = table.insert(step).unwrap();
                assert!(model.insert(v, step).is_none(), "value handed out twice");
            } else {
                let v = *model.keys().nth((seed as usize / 3) % model.len()).unwrap();
                assert_eq!(table.remove(v), Ok(model.remove(&v).unwrap()));
                dead.push(v);
            }
            for &v in dead.iter().rev().take(4) {
                if !model.contains_key(&v) {
                    assert_eq!(table.get(v), Err(HandleError::BadHandle));
                }
            }
        }
        assert_eq!(table.len(), model.len());
        for (&v, &e) in &model {
            assert_eq!(table.get(v), Ok(&e));
        }
    }
}
