//! Fill the kernel's backtrace symbol table.
//!
//! The kernel ELF carries a fixed-size, zero-filled section named `.ksyms`. After linking we
//! collect the ELF's function symbols, demangle them (without the hash) and write them, encoded
//! with [`kcore::ksyms::encode`], over that section's bytes in the file. The section is loaded
//! with the kernel, so the panic path can name the functions in a backtrace.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// Name of the section the table is written into.
pub const SECTION: &str = ".ksyms";

/// What [`patch_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Number of function symbols written.
    pub symbols: usize,
    /// Bytes of the section used by the table.
    pub used: usize,
    /// Size of the section.
    pub capacity: usize,
}

/// Read the kernel at `input`, fill its `.ksyms` section and write the result to `output`.
pub fn patch_file(input: &Path, output: &Path) -> Result<Stats> {
    let mut elf = fs::read(input).with_context(|| format!("reading kernel {}", input.display()))?;
    let stats = patch(&mut elf).with_context(|| format!("filling {SECTION} of {}", input.display()))?;
    if let Some(dir) = output.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Write then rename, so a QEMU reading the previous image never sees a half-written one.
    let tmp = output.with_extension("tmp");
    fs::write(&tmp, &elf).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, output).with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
    Ok(stats)
}

/// Symbols that, when present, bound the table inside the section (the linker script may pad
/// the section's start for alignment; the kernel reads between these).
pub const START_SYMBOL: &str = "__ksyms_start";
pub const END_SYMBOL: &str = "__ksyms_end";

/// Fill the `.ksyms` section of the ELF image in `elf`, in place.
pub fn patch(elf: &mut [u8]) -> Result<Stats> {
    let (symbols, offset, size) = {
        let file = object::File::parse(&*elf).context("not a valid object file")?;
        if file.format() != object::BinaryFormat::Elf || !file.is_64() {
            bail!("not an ELF64 file");
        }
        let section = file
            .section_by_name(SECTION)
            .ok_or_else(|| anyhow!("the ELF has no {SECTION} section (the kernel's linker script must keep it)"))?;
        let (offset, size) = section
            .file_range()
            .ok_or_else(|| anyhow!("section {SECTION} has no bytes in the file (it must be PROGBITS, not NOBITS)"))?;
        let (skip, size) = table_window(&file, section.address(), size)?;
        (function_symbols(&file)?, offset + skip, size)
    };

    let start = usize::try_from(offset).context("section offset")?;
    let len = usize::try_from(size).context("section size")?;
    let bytes = elf
        .get_mut(start..start.saturating_add(len))
        .ok_or_else(|| anyhow!("section {SECTION} lies outside the file"))?;

    let entries: Vec<(u64, u32, &str)> = symbols.iter().map(|(a, s, n)| (*a, *s, n.as_str())).collect();
    let mut table = vec![0u8; len];
    let used = kcore::ksyms::encode(&entries, &mut table).map_err(|e| {
        anyhow!(
            "{} function symbols do not fit in {SECTION} ({len} bytes): {e}; enlarge the section in the kernel",
            entries.len()
        )
    })?;
    bytes.copy_from_slice(&table);
    Ok(Stats { symbols: entries.len(), used, capacity: len })
}

/// The part of the section the table occupies, as (offset into the section, length): between
/// [`START_SYMBOL`] and [`END_SYMBOL`] when the ELF defines them, else the whole section.
fn table_window(file: &object::File<'_>, sec_addr: u64, sec_size: u64) -> Result<(u64, u64)> {
    let find = |name: &str| file.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address());
    match (find(START_SYMBOL), find(END_SYMBOL)) {
        (Some(start), Some(end)) => {
            if start < sec_addr || end < start || end > sec_addr + sec_size {
                bail!(
                    "{START_SYMBOL}..{END_SYMBOL} ({start:#x}..{end:#x}) is not inside {SECTION} \
                     ({sec_addr:#x}, {sec_size:#x} bytes)"
                );
            }
            Ok((start - sec_addr, end - start))
        }
        _ => Ok((0, sec_size)),
    }
}

/// The ELF's defined function symbols as `(address, size, demangled name)`, sorted by address,
/// one per address.
pub fn function_symbols(file: &object::File<'_>) -> Result<Vec<(u64, u32, String)>> {
    let mut out = Vec::new();
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text || !sym.is_definition() || sym.address() == 0 {
            continue;
        }
        let name = sym.name().with_context(|| format!("symbol name at {:#x}", sym.address()))?;
        if name.is_empty() {
            continue;
        }
        let size = u32::try_from(sym.size()).with_context(|| format!("function {name} is larger than 4 GiB"))?;
        out.push((sym.address(), size, demangle(name)));
    }
    // Aliases share an address: keep the one with a size, then the shortest name.
    out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.len().cmp(&b.2.len())));
    out.dedup_by_key(|entry| entry.0);
    Ok(out)
}

/// Demangle a Rust symbol without its hash suffix; other names are returned unchanged.
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::write::{Object as WObject, StandardSection, Symbol, SymbolSection};
    use object::{Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolScope};

    /// A relocatable ELF64 with two functions and a zeroed `.ksyms` section of `ksyms_len` bytes.
    fn test_elf(ksyms_len: usize) -> Vec<u8> {
        test_elf_with_window(ksyms_len, None)
    }

    /// As [`test_elf`], with `__ksyms_start`/`__ksyms_end` at the given section offsets.
    fn test_elf_with_window(ksyms_len: usize, window: Option<(u64, u64)>) -> Vec<u8> {
        let mut obj = WObject::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = obj.section_id(StandardSection::Text);
        obj.append_section_data(text, &[0xc3; 64], 16);
        for (name, value, size) in
            [("_ZN6kernel4main17h0123456789abcdefE", 0x10, 0x10), ("plain_c_function", 0x20, 0x8)]
        {
            obj.add_symbol(Symbol {
                name: name.as_bytes().to_vec(),
                value,
                size,
                kind: SymbolKind::Text,
                scope: SymbolScope::Linkage,
                weak: false,
                section: SymbolSection::Section(text),
                flags: SymbolFlags::None,
            });
        }
        let ksyms = obj.add_section(Vec::new(), SECTION.as_bytes().to_vec(), SectionKind::Data);
        obj.append_section_data(ksyms, &vec![0; ksyms_len], 8);
        for (name, value) in window.map_or(vec![], |(s, e)| vec![(START_SYMBOL, s), (END_SYMBOL, e)]) {
            obj.add_symbol(Symbol {
                name: name.as_bytes().to_vec(),
                value,
                size: 0,
                kind: SymbolKind::Data,
                scope: SymbolScope::Linkage,
                weak: false,
                section: SymbolSection::Section(ksyms),
                flags: SymbolFlags::None,
            });
        }
        obj.write().expect("writing test ELF")
    }

    #[test]
    fn demangles_without_hash() {
        assert_eq!(demangle("_ZN6kernel4main17h0123456789abcdefE"), "kernel::main");
        assert_eq!(demangle("memcpy"), "memcpy");
    }

    #[test]
    fn fills_section_with_function_symbols() {
        let mut elf = test_elf(4096);
        let stats = patch(&mut elf).expect("patch");
        assert_eq!(stats.symbols, 2);
        assert_eq!(stats.capacity, 4096);
        assert!(stats.used > 0 && stats.used <= 4096);

        let file = object::File::parse(&*elf).expect("parse");
        let section = file.section_by_name(SECTION).expect("section");
        let table = kcore::ksyms::SymbolTable::parse(section.data().expect("data"))
            .expect("the kernel's parser accepts the table");
        assert_eq!(table.len(), 2);
        assert_eq!(table.lookup(0x14), Some(("kernel::main", 4)));
        assert_eq!(table.lookup(0x20), Some(("plain_c_function", 0)));
        assert_eq!(table.lookup(0x28), None);
    }

    #[test]
    fn writes_between_start_and_end_symbols() {
        let mut elf = test_elf_with_window(4100, Some((4, 4100)));
        let stats = patch(&mut elf).expect("patch");
        assert_eq!(stats.capacity, 4096);

        let file = object::File::parse(&*elf).expect("parse");
        let data = file.section_by_name(SECTION).expect("section").data().expect("data");
        assert_eq!(&data[..4], &[0; 4], "padding before the table stays zero");
        let table = kcore::ksyms::SymbolTable::parse(&data[4..]).expect("table at the start symbol");
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn window_outside_section_is_an_error() {
        let mut elf = test_elf_with_window(64, Some((0, 128)));
        let err = patch(&mut elf).expect_err("bad window");
        assert!(format!("{err:#}").contains("not inside"), "{err:#}");
    }

    #[test]
    fn too_small_section_fails_loudly() {
        let mut elf = test_elf(4);
        let err = patch(&mut elf).expect_err("must not fit");
        assert!(format!("{err:#}").contains("do not fit"), "{err:#}");
    }

    #[test]
    fn missing_section_is_an_error() {
        let mut obj = WObject::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = obj.section_id(StandardSection::Text);
        obj.append_section_data(text, &[0xc3], 1);
        let mut elf = obj.write().expect("write");
        let err = patch(&mut elf).expect_err("no section");
        assert!(format!("{err:#}").contains(".ksyms"), "{err:#}");
    }
}
