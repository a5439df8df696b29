//! Microbenchmarks of the `mx_` calls.
//!
//! One line per benchmark, in the format of linux-ref's lbench (so one
//! parser reads both):
//!
//! ```text
//! BENCH <name> iters=<n> ns_per_op=<x> tsc_per_op=<y> reps=<r> ns_min=<a> ns_max=<b> [key=value ...]
//! BENCH <name> error=<reason>
//! ```
//!
//! framed by `BENCH_BEGIN ...` and `BENCH_END failures=<n>`. Each benchmark
//! is calibrated so one repetition takes about `target_ms` (default 100 ms),
//! then repeated `reps` times (default 5); ns_per_op and tsc_per_op are the
//! medians. Time is the TSC (`rdtsc`), converted with
//! `mx_ticks_per_second`. Arguments: `quick` (4 ops, 3
//! repetitions: proves the program works), `target_ms=N`, `reps=N`,
//! `only=NAME,PREFIX*,...`; the last three also as `bench.KEY=VALUE` on the
//! kernel command line. `make bench` (`mtool bench`) runs it and
//! compares it with Linux/KVM; the benchmarks are listed in `main` below.
//!
//! init runs it from etc/bench.rc with `+resource +job +vdso +bootfs
//! +hyperv`, after starting `bin/hyperv-server` as a service: the
//! cross-process benchmarks launch this same binary with `role=NAME`
//! (task.rs); the hypervisor rows (hv.rs) make a HYPERVISOR resource from
//! the root resource and print `error=no_svm` without SVM; the Hyper-V
//! server rows (hyperv.rs) are a root client of the server.

#![no_std]
#![no_main]

extern crate alloc;

mod harness;
mod hv;
mod hyperv;
mod task;

use alloc::string::String;
use alloc::vec::Vec;

use harness::{check, rdtsc, timed, Config};
use mx::sys::*;
use mx::{Handle, Signals};
use mx_abi::types::mx_handle_t;
use mx_abi::VmFlags;
use task::{reap, Grants, Pong, Worker};

mxrt::entry!(main);

const INFINITE: u64 = u64::MAX;
const MX_INFO_HANDLE_VALID: u32 = 1;
/// Handle counts of the lookup scaling rows.
const TABLE_SIZES: [usize; 3] = [1, 1000, 100_000];
/// Waiter counts of the port wake-up scaling rows.
const WAITERS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

fn main() -> i32 {
    if let Some(code) = task::run_role() {
        return code;
    }
    // Arguments, then `bench.KEY=VALUE` words of the kernel command line
    // (init passes them on as environment strings).
    let args = mxrt::args();
    let environ = mxrt::environ();
    let arg = |key: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(key))
            .or_else(|| environ.iter().find_map(|e| e.strip_prefix("bench.")?.strip_prefix(key)))
            .map(String::from)
    };
    let quick = args.iter().any(|a| a == "quick");
    // SAFETY: no pointers.
    let tps = unsafe { mx_ticks_per_second() };
    let target_ms: u64 = arg("target_ms=").and_then(|v| v.parse().ok()).unwrap_or(100);
    let reps: usize = arg("reps=").and_then(|v| v.parse().ok()).unwrap_or(if quick { 3 } else { 5 }).clamp(1, 15);
    let only = arg("only=").map(|v| v.split(',').map(String::from).collect()).unwrap_or_default();
    let mut cfg = Config { quick, target_tsc: tps / 1000 * target_ms, reps, only, tps, failures: 0 };
    // SAFETY: no pointers.
    let cpus = unsafe { mx_system_get_num_cpus() };
    mxrt::println!(
        "BENCH_BEGIN target_ms={target_ms} reps={reps} tsc_mhz={:.3} ncpu={cpus} quick={}",
        tps as f64 / 1e6,
        u8::from(quick)
    );
    let grants = Grants::take();

    syscalls(&mut cfg);
    objects(&mut cfg);
    match &grants {
        Ok(g) => {
            cross_process(&mut cfg, g);
            threads(&mut cfg, g);
        }
        Err(e) => {
            for name in CROSS_PROCESS.iter().chain(THREADED) {
                cfg.error(name, e);
            }
        }
    }
    memory(&mut cfg);
    handle_scaling(&mut cfg);
    if let Ok(g) = &grants {
        port_scaling(&mut cfg, g);
    }
    let hyp = hv::take_resource();
    let probe = hyp.as_ref().ok().and_then(|h| h.duplicate(mx::SAME_RIGHTS).ok());
    hv::run(&mut cfg, hyp, grants.as_ref());
    hyperv::run(&mut cfg, probe);
    mxrt::println!("BENCH_END failures={}", cfg.failures);
    cfg.failures.min(100) as i32
}

const CROSS_PROCESS: &[&str] = &[
    "eventpair_pingpong",
    "event_pingpong",
    "port_pingpong",
    "channel_rt_1b",
    "channel_rt_4k",
    "channel_rt_1b_1h",
    "process_create_exit",
];
const THREADED: &[&str] = &["eventpair_pingpong_thread", "thread_create_join"];

/// The cheapest call: into the kernel and straight back.
fn syscalls(cfg: &mut Config) {
    cfg.run("null_syscall", "call=handle_close(INVALID)", u64::MAX, |n| {
        // SAFETY: no pointers.
        timed(n, || check(unsafe { mx_handle_close(0) }, "handle_close"))
    });
    // A pure getter that resolves a handle.
    let Ok(event) = mx::Event::create() else { return cfg.error("handle_valid", "event_create") };
    let h = event.raw();
    cfg.run("handle_valid", "call=object_get_info(HANDLE_VALID)", u64::MAX, |n| {
        timed(n, || {
            // SAFETY: HANDLE_VALID never touches the (empty) buffer.
            let raw = unsafe {
                mx_object_get_info(
                    h,
                    MX_INFO_HANDLE_VALID,
                    core::ptr::null_mut(),
                    0,
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                )
            };
            check(raw, "get_info")
        })
    });
}

/// Single-thread object operations.
fn objects(cfg: &mut Config) {
    let Ok(event) = mx::Event::create() else { return cfg.error("handle_dup_close", "event_create") };
    let h = event.raw();
    cfg.run("handle_dup_close", "", u64::MAX, |n| {
        timed(n, || {
            let mut dup = 0;
            // SAFETY: valid out-pointer.
            check(unsafe { mx_handle_duplicate(h, mx::SAME_RIGHTS.bits(), &mut dup) }, "duplicate")?;
            // SAFETY: no pointers.
            check(unsafe { mx_handle_close(dup) }, "close")
        })
    });
    // Signal, then wait_one (already satisfied); alternating signals so
    // nothing else needs clearing.
    let mut k = 0;
    let signal = [Signals::USER_0.bits(), Signals::USER_1.bits()];
    cfg.run("event_signal_wait", "", u64::MAX, |n| {
        timed(n, || {
            // SAFETY: no pointers.
            check(unsafe { mx_object_signal(h, signal[1 - k], signal[k]) }, "signal")?;
            let mut seen = 0;
            // SAFETY: valid out-pointer.
            check(unsafe { mx_object_wait_one(h, signal[k], INFINITE, &mut seen) }, "wait_one")?;
            k ^= 1;
            Ok(())
        })
    });
    let Ok(port) = mx::Port::create() else { return cfg.error("port_queue_wait", "port_create") };
    let p = port.raw();
    cfg.run("port_queue_wait", "", u64::MAX, |n| {
        let mut packet = [0u64; 6];
        timed(n, || {
            // SAFETY: `packet` is a 48-byte user packet.
            check(unsafe { mx_port_queue(p, packet.as_ptr().cast(), 0) }, "queue")?;
            // SAFETY: `packet` has room for one.
            check(unsafe { mx_port_wait(p, INFINITE, packet.as_mut_ptr().cast(), 0) }, "wait")
        })
    });
}

/// Round trips with a child process, and process creation.
fn cross_process(cfg: &mut Config, g: &Grants) {
    // Signal ping-pong over an eventpair (signal_peer) and over two events.
    if cfg.selected("eventpair_pingpong") {
        let r = mx::EventPair::create().map_err(|s| alloc::format!("eventpair_create:{s:?}")).and_then(|(a, b)| {
            let child = g.spawn("signal-peer", alloc::vec![b.into_handle()])?;
            let pong = Pong { tx: a.raw(), rx: a.raw(), peer: true };
            pingpong(cfg, "eventpair_pingpong", "peer=process", &pong);
            pong.stop();
            reap(child)
        });
        if let Err(e) = r {
            cfg.error("eventpair_pingpong", &e);
        }
    }
    if cfg.selected("event_pingpong") {
        let r = (|| {
            let ping = mx::Event::create().map_err(|s| alloc::format!("event_create:{s:?}"))?;
            let pong_ev = mx::Event::create().map_err(|s| alloc::format!("event_create:{s:?}"))?;
            let dup = |e: &mx::Event| e.duplicate(mx::SAME_RIGHTS).map(|d| d.into_handle());
            let handles = alloc::vec![
                dup(&ping).map_err(|s| alloc::format!("dup:{s:?}"))?,
                dup(&pong_ev).map_err(|s| alloc::format!("dup:{s:?}"))?
            ];
            let child = g.spawn("signal", handles)?;
            let pong = Pong { tx: ping.raw(), rx: pong_ev.raw(), peer: false };
            pingpong(cfg, "event_pingpong", "peer=process", &pong);
            pong.stop();
            reap(child)
        })();
        if let Err(e) = r {
            cfg.error("event_pingpong", &e);
        }
    }
    if cfg.selected("port_pingpong") {
        let r = (|| {
            let port = || mx::Port::create().map_err(|s| alloc::format!("port_create:{s:?}"));
            let (to_child, from_child) = (port()?, port()?);
            let dup = |p: &mx::Port| p.duplicate(mx::SAME_RIGHTS).map(|d| d.into_handle());
            let handles = alloc::vec![
                dup(&to_child).map_err(|s| alloc::format!("dup:{s:?}"))?,
                dup(&from_child).map_err(|s| alloc::format!("dup:{s:?}"))?
            ];
            let child = g.spawn("port", handles)?;
            let (tx, rx) = (to_child.raw(), from_child.raw());
            cfg.run("port_pingpong", "peer=process", u64::MAX, |n| {
                let mut packet = [0u64; 6];
                timed(n, || {
                    // SAFETY: `packet` is a 48-byte user packet.
                    check(unsafe { mx_port_queue(tx, packet.as_ptr().cast(), 0) }, "queue")?;
                    // SAFETY: room for one packet.
                    check(unsafe { mx_port_wait(rx, INFINITE, packet.as_mut_ptr().cast(), 0) }, "wait")
                })
            });
            reap(child)
        })();
        if let Err(e) = r {
            cfg.error("port_pingpong", &e);
        }
    }
    for (name, bytes, with_handle) in
        [("channel_rt_1b", 1, false), ("channel_rt_4k", 4096, false), ("channel_rt_1b_1h", 1, true)]
    {
        if !cfg.selected(name) {
            continue;
        }
        let r = (|| {
            let (ours, theirs) = mx::Channel::create().map_err(|s| alloc::format!("channel_create:{s:?}"))?;
            let child = g.spawn("channel", alloc::vec![theirs.into_handle()])?;
            let event = mx::Event::create().map_err(|s| alloc::format!("event_create:{s:?}"))?;
            // The handle travels there and back; we keep its latest value.
            let mut travelling = event.into_handle().into_raw();
            let extra = alloc::format!("peer=process bytes={bytes} handles={}", u8::from(with_handle));
            let ch = ours.raw();
            let mut buf = alloc::vec![0u8; bytes];
            let readable = Signals::CHANNEL_READABLE.bits();
            cfg.run(name, &extra, u64::MAX, |n| {
                timed(n, || {
                    let nh = u32::from(with_handle);
                    // SAFETY: the buffers are valid for their lengths.
                    let raw = unsafe { mx_channel_write(ch, 0, buf.as_ptr().cast(), bytes as u32, &travelling, nh) };
                    check(raw, "write")?;
                    let mut seen = 0;
                    // SAFETY: valid out-pointer.
                    check(unsafe { mx_object_wait_one(ch, readable, INFINITE, &mut seen) }, "wait_one")?;
                    let (mut nb, mut got) = (0u32, 0u32);
                    let mut h = 0;
                    // SAFETY: the buffers are valid for the capacities given.
                    let raw = unsafe {
                        mx_channel_read(ch, 0, buf.as_mut_ptr().cast(), &mut h, bytes as u32, 1, &mut nb, &mut got)
                    };
                    check(raw, "read")?;
                    if with_handle {
                        travelling = h;
                    }
                    Ok(())
                })
            });
            drop(Handle::from_raw(travelling));
            drop(ours);
            reap(child)
        })();
        if let Err(e) = r {
            cfg.error(name, &e);
        }
    }
    cfg.run("process_create_exit", "image=bin/bench", 1000, |n| {
        timed(n, || {
            let child = g.spawn("exit", Vec::new())?;
            child.handle().wait_one(Signals::PROCESS_TERMINATED, INFINITE).map_err(|s| alloc::format!("wait:{s:?}"))?;
            Ok(())
        })
    });
}

/// The initiator's side of a [`Pong`], as one benchmark.
fn pingpong(cfg: &mut Config, name: &str, extra: &str, pong: &Pong) {
    let mut k = 0;
    cfg.run(name, extra, u64::MAX, |n| {
        timed(n, || {
            pong.round(k)?;
            k ^= 1;
            Ok(())
        })
    });
}

/// Threads of this process.
fn threads(cfg: &mut Config, g: &Grants) {
    if cfg.selected("eventpair_pingpong_thread") {
        let r = mx::EventPair::create().map_err(|s| alloc::format!("eventpair_create:{s:?}")).and_then(|(a, b)| {
            let worker = Worker::spawn(g.process_self(), task::pong_peer_entry, b.raw() as usize, 0)?;
            let pong = Pong { tx: a.raw(), rx: a.raw(), peer: true };
            pingpong(cfg, "eventpair_pingpong_thread", "peer=thread", &pong);
            pong.stop();
            worker.join()
        });
        if let Err(e) = r {
            cfg.error("eventpair_pingpong_thread", &e);
        }
    }
    if cfg.selected("thread_create_join") {
        let r = (|| {
            let vmar = mxrt::vmar_root().ok_or_else(|| String::from("no root VMAR"))?;
            let stack = task::map_stack(&vmar)?;
            let entry = task::exit_entry as extern "C" fn(usize, usize) -> ! as usize;
            cfg.run("thread_create_join", "", u64::MAX, |n| {
                timed(n, || {
                    let thread = task::create_thread(g.process_self())?;
                    thread
                        .start(entry, task::stack_top(stack), 0, 0)
                        .map_err(|s| alloc::format!("thread_start:{s:?}"))?;
                    thread
                        .handle()
                        .wait_one(Signals::THREAD_TERMINATED, INFINITE)
                        .map_err(|s| alloc::format!("wait:{s:?}"))?;
                    Ok(())
                })
            });
            // SAFETY: every thread that used the stack has ended.
            unsafe { vmar.unmap(stack, task::STACK_SIZE) }.map_err(|s| alloc::format!("unmap:{s:?}"))
        })();
        if let Err(e) = r {
            cfg.error("thread_create_join", &e);
        }
    }
}

/// VMO copies and page faults.
fn memory(cfg: &mut Config) {
    let Ok(vmo) = mx::Vmo::create(4096) else { return cfg.error("vmo_write_read_4k", "vmo_create") };
    let v = vmo.raw();
    let mut buf = alloc::vec![0x5au8; 4096];
    cfg.run("vmo_write_read_4k", "bytes=4096", u64::MAX, |n| {
        timed(n, || {
            let mut actual = 0;
            // SAFETY: `buf` is valid for 4096 bytes.
            check(unsafe { mx_vmo_write(v, buf.as_ptr().cast(), 0, 4096, &mut actual) }, "write")?;
            // SAFETY: as above.
            check(unsafe { mx_vmo_read(v, buf.as_mut_ptr().cast(), 0, 4096, &mut actual) }, "read")
        })
    });
    // First touch of fresh pages of a mapped VMO: fault, zeroed frame, map.
    const CHUNK: u64 = 1024;
    cfg.run("page_fault", "what=first_write_to_mapped_vmo_page", 64 * CHUNK, |n| {
        let vmar = mxrt::vmar_root().ok_or_else(|| String::from("no root VMAR"))?;
        let mut ticks = 0;
        let mut left = n;
        while left > 0 {
            let pages = left.min(CHUNK);
            let len = pages as usize * 4096;
            let vmo = mx::Vmo::create(len as u64).map_err(|s| alloc::format!("vmo_create:{s:?}"))?;
            let rw = VmFlags::PERM_READ | VmFlags::PERM_WRITE;
            let addr = vmar.map(0, &vmo, 0, len, rw).map_err(|s| alloc::format!("map:{s:?}"))?;
            let start = rdtsc();
            for page in 0..pages as usize {
                // SAFETY: the page is mapped read-write for us alone.
                unsafe { core::ptr::write_volatile((addr + page * 4096) as *mut u8, 1) };
            }
            ticks += rdtsc() - start;
            // SAFETY: nothing refers to the mapping any more.
            unsafe { vmar.unmap(addr, len) }.map_err(|s| alloc::format!("unmap:{s:?}"))?;
            left -= pages;
        }
        Ok(ticks)
    });
}

/// Handle lookup with 1, 1000 and 100000 handles in the table: the
/// lookups cycle over (up to 256) handles spread evenly across them.
fn handle_scaling(cfg: &mut Config) {
    for size in TABLE_SIZES {
        let name = alloc::format!("handle_lookup_{size}");
        if !cfg.selected(&name) {
            continue;
        }
        let r = (|| {
            let event = mx::Event::create().map_err(|s| alloc::format!("event_create:{s:?}"))?;
            let mut table: Vec<mx_handle_t> = Vec::new();
            table.try_reserve(size).map_err(|_| String::from("no memory"))?;
            table.push(event.raw());
            let mut result = Ok(());
            while table.len() < size {
                let mut dup = 0;
                // SAFETY: valid out-pointer.
                let raw = unsafe { mx_handle_duplicate(event.raw(), mx::SAME_RIGHTS.bits(), &mut dup) };
                if let Err(e) = check(raw, "duplicate") {
                    result = Err(alloc::format!("{e}_at_{}", table.len()));
                    break;
                }
                table.push(dup);
            }
            if result.is_ok() {
                let picks = size.min(256);
                let sample: Vec<mx_handle_t> = (0..picks).map(|i| table[i * size / picks]).collect();
                let mut i = 0;
                cfg.run(&name, &alloc::format!("handles={size}"), u64::MAX, |n| {
                    timed(n, || {
                        let h = sample[i % picks];
                        i += 1;
                        // SAFETY: HANDLE_VALID never touches the (empty) buffer.
                        let raw = unsafe {
                            mx_object_get_info(
                                h,
                                MX_INFO_HANDLE_VALID,
                                core::ptr::null_mut(),
                                0,
                                core::ptr::null_mut(),
                                core::ptr::null_mut(),
                            )
                        };
                        check(raw, "get_info")
                    })
                });
            }
            for &h in &table[1..] {
                drop(Handle::from_raw(h));
            }
            result
        })();
        if let Err(e) = r {
            cfg.error(&name, &e);
        }
    }
}

/// Port wake-up with 1 to 64 waiters: the threads all wait on one port; we
/// queue a packet and wait for the woken one's answer on a second port.
fn port_scaling(cfg: &mut Config, g: &Grants) {
    for waiters in WAITERS {
        let name = alloc::format!("port_wakeup_{waiters}");
        if !cfg.selected(&name) {
            continue;
        }
        let r = (|| {
            let port = || mx::Port::create().map_err(|s| alloc::format!("port_create:{s:?}"));
            let (work, done) = (port()?, port()?);
            let (w, d) = (work.raw(), done.raw());
            let mut workers = Vec::new();
            let mut result = Ok(());
            for _ in 0..waiters {
                match Worker::spawn(g.process_self(), task::port_waiter_entry, w as usize, d as usize) {
                    Ok(worker) => workers.push(worker),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if result.is_ok() {
                // Let them all get to their wait.
                let _ = mx::nanosleep(mx::deadline_after(20_000_000));
                cfg.run(&name, &alloc::format!("waiters={waiters}"), u64::MAX, |n| {
                    let mut packet = [0u64; 6];
                    timed(n, || {
                        packet[0] = 1;
                        // SAFETY: `packet` is a 48-byte user packet.
                        check(unsafe { mx_port_queue(w, packet.as_ptr().cast(), 0) }, "queue")?;
                        // SAFETY: room for one packet.
                        check(unsafe { mx_port_wait(d, INFINITE, packet.as_mut_ptr().cast(), 0) }, "wait")
                    })
                });
            }
            let stop = [task::STOP_KEY, 0, 0, 0, 0, 0];
            for _ in 0..workers.len() {
                // SAFETY: `stop` is a 48-byte user packet.
                check(unsafe { mx_port_queue(w, stop.as_ptr().cast(), 0) }, "queue_stop")?;
            }
            for worker in workers {
                worker.join()?;
            }
            result
        })();
        if let Err(e) = r {
            cfg.error(&name, &e);
        }
    }
}
