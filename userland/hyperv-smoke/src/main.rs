//! hyperv-smoke: the server's end-to-end path as a root client sees it
//! (`bin/hyperv-smoke +hyperv`). It creates a child partition, deposits,
//! initializes, maps eight pages of its memory (page tables, code, stack),
//! creates VP 0, installs I/O intercepts on ports 0x80 and 0x81, connects
//! the child to an event port of its own and starts the VP. The guest does
//! `OUT 0x80` (intercepted: the root checks the message in SIM slot 0,
//! advances RIP and clears InterceptSuspend), enables the hypercall page,
//! calls HvSignalEvent (fast) through it and reports the result with `OUT
//! 0x81`; the root checks the SIEF bit and the status, then tears the
//! partition down. Then the guest makes 100 more intercepted `OUT`s, timed
//! (message, root's register call, VP resumed). Exits 0 when every step did
//! what it should.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hv::abi::*;
use hv::client::Root;

mxrt::entry!(main);

const GUEST_PAGES: usize = 12;
const CODE: u64 = 0x4000;
const STACK_TOP: u64 = 0x8000;
const PML4: u64 = 0x1000;
const EVENT_PORT: u32 = 0x11;
const CONNECTION: u32 = 5;
const FLAG: u16 = 1;
const SINT: u32 = 2;
const POOL: usize = 40;
const CODE2: u64 = 0x4400;
const STACK2_TOP: u64 = 0x7800;
const POST_INPUT: u64 = 0x6000;
const MESSAGE_PORT: u32 = 0x12;
const MESSAGE_CONNECTION: u32 = 6;
const MESSAGE_SINT: u32 = 3;
const PROBE_LEAF: u32 = 0x1234_5678;
const PROBE_MSR: u32 = 0x0001_2345;

/// VP 1's code, at GPA 0x4400: the Hyper-V CPUID leaves, a CPUID, an MSR and
/// an exception intercept, and a slow HvPostMessage, each reported with
/// `OUT 0x83, EAX`.
const GUEST_CODE2: &[u8] = &[
    0xB8, 0x00, 0x00, 0x00, 0x40, // mov eax, 0x40000000
    0x0F, 0xA2, // cpuid
    0x89, 0xD8, // mov eax, ebx
    0xE7, 0x83, // out 0x83, eax         ("Micr")
    0xB8, 0x78, 0x56, 0x34, 0x12, // mov eax, PROBE_LEAF
    0x0F, 0xA2, // cpuid                 (intercepted: the root answers EBX)
    0x89, 0xD8, // mov eax, ebx
    0xE7, 0x83, // out 0x83, eax
    0xB9, 0x45, 0x23, 0x01, 0x00, // mov ecx, PROBE_MSR
    0x0F, 0x32, // rdmsr                 (intercepted: the root answers EAX)
    0xE7, 0x83, // out 0x83, eax
    0x0F, 0x0B, // ud2                   (intercepted: the root skips it)
    0xB8, 0x0D, 0xD0, 0x00, 0x00, // mov eax, 0xD00D
    0xE7, 0x83, // out 0x83, eax
    0xB9, 0x5C, 0x00, 0x00, 0x00, // mov ecx, HvPostMessage
    0xBA, 0x00, 0x60, 0x00, 0x00, // mov edx, POST_INPUT
    0x45, 0x31, 0xC0, // xor r8d, r8d
    0xB8, 0x00, 0x50, 0x00, 0x00, // mov eax, 0x5000
    0xFF, 0xD0, // call rax
    0xE7, 0x83, // out 0x83, eax         (the status)
    0xF4, // hlt
    0xEB, 0xFD, // jmp hlt
];

const CODE3: u64 = 0x4800;
const HANDLER: u64 = 0x4C00;
const IDTR: u64 = 0x4F00;
const GDT: u64 = 0x4E00;
const GDTR: u64 = 0x4EF0;
const STACK3_TOP: u64 = 0x7400;
const CHILD_SIM: u64 = 0x9000;
const CHILD_SIEF: u64 = 0xA000;
const IDT: u64 = 0xB000;
const CHILD_VECTOR: u8 = 0x50;
const CHILD_SINT: u32 = 3;

/// VP 2's code, at GPA 0x4800: enables its SynIC (SIM page 9, SIEF page 10,
/// SINT3 = vector 0x50), loads a GDT (code 0x08, data 0x10) and an IDT, reports ready with `OUT 0x84` (AL =
/// 1) and waits in HLT with interrupts on.
const GUEST_CODE3: &[u8] = &[
    0xB9, 0x83, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_SIMP
    0xB8, 0x01, 0x90, 0x00, 0x00, // mov eax, 0x9001
    0x31, 0xD2, // xor edx, edx
    0x0F, 0x30, // wrmsr
    0xB9, 0x82, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_SIEFP
    0xB8, 0x01, 0xA0, 0x00, 0x00, // mov eax, 0xA001
    0x0F, 0x30, // wrmsr
    0xB9, 0x93, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_SINT3
    0xB8, 0x50, 0x00, 0x00, 0x00, // mov eax, 0x50 (unmasked)
    0x0F, 0x30, // wrmsr
    0xB9, 0x80, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_SCONTROL
    0xB8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
    0x0F, 0x30, // wrmsr
    0x0F, 0x01, 0x14, 0x25, 0xF0, 0x4E, 0x00, 0x00, // lgdt [0x4ef0]
    0x6A, 0x08, // push 0x08
    0x48, 0x8D, 0x05, 0x03, 0x00, 0x00, 0x00, // lea rax, [rip + 3]
    0x50, // push rax
    0x48, 0xCB, // retfq                 (CS = 0x08 of our GDT)
    0xB8, 0x10, 0x00, 0x00, 0x00, // mov eax, 0x10
    0x8E, 0xD0, // mov ss, eax
    0x8E, 0xD8, // mov ds, eax
    0x8E, 0xC0, // mov es, eax
    0x0F, 0x01, 0x1C, 0x25, 0x00, 0x4F, 0x00, 0x00, // lidt [0x4f00]
    0xB0, 0x01, // mov al, 1
    0xE6, 0x84, // out 0x84, al          (ready)
    0xFB, // sti
    0xF4, // hlt
    0xEB, 0xFD, // jmp hlt
];

/// The SINT3 handler: `OUT 0x84` with AL = 2, EOM, IRETQ.
const GUEST_HANDLER: &[u8] = &[
    0xB0, 0x02, // mov al, 2
    0xE6, 0x84, // out 0x84, al          (interrupt taken)
    0xB9, 0x84, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_EOM
    0x31, 0xC0, // xor eax, eax
    0x31, 0xD2, // xor edx, edx
    0x0F, 0x30, // wrmsr
    0x48, 0xCF, // iretq
];

/// Intercepts of port 0x82 the guest makes in a loop, to time a round trip.
const ROUND_TRIPS: u32 = 100;

/// The guest, at GPA 0x4000 (64-bit).
const GUEST_CODE: &[u8] = &[
    0xB0, 0x42, // mov al, 0x42
    0xE6, 0x80, // out 0x80, al            (intercepted)
    0xB9, 0x00, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_GUEST_OS_ID
    0xB8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
    0x31, 0xD2, // xor edx, edx
    0x0F, 0x30, // wrmsr
    0xB9, 0x01, 0x00, 0x00, 0x40, // mov ecx, HV_X64_MSR_HYPERCALL
    0xB8, 0x01, 0x50, 0x00, 0x00, // mov eax, 0x5001 (page 5, enable)
    0x0F, 0x30, // wrmsr
    0xB9, 0x5D, 0x00, 0x01, 0x00, // mov ecx, HvSignalEvent | fast
    0x48, 0xBA, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // mov rdx, flag 1 << 32 | connection 5
    0x45, 0x31, 0xC0, // xor r8d, r8d
    0xB8, 0x00, 0x50, 0x00, 0x00, // mov eax, 0x5000
    0xFF, 0xD0, // call rax                (the hypercall page)
    0x66, 0xBA, 0x81, 0x00, // mov dx, 0x81
    0xEF, // out dx, eax             (intercepted: the status)
    0xB9, 0x64, 0x00, 0x00, 0x00, // mov ecx, ROUND_TRIPS
    0xE6, 0x82, // loop: out 0x82, al    (intercepted: timed)
    0xFF, 0xC9, // dec ecx
    0x75, 0xFA, // jnz loop
    0xF4, // hlt
    0xEB, 0xFD, // jmp hlt
];

fn main() -> i32 {
    match run() {
        Ok(()) => {
            mxrt::println!("hyperv-smoke: ok");
            0
        }
        Err(e) => {
            mxrt::println!("hyperv-smoke: FAILED: {e}");
            1
        }
    }
}

fn hv<T>(what: &str, r: Result<T, HvStatus>) -> Result<T, String> {
    r.map_err(|s| format!("{what}: {s:?}"))
}

fn rep(what: &str, r: Result<(), hv::client::RepError>) -> Result<(), String> {
    r.map_err(|e| format!("{what}: {:?} after {}", e.status, e.completed))
}

fn pages(root: &Root, n: usize) -> Result<(usize, Vec<u64>), String> {
    let addr = root.alloc_pages(n).ok_or("out of root memory")?;
    Ok((addr, (0..n as u64).map(|i| Root::page_number(addr) + i).collect()))
}

fn run() -> Result<(), String> {
    let root = Root::connect().map_err(|e| format!("connect: {e:?}"))?;
    let me = root.partition_id();
    mxrt::println!("hyperv-smoke: root partition {me}");
    let (_, own) = pages(&root, 4)?;
    rep("deposit into the root", root.deposit_memory(me, &own))?;
    let child = hv("HvCreatePartition", root.create_partition(0, ProximityDomainInfo::ANY))?;
    let (_, pool) = pages(&root, POOL)?;
    rep("deposit into the child", root.deposit_memory(child, &pool))?;
    hv("HvInitializePartition", root.initialize_partition(child))?;
    let privileges = privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS | privilege::POST_MESSAGES;
    hv("set privileges", root.set_partition_property(child, property::PRIVILEGE_FLAGS, privileges))?;

    // Guest memory: page tables (1 GiB identity in 2 MiB pages), code, stack.
    let (mem, gpages) = pages(&root, GUEST_PAGES)?;
    let put = |gpa: u64, bytes: &[u8]| root.write_memory(mem + gpa as usize, bytes);
    put(PML4, &0x2003u64.to_le_bytes());
    put(0x2000, &0x3003u64.to_le_bytes());
    put(0x3000, &0x83u64.to_le_bytes());
    put(CODE, GUEST_CODE);
    put(CODE2, GUEST_CODE2);
    put(CODE3, GUEST_CODE3);
    put(HANDLER, GUEST_HANDLER);
    let mut idtr = [0u8; 10];
    idtr[..2].copy_from_slice(&(256u16 * 16 - 1).to_le_bytes());
    idtr[2..].copy_from_slice(&IDT.to_le_bytes());
    put(IDTR, &idtr);
    let gdt: Vec<u8> =
        [0u64, 0x00AF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF].iter().flat_map(|d| d.to_le_bytes()).collect();
    put(GDT, &gdt);
    let mut gdtr = [0u8; 10];
    gdtr[..2].copy_from_slice(&23u16.to_le_bytes());
    gdtr[2..].copy_from_slice(&GDT.to_le_bytes());
    put(GDTR, &gdtr);
    let post = PostMessageIn { connection_id: MESSAGE_CONNECTION, padding: 0, message_type: 0x77, payload_size: 4 };
    put(POST_INPUT, &post.to_bytes());
    put(POST_INPUT + 16, b"hvpm");
    rep("HvMapGpaPages", root.map_gpa_pages(child, 0, map_flags::ALL, &gpages))?;
    hv("HvCreateVp", root.create_vp(child, ProximityDomainInfo::ANY, 0, 0))?;
    for port in [0x80u64, 0x81, 0x82] {
        let d = InterceptDescriptor { intercept_type: intercept::X64_IO_PORT, parameter: port };
        hv("HvInstallIntercept", root.install_intercept(child, intercept::ACCESS_WRITE, d))?;
    }
    let info = PortInfo::event(SINT, 0, 0, 16);
    hv("HvCreatePort", root.create_port(me, EVENT_PORT, child, &info))?;
    let conn = ConnectionInfo::new(port_type::EVENT);
    hv("HvConnectPort", root.connect_port(child, CONNECTION, me, EVENT_PORT, &conn))?;

    let start = [(reg::RIP, u128::from(CODE)), (reg::RSP, u128::from(STACK_TOP)), (reg::CR3, u128::from(PML4))];
    rep("HvSetVpRegisters", root.set_vp_registers(child, 0, &start))?;
    hv("start the VP", root.set_vp_register(child, 0, reg::EXPLICIT_SUSPEND, 0))?;

    // OUT 0x80: the intercept message in SIM slot 0.
    let io = next_intercept(&root)?;
    if io.port_number != 0x80 || io.rax & 0xff != 0x42 || io.header.rip != CODE + 2 || io.header.instruction_length != 2
    {
        return Err(format!("unexpected first intercept {io:?}"));
    }
    mxrt::println!("hyperv-smoke: intercepted OUT 0x80 of {:#x} at {:#x}", io.rax & 0xff, io.header.rip);
    resume_past(&root, child, &io)?;

    // The hypercall, then OUT 0x81 with its status.
    let io = next_intercept(&root)?;
    if io.port_number != 0x81 {
        return Err(format!("unexpected second intercept {io:?}"));
    }
    let status = HvStatus(io.rax as u16);
    if !status.is_success() {
        return Err(format!("the guest's HvSignalEvent returned {status:?}"));
    }
    if !root.test_and_clear_event_flag(SINT, u32::from(FLAG)) {
        return Err(String::from("the guest's HvSignalEvent did not set the SIEF flag"));
    }
    mxrt::println!("hyperv-smoke: guest HvSignalEvent -> {status:?}, flag {FLAG} of SINT {SINT} set");
    resume_past(&root, child, &io)?;

    // Round trips: guest OUT -> message -> root resumes the VP.
    let start = mx::time_monotonic();
    for i in 0..ROUND_TRIPS {
        let io = next_intercept(&root)?;
        if io.port_number != 0x82 {
            return Err(format!("round trip {i}: unexpected intercept {io:?}"));
        }
        resume_past(&root, child, &io)?;
    }
    let ns = (mx::time_monotonic() - start) / u64::from(ROUND_TRIPS);
    mxrt::println!("hyperv-smoke: {ROUND_TRIPS} intercept round trips, {} us each", ns / 1000);

    second_vp(&root, child)?;
    third_vp(&root, child, mem)?;

    hv("HvFinalizePartition", root.finalize_partition(child))?;
    let mut back = [0u64; 64];
    match root.withdraw_memory(child, ProximityDomainInfo::ANY, &mut back) {
        Err(e) if e.status == HvStatus::NO_RESOURCES && e.completed as usize == POOL => {}
        other => return Err(format!("withdraw: {other:?}")),
    }
    hv("HvDeletePartition", root.delete_partition(child))?;
    Ok(())
}

/// Waits for a message in `sint`'s slot and empties the slot.
fn next_message(root: &Root, sint: u32) -> Result<HvMessage, String> {
    let deadline = mx::deadline_after(10_000_000_000);
    loop {
        let m = root.message(sint);
        if m.header.message_type != message_type::NONE {
            root.clear_message(sint);
            hv("end of message", root.end_of_message(sint))?;
            return Ok(m);
        }
        hv("waiting for a message", root.wait_synic(deadline))?;
    }
}

/// Waits for an I/O intercept message in SINT0's slot.
fn next_intercept(root: &Root) -> Result<IoPortIntercept, String> {
    let m = next_message(root, 0)?;
    if m.header.message_type != message_type::X64_IO_PORT_INTERCEPT {
        return Err(format!("unexpected message {m:?}"));
    }
    IoPortIntercept::read(&m.payload).ok_or_else(|| String::from("short intercept message"))
}

/// The value VP 1 reports next with `OUT 0x83, EAX`.
fn report(root: &Root, child: u64) -> Result<u32, String> {
    let io = next_intercept(root)?;
    if io.port_number != 0x83 || io.header.vp_index != 1 {
        return Err(format!("expected VP 1's report, got {io:?}"));
    }
    resume_past_vp(root, child, 1, &io.header)?;
    Ok(io.rax as u32)
}

fn resume_past_vp(root: &Root, child: u64, vp: u32, h: &InterceptHeader) -> Result<(), String> {
    let rip = h.rip + u64::from(h.instruction_length);
    rep("resume", root.set_vp_registers(child, vp, &[(reg::RIP, u128::from(rip)), (reg::INTERCEPT_SUSPEND, 0)]))
}

/// VP 1: Hyper-V CPUID leaves, CPUID/MSR/exception intercepts, a guest HvPostMessage.
fn second_vp(root: &Root, child: u64) -> Result<(), String> {
    let me = root.partition_id();
    let install = |ty: u32, access: u32, parameter: u64| {
        let d = InterceptDescriptor { intercept_type: ty, parameter };
        hv("HvInstallIntercept", root.install_intercept(child, access, d))
    };
    install(intercept::X64_IO_PORT, intercept::ACCESS_WRITE, 0x83)?;
    install(intercept::X64_CPUID, intercept::ACCESS_EXECUTE, u64::from(PROBE_LEAF))?;
    install(intercept::X64_MSR, intercept::ACCESS_READ | intercept::ACCESS_WRITE, 0)?;
    install(intercept::X64_EXCEPTION, intercept::ACCESS_EXECUTE, 6)?;
    let info = PortInfo::message(MESSAGE_SINT, 0);
    hv("HvCreatePort (message)", root.create_port(me, MESSAGE_PORT, child, &info))?;
    let conn = ConnectionInfo::new(port_type::MESSAGE);
    hv("HvConnectPort (message)", root.connect_port(child, MESSAGE_CONNECTION, me, MESSAGE_PORT, &conn))?;
    hv("HvCreateVp 1", root.create_vp(child, ProximityDomainInfo::ANY, 1, 0))?;
    let start = [(reg::RIP, u128::from(CODE2)), (reg::RSP, u128::from(STACK2_TOP)), (reg::CR3, u128::from(PML4))];
    rep("HvSetVpRegisters 1", root.set_vp_registers(child, 1, &start))?;
    hv("start VP 1", root.set_vp_register(child, 1, reg::EXPLICIT_SUSPEND, 0))?;

    let vendor = report(root, child)?;
    if vendor != cpuid::VENDOR_EBX {
        return Err(format!("CPUID 0x40000000 EBX {vendor:#x}"));
    }
    let m = next_message(root, 0)?;
    let c = CpuidIntercept::read(&m.payload).filter(|_| m.header.message_type == message_type::X64_CPUID_INTERCEPT);
    let c = c.ok_or_else(|| format!("expected a CPUID intercept, got {m:?}"))?;
    if c.rax != u64::from(PROBE_LEAF) || c.header.instruction_length != 2 {
        return Err(format!("CPUID intercept {c:?}"));
    }
    rep("answer CPUID", root.set_vp_registers(child, 1, &[(reg::RBX, 0xB0B)]))?;
    resume_past_vp(root, child, 1, &c.header)?;
    if report(root, child)? != 0xB0B {
        return Err(String::from("the CPUID answer did not reach the guest"));
    }
    let m = next_message(root, 0)?;
    let r = MsrIntercept::read(&m.payload).filter(|_| m.header.message_type == message_type::X64_MSR_INTERCEPT);
    let r = r.ok_or_else(|| format!("expected an MSR intercept, got {m:?}"))?;
    if r.msr_number != PROBE_MSR || r.header.intercept_access_type != intercept::ACCESS_TYPE_READ {
        return Err(format!("MSR intercept {r:?}"));
    }
    rep("answer RDMSR", root.set_vp_registers(child, 1, &[(reg::RAX, 0x5A5A), (reg::RDX, 0)]))?;
    resume_past_vp(root, child, 1, &r.header)?;
    if report(root, child)? != 0x5A5A {
        return Err(String::from("the RDMSR answer did not reach the guest"));
    }
    let m = next_message(root, 0)?;
    let x = ExceptionIntercept::read(&m.payload)
        .filter(|_| m.header.message_type == message_type::X64_EXCEPTION_INTERCEPT)
        .ok_or_else(|| format!("expected an exception intercept, got {m:?}"))?;
    if x.exception_vector != 6 {
        return Err(format!("exception intercept {x:?}"));
    }
    let skip = InterceptHeader { instruction_length: 2, ..x.header };
    resume_past_vp(root, child, 1, &skip)?;
    if report(root, child)? != 0xD00D {
        return Err(String::from("the guest did not continue after the #UD"));
    }
    let status = HvStatus(report(root, child)? as u16);
    if !status.is_success() {
        return Err(format!("the guest's HvPostMessage returned {status:?}"));
    }
    let m = next_message(root, MESSAGE_SINT)?;
    if m.header.message_type != 0x77 || &m.payload[..4] != b"hvpm" || m.header.origination_id != u64::from(MESSAGE_PORT)
    {
        return Err(format!("posted message {m:?}"));
    }
    mxrt::println!("hyperv-smoke: VP 1: Hyper-V CPUID, CPUID/MSR/#UD intercepts and HvPostMessage ok");
    Ok(())
}

/// Waits for VP 2's `OUT 0x84` with AL = `what` and resumes it.
fn vp2_out(root: &Root, child: u64, what: u64) -> Result<(), String> {
    let io = next_intercept(root)?;
    if io.port_number != 0x84 || io.header.vp_index != 2 || io.rax & 0xff != what {
        return Err(format!("expected VP 2's OUT 0x84 of {what}, got {io:?}"));
    }
    resume_past_vp(root, child, 2, &io.header)
}

/// VP 2: the root signals an event and posts a message to the child; both
/// land in the child's SIEF/SIM pages and raise SINT3's vector in the guest.
fn third_vp(root: &Root, child: u64, base: usize) -> Result<(), String> {
    let me = root.partition_id();
    let (_, more) = pages(root, 4)?;
    rep("deposit into the root", root.deposit_memory(me, &more))?;
    let d = InterceptDescriptor { intercept_type: intercept::X64_IO_PORT, parameter: 0x84 };
    hv("HvInstallIntercept 0x84", root.install_intercept(child, intercept::ACCESS_WRITE, d))?;
    hv("HvCreateVp 2", root.create_vp(child, ProximityDomainInfo::ANY, 2, 0))?;
    let event = PortInfo::event(CHILD_SINT, 2, 0, 8);
    hv("HvCreatePort (child event)", root.create_port(child, 0x21, me, &event))?;
    hv("HvConnectPort (root)", root.connect_port(me, 0x31, child, 0x21, &ConnectionInfo::new(port_type::EVENT)))?;
    let message = PortInfo::message(CHILD_SINT, 2);
    hv("HvCreatePort (child message)", root.create_port(child, 0x22, me, &message))?;
    let info = ConnectionInfo::new(port_type::MESSAGE);
    hv("HvConnectPort (root)", root.connect_port(me, 0x32, child, 0x22, &info))?;
    // Not ready yet: the child's SynIC is off.
    if root.signal_event(0x31, 0) != Err(HvStatus::INVALID_SYNIC_STATE) {
        return Err(String::from("signalling a child whose SynIC is off did not fail"));
    }

    // The IDT entry for the SINT vector: a 64-bit interrupt gate to HANDLER.
    let selector = 0x08u16;
    let mut gate = [0u8; 16];
    gate[..2].copy_from_slice(&(HANDLER as u16).to_le_bytes());
    gate[2..4].copy_from_slice(&selector.to_le_bytes());
    gate[5] = 0x8E;
    root.write_memory(base + (IDT + u64::from(CHILD_VECTOR) * 16) as usize, &gate);
    let start = [(reg::RIP, u128::from(CODE3)), (reg::RSP, u128::from(STACK3_TOP)), (reg::CR3, u128::from(PML4))];
    rep("HvSetVpRegisters 2", root.set_vp_registers(child, 2, &start))?;
    hv("start VP 2", root.set_vp_register(child, 2, reg::EXPLICIT_SUSPEND, 0))?;
    vp2_out(root, child, 1)?;

    hv("HvSignalEvent to the child", root.signal_event(0x31, 2))?;
    vp2_out(root, child, 2)?;
    let mut flags = [0u8; 1];
    root.read_memory(base + (CHILD_SIEF + u64::from(CHILD_SINT) * 256) as usize, &mut flags);
    if flags[0] != 1 << 2 {
        return Err(format!("the child's SIEF byte is {:#x}", flags[0]));
    }
    hv("HvPostMessage to the child", root.post_message(0x32, 0x99, 4, b"root"))?;
    vp2_out(root, child, 2)?;
    let mut slot = [0u8; 256];
    root.read_memory(base + (CHILD_SIM + u64::from(CHILD_SINT) * 256) as usize, &mut slot);
    let m = HvMessage::read(&slot).unwrap_or_default();
    if m.header.message_type != 0x99 || &m.payload[..4] != b"root" {
        return Err(format!("the child's SIM slot holds {m:?}"));
    }
    mxrt::println!("hyperv-smoke: VP 2: root HvSignalEvent and HvPostMessage reached the child's SynIC and SINT3");
    Ok(())
}

fn resume_past(root: &Root, child: u64, io: &IoPortIntercept) -> Result<(), String> {
    resume_past_vp(root, child, 0, &io.header)
}
