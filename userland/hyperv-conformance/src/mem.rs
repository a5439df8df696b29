//! Reads and writes of the root memory region (the one mapping the server
//! shares with us and with our guests) and of the SynIC pages. All unsafe
//! access of the suite is here: every address passed in lies inside one of
//! those mappings, which stay mapped for the life of the client.

use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

/// Copies `bytes` to `addr`.
pub fn write(addr: u64, bytes: &[u8]) {
    // SAFETY: callers pass addresses of pages of the root memory region or
    // the SynIC VMO (see the module docs); both are mapped read/write. The
    // guest or the server may access them concurrently, which is the point:
    // the bytes are plain data, written volatile.
    unsafe {
        let dst = addr as *mut u8;
        for (i, b) in bytes.iter().enumerate() {
            core::ptr::write_volatile(dst.add(i), *b);
        }
    }
    fence(Ordering::SeqCst);
}

/// Copies `len` bytes from `addr`.
pub fn read(addr: u64, len: usize) -> Vec<u8> {
    fence(Ordering::SeqCst);
    // SAFETY: as for `write`: a mapped, readable region of the client.
    unsafe { (0..len).map(|i| core::ptr::read_volatile((addr as *const u8).add(i))).collect() }
}

/// Fills `len` bytes at `addr` with `byte`.
pub fn fill(addr: u64, len: usize, byte: u8) {
    // SAFETY: as for `write`.
    unsafe {
        let dst = addr as *mut u8;
        for i in 0..len {
            core::ptr::write_volatile(dst.add(i), byte);
        }
    }
    fence(Ordering::SeqCst);
}

/// The little-endian qword at `addr` (8-aligned).
pub fn read_u64(addr: u64) -> u64 {
    fence(Ordering::SeqCst);
    // SAFETY: as for `write`; callers pass 8-aligned addresses.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Stores the qword at `addr` (8-aligned).
pub fn write_u64(addr: u64, value: u64) {
    // SAFETY: as for `write`; callers pass 8-aligned addresses.
    unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
    fence(Ordering::SeqCst);
}

/// Qwords as little-endian bytes.
pub fn qwords(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The qword at byte `at` of `bytes` (0 past the end).
pub fn qword(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}
