//! Finding the `\_S5_` (soft-off) sleep type in AML, without an interpreter.
//!
//! ACPI power-off writes `SLP_TYP | SLP_EN` to the PM1 control registers,
//! where `SLP_TYP` comes from the `_S5_` object in the DSDT. Firmware almost
//! always declares it as a plain package of constants:
//!
//! ```text
//! 08 [5C] 5F 53 35 5F   12 <PkgLength> <NumElements> <element> <element> ...
//! NameOp ['\'] "_S5_"   PackageOp
//! ```
//!
//! so a bounded byte-level match is enough. Each element is a small integer
//! constant: `ZeroOp`, `OneOp`, `OnesOp`, or a `BytePrefix`/`WordPrefix`/
//! `DWordPrefix`/`QWordPrefix` followed by the value. Anything else (a
//! method, a computed value) is reported as not found.
//!
//! ```
//! use kcore::acpi_s5::{find_s5, SleepTypes};
//!
//! let aml = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x02, 0x0a, 0x05, 0x0a, 0x05];
//! assert_eq!(find_s5(&aml), Some(SleepTypes { a: 5, b: 5 }));
//! ```

const NAME_OP: u8 = 0x08;
const ROOT_CHAR: u8 = b'\\';
const PARENT_PREFIX: u8 = b'^';
const PACKAGE_OP: u8 = 0x12;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ONES_OP: u8 = 0xff;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const QWORD_PREFIX: u8 = 0x0e;

/// The `SLP_TYPa` and `SLP_TYPb` values for the S5 state (3-bit fields of
/// PM1a/PM1b control; the caller masks them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SleepTypes {
    pub a: u8,
    pub b: u8,
}

/// Finds the first `_S5_` package of constants in `aml` (a DSDT or SSDT body).
pub fn find_s5(aml: &[u8]) -> Option<SleepTypes> {
    aml.windows(4).enumerate().filter(|(_, window)| *window == b"_S5_").find_map(|(at, _)| parse_at(aml, at))
}

/// Tries to read a `Name(_S5_, Package(){...})` whose name segment starts at `name`.
fn parse_at(aml: &[u8], name: usize) -> Option<SleepTypes> {
    let is_name_op = |i: Option<usize>| i.and_then(|i| aml.get(i)) == Some(&NAME_OP);
    let before = name.checked_sub(1);
    let declared = is_name_op(before)
        || (matches!(before.and_then(|i| aml.get(i)), Some(&ROOT_CHAR) | Some(&PARENT_PREFIX))
            && is_name_op(name.checked_sub(2)));
    if !declared || aml.get(name + 4) != Some(&PACKAGE_OP) {
        return None;
    }
    let length_at = name + 5;
    let (package_len, length_bytes) = pkg_length(aml.get(length_at..)?)?;
    // The package length counts from its own first byte; never read past it.
    let end = length_at.checked_add(package_len)?.min(aml.len());
    let body = aml.get(length_at + length_bytes..end)?;
    let (&count, mut elements) = body.split_first()?;
    let first = integer(&mut elements)?;
    if count >= 2 {
        let second = integer(&mut elements)?;
        Some(SleepTypes { a: first as u8, b: second as u8 })
    } else if count == 1 {
        // Some firmware packs both values into one integer: a in the low byte, b in the next.
        Some(SleepTypes { a: first as u8, b: (first >> 8) as u8 })
    } else {
        None
    }
}

/// Decodes a PkgLength: returns (length, bytes the encoding used).
fn pkg_length(bytes: &[u8]) -> Option<(usize, usize)> {
    let lead = *bytes.first()?;
    let follow = usize::from(lead >> 6);
    if follow == 0 {
        return Some((usize::from(lead & 0x3f), 1));
    }
    let mut length = usize::from(lead & 0x0f);
    for (i, &byte) in bytes.get(1..=follow)?.iter().enumerate() {
        length |= usize::from(byte) << (4 + 8 * i);
    }
    Some((length, 1 + follow))
}

/// Reads one integer constant from the front of `bytes` and advances past it.
fn integer(bytes: &mut &[u8]) -> Option<u64> {
    let (&op, rest) = bytes.split_first()?;
    let width = match op {
        ZERO_OP => 0,
        ONE_OP => {
            *bytes = rest;
            return Some(1);
        }
        ONES_OP => {
            *bytes = rest;
            return Some(u64::MAX);
        }
        BYTE_PREFIX => 1,
        WORD_PREFIX => 2,
        DWORD_PREFIX => 4,
        QWORD_PREFIX => 8,
        _ => return None,
    };
    let value_bytes = rest.get(..width)?;
    let value = value_bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    *bytes = &rest[width..];
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(prefix: &[u8], body: &[u8]) -> Vec<u8> {
        let mut aml = prefix.to_vec();
        aml.extend_from_slice(b"_S5_");
        aml.push(PACKAGE_OP);
        aml.push((body.len() + 1) as u8);
        aml.extend_from_slice(body);
        aml
    }

    #[test]
    fn byte_prefixed_values() {
        let aml = package(&[NAME_OP], &[2, BYTE_PREFIX, 5, BYTE_PREFIX, 6]);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 5, b: 6 }));
    }

    #[test]
    fn qemu_style_zero_constants() {
        // QEMU: Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
        let aml = package(&[NAME_OP], &[4, ZERO_OP, ZERO_OP, ZERO_OP, ZERO_OP]);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 0, b: 0 }));
    }

    #[test]
    fn one_and_ones_constants() {
        let aml = package(&[NAME_OP], &[2, ONE_OP, ONES_OP]);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 1, b: 0xff }));
    }

    #[test]
    fn rooted_name() {
        let aml = package(&[NAME_OP, ROOT_CHAR], &[2, BYTE_PREFIX, 7, ZERO_OP]);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 7, b: 0 }));
    }

    #[test]
    fn wider_prefixes() {
        let aml = package(&[NAME_OP], &[2, WORD_PREFIX, 3, 0, DWORD_PREFIX, 4, 0, 0, 0]);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 3, b: 4 }));
    }

    #[test]
    fn single_packed_element() {
        let aml = package(&[NAME_OP], &[1, WORD_PREFIX, 0x05, 0x07]);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 5, b: 7 }));
    }

    #[test]
    fn found_amid_other_aml() {
        let mut aml = vec![0x10, 0x42, 0x05, b'_', b'S', b'B', b'_', 0x5b, 0x80];
        // A reference to _S5_ that is not its declaration comes first.
        aml.extend_from_slice(&[0x70, b'_', b'S', b'5', b'_', 0x60]);
        aml.extend(package(&[NAME_OP], &[2, BYTE_PREFIX, 5, BYTE_PREFIX, 5]));
        aml.extend_from_slice(&[0x14, 0x08]);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 5, b: 5 }));
    }

    #[test]
    fn multi_byte_pkg_length() {
        let mut aml = vec![NAME_OP];
        aml.extend_from_slice(b"_S5_");
        aml.push(PACKAGE_OP);
        // Two-byte PkgLength (0x40 | low nibble, then bits 4..12): 7 = 2 length bytes + count + 4.
        aml.extend_from_slice(&[0x47, 0x00, 2, BYTE_PREFIX, 5, BYTE_PREFIX, 5]);
        assert_eq!(find_s5(&aml), Some(SleepTypes { a: 5, b: 5 }));
    }

    #[test]
    fn missing_or_malformed() {
        assert_eq!(find_s5(b""), None);
        assert_eq!(find_s5(b"_S5_"), None);
        // Not a NameOp declaration.
        assert_eq!(find_s5(&package(&[0x70], &[2, ZERO_OP, ZERO_OP])), None);
        // A method instead of a package.
        assert_eq!(find_s5(&[NAME_OP, b'_', b'S', b'5', b'_', 0x14, 0x03, 0x00]), None);
        // A non-constant element.
        assert_eq!(find_s5(&package(&[NAME_OP], &[2, 0x70, ZERO_OP])), None);
        // No elements.
        assert_eq!(find_s5(&package(&[NAME_OP], &[0])), None);
    }

    #[test]
    fn truncated_input_never_reads_past_the_end() {
        let full = package(&[NAME_OP], &[2, DWORD_PREFIX, 1, 2, 3, 4, BYTE_PREFIX, 5]);
        for cut in 0..full.len() {
            assert_eq!(find_s5(&full[..cut]), None, "cut at {cut}");
        }
        assert_eq!(find_s5(&full), Some(SleepTypes { a: 1, b: 5 }));
    }

    #[test]
    fn package_length_bounds_the_elements() {
        // The package claims 3 bytes (length byte, count, one ZeroOp) but says 2 elements.
        let mut aml = vec![NAME_OP];
        aml.extend_from_slice(b"_S5_");
        aml.extend_from_slice(&[PACKAGE_OP, 0x03, 2, ZERO_OP, BYTE_PREFIX, 5]);
        assert_eq!(find_s5(&aml), None);
    }
}
