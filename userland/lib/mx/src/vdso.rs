//! Finding the vDSO's functions: the ELF dynamic symbol table, looked up
//! through its SysV hash table (`DT_HASH`), the way a dynamic linker would.
//!
//! A new process gets the vDSO's base address in `rsi` (contract §2.6). The
//! runtime calls [`resolve`] with it before anything else; every slot of
//! [`crate::sys::SLOTS`] then holds the address of its `_mx_*` function.

use core::sync::atomic::Ordering;

use crate::sys::{SLOTS, SYMBOLS};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const SYM_SIZE: usize = 24;

/// Why a vDSO image could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VdsoError {
    /// Not an ELF64 little-endian x86-64 image.
    NotElf,
    /// A header, table or string lies outside the image.
    Truncated,
    /// No `PT_DYNAMIC`, or it lacks `DT_HASH`/`DT_SYMTAB`/`DT_STRTAB`.
    NoDynamic,
    /// A symbol of [`SYMBOLS`] is missing (its index).
    Missing(usize),
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, VdsoError> {
    let s = b.get(off..off.checked_add(2).ok_or(VdsoError::Truncated)?).ok_or(VdsoError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, VdsoError> {
    let s = b.get(off..off.checked_add(4).ok_or(VdsoError::Truncated)?).ok_or(VdsoError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, VdsoError> {
    Ok(u64::from(u32_at(b, off)?) | (u64::from(u32_at(b, off + 4)?) << 32))
}

fn usize_of(v: u64) -> Result<usize, VdsoError> {
    usize::try_from(v).map_err(|_| VdsoError::Truncated)
}

/// The ELF header fields the lookup needs: (phoff, phnum).
fn header(image: &[u8]) -> Result<(usize, usize), VdsoError> {
    if image.get(..4) != Some(b"\x7fELF".as_slice()) || image.get(4) != Some(&2) || image.get(5) != Some(&1) {
        return Err(VdsoError::NotElf);
    }
    if u16_at(image, 18)? != 62 {
        return Err(VdsoError::NotElf);
    }
    Ok((usize_of(u64_at(image, 32)?)?, usize::from(u16_at(image, 56)?)))
}

/// Bytes of the first `PT_LOAD` (the one holding the ELF header, the symbol
/// tables and the code): how much of a mapped vDSO [`lookup`] may read.
pub fn first_segment_len(header_bytes: &[u8]) -> Result<usize, VdsoError> {
    let (phoff, phnum) = header(header_bytes)?;
    for i in 0..phnum {
        let ph = phoff + i * 56;
        if u32_at(header_bytes, ph)? == PT_LOAD {
            return usize_of(u64_at(header_bytes, ph + 32)?);
        }
    }
    Err(VdsoError::NoDynamic)
}

/// The dynamic symbol table of an image linked at 0 (the vDSO is).
#[derive(Debug, Clone, Copy)]
pub struct DynSyms<'a> {
    image: &'a [u8],
    hash: usize,
    symtab: usize,
    strtab: usize,
    strsz: usize,
}

impl<'a> DynSyms<'a> {
    /// Reads the `PT_DYNAMIC` of `image` (the first segment of the vDSO as
    /// mapped, or the whole file: both have the tables at their addresses).
    pub fn new(image: &'a [u8]) -> Result<Self, VdsoError> {
        let (phoff, phnum) = header(image)?;
        let mut dynamic = None;
        for i in 0..phnum {
            let ph = phoff + i * 56;
            if u32_at(image, ph)? == PT_DYNAMIC {
                dynamic = Some((usize_of(u64_at(image, ph + 16)?)?, usize_of(u64_at(image, ph + 40)?)?));
            }
        }
        let (dyn_off, dyn_size) = dynamic.ok_or(VdsoError::NoDynamic)?;
        let (mut hash, mut symtab, mut strtab, mut strsz) = (None, None, None, 0);
        for e in 0..dyn_size / 16 {
            let tag = u64_at(image, dyn_off + e * 16)?;
            let val = u64_at(image, dyn_off + e * 16 + 8)?;
            match tag {
                DT_NULL => break,
                DT_HASH => hash = Some(usize_of(val)?),
                DT_SYMTAB => symtab = Some(usize_of(val)?),
                DT_STRTAB => strtab = Some(usize_of(val)?),
                DT_STRSZ => strsz = usize_of(val)?,
                _ => {}
            }
        }
        match (hash, symtab, strtab) {
            (Some(hash), Some(symtab), Some(strtab)) => Ok(DynSyms { image, hash, symtab, strtab, strsz }),
            _ => Err(VdsoError::NoDynamic),
        }
    }

    fn name_is(&self, name_off: usize, name: &str) -> Result<bool, VdsoError> {
        if name_off >= self.strsz {
            return Err(VdsoError::Truncated);
        }
        let start = self.strtab + name_off;
        let end = start.checked_add(name.len()).ok_or(VdsoError::Truncated)?;
        let Some(bytes) = self.image.get(start..end) else { return Ok(false) };
        Ok(bytes == name.as_bytes() && self.image.get(end) == Some(&0))
    }

    /// The value (offset from the base) of the defined symbol `name`.
    pub fn lookup(&self, name: &str) -> Result<Option<u64>, VdsoError> {
        let nbucket = u32_at(self.image, self.hash)? as usize;
        let nchain = u32_at(self.image, self.hash + 4)? as usize;
        if nbucket == 0 {
            return Ok(None);
        }
        let bucket = self.hash + 8;
        let chain = bucket + nbucket * 4;
        let mut index = u32_at(self.image, bucket + (elf_hash(name) as usize % nbucket) * 4)? as usize;
        // A chain can visit each symbol at most once; a longer walk is a loop.
        for _ in 0..nchain {
            if index == 0 {
                break;
            }
            let sym = self.symtab + index * SYM_SIZE;
            let shndx = u16_at(self.image, sym + 6)?;
            if shndx != 0 && self.name_is(u32_at(self.image, sym)? as usize, name)? {
                return Ok(Some(u64_at(self.image, sym + 8)?));
            }
            index = u32_at(self.image, chain + index * 4)? as usize;
        }
        Ok(None)
    }
}

/// The SysV ELF hash.
pub fn elf_hash(name: &str) -> u32 {
    let mut h: u32 = 0;
    for &c in name.as_bytes() {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// Looks up every symbol of [`SYMBOLS`] in `image`: their offsets, in order.
pub fn lookup_all(image: &[u8], out: &mut [u64; SYMBOLS.len()]) -> Result<(), VdsoError> {
    let syms = DynSyms::new(image)?;
    for (i, name) in SYMBOLS.iter().enumerate() {
        out[i] = syms.lookup(name)?.ok_or(VdsoError::Missing(i))?;
    }
    Ok(())
}

/// Resolves every public call against the vDSO mapped at `base`. On error no
/// slot is filled, so the calls keep failing with `MX_ERR_BAD_SYSCALL`.
///
/// # Safety
///
/// `base` must be where the process mapped the vDSO, with at least its first
/// `PT_LOAD` segment readable (the loader maps all of it).
pub unsafe fn resolve(base: usize) -> Result<(), VdsoError> {
    if base == 0 {
        return Err(VdsoError::NotElf);
    }
    // SAFETY: the caller guarantees a mapped vDSO at `base`; its first
    // segment holds the 64-byte ELF header and the program headers.
    let head = unsafe { core::slice::from_raw_parts(base as *const u8, 64) };
    let (phoff, phnum) = header(head)?;
    // SAFETY: as above; the program headers are inside the first segment.
    let phdrs = unsafe { core::slice::from_raw_parts(base as *const u8, phoff + phnum * 56) };
    let len = first_segment_len(phdrs)?;
    // SAFETY: the whole first segment is mapped readable at `base`.
    let image = unsafe { core::slice::from_raw_parts(base as *const u8, len) };
    let mut offsets = [0u64; SYMBOLS.len()];
    lookup_all(image, &mut offsets)?;
    for (slot, off) in SLOTS.iter().zip(offsets) {
        slot.store(base + off as usize, Ordering::Relaxed);
    }
    Ok(())
}

/// What a call made before [`resolve`] does when it cannot return: trap.
pub fn unresolved() -> ! {
    loop {
        // SAFETY: `ud2` raises an invalid-opcode fault; nothing else happens.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            core::arch::asm!("ud2", options(nomem, nostack))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysv_hash() {
        assert_eq!(elf_hash(""), 0);
        assert_eq!(elf_hash("printf"), 0x077905a6);
        assert_eq!(elf_hash("exit"), 0x0006cf04);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(DynSyms::new(b"not an elf").err(), Some(VdsoError::NotElf));
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 62;
        h[32] = 64;
        h[56] = 1;
        assert_eq!(DynSyms::new(&h).err(), Some(VdsoError::Truncated));
    }
}
