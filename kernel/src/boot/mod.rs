//! Boot: the two loader front ends and the one [`BootInfo`] they produce.
//!
//! Limine (`limine.rs`) and QEMU's PVH direct boot (`pvh.rs`) each copy what
//! the loader handed over into a `BootInfo` before anything else runs, then
//! call [`crate::kernel_main`]. Nothing after that knows which loader ran,
//! except for the log line that says so.

pub mod limine;
pub mod pvh;

use kcore::memmap::{MemoryMap, RegionKind};

/// The most memory-map entries kept (firmware maps have a few dozen).
pub const MAX_REGIONS: usize = 256;
/// The most boot modules kept.
pub const MAX_MODULES: usize = 8;
const CMDLINE_CAP: usize = 1024;
const NAME_CAP: usize = 64;

/// Which loader started the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    Limine,
    Pvh,
}

/// A file the loader placed in memory next to the kernel.
#[derive(Clone, Copy, Debug)]
pub struct BootModule {
    pub phys: u64,
    pub len: u64,
    name: [u8; NAME_CAP],
    name_len: usize,
}

impl BootModule {
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
}

/// Everything the kernel needs from its loader, copied out of the loader's
/// memory so that memory can be reclaimed.
#[derive(Clone, Debug)]
pub struct BootInfo {
    pub loader: Loader,
    pub memory_map: MemoryMap<MAX_REGIONS>,
    cmdline: [u8; CMDLINE_CAP],
    cmdline_len: usize,
    modules: [BootModule; MAX_MODULES],
    module_count: usize,
    /// Physical address of the ACPI RSDP, if the loader found it.
    pub rsdp: Option<u64>,
    /// Physical address the kernel image was loaded at.
    pub kernel_phys_base: u64,
    /// Offset at which the loader's page tables map physical memory
    /// (valid only until the kernel switches to its own page tables).
    pub loader_phys_offset: u64,
    /// A free page below 1 MiB for the SMP start-up trampoline.
    pub trampoline_page: Option<u64>,
}

impl BootInfo {
    pub const fn new(loader: Loader) -> Self {
        BootInfo {
            loader,
            memory_map: MemoryMap::new(),
            cmdline: [0; CMDLINE_CAP],
            cmdline_len: 0,
            modules: [BootModule { phys: 0, len: 0, name: [0; NAME_CAP], name_len: 0 }; MAX_MODULES],
            module_count: 0,
            rsdp: None,
            kernel_phys_base: 0,
            loader_phys_offset: 0,
            trampoline_page: None,
        }
    }

    /// Keeps the first megabyte away from the frame allocator (real-mode
    /// structures live there), after setting aside one usable page of it for
    /// the SMP trampoline, which must start below 1 MiB.
    pub fn reserve_low_memory(&mut self) {
        const LOW_END: u64 = 0x10_0000;
        self.trampoline_page = self
            .memory_map
            .regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable && r.start < LOW_END)
            .map(|r| (r.start.max(0x1000), r.end.min(LOW_END)))
            .find(|(start, end)| end >= &(start + 0x1000))
            .map(|(start, _)| start);
        let _ = self.memory_map.carve(0, LOW_END, RegionKind::Reserved);
    }

    /// The kernel command line (lossy: invalid UTF-8 is cut at the first bad byte).
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    pub fn set_cmdline(&mut self, bytes: &[u8]) {
        let len = bytes.len().min(CMDLINE_CAP);
        self.cmdline[..len].copy_from_slice(&bytes[..len]);
        self.cmdline_len = len;
    }

    pub fn modules(&self) -> &[BootModule] {
        &self.modules[..self.module_count]
    }

    /// Records a module; modules beyond [`MAX_MODULES`] are dropped with a warning.
    pub fn add_module(&mut self, phys: u64, len: u64, name: &[u8]) {
        if self.module_count == MAX_MODULES {
            log::warn!("boot: more than {MAX_MODULES} modules, ignoring the rest");
            return;
        }
        let name_len = name.len().min(NAME_CAP);
        let module = &mut self.modules[self.module_count];
        module.phys = phys;
        module.len = len;
        module.name[..name_len].copy_from_slice(&name[..name_len]);
        module.name_len = name_len;
        self.module_count += 1;
    }
}

/// Reads a NUL-terminated string of at most `cap` bytes at `ptr`.
///
/// # Safety
/// `ptr` must be null or point at readable memory up to its NUL or `cap` bytes.
pub(crate) unsafe fn c_str_bytes<'a>(ptr: *const u8, cap: usize) -> &'a [u8] {
    if ptr.is_null() {
        return &[];
    }
    let mut len = 0;
    // SAFETY: per the contract, every byte up to the NUL or `cap` is readable.
    while len < cap && unsafe { *ptr.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes were just read.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}
