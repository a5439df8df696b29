//! Guests and VCPUs for a virtual machine manager: typed wrappers over
//! `mx_guest_*` and `mx_vcpu_*`, exits decoded from their packets, and an
//! x86 MMIO instruction decoder that says what a trapped access does (not
//! only how long it is) so the manager can emulate it.
//!
//! ```text
//! let guest = Guest::create(&resource, &physmem)?;          // RAM = physmem from GPA 0
//! guest.map(0x8000_0000, &vmo, 0, 0x10000)?;               // more memory, shared with `vmo`
//! guest.set_trap(TrapKind::Io, 0x3f8, 8, None, 0)?;        // synchronous: through resume
//! let vcpu = Vcpu::create(&guest, entry, cr3, &apic_vmo)?;  // bound to this thread
//! match vcpu.resume()? {
//!     Exit::Io { port, size, input: false, data, .. } => { /* an OUT */ }
//!     Exit::Io { input: true, size, .. } => vcpu.write_io(size, value)?,
//!     Exit::Mem { addr, instruction, .. } => { /* instruction.kind: Read / Write / Test / Stos */ }
//! }
//! ```
//!
//! The guest RIP is already past the instruction when an exit comes back
//! (the kernel decodes lengths with `kcore::x86decode`; this module reuses
//! it and adds the operands), except for [`Exit::Exception`], where it is at
//! the instruction. The synchronous trap kinds (`TrapKind::Msr`, `Cpuid`,
//! `Exception`, `Vmcall`) come back as [`Exit::Msr`], [`Exit::Cpuid`],
//! [`Exit::Exception`] and [`Exit::Vmcall`]; [`Vcpu::read_system`] and
//! [`Vcpu::write_system`] reach RIP, RFLAGS, CR3 and the rest of
//! `MX_VCPU_SYSTEM`. Errors are [`Error`]: a kernel [`Status`], or a
//! MEM exit whose instruction the decoder does not model.

use core::fmt;

use mx_abi::wire::Wire;
use mx_abi::{
    mx_handle_t, PacketGuestIo, PacketGuestMem, Payload, PortPacket, VcpuCreateArgs, VcpuIo, VcpuState, VcpuStateKind,
    VcpuSystem, HANDLE_INVALID, VCPU_FLAGS_APPLY,
};

pub use kcore::x86decode::Mode;
pub use mx_abi::TrapKind;

use crate::{ok, sys, Handle, Port, Resource, Rights, Status, Vmo};

/// Why a hypervisor call or an exit could not be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The kernel refused the call.
    Status(Status),
    /// A MEM exit whose instruction [`decode`] does not model (the
    /// instruction bytes and why).
    Undecodable {
        /// The guest-physical address accessed.
        addr: u64,
        /// The packet's key.
        key: u64,
        /// The instruction bytes the kernel fetched (`len` of them).
        bytes: [u8; 15],
        /// How many bytes.
        len: u8,
        /// What the decoder said.
        error: DecodeError,
    },
    /// A packet of a type [`Exit`] does not model (its type).
    UnexpectedPacket(u32),
}

impl From<Status> for Error {
    fn from(status: Status) -> Error {
        Error::Status(status)
    }
}

impl Error {
    /// The kernel status, or `NOT_SUPPORTED` for an exit this module cannot
    /// decode.
    pub fn status(&self) -> Status {
        match self {
            Error::Status(s) => *s,
            Error::Undecodable { .. } | Error::UnexpectedPacket(_) => Status::NotSupported,
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        e.status()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status(s) => write!(f, "{s:?}"),
            Error::Undecodable { addr, bytes, len, error, .. } => {
                write!(f, "MEM exit at {addr:#x}: cannot emulate {:02x?}: {error:?}", &bytes[..usize::from(*len)])
            }
            Error::UnexpectedPacket(t) => write!(f, "unexpected packet type {t:#x}"),
        }
    }
}

/// A guest: its physical memory and traps.
#[derive(Debug, PartialEq, Eq)]
pub struct Guest(Handle);

impl Guest {
    /// `mx_guest_create`: `physmem` (READ, WRITE, EXECUTE) becomes guest RAM
    /// from GPA 0. `resource` is the root resource or a HYPERVISOR one
    /// ([`hypervisor_resource`]). `NOT_SUPPORTED` without hardware
    /// virtualization.
    pub fn create(resource: &Resource, physmem: &Vmo) -> Result<Guest, Status> {
        let mut out = HANDLE_INVALID;
        // SAFETY: `out` is a valid out-pointer.
        ok(unsafe { sys::mx_guest_create(resource.raw(), 0, physmem.raw(), &mut out) })?;
        Ok(Guest(Handle::from_raw(out)))
    }

    /// `mx_guest_set_trap`: accesses to `[addr, addr + len)` of `kind`'s
    /// space exit. Without a port they come back through [`Vcpu::resume`]
    /// with key 0; with one, as packets with `key` on it (the kernel's
    /// delivery; see `kernel/src/hypervisor`).
    pub fn set_trap(&self, kind: TrapKind, addr: u64, len: u64, port: Option<&Port>, key: u64) -> Result<(), Status> {
        let port = port.map_or(HANDLE_INVALID, Port::raw);
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_guest_set_trap(self.raw(), kind as u32, addr as usize, len as usize, port, key) }).map(drop)
    }

    /// `mx_guest_map`: guest-physical `[gpa, gpa + len)` shows the pages of
    /// `vmo` (READ, WRITE, EXECUTE) from `vmo_offset`, shared with every
    /// other mapping of the VMO. All page-aligned; over physmem, under MEM
    /// traps.
    pub fn map(&self, gpa: u64, vmo: &Vmo, vmo_offset: u64, len: u64) -> Result<(), Status> {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_guest_map(self.raw(), 0, gpa as usize, vmo.raw(), vmo_offset, len as usize) }).map(drop)
    }

    /// `mx_guest_unmap`: removes every mapped page in `[gpa, gpa + len)`;
    /// when it returns no VCPU can reach them.
    pub fn unmap(&self, gpa: u64, len: u64) -> Result<(), Status> {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_guest_unmap(self.raw(), gpa as usize, len as usize) }).map(drop)
    }

    /// Treats `handle` as a guest.
    pub const fn from_handle(handle: Handle) -> Guest {
        Guest(handle)
    }
    /// The handle.
    pub const fn handle(&self) -> &Handle {
        &self.0
    }
    /// The raw handle value, still owned.
    pub const fn raw(&self) -> mx_handle_t {
        self.0.raw()
    }
    /// The handle, owned.
    pub fn into_handle(self) -> Handle {
        self.0
    }
    /// A duplicate with `rights`.
    pub fn duplicate(&self, rights: Rights) -> Result<Guest, Status> {
        self.0.duplicate(rights).map(Guest)
    }
}

/// `mx_resource_create(root, MX_RSRC_KIND_HYPERVISOR, 0, 0)`: the resource
/// [`Guest::create`] takes, as Magenta's sysinfo made it.
pub fn hypervisor_resource(root: &Resource) -> Result<Resource, Status> {
    root.create_child(mx_abi::ResourceKind::Hypervisor as u32, 0, 0)
}

/// An I/O port access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    /// The packet's key (0 for a synchronous trap).
    pub key: u64,
    /// The port.
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    /// `IN` (the manager answers with [`Vcpu::write_io`]) or `OUT`.
    pub input: bool,
    /// What an `OUT` wrote (low `size` bytes).
    pub data: u32,
}

/// Why the guest stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// An `IN` or `OUT`.
    Io {
        /// The packet's key (0 for a synchronous trap).
        key: u64,
        /// The port.
        port: u16,
        /// 1, 2 or 4 bytes.
        size: u8,
        /// `IN` (answer with [`Vcpu::write_io`]) or `OUT`.
        input: bool,
        /// What an `OUT` wrote (low `size` bytes).
        data: u32,
    },
    /// An access to a trapped guest-physical page.
    Mem {
        /// The packet's key.
        key: u64,
        /// The guest-physical address.
        addr: u64,
        /// What the access does.
        instruction: Instruction,
    },
    /// An RDMSR or WRMSR of a trapped MSR the kernel does not virtualize
    /// (`TrapKind::Msr`; RIP is past it). For RDMSR, answer with
    /// [`Vcpu::write_state`] (EDX:EAX).
    Msr {
        /// The packet's key (0: MSR traps are synchronous).
        key: u64,
        /// The MSR.
        msr: u32,
        /// WRMSR (with `value`) or RDMSR.
        write: bool,
        /// What WRMSR wrote; 0 for RDMSR.
        value: u64,
    },
    /// A CPUID of a trapped leaf (`TrapKind::Cpuid`; RIP is past it, and the
    /// kernel's result is already in the registers, which the manager may
    /// overwrite).
    Cpuid {
        /// The packet's key (0: CPUID traps are synchronous).
        key: u64,
        /// EAX.
        leaf: u32,
        /// ECX.
        subleaf: u32,
        /// The kernel's EAX, EBX, ECX, EDX.
        result: [u32; 4],
    },
    /// An exception on a trapped vector (`TrapKind::Exception`), not
    /// delivered; RIP is at the instruction that raised it (also for INT3).
    /// Re-raise it with [`Vcpu::interrupt`].
    Exception {
        /// The packet's key (0: EXCEPTION traps are synchronous).
        key: u64,
        /// The vector, 0-31.
        vector: u8,
        /// The error code, for vectors that push one.
        error_code: Option<u32>,
        /// #PF: the faulting address; otherwise 0.
        cr2: u64,
    },
    /// A VMMCALL (`TrapKind::Vmcall`; RIP is past it): the registers are
    /// read and written with [`Vcpu::read_state`] and [`Vcpu::write_state`].
    Vmcall {
        /// The packet's key (0: VMCALL traps are synchronous).
        key: u64,
    },
}

impl Exit {
    /// Decodes a GUEST_IO or GUEST_MEM packet (from [`Vcpu::resume`] or a
    /// trap port) whose instruction runs in `mode`.
    pub fn from_packet(packet: &PortPacket, mode: Mode) -> Result<Exit, Error> {
        match packet.payload() {
            Ok(Payload::GuestIo(io)) => Ok(Exit::from_io(packet.key, &io)),
            Ok(Payload::GuestMem(mem)) => Exit::from_mem(packet.key, &mem, mode),
            Ok(Payload::GuestMsr(m)) => {
                Ok(Exit::Msr { key: packet.key, msr: m.msr, write: m.write != 0, value: m.value })
            }
            Ok(Payload::GuestCpuid(c)) => Ok(Exit::Cpuid {
                key: packet.key,
                leaf: c.leaf,
                subleaf: c.subleaf,
                result: [c.eax, c.ebx, c.ecx, c.edx],
            }),
            Ok(Payload::GuestException(e)) => Ok(Exit::Exception {
                key: packet.key,
                vector: e.vector,
                error_code: (e.error_code_valid != 0).then_some(e.error_code),
                cr2: e.cr2,
            }),
            Ok(Payload::GuestVmcall(_)) => Ok(Exit::Vmcall { key: packet.key }),
            _ => Err(Error::UnexpectedPacket(packet.packet_type)),
        }
    }

    fn from_io(key: u64, io: &PacketGuestIo) -> Exit {
        Exit::Io { key, port: io.port, size: io.access_size, input: io.input != 0, data: io.data }
    }

    fn from_mem(key: u64, mem: &PacketGuestMem, mode: Mode) -> Result<Exit, Error> {
        match decode(mem.instruction(), mode) {
            Ok(instruction) => Ok(Exit::Mem { key, addr: mem.addr, instruction }),
            Err(error) => {
                let len = mem.inst_len.min(15);
                Err(Error::Undecodable { addr: mem.addr, key, bytes: mem.inst_buf, len, error })
            }
        }
    }

    /// The packet's key.
    pub fn key(&self) -> u64 {
        match self {
            Exit::Io { key, .. }
            | Exit::Mem { key, .. }
            | Exit::Msr { key, .. }
            | Exit::Cpuid { key, .. }
            | Exit::Exception { key, .. }
            | Exit::Vmcall { key } => *key,
        }
    }

    /// The access as an [`IoAccess`], for an IO exit.
    pub fn io(&self) -> Option<IoAccess> {
        match *self {
            Exit::Io { key, port, size, input, data } => Some(IoAccess { key, port, size, input, data }),
            _ => None,
        }
    }
}

/// A virtual CPU. `resume`, `read_state`, `write_state` and `write_io` work
/// only on the thread that created it (`BAD_STATE` elsewhere);
/// [`Vcpu::interrupt`] works from any thread.
#[derive(Debug, PartialEq, Eq)]
pub struct Vcpu(Handle);

impl Vcpu {
    /// `mx_vcpu_create`: a VCPU of `guest` bound to the calling thread,
    /// starting in 64-bit mode at `ip` with `cr3`; `apic` (READ|WRITE, a page
    /// or more) backs its virtual APIC page.
    pub fn create(guest: &Guest, ip: u64, cr3: u64, apic: &Vmo) -> Result<Vcpu, Status> {
        let args = VcpuCreateArgs { ip, cr3, apic_vmo: apic.raw() };
        Vcpu::create_with(guest, &args)
    }

    /// `mx_vcpu_create` with the raw arguments.
    pub fn create_with(guest: &Guest, args: &VcpuCreateArgs) -> Result<Vcpu, Status> {
        let mut out = HANDLE_INVALID;
        // SAFETY: `args` is a valid mx_vcpu_create_args_t; `out` a valid out-pointer.
        ok(unsafe { sys::mx_vcpu_create(guest.raw(), 0, args, &mut out) })?;
        Ok(Vcpu(Handle::from_raw(out)))
    }

    /// `mx_vcpu_resume`: the raw packet.
    pub fn resume_packet(&self) -> Result<PortPacket, Status> {
        let mut bytes = [0u8; PortPacket::SIZE];
        // SAFETY: `bytes` holds one 48-byte packet.
        ok(unsafe { sys::mx_vcpu_resume(self.raw(), bytes.as_mut_ptr().cast()) })?;
        Ok(PortPacket::from_bytes(&bytes))
    }

    /// `mx_vcpu_resume`: runs the guest (64-bit code) until an exit for the
    /// manager, decoded.
    pub fn resume(&self) -> Result<Exit, Error> {
        self.resume_in(Mode::Bits64)
    }

    /// [`Vcpu::resume`] for a guest running in `mode`.
    pub fn resume_in(&self, mode: Mode) -> Result<Exit, Error> {
        let packet = self.resume_packet()?;
        Exit::from_packet(&packet, mode)
    }

    /// `mx_vcpu_interrupt`: raises `vector` (0-255) in the guest.
    pub fn interrupt(&self, vector: u32) -> Result<(), Status> {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_vcpu_interrupt(self.raw(), vector) }).map(drop)
    }

    /// `mx_vcpu_read_state` of `kind` into `buffer` (its whole length).
    fn read_raw(&self, kind: VcpuStateKind, buffer: &mut [u8]) -> Result<(), Status> {
        // SAFETY: `buffer` is valid for writes of its length.
        ok(unsafe { sys::mx_vcpu_read_state(self.raw(), kind as u32, buffer.as_mut_ptr().cast(), buffer.len() as u32) })
            .map(drop)
    }

    /// `mx_vcpu_write_state` of `kind` from `buffer` (its whole length).
    fn write_raw(&self, kind: VcpuStateKind, buffer: &[u8]) -> Result<(), Status> {
        // SAFETY: `buffer` is valid for reads of its length.
        ok(unsafe { sys::mx_vcpu_write_state(self.raw(), kind as u32, buffer.as_ptr().cast(), buffer.len() as u32) })
            .map(drop)
    }

    /// `mx_vcpu_read_state(MX_VCPU_STATE)`.
    pub fn read_state(&self) -> Result<VcpuState, Status> {
        let mut bytes = [0u8; VcpuState::SIZE];
        self.read_raw(VcpuStateKind::State, &mut bytes)?;
        Ok(VcpuState::from_bytes(&bytes))
    }

    /// `mx_vcpu_write_state(MX_VCPU_STATE)`. The flags are applied only if
    /// `state.flags` has bit 1 set ([`VCPU_FLAGS_APPLY`]).
    pub fn write_state(&self, state: &VcpuState) -> Result<(), Status> {
        self.write_raw(VcpuStateKind::State, &state.to_bytes())
    }

    /// `mx_vcpu_read_state(MX_VCPU_SYSTEM)`: RIP, RFLAGS, control
    /// registers, EFER, CS, CPL and the interrupt shadow.
    pub fn read_system(&self) -> Result<VcpuSystem, Status> {
        let mut bytes = [0u8; VcpuSystem::SIZE];
        self.read_raw(VcpuStateKind::System, &mut bytes)?;
        Ok(VcpuSystem::from_bytes(&bytes))
    }

    /// `mx_vcpu_write_state(MX_VCPU_SYSTEM)`: applies `rip`, `rflags` and
    /// `cr3` (the other fields are ignored). `INVALID_ARGS` for RFLAGS
    /// without bit 1 or with a reserved bit, or a CR3 outside the guest's
    /// physical space.
    pub fn write_system(&self, system: &VcpuSystem) -> Result<(), Status> {
        self.write_raw(VcpuStateKind::System, &system.to_bytes())
    }

    /// `mx_vcpu_write_state(MX_VCPU_IO)`: the value of a trapped `IN` of
    /// `size` (1, 2 or 4) bytes, into the low bytes of guest RAX.
    pub fn write_io(&self, size: u8, data: u32) -> Result<(), Status> {
        self.write_raw(VcpuStateKind::Io, &VcpuIo { access_size: size, data }.to_bytes())
    }

    /// Treats `handle` as a VCPU.
    pub const fn from_handle(handle: Handle) -> Vcpu {
        Vcpu(handle)
    }
    /// The handle.
    pub const fn handle(&self) -> &Handle {
        &self.0
    }
    /// The raw handle value, still owned.
    pub const fn raw(&self) -> mx_handle_t {
        self.0.raw()
    }
    /// The handle, owned.
    pub fn into_handle(self) -> Handle {
        self.0
    }
    /// A duplicate with `rights`.
    pub fn duplicate(&self, rights: Rights) -> Result<Vcpu, Status> {
        self.0.duplicate(rights).map(Vcpu)
    }
}

// ------------------------------------------------------------------ decoder

/// A general register: `index` 0-15 in encoding order (RAX, RCX, RDX, RBX,
/// RSP, RBP, RSI, RDI, R8-R15), or with `high_byte` one of AH, CH, DH, BH
/// (`index` 0-3: bits 8-15 of RAX, RCX, RDX, RBX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg {
    /// 0-15.
    pub index: u8,
    /// AH/CH/DH/BH (a byte operand without REX, encodings 4-7).
    pub high_byte: bool,
}

impl Reg {
    /// A full register by index.
    pub const fn new(index: u8) -> Reg {
        Reg { index, high_byte: false }
    }
    /// RAX.
    pub const RAX: Reg = Reg::new(0);

    /// The register's current value, shifted so that the operand is in the
    /// low bits (AH gives bits 8-15 of RAX in bits 0-7).
    pub fn get(&self, state: &VcpuState) -> u64 {
        let v = reg_value(state, self.index);
        if self.high_byte {
            v >> 8
        } else {
            v
        }
    }

    /// Writes the low `size` bytes of `value` as an x86 instruction would:
    /// 1 and 2 bytes merge into the register (AH into bits 8-15), 4 bytes
    /// zero-extend to 64, 8 bytes replace it.
    pub fn set(&self, state: &mut VcpuState, size: u8, value: u64) {
        let old = reg_value(state, self.index);
        let new = if self.high_byte {
            (old & !0xff00) | ((value & 0xff) << 8)
        } else {
            match size {
                1 => (old & !0xff) | (value & 0xff),
                2 => (old & !0xffff) | (value & 0xffff),
                4 => value & 0xffff_ffff,
                _ => value,
            }
        };
        set_reg_value(state, self.index, new);
    }
}

fn reg_value(s: &VcpuState, index: u8) -> u64 {
    match index & 15 {
        0 => s.rax,
        1 => s.rcx,
        2 => s.rdx,
        3 => s.rbx,
        4 => s.rsp,
        5 => s.rbp,
        6 => s.rsi,
        7 => s.rdi,
        8 => s.r8,
        9 => s.r9,
        10 => s.r10,
        11 => s.r11,
        12 => s.r12,
        13 => s.r13,
        14 => s.r14,
        _ => s.r15,
    }
}

fn set_reg_value(s: &mut VcpuState, index: u8, v: u64) {
    let slot = match index & 15 {
        0 => &mut s.rax,
        1 => &mut s.rcx,
        2 => &mut s.rdx,
        3 => &mut s.rbx,
        4 => &mut s.rsp,
        5 => &mut s.rbp,
        6 => &mut s.rsi,
        7 => &mut s.rdi,
        8 => &mut s.r8,
        9 => &mut s.r9,
        10 => &mut s.r10,
        11 => &mut s.r11,
        12 => &mut s.r12,
        13 => &mut s.r13,
        14 => &mut s.r14,
        _ => &mut s.r15,
    };
    *slot = v;
}

/// The value a store or TEST uses besides memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A register's low `size` bytes.
    Reg(Reg),
    /// An immediate, already sign-extended to the operand size (and
    /// truncated to it).
    Imm(u64),
}

/// How a load into a wider register extends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extend {
    /// A plain MOV (same width as the access).
    None,
    /// MOVZX.
    Zero,
    /// MOVSX / MOVSXD.
    Sign,
}

/// What an MMIO instruction does with memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A load of `size` bytes into `dst`, which is `dst_size` bytes wide
    /// (wider than `size` only for MOVZX/MOVSX).
    Read {
        /// The destination register.
        dst: Reg,
        /// Bytes read from memory.
        size: u8,
        /// Bytes of the register written (see [`Reg::set`]).
        dst_size: u8,
        /// How the value extends to `dst_size`.
        extend: Extend,
    },
    /// A store of `size` bytes of `src`.
    Write {
        /// What is stored.
        src: Source,
        /// Bytes written.
        size: u8,
    },
    /// TEST: reads `size` bytes, ANDs them with `src` and sets the flags
    /// (ZF, SF, PF; CF and OF cleared); nothing is written.
    Test {
        /// The other operand.
        src: Source,
        /// Bytes read.
        size: u8,
    },
    /// STOS: stores the low `size` bytes of RAX at [RDI] (then RDI moves by
    /// `size`, down if RFLAGS.DF); `rep` repeats RCX times.
    Stos {
        /// Bytes per store.
        size: u8,
        /// A REP prefix.
        rep: bool,
    },
}

/// A decoded MMIO instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// What it does.
    pub kind: Kind,
    /// Its length in bytes.
    pub len: u8,
}

/// Why [`decode`] could not model an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The length decoder failed (truncated, too long, unknown opcode).
    Length(kcore::x86decode::DecodeError),
    /// A valid instruction that is not a modelled MMIO access (the opcode
    /// as in `kcore::x86decode::Instruction::opcode`).
    Unsupported(u16),
    /// The ModRM names a register, not memory: no memory access at all.
    NotMemory,
}

/// RFLAGS bits TEST changes.
const FLAG_CF: u32 = 1 << 0;
const FLAG_PF: u32 = 1 << 2;
const FLAG_AF: u32 = 1 << 4;
const FLAG_ZF: u32 = 1 << 6;
const FLAG_SF: u32 = 1 << 7;
const FLAG_OF: u32 = 1 << 11;

fn mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * u32::from(size))) - 1
    }
}

fn sign_extend(value: u64, from: u8) -> u64 {
    if from >= 8 {
        return value;
    }
    let shift = 64 - 8 * u32::from(from);
    (((value << shift) as i64) >> shift) as u64
}

impl Instruction {
    /// For a store (`Write`, `Stos`): the bytes to write, from the guest's
    /// registers, little-endian in the low `size` bytes.
    pub fn store_value(&self, state: &VcpuState) -> Option<u64> {
        match self.kind {
            Kind::Write { src, size } => Some(source_value(src, state) & mask(size)),
            Kind::Stos { size, .. } => Some(state.rax & mask(size)),
            _ => None,
        }
    }

    /// The access size in bytes.
    pub fn size(&self) -> u8 {
        match self.kind {
            Kind::Read { size, .. } | Kind::Write { size, .. } | Kind::Test { size, .. } | Kind::Stos { size, .. } => {
                size
            }
        }
    }

    /// Whether the access writes memory.
    pub fn is_write(&self) -> bool {
        matches!(self.kind, Kind::Write { .. } | Kind::Stos { .. })
    }

    /// Completes a load (`Read`) or `Test` with the device's `value` (low
    /// `size` bytes): writes the destination register, or the flags (with
    /// [`VCPU_FLAGS_APPLY`] set, so [`Vcpu::write_state`] applies them).
    /// For `Stos` it moves RDI (one store). Returns false for a `Write`.
    pub fn complete(&self, state: &mut VcpuState, value: u64) -> bool {
        match self.kind {
            Kind::Read { dst, size, dst_size, extend } => {
                let v = value & mask(size);
                let v = if extend == Extend::Sign { sign_extend(v, size) } else { v };
                dst.set(state, dst_size, v);
                true
            }
            Kind::Test { src, size } => {
                let r = value & source_value(src, state) & mask(size);
                let mut flags = state.flags & !(FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF);
                if r == 0 {
                    flags |= FLAG_ZF;
                }
                if r >> (8 * u32::from(size) - 1) & 1 != 0 {
                    flags |= FLAG_SF;
                }
                if (r as u8).count_ones().is_multiple_of(2) {
                    flags |= FLAG_PF;
                }
                state.flags = flags | VCPU_FLAGS_APPLY;
                true
            }
            Kind::Stos { size, .. } => {
                const FLAG_DF: u32 = 1 << 10;
                let step = u64::from(size);
                state.rdi = if state.flags & FLAG_DF != 0 {
                    state.rdi.wrapping_sub(step)
                } else {
                    state.rdi.wrapping_add(step)
                };
                true
            }
            Kind::Write { .. } => false,
        }
    }
}

fn source_value(src: Source, state: &VcpuState) -> u64 {
    match src {
        Source::Reg(r) => r.get(state),
        Source::Imm(v) => v,
    }
}

/// Decodes the MMIO instruction at the start of `bytes` in `mode`: MOV
/// (8/16/32/64 bits; register to memory, memory to register, immediate to
/// memory, and the `moffs` forms A0-A3), MOVZX, MOVSX, MOVSXD, TEST (with a
/// register or an immediate) and STOS, with legacy prefixes, REX and
/// ModRM/SIB addressing. The length comes from `kcore::x86decode`.
pub fn decode(bytes: &[u8], mode: Mode) -> Result<Instruction, DecodeError> {
    let i = kcore::x86decode::decode(bytes, mode).map_err(DecodeError::Length)?;
    let len = usize::from(i.len);
    let rex = i.rex;
    let has_rex = rex != 0;
    let osz = i.operand_size;
    let modrm = i.modrm;
    // ModRM.reg (with REX.R) as a register of `size` bytes.
    let reg_of = |size: u8| -> Reg {
        let m = modrm.unwrap_or(0);
        let index = ((m >> 3) & 7) | if rex & 0x04 != 0 { 8 } else { 0 };
        byte_reg(index, size, has_rex)
    };
    // The immediate of `n` bytes, last in the instruction.
    let imm = |n: usize| -> u64 {
        let mut v = 0u64;
        for (k, b) in bytes[len - n..len].iter().enumerate() {
            v |= u64::from(*b) << (8 * k);
        }
        v
    };
    let memory = || -> Result<(), DecodeError> {
        match modrm {
            Some(m) if m >> 6 == 3 => Err(DecodeError::NotMemory),
            _ => Ok(()),
        }
    };
    let immz = if osz == 2 { 2 } else { 4 };
    let kind = match i.opcode {
        0x88 | 0x89 => {
            memory()?;
            let size = if i.opcode == 0x88 { 1 } else { osz };
            Kind::Write { src: Source::Reg(reg_of(size)), size }
        }
        0x8a | 0x8b => {
            memory()?;
            let size = if i.opcode == 0x8a { 1 } else { osz };
            Kind::Read { dst: reg_of(size), size, dst_size: size, extend: Extend::None }
        }
        0xa0..=0xa3 => {
            let size = if i.opcode & 1 == 0 { 1 } else { osz };
            if i.opcode < 0xa2 {
                Kind::Read { dst: Reg::RAX, size, dst_size: size, extend: Extend::None }
            } else {
                Kind::Write { src: Source::Reg(Reg::RAX), size }
            }
        }
        0xc6 | 0xc7 => {
            memory()?;
            if modrm.is_some_and(|m| (m >> 3) & 7 != 0) {
                return Err(DecodeError::Unsupported(i.opcode));
            }
            if i.opcode == 0xc6 {
                Kind::Write { src: Source::Imm(imm(1)), size: 1 }
            } else {
                let v = sign_extend(imm(immz), immz as u8) & mask(osz);
                Kind::Write { src: Source::Imm(v), size: osz }
            }
        }
        0x0fb6 | 0x0fb7 | 0x0fbe | 0x0fbf => {
            memory()?;
            let size = if i.opcode & 1 == 0 { 1 } else { 2 };
            let extend = if i.opcode >= 0x0fbe { Extend::Sign } else { Extend::Zero };
            Kind::Read { dst: reg_of(osz), size, dst_size: osz, extend }
        }
        0x63 => {
            memory()?;
            if osz == 8 {
                Kind::Read { dst: reg_of(8), size: 4, dst_size: 8, extend: Extend::Sign }
            } else {
                Kind::Read { dst: reg_of(osz), size: osz, dst_size: osz, extend: Extend::None }
            }
        }
        0x84 | 0x85 => {
            memory()?;
            let size = if i.opcode == 0x84 { 1 } else { osz };
            Kind::Test { src: Source::Reg(reg_of(size)), size }
        }
        0xf6 | 0xf7 => {
            memory()?;
            if modrm.is_some_and(|m| (m >> 3) & 7 > 1) {
                return Err(DecodeError::Unsupported(i.opcode));
            }
            if i.opcode == 0xf6 {
                Kind::Test { src: Source::Imm(imm(1)), size: 1 }
            } else {
                let v = sign_extend(imm(immz), immz as u8) & mask(osz);
                Kind::Test { src: Source::Imm(v), size: osz }
            }
        }
        0xaa => Kind::Stos { size: 1, rep: i.rep },
        0xab => Kind::Stos { size: osz, rep: i.rep },
        other => return Err(DecodeError::Unsupported(other)),
    };
    Ok(Instruction { kind, len: i.len })
}

/// Register `index` as an operand of `size` bytes: byte registers 4-7
/// without REX are AH, CH, DH, BH.
fn byte_reg(index: u8, size: u8, has_rex: bool) -> Reg {
    if size == 1 && !has_rex && (4..8).contains(&index) {
        Reg { index: index - 4, high_byte: true }
    } else {
        Reg::new(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(bytes: &[u8]) -> Instruction {
        decode(bytes, Mode::Bits64).unwrap_or_else(|e| panic!("{bytes:02x?}: {e:?}"))
    }

    fn read(dst: u8, size: u8, dst_size: u8, extend: Extend) -> Kind {
        Kind::Read { dst: Reg::new(dst), size, dst_size, extend }
    }

    fn write_reg(src: u8, size: u8) -> Kind {
        Kind::Write { src: Source::Reg(Reg::new(src)), size }
    }

    #[test]
    fn mov_register_to_memory_all_sizes() {
        // mov [rdi], al / ax / eax / rax
        assert_eq!(d(&[0x88, 0x07]), Instruction { kind: write_reg(0, 1), len: 2 });
        assert_eq!(d(&[0x66, 0x89, 0x07]), Instruction { kind: write_reg(0, 2), len: 3 });
        assert_eq!(d(&[0x89, 0x07]), Instruction { kind: write_reg(0, 4), len: 2 });
        assert_eq!(d(&[0x48, 0x89, 0x07]), Instruction { kind: write_reg(0, 8), len: 3 });
        // mov [rbx+rcx*4+8], r9 (REX.WR)
        assert_eq!(d(&[0x4c, 0x89, 0x4c, 0x8b, 0x08]), Instruction { kind: write_reg(9, 8), len: 5 });
        // mov [rdi], ah (no REX: encoding 4 is AH) vs mov [rdi], spl (REX)
        assert_eq!(d(&[0x88, 0x27]).kind, Kind::Write { src: Source::Reg(Reg { index: 0, high_byte: true }), size: 1 });
        assert_eq!(d(&[0x40, 0x88, 0x27]).kind, write_reg(4, 1));
        // mov [rdi], r8b
        assert_eq!(d(&[0x44, 0x88, 0x07]).kind, write_reg(8, 1));
        // mov dword [0xfee000b0], esi (SIB, no base, disp32)
        assert_eq!(d(&[0x89, 0x34, 0x25, 0xb0, 0x00, 0xe0, 0xfe]), Instruction { kind: write_reg(6, 4), len: 7 });
    }

    #[test]
    fn mov_memory_to_register_all_sizes() {
        assert_eq!(d(&[0x8a, 0x0f]).kind, read(1, 1, 1, Extend::None));
        assert_eq!(
            d(&[0x8a, 0x2f]).kind,
            Kind::Read { dst: Reg { index: 1, high_byte: true }, size: 1, dst_size: 1, extend: Extend::None }
        );
        assert_eq!(d(&[0x66, 0x8b, 0x0f]).kind, read(1, 2, 2, Extend::None));
        assert_eq!(d(&[0x8b, 0x45, 0x10]), Instruction { kind: read(0, 4, 4, Extend::None), len: 3 });
        assert_eq!(d(&[0x4d, 0x8b, 0x4d, 0x00]), Instruction { kind: read(9, 8, 8, Extend::None), len: 4 });
        // mov eax, [rip+0x1000]
        assert_eq!(d(&[0x8b, 0x05, 0, 0x10, 0, 0]).len, 6);
        // movabs al, [moffs64]; movabs [moffs64], rax
        assert_eq!(d(&[0xa0, 1, 2, 3, 4, 5, 6, 7, 8]), Instruction { kind: read(0, 1, 1, Extend::None), len: 9 });
        assert_eq!(d(&[0x48, 0xa3, 1, 2, 3, 4, 5, 6, 7, 8]), Instruction { kind: write_reg(0, 8), len: 10 });
    }

    #[test]
    fn mov_immediate_to_memory() {
        assert_eq!(
            d(&[0xc6, 0x07, 0x5a]),
            Instruction { kind: Kind::Write { src: Source::Imm(0x5a), size: 1 }, len: 3 }
        );
        assert_eq!(d(&[0x66, 0xc7, 0x07, 0x34, 0x12]).kind, Kind::Write { src: Source::Imm(0x1234), size: 2 });
        assert_eq!(
            d(&[0xc7, 0x04, 0x25, 0x10, 0x00, 0x40, 0x00, 0x78, 0x56, 0x34, 0x12]),
            Instruction { kind: Kind::Write { src: Source::Imm(0x1234_5678), size: 4 }, len: 11 }
        );
        // REX.W: imm32 sign-extended to 64 bits.
        assert_eq!(
            d(&[0x48, 0xc7, 0x07, 0xfe, 0xff, 0xff, 0xff]).kind,
            Kind::Write { src: Source::Imm(0xffff_ffff_ffff_fffe), size: 8 }
        );
        // mov byte [rdi+disp8], imm8
        assert_eq!(
            d(&[0xc6, 0x47, 0x04, 0x01]),
            Instruction { kind: Kind::Write { src: Source::Imm(1), size: 1 }, len: 4 }
        );
        // c7 /1 is not a MOV.
        assert_eq!(decode(&[0xc7, 0x0f, 0, 0, 0, 0], Mode::Bits64), Err(DecodeError::Unsupported(0xc7)));
    }

    #[test]
    fn movzx_movsx_movsxd() {
        assert_eq!(d(&[0x0f, 0xb6, 0x07]).kind, read(0, 1, 4, Extend::Zero));
        assert_eq!(d(&[0x0f, 0xb7, 0x47, 0x04]).kind, read(0, 2, 4, Extend::Zero));
        assert_eq!(d(&[0x48, 0x0f, 0xbf, 0x06]).kind, read(0, 2, 8, Extend::Sign));
        assert_eq!(d(&[0x66, 0x0f, 0xbe, 0x0e]).kind, read(1, 1, 2, Extend::Sign));
        assert_eq!(d(&[0x4c, 0x0f, 0xb6, 0x07]).kind, read(8, 1, 8, Extend::Zero));
        assert_eq!(d(&[0x48, 0x63, 0x07]).kind, read(0, 4, 8, Extend::Sign));
    }

    #[test]
    fn test_and_stos() {
        assert_eq!(d(&[0xf6, 0x07, 0x01]).kind, Kind::Test { src: Source::Imm(1), size: 1 });
        assert_eq!(d(&[0xf7, 0x07, 0, 1, 0, 0]).kind, Kind::Test { src: Source::Imm(0x100), size: 4 });
        assert_eq!(d(&[0x85, 0x07]).kind, Kind::Test { src: Source::Reg(Reg::new(0)), size: 4 });
        assert_eq!(d(&[0x48, 0x85, 0x1f]).kind, Kind::Test { src: Source::Reg(Reg::new(3)), size: 8 });
        assert_eq!(d(&[0x84, 0x3f]).kind, Kind::Test { src: Source::Reg(Reg { index: 3, high_byte: true }), size: 1 });
        // not dword [rdi] is group 3 but not TEST.
        assert_eq!(decode(&[0xf7, 0x17], Mode::Bits64), Err(DecodeError::Unsupported(0xf7)));
        assert_eq!(d(&[0xaa]), Instruction { kind: Kind::Stos { size: 1, rep: false }, len: 1 });
        assert_eq!(d(&[0xf3, 0x48, 0xab]), Instruction { kind: Kind::Stos { size: 8, rep: true }, len: 3 });
        assert_eq!(d(&[0x66, 0xab]).kind, Kind::Stos { size: 2, rep: false });
    }

    #[test]
    fn errors() {
        // Register-only forms touch no memory.
        assert_eq!(decode(&[0x89, 0xc0], Mode::Bits64), Err(DecodeError::NotMemory));
        assert_eq!(decode(&[0x0f, 0xb6, 0xc0], Mode::Bits64), Err(DecodeError::NotMemory));
        // Known length, not modelled: add [rdi], eax; movdqu.
        assert_eq!(decode(&[0x01, 0x07], Mode::Bits64), Err(DecodeError::Unsupported(0x01)));
        assert_eq!(decode(&[0xf3, 0x0f, 0x6f, 0x0e], Mode::Bits64), Err(DecodeError::Unsupported(0x0f6f)));
        // Length errors pass through.
        assert_eq!(decode(&[0x89], Mode::Bits64), Err(DecodeError::Length(kcore::x86decode::DecodeError::Truncated)));
        assert_eq!(
            decode(&[0xcc], Mode::Bits64),
            Err(DecodeError::Length(kcore::x86decode::DecodeError::Unsupported(0xcc)))
        );
    }

    #[test]
    fn other_modes() {
        // 32-bit: mov [0x1000], eax; 66: ax.
        assert_eq!(decode(&[0x89, 0x05, 0, 0x10, 0, 0], Mode::Bits32).map(|i| i.kind), Ok(write_reg(0, 4)));
        assert_eq!(decode(&[0x66, 0x89, 0x05, 0, 0x10, 0, 0], Mode::Bits32).map(|i| i.kind), Ok(write_reg(0, 2)));
        // 16-bit: mov word [bx+si+0x10], 0x55aa.
        assert_eq!(
            decode(&[0xc7, 0x40, 0x10, 0xaa, 0x55], Mode::Bits16),
            Ok(Instruction { kind: Kind::Write { src: Source::Imm(0x55aa), size: 2 }, len: 5 })
        );
    }

    #[test]
    fn completing_accesses() {
        let mut s = VcpuState { rax: 0x1111_2222_3333_4444, rbx: 0xffff_ffff_ffff_ffff, ..Default::default() };
        // mov eax, [m] zero-extends; mov ax, [m] merges; mov ah, [m].
        d(&[0x8b, 0x07]).complete(&mut s, 0xdead_beef);
        assert_eq!(s.rax, 0xdead_beef);
        d(&[0x66, 0x8b, 0x1f]).complete(&mut s, 0x1234);
        assert_eq!(s.rbx, 0xffff_ffff_ffff_1234);
        d(&[0x8a, 0x27]).complete(&mut s, 0x56);
        assert_eq!(s.rax, 0xdead_56ef);
        // movsx rax, byte [m]
        d(&[0x48, 0x0f, 0xbe, 0x07]).complete(&mut s, 0x80);
        assert_eq!(s.rax, 0xffff_ffff_ffff_ff80);
        // movzx ecx, word [m]
        s.rcx = u64::MAX;
        d(&[0x0f, 0xb7, 0x0f]).complete(&mut s, 0xffff_8001);
        assert_eq!(s.rcx, 0x8001);
        // Store values.
        s.rsi = 0x0102_0304_0506_0708;
        assert_eq!(d(&[0x89, 0x37]).store_value(&s), Some(0x0506_0708));
        assert_eq!(d(&[0x40, 0x88, 0x37]).store_value(&s), Some(0x08));
        assert_eq!(d(&[0xc6, 0x07, 0x99]).store_value(&s), Some(0x99));
        assert_eq!(d(&[0x8b, 0x07]).store_value(&s), None);
        // test byte [m], 1 sets ZF when the bit is clear.
        s.flags = 0;
        d(&[0xf6, 0x07, 0x01]).complete(&mut s, 0x2);
        assert_eq!(s.flags & (FLAG_ZF | VCPU_FLAGS_APPLY), FLAG_ZF | VCPU_FLAGS_APPLY);
        d(&[0xf6, 0x07, 0x81]).complete(&mut s, 0x80);
        assert_eq!(s.flags & (FLAG_ZF | FLAG_SF), FLAG_SF);
        // stos moves rdi.
        s.rdi = 0x1000;
        d(&[0x48, 0xab]).complete(&mut s, 0);
        assert_eq!(s.rdi, 0x1008);
    }

    #[test]
    fn exits_from_packets() {
        let io = PacketGuestIo { port: 0x3f8, access_size: 1, input: 0, data: 0x41, ..Default::default() };
        let p = PortPacket::new(7, 0, Payload::GuestIo(io));
        assert_eq!(
            Exit::from_packet(&p, Mode::Bits64),
            Ok(Exit::Io { key: 7, port: 0x3f8, size: 1, input: false, data: 0x41 })
        );
        let mut inst_buf = [0u8; 15];
        inst_buf[..2].copy_from_slice(&[0x89, 0x07]);
        let mem = PacketGuestMem { addr: 0x1_0000_0000, inst_len: 2, inst_buf, reserved: 0 };
        let p = PortPacket::new(0, 0, Payload::GuestMem(mem));
        assert_eq!(
            Exit::from_packet(&p, Mode::Bits64),
            Ok(Exit::Mem { key: 0, addr: 0x1_0000_0000, instruction: Instruction { kind: write_reg(0, 4), len: 2 } })
        );
        inst_buf[..2].copy_from_slice(&[0x01, 0x07]);
        let mem = PacketGuestMem { addr: 0x2000, inst_len: 2, inst_buf, reserved: 0 };
        let p = PortPacket::new(3, 0, Payload::GuestMem(mem));
        assert!(matches!(
            Exit::from_packet(&p, Mode::Bits64),
            Err(Error::Undecodable { addr: 0x2000, key: 3, len: 2, error: DecodeError::Unsupported(1), .. })
        ));
        let p = PortPacket::new(0, 0, Payload::User(Default::default()));
        assert_eq!(Exit::from_packet(&p, Mode::Bits64), Err(Error::UnexpectedPacket(0)));
    }

    #[test]
    fn never_panics_on_any_input() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            let mut bytes = [0u8; 15];
            for b in &mut bytes {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let n = (x % 16) as usize;
            for mode in [Mode::Bits16, Mode::Bits32, Mode::Bits64] {
                if let Ok(i) = decode(&bytes[..n], mode) {
                    assert!(usize::from(i.len) <= n);
                    let mut s = VcpuState::default();
                    i.complete(&mut s, x);
                    let _ = i.store_value(&s);
                }
            }
        }
    }
}
