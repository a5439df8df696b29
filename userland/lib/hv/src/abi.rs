//! The Hyper-V hypercall ABI of TLFS 2.0A as the personality implements it
//! (`shared/specs/hyperv-reference.md`; "decision N" below is the Hyper-V
//! decision N of `shared/specs/README.md`).
//!
//! Every structure is a plain Rust value with `read` (from bytes, `None`
//! when too short) and `write`/`to_bytes` at the byte offsets of the
//! reference; `SIZE` is its exact size, checked at compile time against
//! every field's end and by the host tests against the reference.

#![allow(missing_docs)]

use core::fmt;

// ------------------------------------------------------------------ fields

/// A value stored little-endian at a fixed offset of a layout.
pub trait Field: Sized + Copy {
    /// Its size in bytes.
    const WIDTH: usize;
    /// Reads it from the start of `b` (at least `WIDTH` bytes).
    fn get(b: &[u8]) -> Self;
    /// Writes it to the start of `b` (at least `WIDTH` bytes).
    fn put(&self, b: &mut [u8]);
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const WIDTH: usize = core::mem::size_of::<$t>();
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; core::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..Self::WIDTH]);
                <$t>::from_le_bytes(a)
            }
            fn put(&self, b: &mut [u8]) {
                b[..Self::WIDTH].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64, u128);

impl<const N: usize> Field for [u8; N] {
    const WIDTH: usize = N;
    fn get(b: &[u8]) -> Self {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[..N]);
        a
    }
    fn put(&self, b: &mut [u8]) {
        b[..N].copy_from_slice(self);
    }
}

/// Declares a layout: a struct of [`Field`]s at byte offsets, its exact
/// size, and `read`/`write`/`to_bytes`. Each field must end inside `SIZE`
/// (a compile-time check).
macro_rules! layout {
    ($(
        $(#[$m:meta])*
        pub struct $name:ident, size $size:literal {
            $( $(#[$fm:meta])* @$off:literal $field:ident: $ty:ty, )*
        }
    )*) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fm])* pub $field: $ty, )*
        }

        impl $name {
            /// Its exact size in bytes.
            pub const SIZE: usize = $size;

            /// Decodes it from the first `SIZE` bytes of `b`.
            pub fn read(b: &[u8]) -> Option<Self> {
                if b.len() < $size {
                    return None;
                }
                Some($name { $( $field: <$ty as Field>::get(&b[$off..]), )* })
            }

            /// Encodes it into the first `SIZE` bytes of `b` (padding untouched).
            ///
            /// # Panics
            ///
            /// If `b` is shorter than `SIZE` (a caller's bug, never input).
            pub fn write(&self, b: &mut [u8]) {
                $( Field::put(&self.$field, &mut b[$off..]); )*
            }

            /// Its bytes (padding zero).
            pub fn to_bytes(&self) -> [u8; $size] {
                let mut b = [0u8; $size];
                self.write(&mut b);
                b
            }
        }

        impl Field for $name {
            const WIDTH: usize = $size;
            fn get(b: &[u8]) -> Self {
                $name { $( $field: <$ty as Field>::get(&b[$off..]), )* }
            }
            fn put(&self, b: &mut [u8]) {
                self.write(b)
            }
        }

        $( const _: () = assert!($off + <$ty as Field>::WIDTH <= $size, "field ends past the layout"); )*
    )*};
}

// ------------------------------------------------------------------ status

/// `HV_STATUS`: the 16-bit result of a hypercall (reference §3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HvStatus(pub u16);

macro_rules! statuses {
    ($($name:ident = $v:literal,)*) => {
        impl HvStatus {
            $( pub const $name: HvStatus = HvStatus($v); )*

            /// The TLFS name without the `HV_STATUS_` prefix, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $v => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

statuses! {
    SUCCESS = 0x0000,
    INVALID_HYPERCALL_CODE = 0x0002,
    INVALID_HYPERCALL_INPUT = 0x0003,
    INVALID_ALIGNMENT = 0x0004,
    INVALID_PARAMETER = 0x0005,
    ACCESS_DENIED = 0x0006,
    INVALID_PARTITION_STATE = 0x0007,
    OPERATION_DENIED = 0x0008,
    UNKNOWN_PROPERTY = 0x0009,
    PROPERTY_VALUE_OUT_OF_RANGE = 0x000A,
    INSUFFICIENT_MEMORY = 0x000B,
    PARTITION_TOO_DEEP = 0x000C,
    INVALID_PARTITION_ID = 0x000D,
    INVALID_VP_INDEX = 0x000E,
    NOT_FOUND = 0x0010,
    INVALID_PORT_ID = 0x0011,
    INVALID_CONNECTION_ID = 0x0012,
    INSUFFICIENT_BUFFERS = 0x0013,
    NOT_ACKNOWLEDGED = 0x0014,
    INVALID_VP_STATE = 0x0015,
    ACKNOWLEDGED = 0x0016,
    INVALID_SAVE_RESTORE_STATE = 0x0017,
    INVALID_SYNIC_STATE = 0x0018,
    OBJECT_IN_USE = 0x0019,
    INVALID_PROXIMITY_DOMAIN_INFO = 0x001A,
    NO_DATA = 0x001B,
    INACTIVE = 0x001C,
    NO_RESOURCES = 0x001D,
    FEATURE_UNAVAILABLE = 0x001E,
    PARTIAL_PACKET = 0x001F,
    PROCESSOR_FEATURE_NOT_SUPPORTED = 0x0020,
    PROCESSOR_CACHE_LINE_FLUSH_SIZE_INCOMPATIBLE = 0x0030,
    INSUFFICIENT_BUFFER = 0x0033,
    INCOMPATIBLE_PROCESSOR = 0x0037,
    INSUFFICIENT_DEVICE_DOMAINS = 0x0038,
    CPUID_FEATURE_VALIDATION_ERROR = 0x003C,
    CPUID_XSAVE_FEATURE_VALIDATION_ERROR = 0x003D,
    PROCESSOR_STARTUP_TIMEOUT = 0x003E,
    SMX_ENABLED = 0x003F,
    INVALID_LP_INDEX = 0x0041,
    INVALID_REGISTER_VALUE = 0x0050,
    INVALID_VTL_STATE = 0x0051,
    NX_NOT_DETECTED = 0x0055,
    INVALID_DEVICE_ID = 0x0057,
    INVALID_DEVICE_STATE = 0x0058,
    PENDING_PAGE_REQUESTS = 0x0059,
    PAGE_REQUEST_INVALID = 0x0060,
    OPERATION_FAILED = 0x0071,
    NOT_ALLOWED_WITH_NESTED_VIRT_ACTIVE = 0x0072,
    TIME_OUT = 0x0078,
    CALL_PENDING = 0x0079,
    VTL_ALREADY_ENABLED = 0x0086,
    UNKNOWN_REGISTER_NAME = 0x0087,
}

impl HvStatus {
    /// Whether this is `HV_STATUS_SUCCESS`.
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// `Ok(())` for SUCCESS, else `Err(self)`.
    pub const fn result(self) -> Result<(), HvStatus> {
        if self.0 == 0 {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Debug for HvStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "HV_STATUS_{n}"),
            None => write!(f, "HV_STATUS({:#06x})", self.0),
        }
    }
}

impl fmt::Display for HvStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

// ------------------------------------------------------------------ call codes

/// Hypercall call codes (TLFS 2.0A; decision 1).
pub mod call {
    pub const CREATE_PARTITION: u16 = 0x0040;
    pub const INITIALIZE_PARTITION: u16 = 0x0041;
    pub const FINALIZE_PARTITION: u16 = 0x0042;
    pub const DELETE_PARTITION: u16 = 0x0043;
    pub const GET_PARTITION_PROPERTY: u16 = 0x0044;
    pub const SET_PARTITION_PROPERTY: u16 = 0x0045;
    pub const GET_PARTITION_ID: u16 = 0x0046;
    pub const GET_NEXT_CHILD_PARTITION: u16 = 0x0047;
    pub const DEPOSIT_MEMORY: u16 = 0x0048;
    pub const WITHDRAW_MEMORY: u16 = 0x0049;
    pub const GET_MEMORY_BALANCE: u16 = 0x004A;
    pub const MAP_GPA_PAGES: u16 = 0x004B;
    pub const UNMAP_GPA_PAGES: u16 = 0x004C;
    pub const INSTALL_INTERCEPT: u16 = 0x004D;
    pub const CREATE_VP: u16 = 0x004E;
    pub const DELETE_VP: u16 = 0x004F;
    pub const GET_VP_REGISTERS: u16 = 0x0050;
    pub const SET_VP_REGISTERS: u16 = 0x0051;
    pub const TRANSLATE_VIRTUAL_ADDRESS: u16 = 0x0052;
    pub const ASSERT_VIRTUAL_INTERRUPT: u16 = 0x0055;
    pub const CLEAR_VIRTUAL_INTERRUPT: u16 = 0x0056;
    pub const CREATE_PORT: u16 = 0x0057;
    pub const DELETE_PORT: u16 = 0x0058;
    pub const CONNECT_PORT: u16 = 0x0059;
    pub const GET_PORT_PROPERTY: u16 = 0x005A;
    pub const DISCONNECT_PORT: u16 = 0x005B;
    pub const POST_MESSAGE: u16 = 0x005C;
    pub const SIGNAL_EVENT: u16 = 0x005D;
}

// ------------------------------------------------------------------ input / result values

/// The hypercall input value (RCX; reference §1.1, TLFS 2.0A).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Control {
    pub code: u16,
    pub fast: bool,
    pub rep_count: u16,
    pub rep_start: u16,
}

impl Control {
    /// Bit 16.
    pub const FAST: u64 = 1 << 16;
    /// Bits 43:32.
    pub const REP_COUNT_SHIFT: u32 = 32;
    /// Bits 59:48.
    pub const REP_START_SHIFT: u32 = 48;
    /// The 12-bit rep fields.
    pub const REP_MASK: u64 = 0xfff;
    /// Bits that must be zero in TLFS 2.0A: 31:17 (the later variable
    /// header size and "is nested" included), 47:44 and 63:60.
    pub const RESERVED: u64 = (0x7fff << 17) | (0xf << 44) | (0xf << 60);

    /// A simple call.
    pub const fn simple(code: u16) -> Control {
        Control { code, fast: false, rep_count: 0, rep_start: 0 }
    }

    /// A simple call in the register (fast) convention.
    pub const fn fast(code: u16) -> Control {
        Control { code, fast: true, rep_count: 0, rep_start: 0 }
    }

    /// A rep call of `count` elements from `start`.
    pub const fn rep(code: u16, count: u16, start: u16) -> Control {
        Control { code, fast: false, rep_count: count, rep_start: start }
    }

    /// Decodes the fields (reserved bits are ignored: see [`Control::RESERVED`]).
    pub const fn from_raw(raw: u64) -> Control {
        Control {
            code: raw as u16,
            fast: raw & Self::FAST != 0,
            rep_count: ((raw >> Self::REP_COUNT_SHIFT) & Self::REP_MASK) as u16,
            rep_start: ((raw >> Self::REP_START_SHIFT) & Self::REP_MASK) as u16,
        }
    }

    /// Encodes the fields (rep fields truncated to 12 bits).
    pub const fn raw(&self) -> u64 {
        self.code as u64
            | if self.fast { Self::FAST } else { 0 }
            | ((self.rep_count as u64 & Self::REP_MASK) << Self::REP_COUNT_SHIFT)
            | ((self.rep_start as u64 & Self::REP_MASK) << Self::REP_START_SHIFT)
    }

    /// Whether `raw` has a reserved bit set.
    pub const fn has_reserved_bits(raw: u64) -> bool {
        raw & Self::RESERVED != 0
    }
}

/// The hypercall result value (RAX; reference §1.2): status in 15:0, reps
/// completed in 43:32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvResult {
    pub status: HvStatus,
    pub reps_completed: u16,
}

impl HvResult {
    pub const fn new(status: HvStatus, reps_completed: u16) -> HvResult {
        HvResult { status, reps_completed }
    }

    pub const fn from_raw(raw: u64) -> HvResult {
        HvResult { status: HvStatus(raw as u16), reps_completed: ((raw >> 32) & 0xfff) as u16 }
    }

    pub const fn raw(&self) -> u64 {
        self.status.0 as u64 | ((self.reps_completed as u64 & 0xfff) << 32)
    }
}

// ------------------------------------------------------------------ shared types

pub type PartitionId = u64;
pub const PARTITION_ID_INVALID: u64 = 0;
pub const PARTITION_ID_SELF: u64 = u64::MAX;
pub const VP_INDEX_ANY: u32 = 0xFFFF_FFFF;
pub const VP_INDEX_SELF: u32 = 0xFFFF_FFFE;
/// Flags of one SINT's event-flag area.
pub const EVENT_FLAGS_COUNT: u32 = 2048;
/// Synthetic interrupt sources per VP.
pub const SINT_COUNT: u32 = 16;
/// Bytes of a message payload.
pub const MESSAGE_PAYLOAD_SIZE: usize = 240;
/// Guest message buffers per port (reference §6.2).
pub const PORT_MESSAGE_BUFFERS: usize = 16;
/// Port and connection ids are 24 bits.
pub const PORT_ID_MASK: u32 = 0x00FF_FFFF;

layout! {
    /// `HV_PROXIMITY_DOMAIN_INFO` (reference §4.6).
    pub struct ProximityDomainInfo, size 8 {
        @0 id: u32,
        @4 flags: u32,
    }
}

impl ProximityDomainInfo {
    /// Bit 0: the domain is a preference, the hypervisor may fall back.
    pub const PREFERRED: u32 = 1 << 0;
    /// Bit 31: `id` and the flags mean something.
    pub const VALID: u32 = 1 << 31;
    /// Bits 30:1.
    pub const RESERVED: u32 = !(Self::PREFERRED | Self::VALID);

    /// "Any domain".
    pub const ANY: ProximityDomainInfo = ProximityDomainInfo { id: 0, flags: 0 };

    /// Whether the server accepts it: no reserved flag set, and a required
    /// (valid, not preferred) domain is domain 0, the only one there is.
    pub const fn is_acceptable(&self) -> bool {
        if self.flags & Self::RESERVED != 0 {
            return false;
        }
        !(self.flags & Self::VALID != 0 && self.flags & Self::PREFERRED == 0 && self.id != 0)
    }

    pub const fn from_u64(v: u64) -> ProximityDomainInfo {
        ProximityDomainInfo { id: v as u32, flags: (v >> 32) as u32 }
    }

    pub const fn as_u64(&self) -> u64 {
        self.id as u64 | ((self.flags as u64) << 32)
    }
}

// ------------------------------------------------------------------ privileges and properties

/// `HV_PARTITION_PRIVILEGE_MASK` bits (reference §4.3).
pub mod privilege {
    pub const ACCESS_VP_RUNTIME_MSR: u64 = 1 << 0;
    pub const ACCESS_PARTITION_REFERENCE_COUNTER: u64 = 1 << 1;
    pub const ACCESS_SYNIC_MSRS: u64 = 1 << 2;
    pub const ACCESS_SYNTHETIC_TIMER_MSRS: u64 = 1 << 3;
    pub const ACCESS_APIC_MSRS: u64 = 1 << 4;
    pub const ACCESS_HYPERCALL_MSRS: u64 = 1 << 5;
    pub const ACCESS_VP_INDEX: u64 = 1 << 6;
    pub const ACCESS_RESET_MSR: u64 = 1 << 7;
    pub const ACCESS_STATS_MSR: u64 = 1 << 8;
    pub const ACCESS_PARTITION_REFERENCE_TSC: u64 = 1 << 9;
    pub const ACCESS_GUEST_IDLE_MSR: u64 = 1 << 10;
    pub const CREATE_PARTITIONS: u64 = 1 << 32;
    pub const ACCESS_PARTITION_ID: u64 = 1 << 33;
    pub const ACCESS_MEMORY_POOL: u64 = 1 << 34;
    pub const ADJUST_MESSAGE_BUFFERS: u64 = 1 << 35;
    pub const POST_MESSAGES: u64 = 1 << 36;
    pub const SIGNAL_EVENTS: u64 = 1 << 37;
    pub const CREATE_PORT: u64 = 1 << 38;
    pub const CONNECT_PORT: u64 = 1 << 39;
    pub const ACCESS_STATS: u64 = 1 << 40;
    pub const DEBUGGING: u64 = 1 << 43;
    pub const CPU_MANAGEMENT: u64 = 1 << 44;
    pub const CONFIGURE_PROFILER: u64 = 1 << 45;

    /// TLFS 2.0A defaults for a non-root partition: bits 0-8 and 10.
    pub const CHILD_DEFAULT: u64 = 0x5FF;
    /// Every privilege TLFS 2.0A defines (the root's mask).
    pub const ALL: u64 = 0x7FF | (0x3 << 43) | (0x1FF << 32) | CONFIGURE_PROFILER;
}

/// `HV_PARTITION_PROPERTY_CODE` values (reference §4.5).
pub mod property {
    pub const PRIVILEGE_FLAGS: u32 = 0x0001_0000;
    pub const CPU_RESERVE: u32 = 0x0002_0001;
    pub const CPU_CAP: u32 = 0x0002_0002;
    pub const CPU_WEIGHT: u32 = 0x0002_0003;
    pub const EMULATED_TIMER_PERIOD: u32 = 0x0003_0000;
    pub const EMULATED_TIMER_CONTROL: u32 = 0x0003_0001;
    pub const PM_TIMER_ASSIST: u32 = 0x0003_0002;
    pub const DEBUG_CHANNEL_ID: u32 = 0x0004_0000;
    pub const VIRTUAL_TLB_PAGE_COUNT: u32 = 0x0005_0000;
    pub const PROCESSOR_VENDOR: u32 = 0x0006_0000;
    pub const PROCESSOR_FEATURES: u32 = 0x0006_0001;
    pub const PROCESSOR_XSAVE_FEATURES: u32 = 0x0006_0002;
    pub const PROCESSOR_CL_FLUSH_SIZE: u32 = 0x0006_0003;
    /// `ProcessorVendor` of an AMD host.
    pub const VENDOR_AMD: u64 = 0;
}

/// `HV_PORT_PROPERTY_CODE` values (reference §3.1, Get/SetPortProperty).
pub mod port_property {
    pub const POST_COUNT: u32 = 0x0;
    pub const PREFERRED_TARGET_VP: u32 = 0x1;
}

// ------------------------------------------------------------------ intercepts

/// `HV_INTERCEPT_TYPE` values (reference §5.1).
pub mod intercept {
    pub const X64_IO_PORT: u32 = 0x0;
    pub const X64_MSR: u32 = 0x1;
    pub const X64_CPUID: u32 = 0x2;
    pub const X64_EXCEPTION: u32 = 0x3;

    /// `HV_INTERCEPT_ACCESS_TYPE_MASK` bits.
    pub const ACCESS_NONE: u32 = 0;
    pub const ACCESS_READ: u32 = 1;
    pub const ACCESS_WRITE: u32 = 2;
    pub const ACCESS_EXECUTE: u32 = 4;

    /// `InterceptAccessType` in messages: an enum (decision 3).
    pub const ACCESS_TYPE_READ: u8 = 0;
    pub const ACCESS_TYPE_WRITE: u8 = 1;
    pub const ACCESS_TYPE_EXECUTE: u8 = 2;

    /// Whether `mask` is an installing mask the type accepts (decision 7;
    /// NONE, which removes, is checked apart).
    pub const fn access_valid(ty: u32, mask: u32) -> bool {
        match ty {
            X64_IO_PORT | X64_MSR => mask != 0 && mask & !(ACCESS_READ | ACCESS_WRITE) == 0,
            X64_CPUID | X64_EXCEPTION => mask == ACCESS_EXECUTE,
            _ => false,
        }
    }
}

layout! {
    /// `HV_INTERCEPT_DESCRIPTOR`: the type and its parameter (a u64 union:
    /// IoPort u16, CpuidIndex u32, ExceptionVector u16; none for MSRs).
    pub struct InterceptDescriptor, size 16 {
        @0 intercept_type: u32,
        @8 parameter: u64,
    }
}

// ------------------------------------------------------------------ registers

/// `HV_REGISTER_NAME` values the server implements (reference §2).
pub mod reg {
    pub const EXPLICIT_SUSPEND: u32 = 0x0000_0000;
    pub const INTERCEPT_SUSPEND: u32 = 0x0000_0001;
    pub const RAX: u32 = 0x0002_0000;
    pub const RCX: u32 = 0x0002_0001;
    pub const RDX: u32 = 0x0002_0002;
    pub const RBX: u32 = 0x0002_0003;
    pub const RSP: u32 = 0x0002_0004;
    pub const RBP: u32 = 0x0002_0005;
    pub const RSI: u32 = 0x0002_0006;
    pub const RDI: u32 = 0x0002_0007;
    pub const R8: u32 = 0x0002_0008;
    pub const R9: u32 = 0x0002_0009;
    pub const R10: u32 = 0x0002_000A;
    pub const R11: u32 = 0x0002_000B;
    pub const R12: u32 = 0x0002_000C;
    pub const R13: u32 = 0x0002_000D;
    pub const R14: u32 = 0x0002_000E;
    pub const R15: u32 = 0x0002_000F;
    pub const RIP: u32 = 0x0002_0010;
    pub const RFLAGS: u32 = 0x0002_0011;
    pub const CR0: u32 = 0x0004_0000;
    pub const CR2: u32 = 0x0004_0001;
    pub const CR3: u32 = 0x0004_0002;
    pub const CR4: u32 = 0x0004_0003;
    pub const CS: u32 = 0x0006_0001;
    pub const EFER: u32 = 0x0008_0001;

    /// Bit 0 of either suspend register.
    pub const SUSPENDED: u128 = 1;
}

layout! {
    /// One element of `HvSetVpRegisters`' input list: name, 12 reserved
    /// bytes, the 128-bit value.
    pub struct RegisterAssoc, size 32 {
        @0 name: u32,
        @4 reserved: [u8; 12],
        @16 value: u128,
    }

    /// `HV_X64_SEGMENT_REGISTER` (16 bytes, x86 attribute format).
    pub struct SegmentRegister, size 16 {
        @0 base: u64,
        @8 limit: u32,
        @12 selector: u16,
        @14 attributes: u16,
    }
}

// ------------------------------------------------------------------ ports

/// `HV_PORT_TYPE` values.
pub mod port_type {
    pub const MESSAGE: u32 = 1;
    pub const EVENT: u32 = 2;
    pub const MONITOR: u32 = 3;
}

layout! {
    /// `HV_PORT_INFO` (24 bytes). The union after `port_type` is read by
    /// type: message {TargetSint, TargetVp, RsvdZ u64}, event {TargetSint,
    /// TargetVp, BaseFlagNumber u16, FlagCount u16, RsvdZ u32}, monitor
    /// {MonitorAddress u64, RsvdZ u64}.
    pub struct PortInfo, size 24 {
        @0 port_type: u32,
        @4 padding: u32,
        @8 target_sint: u32,
        @12 target_vp: u32,
        @16 base_flag_number: u16,
        @18 flag_count: u16,
        @20 reserved: u32,
    }

    /// `HV_CONNECTION_INFO` (TLFS 2.0A: 16 bytes): the type, then RsvdZ u64
    /// (message, event) or MonitorAddress.
    pub struct ConnectionInfo, size 16 {
        @0 port_type: u32,
        @4 padding: u32,
        @8 reserved: u64,
    }
}

impl PortInfo {
    /// A message port delivering to `sint` of `vp`.
    pub const fn message(sint: u32, vp: u32) -> PortInfo {
        PortInfo {
            port_type: port_type::MESSAGE,
            padding: 0,
            target_sint: sint,
            target_vp: vp,
            base_flag_number: 0,
            flag_count: 0,
            reserved: 0,
        }
    }

    /// An event port setting flags `base..base+count` of `sint`'s area on `vp`.
    pub const fn event(sint: u32, vp: u32, base: u16, count: u16) -> PortInfo {
        PortInfo {
            port_type: port_type::EVENT,
            padding: 0,
            target_sint: sint,
            target_vp: vp,
            base_flag_number: base,
            flag_count: count,
            reserved: 0,
        }
    }

    /// The monitor port's address (the union read as monitor).
    pub const fn monitor_address(&self) -> u64 {
        self.target_sint as u64 | ((self.target_vp as u64) << 32)
    }
}

impl ConnectionInfo {
    pub const fn new(port_type: u32) -> ConnectionInfo {
        ConnectionInfo { port_type, padding: 0, reserved: 0 }
    }
}

// ------------------------------------------------------------------ messages

/// `HV_MESSAGE_TYPE` values (reference §5.3).
pub mod message_type {
    pub const NONE: u32 = 0x0000_0000;
    pub const UNMAPPED_GPA: u32 = 0x8000_0000;
    pub const GPA_INTERCEPT: u32 = 0x8000_0001;
    pub const TIMER_EXPIRED: u32 = 0x8000_0010;
    pub const INVALID_VP_REGISTER_VALUE: u32 = 0x8000_0020;
    pub const UNRECOVERABLE_EXCEPTION: u32 = 0x8000_0021;
    pub const UNSUPPORTED_FEATURE: u32 = 0x8000_0022;
    pub const X64_IO_PORT_INTERCEPT: u32 = 0x8001_0000;
    pub const X64_MSR_INTERCEPT: u32 = 0x8001_0001;
    pub const X64_CPUID_INTERCEPT: u32 = 0x8001_0002;
    pub const X64_EXCEPTION_INTERCEPT: u32 = 0x8001_0003;
    /// Bit 31: types only the hypervisor sends.
    pub const HYPERVISOR_ONLY: u32 = 0x8000_0000;
}

layout! {
    /// The message header (decision 2): type, payload size at 4, flags at
    /// 5 (bit 0 MessagePending), reserved u16, origination id.
    pub struct MessageHeader, size 16 {
        @0 message_type: u32,
        @4 payload_size: u8,
        @5 message_flags: u8,
        @6 reserved: u16,
        @8 origination_id: u64,
    }
}

impl MessageHeader {
    /// `MessageFlags` bit 0.
    pub const MESSAGE_PENDING: u8 = 1;
}

/// `HV_MESSAGE`: one 256-byte SIM slot.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HvMessage {
    pub header: MessageHeader,
    pub payload: [u8; MESSAGE_PAYLOAD_SIZE],
}

impl Default for HvMessage {
    fn default() -> Self {
        HvMessage { header: MessageHeader::default(), payload: [0; MESSAGE_PAYLOAD_SIZE] }
    }
}

impl fmt::Debug for HvMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = usize::from(self.header.payload_size).min(MESSAGE_PAYLOAD_SIZE);
        f.debug_struct("HvMessage").field("header", &self.header).field("payload", &&self.payload[..shown]).finish()
    }
}

impl HvMessage {
    pub const SIZE: usize = 256;

    pub fn read(b: &[u8]) -> Option<HvMessage> {
        if b.len() < Self::SIZE {
            return None;
        }
        let header = MessageHeader::read(b)?;
        let mut payload = [0u8; MESSAGE_PAYLOAD_SIZE];
        payload.copy_from_slice(&b[16..Self::SIZE]);
        Some(HvMessage { header, payload })
    }

    /// # Panics
    ///
    /// If `b` is shorter than 256 bytes (a caller's bug).
    pub fn write(&self, b: &mut [u8]) {
        self.header.write(b);
        b[16..Self::SIZE].copy_from_slice(&self.payload);
    }

    pub fn to_bytes(&self) -> [u8; 256] {
        let mut b = [0u8; 256];
        self.write(&mut b);
        b
    }

    /// The intercept header at the start of the payload, if it is one.
    pub fn intercept_header(&self) -> Option<InterceptHeader> {
        InterceptHeader::read(&self.payload)
    }
}

layout! {
    /// `HV_X64_INTERCEPT_MESSAGE_HEADER` (payload offsets; the reference
    /// §5.4 counts from the message start, 16 bytes earlier).
    pub struct InterceptHeader, size 40 {
        @0 vp_index: u32,
        @4 instruction_length: u8,
        @5 intercept_access_type: u8,
        @6 execution_state: u16,
        @8 cs: SegmentRegister,
        @24 rip: u64,
        @32 rflags: u64,
    }

    /// `HV_X64_IO_PORT_INTERCEPT_MESSAGE` payload.
    pub struct IoPortIntercept, size 128 {
        @0 header: InterceptHeader,
        @40 port_number: u16,
        @42 access_info: u8,
        @43 instruction_byte_count: u8,
        @44 reserved: u32,
        @48 rax: u64,
        @56 instruction_bytes: [u8; 16],
        @72 ds: SegmentRegister,
        @88 es: SegmentRegister,
        @104 rcx: u64,
        @112 rsi: u64,
        @120 rdi: u64,
    }

    /// `HV_X64_MSR_INTERCEPT_MESSAGE` payload.
    pub struct MsrIntercept, size 64 {
        @0 header: InterceptHeader,
        @40 msr_number: u32,
        @44 reserved: u32,
        @48 rdx: u64,
        @56 rax: u64,
    }

    /// `HV_X64_CPUID_INTERCEPT_MESSAGE` payload.
    pub struct CpuidIntercept, size 104 {
        @0 header: InterceptHeader,
        @40 rax: u64,
        @48 rcx: u64,
        @56 rdx: u64,
        @64 rbx: u64,
        @72 default_result_rax: u64,
        @80 default_result_rcx: u64,
        @88 default_result_rdx: u64,
        @96 default_result_rbx: u64,
    }

    /// `HV_X64_EXCEPTION_INTERCEPT_MESSAGE` payload (through R15).
    pub struct ExceptionIntercept, size 240 {
        @0 header: InterceptHeader,
        @40 exception_vector: u16,
        @42 exception_info: u8,
        @43 instruction_byte_count: u8,
        @44 error_code: u32,
        @48 exception_parameter: u64,
        @56 reserved: u64,
        @64 instruction_bytes: [u8; 16],
        @80 ds: SegmentRegister,
        @96 ss: SegmentRegister,
        @112 rax: u64,
        @120 rcx: u64,
        @128 rdx: u64,
        @136 rbx: u64,
        @144 rsp: u64,
        @152 rbp: u64,
        @160 rsi: u64,
        @168 rdi: u64,
        @176 r8: u64,
        @184 r9: u64,
        @192 r10: u64,
        @200 r11: u64,
        @208 r12: u64,
        @216 r13: u64,
        @224 r14: u64,
        @232 r15: u64,
    }
}

impl InterceptHeader {
    /// `ExecutionState` bits.
    pub const EXEC_CPL_MASK: u16 = 0x3;
    pub const EXEC_CR0_PE: u16 = 1 << 2;
    pub const EXEC_CR0_AM: u16 = 1 << 3;
    pub const EXEC_EFER_LMA: u16 = 1 << 4;
    pub const EXEC_DEBUG_ACTIVE: u16 = 1 << 5;
    pub const EXEC_INTERRUPTION_PENDING: u16 = 1 << 6;
}

impl IoPortIntercept {
    /// `AccessInfo` size encodings (bits 2:0).
    pub const fn access_size_bits(size: u8) -> u8 {
        match size {
            1 => 0b001,
            2 => 0b010,
            _ => 0b100,
        }
    }
    pub const ACCESS_STRING_OP: u8 = 1 << 3;
    pub const ACCESS_REP_PREFIX: u8 = 1 << 4;
}

// ------------------------------------------------------------------ MSRs and CPUID

/// Synthetic MSRs (reference §1.6).
pub mod msr {
    pub const GUEST_OS_ID: u32 = 0x4000_0000;
    pub const HYPERCALL: u32 = 0x4000_0001;
    pub const VP_INDEX: u32 = 0x4000_0002;
    pub const VP_RUNTIME: u32 = 0x4000_0010;
    pub const TIME_REF_COUNT: u32 = 0x4000_0020;
    pub const SCONTROL: u32 = 0x4000_0080;
    pub const SVERSION: u32 = 0x4000_0081;
    pub const SIEFP: u32 = 0x4000_0082;
    pub const SIMP: u32 = 0x4000_0083;
    pub const EOM: u32 = 0x4000_0084;
    pub const SINT0: u32 = 0x4000_0090;
    pub const SINT15: u32 = 0x4000_009F;

    /// `HV_X64_MSR_HYPERCALL` bit 0.
    pub const HYPERCALL_ENABLE: u64 = 1;
    /// SCONTROL bit 0; SIEFP/SIMP bit 0.
    pub const ENABLE: u64 = 1;
    /// SINTx bits.
    pub const SINT_VECTOR_MASK: u64 = 0xff;
    pub const SINT_MASKED: u64 = 1 << 16;
    pub const SINT_AUTO_EOI: u64 = 1 << 17;
    /// SINTx reset value: masked.
    pub const SINT_RESET: u64 = SINT_MASKED;
    /// SVERSION's value.
    pub const SVERSION_VALUE: u64 = 1;
}

/// Hyper-V CPUID leaves (reference §1.6).
pub mod cpuid {
    pub const VENDOR: u32 = 0x4000_0000;
    pub const INTERFACE: u32 = 0x4000_0001;
    pub const VERSION: u32 = 0x4000_0002;
    pub const FEATURES: u32 = 0x4000_0003;
    pub const ENLIGHTENMENTS: u32 = 0x4000_0004;
    pub const LIMITS: u32 = 0x4000_0005;
    /// The highest leaf reported.
    pub const MAX_LEAF: u32 = LIMITS;
    /// "Hv#1".
    pub const INTERFACE_SIGNATURE: u32 = 0x3123_7648;
    /// "Microsoft Hv" as EBX, ECX, EDX.
    pub const VENDOR_EBX: u32 = u32::from_le_bytes(*b"Micr");
    pub const VENDOR_ECX: u32 = u32::from_le_bytes(*b"osof");
    pub const VENDOR_EDX: u32 = u32::from_le_bytes(*b"t Hv");
    /// CPUID.1:ECX bit 31.
    pub const HYPERVISOR_PRESENT: u32 = 1 << 31;
}

/// The hypercall page the server writes: `VMMCALL; RET`.
pub const HYPERCALL_PAGE_CODE: [u8; 4] = [0x0F, 0x01, 0xD9, 0xC3];

// ------------------------------------------------------------------ per-call layouts

layout! {
    /// HvCreatePartition input.
    pub struct CreatePartitionIn, size 16 {
        @0 flags: u64,
        @8 proximity_domain_info: ProximityDomainInfo,
    }
    /// The input of HvInitializePartition, HvFinalizePartition, HvDeletePartition.
    pub struct PartitionIdIn, size 8 {
        @0 partition_id: u64,
    }
    /// The one-qword output of HvCreatePartition, HvGetPartitionId,
    /// HvGetNextChildPartition, HvGetPartitionProperty, HvGetPortProperty.
    pub struct U64Out, size 8 {
        @0 value: u64,
    }
    pub struct GetPartitionPropertyIn, size 16 {
        @0 partition_id: u64,
        @8 property_code: u32,
        @12 padding: u32,
    }
    pub struct SetPartitionPropertyIn, size 24 {
        @0 partition_id: u64,
        @8 property_code: u32,
        @12 padding: u32,
        @16 property_value: u64,
    }
    pub struct GetNextChildPartitionIn, size 16 {
        @0 parent_id: u64,
        @8 previous_child_id: u64,
    }
    /// HvDepositMemory header; elements are u64 page numbers.
    pub struct DepositMemoryIn, size 8 {
        @0 partition_id: u64,
    }
    /// HvWithdrawMemory header; output elements are u64 page numbers.
    pub struct WithdrawMemoryIn, size 16 {
        @0 partition_id: u64,
        @8 proximity_domain_info: ProximityDomainInfo,
    }
    pub struct GetMemoryBalanceIn, size 16 {
        @0 partition_id: u64,
        @8 proximity_domain_info: ProximityDomainInfo,
    }
    pub struct GetMemoryBalanceOut, size 16 {
        @0 pages_available: u64,
        @8 pages_in_use: u64,
    }
    /// HvMapGpaPages header; elements are u64 source page numbers.
    pub struct MapGpaPagesIn, size 24 {
        @0 target_partition_id: u64,
        @8 target_gpa_base: u64,
        @16 map_flags: u32,
        @20 padding: u32,
    }
    /// HvUnmapGpaPages (a rep call without a list).
    pub struct UnmapGpaPagesIn, size 16 {
        @0 target_partition_id: u64,
        @8 target_gpa_base: u64,
    }
    pub struct InstallInterceptIn, size 24 {
        @0 partition_id: u64,
        @8 access_type: u32,
        @12 intercept_type: u32,
        @16 intercept_parameter: u64,
    }
    pub struct CreateVpIn, size 32 {
        @0 partition_id: u64,
        @8 vp_index: u32,
        @12 padding: u32,
        @16 proximity_domain_info: ProximityDomainInfo,
        @24 flags: u64,
    }
    pub struct DeleteVpIn, size 16 {
        @0 partition_id: u64,
        @8 vp_index: u32,
        @12 padding: u32,
    }
    /// HvGetVpRegisters / HvSetVpRegisters header. Get's elements are u32
    /// names (4 bytes apart), its outputs 16-byte values; Set's elements
    /// are [`RegisterAssoc`]s.
    pub struct VpRegistersIn, size 16 {
        @0 partition_id: u64,
        @8 vp_index: u32,
        @12 padding: u32,
    }
    pub struct CreatePortIn, size 48 {
        @0 port_partition_id: u64,
        @8 port_id: u32,
        @12 padding: u32,
        @16 connection_partition_id: u64,
        @24 port_info: PortInfo,
    }
    pub struct DeletePortIn, size 16 {
        @0 port_partition_id: u64,
        @8 port_id: u32,
        @12 reserved: u32,
    }
    pub struct ConnectPortIn, size 48 {
        @0 connection_partition_id: u64,
        @8 connection_id: u32,
        @12 padding: u32,
        @16 port_partition_id: u64,
        @24 port_id: u32,
        @28 padding2: u32,
        @32 connection_info: ConnectionInfo,
    }
    pub struct GetPortPropertyIn, size 24 {
        @0 partition_id: u64,
        @8 port_id: u32,
        @12 padding: u32,
        @16 property_code: u32,
        @20 padding2: u32,
    }
    pub struct DisconnectPortIn, size 16 {
        @0 connection_partition_id: u64,
        @8 connection_id: u32,
        @12 padding: u32,
    }
    /// HvPostMessage header; the 240-byte message follows at 16.
    pub struct PostMessageIn, size 16 {
        @0 connection_id: u32,
        @4 padding: u32,
        @8 message_type: u32,
        @12 payload_size: u32,
    }
    pub struct SignalEventIn, size 8 {
        @0 connection_id: u32,
        @4 flag_number: u16,
        @6 reserved: u16,
    }
}

/// The whole HvPostMessage input (header + message).
pub const POST_MESSAGE_IN_SIZE: usize = 256;

/// `HV_MAP_GPA_FLAGS` bits.
pub mod map_flags {
    pub const READABLE: u32 = 1 << 0;
    pub const WRITABLE: u32 = 1 << 1;
    pub const EXECUTABLE: u32 = 1 << 2;
    /// Every defined bit.
    pub const ALL: u32 = READABLE | WRITABLE | EXECUTABLE;
    /// Whether `flags` is a legal combination: no undefined bit, and
    /// writable or executable only with readable (x86 cannot express
    /// write-only or execute-only pages under nested paging).
    pub const fn valid(flags: u32) -> bool {
        flags & !ALL == 0 && (flags == 0 || flags & READABLE != 0)
    }
}

/// How a call is shaped: its class and block sizes, for the common checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallShape {
    /// Rep call (elements after a header).
    pub rep: bool,
    /// Documented fast-capable.
    pub fast: bool,
    /// Bytes of the fixed input header.
    pub input: usize,
    /// Bytes of one input element (rep calls; 0 when there is no list).
    pub input_elem: usize,
    /// Bytes of the fixed output.
    pub output: usize,
    /// Bytes of one output element (rep calls).
    pub output_elem: usize,
}

impl CallShape {
    const fn simple(input: usize, output: usize, fast: bool) -> CallShape {
        CallShape { rep: false, fast, input, input_elem: 0, output, output_elem: 0 }
    }
    const fn rep(input: usize, input_elem: usize, output_elem: usize) -> CallShape {
        CallShape { rep: true, fast: false, input, input_elem, output: 0, output_elem }
    }

    /// The shape of a call the server implements; `None` for an unknown code.
    pub const fn of(code: u16) -> Option<CallShape> {
        Some(match code {
            call::CREATE_PARTITION => Self::simple(CreatePartitionIn::SIZE, 8, false),
            call::INITIALIZE_PARTITION | call::FINALIZE_PARTITION | call::DELETE_PARTITION => {
                Self::simple(PartitionIdIn::SIZE, 0, true)
            }
            call::GET_PARTITION_PROPERTY => Self::simple(GetPartitionPropertyIn::SIZE, 8, false),
            call::SET_PARTITION_PROPERTY => Self::simple(SetPartitionPropertyIn::SIZE, 0, false),
            call::GET_PARTITION_ID => Self::simple(0, 8, false),
            call::GET_NEXT_CHILD_PARTITION => Self::simple(GetNextChildPartitionIn::SIZE, 8, false),
            call::DEPOSIT_MEMORY => Self::rep(DepositMemoryIn::SIZE, 8, 0),
            call::WITHDRAW_MEMORY => Self::rep(WithdrawMemoryIn::SIZE, 0, 8),
            call::GET_MEMORY_BALANCE => Self::simple(GetMemoryBalanceIn::SIZE, GetMemoryBalanceOut::SIZE, false),
            call::MAP_GPA_PAGES => Self::rep(MapGpaPagesIn::SIZE, 8, 0),
            call::UNMAP_GPA_PAGES => Self::rep(UnmapGpaPagesIn::SIZE, 0, 0),
            call::INSTALL_INTERCEPT => Self::simple(InstallInterceptIn::SIZE, 0, false),
            call::CREATE_VP => Self::simple(CreateVpIn::SIZE, 0, false),
            call::DELETE_VP => Self::simple(DeleteVpIn::SIZE, 0, true),
            call::GET_VP_REGISTERS => Self::rep(VpRegistersIn::SIZE, 4, 16),
            call::SET_VP_REGISTERS => Self::rep(VpRegistersIn::SIZE, RegisterAssoc::SIZE, 0),
            call::CREATE_PORT => Self::simple(CreatePortIn::SIZE, 0, false),
            call::DELETE_PORT => Self::simple(DeletePortIn::SIZE, 0, true),
            call::CONNECT_PORT => Self::simple(ConnectPortIn::SIZE, 0, false),
            call::GET_PORT_PROPERTY => Self::simple(GetPortPropertyIn::SIZE, 8, false),
            call::DISCONNECT_PORT => Self::simple(DisconnectPortIn::SIZE, 0, true),
            call::POST_MESSAGE => Self::simple(POST_MESSAGE_IN_SIZE, 0, false),
            call::SIGNAL_EVENT => Self::simple(SignalEventIn::SIZE, 0, true),
            _ => return None,
        })
    }

    /// Bytes of the input block for `rep_count` elements.
    pub const fn input_len(&self, rep_count: u16) -> usize {
        self.input + self.input_elem * rep_count as usize
    }

    /// Bytes of the output block for `rep_count` elements.
    pub const fn output_len(&self, rep_count: u16) -> usize {
        self.output + self.output_elem * rep_count as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_reference() {
        assert_eq!(ProximityDomainInfo::SIZE, 8);
        assert_eq!(PortInfo::SIZE, 24);
        assert_eq!(ConnectionInfo::SIZE, 16);
        assert_eq!(MessageHeader::SIZE, 16);
        assert_eq!(HvMessage::SIZE, 256);
        assert_eq!(InterceptDescriptor::SIZE, 16);
        assert_eq!(RegisterAssoc::SIZE, 32);
        assert_eq!(CreatePartitionIn::SIZE, 16);
        assert_eq!(SetPartitionPropertyIn::SIZE, 24);
        assert_eq!(CreateVpIn::SIZE, 32);
        assert_eq!(CreatePortIn::SIZE, 48);
        assert_eq!(ConnectPortIn::SIZE, 48);
        assert_eq!(InstallInterceptIn::SIZE, 24);
        assert_eq!(SignalEventIn::SIZE, 8);
        // Intercept payloads end where §5.4 says (offsets from the message start).
        assert_eq!(16 + InterceptHeader::SIZE, 56);
        assert_eq!(16 + IoPortIntercept::SIZE, 144);
        assert_eq!(16 + MsrIntercept::SIZE, 80);
        assert_eq!(16 + CpuidIntercept::SIZE, 120);
        assert_eq!(16 + ExceptionIntercept::SIZE, 256);
    }

    #[test]
    fn message_header_is_decision_2() {
        let h = MessageHeader {
            message_type: 0x8001_0000,
            payload_size: 0x88,
            message_flags: 1,
            reserved: 0,
            origination_id: 0x1122_3344_5566_7788,
        };
        let b = h.to_bytes();
        assert_eq!(&b[0..4], &[0x00, 0x00, 0x01, 0x80]);
        assert_eq!(b[4], 0x88);
        assert_eq!(b[5], 1);
        assert_eq!(&b[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(MessageHeader::read(&b), Some(h));
    }

    #[test]
    fn intercept_offsets_from_message_start() {
        let mut m = HvMessage::default();
        let io = IoPortIntercept {
            header: InterceptHeader { vp_index: 7, instruction_length: 2, rip: 0x1234, ..Default::default() },
            port_number: 0x80,
            rax: 0xab,
            ..Default::default()
        };
        io.write(&mut m.payload);
        let b = m.to_bytes();
        assert_eq!(b[16], 7);
        assert_eq!(b[20], 2);
        assert_eq!(u64::from_le_bytes(b[40..48].try_into().unwrap_or_default()), 0x1234);
        assert_eq!(u16::from_le_bytes([b[56], b[57]]), 0x80);
        assert_eq!(b[64], 0xab);
    }

    #[test]
    fn control_round_trips_and_reserved_bits() {
        let c = Control::rep(call::DEPOSIT_MEMORY, 10, 5);
        assert_eq!(c.raw(), 0x48 | (10 << 32) | (5 << 48));
        assert_eq!(Control::from_raw(c.raw()), c);
        assert!(Control::from_raw(Control::fast(0x5d).raw()).fast);
        assert!(!Control::has_reserved_bits(c.raw() | Control::FAST));
        for bit in (17..32).chain(44..48).chain(60..64) {
            assert!(Control::has_reserved_bits(1 << bit), "bit {bit}");
        }
        for bit in (0..17).chain(32..44).chain(48..60) {
            assert!(!Control::has_reserved_bits(1 << bit), "bit {bit}");
        }
    }

    #[test]
    fn result_value() {
        let r = HvResult::new(HvStatus::INSUFFICIENT_MEMORY, 3);
        assert_eq!(r.raw(), 0x0000_0003_0000_000B);
        assert_eq!(HvResult::from_raw(r.raw() | 0xffff_0000 | (0xfffff << 44)), r);
    }

    #[test]
    fn statuses() {
        assert_eq!(HvStatus::INSUFFICIENT_BUFFERS.0, 0x13);
        assert_eq!(HvStatus::INVALID_SYNIC_STATE.0, 0x18);
        assert_eq!(alloc::format!("{:?}", HvStatus::ACCESS_DENIED), "HV_STATUS_ACCESS_DENIED");
        assert_eq!(alloc::format!("{:?}", HvStatus(0x1234)), "HV_STATUS(0x1234)");
    }

    #[test]
    fn proximity_rules() {
        assert!(ProximityDomainInfo::ANY.is_acceptable());
        assert!(ProximityDomainInfo { id: 5, flags: 0 }.is_acceptable());
        assert!(ProximityDomainInfo { id: 0, flags: ProximityDomainInfo::VALID }.is_acceptable());
        assert!(!ProximityDomainInfo { id: 1, flags: ProximityDomainInfo::VALID }.is_acceptable());
        let preferred = ProximityDomainInfo::VALID | ProximityDomainInfo::PREFERRED;
        assert!(ProximityDomainInfo { id: 1, flags: preferred }.is_acceptable());
        assert!(!ProximityDomainInfo { id: 0, flags: 2 }.is_acceptable());
    }

    #[test]
    fn access_masks_are_decision_7() {
        use intercept::*;
        for ty in [X64_IO_PORT, X64_MSR] {
            assert!(access_valid(ty, 1) && access_valid(ty, 2) && access_valid(ty, 3));
            assert!(!access_valid(ty, 4) && !access_valid(ty, 5) && !access_valid(ty, 0));
        }
        for ty in [X64_CPUID, X64_EXCEPTION] {
            assert!(access_valid(ty, 4));
            assert!(!access_valid(ty, 1) && !access_valid(ty, 6) && !access_valid(ty, 7));
        }
        assert!(!access_valid(4, 1));
    }

    #[test]
    fn privileges() {
        assert_eq!(privilege::CHILD_DEFAULT & privilege::CREATE_PARTITIONS, 0);
        assert_eq!(privilege::CHILD_DEFAULT, 0b101_1111_1111);
        assert_ne!(privilege::ALL & privilege::CONNECT_PORT, 0);
    }

    #[test]
    fn call_shapes() {
        let s = CallShape::of(call::GET_VP_REGISTERS).unwrap_or(CallShape::simple(0, 0, false));
        assert!(s.rep && !s.fast);
        assert_eq!(s.input_len(3), 16 + 12);
        assert_eq!(s.output_len(3), 48);
        assert!(CallShape::of(0x0001).is_none());
        assert!(CallShape::of(call::SIGNAL_EVENT).is_some_and(|s| s.fast));
        assert!(CallShape::of(call::POST_MESSAGE).is_some_and(|s| !s.fast && s.input == 256));
    }
}
