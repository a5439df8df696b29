//! Arguments for one call, drawn from the declaration's argument kinds.
//!
//! Every choice is generic (handles by declared type and rights, pointers
//! by direction and length, lengths, options, signals, deadlines) except
//! the exclusions in [`fixup`], each of which says why it is there.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mx_abi::meta::{ArgDecl, ArgKind, Len, SyscallDecl};
use mx_abi::SYSCALLS;

use crate::pool::{Pool, Tag, RECENT};
use crate::rng::Rng;

pub const PAGE: usize = 4096;
/// Read-write scratch pages; the last one holds handle out-areas.
pub const RW_PAGES: usize = 4;

/// Memory the fuzzer hands the kernel. Valid pointers only ever point at
/// `rw` (read-write) or `ro` (read-only), never at the fuzzer's own live
/// memory; `hole` is an unmapped page right after `ro`.
#[derive(Clone, Copy)]
pub struct Scratch {
    pub rw: usize,
    pub ro: usize,
    pub hole: usize,
    /// The thread's part of the playground VMAR (base, size).
    pub playground: (usize, usize),
    /// A stack and entry for threads the fuzzer starts in its own process.
    pub stub_stack_top: usize,
    pub stub_entry: usize,
    /// `_mx_thread_exit` in the vDSO (the stub calls it).
    pub thread_exit: usize,
    /// This thread's own handle value in its pool (for `task_kill`).
    pub own_thread: u32,
    pub me: u32,
}

impl Scratch {
    fn rw_len(&self) -> usize {
        (RW_PAGES - 1) * PAGE
    }
    fn out_area(&self, n: usize) -> usize {
        self.rw + (RW_PAGES - 1) * PAGE + (n % 16) * 256
    }
}

pub struct Call {
    pub args: [u64; 8],
    /// Pool values passed where the call consumes handles.
    pub released: Vec<u32>,
    /// (address, count) of handle out-areas in scratch.
    pub handle_outs: Vec<(usize, usize)>,
    /// Scratch addresses where the kernel writes an address (`*_addr`).
    pub addr_outs: Vec<usize>,
    /// Some pointer argument does not address its whole length of
    /// read-write scratch (NULL where not optional, unmapped, read-only,
    /// kernel, non-canonical, too long): INVALID_ARGS is then the
    /// user-copy layer's answer for every call (contract: a pointer that
    /// cannot be read or written).
    pub bad_pointer: bool,
}

/// How often each call is drawn, relative to 100 for most.
pub fn weight(decl: &SyscallDecl) -> u64 {
    match decl.name {
        // These end the calling thread or the whole worker: rare, so a
        // round gets through its calls (allowed only because workers are
        // child processes the parent watches).
        "process_exit" => 1,
        "thread_exit" => 2,
        // Its vDSO code stores to `*value_ptr` in user mode and runs `ud2`
        // when futex_wake fails, which it always does while futexes are not
        // implemented (NOT_SUPPORTED): every call kills the worker with a
        // user fault. Excluded until futexes exist.
        "futex_wake_handle_close_thread_exit" => 0,
        "vmar_unmap_handle_close_thread_exit" => 10,
        // Each writes a line to the serial console.
        "debug_write" | "debuglog_write" | "log_write" => 10,
        // The object types the pool most needs renewed.
        "handle_duplicate" | "channel_write" | "vmar_map" | "vmar_allocate" => 150,
        _ => 100,
    }
}

/// Element size of what a pointer argument addresses.
fn elem_size(c_type: &str) -> usize {
    match c_type {
        "void" | "char" | "bool" | "uint8_t" => 1,
        "mx_handle_t" | "uint32_t" | "mx_signals_t" | "mx_status_t" | "mx_futex_t" | "int32_t" => 4,
        "mx_wait_item_t" => 12,
        "mx_port_packet_t" | "mx_channel_call_args_t" => 48,
        "mx_vcpu_state_t" => 136,
        "uint64_t" | "size_t" | "uintptr_t" | "mx_time_t" => 8,
        _ => 64,
    }
}

const INTERESTING: [u64; 16] = [
    0,
    1,
    2,
    3,
    7,
    0x10,
    0xff,
    0x1000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    u64::MAX - 0xfff,
];

/// A deadline that is never far away: the fuzzer never blocks for long
/// (a wait forever would look like a hang).
fn deadline(rng: &mut Rng) -> u64 {
    let now = unsafe { mx::sys::mx_time_get(0) };
    match rng.below(5) {
        0 => 0,
        1 => 1,
        2 => now.saturating_sub(rng.below(1_000_000_000)),
        _ => now + rng.below(2_000_000),
    }
}

fn signals(rng: &mut Rng) -> u64 {
    match rng.below(5) {
        0 => 0,
        1 => 1 << (24 + rng.below(8)), // USER_n
        2 => 1 << rng.below(32),       // any one bit
        3 => 0x0000_0008 | 1 << (24 + rng.below(8)),
        _ => rng.next() & 0xffff_ffff,
    }
}

fn vm_flags(rng: &mut Rng) -> u64 {
    let common = [0x1u64, 0x3, 0x5, 0x7, 0x11, 0x13, 0x31, 0x380, 0x3c0, 0x180, 0x80, 0x401, 0x2, 0x4];
    match rng.below(4) {
        0 => rng.next() & 0x7ff,
        1 => rng.next() & 0xffff_ffff,
        _ => rng.pick(&common),
    }
}

fn length(rng: &mut Rng, elem: usize, scratch: &Scratch) -> u64 {
    let fits = (scratch.rw_len() / elem) as u64;
    match rng.below(20) {
        0..=7 => rng.below(fits.min(64) + 1),
        8..=9 => 0,
        10..=12 => rng.pick(&[1u64, 8, 16, 32, 48, 136, 224, 225, 256, 4095, 4096]) / elem as u64,
        13..=14 => rng.pick(&[fits, fits + 1, (PAGE / elem) as u64, 1024, 1025, 64, 65]),
        _ => rng.pick(&[0xffff_ffff, 0x8000_0000, u64::MAX, 1 << 40, 65536, 65537, 1 << 20, 0x7fff_ffff_ffff_ffff]),
    }
}

/// A generic integer for a value argument called `name`.
fn value(decl: &SyscallDecl, arg: &ArgDecl, rng: &mut Rng, pool: &Pool, scratch: &Scratch) -> u64 {
    let name = arg.name;
    if name.contains("deadline") {
        return deadline(rng);
    }
    if arg.c_type == "bool" {
        return rng.below(2);
    }
    let r = rng.next();
    match name {
        "options" | "clock_id" => rng.pick(&[0, 0, 0, 1, 2, 3, 4, 1 << 31, r & 0xffff_ffff]),
        "rights" => rng.pick(&[0x8000_0000, 0x8000_0000, r & 0x3fff, r >> 32, 0]),
        "waitfor" | "signals" | "clear_mask" | "set_mask" => signals(rng),
        "map_flags" | "prot_flags" => vm_flags(rng),
        "topic" | "property" | "kind" | "op" | "action" => {
            rng.pick(&[0, 1, 2, 3, 4, 5, 6, 7, 10, 12, 15, 18, 0x1_0000, (r >> 40) % 32, r & 0xffff_ffff])
        }
        "key" | "cookie" => rng.pick(&[0, 1, r]),
        "koid" => match pool.live.get(rng.below(pool.live.len() as u64) as usize) {
            Some(e) if rng.chance(70) => e.koid,
            _ => rng.pick(&INTERESTING),
        },
        "size" | "offset" | "vmo_offset" | "vmar_offset" | "len" | "low" | "high" | "addr" => {
            if name == "size" && decl.name.starts_with("port_") {
                return rng.pick(&[0, 0, 0, 1, 48]);
            }
            match rng.below(10) {
                0..=2 => PAGE as u64 * rng.below(8),
                3 => rng.pick(&INTERESTING),
                4 => rng.next() & 0xffff,
                5 if name == "addr" || name == "vmar_offset" => {
                    let (base, size) = scratch.playground;
                    let page = rng.below((size / PAGE) as u64) * PAGE as u64;
                    if name == "addr" {
                        base as u64 + page
                    } else {
                        page
                    }
                }
                6 if !pool.addrs.is_empty() => {
                    let a = pool.addrs[rng.below(pool.addrs.len() as u64) as usize];
                    if name == "addr" {
                        a + PAGE as u64 * rng.below(3)
                    } else {
                        a.wrapping_sub(scratch.playground.0 as u64)
                    }
                }
                _ => PAGE as u64 * rng.below(64) + rng.pick(&[0, 0, 0, 1, 0xfff]),
            }
        }
        "thread_entry" | "entry" | "stack" | "arg1" | "arg2" | "vaddr" | "paddr" | "base" => {
            rng.pick(&[0, 0x1000, r, scratch.playground.0 as u64, 0xffff_ffff_8020_0000, 1 << 47])
        }
        _ => match rng.below(4) {
            0 => rng.pick(&INTERESTING),
            1 => rng.below(16),
            2 => rng.next() & 0xffff_ffff,
            _ => rng.next(),
        },
    }
}

/// A handle value for an argument that takes one.
fn handle(arg: &ArgDecl, types: &[mx_abi::ObjType], rng: &mut Rng, pool: &Pool) -> u64 {
    let roll = rng.below(100);
    let matching: Vec<usize> = pool
        .live
        .iter()
        .enumerate()
        .filter(|(_, e)| types.is_empty() || types.iter().any(|t| *t as u32 == e.obj_type))
        .map(|(i, _)| i)
        .collect();
    let value = if roll < 60 && !matching.is_empty() {
        pool.live[matching[rng.below(matching.len() as u64) as usize]].value
    } else if roll < 78 && !pool.live.is_empty() {
        pool.live[rng.below(pool.live.len() as u64) as usize].value
    } else if roll < 84 && !pool.stale.is_empty() {
        pool.stale[rng.below(pool.stale.len() as u64) as usize]
    } else if roll < 88 {
        RECENT[rng.below(RECENT.len() as u64) as usize].load(Ordering::Relaxed)
    } else if roll < 92 || arg.optional && roll < 95 {
        0
    } else {
        // Forged: values that can never name a live handle of ours (even,
        // negative, a live value with its generation bits changed) or random.
        let base = pool.live.first().map_or(1, |e| e.value);
        let r = rng.next() as u32;
        rng.pick(&[1, 2, 0xffff_ffff, 0x7fff_ffff, 0x8000_0001, base & !1, base | 0x8000_0000, base ^ (1 << 25), r])
    };
    u64::from(value)
}

/// A pointer for an argument of kind In/Out/InOut/HandleOut addressing
/// `bytes` bytes (0 if unknown).
fn pointer(arg: &ArgDecl, bytes: usize, rng: &mut Rng, scratch: &Scratch, outs: &mut usize) -> u64 {
    let roll = rng.below(100);
    if arg.optional && roll < 10 {
        return 0;
    }
    let fits = bytes.min(scratch.rw_len());
    match roll {
        0..=64 => {
            if matches!(arg.kind, ArgKind::HandleOut(_)) {
                *outs += 1;
                return scratch.out_area(*outs) as u64 + if rng.chance(10) { rng.below(4) } else { 0 };
            }
            let room = (scratch.rw_len() - fits) as u64;
            let mut offset = rng.below(room + 1);
            if rng.chance(70) {
                offset &= !7;
            }
            (scratch.rw + offset as usize) as u64
        }
        65..=69 => (scratch.ro as u64 + rng.below(PAGE as u64)) & !7,
        70..=73 => (scratch.hole - rng.pick(&[1u64, 2, 4, 8, 16, 47]) as usize) as u64, // straddles the hole
        74..=77 => (scratch.rw + scratch.rw_len() - rng.pick(&[1usize, 4, 8, 16])) as u64, // straddles into RO
        78..=83 => 0,
        84..=86 => 0x1000,
        87..=89 => 0xffff_ffff_8020_0000,
        90..=91 => 0x8000_0000_0000_0000,
        92..=93 => u64::MAX - 7,
        94..=97 => (scratch.playground.0 as u64 + rng.below(scratch.playground.1 as u64)) & !7,
        _ => rng.next(),
    }
}

/// Fills the In/InOut memory at `ptr` (scratch only) with contents of the
/// declared type: handle values, wait items, call arguments, or random bytes.
fn fill(arg: &ArgDecl, ptr: u64, count: usize, rng: &mut Rng, pool: &Pool, scratch: &Scratch, call: &mut Call) {
    let start = ptr as usize;
    let end = scratch.rw + scratch.rw_len();
    if start < scratch.rw || start >= end {
        return;
    }
    let room = end - start;
    let write_u32 = |at: usize, v: u32| {
        if at + 4 <= end {
            unsafe { core::ptr::write_unaligned(at as *mut u32, v) }
        }
    };
    let write_u64 = |at: usize, v: u64| {
        if at + 8 <= end {
            unsafe { core::ptr::write_unaligned(at as *mut u64, v) }
        }
    };
    let any_handle = |rng: &mut Rng| -> u32 {
        if pool.live.is_empty() || rng.chance(10) {
            rng.next() as u32
        } else {
            pool.live[rng.below(pool.live.len() as u64) as usize].value
        }
    };
    match arg.c_type {
        "mx_handle_t" => {
            for i in 0..count.min(64) {
                let v = any_handle(rng);
                if arg.release {
                    call.released.push(v);
                }
                write_u32(start + 4 * i, v);
            }
        }
        "mx_wait_item_t" => {
            for i in 0..count.min(64) {
                write_u32(start + 12 * i, any_handle(rng));
                write_u32(start + 12 * i + 4, signals(rng) as u32);
                write_u32(start + 12 * i + 8, 0);
            }
        }
        "mx_channel_call_args_t" => {
            let base = scratch.rw as u64;
            write_u64(start, base + rng.below(256));
            write_u64(start + 8, base + 1024);
            write_u64(start + 16, base + 2048 + rng.below(64));
            write_u64(start + 24, scratch.out_area(15) as u64);
            write_u32(start + 32, rng.pick(&[0, 4, 8, 64, 65537]));
            write_u32(start + 36, rng.pick(&[0, 0, 1, 2, 65]));
            write_u32(start + 40, rng.pick(&[0, 4, 64, 256]));
            write_u32(start + 44, rng.pick(&[0, 1, 4]));
            for i in 0..2 {
                write_u32(scratch.rw + 1024 + 4 * i, any_handle(rng));
            }
        }
        _ => {
            let n = room.min(256).min(count.max(8));
            for i in 0..n {
                unsafe { core::ptr::write_volatile((start + i) as *mut u8, rng.next() as u8) };
            }
        }
    }
}

/// The arguments for a call to `SYSCALLS[index]`.
pub fn generate(index: usize, rng: &mut Rng, pool: &Pool, scratch: &Scratch) -> Call {
    let decl = &SYSCALLS[index];
    let mut call =
        Call { args: [0; 8], released: Vec::new(), handle_outs: Vec::new(), addr_outs: Vec::new(), bad_pointer: false };
    let position = |name: &str| decl.args.iter().position(|a| a.name == name);
    // Lengths first (the pointers' valid offsets depend on them).
    for (i, arg) in decl.args.iter().enumerate() {
        match arg.kind {
            ArgKind::Value => call.args[i] = value(decl, arg, rng, pool, scratch),
            ArgKind::Handle(spec) => {
                call.args[i] = handle(arg, spec.types, rng, pool);
                if arg.release {
                    call.released.push(call.args[i] as u32);
                }
            }
            _ => {}
        }
    }
    for arg in decl.args {
        if let ArgKind::In(Len::Arg(l))
        | ArgKind::Out(Len::Arg(l))
        | ArgKind::InOut(Len::Arg(l))
        | ArgKind::HandleOut(Len::Arg(l)) = arg.kind
        {
            if let Some(li) = position(l) {
                call.args[li] = length(rng, elem_size(arg.c_type), scratch);
            }
        }
    }
    let mut outs = rng.below(16) as usize;
    for (i, arg) in decl.args.iter().enumerate() {
        let count = match arg.kind {
            ArgKind::In(len) | ArgKind::Out(len) | ArgKind::InOut(len) | ArgKind::HandleOut(len) => match len {
                Len::One => 1,
                Len::Arg(l) => position(l).map_or(1, |li| call.args[li].min(1 << 20) as usize),
                Len::Unspecified => 1,
            },
            _ => continue,
        };
        let bytes = count.saturating_mul(elem_size(arg.c_type));
        let ptr = pointer(arg, bytes, rng, scratch, &mut outs);
        call.args[i] = ptr;
        let inside = (ptr as usize) >= scratch.rw
            && (ptr as usize).checked_add(bytes).is_some_and(|e| e <= scratch.rw + RW_PAGES * PAGE);
        if !(inside || ptr == 0 && arg.optional) {
            call.bad_pointer = true;
        }
        match arg.kind {
            ArgKind::HandleOut(_) => {
                let area = ptr as usize;
                if area >= scratch.rw && area.checked_add(256).is_some_and(|e| e <= scratch.rw + RW_PAGES * PAGE) {
                    let n = count.min(64);
                    unsafe { core::ptr::write_bytes(area as *mut u8, 0, 256) };
                    call.handle_outs.push((area, n));
                }
            }
            ArgKind::In(_) | ArgKind::InOut(_) => fill(arg, ptr, count, rng, pool, scratch, &mut call),
            ArgKind::Out(_) if arg.name.ends_with("_addr") => {
                let at = ptr as usize;
                if at >= scratch.rw && at.checked_add(8).is_some_and(|e| e <= scratch.rw + scratch.rw_len()) {
                    call.addr_outs.push(at);
                }
            }
            _ => {}
        }
    }
    fixup(decl, &mut call, rng, pool, scratch);
    call
}

/// A pointer to `len` bytes inside the read-write scratch.
fn scratch_ptr(rng: &mut Rng, scratch: &Scratch, len: usize) -> u64 {
    (scratch.rw + rng.below((scratch.rw_len() - len.min(scratch.rw_len())) as u64 + 1) as usize) as u64
}

/// The exclusions: each keeps the fuzzer itself alive and honest, not the
/// kernel safe.
fn fixup(decl: &SyscallDecl, call: &mut Call, rng: &mut Rng, pool: &Pool, scratch: &Scratch) {
    let a = &mut call.args;
    match decl.name {
        // vDSO-only calls that touch their buffers in user mode: a bad
        // pointer faults the fuzzer (a user fault, not the kernel's doing).
        "system_get_version" => {
            a[1] = rng.below(64);
            a[0] = scratch_ptr(rng, scratch, 64);
        }
        "cache_flush" => {
            a[1] = rng.below(PAGE as u64);
            a[0] = scratch_ptr(rng, scratch, PAGE);
        }
        // The vDSO's channel_call reads `*read_status` itself.
        "channel_call" if a[6] != 0 => a[6] = scratch_ptr(rng, scratch, 8) & !3,
        // A thread the fuzzer starts in its own process runs the exit stub
        // on the stub stack: any other entry would fault and kill the worker.
        // Asked of the kernel, not the pool: the value may be a live handle
        // the pool never adopted (seed 12, round 38 started one at 0x1000).
        "thread_start" => {
            let own = crate::pool::basic(a[0] as u32).is_some_and(|(obj_type, _, process, _)| {
                obj_type == mx_abi::ObjType::Thread as u32 && process == crate::pool::SELF_KOID.load(Ordering::Relaxed)
            });
            if own {
                a[1] = scratch.stub_entry as u64;
                a[2] = scratch.stub_stack_top as u64;
                a[3] = scratch.thread_exit as u64;
            }
        }
        // Killing another fuzz thread could stop it inside the runtime's
        // heap or print lock (the worker would deadlock): kill only ourselves.
        // Killing ourselves (the worker, or this fuzz thread) ends the
        // round's calls early: allowed, but rarely.
        "task_kill" => {
            if let Some(e) = pool.find(a[0] as u32) {
                if matches!(e.tag, Tag::FuzzThread(t) if t != scratch.me) {
                    a[0] = u64::from(scratch.own_thread);
                }
                let own = matches!(e.tag, Tag::FuzzThread(_) | Tag::SelfProcess);
                if own && !rng.chance(2) {
                    a[0] = 2;
                }
            }
        }
        // Running a guest with random state may never exit: guest fuzzing
        // comes with the hypervisor. Only invalid VCPU handles here.
        "vcpu_resume" if pool.find(a[0] as u32).is_some_and(|e| e.obj_type == mx_abi::ObjType::Vcpu as u32) => {
            a[0] = 2;
        }
        _ => {}
    }
}
