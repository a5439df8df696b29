//! Debuglog records and flags (`syscalls/log.h`), contract §1.7 and §5.28.

use crate::meta::{ConstStyle, Fmt};

c_struct! {
    /// The header of a debuglog record; `datalen` bytes of data follow.
    pub struct LogRecord as mx_log_record_t, size 32;
    {
        /// Reserved (the kernel's length word).
        @0 pub reserved: u32 as "uint32_t reserved";
        /// Bytes of data after the header (at most 224).
        @4 pub datalen: u16 as "uint16_t datalen";
        /// The log's flags OR'd with the write's options.
        @6 pub flags: u16 as "uint16_t flags";
        /// When it was written.
        @8 pub timestamp: u64 as "mx_time_t timestamp";
        /// The writer's process koid.
        @16 pub pid: u64 as "uint64_t pid";
        /// The writer's thread koid.
        @24 pub tid: u64 as "uint64_t tid";
        /// The data (a C flexible array member).
        @32 pub data: [u8; 0] as "char data[]";
    }
}

c_consts! {
    /// Record size limit.
    pub const C_LOG_MAX: ConstGroup = ConstStyle::Define { fmt: Fmt::Dec, cast: None };
    {
        /// Largest record: header plus 224 bytes of data. Readers must offer this much.
        pub const LOG_RECORD_MAX: usize = 256 => "MX_LOG_RECORD_MAX";
    }
}

c_consts! {
    /// Record flags: levels, then options.
    pub const C_LOG: ConstGroup = ConstStyle::Define { fmt: Fmt::HexU, cast: None };
    {
        /// Level: error.
        pub const LOG_ERROR: u32 = 0x0001 => "MX_LOG_ERROR";
        /// Level: info.
        pub const LOG_INFO: u32 = 0x0002 => "MX_LOG_INFO";
        /// Level: trace.
        pub const LOG_TRACE: u32 = 0x0004 => "MX_LOG_TRACE";
        /// Level: spew.
        pub const LOG_SPEW: u32 = 0x0008 => "MX_LOG_SPEW";
        /// Level: debug 1.
        pub const LOG_DEBUG1: u32 = 0x0010 => "MX_LOG_DEBUG1";
        /// Level: debug 2.
        pub const LOG_DEBUG2: u32 = 0x0020 => "MX_LOG_DEBUG2";
        /// Level: debug 3.
        pub const LOG_DEBUG3: u32 = 0x0030 => "MX_LOG_DEBUG3";
        /// Level: debug 4.
        pub const LOG_DEBUG4: u32 = 0x0040 => "MX_LOG_DEBUG4";
        /// Do not forward off the machine.
        pub const LOG_LOCAL: u32 = 0x1000 => "MX_LOG_LOCAL";
        /// The level bits.
        pub const LOG_LEVEL_MASK: u32 = 0x00ff => "MX_LOG_LEVEL_MASK";
        /// The bits a write may set.
        pub const LOG_FLAGS_MASK: u32 = 0xffff => "MX_LOG_FLAGS_MASK";
        /// `mx_debuglog_create`: the handle can read (adds READ).
        pub const LOG_FLAG_READABLE: u32 = 0x4000_0000 => "MX_LOG_FLAG_READABLE";
    }
}

/// Most data bytes in one record.
pub const LOG_DATA_MAX: usize = LOG_RECORD_MAX - core::mem::size_of::<LogRecord>();
