//! Exception types and ports (`syscalls/exception.h`), contract §1.6 and §1.7.
//! The architectural exception report layout is not modelled.

use crate::meta::{ConstStyle, Fmt};
use crate::port::pkt_type_exception;

c_consts! {
    /// The flag that marks synthetic exceptions.
    pub const C_EXCP_SYNTH: ConstGroup = ConstStyle::Define { fmt: Fmt::HexU, cast: None };
    {
        /// Added to the number of synthetic exceptions.
        pub const EXCP_SYNTH_FLAG: u32 = 0x80 => "MX_EXCP_SYNTH";
    }
}

c_enum! {
    /// Exception types: the `type` of exception packets (`mx_excp_type_t`).
    pub enum ExcpType: u32, ConstStyle::Enum { typedef: Some("mx_excp_type_t") };
    {
        /// A general exception.
        General = pkt_type_exception(0) => "MX_EXCP_GENERAL",
        /// A page fault that could not be resolved.
        FatalPageFault = pkt_type_exception(1) => "MX_EXCP_FATAL_PAGE_FAULT",
        /// An undefined instruction.
        UndefinedInstruction = pkt_type_exception(2) => "MX_EXCP_UNDEFINED_INSTRUCTION",
        /// A software breakpoint.
        SwBreakpoint = pkt_type_exception(3) => "MX_EXCP_SW_BREAKPOINT",
        /// A hardware breakpoint.
        HwBreakpoint = pkt_type_exception(4) => "MX_EXCP_HW_BREAKPOINT",
        /// An unaligned access.
        UnalignedAccess = pkt_type_exception(5) => "MX_EXCP_UNALIGNED_ACCESS",
        /// A thread is starting (debugger only).
        ThreadStarting = pkt_type_exception(EXCP_SYNTH_FLAG) => "MX_EXCP_THREAD_STARTING",
        /// A thread suspended (debugger only).
        ThreadSuspended = pkt_type_exception(EXCP_SYNTH_FLAG | 1) => "MX_EXCP_THREAD_SUSPENDED",
        /// A thread resumed (debugger only).
        ThreadResumed = pkt_type_exception(EXCP_SYNTH_FLAG | 2) => "MX_EXCP_THREAD_RESUMED",
        /// A thread is exiting (debugger only).
        ThreadExiting = pkt_type_exception(EXCP_SYNTH_FLAG | 3) => "MX_EXCP_THREAD_EXITING",
        /// A thread or process is gone.
        Gone = pkt_type_exception(EXCP_SYNTH_FLAG | 4) => "MX_EXCP_GONE",
        /// A syscall failed a job policy with action EXCEPTION.
        PolicyError = pkt_type_exception(EXCP_SYNTH_FLAG | 5) => "MX_EXCP_POLICY_ERROR",
    }
}

/// C spelling of `MX_EXCP_IS_ARCH(excp)`: not a synthetic exception.
pub const C_EXCP_IS_ARCH_MACRO: &str = "\
#define MX_EXCP_IS_ARCH(excp) \\
    (((excp) & (MX_PKT_TYPE_EXCEPTION(MX_EXCP_SYNTH) & ~MX_PKT_TYPE_MASK)) == 0)";

c_consts! {
    /// `mx_task_resume` and `mx_task_bind_exception_port` options.
    pub const C_EXCEPTION_OPTIONS: ConstGroup = ConstStyle::Define { fmt: Fmt::Dec, cast: None };
    {
        /// Resume from an exception.
        pub const RESUME_EXCEPTION: u32 = 1 => "MX_RESUME_EXCEPTION";
        /// Pass the exception to the next handler.
        pub const RESUME_TRY_NEXT: u32 = 2 => "MX_RESUME_TRY_NEXT";
        /// Bind the debugger exception port.
        pub const EXCEPTION_PORT_DEBUGGER: u32 = 1 => "MX_EXCEPTION_PORT_DEBUGGER";
        /// Unbind without notifying.
        pub const EXCEPTION_PORT_UNBIND_QUIETLY: u32 = 2 => "MX_EXCEPTION_PORT_UNBIND_QUIETLY";
    }
}

c_enum! {
    /// The exception port a thread waits on (`mx_info_thread_t`).
    pub enum ExceptionPortType: u32, ConstStyle::Define { fmt: Fmt::DecU, cast: None };
    {
        /// None.
        None = 0 => "MX_EXCEPTION_PORT_TYPE_NONE",
        /// The debugger's.
        Debugger = 1 => "MX_EXCEPTION_PORT_TYPE_DEBUGGER",
        /// The thread's.
        Thread = 2 => "MX_EXCEPTION_PORT_TYPE_THREAD",
        /// The process's.
        Process = 3 => "MX_EXCEPTION_PORT_TYPE_PROCESS",
        /// A job's.
        Job = 4 => "MX_EXCEPTION_PORT_TYPE_JOB",
        /// The system's.
        System = 5 => "MX_EXCEPTION_PORT_TYPE_SYSTEM",
    }
}
