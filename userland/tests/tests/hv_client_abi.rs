//! The C client and the server agree: every constant of `hvgdk.h` that crate
//! `hv` also defines has the same value, the public structures have the
//! same bytes, and each input libhv builds (dumped by `hv/libhv_mock.c`) is
//! byte for byte what `hv::abi`'s layout of that call encodes, with the fast
//! convention only where `hv::abi::CallShape` allows it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hv::abi::*;
use hv::proto;
use userland_tests::*;

/// Compiles and runs a hosted C program that includes `hvgdk.h` (from a
/// directory holding only it, so the host's <stdio.h> is the one used).
fn run_c(cc: &str, dir: &Path, name: &str, body: &str) -> anyhow::Result<String> {
    let include = dir.join("include");
    std::fs::create_dir_all(include.join("hv"))?;
    std::fs::copy(root().join("sysroot/include/hv/hvgdk.h"), include.join("hv/hvgdk.h"))?;
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    let text = format!(
        "#include <hv/hvgdk.h>\n#include <stdio.h>\n#include <string.h>\n\
         static void hex(const char* what, const void* p, size_t n) {{\n\
         printf(\"%s \", what);\n\
         for (size_t i = 0; i < n; i++) printf(\"%02x\", ((const unsigned char*)p)[i]);\n\
         printf(\"\\n\");\n}}\n\
         int main(void) {{\n{body}\n    return 0;\n}}\n"
    );
    std::fs::write(&src, text)?;
    run(Command::new(cc)
        .args(["-std=c11", "-Wall", "-Werror", "-Wno-unused-function", "-I"])
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(&exe))?;
    run(&mut Command::new(&exe))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hvgdk_h_constants_equal_crate_hv() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc)");
        return;
    };
    let mut pairs: Vec<(String, u64)> = Vec::new();
    for v in 0..=u16::MAX {
        if let Some(name) = HvStatus(v).name() {
            pairs.push((format!("HV_STATUS_{name}"), u64::from(v)));
        }
    }
    assert!(pairs.len() > 50, "crate hv names its statuses");
    let u32s: &[(&str, u32)] = &[
        ("HvRegisterExplicitSuspend", reg::EXPLICIT_SUSPEND),
        ("HvRegisterInterceptSuspend", reg::INTERCEPT_SUSPEND),
        ("HvX64RegisterRax", reg::RAX),
        ("HvX64RegisterRcx", reg::RCX),
        ("HvX64RegisterRdx", reg::RDX),
        ("HvX64RegisterRbx", reg::RBX),
        ("HvX64RegisterRsp", reg::RSP),
        ("HvX64RegisterRbp", reg::RBP),
        ("HvX64RegisterRsi", reg::RSI),
        ("HvX64RegisterRdi", reg::RDI),
        ("HvX64RegisterR8", reg::R8),
        ("HvX64RegisterR15", reg::R15),
        ("HvX64RegisterRip", reg::RIP),
        ("HvX64RegisterRflags", reg::RFLAGS),
        ("HvX64RegisterCr0", reg::CR0),
        ("HvX64RegisterCr2", reg::CR2),
        ("HvX64RegisterCr3", reg::CR3),
        ("HvX64RegisterCr4", reg::CR4),
        ("HvX64RegisterCs", reg::CS),
        ("HvX64RegisterEfer", reg::EFER),
        ("HV_X64_MSR_GUEST_OS_ID", msr::GUEST_OS_ID),
        ("HV_X64_MSR_HYPERCALL", msr::HYPERCALL),
        ("HV_X64_MSR_VP_INDEX", msr::VP_INDEX),
        ("HV_X64_MSR_VP_RUNTIME", msr::VP_RUNTIME),
        ("HV_X64_MSR_TIME_REF_COUNT", msr::TIME_REF_COUNT),
        ("HV_X64_MSR_SCONTROL", msr::SCONTROL),
        ("HV_X64_MSR_SVERSION", msr::SVERSION),
        ("HV_X64_MSR_SIEFP", msr::SIEFP),
        ("HV_X64_MSR_SIMP", msr::SIMP),
        ("HV_X64_MSR_EOM", msr::EOM),
        ("HV_X64_MSR_SINT0", msr::SINT0),
        ("HV_X64_MSR_SINT15", msr::SINT15),
        ("HvMessageTypeNone", message_type::NONE),
        ("HvMessageTypeUnmappedGpa", message_type::UNMAPPED_GPA),
        ("HvMessageTypeGpaIntercept", message_type::GPA_INTERCEPT),
        ("HvMessageTypeTimerExpired", message_type::TIMER_EXPIRED),
        ("HvMessageTypeInvalidVpRegisterValue", message_type::INVALID_VP_REGISTER_VALUE),
        ("HvMessageTypeUnrecoverableException", message_type::UNRECOVERABLE_EXCEPTION),
        ("HvMessageTypeUnsupportedFeature", message_type::UNSUPPORTED_FEATURE),
        ("HvMessageTypeX64IoPortIntercept", message_type::X64_IO_PORT_INTERCEPT),
        ("HvMessageTypeX64MsrIntercept", message_type::X64_MSR_INTERCEPT),
        ("HvMessageTypeX64CpuidIntercept", message_type::X64_CPUID_INTERCEPT),
        ("HvMessageTypeX64ExceptionIntercept", message_type::X64_EXCEPTION_INTERCEPT),
        ("HV_MESSAGE_TYPE_HYPERVISOR_MASK", message_type::HYPERVISOR_ONLY),
        ("HvInterceptTypeX64IoPort", intercept::X64_IO_PORT),
        ("HvInterceptTypeX64Msr", intercept::X64_MSR),
        ("HvInterceptTypeX64Cpuid", intercept::X64_CPUID),
        ("HvInterceptTypeX64Exception", intercept::X64_EXCEPTION),
        ("HV_INTERCEPT_ACCESS_MASK_NONE", intercept::ACCESS_NONE),
        ("HV_INTERCEPT_ACCESS_MASK_READ", intercept::ACCESS_READ),
        ("HV_INTERCEPT_ACCESS_MASK_WRITE", intercept::ACCESS_WRITE),
        ("HV_INTERCEPT_ACCESS_MASK_EXECUTE", intercept::ACCESS_EXECUTE),
        ("HvPartitionPropertyPrivilegeFlags", property::PRIVILEGE_FLAGS),
        ("HvPartitionPropertyCpuReserve", property::CPU_RESERVE),
        ("HvPartitionPropertyCpuCap", property::CPU_CAP),
        ("HvPartitionPropertyCpuWeight", property::CPU_WEIGHT),
        ("HvPartitionPropertyEmulatedTimerPeriod", property::EMULATED_TIMER_PERIOD),
        ("HvPartitionPropertyEmulatedTimerControl", property::EMULATED_TIMER_CONTROL),
        ("HvPartitionPropertyPmTimerAssist", property::PM_TIMER_ASSIST),
        ("HvPartitionPropertyDebugChannelId", property::DEBUG_CHANNEL_ID),
        ("HvPartitionPropertyVirtualTlbPageCount", property::VIRTUAL_TLB_PAGE_COUNT),
        ("HvPartitionPropertyProcessorVendor", property::PROCESSOR_VENDOR),
        ("HvPartitionPropertyProcessorFeatures", property::PROCESSOR_FEATURES),
        ("HvPartitionPropertyProcessorXsaveFeatures", property::PROCESSOR_XSAVE_FEATURES),
        ("HvPartitionPropertyProcessorClFlushSize", property::PROCESSOR_CL_FLUSH_SIZE),
        ("HvPortPropertyPostCount", port_property::POST_COUNT),
        ("HvPortPropertyPreferredTargetVp", port_property::PREFERRED_TARGET_VP),
        ("HvPortTypeMessage", port_type::MESSAGE),
        ("HvPortTypeEvent", port_type::EVENT),
        ("HvPortTypeMonitor", port_type::MONITOR),
        ("HV_MAP_GPA_READABLE", map_flags::READABLE),
        ("HV_MAP_GPA_WRITABLE", map_flags::WRITABLE),
        ("HV_MAP_GPA_EXECUTABLE", map_flags::EXECUTABLE),
        ("HV_PROXIMITY_DOMAIN_FLAG_PREFERRED", ProximityDomainInfo::PREFERRED),
        ("HV_PROXIMITY_DOMAIN_FLAG_INFO_VALID", ProximityDomainInfo::VALID),
        ("HV_ANY_VP", VP_INDEX_ANY),
        ("HV_VP_INDEX_SELF", VP_INDEX_SELF),
        ("HV_EVENT_FLAGS_COUNT", EVENT_FLAGS_COUNT),
        ("HV_SYNIC_SINT_COUNT", SINT_COUNT),
        ("HV_PORT_ID_MASK", PORT_ID_MASK),
        ("HV_CLIENT_HANDLE_INFO", proto::HV_CLIENT_HANDLE_INFO),
    ];
    pairs.extend(u32s.iter().map(|(n, v)| (n.to_string(), u64::from(*v))));
    let u16s: &[(&str, u16)] = &[
        ("HvCallCreatePartition", call::CREATE_PARTITION),
        ("HvCallInitializePartition", call::INITIALIZE_PARTITION),
        ("HvCallFinalizePartition", call::FINALIZE_PARTITION),
        ("HvCallDeletePartition", call::DELETE_PARTITION),
        ("HvCallGetPartitionProperty", call::GET_PARTITION_PROPERTY),
        ("HvCallSetPartitionProperty", call::SET_PARTITION_PROPERTY),
        ("HvCallGetPartitionId", call::GET_PARTITION_ID),
        ("HvCallGetNextChildPartition", call::GET_NEXT_CHILD_PARTITION),
        ("HvCallDepositMemory", call::DEPOSIT_MEMORY),
        ("HvCallWithdrawMemory", call::WITHDRAW_MEMORY),
        ("HvCallGetMemoryBalance", call::GET_MEMORY_BALANCE),
        ("HvCallMapGpaPages", call::MAP_GPA_PAGES),
        ("HvCallUnmapGpaPages", call::UNMAP_GPA_PAGES),
        ("HvCallInstallIntercept", call::INSTALL_INTERCEPT),
        ("HvCallCreateVp", call::CREATE_VP),
        ("HvCallDeleteVp", call::DELETE_VP),
        ("HvCallGetVpRegisters", call::GET_VP_REGISTERS),
        ("HvCallSetVpRegisters", call::SET_VP_REGISTERS),
        ("HvCallTranslateVirtualAddress", call::TRANSLATE_VIRTUAL_ADDRESS),
        ("HvCallAssertVirtualInterrupt", call::ASSERT_VIRTUAL_INTERRUPT),
        ("HvCallClearVirtualInterrupt", call::CLEAR_VIRTUAL_INTERRUPT),
        ("HvCallCreatePort", call::CREATE_PORT),
        ("HvCallDeletePort", call::DELETE_PORT),
        ("HvCallConnectPort", call::CONNECT_PORT),
        ("HvCallGetPortProperty", call::GET_PORT_PROPERTY),
        ("HvCallDisconnectPort", call::DISCONNECT_PORT),
        ("HvCallPostMessage", call::POST_MESSAGE),
        ("HvCallSignalEvent", call::SIGNAL_EVENT),
        ("HV_X64_VP_EXECUTION_STATE_CPL_MASK", InterceptHeader::EXEC_CPL_MASK),
        ("HV_X64_VP_EXECUTION_STATE_CR0_PE", InterceptHeader::EXEC_CR0_PE),
        ("HV_X64_VP_EXECUTION_STATE_CR0_AM", InterceptHeader::EXEC_CR0_AM),
        ("HV_X64_VP_EXECUTION_STATE_EFER_LMA", InterceptHeader::EXEC_EFER_LMA),
        ("HV_X64_VP_EXECUTION_STATE_DEBUG_ACTIVE", InterceptHeader::EXEC_DEBUG_ACTIVE),
        ("HV_X64_VP_EXECUTION_STATE_INTERRUPTION_PENDING", InterceptHeader::EXEC_INTERRUPTION_PENDING),
    ];
    pairs.extend(u16s.iter().map(|(n, v)| (n.to_string(), u64::from(*v))));
    let u64s: &[(&str, u64)] = &[
        ("HV_PARTITION_ID_INVALID", PARTITION_ID_INVALID),
        ("HV_PARTITION_ID_SELF", PARTITION_ID_SELF),
        ("HV_HYPERCALL_FAST_BIT", Control::FAST),
        ("HV_HYPERCALL_REP_COUNT_SHIFT", u64::from(Control::REP_COUNT_SHIFT)),
        ("HV_HYPERCALL_REP_START_SHIFT", u64::from(Control::REP_START_SHIFT)),
        ("HV_HYPERCALL_REP_MAX", Control::REP_MASK),
        ("HV_PARTITION_PRIVILEGE_ACCESS_VP_RUNTIME_MSR", privilege::ACCESS_VP_RUNTIME_MSR),
        ("HV_PARTITION_PRIVILEGE_ACCESS_PARTITION_REFERENCE_COUNTER", privilege::ACCESS_PARTITION_REFERENCE_COUNTER),
        ("HV_PARTITION_PRIVILEGE_ACCESS_SYNIC_MSRS", privilege::ACCESS_SYNIC_MSRS),
        ("HV_PARTITION_PRIVILEGE_ACCESS_SYNTHETIC_TIMER_MSRS", privilege::ACCESS_SYNTHETIC_TIMER_MSRS),
        ("HV_PARTITION_PRIVILEGE_ACCESS_APIC_MSRS", privilege::ACCESS_APIC_MSRS),
        ("HV_PARTITION_PRIVILEGE_ACCESS_HYPERCALL_MSRS", privilege::ACCESS_HYPERCALL_MSRS),
        ("HV_PARTITION_PRIVILEGE_ACCESS_VP_INDEX", privilege::ACCESS_VP_INDEX),
        ("HV_PARTITION_PRIVILEGE_ACCESS_RESET_MSR", privilege::ACCESS_RESET_MSR),
        ("HV_PARTITION_PRIVILEGE_ACCESS_STATS_MSR", privilege::ACCESS_STATS_MSR),
        ("HV_PARTITION_PRIVILEGE_ACCESS_PARTITION_REFERENCE_TSC", privilege::ACCESS_PARTITION_REFERENCE_TSC),
        ("HV_PARTITION_PRIVILEGE_ACCESS_GUEST_IDLE_MSR", privilege::ACCESS_GUEST_IDLE_MSR),
        ("HV_PARTITION_PRIVILEGE_CREATE_PARTITIONS", privilege::CREATE_PARTITIONS),
        ("HV_PARTITION_PRIVILEGE_ACCESS_PARTITION_ID", privilege::ACCESS_PARTITION_ID),
        ("HV_PARTITION_PRIVILEGE_ACCESS_MEMORY_POOL", privilege::ACCESS_MEMORY_POOL),
        ("HV_PARTITION_PRIVILEGE_ADJUST_MESSAGE_BUFFERS", privilege::ADJUST_MESSAGE_BUFFERS),
        ("HV_PARTITION_PRIVILEGE_POST_MESSAGES", privilege::POST_MESSAGES),
        ("HV_PARTITION_PRIVILEGE_SIGNAL_EVENTS", privilege::SIGNAL_EVENTS),
        ("HV_PARTITION_PRIVILEGE_CREATE_PORT", privilege::CREATE_PORT),
        ("HV_PARTITION_PRIVILEGE_CONNECT_PORT", privilege::CONNECT_PORT),
        ("HV_PARTITION_PRIVILEGE_ACCESS_STATS", privilege::ACCESS_STATS),
        ("HV_PARTITION_PRIVILEGE_DEBUGGING", privilege::DEBUGGING),
        ("HV_PARTITION_PRIVILEGE_CPU_MANAGEMENT", privilege::CPU_MANAGEMENT),
        ("HV_PARTITION_PRIVILEGE_CONFIGURE_PROFILER", privilege::CONFIGURE_PROFILER),
        ("HV_PARTITION_PRIVILEGE_CHILD_DEFAULT", privilege::CHILD_DEFAULT),
        ("HV_SYNIC_SINT_MASKED", msr::SINT_MASKED),
        ("HV_SYNIC_SINT_AUTO_EOI", msr::SINT_AUTO_EOI),
        ("HV_ROOT_MEMORY_SIZE", proto::HV_ROOT_MEMORY_SIZE),
        ("HV_MESSAGE_MAX_PAYLOAD_BYTE_COUNT", MESSAGE_PAYLOAD_SIZE as u64),
        ("HV_MESSAGE_SIZE", HvMessage::SIZE as u64),
        ("sizeof(HV_PROXIMITY_DOMAIN_INFO)", ProximityDomainInfo::SIZE as u64),
        ("sizeof(HV_INTERCEPT_DESCRIPTOR)", InterceptDescriptor::SIZE as u64),
        ("sizeof(HV_X64_SEGMENT_REGISTER)", SegmentRegister::SIZE as u64),
        ("sizeof(HV_PORT_INFO)", PortInfo::SIZE as u64),
        ("sizeof(HV_CONNECTION_INFO)", ConnectionInfo::SIZE as u64),
        ("sizeof(HV_MESSAGE_HEADER)", MessageHeader::SIZE as u64),
        ("sizeof(HV_MESSAGE)", HvMessage::SIZE as u64),
        ("sizeof(HV_X64_INTERCEPT_MESSAGE_HEADER)", InterceptHeader::SIZE as u64),
        ("sizeof(HV_X64_MSR_INTERCEPT_MESSAGE)", MsrIntercept::SIZE as u64),
        ("sizeof(HV_X64_CPUID_INTERCEPT_MESSAGE)", CpuidIntercept::SIZE as u64),
        ("sizeof(HV_X64_EXCEPTION_INTERCEPT_MESSAGE)", ExceptionIntercept::SIZE as u64),
    ];
    pairs.extend(u64s.iter().map(|(n, v)| (n.to_string(), *v)));
    let body: String = pairs
        .iter()
        .map(|(n, _)| format!("    printf(\"%s %llu\\n\", \"{n}\", (unsigned long long)({n}));\n"))
        .collect();
    let dir = scratch("hv-abi-constants");
    let out = run_c(&cc, &dir, "constants", &body).unwrap();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), pairs.len());
    let wrong: Vec<_> = pairs
        .iter()
        .zip(&got)
        .filter(|((n, v), g)| **g != format!("{n} {v}"))
        .map(|((n, v), g)| format!("{n}: hvgdk.h {g}, crate hv {v}"))
        .collect();
    assert!(wrong.is_empty(), "hvgdk.h and crate hv disagree:\n{}", wrong.join("\n"));
}

#[test]
fn hvgdk_h_structures_have_crate_hv_bytes() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc)");
        return;
    };
    let dir = scratch("hv-abi-structs");
    let body = r#"
    HV_PROXIMITY_DOMAIN_INFO d = {.Id = 0x11223344, .Flags = {.AsUINT32 = 0x80000001u}};
    hex("ProximityDomainInfo", &d, sizeof(d));
    HV_PROXIMITY_DOMAIN_INFO bits;
    memset(&bits, 0, sizeof(bits));
    bits.Flags.ProximityPreferred = 1;
    bits.Flags.ProximityInfoValid = 1;
    hex("ProximityDomainFlagBits", &bits, sizeof(bits));
    HV_INTERCEPT_DESCRIPTOR i;
    memset(&i, 0, sizeof(i));
    i.Type = HvInterceptTypeX64Cpuid;
    i.Parameters.CpuidIndex = 0x40000001;
    hex("InterceptDescriptor", &i, sizeof(i));
    HV_PORT_INFO p;
    memset(&p, 0, sizeof(p));
    p.PortType = HvPortTypeEvent;
    p.EventPortInfo.TargetSint = 5;
    p.EventPortInfo.TargetVp = 7;
    p.EventPortInfo.BaseFlagNumber = 100;
    p.EventPortInfo.FlagCount = 3;
    hex("EventPortInfo", &p, sizeof(p));
    memset(&p, 0, sizeof(p));
    p.PortType = HvPortTypeMessage;
    p.MessagePortInfo.TargetSint = 2;
    p.MessagePortInfo.TargetVp = HV_ANY_VP;
    hex("MessagePortInfo", &p, sizeof(p));
    HV_CONNECTION_INFO c;
    memset(&c, 0, sizeof(c));
    c.PortType = HvPortTypeMonitor;
    c.MonitorConnectionInfo.MonitorAddress = 0x123456789000ull;
    hex("ConnectionInfo", &c, sizeof(c));
    HV_MESSAGE m;
    memset(&m, 0, sizeof(m));
    m.Header.MessageType = HvMessageTypeX64IoPortIntercept;
    m.Header.PayloadSize = 128;
    m.Header.MessageFlags = HV_MESSAGE_FLAG_PENDING;
    m.Header.Sender = 2;
    m.IoPortIntercept.Header.VpIndex = 1;
    m.IoPortIntercept.Header.InstructionLength = 2;
    m.IoPortIntercept.Header.InterceptAccessType = HV_INTERCEPT_ACCESS_WRITE;
    m.IoPortIntercept.Header.ExecutionState = 0x14;
    m.IoPortIntercept.Header.CsSegment.Base = 0x1000;
    m.IoPortIntercept.Header.CsSegment.Limit = 0xFFFFFFFF;
    m.IoPortIntercept.Header.CsSegment.Selector = 8;
    m.IoPortIntercept.Header.CsSegment.Attributes = 0xA09B;
    m.IoPortIntercept.Header.Rip = 0x14007;
    m.IoPortIntercept.Header.Rflags = 0x2;
    m.IoPortIntercept.PortNumber = 0xE9;
    m.IoPortIntercept.AccessInfo = 1;
    m.IoPortIntercept.Rax = 0x41;
    m.IoPortIntercept.Rdi = 0xD1;
    hex("IoPortMessage", &m, sizeof(m));
    memset(&m, 0, sizeof(m));
    m.ExceptionIntercept.ExceptionVector = 14;
    m.ExceptionIntercept.ExceptionInfo = 1;
    m.ExceptionIntercept.ErrorCode = 2;
    m.ExceptionIntercept.ExceptionParameter = 0xDEAD000;
    m.ExceptionIntercept.Rax = 0xAA;
    m.ExceptionIntercept.R15 = 0xFF;
    hex("ExceptionPayload", m.Payload, sizeof(m.Payload));
    memset(&m, 0, sizeof(m));
    m.CpuidIntercept.Rax = 1;
    m.CpuidIntercept.Rbx = 2;
    m.CpuidIntercept.DefaultResultRbx = 3;
    hex("CpuidPayload", m.Payload, sizeof(HV_X64_CPUID_INTERCEPT_MESSAGE));
    memset(&m, 0, sizeof(m));
    m.MsrIntercept.MsrNumber = 0x40000000;
    m.MsrIntercept.Rdx = 4;
    m.MsrIntercept.Rax = 5;
    hex("MsrPayload", m.Payload, sizeof(HV_X64_MSR_INTERCEPT_MESSAGE));
"#;
    let out = run_c(&cc, &dir, "structs", body).unwrap();
    let got: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once(' ')).collect();

    let segment = SegmentRegister { base: 0x1000, limit: 0xFFFF_FFFF, selector: 8, attributes: 0xA09B };
    let header = InterceptHeader {
        vp_index: 1,
        instruction_length: 2,
        intercept_access_type: intercept::ACCESS_TYPE_WRITE,
        execution_state: 0x14,
        cs: segment,
        rip: 0x14007,
        rflags: 2,
    };
    let io = IoPortIntercept { header, port_number: 0xE9, access_info: 1, rax: 0x41, rdi: 0xD1, ..Default::default() };
    let mut payload = [0u8; MESSAGE_PAYLOAD_SIZE];
    io.write(&mut payload);
    let message = HvMessage {
        header: MessageHeader {
            message_type: message_type::X64_IO_PORT_INTERCEPT,
            payload_size: 128,
            message_flags: MessageHeader::MESSAGE_PENDING,
            reserved: 0,
            origination_id: 2,
        },
        payload,
    };
    let exception = ExceptionIntercept {
        exception_vector: 14,
        exception_info: 1,
        error_code: 2,
        exception_parameter: 0xDEAD000,
        rax: 0xAA,
        r15: 0xFF,
        ..Default::default()
    };
    let cpuid = CpuidIntercept { rax: 1, rbx: 2, default_result_rbx: 3, ..Default::default() };
    let msr_message = MsrIntercept { msr_number: msr::GUEST_OS_ID, rdx: 4, rax: 5, ..Default::default() };
    let monitor = ConnectionInfo { port_type: port_type::MONITOR, padding: 0, reserved: 0x1234_5678_9000 };
    let expected: Vec<(&str, Vec<u8>)> = vec![
        ("ProximityDomainInfo", ProximityDomainInfo { id: 0x1122_3344, flags: 0x8000_0001 }.to_bytes().to_vec()),
        (
            "ProximityDomainFlagBits",
            ProximityDomainInfo { id: 0, flags: ProximityDomainInfo::PREFERRED | ProximityDomainInfo::VALID }
                .to_bytes()
                .to_vec(),
        ),
        (
            "InterceptDescriptor",
            InterceptDescriptor { intercept_type: intercept::X64_CPUID, parameter: 0x4000_0001 }.to_bytes().to_vec(),
        ),
        ("EventPortInfo", PortInfo::event(5, 7, 100, 3).to_bytes().to_vec()),
        ("MessagePortInfo", PortInfo::message(2, VP_INDEX_ANY).to_bytes().to_vec()),
        ("ConnectionInfo", monitor.to_bytes().to_vec()),
        ("IoPortMessage", message.to_bytes().to_vec()),
        ("ExceptionPayload", {
            let mut b = vec![0u8; MESSAGE_PAYLOAD_SIZE];
            exception.write(&mut b);
            b
        }),
        ("CpuidPayload", cpuid.to_bytes().to_vec()),
        ("MsrPayload", msr_message.to_bytes().to_vec()),
    ];
    for (name, bytes) in expected {
        assert_eq!(got.get(name).copied(), Some(hex(&bytes).as_str()), "{name}: hvgdk.h bytes vs crate hv");
    }
}

/// What crate hv encodes for each call of `libhv_mock dump`: the call code,
/// rep count, and input bytes (a slow call's block, a fast call's qwords).
fn expected_inputs() -> BTreeMap<&'static str, (u16, u64, Vec<u8>)> {
    let d = ProximityDomainInfo { id: 3, flags: 0x8000_0001 };
    let cat = |parts: &[&[u8]]| parts.concat();
    let pages: Vec<u8> = [0x100u64, 0x101].iter().flat_map(|p| p.to_le_bytes()).collect();
    let regs_in = VpRegistersIn { partition_id: 9, vp_index: 2, padding: 0 }.to_bytes();
    let assoc = |name, value| RegisterAssoc { name, reserved: [0; 12], value }.to_bytes();
    let mut m = BTreeMap::new();
    m.insert(
        "CreatePartition",
        (call::CREATE_PARTITION, 0, CreatePartitionIn { flags: 5, proximity_domain_info: d }.to_bytes().to_vec()),
    );
    for (name, code) in [
        ("InitializePartition", call::INITIALIZE_PARTITION),
        ("FinalizePartition", call::FINALIZE_PARTITION),
        ("DeletePartition", call::DELETE_PARTITION),
    ] {
        m.insert(name, (code, 0, PartitionIdIn { partition_id: 9 }.to_bytes().to_vec()));
    }
    m.insert(
        "GetPartitionProperty",
        (
            call::GET_PARTITION_PROPERTY,
            0,
            GetPartitionPropertyIn { partition_id: 9, property_code: property::PRIVILEGE_FLAGS, padding: 0 }
                .to_bytes()
                .to_vec(),
        ),
    );
    m.insert(
        "SetPartitionProperty",
        (
            call::SET_PARTITION_PROPERTY,
            0,
            SetPartitionPropertyIn {
                partition_id: 9,
                property_code: property::PRIVILEGE_FLAGS,
                padding: 0,
                property_value: 0xABCD,
            }
            .to_bytes()
            .to_vec(),
        ),
    );
    m.insert(
        "GetNextChildPartition",
        (
            call::GET_NEXT_CHILD_PARTITION,
            0,
            GetNextChildPartitionIn { parent_id: 9, previous_child_id: 4 }.to_bytes().to_vec(),
        ),
    );
    m.insert(
        "DepositMemory",
        (call::DEPOSIT_MEMORY, 2, cat(&[&DepositMemoryIn { partition_id: 9 }.to_bytes(), &pages])),
    );
    m.insert(
        "WithdrawMemory",
        (call::WITHDRAW_MEMORY, 2, WithdrawMemoryIn { partition_id: 9, proximity_domain_info: d }.to_bytes().to_vec()),
    );
    m.insert(
        "GetMemoryBalance",
        (
            call::GET_MEMORY_BALANCE,
            0,
            GetMemoryBalanceIn { partition_id: 9, proximity_domain_info: d }.to_bytes().to_vec(),
        ),
    );
    let map = MapGpaPagesIn { target_partition_id: 9, target_gpa_base: 0x10, map_flags: map_flags::ALL, padding: 0 };
    m.insert("MapGpaPages", (call::MAP_GPA_PAGES, 2, cat(&[&map.to_bytes(), &pages])));
    m.insert(
        "UnmapGpaPages",
        (
            call::UNMAP_GPA_PAGES,
            2,
            UnmapGpaPagesIn { target_partition_id: 9, target_gpa_base: 0x10 }.to_bytes().to_vec(),
        ),
    );
    let install = InstallInterceptIn {
        partition_id: 9,
        access_type: intercept::ACCESS_READ | intercept::ACCESS_WRITE,
        intercept_type: intercept::X64_IO_PORT,
        intercept_parameter: 0xE9,
    };
    m.insert("InstallIntercept", (call::INSTALL_INTERCEPT, 0, install.to_bytes().to_vec()));
    let create_vp = CreateVpIn { partition_id: 9, vp_index: 2, padding: 0, proximity_domain_info: d, flags: 0 };
    m.insert("CreateVp", (call::CREATE_VP, 0, create_vp.to_bytes().to_vec()));
    m.insert(
        "DeleteVp",
        (call::DELETE_VP, 0, DeleteVpIn { partition_id: 9, vp_index: 2, padding: 0 }.to_bytes().to_vec()),
    );
    let names: Vec<u8> = [reg::RIP, reg::RFLAGS].iter().flat_map(|n| n.to_le_bytes()).collect();
    m.insert("GetVpRegisters", (call::GET_VP_REGISTERS, 2, cat(&[&regs_in, &names])));
    let rip = 0x14000u128 | (0x77u128 << 64);
    m.insert(
        "SetVpRegisters",
        (call::SET_VP_REGISTERS, 2, cat(&[&regs_in, &assoc(reg::RIP, rip), &assoc(reg::RFLAGS, 2)])),
    );
    let create_port = CreatePortIn {
        port_partition_id: 9,
        port_id: 0x123,
        padding: 0,
        connection_partition_id: 10,
        port_info: PortInfo::event(3, VP_INDEX_ANY, 10, 4),
    };
    m.insert("CreatePort", (call::CREATE_PORT, 0, create_port.to_bytes().to_vec()));
    let connect = ConnectPortIn {
        connection_partition_id: 10,
        connection_id: 0x456,
        padding: 0,
        port_partition_id: 9,
        port_id: 0x123,
        padding2: 0,
        connection_info: ConnectionInfo::new(port_type::EVENT),
    };
    m.insert("ConnectPort", (call::CONNECT_PORT, 0, connect.to_bytes().to_vec()));
    let get_port = GetPortPropertyIn {
        partition_id: 9,
        port_id: 0x123,
        padding: 0,
        property_code: port_property::PREFERRED_TARGET_VP,
        padding2: 0,
    };
    m.insert("GetPortProperty", (call::GET_PORT_PROPERTY, 0, get_port.to_bytes().to_vec()));
    m.insert(
        "DeletePort",
        (call::DELETE_PORT, 0, DeletePortIn { port_partition_id: 9, port_id: 0x123, reserved: 0 }.to_bytes().to_vec()),
    );
    m.insert(
        "DisconnectPort",
        (
            call::DISCONNECT_PORT,
            0,
            DisconnectPortIn { connection_partition_id: 10, connection_id: 0x456, padding: 0 }.to_bytes().to_vec(),
        ),
    );
    let post = PostMessageIn { connection_id: 0x456, padding: 0, message_type: 0x42, payload_size: 4 };
    m.insert("PostMessage", (call::POST_MESSAGE, 0, cat(&[&post.to_bytes(), b"abcd"])));
    let signal = SignalEventIn { connection_id: 0x456, flag_number: 5, reserved: 0 };
    m.insert("SignalEvent", (call::SIGNAL_EVENT, 0, cat(&[&signal.to_bytes(), &[0; 8]])));
    m
}

fn mock(cc: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let exe = dir.join("libhv_mock");
    run(Command::new(cc)
        .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-idirafter"])
        .arg(root().join("sysroot/include"))
        .arg(root().join("userland/tests/hv/libhv_mock.c"))
        .arg(root().join("sysroot/src/hv.c"))
        .arg("-o")
        .arg(&exe))?;
    Ok(exe)
}

#[test]
fn libhv_inputs_are_crate_hv_layouts() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc)");
        return;
    };
    if !cfg!(target_arch = "x86_64") {
        skip("libhv's layouts are x86-64's");
        return;
    }
    let dir = scratch("hv-abi-inputs");
    let out = run(Command::new(mock(&cc, &dir).unwrap()).arg("dump")).unwrap();
    assert!(out.contains("dump: 0 failed"), "{out}");
    let mut expected = expected_inputs();
    for line in out.lines().filter_map(|l| l.strip_prefix("dump ")).filter(|l| !l.contains("failed")) {
        let mut words = line.split(' ');
        let (name, control, bytes) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
        let control = u64::from_str_radix(control, 16).unwrap();
        let (code, reps, input) = expected.remove(name).unwrap_or_else(|| panic!("unexpected call {name}"));
        let shape = CallShape::of(code).unwrap_or_else(|| panic!("{name}: the server knows no call {code:#x}"));
        let fast = control & Control::FAST != 0;
        assert_eq!(control & 0xFFFF, u64::from(code), "{name}: call code");
        assert_eq!((control >> Control::REP_COUNT_SHIFT) & Control::REP_MASK, reps, "{name}: rep count");
        assert!(!fast || shape.fast, "{name}: libhv uses the fast convention where the server does not allow it");
        assert_eq!(reps != 0, shape.rep, "{name}: rep class");
        assert!(input.len() <= bytes.len() / 2, "{name}: dump too short");
        assert_eq!(&bytes[..2 * input.len()], hex(&input), "{name}: libhv's input vs crate hv's layout");
    }
    assert!(expected.is_empty(), "calls not dumped: {:?}", expected.keys().collect::<Vec<_>>());
}
