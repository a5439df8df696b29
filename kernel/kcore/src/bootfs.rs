//! The boot filesystem format, read side. The image (written by `mtool
//! bootfs`, documented in `tools/src/bootfs.rs`) is a 32-byte header, a
//! directory of (offset, size, name) entries, and page-aligned file data, so
//! each file is a page-aligned range of the image.
//!
//! [`Directory::parse`] checks the header and every entry against the image
//! size. Shared by the kernel (which unpacks the boot image) and userspace
//! (`mx::bootfs::Bootfs` reads a directory out of a VMO).

use mx_abi::Status;

/// Page size: file data starts on page boundaries.
const PAGE: u64 = 4096;

/// `"MXBOOTFS"`.
pub const MAGIC: [u8; 8] = *b"MXBOOTFS";
/// The version read.
pub const VERSION: u32 = 1;
/// Size of the header.
pub const HEADER_SIZE: usize = 32;

/// Why an image was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootfsError {
    /// Shorter than the header or the directory it declares.
    Short,
    /// Wrong magic or version.
    BadMagic,
    /// An entry is malformed (name, alignment, bounds).
    BadEntry(usize),
}

impl From<BootfsError> for Status {
    fn from(_: BootfsError) -> Status {
        Status::IoDataIntegrity
    }
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

/// One file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its name, e.g. `bin/init`.
    pub name: &'a str,
    /// Offset of its data in the image (page-aligned).
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// The header fields: (count, dir_size, image_size).
fn header(bytes: &[u8]) -> Result<(usize, usize, u64), BootfsError> {
    if bytes.len() < HEADER_SIZE {
        return Err(BootfsError::Short);
    }
    if bytes[..8] != MAGIC || u32_at(bytes, 8) != Some(VERSION) {
        return Err(BootfsError::BadMagic);
    }
    let count = u32_at(bytes, 12).ok_or(BootfsError::Short)? as usize;
    let dir_size = u32_at(bytes, 16).ok_or(BootfsError::Short)? as usize;
    let image_size = u64_at(bytes, 24).ok_or(BootfsError::Short)?;
    Ok((count, dir_size, image_size))
}

/// How many bytes from the start of an image hold its header and directory,
/// given at least its first [`HEADER_SIZE`] bytes.
pub fn directory_len(first: &[u8]) -> Result<usize, BootfsError> {
    let (_, dir_size, _) = header(first)?;
    HEADER_SIZE.checked_add(dir_size).ok_or(BootfsError::Short)
}

/// A checked directory, borrowing the image's first bytes. The default is an
/// empty directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Directory<'a> {
    dir: &'a [u8],
    count: usize,
    image_size: u64,
}

impl<'a> Directory<'a> {
    /// Parses the header and directory at the start of `bytes` (at least
    /// [`directory_len`] bytes; the file data need not follow).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BootfsError> {
        let (count, dir_size, image_size) = header(bytes)?;
        let dir = bytes.get(HEADER_SIZE..HEADER_SIZE.checked_add(dir_size).ok_or(BootfsError::Short)?);
        let dir = Directory { dir: dir.ok_or(BootfsError::Short)?, count, image_size };
        let data_start = (HEADER_SIZE as u64 + dir_size as u64).next_multiple_of(PAGE);
        if image_size % PAGE != 0 || image_size < data_start {
            return Err(BootfsError::BadEntry(0));
        }
        let mut at = 0;
        for i in 0..count {
            let (entry, next) = dir.entry_at(at).ok_or(BootfsError::BadEntry(i))?;
            let end = entry.offset.checked_add(entry.size).ok_or(BootfsError::BadEntry(i))?;
            if entry.offset % PAGE != 0 || entry.offset < data_start || end > image_size {
                return Err(BootfsError::BadEntry(i));
            }
            at = next;
        }
        if at != dir_size {
            return Err(BootfsError::BadEntry(count));
        }
        Ok(dir)
    }

    /// The entry at directory offset `at`, and where the next one starts.
    fn entry_at(&self, at: usize) -> Option<(Entry<'a>, usize)> {
        let offset = u64_at(self.dir, at)?;
        let size = u64_at(self.dir, at + 8)?;
        let name_len = u32_at(self.dir, at + 16)? as usize;
        if name_len == 0 || name_len > 255 || u32_at(self.dir, at + 20)? != 0 {
            return None;
        }
        let name = self.dir.get(at + 24..at + 24 + name_len)?;
        let next = at + 24 + (name_len + 1).next_multiple_of(8);
        if self.dir.get(at + 24 + name_len..next)?.iter().any(|&b| b != 0) {
            return None;
        }
        Some((Entry { name: core::str::from_utf8(name).ok()?, offset, size }, next))
    }

    /// The entries, in directory order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        let mut at = 0;
        (0..self.count).map_while(move |_| {
            let (e, next) = self.entry_at(at)?;
            at = next;
            Some(e)
        })
    }

    /// The entry named `name` (a leading `/` is ignored).
    pub fn find(&self, name: &str) -> Option<Entry<'a>> {
        let name = name.trim_start_matches('/');
        self.entries().find(|e| e.name == name)
    }

    /// Size of the whole image.
    pub fn image_size(&self) -> u64 {
        self.image_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector `tools/src/bootfs.rs` writes (shared with its test).
    const VECTOR: &[u8] = include_bytes!("../../../userland/lib/mx/testdata/bootfs-v1.img");

    #[test]
    fn reads_the_shared_vector() {
        let dir = Directory::parse(VECTOR).unwrap();
        let names: Vec<&str> = dir.entries().map(|e| e.name).collect();
        assert_eq!(names, ["bin/hello", "etc/init.rc", "empty"]);
        let rc = dir.find("/etc/init.rc").unwrap();
        assert_eq!(rc.offset, 2 * PAGE);
        let data = &VECTOR[rc.offset as usize..(rc.offset + rc.size) as usize];
        assert_eq!(data, b"# programs, one per line\nbin/hello\n");
        assert_eq!(dir.find("empty").map(|e| e.size), Some(0));
        assert!(dir.find("bin").is_none());
        assert_eq!(dir.image_size(), VECTOR.len() as u64);
        assert_eq!(directory_len(VECTOR).unwrap(), HEADER_SIZE + 40 + 40 + 32);
    }

    #[test]
    fn rejects_damaged_images() {
        assert_eq!(Directory::parse(&VECTOR[..16]).err(), Some(BootfsError::Short));
        let mut bad = VECTOR.to_vec();
        bad[0] = b'X';
        assert_eq!(Directory::parse(&bad).err(), Some(BootfsError::BadMagic));
        // An entry pointing past the end of the image.
        let mut bad = VECTOR.to_vec();
        bad[32 + 8..32 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Directory::parse(&bad).err(), Some(BootfsError::BadEntry(0)));
        // A misaligned offset.
        let mut bad = VECTOR.to_vec();
        bad[32] = 1;
        assert_eq!(Directory::parse(&bad).err(), Some(BootfsError::BadEntry(0)));
        // A directory cut short.
        assert_eq!(Directory::parse(&VECTOR[..60]).err(), Some(BootfsError::Short));
        // Every truncation and every single-byte change of the directory is handled without panicking.
        let len = directory_len(VECTOR).unwrap();
        for cut in 0..len {
            let _ = Directory::parse(&VECTOR[..cut]).map(|d| d.entries().count());
        }
        for i in 0..len {
            let mut b = VECTOR[..len].to_vec();
            b[i] ^= 0xff;
            let _ = Directory::parse(&b).map(|d| d.entries().count());
        }
    }
}
