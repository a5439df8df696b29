//! Starting a program: load a static ELF from a VMO range into a new process,
//! map its stack and the vDSO, send it a bootstrap message and start it.
//!
//! The program's segments are copied into one fresh VMO (so writable data is
//! private and the `.bss` tail is zero) and mapped at their link addresses in
//! the new process's root VMAR with the segment permissions. The vDSO is
//! mapped segment by segment with its own permissions (code R+X, constants
//! R) in a region of its own. The first thread starts at the ELF entry with
//! `rdi` = the bootstrap channel and `rsi` = the vDSO base (contract §2.6).

use alloc::vec::Vec;

use mx_abi::{Status, VmFlags, PA_PROC_SELF, PA_THREAD_SELF, PA_VMAR_ROOT, PA_VMO_VDSO};

use crate::elf::{self, Plan};
use crate::processargs::Builder;
use crate::{Channel, Handle, Process, Result, Thread, Vmar, Vmo, PAGE_SIZE, SAME_RIGHTS};

/// Size of a new program's stack.
pub const STACK_SIZE: usize = 256 * 1024;

/// Largest ELF header + program header table read.
const MAX_HEADERS: usize = 64 * 1024;

/// A file inside a VMO (e.g. a bootfs entry).
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// The VMO holding it.
    pub vmo: &'a Vmo,
    /// Where the file starts in the VMO.
    pub offset: u64,
    /// Its size.
    pub size: u64,
}

impl Image<'_> {
    fn read(&self, buf: &mut [u8], at: u64) -> Result {
        let end = at.checked_add(buf.len() as u64).ok_or(Status::OutOfRange)?;
        if end > self.size {
            return Err(Status::IoDataIntegrity);
        }
        self.vmo.read_exact(buf, self.offset + at)
    }

    /// The ELF header and program headers.
    fn headers(&self) -> Result<Vec<u8>> {
        let mut first = [0u8; 64];
        self.read(&mut first, 0)?;
        let len = elf::headers_len(&first)?;
        if len > MAX_HEADERS {
            return Err(Status::IoDataIntegrity);
        }
        let mut headers = alloc::vec![0u8; len.max(64)];
        self.read(&mut headers, 0)?;
        Ok(headers)
    }
}

/// Copies `len` bytes from `image` at `from` into `to` at `at`.
fn copy(image: &Image<'_>, from: u64, len: u64, to: &Vmo, at: u64) -> Result {
    let mut buf = [0u8; 4096];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        image.read(&mut buf[..n], from + done)?;
        to.write_all(&buf[..n], at + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Maps the executable in `image` into `vmar` (a root VMAR) at its link
/// addresses; returns the plan (its `entry` is where to start).
pub fn load_elf(vmar: &Vmar, image: &Image<'_>) -> Result<Plan> {
    let plan = elf::plan(&image.headers()?)?;
    let (base, len) = vmar.range()?;
    let (lo, hi) = plan.span();
    if lo < base as u64 || hi > base as u64 + len as u64 {
        return Err(Status::OutOfRange);
    }
    let mem = Vmo::create(hi - lo)?;
    for s in plan.segments() {
        copy(image, s.offset, s.filesz, &mem, s.vaddr - lo)?;
    }
    for m in plan.mappings() {
        let flags = m.perms | VmFlags::SPECIFIC;
        vmar.map((m.start - base as u64) as usize, &mem, m.start - lo, (m.end - m.start) as usize, flags)?;
    }
    Ok(plan)
}

/// Maps the vDSO (`vdso`, an ELF shared object linked at 0) into `vmar`;
/// returns its base.
pub fn map_vdso(vmar: &Vmar, vdso: &Vmo) -> Result<usize> {
    let size = vdso.size()?;
    let plan = elf::plan_dyn(&Image { vmo: vdso, offset: 0, size }.headers()?)?;
    let (lo, hi) = plan.span();
    if lo != 0 || plan.segments().iter().any(|s| s.offset != s.vaddr || s.filesz != s.memsz) {
        return Err(Status::IoDataIntegrity);
    }
    let flags = VmFlags::CAN_MAP_READ | VmFlags::CAN_MAP_EXECUTE | VmFlags::CAN_MAP_SPECIFIC;
    let (region, base) = vmar.allocate(0, hi as usize, flags)?;
    for m in plan.mappings() {
        let len = (m.end - m.start) as usize;
        region.map(m.start as usize, vdso, m.start, len, m.perms | VmFlags::SPECIFIC)?;
    }
    Ok(base)
}

/// Maps a new stack into `vmar`; returns the initial stack pointer: the top,
/// 16-byte aligned, minus 8 (as if the entry point had been called).
pub fn map_stack(vmar: &Vmar, size: usize) -> Result<usize> {
    let size = size.next_multiple_of(PAGE_SIZE);
    let vmo = Vmo::create(size as u64)?;
    let base = vmar.map(0, &vmo, 0, size, VmFlags::PERM_READ | VmFlags::PERM_WRITE)?;
    Ok(((base + size) & !15) - 8)
}

/// What to start.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The process name.
    pub name: &'a str,
    /// The job to create it in.
    pub job: &'a Handle,
    /// The executable.
    pub image: Image<'a>,
    /// The vDSO VMO (duplicated into the new process as `PA_VMO_VDSO`).
    pub vdso: &'a Vmo,
    /// Argument strings (`argv`, the program name first by convention).
    pub args: &'a [&'a str],
    /// Environment strings.
    pub environ: &'a [&'a str],
    /// More handles for the bootstrap message: (type, arg, handle).
    pub handles: Vec<(u32, u32, Handle)>,
}

/// Creates the process, loads it and starts its first thread. Its bootstrap
/// message carries `PA_PROC_SELF`, `PA_THREAD_SELF`, `PA_VMAR_ROOT`,
/// `PA_VMO_VDSO` and the caller's handles.
pub fn launch(l: Launch<'_>) -> Result<Process> {
    let (process, vmar) = Process::create(l.job, l.name)?;
    let plan = load_elf(&vmar, &l.image)?;
    let vdso_base = map_vdso(&vmar, l.vdso)?;
    let sp = map_stack(&vmar, STACK_SIZE)?;
    let thread = Thread::create(&process, l.name)?;

    let mut msg = Builder::new();
    msg.handle(PA_PROC_SELF, 0, process.duplicate(SAME_RIGHTS)?.into_handle());
    msg.handle(PA_THREAD_SELF, 0, thread.duplicate(SAME_RIGHTS)?.into_handle());
    msg.handle(PA_VMAR_ROOT, 0, vmar.into_handle());
    msg.handle(PA_VMO_VDSO, 0, l.vdso.duplicate(SAME_RIGHTS)?.into_handle());
    for (ty, arg, h) in l.handles {
        msg.handle(ty, arg, h);
    }
    for a in l.args {
        msg.arg(a);
    }
    for e in l.environ {
        msg.env(e);
    }
    let (bytes, mut handles) = msg.build();
    let (ours, theirs) = Channel::create()?;
    ours.write(&bytes, &mut handles)?;
    process.start(&thread, plan.entry as usize, sp, theirs.into_handle(), vdso_base)?;
    Ok(process)
}
