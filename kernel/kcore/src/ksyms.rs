//! The kernel symbol table used to symbolize panic backtraces.
//!
//! The host image builder serializes the kernel's function symbols with
//! [`encode`] and patches the bytes into a fixed-size, zero-filled section of
//! the kernel ELF. At panic time the kernel reads that section with
//! [`SymbolTable::parse`], which allocates nothing and never panics, whatever
//! the bytes are.
//!
//! # Format (version 1)
//!
//! All integers little-endian; offsets in bytes from the start of the table.
//!
//! | offset          | size       | field                                     |
//! |-----------------|------------|-------------------------------------------|
//! | 0               | 8          | magic `b"KSYMTAB1"`                       |
//! | 8               | 4          | `count`: number of entries (u32)          |
//! | 12              | 4          | `strtab`: offset of the string table (u32)|
//! | 16              | 16×`count` | entries, sorted by `addr` ascending       |
//! | `strtab`        | ...        | string table                              |
//!
//! Each entry is `{ addr: u64, size: u32, name_off: u32 }`: the symbol's first
//! address, its size in bytes (0 = unknown), and the offset of its name
//! relative to `strtab`. A name is stored as a u16 byte length followed by
//! that many bytes of UTF-8, not NUL-terminated.
//!
//! [`encode`] writes `strtab = 16 + 16 × count` and places names in input
//! order; entries with equal addresses keep their input order. Bytes after the
//! end of the string table (the rest of the section) are ignored. A section
//! that does not start with the magic (e.g. all zeros: the builder did not
//! fill it in) holds no table.

/// First bytes of a version-1 table.
pub const MAGIC: [u8; 8] = *b"KSYMTAB1";

const HEADER_SIZE: usize = 16;
const ENTRY_SIZE: usize = 16;
const NAME_LEN_SIZE: usize = 2;

type RawEntry = [u8; ENTRY_SIZE];

/// Why [`encode`] refused its input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EncodeError {
    /// `out` is shorter than the `needed` bytes.
    BufferTooSmall { needed: usize },
    /// The name of symbol number `index` is longer than `u16::MAX` bytes.
    NameTooLong { index: usize },
    /// The table would exceed the format's u32 counts or offsets.
    TooLarge,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BufferTooSmall { needed } => {
                write!(f, "symbol table needs {needed} bytes, buffer too small")
            }
            Self::NameTooLong { index } => write!(f, "name of symbol {index} too long"),
            Self::TooLarge => write!(f, "symbol table too large for the format"),
        }
    }
}

/// Bytes [`encode`] would write for `symbols`.
pub fn encoded_len(symbols: &[(u64, u32, &str)]) -> Result<usize, EncodeError> {
    let mut len =
        symbols.len().checked_mul(ENTRY_SIZE).and_then(|n| n.checked_add(HEADER_SIZE)).ok_or(EncodeError::TooLarge)?;
    let strtab = len;
    for (index, &(_, _, name)) in symbols.iter().enumerate() {
        if name.len() > usize::from(u16::MAX) {
            return Err(EncodeError::NameTooLong { index });
        }
        // A name's offset must fit in u32; check the last one written.
        if u32::try_from(len - strtab).is_err() {
            return Err(EncodeError::TooLarge);
        }
        len = len.checked_add(NAME_LEN_SIZE + name.len()).ok_or(EncodeError::TooLarge)?;
    }
    if u32::try_from(symbols.len()).is_err() || u32::try_from(strtab).is_err() {
        return Err(EncodeError::TooLarge);
    }
    Ok(len)
}

/// Serializes `symbols` (`(addr, size, name)`, in any order) into the start
/// of `out` and returns the number of bytes written. Bytes of `out` past that
/// are left untouched.
pub fn encode(symbols: &[(u64, u32, &str)], out: &mut [u8]) -> Result<usize, EncodeError> {
    let needed = encoded_len(symbols)?;
    let out = out.get_mut(..needed).ok_or(EncodeError::BufferTooSmall { needed })?;
    let strtab = HEADER_SIZE + symbols.len() * ENTRY_SIZE;
    let (header, rest) = out.split_at_mut(HEADER_SIZE);
    let (entries, strings) = rest.split_at_mut(strtab - HEADER_SIZE);

    // encoded_len checked that these fit in u32.
    let count = u32::try_from(symbols.len()).map_err(|_| EncodeError::TooLarge)?;
    let strtab = u32::try_from(strtab).map_err(|_| EncodeError::TooLarge)?;
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&count.to_le_bytes());
    header[12..16].copy_from_slice(&strtab.to_le_bytes());

    let (entries, _) = entries.as_chunks_mut::<ENTRY_SIZE>();
    let mut name_off = 0usize;
    for (entry, &(addr, size, name)) in entries.iter_mut().zip(symbols) {
        let off = u32::try_from(name_off).map_err(|_| EncodeError::TooLarge)?;
        let len = u16::try_from(name.len()).map_err(|_| EncodeError::TooLarge)?;
        *entry = pack_entry(addr, size, off);
        let slot = &mut strings[name_off..name_off + NAME_LEN_SIZE + name.len()];
        slot[..NAME_LEN_SIZE].copy_from_slice(&len.to_le_bytes());
        slot[NAME_LEN_SIZE..].copy_from_slice(name.as_bytes());
        name_off += slot.len();
    }
    // Names are laid out in input order, so (addr, name_off) is a total order
    // that keeps aliases in input order despite the unstable sort.
    entries.sort_unstable_by_key(|e| {
        let (addr, _, name_off) = unpack_entry(e);
        (addr, name_off)
    });
    Ok(needed)
}

fn pack_entry(addr: u64, size: u32, name_off: u32) -> RawEntry {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = addr.to_le_bytes();
    let [s0, s1, s2, s3] = size.to_le_bytes();
    let [n0, n1, n2, n3] = name_off.to_le_bytes();
    [a0, a1, a2, a3, a4, a5, a6, a7, s0, s1, s2, s3, n0, n1, n2, n3]
}

fn unpack_entry(e: &RawEntry) -> (u64, u32, u32) {
    let [a0, a1, a2, a3, a4, a5, a6, a7, s0, s1, s2, s3, n0, n1, n2, n3] = *e;
    (
        u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u32::from_le_bytes([s0, s1, s2, s3]),
        u32::from_le_bytes([n0, n1, n2, n3]),
    )
}

fn read_u32(bytes: &[u8], off: usize) -> Option<u32> {
    let b = bytes.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// One symbol of a [`SymbolTable`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Symbol<'a> {
    pub addr: u64,
    /// Size in bytes; 0 if unknown.
    pub size: u32,
    pub name: &'a str,
}

/// A validated, borrowed view of an encoded symbol table.
#[derive(Clone, Copy, Debug)]
pub struct SymbolTable<'a> {
    entries: &'a [RawEntry],
    strings: &'a [u8],
}

impl<'a> SymbolTable<'a> {
    /// Validates `bytes` as a symbol table. Returns `None` if there is no
    /// table (wrong magic, e.g. an all-zero section) or it is malformed:
    /// out-of-bounds offsets, bad names, or entries not sorted by address.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        if bytes.get(..MAGIC.len())? != MAGIC {
            return None;
        }
        let count = usize::try_from(read_u32(bytes, 8)?).ok()?;
        let strtab = usize::try_from(read_u32(bytes, 12)?).ok()?;
        let entries_end = count.checked_mul(ENTRY_SIZE)?.checked_add(HEADER_SIZE)?;
        if strtab < entries_end {
            return None;
        }
        let (entries, _) = bytes.get(HEADER_SIZE..entries_end)?.as_chunks::<ENTRY_SIZE>();
        let table = Self { entries, strings: bytes.get(strtab..)? };
        // Validate once so lookups are cheap; the table is small next to the
        // rest of the kernel and is parsed rarely.
        let mut prev_addr = 0;
        for e in entries {
            let (addr, _, name_off) = unpack_entry(e);
            if addr < prev_addr {
                return None;
            }
            prev_addr = addr;
            table.name_at(name_off)?;
        }
        Some(table)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The symbol at `index` in address order.
    pub fn get(&self, index: usize) -> Option<Symbol<'a>> {
        let (addr, size, name_off) = unpack_entry(self.entries.get(index)?);
        Some(Symbol { addr, size, name: self.name_at(name_off)? })
    }

    /// All symbols in address order.
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'a>> + 'a {
        let table = *self;
        (0..table.len()).filter_map(move |i| table.get(i))
    }

    /// The symbol containing `addr` and the offset of `addr` into it.
    ///
    /// The candidate is the symbol with the greatest start `<= addr` (the last
    /// one among equal starts). If its size is known and `addr` lies past its
    /// end, the address belongs to no symbol and `None` is returned.
    pub fn lookup(&self, addr: u64) -> Option<(&'a str, u64)> {
        let index = self.entries.partition_point(|e| unpack_entry(e).0 <= addr).checked_sub(1)?;
        let sym = self.get(index)?;
        let offset = addr - sym.addr;
        if sym.size != 0 && offset >= u64::from(sym.size) {
            return None;
        }
        Some((sym.name, offset))
    }

    fn name_at(&self, name_off: u32) -> Option<&'a str> {
        let start = usize::try_from(name_off).ok()?;
        let len_end = start.checked_add(NAME_LEN_SIZE)?;
        let len = self.strings.get(start..len_end)?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let name = self.strings.get(len_end..len_end.checked_add(len)?)?;
        core::str::from_utf8(name).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(u64, u32, &'static str)> {
        vec![
            (0xffff_ffff_8000_2000, 0x40, "kmain"),
            (0xffff_ffff_8000_1000, 0x100, "_start"),
            (0xffff_ffff_8000_3000, 0, "sized_unknown"),
            (0xffff_ffff_8000_2040, 0x10, "tiny"),
            (0xffff_ffff_8000_2040, 0x20, "tiny_alias"),
            (0xffff_ffff_8000_4000, 1, "ünïcode::fn"),
            (0xffff_ffff_8000_5000, 8, ""),
        ]
    }

    fn encoded(symbols: &[(u64, u32, &str)]) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let n = encode(symbols, &mut buf).expect("encode");
        assert_eq!(Ok(n), encoded_len(symbols));
        buf
    }

    #[test]
    fn round_trip() {
        let syms = sample();
        let buf = encoded(&syms);
        assert_eq!(&buf[..8], b"KSYMTAB1");
        let table = SymbolTable::parse(&buf).expect("parse");
        assert_eq!(table.len(), syms.len());
        let mut sorted = syms.clone();
        sorted.sort_by_key(|s| s.0); // stable: aliases keep input order
        let got: Vec<_> = table.iter().map(|s| (s.addr, s.size, s.name)).collect();
        assert_eq!(got, sorted);
        assert_eq!(table.get(syms.len()), None);
    }

    #[test]
    fn exact_layout() {
        let mut buf = [0xaau8; 64];
        let n = encode(&[(0x1122_3344_5566_7788, 0x10, "ab")], &mut buf).expect("encode");
        assert_eq!(n, 16 + 16 + 2 + 2);
        let want: [u8; 36] = [
            b'K', b'S', b'Y', b'M', b'T', b'A', b'B', b'1', // magic
            1, 0, 0, 0, // count
            32, 0, 0, 0, // strtab
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // addr
            0x10, 0, 0, 0, // size
            0, 0, 0, 0, // name_off
            2, 0, b'a', b'b', // name
        ];
        assert_eq!(buf[..n], want);
        assert!(buf[n..].iter().all(|&b| b == 0xaa), "tail untouched");
    }

    #[test]
    fn lookup_positions() {
        let buf = encoded(&sample());
        let t = SymbolTable::parse(&buf).expect("parse");
        let base = 0xffff_ffff_8000_0000u64;
        assert_eq!(t.lookup(base + 0x1000), Some(("_start", 0)));
        assert_eq!(t.lookup(base + 0x1080), Some(("_start", 0x80)));
        assert_eq!(t.lookup(base + 0x10ff), Some(("_start", 0xff)));
        assert_eq!(t.lookup(base + 0x1100), None, "one past the end");
        assert_eq!(t.lookup(base + 0xfff), None, "before the first symbol");
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup(base + 0x203f), Some(("kmain", 0x3f)));
        // Equal starts: the last one (in input order) wins, with its own size.
        assert_eq!(t.lookup(base + 0x2040), Some(("tiny_alias", 0)));
        assert_eq!(t.lookup(base + 0x205f), Some(("tiny_alias", 0x1f)));
        assert_eq!(t.lookup(base + 0x2060), None);
        // Size 0: everything up to the next symbol.
        assert_eq!(t.lookup(base + 0x3fff), Some(("sized_unknown", 0xfff)));
        assert_eq!(t.lookup(base + 0x4000), Some(("ünïcode::fn", 0)));
        assert_eq!(t.lookup(base + 0x4001), None);
        assert_eq!(t.lookup(base + 0x5007), Some(("", 7)));
        assert_eq!(t.lookup(u64::MAX), None);
    }

    #[test]
    fn empty_and_missing_tables() {
        let mut buf = [0u8; 64];
        assert_eq!(encode(&[], &mut buf), Ok(16));
        let t = SymbolTable::parse(&buf).expect("empty table");
        assert!(t.is_empty());
        assert_eq!(t.lookup(0x1234), None);
        assert!(SymbolTable::parse(&[0u8; 4096]).is_none(), "zeroed section");
        assert!(SymbolTable::parse(&[]).is_none());
        assert!(SymbolTable::parse(b"KSYMTAB1").is_none());
    }

    #[test]
    fn encode_errors() {
        let syms = sample();
        let needed = encoded_len(&syms).expect("len");
        let mut small = vec![0u8; needed - 1];
        assert_eq!(encode(&syms, &mut small), Err(EncodeError::BufferTooSmall { needed }));
        assert!(small.iter().all(|&b| b == 0), "nothing written on error");
        let long = "x".repeat(70_000);
        let syms = [(1, 1, "ok"), (2, 1, long.as_str())];
        assert_eq!(encoded_len(&syms), Err(EncodeError::NameTooLong { index: 1 }));
        let max = "y".repeat(usize::from(u16::MAX));
        let syms = [(1, 1, max.as_str())];
        let mut buf = vec![0u8; 70_000];
        let n = encode(&syms, &mut buf).expect("max name");
        let t = SymbolTable::parse(&buf[..n]).expect("parse");
        assert_eq!(t.lookup(1), Some((max.as_str(), 0)));
    }

    #[test]
    fn malformed_tables_are_rejected() {
        let buf = encoded(&sample());
        let n = encoded_len(&sample()).expect("len");
        // Every truncation short of the full table is rejected.
        for len in 0..n {
            assert!(SymbolTable::parse(&buf[..len]).is_none(), "truncated to {len}");
        }
        assert!(SymbolTable::parse(&buf[..n]).is_some());

        let patched = |off: usize, bytes: &[u8]| {
            let mut b = buf.clone();
            b[off..off + bytes.len()].copy_from_slice(bytes);
            b
        };
        // Count too large for the buffer.
        assert!(SymbolTable::parse(&patched(8, &u32::MAX.to_le_bytes())).is_none());
        // String table overlapping the entries.
        assert!(SymbolTable::parse(&patched(12, &17u32.to_le_bytes())).is_none());
        // String table past the end.
        assert!(SymbolTable::parse(&patched(12, &u32::MAX.to_le_bytes())).is_none());
        // A name offset past the end.
        assert!(SymbolTable::parse(&patched(16 + 12, &u32::MAX.to_le_bytes())).is_none());
        // Entries out of order.
        assert!(SymbolTable::parse(&patched(16, &u64::MAX.to_le_bytes())).is_none());
        // Invalid UTF-8 in a name: the first name's first byte.
        let strtab = 16 + 16 * sample().len();
        let first = SymbolTable::parse(&buf).and_then(|t| t.get(0)).expect("first");
        assert_eq!(first.name, "_start");
        let name_off = u32::from_le_bytes(buf[28..32].try_into().expect("4 bytes")) as usize;
        assert!(SymbolTable::parse(&patched(strtab + name_off + 2, &[0xff])).is_none());
        // A name length past the end.
        assert!(SymbolTable::parse(&patched(strtab + name_off, &[0xff, 0xff])).is_none());
    }

    use crate::test_rng::Rng;

    #[test]
    fn fuzz_never_panics() {
        let good = encoded(&sample());
        let good_len = encoded_len(&sample()).expect("len");
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..20_000 {
            let mut bytes = if round % 2 == 0 {
                // Mutations of a valid table reach deep into the parser.
                let mut b = good[..good_len].to_vec();
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % b.len();
                    b[i] = rng.next() as u8;
                }
                b
            } else {
                // Random bytes behind a valid magic.
                let len = (rng.next() % 200) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len >= 8 {
                    b[..8].copy_from_slice(&MAGIC);
                }
                b
            };
            if round % 3 == 0 {
                let cut = (rng.next() as usize) % (bytes.len() + 1);
                bytes.truncate(cut);
            }
            if let Some(t) = SymbolTable::parse(&bytes) {
                for _ in 0..8 {
                    let _ = t.lookup(rng.next());
                }
                for s in t.iter() {
                    let _ = t.lookup(s.addr);
                    let _ = t.lookup(s.addr.wrapping_add(u64::from(s.size)));
                }
            }
        }
    }
}
