//! `mx_thread_create`, `mx_thread_start`, `mx_thread_exit`, `mx_task_kill`
//! of threads, `MX_INFO_THREAD` (§5.25, §5.26). Extra threads run in child
//! processes (the same binary at the same addresses), at the entry points
//! below, on stacks mapped into the child's root VMAR.

use alloc::vec::Vec;

use crate::child::{self, Child};
use crate::fixture::*;
use crate::harness::Outcome;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Handle, Process, Rights, Signals, Status, Thread, Vmo};
use mx_abi::object::{InfoThread, InfoTopic};
use mx_abi::VmFlags;

core::arch::global_asm!(
    ".globl conformance_entry_spin",
    "conformance_entry_spin:",
    "2: pause",
    "jmp 2b",
    ".globl conformance_entry_ud2",
    "conformance_entry_ud2:",
    "ud2",
);

extern "C" {
    fn conformance_entry_spin();
    fn conformance_entry_ud2();
}

/// Runs in a child thread: blocks for good.
extern "C" fn entry_sleep() -> ! {
    loop {
        // SAFETY: no pointers.
        unsafe { mx_nanosleep(u64::MAX) };
    }
}

/// Runs in a child thread: exits it.
extern "C" fn entry_exit() -> ! {
    // SAFETY: no pointers; does not return.
    unsafe { mx_thread_exit() }
}

cases![
    create_rights_and_type,
    create_name_cut_to_31,
    create_options_invalid,
    create_null_or_bad_name,
    create_process_errors,
    create_bad_out_creates_nothing,
    new_thread_state_is_new,
    info_thread_needs_read,
    start_before_process_start_bad_state,
    start_errors,
    start_twice_bad_state,
    started_thread_runs,
    blocked_thread_state,
    thread_exit_ends_only_that_thread,
    kill_thread_leaves_process,
    kill_thread_needs_destroy,
    kill_process_ends_its_threads,
    fault_in_any_thread_kills_process,
    entry_at_kernel_address_kills_process,
    stack_outside_user_space_kills_process,
];

fn stack(c: &Child) -> Result<usize, alloc::string::String> {
    let vmo = Vmo::create(16 * 1024).map_err(|s| alloc::format!("vmo: {s:?}"))?;
    let addr = c
        .vmar
        .map(0, &vmo, 0, 16 * 1024, VmFlags::PERM_READ | VmFlags::PERM_WRITE)
        .map_err(|s| alloc::format!("map stack: {s:?}"))?;
    Ok(addr + 16 * 1024 - 8)
}

fn ready_child() -> Result<(Child, mx::Channel), alloc::string::String> {
    let (ours, theirs) = mx::Channel::create().map_err(|s| alloc::format!("channel: {s:?}"))?;
    let c = child::spawn_child("block", alloc::vec![(mx_abi::PA_USER0, 0, theirs.into_handle())])?;
    ours.handle()
        .wait_one(Signals::CHANNEL_READABLE, after(10_000_000_000))
        .map_err(|s| alloc::format!("child never said ready: {s:?}"))?;
    Ok((c, ours))
}

fn finish(c: Child) -> Outcome {
    ok!(c.process.kill());
    expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    Ok(())
}

fn state(t: &Thread) -> Result<u32, Status> {
    let i: InfoThread = t.handle().info(InfoTopic::Thread)?;
    Ok(i.state)
}

/// Waits up to a second for `t` to reach `want`.
fn wait_state(t: &Thread, want: u32) -> Result<(), alloc::string::String> {
    let deadline = after(2_000_000_000);
    loop {
        let s = state(t).map_err(|s| alloc::format!("MX_INFO_THREAD: {s:?}"))?;
        if s == want {
            return Ok(());
        }
        if mx::time_monotonic() > deadline {
            return Err(alloc::format!("thread state {s}, expected {want}"));
        }
        let _ = mx::nanosleep(after(2_000_000));
    }
}

fn new_process() -> Result<(Process, mx::Vmar), alloc::string::String> {
    let job = core::mem::ManuallyDrop::new(Handle::from_raw(child::job()));
    Process::create(&job, "thread-test").map_err(|s| alloc::format!("process_create: {s:?}"))
}

fn create(p: u32, name: &[u8], len: u32) -> (i32, u32) {
    let mut out = 0;
    let s = unsafe { mx_thread_create(p, name.as_ptr().cast(), len, 0, &mut out) };
    (s, out)
}

fn create_rights_and_type() -> Outcome {
    let (p, _v) = ok!(new_process());
    let (s, t) = create(p.raw(), b"t", 1);
    expect_status!(s, Status::Ok);
    let t = Handle::from_raw(t);
    let b = ok!(basic(t.raw()));
    expect_eq!((b.rights, b.obj_type, b.props), (0x12cf, 2, 1));
    expect_eq!(b.related_koid, ok!(basic(p.raw())).koid);
    Ok(())
}

fn create_name_cut_to_31() -> Outcome {
    let (p, _v) = ok!(new_process());
    let long = [b'q'; 40];
    let (s, t) = create(p.raw(), &long, 40);
    expect_status!(s, Status::Ok);
    let t = Handle::from_raw(t);
    let mut buf = [0xffu8; 32];
    expect_status!(unsafe { mx_object_get_property(t.raw(), 3, buf.as_mut_ptr().cast(), 32) }, Status::Ok);
    expect!(buf[..31].iter().all(|&b| b == b'q') && buf[31] == 0, "{buf:?}");
    Ok(())
}

fn create_options_invalid() -> Outcome {
    let (p, _v) = ok!(new_process());
    let mut out = 0;
    expect_status!(unsafe { mx_thread_create(p.raw(), b"t".as_ptr().cast(), 1, 1, &mut out) }, Status::InvalidArgs);
    expect_status!(
        unsafe { mx_thread_create(NOT_A_HANDLE, b"t".as_ptr().cast(), 1, 1, &mut out) },
        Status::InvalidArgs
    );
    Ok(())
}

fn create_null_or_bad_name() -> Outcome {
    let (p, _v) = ok!(new_process());
    let mut out = 0;
    expect_status!(unsafe { mx_thread_create(p.raw(), core::ptr::null(), 0, 0, &mut out) }, Status::InvalidArgs);
    expect_status!(unsafe { mx_thread_create(p.raw(), KERNEL_ADDR as *const _, 4, 0, &mut out) }, Status::InvalidArgs);
    // The name comes before the process lookup.
    expect_status!(
        unsafe { mx_thread_create(NOT_A_HANDLE, KERNEL_ADDR as *const _, 4, 0, &mut out) },
        Status::InvalidArgs
    );
    expect_eq!(ok!(crate::process::threads(p.raw())).1, 0);
    Ok(())
}

fn create_process_errors() -> Outcome {
    let (p, _v) = ok!(new_process());
    expect_status!(create(NOT_A_HANDLE, b"t", 1).0, Status::BadHandle);
    let no_write = ok!(with_rights(p.handle(), Rights::READ));
    expect_status!(create(no_write.raw(), b"t", 1).0, Status::AccessDenied);
    let event = ok!(Event::create()).into_handle();
    expect_status!(create(event.raw(), b"t", 1).0, Status::WrongType);
    let ev_ro = ok!(with_rights(&event, Rights::READ));
    expect_status!(create(ev_ro.raw(), b"t", 1).0, Status::AccessDenied);
    Ok(())
}

fn create_bad_out_creates_nothing() -> Outcome {
    let (p, _v) = ok!(new_process());
    let before = ok!(counts());
    for bad in [0usize, KERNEL_ADDR, UNMAPPED_ADDR] {
        expect_status!(
            unsafe { mx_thread_create(p.raw(), b"t".as_ptr().cast(), 1, 0, bad as *mut _) },
            Status::InvalidArgs
        );
    }
    let after = ok!(counts());
    expect_eq!((after.handles, after.threads), (before.handles, before.threads));
    Ok(())
}

fn new_thread_state_is_new() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    expect_eq!(ok!(state(&t)), 0);
    expect_eq!(t.handle().wait_one(Signals::THREAD_TERMINATED, PAST).err(), Some(Status::TimedOut));
    Ok(())
}

fn info_thread_needs_read() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    let no_read = ok!(with_rights(t.handle(), Rights::DEFAULT_THREAD - Rights::READ));
    let r: Result<InfoThread, _> = no_read.info(InfoTopic::Thread);
    expect_eq!(r.err(), Some(Status::AccessDenied));
    let r: Result<InfoThread, _> = p.handle().info(InfoTopic::Thread);
    expect_eq!(r.err(), Some(Status::WrongType));
    Ok(())
}

fn start_before_process_start_bad_state() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    expect_status!(unsafe { mx_thread_start(t.raw(), 0x100_0000, 0x200_0000, 0, 0) }, Status::BadState);
    expect_eq!(ok!(state(&t)), 0);
    Ok(())
}

fn start_errors() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    expect_status!(unsafe { mx_thread_start(NOT_A_HANDLE, 0x100_0000, 0, 0, 0) }, Status::BadHandle);
    let no_write = ok!(with_rights(t.handle(), Rights::READ));
    expect_status!(unsafe { mx_thread_start(no_write.raw(), 0x100_0000, 0, 0, 0) }, Status::AccessDenied);
    expect_status!(unsafe { mx_thread_start(p.raw(), 0x100_0000, 0, 0, 0) }, Status::WrongType);
    let event = ok!(Event::create()).into_handle();
    let ev_ro = ok!(with_rights(&event, Rights::READ));
    expect_status!(unsafe { mx_thread_start(ev_ro.raw(), 0x100_0000, 0, 0, 0) }, Status::AccessDenied);
    Ok(())
}

fn start_twice_bad_state() -> Outcome {
    let (c, _ch) = ok!(ready_child());
    // The first thread was started by mx_process_start.
    expect_status!(
        unsafe { mx_thread_start(c.thread.raw(), entry_sleep as *const () as usize, 0, 0, 0) },
        Status::BadState
    );
    let t = ok!(Thread::create(&c.process, "second"));
    let sp = ok!(stack(&c));
    ok!(t.start(entry_sleep as *const () as usize, sp, 0, 0));
    expect_status!(unsafe { mx_thread_start(t.raw(), entry_sleep as *const () as usize, sp, 0, 0) }, Status::BadState);
    finish(c)
}

fn started_thread_runs() -> Outcome {
    let (c, _ch) = ok!(ready_child());
    let t = ok!(Thread::create(&c.process, "spinner"));
    let sp = ok!(stack(&c));
    ok!(t.start(conformance_entry_spin as *const () as usize, sp, 0, 0));
    ok!(wait_state(&t, 1));
    let (koids, avail) = ok!(crate::process::threads(c.process.raw()));
    expect_eq!(avail, 2);
    expect!(koids.contains(&ok!(basic(t.raw())).koid));
    finish(c)
}

fn blocked_thread_state() -> Outcome {
    let (c, _ch) = ok!(ready_child());
    ok!(wait_state(&c.thread, 3));
    let t = ok!(Thread::create(&c.process, "sleeper"));
    let sp = ok!(stack(&c));
    ok!(t.start(entry_sleep as *const () as usize, sp, 0, 0));
    ok!(wait_state(&t, 3));
    finish(c)
}

fn thread_exit_ends_only_that_thread() -> Outcome {
    let (c, _ch) = ok!(ready_child());
    let t = ok!(Thread::create(&c.process, "leaver"));
    let sp = ok!(stack(&c));
    ok!(t.start(entry_exit as *const () as usize, sp, 0, 0));
    let observed = ok!(t.handle().wait_one(Signals::THREAD_TERMINATED, after(10_000_000_000)));
    expect!(observed.contains(Signals::THREAD_TERMINATED));
    expect_eq!(ok!(state(&t)), 5);
    expect_eq!(ok!(c.process.info()).exited, 0);
    expect_eq!(ok!(crate::process::threads(c.process.raw())).1, 1);
    finish(c)
}

fn kill_thread_leaves_process() -> Outcome {
    let (c, _ch) = ok!(ready_child());
    let t = ok!(Thread::create(&c.process, "victim"));
    let sp = ok!(stack(&c));
    ok!(t.start(conformance_entry_spin as *const () as usize, sp, 0, 0));
    expect_status!(unsafe { mx_task_kill(t.raw()) }, Status::Ok);
    let observed = ok!(t.handle().wait_one(Signals::THREAD_TERMINATED, after(10_000_000_000)));
    expect!(observed.contains(Signals::THREAD_TERMINATED));
    expect_eq!(ok!(state(&t)), 5);
    expect_eq!(ok!(c.process.info()).exited, 0);
    // The blocked main thread can be killed too.
    expect_status!(unsafe { mx_task_kill(c.thread.raw()) }, Status::Ok);
    ok!(c.thread.handle().wait_one(Signals::THREAD_TERMINATED, after(10_000_000_000)));
    // Killing a dead thread is fine.
    expect_status!(unsafe { mx_task_kill(t.raw()) }, Status::Ok);
    let _ = c.process.kill();
    ok!(child::wait_exit(&c.process));
    Ok(())
}

fn kill_thread_needs_destroy() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    let no_destroy = ok!(with_rights(t.handle(), Rights::DEFAULT_THREAD - Rights::DESTROY));
    expect_status!(unsafe { mx_task_kill(no_destroy.raw()) }, Status::AccessDenied);
    expect_eq!(ok!(state(&t)), 0);
    Ok(())
}

fn kill_process_ends_its_threads() -> Outcome {
    let (c, _ch) = ok!(ready_child());
    let t = ok!(Thread::create(&c.process, "spinner"));
    let sp = ok!(stack(&c));
    ok!(t.start(conformance_entry_spin as *const () as usize, sp, 0, 0));
    let unstarted = ok!(Thread::create(&c.process, "unstarted"));
    ok!(c.process.kill());
    expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    for th in [&t, &c.thread, &unstarted] {
        expect!(ok!(th.handle().wait_one(Signals::THREAD_TERMINATED, PAST)).contains(Signals::THREAD_TERMINATED));
        expect_eq!(ok!(state(th)), 5);
    }
    // A thread created in a dead process cannot start.
    let mut out = 0;
    let s = unsafe { mx_thread_create(c.process.raw(), b"late".as_ptr().cast(), 4, 0, &mut out) };
    if s == 0 {
        drop(Handle::from_raw(out));
    }
    expect!(s != 0, "a thread was created in a dead process");
    Ok(())
}

fn fault_in_any_thread_kills_process() -> Outcome {
    let (c, _ch) = ok!(ready_child());
    let t = ok!(Thread::create(&c.process, "faulter"));
    let sp = ok!(stack(&c));
    ok!(t.start(conformance_entry_ud2 as *const () as usize, sp, 0, 0));
    expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    expect_eq!(ok!(state(&c.thread)), 5);
    Ok(())
}

fn entry_at_kernel_address_kills_process() -> Outcome {
    for entry in [KERNEL_ADDR, 0x8000_0000_0000_0000, 0] {
        let (c, _ch) = ok!(ready_child());
        let t = ok!(Thread::create(&c.process, "bad-entry"));
        ok!(t.start(entry, 0x200_0000, 0, 0));
        expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    }
    Ok(())
}

fn stack_outside_user_space_kills_process() -> Outcome {
    let (c, _ch) = ok!(ready_child());
    let t = ok!(Thread::create(&c.process, "bad-stack"));
    ok!(t.start(entry_sleep as *const () as usize, KERNEL_ADDR, 0, 0));
    expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    let _unused: Vec<u8> = Vec::new();
    Ok(())
}
