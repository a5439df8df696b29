//! What the partition manager needs from the system, so that it stays plain
//! logic tested on the host: kernel guests and VCPU threads, the roots'
//! memory and SynIC pages, notifications. `main.rs` implements it with
//! magnetar's syscalls; the tests with a model.

use hv::abi::{HvStatus, SegmentRegister};

/// A VP's registers as the server keeps them while the VP is stopped (read
/// by its thread at every stop, written back before it runs again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegs {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15.
    pub gprs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub cs: SegmentRegister,
    pub cpl: u8,
    pub interrupt_shadow: u8,
}

pub const RAX: usize = 0;
pub const RCX: usize = 1;
pub const RDX: usize = 2;
pub const RBX: usize = 3;
pub const R8: usize = 8;

impl VcpuRegs {
    /// Whether the VP runs in protected or long mode (CR0.PE).
    pub fn protected(&self) -> bool {
        self.cr0 & 1 != 0
    }

    /// EFER.LMA && CS.L: 64-bit code.
    pub fn long_mode(&self) -> bool {
        self.efer & (1 << 10) != 0 && self.cs.attributes & (1 << 13) != 0
    }
}

/// Why a VP stopped (its thread's exit, decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// The VP is new: its thread created the VCPU and read its state.
    Created,
    /// An `IN`/`OUT` on a trapped port; RIP is past the instruction.
    Io { port: u16, size: u8, input: bool, data: u32 },
    /// RDMSR/WRMSR of an MSR the kernel does not virtualize; RIP is past it.
    Msr { msr: u32, write: bool, value: u64, inst_len: u8 },
    /// CPUID; the kernel's result is in the registers; RIP is past it.
    Cpuid { leaf: u32, subleaf: u32 },
    /// An exception (not delivered); RIP at the faulting instruction.
    Exception { vector: u8, error_code: Option<u32>, cr2: u64 },
    /// VMCALL/VMMCALL; RIP is past it.
    Vmcall { inst_len: u8 },
    /// The VCPU cannot run (`vcpu_resume` failed with this status).
    Failed(i32),
}

/// The kinds of kernel guest traps the server sets (`MX_GUEST_TRAP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    Io,
    Msr,
    Cpuid,
    Exception,
    Vmcall,
}

/// The system underneath the manager. Root memory offsets are bytes into a
/// root's memory VMO (`HV_ROOT_MEMORY_SIZE`); SynIC offsets into its
/// 2-page SynIC VMO. Failures of kernel calls become `NO_RESOURCES`.
pub trait Platform {
    /// A kernel guest.
    type Guest;
    /// A VP's VCPU and thread.
    type Vp;

    /// A guest with an empty guest-physical space.
    fn guest_create(&mut self) -> Result<Self::Guest, HvStatus>;
    /// Sets a synchronous trap over `[addr, addr + len)` of `kind`'s space.
    fn guest_trap(&mut self, guest: &Self::Guest, kind: Trap, addr: u64, len: u64) -> Result<(), HvStatus>;
    /// Maps page `index` of root `root`'s memory at guest page `gpa_page`.
    fn guest_map(&mut self, guest: &Self::Guest, root: u64, gpa_page: u64, index: u64) -> Result<(), HvStatus>;
    /// Unmaps guest page `gpa_page`.
    fn guest_unmap(&mut self, guest: &Self::Guest, gpa_page: u64);

    /// Starts a VP's thread and VCPU (RIP 0, CR3 0); it reports
    /// [`GuestExit::Created`] with its registers before the call returns.
    fn vp_create(&mut self, guest: &Self::Guest, key: u64) -> Result<(Self::Vp, VcpuRegs), HvStatus>;
    /// Lets a stopped VP run on with `regs` (written back first).
    fn vp_resume(&mut self, vp: &Self::Vp, regs: &VcpuRegs);
    /// Raises `vector` in the VP (delivered when it next runs).
    fn vp_interrupt(&mut self, vp: &Self::Vp, vector: u32);
    /// Ends the VP's thread and frees it.
    fn vp_destroy(&mut self, vp: Self::Vp);

    /// Reads root memory; false if out of range.
    fn mem_read(&self, root: u64, offset: u64, out: &mut [u8]) -> bool;
    /// Writes root memory; false if out of range.
    fn mem_write(&mut self, root: u64, offset: u64, bytes: &[u8]) -> bool;
    /// Atomically sets bit `bit` of the byte at `offset` of root memory;
    /// whether it was set before (`None` if out of range).
    fn mem_set_bit(&mut self, root: u64, offset: u64, bit: u8) -> Option<bool>;

    /// Reads a root's SynIC pages.
    fn synic_read(&self, root: u64, offset: usize, out: &mut [u8]) -> bool;
    /// Writes a root's SynIC pages.
    fn synic_write(&mut self, root: u64, offset: usize, bytes: &[u8]) -> bool;
    /// Atomically sets a bit of a root's SynIC pages; whether it was set.
    fn synic_set_bit(&mut self, root: u64, offset: usize, bit: u8) -> Option<bool>;
    /// Raises the root's notification (`MX_USER_SIGNAL_0`).
    fn notify(&mut self, root: u64);
}
