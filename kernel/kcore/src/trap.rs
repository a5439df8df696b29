//! The guest trap map behind `mx_guest_set_trap`.
//!
//! A guest has independent address spaces that traps live in: guest
//! physical memory ([`TRAP_MEM`]), the x86 I/O port space ([`TRAP_IO`]) and,
//! for synchronous traps only, MSRs ([`TRAP_MSR`]), CPUID leaves
//! ([`TRAP_CPUID`]), exception vectors ([`TRAP_EXCEPTION`]) and VMMCALL
//! ([`TRAP_VMCALL`], a space of one address, 0).
//! Each space keeps its traps in a vector sorted by start address whose
//! ranges never intersect, so [`TrapMap::lookup`] is a binary search: O(log n),
//! no allocation, no lock-free trickery. Insertion is O(n) (a `memmove`), which
//! is fine for the handful of traps a VMM sets up, and uses `try_reserve` so a
//! failed allocation is reported as `MX_ERR_NO_MEMORY` instead of aborting.
//!
//! # Checks of [`TrapMap::set_trap`], in order
//!
//! Handle and rights checks (guest, then port) are the caller's; after them:
//!
//! 1. `len == 0` → [`TrapError::InvalidArgs`] (`MX_ERR_INVALID_ARGS`).
//! 2. `addr + len` overflows `u64` → [`TrapError::OutOfRange`] (`MX_ERR_OUT_OF_RANGE`).
//! 3. By kind:
//!    - [`TRAP_MEM`]: `addr` or `len` not page-aligned → `InvalidArgs`;
//!      then `addr + len > mem_size` → `OutOfRange`.
//!    - [`TRAP_IO`]: `addr + len > 0x10000` → `OutOfRange` (ports 0 to 0xFFFF
//!      inclusive, decision 3: port 0xFFFF itself can be trapped).
//!    - [`TRAP_MSR`], [`TRAP_CPUID`]: `addr + len > 2^32` → `OutOfRange`;
//!      [`TRAP_EXCEPTION`]: `addr + len > 32` → `OutOfRange`, then a range
//!      holding vector 2 (NMI) or 18 (#MC), which cannot be trapped →
//!      `InvalidArgs`; [`TRAP_VMCALL`]: `addr + len > 1` → `OutOfRange`;
//!      then, for these synchronous-only kinds, a port → `InvalidArgs`.
//!    - any other kind → `InvalidArgs`.
//! 4. The range intersects a trap of the same kind → [`TrapError::AlreadyExists`]
//!    (`MX_ERR_ALREADY_EXISTS`, decision 4). Adjacent ranges do not intersect.
//! 5. Memory for the new entry cannot be allocated → [`TrapError::NoMemory`].
//!
//! This is Magenta's order (len, overflow, per-kind rules with the unknown
//! kind last), so an overflowing range with a bad kind is `OUT_OF_RANGE`.
//! Unmapping the MEM range from the guest's nested page tables is the
//! kernel's job, done after `set_trap` succeeds.

use alloc::vec::Vec;

/// `MX_GUEST_TRAP_MEM`: a guest-physical memory range.
pub const TRAP_MEM: u32 = 0;
/// `MX_GUEST_TRAP_IO`: a range of x86 I/O ports.
pub const TRAP_IO: u32 = 1;
/// `MX_GUEST_TRAP_MSR`: a range of MSR numbers (RDMSR and WRMSR).
pub const TRAP_MSR: u32 = 2;
/// `MX_GUEST_TRAP_CPUID`: a range of CPUID leaves (EAX).
pub const TRAP_CPUID: u32 = 3;
/// Size of the MSR and CPUID spaces: every 32-bit number.
pub const MSR_SPACE_SIZE: u64 = 1 << 32;
/// `MX_GUEST_TRAP_EXCEPTION`: a range of exception vectors.
pub const TRAP_EXCEPTION: u32 = 4;
/// Size of the exception space: vectors 0-31.
pub const EXCEPTION_SPACE_SIZE: u64 = 32;
/// Vectors an exception trap may not cover (bit n = vector n): 2, the NMI,
/// is no exception a guest instruction raises, and 18, #MC, is the host's.
pub const UNTRAPPABLE_EXCEPTIONS: u32 = (1 << 2) | (1 << 18);
/// `MX_GUEST_TRAP_VMCALL`: the VMMCALL instruction (address 0, length 1).
pub const TRAP_VMCALL: u32 = 5;
/// Size of the VMCALL space: the one address 0.
pub const VMCALL_SPACE_SIZE: u64 = 1;
/// Size of the I/O port space (`MX_GUEST_IO_SIZE`): ports 0 to 0xFFFF.
pub const IO_SPACE_SIZE: u64 = 1 << 16;
/// Size of the guest-physical address space (`MX_GUEST_PHYS_SIZE`), the
/// usual `mem_size` for [`TrapMap::new`].
pub const GUEST_PHYS_SIZE: u64 = 1 << 48;
/// Alignment of MEM traps.
pub const PAGE_SIZE: u64 = 4096;

/// The address space a trap lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// Guest-physical memory (`MX_GUEST_TRAP_MEM`).
    Mem,
    /// I/O ports (`MX_GUEST_TRAP_IO`).
    Io,
    /// MSRs (`MX_GUEST_TRAP_MSR`).
    Msr,
    /// CPUID leaves (`MX_GUEST_TRAP_CPUID`).
    Cpuid,
    /// Exception vectors (`MX_GUEST_TRAP_EXCEPTION`).
    Exception,
    /// VMMCALL (`MX_GUEST_TRAP_VMCALL`).
    Vmcall,
}

/// Number of trap kinds (spaces).
const KINDS: usize = 6;

impl TrapKind {
    /// The kind for a raw `kind` argument, if it is one.
    pub fn from_raw(kind: u32) -> Option<TrapKind> {
        match kind {
            TRAP_MEM => Some(TrapKind::Mem),
            TRAP_IO => Some(TrapKind::Io),
            TRAP_MSR => Some(TrapKind::Msr),
            TRAP_CPUID => Some(TrapKind::Cpuid),
            TRAP_EXCEPTION => Some(TrapKind::Exception),
            TRAP_VMCALL => Some(TrapKind::Vmcall),
            _ => None,
        }
    }

    /// The raw `MX_GUEST_TRAP_*` value.
    pub fn raw(self) -> u32 {
        match self {
            TrapKind::Mem => TRAP_MEM,
            TrapKind::Io => TRAP_IO,
            TrapKind::Msr => TRAP_MSR,
            TrapKind::Cpuid => TRAP_CPUID,
            TrapKind::Exception => TRAP_EXCEPTION,
            TrapKind::Vmcall => TRAP_VMCALL,
        }
    }

    /// Whether traps of this kind can only be synchronous (no port): their
    /// exits need the VMM's answer before the guest may run on.
    pub fn synchronous_only(self) -> bool {
        !matches!(self, TrapKind::Mem | TrapKind::Io)
    }

    fn index(self) -> usize {
        match self {
            TrapKind::Mem => 0,
            TrapKind::Io => 1,
            TrapKind::Msr => 2,
            TrapKind::Cpuid => 3,
            TrapKind::Exception => 4,
            TrapKind::Vmcall => 5,
        }
    }
}

/// The vectors `[addr, addr + len)` as a bit set (bit n = vector n), for
/// a range inside the exception space.
pub fn exception_bits(addr: u64, len: u64) -> u32 {
    if addr >= EXCEPTION_SPACE_SIZE || len == 0 {
        return 0;
    }
    let end = addr.saturating_add(len).min(EXCEPTION_SPACE_SIZE);
    let below_end = if end == 32 { u32::MAX } else { (1u32 << end) - 1 };
    below_end & !((1u32 << addr) - 1)
}

/// Why `set_trap` failed. Each variant is exactly one `mx_status_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapError {
    /// `MX_ERR_INVALID_ARGS`: `len == 0`, a misaligned MEM trap or an unknown kind.
    InvalidArgs,
    /// `MX_ERR_OUT_OF_RANGE`: the range overflows or leaves its address space.
    OutOfRange,
    /// `MX_ERR_ALREADY_EXISTS`: the range intersects a trap of the same kind.
    AlreadyExists,
    /// `MX_ERR_NO_MEMORY`: the entry could not be allocated.
    NoMemory,
}

impl TrapError {
    /// The `mx_status_t` value.
    pub fn status(self) -> i32 {
        match self {
            TrapError::InvalidArgs => -10,
            TrapError::OutOfRange => -14,
            TrapError::AlreadyExists => -26,
            TrapError::NoMemory => -4,
        }
    }
}

/// One trap: `[addr, addr + len)` in the space of `kind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap<P> {
    /// The address space.
    pub kind: TrapKind,
    /// First address (or port) covered.
    pub addr: u64,
    /// Number of bytes (or ports) covered; never 0.
    pub len: u64,
    /// The key packets of this trap carry when delivered through `port`.
    pub key: u64,
    /// The port packets go to, or `None` for synchronous delivery through
    /// `mx_vcpu_resume` with key 0. The kernel chooses what it stores here
    /// (e.g. a port reference plus the trap's pool id in that port).
    pub port: Option<P>,
}

impl<P> Trap<P> {
    /// One past the last address covered (cannot overflow: checked at insertion).
    pub fn end(&self) -> u64 {
        self.addr + self.len
    }

    /// Whether `addr` lies inside the trap.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.addr && addr - self.addr < self.len
    }
}

/// The traps of one guest.
#[derive(Debug)]
pub struct TrapMap<P> {
    mem_size: u64,
    /// One sorted vector per kind, by [`TrapKind::index`].
    spaces: [Vec<Trap<P>>; KINDS],
}

impl<P> TrapMap<P> {
    /// An empty map for a guest whose physical address space is `mem_size`
    /// bytes (normally [`GUEST_PHYS_SIZE`]).
    pub const fn new(mem_size: u64) -> Self {
        TrapMap { mem_size, spaces: [const { Vec::new() }; KINDS] }
    }

    /// The guest-physical size MEM traps must fit in.
    pub fn mem_size(&self) -> u64 {
        self.mem_size
    }

    fn space(&self, kind: TrapKind) -> &Vec<Trap<P>> {
        &self.spaces[kind.index()]
    }

    fn space_mut(&mut self, kind: TrapKind) -> &mut Vec<Trap<P>> {
        &mut self.spaces[kind.index()]
    }

    /// Checks a `(kind, addr, len)` request, with or without a port,
    /// against everything but the existing traps (steps 1-3 of the module
    /// docs).
    pub fn validate(&self, kind: u32, addr: u64, len: u64, has_port: bool) -> Result<TrapKind, TrapError> {
        if len == 0 {
            return Err(TrapError::InvalidArgs);
        }
        let end = addr.checked_add(len).ok_or(TrapError::OutOfRange)?;
        match TrapKind::from_raw(kind) {
            Some(TrapKind::Mem) => {
                if (addr | len) & (PAGE_SIZE - 1) != 0 {
                    return Err(TrapError::InvalidArgs);
                }
                if end > self.mem_size {
                    return Err(TrapError::OutOfRange);
                }
                Ok(TrapKind::Mem)
            }
            Some(TrapKind::Io) => {
                if end > IO_SPACE_SIZE {
                    return Err(TrapError::OutOfRange);
                }
                Ok(TrapKind::Io)
            }
            Some(kind) => {
                let size = match kind {
                    TrapKind::Msr | TrapKind::Cpuid => MSR_SPACE_SIZE,
                    TrapKind::Exception => EXCEPTION_SPACE_SIZE,
                    TrapKind::Vmcall => VMCALL_SPACE_SIZE,
                    TrapKind::Mem | TrapKind::Io => unreachable!("handled above"),
                };
                if end > size {
                    return Err(TrapError::OutOfRange);
                }
                if kind == TrapKind::Exception && exception_bits(addr, len) & UNTRAPPABLE_EXCEPTIONS != 0 {
                    return Err(TrapError::InvalidArgs);
                }
                if has_port && kind.synchronous_only() {
                    return Err(TrapError::InvalidArgs);
                }
                Ok(kind)
            }
            None => Err(TrapError::InvalidArgs),
        }
    }

    /// Every check of the module docs that precedes NO_MEMORY, in order:
    /// the caller can allocate what the trap needs only once these pass.
    pub fn check(&self, kind: u32, addr: u64, len: u64, has_port: bool) -> Result<(), TrapError> {
        self.position(kind, addr, len, has_port).map(drop)
    }

    /// The trap's kind and where it would go in its space, or why it can't.
    fn position(&self, kind: u32, addr: u64, len: u64, has_port: bool) -> Result<(TrapKind, usize), TrapError> {
        let kind = self.validate(kind, addr, len, has_port)?;
        let end = addr + len; // validated above
        let space = self.space(kind);
        // First trap starting at or after `addr`.
        let idx = space.partition_point(|t| t.addr < addr);
        if idx > 0 && space[idx - 1].end() > addr {
            return Err(TrapError::AlreadyExists);
        }
        if idx < space.len() && space[idx].addr < end {
            return Err(TrapError::AlreadyExists);
        }
        Ok((kind, idx))
    }

    /// Adds a trap, after the checks listed in the module docs (in that order).
    pub fn set_trap(&mut self, kind: u32, addr: u64, len: u64, key: u64, port: Option<P>) -> Result<(), TrapError> {
        let (kind, idx) = self.position(kind, addr, len, port.is_some())?;
        let space = self.space_mut(kind);
        space.try_reserve(1).map_err(|_| TrapError::NoMemory)?;
        space.insert(idx, Trap { kind, addr, len, key, port });
        Ok(())
    }

    /// The trap of `kind` containing `addr`: a binary search, no allocation.
    pub fn lookup(&self, kind: TrapKind, addr: u64) -> Option<&Trap<P>> {
        let space = self.space(kind);
        // Number of traps starting at or before `addr`; the last is the only candidate.
        let idx = space.partition_point(|t| t.addr <= addr);
        let trap = space.get(idx.checked_sub(1)?)?;
        trap.contains(addr).then_some(trap)
    }

    /// Removes the trap of `kind` that starts exactly at `addr`.
    pub fn remove(&mut self, kind: TrapKind, addr: u64) -> Option<Trap<P>> {
        let space = self.space_mut(kind);
        let idx = space.binary_search_by(|t| t.addr.cmp(&addr)).ok()?;
        Some(space.remove(idx))
    }

    /// The traps of `kind`, in address order.
    pub fn iter(&self, kind: TrapKind) -> impl Iterator<Item = &Trap<P>> {
        self.space(kind).iter()
    }

    /// Number of traps of `kind`.
    pub fn len(&self, kind: TrapKind) -> usize {
        self.space(kind).len()
    }

    /// Whether the map holds no trap at all.
    pub fn is_empty(&self) -> bool {
        self.spaces.iter().all(Vec::is_empty)
    }

    /// Removes every trap (guest destruction), space by space in kind order
    /// (MEM first), each in address order, so the kernel can release each
    /// trap's port pool.
    pub fn drain(&mut self) -> impl Iterator<Item = Trap<P>> + '_ {
        self.spaces.iter_mut().flat_map(|space| space.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: u64 = PAGE_SIZE;

    fn map() -> TrapMap<u32> {
        TrapMap::new(GUEST_PHYS_SIZE)
    }

    #[test]
    fn len_zero_is_invalid_args_for_every_kind() {
        let mut m = map();
        assert_eq!(m.set_trap(TRAP_MEM, 0, 0, 1, None), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_IO, 0, 0, 1, None), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(7, u64::MAX, 0, 1, None), Err(TrapError::InvalidArgs));
    }

    #[test]
    fn io_bounds() {
        let mut m = map();
        assert_eq!(m.set_trap(TRAP_IO, 0xFFFF, 1, 1, Some(9)), Ok(()));
        assert_eq!(m.lookup(TrapKind::Io, 0xFFFF).map(|t| t.key), Some(1));
        assert_eq!(m.set_trap(TRAP_IO, 0x10000, 1, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_IO, 0xFFFE, 3, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_IO, 0, 0x10000, 1, None), Err(TrapError::AlreadyExists));
        let mut m = map();
        assert_eq!(m.set_trap(TRAP_IO, 0, 0x10000, 1, None), Ok(()));
        assert_eq!(m.set_trap(TRAP_IO, 0, 0x10001, 1, None), Err(TrapError::OutOfRange));
    }

    #[test]
    fn huge_len_overflow_is_out_of_range_not_panic() {
        let mut m = map();
        assert_eq!(m.set_trap(TRAP_IO, 1, u64::MAX, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_IO, u64::MAX, u64::MAX, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_MEM, PG, u64::MAX - PG + 1, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_MEM, u64::MAX - PG + 1, PG, 1, None), Err(TrapError::OutOfRange));
        // Overflow is checked before the kind (Magenta's order).
        assert_eq!(m.set_trap(42, 2, u64::MAX, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(42, 2, 2, 1, None), Err(TrapError::InvalidArgs));
        assert!(m.is_empty());
    }

    #[test]
    fn mem_alignment_then_bounds() {
        let mut m: TrapMap<u32> = TrapMap::new(16 * PG);
        assert_eq!(m.set_trap(TRAP_MEM, 1, PG, 1, None), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_MEM, 0, PG + 1, 1, None), Err(TrapError::InvalidArgs));
        // Misaligned and out of range: alignment comes first.
        assert_eq!(m.set_trap(TRAP_MEM, 17 * PG + 1, PG, 1, None), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_MEM, 16 * PG, PG, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_MEM, 15 * PG, 2 * PG, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_MEM, 15 * PG, PG, 1, None), Ok(()));
        assert_eq!(m.set_trap(TRAP_MEM, 0, 15 * PG, 2, None), Ok(()));
        assert_eq!(m.lookup(TrapKind::Mem, 16 * PG - 1).map(|t| t.key), Some(1));
        assert_eq!(m.lookup(TrapKind::Mem, 16 * PG), None);
        assert_eq!(m.lookup(TrapKind::Mem, 0).map(|t| t.key), Some(2));
    }

    #[test]
    fn overlap_and_adjacency() {
        let mut m = map();
        assert_eq!(m.set_trap(TRAP_IO, 0x10, 0x10, 1, None), Ok(()));
        // Adjacent on both sides: fine.
        assert_eq!(m.set_trap(TRAP_IO, 0x20, 0x10, 2, None), Ok(()));
        assert_eq!(m.set_trap(TRAP_IO, 0x08, 0x08, 3, None), Ok(()));
        // Intersections of every shape.
        for (a, l) in [(0x10, 1), (0x1F, 1), (0x0F, 2), (0x2F, 2), (0, 0x100), (0x18, 0x10), (0x0C, 0x08)] {
            assert_eq!(m.set_trap(TRAP_IO, a, l, 9, None), Err(TrapError::AlreadyExists), "{a:#x}+{l:#x}");
        }
        // Same range in the other space is independent.
        assert_eq!(m.set_trap(TRAP_MEM, 0, PG, 4, None), Ok(()));
        assert_eq!(m.set_trap(TRAP_IO, 0, 8, 5, None), Ok(()));
        assert_eq!(m.len(TrapKind::Io), 4);
        let keys: Vec<u64> = m.iter(TrapKind::Io).map(|t| t.key).collect();
        assert_eq!(keys, [5, 3, 1, 2]);
        assert_eq!(m.lookup(TrapKind::Io, 0x30), None);
        assert_eq!(m.lookup(TrapKind::Io, 0x2F).map(|t| t.key), Some(2));
        assert_eq!(m.remove(TrapKind::Io, 0x11), None);
        assert_eq!(m.remove(TrapKind::Io, 0x10).map(|t| t.key), Some(1));
        assert_eq!(m.lookup(TrapKind::Io, 0x10), None);
        assert_eq!(m.set_trap(TRAP_IO, 0x10, 0x10, 6, None), Ok(()));
        assert_eq!(m.drain().count(), 5);
        assert!(m.is_empty());
    }

    #[test]
    fn vmcall_space_is_one_address_and_synchronous() {
        let mut m = map();
        assert_eq!(m.set_trap(TRAP_VMCALL, 0, 0, 1, None), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_VMCALL, 0, 2, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_VMCALL, 1, 1, 1, None), Err(TrapError::OutOfRange));
        // The range is checked before the port, the port before overlaps.
        assert_eq!(m.set_trap(TRAP_VMCALL, 1, 1, 1, Some(3)), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_VMCALL, 0, 1, 1, Some(3)), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_VMCALL, 0, 1, 7, None), Ok(()));
        assert_eq!(m.set_trap(TRAP_VMCALL, 0, 1, 1, Some(3)), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_VMCALL, 0, 1, 1, None), Err(TrapError::AlreadyExists));
        assert_eq!(m.lookup(TrapKind::Vmcall, 0).map(|t| t.key), Some(7));
        assert_eq!(m.lookup(TrapKind::Io, 0), None);
        // MEM and IO still take ports.
        assert_eq!(m.set_trap(TRAP_IO, 0, 1, 1, Some(3)), Ok(()));
        assert_eq!(m.drain().count(), 2);
    }

    #[test]
    fn msr_and_cpuid_spaces_are_32_bits_and_synchronous() {
        let mut m = map();
        for kind in [TRAP_MSR, TRAP_CPUID] {
            assert_eq!(m.set_trap(kind, 0, 0, 1, None), Err(TrapError::InvalidArgs));
            assert_eq!(m.set_trap(kind, 0, (1 << 32) + 1, 1, None), Err(TrapError::OutOfRange));
            assert_eq!(m.set_trap(kind, 0xffff_ffff, 2, 1, None), Err(TrapError::OutOfRange));
            assert_eq!(m.set_trap(kind, 1 << 32, 1, 1, Some(2)), Err(TrapError::OutOfRange));
            assert_eq!(m.set_trap(kind, 0x4000_0000, 0x100, 1, Some(2)), Err(TrapError::InvalidArgs));
            assert_eq!(m.set_trap(kind, 0x4000_0000, 0x100, u64::from(kind), None), Ok(()));
            assert_eq!(m.set_trap(kind, 0x4000_00ff, 1, 1, Some(2)), Err(TrapError::InvalidArgs));
            assert_eq!(m.set_trap(kind, 0x4000_00ff, 1, 1, None), Err(TrapError::AlreadyExists));
            assert_eq!(m.set_trap(kind, 0xffff_ffff, 1, 9, None), Ok(()));
        }
        assert_eq!(m.lookup(TrapKind::Msr, 0x4000_0080).map(|t| t.key), Some(u64::from(TRAP_MSR)));
        assert_eq!(m.lookup(TrapKind::Cpuid, 0x4000_0080).map(|t| t.key), Some(u64::from(TRAP_CPUID)));
        assert_eq!(m.lookup(TrapKind::Cpuid, 0x4000_0100), None);
        assert_eq!(m.lookup(TrapKind::Msr, 0xffff_ffff).map(|t| t.key), Some(9));
        // The whole space at once.
        let mut m = map();
        assert_eq!(m.set_trap(TRAP_MSR, 0, 1 << 32, 1, None), Ok(()));
        assert!(m.lookup(TrapKind::Msr, 0).is_some() && m.lookup(TrapKind::Msr, u64::from(u32::MAX)).is_some());
    }

    #[test]
    fn exception_space_and_untrappable_vectors() {
        let mut m = map();
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 0, 33, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 32, 1, 1, None), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 2, 1, 1, None), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 18, 1, 1, None), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 0, 32, 1, None), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 16, 4, 1, None), Err(TrapError::InvalidArgs));
        // The range comes before the vector rule, which comes before the port.
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 18, 15, 1, Some(1)), Err(TrapError::OutOfRange));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 3, 1, 1, Some(1)), Err(TrapError::InvalidArgs));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 0, 2, 1, None), Ok(()));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 3, 15, 2, None), Ok(()));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 19, 13, 3, None), Ok(()));
        assert_eq!(m.set_trap(TRAP_EXCEPTION, 14, 1, 4, None), Err(TrapError::AlreadyExists));
        assert_eq!(m.lookup(TrapKind::Exception, 14).map(|t| t.key), Some(2));
        assert_eq!(m.lookup(TrapKind::Exception, 2), None);
        assert_eq!(m.lookup(TrapKind::Exception, 31).map(|t| t.key), Some(3));
    }

    #[test]
    fn exception_bits_cover_the_range() {
        assert_eq!(exception_bits(0, 32), u32::MAX);
        assert_eq!(exception_bits(14, 1), 1 << 14);
        assert_eq!(exception_bits(3, 2), 0b11000);
        assert_eq!(exception_bits(31, 1), 1 << 31);
        assert_eq!(exception_bits(30, u64::MAX), 0b11 << 30);
        assert_eq!(exception_bits(32, 1), 0);
        assert_eq!(exception_bits(5, 0), 0);
    }

    use crate::test_rng::Rng;

    #[test]
    fn randomized_against_bitmap_model() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut m: TrapMap<u32> = TrapMap::new(0);
        // The model: owner key of every port (0 = free), over a small space
        // (ports 0xFF00..) so collisions are frequent, plus the edge.
        let base = 0xFF00u64;
        let mut owner = [0u64; 0x100];
        for step in 1..20_000u64 {
            let r = rng.next();
            let addr = base + (r & 0xFF);
            let len = (r >> 8) % 24; // may be 0
            match r >> 60 {
                0..=9 => {
                    let expect = if len == 0 {
                        Err(TrapError::InvalidArgs)
                    } else if addr + len > IO_SPACE_SIZE {
                        Err(TrapError::OutOfRange)
                    } else if (addr..addr + len).any(|p| owner[(p - base) as usize] != 0) {
                        Err(TrapError::AlreadyExists)
                    } else {
                        Ok(())
                    };
                    assert_eq!(m.set_trap(TRAP_IO, addr, len, step, None), expect);
                    if expect.is_ok() {
                        for p in addr..addr + len {
                            owner[(p - base) as usize] = step;
                        }
                    }
                }
                10..=13 => {
                    let got = m.remove(TrapKind::Io, addr);
                    let o = owner[(addr - base) as usize];
                    let starts_here = o != 0 && (addr == base || owner[(addr - base - 1) as usize] != o);
                    assert_eq!(got.is_some(), starts_here);
                    if let Some(t) = got {
                        assert_eq!(t.key, o);
                        for p in t.addr..t.end() {
                            owner[(p - base) as usize] = 0;
                        }
                    }
                }
                _ => {
                    let o = owner[(addr - base) as usize];
                    assert_eq!(m.lookup(TrapKind::Io, addr).map(|t| t.key), (o != 0).then_some(o));
                }
            }
        }
        assert_eq!(m.lookup(TrapKind::Mem, base), None);
    }
}
