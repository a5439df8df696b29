//! Guests and VCPUs (`syscalls/hypervisor.h`), contract §1.7, §5.30-§5.35
//! and §6, with the project decisions of `specs/README.md` (Magenta side 2-5).

use crate::meta::{ConstStyle, Fmt};

c_enum! {
    /// Trap kinds (`mx_guest_set_trap`).
    pub enum TrapKind: u32, ConstStyle::Enum { typedef: None };
    {
        /// Guest-physical memory: `addr` and `len` page-aligned, and
        /// `addr + len <= MX_GUEST_PHYS_SIZE`.
        Mem = 0 => "MX_GUEST_TRAP_MEM",
        /// I/O ports: `addr + len <= MX_GUEST_IO_SIZE` (ports 0 to 0xFFFF).
        Io = 1 => "MX_GUEST_TRAP_IO",
        /// MSRs (magnetar): `addr` = the first MSR, `addr + len <= 2^32`,
        /// synchronous only. An RDMSR or WRMSR of a trapped MSR that the kernel
        /// does not virtualize itself (one that would raise #GP) comes back as
        /// a GUEST_MSR packet with RIP past the instruction; for RDMSR the VMM
        /// supplies EDX:EAX with `MX_VCPU_STATE`. To raise #GP instead, move
        /// RIP back 2 bytes with `MX_VCPU_SYSTEM` and call
        /// `mx_vcpu_interrupt(13)`.
        Msr = 2 => "MX_GUEST_TRAP_MSR",
        /// CPUID leaves (magnetar): `addr` = the first leaf (EAX),
        /// `addr + len <= 2^32`, synchronous only. The kernel computes its
        /// result, writes it to EAX, EBX, ECX and EDX, moves RIP past the
        /// instruction and returns a GUEST_CPUID packet carrying it; the VMM
        /// may overwrite the registers.
        Cpuid = 3 => "MX_GUEST_TRAP_CPUID",
        /// Exception vectors (magnetar): `addr` = the first vector,
        /// `addr + len <= 32`, synchronous only; vectors 2 (NMI) and 18 (#MC)
        /// cannot be trapped (`MX_ERR_INVALID_ARGS`). An exception the guest
        /// raises on a trapped vector (including the #UD and #GP the kernel
        /// raises for the guest's instructions) is not delivered: it comes
        /// back as a GUEST_EXCEPTION packet with RIP where delivery would
        /// have pushed it: at the instruction for faults, after it for the
        /// trap-type #DB (single step, data breakpoints), but at the
        /// instruction for #BP (INT3) and #OF (INTO): to deliver those, move
        /// RIP past the 1-byte instruction first. The VMM may
        /// re-raise it with `mx_vcpu_interrupt`; events raised that way are
        /// delivered, never trapped again. A #PF re-raised so has error
        /// code 0 and leaves CR2 as it was.
        Exception = 4 => "MX_GUEST_TRAP_EXCEPTION",
        /// VMMCALL (magnetar): `addr` 0, `len` 1, synchronous only (no
        /// port). A guest VMMCALL comes back from `mx_vcpu_resume` as a
        /// GUEST_VMCALL packet with RIP past the instruction; without this
        /// trap VMMCALL raises #UD in the guest.
        Vmcall = 5 => "MX_GUEST_TRAP_VMCALL",
    }
}

c_consts! {
    /// The guest address spaces traps live in (magnetar). A trap outside its
    /// space is `MX_ERR_OUT_OF_RANGE`; a trap that intersects an existing trap
    /// of the same kind is `MX_ERR_ALREADY_EXISTS`. With a port, every access
    /// queues a packet with the trap's key from a pool preallocated for the
    /// trap, and the VCPU pauses while that pool is empty; with
    /// `MX_HANDLE_INVALID`, the packet comes back from `mx_vcpu_resume` with key 0.
    pub const C_GUEST_SPACES: ConstGroup = ConstStyle::Define { fmt: Fmt::Shift, cast: None };
    {
        /// Size of the guest-physical address space: 2^48 bytes (four-level
        /// nested paging). Guest RAM (the physmem VMO, possibly empty) starts
        /// at 0; `mx_guest_map` mappings take priority over it and MEM traps
        /// over both. An access none of them covers makes `mx_vcpu_resume`
        /// return `MX_ERR_OUT_OF_RANGE`.
        pub const GUEST_PHYS_SIZE: u64 = 1 << 48 => "MX_GUEST_PHYS_SIZE";
        /// Size of the guest I/O port space: ports 0 to 0xFFFF inclusive.
        pub const GUEST_IO_SIZE: u64 = 1 << 16 => "MX_GUEST_IO_SIZE";
    }
}

c_consts! {
    /// Asynchronous trap delivery (magnetar). With a port, each trap has its
    /// own pool of `MX_GUEST_TRAP_POOL_SIZE` packets, allocated by
    /// `mx_guest_set_trap`. Every guest access the trap covers (`OUT`/`IN`,
    /// or a memory write or read of a MEM trap) completes at once: its packet
    /// (key = the trap's key; the `OUT` data, or the GPA and instruction
    /// bytes) is queued on the port and the VCPU runs on. While all of a trap's packets are
    /// queued, the VCPU that hits the trap pauses inside `mx_vcpu_resume`
    /// until `mx_port_wait` (any thread) dequeues one of them; freed packets
    /// go to the paused VCPUs oldest first. A memory write's register operand
    /// is not captured (only immediates are in the instruction bytes): use a
    /// MEM trap with a port as a doorbell. Nobody supplies a value for a read
    /// delivered this way: an `IN` reads zero and a memory read leaves its
    /// destination unchanged, so traps whose reads need answers are set
    /// without a port (their packets come back from `mx_vcpu_resume`, and the
    /// VMM answers with `mx_vcpu_write_state`). Closing the guest's
    /// last handle removes its traps and only their queued packets; VCPUs
    /// paused on them return `MX_ERR_BAD_STATE`, and the VCPUs run on without
    /// traps. If the port has
    /// lost its last handle, an access that would queue a packet completes,
    /// the packet is dropped and `mx_vcpu_resume` returns `MX_ERR_BAD_STATE`;
    /// resuming again runs on. A paused VCPU whose thread is killed returns
    /// `MX_ERR_CANCELED`.
    pub const C_GUEST_TRAP_POOL: ConstGroup = ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Packets preallocated per trap with a port.
        pub const GUEST_TRAP_POOL_SIZE: u64 = 256 => "MX_GUEST_TRAP_POOL_SIZE";
    }
}

c_enum! {
    /// State kinds (`mx_vcpu_read_state`, `mx_vcpu_write_state`).
    pub enum VcpuStateKind: u32, ConstStyle::Enum { typedef: None };
    {
        /// `mx_vcpu_state_t`, read and write.
        State = 0 => "MX_VCPU_STATE",
        /// `mx_vcpu_io_t`, write only: the result of a trapped `IN`.
        Io = 1 => "MX_VCPU_IO",
        /// `mx_vcpu_system_t` (magnetar): read returns every field; write
        /// applies `rip`, `rflags` and `cr3` only.
        System = 2 => "MX_VCPU_SYSTEM",
    }
}

c_struct! {
    /// The arguments of `mx_vcpu_create` (x86 layout).
    pub struct VcpuCreateArgs as mx_vcpu_create_args_t, size 24;
    {
        /// Initial RIP: below `MX_GUEST_PHYS_SIZE`. Nothing need back it
        /// yet (physmem, a mapping or a MEM trap); an access to a
        /// guest-physical address none of those covers makes
        /// `mx_vcpu_resume` return `MX_ERR_OUT_OF_RANGE`.
        @0 pub ip: u64 as "mx_vaddr_t ip";
        /// Initial CR3: at most `MX_GUEST_PHYS_SIZE - 4096` (no alignment
        /// required), under the same rule.
        @8 pub cr3: u64 as "mx_vaddr_t cr3";
        /// A VMO of at least one page (READ|WRITE) backing the virtual APIC page.
        @16 pub apic_vmo: u32 as "mx_handle_t apic_vmo";
    }
}

c_struct! {
    /// General registers of a VCPU (x86).
    pub struct VcpuState as mx_vcpu_state_t, size 136;
    {
        /// RAX.
        @0 pub rax: u64 as "uint64_t rax";
        /// RCX.
        @8 pub rcx: u64 as "uint64_t rcx";
        /// RDX.
        @16 pub rdx: u64 as "uint64_t rdx";
        /// RBX.
        @24 pub rbx: u64 as "uint64_t rbx";
        /// RSP.
        @32 pub rsp: u64 as "uint64_t rsp";
        /// RBP.
        @40 pub rbp: u64 as "uint64_t rbp";
        /// RSI.
        @48 pub rsi: u64 as "uint64_t rsi";
        /// RDI.
        @56 pub rdi: u64 as "uint64_t rdi";
        /// R8.
        @64 pub r8: u64 as "uint64_t r8";
        /// R9.
        @72 pub r9: u64 as "uint64_t r9";
        /// R10.
        @80 pub r10: u64 as "uint64_t r10";
        /// R11.
        @88 pub r11: u64 as "uint64_t r11";
        /// R12.
        @96 pub r12: u64 as "uint64_t r12";
        /// R13.
        @104 pub r13: u64 as "uint64_t r13";
        /// R14.
        @112 pub r14: u64 as "uint64_t r14";
        /// R15.
        @120 pub r15: u64 as "uint64_t r15";
        /// The user bits of RFLAGS (CF PF AF ZF SF TF DF OF NT AC ID). On write
        /// they are applied only if bit 1 (0x2) is set.
        @128 pub flags: u32 as "uint32_t flags";
    }
}

/// The RFLAGS bits `mx_vcpu_state_t.flags` carries.
pub const VCPU_FLAGS_USER: u32 = 0x0024_4dd5;
/// The always-one RFLAGS bit that makes a written `flags` take effect.
pub const VCPU_FLAGS_APPLY: u32 = 0x2;

c_struct! {
    /// The value for a trapped `IN` (`MX_VCPU_IO`).
    pub struct VcpuIo as mx_vcpu_io_t, size 8;
    {
        /// 1, 2 or 4; anything else is `MX_ERR_INVALID_ARGS`.
        @0 pub access_size: u8 as "uint8_t access_size";
        /// The data, little-endian in the low `access_size` bytes.
        @4 pub data: u32 as "uint8_t u8" | "uint16_t u16" | "uint32_t u32" | "uint8_t data[4]";
    }
}

c_struct! {
    /// The system state of a VCPU (`MX_VCPU_SYSTEM`, magnetar; x86). Reading
    /// returns every field as the guest sees it. Writing applies `rip`,
    /// `rflags` and `cr3` only and ignores the other fields: `rflags` must
    /// have bit 1 set and no reserved bit (3, 5, 15, 22-63), and `cr3` must be
    /// below `MX_GUEST_PHYS_SIZE`, else `MX_ERR_INVALID_ARGS` and nothing
    /// changes. Writing CR3 drops the guest's cached translations. Moving
    /// RIP ends an interrupt shadow.
    pub struct VcpuSystem as mx_vcpu_system_t, size 80;
    {
        /// RIP.
        @0 pub rip: u64 as "uint64_t rip";
        /// RFLAGS.
        @8 pub rflags: u64 as "uint64_t rflags";
        /// CR0.
        @16 pub cr0: u64 as "uint64_t cr0";
        /// CR2 (the last page-fault address the guest saw).
        @24 pub cr2: u64 as "uint64_t cr2";
        /// CR3.
        @32 pub cr3: u64 as "uint64_t cr3";
        /// CR4.
        @40 pub cr4: u64 as "uint64_t cr4";
        /// EFER (LME, LMA, NXE, SCE as the guest set them).
        @48 pub efer: u64 as "uint64_t efer";
        /// The code segment's base.
        @56 pub cs_base: u64 as "uint64_t cs_base";
        /// The code segment's limit (bytes - 1, expanded by G).
        @64 pub cs_limit: u32 as "uint32_t cs_limit";
        /// The code segment's selector.
        @68 pub cs_selector: u16 as "uint16_t cs_selector";
        /// The code segment's attributes in the x86 descriptor layout: type
        /// 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15.
        @70 pub cs_attrib: u16 as "uint16_t cs_attrib";
        /// The current privilege level, 0-3.
        @72 pub cpl: u8 as "uint8_t cpl";
        /// 1 while interrupts are blocked for one instruction (after STI or
        /// MOV SS), else 0.
        @73 pub interrupt_shadow: u8 as "uint8_t interrupt_shadow";
        /// Zero.
        @74 pub reserved: [u8; 6] as "uint8_t reserved[6]";
    }
}

/// RFLAGS bits that must be zero in `mx_vcpu_system_t.rflags` (3, 5, 15, 22-63).
pub const VCPU_RFLAGS_RESERVED: u64 = !0x003f_7fd7;
/// The RFLAGS bit that must be one.
pub const VCPU_RFLAGS_FIXED: u64 = 0x2;
