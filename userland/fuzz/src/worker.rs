//! A worker: one child process of a round. Its threads fuzz; the main
//! thread waits for them and sends the parent a report on the `PA_USER0`
//! channel. Each thread records its current call in the shared VMO
//! (`PA_USER1`) so the parent can say what was running if the worker hangs
//! or dies.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use mx::sys::*;
use mx::{Handle, Signals, Vmar, Vmo};
use mx_abi::{VmFlags, SYSCALLS};

use crate::config::Config;
use crate::gen::{self, Scratch, PAGE, RW_PAGES};
use crate::pool::{self, Pool};
use crate::rng::Rng;
use crate::shared;

/// Set by the first thread that finds a violation; the others stop.
static FAILED: AtomicBool = AtomicBool::new(false);
/// Calls made, and calls that returned MX_OK (or a count), per syscall.
static CALLS: [AtomicU32; 160] = [const { AtomicU32::new(0) }; 160];
static OKS: [AtomicU32; 160] = [const { AtomicU32::new(0) }; 160];
/// Bit n: the call returned status -n (n < 64).
static SEEN: [AtomicU64; 160] = [const { AtomicU64::new(0) }; 160];
static TOTAL: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(".globl fuzz_exit_stub", "fuzz_exit_stub:", "and rsp, -16", "call rdi", "ud2",);

extern "C" {
    fn fuzz_exit_stub();
}

/// What a fuzz thread gets from the main thread.
struct ThreadArgs {
    cfg_seed: u64,
    round: u64,
    index: u64,
    thread: u32,
    calls: u64,
    trace: bool,
    nomem: bool,
    scratch: Scratch,
    slots: usize,
    resource: u32,
    job: u32,
    process: u32,
    playground: u32,
    own_thread: u32,
}

pub fn run(cfg: &Config) -> i32 {
    match setup_and_fuzz(cfg) {
        Ok(code) => code,
        Err(why) => {
            mxrt::println!("fuzz: worker {} setup failed: {why}", cfg.index);
            2
        }
    }
}

fn take(ty: u32) -> u32 {
    mxrt::take_handle(ty, 0).map_or(0, Handle::into_raw)
}

fn setup_and_fuzz(cfg: &Config) -> Result<i32, String> {
    let err = |what: &str, s: mx::Status| alloc::format!("{what}: {s:?}");
    let report = mx::Channel::from_handle(Handle::from_raw(take(mx_abi::PA_USER0)));
    let slots_vmo = Vmo::from_handle(Handle::from_raw(take(mx_abi::PA_USER1)));
    let resource = take(mx_abi::PA_RESOURCE);
    let job = take(mx_abi::PA_JOB_DEFAULT);
    let process = take(mx_abi::PA_PROC_SELF);
    let root = mxrt::vmar_root().ok_or("no root VMAR")?;
    pool::SELF_KOID.store(pool::basic(process).map_or(0, |b| b.1), Ordering::Relaxed);

    // Isolation: the parent's handle values name nothing of ours.
    for &(value, koid) in &cfg.foreign {
        if let Some((_, k, _, _)) = pool::basic(value) {
            if k == koid {
                mxrt::println!(
                    "fuzz: FAIL isolation: the parent's handle value {value:#x} (koid {koid}) works in worker {}",
                    cfg.index
                );
                let _ = report.write(b"isolation", &mut Vec::new());
                return Ok(1);
            }
        }
    }

    let rw = VmFlags::PERM_READ | VmFlags::PERM_WRITE;
    let slots = root.map(0, &slots_vmo, 0, shared::SIZE, rw).map_err(|s| err("map slots", s))?;
    // The playground: the only VMAR of ours the fuzzed calls ever get.
    let can_all = VmFlags::CAN_MAP_READ | VmFlags::CAN_MAP_WRITE | VmFlags::CAN_MAP_EXECUTE | VmFlags::CAN_MAP_SPECIFIC;
    let part = 4 << 20;
    let (playground, play_base) =
        root.allocate(0, part * cfg.threads as usize, can_all).map_err(|s| err("playground", s))?;
    // Threads started in our own process run the exit stub on this stack.
    let stub_vmo = Vmo::create(4 * PAGE as u64).map_err(|s| err("stub stack", s))?;
    let stub = root.map(0, &stub_vmo, 0, 4 * PAGE, rw).map_err(|s| err("map stub stack", s))?;
    let thread_exit = slot_of("thread_exit").map_or(0, |i| SLOTS[i].load(Ordering::Relaxed));

    let mut threads = Vec::new();
    let mut args = Vec::new();
    for t in 0..cfg.threads as u32 {
        let scratch = make_scratch(&root).map_err(|s| err("scratch", s))?;
        let scratch = Scratch {
            playground: (play_base, part * cfg.threads as usize),
            stub_stack_top: stub + 4 * PAGE - 64,
            stub_entry: fuzz_exit_stub as *const () as usize,
            thread_exit,
            own_thread: 0,
            me: t,
            ..scratch
        };
        let calls = cfg.calls / cfg.threads + u64::from(u64::from(t) < cfg.calls % cfg.threads);
        // Borrowed: our process handle stays open (and ours).
        let me = core::mem::ManuallyDrop::new(mx::Process::from_handle(Handle::from_raw(process)));
        let thread = mx::Thread::create(&me, "fuzz").map_err(|s| err("thread_create", s))?;
        if let Some((_, koid, _, _)) = pool::basic(thread.raw()) {
            pool::THREAD_KOIDS[t as usize].store(koid, Ordering::Relaxed);
        }
        let own = thread.duplicate(mx::SAME_RIGHTS).map(|t| t.into_handle().into_raw()).unwrap_or(0);
        let dup = |v: u32| -> u32 {
            let mut out = 0;
            if v != 0 {
                unsafe { mx_handle_duplicate(v, 0x8000_0000, &mut out) };
            }
            out
        };
        args.push(ThreadArgs {
            cfg_seed: cfg.seed,
            round: cfg.round,
            index: cfg.index,
            thread: t,
            calls,
            trace: cfg.trace,
            nomem: cfg.nomem,
            scratch: Scratch { own_thread: own, ..scratch },
            slots: slots + t as usize * shared::SLOT_WORDS * 8,
            resource: dup(resource),
            job: dup(job),
            process: dup(process),
            playground: dup(playground.raw()),
            own_thread: own,
        });
        threads.push(thread);
    }
    // Each thread gets a stack in the root VMAR (never in the playground).
    let stack_size = 256 * 1024;
    for (thread, a) in threads.iter().zip(args.iter()) {
        let vmo = Vmo::create(stack_size as u64).map_err(|s| err("stack", s))?;
        let stack = root.map(0, &vmo, 0, stack_size, rw).map_err(|s| err("map stack", s))?;
        let entry = thread_main as extern "C" fn(usize, usize) -> ! as usize;
        thread.start(entry, stack + stack_size - 8, a as *const ThreadArgs as usize, 0).map_err(|s| err("start", s))?;
    }
    for thread in &threads {
        let _ = thread.handle().wait_one(Signals::THREAD_TERMINATED, u64::MAX);
    }
    // The report: calls made, failed flag, then (calls, ok) per syscall.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&TOTAL.load(Ordering::Relaxed).to_le_bytes());
    bytes.extend_from_slice(&u64::from(FAILED.load(Ordering::Relaxed)).to_le_bytes());
    for i in 0..SYSCALLS.len() {
        bytes.extend_from_slice(&CALLS[i].load(Ordering::Relaxed).to_le_bytes());
        bytes.extend_from_slice(&OKS[i].load(Ordering::Relaxed).to_le_bytes());
    }
    for seen in SEEN.iter().take(SYSCALLS.len()) {
        bytes.extend_from_slice(&seen.load(Ordering::Relaxed).to_le_bytes());
    }
    // Handle values of ours, for the parent's isolation check.
    for recent in &pool::RECENT {
        let v = recent.load(Ordering::Relaxed);
        let koid = pool::basic(v).map_or(0, |b| b.1);
        bytes.extend_from_slice(&v.to_le_bytes());
        bytes.extend_from_slice(&koid.to_le_bytes());
    }
    let _ = report.write(&bytes, &mut Vec::new());
    drop(playground);
    Ok(i32::from(FAILED.load(Ordering::Relaxed)))
}

/// The SLOTS index of `_mx_<name>`.
pub fn slot_of(name: &str) -> Option<usize> {
    SYMBOLS.iter().position(|s| s.strip_prefix("_mx_") == Some(name))
}

/// Scratch: 4 read-write pages, 1 read-only page, 1 unmapped page, in a
/// VMAR of their own in the root VMAR.
fn make_scratch(root: &Vmar) -> Result<Scratch, mx::Status> {
    let flags = VmFlags::CAN_MAP_READ | VmFlags::CAN_MAP_WRITE | VmFlags::CAN_MAP_SPECIFIC;
    let (region, base) = root.allocate(0, (RW_PAGES + 2) * PAGE, flags)?;
    let vmo = Vmo::create(((RW_PAGES + 1) * PAGE) as u64)?;
    let rw = VmFlags::PERM_READ | VmFlags::PERM_WRITE | VmFlags::SPECIFIC;
    region.map(0, &vmo, 0, RW_PAGES * PAGE, rw)?;
    vmo.write_all(&[0x5a; 64], (RW_PAGES * PAGE) as u64)?;
    region.map(RW_PAGES * PAGE, &vmo, (RW_PAGES * PAGE) as u64, PAGE, VmFlags::PERM_READ | VmFlags::SPECIFIC)?;
    // The region and VMO stay for the worker's life.
    core::mem::forget(region);
    Ok(Scratch {
        rw: base,
        ro: base + RW_PAGES * PAGE,
        hole: base + (RW_PAGES + 1) * PAGE,
        playground: (0, 0),
        stub_stack_top: 0,
        stub_entry: 0,
        thread_exit: 0,
        own_thread: 0,
        me: 0,
    })
}

extern "C" fn thread_main(args: usize, _: usize) -> ! {
    // SAFETY: the main thread passes a `ThreadArgs` it keeps until every
    // fuzz thread has ended.
    let args = unsafe { &*(args as *const ThreadArgs) };
    fuzz_thread(args);
    unsafe { mx_thread_exit() }
}

fn slot_write(args: &ThreadArgs, word: usize, value: u64) {
    unsafe { core::ptr::write_volatile((args.slots + word * 8) as *mut u64, value) };
}

/// Adds the thread's first objects to its pool: one or more of every type.
fn populate(pool: &mut Pool, rng: &mut Rng, a: &ThreadArgs) {
    let mut add = |pool: &mut Pool, h: Option<Handle>| {
        if let Some(h) = h {
            pool.adopt_with_variant(h.into_raw(), rng);
        }
    };
    add(pool, mx::Event::create().ok().map(|e| e.into_handle()));
    if let Ok((x, y)) = mx::EventPair::create() {
        add(pool, Some(x.into_handle()));
        add(pool, Some(y.into_handle()));
    }
    if let Ok((x, y)) = mx::Channel::create() {
        let _ = x.write(b"hello", &mut Vec::new());
        add(pool, Some(x.into_handle()));
        add(pool, Some(y.into_handle()));
    }
    add(pool, mx::Port::create().ok().map(|p| p.into_handle()));
    add(pool, mx::Timer::create().ok().map(|t| t.into_handle()));
    for size in [0u64, 4096, 3 * 4096] {
        add(pool, Vmo::create(size).ok().map(|v| v.into_handle()));
    }
    // A sub-region of the playground, with a mapping in it.
    let mut child = 0;
    let mut addr = 0usize;
    let flags = VmFlags::CAN_MAP_READ | VmFlags::CAN_MAP_WRITE | VmFlags::CAN_MAP_EXECUTE | VmFlags::CAN_MAP_SPECIFIC;
    let status = unsafe { mx_vmar_allocate(a.playground, 0, 1 << 20, flags.bits(), &mut child, &mut addr) };
    if status == 0 {
        pool.add_addr(addr as u64);
        if let Ok(vmo) = Vmo::create(3 * 4096) {
            let mut mapped = 0;
            let rw = (VmFlags::PERM_READ | VmFlags::PERM_WRITE).bits();
            if unsafe { mx_vmar_map(child, 0, vmo.raw(), 0, 3 * 4096, rw, &mut mapped) } == 0 {
                pool.add_addr(mapped as u64);
            }
            add(pool, Some(vmo.into_handle()));
        }
        add(pool, Some(Handle::from_raw(child)));
    }
    let dup = |v: u32| -> Option<Handle> {
        let mut out = 0;
        (v != 0 && unsafe { mx_handle_duplicate(v, 0x8000_0000, &mut out) } == 0).then(|| Handle::from_raw(out))
    };
    add(pool, dup(a.playground));
    add(pool, dup(a.resource));
    add(pool, dup(a.job));
    add(pool, dup(a.process));
    add(pool, dup(a.own_thread));
    if a.resource != 0 {
        let mut out = 0;
        for options in [0u32, mx_abi::log::LOG_FLAG_READABLE] {
            if unsafe { mx_debuglog_create(a.resource, options, &mut out) } == 0 {
                add(pool, Some(Handle::from_raw(out)));
            }
        }
        if unsafe { mx_resource_create(a.resource, 1, 0, 0xffff, &mut out) } == 0 {
            add(pool, Some(Handle::from_raw(out)));
        }
    }
    if a.job != 0 {
        let job = core::mem::ManuallyDrop::new(Handle::from_raw(a.job));
        if let Ok((victim, vmar)) = mx::Process::create(&job, "fuzz-victim") {
            if let Ok(thread) = mx::Thread::create(&victim, "victim") {
                add(pool, Some(thread.into_handle()));
            }
            add(pool, Some(victim.into_handle()));
            add(pool, Some(vmar.into_handle()));
        }
    }
}

/// Calls the vDSO function at `addr` with eight argument registers' worth
/// (a call with fewer parameters ignores the rest; System V).
unsafe fn invoke(addr: usize, a: &[u64; 8]) -> u64 {
    let f: unsafe extern "C" fn(u64, u64, u64, u64, u64, u64, u64, u64) -> u64 =
        unsafe { core::mem::transmute::<usize, _>(addr) };
    unsafe { f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]) }
}

fn fuzz_thread(a: &ThreadArgs) {
    let mut rng = Rng::new(Rng::mix(&[a.cfg_seed, a.round, a.index, u64::from(a.thread)]));
    let mut pool = Pool::new();
    // Calls the fuzzer can make: every public one (the vDSO-private
    // channel_call halves have no vDSO symbol; the kernel refuses them from
    // anywhere but channel_call, which the conformance suite checks).
    let callable: Vec<(usize, usize, u64)> = SYSCALLS
        .iter()
        .enumerate()
        .filter(|(_, d)| d.is_public())
        .filter_map(|(i, d)| Some((i, slot_of(d.name)?, gen::weight(d))))
        .collect();
    let total: u64 = callable.iter().map(|c| c.2).sum();
    // Random bytes in scratch to start with.
    for i in 0..RW_PAGES * PAGE {
        unsafe { core::ptr::write_volatile((a.scratch.rw + i) as *mut u8, rng.next() as u8) };
    }
    populate(&mut pool, &mut rng, a);
    for k in 0..a.calls {
        if FAILED.load(Ordering::Relaxed) {
            break;
        }
        if pool.live.len() < 10 {
            populate(&mut pool, &mut rng, a);
        }
        let mut pick = rng.below(total);
        let &(index, slot, _) = callable
            .iter()
            .find(|c| {
                if pick < c.2 {
                    true
                } else {
                    pick -= c.2;
                    false
                }
            })
            .unwrap_or(&callable[0]);
        let call = gen::generate(index, &mut rng, &pool, &a.scratch);
        slot_write(a, shared::SEQ, k);
        slot_write(a, shared::CALL, index as u64 + 1);
        for (i, v) in call.args.iter().enumerate() {
            slot_write(a, shared::ARGS + i, *v);
        }
        slot_write(a, shared::STATE, shared::IN_CALL);
        if a.trace {
            mxrt::println!("fuzz: w{} t{} #{k}: {}", a.index, a.thread, shared::describe(index, &call.args));
        }
        let addr = SLOTS[slot].load(Ordering::Relaxed);
        let raw = unsafe { invoke(addr, &call.args) };
        slot_write(a, shared::RET, raw);
        slot_write(a, shared::STATE, shared::RETURNED);
        TOTAL.fetch_add(1, Ordering::Relaxed);
        CALLS[index].fetch_add(1, Ordering::Relaxed);
        let decl = &SYSCALLS[index];
        if decl.attrs.noreturn {
            fail(a, k, index, &call.args, raw, "a noreturn call returned");
            break;
        }
        if let Err(why) = crate::check::check(decl, raw, a.nomem, call.bad_pointer) {
            fail(a, k, index, &call.args, raw, why);
            break;
        }
        let status = raw as u32 as i32;
        if decl.ret == "mx_status_t" && (-63..0).contains(&status) {
            SEEN[index].fetch_or(1 << -status, Ordering::Relaxed);
        }
        let ok = decl.ret != "mx_status_t" || status >= 0;
        if ok {
            OKS[index].fetch_add(1, Ordering::Relaxed);
            for &(area, n) in &call.handle_outs {
                for i in 0..n {
                    let v = unsafe { core::ptr::read_volatile((area + 4 * i) as *const u32) };
                    pool.adopt(v, &mut rng);
                }
            }
            for &at in &call.addr_outs {
                let v = unsafe { core::ptr::read_volatile(at as *const u64) };
                if v != 0 {
                    pool.add_addr(v);
                }
            }
        }
        for &v in &call.released {
            pool.revalidate(v);
        }
        if decl.name == "handle_close" {
            pool.revalidate(call.args[0] as u32);
        }
        if k % 32 == 0 && !pool.live.is_empty() {
            let v = pool.live[rng.below(pool.live.len() as u64) as usize].value;
            pool.revalidate(v);
        }
    }
    slot_write(a, shared::STATE, shared::FINISHED);
}

fn fail(a: &ThreadArgs, k: u64, index: usize, args: &[u64; 8], raw: u64, why: &str) {
    FAILED.store(true, Ordering::Relaxed);
    let status = raw as u32 as i32;
    let documented: Vec<_> = SYSCALLS[index].errors.iter().map(|e| e.status).collect();
    mxrt::println!(
        "fuzz: FAIL seed={} round={} worker={} thread={} call #{k}: {} returned {status} ({:?}): {why}; documented: {documented:?}",
        a.cfg_seed,
        a.round,
        a.index,
        a.thread,
        shared::describe(index, args),
        mx::Status::try_from(status),
    );
}
