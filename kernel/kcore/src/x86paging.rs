//! Guest virtual-to-physical translation through the guest's own page
//! tables, for fetching the instruction behind a guest MMIO exit.
//!
//! The walk reads guest-physical memory through a caller-supplied function
//! (the kernel reads the guest's memory object), so it is pure and tested on
//! the host. All four x86 paging modes are covered: none (CR0.PG clear),
//! 32-bit two-level (with 4 MiB pages under CR4.PSE), PAE three-level and
//! long-mode four-level (with 2 MiB and 1 GiB pages). Only presence is
//! checked: an instruction fetch for the kernel's own use needs no access
//! rights, and accessed/dirty bits are left alone.

/// The guest control registers the walk depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingRegs {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const EFER_LMA: u64 = 1 << 10;

const PRESENT: u64 = 1;
const LARGE: u64 = 1 << 7;
/// Physical-address bits of a PAE/long-mode entry (bits 12 to 51).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why a translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// An entry on the way was not present (the guest would page-fault).
    NotPresent,
    /// A table lies outside readable guest memory (at this guest-physical address).
    Unreadable(u64),
}

/// Translates the linear address `va` to a guest-physical address.
/// `read(gpa, size)` returns the little-endian `size`-byte (4 or 8) value at
/// `gpa`, or `None` if it is not guest RAM.
pub fn translate(
    regs: &PagingRegs,
    va: u64,
    read: &mut dyn FnMut(u64, usize) -> Option<u64>,
) -> Result<u64, WalkError> {
    if regs.cr0 & CR0_PG == 0 {
        return Ok(va & 0xffff_ffff);
    }
    let mut entry = |gpa: u64, size: usize| -> Result<u64, WalkError> {
        let e = read(gpa, size).ok_or(WalkError::Unreadable(gpa))?;
        if e & PRESENT == 0 {
            return Err(WalkError::NotPresent);
        }
        Ok(e)
    };
    if regs.efer & EFER_LMA != 0 {
        let pml4e = entry((regs.cr3 & ADDR_MASK) + ((va >> 39) & 0x1ff) * 8, 8)?;
        let pdpte = entry((pml4e & ADDR_MASK) + ((va >> 30) & 0x1ff) * 8, 8)?;
        if pdpte & LARGE != 0 {
            return Ok((pdpte & ADDR_MASK & !0x3fff_ffff) | (va & 0x3fff_ffff));
        }
        return walk_pd(&mut entry, pdpte & ADDR_MASK, va);
    }
    if regs.cr4 & CR4_PAE != 0 {
        let va = va & 0xffff_ffff;
        let pdpte = entry((regs.cr3 & 0xffff_ffe0) + ((va >> 30) & 3) * 8, 8)?;
        return walk_pd(&mut entry, pdpte & ADDR_MASK, va);
    }
    let va = va & 0xffff_ffff;
    let pde = entry((regs.cr3 & 0xffff_f000) + ((va >> 22) & 0x3ff) * 4, 4)?;
    if pde & LARGE != 0 && regs.cr4 & CR4_PSE != 0 {
        return Ok((pde & 0xffc0_0000) | (va & 0x3f_ffff));
    }
    let pte = entry((pde & 0xffff_f000) + ((va >> 12) & 0x3ff) * 4, 4)?;
    Ok((pte & 0xffff_f000) | (va & 0xfff))
}

/// The page-directory and page-table levels shared by PAE and long mode.
fn walk_pd(entry: &mut dyn FnMut(u64, usize) -> Result<u64, WalkError>, pd: u64, va: u64) -> Result<u64, WalkError> {
    let pde = entry(pd + ((va >> 21) & 0x1ff) * 8, 8)?;
    if pde & LARGE != 0 {
        return Ok((pde & ADDR_MASK & !0x1f_ffff) | (va & 0x1f_ffff));
    }
    let pte = entry((pde & ADDR_MASK) + ((va >> 12) & 0x1ff) * 8, 8)?;
    Ok((pte & ADDR_MASK) | (va & 0xfff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// Sparse guest memory of u64 words.
    struct Mem(BTreeMap<u64, u64>);

    impl Mem {
        fn set(&mut self, gpa: u64, v: u64) {
            self.0.insert(gpa, v);
        }
        fn read(&self, gpa: u64, size: usize) -> Option<u64> {
            if gpa >= 1 << 30 {
                return None;
            }
            let v = self.0.get(&gpa).copied().unwrap_or(0);
            Some(if size == 4 { v & 0xffff_ffff } else { v })
        }
    }

    fn regs(cr0: u64, cr3: u64, cr4: u64, efer: u64) -> PagingRegs {
        PagingRegs { cr0, cr3, cr4, efer }
    }

    #[test]
    fn long_mode_4k_2m_1g() {
        let mut m = Mem(BTreeMap::new());
        let r = regs(CR0_PG | 1, 0x1000, CR4_PAE, EFER_LMA);
        m.set(0x1000, 0x2003); // PML4[0] -> 0x2000
        m.set(0x2000, 0x3003); // PDPT[0] -> PD 0x3000
        m.set(0x2008, 0x4000_0083); // PDPT[1]: 1 GiB page at 1 GiB
        m.set(0x3000, 0x20_0083); // PD[0]: 2 MiB page at 2 MiB
        m.set(0x3008, 0x5003); // PD[1] -> PT 0x5000
        m.set(0x5000 + 3 * 8, 0x7_7003); // PT[3]: 0x77000
        let mut read = |g, s| m.read(g, s);
        assert_eq!(translate(&r, 0x1234, &mut read), Ok(0x20_1234));
        assert_eq!(translate(&r, 0x20_3456, &mut read), Ok(0x7_7456));
        assert_eq!(translate(&r, 0x4012_3456, &mut read), Ok(0x4012_3456));
        assert_eq!(translate(&r, 0x20_4000, &mut read), Err(WalkError::NotPresent));
        assert_eq!(translate(&r, 0x80_0000_0000, &mut read), Err(WalkError::NotPresent));
    }

    #[test]
    fn unreadable_tables_and_no_paging() {
        let mut m = Mem(BTreeMap::new());
        m.set(0x1000, 0x8000_0000_0003); // PML4[0] points outside memory
        let mut read = |g, s| m.read(g, s);
        let r = regs(CR0_PG | 1, 0x1000, CR4_PAE, EFER_LMA);
        assert_eq!(translate(&r, 0x10, &mut read), Err(WalkError::Unreadable(0x8000_0000_0000)));
        let r = regs(1, 0x1000, 0, 0);
        assert_eq!(translate(&r, 0x1_2345_6789, &mut read), Ok(0x2345_6789));
    }

    #[test]
    fn pae_and_legacy_32_bit() {
        let mut m = Mem(BTreeMap::new());
        // PAE: CR3 0x1020 (32-byte aligned PDPT), PDPT[1] -> PD 0x3000.
        m.set(0x1028, 0x3001);
        m.set(0x3000 + 2 * 8, 0x60_0083); // 2 MiB page for va 0x4040_0000
        let r = regs(CR0_PG | 1, 0x1020, CR4_PAE, 0);
        let mut read = |g, s| m.read(g, s);
        assert_eq!(translate(&r, 0x4041_0000, &mut read), Ok(0x61_0000));
        // Legacy: PDE[1] 4 MiB page with PSE; PDE[2] -> PT 0x9000.
        let mut m = Mem(BTreeMap::new());
        m.set(0x2004, 0x80_0083);
        m.set(0x2008, 0x9003);
        m.set(0x9000 + 5 * 4, 0xab_c003);
        let r = regs(CR0_PG | 1, 0x2000, CR4_PSE, 0);
        let mut read = |g, s| m.read(g, s);
        assert_eq!(translate(&r, 0x40_1234, &mut read), Ok(0x80_1234));
        assert_eq!(translate(&r, 0x80_5678, &mut read), Ok(0xab_c678));
        // Without PSE the large bit is ignored and PDE[1] is a table pointer.
        let r = regs(CR0_PG | 1, 0x2000, 0, 0);
        assert_eq!(translate(&r, 0x40_1234, &mut read), Err(WalkError::NotPresent));
    }
}
