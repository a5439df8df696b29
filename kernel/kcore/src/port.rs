//! The packet queue of a port (`mx_port_queue`, `mx_port_wait`,
//! `mx_port_cancel`, `mx_object_wait_async`, guest traps).
//!
//! The kernel's `Port` object is a lock plus a wait queue of threads around
//! one [`PortQueue`]; everything about which packet comes out next, who owns
//! its storage and which paused VCPU may continue is decided here.
//!
//! # Design
//!
//! All packets of a port, whatever their origin, sit in **one FIFO**: an
//! index-linked doubly linked list threaded through a single arena of nodes
//! (`Vec<Node>`, links are `u32` indices). Packets leave in the order they
//! were queued, and any node can be unlinked in O(1) for cancellation.
//!
//! Nodes come from three kinds of storage in that arena:
//!
//! - **Trap pools.** [`PortQueue::add_trap`] reserves a contiguous block of
//!   [`TRAP_POOL_SIZE`] nodes for one trap (this is the only allocation of
//!   the trap path, done at `mx_guest_set_trap` time, fallibly). The free
//!   nodes of a pool form an intrusive free list. [`PortQueue::queue_trap`]
//!   and [`PortQueue::dequeue`] of trap packets therefore never allocate.
//!   When a trap is removed its block goes on a list of free blocks that the
//!   next trap reuses.
//! - **User packets** (`mx_port_queue`) take a node from a general free list,
//!   growing the arena by one node (fallibly) when the list is empty. At most
//!   `user_cap` of them may be queued at once ([`MAX_USER_PACKETS`] by
//!   default): the next one fails with [`QueueError::NoMemory`],
//!   `MX_ERR_NO_MEMORY`, the status Magenta's `mx_port_queue` gives when its
//!   packet pool is exhausted. Only user packets count against the cap (the
//!   fix for Zircon's ZX-4220, where user packets starved trap packets), and
//!   the cap is exact: `user_cap` queues succeed, the next fails (Zircon's
//!   `>` let one extra through). The arena keeps freed general nodes, so a
//!   port in steady state does not allocate either; growth is bounded by the
//!   cap plus the number of signal packets.
//! - **Signal packets** (async waits) use the same general nodes but do not
//!   count against the cap. Each carries its source object id and key, so
//!   [`PortQueue::cancel`] (`mx_port_cancel`) removes exactly them; it never
//!   touches user or trap packets.
//!
//! # Trap back-pressure
//!
//! A trap whose pool is empty makes [`PortQueue::queue_trap`] return
//! [`TrapQueueError::WouldBlock`]; the port counts one *paused* VCPU for that
//! trap and the kernel parks the VCPU on the trap's FIFO wait queue. When a
//! packet of that trap leaves the queue ([`PortQueue::dequeue`], or
//! [`PortQueue::cancel_trap`]) and VCPUs are paused on it, the slot is not put
//! back on the free list but **handed over**: it is reserved for the oldest
//! paused VCPU and the dequeue reports the trap ([`Dequeued::resume`]). The
//! kernel wakes exactly one VCPU per report, in the order they paused, and
//! that VCPU queues its packet with [`PortQueue::queue_trap_reserved`], which
//! cannot fail for want of a slot. A newly trapping VCPU cannot steal a
//! reserved slot, so no paused VCPU starves, and each freed slot wakes at most
//! one VCPU (no thundering herd). A VCPU that is woken but dies before
//! queueing gives its slot back with [`PortQueue::release_reservation`].
//!
//! Invariant per trap: `free + queued + reserved == TRAP_POOL_SIZE`, and
//! `paused > 0` implies `free == 0`.

use alloc::vec::Vec;

/// Packets preallocated per trap: Magenta/Zircon's `kMaxPacketsPerRange`.
pub const TRAP_POOL_SIZE: usize = 256;
/// Default cap on queued user packets per port. Magenta had one system-wide
/// pool of 16384 packets; like Zircon we give each port an eighth of that,
/// so one port cannot take every user packet in the system.
pub const MAX_USER_PACKETS: usize = 16384 / 8;

/// `MX_PKT_TYPE_USER`.
pub const PKT_TYPE_USER: u32 = 0x00;
/// `MX_PKT_TYPE_SIGNAL_ONE`.
pub const PKT_TYPE_SIGNAL_ONE: u32 = 0x01;
/// `MX_PKT_TYPE_SIGNAL_REP`.
pub const PKT_TYPE_SIGNAL_REP: u32 = 0x02;
/// `MX_PKT_TYPE_GUEST_MEM`.
pub const PKT_TYPE_GUEST_MEM: u32 = 0x03;
/// `MX_PKT_TYPE_GUEST_IO`.
pub const PKT_TYPE_GUEST_IO: u32 = 0x04;

const NIL: u32 = u32::MAX;

/// `mx_port_packet_t`: 48 bytes, the same fields in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Packet {
    /// `key`.
    pub key: u64,
    /// `type` (`MX_PKT_TYPE_*`).
    pub kind: u32,
    /// `status`.
    pub status: i32,
    /// The 32-byte payload union.
    pub payload: [u8; 32],
}

/// Names one trap's pool in one port. Stale ids (of a removed trap) are
/// detected by a generation and rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrapId {
    index: u32,
    generation: u32,
}

impl TrapId {
    /// The pool's slot number in its port, below the number of traps the
    /// port ever held at once: the kernel keeps per-trap state (the wait
    /// queue of paused VCPUs) in a table indexed by it. A slot is reused by
    /// later traps, which get a different id (compare the whole id).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// Why a user or signal packet could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// `MX_ERR_NO_MEMORY`: the user cap is reached, or a node could not be allocated.
    NoMemory,
}

impl QueueError {
    /// The `mx_status_t` value.
    pub fn status(self) -> i32 {
        -4
    }
}

/// Why a trap packet could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapQueueError {
    /// The trap's pool is empty: pause the VCPU (`MX_ERR_SHOULD_WAIT`). The
    /// port has counted it as paused; it will be reported by a later
    /// [`Dequeued::resume`] or [`TrapCancel::resumed`], or by [`PortQueue::remove_trap`].
    WouldBlock,
    /// The trap id is stale (`MX_ERR_BAD_STATE`: the trap or its guest is gone),
    /// or `queue_trap_reserved` was called with no reservation outstanding.
    BadTrap,
}

impl TrapQueueError {
    /// The `mx_status_t` value.
    pub fn status(self) -> i32 {
        match self {
            TrapQueueError::WouldBlock => -22,
            TrapQueueError::BadTrap => -20,
        }
    }
}

/// What [`PortQueue::dequeue`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dequeued {
    /// The oldest packet.
    pub packet: Packet,
    /// Set when the packet was a trap packet and a VCPU was paused on that
    /// trap: its slot is now reserved for the oldest paused VCPU, which the
    /// kernel must wake (exactly one per report).
    pub resume: Option<TrapId>,
}

/// What [`PortQueue::cancel_trap`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TrapCancel {
    /// Queued packets of the trap that were removed.
    pub removed: usize,
    /// How many of the trap's oldest paused VCPUs now hold a reserved slot
    /// and must be woken.
    pub resumed: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// On the general free list.
    Free,
    /// A queued user packet.
    User,
    /// A queued signal packet from object `source`.
    Signal { source: u64 },
    /// A node of trap pool `index` (free or queued: see `queued`).
    Trap { index: u32 },
}

#[derive(Clone, Copy, Debug)]
struct Node {
    prev: u32,
    next: u32,
    owner: Owner,
    queued: bool,
    packet: Packet,
}

#[derive(Clone, Copy, Debug)]
struct TrapPool {
    /// First node of the pool's block in the arena.
    base: u32,
    key: u64,
    free_head: u32,
    /// Nodes reserved for woken VCPUs, an intrusive list like `free_head`.
    reserved_head: u32,
    free: u32,
    queued: u32,
    reserved: u32,
    paused: u32,
}

#[derive(Clone, Copy, Debug)]
struct TrapSlot {
    generation: u32,
    pool: Option<TrapPool>,
}

/// The packet queue of one port. Not synchronised: the kernel wraps it in its
/// port lock.
#[derive(Debug)]
pub struct PortQueue {
    nodes: Vec<Node>,
    head: u32,
    tail: u32,
    len: usize,
    free_general: u32,
    user_count: usize,
    user_cap: usize,
    traps: Vec<TrapSlot>,
    /// Blocks of `TRAP_POOL_SIZE` nodes left by removed traps (their bases).
    free_blocks: Vec<u32>,
}

impl Default for PortQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl PortQueue {
    /// An empty queue with the default user cap [`MAX_USER_PACKETS`].
    pub const fn new() -> Self {
        Self::with_user_cap(MAX_USER_PACKETS)
    }

    /// An empty queue that holds at most `user_cap` user packets.
    pub const fn with_user_cap(user_cap: usize) -> Self {
        PortQueue {
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
            free_general: NIL,
            user_count: 0,
            user_cap,
            traps: Vec::new(),
            free_blocks: Vec::new(),
        }
    }

    /// Number of queued packets of every kind.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no packet is queued (the port is not readable).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of queued user packets.
    pub fn user_len(&self) -> usize {
        self.user_count
    }

    // ---- list plumbing ----

    fn link_tail(&mut self, i: u32) {
        let tail = self.tail;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = tail;
            n.next = NIL;
            n.queued = true;
        }
        if tail == NIL {
            self.head = i;
        } else {
            self.nodes[tail as usize].next = i;
        }
        self.tail = i;
        self.len += 1;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
        n.queued = false;
        self.len -= 1;
    }

    fn alloc_general(&mut self) -> Result<u32, QueueError> {
        if self.free_general != NIL {
            let i = self.free_general;
            self.free_general = self.nodes[i as usize].next;
            return Ok(i);
        }
        let i = u32::try_from(self.nodes.len()).ok().filter(|&i| i != NIL).ok_or(QueueError::NoMemory)?;
        self.nodes.try_reserve(1).map_err(|_| QueueError::NoMemory)?;
        self.nodes.push(Node { prev: NIL, next: NIL, owner: Owner::Free, queued: false, packet: Packet::default() });
        Ok(i)
    }

    fn free_general_node(&mut self, i: u32) {
        let n = &mut self.nodes[i as usize];
        n.owner = Owner::Free;
        n.next = self.free_general;
        self.free_general = i;
    }

    fn pool_mut(&mut self, id: TrapId) -> Option<&mut TrapPool> {
        pool_in(&mut self.traps, id)
    }

    fn id_of(&self, index: u32) -> TrapId {
        TrapId { index, generation: self.traps[index as usize].generation }
    }

    /// A trap node left the queue: hand it to a paused VCPU or free it.
    /// Returns whether a paused VCPU got it.
    fn release_trap_node(&mut self, index: u32, i: u32) -> bool {
        let free_head = {
            let Some(pool) = self.traps[index as usize].pool.as_mut() else { return false };
            pool.queued -= 1;
            if pool.paused > 0 {
                pool.paused -= 1;
                pool.reserved += 1;
                let old = core::mem::replace(&mut pool.reserved_head, i);
                self.nodes[i as usize].next = old;
                return true;
            }
            pool.free += 1;
            core::mem::replace(&mut pool.free_head, i)
        };
        self.nodes[i as usize].next = free_head;
        false
    }

    // ---- user and signal packets ----

    /// `mx_port_queue`: queues a user packet. Its `type` is forced to
    /// `MX_PKT_TYPE_USER`; key, status and payload are kept.
    pub fn queue_user(&mut self, mut packet: Packet) -> Result<(), QueueError> {
        if self.user_count >= self.user_cap {
            return Err(QueueError::NoMemory);
        }
        packet.kind = PKT_TYPE_USER;
        let i = self.alloc_general()?;
        let n = &mut self.nodes[i as usize];
        n.owner = Owner::User;
        n.packet = packet;
        self.link_tail(i);
        self.user_count += 1;
        Ok(())
    }

    /// Queues a signal packet for an async wait on object `source` (the
    /// kernel's object id, not a handle value). Not counted against the user cap.
    pub fn queue_signal(&mut self, source: u64, packet: Packet) -> Result<(), QueueError> {
        let i = self.alloc_general()?;
        let n = &mut self.nodes[i as usize];
        n.owner = Owner::Signal { source };
        n.packet = packet;
        self.link_tail(i);
        Ok(())
    }

    /// Whether a signal packet of `(source, key)` is queued (a REPEATING wait
    /// adds no second packet while one is queued). O(n).
    pub fn has_signal(&self, source: u64, key: u64) -> bool {
        self.iter_nodes().any(|n| n.owner == Owner::Signal { source } && n.packet.key == key)
    }

    /// `mx_port_cancel`: removes the queued signal packets of `(source, key)`.
    /// User and trap packets are never matched. Returns how many were removed
    /// (the kernel answers `MX_ERR_NOT_FOUND` if this and its own observer
    /// removal both found nothing). O(n).
    pub fn cancel(&mut self, source: u64, key: u64) -> usize {
        let mut removed = 0;
        let mut i = self.head;
        while i != NIL {
            let n = self.nodes[i as usize];
            if n.owner == (Owner::Signal { source }) && n.packet.key == key {
                self.unlink(i);
                self.free_general_node(i);
                removed += 1;
            }
            i = n.next;
        }
        removed
    }

    /// Removes every queued signal packet of object `source` (the object is
    /// destroyed). Returns how many.
    pub fn cancel_source(&mut self, source: u64) -> usize {
        let mut removed = 0;
        let mut i = self.head;
        while i != NIL {
            let n = self.nodes[i as usize];
            if n.owner == (Owner::Signal { source }) {
                self.unlink(i);
                self.free_general_node(i);
                removed += 1;
            }
            i = n.next;
        }
        removed
    }

    fn iter_nodes(&self) -> impl Iterator<Item = &Node> + '_ {
        let mut i = self.head;
        core::iter::from_fn(move || {
            let n = self.nodes.get(i as usize)?;
            i = n.next;
            Some(n)
        })
    }

    /// The queued packets, oldest first (for debugging and tests).
    pub fn iter(&self) -> impl Iterator<Item = &Packet> + '_ {
        self.iter_nodes().map(|n| &n.packet)
    }

    // ---- traps ----

    /// Creates the packet pool of a new trap whose packets carry `key`: the
    /// only allocation of the trap path (`MX_ERR_NO_MEMORY` on failure).
    pub fn add_trap(&mut self, key: u64) -> Result<TrapId, QueueError> {
        // Find or make the slot first, and make sure remove_trap can record
        // the block later without allocating.
        let index = match self.traps.iter().position(|s| s.pool.is_none()) {
            Some(i) => i,
            None => {
                self.traps.try_reserve(1).map_err(|_| QueueError::NoMemory)?;
                self.free_blocks.try_reserve(self.traps.len() + 1).map_err(|_| QueueError::NoMemory)?;
                self.traps.push(TrapSlot { generation: 0, pool: None });
                self.traps.len() - 1
            }
        };
        let index = u32::try_from(index).map_err(|_| QueueError::NoMemory)?;
        let base = match self.free_blocks.pop() {
            Some(base) => base,
            None => {
                let base = self.nodes.len();
                if base + TRAP_POOL_SIZE >= NIL as usize {
                    return Err(QueueError::NoMemory);
                }
                self.nodes.try_reserve(TRAP_POOL_SIZE).map_err(|_| QueueError::NoMemory)?;
                let free = Node { prev: NIL, next: NIL, owner: Owner::Free, queued: false, packet: Packet::default() };
                self.nodes.resize(base + TRAP_POOL_SIZE, free);
                base as u32
            }
        };
        // Thread the block into the pool's free list.
        for k in 0..TRAP_POOL_SIZE as u32 {
            let n = &mut self.nodes[(base + k) as usize];
            n.owner = Owner::Trap { index };
            n.queued = false;
            n.prev = NIL;
            n.next = if k + 1 < TRAP_POOL_SIZE as u32 { base + k + 1 } else { NIL };
        }
        let slot = &mut self.traps[index as usize];
        slot.pool = Some(TrapPool {
            base,
            key,
            free_head: base,
            reserved_head: NIL,
            free: TRAP_POOL_SIZE as u32,
            queued: 0,
            reserved: 0,
            paused: 0,
        });
        Ok(TrapId { index, generation: slot.generation })
    }

    /// A guest access hit trap `id`: queues `packet` with the trap's key, or
    /// returns `WouldBlock` (counting the VCPU as paused) when the pool is
    /// empty. O(1), never allocates.
    pub fn queue_trap(&mut self, id: TrapId, packet: Packet) -> Result<(), TrapQueueError> {
        let pool = pool_in(&mut self.traps, id).ok_or(TrapQueueError::BadTrap)?;
        if pool.free == 0 {
            pool.paused += 1;
            return Err(TrapQueueError::WouldBlock);
        }
        let i = pool.free_head;
        pool.free -= 1;
        pool.queued += 1;
        let key = pool.key;
        pool.free_head = self.nodes[i as usize].next;
        self.put_trap_packet(i, key, packet);
        Ok(())
    }

    /// A VCPU woken by a resume report queues its packet into the slot that
    /// was reserved for it. O(1), never allocates.
    pub fn queue_trap_reserved(&mut self, id: TrapId, packet: Packet) -> Result<(), TrapQueueError> {
        let pool = pool_in(&mut self.traps, id).ok_or(TrapQueueError::BadTrap)?;
        if pool.reserved == 0 {
            return Err(TrapQueueError::BadTrap);
        }
        pool.reserved -= 1;
        pool.queued += 1;
        let (i, key) = (pool.reserved_head, pool.key);
        pool.reserved_head = self.nodes[i as usize].next;
        self.put_trap_packet(i, key, packet);
        Ok(())
    }

    /// A woken VCPU gives up its reserved slot without queueing (it was
    /// killed). If another VCPU is paused on the trap, the slot passes to it
    /// and `Some(id)` says to wake it; otherwise the slot is freed.
    pub fn release_reservation(&mut self, id: TrapId) -> Option<TrapId> {
        let pool = pool_in(&mut self.traps, id)?;
        if pool.reserved == 0 {
            return None;
        }
        if pool.paused > 0 {
            pool.paused -= 1;
            return Some(id);
        }
        pool.reserved -= 1;
        pool.free += 1;
        let i = pool.reserved_head;
        pool.reserved_head = self.nodes[i as usize].next;
        let old = core::mem::replace(&mut pool.free_head, i);
        self.nodes[i as usize].next = old;
        None
    }

    fn put_trap_packet(&mut self, i: u32, key: u64, mut packet: Packet) {
        packet.key = key;
        self.nodes[i as usize].packet = packet;
        self.link_tail(i);
    }

    /// A paused VCPU that stops waiting without being resumed (its thread is
    /// killed) is no longer counted. Returns false if none was paused.
    pub fn unpause(&mut self, id: TrapId) -> bool {
        match self.pool_mut(id) {
            Some(pool) if pool.paused > 0 => {
                pool.paused -= 1;
                true
            }
            _ => false,
        }
    }

    /// Removes the queued packets of trap `id` only (user packets with the
    /// same key survive) and returns their slots, handing them to paused
    /// VCPUs first. O(TRAP_POOL_SIZE).
    pub fn cancel_trap(&mut self, id: TrapId) -> TrapCancel {
        let Some(pool) = self.pool_mut(id) else { return TrapCancel::default() };
        let base = pool.base;
        let mut out = TrapCancel::default();
        for i in base..base + TRAP_POOL_SIZE as u32 {
            if self.nodes[i as usize].queued {
                self.unlink(i);
                out.removed += 1;
                if self.release_trap_node(id.index, i) {
                    out.resumed += 1;
                }
            }
        }
        out
    }

    /// Destroys the pool of trap `id` (trap or guest destruction): its queued
    /// packets are removed and its block is kept for the next trap. Returns
    /// how many VCPUs were still paused or held a reservation on it; the
    /// kernel wakes them with an error. Later uses of `id` fail with `BadTrap`.
    pub fn remove_trap(&mut self, id: TrapId) -> Option<usize> {
        let pool = *self.pool_mut(id)?;
        for i in pool.base..pool.base + TRAP_POOL_SIZE as u32 {
            if self.nodes[i as usize].queued {
                self.unlink(i);
            }
            let n = &mut self.nodes[i as usize];
            n.owner = Owner::Free;
            n.prev = NIL;
        }
        let slot = &mut self.traps[id.index as usize];
        slot.pool = None;
        slot.generation = slot.generation.wrapping_add(1);
        // Capacity was reserved by add_trap: this push never allocates.
        self.free_blocks.push(pool.base);
        Some((pool.paused + pool.reserved) as usize)
    }

    /// Free slots of trap `id`'s pool (None for a stale id).
    pub fn trap_free(&self, id: TrapId) -> Option<usize> {
        let slot = self.traps.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.pool.as_ref().map(|p| p.free as usize)
    }

    /// VCPUs counted as paused on trap `id`.
    pub fn trap_paused(&self, id: TrapId) -> Option<usize> {
        let slot = self.traps.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.pool.as_ref().map(|p| p.paused as usize)
    }

    // ---- dequeue ----

    /// `mx_port_wait`: takes the oldest packet. For a trap packet the slot
    /// goes back to its pool, or to the oldest paused VCPU of that trap
    /// (reported in [`Dequeued::resume`]). O(1), never allocates.
    pub fn dequeue(&mut self) -> Option<Dequeued> {
        let i = self.head;
        if i == NIL {
            return None;
        }
        self.unlink(i);
        let n = self.nodes[i as usize];
        let resume = match n.owner {
            Owner::User => {
                self.user_count -= 1;
                self.free_general_node(i);
                None
            }
            Owner::Signal { .. } => {
                self.free_general_node(i);
                None
            }
            Owner::Trap { index } => {
                if self.release_trap_node(index, i) {
                    Some(self.id_of(index))
                } else {
                    None
                }
            }
            Owner::Free => None,
        };
        Some(Dequeued { packet: n.packet, resume })
    }
}

fn pool_in(traps: &mut [TrapSlot], id: TrapId) -> Option<&mut TrapPool> {
    let slot = traps.get_mut(id.index as usize)?;
    if slot.generation != id.generation {
        return None;
    }
    slot.pool.as_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;

    fn pkt(key: u64, tag: u64) -> Packet {
        let mut p = Packet { key, kind: 0xAA, status: 0, payload: [0; 32] };
        p.payload[..8].copy_from_slice(&tag.to_le_bytes());
        p
    }

    fn tag(p: &Packet) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&p.payload[..8]);
        u64::from_le_bytes(b)
    }

    #[test]
    fn trap_index_is_reused_with_a_new_id() {
        let mut q = PortQueue::new();
        let a = q.add_trap(1).unwrap();
        let b = q.add_trap(2).unwrap();
        assert_eq!((a.index(), b.index()), (0, 1));
        q.remove_trap(a).unwrap();
        let c = q.add_trap(3).unwrap();
        assert_eq!(c.index(), a.index());
        assert_ne!(c, a);
    }

    #[test]
    fn packet_is_48_bytes() {
        assert_eq!(core::mem::size_of::<Packet>(), 48);
    }

    #[test]
    fn fifo_across_kinds() {
        let mut q = PortQueue::new();
        let t = q.add_trap(77).unwrap();
        q.queue_user(pkt(1, 1)).unwrap();
        q.queue_trap(t, Packet { kind: PKT_TYPE_GUEST_IO, ..pkt(0, 2) }).unwrap();
        q.queue_signal(5, Packet { kind: PKT_TYPE_SIGNAL_ONE, ..pkt(3, 3) }).unwrap();
        q.queue_user(pkt(4, 4)).unwrap();
        q.queue_trap(t, Packet { kind: PKT_TYPE_GUEST_IO, ..pkt(0, 5) }).unwrap();
        assert_eq!(q.len(), 5);
        let got: Vec<(u64, u32, u64)> =
            core::iter::from_fn(|| q.dequeue()).map(|d| (tag(&d.packet), d.packet.kind, d.packet.key)).collect();
        assert_eq!(
            got,
            [
                (1, PKT_TYPE_USER, 1),
                (2, PKT_TYPE_GUEST_IO, 77),
                (3, PKT_TYPE_SIGNAL_ONE, 3),
                (4, PKT_TYPE_USER, 4),
                (5, PKT_TYPE_GUEST_IO, 77)
            ]
        );
        assert!(q.is_empty());
        assert_eq!(q.trap_free(t), Some(TRAP_POOL_SIZE));
    }

    #[test]
    fn pool_exhaustion_blocks_then_one_dequeue_frees_one_slot() {
        let mut q = PortQueue::new();
        let t = q.add_trap(1).unwrap();
        let other = q.add_trap(2).unwrap();
        for k in 0..TRAP_POOL_SIZE as u64 {
            q.queue_trap(t, pkt(0, k)).unwrap();
        }
        assert_eq!(q.trap_free(t), Some(0));
        assert_eq!(q.queue_trap(t, pkt(0, 999)), Err(TrapQueueError::WouldBlock));
        assert_eq!(q.trap_paused(t), Some(1));
        // Another trap on the same port is unaffected, and user packets too.
        q.queue_trap(other, pkt(0, 1000)).unwrap();
        q.queue_user(pkt(9, 1001)).unwrap();
        // The first dequeue frees exactly one slot of `t` and hands it to the paused VCPU.
        let d = q.dequeue().unwrap();
        assert_eq!(tag(&d.packet), 0);
        assert_eq!(d.resume, Some(t));
        assert_eq!(q.trap_paused(t), Some(0));
        assert_eq!(q.trap_free(t), Some(0));
        // A VCPU that did not pause cannot take the reserved slot.
        assert_eq!(q.queue_trap(t, pkt(0, 2000)), Err(TrapQueueError::WouldBlock));
        assert_eq!(q.trap_paused(t), Some(1));
        assert!(q.unpause(t));
        // The woken VCPU queues into its reservation; only once.
        q.queue_trap_reserved(t, pkt(0, 256)).unwrap();
        assert_eq!(q.queue_trap_reserved(t, pkt(0, 257)), Err(TrapQueueError::BadTrap));
        // Next dequeue: no one paused, so the slot just goes back to the pool.
        let d = q.dequeue().unwrap();
        assert_eq!((tag(&d.packet), d.resume), (1, None));
        assert_eq!(q.trap_free(t), Some(1));
        let rest: Vec<u64> = core::iter::from_fn(|| q.dequeue()).map(|d| tag(&d.packet)).collect();
        let mut want: Vec<u64> = (2..TRAP_POOL_SIZE as u64).collect();
        want.extend([1000, 1001, 256]);
        assert_eq!(rest, want);
        assert_eq!(q.trap_free(t), Some(TRAP_POOL_SIZE));
    }

    #[test]
    fn release_reservation_passes_slot_on() {
        let mut q = PortQueue::new();
        let t = q.add_trap(1).unwrap();
        for k in 0..TRAP_POOL_SIZE as u64 {
            q.queue_trap(t, pkt(0, k)).unwrap();
        }
        assert_eq!(q.queue_trap(t, pkt(0, 0)), Err(TrapQueueError::WouldBlock));
        assert_eq!(q.queue_trap(t, pkt(0, 0)), Err(TrapQueueError::WouldBlock));
        assert_eq!(q.dequeue().unwrap().resume, Some(t));
        // The woken VCPU dies: its slot goes to the second paused VCPU.
        assert_eq!(q.release_reservation(t), Some(t));
        assert_eq!(q.trap_paused(t), Some(0));
        // That one dies too: the slot is free again.
        assert_eq!(q.release_reservation(t), None);
        assert_eq!(q.trap_free(t), Some(1));
        q.queue_trap(t, pkt(0, 7)).unwrap();
        assert_eq!(q.trap_free(t), Some(0));
    }

    /// 10,000 accesses from 3 VCPUs on two traps through pools of 256, with a
    /// consumer that drains one packet every third step.
    #[test]
    fn ten_thousand_through_pool_with_slow_consumer() {
        const N: u64 = 10_000;
        let mut q = PortQueue::new();
        let traps = [q.add_trap(10).unwrap(), q.add_trap(20).unwrap()];
        // VCPU v uses trap v % 2; its next sequence number, and whether it is
        // paused or woken (holding a reservation).
        #[derive(Clone, Copy, PartialEq)]
        enum St {
            Running,
            Paused,
            Woken,
        }
        let mut vcpus = [(0u64, St::Running); 3];
        let mut paused_fifo: [VecDeque<usize>; 2] = [VecDeque::new(), VecDeque::new()];
        let mut expected: VecDeque<(u64, u64)> = VecDeque::new(); // (key, tag)
        let (mut pauses, mut resumes, mut delivered, mut step) = (0u64, 0u64, 0u64, 0u64);
        let tag_of = |v: usize, seq: u64| (v as u64) << 32 | seq;
        while delivered < 3 * N {
            step += 1;
            for (v, slot) in vcpus.iter_mut().enumerate() {
                let tr = v % 2;
                let (seq, st) = *slot;
                if seq == N || st == St::Paused {
                    continue;
                }
                let r = if st == St::Woken {
                    q.queue_trap_reserved(traps[tr], pkt(0, tag_of(v, seq)))
                } else {
                    q.queue_trap(traps[tr], pkt(0, tag_of(v, seq)))
                };
                match r {
                    Ok(()) => {
                        expected.push_back(([10, 20][tr], tag_of(v, seq)));
                        *slot = (seq + 1, St::Running);
                    }
                    Err(TrapQueueError::WouldBlock) => {
                        assert!(st == St::Running);
                        pauses += 1;
                        paused_fifo[tr].push_back(v);
                        slot.1 = St::Paused;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            if step % 3 == 0 || vcpus.iter().all(|&(s, st)| s == N || st == St::Paused) {
                if let Some(d) = q.dequeue() {
                    let (key, t) = expected.pop_front().unwrap();
                    assert_eq!((d.packet.key, tag(&d.packet)), (key, t));
                    delivered += 1;
                    if let Some(id) = d.resume {
                        let tr = traps.iter().position(|&x| x == id).unwrap();
                        let v = paused_fifo[tr].pop_front().expect("resume with nobody paused");
                        assert!(vcpus[v].1 == St::Paused);
                        vcpus[v].1 = St::Woken;
                        resumes += 1;
                    }
                }
            }
            assert!(q.len() <= 2 * TRAP_POOL_SIZE);
        }
        assert!(q.is_empty() && expected.is_empty());
        assert!(pauses > 0);
        assert_eq!(pauses, resumes);
        assert!(vcpus.iter().all(|&(s, st)| s == N && st == St::Running));
        for t in traps {
            assert_eq!(q.trap_free(t), Some(TRAP_POOL_SIZE));
            assert_eq!(q.trap_paused(t), Some(0));
        }
    }

    #[test]
    fn cancel_semantics() {
        let mut q = PortQueue::new();
        let t = q.add_trap(42).unwrap();
        q.queue_user(pkt(42, 1)).unwrap();
        q.queue_trap(t, pkt(0, 2)).unwrap();
        q.queue_signal(7, pkt(42, 3)).unwrap();
        q.queue_signal(8, pkt(42, 4)).unwrap();
        q.queue_signal(7, pkt(43, 5)).unwrap();
        q.queue_trap(t, pkt(0, 6)).unwrap();
        assert!(q.has_signal(7, 42));
        // port_cancel matches only signal packets of (source, key).
        assert_eq!(q.cancel(7, 42), 1);
        assert!(!q.has_signal(7, 42));
        assert_eq!(q.cancel(7, 42), 0);
        assert_eq!(q.cancel(9, 42), 0);
        // Trap cancellation removes only the trap's packets, never the user
        // packet with the same key.
        assert_eq!(q.cancel_trap(t), TrapCancel { removed: 2, resumed: 0 });
        assert_eq!(q.trap_free(t), Some(TRAP_POOL_SIZE));
        assert_eq!(q.cancel_source(7), 1);
        let rest: Vec<u64> = q.iter().map(tag).collect();
        assert_eq!(rest, [1, 4]);
        assert_eq!(q.user_len(), 1);
    }

    #[test]
    fn cancel_trap_wakes_paused_and_remove_trap_invalidates() {
        let mut q = PortQueue::new();
        let t = q.add_trap(1).unwrap();
        for k in 0..TRAP_POOL_SIZE as u64 {
            q.queue_trap(t, pkt(0, k)).unwrap();
        }
        for _ in 0..3 {
            assert_eq!(q.queue_trap(t, pkt(0, 0)), Err(TrapQueueError::WouldBlock));
        }
        q.queue_user(pkt(1, 5000)).unwrap();
        assert_eq!(q.cancel_trap(t), TrapCancel { removed: TRAP_POOL_SIZE, resumed: 3 });
        assert_eq!(q.trap_free(t), Some(TRAP_POOL_SIZE - 3));
        q.queue_trap_reserved(t, pkt(0, 1)).unwrap();
        assert_eq!(q.remove_trap(t), Some(2));
        assert_eq!(q.remove_trap(t), None);
        assert_eq!(q.queue_trap(t, pkt(0, 0)), Err(TrapQueueError::BadTrap));
        assert_eq!(q.trap_free(t), None);
        assert_eq!(q.len(), 1);
        // The block is reused by the next trap, with a fresh id.
        let nodes = q.nodes.len();
        let t2 = q.add_trap(2).unwrap();
        assert_ne!(t, t2);
        assert_eq!(q.nodes.len(), nodes);
        q.queue_trap(t2, pkt(0, 9)).unwrap();
        let keys: Vec<u64> = core::iter::from_fn(|| q.dequeue()).map(|d| d.packet.key).collect();
        assert_eq!(keys, [1, 2]);
    }

    #[test]
    fn user_cap_is_exact_and_counts_only_user_packets() {
        let mut q = PortQueue::with_user_cap(4);
        let t = q.add_trap(1).unwrap();
        for k in 0..4 {
            q.queue_user(pkt(k, k)).unwrap();
        }
        assert_eq!(q.queue_user(pkt(9, 9)), Err(QueueError::NoMemory));
        assert_eq!(QueueError::NoMemory.status(), -4);
        // Signal and trap packets still go in.
        q.queue_signal(1, pkt(1, 1)).unwrap();
        q.queue_trap(t, pkt(0, 1)).unwrap();
        q.dequeue().unwrap();
        q.queue_user(pkt(9, 9)).unwrap();
        assert_eq!(q.queue_user(pkt(9, 9)), Err(QueueError::NoMemory));
        assert_eq!(q.user_len(), 4);
        assert_eq!(PortQueue::new().user_cap, MAX_USER_PACKETS);
    }

    use crate::test_rng::Rng;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum M {
        User,
        Signal(u64),
        Trap(usize),
    }

    /// Random operations checked against a plain VecDeque model.
    #[test]
    fn randomized_model() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let mut q = PortQueue::with_user_cap(50);
        let mut traps: Vec<Option<TrapId>> = Vec::new();
        // Model: (origin, key, tag); per trap (free, paused, reserved).
        let mut model: VecDeque<(M, u64, u64)> = VecDeque::new();
        let mut pools: Vec<(usize, usize, usize)> = Vec::new();
        let mut next_tag = 0u64;
        let (mut pauses, mut resumes) = (0u32, 0u32);
        for step in 0..100_000u32 {
            let r = rng.next();
            let key = r >> 8 & 3;
            next_tag += 1;
            match r % 16 {
                0..=2 => {
                    let users = model.iter().filter(|m| m.0 == M::User).count();
                    let res = q.queue_user(pkt(key, next_tag));
                    assert_eq!(res.is_ok(), users < 50);
                    if res.is_ok() {
                        model.push_back((M::User, key, next_tag));
                    }
                }
                3..=4 => {
                    let src = r >> 16 & 3;
                    q.queue_signal(src, pkt(key, next_tag)).unwrap();
                    model.push_back((M::Signal(src), key, next_tag));
                }
                5..=9 | 12 if !traps.is_empty() => {
                    let ti = (r >> 16) as usize % traps.len();
                    let Some(id) = traps[ti] else { continue };
                    let (free, paused, reserved) = &mut pools[ti];
                    if reserved > &mut 0 && r >> 30 & 1 == 0 {
                        q.queue_trap_reserved(id, pkt(0, next_tag)).unwrap();
                        *reserved -= 1;
                        model.push_back((M::Trap(ti), 100 + ti as u64, next_tag));
                    } else if *free == 0 {
                        assert_eq!(q.queue_trap(id, pkt(0, next_tag)), Err(TrapQueueError::WouldBlock));
                        *paused += 1;
                        pauses += 1;
                    } else {
                        q.queue_trap(id, pkt(0, next_tag)).unwrap();
                        *free -= 1;
                        model.push_back((M::Trap(ti), 100 + ti as u64, next_tag));
                    }
                }
                10..=11 => {
                    let d = q.dequeue();
                    let m = model.pop_front();
                    assert_eq!(d.is_some(), m.is_some());
                    if let (Some(d), Some((o, k, tg))) = (d, m) {
                        assert_eq!((d.packet.key, tag(&d.packet)), (k, tg));
                        if let M::Trap(ti) = o {
                            let p = &mut pools[ti];
                            if p.1 > 0 {
                                p.1 -= 1;
                                p.2 += 1;
                                assert_eq!(d.resume, traps[ti]);
                                resumes += 1;
                            } else {
                                p.0 += 1;
                                assert_eq!(d.resume, None);
                            }
                        } else {
                            assert_eq!(d.resume, None);
                        }
                    }
                }
                13 => {
                    let src = r >> 16 & 3;
                    let before = model.len();
                    model.retain(|m| !(m.0 == M::Signal(src) && m.1 == key));
                    assert_eq!(q.cancel(src, key), before - model.len());
                }
                14 if !traps.is_empty() && (r >> 24) & 63 == 0 => {
                    let ti = (r >> 16) as usize % traps.len();
                    let Some(id) = traps[ti] else { continue };
                    let before = model.len();
                    model.retain(|m| m.0 != M::Trap(ti));
                    let removed = before - model.len();
                    let p = &mut pools[ti];
                    let resumed = removed.min(p.1);
                    p.1 -= resumed;
                    p.2 += resumed;
                    p.0 += removed - resumed;
                    if r >> 20 & 1 == 0 {
                        assert_eq!(q.cancel_trap(id), TrapCancel { removed, resumed });
                    } else {
                        assert_eq!(q.remove_trap(id), Some(p.1 + p.2));
                        traps[ti] = None;
                    }
                }
                _ => {
                    if let Some(ti) = traps.iter().position(Option::is_none) {
                        traps[ti] = Some(q.add_trap(100 + ti as u64).unwrap());
                        pools[ti] = (TRAP_POOL_SIZE, 0, 0);
                    } else if traps.len() < 6 {
                        traps.push(Some(q.add_trap(100 + traps.len() as u64).unwrap()));
                        pools.push((TRAP_POOL_SIZE, 0, 0));
                    }
                }
            }
            assert_eq!(q.len(), model.len());
            if step & 15 != 0 {
                continue;
            }
            for (ti, t) in traps.iter().enumerate() {
                if let Some(id) = *t {
                    let queued = model.iter().filter(|m| m.0 == M::Trap(ti)).count();
                    let (free, paused, reserved) = pools[ti];
                    assert_eq!(free + queued + reserved, TRAP_POOL_SIZE);
                    assert_eq!(q.trap_free(id), Some(free));
                    assert_eq!(q.trap_paused(id), Some(paused));
                    assert!(paused == 0 || free == 0);
                }
            }
        }
        assert!(pauses > 100 && resumes > 100, "{pauses} {resumes}");
        let got: Vec<u64> = q.iter().map(tag).collect();
        let want: Vec<u64> = model.iter().map(|m| m.2).collect();
        assert_eq!(got, want);
    }
}
