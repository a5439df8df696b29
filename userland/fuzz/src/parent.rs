//! The parent: runs rounds of workers, watches them (a round that does not
//! end in time is a hang), checks isolation both ways and that the
//! kernel's counts come back after every round.

use alloc::string::String;
use alloc::vec::Vec;

use mx::launch::{launch, Image, Launch};
use mx::{Handle, Signals, Status, Vmo};
use mx_abi::object::InfoKernelCounts;
use mx_abi::SYSCALLS;

use crate::config::Config;
use crate::shared;

struct Grants {
    resource: Handle,
    job: Handle,
    vdso: Vmo,
    bootfs: Vmo,
    me: Handle,
    image: (u64, u64),
}

/// A handle value of ours, with its koid.
fn value_and_koid(h: &Handle) -> (u32, u64) {
    (h.raw(), crate::pool::basic(h.raw()).map_or(0, |b| b.1))
}

pub fn run(cfg: &Config) -> i32 {
    let take = |ty| mxrt::take_handle(ty, 0);
    let (Some(resource), Some(job), Some(vdso), Some(bootfs), Some(me)) = (
        take(mx_abi::PA_RESOURCE),
        take(mx_abi::PA_JOB_DEFAULT),
        take(mx_abi::PA_VMO_VDSO),
        take(mx_abi::PA_VMO_BOOTFS),
        take(mx_abi::PA_PROC_SELF),
    ) else {
        mxrt::println!("fuzz: FAIL needs +resource +job +vdso +bootfs");
        return 1;
    };
    let bootfs = Vmo::from_handle(bootfs);
    let image = match bootfs.duplicate(mx::SAME_RIGHTS).and_then(mx::bootfs::Bootfs::open).and_then(|fs| {
        let e = fs.find("bin/fuzz")?;
        Ok((e.offset, e.size))
    }) {
        Ok(image) => image,
        Err(s) => {
            mxrt::println!("fuzz: FAIL bin/fuzz not in bootfs: {s:?}");
            return 1;
        }
    };
    let grants = Grants { resource, job, vdso: Vmo::from_handle(vdso), bootfs, me, image };
    mxrt::println!(
        "fuzz: seed={} iters={} round={} workers={} threads={}{}{}",
        cfg.seed,
        cfg.iters,
        cfg.round_calls,
        cfg.workers,
        cfg.threads,
        if cfg.nomem { " (fault injection: NO_MEMORY accepted everywhere)" } else { "" },
        if cfg.trace { " trace" } else { "" },
    );
    let start = mx::time_monotonic();
    let mut total = 0u64;
    let mut hist = alloc::vec![(0u64, 0u64); SYSCALLS.len()];
    let mut seen = alloc::vec![0u64; SYSCALLS.len()];
    let mut round = cfg.first_round;
    let mut rounds = 0;
    let mut idle = 0;
    while total < cfg.iters && rounds < cfg.rounds {
        let before = match counts(&grants) {
            Ok(c) => c,
            Err(s) => {
                mxrt::println!("fuzz: FAIL cannot read the kernel counts: {s:?}");
                return 1;
            }
        };
        let calls = cfg.round_calls.min(cfg.iters - total);
        mxrt::println!("fuzz: round {round} seed {} ({calls} calls)", cfg.seed);
        match run_round(cfg, &grants, round, calls, &mut hist, &mut seen) {
            Ok(done) => {
                total += done;
                idle = if done == 0 { idle + 1 } else { 0 };
            }
            Err(why) => {
                mxrt::println!("fuzz: FAIL seed={} round={round}: {why}", cfg.seed);
                replay_hint(cfg, round);
                return 1;
            }
        }
        if let Err(leak) = settle(&grants, &before) {
            mxrt::println!(
                "fuzz: FAIL seed={} round={round}: kernel counts not back after the round: {leak}",
                cfg.seed
            );
            replay_hint(cfg, round);
            return 1;
        }
        // Under fault injection whole rounds may fail to launch.
        if idle >= if cfg.nomem { 50 } else { 3 } {
            mxrt::println!("fuzz: FAIL seed={} round={round}: three rounds without a call", cfg.seed);
            return 1;
        }
        round += 1;
        rounds += 1;
    }
    let ms = (mx::time_monotonic() - start) / 1_000_000;
    let called = hist.iter().filter(|h| h.0 > 0).count();
    let succeeded = hist.iter().filter(|h| h.1 > 0).count();
    let never: Vec<&str> =
        SYSCALLS.iter().zip(&hist).filter(|(d, h)| d.is_public() && h.0 == 0).map(|(d, _)| d.name).collect();
    mxrt::println!(
        "fuzz: coverage: {called} of {} public syscalls called, {succeeded} succeeded at least once; never called: {never:?}",
        SYSCALLS.iter().filter(|d| d.is_public()).count()
    );
    // Calls whose errors the contract does not document, and what they
    // returned besides NOT_SUPPORTED: the table's gaps.
    for (decl, bits) in SYSCALLS.iter().zip(&seen) {
        let bits = bits & !(1 << -(Status::NotSupported as i32));
        if decl.errors.is_empty() && bits != 0 {
            let statuses: Vec<_> =
                (1..64).filter(|n| bits & (1 << n) != 0).filter_map(|n| Status::try_from(-n).ok()).collect();
            mxrt::println!("fuzz: undocumented: mx_{} returned {statuses:?}", decl.name);
        }
    }
    mxrt::println!(
        "fuzz: PASS {total} calls in {}.{:03} s ({} calls/s), {rounds} rounds, seed {}",
        ms / 1000,
        ms % 1000,
        total * 1000 / ms.max(1),
        cfg.seed
    );
    0
}

fn replay_hint(cfg: &Config, round: u64) {
    mxrt::println!(
        "fuzz: replay: make fuzz SEED={} FIRST={round} ROUNDS=1 TRACE=1 (fuzz.seed={} fuzz.first={round} fuzz.rounds=1 fuzz.trace=1)",
        cfg.seed,
        cfg.seed
    );
}

/// The kernel's counts, without the parent's own memory (its heap may grow).
fn counts(g: &Grants) -> Result<InfoKernelCounts, Status> {
    mx::counts::read(&g.resource, &[&g.me])
}

/// Waits up to 3 s for the counts to return to `before`.
fn settle(g: &Grants, before: &InfoKernelCounts) -> Result<(), String> {
    mx::counts::settle(&g.resource, &[&g.me], before, 3_000_000_000)
}

struct Worker {
    process: mx::Process,
    channel: mx::Channel,
    slots: Vmo,
}

/// What the threads of a worker were doing, from its shared VMO.
fn in_flight(w: &Worker, threads: u64) -> String {
    let mut words = [0u8; shared::SIZE];
    let _ = w.slots.read(&mut words, 0);
    let word = |t: usize, i: usize| {
        let at = (t * shared::SLOT_WORDS + i) * 8;
        u64::from_le_bytes(words[at..at + 8].try_into().unwrap_or([0; 8]))
    };
    let mut out = String::new();
    for t in 0..threads as usize {
        let call = word(t, shared::CALL);
        let state = word(t, shared::STATE);
        let mut args = [0u64; 8];
        for (i, a) in args.iter_mut().enumerate() {
            *a = word(t, shared::ARGS + i);
        }
        let what = match (call, state) {
            (0, _) => String::from("no call yet"),
            (_, shared::FINISHED) => String::from("finished"),
            (c, s) => alloc::format!(
                "call #{} {} {}",
                word(t, shared::SEQ),
                shared::describe(c as usize - 1, &args),
                if s == shared::IN_CALL {
                    String::from("IN PROGRESS")
                } else {
                    alloc::format!("returned {:#x}", word(t, shared::RET))
                }
            ),
        };
        out.push_str(&alloc::format!("\n  thread {t}: {what}"));
    }
    out
}

/// Calls a worker's threads made, from its shared VMO.
fn calls_made(w: &Worker, threads: u64) -> u64 {
    let mut words = [0u8; shared::SIZE];
    let _ = w.slots.read(&mut words, 0);
    (0..threads as usize)
        .map(|t| {
            let word = |i: usize| {
                let at = (t * shared::SLOT_WORDS + i) * 8;
                u64::from_le_bytes(words[at..at + 8].try_into().unwrap_or([0; 8]))
            };
            if word(shared::CALL) == 0 {
                0
            } else {
                word(shared::SEQ) + 1
            }
        })
        .sum()
}

/// Whether a worker that ended without a report was ended by a call that
/// ends threads or processes (allowed: workers are expendable).
fn ended_by_fuzzing(w: &Worker, threads: u64) -> bool {
    let mut words = [0u8; shared::SIZE];
    let _ = w.slots.read(&mut words, 0);
    (0..threads as usize).any(|t| {
        let at = (t * shared::SLOT_WORDS + shared::CALL) * 8;
        let call = u64::from_le_bytes(words[at..at + 8].try_into().unwrap_or([0; 8]));
        let state_at = (t * shared::SLOT_WORDS + shared::STATE) * 8;
        let state = u64::from_le_bytes(words[state_at..state_at + 8].try_into().unwrap_or([0; 8]));
        state == shared::IN_CALL
            && call > 0
            && matches!(
                SYSCALLS[call as usize - 1].name,
                "process_exit" | "task_kill" | "thread_exit" | "vmar_unmap_handle_close_thread_exit"
            )
    })
}

fn spawn_worker(cfg: &Config, g: &Grants, round: u64, index: u64, calls: u64) -> Result<Worker, Status> {
    let (ours, theirs) = mx::Channel::create()?;
    let slots = Vmo::create(shared::SIZE as u64)?;
    let same = mx::SAME_RIGHTS;
    let mut foreign = String::new();
    for h in [&g.resource, &g.job, g.vdso.handle(), g.bootfs.handle(), &g.me, ours.handle()] {
        let (v, k) = value_and_koid(h);
        foreign.push_str(&alloc::format!("{v:x}:{k:x},"));
    }
    let args = [
        String::from("bin/fuzz"),
        String::from("role=worker"),
        alloc::format!("seed={}", cfg.seed),
        alloc::format!("wround={round}"),
        alloc::format!("index={index}"),
        alloc::format!("calls={calls}"),
        alloc::format!("threads={}", cfg.threads),
        alloc::format!("trace={}", u8::from(cfg.trace)),
        alloc::format!("nomem={}", u8::from(cfg.nomem)),
        alloc::format!("foreign={foreign}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut handles = alloc::vec![
        (mx_abi::PA_USER0, 0, theirs.into_handle()),
        (mx_abi::PA_USER1, 0, slots.duplicate(same)?.into_handle()),
        (mx_abi::PA_RESOURCE, 0, g.resource.duplicate(same)?),
        (mx_abi::PA_JOB_DEFAULT, 0, g.job.duplicate(same)?),
    ];
    if let Some(log) = mxrt::log::duplicate() {
        handles.push((mx_abi::PA_FDIO_LOGGER, 0, log));
    }
    let process = launch(Launch {
        name: "fuzz-worker",
        job: &g.job,
        image: Image { vmo: &g.bootfs, offset: g.image.0, size: g.image.1 },
        vdso: &g.vdso,
        args: &args,
        environ: &[],
        handles,
    })?;
    Ok(Worker { process, channel: ours, slots })
}

/// One round: `calls` calls over the workers. Returns the calls made.
fn run_round(
    cfg: &Config,
    g: &Grants,
    round: u64,
    calls: u64,
    hist: &mut [(u64, u64)],
    seen_all: &mut [u64],
) -> Result<u64, String> {
    let mut workers = Vec::new();
    for index in 0..cfg.workers {
        let share = calls / cfg.workers + u64::from(index < calls % cfg.workers);
        match spawn_worker(cfg, g, round, index, share) {
            Ok(w) => workers.push(w),
            // Under fault injection a launch may fail for want of memory.
            Err(Status::NoMemory) if cfg.nomem => {}
            Err(s) => return Err(alloc::format!("launching worker {index}: {s:?}")),
        }
    }
    // The watchdog: generous for TCG, far below the runner's timeout.
    let per_worker = calls / cfg.workers.max(1);
    let budget = 20_000_000_000 + per_worker * 20_000_000 * if cfg.trace { 10 } else { 1 };
    let deadline = mx::deadline_after(budget);
    for (i, w) in workers.iter().enumerate() {
        if w.process.handle().wait_one(Signals::PROCESS_TERMINATED, deadline).is_err() {
            let mut report = alloc::format!("HANG: worker {i} did not finish in {} s", budget / 1_000_000_000);
            for (j, w) in workers.iter().enumerate() {
                report.push_str(&alloc::format!("\n worker {j}:{}", in_flight(w, cfg.threads)));
            }
            for w in &workers {
                let _ = w.process.kill();
            }
            return Err(report);
        }
    }
    let mut done = 0;
    for (i, w) in workers.iter().enumerate() {
        let _ = w.process.kill();
        let code = w.process.info().map_or(-99, |info| info.return_code);
        let mut bytes = alloc::vec![0u8; 65536];
        let mut hs = [0u32; 4];
        let got = w.channel.read_raw(&mut bytes, &mut hs);
        let Ok((n, _)) = got else {
            if ended_by_fuzzing(w, cfg.threads) || cfg.nomem {
                done += calls_made(w, cfg.threads);
                continue;
            }
            return Err(alloc::format!(
                "worker {i} ended (code {code}) without a report, not by a fuzzed exit:{}",
                in_flight(w, cfg.threads)
            ));
        };
        let bytes = &bytes[..n];
        let word =
            |at: usize| u64::from_le_bytes(bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
        if n < 16 {
            return Err(alloc::format!("worker {i}: {}", core::str::from_utf8(bytes).unwrap_or("bad report")));
        }
        if word(8) != 0 || code == 1 {
            return Err(alloc::format!("worker {i} found a violation (the FAIL line above)"));
        }
        if code == 2 && !cfg.nomem {
            return Err(alloc::format!("worker {i} could not set up (see above)"));
        }
        done += word(0);
        let hist_at = 16;
        for (s, h) in hist.iter_mut().enumerate() {
            let at = hist_at + s * 8;
            let c = bytes.get(at..at + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
            let o = bytes.get(at + 4..at + 8).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
            h.0 += u64::from(c);
            h.1 += u64::from(o);
        }
        let seen_at = hist_at + SYSCALLS.len() * 8;
        for (s, seen) in seen_all.iter_mut().enumerate() {
            *seen |= word(seen_at + s * 8);
        }
        // Isolation: the worker's handle values name nothing of ours.
        let mut at = seen_at + SYSCALLS.len() * 8;
        while at + 12 <= n {
            let value = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
            let koid = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap_or([0; 8]));
            at += 12;
            if value == 0 || koid == 0 {
                continue;
            }
            if let Some((_, k, _, _)) = crate::pool::basic(value) {
                if k == koid {
                    return Err(alloc::format!(
                        "isolation: worker {i}'s handle value {value:#x} (koid {koid}) works in the parent"
                    ));
                }
            }
            let mut dup = 0;
            let s = unsafe { mx::sys::mx_handle_duplicate(value, mx::SAME_RIGHTS.bits(), &mut dup) };
            if s == 0 {
                let k = crate::pool::basic(dup).map_or(0, |b| b.1);
                unsafe { mx::sys::mx_handle_close(dup) };
                if k == koid {
                    return Err(alloc::format!("isolation: duplicating worker {i}'s handle value {value:#x} worked"));
                }
            }
        }
    }
    Ok(done)
}
