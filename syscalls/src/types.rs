//! Base types and constants of `types.h` (contract §1.1 and §1.7), and the
//! channel-call and wait-many structs.
//!
//! The scalar aliases carry their C names (`mx_time_t`, ...) so that the raw
//! bindings in [`crate::user`] read like the C prototypes.

#![allow(non_camel_case_types)]

use crate::meta::{ConstStyle, Fmt};

/// A handle value. C userspace spells it `int32_t`, the kernel `uint32_t`;
/// valid handles are always odd and positive, so the bits are the same.
pub type mx_handle_t = u32;

/// A futex word. C: `atomic_int` in C11 userspace, `int` elsewhere.
pub type mx_futex_t = i32;

c_typedefs! {
    /// A status: 0 is success, negative values are errors ([`crate::Status`]).
    pub type mx_status_t = i32 => "int32_t";
    /// Absolute time in nanoseconds of the monotonic clock.
    pub type mx_time_t = u64 => "uint64_t";
    /// A duration in nanoseconds.
    pub type mx_duration_t = u64 => "uint64_t";
    /// Signal bits ([`crate::Signals`]).
    pub type mx_signals_t = u32 => "uint32_t";
    /// Kernel object id.
    pub type mx_koid_t = u64 => "uint64_t";
    /// Channel transaction id: the first four bytes of a message.
    pub type mx_txid_t = u32 => "uint32_t";
    /// Handle rights ([`crate::Rights`]).
    pub type mx_rights_t = u32 => "uint32_t";
    /// A virtual address.
    pub type mx_vaddr_t = usize => "uintptr_t";
    /// A physical address.
    pub type mx_paddr_t = usize => "uintptr_t";
    /// An offset.
    pub type mx_off_t = u64 => "uint64_t";
    /// A relative offset.
    pub type mx_rel_off_t = i64 => "int64_t";
    /// A job's importance (`MX_PROP_JOB_IMPORTANCE`).
    pub type mx_job_importance_t = i32 => "int32_t";
}

/// The `mx_handle_t` and `mx_futex_t` typedefs, which depend on the compiler.
pub const C_HANDLE_TYPEDEF: &str = "\
#ifdef _KERNEL
typedef uint32_t mx_handle_t;
#else
typedef int32_t mx_handle_t;
#endif";

/// See [`C_HANDLE_TYPEDEF`].
pub const C_FUTEX_TYPEDEF: &str = "\
// The futex word: atomic_int for C11 userspace, int for C++, C99 and the kernel.
#if !defined(__cplusplus) && !defined(_KERNEL) && defined(__STDC_VERSION__) && \\
    __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_ATOMICS__)
#include <stdatomic.h>
typedef atomic_int mx_futex_t;
#else
typedef int mx_futex_t;
#endif";

c_consts! {
    /// The value that never names a handle.
    pub const C_HANDLE: ConstGroup = ConstStyle::Define { fmt: Fmt::Dec, cast: Some("mx_handle_t") };
    {
        /// Never a valid handle; `mx_handle_close` of it is `MX_OK`.
        pub const HANDLE_INVALID: mx_handle_t = 0 => "MX_HANDLE_INVALID";
    }
}

c_consts! {
    /// Deadlines.
    pub const C_TIME: ConstGroup = ConstStyle::Define { fmt: Fmt::HexU, cast: None };
    {
        /// No deadline.
        pub const TIME_INFINITE: mx_time_t = u64::MAX => "MX_TIME_INFINITE";
    }
}

/// C spelling of [`usec`], [`msec`], [`sec`].
pub const C_DURATION_MACROS: &str = "\
#define MX_USEC(n) ((mx_duration_t)(1000ULL * (n)))
#define MX_MSEC(n) ((mx_duration_t)(1000000ULL * (n)))
#define MX_SEC(n)  ((mx_duration_t)(1000000000ULL * (n)))";

/// `MX_USEC(n)`: `n` microseconds.
pub const fn usec(n: u64) -> mx_duration_t {
    1000 * n
}
/// `MX_MSEC(n)`: `n` milliseconds.
pub const fn msec(n: u64) -> mx_duration_t {
    1_000_000 * n
}
/// `MX_SEC(n)`: `n` seconds.
pub const fn sec(n: u64) -> mx_duration_t {
    1_000_000_000 * n
}

c_consts! {
    /// Reserved kernel object ids. Objects get ids from 1024 upwards.
    pub const C_KOID: ConstGroup = ConstStyle::Define { fmt: Fmt::Dec, cast: Some("uint64_t") };
    {
        /// No object.
        pub const KOID_INVALID: mx_koid_t = 0 => "MX_KOID_INVALID";
        /// The kernel itself.
        pub const KOID_KERNEL: mx_koid_t = 1 => "MX_KOID_KERNEL";
    }
}

/// The first koid handed to a kernel object.
pub const KOID_FIRST: mx_koid_t = 1024;

c_enum! {
    /// Clock ids (`mx_time_get`, `mx_timer_create`, `mx_clock_adjust`).
    pub enum Clock: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Nanoseconds since boot.
        Monotonic = 0 => "MX_CLOCK_MONOTONIC",
        /// Monotonic plus the offset `mx_clock_adjust` sets.
        Utc = 1 => "MX_CLOCK_UTC",
        /// The calling thread's run time.
        Thread = 2 => "MX_CLOCK_THREAD",
    }
}

c_enum! {
    /// VMO operations (`mx_vmo_op_range`).
    pub enum VmoOp: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Commit pages.
        Commit = 1 => "MX_VMO_OP_COMMIT",
        /// Decommit pages.
        Decommit = 2 => "MX_VMO_OP_DECOMMIT",
        /// Pin pages.
        Lock = 3 => "MX_VMO_OP_LOCK",
        /// Unpin pages.
        Unlock = 4 => "MX_VMO_OP_UNLOCK",
        /// Look up the physical addresses.
        Lookup = 5 => "MX_VMO_OP_LOOKUP",
        /// Synchronize caches.
        CacheSync = 6 => "MX_VMO_OP_CACHE_SYNC",
        /// Invalidate caches.
        CacheInvalidate = 7 => "MX_VMO_OP_CACHE_INVALIDATE",
        /// Clean caches.
        CacheClean = 8 => "MX_VMO_OP_CACHE_CLEAN",
        /// Clean and invalidate caches.
        CacheCleanInvalidate = 9 => "MX_VMO_OP_CACHE_CLEAN_INVALIDATE",
    }
}

c_consts! {
    /// `mx_vmo_clone` options.
    pub const C_VMO_CLONE: ConstGroup = ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Copy-on-write clone.
        pub const VMO_CLONE_COPY_ON_WRITE: u32 = 1 => "MX_VMO_CLONE_COPY_ON_WRITE";
    }
}

c_flags! {
    /// Mapping flags (`mx_vmar_allocate`, `mx_vmar_map`, `mx_vmar_protect`).
    pub struct VmFlags: u32, ConstStyle::Define { fmt: Fmt::Shift, cast: None };
    {
        /// Readable.
        const PERM_READ = 1 << 0 => "MX_VM_FLAG_PERM_READ";
        /// Writable.
        const PERM_WRITE = 1 << 1 => "MX_VM_FLAG_PERM_WRITE";
        /// Executable.
        const PERM_EXECUTE = 1 << 2 => "MX_VM_FLAG_PERM_EXECUTE";
        /// Allocate compactly.
        const COMPACT = 1 << 3 => "MX_VM_FLAG_COMPACT";
        /// At the given offset.
        const SPECIFIC = 1 << 4 => "MX_VM_FLAG_SPECIFIC";
        /// At the given offset, replacing mappings there.
        const SPECIFIC_OVERWRITE = 1 << 5 => "MX_VM_FLAG_SPECIFIC_OVERWRITE";
        /// The region allows SPECIFIC children.
        const CAN_MAP_SPECIFIC = 1 << 6 => "MX_VM_FLAG_CAN_MAP_SPECIFIC";
        /// The region allows readable mappings.
        const CAN_MAP_READ = 1 << 7 => "MX_VM_FLAG_CAN_MAP_READ";
        /// The region allows writable mappings.
        const CAN_MAP_WRITE = 1 << 8 => "MX_VM_FLAG_CAN_MAP_WRITE";
        /// The region allows executable mappings.
        const CAN_MAP_EXECUTE = 1 << 9 => "MX_VM_FLAG_CAN_MAP_EXECUTE";
        /// Commit and map the pages now.
        const MAP_RANGE = 1 << 10 => "MX_VM_FLAG_MAP_RANGE";
    }
}

c_consts! {
    /// Limits and flags.
    pub const C_LIMITS: ConstGroup = ConstStyle::Define { fmt: Fmt::Dec, cast: None };
    {
        /// Longest kernel object name, including the NUL.
        pub const MAX_NAME_LEN: usize = 32 => "MX_MAX_NAME_LEN";
        /// Largest `mx_cprng_draw` request.
        pub const CPRNG_DRAW_MAX_LEN: usize = 256 => "MX_CPRNG_DRAW_MAX_LEN";
        /// Largest `mx_cprng_add_entropy` input.
        pub const CPRNG_ADD_ENTROPY_MAX_LEN: usize = 256 => "MX_CPRNG_ADD_ENTROPY_MAX_LEN";
        /// `mx_interrupt_create` option.
        pub const FLAG_REMAP_IRQ: u32 = 1 => "MX_FLAG_REMAP_IRQ";
    }
}

c_consts! {
    /// Channel options and limits.
    pub const C_CHANNEL: ConstGroup = ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// `mx_channel_read`: drop a message too large for the buffers.
        pub const CHANNEL_READ_MAY_DISCARD: u32 = 1 => "MX_CHANNEL_READ_MAY_DISCARD";
        /// Most bytes in one message.
        pub const CHANNEL_MAX_MSG_BYTES: u32 = 65536 => "MX_CHANNEL_MAX_MSG_BYTES";
        /// Most handles in one message.
        pub const CHANNEL_MAX_MSG_HANDLES: u32 = 64 => "MX_CHANNEL_MAX_MSG_HANDLES";
    }
}

c_consts! {
    /// Socket options (`mx_socket_create`, `_read`, `_write`).
    pub const C_SOCKET: ConstGroup = ConstStyle::Define { fmt: Fmt::Shift, cast: None };
    {
        /// Shut down writing.
        pub const SOCKET_SHUTDOWN_WRITE: u32 = 1 << 0 => "MX_SOCKET_SHUTDOWN_WRITE";
        /// Shut down reading.
        pub const SOCKET_SHUTDOWN_READ: u32 = 1 << 1 => "MX_SOCKET_SHUTDOWN_READ";
        /// Both shutdown bits.
        pub const SOCKET_SHUTDOWN_MASK: u32 = SOCKET_SHUTDOWN_WRITE | SOCKET_SHUTDOWN_READ => "MX_SOCKET_SHUTDOWN_MASK";
        /// A stream socket.
        pub const SOCKET_STREAM: u32 = 0 => "MX_SOCKET_STREAM";
        /// A datagram socket.
        pub const SOCKET_DATAGRAM: u32 = 1 << 0 => "MX_SOCKET_DATAGRAM";
        /// With a control plane.
        pub const SOCKET_HAS_CONTROL: u32 = 1 << 1 => "MX_SOCKET_HAS_CONTROL";
        /// Every `mx_socket_create` option.
        pub const SOCKET_CREATE_MASK: u32 = SOCKET_DATAGRAM | SOCKET_HAS_CONTROL => "MX_SOCKET_CREATE_MASK";
        /// Read or write the control plane.
        pub const SOCKET_CONTROL: u32 = 1 << 2 => "MX_SOCKET_CONTROL";
    }
}

c_enum! {
    /// Cache policies (`mx_vmo_set_cache_policy`).
    pub enum CachePolicy: u32, ConstStyle::Enum { typedef: Some("mx_cache_policy_t") };
    {
        /// Cached.
        Cached = 0 => "MX_CACHE_POLICY_CACHED",
        /// Uncached.
        Uncached = 1 => "MX_CACHE_POLICY_UNCACHED",
        /// Uncached device memory.
        UncachedDevice = 2 => "MX_CACHE_POLICY_UNCACHED_DEVICE",
        /// Write-combining.
        WriteCombining = 3 => "MX_CACHE_POLICY_WRITE_COMBINING",
    }
}

c_consts! {
    /// Cache policy mask and `mx_cache_flush` options.
    pub const C_CACHE: ConstGroup = ConstStyle::Define { fmt: Fmt::Shift, cast: None };
    {
        /// The bits of a cache policy.
        pub const CACHE_POLICY_MASK: u32 = 0x3 => "MX_CACHE_POLICY_MASK";
        /// Flush the instruction cache.
        pub const CACHE_FLUSH_INSN: u32 = 1 << 0 => "MX_CACHE_FLUSH_INSN";
        /// Flush the data cache.
        pub const CACHE_FLUSH_DATA: u32 = 1 << 1 => "MX_CACHE_FLUSH_DATA";
    }
}

c_enum! {
    /// Timer slack options (`mx_timer_create`).
    pub enum TimerSlack: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// Fire within ±slack.
        Center = 0 => "MX_TIMER_SLACK_CENTER",
        /// Fire within slack before the deadline.
        Early = 1 => "MX_TIMER_SLACK_EARLY",
        /// Fire within slack after the deadline.
        Late = 2 => "MX_TIMER_SLACK_LATE",
    }
}

/// Page size on x86-64.
pub const PAGE_SIZE: usize = 4096;
/// Base of the x86-64 user address space (16 MiB).
pub const USER_ASPACE_BASE: usize = 0x0000_0000_0100_0000;
/// Size of the x86-64 user address space; it ends at `0x0000_7fff_ffff_f000`.
pub const USER_ASPACE_SIZE: usize = 0x0000_7fff_feff_f000;

c_struct! {
    /// The arguments of `mx_channel_call`: what to write and where the reply goes.
    pub struct ChannelCallArgs as mx_channel_call_args_t, size 48;
    {
        /// User address of the bytes to write.
        @0 pub wr_bytes: u64 as "const void* wr_bytes";
        /// User address of the handles to send.
        @8 pub wr_handles: u64 as "const mx_handle_t* wr_handles";
        /// User address of the reply buffer.
        @16 pub rd_bytes: u64 as "void* rd_bytes";
        /// User address of the reply handle buffer.
        @24 pub rd_handles: u64 as "mx_handle_t* rd_handles";
        /// Bytes to write.
        @32 pub wr_num_bytes: u32 as "uint32_t wr_num_bytes";
        /// Handles to send.
        @36 pub wr_num_handles: u32 as "uint32_t wr_num_handles";
        /// Capacity of `rd_bytes`.
        @40 pub rd_num_bytes: u32 as "uint32_t rd_num_bytes";
        /// Capacity of `rd_handles`.
        @44 pub rd_num_handles: u32 as "uint32_t rd_num_handles";
    }
}

c_struct! {
    /// One entry of `mx_object_wait_many`.
    pub struct WaitItem as mx_wait_item_t, size 12;
    {
        /// The handle to wait on.
        @0 pub handle: mx_handle_t as "mx_handle_t handle";
        /// Signals that end the wait.
        @4 pub waitfor: u32 as "mx_signals_t waitfor";
        /// Written back: the signals observed.
        @8 pub pending: u32 as "mx_signals_t pending";
    }
}
