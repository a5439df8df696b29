//! `mx_process_create`, `mx_process_start`, `mx_process_exit`,
//! `mx_task_kill` of processes, `MX_INFO_PROCESS`,
//! `MX_INFO_PROCESS_THREADS`, and handles across processes (§5.23, §5.24,
//! §5.26, §1.1).

use alloc::vec::Vec;

use crate::child;
use crate::fixture::*;
use crate::harness::Outcome;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Channel, Event, Handle, Process, Rights, Signals, Status, Thread};
use mx_abi::object::InfoTopic;

cases![
    create_rights_and_types,
    create_root_vmar_covers_user_space,
    create_initial_info,
    create_has_no_threads,
    create_name_kept,
    create_name_cut_to_31,
    create_options_invalid,
    create_null_name_invalid,
    create_bad_name_pointer,
    create_name_checked_before_job,
    create_job_errors,
    create_bad_out_creates_nothing,
    threads_listed_in_info,
    info_process_needs_read,
    info_threads_needs_enumerate,
    start_bad_process_handle,
    start_needs_write,
    start_thread_of_other_process_denied,
    start_arg_needs_transfer,
    start_arg_bad_handle,
    start_twice_bad_state_returns_arg,
    start_wrong_types,
    exit_code_zero,
    exit_code_positive,
    exit_code_negative,
    exit_asserts_terminated_and_info,
    last_thread_exit_ends_process,
    running_child_info,
    kill_returns_minus_one,
    kill_blocked_child,
    kill_spinning_child,
    kill_closes_child_handles,
    kill_removes_threads,
    kill_needs_destroy,
    kill_after_exit_keeps_code,
    kill_unstarted_process,
    start_killed_process_bad_state,
    handle_moves_between_processes,
    foreign_handle_value_is_bad_handle,
    our_value_is_bad_handle_in_child,
];

fn job() -> core::mem::ManuallyDrop<Handle> {
    core::mem::ManuallyDrop::new(Handle::from_raw(child::job()))
}

fn create(name: &[u8]) -> (i32, u32, u32) {
    let (mut p, mut v) = (0, 0);
    let s = unsafe { mx_process_create(child::job(), name.as_ptr().cast(), name.len() as u32, 0, &mut p, &mut v) };
    (s, p, v)
}

fn new_process() -> Result<(Process, mx::Vmar), alloc::string::String> {
    Process::create(&job(), "conformance-p").map_err(|s| alloc::format!("process_create: {s:?}"))
}

fn name_of(h: u32) -> Result<alloc::string::String, Status> {
    let mut buf = [0xffu8; 32];
    mx::ok(unsafe { mx_object_get_property(h, 3, buf.as_mut_ptr().cast(), 32) })?;
    let end = buf.iter().position(|&b| b == 0).ok_or(Status::Internal)?;
    Ok(alloc::string::String::from_utf8_lossy(&buf[..end]).into_owned())
}

fn info(p: &Process) -> Result<mx_abi::InfoProcess, alloc::string::String> {
    p.info().map_err(|s| alloc::format!("MX_INFO_PROCESS: {s:?}"))
}

/// `MX_INFO_PROCESS_THREADS`: (koids returned, avail).
pub fn threads(h: u32) -> Result<(Vec<u64>, usize), Status> {
    let mut koids = [0u64; 16];
    let (mut actual, mut avail) = (0, 0);
    mx::ok(unsafe { mx_object_get_info(h, 4, koids.as_mut_ptr().cast(), 128, &mut actual, &mut avail) })?;
    Ok((koids[..actual].to_vec(), avail))
}

fn create_rights_and_types() -> Outcome {
    let (s, p, v) = create(b"rights");
    expect_status!(s, Status::Ok);
    let (p, v) = (Handle::from_raw(p), Handle::from_raw(v));
    let bp = ok!(basic(p.raw()));
    let bv = ok!(basic(v.raw()));
    expect_eq!((bp.rights, bp.obj_type, bp.props), (0x13cf, 1, 1));
    expect_eq!((bv.rights, bv.obj_type), (0x1f, 18));
    let job_koid = ok!(basic(child::job())).koid;
    expect_eq!(bp.related_koid, job_koid);
    Ok(())
}

fn create_root_vmar_covers_user_space() -> Outcome {
    let (_p, v) = ok!(new_process());
    let i: mx_abi::object::InfoVmar = ok!(v.handle().info(InfoTopic::Vmar));
    expect_eq!((i.base, i.len), (0x100_0000, 0x7fff_feff_f000));
    Ok(())
}

fn create_initial_info() -> Outcome {
    let (p, _v) = ok!(new_process());
    let i = ok!(info(&p));
    expect_eq!((i.return_code, i.started, i.exited), (0, 0, 0));
    let observed = p.handle().wait_one(Signals::PROCESS_TERMINATED, PAST);
    expect_eq!(observed, Err(Status::TimedOut));
    Ok(())
}

fn create_has_no_threads() -> Outcome {
    let (p, _v) = ok!(new_process());
    expect_eq!(ok!(threads(p.raw())), (Vec::new(), 0));
    Ok(())
}

fn create_name_kept() -> Outcome {
    let (s, p, v) = create(b"a-name");
    expect_status!(s, Status::Ok);
    let (p, _v) = (Handle::from_raw(p), Handle::from_raw(v));
    expect_eq!(ok!(name_of(p.raw())), "a-name");
    let name31 = [b'x'; 31];
    let (s, p, v) = create(&name31);
    expect_status!(s, Status::Ok);
    let (p, _v) = (Handle::from_raw(p), Handle::from_raw(v));
    expect_eq!(ok!(name_of(p.raw())).len(), 31);
    Ok(())
}

fn create_name_cut_to_31() -> Outcome {
    let long: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
    for len in [32usize, 33, 40] {
        let (s, p, v) = create(&long[..len]);
        expect_status!(s, Status::Ok);
        let (p, _v) = (Handle::from_raw(p), Handle::from_raw(v));
        let name = ok!(name_of(p.raw()));
        expect_eq!(name.as_bytes(), &long[..31]);
    }
    // A huge name_len is cut to 32 before anything is read.
    let (mut p, mut v) = (0, 0);
    let s = unsafe { mx_process_create(child::job(), long.as_ptr().cast(), u32::MAX, 0, &mut p, &mut v) };
    expect_status!(s, Status::Ok);
    let (p, _v) = (Handle::from_raw(p), Handle::from_raw(v));
    let name = ok!(name_of(p.raw()));
    expect_eq!(name.as_bytes(), &long[..31]);
    Ok(())
}

fn create_options_invalid() -> Outcome {
    let (mut p, mut v) = (0, 0);
    let s = unsafe { mx_process_create(child::job(), b"x".as_ptr().cast(), 1, 1, &mut p, &mut v) };
    expect_status!(s, Status::InvalidArgs);
    // Options come before the job lookup.
    let s = unsafe { mx_process_create(NOT_A_HANDLE, b"x".as_ptr().cast(), 1, 1, &mut p, &mut v) };
    expect_status!(s, Status::InvalidArgs);
    Ok(())
}

fn create_null_name_invalid() -> Outcome {
    let (mut p, mut v) = (0, 0);
    expect_status!(
        unsafe { mx_process_create(child::job(), core::ptr::null(), 0, 0, &mut p, &mut v) },
        Status::InvalidArgs
    );
    expect_status!(
        unsafe { mx_process_create(child::job(), core::ptr::null(), 5, 0, &mut p, &mut v) },
        Status::InvalidArgs
    );
    Ok(())
}

fn create_bad_name_pointer() -> Outcome {
    let (mut p, mut v) = (0, 0);
    for bad in [KERNEL_ADDR, UNMAPPED_ADDR, 0x8000_0000_0000_0000] {
        expect_status!(
            unsafe { mx_process_create(child::job(), bad as *const _, 4, 0, &mut p, &mut v) },
            Status::InvalidArgs
        );
    }
    Ok(())
}

fn create_name_checked_before_job() -> Outcome {
    let (mut p, mut v) = (0, 0);
    let s = unsafe { mx_process_create(NOT_A_HANDLE, KERNEL_ADDR as *const _, 4, 0, &mut p, &mut v) };
    expect_status!(s, Status::InvalidArgs);
    Ok(())
}

fn create_job_errors() -> Outcome {
    let (mut p, mut v) = (0, 0);
    let name = b"j".as_ptr().cast();
    expect_status!(unsafe { mx_process_create(NOT_A_HANDLE, name, 1, 0, &mut p, &mut v) }, Status::BadHandle);
    let no_write = ok!(with_rights(&job(), Rights::READ | Rights::DUPLICATE));
    expect_status!(unsafe { mx_process_create(no_write.raw(), name, 1, 0, &mut p, &mut v) }, Status::AccessDenied);
    let event = ok!(Event::create()).into_handle();
    expect_status!(unsafe { mx_process_create(event.raw(), name, 1, 0, &mut p, &mut v) }, Status::WrongType);
    let ev_ro = ok!(with_rights(&event, Rights::READ));
    expect_status!(unsafe { mx_process_create(ev_ro.raw(), name, 1, 0, &mut p, &mut v) }, Status::AccessDenied);
    Ok(())
}

fn create_bad_out_creates_nothing() -> Outcome {
    let before = ok!(counts());
    let (mut p, mut v) = (0, 0);
    let name = b"out".as_ptr().cast();
    for bad in [0usize, KERNEL_ADDR, UNMAPPED_ADDR] {
        expect_status!(
            unsafe { mx_process_create(child::job(), name, 3, 0, bad as *mut _, &mut v) },
            Status::InvalidArgs
        );
        expect_status!(
            unsafe { mx_process_create(child::job(), name, 3, 0, &mut p, bad as *mut _) },
            Status::InvalidArgs
        );
    }
    let after = ok!(counts());
    expect_eq!((after.processes, after.handles, after.objects), (before.processes, before.handles, before.objects));
    Ok(())
}

fn threads_listed_in_info() -> Outcome {
    let (p, _v) = ok!(new_process());
    let a = ok!(Thread::create(&p, "a"));
    let b = ok!(Thread::create(&p, "b"));
    let (koids, avail) = ok!(threads(p.raw()));
    expect_eq!(avail, 2);
    let want = [ok!(basic(a.raw())).koid, ok!(basic(b.raw())).koid];
    expect!(koids.len() == 2 && want.iter().all(|k| koids.contains(k)), "{koids:?} vs {want:?}");
    // A buffer for one koid: one returned, two available.
    let mut one = [0u64; 1];
    let (mut actual, mut avail) = (0, 0);
    expect_status!(
        unsafe { mx_object_get_info(p.raw(), 4, one.as_mut_ptr().cast(), 8, &mut actual, &mut avail) },
        Status::Ok
    );
    expect_eq!((actual, avail), (1, 2));
    Ok(())
}

fn info_process_needs_read() -> Outcome {
    let (p, _v) = ok!(new_process());
    let no_read = ok!(with_rights(p.handle(), Rights::DEFAULT_PROCESS - Rights::READ));
    let r: Result<mx_abi::InfoProcess, _> = no_read.info(InfoTopic::Process);
    expect_eq!(r.err(), Some(Status::AccessDenied));
    let event = ok!(Event::create());
    let r: Result<mx_abi::InfoProcess, _> = event.handle().info(InfoTopic::Process);
    expect_eq!(r.err(), Some(Status::WrongType));
    Ok(())
}

fn info_threads_needs_enumerate() -> Outcome {
    let (p, _v) = ok!(new_process());
    let no_enum = ok!(with_rights(p.handle(), Rights::DEFAULT_PROCESS - Rights::ENUMERATE));
    expect_eq!(threads(no_enum.raw()).err(), Some(Status::AccessDenied));
    Ok(())
}

fn start(p: u32, t: u32, arg: u32) -> i32 {
    unsafe { mx_process_start(p, t, 0x100_0000, 0x200_0000, arg, 0) }
}

fn start_bad_process_handle() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    let arg = ok!(Event::create());
    expect_status!(start(NOT_A_HANDLE, t.raw(), arg.raw()), Status::BadHandle);
    expect_status!(start(p.raw(), NOT_A_HANDLE, arg.raw()), Status::BadHandle);
    expect!(basic(arg.raw()).is_ok(), "the arg handle was taken");
    Ok(())
}

fn start_needs_write() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    let arg = ok!(Event::create());
    let p_ro = ok!(with_rights(p.handle(), Rights::READ));
    let t_ro = ok!(with_rights(t.handle(), Rights::READ));
    expect_status!(start(p_ro.raw(), t.raw(), arg.raw()), Status::AccessDenied);
    expect_status!(start(p.raw(), t_ro.raw(), arg.raw()), Status::AccessDenied);
    expect!(basic(arg.raw()).is_ok(), "the arg handle was taken");
    Ok(())
}

fn start_thread_of_other_process_denied() -> Outcome {
    let (p, _v) = ok!(new_process());
    let (q, _w) = ok!(new_process());
    let t = ok!(Thread::create(&q, "other"));
    let arg = ok!(Event::create());
    // Before the arg handle is looked at.
    expect_status!(start(p.raw(), t.raw(), NOT_A_HANDLE), Status::AccessDenied);
    expect_status!(start(p.raw(), t.raw(), arg.raw()), Status::AccessDenied);
    expect!(basic(arg.raw()).is_ok(), "the arg handle was taken");
    expect_eq!(ok!(info(&p)).started, 0);
    Ok(())
}

fn start_arg_needs_transfer() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    let event = ok!(Event::create()).into_handle();
    let no_transfer = ok!(with_rights(&event, Rights::READ));
    expect_status!(start(p.raw(), t.raw(), no_transfer.raw()), Status::AccessDenied);
    expect!(basic(no_transfer.raw()).is_ok(), "the arg handle was taken");
    expect_eq!(ok!(info(&p)).started, 0);
    Ok(())
}

fn start_arg_bad_handle() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    expect_status!(start(p.raw(), t.raw(), NOT_A_HANDLE), Status::BadHandle);
    expect_eq!(ok!(info(&p)).started, 0);
    Ok(())
}

/// A second `mx_process_start` is BAD_STATE and gives the arg handle back
/// under its old value.
fn start_twice_bad_state_returns_arg() -> Outcome {
    let c = ok!(child::spawn_child("block", Vec::new()));
    let t2 = ok!(Thread::create(&c.process, "second"));
    let arg = ok!(Event::create());
    expect_status!(start(c.process.raw(), t2.raw(), arg.raw()), Status::BadState);
    expect!(basic(arg.raw()).is_ok(), "the arg handle did not come back");
    expect_status!(start(c.process.raw(), c.thread.raw(), arg.raw()), Status::BadState);
    expect!(basic(arg.raw()).is_ok(), "the arg handle did not come back");
    ok!(c.process.kill());
    expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    Ok(())
}

fn start_wrong_types() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    let arg = ok!(Event::create());
    expect_status!(start(t.raw(), t.raw(), arg.raw()), Status::WrongType);
    expect_status!(start(p.raw(), p.raw(), arg.raw()), Status::WrongType);
    Ok(())
}

fn exit_code_zero() -> Outcome {
    expect_eq!(ok!(child::run("exit:0")), 0);
    Ok(())
}

fn exit_code_positive() -> Outcome {
    expect_eq!(ok!(child::run("exit:42")), 42);
    expect_eq!(ok!(child::run("exit:2147483647")), i32::MAX);
    Ok(())
}

fn exit_code_negative() -> Outcome {
    expect_eq!(ok!(child::run("exit:-7")), -7);
    Ok(())
}

fn exit_asserts_terminated_and_info() -> Outcome {
    let p = ok!(child::spawn("exit:3", Vec::new()));
    let observed = ok!(p.handle().wait_one(Signals::PROCESS_TERMINATED, after(10_000_000_000)));
    expect!(observed.contains(Signals::PROCESS_TERMINATED));
    let i = ok!(info(&p));
    expect_eq!((i.return_code, i.started, i.exited), (3, 1, 1));
    expect_eq!(ok!(threads(p.raw())).1, 0);
    Ok(())
}

fn last_thread_exit_ends_process() -> Outcome {
    expect_eq!(ok!(child::run("thread-exit")), 0);
    Ok(())
}

/// A child blocked in a wait, once it said it is ready.
fn ready_blocked_child() -> Result<(child::Child, Channel), alloc::string::String> {
    let (ours, theirs) = Channel::create().map_err(|s| alloc::format!("channel: {s:?}"))?;
    let c = child::spawn_child("block", alloc::vec![(mx_abi::PA_USER0, 0, theirs.into_handle())])?;
    ours.handle()
        .wait_one(Signals::CHANNEL_READABLE, after(10_000_000_000))
        .map_err(|s| alloc::format!("child never said ready: {s:?}"))?;
    Ok((c, ours))
}

fn running_child_info() -> Outcome {
    let (c, _ch) = ok!(ready_blocked_child());
    let i = ok!(info(&c.process));
    expect_eq!((i.return_code, i.started, i.exited), (0, 1, 0));
    expect_eq!(ok!(threads(c.process.raw())), (alloc::vec![ok!(basic(c.thread.raw())).koid], 1));
    ok!(c.process.kill());
    expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    Ok(())
}

fn kill_returns_minus_one() -> Outcome {
    let (c, _ch) = ok!(ready_blocked_child());
    expect_status!(unsafe { mx_task_kill(c.process.raw()) }, Status::Ok);
    let observed = ok!(c.process.handle().wait_one(Signals::PROCESS_TERMINATED, after(10_000_000_000)));
    expect!(observed.contains(Signals::PROCESS_TERMINATED));
    let i = ok!(info(&c.process));
    expect_eq!((i.return_code, i.exited), (-1, 1));
    Ok(())
}

fn kill_blocked_child() -> Outcome {
    let (c, _ch) = ok!(ready_blocked_child());
    ok!(c.process.kill());
    expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    let t: mx_abi::object::InfoThread = ok!(c.thread.handle().info(InfoTopic::Thread));
    expect_eq!(t.state, 5);
    expect!(ok!(c.thread.handle().wait_one(Signals::THREAD_TERMINATED, PAST)).contains(Signals::THREAD_TERMINATED));
    Ok(())
}

fn kill_spinning_child() -> Outcome {
    let p = ok!(child::spawn("spin", Vec::new()));
    let _ = mx::nanosleep(after(5_000_000));
    ok!(p.kill());
    expect_eq!(ok!(child::wait_exit(&p)), -1);
    Ok(())
}

fn kill_closes_child_handles() -> Outcome {
    let (c, ours) = ok!(ready_blocked_child());
    // The child keeps its end of the channel; killing it closes that end.
    expect_eq!(ours.handle().wait_one(Signals::CHANNEL_PEER_CLOSED, PAST).err(), Some(Status::TimedOut));
    ok!(c.process.kill());
    let observed = ok!(ours.handle().wait_one(Signals::CHANNEL_PEER_CLOSED, after(10_000_000_000)));
    expect!(observed.contains(Signals::CHANNEL_PEER_CLOSED));
    expect_eq!(ok!(child::wait_exit(&c.process)), -1);
    Ok(())
}

fn kill_removes_threads() -> Outcome {
    let (c, _ch) = ok!(ready_blocked_child());
    let child::Child { process, vmar, thread } = c;
    // Our handle keeps the thread object; its thread must go all the same.
    drop((vmar, thread));
    let before = ok!(counts());
    ok!(process.kill());
    expect_eq!(ok!(child::wait_exit(&process)), -1);
    expect_eq!(ok!(threads(process.raw())), (Vec::new(), 0));
    // Its thread is gone (the kernel may free its stack a little later).
    let deadline = after(1_000_000_000);
    loop {
        let now = ok!(counts());
        if now.threads < before.threads {
            break;
        }
        expect!(mx::time_monotonic() < deadline, "threads {} -> {}", before.threads, now.threads);
        let _ = mx::nanosleep(after(5_000_000));
    }
    Ok(())
}

fn kill_needs_destroy() -> Outcome {
    let (p, _v) = ok!(new_process());
    let no_destroy = ok!(with_rights(p.handle(), Rights::DEFAULT_PROCESS - Rights::DESTROY));
    expect_status!(unsafe { mx_task_kill(no_destroy.raw()) }, Status::AccessDenied);
    expect_status!(unsafe { mx_task_kill(NOT_A_HANDLE) }, Status::BadHandle);
    // Rights come before the type: an event has no DESTROY.
    let event = ok!(Event::create());
    expect_status!(unsafe { mx_task_kill(event.raw()) }, Status::AccessDenied);
    expect_eq!(ok!(info(&p)).exited, 0);
    Ok(())
}

fn kill_after_exit_keeps_code() -> Outcome {
    let p = ok!(child::spawn("exit:9", Vec::new()));
    expect_eq!(ok!(child::wait_exit(&p)), 9);
    expect_status!(unsafe { mx_task_kill(p.raw()) }, Status::Ok);
    expect_eq!(ok!(info(&p)).return_code, 9);
    Ok(())
}

fn kill_unstarted_process() -> Outcome {
    let (p, _v) = ok!(new_process());
    let _t = ok!(Thread::create(&p, "never"));
    ok!(p.kill());
    let observed = ok!(p.handle().wait_one(Signals::PROCESS_TERMINATED, after(1_000_000_000)));
    expect!(observed.contains(Signals::PROCESS_TERMINATED));
    let i = ok!(info(&p));
    expect_eq!((i.return_code, i.exited), (-1, 1));
    Ok(())
}

fn start_killed_process_bad_state() -> Outcome {
    let (p, _v) = ok!(new_process());
    let t = ok!(Thread::create(&p, "t"));
    ok!(p.kill());
    let arg = ok!(Event::create());
    expect_status!(start(p.raw(), t.raw(), arg.raw()), Status::BadState);
    expect!(basic(arg.raw()).is_ok(), "the arg handle did not come back");
    Ok(())
}

/// A handle sent to another process arrives there under another value
/// with the same object and rights.
fn handle_moves_between_processes() -> Outcome {
    let (p, ours) = ok!(child::spawn_with_channel("echo"));
    let event = ok!(Event::create());
    let sent = ok!(event.duplicate(Rights::READ | Rights::TRANSFER | Rights::SIGNAL));
    let sent_value = sent.raw();
    let koid = ok!(basic(event.raw())).koid;
    ok!(ours.write(b"take", &mut alloc::vec![sent.into_handle()]));
    let (reply, _) = ok!(ours.read());
    expect_eq!(reply.len(), 16);
    let value = u32::from_le_bytes([reply[0], reply[1], reply[2], reply[3]]);
    let rights = u32::from_le_bytes([reply[4], reply[5], reply[6], reply[7]]);
    let their_koid = u64::from_le_bytes(reply[8..16].try_into().unwrap_or([0; 8]));
    expect_eq!(their_koid, koid);
    expect_eq!(rights, (Rights::READ | Rights::TRANSFER | Rights::SIGNAL).bits());
    expect!(value & 1 == 1 && value != 0, "value {value:#x}");
    expect!(value != sent_value, "the value did not change ({value:#x})");
    // The value we sent is gone from our table.
    expect_eq!(basic(sent_value).err(), Some(Status::BadHandle));
    drop(ours);
    expect_eq!(ok!(child::wait_exit(&p)), 0);
    Ok(())
}

/// A value valid in the child names nothing here.
fn foreign_handle_value_is_bad_handle() -> Outcome {
    let (p, ours) = ok!(child::spawn_with_channel("echo"));
    let event = ok!(Event::create());
    ok!(ours.write(b"take", &mut alloc::vec![ok!(event.duplicate(Rights::SAME_RIGHTS)).into_handle()]));
    let (reply, _) = ok!(ours.read());
    let value = u32::from_le_bytes([reply[0], reply[1], reply[2], reply[3]]);
    // (Unless it happens to equal one of our own values: then nothing to show.)
    if let Err(status) = basic(value) {
        expect_eq!(status, Status::BadHandle);
        let mut size = 0u64;
        expect_status!(unsafe { mx_vmo_get_size(value, &mut size) }, Status::BadHandle);
        expect_status!(unsafe { mx_task_kill(value) }, Status::BadHandle);
        expect_status!(unsafe { mx_handle_close(value) }, Status::BadHandle);
    }
    drop(ours);
    expect_eq!(ok!(child::wait_exit(&p)), 0);
    Ok(())
}

/// A value valid here is BAD_HANDLE in the child.
fn our_value_is_bad_handle_in_child() -> Outcome {
    let event = ok!(Event::create());
    let code = ok!(child::run(&alloc::format!("probe:{:x}", event.raw())));
    expect_eq!(code, 0);
    Ok(())
}
