//! The virtual machine control block: one 4 KiB page per VCPU, a control
//! area at 0x000-0x3FF and the guest state save area from 0x400 (AMD64 APM
//! vol. 2, appendix B). Accessed through the direct map with volatile
//! loads and stores at the offsets below.

use crate::mm::{frame, phys_to_virt};

// Control area.
/// CR reads in bits 0-15, CR writes in bits 16-31.
pub const INTERCEPT_CR: usize = 0x000;
pub const INTERCEPT_EXCEPTIONS: usize = 0x008;
pub const INTERCEPT_MISC1: usize = 0x00c;
pub const INTERCEPT_MISC2: usize = 0x010;
pub const IOPM_BASE: usize = 0x040;
pub const MSRPM_BASE: usize = 0x048;
pub const TSC_OFFSET: usize = 0x050;
pub const GUEST_ASID: usize = 0x058;
pub const TLB_CONTROL: usize = 0x05c;
pub const V_INTR: usize = 0x060;
pub const INTERRUPT_SHADOW: usize = 0x068;
pub const EXIT_CODE: usize = 0x070;
pub const EXIT_INFO1: usize = 0x078;
pub const EXIT_INFO2: usize = 0x080;
pub const EXIT_INT_INFO: usize = 0x088;
pub const NP_ENABLE: usize = 0x090;
pub const EVENT_INJ: usize = 0x0a8;
pub const N_CR3: usize = 0x0b0;
pub const CLEAN_BITS: usize = 0x0c0;

// Save area: segments are 16 bytes (selector u16, attrib u16, limit u32, base u64).
pub const ES: usize = 0x400;
pub const CS: usize = 0x410;
pub const SS: usize = 0x420;
pub const DS: usize = 0x430;
pub const FS: usize = 0x440;
pub const GS: usize = 0x450;
pub const GDTR: usize = 0x460;
pub const LDTR: usize = 0x470;
pub const IDTR: usize = 0x480;
pub const TR: usize = 0x490;
pub const CPL: usize = 0x4cb;
pub const EFER: usize = 0x4d0;
pub const CR4: usize = 0x548;
pub const CR3: usize = 0x550;
pub const CR0: usize = 0x558;
pub const DR7: usize = 0x560;
pub const DR6: usize = 0x568;
pub const RFLAGS: usize = 0x570;
pub const RIP: usize = 0x578;
pub const RSP: usize = 0x5d8;
pub const RAX: usize = 0x5f8;
pub const STAR: usize = 0x600;
pub const LSTAR: usize = 0x608;
pub const CSTAR: usize = 0x610;
pub const SFMASK: usize = 0x618;
pub const KERNEL_GS_BASE: usize = 0x620;
pub const SYSENTER_CS: usize = 0x628;
pub const SYSENTER_ESP: usize = 0x630;
pub const SYSENTER_EIP: usize = 0x638;
pub const CR2: usize = 0x640;
pub const G_PAT: usize = 0x668;

/// Segment field offsets.
pub const SEG_SELECTOR: usize = 0;
pub const SEG_ATTRIB: usize = 2;
pub const SEG_LIMIT: usize = 4;
pub const SEG_BASE: usize = 8;

/// One zeroed, owned VMCB-sized page (a VMCB, or the host save area).
pub struct Page {
    phys: u64,
}

impl Page {
    pub fn new() -> Option<Page> {
        frame::alloc_zeroed_frame().map(|phys| Page { phys })
    }

    pub fn phys(&self) -> u64 {
        self.phys
    }

    fn ptr(&self, offset: usize, size: usize) -> u64 {
        debug_assert!(offset + size <= 4096 && offset.is_multiple_of(size));
        phys_to_virt(self.phys) + offset as u64
    }

    pub fn read64(&self, offset: usize) -> u64 {
        // SAFETY: the page is ours, mapped in the direct map, and the offset
        // is an aligned field inside it.
        unsafe { core::ptr::read_volatile(self.ptr(offset, 8) as *const u64) }
    }

    pub fn write64(&mut self, offset: usize, value: u64) {
        // SAFETY: as for `read64`; `&mut self` makes the access exclusive
        // (the CPU only touches the page inside VMRUN, on this thread).
        unsafe { core::ptr::write_volatile(self.ptr(offset, 8) as *mut u64, value) }
    }

    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: as for `read64`.
        unsafe { core::ptr::read_volatile(self.ptr(offset, 4) as *const u32) }
    }

    pub fn write32(&mut self, offset: usize, value: u32) {
        // SAFETY: as for `write64`.
        unsafe { core::ptr::write_volatile(self.ptr(offset, 4) as *mut u32, value) }
    }

    pub fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as for `read64`.
        unsafe { core::ptr::read_volatile(self.ptr(offset, 2) as *const u16) }
    }

    pub fn write16(&mut self, offset: usize, value: u16) {
        // SAFETY: as for `write64`.
        unsafe { core::ptr::write_volatile(self.ptr(offset, 2) as *mut u16, value) }
    }

    pub fn read8(&self, offset: usize) -> u8 {
        // SAFETY: as for `read64`.
        unsafe { core::ptr::read_volatile(self.ptr(offset, 1) as *const u8) }
    }

    pub fn write8(&mut self, offset: usize, value: u8) {
        // SAFETY: as for `write64`.
        unsafe { core::ptr::write_volatile(self.ptr(offset, 1) as *mut u8, value) }
    }

    /// Sets a segment register's hidden state.
    pub fn set_segment(&mut self, seg: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.write16(seg + SEG_SELECTOR, selector);
        self.write16(seg + SEG_ATTRIB, attrib);
        self.write32(seg + SEG_LIMIT, limit);
        self.write64(seg + SEG_BASE, base);
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        frame::free_frame(self.phys);
    }
}
