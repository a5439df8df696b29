//! The Limine boot protocol (base revision 2: Limine 8 and later all speak
//! it; revision 3 needs Limine 9).
//!
//! Limine enters `limine_entry` in long mode on its own page tables (the
//! kernel at its link address, all RAM at the HHDM offset) and its own stack,
//! with the responses below filled in. We copy them into a [`BootInfo`].

use super::{BootInfo, Loader};
use kcore::memmap::RegionKind;
use limine::memory_map::EntryType;
use limine::request::{
    ExecutableAddressRequest, ExecutableFileRequest, HhdmRequest, MemoryMapRequest, ModuleRequest, RequestsEndMarker,
    RequestsStartMarker, RsdpRequest, StackSizeRequest,
};
use limine::BaseRevision;

#[used]
#[link_section = ".requests"]
static BASE_REVISION: BaseRevision = BaseRevision::with_revision(2);

#[used]
#[link_section = ".requests"]
static HHDM: HhdmRequest = HhdmRequest::new();

#[used]
#[link_section = ".requests"]
static MEMORY_MAP: MemoryMapRequest = MemoryMapRequest::new();

#[used]
#[link_section = ".requests"]
static KERNEL_ADDRESS: ExecutableAddressRequest = ExecutableAddressRequest::new();

/// The kernel file, for its command line (`cmdline:` in limine.conf).
#[used]
#[link_section = ".requests"]
static KERNEL_FILE: ExecutableFileRequest = ExecutableFileRequest::new();

#[used]
#[link_section = ".requests"]
static MODULES: ModuleRequest = ModuleRequest::new();

#[used]
#[link_section = ".requests"]
static RSDP: RsdpRequest = RsdpRequest::new();

#[used]
#[link_section = ".requests"]
static STACK_SIZE: StackSizeRequest = StackSizeRequest::new().with_size(64 * 1024);

#[used]
#[link_section = ".requests_start_marker"]
static _START_MARKER: RequestsStartMarker = RequestsStartMarker::new();

#[used]
#[link_section = ".requests_end_marker"]
static _END_MARKER: RequestsEndMarker = RequestsEndMarker::new();

fn kind(entry: EntryType) -> RegionKind {
    match entry {
        EntryType::USABLE => RegionKind::Usable,
        EntryType::ACPI_RECLAIMABLE => RegionKind::AcpiReclaimable,
        EntryType::ACPI_NVS => RegionKind::AcpiNvs,
        EntryType::BAD_MEMORY => RegionKind::Bad,
        EntryType::BOOTLOADER_RECLAIMABLE => RegionKind::BootloaderReclaimable,
        EntryType::EXECUTABLE_AND_MODULES => RegionKind::KernelAndModules,
        EntryType::FRAMEBUFFER => RegionKind::Framebuffer,
        _ => RegionKind::Reserved,
    }
}

#[no_mangle]
extern "C" fn limine_entry() -> ! {
    if !BASE_REVISION.is_supported() {
        crate::early_fatal("limine: base revision 2 not supported by this loader");
    }
    let mut info = BootInfo::new(Loader::Limine);
    let Some(hhdm) = HHDM.get_response() else { crate::early_fatal("limine: no HHDM response") };
    info.loader_phys_offset = hhdm.offset();
    let Some(map) = MEMORY_MAP.get_response() else { crate::early_fatal("limine: no memory map") };
    for entry in map.entries() {
        if info.memory_map.push(entry.base, entry.length, kind(entry.entry_type)).is_err() {
            log::warn!("limine: memory map truncated");
            break;
        }
    }
    info.memory_map.normalize();
    info.reserve_low_memory();
    let Some(address) = KERNEL_ADDRESS.get_response() else { crate::early_fatal("limine: no kernel address") };
    info.kernel_phys_base = address.physical_base();
    if let Some(file) = KERNEL_FILE.get_response() {
        info.set_cmdline(file.file().string().to_bytes());
    }
    if let Some(modules) = MODULES.get_response() {
        for module in modules.modules() {
            let path = module.path().to_bytes();
            let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
            info.add_module(module.addr() as u64 - hhdm.offset(), module.size(), name);
        }
    }
    // Revisions before 3 report the RSDP through the HHDM, later ones physically.
    info.rsdp = RSDP.get_response().map(|r| r.address() as u64).filter(|&a| a != 0).map(|a| {
        if a >= hhdm.offset() {
            a - hhdm.offset()
        } else {
            a
        }
    });
    crate::kernel_main(info)
}
