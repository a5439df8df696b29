//! Starting init: the kernel's only program loader.
//!
//! The boot filesystem (the loader's boot module) becomes a read-only VMO;
//! `bin/init` is read from it, its segments copied into a fresh VMO and
//! mapped at their link addresses in a new process, with a stack and the
//! vDSO. Init's bootstrap channel carries a processargs message with the
//! handles it needs (userland/README.md); everything after that is
//! userspace's business. When init dies the machine powers off, after a
//! line tests read: `userboot: init exited with N`.

#![forbid(unsafe_code)]

use crate::object::channel::{Channel, Message};
use crate::object::job::Job;
use crate::object::process::Process;
use crate::object::resource::Resource;
use crate::object::thread::{ThreadObject, UserEntry};
use crate::object::vmo::{VmarObject, VmoObject};
use crate::object::wait::{wait_many, WaitItem};
use crate::object::Handle;
use crate::syscall::vdso_layout::*;
use crate::vm::{Vmar, Vmo};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use mx_abi::vdso::VdsoConstants;
use mx_abi::{Rights, Signals, Status, VmFlags};
use mx_abi::{PA_JOB_DEFAULT, PA_PROC_SELF, PA_RESOURCE, PA_THREAD_SELF, PA_VMAR_ROOT, PA_VMO_BOOTFS, PA_VMO_VDSO};

/// The vDSO image, built before the kernel (`make vdso`).
static VDSO_IMAGE: &[u8] = include_bytes!("../../build/vdso.so");

const PAGE: u64 = 4096;
const STACK_SIZE: u64 = 256 * 1024;
const INIT_PATH: &str = "bin/init";

fn page_up(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// The vDSO as every process gets it: the image with its constants filled.
fn vdso_vmo() -> Result<Arc<Vmo>, Status> {
    let vmo = Vmo::create(page_up(VDSO_IMAGE.len() as u64).max(VDSO_MAP_SIZE as u64))?;
    vmo.write(0, VDSO_IMAGE)?;
    let cpus = crate::arch::x86::smp::online_count();
    let physmem = crate::mm::frame::stats().total_frames * crate::mm::PAGE_SIZE;
    let constants = VdsoConstants::new(cpus, crate::time::tsc_hz(), physmem, "magnetar-0.1");
    vmo.write(VDSO_CONSTANTS_OFFSET as u64, constants.to_bytes().as_ref())?;
    vmo.set_vdso_code_range(VDSO_CODE_OFFSET as u64, VDSO_CODE_SIZE as u64);
    Ok(vmo)
}

/// The boot filesystem module as a read-only VMO.
fn bootfs_vmo() -> Result<Arc<Vmo>, Status> {
    let module = crate::boot_info().modules().first().copied().ok_or(Status::NotFound)?;
    if module.phys % PAGE == 0 {
        return Vmo::from_physical(module.phys, module.len);
    }
    // An unaligned module is copied.
    let vmo = Vmo::create(module.len)?;
    let mut chunk = vec![0u8; PAGE as usize];
    let mut done = 0;
    while done < module.len {
        let len = (module.len - done).min(PAGE) as usize;
        crate::mm::copy_from_phys(module.phys + done, &mut chunk[..len]);
        vmo.write(done, &chunk[..len])?;
        done += len as u64;
    }
    Ok(vmo)
}

fn read_file(bootfs: &Vmo, name: &str) -> Result<Vec<u8>, Status> {
    let mut header = [0u8; kcore::bootfs::HEADER_SIZE];
    bootfs.read(0, &mut header)?;
    let dir_len = kcore::bootfs::directory_len(&header)?;
    let mut dir = vec![0u8; dir_len];
    bootfs.read(0, &mut dir)?;
    let directory = kcore::bootfs::Directory::parse(&dir)?;
    let entry = directory.find(name).ok_or(Status::NotFound)?;
    let mut bytes = vec![0u8; entry.size as usize];
    bootfs.read(entry.offset, &mut bytes)?;
    Ok(bytes)
}

/// Maps `image` (a static ELF) into `root`; returns its entry point.
fn load_elf(root: &Vmar, image: &[u8]) -> Result<u64, Status> {
    let headers = image.get(..kcore::elf::headers_len(image)?).ok_or(Status::IoDataIntegrity)?;
    let plan = kcore::elf::plan(headers)?;
    let (start, end) = plan.span();
    let vmo = Vmo::create(end - start)?;
    for segment in plan.segments() {
        let file = image
            .get(segment.offset as usize..(segment.offset + segment.filesz) as usize)
            .ok_or(Status::IoDataIntegrity)?;
        vmo.write(segment.vaddr - start, file)?;
    }
    let all = Rights::READ | Rights::WRITE | Rights::EXECUTE | Rights::MAP;
    for mapping in plan.mappings() {
        let offset = mapping.start.checked_sub(root.base()).ok_or(Status::InvalidArgs)?;
        let flags = mapping.perms | VmFlags::SPECIFIC;
        root.map(offset, &vmo, mapping.start - start, mapping.end - mapping.start, flags.bits(), all, all)?;
    }
    Ok(plan.entry)
}

/// Maps the vDSO (code R+X, then its constants page R) at a random
/// address; returns its base.
fn map_vdso(root: &Vmar, vdso: &Arc<Vmo>) -> Result<u64, Status> {
    let region_flags = VmFlags::CAN_MAP_READ | VmFlags::CAN_MAP_EXECUTE | VmFlags::CAN_MAP_SPECIFIC;
    let (region, base) = root.allocate(0, VDSO_MAP_SIZE as u64, region_flags.bits())?;
    let rights = Rights::READ | Rights::EXECUTE | Rights::MAP;
    let code = VmFlags::PERM_READ | VmFlags::PERM_EXECUTE | VmFlags::SPECIFIC;
    region.map(0, vdso, VDSO_CODE_OFFSET as u64, VDSO_CODE_SIZE as u64, code.bits(), rights, rights)?;
    let constants = VmFlags::PERM_READ | VmFlags::SPECIFIC;
    let size = VDSO_CONSTANTS_SIZE as u64;
    region.map(VDSO_CODE_SIZE as u64, vdso, VDSO_CONSTANTS_OFFSET as u64, size, constants.bits(), rights, rights)?;
    Ok(base)
}

/// Creates and starts init; returns its process.
pub fn start_init() -> Result<Arc<Process>, Status> {
    let vdso = vdso_vmo()?;
    let bootfs = bootfs_vmo()?;
    let image = read_file(&bootfs, INIT_PATH)?;
    let (process, root) = Process::create(b"init")?;
    let entry = load_elf(&root, &image)?;
    let all = Rights::READ | Rights::WRITE | Rights::MAP;
    let stack = Vmo::create(STACK_SIZE)?;
    let rw = VmFlags::PERM_READ | VmFlags::PERM_WRITE;
    let stack_base = root.map(0, &stack, 0, STACK_SIZE, rw.bits(), all, all)?;
    let vdso_base = map_vdso(&root, &vdso)?;
    let thread = ThreadObject::create(&process, b"init")?;

    let vdso_rights = Rights::READ | Rights::EXECUTE | Rights::MAP | Rights::DUPLICATE | Rights::TRANSFER;
    let bootfs_rights = Rights::READ | Rights::MAP | Rights::DUPLICATE | Rights::TRANSFER;
    let mut args = kcore::processargs::Builder::<Handle>::new();
    args.handle(PA_PROC_SELF, 0, Handle::new(process.clone(), Rights::from_bits_retain(0x13cf)))
        .handle(PA_THREAD_SELF, 0, Handle::new(thread.clone(), Rights::from_bits_retain(0x12cf)))
        .handle(PA_VMAR_ROOT, 0, Handle::new(VmarObject::new(root), Rights::from_bits_retain(0x1f)))
        .handle(PA_VMO_VDSO, 0, Handle::new(VmoObject::new(vdso), vdso_rights))
        .handle(PA_VMO_BOOTFS, 0, Handle::new(VmoObject::new(bootfs), bootfs_rights))
        .handle(PA_RESOURCE, 0, Handle::new(Resource::new_root(), Rights::DEFAULT_RESOURCE))
        .handle(PA_JOB_DEFAULT, 0, Handle::new(Job::new(), Rights::DEFAULT_JOB));
    args.arg(INIT_PATH);
    for word in crate::cmdline().iter() {
        match word.value {
            Some(value) => args.env(&alloc::format!("{}={value}", word.key)),
            None => args.env(word.key),
        };
    }
    let (bytes, handles) = args.build();
    let (kernel_end, init_end) = Channel::new_pair();
    let kernel_handle = Handle::new(kernel_end.clone(), Rights::DEFAULT_CHANNEL);
    kernel_end.write(Message { bytes, handles }).map_err(|(status, _)| status)?;
    drop(kernel_handle);
    let bootstrap = process.handles.add(Handle::new(init_end, Rights::DEFAULT_CHANNEL))?;
    process.mark_started()?;
    thread.start(UserEntry {
        rip: entry,
        rsp: stack_base + STACK_SIZE,
        arg1: u64::from(bootstrap),
        arg2: vdso_base,
    })?;
    Ok(process)
}

/// `fault_inject=RATE` (per mille; `fault_inject_seed=N`,
/// `fault_inject_heap=all`): from here on, allocations fail at that rate (kernel built with `fault-inject`). Boot and
/// init's own creation are done, so only work done for user mode is hit.
fn enable_fault_injection() {
    let cmdline = crate::cmdline();
    let Some(rate) = cmdline.get("fault_inject").and_then(|r| r.parse::<u32>().ok()) else { return };
    let seed = cmdline.get("fault_inject_seed").and_then(|s| s.parse::<u64>().ok()).unwrap_or(1);
    let small_too = cmdline.get("fault_inject_heap") == Some("all");
    if cfg!(feature = "fault-inject") {
        let heap = if small_too { "all heap allocations" } else { "heap allocations of a page or more" };
        ::log::info!("userboot: fault injection on: {rate} per mille of frame and {heap}, seed {seed}");
        crate::mm::heap::fault::enable(rate, seed, small_too);
    } else {
        ::log::warn!("userboot: fault_inject= needs a kernel built with the fault-inject feature; ignored");
    }
}

/// Waits for init to die, reports its exit code and powers off.
pub fn run_init_and_power_off() -> ! {
    match start_init() {
        Ok(process) => {
            enable_fault_injection();
            let item = WaitItem { object: process.clone(), handle_id: 0, watched: Signals::PROCESS_TERMINATED };
            loop {
                match wait_many(core::slice::from_ref(&item), u64::MAX) {
                    Ok(outcome) if outcome.status.is_ok() => break,
                    _ => continue,
                }
            }
            let injected = crate::mm::heap::fault::injected();
            if injected > 0 {
                ::log::info!("userboot: {injected} allocation failures injected");
            }
            ::log::info!("userboot: init exited with {}", process.return_code());
        }
        Err(status) => ::log::error!("userboot: cannot start {INIT_PATH}: {status:?}"),
    }
    crate::acpi::power_off();
    crate::arch::x86::cpu::halt_forever()
}
