//! Planning how a static ELF executable maps: which page ranges, with which
//! permissions, and which file bytes go where. Pure functions over the
//! header bytes, tested here on synthetic headers and in `userland/tests`
//! against real built programs; the mapping itself is done by the kernel
//! (for the first process) and by `mx::launch`.
//!
//! Accepted: ELF64, little-endian, x86-64, `ET_EXEC` (linked at a fixed
//! address, as `user.ld` does), up to [`MAX_SEGMENTS`] `PT_LOAD`s with
//! `filesz <= memsz` and `offset % 4096 == vaddr % 4096`. Segments sharing a
//! page are merged into one mapping with the union of their permissions.

use mx_abi::VmFlags;

/// Most `PT_LOAD` segments a program may have.
pub const MAX_SEGMENTS: usize = 16;

const PT_LOAD: u32 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PAGE: u64 = 4096;

/// Why an ELF was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Not ELF64 little-endian x86-64.
    NotElf,
    /// Not `ET_EXEC` (static-PIE and shared objects need relocation).
    NotExec,
    /// The program headers are not within the bytes given.
    Truncated,
    /// A segment is malformed (sizes, alignment, overflow), or there are none.
    BadSegment,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
}

impl From<ElfError> for mx_abi::Status {
    fn from(e: ElfError) -> Self {
        match e {
            ElfError::NotElf | ElfError::NotExec => mx_abi::Status::NotSupported,
            _ => mx_abi::Status::IoDataIntegrity,
        }
    }
}

/// One `PT_LOAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// Where it starts in memory.
    pub vaddr: u64,
    /// Bytes in memory; those past `filesz` are zero.
    pub memsz: u64,
    /// Where its bytes start in the file.
    pub offset: u64,
    /// Bytes taken from the file.
    pub filesz: u64,
    /// `PF_R | PF_W | PF_X`.
    pub flags: u32,
}

/// One page-aligned mapping of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// First byte (page-aligned).
    pub start: u64,
    /// One past the last byte (page-aligned).
    pub end: u64,
    /// Permissions (`PERM_*` only).
    pub perms: VmFlags,
}

/// How an executable maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The entry point.
    pub entry: u64,
    /// The loadable segments, in file order (the first `num_segments`).
    pub segments: [Segment; MAX_SEGMENTS],
    /// How many of `segments` are used.
    pub num_segments: usize,
    /// The page ranges to map, ascending, disjoint (the first `num_mappings`).
    pub mappings: [Mapping; MAX_SEGMENTS],
    /// How many of `mappings` are used.
    pub num_mappings: usize,
}

impl Plan {
    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.num_segments]
    }

    /// The mappings.
    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings[..self.num_mappings]
    }

    /// The page-aligned span of the image: (lowest start, highest end).
    pub fn span(&self) -> (u64, u64) {
        let m = self.mappings();
        (m.first().map_or(0, |m| m.start), m.last().map_or(0, |m| m.end))
    }
}

/// Rounds `n` up to a page multiple (`None` on overflow).
const fn page_up(n: u64) -> Option<u64> {
    match n.checked_add(PAGE - 1) {
        Some(v) => Some(v & !(PAGE - 1)),
        None => None,
    }
}

/// Rounds `n` down to a page multiple.
const fn page_down(n: u64) -> u64 {
    n & !(PAGE - 1)
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ElfError> {
    Ok(u16::from_le_bytes(b.get(off..off + 2).ok_or(ElfError::Truncated)?.try_into().map_err(|_| ElfError::Truncated)?))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ElfError> {
    Ok(u32::from_le_bytes(b.get(off..off + 4).ok_or(ElfError::Truncated)?.try_into().map_err(|_| ElfError::Truncated)?))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, ElfError> {
    Ok(u64::from_le_bytes(b.get(off..off + 8).ok_or(ElfError::Truncated)?.try_into().map_err(|_| ElfError::Truncated)?))
}

/// Bytes from the start of the file that [`plan`] needs (the ELF header and
/// program headers), given at least the first 64.
pub fn headers_len(first: &[u8]) -> Result<usize, ElfError> {
    check_ident(first)?;
    let phoff = usize::try_from(u64_at(first, 32)?).map_err(|_| ElfError::Truncated)?;
    let phnum = usize::from(u16_at(first, 56)?);
    phoff.checked_add(phnum * 56).ok_or(ElfError::Truncated)
}

fn check_ident(b: &[u8]) -> Result<(), ElfError> {
    if b.get(..4) != Some(b"\x7fELF".as_slice()) || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err(ElfError::NotElf);
    }
    if u16_at(b, 18)? != 62 {
        return Err(ElfError::NotElf);
    }
    Ok(())
}

fn perms(flags: u32) -> VmFlags {
    let mut p = VmFlags::empty();
    if flags & PF_R != 0 {
        p |= VmFlags::PERM_READ;
    }
    if flags & PF_W != 0 {
        p |= VmFlags::PERM_WRITE | VmFlags::PERM_READ;
    }
    if flags & PF_X != 0 {
        p |= VmFlags::PERM_EXECUTE | VmFlags::PERM_READ;
    }
    p
}

/// Plans the mapping of the executable whose first bytes are `headers`
/// (at least [`headers_len`] of them).
pub fn plan(headers: &[u8]) -> Result<Plan, ElfError> {
    check_ident(headers)?;
    if u16_at(headers, 16)? != ET_EXEC {
        return Err(ElfError::NotExec);
    }
    plan_segments(headers)
}

/// Plans a shared object linked at 0 (the vDSO): addresses in the plan are
/// offsets from wherever it is mapped.
pub fn plan_dyn(headers: &[u8]) -> Result<Plan, ElfError> {
    check_ident(headers)?;
    if u16_at(headers, 16)? != ET_DYN {
        return Err(ElfError::NotExec);
    }
    plan_segments(headers)
}

fn plan_segments(headers: &[u8]) -> Result<Plan, ElfError> {
    let entry = u64_at(headers, 24)?;
    let phoff = usize::try_from(u64_at(headers, 32)?).map_err(|_| ElfError::Truncated)?;
    let phentsize = usize::from(u16_at(headers, 54)?);
    let phnum = usize::from(u16_at(headers, 56)?);
    if phentsize != 56 {
        return Err(ElfError::NotElf);
    }
    let mut p = Plan {
        entry,
        segments: [Segment::default(); MAX_SEGMENTS],
        num_segments: 0,
        mappings: [Mapping { start: 0, end: 0, perms: VmFlags::empty() }; MAX_SEGMENTS],
        num_mappings: 0,
    };
    for i in 0..phnum {
        let ph = phoff.checked_add(i * 56).ok_or(ElfError::Truncated)?;
        if u32_at(headers, ph)? != PT_LOAD {
            continue;
        }
        let s = Segment {
            flags: u32_at(headers, ph + 4)?,
            offset: u64_at(headers, ph + 8)?,
            vaddr: u64_at(headers, ph + 16)?,
            filesz: u64_at(headers, ph + 32)?,
            memsz: u64_at(headers, ph + 40)?,
        };
        if s.memsz == 0 {
            continue;
        }
        let end = s.vaddr.checked_add(s.memsz).and_then(page_up).ok_or(ElfError::BadSegment)?;
        if s.filesz > s.memsz || s.offset.checked_add(s.filesz).is_none() || s.offset % PAGE != s.vaddr % PAGE {
            return Err(ElfError::BadSegment);
        }
        if p.num_segments == MAX_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        p.segments[p.num_segments] = s;
        p.num_segments += 1;
        let m = Mapping { start: page_down(s.vaddr), end, perms: perms(s.flags) };
        p.mappings[p.num_mappings] = m;
        p.num_mappings += 1;
    }
    if p.num_segments == 0 {
        return Err(ElfError::BadSegment);
    }
    // Sort by address (insertion sort: at most 16) and merge shared pages.
    let maps = &mut p.mappings[..p.num_mappings];
    for i in 1..maps.len() {
        let mut j = i;
        while j > 0 && maps[j - 1].start > maps[j].start {
            maps.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut out = 0;
    for i in 0..p.num_mappings {
        let m = p.mappings[i];
        if out > 0 && m.start < p.mappings[out - 1].end {
            let prev = &mut p.mappings[out - 1];
            prev.end = prev.end.max(m.end);
            prev.perms |= m.perms;
        } else {
            p.mappings[out] = m;
            out += 1;
        }
    }
    p.num_mappings = out;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF header with the given program headers.
    fn elf(kind: u16, phdrs: &[(u32, u32, u64, u64, u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * phdrs.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&kind.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[24..32].copy_from_slice(&0x100_0040u64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, &(ty, flags, off, vaddr, filesz, memsz)) in phdrs.iter().enumerate() {
            let p = 64 + 56 * i;
            b[p..p + 4].copy_from_slice(&ty.to_le_bytes());
            b[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            b[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            b[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
            b[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        b
    }

    #[test]
    fn plans_text_and_bss() {
        let b = elf(
            ET_EXEC,
            &[
                (PT_LOAD, PF_R | PF_X, 0x1000, 0x100_1000, 0x1234, 0x1234),
                (6, 0, 0, 0, 0, 0),
                (PT_LOAD, PF_R | PF_W, 0x3000, 0x100_3000, 0x10, 0x5000),
            ],
        );
        assert_eq!(headers_len(&b).unwrap(), 64 + 3 * 56);
        let p = plan(&b).unwrap();
        assert_eq!(p.entry, 0x100_0040);
        assert_eq!(p.segments().len(), 2);
        assert_eq!(
            p.mappings(),
            [
                Mapping { start: 0x100_1000, end: 0x100_3000, perms: VmFlags::PERM_READ | VmFlags::PERM_EXECUTE },
                Mapping { start: 0x100_3000, end: 0x100_8000, perms: VmFlags::PERM_READ | VmFlags::PERM_WRITE },
            ]
        );
        assert_eq!(p.span(), (0x100_1000, 0x100_8000));
    }

    #[test]
    fn merges_shared_pages() {
        let b = elf(
            ET_EXEC,
            &[(PT_LOAD, PF_R, 0, 0x40_0000, 0x800, 0x800), (PT_LOAD, PF_R | PF_W, 0x800, 0x40_0800, 0x10, 0x10)],
        );
        let p = plan(&b).unwrap();
        assert_eq!(p.mappings().len(), 1);
        assert_eq!(p.mappings()[0].perms, VmFlags::PERM_READ | VmFlags::PERM_WRITE);
    }

    #[test]
    fn rejects_what_it_cannot_load() {
        assert_eq!(plan(b"\x7fELF").err(), Some(ElfError::NotElf));
        assert_eq!(plan(&elf(3, &[(PT_LOAD, PF_R, 0, 0, 1, 1)])).err(), Some(ElfError::NotExec));
        assert_eq!(plan(&elf(ET_EXEC, &[])).err(), Some(ElfError::BadSegment));
        let filesz_too_big = elf(ET_EXEC, &[(PT_LOAD, PF_R, 0, 0x1000, 2, 1)]);
        assert_eq!(plan(&filesz_too_big).err(), Some(ElfError::BadSegment));
        let misaligned = elf(ET_EXEC, &[(PT_LOAD, PF_R, 0x10, 0x1000, 1, 1)]);
        assert_eq!(plan(&misaligned).err(), Some(ElfError::BadSegment));
        let wraps = elf(ET_EXEC, &[(PT_LOAD, PF_R, 0, u64::MAX - 10, 1, 100)]);
        assert_eq!(plan(&wraps).err(), Some(ElfError::BadSegment));
        let b = elf(ET_EXEC, &[(PT_LOAD, PF_R, 0, 0x1000, 1, 1)]);
        assert_eq!(plan(&b[..100]).err(), Some(ElfError::Truncated));
    }
}
