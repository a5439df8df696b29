//! Other processes and threads for the benchmarks.
//!
//! As the conformance suite does (userland/conformance/src/child.rs), the
//! program launches its own binary (`bin/bench` from bootfs, with the
//! `+job +vdso +bootfs` grants init gives it) with one argument `role=NAME`;
//! the objects it works on arrive as `PA_HND(PA_USER0, i)` handles. Every
//! echo role loops until it is killed (the channel echo also ends when its
//! peer closes):
//!
//! | role | `PA_USER0` handles | loop |
//! |---|---|---|
//! | `exit` | | exits 0 at once |
//! | `signal-peer` | eventpair end | [`Pong`] over one eventpair |
//! | `signal` | event in, event out | [`Pong`] over two events |
//! | `port` | port in, port out | `mx_port_wait` in, `mx_port_queue` out |
//! | `channel` | channel | waits, reads a message (bytes and handles), writes it back |

use alloc::string::String;
use alloc::vec::Vec;
use mx::sys::*;
use mx::{Handle, Process, Signals, Status, Thread, Vmar, Vmo};
use mx_abi::types::mx_handle_t;
use mx_abi::{VmFlags, PA_FDIO_LOGGER, PA_JOB_DEFAULT, PA_PROC_SELF, PA_USER0, PA_VMO_BOOTFS, PA_VMO_VDSO};

use crate::harness::check;

const INFINITE: u64 = u64::MAX;
/// The user signals the ping-pongs use: the two the initiator toggles
/// between, the two the responder answers with, and "stop".
pub const PING: [u32; 2] = [Signals::USER_0.bits(), Signals::USER_1.bits()];
pub const PONG: [u32; 2] = [Signals::USER_2.bits(), Signals::USER_3.bits()];
pub const STOP: u32 = Signals::USER_7.bits();
/// A port packet's key that tells a waiter thread to end.
pub const STOP_KEY: u64 = u64::MAX;

/// What init granted, and where our own image is in the boot filesystem.
pub struct Grants {
    job: Handle,
    vdso: Vmo,
    bootfs: Vmo,
    image: (u64, u64),
    process_self: Handle,
}

impl Grants {
    /// Takes the `+job +vdso +bootfs` grants and `PA_PROC_SELF`.
    pub fn take() -> Result<Grants, String> {
        let take = |ty| mxrt::take_handle(ty, 0).ok_or_else(|| alloc::format!("no handle {ty:#x} (grants)"));
        let job = take(PA_JOB_DEFAULT)?;
        let vdso = Vmo::from_handle(take(PA_VMO_VDSO)?);
        let bootfs = Vmo::from_handle(take(PA_VMO_BOOTFS)?);
        let process_self = take(PA_PROC_SELF)?;
        let dup = bootfs.duplicate(mx::SAME_RIGHTS).map_err(|s| alloc::format!("bootfs dup: {s:?}"))?;
        let fs = mx::bootfs::Bootfs::open(dup).map_err(|s| alloc::format!("bootfs: {s:?}"))?;
        let entry = fs.find("bin/bench").map_err(|s| alloc::format!("bin/bench in bootfs: {s:?}"))?;
        Ok(Grants { job, vdso, bootfs, image: (entry.offset, entry.size), process_self })
    }

    /// This process (`PA_PROC_SELF`).
    pub fn process_self(&self) -> mx_handle_t {
        self.process_self.raw()
    }

    /// Launches `bin/bench role=ROLE` with `handles` as `PA_HND(PA_USER0, i)`.
    pub fn spawn(&self, role: &str, handles: Vec<Handle>) -> Result<Process, String> {
        let err = |what: &str, s: Status| alloc::format!("launching role={role}: {what}: {s:?}");
        let image = mx::launch::Image { vmo: &self.bootfs, offset: self.image.0, size: self.image.1 };
        let (process, vmar) = Process::create(&self.job, "bench-child").map_err(|s| err("process_create", s))?;
        let plan = mx::launch::load_elf(&vmar, &image).map_err(|s| err("load", s))?;
        let vdso_base = mx::launch::map_vdso(&vmar, &self.vdso).map_err(|s| err("vdso", s))?;
        let sp = mx::launch::map_stack(&vmar, 64 * 1024).map_err(|s| err("stack", s))?;
        let thread = Thread::create(&process, "bench-child").map_err(|s| err("thread_create", s))?;
        let same = mx::SAME_RIGHTS;
        let mut msg = mx::processargs::Builder::new();
        msg.handle(mx_abi::PA_PROC_SELF, 0, process.duplicate(same).map_err(|s| err("dup", s))?.into_handle());
        msg.handle(mx_abi::PA_THREAD_SELF, 0, thread.duplicate(same).map_err(|s| err("dup", s))?.into_handle());
        msg.handle(mx_abi::PA_VMAR_ROOT, 0, vmar.into_handle());
        if let Some(log) = mxrt::log::duplicate() {
            msg.handle(PA_FDIO_LOGGER, 0, log);
        }
        for (i, h) in handles.into_iter().enumerate() {
            msg.handle(PA_USER0, i as u32, h);
        }
        let arg = alloc::format!("role={role}");
        msg.arg("bin/bench");
        msg.arg(&arg);
        let (bytes, mut hs) = msg.build();
        let (ours, theirs) = mx::Channel::create().map_err(|s| err("channel", s))?;
        ours.write(&bytes, &mut hs).map_err(|s| err("bootstrap", s))?;
        process
            .start(&thread, plan.entry as usize, sp, theirs.into_handle(), vdso_base)
            .map_err(|s| err("start", s))?;
        Ok(process)
    }
}

/// Kills a child (if still running) and waits until it is gone.
pub fn reap(process: Process) -> Result<(), String> {
    let _ = process.kill();
    process
        .handle()
        .wait_one(Signals::PROCESS_TERMINATED, mx::deadline_after(10_000_000_000))
        .map(drop)
        .map_err(|s| alloc::format!("child did not terminate: {s:?}"))
}

/// One side of a signal ping-pong: `tx` is the object we signal (through
/// `signal_peer` when `peer`), `rx` the one we wait on. Round `k` uses the
/// `k % 2` signal of each pair and clears the other one, so nothing needs a
/// separate clearing call: two syscalls per side per round.
#[derive(Clone, Copy)]
pub struct Pong {
    pub tx: mx_handle_t,
    pub rx: mx_handle_t,
    pub peer: bool,
}

impl Pong {
    /// Sets `set[k]` (and clears `set[1 - k]`) on the far side.
    #[inline(always)]
    pub fn send(&self, set: [u32; 2], k: usize) -> i32 {
        // SAFETY: no pointers.
        unsafe {
            if self.peer {
                mx_object_signal_peer(self.tx, set[1 - k], set[k])
            } else {
                mx_object_signal(self.tx, set[1 - k], set[k])
            }
        }
    }

    /// Waits for any of `mask`; the signals seen.
    #[inline(always)]
    pub fn wait(&self, mask: u32) -> Result<u32, i32> {
        let mut seen = 0;
        // SAFETY: `seen` is a valid out-pointer.
        let raw = unsafe { mx_object_wait_one(self.rx, mask, INFINITE, &mut seen) };
        if raw < 0 {
            Err(raw)
        } else {
            Ok(seen)
        }
    }

    /// Tells the responder to end.
    pub fn stop(&self) {
        // SAFETY: no pointers.
        let _ = unsafe {
            if self.peer {
                mx_object_signal_peer(self.tx, 0, STOP)
            } else {
                mx_object_signal(self.tx, 0, STOP)
            }
        };
    }

    /// The initiator's round `k`: ping, then wait for the pong.
    #[inline(always)]
    pub fn round(&self, k: usize) -> Result<(), String> {
        check(self.send(PING, k), "signal")?;
        self.wait(PONG[k]).map(drop).map_err(|raw| alloc::format!("wait_one:{raw}"))
    }

    /// The responder's loop, until [`STOP`] (or an error).
    pub fn respond(&self) -> i32 {
        let mut k = 0;
        loop {
            match self.wait(PING[k] | STOP) {
                Ok(seen) if seen & STOP != 0 => return 0,
                Ok(_) => {}
                Err(raw) => return raw,
            }
            if self.send(PONG, k) < 0 {
                return 2;
            }
            k ^= 1;
        }
    }
}

/// Runs the child role named by a `role=` argument, if there is one.
pub fn run_role() -> Option<i32> {
    let role = mxrt::args().iter().find_map(|a| a.strip_prefix("role=").map(String::from))?;
    let mut handles = (0..2).map(|i| mxrt::take_handle(PA_USER0, i).map_or(0, Handle::into_raw));
    let (a, b) = (handles.next().unwrap_or(0), handles.next().unwrap_or(0));
    Some(match role.as_str() {
        "exit" => 0,
        "signal-peer" => Pong { tx: a, rx: a, peer: true }.respond(),
        "signal" => Pong { tx: b, rx: a, peer: false }.respond(),
        "port" => port_echo(a, b, false),
        "channel" => channel_echo(a),
        _ => {
            mxrt::println!("bench: unknown role {role}");
            100
        }
    })
}

/// Waits for packets on `input` and answers each on `output`; with
/// `until_stop`, a packet with [`STOP_KEY`] ends it.
pub fn port_echo(input: mx_handle_t, output: mx_handle_t, until_stop: bool) -> i32 {
    let mut packet = [0u64; 6];
    loop {
        // SAFETY: `packet` holds one 48-byte packet.
        let raw = unsafe { mx_port_wait(input, INFINITE, packet.as_mut_ptr().cast(), 0) };
        if raw < 0 {
            return raw;
        }
        if until_stop && packet[0] == STOP_KEY {
            return 0;
        }
        // SAFETY: `packet` is a 48-byte user packet (its key and type kept).
        let raw = unsafe { mx_port_queue(output, packet.as_ptr().cast(), 0) };
        if raw < 0 {
            return raw;
        }
    }
}

/// The channel echo: every message comes back with its bytes and handles.
fn channel_echo(channel: mx_handle_t) -> i32 {
    let mut bytes = alloc::vec![0u8; 65536];
    let mut handles = [0 as mx_handle_t; 64];
    let want = (Signals::CHANNEL_READABLE | Signals::CHANNEL_PEER_CLOSED).bits();
    loop {
        let mut seen = 0;
        // SAFETY: valid out-pointer.
        if unsafe { mx_object_wait_one(channel, want, INFINITE, &mut seen) } < 0 {
            return 1;
        }
        let (mut nb, mut nh) = (0u32, 0u32);
        // SAFETY: both buffers are valid for the capacities given.
        let raw = unsafe {
            mx_channel_read(
                channel,
                0,
                bytes.as_mut_ptr().cast(),
                handles.as_mut_ptr(),
                bytes.len() as u32,
                handles.len() as u32,
                &mut nb,
                &mut nh,
            )
        };
        if raw < 0 {
            // PEER_CLOSED: the benchmark is over.
            return 0;
        }
        // SAFETY: the buffers hold what was just read.
        if unsafe { mx_channel_write(channel, 0, bytes.as_ptr().cast(), nb, handles.as_ptr(), nh) } < 0 {
            return 3;
        }
    }
}

/// A thread of this process with its own stack; [`Worker::join`] waits for
/// it and releases the stack.
pub struct Worker {
    thread: Thread,
    vmar: Vmar,
    stack: usize,
}

/// Bytes of a worker's stack.
pub const STACK_SIZE: usize = 64 * 1024;

/// Maps a fresh stack; its base address.
pub fn map_stack(vmar: &Vmar) -> Result<usize, String> {
    let vmo = Vmo::create(STACK_SIZE as u64).map_err(|s| alloc::format!("stack vmo: {s:?}"))?;
    vmar.map(0, &vmo, 0, STACK_SIZE, VmFlags::PERM_READ | VmFlags::PERM_WRITE)
        .map_err(|s| alloc::format!("stack map: {s:?}"))
}

/// The initial stack pointer for a thread on the stack at `base`: as a
/// call would leave it (rsp + 8 is 16-aligned).
pub fn stack_top(base: usize) -> usize {
    base + STACK_SIZE - 8
}

/// Creates a thread (not started) in `process`.
pub fn create_thread(process: mx_handle_t) -> Result<Thread, String> {
    let name = b"bench-worker";
    let mut raw = 0;
    // SAFETY: the name and the out-pointer are valid.
    check(unsafe { mx_thread_create(process, name.as_ptr().cast(), name.len() as u32, 0, &mut raw) }, "thread_create")?;
    Ok(Thread::from_handle(Handle::from_raw(raw)))
}

impl Worker {
    /// Starts `entry(arg1, arg2)` on a new thread of `process`.
    pub fn spawn(
        process: mx_handle_t,
        entry: extern "C" fn(usize, usize) -> !,
        arg1: usize,
        arg2: usize,
    ) -> Result<Worker, String> {
        let vmar = mxrt::vmar_root().ok_or_else(|| String::from("no root VMAR"))?;
        let stack = map_stack(&vmar)?;
        let worker = Worker { thread: create_thread(process)?, vmar, stack };
        worker
            .thread
            .start(entry as usize, stack_top(stack), arg1, arg2)
            .map_err(|s| alloc::format!("thread_start: {s:?}"))?;
        Ok(worker)
    }

    /// Whether the thread has ended.
    pub fn ended(&self) -> bool {
        self.thread.handle().wait_one(Signals::THREAD_TERMINATED, 0).is_ok()
    }

    /// Waits (10 s at most, then kills it) for the thread to end.
    pub fn join(self) -> Result<(), String> {
        let ended = self.thread.handle().wait_one(Signals::THREAD_TERMINATED, mx::deadline_after(10_000_000_000));
        if ended.is_err() {
            // SAFETY: no pointers.
            let _ = unsafe { mx_task_kill(self.thread.raw()) };
            let _ = self.thread.handle().wait_one(Signals::THREAD_TERMINATED, INFINITE);
        }
        // SAFETY: the thread is gone; nothing uses its stack any more.
        let _ = unsafe { self.vmar.unmap(self.stack, STACK_SIZE) };
        ended.map(drop).map_err(|s| alloc::format!("worker did not end: {s:?}"))
    }
}

/// A worker entry: the responder of a [`Pong`] over an eventpair end.
pub extern "C" fn pong_peer_entry(end: usize, _: usize) -> ! {
    Pong { tx: end as mx_handle_t, rx: end as mx_handle_t, peer: true }.respond();
    // SAFETY: no pointers; never returns.
    unsafe { mx_thread_exit() }
}

/// A worker entry: [`port_echo`] until a [`STOP_KEY`] packet.
pub extern "C" fn port_waiter_entry(input: usize, output: usize) -> ! {
    port_echo(input as mx_handle_t, output as mx_handle_t, true);
    // SAFETY: no pointers; never returns.
    unsafe { mx_thread_exit() }
}

/// A worker entry that ends at once.
pub extern "C" fn exit_entry(_: usize, _: usize) -> ! {
    // SAFETY: no pointers; never returns.
    unsafe { mx_thread_exit() }
}
