//! The guest and VCPU objects (see the module above for the design).

#![forbid(unsafe_code)]

use super::backend::{
    Event, Exit, GuestBackend, RunState, VcpuBackend, VcpuEntry, NOT_RUNNING, NO_ENTRY, RAX, RCX, RDX,
};
use super::x86;
use crate::arch::x86::percpu::cpu_index;
use crate::object::port::{Port, PortTrap};
use crate::object::{KernelObject, ObjectBase};
use crate::sched::{WaitQueue, WakeReason, INFINITE};
use crate::sync::IrqSpinlock;
use crate::vm::Vmo;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kcore::guestmap::{GuestMappings, MapError};
use kcore::trap::{TrapError, TrapKind, TrapMap, GUEST_PHYS_SIZE};
use kcore::x86decode::{self, DecodeError, Mode};
use kcore::x86paging::{self, WalkError};
use mx_abi::{
    ObjType, PacketGuestCpuid, PacketGuestException, PacketGuestIo, PacketGuestMem, PacketGuestMsr, PacketGuestVmcall,
    Payload, PortPacket, Signals, Status, VcpuIo, VcpuState, VcpuSystem, VCPU_FLAGS_APPLY, VCPU_FLAGS_USER,
    VCPU_RFLAGS_FIXED, VCPU_RFLAGS_RESERVED, X86_MAX_INST_LEN,
};

const PAGE_SIZE: u64 = 4096;
const RFLAGS_IF: u64 = 1 << 9;

// The pool size the header documents is the one the port implements.
const _: () = assert!(kcore::port::TRAP_POOL_SIZE as u64 == mx_abi::GUEST_TRAP_POOL_SIZE);

/// The hardware backend for a new guest, or `NOT_SUPPORTED`.
fn new_backend() -> Result<Box<dyn GuestBackend>, Status> {
    if !crate::arch::x86::svm::supported() {
        return Err(Status::NotSupported);
    }
    Ok(Box::new(crate::arch::x86::svm::SvmGuest::new()?))
}

/// Whether this machine can run guests.
pub fn supported() -> bool {
    crate::arch::x86::svm::supported()
}

fn trap_status(error: TrapError) -> Status {
    match error {
        TrapError::InvalidArgs => Status::InvalidArgs,
        TrapError::OutOfRange => Status::OutOfRange,
        TrapError::AlreadyExists => Status::AlreadyExists,
        TrapError::NoMemory => Status::NoMemory,
    }
}

fn map_status(error: MapError) -> Status {
    match error {
        MapError::InvalidArgs => Status::InvalidArgs,
        MapError::OutOfRange => Status::OutOfRange,
        MapError::AlreadyExists => Status::AlreadyExists,
        MapError::NoMemory => Status::NoMemory,
    }
}

/// A VMO a guest mapping holds, pinned for as long as the holder lives (a
/// split mapping pins it once more).
struct PinnedVmo(Arc<Vmo>);

impl PinnedVmo {
    fn new(vmo: Arc<Vmo>) -> PinnedVmo {
        vmo.pin();
        PinnedVmo(vmo)
    }
}

impl Clone for PinnedVmo {
    fn clone(&self) -> PinnedVmo {
        PinnedVmo::new(self.0.clone())
    }
}

impl Drop for PinnedVmo {
    fn drop(&mut self) {
        self.0.unpin();
    }
}

/// What decides where a guest-physical access goes: traps first, then
/// mappings, then the physmem VMO.
struct Space {
    /// A trap with a port holds its packet pool in that port.
    traps: TrapMap<Arc<PortTrap>>,
    mappings: GuestMappings<PinnedVmo>,
}

/// A guest: physical memory, traps and the hardware's view of both.
pub struct Guest {
    base: ObjectBase,
    memory: Arc<Vmo>,
    backend: Box<dyn GuestBackend>,
    /// Held while a nested page fault maps a page, so a MEM trap set or a
    /// mapping removed at the same time cannot be mapped over.
    space: IrqSpinlock<Space>,
    /// The run states of the guest's VCPUs, for shootdowns.
    vcpus: IrqSpinlock<Vec<Arc<RunState>>>,
    /// One shootdown at a time (they own `RunState::awaited`).
    shootdown: spin::Mutex<()>,
    /// The vectors EXCEPTION traps cover (bit n = vector n), read by every
    /// VM entry without the lock.
    trapped_exceptions: AtomicU32,
}

/// The trap an exit hit: its key and, for asynchronous delivery, its pool.
struct Hit {
    key: u64,
    port: Option<Arc<PortTrap>>,
}

impl Hit {
    fn of(trap: &kcore::trap::Trap<Arc<PortTrap>>) -> Hit {
        Hit { key: trap.key, port: trap.port.clone() }
    }
}

/// What a nested page fault at a guest-physical address means.
enum Fault {
    /// RAM, now mapped: run on.
    Mapped,
    /// A MEM trap.
    Trapped(Hit),
}

impl Guest {
    /// `guest_create` after the handle checks: `memory` becomes guest RAM
    /// from GPA 0. `NOT_SUPPORTED` without SVM and nested paging,
    /// `ACCESS_DENIED` for a read-only VMO, `NO_MEMORY`.
    pub fn create(memory: Arc<Vmo>) -> Result<Arc<Guest>, Status> {
        let backend = new_backend()?;
        if memory.is_read_only() {
            return Err(Status::AccessDenied);
        }
        memory.pin();
        Ok(Arc::new(Guest {
            base: ObjectBase::new(ObjType::Guest, Signals::NONE),
            memory,
            backend,
            space: IrqSpinlock::new(Space { traps: TrapMap::new(GUEST_PHYS_SIZE), mappings: GuestMappings::new() }),
            vcpus: IrqSpinlock::new(Vec::new()),
            shootdown: spin::Mutex::new(()),
            trapped_exceptions: AtomicU32::new(0),
        }))
    }

    /// `guest_set_trap` after the handle checks (decisions 3 and 4; the
    /// order is `kcore::trap`'s). A MEM range is unmapped from the guest.
    /// With a port, the trap's packet pool (`TRAP_POOL_SIZE` packets) is
    /// allocated in the port now: `NO_MEMORY` if it cannot be.
    pub fn set_trap(&self, kind: u32, addr: u64, len: u64, port: Option<Arc<Port>>, key: u64) -> Result<(), Status> {
        // Argument and overlap errors come before NO_MEMORY, whatever the
        // pool does; `set_trap` checks again under the lock it inserts with.
        self.space.lock().traps.check(kind, addr, len, port.is_some()).map_err(trap_status)?;
        let pool = match port {
            Some(port) => Some(port.add_trap(key)?),
            None => None,
        };
        let mut space = self.space.lock();
        if let Err(error) = space.traps.set_trap(kind, addr, len, key, pool.clone()) {
            drop(space);
            if let Some(pool) = pool {
                pool.remove();
            }
            return Err(trap_status(error));
        }
        let unmapped = kind == kcore::trap::TRAP_MEM && self.backend.unmap_range(addr, len);
        drop(space);
        if unmapped {
            self.shoot_down();
        }
        if kind == kcore::trap::TRAP_EXCEPTION {
            self.trapped_exceptions.fetch_or(kcore::trap::exception_bits(addr, len), Ordering::SeqCst);
        }
        Ok(())
    }

    /// `guest_map` after the handle checks (order: `kcore::guestmap`). The
    /// VMO stays pinned while any of its pages is mapped; pages enter the
    /// nested tables lazily, like physmem's.
    pub fn map(&self, gpa: u64, vmo: Arc<Vmo>, offset: u64, len: u64) -> Result<(), Status> {
        if vmo.is_read_only() {
            return Err(Status::AccessDenied);
        }
        // Pinned before the size check, so the VMO cannot shrink below it.
        let pinned = PinnedVmo::new(vmo);
        kcore::guestmap::validate_map(gpa, offset, len, GUEST_PHYS_SIZE, pinned.0.size()).map_err(map_status)?;
        let mut space = self.space.lock();
        space.mappings.map(gpa, len, offset, pinned).map_err(map_status)?;
        // Physmem pages the guest already touched there must fault again.
        let unmapped = self.backend.unmap_range(gpa, len);
        drop(space);
        if unmapped {
            self.shoot_down();
        }
        Ok(())
    }

    /// `guest_unmap` after the handle checks. When it returns, no VCPU can
    /// reach the removed pages (see [`Guest::shoot_down`]) and VMOs no
    /// longer mapped are unpinned.
    pub fn unmap(&self, gpa: u64, len: u64) -> Result<(), Status> {
        kcore::guestmap::validate_unmap(gpa, len, GUEST_PHYS_SIZE).map_err(map_status)?;
        let mut removed = Vec::new();
        let mut space = self.space.lock();
        if !space.mappings.unmap(gpa, len, &mut removed).map_err(map_status)? {
            return Ok(());
        }
        // Pages of physmem or of MEM traps in the range leave the tables
        // too; they come back on the next fault.
        let unmapped = self.backend.unmap_range(gpa, len);
        drop(space);
        if unmapped {
            self.shoot_down();
        }
        // Only now may the VMOs shrink or decommit.
        drop(removed);
        Ok(())
    }

    /// After the nested tables lost a mapping (their generation moved on):
    /// returns once no VCPU is still in an entry that may have begun before
    /// that. Each VCPU running the guest now is kicked out (its next entry
    /// takes a fresh ASID) and waited for. Allocates nothing.
    fn shoot_down(&self) {
        let _one_at_a_time = self.shootdown.lock();
        let me = cpu_index();
        for run in self.vcpus.lock().iter() {
            // `entries` before `cpu`: an entry counted after this read
            // began after the generation moved on and needs no wait.
            let entry = run.entries.load(Ordering::SeqCst);
            let cpu = run.cpu.load(Ordering::SeqCst);
            if cpu == NOT_RUNNING {
                run.awaited.store(NO_ENTRY, Ordering::SeqCst);
                continue;
            }
            run.awaited.store(entry, Ordering::SeqCst);
            if cpu != me {
                crate::arch::x86::ipi::kick(cpu);
            }
        }
        loop {
            let waiting = self.vcpus.lock().iter().any(|run| {
                let entry = run.awaited.load(Ordering::SeqCst);
                entry != NO_ENTRY
                    && run.cpu.load(Ordering::SeqCst) != NOT_RUNNING
                    && run.entries.load(Ordering::SeqCst) == entry
            });
            if !waiting {
                break;
            }
            core::hint::spin_loop();
        }
    }

    /// The last handle is gone: every trap is removed (only its own queued
    /// packets are cancelled; VCPUs paused on it wake with `BAD_STATE`). The
    /// VCPUs, which keep the guest alive, run on without traps. Allocates
    /// nothing.
    fn destroy(&self) {
        let mut traps = core::mem::replace(&mut self.space.lock().traps, TrapMap::new(GUEST_PHYS_SIZE));
        self.trapped_exceptions.store(0, Ordering::SeqCst);
        for trap in traps.drain() {
            if let Some(pool) = trap.port {
                pool.remove();
            }
        }
    }

    /// The trap of `kind` covering `addr`, if any: a binary search under the
    /// trap lock and a reference-count increment, no allocation.
    fn lookup(&self, kind: TrapKind, addr: u64) -> Option<Hit> {
        self.space.lock().traps.lookup(kind, addr).map(Hit::of)
    }

    /// A nested page fault at `gpa`: a MEM trap, else a mapping, else
    /// physmem below its size is mapped; anything else is `OUT_OF_RANGE`.
    fn nested_fault(&self, gpa: u64) -> Result<Fault, Status> {
        let space = self.space.lock();
        if let Some(trap) = space.traps.lookup(TrapKind::Mem, gpa) {
            return Ok(Fault::Trapped(Hit::of(trap)));
        }
        let page = gpa & !(PAGE_SIZE - 1);
        let hpa = match space.mappings.lookup(page) {
            Some((vmo, offset)) => vmo.0.guest_page(offset / PAGE_SIZE)?,
            None if gpa < self.memory.size() => self.memory.guest_page(page / PAGE_SIZE)?,
            None => return Err(Status::OutOfRange),
        };
        self.backend.map_page(page, hpa)?;
        drop(space);
        Ok(Fault::Mapped)
    }

    /// Reads guest memory (mappings and physmem, not trapped ranges) at
    /// `gpa`; false if any byte is outside it.
    fn read_ram(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let Some(at) = gpa.checked_add(done as u64) else { return false };
            let n = ((PAGE_SIZE - at % PAGE_SIZE) as usize).min(buf.len() - done);
            if !self.read_page(at, &mut buf[done..done + n]) {
                return false;
            }
            done += n;
        }
        true
    }

    /// [`Guest::read_ram`] within one page.
    fn read_page(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let (vmo, offset) = {
            let space = self.space.lock();
            if space.traps.lookup(TrapKind::Mem, gpa).is_some() {
                return false;
            }
            match space.mappings.lookup(gpa) {
                Some((vmo, page)) => (vmo.0.clone(), page + gpa % PAGE_SIZE),
                None => (self.memory.clone(), gpa),
            }
        };
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > vmo.size()) {
            return false;
        }
        matches!(vmo.read(offset, buf), Ok(n) if n == buf.len())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.memory.unpin();
    }
}

impl KernelObject for Guest {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Guest
    }
    fn is_waitable(&self) -> bool {
        false
    }
    fn on_zero_handles(&self) {
        self.destroy();
    }
}

/// Events `vcpu_interrupt` raised and the VCPU has not yet taken.
#[derive(Default)]
struct Events {
    nmi: bool,
    /// Exceptions 0-31 (bit n = vector n; never 2).
    exceptions: u32,
    /// External interrupts 32-255 (bit n of the 256).
    external: [u64; 4],
}

impl Events {
    fn has_external(&self) -> bool {
        self.external.iter().any(|&w| w != 0)
    }

    fn raise(&mut self, vector: u8) {
        match vector {
            2 => self.nmi = true,
            0..=31 => self.exceptions |= 1 << vector,
            _ => self.external[usize::from(vector / 64)] |= 1 << (vector % 64),
        }
    }

    fn take_external(&mut self) -> Option<u8> {
        for word in (0..4).rev() {
            let w = self.external[word];
            if w != 0 {
                let bit = 63 - w.leading_zeros();
                self.external[word] &= !(1 << bit);
                return Some((word as u32 * 64 + bit) as u8);
            }
        }
        None
    }

    fn take_exception(&mut self) -> Option<u8> {
        if self.exceptions == 0 {
            return None;
        }
        let vector = self.exceptions.trailing_zeros();
        self.exceptions &= !(1 << vector);
        Some(vector as u8)
    }
}

/// Whether exception `vector` pushes an error code.
fn exception_has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// The exception for a vector 0-31 (the architectural error code is 0 for
/// those that push one). Vector 15 cannot be injected as an exception; it
/// goes in with the external-interrupt event type instead.
fn exception_event(vector: u8) -> Option<Event> {
    match vector {
        15 => None,
        _ if exception_has_error_code(vector) => Some(Event::Exception { vector, error_code: Some(0) }),
        _ => Some(Event::Exception { vector, error_code: None }),
    }
}

/// The hardware state, touched only by the VCPU's thread.
struct Hw {
    backend: Box<dyn VcpuBackend>,
    /// The guest shut down (triple fault): it cannot run again.
    dead: bool,
}

/// A virtual CPU of a guest.
pub struct Vcpu {
    base: ObjectBase,
    guest: Arc<Guest>,
    /// The `sched::Thread` id of the thread it is bound to.
    thread_id: u64,
    /// Backs the virtual-APIC page once the APIC is virtualized (kept, unused
    /// in phase 1: there is no in-kernel APIC; see `vcpu_interrupt`).
    _apic: Arc<Vmo>,
    hw: spin::Mutex<Hw>,
    events: IrqSpinlock<Events>,
    /// The VCPU's thread while it is halted in HLT.
    halted: WaitQueue,
    /// Shared with the guest's list for shootdowns.
    run: Arc<RunState>,
    /// Times the VCPU paused because a trap's packet pool was empty.
    pauses: AtomicU64,
}

impl Vcpu {
    /// `vcpu_create` after the handle checks, bound to the calling thread.
    /// `INVALID_ARGS` if `ip >= MX_GUEST_PHYS_SIZE` or `cr3 >
    /// MX_GUEST_PHYS_SIZE - 4096` (whatever backs those addresses: physmem,
    /// a mapping made later, or nothing); `NO_MEMORY`.
    pub fn create(guest: &Arc<Guest>, ip: u64, cr3: u64, apic: Arc<Vmo>) -> Result<Arc<Vcpu>, Status> {
        if ip >= GUEST_PHYS_SIZE || cr3 > GUEST_PHYS_SIZE - PAGE_SIZE {
            return Err(Status::InvalidArgs);
        }
        if apic.size() < PAGE_SIZE {
            return Err(Status::InvalidArgs);
        }
        let backend = guest.backend.create_vcpu(VcpuEntry { ip, cr3 })?;
        let run = Arc::new(RunState::new());
        {
            let mut vcpus = guest.vcpus.lock();
            vcpus.try_reserve(1).map_err(|_| Status::NoMemory)?;
            vcpus.push(run.clone());
        }
        Ok(Arc::new(Vcpu {
            base: ObjectBase::new(ObjType::Vcpu, Signals::NONE),
            guest: guest.clone(),
            thread_id: crate::sched::current_ref().id(),
            _apic: apic,
            hw: spin::Mutex::new(Hw { backend, dead: false }),
            events: IrqSpinlock::new(Events::default()),
            halted: WaitQueue::new(),
            run,
            pauses: AtomicU64::new(0),
        }))
    }

    /// `BAD_STATE` unless called from the VCPU's thread.
    pub fn check_thread(&self) -> Result<(), Status> {
        if crate::sched::current_ref().id() == self.thread_id {
            Ok(())
        } else {
            Err(Status::BadState)
        }
    }

    /// The guest's RIP (for tests and diagnostics; the VCPU's thread only).
    pub fn guest_rip(&self) -> Result<u64, Status> {
        self.check_thread()?;
        Ok(self.hw.lock().backend.rip())
    }

    /// How many times the VCPU paused on an empty trap packet pool.
    pub fn pause_count(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// `vcpu_interrupt`: from any thread. `OUT_OF_RANGE` above 255.
    pub fn interrupt(&self, vector: u32) -> Result<(), Status> {
        let vector = u8::try_from(vector).map_err(|_| Status::OutOfRange)?;
        self.events.lock().raise(vector);
        self.halted.wake_all(Status::Ok.into_raw());
        self.run.kick.store(true, Ordering::SeqCst);
        let cpu = self.run.cpu.load(Ordering::SeqCst);
        if cpu != NOT_RUNNING && cpu != cpu_index() {
            crate::arch::x86::ipi::kick(cpu);
        }
        Ok(())
    }

    /// `vcpu_read_state(MX_VCPU_STATE)` (the caller checked the thread).
    pub fn read_state(&self) -> Result<VcpuState, Status> {
        self.check_thread()?;
        let hw = self.hw.lock();
        let r = hw.backend.gprs();
        Ok(VcpuState {
            rax: r[0],
            rcx: r[1],
            rdx: r[2],
            rbx: r[3],
            rsp: r[4],
            rbp: r[5],
            rsi: r[6],
            rdi: r[7],
            r8: r[8],
            r9: r[9],
            r10: r[10],
            r11: r[11],
            r12: r[12],
            r13: r[13],
            r14: r[14],
            r15: r[15],
            flags: (hw.backend.rflags() as u32) & VCPU_FLAGS_USER,
        })
    }

    /// `vcpu_write_state(MX_VCPU_STATE)`: the user RFLAGS bits are applied
    /// only if `flags` has bit 1 set.
    pub fn write_state(&self, s: &VcpuState) -> Result<(), Status> {
        self.check_thread()?;
        let mut hw = self.hw.lock();
        let regs = [
            s.rax, s.rcx, s.rdx, s.rbx, s.rsp, s.rbp, s.rsi, s.rdi, s.r8, s.r9, s.r10, s.r11, s.r12, s.r13, s.r14,
            s.r15,
        ];
        hw.backend.set_gprs(&regs);
        if s.flags & VCPU_FLAGS_APPLY != 0 {
            let user = u64::from(VCPU_FLAGS_USER);
            let rflags = (hw.backend.rflags() & !user) | (u64::from(s.flags) & user);
            hw.backend.set_rflags(rflags);
        }
        Ok(())
    }

    /// `vcpu_read_state(MX_VCPU_SYSTEM)`.
    pub fn read_system(&self) -> Result<VcpuSystem, Status> {
        self.check_thread()?;
        Ok(self.hw.lock().backend.system())
    }

    /// `vcpu_write_state(MX_VCPU_SYSTEM)`: applies `rip`, `rflags` and `cr3`
    /// (the other fields are ignored). `INVALID_ARGS`, changing nothing, if
    /// `rflags` lacks bit 1 or has a reserved bit, or `cr3` is not below
    /// `MX_GUEST_PHYS_SIZE`.
    pub fn write_system(&self, s: &VcpuSystem) -> Result<(), Status> {
        self.check_thread()?;
        if s.rflags & VCPU_RFLAGS_FIXED == 0 || s.rflags & VCPU_RFLAGS_RESERVED != 0 || s.cr3 >= GUEST_PHYS_SIZE {
            return Err(Status::InvalidArgs);
        }
        let mut hw = self.hw.lock();
        // Rewriting the same RIP (a read-modify-write of other fields) must
        // not end an interrupt shadow.
        if hw.backend.rip() != s.rip {
            hw.backend.set_rip(s.rip);
        }
        hw.backend.set_rflags(s.rflags);
        if hw.backend.paging_regs().cr3 != s.cr3 {
            hw.backend.set_cr3(s.cr3);
        }
        Ok(())
    }

    /// `vcpu_write_state(MX_VCPU_IO)`: `access_size` (1, 2 or 4, else
    /// `INVALID_ARGS`) bytes of `data` into the low bytes of RAX.
    pub fn write_io(&self, io: &VcpuIo) -> Result<(), Status> {
        self.check_thread()?;
        let mask: u64 = match io.access_size {
            1 => 0xff,
            2 => 0xffff,
            4 => 0xffff_ffff,
            _ => return Err(Status::InvalidArgs),
        };
        let mut hw = self.hw.lock();
        let mut regs = hw.backend.gprs();
        regs[RAX] = (regs[RAX] & !mask) | (u64::from(io.data) & mask);
        hw.backend.set_gprs(&regs);
        Ok(())
    }

    /// `vcpu_resume`: runs the guest until an exit user space must handle.
    pub fn resume(&self) -> Result<PortPacket, Status> {
        self.check_thread()?;
        let mut hw = self.hw.lock();
        if hw.dead {
            return Err(Status::BadState);
        }
        loop {
            if crate::sched::with_current(|t| t.is_killed()) {
                return Err(Status::Canceled);
            }
            // Exits handled here (CPUID, MSRs, windows) can come in a tight
            // loop that never blocks.
            crate::sched::preempt_point();
            self.prepare_events(hw.backend.as_mut());
            hw.backend.set_exception_intercepts(self.guest.trapped_exceptions.load(Ordering::SeqCst));
            let exit = hw.backend.enter(&self.run)?;
            match self.handle_exit(hw.backend.as_mut(), exit) {
                Ok(None) => continue,
                Ok(Some(packet)) => return Ok(packet),
                Err(status) => {
                    if exit == Exit::Shutdown {
                        hw.dead = true;
                    }
                    return Err(status);
                }
            }
        }
    }

    /// Queues the most urgent deliverable event for the next entry and asks
    /// for an interrupt window while an external interrupt must wait.
    ///
    /// No window is asked for on an entry that delivers an event: the
    /// window would open right after that delivery, before the event's
    /// handler ran an instruction, and the next interrupt would overtake it.
    /// The remaining events go in at the next exit (at the latest the next
    /// host timer tick, since host interrupts always exit the guest).
    fn prepare_events(&self, backend: &mut dyn VcpuBackend) {
        let mut events = self.events.lock();
        if backend.event_pending() {
            backend.set_interrupt_window(false);
            return;
        }
        {
            if events.nmi {
                events.nmi = false;
                backend.inject(Event::Nmi);
            } else if events.has_external() && backend.interruptible() {
                if let Some(vector) = events.take_external() {
                    backend.inject(Event::External(vector));
                }
            } else if let Some(vector) = events.take_exception() {
                match exception_event(vector) {
                    Some(event) => backend.inject(event),
                    None => backend.inject(Event::External(vector)),
                }
            }
        }
        let injected = backend.event_pending();
        backend.set_interrupt_window(!injected && events.has_external());
    }

    /// Handles one exit: `Ok(None)` to run on, a packet for user space, or
    /// the status `vcpu_resume` returns.
    fn handle_exit(&self, backend: &mut dyn VcpuBackend, exit: Exit) -> Result<Option<PortPacket>, Status> {
        match exit {
            Exit::Kicked | Exit::ExternalInterrupt | Exit::InterruptWindow => Ok(None),
            Exit::Io { port, size, input, string, rep, next_rip } => {
                if string || rep {
                    return Err(Status::NotSupported);
                }
                let hit = self.guest.lookup(TrapKind::Io, u64::from(port));
                let mut regs = backend.gprs();
                let data = if input {
                    if size == 4 {
                        regs[RAX] = 0;
                    } else if hit.as_ref().is_some_and(|h| h.port.is_some()) {
                        // Delivered through the port, nobody supplies the
                        // value: the IN reads zero.
                        regs[RAX] &= !(u64::MAX >> (64 - 8 * u32::from(size)));
                    }
                    backend.set_gprs(&regs);
                    0
                } else {
                    (regs[RAX] & (u64::MAX >> (64 - 8 * u32::from(size)))) as u32
                };
                backend.set_rip(next_rip);
                let io = PacketGuestIo { port, access_size: size, input: u8::from(input), data, ..Default::default() };
                self.deliver(hit, Payload::GuestIo(io))
            }
            Exit::NestedPageFault { gpa, by_cpu } => match self.guest.nested_fault(gpa)? {
                Fault::Mapped => Ok(None),
                // A trapped page used as the guest's page tables, IDT or
                // stack during event delivery: no instruction to complete
                // and report, so the exit is unhandled (NOT_SUPPORTED).
                Fault::Trapped(_) if by_cpu => Err(Status::NotSupported),
                Fault::Trapped(hit) => {
                    let mem = self.mem_exit(backend, gpa)?;
                    self.deliver(Some(hit), Payload::GuestMem(mem))
                }
            },
            Exit::Cpuid => {
                let (leaf, subleaf, [eax, ebx, ecx, edx]) = x86::cpuid(backend);
                advance(backend, 2);
                if self.guest.lookup(TrapKind::Cpuid, u64::from(leaf)).is_none() {
                    return Ok(None);
                }
                let cpuid = PacketGuestCpuid { leaf, subleaf, eax, ebx, ecx, edx, reserved: 0 };
                Ok(Some(PortPacket::new(0, 0, Payload::GuestCpuid(cpuid))))
            }
            Exit::Msr { write } => match x86::msr(backend, write) {
                x86::MsrAccess::Done => {
                    advance(backend, 2);
                    Ok(None)
                }
                x86::MsrAccess::Refused => self.raise(backend, 13, Some(0)),
                x86::MsrAccess::Unknown => {
                    let regs = backend.gprs();
                    let msr = regs[RCX] as u32;
                    if self.guest.lookup(TrapKind::Msr, u64::from(msr)).is_none() {
                        return self.raise(backend, 13, Some(0));
                    }
                    let value = if write { (regs[RDX] << 32) | (regs[RAX] & 0xffff_ffff) } else { 0 };
                    advance(backend, 2);
                    let access =
                        PacketGuestMsr { msr, write: u8::from(write), inst_len: 2, value, ..Default::default() };
                    Ok(Some(PortPacket::new(0, 0, Payload::GuestMsr(access))))
                }
            },
            Exit::Cr8Write => self.cr8_write(backend),
            Exit::Xsetbv => {
                if x86::xsetbv(backend).is_err() {
                    return self.raise(backend, 13, Some(0));
                }
                advance(backend, 3);
                Ok(None)
            }
            Exit::Hlt => {
                advance(backend, 1);
                self.halt(backend.rflags() & RFLAGS_IF != 0).map(|()| None)
            }
            Exit::Pause => {
                advance(backend, 2);
                crate::sched::yield_now();
                Ok(None)
            }
            Exit::NoOp { len } => {
                advance(backend, u64::from(len));
                Ok(None)
            }
            Exit::Vmcall => {
                if self.guest.lookup(TrapKind::Vmcall, 0).is_none() {
                    return self.raise(backend, 6, None);
                }
                advance(backend, 3);
                let vmcall = PacketGuestVmcall { inst_len: 3, ..Default::default() };
                Ok(Some(PortPacket::new(0, 0, Payload::GuestVmcall(vmcall))))
            }
            Exit::Undefined => self.raise(backend, 6, None),
            Exit::SoftwareInterrupt => self.software_interrupt(backend),
            Exit::Exception { vector, error_code, address } => {
                let error_code = exception_has_error_code(vector).then_some(error_code);
                if vector == 14 && self.guest.lookup(TrapKind::Exception, 14).is_none() {
                    // The trap went away while the guest ran: deliver the
                    // fault as the CPU would have.
                    backend.set_cr2(address);
                }
                self.raise_with(backend, vector, error_code, if vector == 14 { address } else { 0 })
            }
            Exit::Shutdown => {
                log::debug!("hypervisor: guest shut down (triple fault) at rip {:#x}", backend.rip());
                Err(Status::BadState)
            }
            Exit::EntryFailed => Err(Status::BadState),
            Exit::Unknown(code) => {
                log::debug!("hypervisor: unhandled exit {code:#x} at rip {:#x}", backend.rip());
                Err(Status::NotSupported)
            }
        }
    }

    /// An intercepted INT3, INTO or INT n at RIP: #BP and #OF go to their
    /// EXCEPTION traps (RIP at the instruction), everything else is
    /// completed as the CPU would have (RIP past it, the interrupt
    /// delivered as a software interrupt).
    fn software_interrupt(&self, backend: &mut dyn VcpuBackend) -> Result<Option<PortPacket>, Status> {
        const RFLAGS_OF: u64 = 1 << 11;
        let (cs_base, mode) = backend.code_segment();
        let rip = backend.rip();
        let linear = if mode == Mode::Bits64 { rip } else { cs_base.wrapping_add(rip) & 0xffff_ffff };
        let (bytes, fetched) = self.fetch(backend, linear)?;
        let (vector, len) = match bytes[..fetched] {
            [0xcc, ..] => (3, 1),
            [0xce, ..] if mode != Mode::Bits64 => {
                if backend.rflags() & RFLAGS_OF == 0 {
                    advance(backend, 1);
                    return Ok(None);
                }
                (4, 1)
            }
            [0xcd, vector, ..] => (vector, 2),
            // A prefixed INT: nothing a guest needs.
            _ => return Err(Status::NotSupported),
        };
        if len == 1 && self.guest.lookup(TrapKind::Exception, u64::from(vector)).is_some() {
            return self.raise(backend, vector, None);
        }
        advance(backend, len);
        backend.inject(Event::Software(vector));
        Ok(None)
    }

    /// Raises exception `vector` for the instruction at RIP (which stays):
    /// a GUEST_EXCEPTION packet if an EXCEPTION trap covers the vector,
    /// else the exception is injected.
    fn raise(
        &self,
        backend: &mut dyn VcpuBackend,
        vector: u8,
        error_code: Option<u32>,
    ) -> Result<Option<PortPacket>, Status> {
        self.raise_with(backend, vector, error_code, 0)
    }

    /// [`Vcpu::raise`] with the faulting address of a #PF.
    fn raise_with(
        &self,
        backend: &mut dyn VcpuBackend,
        vector: u8,
        error_code: Option<u32>,
        cr2: u64,
    ) -> Result<Option<PortPacket>, Status> {
        if self.guest.lookup(TrapKind::Exception, u64::from(vector)).is_none() {
            backend.inject(Event::Exception { vector, error_code });
            return Ok(None);
        }
        let exception = PacketGuestException {
            vector,
            error_code_valid: u8::from(error_code.is_some()),
            error_code: error_code.unwrap_or(0),
            cr2,
            ..Default::default()
        };
        Ok(Some(PortPacket::new(0, 0, Payload::GuestException(exception))))
    }

    /// Blocks the VCPU's thread in HLT until an event is pending.
    /// `CANCELED` if the thread is killed meanwhile.
    /// A HLT: waits until an event the guest takes is pending (an NMI or
    /// exception, or an external interrupt if `interrupts_on`: with IF
    /// clear the CPU stays halted, and waking on one the guest cannot take
    /// made `resume` spin on HLT exits).
    fn halt(&self, interrupts_on: bool) -> Result<(), Status> {
        loop {
            let events = self.events.lock();
            if events.nmi || events.exceptions != 0 || (interrupts_on && events.has_external()) {
                return Ok(());
            }
            if self.halted.block(events, INFINITE) == WakeReason::Interrupted {
                return Err(Status::Canceled);
            }
        }
    }

    /// Delivers a trap packet whose instruction has completed (RIP is past
    /// it). Every access to a trap with a port goes through the port, as the
    /// man page says, from the trap's pool, and the guest runs on
    /// (`Ok(None)`), after a pause if the pool is empty; nobody supplies a
    /// value for a read delivered this way (an `IN` reads zero, a MEM read
    /// leaves its destination unchanged). Everything else comes back from
    /// `vcpu_resume` with key 0. An asynchronous packet that cannot be
    /// queued makes `vcpu_resume` fail (`BAD_STATE`: the port has no handles
    /// or the guest was destroyed; `CANCELED`: the thread was killed while
    /// paused).
    fn deliver(&self, hit: Option<Hit>, payload: Payload) -> Result<Option<PortPacket>, Status> {
        match hit {
            Some(Hit { key, port: Some(pool) }) => {
                let packet = PortPacket::new(key, 0, payload);
                let packet = kcore::port::Packet {
                    key,
                    kind: packet.packet_type,
                    status: 0,
                    payload: packet.payload.to_bytes(),
                };
                pool.queue(packet, || {
                    self.pauses.fetch_add(1, Ordering::Relaxed);
                })?;
                Ok(None)
            }
            _ => Ok(Some(PortPacket::new(0, 0, payload))),
        }
    }

    /// A MEM trap exit: fetches the instruction through the guest's page
    /// tables, moves RIP past it and builds the payload.
    fn mem_exit(&self, backend: &mut dyn VcpuBackend, gpa: u64) -> Result<PacketGuestMem, Status> {
        let (inst, bytes) = self.decode_at_rip(backend)?;
        let len = usize::from(inst.len);
        advance(backend, len as u64);
        let mut inst_buf = [0u8; X86_MAX_INST_LEN];
        inst_buf[..len].copy_from_slice(&bytes[..len]);
        Ok(PacketGuestMem { addr: gpa, inst_len: inst.len, inst_buf, reserved: 0 })
    }

    /// The instruction at RIP, decoded, and its bytes.
    fn decode_at_rip(
        &self,
        backend: &dyn VcpuBackend,
    ) -> Result<(x86decode::Instruction, [u8; X86_MAX_INST_LEN]), Status> {
        let (cs_base, mode) = backend.code_segment();
        let rip = backend.rip();
        let linear = if mode == Mode::Bits64 { rip } else { cs_base.wrapping_add(rip) & 0xffff_ffff };
        let (bytes, fetched) = self.fetch(backend, linear)?;
        match x86decode::decode(&bytes[..fetched], mode) {
            Ok(inst) => Ok((inst, bytes)),
            Err(DecodeError::TooLong) => Err(Status::Internal),
            Err(DecodeError::Truncated) => Err(Status::OutOfRange),
            Err(DecodeError::Unsupported(_)) => Err(Status::NotSupported),
        }
    }

    /// An intercepted MOV to CR8 (see the SVM backend): the source's value
    /// becomes the task priority, as the CPU would have done; a value above
    /// 15 is #GP.
    fn cr8_write(&self, backend: &mut dyn VcpuBackend) -> Result<Option<PortPacket>, Status> {
        let (inst, _) = self.decode_at_rip(backend)?;
        // Something else at RIP: the guest rewrote its code under the exit.
        let source = inst.mov_to_cr8_source().ok_or(Status::NotSupported)?;
        let mut value = backend.gprs()[source];
        if backend.code_segment().1 != Mode::Bits64 {
            value &= 0xffff_ffff;
        }
        if value > 15 {
            return self.raise(backend, 13, Some(0));
        }
        backend.set_tpr(value as u8);
        advance(backend, u64::from(inst.len));
        Ok(None)
    }

    /// Up to 15 instruction bytes at the linear address `linear`, through
    /// the guest's page tables; stops early at an unreadable page.
    /// `NOT_FOUND` if the first byte's page is not present, `OUT_OF_RANGE`
    /// if it is not guest RAM.
    fn fetch(&self, backend: &dyn VcpuBackend, linear: u64) -> Result<([u8; X86_MAX_INST_LEN], usize), Status> {
        let regs = backend.paging_regs();
        let mut bytes = [0u8; X86_MAX_INST_LEN];
        let mut done = 0;
        while done < bytes.len() {
            let va = linear.wrapping_add(done as u64);
            let mut read = |gpa: u64, size: usize| {
                let mut word = [0u8; 8];
                self.guest.read_ram(gpa, &mut word[..size]).then(|| u64::from_le_bytes(word))
            };
            let gpa = match x86paging::translate(&regs, va, &mut read) {
                Ok(gpa) => gpa,
                Err(_) if done > 0 => break,
                Err(WalkError::NotPresent) => return Err(Status::NotFound),
                Err(WalkError::Unreadable(_)) => return Err(Status::OutOfRange),
            };
            let in_page = (PAGE_SIZE - (gpa % PAGE_SIZE)) as usize;
            let n = in_page.min(bytes.len() - done);
            if !self.guest.read_ram(gpa, &mut bytes[done..done + n]) {
                if done == 0 {
                    return Err(Status::OutOfRange);
                }
                break;
            }
            done += n;
        }
        Ok((bytes, done))
    }
}

/// Moves RIP past an instruction of `len` bytes.
fn advance(backend: &mut dyn VcpuBackend, len: u64) {
    let (_, mode) = backend.code_segment();
    let rip = backend.rip().wrapping_add(len);
    backend.set_rip(if mode == Mode::Bits64 { rip } else { rip & 0xffff_ffff });
}

impl Drop for Vcpu {
    fn drop(&mut self) {
        let mut vcpus = self.guest.vcpus.lock();
        if let Some(at) = vcpus.iter().position(|run| Arc::ptr_eq(run, &self.run)) {
            vcpus.swap_remove(at);
        }
    }
}

impl KernelObject for Vcpu {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Vcpu
    }
    fn is_waitable(&self) -> bool {
        false
    }
}
