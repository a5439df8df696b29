//! What the guest fuzzer expects: the exact status of `mx_guest_set_trap`,
//! `mx_guest_map` and `mx_guest_unmap` from a model of the guest's traps and
//! mappings, written from the declaration table's order of checks (not from
//! the kernel's code), and which packets a VCPU may return.

use alloc::vec::Vec;

use mx::Status;
use mx_abi::{TrapKind, GUEST_IO_SIZE, GUEST_PHYS_SIZE};

pub const MEM: u32 = TrapKind::Mem as u32;
pub const IO: u32 = TrapKind::Io as u32;
pub const MSR: u32 = TrapKind::Msr as u32;
pub const CPUID: u32 = TrapKind::Cpuid as u32;
pub const EXCEPTION: u32 = TrapKind::Exception as u32;
pub const VMCALL: u32 = TrapKind::Vmcall as u32;

const PAGE: u64 = 4096;

/// A trap `mx_guest_set_trap` accepted.
#[derive(Clone, Copy)]
pub struct SetTrap {
    pub kind: u32,
    pub addr: u64,
    pub len: u64,
    pub through_port: bool,
    pub key: u64,
}

impl SetTrap {
    pub fn contains(&self, kind: u32, addr: u64) -> bool {
        self.kind == kind && addr >= self.addr && addr - self.addr < self.len
    }
}

/// Whether a synchronous trap of `kind` covers `addr` (the kinds that have
/// no port cannot have one).
pub fn trapped(set: &[SetTrap], kind: u32, addr: u64) -> bool {
    set.iter().any(|t| !t.through_port && t.contains(kind, addr))
}

/// `mx_guest_set_trap(kind, addr, len, port)` with a valid guest and port,
/// after the traps in `set`: the table's checks in its order.
pub fn expect_trap(set: &[SetTrap], kind: u32, addr: u64, len: u64, has_port: bool) -> Result<(), Status> {
    if len == 0 {
        return Err(Status::InvalidArgs);
    }
    let Some(end) = addr.checked_add(len) else {
        return Err(Status::OutOfRange);
    };
    let space = match kind {
        MEM => {
            if !(addr | len).is_multiple_of(PAGE) {
                return Err(Status::InvalidArgs);
            }
            GUEST_PHYS_SIZE
        }
        IO => GUEST_IO_SIZE,
        MSR | CPUID => 1 << 32,
        EXCEPTION => 32,
        VMCALL => 1,
        _ => return Err(Status::InvalidArgs),
    };
    if end > space {
        return Err(Status::OutOfRange);
    }
    if kind == EXCEPTION && (addr..end).any(|v| v == 2 || v == 18) {
        return Err(Status::InvalidArgs);
    }
    if has_port && !matches!(kind, MEM | IO) {
        return Err(Status::InvalidArgs);
    }
    if set.iter().any(|t| t.kind == kind && t.addr < end && addr < t.addr + t.len) {
        return Err(Status::AlreadyExists);
    }
    Ok(())
}

/// Vectors for which the CPU pushes an error code.
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// The guest-physical ranges `mx_guest_map` backs, as `[start, end)`.
#[derive(Default)]
pub struct Mappings {
    ranges: Vec<(u64, u64)>,
}

impl Mappings {
    /// `mx_guest_map(options, gpa, vmo, offset, len)` of a writable VMO of
    /// `vmo_size` bytes (handle checks pass).
    pub fn expect_map(&self, options: u32, gpa: u64, offset: u64, len: u64, vmo_size: u64) -> Result<(), Status> {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        Self::expect_range(gpa | offset, gpa, len)?;
        match offset.checked_add(len) {
            Some(end) if end <= vmo_size => {}
            _ => return Err(Status::OutOfRange),
        }
        let end = gpa + len;
        if self.ranges.iter().any(|&(s, e)| s < end && gpa < e) {
            return Err(Status::AlreadyExists);
        }
        Ok(())
    }

    /// `mx_guest_unmap(gpa, len)`.
    pub fn expect_unmap(gpa: u64, len: u64) -> Result<(), Status> {
        Self::expect_range(gpa, gpa, len)
    }

    fn expect_range(aligned: u64, gpa: u64, len: u64) -> Result<(), Status> {
        if !(aligned | len).is_multiple_of(PAGE) || len == 0 {
            return Err(Status::InvalidArgs);
        }
        match gpa.checked_add(len) {
            Some(end) if end <= GUEST_PHYS_SIZE => Ok(()),
            _ => Err(Status::OutOfRange),
        }
    }

    pub fn mapped(&mut self, gpa: u64, len: u64) {
        self.ranges.push((gpa, gpa + len));
    }

    /// Removes `[gpa, gpa + len)`, trimming or splitting what it covers.
    pub fn unmapped(&mut self, gpa: u64, len: u64) {
        let end = gpa + len;
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(s, e) in &self.ranges {
            if e <= gpa || end <= s {
                kept.push((s, e));
                continue;
            }
            if s < gpa {
                kept.push((s, gpa));
            }
            if end < e {
                kept.push((end, e));
            }
        }
        self.ranges = kept;
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}
