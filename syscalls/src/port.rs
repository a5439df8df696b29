//! Port packets (`syscalls/port.h`), contract §1.7 and §6.
//!
//! `mx_port_packet_t` is 48 bytes: key, type, status and a 32-byte union. In
//! Rust the union is [`PacketUser`] (its raw words); [`PortPacket::payload`]
//! decodes it by packet type into a [`Payload`], and [`PortPacket::new`]
//! encodes one. No `unsafe`: the views go through the C byte layout.

use crate::meta::{ConstStyle, Fmt};
use crate::wire::recast;

c_consts! {
    /// `mx_object_wait_async` options.
    pub const C_WAIT_ASYNC: ConstGroup = ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// One packet, then the registration ends.
        pub const WAIT_ASYNC_ONCE: u32 = 0 => "MX_WAIT_ASYNC_ONCE";
        /// A packet each time, until cancelled (the kernel treats any non-zero
        /// value so).
        pub const WAIT_ASYNC_REPEATING: u32 = 1 => "MX_WAIT_ASYNC_REPEATING";
    }
}

c_consts! {
    /// Packet types (`mx_port_packet_t.type`). Exception packets have type
    /// `MX_PKT_TYPE_EXCEPTION(n)` (Rust: [`pkt_type_exception`]).
    pub const C_PKT_TYPE: ConstGroup = ConstStyle::Define { fmt: Fmt::HexU, cast: None };
    {
        /// Queued by `mx_port_queue`.
        pub const PKT_TYPE_USER: u32 = 0x00 => "MX_PKT_TYPE_USER";
        /// From `mx_object_wait_async` with `MX_WAIT_ASYNC_ONCE`.
        pub const PKT_TYPE_SIGNAL_ONE: u32 = 0x01 => "MX_PKT_TYPE_SIGNAL_ONE";
        /// From `mx_object_wait_async` with `MX_WAIT_ASYNC_REPEATING`.
        pub const PKT_TYPE_SIGNAL_REP: u32 = 0x02 => "MX_PKT_TYPE_SIGNAL_REP";
        /// A guest memory trap.
        pub const PKT_TYPE_GUEST_MEM: u32 = 0x03 => "MX_PKT_TYPE_GUEST_MEM";
        /// A guest I/O port trap.
        pub const PKT_TYPE_GUEST_IO: u32 = 0x04 => "MX_PKT_TYPE_GUEST_IO";
        /// A guest RDMSR or WRMSR (`MX_GUEST_TRAP_MSR`, magnetar).
        pub const PKT_TYPE_GUEST_MSR: u32 = 0x06 => "MX_PKT_TYPE_GUEST_MSR";
        /// A guest CPUID (`MX_GUEST_TRAP_CPUID`, magnetar).
        pub const PKT_TYPE_GUEST_CPUID: u32 = 0x07 => "MX_PKT_TYPE_GUEST_CPUID";
        /// A guest exception (`MX_GUEST_TRAP_EXCEPTION`, magnetar).
        pub const PKT_TYPE_GUEST_EXCEPTION: u32 = 0x08 => "MX_PKT_TYPE_GUEST_EXCEPTION";
        /// A guest VMMCALL (`MX_GUEST_TRAP_VMCALL`, magnetar).
        pub const PKT_TYPE_GUEST_VMCALL: u32 = 0x09 => "MX_PKT_TYPE_GUEST_VMCALL";
        /// The bits of `type` that select the payload.
        pub const PKT_TYPE_MASK: u32 = 0xff => "MX_PKT_TYPE_MASK";
    }
}

/// `MX_PKT_TYPE_EXCEPTION(n)`: an exception packet of exception number `n`.
pub const fn pkt_type_exception(n: u32) -> u32 {
    0x05 | ((n & 0xff) << 8)
}

/// C spelling of [`pkt_type_exception`] and the `MX_PKT_IS_*` tests.
pub const C_PKT_MACROS: &str = "\
#define MX_PKT_TYPE_EXCEPTION(n)    (0x05u | (((n) & 0xFFu) << 8))

#define MX_PKT_IS_USER(type)        ((type) == MX_PKT_TYPE_USER)
#define MX_PKT_IS_SIGNAL_ONE(type)  ((type) == MX_PKT_TYPE_SIGNAL_ONE)
#define MX_PKT_IS_SIGNAL_REP(type)  ((type) == MX_PKT_TYPE_SIGNAL_REP)
#define MX_PKT_IS_GUEST_MEM(type)   ((type) == MX_PKT_TYPE_GUEST_MEM)
#define MX_PKT_IS_GUEST_IO(type)    ((type) == MX_PKT_TYPE_GUEST_IO)
#define MX_PKT_IS_GUEST_MSR(type)   ((type) == MX_PKT_TYPE_GUEST_MSR)
#define MX_PKT_IS_GUEST_CPUID(type) ((type) == MX_PKT_TYPE_GUEST_CPUID)
#define MX_PKT_IS_GUEST_EXCEPTION(type) ((type) == MX_PKT_TYPE_GUEST_EXCEPTION)
#define MX_PKT_IS_GUEST_VMCALL(type) ((type) == MX_PKT_TYPE_GUEST_VMCALL)
#define MX_PKT_IS_EXCEPTION(type)   (((type) & MX_PKT_TYPE_MASK) == MX_PKT_TYPE_EXCEPTION(0))";

c_consts! {
    /// The longest x86 instruction.
    pub const C_X86: ConstGroup = ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Bytes in `mx_packet_guest_mem_t.inst_buf`.
        pub const X86_MAX_INST_LEN: usize = 15 => "X86_MAX_INST_LEN";
    }
}

c_struct! {
    /// Payload of a user packet: 32 bytes the queuer chose.
    pub union PacketUser as mx_packet_user_t, size 32;
    {
        /// The bytes as four words.
        @0 pub u64: [u64; 4] as "uint64_t u64[4]" | "uint32_t u32[8]" | "uint16_t u16[16]" | "uint8_t c8[32]";
    }
}

impl PacketUser {
    /// The payload as bytes.
    pub fn bytes(&self) -> [u8; 32] {
        self.to_bytes()
    }
}

c_struct! {
    /// Payload of a signal packet.
    pub struct PacketSignal as mx_packet_signal_t, size 32;
    {
        /// The signals the wait was for.
        @0 pub trigger: u32 as "mx_signals_t trigger";
        /// The object's signals when the packet was queued.
        @4 pub observed: u32 as "mx_signals_t observed";
        /// 1, or a per-object count at registration time.
        @8 pub count: u64 as "uint64_t count";
        /// Zero.
        @16 pub reserved0: u64 as "uint64_t reserved0";
        /// Zero.
        @24 pub reserved1: u64 as "uint64_t reserved1";
    }
}

c_struct! {
    /// Payload of an exception packet.
    pub struct PacketException as mx_packet_exception_t, size 32;
    {
        /// The process's koid.
        @0 pub pid: u64 as "uint64_t pid";
        /// The thread's koid.
        @8 pub tid: u64 as "uint64_t tid";
        /// Zero.
        @16 pub reserved0: u64 as "uint64_t reserved0";
        /// Zero.
        @24 pub reserved1: u64 as "uint64_t reserved1";
    }
}

c_struct! {
    /// Payload of a guest memory trap (x86 layout).
    pub struct PacketGuestMem as mx_packet_guest_mem_t, size 32;
    {
        /// The guest-physical address accessed.
        @0 pub addr: u64 as "mx_vaddr_t addr";
        /// Length of the instruction in `inst_buf`.
        @8 pub inst_len: u8 as "uint8_t inst_len";
        /// The bytes of the faulting instruction.
        @9 pub inst_buf: [u8; X86_MAX_INST_LEN] as "uint8_t inst_buf[X86_MAX_INST_LEN]";
        /// Zero.
        @24 pub reserved: u64 as "uint64_t reserved";
    }
}

impl PacketGuestMem {
    /// The instruction bytes (`inst_len` of them, capped at 15).
    pub fn instruction(&self) -> &[u8] {
        let len = usize::from(self.inst_len).min(X86_MAX_INST_LEN);
        self.inst_buf.get(..len).unwrap_or(&[])
    }
}

c_struct! {
    /// Payload of a guest I/O port trap.
    pub struct PacketGuestIo as mx_packet_guest_io_t, size 32;
    {
        /// The port.
        @0 pub port: u16 as "uint16_t port";
        /// 1, 2 or 4.
        @2 pub access_size: u8 as "uint8_t access_size";
        /// True for `IN`, false for `OUT`.
        @3 pub input: u8 as "bool input";
        /// The data written by `OUT`, little-endian in the low `access_size` bytes.
        @4 pub data: u32 as "uint8_t u8" | "uint16_t u16" | "uint32_t u32" | "uint8_t data[4]";
        /// Zero.
        @8 pub reserved0: u64 as "uint64_t reserved0";
        /// Zero.
        @16 pub reserved1: u64 as "uint64_t reserved1";
        /// Zero.
        @24 pub reserved2: u64 as "uint64_t reserved2";
    }
}

c_struct! {
    /// Payload of a guest RDMSR or WRMSR (`MX_GUEST_TRAP_MSR`, magnetar). RIP
    /// is already past the instruction.
    pub struct PacketGuestMsr as mx_packet_guest_msr_t, size 32;
    {
        /// The MSR (ECX).
        @0 pub msr: u32 as "uint32_t msr";
        /// 1 for WRMSR, 0 for RDMSR.
        @4 pub write: u8 as "uint8_t write";
        /// Length of the instruction (2).
        @5 pub inst_len: u8 as "uint8_t inst_len";
        /// Zero.
        @6 pub reserved: u16 as "uint16_t reserved";
        /// What WRMSR writes (EDX:EAX); 0 for RDMSR.
        @8 pub value: u64 as "uint64_t value";
        /// Zero.
        @16 pub reserved1: u64 as "uint64_t reserved1";
        /// Zero.
        @24 pub reserved2: u64 as "uint64_t reserved2";
    }
}

c_struct! {
    /// Payload of a guest CPUID (`MX_GUEST_TRAP_CPUID`, magnetar): the leaf
    /// and subleaf asked for and the kernel's result, already in EAX, EBX,
    /// ECX and EDX with RIP past the instruction.
    pub struct PacketGuestCpuid as mx_packet_guest_cpuid_t, size 32;
    {
        /// The leaf (EAX).
        @0 pub leaf: u32 as "uint32_t leaf";
        /// The subleaf (ECX).
        @4 pub subleaf: u32 as "uint32_t subleaf";
        /// The kernel's EAX.
        @8 pub eax: u32 as "uint32_t eax";
        /// The kernel's EBX.
        @12 pub ebx: u32 as "uint32_t ebx";
        /// The kernel's ECX.
        @16 pub ecx: u32 as "uint32_t ecx";
        /// The kernel's EDX.
        @20 pub edx: u32 as "uint32_t edx";
        /// Zero.
        @24 pub reserved: u64 as "uint64_t reserved";
    }
}

c_struct! {
    /// Payload of a guest exception (`MX_GUEST_TRAP_EXCEPTION`, magnetar):
    /// not delivered, RIP at the instruction that raised it.
    pub struct PacketGuestException as mx_packet_guest_exception_t, size 32;
    {
        /// The vector, 0-31.
        @0 pub vector: u8 as "uint8_t vector";
        /// 1 if the exception has an error code.
        @1 pub error_code_valid: u8 as "uint8_t error_code_valid";
        /// Zero.
        @2 pub reserved: u16 as "uint16_t reserved";
        /// The error code (0 without one).
        @4 pub error_code: u32 as "uint32_t error_code";
        /// #PF: the faulting linear address (the guest's CR2 is unchanged);
        /// otherwise 0.
        @8 pub cr2: u64 as "uint64_t cr2";
        /// Zero.
        @16 pub reserved1: u64 as "uint64_t reserved1";
        /// Zero.
        @24 pub reserved2: u64 as "uint64_t reserved2";
    }
}

c_struct! {
    /// Payload of a guest VMMCALL (`MX_GUEST_TRAP_VMCALL`, magnetar). RIP is
    /// already past the instruction; the VMM reads and writes the registers
    /// with `MX_VCPU_STATE`.
    pub struct PacketGuestVmcall as mx_packet_guest_vmcall_t, size 32;
    {
        /// Length of the instruction (3).
        @0 pub inst_len: u8 as "uint8_t inst_len";
        /// Zero.
        @1 pub reserved0: [u8; 7] as "uint8_t reserved0[7]";
        /// Zero.
        @8 pub reserved1: u64 as "uint64_t reserved1";
        /// Zero.
        @16 pub reserved2: u64 as "uint64_t reserved2";
        /// Zero.
        @24 pub reserved3: u64 as "uint64_t reserved3";
    }
}

c_struct! {
    /// A port packet: what `mx_port_wait` and `mx_vcpu_resume` return and
    /// `mx_port_queue` takes.
    pub struct PortPacket as mx_port_packet_t, size 48;
    {
        /// The key of the registration, trap or queuer.
        @0 pub key: u64 as "uint64_t key";
        /// `MX_PKT_TYPE_*`: selects the payload ([`PortPacket::payload`] decodes it).
        @8 pub packet_type: u32 as "uint32_t type";
        /// A status for the packet.
        @12 pub status: i32 as "int32_t status";
        /// The payload, selected by `type`.
        @16 pub payload: PacketUser as "mx_packet_user_t user" | "mx_packet_signal_t signal"
            | "mx_packet_exception_t exception" | "mx_packet_guest_io_t guest_io" | "mx_packet_guest_mem_t guest_mem"
            | "mx_packet_guest_msr_t guest_msr" | "mx_packet_guest_cpuid_t guest_cpuid"
            | "mx_packet_guest_exception_t guest_exception" | "mx_packet_guest_vmcall_t guest_vmcall";
    }
}

/// A decoded packet payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `MX_PKT_TYPE_USER`.
    User(PacketUser),
    /// `MX_PKT_TYPE_SIGNAL_ONE`.
    SignalOne(PacketSignal),
    /// `MX_PKT_TYPE_SIGNAL_REP`.
    SignalRep(PacketSignal),
    /// `MX_PKT_TYPE_GUEST_MEM`.
    GuestMem(PacketGuestMem),
    /// `MX_PKT_TYPE_GUEST_IO`.
    GuestIo(PacketGuestIo),
    /// `MX_PKT_TYPE_GUEST_MSR`.
    GuestMsr(PacketGuestMsr),
    /// `MX_PKT_TYPE_GUEST_CPUID`.
    GuestCpuid(PacketGuestCpuid),
    /// `MX_PKT_TYPE_GUEST_EXCEPTION`.
    GuestException(PacketGuestException),
    /// `MX_PKT_TYPE_GUEST_VMCALL`.
    GuestVmcall(PacketGuestVmcall),
    /// `MX_PKT_TYPE_EXCEPTION(n)` with the exception number `n`.
    Exception(u8, PacketException),
}

impl Payload {
    /// The `type` value of a packet carrying this payload.
    pub fn packet_type(&self) -> u32 {
        match self {
            Self::User(_) => PKT_TYPE_USER,
            Self::SignalOne(_) => PKT_TYPE_SIGNAL_ONE,
            Self::SignalRep(_) => PKT_TYPE_SIGNAL_REP,
            Self::GuestMem(_) => PKT_TYPE_GUEST_MEM,
            Self::GuestIo(_) => PKT_TYPE_GUEST_IO,
            Self::GuestMsr(_) => PKT_TYPE_GUEST_MSR,
            Self::GuestCpuid(_) => PKT_TYPE_GUEST_CPUID,
            Self::GuestException(_) => PKT_TYPE_GUEST_EXCEPTION,
            Self::GuestVmcall(_) => PKT_TYPE_GUEST_VMCALL,
            Self::Exception(n, _) => pkt_type_exception(u32::from(*n)),
        }
    }

    fn raw(&self) -> PacketUser {
        match self {
            Self::User(p) => Some(*p),
            Self::SignalOne(p) | Self::SignalRep(p) => recast(p),
            Self::GuestMem(p) => recast(p),
            Self::GuestIo(p) => recast(p),
            Self::GuestMsr(p) => recast(p),
            Self::GuestCpuid(p) => recast(p),
            Self::GuestException(p) => recast(p),
            Self::GuestVmcall(p) => recast(p),
            Self::Exception(_, p) => recast(p),
        }
        .unwrap_or_default()
    }
}

impl PortPacket {
    /// A packet with this key, status and payload (type set to match).
    pub fn new(key: u64, status: i32, payload: Payload) -> Self {
        Self { key, packet_type: payload.packet_type(), status, payload: payload.raw() }
    }

    /// Decodes the payload by `type`; an unknown type is returned as `Err`.
    pub fn payload(&self) -> Result<Payload, u32> {
        let t = self.packet_type;
        let raw = &self.payload;
        let decoded = match t {
            PKT_TYPE_USER => Some(Payload::User(*raw)),
            PKT_TYPE_SIGNAL_ONE => recast(raw).map(Payload::SignalOne),
            PKT_TYPE_SIGNAL_REP => recast(raw).map(Payload::SignalRep),
            PKT_TYPE_GUEST_MEM => recast(raw).map(Payload::GuestMem),
            PKT_TYPE_GUEST_IO => recast(raw).map(Payload::GuestIo),
            PKT_TYPE_GUEST_MSR => recast(raw).map(Payload::GuestMsr),
            PKT_TYPE_GUEST_CPUID => recast(raw).map(Payload::GuestCpuid),
            PKT_TYPE_GUEST_EXCEPTION => recast(raw).map(Payload::GuestException),
            PKT_TYPE_GUEST_VMCALL => recast(raw).map(Payload::GuestVmcall),
            _ if t & PKT_TYPE_MASK == pkt_type_exception(0) && t >> 16 == 0 => {
                recast(raw).map(|p| Payload::Exception((t >> 8) as u8, p))
            }
            _ => None,
        };
        decoded.ok_or(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_io_round_trips_through_the_union() {
        let io = PacketGuestIo { port: 0x3f8, access_size: 1, input: 0, data: 0x41, ..Default::default() };
        let pkt = PortPacket::new(7, 0, Payload::GuestIo(io));
        assert_eq!(pkt.packet_type, PKT_TYPE_GUEST_IO);
        let bytes = pkt.to_bytes();
        assert_eq!(&bytes[16..22], &[0xf8, 0x03, 1, 0, 0x41, 0]);
        assert_eq!(PortPacket::from_bytes(&bytes).payload(), Ok(Payload::GuestIo(io)));
    }

    #[test]
    fn exception_types_decode() {
        assert_eq!(pkt_type_exception(0x85), 0x8505);
        let pkt =
            PortPacket::new(1, 0, Payload::Exception(3, PacketException { pid: 1, tid: 2, ..Default::default() }));
        assert!(matches!(pkt.payload(), Ok(Payload::Exception(3, p)) if p.tid == 2));
        let bad = PortPacket { packet_type: 0x42, ..pkt };
        assert_eq!(bad.payload(), Err(0x42));
    }

    #[test]
    fn guest_mem_instruction_is_bounded() {
        let m = PacketGuestMem { inst_len: 200, ..Default::default() };
        assert_eq!(m.instruction().len(), 15);
    }
}
