//! Copying between kernel buffers and user memory, with fault recovery.
//!
//! A user address is checked before anything is touched: NULL, below
//! `vm::USER_BASE`, past `vm::USER_END` (which covers non-canonical and
//! kernel-half addresses) or wrapping gives `INVALID_ARGS`. The copy itself
//! is one `rep movsb` in [`usercopy_memcpy`]; a page fault on it goes to
//! `vm::handle_page_fault` (committing a mapped, not yet committed page),
//! and if that fails the trap handler resumes at the routine's fixup, which
//! returns failure: `INVALID_ARGS`, never a panic. A copy to user memory
//! first checks (and faults in) every destination page, so a bad range
//! writes nothing; a copy from user memory may have filled part of the
//! kernel buffer when it fails.
//!
//! SMAP: the routine sets RFLAGS.AC (`stac`) only around the copy and
//! clears it (`clac`) on both exits, when the CPU has SMAP (the kernel
//! turns CR4.SMAP on then).
//!
//! Callers must not hold a VM lock (address space or VMO): resolving a
//! fault takes them.

use crate::vm::{USER_BASE, USER_END};
use alloc::vec::Vec;
use mx_abi::wire::Wire;
use mx_abi::{Status, UserIn, UserInOut, UserOut};

core::arch::global_asm!(
    r#"
    .section .text.usercopy, "ax"
    .balign 16
    .global usercopy_memcpy
    .global usercopy_fault_start
    .global usercopy_fault_end
    .global usercopy_fixup
    // rdi = destination, rsi = source, rdx = length, rcx = use stac/clac.
    // Returns 0 in eax, or 1 if a fault could not be resolved.
usercopy_memcpy:
    mov r8, rcx
    test r8, r8
    jz 1f
    .byte 0x0f, 0x01, 0xcb      // stac
1:
    mov rcx, rdx
usercopy_fault_start:
    rep movsb
usercopy_fault_end:
    xor eax, eax
    jmp 2f
usercopy_fixup:
    mov eax, 1
2:
    test r8, r8
    jz 3f
    .byte 0x0f, 0x01, 0xca      // clac
3:
    ret
    "#
);

extern "C" {
    fn usercopy_memcpy(dst: *mut u8, src: *const u8, len: usize, smap: u64) -> u32;
    static usercopy_fault_start: u8;
    static usercopy_fault_end: u8;
    static usercopy_fixup: u8;
}

/// The exception table: where a fault may be recovered, and where to.
/// One entry today (the copy instruction); each is `(start, end, fixup)`.
fn exception_table() -> [(u64, u64, u64); 1] {
    [(
        (&raw const usercopy_fault_start) as u64,
        (&raw const usercopy_fault_end) as u64,
        (&raw const usercopy_fixup) as u64,
    )]
}

/// The fixup address for a fault at kernel `rip`, if `rip` is inside a
/// user-copy routine.
pub fn fixup_for(rip: u64) -> Option<u64> {
    exception_table().iter().find(|(start, end, _)| (*start..*end).contains(&rip)).map(|&(_, _, fixup)| fixup)
}

fn smap() -> u64 {
    u64::from(super::cpu::features().smap)
}

/// Clears RFLAGS.AC on entry to a fault handler (the interrupted copy's
/// value comes back with `iretq`), so the handler runs with SMAP on.
pub fn clac_if_smap() {
    if super::cpu::features().smap {
        // SAFETY: CLAC only clears RFLAGS.AC; the CPU has SMAP.
        unsafe { core::arch::asm!(".byte 0x0f, 0x01, 0xca", options(nomem, nostack)) };
    }
}

/// Checks that `[addr, addr + len)` is a possible user range.
fn check_range(addr: usize, len: usize) -> Result<(), Status> {
    let addr = addr as u64;
    let end = addr.checked_add(len as u64).ok_or(Status::InvalidArgs)?;
    if addr < USER_BASE || end > USER_END {
        return Err(Status::InvalidArgs);
    }
    Ok(())
}

/// Copies `dst.len()` bytes from user address `user_addr` into `dst`.
/// A zero-length copy touches nothing and succeeds (whatever the address).
pub fn copy_from_user(dst: &mut [u8], user_addr: usize) -> Result<(), Status> {
    if dst.is_empty() {
        return Ok(());
    }
    check_range(user_addr, dst.len())?;
    // SAFETY: `dst` is a kernel buffer valid for `dst.len()` bytes; the
    // source is a checked user range, read by the routine whose faults the
    // trap handler resolves or turns into a failed return.
    let failed = unsafe { usercopy_memcpy(dst.as_mut_ptr(), user_addr as *const u8, dst.len(), smap()) };
    if failed == 0 {
        Ok(())
    } else {
        Err(Status::InvalidArgs)
    }
}

/// Copies `src` to user address `user_addr`. Every destination page is
/// checked (and faulted in) for writing first, so a bad range changes
/// nothing unless the mappings change during the copy.
/// A zero-length copy touches nothing and succeeds (whatever the address).
pub fn copy_to_user(user_addr: usize, src: &[u8]) -> Result<(), Status> {
    if src.is_empty() {
        return Ok(());
    }
    check_range(user_addr, src.len())?;
    crate::vm::prefault_for_write(user_addr as u64, src.len() as u64).map_err(|_| Status::InvalidArgs)?;
    // SAFETY: as for `copy_from_user`, with the roles swapped; the user
    // range cannot overlap kernel memory (it lies below USER_END).
    let failed = unsafe { usercopy_memcpy(user_addr as *mut u8, src.as_ptr(), src.len(), smap()) };
    if failed == 0 {
        Ok(())
    } else {
        Err(Status::InvalidArgs)
    }
}

/// Checks that every page of the user range `[addr, addr + len)` can be
/// written, faulting each in, before anything is copied (Magenta touches
/// the whole buffer of `mx_vmo_read` first): `INVALID_ARGS` otherwise. An
/// empty range is fine whatever the address.
pub fn probe_writable(addr: usize, len: usize) -> Result<(), Status> {
    if len == 0 {
        return Ok(());
    }
    check_range(addr, len)?;
    crate::vm::prefault_for_write(addr as u64, len as u64).map_err(|_| Status::InvalidArgs)
}

/// Checks that every page of the user range `[addr, addr + len)` can be
/// read, by reading one byte of each (and the last byte), before anything
/// is copied (Magenta touches the whole buffer of `mx_vmo_write` first):
/// `INVALID_ARGS` otherwise. An empty range is fine whatever the address.
pub fn probe_readable(addr: usize, len: usize) -> Result<(), Status> {
    if len == 0 {
        return Ok(());
    }
    check_range(addr, len)?;
    let page = crate::mm::PAGE_SIZE as usize;
    let mut byte = [0u8; 1];
    let mut at = addr;
    let last = addr + (len - 1);
    while at <= last {
        copy_from_user(&mut byte, at)?;
        at = (at & !(page - 1)) + page;
    }
    copy_from_user(&mut byte, last)
}

/// Bytes of `n` values of `T`, if that does not overflow.
fn byte_len<T: Wire>(n: usize) -> Result<usize, Status> {
    T::SIZE.checked_mul(n).ok_or(Status::InvalidArgs)
}

/// Reads `n` values of `T` starting at user address `addr`, decoding their
/// C layout (every bit pattern is a valid `Wire` value).
fn read_n<T: Wire>(addr: usize, n: usize) -> Result<Vec<T>, Status> {
    let len = byte_len::<T>(n)?;
    if n > 0 {
        check_range(addr, len)?;
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len).map_err(|_| Status::NoMemory)?;
    bytes.resize(len, 0);
    copy_from_user(&mut bytes, addr)?;
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| Status::NoMemory)?;
    for chunk in bytes.chunks_exact(T::SIZE.max(1)).take(n) {
        out.push(T::read(chunk).ok_or(Status::InvalidArgs)?);
    }
    Ok(out)
}

/// Writes `values` to user address `addr` in their C layout (padding zeroed).
fn write_n<T: Wire>(addr: usize, values: &[T]) -> Result<(), Status> {
    let len = byte_len::<T>(values.len())?;
    if len > 0 {
        check_range(addr, len)?;
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len).map_err(|_| Status::NoMemory)?;
    bytes.resize(len, 0);
    for (value, chunk) in values.iter().zip(bytes.chunks_exact_mut(T::SIZE.max(1))) {
        value.write(chunk).ok_or(Status::InvalidArgs)?;
    }
    copy_to_user(addr, &bytes)
}

/// Single values up to this size go through a stack buffer: every syscall's
/// out-parameters take this path, which must not allocate (nor fail with
/// NO_MEMORY after the call's effect, e.g. a dequeued port packet).
const STACK_COPY: usize = 256;

/// Reads one `T` at `addr`.
fn read_one<T: Wire>(addr: usize) -> Result<T, Status> {
    if T::SIZE > STACK_COPY {
        return read_n::<T>(addr, 1)?.pop().ok_or(Status::InvalidArgs);
    }
    let mut buffer = [0u8; STACK_COPY];
    let bytes = &mut buffer[..T::SIZE];
    check_range(addr, T::SIZE)?;
    copy_from_user(bytes, addr)?;
    T::read(bytes).ok_or(Status::InvalidArgs)
}

/// Writes one `T` at `addr` (padding zeroed).
fn write_one<T: Wire>(addr: usize, value: &T) -> Result<(), Status> {
    if T::SIZE > STACK_COPY {
        return write_n(addr, core::slice::from_ref(value));
    }
    let mut buffer = [0u8; STACK_COPY];
    let bytes = &mut buffer[..T::SIZE];
    value.write(bytes).ok_or(Status::InvalidArgs)?;
    check_range(addr, T::SIZE)?;
    copy_to_user(addr, bytes)
}

/// Reads one `T` (`INVALID_ARGS` for NULL or a bad pointer).
pub fn read<T: Wire + Copy>(ptr: UserIn<T>) -> Result<T, Status> {
    read_one(ptr.addr())
}

/// Writes one `T`.
pub fn write<T: Wire + Copy>(ptr: UserOut<T>, value: &T) -> Result<(), Status> {
    write_one(ptr.addr(), value)
}

/// Reads `n` consecutive `T`s.
pub fn read_slice<T: Wire + Copy>(ptr: UserIn<T>, n: usize) -> Result<Vec<T>, Status> {
    read_n(ptr.addr(), n)
}

/// Writes `values` as consecutive `T`s.
pub fn write_slice<T: Wire + Copy>(ptr: UserOut<T>, values: &[T]) -> Result<(), Status> {
    write_n(ptr.addr(), values)
}

/// Reads one `T` through an in-out pointer.
pub fn read_inout<T: Wire + Copy>(ptr: UserInOut<T>) -> Result<T, Status> {
    read_one(ptr.addr())
}

/// Writes one `T` back through an in-out pointer.
pub fn write_inout<T: Wire + Copy>(ptr: UserInOut<T>, value: &T) -> Result<(), Status> {
    write_one(ptr.addr(), value)
}

/// Reads `len` bytes of a user buffer, refusing more than `max`
/// (`OUT_OF_RANGE`), e.g. a message body.
pub fn read_bytes(ptr: UserIn<u8>, len: usize, max: usize) -> Result<Vec<u8>, Status> {
    if len > max {
        return Err(Status::OutOfRange);
    }
    read_n(ptr.addr(), len)
}

/// Reads a name passed as `(pointer, length)`, silently cut to `max` bytes
/// (Magenta's rule for object names). NULL is `INVALID_ARGS` even for an
/// empty name.
pub fn read_user_string(ptr: UserIn<u8>, len: usize, max: usize) -> Result<Vec<u8>, Status> {
    if ptr.is_null() {
        return Err(Status::InvalidArgs);
    }
    read_n(ptr.addr(), len.min(max))
}

/// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
/// `OUT_OF_RANGE` if no NUL comes within `max + 1` bytes. Reads whole
/// chunks that never cross a page beyond the one holding the NUL.
pub fn read_user_cstr(ptr: UserIn<u8>, max: usize) -> Result<Vec<u8>, Status> {
    if ptr.is_null() {
        return Err(Status::InvalidArgs);
    }
    let page = crate::mm::PAGE_SIZE as usize;
    let mut out = Vec::new();
    let mut addr = ptr.addr();
    let mut chunk = [0u8; 64];
    loop {
        let to_page_end = page - addr % page;
        let n = chunk.len().min(to_page_end);
        copy_from_user(&mut chunk[..n], addr)?;
        if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
            if out.len() + nul > max {
                return Err(Status::OutOfRange);
            }
            out.extend_from_slice(&chunk[..nul]);
            return Ok(out);
        }
        if out.len() + n > max {
            return Err(Status::OutOfRange);
        }
        out.extend_from_slice(&chunk[..n]);
        addr = addr.checked_add(n).ok_or(Status::InvalidArgs)?;
    }
}
