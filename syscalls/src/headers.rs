//! Which declaration goes into which C header under `sysroot/include/`, in
//! order. Magenta's file names; `abigen` writes one file per entry.

use crate::exception::*;
use crate::hypervisor::*;
use crate::log::*;
use crate::meta::{HeaderDecl, HeaderItem as I, OpaqueDecl};
use crate::object::*;
use crate::policy::*;
use crate::port::*;
use crate::processargs::*;
use crate::resource::*;
use crate::types::{typedef as t, *};
use crate::{Rights, Signals, Status};

/// C types that syscall prototypes name but this crate does not model (the
/// PCI driver calls are out of scope). They are forward-declared only.
pub const OPAQUE: &[OpaqueDecl] = &[
    OpaqueDecl { c_name: "mx_pci_resource_t", tag: "mx_pci_bar" },
    OpaqueDecl { c_name: "mx_pcie_device_info_t", tag: "mx_pcie_device_info" },
    OpaqueDecl { c_name: "mx_pci_init_arg_t", tag: "mx_pci_init_arg" },
];

const COMPILER_H: &str = "\
#ifdef __cplusplus
#define __BEGIN_CDECLS extern \"C\" {
#define __END_CDECLS }
#else
#define __BEGIN_CDECLS
#define __END_CDECLS
#endif

#if defined(__GNUC__) || defined(__clang__)
#define __NO_RETURN __attribute__((__noreturn__))
#define __CONST __attribute__((__const__))
#define __NONNULL(x) __attribute__((__nonnull__ x))
#else
#define __NO_RETURN
#define __CONST
#define __NONNULL(x)
#endif";

/// Every header, in the order abigen writes them.
pub const HEADERS: &[HeaderDecl] = &[
    HeaderDecl {
        path: "magenta/compiler.h",
        doc: "Compiler glue for the other headers: C/C++ linkage and attributes.",
        includes: &[],
        items: &[I::Raw(COMPILER_H)],
    },
    HeaderDecl {
        path: "magenta/errors.h",
        doc: "Status codes (mx_status_t).",
        includes: &[],
        items: &[I::Consts(&Status::C)],
    },
    HeaderDecl {
        path: "magenta/types.h",
        doc: "Base types, signals, rights and constants of the Magenta ABI.",
        includes: &["magenta/compiler.h", "magenta/errors.h", "stdbool.h", "stddef.h", "stdint.h"],
        items: &[
            I::Raw(C_HANDLE_TYPEDEF),
            I::Consts(&C_HANDLE),
            I::Typedef(&t::mx_status_t),
            I::Typedef(&t::mx_time_t),
            I::Typedef(&t::mx_duration_t),
            I::Consts(&C_TIME),
            I::Raw(C_DURATION_MACROS),
            I::Typedef(&t::mx_signals_t),
            I::Consts(&Signals::C),
            I::Consts(&Signals::C_MASKS),
            I::Typedef(&t::mx_koid_t),
            I::Consts(&C_KOID),
            I::Typedef(&t::mx_txid_t),
            I::Struct(&ChannelCallArgs::C),
            I::Struct(&WaitItem::C),
            I::Typedef(&t::mx_rights_t),
            I::Consts(&Rights::C),
            I::Consts(&VmoOp::C),
            I::Consts(&C_VMO_CLONE),
            I::Consts(&VmFlags::C),
            I::Consts(&Clock::C),
            I::Typedef(&t::mx_vaddr_t),
            I::Typedef(&t::mx_paddr_t),
            I::Typedef(&t::mx_off_t),
            I::Typedef(&t::mx_rel_off_t),
            I::Consts(&C_LIMITS),
            I::Consts(&C_CHANNEL),
            I::Consts(&C_SOCKET),
            I::Consts(&CachePolicy::C),
            I::Consts(&C_CACHE),
            I::Consts(&TimerSlack::C),
            I::Raw(C_FUTEX_TYPEDEF),
        ],
    },
    HeaderDecl {
        path: "magenta/rights.h",
        doc: "Default rights of newly created objects.",
        includes: &["magenta/types.h"],
        items: &[I::Consts(&Rights::C_DEFAULTS)],
    },
    HeaderDecl {
        path: "magenta/syscalls/types.h",
        doc: "Forward declarations of the struct types syscall prototypes name.",
        includes: &["magenta/compiler.h"],
        items: &[I::ForwardDecls],
    },
    HeaderDecl {
        path: "magenta/syscalls/object.h",
        doc: "Object types, info topics and records, properties, thread states.",
        includes: &["magenta/types.h"],
        items: &[
            I::Consts(&InfoTopic::C),
            I::Consts(&ObjType::C),
            I::Consts(&C_LAST),
            I::Consts(&ObjProps::C),
            I::Struct(&InfoHandleBasic::C),
            I::Struct(&InfoProcess::C),
            I::Struct(&InfoThread::C),
            I::Struct(&InfoThreadStats::C),
            I::Struct(&InfoTaskStats::C),
            I::Struct(&InfoVmar::C),
            I::Struct(&InfoMapsMapping::C),
            I::Consts(&InfoMapsType::C),
            I::Struct(&InfoMaps::C),
            I::Consts(&C_INFO_VMO),
            I::Raw(C_INFO_VMO_TYPE_MACRO),
            I::Struct(&InfoVmo::C),
            I::Struct(&InfoCpuStats::C),
            I::Consts(&C_INFO_CPU_STATS),
            I::Struct(&InfoKmemStats::C),
            I::Consts(&C_INFO_KERNEL_COUNTS),
            I::Struct(&InfoKernelCounts::C),
            I::Struct(&InfoResource::C),
            I::Consts(&Property::C),
            I::Typedef(&t::mx_job_importance_t),
            I::Consts(&C_JOB_IMPORTANCE),
            I::Consts(&ThreadState::C),
        ],
    },
    HeaderDecl {
        path: "magenta/syscalls/port.h",
        doc: "Port packets and async-wait options.",
        includes: &["magenta/types.h", "magenta/syscalls/types.h"],
        items: &[
            I::Consts(&C_WAIT_ASYNC),
            I::Consts(&C_PKT_TYPE),
            I::Raw(C_PKT_MACROS),
            I::Consts(&C_X86),
            I::Struct(&PacketUser::C),
            I::Struct(&PacketSignal::C),
            I::Struct(&PacketException::C),
            I::Struct(&PacketGuestMem::C),
            I::Struct(&PacketGuestIo::C),
            I::Struct(&PacketGuestMsr::C),
            I::Struct(&PacketGuestCpuid::C),
            I::Struct(&PacketGuestException::C),
            I::Struct(&PacketGuestVmcall::C),
            I::Struct(&PortPacket::C),
        ],
    },
    HeaderDecl {
        path: "magenta/syscalls/hypervisor.h",
        doc: "Guests, traps and VCPUs (x86-64).",
        includes: &["magenta/types.h", "magenta/syscalls/types.h"],
        items: &[
            I::Consts(&TrapKind::C),
            I::Consts(&C_GUEST_SPACES),
            I::Consts(&C_GUEST_TRAP_POOL),
            I::Struct(&VcpuCreateArgs::C),
            I::Consts(&VcpuStateKind::C),
            I::Struct(&VcpuState::C),
            I::Struct(&VcpuIo::C),
            I::Struct(&VcpuSystem::C),
        ],
    },
    HeaderDecl {
        path: "magenta/syscalls/resource.h",
        doc: "Resource kinds.",
        includes: &["magenta/compiler.h"],
        items: &[I::Consts(&ResourceKind::C)],
    },
    HeaderDecl {
        path: "magenta/syscalls/log.h",
        doc: "Debuglog records and flags.",
        includes: &["magenta/types.h"],
        items: &[I::Struct(&LogRecord::C), I::Consts(&C_LOG_MAX), I::Consts(&C_LOG)],
    },
    HeaderDecl {
        path: "magenta/syscalls/policy.h",
        doc: "Job policy.",
        includes: &["magenta/types.h"],
        items: &[
            I::Consts(&JobPolicyMode::C),
            I::Consts(&C_JOB_POL_TOPIC),
            I::Struct(&PolicyBasic::C),
            I::Consts(&PolicyCondition::C),
            I::Consts(&C_POL_MAX),
            I::Consts(&PolicyAction::C),
        ],
    },
    HeaderDecl {
        path: "magenta/syscalls/exception.h",
        doc: "Exception types and exception-port options (the report layout is not modelled).",
        includes: &["magenta/types.h", "magenta/syscalls/port.h"],
        items: &[
            I::Consts(&C_EXCP_SYNTH),
            I::Consts(&ExcpType::C),
            I::Raw(C_EXCP_IS_ARCH_MACRO),
            I::Consts(&C_EXCEPTION_OPTIONS),
            I::Consts(&ExceptionPortType::C),
        ],
    },
    HeaderDecl {
        path: "magenta/processargs.h",
        doc: "The bootstrap message a new process receives.",
        includes: &["magenta/types.h"],
        items: &[I::Consts(&C_PROCARGS), I::Struct(&ProcArgs::C), I::Raw(C_PA_MACROS), I::Consts(&C_PA_TYPES)],
    },
    HeaderDecl {
        path: "magenta/syscalls.h",
        doc: "The syscalls: every public mx_ function of the vDSO.",
        includes: &["magenta/types.h", "magenta/syscalls/types.h", "magenta/syscalls/object.h"],
        items: &[I::Prototypes],
    },
];
