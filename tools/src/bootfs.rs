//! The boot filesystem writer: `mtool bootfs --out build/bootfs.img FILE=NAME...`.
//!
//! A bootfs image is a read-only archive the kernel hands to init as one VMO
//! (`PA_VMO_BOOTFS`). Every file starts on a page boundary, so a file is a
//! page-aligned range of that VMO that can be mapped or read in place. The
//! reader is `mx::bootfs` (userland/lib/mx); both are tested against the same
//! vector, `userland/lib/mx/testdata/bootfs-v1.img`.
//!
//! Format, version 1, all integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `"MXBOOTFS"` |
//! | 8 | 4 | version, 1 |
//! | 12 | 4 | number of entries |
//! | 16 | 4 | size of the directory in bytes (it starts at offset 32) |
//! | 20 | 4 | reserved, 0 |
//! | 24 | 8 | size of the image (a multiple of 4096) |
//! | 32 | | the directory: one entry per file |
//!
//! Entry: `u64` offset of the data (a multiple of 4096, at or after the end of
//! the directory rounded up to a page), `u64` size, `u32` name length (1 to
//! 255), `u32` reserved 0, then the name and 1 to 8 NUL bytes so the next entry
//! starts on a multiple of 8. Names are relative paths (`bin/init`): no leading
//! `/`, no empty, `.` or `..` components, unique. Data follows the directory,
//! files in directory order, each zero-padded to a page; an empty file has size
//! 0 and takes no page.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// `"MXBOOTFS"`.
pub const MAGIC: [u8; 8] = *b"MXBOOTFS";
/// The format version written.
pub const VERSION: u32 = 1;
/// Size of the header.
pub const HEADER_SIZE: usize = 32;
/// Alignment of file data.
pub const PAGE: usize = 4096;
/// Longest name.
pub const MAX_NAME: usize = 255;

/// Size of a directory entry with a name of `name_len` bytes.
pub fn entry_size(name_len: usize) -> usize {
    24 + (name_len + 1).next_multiple_of(8)
}

/// Checks a bootfs name.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        bail!("bootfs name {name:?} must be 1 to {MAX_NAME} bytes");
    }
    if name.contains('\0') || name.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        bail!("bootfs name {name:?} must be a relative path without empty, `.` or `..` components");
    }
    Ok(())
}

/// Builds an image from `(name, contents)` pairs, in the given order.
pub fn build(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut names = BTreeSet::new();
    for (name, _) in files {
        check_name(name)?;
        if !names.insert(name.as_str()) {
            bail!("bootfs name {name:?} appears twice");
        }
    }
    let dir_size: usize = files.iter().map(|(n, _)| entry_size(n.len())).sum();
    let mut data_at = (HEADER_SIZE + dir_size).next_multiple_of(PAGE);
    let mut image = vec![0u8; data_at];
    let mut dir = Vec::with_capacity(dir_size);
    for (name, contents) in files {
        dir.extend_from_slice(&(data_at as u64).to_le_bytes());
        dir.extend_from_slice(&(contents.len() as u64).to_le_bytes());
        dir.extend_from_slice(&(name.len() as u32).to_le_bytes());
        dir.extend_from_slice(&0u32.to_le_bytes());
        dir.extend_from_slice(name.as_bytes());
        dir.resize(dir.len() + (name.len() + 1).next_multiple_of(8) - name.len(), 0);
        image.extend_from_slice(contents);
        data_at += contents.len().next_multiple_of(PAGE);
        image.resize(data_at, 0);
    }
    let count = u32::try_from(files.len()).context("too many files")?;
    let dir_size32 = u32::try_from(dir_size).context("directory too large")?;
    image[0..8].copy_from_slice(&MAGIC);
    image[8..12].copy_from_slice(&VERSION.to_le_bytes());
    image[12..16].copy_from_slice(&count.to_le_bytes());
    image[16..20].copy_from_slice(&dir_size32.to_le_bytes());
    let size = image.len() as u64;
    image[24..32].copy_from_slice(&size.to_le_bytes());
    image[HEADER_SIZE..HEADER_SIZE + dir_size].copy_from_slice(&dir);
    Ok(image)
}

/// Parses `FILE=NAME` (host path = name in the image).
pub fn parse_spec(spec: &str) -> Result<(String, String)> {
    let Some((file, name)) = spec.rsplit_once('=') else {
        bail!("{spec:?}: expected FILE=NAME (host file = name in the image, e.g. build/init=bin/init)");
    };
    check_name(name)?;
    Ok((file.to_string(), name.to_string()))
}

/// Reads each `FILE=NAME` and writes the image to `out`; returns its size.
pub fn write_image(specs: &[String], out: &Path) -> Result<usize> {
    let mut files = Vec::new();
    for spec in specs {
        let (file, name) = parse_spec(spec)?;
        let contents = std::fs::read(&file).with_context(|| format!("reading {file} for bootfs name {name}"))?;
        files.push((name, contents));
    }
    let image = build(&files)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, &image).with_context(|| format!("writing {}", out.display()))?;
    Ok(image.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of the shared test vector.
    pub fn vector_files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("bin/hello".into(), b"\x7fELF not really\n".to_vec()),
            ("etc/init.rc".into(), b"# programs, one per line\nbin/hello\n".to_vec()),
            ("empty".into(), Vec::new()),
        ]
    }

    const VECTOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../userland/lib/mx/testdata/bootfs-v1.img");

    #[test]
    fn writes_the_shared_vector() {
        let image = build(&vector_files()).unwrap();
        if std::env::var_os("MAGNETAR_BLESS").is_some() {
            std::fs::write(VECTOR, &image).unwrap();
        }
        let vector =
            std::fs::read(VECTOR).expect("the shared vector (MAGNETAR_BLESS=1 cargo test -p tools bootfs writes it)");
        assert!(image == vector, "the writer no longer produces {VECTOR}");
    }

    #[test]
    fn layout_is_page_aligned() {
        let image = build(&vector_files()).unwrap();
        assert_eq!(image.len(), 3 * PAGE, "header page + two data pages; the empty file takes none");
        assert_eq!(&image[..8], b"MXBOOTFS");
        let off = u64::from_le_bytes(image[32..40].try_into().unwrap()) as usize;
        assert_eq!(off, PAGE);
        assert_eq!(&image[off..off + 5], b"\x7fELF ");
        assert_eq!(entry_size(9), 24 + 16);
        assert_eq!(entry_size(7), 24 + 8);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "/bin/x", "a//b", "a/./b", "../x", "x/", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(256)).is_err());
        let dup = vec![("a".to_string(), vec![]), ("a".to_string(), vec![1])];
        assert!(build(&dup).is_err());
        assert!(parse_spec("build/init").is_err());
        assert_eq!(parse_spec("/tmp/a=b=c").unwrap(), ("/tmp/a=b".into(), "c".into()));
    }
}
