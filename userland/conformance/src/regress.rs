//! Regressions: behaviours the syscall fuzzer (userland/fuzz) and the
//! fault-injection runs (`make fuzz`) tripped over, kept as cases.

use crate::harness::Outcome;
use crate::{cases, child, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Status};

cases![
    thread_create_in_dead_process_bad_state,
    child_handle_values_are_bad_in_parent,
    failed_start_leaves_no_process,
    channel_end_written_into_itself_is_freed,
    channel_ends_written_into_each_other_are_freed,
    channel_chain_out_of_a_queue_stays_open,
    unmapping_gives_page_tables_back,
];

/// Fuzzer (seed 1, round 1): `mx_thread_create` on a process that has
/// exited returns BAD_STATE (the table's error list omits it).
fn thread_create_in_dead_process_bad_state() -> Outcome {
    let (process, _vmar) =
        ok!(mx::Process::create(&core::mem::ManuallyDrop::new(mx::Handle::from_raw(child::job())), "regress"));
    ok!(process.kill());
    let mut out = 0;
    expect_status!(unsafe { mx_thread_create(process.raw(), b"t".as_ptr().cast(), 1, 0, &mut out) }, Status::BadState);
    Ok(())
}

/// Isolation (fuzzer round check, here as a case): the values a child
/// holds name nothing in the parent, even for an object both hold.
fn child_handle_values_are_bad_in_parent() -> Outcome {
    let (process, channel) = ok!(child::spawn_with_channel("echo"));
    let event = ok!(Event::create());
    let koid = crate::support::koid(event.raw());
    let sent = ok!(event.duplicate(mx::SAME_RIGHTS)).into_handle();
    ok!(channel.write(b"x", &mut alloc::vec![sent]));
    ok!(channel.handle().wait_one(mx::Signals::READABLE, crate::util::after(10_000_000_000)));
    let (reply, _) = ok!(channel.read());
    expect_eq!(reply.len(), 16);
    let value = u32::from_le_bytes([reply[0], reply[1], reply[2], reply[3]]);
    // The child's value for the event: BAD_HANDLE here, unless by chance
    // it is one of ours, for another object.
    match crate::support::basic(value) {
        Err(_) => {}
        Ok(b) => expect!(b.koid != koid, "the child's value {value:#x} names the same event here"),
    }
    drop(channel);
    let code = ok!(child::wait_exit(&process));
    expect_eq!(code, 0);
    Ok(())
}

/// Fault injection: a `mx_process_start` that fails after the process was
/// marked started (its thread could not start) must not leave a process
/// with no thread behind. Without injection the start succeeds; either
/// way the child must be gone once we close it and it dies.
fn failed_start_leaves_no_process() -> Outcome {
    let before = ok!(crate::support::counts());
    let code = ok!(child::run("exit:0"));
    expect_eq!(code, 0);
    let deadline = crate::util::after(1_000_000_000);
    loop {
        let now = ok!(crate::support::counts());
        if now.processes == before.processes && now.threads == before.threads {
            return Ok(());
        }
        if mx::time_monotonic() > deadline {
            return Err(alloc::format!(
                "processes {} -> {}, threads {} -> {}",
                before.processes,
                now.processes,
                before.threads,
                now.threads
            ));
        }
        unsafe { mx_nanosleep(crate::util::after(1_000_000)) };
    }
}

/// Fuzzer (seed 7, round 34): an end's handle (channel handles cannot be
/// duplicated: it is the only one) written through its peer lands in its
/// own queue, where nobody can ever read it. The end is
/// closed as if that handle had gone: the peer sees PEER_CLOSED at once and
/// the kernel's objects and handles come back (they used to stay forever).
fn channel_end_written_into_itself_is_freed() -> Outcome {
    let before = ok!(crate::support::objects_and_handles());
    let (a, b) = ok!(mx::Channel::create());
    ok!(b.write(b"self", &mut alloc::vec![a.into_handle()]));
    let observed = ok!(b.handle().wait_one(mx::Signals::PEER_CLOSED, 0));
    expect!(observed.contains(mx::Signals::PEER_CLOSED), "the peer did not see PEER_CLOSED: {observed:?}");
    expect_status!(
        unsafe { mx_channel_write(b.raw(), 0, b"x".as_ptr().cast(), 1, core::ptr::null(), 0) },
        Status::PeerClosed
    );
    drop(b);
    let after = ok!(crate::support::objects_and_handles());
    expect_eq!(after, before);
    Ok(())
}

/// The same through two channels: end `a` written (via `d`) into `c`'s
/// queue, then `c` (via `b`) into `a`'s. Neither can be read again; both
/// are closed at the second write, and everything is freed.
fn channel_ends_written_into_each_other_are_freed() -> Outcome {
    let before = ok!(crate::support::objects_and_handles());
    let (a, b) = ok!(mx::Channel::create());
    let (c, d) = ok!(mx::Channel::create());
    ok!(d.write(b"a", &mut alloc::vec![a.into_handle()]));
    let observed = ok!(b.handle().wait_one(mx::Signals::WRITABLE, 0));
    expect!(!observed.contains(mx::Signals::PEER_CLOSED), "closed while still reachable through c");
    ok!(b.write(b"c", &mut alloc::vec![c.into_handle()]));
    for (name, end) in [("b", &b), ("d", &d)] {
        let observed = ok!(end.handle().wait_one(mx::Signals::PEER_CLOSED, 0));
        expect!(observed.contains(mx::Signals::PEER_CLOSED), "{name} did not see PEER_CLOSED: {observed:?}");
    }
    drop((b, d));
    let after = ok!(crate::support::objects_and_handles());
    expect_eq!(after, before);
    Ok(())
}

/// A chain that is not a cycle stays open: `a` in `c`'s queue, `c` in
/// `e`'s queue, `e` held here. Reading `c` out of `e`, then `a` out of `c`,
/// gives back working ends.
fn channel_chain_out_of_a_queue_stays_open() -> Outcome {
    let (a, b) = ok!(mx::Channel::create());
    let (c, d) = ok!(mx::Channel::create());
    let (e, f) = ok!(mx::Channel::create());
    ok!(d.write(b"a", &mut alloc::vec![a.into_handle()]));
    ok!(f.write(b"c", &mut alloc::vec![c.into_handle()]));
    for (name, end) in [("b", &b), ("d", &d), ("f", &f)] {
        let observed = ok!(end.handle().wait_one(mx::Signals::WRITABLE, 0));
        expect!(!observed.contains(mx::Signals::PEER_CLOSED), "{name} saw PEER_CLOSED on a reachable chain");
    }
    let (_, mut handles) = ok!(e.read());
    expect_eq!(handles.len(), 1);
    let c = mx::Channel::from_handle(handles.remove(0));
    let (_, mut handles) = ok!(c.read());
    expect_eq!(handles.len(), 1);
    let a = mx::Channel::from_handle(handles.remove(0));
    ok!(b.write(b"ping", &mut alloc::vec![]));
    let (bytes, _) = ok!(a.read());
    expect_eq!(bytes.as_slice(), b"ping".as_slice());
    Ok(())
}

/// Guest fuzzer (every run lost about 4 frames; the Hyper-V server ran out
/// of memory after 260,000 steps): mappings go to random addresses, and
/// unmapping used to leave every page table they needed in place until
/// the process died. 400 map-touch-unmap cycles now leave the free frames
/// where they were, give or take the heap's own growth.
fn unmapping_gives_page_tables_back() -> Outcome {
    let vmar = mxrt::vmar_root().ok_or("no root VMAR")?;
    let vmo = ok!(mx::Vmo::create(4096));
    let rw = mx_abi::VmFlags::PERM_READ | mx_abi::VmFlags::PERM_WRITE;
    let cycle = |n: usize| -> Result<(), alloc::string::String> {
        for _ in 0..n {
            let addr = ok!(vmar.map(0, &vmo, 0, 4096, rw));
            // SAFETY: the page was just mapped read-write for this test.
            unsafe { core::ptr::write_volatile(addr as *mut u64, 1) };
            // SAFETY: nothing else uses the page.
            ok!(unsafe { vmar.unmap(addr, 4096) });
        }
        Ok(())
    };
    cycle(8)?;
    let before = ok!(crate::util::kernel_counts()).free_frames;
    cycle(400)?;
    let after = ok!(crate::util::kernel_counts()).free_frames;
    expect!(after + 16 >= before, "free frames {before} -> {after} after 400 map/unmap cycles");
    Ok(())
}
