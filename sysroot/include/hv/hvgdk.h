// The Hyper-V hypercall interface for root-partition programs (C).
//
// Types, constants and layouts of TLFS 2.0A with the binding decisions of the
// specs (../shared/specs/README.md, "Hyper-V side"): call codes and input
// layouts of 2.0A, the message header real guests parse, intercept access
// types as an enum, HV_STATUS_INSUFFICIENT_BUFFERS = 0x0013. Then the client
// API of hv-client-api.md, exactly, and the root extensions of
// userland/hyperv-server/README.md. The Rust twin is crate `hv` (`hv::abi`).
//
// Every call issues the hypercall of the same name to the personality server
// (bin/hyperv-server) over the program's client channel, startup handle
// PA_HND(PA_USER0, 0x4856) (the `+hyperv` grant of init.rc). The library
// connects on the first call. Statuses the library returns by itself, without
// asking the server:
//   HV_STATUS_INVALID_PARAMETER  a pointer argument is NULL (every pointer
//                                argument must be non-NULL, also for empty
//                                lists); nothing is sent.
//   HV_STATUS_INACTIVE           the server cannot be reached: no client
//                                channel (no `+hyperv` grant), no valid Hello
//                                within HV_CONNECT_TIMEOUT_NS, the shared
//                                memory cannot be mapped, the channel closed,
//                                or a reply of the wrong size. The server
//                                never returns this status (it is TLFS's
//                                "debugger transport inactive").
// The library keeps one connection and one pair of hypercall pages, and is
// not thread-safe: call it from one thread at a time.
//
// Freestanding C11: needs only <stdint.h> and <stddef.h>.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------
// Base types (MSDN names).

typedef uint8_t UINT8, *PUINT8;
typedef uint16_t UINT16, *PUINT16;
typedef uint32_t UINT32, *PUINT32;
typedef uint64_t UINT64, *PUINT64;
typedef int8_t INT8;
typedef int16_t INT16;
typedef int32_t INT32;
typedef int64_t INT64;
typedef void VOID, *PVOID;
typedef const void* PCVOID;
typedef UINT8 BOOLEAN;

typedef struct HV_UINT128 {
    UINT64 Low64;
    UINT64 High64;
} HV_UINT128, *PHV_UINT128;

typedef UINT16 HV_STATUS;
typedef UINT64 HV_PARTITION_ID, *PHV_PARTITION_ID;
typedef const HV_PARTITION_ID* PCHV_PARTITION_ID;
typedef UINT64 HV_GPA;
typedef UINT64 HV_GVA;
typedef UINT64 HV_GPA_PAGE_NUMBER, *PHV_GPA_PAGE_NUMBER;
typedef const HV_GPA_PAGE_NUMBER* PCHV_GPA_PAGE_NUMBER;
typedef UINT32 HV_VP_INDEX, *PHV_VP_INDEX;
typedef UINT32 HV_SYNIC_SINT_INDEX;
typedef UINT32 HV_PORT_ID, *PHV_PORT_ID;
typedef UINT32 HV_CONNECTION_ID, *PHV_CONNECTION_ID;
typedef UINT32 HV_PROXIMITY_DOMAIN_ID;

#define HV_PAGE_SIZE  4096
#define HV_PAGE_SHIFT 12

// ---------------------------------------------------------------------------
// HV_STATUS values (hyperv-reference.md §3).

#define HV_STATUS_SUCCESS                                     0x0000
#define HV_STATUS_INVALID_HYPERCALL_CODE                      0x0002
#define HV_STATUS_INVALID_HYPERCALL_INPUT                     0x0003
#define HV_STATUS_INVALID_ALIGNMENT                           0x0004
#define HV_STATUS_INVALID_PARAMETER                           0x0005
#define HV_STATUS_ACCESS_DENIED                               0x0006
#define HV_STATUS_INVALID_PARTITION_STATE                     0x0007
#define HV_STATUS_OPERATION_DENIED                            0x0008
#define HV_STATUS_UNKNOWN_PROPERTY                            0x0009
#define HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE                 0x000A
#define HV_STATUS_INSUFFICIENT_MEMORY                         0x000B
#define HV_STATUS_PARTITION_TOO_DEEP                          0x000C
#define HV_STATUS_INVALID_PARTITION_ID                        0x000D
#define HV_STATUS_INVALID_VP_INDEX                            0x000E
#define HV_STATUS_NOT_FOUND                                   0x0010
#define HV_STATUS_INVALID_PORT_ID                             0x0011
#define HV_STATUS_INVALID_CONNECTION_ID                       0x0012
#define HV_STATUS_INSUFFICIENT_BUFFERS                        0x0013
#define HV_STATUS_NOT_ACKNOWLEDGED                            0x0014
#define HV_STATUS_INVALID_VP_STATE                            0x0015
#define HV_STATUS_ACKNOWLEDGED                                0x0016
#define HV_STATUS_INVALID_SAVE_RESTORE_STATE                  0x0017
#define HV_STATUS_INVALID_SYNIC_STATE                         0x0018
#define HV_STATUS_OBJECT_IN_USE                               0x0019
#define HV_STATUS_INVALID_PROXIMITY_DOMAIN_INFO               0x001A
#define HV_STATUS_NO_DATA                                     0x001B
#define HV_STATUS_INACTIVE                                    0x001C
#define HV_STATUS_NO_RESOURCES                                0x001D
#define HV_STATUS_FEATURE_UNAVAILABLE                         0x001E
#define HV_STATUS_PARTIAL_PACKET                              0x001F
#define HV_STATUS_PROCESSOR_FEATURE_NOT_SUPPORTED             0x0020
#define HV_STATUS_PROCESSOR_CACHE_LINE_FLUSH_SIZE_INCOMPATIBLE 0x0030
#define HV_STATUS_INSUFFICIENT_BUFFER                         0x0033
#define HV_STATUS_INCOMPATIBLE_PROCESSOR                      0x0037
#define HV_STATUS_INSUFFICIENT_DEVICE_DOMAINS                 0x0038
#define HV_STATUS_CPUID_FEATURE_VALIDATION_ERROR              0x003C
#define HV_STATUS_CPUID_XSAVE_FEATURE_VALIDATION_ERROR        0x003D
#define HV_STATUS_PROCESSOR_STARTUP_TIMEOUT                   0x003E
#define HV_STATUS_SMX_ENABLED                                 0x003F
#define HV_STATUS_INVALID_LP_INDEX                            0x0041
#define HV_STATUS_INVALID_REGISTER_VALUE                      0x0050
#define HV_STATUS_INVALID_VTL_STATE                           0x0051
#define HV_STATUS_NX_NOT_DETECTED                             0x0055
#define HV_STATUS_INVALID_DEVICE_ID                           0x0057
#define HV_STATUS_INVALID_DEVICE_STATE                        0x0058
#define HV_STATUS_PENDING_PAGE_REQUESTS                       0x0059
#define HV_STATUS_PAGE_REQUEST_INVALID                        0x0060
#define HV_STATUS_OPERATION_FAILED                            0x0071
#define HV_STATUS_NOT_ALLOWED_WITH_NESTED_VIRT_ACTIVE         0x0072
#define HV_STATUS_TIME_OUT                                    0x0078
#define HV_STATUS_CALL_PENDING                                0x0079
#define HV_STATUS_VTL_ALREADY_ENABLED                         0x0086
#define HV_STATUS_UNKNOWN_REGISTER_NAME                       0x0087

// ---------------------------------------------------------------------------
// Hypercall input value (RCX) and result value (RAX), reference §1.1-1.2.

typedef UINT16 HV_CALL_CODE;

#define HV_HYPERCALL_CODE_MASK          0x000000000000FFFFull
#define HV_HYPERCALL_FAST_BIT           0x0000000000010000ull
#define HV_HYPERCALL_VARHEAD_SHIFT      17
#define HV_HYPERCALL_VARHEAD_MASK       0x0000000007FE0000ull
#define HV_HYPERCALL_REP_COUNT_SHIFT    32
#define HV_HYPERCALL_REP_COUNT_MASK     0x00000FFF00000000ull
#define HV_HYPERCALL_REP_START_SHIFT    48
#define HV_HYPERCALL_REP_START_MASK     0x0FFF000000000000ull
#define HV_HYPERCALL_REP_MAX            0xFFF
#define HV_HYPERCALL_RESULT_STATUS_MASK 0x000000000000FFFFull
#define HV_HYPERCALL_RESULT_REPS_SHIFT  32
#define HV_HYPERCALL_RESULT_REPS_MASK   0x00000FFF00000000ull

// Call codes (TLFS 2.0A; CreatePort/ConnectPort/AssertVirtualInterrupt are the
// 2.0A codes, decision 1).
#define HvCallCreatePartition         0x0040
#define HvCallInitializePartition     0x0041
#define HvCallFinalizePartition       0x0042
#define HvCallDeletePartition         0x0043
#define HvCallGetPartitionProperty    0x0044
#define HvCallSetPartitionProperty    0x0045
#define HvCallGetPartitionId          0x0046
#define HvCallGetNextChildPartition   0x0047
#define HvCallDepositMemory           0x0048
#define HvCallWithdrawMemory          0x0049
#define HvCallGetMemoryBalance        0x004A
#define HvCallMapGpaPages             0x004B
#define HvCallUnmapGpaPages           0x004C
#define HvCallInstallIntercept        0x004D
#define HvCallCreateVp                0x004E
#define HvCallDeleteVp                0x004F
#define HvCallGetVpRegisters          0x0050
#define HvCallSetVpRegisters          0x0051
#define HvCallTranslateVirtualAddress 0x0052
#define HvCallAssertVirtualInterrupt  0x0055
#define HvCallClearVirtualInterrupt   0x0056
#define HvCallCreatePort              0x0057
#define HvCallDeletePort              0x0058
#define HvCallConnectPort             0x0059
#define HvCallGetPortProperty         0x005A
#define HvCallDisconnectPort          0x005B
#define HvCallPostMessage             0x005C
#define HvCallSignalEvent             0x005D
#define HvCallMapSparseGpaPages       0x006E
#define HvCallSetPortProperty         0x0070

// ---------------------------------------------------------------------------
// Partitions.

#define HV_PARTITION_ID_INVALID ((HV_PARTITION_ID)0)
#define HV_PARTITION_ID_SELF    ((HV_PARTITION_ID)0xFFFFFFFFFFFFFFFFull)

// HV_PROXIMITY_DOMAIN_INFO (8 bytes, reference §4.6).
typedef union HV_PROXIMITY_DOMAIN_FLAGS {
    UINT32 AsUINT32;
    struct {
        UINT32 ProximityPreferred : 1;
        UINT32 Reserved : 30;
        UINT32 ProximityInfoValid : 1;
    };
} HV_PROXIMITY_DOMAIN_FLAGS;

typedef struct HV_PROXIMITY_DOMAIN_INFO {
    HV_PROXIMITY_DOMAIN_ID Id;
    HV_PROXIMITY_DOMAIN_FLAGS Flags;
} HV_PROXIMITY_DOMAIN_INFO, *PHV_PROXIMITY_DOMAIN_INFO;

#define HV_PROXIMITY_DOMAIN_FLAG_PREFERRED  0x00000001u
#define HV_PROXIMITY_DOMAIN_FLAG_INFO_VALID 0x80000000u
#define HV_PROXIMITY_DOMAIN_FLAGS_RESERVED  0x7FFFFFFEu

// HV_PARTITION_PRIVILEGE_MASK (reference §4.3): bits 31:0 are CPUID
// 0x40000003 EAX, bits 63:32 EBX.
typedef UINT64 HV_PARTITION_PRIVILEGE_MASK, *PHV_PARTITION_PRIVILEGE_MASK;

#define HV_PARTITION_PRIVILEGE_ACCESS_VP_RUNTIME_MSR              (1ull << 0)
#define HV_PARTITION_PRIVILEGE_ACCESS_PARTITION_REFERENCE_COUNTER (1ull << 1)
#define HV_PARTITION_PRIVILEGE_ACCESS_SYNIC_MSRS                  (1ull << 2)
#define HV_PARTITION_PRIVILEGE_ACCESS_SYNTHETIC_TIMER_MSRS        (1ull << 3)
#define HV_PARTITION_PRIVILEGE_ACCESS_APIC_MSRS                   (1ull << 4)
#define HV_PARTITION_PRIVILEGE_ACCESS_HYPERCALL_MSRS              (1ull << 5)
#define HV_PARTITION_PRIVILEGE_ACCESS_VP_INDEX                    (1ull << 6)
#define HV_PARTITION_PRIVILEGE_ACCESS_RESET_MSR                   (1ull << 7)
#define HV_PARTITION_PRIVILEGE_ACCESS_STATS_MSR                   (1ull << 8)
#define HV_PARTITION_PRIVILEGE_ACCESS_PARTITION_REFERENCE_TSC     (1ull << 9)
#define HV_PARTITION_PRIVILEGE_ACCESS_GUEST_IDLE_MSR              (1ull << 10)
#define HV_PARTITION_PRIVILEGE_CREATE_PARTITIONS                  (1ull << 32)
#define HV_PARTITION_PRIVILEGE_ACCESS_PARTITION_ID                (1ull << 33)
#define HV_PARTITION_PRIVILEGE_ACCESS_MEMORY_POOL                 (1ull << 34)
#define HV_PARTITION_PRIVILEGE_ADJUST_MESSAGE_BUFFERS             (1ull << 35)
#define HV_PARTITION_PRIVILEGE_POST_MESSAGES                      (1ull << 36)
#define HV_PARTITION_PRIVILEGE_SIGNAL_EVENTS                      (1ull << 37)
#define HV_PARTITION_PRIVILEGE_CREATE_PORT                        (1ull << 38)
#define HV_PARTITION_PRIVILEGE_CONNECT_PORT                       (1ull << 39)
#define HV_PARTITION_PRIVILEGE_ACCESS_STATS                       (1ull << 40)
#define HV_PARTITION_PRIVILEGE_DEBUGGING                          (1ull << 43)
#define HV_PARTITION_PRIVILEGE_CPU_MANAGEMENT                     (1ull << 44)
#define HV_PARTITION_PRIVILEGE_CONFIGURE_PROFILER                 (1ull << 45)
// What a new child gets (TLFS defaults: bits 0-8 and 10).
#define HV_PARTITION_PRIVILEGE_CHILD_DEFAULT                      0x00000000000005FFull

// Partition properties (TLFS 2.0A codes, reference §4.5).
typedef UINT32 HV_PARTITION_PROPERTY_CODE;
typedef UINT64 HV_PARTITION_PROPERTY, *PHV_PARTITION_PROPERTY;

#define HvPartitionPropertyPrivilegeFlags          0x00010000
#define HvPartitionPropertyCpuReserve              0x00020001
#define HvPartitionPropertyCpuCap                  0x00020002
#define HvPartitionPropertyCpuWeight               0x00020003
#define HvPartitionPropertyEmulatedTimerPeriod     0x00030000
#define HvPartitionPropertyEmulatedTimerControl    0x00030001
#define HvPartitionPropertyPmTimerAssist           0x00030002
#define HvPartitionPropertyDebugChannelId          0x00040000
#define HvPartitionPropertyVirtualTlbPageCount     0x00050000
#define HvPartitionPropertyProcessorVendor         0x00060000
#define HvPartitionPropertyProcessorFeatures       0x00060001
#define HvPartitionPropertyProcessorXsaveFeatures  0x00060002
#define HvPartitionPropertyProcessorClFlushSize    0x00060003

// ---------------------------------------------------------------------------
// GPA mappings.

typedef UINT32 HV_MAP_GPA_FLAGS, *PHV_MAP_GPA_FLAGS;

#define HV_MAP_GPA_READABLE   0x00000001u
#define HV_MAP_GPA_WRITABLE   0x00000002u
#define HV_MAP_GPA_EXECUTABLE 0x00000004u

// ---------------------------------------------------------------------------
// Virtual processors and registers.

#define HV_ANY_VP        ((HV_VP_INDEX)0xFFFFFFFFu)
#define HV_VP_INDEX_SELF ((HV_VP_INDEX)0xFFFFFFFEu)

typedef UINT32 HV_REGISTER_NAME, *PHV_REGISTER_NAME;
typedef const HV_REGISTER_NAME* PCHV_REGISTER_NAME;

// Suspend registers.
#define HvRegisterExplicitSuspend     0x00000000
#define HvRegisterInterceptSuspend    0x00000001
// General purpose registers.
#define HvX64RegisterRax              0x00020000
#define HvX64RegisterRcx              0x00020001
#define HvX64RegisterRdx              0x00020002
#define HvX64RegisterRbx              0x00020003
#define HvX64RegisterRsp              0x00020004
#define HvX64RegisterRbp              0x00020005
#define HvX64RegisterRsi              0x00020006
#define HvX64RegisterRdi              0x00020007
#define HvX64RegisterR8               0x00020008
#define HvX64RegisterR9               0x00020009
#define HvX64RegisterR10              0x0002000A
#define HvX64RegisterR11              0x0002000B
#define HvX64RegisterR12              0x0002000C
#define HvX64RegisterR13              0x0002000D
#define HvX64RegisterR14              0x0002000E
#define HvX64RegisterR15              0x0002000F
#define HvX64RegisterRip              0x00020010
#define HvX64RegisterRflags           0x00020011
// Control registers.
#define HvX64RegisterCr0              0x00040000
#define HvX64RegisterCr2              0x00040001
#define HvX64RegisterCr3              0x00040002
#define HvX64RegisterCr4              0x00040003
#define HvX64RegisterCr8              0x00040004
// Debug registers.
#define HvX64RegisterDr0              0x00050000
#define HvX64RegisterDr1              0x00050001
#define HvX64RegisterDr2              0x00050002
#define HvX64RegisterDr3              0x00050003
#define HvX64RegisterDr6              0x00050004
#define HvX64RegisterDr7              0x00050005
// Segment registers (value: Segment).
#define HvX64RegisterEs               0x00060000
#define HvX64RegisterCs               0x00060001
#define HvX64RegisterSs               0x00060002
#define HvX64RegisterDs               0x00060003
#define HvX64RegisterFs               0x00060004
#define HvX64RegisterGs               0x00060005
#define HvX64RegisterLdtr             0x00060006
#define HvX64RegisterTr               0x00060007
// Table registers (value: Table).
#define HvX64RegisterIdtr             0x00070000
#define HvX64RegisterGdtr             0x00070001
// Virtualized MSRs.
#define HvX64RegisterTsc              0x00080000
#define HvX64RegisterEfer             0x00080001
#define HvX64RegisterKernelGsBase     0x00080002
#define HvX64RegisterApicBase         0x00080003
#define HvX64RegisterPat              0x00080004
#define HvX64RegisterSysenterCs       0x00080005
#define HvX64RegisterSysenterEip      0x00080006
#define HvX64RegisterSysenterEsp      0x00080007
#define HvX64RegisterStar             0x00080008
#define HvX64RegisterLstar            0x00080009
#define HvX64RegisterCstar            0x0008000A
#define HvX64RegisterSfmask           0x0008000B

typedef struct HV_X64_SEGMENT_REGISTER {
    UINT64 Base;
    UINT32 Limit;
    UINT16 Selector;
    UINT16 Attributes;
} HV_X64_SEGMENT_REGISTER, *PHV_X64_SEGMENT_REGISTER;

typedef struct HV_X64_TABLE_REGISTER {
    UINT16 Pad[3];
    UINT16 Limit;
    UINT64 Base;
} HV_X64_TABLE_REGISTER, *PHV_X64_TABLE_REGISTER;

// Bit 0 of the suspend registers' values.
#define HV_EXPLICIT_SUSPEND_SUSPENDED  0x1ull
#define HV_INTERCEPT_SUSPEND_SUSPENDED 0x1ull

typedef union HV_REGISTER_VALUE {
    HV_UINT128 Reg128;
    UINT64 Reg64;
    UINT32 Reg32;
    UINT16 Reg16;
    UINT8 Reg8;
    HV_X64_SEGMENT_REGISTER Segment;
    HV_X64_TABLE_REGISTER Table;
    UINT64 ExplicitSuspend;
    UINT64 InterceptSuspend;
} HV_REGISTER_VALUE, *PHV_REGISTER_VALUE;
typedef const HV_REGISTER_VALUE* PCHV_REGISTER_VALUE;

// ---------------------------------------------------------------------------
// Intercepts (reference §5.1).

typedef UINT32 HV_INTERCEPT_TYPE;

#define HvInterceptTypeX64IoPort    0x00000000
#define HvInterceptTypeX64Msr       0x00000001
#define HvInterceptTypeX64Cpuid     0x00000002
#define HvInterceptTypeX64Exception 0x00000003

// The install mask (HvInstallIntercept). MSDN declares it UINT8; the input
// field it fills is 4 bytes, so it is UINT32 here.
typedef UINT32 HV_INTERCEPT_ACCESS_TYPE_MASK;

#define HV_INTERCEPT_ACCESS_MASK_NONE    0x00
#define HV_INTERCEPT_ACCESS_MASK_READ    0x01
#define HV_INTERCEPT_ACCESS_MASK_WRITE   0x02
#define HV_INTERCEPT_ACCESS_MASK_EXECUTE 0x04

// The access type in intercept messages: an enum (decision 3), not the mask.
typedef UINT8 HV_INTERCEPT_ACCESS_TYPE;

#define HV_INTERCEPT_ACCESS_READ    0
#define HV_INTERCEPT_ACCESS_WRITE   1
#define HV_INTERCEPT_ACCESS_EXECUTE 2

typedef UINT16 HV_X64_IO_PORT;

typedef union HV_INTERCEPT_PARAMETERS {
    UINT64 AsUINT64;
    HV_X64_IO_PORT IoPort;
    UINT32 CpuidIndex;
    UINT16 ExceptionVector;
} HV_INTERCEPT_PARAMETERS, *PHV_INTERCEPT_PARAMETERS;

typedef struct HV_INTERCEPT_DESCRIPTOR {
    HV_INTERCEPT_TYPE Type;
    HV_INTERCEPT_PARAMETERS Parameters;
} HV_INTERCEPT_DESCRIPTOR, *PHV_INTERCEPT_DESCRIPTOR;
typedef const HV_INTERCEPT_DESCRIPTOR* PCHV_INTERCEPT_DESCRIPTOR;

// ---------------------------------------------------------------------------
// SynIC: synthetic MSRs, messages, event flags (reference §1.6, §6).

#define HV_X64_MSR_GUEST_OS_ID    0x40000000
#define HV_X64_MSR_HYPERCALL      0x40000001
#define HV_X64_MSR_VP_INDEX       0x40000002
#define HV_X64_MSR_VP_RUNTIME     0x40000010
#define HV_X64_MSR_TIME_REF_COUNT 0x40000020
#define HV_X64_MSR_SCONTROL       0x40000080
#define HV_X64_MSR_SVERSION       0x40000081
#define HV_X64_MSR_SIEFP          0x40000082
#define HV_X64_MSR_SIMP           0x40000083
#define HV_X64_MSR_EOM            0x40000084
#define HV_X64_MSR_SINT0          0x40000090
#define HV_X64_MSR_SINT15         0x4000009F

#define HV_X64_MSR_HYPERCALL_ENABLE 0x1ull
#define HV_SYNIC_CONTROL_ENABLE     0x1ull
#define HV_SYNIC_SIMP_ENABLE        0x1ull
#define HV_SYNIC_SIEFP_ENABLE       0x1ull
#define HV_SYNIC_SINT_VECTOR_MASK   0xFFull
#define HV_SYNIC_SINT_MASKED        (1ull << 16)
#define HV_SYNIC_SINT_AUTO_EOI      (1ull << 17)
#define HV_SYNIC_VERSION_1          0x1

#define HV_SYNIC_SINT_COUNT                16
#define HV_MESSAGE_SIZE                    256
#define HV_MESSAGE_MAX_PAYLOAD_BYTE_COUNT  240
#define HV_MESSAGE_MAX_PAYLOAD_QWORD_COUNT 30
#define HV_EVENT_FLAGS_COUNT               2048
#define HV_EVENT_FLAGS_BYTE_COUNT          256
#define HV_EVENT_FLAGS_DWORD_COUNT         64

typedef UINT32 HV_MESSAGE_TYPE, *PHV_MESSAGE_TYPE;

#define HvMessageTypeNone                   0x00000000u
#define HvMessageTypeUnmappedGpa            0x80000000u
#define HvMessageTypeGpaIntercept           0x80000001u
#define HvMessageTypeTimerExpired          0x80000010u
#define HvMessageTypeInvalidVpRegisterValue 0x80000020u
#define HvMessageTypeUnrecoverableException 0x80000021u
#define HvMessageTypeUnsupportedFeature     0x80000022u
#define HvMessageTypeApicEoi                0x80000030u
#define HvMessageTypeFerrAsserted           0x80000031u
#define HvMessageTypeEventLogBufferComplete 0x80000040u
#define HvMessageTypeHypercallIntercept     0x80000050u
#define HvMessageTypeX64IoPortIntercept     0x80010000u
#define HvMessageTypeX64MsrIntercept        0x80010001u
#define HvMessageTypeX64CpuidIntercept      0x80010002u
#define HvMessageTypeX64ExceptionIntercept  0x80010003u
#define HvMessageTypeX64Halt                0x80010007u
#define HvMessageTypeX64SipiIntercept       0x80010009u
// Bit 31: types only the hypervisor sends (HvPostMessage refuses them).
#define HV_MESSAGE_TYPE_HYPERVISOR_MASK     0x80000000u

typedef UINT8 HV_MESSAGE_FLAGS;

#define HV_MESSAGE_FLAG_PENDING 0x01

// The header real guests parse (decision 2): PayloadSize at byte 4,
// MessageFlags at byte 5.
typedef struct HV_MESSAGE_HEADER {
    HV_MESSAGE_TYPE MessageType;
    UINT8 PayloadSize;
    HV_MESSAGE_FLAGS MessageFlags;
    UINT16 Reserved;
    union {
        UINT64 OriginationId;
        HV_PARTITION_ID Sender;
        HV_PORT_ID Port;
    };
} HV_MESSAGE_HEADER, *PHV_MESSAGE_HEADER;

// Execution state bits of the intercept message header.
typedef UINT16 HV_X64_VP_EXECUTION_STATE;

#define HV_X64_VP_EXECUTION_STATE_CPL_MASK             0x0003
#define HV_X64_VP_EXECUTION_STATE_CR0_PE               0x0004
#define HV_X64_VP_EXECUTION_STATE_CR0_AM               0x0008
#define HV_X64_VP_EXECUTION_STATE_EFER_LMA             0x0010
#define HV_X64_VP_EXECUTION_STATE_DEBUG_ACTIVE         0x0020
#define HV_X64_VP_EXECUTION_STATE_INTERRUPTION_PENDING 0x0040

// The intercept messages' payloads (reference §5.4; offsets below are from
// the start of the payload, the HV_MESSAGE asserts give them from the start
// of the message).
typedef struct HV_X64_INTERCEPT_MESSAGE_HEADER {
    HV_VP_INDEX VpIndex;
    UINT8 InstructionLength;
    HV_INTERCEPT_ACCESS_TYPE InterceptAccessType;
    HV_X64_VP_EXECUTION_STATE ExecutionState;
    HV_X64_SEGMENT_REGISTER CsSegment;
    UINT64 Rip;
    UINT64 Rflags;
} HV_X64_INTERCEPT_MESSAGE_HEADER, *PHV_X64_INTERCEPT_MESSAGE_HEADER;

// AccessInfo of an I/O port intercept.
#define HV_X64_IO_PORT_ACCESS_SIZE_MASK 0x07
#define HV_X64_IO_PORT_ACCESS_STRING_OP 0x08
#define HV_X64_IO_PORT_ACCESS_REP_PREFIX 0x10

typedef struct HV_X64_IO_PORT_INTERCEPT_MESSAGE {
    HV_X64_INTERCEPT_MESSAGE_HEADER Header;
    UINT16 PortNumber;
    UINT8 AccessInfo;
    UINT8 InstructionByteCount;
    UINT32 Reserved;
    UINT64 Rax;
    UINT8 InstructionBytes[16];
    HV_X64_SEGMENT_REGISTER DsSegment;
    HV_X64_SEGMENT_REGISTER EsSegment;
    UINT64 Rcx;
    UINT64 Rsi;
    UINT64 Rdi;
} HV_X64_IO_PORT_INTERCEPT_MESSAGE, *PHV_X64_IO_PORT_INTERCEPT_MESSAGE;

typedef struct HV_X64_MSR_INTERCEPT_MESSAGE {
    HV_X64_INTERCEPT_MESSAGE_HEADER Header;
    UINT32 MsrNumber;
    UINT32 Reserved;
    UINT64 Rdx;
    UINT64 Rax;
} HV_X64_MSR_INTERCEPT_MESSAGE, *PHV_X64_MSR_INTERCEPT_MESSAGE;

typedef struct HV_X64_CPUID_INTERCEPT_MESSAGE {
    HV_X64_INTERCEPT_MESSAGE_HEADER Header;
    UINT64 Rax;
    UINT64 Rcx;
    UINT64 Rdx;
    UINT64 Rbx;
    UINT64 DefaultResultRax;
    UINT64 DefaultResultRcx;
    UINT64 DefaultResultRdx;
    UINT64 DefaultResultRbx;
} HV_X64_CPUID_INTERCEPT_MESSAGE, *PHV_X64_CPUID_INTERCEPT_MESSAGE;

// ExceptionInfo of an exception intercept.
#define HV_X64_EXCEPTION_INFO_ERROR_CODE_VALID 0x01

typedef struct HV_X64_EXCEPTION_INTERCEPT_MESSAGE {
    HV_X64_INTERCEPT_MESSAGE_HEADER Header;
    UINT16 ExceptionVector;
    UINT8 ExceptionInfo;
    UINT8 InstructionByteCount;
    UINT32 ErrorCode;
    UINT64 ExceptionParameter;
    UINT64 Reserved;
    UINT8 InstructionBytes[16];
    HV_X64_SEGMENT_REGISTER DsSegment;
    HV_X64_SEGMENT_REGISTER SsSegment;
    UINT64 Rax;
    UINT64 Rcx;
    UINT64 Rdx;
    UINT64 Rbx;
    UINT64 Rsp;
    UINT64 Rbp;
    UINT64 Rsi;
    UINT64 Rdi;
    UINT64 R8;
    UINT64 R9;
    UINT64 R10;
    UINT64 R11;
    UINT64 R12;
    UINT64 R13;
    UINT64 R14;
    UINT64 R15;
} HV_X64_EXCEPTION_INTERCEPT_MESSAGE, *PHV_X64_EXCEPTION_INTERCEPT_MESSAGE;

// One 256-byte SIM slot. Beyond TLFS's Payload, the payload union names the
// intercept layouts so a root reads e.g. Message->IoPortIntercept.PortNumber.
typedef struct HV_MESSAGE {
    HV_MESSAGE_HEADER Header;
    union {
        UINT64 Payload[HV_MESSAGE_MAX_PAYLOAD_QWORD_COUNT];
        HV_X64_INTERCEPT_MESSAGE_HEADER InterceptHeader;
        HV_X64_IO_PORT_INTERCEPT_MESSAGE IoPortIntercept;
        HV_X64_MSR_INTERCEPT_MESSAGE MsrIntercept;
        HV_X64_CPUID_INTERCEPT_MESSAGE CpuidIntercept;
        HV_X64_EXCEPTION_INTERCEPT_MESSAGE ExceptionIntercept;
    };
} HV_MESSAGE, *PHV_MESSAGE;
typedef const HV_MESSAGE* PCHV_MESSAGE;

// One SINT's 2048 event flags in the SIEF page: flag n is bit n % 8 of
// byte n / 8.
typedef union HV_SYNIC_EVENT_FLAGS {
    UINT8 Flags[HV_EVENT_FLAGS_BYTE_COUNT];
    UINT32 Flags32[HV_EVENT_FLAGS_DWORD_COUNT];
} HV_SYNIC_EVENT_FLAGS, *PHV_SYNIC_EVENT_FLAGS;

// ---------------------------------------------------------------------------
// Ports and connections (reference §2 "Shared types", §6.4).

typedef UINT32 HV_PORT_TYPE;

#define HvPortTypeMessage 1
#define HvPortTypeEvent   2
#define HvPortTypeMonitor 3

// Port and connection ids are 24 bits: the high 8 must be zero.
#define HV_PORT_ID_MASK       0x00FFFFFFu
#define HV_CONNECTION_ID_MASK 0x00FFFFFFu

typedef struct HV_PORT_INFO {
    HV_PORT_TYPE PortType;
    UINT32 Padding;
    union {
        struct {
            HV_SYNIC_SINT_INDEX TargetSint;
            HV_VP_INDEX TargetVp;
            UINT64 RsvdZ;
        } MessagePortInfo;
        struct {
            HV_SYNIC_SINT_INDEX TargetSint;
            HV_VP_INDEX TargetVp;
            UINT16 BaseFlagNumber;
            UINT16 FlagCount;
            UINT32 RsvdZ;
        } EventPortInfo;
        struct {
            HV_GPA MonitorAddress;
            UINT64 RsvdZ;
        } MonitorPortInfo;
    };
} HV_PORT_INFO, *PHV_PORT_INFO;
typedef const HV_PORT_INFO* PCHV_PORT_INFO;

typedef struct HV_CONNECTION_INFO {
    HV_PORT_TYPE PortType;
    UINT32 Padding;
    union {
        struct {
            UINT64 RsvdZ;
        } MessageConnectionInfo;
        struct {
            UINT64 RsvdZ;
        } EventConnectionInfo;
        struct {
            HV_GPA MonitorAddress;
        } MonitorConnectionInfo;
    };
} HV_CONNECTION_INFO, *PHV_CONNECTION_INFO;
typedef const HV_CONNECTION_INFO* PCHV_CONNECTION_INFO;

typedef UINT32 HV_PORT_PROPERTY_CODE;
typedef UINT64 HV_PORT_PROPERTY, *PHV_PORT_PROPERTY;

#define HvPortPropertyPostCount         0x00000000
#define HvPortPropertyPreferredTargetVp 0x00000001

// ---------------------------------------------------------------------------
// The client connection (userland/hyperv-server/README.md, "Wire layouts").

// The client channel's startup handle: PA_HND(PA_USER0, 0x4856).
#define HV_CLIENT_HANDLE_INFO  0x485600F0u
// The root memory every root gets; its pages are its "GPA" pages
// (page number = address / 4096).
#define HV_ROOT_MEMORY_SIZE    (64ull << 20)
// How long the first call waits for the server's Hello.
#define HV_CONNECT_TIMEOUT_NS  30000000000ull

// ---------------------------------------------------------------------------
// The client API (hv-client-api.md). Rep calls take the element count through
// PUINT32: on entry the number of elements, on return the number completed
// (also on failure). They are issued in page-sized batches and stop at the
// first error.

HV_STATUS HvCreatePartition(UINT64 Flags, HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo,
                            PHV_PARTITION_ID NewPartitionId);
HV_STATUS HvInitializePartition(HV_PARTITION_ID PartitionId);
HV_STATUS HvFinalizePartition(HV_PARTITION_ID PartitionId);
HV_STATUS HvDeletePartition(HV_PARTITION_ID PartitionId);
HV_STATUS HvGetPartitionProperty(HV_PARTITION_ID PartitionId, HV_PARTITION_PROPERTY_CODE PropertyCode,
                                 PHV_PARTITION_PROPERTY PropertyValue);
HV_STATUS HvSetPartitionProperty(HV_PARTITION_ID PartitionId, HV_PARTITION_PROPERTY_CODE PropertyCode,
                                 HV_PARTITION_PROPERTY PropertyValue);
HV_STATUS HvGetPartitionId(PHV_PARTITION_ID PartitionId);
HV_STATUS HvGetNextChildPartition(HV_PARTITION_ID ParentId, HV_PARTITION_ID PreviousChildId,
                                  PHV_PARTITION_ID NextChildId);
HV_STATUS HvDepositMemory(HV_PARTITION_ID PartitionId, PUINT32 PageCount,
                          PCHV_GPA_PAGE_NUMBER GpaPages);
HV_STATUS HvWithdrawMemory(HV_PARTITION_ID PartitionId, HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo,
                           PUINT32 PageCount, PHV_GPA_PAGE_NUMBER GpaPages);
HV_STATUS HvGetMemoryBalance(HV_PARTITION_ID PartitionId, HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo,
                             PUINT64 PagesAvailable, PUINT64 PagesInUse);
HV_STATUS HvMapGpaPages(HV_PARTITION_ID TargetPartitionId, HV_GPA_PAGE_NUMBER TargetGpaBase,
                        HV_MAP_GPA_FLAGS MapFlags, PUINT32 PageCount,
                        PCHV_GPA_PAGE_NUMBER SourceGpaPageList);
HV_STATUS HvUnmapGpaPages(HV_PARTITION_ID TargetPartitionId, HV_GPA_PAGE_NUMBER TargetGpaBase,
                          PUINT32 PageCount);
HV_STATUS HvInstallIntercept(HV_PARTITION_ID PartitionId, HV_INTERCEPT_ACCESS_TYPE_MASK AccessType,
                             PCHV_INTERCEPT_DESCRIPTOR Descriptor);
HV_STATUS HvCreateVp(HV_PARTITION_ID PartitionId, HV_PROXIMITY_DOMAIN_INFO ProximityDomainInfo,
                     HV_VP_INDEX VpIndex, UINT64 Flags);
HV_STATUS HvDeleteVp(HV_PARTITION_ID PartitionId, HV_VP_INDEX VpIndex);
HV_STATUS HvGetVpRegisters(HV_PARTITION_ID PartitionId, HV_VP_INDEX VpIndex, PUINT32 RegisterCount,
                           PCHV_REGISTER_NAME RegisterNameList, PHV_REGISTER_VALUE RegisterValueList);
HV_STATUS HvSetVpRegisters(HV_PARTITION_ID PartitionId, HV_VP_INDEX VpIndex, PUINT32 RegisterCount,
                           PCHV_REGISTER_NAME RegisterNameList, PCHV_REGISTER_VALUE RegisterValueList);
HV_STATUS HvCreatePort(HV_PARTITION_ID PortPartition, HV_PORT_ID PortId,
                       HV_PARTITION_ID ConnectionPartition, PCHV_PORT_INFO PortInfo);
HV_STATUS HvDeletePort(HV_PARTITION_ID PortPartition, HV_PORT_ID PortId);
HV_STATUS HvConnectPort(HV_PARTITION_ID ConnectionPartition, HV_CONNECTION_ID ConnectionId,
                        HV_PARTITION_ID PortPartition, HV_PORT_ID PortId,
                        PCHV_CONNECTION_INFO ConnectionInfo);
HV_STATUS HvDisconnectPort(HV_PARTITION_ID ConnectionPartition, HV_CONNECTION_ID ConnectionId);
HV_STATUS HvGetPortProperty(HV_PARTITION_ID PartitionId, HV_PORT_ID PortId,
                            HV_PORT_PROPERTY_CODE PropertyCode, PHV_PORT_PROPERTY PropertyValue);
HV_STATUS HvPostMessage(HV_CONNECTION_ID ConnectionId, HV_MESSAGE_TYPE MessageType,
                        UINT32 PayloadSize, PCVOID Message);
HV_STATUS HvSignalEvent(HV_CONNECTION_ID ConnectionId, UINT16 FlagNumber);

// ---------------------------------------------------------------------------
// Root extensions (userland/hyperv-server/README.md, "C extensions for roots").

// This program's root partition id; connects on first use (as every Hv* call
// does). HV_PARTITION_ID_INVALID when the server cannot be reached.
HV_PARTITION_ID HvRootPartitionId(void);
// PageCount page-aligned, zero-filled-on-first-use pages of the root memory,
// for deposits, guest memory and anything a hypercall names by page number.
// The pages are the caller's for the program's lifetime (there is no free).
// NULL when PageCount is 0, the root memory is used up, or there is no server.
PVOID HvRootAllocatePages(UINT32 PageCount);
// The root "GPA" page number of an address: Address / 4096.
HV_GPA_PAGE_NUMBER HvRootPageNumber(PCVOID Address);
// The root's SIM page: HV_SYNIC_SINT_COUNT message slots; slot i is SINTi's,
// slot 0 holds intercept messages. NULL when the server cannot be reached.
// After reading a slot, set its Header.MessageType to HvMessageTypeNone and
// call HvRootEndOfMessage.
PHV_MESSAGE HvRootMessagePage(void);
// The root's SIEF page: HV_SYNIC_SINT_COUNT flag areas (one per SINT). NULL
// when the server cannot be reached.
PHV_SYNIC_EVENT_FLAGS HvRootEventFlagsPage(void);
// Waits until the server filled a message slot or set an event flag since
// the last wait (MX_USER_SIGNAL_0 of the notification event), and clears the
// notification. Deadline is an mx_time_t deadline (MX_TIME_INFINITE: none).
// HV_STATUS_SUCCESS, HV_STATUS_TIME_OUT, or HV_STATUS_INACTIVE.
HV_STATUS HvRootWaitForSynic(UINT64 Deadline);
// Tells the server slot Sint was emptied, so a queued message can be
// delivered (the root's EOM).
HV_STATUS HvRootEndOfMessage(UINT32 Sint);
// Issues a raw hypercall: Control is the hypercall input value; for a slow
// call Input and Output are root addresses (in the root memory) of the input
// and output blocks, for a fast call the two input qwords. Returns the result
// value (status in bits 15:0, reps completed in bits 43:32); the status is
// HV_STATUS_INACTIVE when the server cannot be reached.
UINT64 HvRootHypercall(UINT64 Control, UINT64 Input, UINT64 Output);

// ---------------------------------------------------------------------------
// Layout checks.

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define HV_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), "sizeof(" #type ")")
#define HV_ASSERT_OFFSET(type, member, offset) \
    _Static_assert(offsetof(type, member) == (offset), "offsetof(" #type ", " #member ")")
#elif defined(__cplusplus) && __cplusplus >= 201103L
#define HV_ASSERT_SIZE(type, size) static_assert(sizeof(type) == (size), "sizeof(" #type ")")
#define HV_ASSERT_OFFSET(type, member, offset) \
    static_assert(offsetof(type, member) == (offset), "offsetof(" #type ", " #member ")")
#endif

#ifdef HV_ASSERT_SIZE
HV_ASSERT_SIZE(HV_STATUS, 2);
HV_ASSERT_SIZE(HV_UINT128, 16);
HV_ASSERT_SIZE(HV_PROXIMITY_DOMAIN_FLAGS, 4);
HV_ASSERT_SIZE(HV_PROXIMITY_DOMAIN_INFO, 8);
HV_ASSERT_OFFSET(HV_PROXIMITY_DOMAIN_INFO, Flags, 4);
HV_ASSERT_SIZE(HV_X64_SEGMENT_REGISTER, 16);
HV_ASSERT_OFFSET(HV_X64_SEGMENT_REGISTER, Limit, 8);
HV_ASSERT_OFFSET(HV_X64_SEGMENT_REGISTER, Selector, 12);
HV_ASSERT_OFFSET(HV_X64_SEGMENT_REGISTER, Attributes, 14);
HV_ASSERT_SIZE(HV_X64_TABLE_REGISTER, 16);
HV_ASSERT_OFFSET(HV_X64_TABLE_REGISTER, Limit, 6);
HV_ASSERT_OFFSET(HV_X64_TABLE_REGISTER, Base, 8);
HV_ASSERT_SIZE(HV_REGISTER_VALUE, 16);
HV_ASSERT_SIZE(HV_INTERCEPT_PARAMETERS, 8);
HV_ASSERT_SIZE(HV_INTERCEPT_DESCRIPTOR, 16);
HV_ASSERT_OFFSET(HV_INTERCEPT_DESCRIPTOR, Parameters, 8);
HV_ASSERT_SIZE(HV_MESSAGE_HEADER, 16);
HV_ASSERT_OFFSET(HV_MESSAGE_HEADER, PayloadSize, 4);
HV_ASSERT_OFFSET(HV_MESSAGE_HEADER, MessageFlags, 5);
HV_ASSERT_OFFSET(HV_MESSAGE_HEADER, Reserved, 6);
HV_ASSERT_OFFSET(HV_MESSAGE_HEADER, OriginationId, 8);
HV_ASSERT_SIZE(HV_X64_INTERCEPT_MESSAGE_HEADER, 40);
HV_ASSERT_SIZE(HV_X64_IO_PORT_INTERCEPT_MESSAGE, 128);
HV_ASSERT_SIZE(HV_X64_MSR_INTERCEPT_MESSAGE, 64);
HV_ASSERT_SIZE(HV_X64_CPUID_INTERCEPT_MESSAGE, 104);
HV_ASSERT_SIZE(HV_X64_EXCEPTION_INTERCEPT_MESSAGE, HV_MESSAGE_MAX_PAYLOAD_BYTE_COUNT);
HV_ASSERT_SIZE(HV_MESSAGE, HV_MESSAGE_SIZE);
HV_ASSERT_OFFSET(HV_MESSAGE, Payload, 16);
// Reference §5.4, offsets from the start of the message.
HV_ASSERT_OFFSET(HV_MESSAGE, InterceptHeader.VpIndex, 16);
HV_ASSERT_OFFSET(HV_MESSAGE, InterceptHeader.InstructionLength, 20);
HV_ASSERT_OFFSET(HV_MESSAGE, InterceptHeader.InterceptAccessType, 21);
HV_ASSERT_OFFSET(HV_MESSAGE, InterceptHeader.ExecutionState, 22);
HV_ASSERT_OFFSET(HV_MESSAGE, InterceptHeader.CsSegment, 24);
HV_ASSERT_OFFSET(HV_MESSAGE, InterceptHeader.Rip, 40);
HV_ASSERT_OFFSET(HV_MESSAGE, InterceptHeader.Rflags, 48);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.PortNumber, 56);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.AccessInfo, 58);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.InstructionByteCount, 59);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.Rax, 64);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.InstructionBytes, 72);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.DsSegment, 88);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.EsSegment, 104);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.Rcx, 120);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.Rsi, 128);
HV_ASSERT_OFFSET(HV_MESSAGE, IoPortIntercept.Rdi, 136);
HV_ASSERT_OFFSET(HV_MESSAGE, MsrIntercept.MsrNumber, 56);
HV_ASSERT_OFFSET(HV_MESSAGE, MsrIntercept.Rdx, 64);
HV_ASSERT_OFFSET(HV_MESSAGE, MsrIntercept.Rax, 72);
HV_ASSERT_OFFSET(HV_MESSAGE, CpuidIntercept.Rax, 56);
HV_ASSERT_OFFSET(HV_MESSAGE, CpuidIntercept.Rcx, 64);
HV_ASSERT_OFFSET(HV_MESSAGE, CpuidIntercept.Rdx, 72);
HV_ASSERT_OFFSET(HV_MESSAGE, CpuidIntercept.Rbx, 80);
HV_ASSERT_OFFSET(HV_MESSAGE, CpuidIntercept.DefaultResultRax, 88);
HV_ASSERT_OFFSET(HV_MESSAGE, CpuidIntercept.DefaultResultRbx, 112);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.ExceptionVector, 56);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.ExceptionInfo, 58);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.InstructionByteCount, 59);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.ErrorCode, 60);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.ExceptionParameter, 64);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.InstructionBytes, 80);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.DsSegment, 96);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.SsSegment, 112);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.Rax, 128);
HV_ASSERT_OFFSET(HV_MESSAGE, ExceptionIntercept.R15, 248);
HV_ASSERT_SIZE(HV_SYNIC_EVENT_FLAGS, HV_EVENT_FLAGS_BYTE_COUNT);
HV_ASSERT_SIZE(HV_PORT_INFO, 24);
HV_ASSERT_OFFSET(HV_PORT_INFO, MessagePortInfo.TargetSint, 8);
HV_ASSERT_OFFSET(HV_PORT_INFO, MessagePortInfo.TargetVp, 12);
HV_ASSERT_OFFSET(HV_PORT_INFO, EventPortInfo.TargetSint, 8);
HV_ASSERT_OFFSET(HV_PORT_INFO, EventPortInfo.TargetVp, 12);
HV_ASSERT_OFFSET(HV_PORT_INFO, EventPortInfo.BaseFlagNumber, 16);
HV_ASSERT_OFFSET(HV_PORT_INFO, EventPortInfo.FlagCount, 18);
HV_ASSERT_OFFSET(HV_PORT_INFO, MonitorPortInfo.MonitorAddress, 8);
HV_ASSERT_SIZE(HV_CONNECTION_INFO, 16);
HV_ASSERT_OFFSET(HV_CONNECTION_INFO, MonitorConnectionInfo.MonitorAddress, 8);
#endif

#ifdef __cplusplus
}
#endif
