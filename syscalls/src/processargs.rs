//! The bootstrap message (`processargs.h`), contract §2.6.

use crate::meta::{ConstStyle, Fmt};

c_consts! {
    /// Protocol identifiers.
    pub const C_PROCARGS: ConstGroup = ConstStyle::Define { fmt: Fmt::HexU, cast: None };
    {
        /// `"MXPA"`.
        pub const PROCARGS_PROTOCOL: u32 = 0x4150_585d => "MX_PROCARGS_PROTOCOL";
        /// Version 1.
        pub const PROCARGS_VERSION: u32 = 0x000_1000 => "MX_PROCARGS_VERSION";
    }
}

c_struct! {
    /// The header of the bootstrap message a new process reads from its channel.
    pub struct ProcArgs as mx_proc_args_t, size 36;
    {
        /// `MX_PROCARGS_PROTOCOL`.
        @0 pub protocol: u32 as "uint32_t protocol";
        /// `MX_PROCARGS_VERSION`.
        @4 pub version: u32 as "uint32_t version";
        /// Offset of the handle-info array (one `uint32_t` per handle).
        @8 pub handle_info_off: u32 as "uint32_t handle_info_off";
        /// Offset of the argument strings.
        @12 pub args_off: u32 as "uint32_t args_off";
        /// Number of argument strings.
        @16 pub args_num: u32 as "uint32_t args_num";
        /// Offset of the environment strings.
        @20 pub environ_off: u32 as "uint32_t environ_off";
        /// Number of environment strings.
        @24 pub environ_num: u32 as "uint32_t environ_num";
        /// Offset of the namespace names.
        @28 pub names_off: u32 as "uint32_t names_off";
        /// Number of namespace names.
        @32 pub names_num: u32 as "uint32_t names_num";
    }
}

/// `PA_HND(type, arg)`: a handle-info word.
pub const fn pa_hnd(ty: u32, arg: u32) -> u32 {
    (ty & 0xff) | ((arg & 0xffff) << 16)
}

/// C spelling of [`pa_hnd`] and its accessors.
pub const C_PA_MACROS: &str = "\
#define PA_HND(type, arg)          (((type)&0xFF)| (((arg)&0xFFFF)<<16))
#define PA_HND_TYPE(n)             ((n) & 0xFF)
#define PA_HND_SUBTYPE(n)          (((n) >> 8) & 0xFF)
#define PA_HND_ARG(n)              (((n) >> 16) & 0xFFFF)";

c_consts! {
    /// Handle types in the handle-info words.
    pub const C_PA_TYPES: ConstGroup = ConstStyle::Define { fmt: Fmt::HexU, cast: None };
    {
        /// The process itself.
        pub const PA_PROC_SELF: u32 = 0x01 => "PA_PROC_SELF";
        /// The initial thread.
        pub const PA_THREAD_SELF: u32 = 0x02 => "PA_THREAD_SELF";
        /// The default job.
        pub const PA_JOB_DEFAULT: u32 = 0x03 => "PA_JOB_DEFAULT";
        /// The root VMAR.
        pub const PA_VMAR_ROOT: u32 = 0x04 => "PA_VMAR_ROOT";
        /// The VMAR the program was loaded into.
        pub const PA_VMAR_LOADED: u32 = 0x05 => "PA_VMAR_LOADED";
        /// The loader service.
        pub const PA_SVC_LOADER: u32 = 0x10 => "PA_SVC_LOADER";
        /// The vDSO VMO.
        pub const PA_VMO_VDSO: u32 = 0x11 => "PA_VMO_VDSO";
        /// The stack VMO.
        pub const PA_VMO_STACK: u32 = 0x13 => "PA_VMO_STACK";
        /// The executable VMO.
        pub const PA_VMO_EXECUTABLE: u32 = 0x14 => "PA_VMO_EXECUTABLE";
        /// Boot data.
        pub const PA_VMO_BOOTDATA: u32 = 0x1A => "PA_VMO_BOOTDATA";
        /// The boot filesystem.
        pub const PA_VMO_BOOTFS: u32 = 0x1B => "PA_VMO_BOOTFS";
        /// A kernel file.
        pub const PA_VMO_KERNEL_FILE: u32 = 0x1C => "PA_VMO_KERNEL_FILE";
        /// A namespace directory.
        pub const PA_NS_DIR: u32 = 0x20 => "PA_NS_DIR";
        /// A log handle for standard output and error (Magenta's value; arg =
        /// the file descriptor). magnetar's runtimes print through it.
        pub const PA_FDIO_LOGGER: u32 = 0x35 => "PA_FDIO_LOGGER";
        /// The root resource.
        pub const PA_RESOURCE: u32 = 0x3F => "PA_RESOURCE";
        /// User-defined 0.
        pub const PA_USER0: u32 = 0xF0 => "PA_USER0";
        /// User-defined 1.
        pub const PA_USER1: u32 = 0xF1 => "PA_USER1";
        /// User-defined 2.
        pub const PA_USER2: u32 = 0xF2 => "PA_USER2";
    }
}
