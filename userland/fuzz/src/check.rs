//! Whether a return value is one the declaration table documents for the
//! call: `MX_OK`, a count for `positive` calls, a listed error, one of the
//! statuses every handle lookup can give (BAD_HANDLE, ACCESS_DENIED,
//! WRONG_TYPE) for calls that take handles, any defined status but INTERNAL
//! for calls whose errors the contract does not document (the parent lists
//! what they returned), INVALID_ARGS when a pointer argument is bad (the
//! user-copy rule every call follows), and NO_MEMORY anywhere while faults
//! are injected.

use mx_abi::meta::{ArgKind, SyscallDecl};
use mx_abi::Status;

/// Statuses the kernel returns that the call's (non-empty) error list
/// omits, each found by this fuzzer and judged correct behaviour: gaps in
/// the table to close there, not kernel bugs. (None left: thread_create's
/// BAD_STATE for a dying process is in the table now.)
fn table_gaps(_name: &str) -> &'static [Status] {
    &[]
}

pub fn takes_handles(decl: &SyscallDecl) -> bool {
    decl.args.iter().any(|a| matches!(a.kind, ArgKind::Handle(_)))
}

/// `Ok(())` if `raw` is a documented result of `decl`, else why not.
pub fn check(decl: &SyscallDecl, raw: u64, nomem: bool, bad_pointer: bool) -> Result<(), &'static str> {
    if decl.ret != "mx_status_t" {
        // Times, counts and constants: any value.
        return Ok(());
    }
    let status = raw as u32 as i32;
    if status == 0 || (decl.attrs.positive && status > 0) {
        return Ok(());
    }
    if status > 0 {
        return Err("a positive value from a call that returns a status");
    }
    let Ok(status) = Status::try_from(status) else { return Err("not a status the ABI defines") };
    if decl.errors.iter().any(|e| e.status == status) {
        return Ok(());
    }
    if takes_handles(decl) && matches!(status, Status::BadHandle | Status::AccessDenied | Status::WrongType) {
        return Ok(());
    }
    // The contract documents no errors for these calls (an empty list):
    // any status the ABI defines but INTERNAL (the kernel's own failure).
    // The parent prints what each returned: the documentation gaps.
    if decl.errors.is_empty() && status != Status::Internal {
        return Ok(());
    }
    if table_gaps(decl.name).contains(&status) {
        return Ok(());
    }
    if bad_pointer && status == Status::InvalidArgs {
        return Ok(());
    }
    if nomem && status == Status::NoMemory {
        return Ok(());
    }
    Err("a status the table does not document for this call")
}
