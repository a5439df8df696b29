//! Kernel calls the `mx` crate does not wrap yet.

use mx::hypervisor::Guest;
use mx::{Status, Vmo};

/// `mx_guest_map`: shares `len` bytes of `vmo` from `offset` at guest-physical `gpa`.
pub fn guest_map(guest: &Guest, gpa: u64, vmo: &Vmo, offset: u64, len: u64) -> Result<(), Status> {
    let _ = (guest, gpa, vmo, offset, len);
    Err(Status::NotSupported)
}

/// `mx_guest_unmap`.
pub fn guest_unmap(guest: &Guest, gpa: u64, len: u64) -> Result<(), Status> {
    let _ = (guest, gpa, len);
    Err(Status::NotSupported)
}
