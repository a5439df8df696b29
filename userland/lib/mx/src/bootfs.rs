//! The boot filesystem reader. The format and its checks ([`Directory`],
//! [`Entry`], [`directory_len`]) live in `kcore::bootfs`, shared with the
//! kernel, and are re-exported here; [`Bootfs`] reads a directory out of a
//! VMO and files out of it.

use alloc::vec::Vec;

use mx_abi::Status;

use crate::{Result, Vmo};

pub use kcore::bootfs::{directory_len, BootfsError, Directory, Entry, HEADER_SIZE, MAGIC, VERSION};

/// A bootfs image in a VMO: its directory, read once.
#[derive(Debug)]
pub struct Bootfs {
    vmo: Vmo,
    dir: Vec<u8>,
}

impl Bootfs {
    /// Reads and checks the directory of the image in `vmo`.
    pub fn open(vmo: Vmo) -> Result<Bootfs> {
        let mut first = [0u8; HEADER_SIZE];
        vmo.read_exact(&mut first, 0)?;
        let len = directory_len(&first)?;
        let mut dir = alloc::vec![0u8; len];
        vmo.read_exact(&mut dir, 0)?;
        Directory::parse(&dir)?;
        Ok(Bootfs { vmo, dir })
    }

    /// The directory.
    pub fn directory(&self) -> Directory<'_> {
        // `open` checked these same bytes.
        Directory::parse(&self.dir).unwrap_or_default()
    }

    /// The VMO holding the image.
    pub fn vmo(&self) -> &Vmo {
        &self.vmo
    }

    /// The file `name`, or `NOT_FOUND`.
    pub fn find(&self, name: &str) -> Result<Entry<'_>> {
        self.directory().find(name).ok_or(Status::NotFound)
    }

    /// Reads the whole file `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let e = self.find(name)?;
        let mut buf = alloc::vec![0u8; usize::try_from(e.size).map_err(|_| Status::NoMemory)?];
        self.vmo.read_exact(&mut buf, e.offset)?;
        Ok(buf)
    }
}
