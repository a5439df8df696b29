//! The C Hyper-V client: `sysroot/include/hv/hvgdk.h` compiles on its own
//! (freestanding, pedantic C11, only <stdint.h>/<stddef.h>), its constants
//! and layouts are those of `hyperv-reference.md`, libhv (`sysroot/src/hv.c`)
//! speaks the wire protocol against a mock server (`hv/libhv_mock.c`), and
//! `userland/hv-c-example` links against the sysroot alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSymbol};
use userland_tests::*;

fn header() -> PathBuf {
    root().join("sysroot/include/hv/hvgdk.h")
}

/// A directory holding nothing but `hv/hvgdk.h`: what compiles against it
/// needs no other sysroot header.
fn header_alone(dir: &Path) -> std::io::Result<PathBuf> {
    let include = dir.join("include");
    std::fs::create_dir_all(include.join("hv"))?;
    std::fs::copy(header(), include.join("hv/hvgdk.h"))?;
    Ok(include)
}

#[test]
fn hvgdk_h_compiles_alone_as_pedantic_freestanding_c11() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc)");
        return;
    };
    let dir = scratch("hvgdk-alone");
    let include = header_alone(&dir).unwrap();
    let src = dir.join("probe.c");
    // Twice, to show the include guard works; the header's _Static_asserts
    // check every size and key offset.
    std::fs::write(&src, "#include <hv/hvgdk.h>\n#include <hv/hvgdk.h>\nHV_MESSAGE slot;\n").unwrap();
    let gcc_include = run(Command::new(&cc).arg("-print-file-name=include")).unwrap();
    for std in ["-std=c11", "-std=c17"] {
        run(Command::new(&cc)
            .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffreestanding", "-nostdinc", "-isystem"])
            .arg(gcc_include.trim())
            .arg("-I")
            .arg(&include)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(dir.join("probe.o")))
        .unwrap();
    }
    // A wrong size must fail the build: the asserts are live.
    let broken = std::fs::read_to_string(header())
        .unwrap()
        .replace("HV_ASSERT_SIZE(HV_PORT_INFO, 24);", "HV_ASSERT_SIZE(HV_PORT_INFO, 32);");
    assert!(broken.contains("HV_PORT_INFO, 32"), "the header asserts HV_PORT_INFO's size");
    std::fs::write(include.join("hv/hvgdk.h"), broken).unwrap();
    let out = Command::new(&cc)
        .args(["-std=c11", "-ffreestanding", "-fsyntax-only", "-I"])
        .arg(&include)
        .arg(&src)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong _Static_assert size is caught");
}

/// Values from `../shared/specs/hyperv-reference.md` (section in the comment)
/// and the client protocol of `userland/hyperv-server/README.md`.
const CONSTANTS: &[(&str, u64)] = &[
    // §3 HV_STATUS.
    ("HV_STATUS_SUCCESS", 0x0000),
    ("HV_STATUS_INVALID_HYPERCALL_CODE", 0x0002),
    ("HV_STATUS_INVALID_HYPERCALL_INPUT", 0x0003),
    ("HV_STATUS_INVALID_ALIGNMENT", 0x0004),
    ("HV_STATUS_INVALID_PARAMETER", 0x0005),
    ("HV_STATUS_ACCESS_DENIED", 0x0006),
    ("HV_STATUS_INVALID_PARTITION_STATE", 0x0007),
    ("HV_STATUS_OPERATION_DENIED", 0x0008),
    ("HV_STATUS_UNKNOWN_PROPERTY", 0x0009),
    ("HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE", 0x000A),
    ("HV_STATUS_INSUFFICIENT_MEMORY", 0x000B),
    ("HV_STATUS_PARTITION_TOO_DEEP", 0x000C),
    ("HV_STATUS_INVALID_PARTITION_ID", 0x000D),
    ("HV_STATUS_INVALID_VP_INDEX", 0x000E),
    ("HV_STATUS_NOT_FOUND", 0x0010),
    ("HV_STATUS_INVALID_PORT_ID", 0x0011),
    ("HV_STATUS_INVALID_CONNECTION_ID", 0x0012),
    ("HV_STATUS_INSUFFICIENT_BUFFERS", 0x0013),
    ("HV_STATUS_NOT_ACKNOWLEDGED", 0x0014),
    ("HV_STATUS_INVALID_VP_STATE", 0x0015),
    ("HV_STATUS_ACKNOWLEDGED", 0x0016),
    ("HV_STATUS_INVALID_SAVE_RESTORE_STATE", 0x0017),
    ("HV_STATUS_INVALID_SYNIC_STATE", 0x0018),
    ("HV_STATUS_OBJECT_IN_USE", 0x0019),
    ("HV_STATUS_INVALID_PROXIMITY_DOMAIN_INFO", 0x001A),
    ("HV_STATUS_NO_DATA", 0x001B),
    ("HV_STATUS_INACTIVE", 0x001C),
    ("HV_STATUS_NO_RESOURCES", 0x001D),
    ("HV_STATUS_FEATURE_UNAVAILABLE", 0x001E),
    ("HV_STATUS_PARTIAL_PACKET", 0x001F),
    ("HV_STATUS_PROCESSOR_FEATURE_NOT_SUPPORTED", 0x0020),
    ("HV_STATUS_PROCESSOR_CACHE_LINE_FLUSH_SIZE_INCOMPATIBLE", 0x0030),
    ("HV_STATUS_INSUFFICIENT_BUFFER", 0x0033),
    ("HV_STATUS_INCOMPATIBLE_PROCESSOR", 0x0037),
    ("HV_STATUS_INSUFFICIENT_DEVICE_DOMAINS", 0x0038),
    ("HV_STATUS_CPUID_FEATURE_VALIDATION_ERROR", 0x003C),
    ("HV_STATUS_CPUID_XSAVE_FEATURE_VALIDATION_ERROR", 0x003D),
    ("HV_STATUS_PROCESSOR_STARTUP_TIMEOUT", 0x003E),
    ("HV_STATUS_SMX_ENABLED", 0x003F),
    ("HV_STATUS_INVALID_LP_INDEX", 0x0041),
    ("HV_STATUS_INVALID_REGISTER_VALUE", 0x0050),
    ("HV_STATUS_INVALID_VTL_STATE", 0x0051),
    ("HV_STATUS_NX_NOT_DETECTED", 0x0055),
    ("HV_STATUS_INVALID_DEVICE_ID", 0x0057),
    ("HV_STATUS_INVALID_DEVICE_STATE", 0x0058),
    ("HV_STATUS_PENDING_PAGE_REQUESTS", 0x0059),
    ("HV_STATUS_PAGE_REQUEST_INVALID", 0x0060),
    ("HV_STATUS_OPERATION_FAILED", 0x0071),
    ("HV_STATUS_NOT_ALLOWED_WITH_NESTED_VIRT_ACTIVE", 0x0072),
    ("HV_STATUS_TIME_OUT", 0x0078),
    ("HV_STATUS_CALL_PENDING", 0x0079),
    ("HV_STATUS_VTL_ALREADY_ENABLED", 0x0086),
    ("HV_STATUS_UNKNOWN_REGISTER_NAME", 0x0087),
    // §1.1-1.2 the input and result values.
    ("HV_HYPERCALL_FAST_BIT", 1 << 16),
    ("HV_HYPERCALL_REP_COUNT_SHIFT", 32),
    ("HV_HYPERCALL_REP_START_SHIFT", 48),
    ("HV_HYPERCALL_RESULT_REPS_MASK", 0xFFF << 32),
    // §2 call codes (2.0A).
    ("HvCallCreatePartition", 0x0040),
    ("HvCallInitializePartition", 0x0041),
    ("HvCallFinalizePartition", 0x0042),
    ("HvCallDeletePartition", 0x0043),
    ("HvCallGetPartitionProperty", 0x0044),
    ("HvCallSetPartitionProperty", 0x0045),
    ("HvCallGetPartitionId", 0x0046),
    ("HvCallGetNextChildPartition", 0x0047),
    ("HvCallDepositMemory", 0x0048),
    ("HvCallWithdrawMemory", 0x0049),
    ("HvCallGetMemoryBalance", 0x004A),
    ("HvCallMapGpaPages", 0x004B),
    ("HvCallUnmapGpaPages", 0x004C),
    ("HvCallInstallIntercept", 0x004D),
    ("HvCallCreateVp", 0x004E),
    ("HvCallDeleteVp", 0x004F),
    ("HvCallGetVpRegisters", 0x0050),
    ("HvCallSetVpRegisters", 0x0051),
    ("HvCallTranslateVirtualAddress", 0x0052),
    ("HvCallAssertVirtualInterrupt", 0x0055),
    ("HvCallClearVirtualInterrupt", 0x0056),
    ("HvCallCreatePort", 0x0057),
    ("HvCallDeletePort", 0x0058),
    ("HvCallConnectPort", 0x0059),
    ("HvCallGetPortProperty", 0x005A),
    ("HvCallDisconnectPort", 0x005B),
    ("HvCallPostMessage", 0x005C),
    ("HvCallSignalEvent", 0x005D),
    ("HvCallMapSparseGpaPages", 0x006E),
    ("HvCallSetPortProperty", 0x0070),
    // §2 shared types.
    ("HV_PARTITION_ID_INVALID", 0),
    ("HV_PARTITION_ID_SELF", u64::MAX),
    ("HV_ANY_VP", 0xFFFF_FFFF),
    ("HV_VP_INDEX_SELF", 0xFFFF_FFFE),
    ("HvRegisterExplicitSuspend", 0x0000_0000),
    ("HvRegisterInterceptSuspend", 0x0000_0001),
    ("HvX64RegisterRax", 0x0002_0000),
    ("HvX64RegisterRcx", 0x0002_0001),
    ("HvX64RegisterRsp", 0x0002_0004),
    ("HvX64RegisterR15", 0x0002_000F),
    ("HvX64RegisterRip", 0x0002_0010),
    ("HvX64RegisterRflags", 0x0002_0011),
    // TLFS 2.0A register names beyond the reference's list.
    ("HvX64RegisterCr0", 0x0004_0000),
    ("HvX64RegisterCr3", 0x0004_0002),
    ("HvX64RegisterCr4", 0x0004_0003),
    ("HvX64RegisterCs", 0x0006_0001),
    ("HvX64RegisterEfer", 0x0008_0001),
    ("HvPortTypeMessage", 1),
    ("HvPortTypeEvent", 2),
    ("HvPortTypeMonitor", 3),
    // §1.6 synthetic MSRs.
    ("HV_X64_MSR_GUEST_OS_ID", 0x4000_0000),
    ("HV_X64_MSR_HYPERCALL", 0x4000_0001),
    ("HV_X64_MSR_VP_INDEX", 0x4000_0002),
    ("HV_X64_MSR_VP_RUNTIME", 0x4000_0010),
    ("HV_X64_MSR_TIME_REF_COUNT", 0x4000_0020),
    ("HV_X64_MSR_SCONTROL", 0x4000_0080),
    ("HV_X64_MSR_SVERSION", 0x4000_0081),
    ("HV_X64_MSR_SIEFP", 0x4000_0082),
    ("HV_X64_MSR_SIMP", 0x4000_0083),
    ("HV_X64_MSR_EOM", 0x4000_0084),
    ("HV_X64_MSR_SINT0", 0x4000_0090),
    ("HV_X64_MSR_SINT15", 0x4000_009F),
    // §4.3 privileges.
    ("HV_PARTITION_PRIVILEGE_ACCESS_VP_RUNTIME_MSR", 1 << 0),
    ("HV_PARTITION_PRIVILEGE_ACCESS_SYNIC_MSRS", 1 << 2),
    ("HV_PARTITION_PRIVILEGE_ACCESS_HYPERCALL_MSRS", 1 << 5),
    ("HV_PARTITION_PRIVILEGE_ACCESS_PARTITION_REFERENCE_TSC", 1 << 9),
    ("HV_PARTITION_PRIVILEGE_ACCESS_GUEST_IDLE_MSR", 1 << 10),
    ("HV_PARTITION_PRIVILEGE_CREATE_PARTITIONS", 1 << 32),
    ("HV_PARTITION_PRIVILEGE_ACCESS_PARTITION_ID", 1 << 33),
    ("HV_PARTITION_PRIVILEGE_ACCESS_MEMORY_POOL", 1 << 34),
    ("HV_PARTITION_PRIVILEGE_ADJUST_MESSAGE_BUFFERS", 1 << 35),
    ("HV_PARTITION_PRIVILEGE_POST_MESSAGES", 1 << 36),
    ("HV_PARTITION_PRIVILEGE_SIGNAL_EVENTS", 1 << 37),
    ("HV_PARTITION_PRIVILEGE_CREATE_PORT", 1 << 38),
    ("HV_PARTITION_PRIVILEGE_CONNECT_PORT", 1 << 39),
    ("HV_PARTITION_PRIVILEGE_ACCESS_STATS", 1 << 40),
    ("HV_PARTITION_PRIVILEGE_DEBUGGING", 1 << 43),
    ("HV_PARTITION_PRIVILEGE_CPU_MANAGEMENT", 1 << 44),
    ("HV_PARTITION_PRIVILEGE_CONFIGURE_PROFILER", 1 << 45),
    ("HV_PARTITION_PRIVILEGE_CHILD_DEFAULT", 0x1FF | 1 << 10),
    // §4.5 partition properties.
    ("HvPartitionPropertyPrivilegeFlags", 0x0001_0000),
    ("HvPartitionPropertyCpuReserve", 0x0002_0001),
    ("HvPartitionPropertyCpuCap", 0x0002_0002),
    ("HvPartitionPropertyCpuWeight", 0x0002_0003),
    ("HvPartitionPropertyEmulatedTimerPeriod", 0x0003_0000),
    ("HvPartitionPropertyEmulatedTimerControl", 0x0003_0001),
    ("HvPartitionPropertyPmTimerAssist", 0x0003_0002),
    ("HvPartitionPropertyDebugChannelId", 0x0004_0000),
    ("HvPartitionPropertyVirtualTlbPageCount", 0x0005_0000),
    ("HvPartitionPropertyProcessorVendor", 0x0006_0000),
    ("HvPartitionPropertyProcessorFeatures", 0x0006_0001),
    ("HvPartitionPropertyProcessorXsaveFeatures", 0x0006_0002),
    ("HvPartitionPropertyProcessorClFlushSize", 0x0006_0003),
    // §4.6 proximity domain flags.
    ("HV_PROXIMITY_DOMAIN_FLAG_PREFERRED", 1),
    ("HV_PROXIMITY_DOMAIN_FLAG_INFO_VALID", 1 << 31),
    // §5.1 intercepts.
    ("HvInterceptTypeX64IoPort", 0),
    ("HvInterceptTypeX64Msr", 1),
    ("HvInterceptTypeX64Cpuid", 2),
    ("HvInterceptTypeX64Exception", 3),
    ("HV_INTERCEPT_ACCESS_MASK_NONE", 0),
    ("HV_INTERCEPT_ACCESS_MASK_READ", 1),
    ("HV_INTERCEPT_ACCESS_MASK_WRITE", 2),
    ("HV_INTERCEPT_ACCESS_MASK_EXECUTE", 4),
    ("HV_INTERCEPT_ACCESS_READ", 0),
    ("HV_INTERCEPT_ACCESS_WRITE", 1),
    ("HV_INTERCEPT_ACCESS_EXECUTE", 2),
    // §5.3 message types.
    ("HvMessageTypeNone", 0),
    ("HvMessageTypeUnmappedGpa", 0x8000_0000),
    ("HvMessageTypeGpaIntercept", 0x8000_0001),
    ("HvMessageTypeTimerExpired", 0x8000_0010),
    ("HvMessageTypeInvalidVpRegisterValue", 0x8000_0020),
    ("HvMessageTypeUnrecoverableException", 0x8000_0021),
    ("HvMessageTypeUnsupportedFeature", 0x8000_0022),
    ("HvMessageTypeApicEoi", 0x8000_0030),
    ("HvMessageTypeFerrAsserted", 0x8000_0031),
    ("HvMessageTypeEventLogBufferComplete", 0x8000_0040),
    ("HvMessageTypeHypercallIntercept", 0x8000_0050),
    ("HvMessageTypeX64IoPortIntercept", 0x8001_0000),
    ("HvMessageTypeX64MsrIntercept", 0x8001_0001),
    ("HvMessageTypeX64CpuidIntercept", 0x8001_0002),
    ("HvMessageTypeX64ExceptionIntercept", 0x8001_0003),
    ("HvMessageTypeX64Halt", 0x8001_0007),
    ("HvMessageTypeX64SipiIntercept", 0x8001_0009),
    ("HV_MESSAGE_FLAG_PENDING", 1),
    // §6 SynIC.
    ("HV_SYNIC_SINT_COUNT", 16),
    ("HV_MESSAGE_SIZE", 256),
    ("HV_MESSAGE_MAX_PAYLOAD_BYTE_COUNT", 240),
    ("HV_MESSAGE_MAX_PAYLOAD_QWORD_COUNT", 30),
    ("HV_EVENT_FLAGS_COUNT", 2048),
    ("HV_SYNIC_SINT_MASKED", 1 << 16),
    // The client protocol.
    ("HV_CLIENT_HANDLE_INFO", 0x4856_00F0),
    ("HV_ROOT_MEMORY_SIZE", 64 << 20),
];

/// (type, size) and (type, member, offset from the start of the type).
const SIZES: &[(&str, u64)] = &[
    ("HV_STATUS", 2),
    ("HV_PARTITION_ID", 8),
    ("HV_VP_INDEX", 4),
    ("HV_REGISTER_NAME", 4),
    ("HV_PROXIMITY_DOMAIN_INFO", 8),
    ("HV_REGISTER_VALUE", 16),
    ("HV_INTERCEPT_DESCRIPTOR", 16),
    ("HV_PORT_INFO", 24),
    ("HV_CONNECTION_INFO", 16),
    ("HV_MESSAGE", 256),
    ("HV_SYNIC_EVENT_FLAGS", 256),
    ("HV_INTERCEPT_ACCESS_TYPE_MASK", 4),
];

const OFFSETS: &[(&str, &str, u64)] = &[
    ("HV_PROXIMITY_DOMAIN_INFO", "Flags", 4),
    ("HV_INTERCEPT_DESCRIPTOR", "Parameters", 8),
    ("HV_PORT_INFO", "EventPortInfo.TargetSint", 8),
    ("HV_PORT_INFO", "EventPortInfo.TargetVp", 12),
    ("HV_PORT_INFO", "EventPortInfo.BaseFlagNumber", 16),
    ("HV_PORT_INFO", "EventPortInfo.FlagCount", 18),
    ("HV_PORT_INFO", "MonitorPortInfo.MonitorAddress", 8),
    ("HV_CONNECTION_INFO", "MonitorConnectionInfo.MonitorAddress", 8),
    ("HV_MESSAGE", "Header.PayloadSize", 4),
    ("HV_MESSAGE", "Header.MessageFlags", 5),
    ("HV_MESSAGE", "Header.OriginationId", 8),
    ("HV_MESSAGE", "Payload", 16),
    ("HV_MESSAGE", "InterceptHeader.VpIndex", 16),
    ("HV_MESSAGE", "InterceptHeader.InstructionLength", 20),
    ("HV_MESSAGE", "InterceptHeader.InterceptAccessType", 21),
    ("HV_MESSAGE", "InterceptHeader.ExecutionState", 22),
    ("HV_MESSAGE", "InterceptHeader.CsSegment", 24),
    ("HV_MESSAGE", "InterceptHeader.Rip", 40),
    ("HV_MESSAGE", "InterceptHeader.Rflags", 48),
    ("HV_MESSAGE", "IoPortIntercept.PortNumber", 56),
    ("HV_MESSAGE", "IoPortIntercept.AccessInfo", 58),
    ("HV_MESSAGE", "IoPortIntercept.Rax", 64),
    ("HV_MESSAGE", "IoPortIntercept.InstructionBytes", 72),
    ("HV_MESSAGE", "IoPortIntercept.Rdi", 136),
    ("HV_MESSAGE", "MsrIntercept.MsrNumber", 56),
    ("HV_MESSAGE", "MsrIntercept.Rdx", 64),
    ("HV_MESSAGE", "MsrIntercept.Rax", 72),
    ("HV_MESSAGE", "CpuidIntercept.Rax", 56),
    ("HV_MESSAGE", "CpuidIntercept.DefaultResultRax", 88),
    ("HV_MESSAGE", "ExceptionIntercept.ExceptionVector", 56),
    ("HV_MESSAGE", "ExceptionIntercept.ErrorCode", 60),
    ("HV_MESSAGE", "ExceptionIntercept.ExceptionParameter", 64),
    ("HV_MESSAGE", "ExceptionIntercept.InstructionBytes", 80),
    ("HV_MESSAGE", "ExceptionIntercept.Rax", 128),
    ("HV_MESSAGE", "ExceptionIntercept.R15", 248),
];

#[test]
fn hvgdk_h_constants_and_layouts_match_the_reference() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc)");
        return;
    };
    let dir = scratch("hvgdk-values");
    let include = header_alone(&dir).unwrap();
    let mut src = String::from("#include <hv/hvgdk.h>\n#include <stdio.h>\nint main(void) {\n");
    for (name, _) in CONSTANTS {
        src += &format!("    printf(\"{name} %llu\\n\", (unsigned long long)({name}));\n");
    }
    for (ty, _) in SIZES {
        src += &format!("    printf(\"sizeof({ty}) %zu\\n\", sizeof({ty}));\n");
    }
    for (ty, member, _) in OFFSETS {
        src += &format!("    printf(\"offsetof({ty}, {member}) %zu\\n\", offsetof({ty}, {member}));\n");
    }
    src += "    return 0;\n}\n";
    std::fs::write(dir.join("values.c"), src).unwrap();
    let exe = dir.join("values");
    run(Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg(dir.join("values.c"))
        .arg("-o")
        .arg(&exe))
    .unwrap();
    let out = run(&mut Command::new(&exe)).unwrap();
    let mut expected: Vec<String> = CONSTANTS.iter().map(|(n, v)| format!("{n} {v}")).collect();
    expected.extend(SIZES.iter().map(|(t, s)| format!("sizeof({t}) {s}")));
    expected.extend(OFFSETS.iter().map(|(t, m, o)| format!("offsetof({t}, {m}) {o}")));
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), expected.len());
    let wrong: Vec<_> = got.iter().zip(&expected).filter(|(g, e)| **g != e.as_str()).collect();
    assert!(wrong.is_empty(), "hvgdk.h values differ from the reference (got, expected): {wrong:#?}");
}

#[test]
fn libhv_speaks_the_wire_protocol_to_a_mock_server() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc)");
        return;
    };
    if !cfg!(target_arch = "x86_64") {
        skip("libhv's layouts are x86-64's");
        return;
    }
    let dir = scratch("libhv-mock");
    let exe = dir.join("libhv_mock");
    // Host headers first; magenta/, hv/ and mxrt.h from the sysroot.
    run(Command::new(&cc)
        .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-idirafter"])
        .arg(root().join("sysroot/include"))
        .arg(root().join("userland/tests/hv/libhv_mock.c"))
        .arg(root().join("sysroot/src/hv.c"))
        .arg("-o")
        .arg(&exe))
    .unwrap();
    for (scenario, min_checks) in [("main", 60), ("noserver", 9), ("badhello", 12), ("peerclosed", 10)] {
        let out = Command::new(&exe).arg(scenario).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "libhv_mock {scenario}:\n{stdout}");
        assert!(stdout.contains(&format!("{scenario}: 0 failed")), "{stdout}");
        let passed = stdout.lines().filter(|l| l.starts_with("ok:")).count();
        assert!(passed >= min_checks, "libhv_mock {scenario}: only {passed} checks ran:\n{stdout}");
    }
}

#[test]
fn hv_c_example_links_against_the_sysroot_alone() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc)");
        return;
    };
    let dir = scratch("hv-c-example");
    let lib = dir.join("lib");
    build_sysroot(&lib).unwrap();
    let out = dir.join("hv-c-example.elf");
    // libhv.a goes before the -lc -lmagenta link_c adds: it needs both.
    link_c(&cc, &lib, &[root().join("userland/hv-c-example/hv_example.c"), lib.join("libhv.a")], &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let undefined: Vec<_> = file.symbols().filter(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty()).collect();
    assert!(undefined.is_empty(), "undefined symbols: {undefined:?}");
    for api in ["HvCreatePartition", "HvMapGpaPages", "HvRootWaitForSynic", "mx_channel_call"] {
        assert!(file.symbols().any(|s| s.name() == Ok(api)), "{api} is linked in");
    }
    assert_eq!(count_syscalls(&out).unwrap(), 0, "every call goes through the vDSO");
    assert_eq!(mx::elf::plan(&bytes).unwrap().entry, file.entry());
}
