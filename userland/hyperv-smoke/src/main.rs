//! hyperv-smoke: the server's end-to-end path as a root client sees it
//! (`bin/hyperv-smoke +hyperv`). It creates a child partition, deposits,
//! initializes, maps eight pages of its memory (page tables, code, stack),
//! creates VP 0, installs I/O intercepts on ports 0x80 and 0x81, connects
//! the child to an event port of its own and starts the VP. The guest does
//! `OUT 0x80` (intercepted: the root checks the message in SIM slot 0,
//! advances RIP and clears InterceptSuspend), enables the hypercall page,
//! calls HvSignalEvent (fast) through it and reports the result with `OUT
//! 0x81`; the root checks the SIEF bit and the status, then tears the
//! partition down. Exits 0 when every step did what it should; without
//! hardware virtualization it says so and exits 0 after the partition calls.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hv::abi::*;
use hv::client::Root;

mxrt::entry!(main);

const GUEST_PAGES: usize = 8;
const CODE: u64 = 0x4000;
const STACK_TOP: u64 = 0x8000;
const PML4: u64 = 0x1000;
const EVENT_PORT: u32 = 0x11;
const CONNECTION: u32 = 5;
const FLAG: u16 = 1;
const SINT: u32 = 2;

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
    let (_, pool) = pages(&root, 32)?;
    rep("deposit into the child", root.deposit_memory(child, &pool))?;
    hv("HvInitializePartition", root.initialize_partition(child))?;
    let privileges = privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS;
    hv("set privileges", root.set_partition_property(child, property::PRIVILEGE_FLAGS, privileges))?;

    // Guest memory: page tables (1 GiB identity in 2 MiB pages), code, stack.
    let (mem, gpages) = pages(&root, GUEST_PAGES)?;
    let put = |gpa: u64, bytes: &[u8]| root.write_memory(mem + gpa as usize, bytes);
    put(PML4, &0x2003u64.to_le_bytes());
    put(0x2000, &0x3003u64.to_le_bytes());
    put(0x3000, &0x83u64.to_le_bytes());
    put(CODE, GUEST_CODE);
    rep("HvMapGpaPages", root.map_gpa_pages(child, 0, map_flags::ALL, &gpages))?;
    hv("HvCreateVp", root.create_vp(child, ProximityDomainInfo::ANY, 0, 0))?;
    for port in [0x80u64, 0x81] {
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

    hv("HvFinalizePartition", root.finalize_partition(child))?;
    let mut back = [0u64; 64];
    match root.withdraw_memory(child, ProximityDomainInfo::ANY, &mut back) {
        Err(e) if e.status == HvStatus::NO_RESOURCES && e.completed == 32 => {}
        other => return Err(format!("withdraw: {other:?}")),
    }
    hv("HvDeletePartition", root.delete_partition(child))?;
    Ok(())
}

/// Waits for an I/O intercept message in SINT0's slot and empties the slot.
fn next_intercept(root: &Root) -> Result<IoPortIntercept, String> {
    let deadline = mx::deadline_after(10_000_000_000);
    loop {
        let m = root.message(0);
        if m.header.message_type != message_type::NONE {
            root.clear_message(0);
            hv("end of message", root.end_of_message(0))?;
            if m.header.message_type != message_type::X64_IO_PORT_INTERCEPT {
                return Err(format!("unexpected message {m:?}"));
            }
            return IoPortIntercept::read(&m.payload).ok_or_else(|| String::from("short intercept message"));
        }
        hv("waiting for an intercept", root.wait_synic(deadline))?;
    }
}

fn resume_past(root: &Root, child: u64, io: &IoPortIntercept) -> Result<(), String> {
    let rip = io.header.rip + u64::from(io.header.instruction_length);
    let regs = [(reg::RIP, u128::from(rip)), (reg::INTERCEPT_SUSPEND, 0)];
    rep("resume", root.set_vp_registers(child, 0, &regs))
}
