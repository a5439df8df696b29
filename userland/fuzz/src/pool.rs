//! A fuzz thread's handles: objects of every type, duplicates with random
//! rights, the values it closed (stale) and addresses worth passing to the
//! VMAR calls. Handles the kernel gives back (out-pointers, messages) join
//! the pool; handles a call consumed leave it.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mx::sys::*;
use mx_abi::types::mx_handle_t;

use crate::rng::Rng;

/// What the fuzzer must know about a handle besides its object type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Plain,
    /// This worker's own process.
    SelfProcess,
    /// A fuzz thread of this worker (its index).
    FuzzThread(u32),
    /// Another thread of this worker's process (made by the fuzzer).
    SelfThread,
}

#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub value: mx_handle_t,
    pub obj_type: u32,
    pub koid: u64,
    pub tag: Tag,
}

/// Most live handles a pool keeps; beyond that new ones are closed.
const CAP: usize = 160;

pub struct Pool {
    pub live: Vec<Entry>,
    pub stale: Vec<mx_handle_t>,
    pub addrs: Vec<u64>,
}

/// Handle values recently used by any fuzz thread of this worker: a
/// "forged" value may name another thread's handle (races on one value).
pub static RECENT: [AtomicU32; 32] = [const { AtomicU32::new(0) }; 32];
/// This process's koid and its fuzz threads' koids (for tags).
pub static SELF_KOID: AtomicU64 = AtomicU64::new(0);
pub static THREAD_KOIDS: [AtomicU64; crate::shared::MAX_THREADS] = [const { AtomicU64::new(0) }; 8];

/// (type, koid, related koid, rights) of a handle of ours, if it is one.
pub fn basic(value: mx_handle_t) -> Option<(u32, u64, u64, u32)> {
    let mut buf = [0u8; 32];
    let status = unsafe {
        mx_object_get_info(value, 2, buf.as_mut_ptr().cast(), buf.len(), core::ptr::null_mut(), core::ptr::null_mut())
    };
    if status != 0 {
        return None;
    }
    let b = mx_abi::object::InfoHandleBasic::from_bytes(&buf);
    Some((b.obj_type, b.koid, b.related_koid, b.rights))
}

impl Pool {
    pub fn new() -> Pool {
        Pool { live: Vec::new(), stale: Vec::new(), addrs: Vec::new() }
    }

    /// Takes `value` (a handle of ours) into the pool; closes it if full.
    pub fn adopt(&mut self, value: mx_handle_t, rng: &mut Rng) {
        if value == 0 || self.live.iter().any(|e| e.value == value) {
            return;
        }
        let Some((obj_type, koid, related, _)) = basic(value) else { return };
        if self.live.len() >= CAP {
            // Keep the pool bounded: close a random older handle.
            let victim = rng.below(self.live.len() as u64) as usize;
            let old = self.live.swap_remove(victim);
            unsafe { mx_handle_close(old.value) };
            self.stale.push(old.value);
        }
        let self_koid = SELF_KOID.load(Ordering::Relaxed);
        let tag = if obj_type == 1 && koid == self_koid {
            Tag::SelfProcess
        } else if obj_type == 2 && related == self_koid {
            match THREAD_KOIDS.iter().position(|k| k.load(Ordering::Relaxed) == koid) {
                Some(i) => Tag::FuzzThread(i as u32),
                None => Tag::SelfThread,
            }
        } else {
            Tag::Plain
        };
        self.live.push(Entry { value, obj_type, koid, tag });
        let slot = (rng.below(RECENT.len() as u64)) as usize;
        RECENT[slot].store(value, Ordering::Relaxed);
        if self.stale.len() > 64 {
            self.stale.remove(0);
        }
    }

    /// Adds `value` and a duplicate of it with a random subset of its rights.
    pub fn adopt_with_variant(&mut self, value: mx_handle_t, rng: &mut Rng) {
        self.adopt(value, rng);
        if let Some((_, _, _, rights)) = basic(value) {
            let mut dup = 0;
            let subset = rights & rng.next() as u32;
            if unsafe { mx_handle_duplicate(value, subset, &mut dup) } == 0 {
                self.adopt(dup, rng);
            }
        }
    }

    /// Drops `value` from the pool if it no longer names a handle of ours
    /// (a call consumed or closed it).
    pub fn revalidate(&mut self, value: mx_handle_t) {
        if let Some(i) = self.live.iter().position(|e| e.value == value) {
            if basic(value).is_none() {
                self.live.swap_remove(i);
                self.stale.push(value);
            }
        }
    }

    pub fn find(&self, value: mx_handle_t) -> Option<&Entry> {
        self.live.iter().find(|e| e.value == value)
    }

    pub fn add_addr(&mut self, addr: u64) {
        if self.addrs.len() >= 32 {
            self.addrs.remove(0);
        }
        self.addrs.push(addr);
    }
}
