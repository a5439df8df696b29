//! The guest fuzzer (`fuzz.mode=guest`): guests that run random code
//! against random traps, and a manager that checks every answer.
//!
//! Each run builds a small guest (a GDT, identity page tables for the first
//! GiB, an optional IDT whose handlers report their vector with `OUT` and
//! then fault again or return, a stack) whose code is random bytes mixed
//! with instructions that exit: `IN`/`OUT` (also string I/O), loads and
//! stores to trapped, mapped, unbacked and RAM addresses, `RDMSR`/`WRMSR`,
//! `CPUID`, `HLT`, `PAUSE`, `INT3`, `UD2`, `VMMCALL`, `VMRUN`, `XSETBV`,
//! control-register writes (mode switches), `LIDT`, `STI`, `IRETQ`,
//! `SYSCALL`, and the occasional loop. A third of the runs are clean: only
//! instructions that exit, each in a 16-byte slot the exception handlers
//! skip to, looping, so that they keep exiting.
//!
//! The guest gets up to 6 random traps of every kind (IO and MEM, each
//! synchronous or through a port; MSR ranges, CPUID ranges, EXCEPTION
//! vectors including the untrappable 2 and 18, VMCALL; also bad ranges, a
//! port for the synchronous-only kinds and unknown kinds), each call's
//! status checked exactly against a model of the guest's traps
//! ([`crate::guestmodel`]). A VCPU thread resumes the guest up to
//! `fuzz.steps` times: it answers `IN`s, checks GUEST_MSR, GUEST_CPUID,
//! GUEST_EXCEPTION and GUEST_VMCALL packets (only for a trap set, fields as
//! documented, the CPUID result already in the registers) and sometimes
//! answers them (RDMSR values, #GP with RIP moved back, exceptions
//! re-raised, RIP moved on), raises random vectors, writes random
//! registers, and reads and writes `MX_VCPU_SYSTEM` with valid and invalid
//! RFLAGS and CR3 (exact status; exactly RIP, RFLAGS and CR3 change, or
//! nothing). The main thread drains the port, calls `mx_guest_map` and
//! `mx_guest_unmap` on random ranges while the guest runs (exact statuses
//! from a model of the mappings), raises vectors from outside, and kills
//! the VCPU thread when the guest outlives its time (a loop without exits,
//! or `HLT` with nothing to wake it).
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
use mx_abi::{
    PortPacket, VcpuSystem, GUEST_PHYS_SIZE, PKT_TYPE_GUEST_CPUID, PKT_TYPE_GUEST_EXCEPTION, PKT_TYPE_GUEST_IO,
    PKT_TYPE_GUEST_MEM, PKT_TYPE_GUEST_MSR, PKT_TYPE_GUEST_VMCALL, SYSCALLS, VCPU_RFLAGS_FIXED, VCPU_RFLAGS_RESERVED,
};

use crate::config::Config;
use crate::guestmodel::{
    expect_trap, has_error_code, trapped, Mappings, SetTrap, CPUID, EXCEPTION, IO, MEM, MSR, VMCALL,
};
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
    /// The thread got past `vcpu_create` (stored the handle, or gave up):
    /// only then may the main thread kill it, or a kill landing on the
    /// create's way out would leave a VCPU handle nobody knows about.
    past_create: AtomicBool,
    /// Non-zero: a failure (a [`Failure`] code) at step `fail_step` with
    /// the raw value `fail_value`.
    fail: AtomicU32,
    fail_step: AtomicU64,
    fail_value: AtomicI32,
    /// The last `vcpu_resume` status or packet type (for the tallies).
    io: AtomicU64,
    mem: AtomicU64,
    /// GUEST_MSR, GUEST_CPUID, GUEST_EXCEPTION and GUEST_VMCALL packets.
    packets: [AtomicU64; 4],
    /// `MX_VCPU_SYSTEM` writes accepted and refused.
    system_writes: AtomicU64,
    system_refused: AtomicU64,
    errors: [AtomicU64; 64],
    done: AtomicBool,
}

impl Report {
    fn new() -> Report {
        Report {
            vcpu: AtomicU32::new(0),
            past_create: AtomicBool::new(false),
            fail: AtomicU32::new(0),
            fail_step: AtomicU64::new(0),
            fail_value: AtomicI32::new(0),
            io: AtomicU64::new(0),
            mem: AtomicU64::new(0),
            packets: [const { AtomicU64::new(0) }; 4],
            system_writes: AtomicU64::new(0),
            system_refused: AtomicU64::new(0),
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
    System,
    Answer,
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
            8 => "MX_VCPU_SYSTEM: a wrong status, field or effect",
            9 => "answering a packet (registers, RIP, vcpu_interrupt) failed",
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
    /// A clean run (only instructions that exit; see [`code`]).
    clean: bool,
    /// The traps set (read-only once the thread runs).
    traps: Vec<SetTrap>,
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
        } else if run % 1000 == 0 {
            // Where a run that takes the whole machine down (QEMU itself
            // aborted in some) is to be found: replay from here traced.
            mxrt::println!("guest-fuzz: at run {run}");
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
    // Not checked (the count check above is): kernel frames not counted as
    // committed pages (page tables, stacks, SVM pages) that did not come back.
    if let Ok(now) = counts(&root, me.handle()) {
        mxrt::println!("guest-fuzz: free frames {} -> {}", baseline.free_frames, now.free_frames);
    }
    let errors: Vec<String> = (1..64)
        .filter(|&n| tally.errors.0[n] > 0)
        .map(|n| format!("{:?}={}", Status::try_from(-(n as i32)).unwrap_or(Status::Internal), tally.errors.0[n]))
        .collect();
    mxrt::println!(
        "guest-fuzz: exits: io={} mem={} msr={} cpuid={} exception={} vmcall={} async-packets={} killed={} statuses: {}",
        tally.io,
        tally.mem,
        tally.packets[0],
        tally.packets[1],
        tally.packets[2],
        tally.packets[3],
        tally.async_packets,
        tally.killed,
        errors.join(" ")
    );
    mxrt::println!(
        "guest-fuzz: calls: traps refused={} guest_map={} guest_unmap={} (refused {}) MX_VCPU_SYSTEM writes={} (refused {})",
        tally.traps_refused,
        tally.maps,
        tally.unmaps,
        tally.maps_refused,
        tally.system_writes,
        tally.system_refused
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

#[derive(Default)]
struct Tally {
    io: u64,
    mem: u64,
    /// GUEST_MSR, GUEST_CPUID, GUEST_EXCEPTION, GUEST_VMCALL.
    packets: [u64; 4],
    async_packets: u64,
    killed: u64,
    traps_refused: u64,
    maps: u64,
    unmaps: u64,
    maps_refused: u64,
    system_writes: u64,
    system_refused: u64,
    errors: Errors,
}

struct Errors([u64; 64]);

impl Default for Errors {
    fn default() -> Errors {
        Errors([0; 64])
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
    mx::counts::read(root.handle(), &[me])
}

/// Waits up to 3 s for the counts to return to `before`.
fn settle(root: &Resource, me: &Handle, before: &InfoKernelCounts) -> Result<(), String> {
    mx::counts::settle(root.handle(), &[me], before, 3_000_000_000)
}

/// A trap the run tries to set: any kind (also invalid ones), any range.
struct TrapPlan {
    kind: u32,
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
    // Where most `mx_guest_map`/`mx_guest_unmap` calls and some of the
    // code's loads and stores aim: around RAM's end, over the code, over
    // a RAM page, or anywhere in the identity-mapped GiB.
    let window = match rng.below(5) {
        0 => ram_size - 4 * PAGE,
        1 => CODE,
        2 => 0xb000,
        3 => ram_size,
        _ => rng.below(1 << 18) * PAGE,
    };
    // A third of the runs are clean: only instructions that exit.
    let clean = rng.chance(33);
    let image = guest_image(&mut rng, ram_size, &traps, window, clean);
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
    let mut set: Vec<SetTrap> = Vec::new();
    for (key, t) in traps.iter().enumerate() {
        let key = key as u64 + 1;
        let expect = expect_trap(&set, t.kind, t.addr, t.len, t.through_port);
        let through = if t.through_port { port.raw() } else { mx_abi::HANDLE_INVALID };
        // SAFETY: no pointers.
        let raw =
            unsafe { mx::sys::mx_guest_set_trap(guest.raw(), t.kind, t.addr as usize, t.len as usize, through, key) };
        let got = mx::ok(raw).map(drop);
        match got {
            Err(s) if nomem(s) => continue,
            _ if got != expect => {
                return Err(format!(
                    "guest_set_trap(kind {}, {:#x}, {:#x}, port: {}) returned {got:?}, expected {expect:?}",
                    t.kind, t.addr, t.len, t.through_port
                ))
            }
            Ok(()) => set.push(SetTrap { kind: t.kind, addr: t.addr, len: t.len, through_port: t.through_port, key }),
            Err(_) => {}
        }
        tally.traps_refused += u64::from(got.is_err());
    }
    // What `mx_guest_map` shows: code (the window may cover the code) and
    // random bytes, shared with the main thread's writes.
    let extra_size = PAGE * (1 + rng.below(16));
    let extra = match Vmo::create(extra_size) {
        Ok(v) => v,
        Err(s) if nomem(s) => return Ok(()),
        Err(s) => return Err(format!("vmo_create (mapped VMO): {s:?}")),
    };
    let mut bytes = code(&mut rng, ram_size, &traps, window, clean);
    bytes.truncate(extra_size as usize);
    match extra.write_all(&bytes, 0) {
        Ok(()) => {}
        Err(s) if nomem(s) => return Ok(()),
        Err(s) => return Err(format!("vmo_write (mapped VMO): {s:?}")),
    }
    let mut maps = MapFuzz {
        guest: &guest,
        vmo: &extra,
        vmo_size: extra_size,
        window,
        model: Mappings::default(),
        nomem: cfg.nomem,
        broken: false,
    };
    for _ in 0..rng.below(4) {
        maps.op(&mut rng, tally)?;
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
        clean,
        traps: set,
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
                check_async(&packet, &args.traps)?;
                tally.async_packets += 1;
            }
            Err(Status::TimedOut) => {}
            Err(s) => return Err(format!("port_wait: {s:?}")),
        }
        if rng.chance(10) {
            maps.op(&mut rng, tally)?;
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
        let past_create = args.report.past_create.load(Ordering::Acquire);
        if mx::time_monotonic() >= deadline && !killed && past_create {
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
        check_async(&packet, &args.traps)?;
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
    for (sum, n) in tally.packets.iter_mut().zip(r.packets.iter()) {
        *sum += n.load(Ordering::Relaxed);
    }
    tally.system_writes += r.system_writes.load(Ordering::Relaxed);
    tally.system_refused += r.system_refused.load(Ordering::Relaxed);
    for (sum, n) in tally.errors.0.iter_mut().zip(r.errors.iter()) {
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
/// one of the run's traps with a port, of that trap's kind.
fn check_async(packet: &PortPacket, traps: &[SetTrap]) -> Result<(), String> {
    let kind = match packet.packet_type {
        PKT_TYPE_GUEST_IO => IO,
        PKT_TYPE_GUEST_MEM => MEM,
        _ => u32::MAX,
    };
    let trap = traps.iter().find(|t| t.key == packet.key && t.through_port && t.kind == kind);
    if trap.is_none() || packet.status != 0 {
        return Err(format!(
            "port packet type {:#x} key {} status {} (traps with a port: {:?})",
            packet.packet_type,
            packet.key,
            packet.status,
            traps.iter().filter(|t| t.through_port).map(|t| t.key).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// The main thread's `mx_guest_map`/`mx_guest_unmap` calls (also while the
/// VCPU runs), each checked against the model of the guest's mappings.
struct MapFuzz<'a> {
    guest: &'a Guest,
    vmo: &'a Vmo,
    vmo_size: u64,
    window: u64,
    model: Mappings,
    nomem: bool,
    /// An injected NO_MEMORY left the model unsure: no more calls this run.
    broken: bool,
}

impl MapFuzz<'_> {
    fn op(&mut self, rng: &mut Rng, tally: &mut Tally) -> Result<(), String> {
        if self.broken {
            return Ok(());
        }
        let pages = self.vmo_size / PAGE;
        let mut gpa = match rng.below(10) {
            0..=6 => self.window + rng.below(16) * PAGE,
            7 => rng.below(1 << 18) * PAGE,
            8 => GUEST_PHYS_SIZE - rng.below(4) * PAGE,
            _ => rng.next(),
        };
        if rng.chance(4) {
            gpa = gpa.wrapping_add(1 + rng.below(PAGE - 1));
        }
        let len = match rng.below(10) {
            0 => 0,
            1 => rng.below(4 * PAGE),
            2 => (pages + rng.below(3)) * PAGE,
            3 => rng.next() & !(PAGE - 1),
            _ => (1 + rng.below(pages.min(4))) * PAGE,
        };
        let (name, expect, got) = if rng.chance(45) || self.model.is_empty() {
            let options = if rng.chance(3) { 1 + rng.below(7) as u32 } else { 0 };
            let offset = match rng.below(10) {
                0 => self.vmo_size,
                1 => rng.below(self.vmo_size),
                2 => !(PAGE - 1),
                _ => rng.below(pages) * PAGE,
            };
            let expect = self.model.expect_map(options, gpa, offset, len, self.vmo_size);
            // SAFETY: no pointers.
            let raw = unsafe {
                mx::sys::mx_guest_map(self.guest.raw(), options, gpa as usize, self.vmo.raw(), offset, len as usize)
            };
            let got = mx::ok(raw).map(drop);
            if got.is_ok() && expect.is_ok() {
                self.model.mapped(gpa, len);
            }
            tally.maps += 1;
            ("guest_map", expect, got)
        } else {
            let expect = Mappings::expect_unmap(gpa, len);
            let got = self.guest.unmap(gpa, len);
            if got.is_ok() && expect.is_ok() {
                self.model.unmapped(gpa, len);
            }
            tally.unmaps += 1;
            ("guest_unmap", expect, got)
        };
        if got == Err(Status::NoMemory) && self.nomem {
            self.broken = true;
            return Ok(());
        }
        if got != expect {
            return Err(format!("{name}(gpa {gpa:#x}, len {len:#x}) returned {got:?}, expected {expect:?}"));
        }
        tally.maps_refused += u64::from(got.is_err());
        Ok(())
    }
}

fn plan_traps(rng: &mut Rng, ram_size: u64) -> Vec<TrapPlan> {
    let mut traps = Vec::new();
    for _ in 0..rng.below(7) {
        let through_port = rng.chance(35);
        let (kind, addr, len) = match rng.below(14) {
            0..=2 => {
                let port = match rng.below(4) {
                    0 => 0x80,
                    1 => 0xe9,
                    2 => 0x3f8,
                    _ => rng.below(0x10000),
                };
                let len = if rng.chance(5) { rng.below(0x20) } else { (1 + rng.below(16)).min(0x10000 - port) };
                (IO, port, len)
            }
            3..=5 => {
                let page = match rng.below(6) {
                    // A RAM page the code stores to, the code itself (fetches
                    // from a trap), the stack, beyond RAM, anywhere in the
                    // GiB, and now and then a bad one.
                    0 => 0xb000,
                    1 => CODE,
                    2 => STACK_TOP - PAGE,
                    3 => ram_size,
                    4 if rng.chance(20) => GUEST_PHYS_SIZE - PAGE * rng.below(2) + rng.below(2) * 8,
                    _ => rng.below(1 << 18) * PAGE,
                };
                (MEM, page, PAGE * (rng.below(3)))
            }
            6..=8 => {
                // Unknown MSRs (raise #GP unless trapped), the Hyper-V
                // range, and some the kernel handles itself.
                let msr = match rng.below(5) {
                    0 => 0xdead,
                    1 => 0x4000_0000 + rng.below(0x100),
                    2 => rng.pick(&[0x10u64, 0x1b, 0xc000_0080, 0xc000_0100, 0x277]),
                    3 if rng.chance(10) => (1 << 32) - rng.below(4),
                    _ => rng.below(1 << 32),
                };
                let span = if rng.chance(80) { 16 } else { 0x1000 };
                (MSR, msr, 1 + rng.below(span))
            }
            9 | 10 => {
                let leaf = match rng.below(4) {
                    0 => rng.below(0x20),
                    1 => 0x4000_0000 + rng.below(8),
                    2 => 0x8000_0000 + rng.below(0x20),
                    _ => rng.below(1 << 32),
                };
                (CPUID, leaf, 1 + rng.below(8))
            }
            11 | 12 => {
                // #DE #DB #BP #UD #DF #GP #PF single vectors, the NMI and
                // #MC (refused), and random ranges (some too long).
                if rng.chance(70) {
                    (EXCEPTION, rng.pick(&[0u64, 1, 3, 6, 6, 8, 13, 13, 14, 2, 18]), 1)
                } else {
                    let first = rng.below(33);
                    (EXCEPTION, first, 1 + rng.below(34 - first))
                }
            }
            _ => {
                if rng.chance(80) {
                    (VMCALL, 0, 1)
                } else {
                    (if rng.chance(50) { VMCALL } else { 6 + rng.below(100) as u32 }, rng.below(3), rng.below(3))
                }
            }
        };
        traps.push(TrapPlan { kind, addr, len, through_port });
    }
    traps
}

/// Addresses the code's loads and stores aim at.
fn data_address(rng: &mut Rng, ram_size: u64, traps: &[TrapPlan], window: u64, clean: bool) -> u32 {
    let mem_traps: Vec<u64> = traps.iter().filter(|t| t.kind == MEM).map(|t| t.addr).collect();
    // A clean run's accesses stay where something may back them.
    let choice = if clean { rng.pick(&[0, 2, 4, 5, 6]) } else { rng.below(7) };
    match choice {
        0 | 5 if !mem_traps.is_empty() => (rng.pick(&mem_traps) + rng.below(PAGE)) as u32,
        1 => (ram_size + rng.below(4) * PAGE) as u32,
        2 => (0xb000 + rng.below(PAGE)) as u32,
        3 => rng.below(1 << 30) as u32,
        6 => (window + rng.below(16 * PAGE)) as u32,
        _ => (0x9000 + rng.below(0x1000)) as u32,
    }
}

/// The guest's memory: (offset, bytes) pieces.
fn guest_image(rng: &mut Rng, ram_size: u64, traps: &[TrapPlan], window: u64, clean: bool) -> Vec<(u64, Vec<u8>)> {
    let words = |w: &[u64]| -> Vec<u8> { w.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut image = Vec::new();
    // GDT: null, 64-bit code (0x08), data (0x10).
    image.push((0, words(&[0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff])));
    image.push((PML4, words(&[0x2003])));
    image.push((0x2000, words(&[0x3003])));
    let pd: Vec<u64> = (0..512u64).map(|i| (i << 21) | 0x83).collect();
    image.push((0x3000, words(&pd)));
    // IDT: every vector's gate points at its handler, which reports the
    // vector (`mov al, vector; out 0x80, al`) and then either faults again
    // (`ud2`), or returns: exceptions to the next 16-byte slot of the code
    // (a clean run's instructions each have their own slot), interrupts to
    // where they came.
    let skip = clean || rng.chance(50);
    let mut idt = Vec::new();
    let mut handlers = Vec::new();
    for vector in 0..256u64 {
        let handler = match (skip, vector) {
            (true, 0..32) => HANDLERS + vector * 32,
            (true, _) => HANDLERS + 0x400 + (vector - 32) * 8,
            (false, _) => HANDLERS + vector * 8,
        };
        let low = (handler & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((handler >> 16) & 0xffff) << 48;
        idt.extend_from_slice(&low.to_le_bytes());
        idt.extend_from_slice(&(handler >> 32).to_le_bytes());
        let report = [0xb0, vector as u8, 0xe6, 0x80];
        handlers.extend_from_slice(&report);
        match (skip, vector) {
            (false, _) => handlers.extend_from_slice(&[0x0f, 0x0b, 0x90, 0x90]),
            (true, 0..32) => {
                let start = handlers.len() - report.len();
                if has_error_code(vector as u8) {
                    handlers.extend_from_slice(&[0x48, 0x83, 0xc4, 0x08]); // add rsp, 8
                }
                handlers.extend_from_slice(&[0x48, 0x83, 0x24, 0x24, 0xf0]); // and qword [rsp], -16
                handlers.extend_from_slice(&[0x48, 0x83, 0x04, 0x24, 0x10]); // add qword [rsp], 16
                handlers.extend_from_slice(&[0x48, 0xcf]); // iretq
                handlers.resize(start + 32, 0x90);
            }
            (true, _) => handlers.extend_from_slice(&[0x48, 0xcf, 0x90, 0x90]),
        }
    }
    image.push((IDT, idt));
    image.push((HANDLERS, handlers));
    let mut idtr = Vec::from(0xfffu16.to_le_bytes());
    idtr.extend_from_slice(&IDT.to_le_bytes());
    image.push((IDTR, idtr));
    image.push((CODE, code(rng, ram_size, traps, window, clean)));
    image
}

/// The guest's code. A clean run's has only instructions that exit or
/// fault, each in its own 16-byte slot, and loops: it keeps exiting.
fn code(rng: &mut Rng, ram_size: u64, traps: &[TrapPlan], window: u64, clean: bool) -> Vec<u8> {
    let mut c = Vec::with_capacity(CODE_SIZE);
    if clean || rng.chance(60) {
        // lidt [IDTR]
        c.extend_from_slice(&[0x0f, 0x01, 0x1c, 0x25]);
        c.extend_from_slice(&(IDTR as u32).to_le_bytes());
    }
    let mut msrs = Vec::from([
        0x10u32,
        0x1b,
        0x3a,
        0xfe,
        0x1a0,
        0x277,
        0xc000_0080,
        0xc000_0100,
        0xc000_0102,
        0x4000_0000,
        0xdead,
    ]);
    let mut leaves = Vec::from([0u32, 1, 7, 0xd, 0x4000_0000, 0x8000_0000, 0x8000_0001, 0x8000_0008]);
    // The trapped MSRs and leaves, three times over: most accesses hit them.
    for t in traps.iter().filter(|t| t.len > 0) {
        for _ in 0..3 {
            let inside = (t.addr + rng.below(t.len.min(16))) as u32;
            match t.kind {
                MSR => msrs.push(inside),
                CPUID => leaves.push(inside),
                _ => {}
            }
        }
    }
    let ports: Vec<u64> = traps.iter().filter(|t| t.kind == IO).map(|t| t.addr).collect();
    let len = 64 + rng.below(960) as usize;
    let clean_choices = [3, 4, 6, 7, 8, 9, 9, 9, 9, 10, 10, 10, 11, 12, 13, 14, 15, 22, 24, 24, 24];
    while c.len() < len {
        let imm32 = |c: &mut Vec<u8>, v: u32| c.extend_from_slice(&v.to_le_bytes());
        let choice = if clean {
            c.resize(c.len().next_multiple_of(16), 0x90);
            rng.pick(&clean_choices)
        } else {
            rng.below(24)
        };
        match choice {
            24 => c.extend_from_slice(&[0x0f, 0x01, 0xd9]), // vmmcall
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
                let string_io = if clean { 5 } else { 8 };
                c.extend_from_slice(match rng.below(string_io) {
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
                let addr = data_address(rng, ram_size, traps, window, clean);
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
                // mov eax, imm32; mov cr0/cr3/cr4, rax. CR0 values mostly
                // keep PG and PE: TCG lets 64-bit code clear PG (hardware
                // raises #GP), and the legacy mode that follows can reach
                // a QEMU abort (see `fuzz_system`).
                let cr = rng.pick(&[0xc0u8, 0xd8, 0xe0]);
                let mut value = rng.next() as u32;
                if cr == 0xc0 && rng.chance(90) {
                    value |= 0x8000_0001;
                }
                c.push(0xb8);
                imm32(&mut c, value);
                c.extend_from_slice(&[0x0f, 0x22, cr]);
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
    if clean {
        // jmp CODE
        c.resize(c.len().next_multiple_of(16), 0x90);
        let back = -(c.len() as i32 + 5);
        c.push(0xe9);
        c.extend_from_slice(&back.to_le_bytes());
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
    let created = Vcpu::create(&guest, CODE, PML4, &apic);
    // The main thread closes the handle after this thread ends, killed or
    // not (a killed thread closes nothing), and kills only after this.
    if let Ok(v) = &created {
        r.vcpu.store(v.raw(), Ordering::Release);
    }
    r.past_create.store(true, Ordering::Release);
    let vcpu = match created {
        Ok(v) => v,
        Err(Status::NoMemory) if a.nomem => return,
        Err(s) => return fail(r, Failure::VcpuCreate, 0, s as i32),
    };
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
                        if mem.inst_len == 0 || mem.inst_len > 15 || mem.reserved != 0 {
                            return fail(r, Failure::PacketField, step, i32::from(mem.inst_len));
                        }
                        if !trapped(&a.traps, MEM, mem.addr) {
                            return fail(r, Failure::PacketField, step, PKT_TYPE_GUEST_MEM as i32);
                        }
                    }
                    Ok(payload) => {
                        if let Err((what, value)) = answer(a, &vcpu, &mut rng, &payload) {
                            return fail(r, what, step, value);
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
        if rng.chance(8) {
            if let Err((what, value)) = fuzz_system(r, &vcpu, &mut rng, a.clean) {
                return fail(r, what, step, value);
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

/// Checks a GUEST_MSR, GUEST_CPUID, GUEST_EXCEPTION or GUEST_VMCALL packet
/// (only for a trap the run set, fields as documented) and sometimes
/// answers it: a value for RDMSR, other CPUID registers, #GP for the MSR
/// (RIP back over it), the exception re-raised or another, RIP moved on.
fn answer(a: &RunArgs, vcpu: &Vcpu, rng: &mut Rng, payload: &mx_abi::Payload) -> Result<(), (Failure, i32)> {
    let r = &a.report;
    let field = |ptype: u32| (Failure::PacketField, ptype as i32);
    let state_err = |s: Status| (Failure::Answer, s as i32);
    match payload {
        mx_abi::Payload::GuestMsr(m) => {
            r.packets[0].fetch_add(1, Ordering::Relaxed);
            let fine = m.inst_len == 2
                && m.write <= 1
                && (m.reserved, m.reserved1, m.reserved2) == (0, 0, 0)
                && (m.write == 1 || m.value == 0)
                && trapped(&a.traps, MSR, u64::from(m.msr));
            if !fine {
                return Err(field(PKT_TYPE_GUEST_MSR));
            }
            match rng.below(4) {
                0 if m.write == 0 => {
                    let mut state = vcpu.read_state().map_err(state_err)?;
                    state.rax = u64::from(rng.next() as u32);
                    state.rdx = u64::from(rng.next() as u32);
                    vcpu.write_state(&state).map_err(state_err)?;
                    let back = vcpu.read_state().map_err(state_err)?;
                    if (back.rax, back.rdx) != (state.rax, state.rdx) {
                        return Err((Failure::Answer, PKT_TYPE_GUEST_MSR as i32));
                    }
                }
                1 => {
                    // #GP for the instruction: RIP back over it, then raise.
                    let mut system = vcpu.read_system().map_err(state_err)?;
                    system.rip = system.rip.wrapping_sub(2);
                    vcpu.write_system(&system).map_err(state_err)?;
                    vcpu.interrupt(13).map_err(state_err)?;
                }
                _ => {}
            }
        }
        mx_abi::Payload::GuestCpuid(c) => {
            r.packets[1].fetch_add(1, Ordering::Relaxed);
            if c.reserved != 0 || !trapped(&a.traps, CPUID, u64::from(c.leaf)) {
                return Err(field(PKT_TYPE_GUEST_CPUID));
            }
            // The kernel's result is in the registers already.
            let mut state = vcpu.read_state().map_err(state_err)?;
            let regs = (state.rax, state.rbx, state.rcx, state.rdx);
            if regs != (u64::from(c.eax), u64::from(c.ebx), u64::from(c.ecx), u64::from(c.edx)) {
                return Err(field(PKT_TYPE_GUEST_CPUID));
            }
            if rng.chance(40) {
                state.rax = u64::from(rng.next() as u32);
                state.rbx = u64::from(rng.next() as u32);
                vcpu.write_state(&state).map_err(state_err)?;
            }
        }
        mx_abi::Payload::GuestException(e) => {
            r.packets[2].fetch_add(1, Ordering::Relaxed);
            let fine = e.vector < 32
                && e.vector != 2
                && e.vector != 18
                && trapped(&a.traps, EXCEPTION, u64::from(e.vector))
                && e.error_code_valid == u8::from(has_error_code(e.vector))
                && (e.error_code_valid == 1 || e.error_code == 0)
                && (e.vector == 14 || e.cr2 == 0)
                && (e.reserved, e.reserved1, e.reserved2) == (0, 0, 0);
            if !fine {
                return Err(field(PKT_TYPE_GUEST_EXCEPTION));
            }
            match rng.below(5) {
                // Delivered this time (never trapped again).
                0 => vcpu.interrupt(u32::from(e.vector)).map_err(state_err)?,
                1 => vcpu.interrupt(rng.pick(&[6, 13])).map_err(state_err)?,
                2 => {
                    // On to the next slot of a clean run's code, or a little on.
                    let mut system = vcpu.read_system().map_err(state_err)?;
                    system.rip = if rng.chance(50) {
                        (system.rip | 15).wrapping_add(1)
                    } else {
                        system.rip.wrapping_add(1 + rng.below(3))
                    };
                    vcpu.write_system(&system).map_err(state_err)?;
                }
                // Left alone, a fault comes back at once.
                _ => {}
            }
        }
        mx_abi::Payload::GuestVmcall(v) => {
            r.packets[3].fetch_add(1, Ordering::Relaxed);
            let fine = v.inst_len == 3
                && v.reserved0 == [0; 7]
                && (v.reserved1, v.reserved2, v.reserved3) == (0, 0, 0)
                && trapped(&a.traps, VMCALL, 0);
            if !fine {
                return Err(field(PKT_TYPE_GUEST_VMCALL));
            }
            if rng.chance(50) {
                let mut state = vcpu.read_state().map_err(state_err)?;
                state.rax = rng.next();
                vcpu.write_state(&state).map_err(state_err)?;
            }
        }
        _ => return Err((Failure::PacketType, -1)),
    }
    Ok(())
}

/// Reads `MX_VCPU_SYSTEM`, writes it back with RIP, RFLAGS and CR3 changed
/// (valid or not) and the ignored fields scribbled on, and checks the
/// status and that exactly RIP, RFLAGS and CR3 changed, or nothing.
fn fuzz_system(r: &Report, vcpu: &Vcpu, rng: &mut Rng, clean: bool) -> Result<(), (Failure, i32)> {
    let err = |s: Status| (Failure::System, s as i32);
    let before = vcpu.read_system().map_err(err)?;
    if before.cpl > 3 || before.interrupt_shadow > 1 || before.reserved != [0; 6] {
        return Err((Failure::System, -1));
    }
    // Valid RFLAGS without VM (bit 17): in long mode VM means nothing, but
    // a guest that then leaves long mode (TCG lets 64-bit code clear
    // CR0.PG) runs in virtual-8086 mode, and its first interrupt makes
    // QEMU abort ("invalid tss type": TCG wants an available TSS type in
    // TR, the kernel gives guests a busy one). Invalid values may have it.
    const RFLAGS_VM: u64 = 1 << 17;
    let valid_flags = |x: u64| ((x & !VCPU_RFLAGS_RESERVED) | VCPU_RFLAGS_FIXED) & !RFLAGS_VM;
    let mut next = before;
    next.rflags = match rng.below(7) {
        0 | 1 => before.rflags,
        // Flip one of the defined bits (TF, IF, DF, AC, ...).
        2 => valid_flags(before.rflags ^ (1 << rng.below(22))),
        3 => valid_flags(rng.next()),
        4 => before.rflags & !VCPU_RFLAGS_FIXED,
        5 => {
            let high = 22 + rng.below(42);
            before.rflags | 1 << rng.pick(&[3u64, 5, 15, high])
        }
        _ => rng.next() | 1 << (22 + rng.below(42)),
    };
    // A clean run's RIP and CR3 change only where its code goes on.
    next.cr3 = match rng.below(8) {
        0..=4 => before.cr3,
        5 => PML4,
        6 if !clean => rng.below(GUEST_PHYS_SIZE),
        _ => GUEST_PHYS_SIZE + rng.below(u64::MAX - GUEST_PHYS_SIZE),
    };
    next.rip = match rng.below(if clean { 4 } else { 6 }) {
        0..=2 => before.rip,
        3 if clean => (before.rip | 15).wrapping_add(1),
        3 => before.rip.wrapping_add(rng.below(8)),
        4 => CODE + rng.below(CODE_SIZE as u64),
        _ => rng.next(),
    };
    // Ignored on write.
    if rng.chance(50) {
        next.cr0 = rng.next();
        next.cr2 = rng.next();
        next.cr4 = rng.next();
        next.efer = rng.next();
        next.cs_selector = rng.next() as u16;
        next.cpl = rng.next() as u8;
        next.reserved = [rng.next() as u8; 6];
    }
    let valid =
        next.rflags & VCPU_RFLAGS_FIXED != 0 && next.rflags & VCPU_RFLAGS_RESERVED == 0 && next.cr3 < GUEST_PHYS_SIZE;
    let got = vcpu.write_system(&next);
    if got != if valid { Ok(()) } else { Err(Status::InvalidArgs) } {
        return Err((Failure::System, got.err().map_or(0, |s| s as i32)));
    }
    if valid {
        r.system_writes.fetch_add(1, Ordering::Relaxed);
    } else {
        r.system_refused.fetch_add(1, Ordering::Relaxed);
    }
    let after = vcpu.read_system().map_err(err)?;
    let want = if valid { &next } else { &before };
    let unchanged =
        |s: &VcpuSystem| (s.cr0, s.cr2, s.cr4, s.efer, s.cs_base, s.cs_limit, s.cs_selector, s.cs_attrib, s.cpl);
    if (after.rip, after.rflags, after.cr3) != (want.rip, want.rflags, want.cr3)
        || unchanged(&after) != unchanged(&before)
    {
        return Err((Failure::System, -2));
    }
    Ok(())
}
