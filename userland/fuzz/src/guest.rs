//! The guest fuzzer (`fuzz.mode=guest`): guests that run random code
//! against random traps, and a manager that checks every answer.
//!
//! Each run builds a small guest (a GDT, identity page tables for the first
//! GiB, an optional IDT whose handlers report their vector with `OUT` and
//! then fault again, a stack) whose code is random bytes mixed with
//! instructions that exit: `IN`/`OUT` (also string I/O), loads and stores
//! to trapped, unbacked and RAM addresses, `RDMSR`/`WRMSR`, `CPUID`, `HLT`,
//! `PAUSE`, `INT3`, `UD2`, `VMMCALL`, `VMRUN`, `XSETBV`, control-register
//! writes (mode switches), `LIDT`, `STI`, `IRETQ`, `SYSCALL`, and the
//! occasional loop. The guest gets 0 to 4 random IO and MEM traps, each
//! synchronous or delivered through a port. A VCPU thread resumes the guest
//! up to `fuzz.steps` times, answering `IN`s, raising random vectors and
//! writing random registers; the main thread drains the port, raises
//! vectors from outside, and kills the VCPU thread when the guest outlives
//! its time (a loop without exits, or `HLT` with nothing to wake it).
//!
//! Every `vcpu_resume` result must be a packet of a documented type or a
//! status the declaration table documents for the call, every other call
//! must succeed or fail as documented, and every 100 runs (and at the end)
//! the kernel's counts must be back at the baseline. Runs are reproducible
//! from (`fuzz.seed`, run number): `fuzz.first=R fuzz.runs=1` replays run R.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use mx::hypervisor::{hypervisor_resource, Guest, Vcpu};
use mx::{Handle, Port, Resource, Signals, Status, Thread, Vmo};
use mx_abi::object::InfoKernelCounts;
use mx_abi::VmFlags;
use mx_abi::{PortPacket, TrapKind, PKT_TYPE_GUEST_IO, PKT_TYPE_GUEST_MEM, SYSCALLS};

use crate::config::Config;
use crate::rng::Rng;

const PAGE: u64 = 4096;
const PML4: u64 = 0x1000;
const IDT: u64 = 0x4000;
const IDTR: u64 = 0x5000;
const HANDLERS: u64 = 0x6000;
const STACK_TOP: u64 = 0x8000;
const CODE: u64 = 0x8000;
const CODE_SIZE: usize = 0x2000;
const THREAD_STACK: usize = 64 * 1024;
/// How long a run may take before its VCPU thread is killed.
const RUN_NS: u64 = 40_000_000;

/// What a run's VCPU thread reports.
struct Report {
    /// The VCPU's handle value once created (for `vcpu_interrupt` from the
    /// main thread, which also closes it once the thread has ended), 0 before.
    vcpu: AtomicU32,
    /// Non-zero: a failure (a [`Failure`] code) at step `fail_step` with
    /// the raw value `fail_value`.
    fail: AtomicU32,
    fail_step: AtomicU64,
    fail_value: AtomicI32,
    /// The last `vcpu_resume` status or packet type (for the tallies).
    io: AtomicU64,
    mem: AtomicU64,
    errors: [AtomicU64; 64],
    done: AtomicBool,
}

impl Report {
    fn new() -> Report {
        Report {
            vcpu: AtomicU32::new(0),
            fail: AtomicU32::new(0),
            fail_step: AtomicU64::new(0),
            fail_value: AtomicI32::new(0),
            io: AtomicU64::new(0),
            mem: AtomicU64::new(0),
            errors: [const { AtomicU64::new(0) }; 64],
            done: AtomicBool::new(false),
        }
    }
}

#[derive(Clone, Copy)]
#[repr(u32)]
enum Failure {
    None = 0,
    VcpuCreate,
    ResumeStatus,
    PacketType,
    PacketField,
    WriteIo,
    Interrupt,
    State,
}

impl Failure {
    fn describe(code: u32) -> &'static str {
        match code {
            1 => "vcpu_create failed",
            2 => "vcpu_resume returned a status its table does not document",
            3 => "vcpu_resume returned a packet of an undocumented type",
            4 => "a synchronous packet with a bad field (key, status, size or length)",
            5 => "vcpu_write_state(MX_VCPU_IO) of a valid size failed",
            6 => "vcpu_interrupt returned the wrong status",
            7 => "vcpu_read_state/write_state of valid arguments failed",
            _ => "?",
        }
    }
}

/// What the VCPU thread needs: all borrowed from the main thread, which
/// outlives it (it waits for the thread to end, killing it if need be).
struct RunArgs {
    guest: u32,
    apic: u32,
    seed: u64,
    steps: u64,
    nomem: bool,
    report: Report,
}

pub fn run(cfg: &Config) -> i32 {
    let (Some(root), Some(me)) =
        (mxrt::take_handle(mx_abi::PA_RESOURCE, 0), mxrt::take_handle(mx_abi::PA_PROC_SELF, 0))
    else {
        mxrt::println!("guest-fuzz: FAIL needs +resource");
        return 1;
    };
    let root = Resource::from_handle(root);
    let me = mx::Process::from_handle(me);
    let hyp = match hypervisor_resource(&root) {
        Ok(r) => r,
        Err(s) => {
            mxrt::println!("guest-fuzz: FAIL no hypervisor resource: {s:?}");
            return 1;
        }
    };
    let Some(vmar) = mxrt::vmar_root() else {
        mxrt::println!("guest-fuzz: FAIL no root VMAR");
        return 1;
    };
    let stack = match Vmo::create(THREAD_STACK as u64)
        .and_then(|vmo| vmar.map(0, &vmo, 0, THREAD_STACK, VmFlags::PERM_READ | VmFlags::PERM_WRITE))
    {
        Ok(base) => base,
        Err(s) => {
            mxrt::println!("guest-fuzz: FAIL stack: {s:?}");
            return 1;
        }
    };
    mxrt::println!(
        "guest-fuzz: seed={} runs={} first={} steps={}{}",
        cfg.seed,
        cfg.guest_runs,
        cfg.first_round,
        cfg.steps,
        if cfg.nomem { " (fault injection: NO_MEMORY accepted)" } else { "" }
    );
    let baseline = match counts(&root, me.handle()) {
        Ok(c) => c,
        Err(s) => {
            mxrt::println!("guest-fuzz: FAIL cannot read the kernel counts: {s:?}");
            return 1;
        }
    };
    let start = mx::time_monotonic();
    let mut tally = Tally::default();
    let first = cfg.first_round;
    let last = first.saturating_add(cfg.guest_runs);
    for run in first..last {
        if cfg.trace {
            mxrt::println!("guest-fuzz: run {run}");
        }
        if let Err(why) = one_run(cfg, &hyp, &me, stack, run, &mut tally) {
            mxrt::println!("guest-fuzz: FAIL seed={} run={run}: {why}", cfg.seed);
            replay_hint(cfg, run);
            return 1;
        }
        if (run + 1 - first).is_multiple_of(100) || run + 1 == last {
            if let Err(leak) = settle(&root, me.handle(), &baseline) {
                mxrt::println!("guest-fuzz: FAIL seed={} after run {run}: kernel counts not back: {leak}", cfg.seed);
                mxrt::println!("guest-fuzz: the runs since the last check: {}..={run}", run - (run - first) % 100);
                return 1;
            }
        }
    }
    let ms = (mx::time_monotonic() - start) / 1_000_000;
    let errors: Vec<String> = (1..64)
        .filter(|&n| tally.errors[n] > 0)
        .map(|n| format!("{:?}={}", Status::try_from(-(n as i32)).unwrap_or(Status::Internal), tally.errors[n]))
        .collect();
    mxrt::println!(
        "guest-fuzz: exits: io={} mem={} async-packets={} killed={} statuses: {}",
        tally.io,
        tally.mem,
        tally.async_packets,
        tally.killed,
        errors.join(" ")
    );
    mxrt::println!(
        "guest-fuzz: PASS {} guest runs in {}.{:03} s, seed {}, counts back to baseline",
        last - first,
        ms / 1000,
        ms % 1000,
        cfg.seed
    );
    0
}

struct Tally {
    io: u64,
    mem: u64,
    async_packets: u64,
    killed: u64,
    errors: [u64; 64],
}

impl Default for Tally {
    fn default() -> Tally {
        Tally { io: 0, mem: 0, async_packets: 0, killed: 0, errors: [0; 64] }
    }
}

fn replay_hint(cfg: &Config, run: u64) {
    mxrt::println!(
        "guest-fuzz: replay: make fuzz-guest SEED={} FIRST={run} RUNS=1 TRACE=1 (fuzz.mode=guest fuzz.seed={} fuzz.first={run} fuzz.runs=1)",
        cfg.seed,
        cfg.seed
    );
}

/// The kernel's counts, without our own memory (our heap may grow).
fn counts(root: &Resource, me: &Handle) -> Result<InfoKernelCounts, Status> {
    let mut c: InfoKernelCounts = root.handle().info_raw(mx_abi::object::INFO_KERNEL_COUNTS)?;
    let stats: mx_abi::object::InfoTaskStats = me.info(mx_abi::object::InfoTopic::TaskStats)?;
    c.committed_pages -= (stats.mem_private_bytes + stats.mem_shared_bytes) / PAGE;
    Ok(c)
}

/// Waits up to 3 s for the counts to return to `before`.
fn settle(root: &Resource, me: &Handle, before: &InfoKernelCounts) -> Result<(), String> {
    let key = |c: &InfoKernelCounts| (c.objects, c.handles, c.vmos, c.committed_pages, c.processes, c.threads);
    let deadline = mx::deadline_after(3_000_000_000);
    loop {
        let now = counts(root, me).map_err(|s| format!("cannot read the counts: {s:?}"))?;
        if key(&now) == key(before) {
            return Ok(());
        }
        if mx::time_monotonic() >= deadline {
            return Err(format!(
                "objects {} -> {}, handles {} -> {}, vmos {} -> {}, committed pages {} -> {}, threads {} -> {}",
                before.objects,
                now.objects,
                before.handles,
                now.handles,
                before.vmos,
                now.vmos,
                before.committed_pages,
                now.committed_pages,
                before.threads,
                now.threads
            ));
        }
        let _ = mx::nanosleep(mx::deadline_after(10_000_000));
    }
}

/// A trap the run sets.
struct TrapPlan {
    kind: TrapKind,
    addr: u64,
    len: u64,
    through_port: bool,
}

fn one_run(
    cfg: &Config,
    hyp: &Resource,
    me: &mx::Process,
    stack: usize,
    run: u64,
    tally: &mut Tally,
) -> Result<(), String> {
    let mut rng = Rng::new(Rng::mix(&[cfg.seed, run, 0x0067_7565_7374]));
    let ram_size = *[0x10000u64, 0x10000, 0x20000, 0x200000].get(rng.below(4) as usize).unwrap_or(&0x10000);
    let nomem = |s: Status| cfg.nomem && s == Status::NoMemory;
    let ram = match Vmo::create(ram_size) {
        Ok(vmo) => vmo,
        Err(s) if nomem(s) => return Ok(()),
        Err(s) => return Err(format!("vmo_create: {s:?}")),
    };
    let traps = plan_traps(&mut rng, ram_size);
    let image = guest_image(&mut rng, ram_size, &traps);
    for (offset, bytes) in &image {
        match ram.write_all(bytes, *offset) {
            Ok(()) => {}
            Err(s) if nomem(s) => return Ok(()),
            Err(s) => return Err(format!("vmo_write: {s:?}")),
        }
    }
    let guest = match Guest::create(hyp, &ram) {
        Ok(g) => g,
        Err(s) if nomem(s) => return Ok(()),
        Err(s) => return Err(format!("guest_create: {s:?}")),
    };
    let port = match Port::create() {
        Ok(p) => p,
        Err(s) if nomem(s) => return Ok(()),
        Err(s) => return Err(format!("port_create: {s:?}")),
    };
    for (key, t) in traps.iter().enumerate() {
        let through = if t.through_port { Some(&port) } else { None };
        match guest.set_trap(t.kind, t.addr, t.len, through, key as u64 + 1) {
            // Random traps may overlap each other.
            Ok(()) | Err(Status::AlreadyExists) => {}
            Err(s) if nomem(s) => {}
            Err(s) => return Err(format!("guest_set_trap({:?}, {:#x}, {:#x}): {s:?}", t.kind as u32, t.addr, t.len)),
        }
    }
    let apic = match Vmo::create(PAGE) {
        Ok(v) => v,
        Err(s) if nomem(s) => return Ok(()),
        Err(s) => return Err(format!("apic vmo: {s:?}")),
    };
    let args = RunArgs {
        guest: guest.raw(),
        apic: apic.raw(),
        seed: rng.next(),
        steps: cfg.steps,
        nomem: cfg.nomem,
        report: Report::new(),
    };
    let thread = match Thread::create(me, "guest-fuzz") {
        Ok(t) => t,
        Err(s) if nomem(s) => return Ok(()),
        Err(s) => return Err(format!("thread_create: {s:?}")),
    };
    let entry = vcpu_thread as extern "C" fn(usize, usize) -> ! as usize;
    match thread.start(entry, stack + THREAD_STACK - 8, &args as *const RunArgs as usize, 0) {
        Ok(()) => {}
        Err(s) if nomem(s) => return Ok(()),
        Err(s) => return Err(format!("thread_start: {s:?}")),
    }
    // Watch: drain the port, poke the VCPU from outside, and stop the run
    // when it outlives its time.
    let deadline = mx::deadline_after(RUN_NS);
    let mut killed = false;
    loop {
        if thread.handle().wait_one(Signals::THREAD_TERMINATED, 0).is_ok() {
            break;
        }
        match port.wait(mx::deadline_after(1_000_000)) {
            Ok(packet) => {
                check_async(&packet, traps.len())?;
                tally.async_packets += 1;
            }
            Err(Status::TimedOut) => {}
            Err(s) => return Err(format!("port_wait: {s:?}")),
        }
        let vcpu = args.report.vcpu.load(Ordering::Acquire);
        if vcpu != 0 && rng.chance(10) {
            let vector = rng.below(300) as u32;
            // SAFETY: no pointers; the handle may already be closed (then BAD_HANDLE).
            let status = unsafe { mx::sys::mx_vcpu_interrupt(vcpu, vector) };
            let fine = match status {
                0 => vector <= 255,
                s => s == Status::OutOfRange as i32 && vector > 255 || s == Status::BadHandle as i32,
            };
            if !fine {
                return Err(format!("vcpu_interrupt({vector}) from another thread returned {status}"));
            }
        }
        if mx::time_monotonic() >= deadline && !killed {
            // SAFETY: no pointers.
            let status = unsafe { mx::sys::mx_task_kill(thread.raw()) };
            if status != 0 && thread.handle().wait_one(Signals::THREAD_TERMINATED, 0).is_err() {
                return Err(format!("task_kill of the VCPU thread: {status}"));
            }
            killed = true;
            tally.killed += 1;
        }
    }
    while let Ok(packet) = port.wait(0) {
        check_async(&packet, traps.len())?;
        tally.async_packets += 1;
    }
    let r = &args.report;
    // The VCPU handle is the thread's, but a killed thread closes nothing:
    // the VCPU thread leaves it to us (see `drive`).
    let vcpu = r.vcpu.swap(0, Ordering::AcqRel);
    if vcpu != 0 {
        drop(Handle::from_raw(vcpu));
    }
    tally.io += r.io.load(Ordering::Relaxed);
    tally.mem += r.mem.load(Ordering::Relaxed);
    for (sum, n) in tally.errors.iter_mut().zip(r.errors.iter()) {
        *sum += n.load(Ordering::Relaxed);
    }
    let fail = r.fail.load(Ordering::Relaxed);
    if fail != Failure::None as u32 {
        return Err(format!(
            "{} at step {} (value {:#x})",
            Failure::describe(fail),
            r.fail_step.load(Ordering::Relaxed),
            r.fail_value.load(Ordering::Relaxed)
        ));
    }
    if !killed && !r.done.load(Ordering::Relaxed) {
        return Err(String::from("the VCPU thread ended without finishing its run"));
    }
    Ok(())
}

/// A packet from the port: a GUEST_IO or GUEST_MEM packet with the key of
/// one of the run's traps.
fn check_async(packet: &PortPacket, traps: usize) -> Result<(), String> {
    let kind_ok = packet.packet_type == PKT_TYPE_GUEST_IO || packet.packet_type == PKT_TYPE_GUEST_MEM;
    if !kind_ok || packet.key == 0 || packet.key > traps as u64 || packet.status != 0 {
        return Err(format!(
            "port packet type {:#x} key {} status {} (traps: {traps})",
            packet.packet_type, packet.key, packet.status
        ));
    }
    Ok(())
}

fn plan_traps(rng: &mut Rng, ram_size: u64) -> Vec<TrapPlan> {
    let mut traps = Vec::new();
    for _ in 0..rng.below(5) {
        let through_port = rng.chance(35);
        let trap = if rng.chance(50) {
            let port = match rng.below(4) {
                0 => 0x80,
                1 => 0xe9,
                2 => 0x3f8,
                _ => rng.below(0x10000),
            };
            let len = (1 + rng.below(16)).min(0x10000 - port);
            TrapPlan { kind: TrapKind::Io, addr: port, len, through_port }
        } else {
            let page = match rng.below(5) {
                // A RAM page the code stores to, the code itself (fetches
                // from a trap), the stack, beyond RAM, anywhere in the GiB.
                0 => 0xb000,
                1 => CODE,
                2 => STACK_TOP - PAGE,
                3 => ram_size,
                _ => rng.below(1 << 18) * PAGE,
            };
            TrapPlan { kind: TrapKind::Mem, addr: page, len: PAGE * (1 + rng.below(2)), through_port }
        };
        traps.push(trap);
    }
    traps
}

/// Addresses the code's loads and stores aim at.
fn data_address(rng: &mut Rng, ram_size: u64, traps: &[TrapPlan]) -> u32 {
    let mem_traps: Vec<u64> = traps.iter().filter(|t| matches!(t.kind, TrapKind::Mem)).map(|t| t.addr).collect();
    match rng.below(6) {
        0 | 5 if !mem_traps.is_empty() => (rng.pick(&mem_traps) + rng.below(PAGE)) as u32,
        1 => (ram_size + rng.below(4) * PAGE) as u32,
        2 => (0xb000 + rng.below(PAGE)) as u32,
        3 => rng.below(1 << 30) as u32,
        _ => (0x9000 + rng.below(0x1000)) as u32,
    }
}

/// The guest's memory: (offset, bytes) pieces.
fn guest_image(rng: &mut Rng, ram_size: u64, traps: &[TrapPlan]) -> Vec<(u64, Vec<u8>)> {
    let words = |w: &[u64]| -> Vec<u8> { w.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut image = Vec::new();
    // GDT: null, 64-bit code (0x08), data (0x10).
    image.push((0, words(&[0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff])));
    image.push((PML4, words(&[0x2003])));
    image.push((0x2000, words(&[0x3003])));
    let pd: Vec<u64> = (0..512u64).map(|i| (i << 21) | 0x83).collect();
    image.push((0x3000, words(&pd)));
    // IDT: every vector's gate points at its handler `out 0x80, al; ud2`
    // (after `mov al, vector`): exceptions report themselves and fault again.
    let mut idt = Vec::new();
    let mut handlers = Vec::new();
    for vector in 0..256u64 {
        let handler = HANDLERS + vector * 8;
        let low = (handler & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((handler >> 16) & 0xffff) << 48;
        idt.extend_from_slice(&low.to_le_bytes());
        idt.extend_from_slice(&(handler >> 32).to_le_bytes());
        handlers.extend_from_slice(&[0xb0, vector as u8, 0xe6, 0x80, 0x0f, 0x0b, 0x90, 0x90]);
    }
    image.push((IDT, idt));
    image.push((HANDLERS, handlers));
    let mut idtr = Vec::from(0xfffu16.to_le_bytes());
    idtr.extend_from_slice(&IDT.to_le_bytes());
    image.push((IDTR, idtr));
    image.push((CODE, code(rng, ram_size, traps)));
    image
}

fn code(rng: &mut Rng, ram_size: u64, traps: &[TrapPlan]) -> Vec<u8> {
    let mut c = Vec::with_capacity(CODE_SIZE);
    if rng.chance(60) {
        // lidt [IDTR]
        c.extend_from_slice(&[0x0f, 0x01, 0x1c, 0x25]);
        c.extend_from_slice(&(IDTR as u32).to_le_bytes());
    }
    let msrs = [0x10u32, 0x1b, 0x3a, 0xfe, 0x1a0, 0x277, 0xc000_0080, 0xc000_0100, 0xc000_0102, 0x4000_0000, 0xdead];
    let leaves = [0u32, 1, 7, 0xd, 0x4000_0000, 0x8000_0000, 0x8000_0001, 0x8000_0008];
    let ports: Vec<u64> = traps.iter().filter(|t| matches!(t.kind, TrapKind::Io)).map(|t| t.addr).collect();
    let len = 64 + rng.below(960) as usize;
    while c.len() < len {
        let imm32 = |c: &mut Vec<u8>, v: u32| c.extend_from_slice(&v.to_le_bytes());
        match rng.below(24) {
            0..=2 => {
                for _ in 0..1 + rng.below(12) {
                    c.push(rng.next() as u8);
                }
            }
            3 => {
                // mov eax/ecx/edx/ebx, imm32
                c.push(0xb8 + rng.pick(&[0u8, 1, 2, 3]));
                imm32(&mut c, rng.next() as u32);
            }
            4 | 5 => {
                let port = if !ports.is_empty() && rng.chance(70) { rng.pick(&ports) } else { rng.below(0x10000) };
                c.push(0xba); // mov edx, port
                imm32(&mut c, port as u32);
                c.extend_from_slice(match rng.below(8) {
                    0 => &[0xee],       // out dx, al
                    1 => &[0x66, 0xef], // out dx, ax
                    2 => &[0xef],       // out dx, eax
                    3 => &[0xec],       // in al, dx
                    4 => &[0xed],       // in eax, dx
                    5 => &[0xf3, 0x6e], // rep outsb
                    6 => &[0x6c],       // insb
                    _ => &[0x66, 0xed], // in ax, dx
                });
            }
            6 => c.extend_from_slice(&[if rng.chance(50) { 0xe6 } else { 0xe4 }, rng.next() as u8]),
            7 | 8 => {
                // mov [disp32], eax / mov eax, [disp32] / mov byte [disp32], imm8
                let addr = data_address(rng, ram_size, traps);
                match rng.below(3) {
                    0 => c.extend_from_slice(&[0x89, 0x04, 0x25]),
                    1 => c.extend_from_slice(&[0x8b, 0x04, 0x25]),
                    _ => c.extend_from_slice(&[0xc6, 0x04, 0x25]),
                }
                imm32(&mut c, addr);
                if c[c.len() - 7] == 0xc6 {
                    c.push(rng.next() as u8);
                }
            }
            9 => {
                c.push(0xb9); // mov ecx, msr
                imm32(&mut c, if rng.chance(80) { rng.pick(&msrs) } else { rng.next() as u32 });
                c.extend_from_slice(if rng.chance(50) { &[0x0f, 0x32] } else { &[0x0f, 0x30] });
            }
            10 => {
                c.push(0xb8); // mov eax, leaf
                imm32(&mut c, if rng.chance(80) { rng.pick(&leaves) } else { rng.next() as u32 });
                c.extend_from_slice(&[0x0f, 0xa2]);
            }
            11 => c.push(0xf4),                                     // hlt
            12 => c.extend_from_slice(&[0xf3, 0x90]),               // pause
            13 => c.push(if rng.chance(50) { 0xcc } else { 0xfb }), // int3 / sti
            14 => c.extend_from_slice(&[0x0f, 0x0b]),               // ud2
            15 => c.extend_from_slice(match rng.below(5) {
                0 => &[0x0f, 0x01, 0xd9], // vmmcall
                1 => &[0x0f, 0x01, 0xc1], // vmcall
                2 => &[0x0f, 0x01, 0xd8], // vmrun
                3 => &[0x0f, 0x01, 0xd1], // xsetbv
                _ => &[0x0f, 0x08],       // invd
            }),
            16 => {
                // mov rax, imm32 (sign-extended); mov cr0/cr3/cr4, rax
                c.extend_from_slice(&[0x48, 0xc7, 0xc0]);
                imm32(&mut c, rng.next() as u32);
                c.extend_from_slice(&[0x0f, 0x22, rng.pick(&[0xc0u8, 0xd8, 0xe0])]);
            }
            17 => c.extend_from_slice(&[0xcd, rng.next() as u8]), // int n
            18 => c.extend_from_slice(&[0x48, 0xcf]),             // iretq
            19 => c.extend_from_slice(&[0x0f, 0x05]),             // syscall
            20 if rng.chance(20) => c.extend_from_slice(&[0xeb, 0xfe]), // jmp $ (a loop)
            21 => {
                // mov esp, random (a bad stack makes exceptions double-fault)
                c.push(0xbc);
                imm32(&mut c, rng.below(ram_size + 0x4000) as u32);
            }
            22 => c.extend_from_slice(&[0x0f, 0x01, 0x1c, 0x25, 0x00, 0x50, 0x00, 0x00]),
            _ => c.push(0x90),
        }
    }
    c.truncate(CODE_SIZE);
    c
}

extern "C" fn vcpu_thread(args: usize, _: usize) -> ! {
    // SAFETY: the main thread keeps the `RunArgs` alive until this thread
    // has terminated (it waits for THREAD_TERMINATED, killing it if need be).
    let args = unsafe { &*(args as *const RunArgs) };
    drive(args);
    args.report.done.store(true, Ordering::Release);
    // SAFETY: ends this thread; nothing of it is used afterwards.
    unsafe { mx::sys::mx_thread_exit() }
}

fn fail(r: &Report, what: Failure, step: u64, value: i32) {
    r.fail_step.store(step, Ordering::Relaxed);
    r.fail_value.store(value, Ordering::Relaxed);
    r.fail.store(what as u32, Ordering::Release);
}

/// The VCPU thread: creates the VCPU (bound to it) and resumes it.
fn drive(a: &RunArgs) {
    let r = &a.report;
    let mut rng = Rng::new(a.seed);
    let guest = core::mem::ManuallyDrop::new(Guest::from_handle(Handle::from_raw(a.guest)));
    let apic = core::mem::ManuallyDrop::new(Vmo::from_handle(Handle::from_raw(a.apic)));
    let vcpu = match Vcpu::create(&guest, CODE, PML4, &apic) {
        Ok(v) => v,
        Err(Status::NoMemory) if a.nomem => return,
        Err(s) => return fail(r, Failure::VcpuCreate, 0, s as i32),
    };
    // The main thread closes the handle after this thread ends, killed or
    // not (a killed thread closes nothing); only the few instructions
    // between the create and this store could lose it.
    r.vcpu.store(vcpu.raw(), Ordering::Release);
    let vcpu = core::mem::ManuallyDrop::new(vcpu);
    match vcpu.read_state() {
        Ok(mut state) => {
            state.rsp = STACK_TOP;
            if let Err(s) = vcpu.write_state(&state) {
                return fail(r, Failure::State, 0, s as i32);
            }
        }
        Err(s) => return fail(r, Failure::State, 0, s as i32),
    }
    let Some(resume) = SYSCALLS.iter().find(|d| d.name == "vcpu_resume") else {
        return fail(r, Failure::ResumeStatus, 0, 0);
    };
    for step in 0..a.steps {
        match vcpu.resume_packet() {
            Ok(packet) => {
                if packet.key != 0 || packet.status != 0 {
                    return fail(r, Failure::PacketField, step, packet.packet_type as i32);
                }
                match packet.payload() {
                    Ok(mx_abi::Payload::GuestIo(io)) => {
                        r.io.fetch_add(1, Ordering::Relaxed);
                        if !matches!(io.access_size, 1 | 2 | 4) {
                            return fail(r, Failure::PacketField, step, i32::from(io.access_size));
                        }
                        if io.input != 0 {
                            if let Err(s) = vcpu.write_io(io.access_size, rng.next() as u32) {
                                return fail(r, Failure::WriteIo, step, s as i32);
                            }
                        }
                    }
                    Ok(mx_abi::Payload::GuestMem(mem)) => {
                        r.mem.fetch_add(1, Ordering::Relaxed);
                        if mem.inst_len == 0 || mem.inst_len > 15 {
                            return fail(r, Failure::PacketField, step, i32::from(mem.inst_len));
                        }
                    }
                    _ => return fail(r, Failure::PacketType, step, packet.packet_type as i32),
                }
            }
            Err(status) => {
                let raw = status as i32;
                if crate::check::check(resume, raw as u32 as u64, a.nomem, false).is_err() {
                    return fail(r, Failure::ResumeStatus, step, raw);
                }
                if let Some(n) = r.errors.get((-raw) as usize) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                // A shut-down guest stays dead; an unhandled exit or a
                // failed fetch repeats: the run is over.
                return;
            }
        }
        if rng.chance(15) {
            let vector = rng.below(300) as u32;
            let expect = if vector > 255 { Err(Status::OutOfRange) } else { Ok(()) };
            let got = vcpu.interrupt(vector);
            if got != expect {
                return fail(r, Failure::Interrupt, step, got.err().map_or(0, |s| s as i32));
            }
        }
        if rng.chance(10) {
            match vcpu.read_state() {
                Ok(mut state) => {
                    state.rax = rng.next();
                    state.rcx = rng.next();
                    state.flags = rng.next() as u32;
                    if let Err(s) = vcpu.write_state(&state) {
                        return fail(r, Failure::State, step, s as i32);
                    }
                }
                Err(s) => return fail(r, Failure::State, step, s as i32),
            }
        }
    }
}
