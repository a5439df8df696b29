//! In-kernel tests of the object layer (no user mode needed).

use super::channel::{Channel, Message, ReadError};
use super::event::{Event, EventPair};
use super::handle::live_handles;
use super::port::Port;
use super::signals::PacketSink;
use super::{live_objects_total, Handle, HandleTable, KernelObject};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use mx_abi::meta::HandleSpec;
use mx_abi::{ObjType, Rights, Signals, Status};

/// Turns a status error into a test failure message.
trait OrFail<T> {
    fn or_fail(self) -> Result<T, alloc::string::String>;
}

impl<T> OrFail<T> for Result<T, Status> {
    fn or_fail(self) -> Result<T, alloc::string::String> {
        self.map_err(|status| alloc::format!("unexpected {status:?}"))
    }
}

const ANY: HandleSpec = HandleSpec { types: &[], rights: Rights::NONE };

fn counts() -> (u64, u64) {
    (live_objects_total(), live_handles())
}

crate::ktest!(object_handle_lookup_order, || {
    let before = counts();
    {
        let table = HandleTable::new(0x1234);
        let event = Event::new();
        let value = table.add(Handle::new(event, Rights::READ | Rights::WRITE)).or_fail()?;
        kassert!(value & 1 == 1 && value != 0);
        kassert!(table.get(value ^ 4, &ANY).err() == Some(Status::BadHandle));
        let needs_dup = HandleSpec { types: &[ObjType::Channel], rights: Rights::DUPLICATE };
        // A right missing is reported before the wrong type.
        kassert!(table.get(value, &needs_dup).err() == Some(Status::AccessDenied));
        let wrong_type = HandleSpec { types: &[ObjType::Channel], rights: Rights::READ };
        kassert!(table.get(value, &wrong_type).err() == Some(Status::WrongType));
        let right = HandleSpec { types: &[ObjType::Event], rights: Rights::READ };
        kassert!(table.get(value, &right).is_ok());
        let closed = table.remove(value).or_fail()?;
        drop(closed);
        kassert!(table.get(value, &ANY).err() == Some(Status::BadHandle));
    }
    kassert!(counts() == before, "{:?} != {before:?}", counts());
    Ok(())
});

crate::ktest!(object_derive_rights, || {
    let event = Event::new();
    let handle = Handle::new(event, Rights::READ | Rights::WRITE | Rights::DUPLICATE);
    kassert!(handle.derive(Rights::SAME_RIGHTS).or_fail()?.rights() == handle.rights());
    kassert!(handle.derive(Rights::READ).or_fail()?.rights() == Rights::READ);
    kassert!(handle.derive(Rights::NONE).or_fail()?.rights() == Rights::NONE);
    kassert!(handle.derive(Rights::TRANSFER).err() == Some(Status::InvalidArgs));
    Ok(())
});

crate::ktest!(object_last_handle_signal, || {
    let event = Event::new();
    let a = Handle::new(event.clone(), Rights::READ);
    kassert!(event.base().signals.get().contains(Signals::LAST_HANDLE));
    let b = a.derive(Rights::SAME_RIGHTS).or_fail()?;
    kassert!(!event.base().signals.get().contains(Signals::LAST_HANDLE));
    drop(a);
    kassert!(event.base().signals.get().contains(Signals::LAST_HANDLE));
    drop(b);
    Ok(())
});

crate::ktest!(object_eventpair_peer_closed, || {
    let (a, b) = EventPair::new_pair();
    let ha = Handle::new(a.clone(), Rights::READ);
    let hb = Handle::new(b.clone(), Rights::READ);
    kassert!(a.related_koid() == b.koid() && b.related_koid() == a.koid());
    drop(hb);
    kassert!(a.base().signals.get().contains(Signals::EPAIR_PEER_CLOSED));
    kassert!(matches!(a.peer(), Some(None)));
    drop(ha);
    Ok(())
});

crate::ktest!(object_channel_messages_and_handles, || {
    let before = counts();
    {
        let (a, b) = Channel::new_pair();
        let ha = Handle::new(a.clone(), Rights::READ | Rights::WRITE);
        let hb = Handle::new(b.clone(), Rights::READ | Rights::WRITE);
        kassert!(b.read(100, 10, false).err() == Some(ReadError::Status(Status::ShouldWait)));
        let carried = Handle::new(Event::new(), Rights::TRANSFER);
        let message = Message { bytes: vec![1, 2, 3, 4, 5], handles: vec![carried] };
        if a.write(message).is_err() {
            return Err("write failed".into());
        }
        kassert!(b.base().signals.get().contains(Signals::CHANNEL_READABLE));
        kassert!(b.read(4, 10, false).err() == Some(ReadError::TooSmall { bytes: 5, handles: 1 }));
        kassert!(b.read(5, 0, false).err() == Some(ReadError::TooSmall { bytes: 5, handles: 1 }));
        let got = b.read(5, 1, false).map_err(|e| alloc::format!("{e:?}"))?;
        kassert!(got.bytes == [1, 2, 3, 4, 5] && got.handles.len() == 1 && got.txid() == 0x0403_0201);
        kassert!(!b.base().signals.get().contains(Signals::CHANNEL_READABLE));
        // Queued messages survive the writer's close; then PEER_CLOSED.
        let _ = a.write(Message { bytes: vec![9], handles: Vec::new() });
        drop(ha);
        kassert!(b.base().signals.get().contains(Signals::CHANNEL_PEER_CLOSED));
        kassert!(!b.base().signals.get().contains(Signals::CHANNEL_WRITABLE));
        kassert!(b.read(10, 0, false).map(|m| m.bytes).ok() == Some(vec![9]));
        kassert!(b.read(10, 0, false).err() == Some(ReadError::Status(Status::PeerClosed)));
        kassert!(matches!(b.write(Message { bytes: Vec::new(), handles: Vec::new() }), Err((Status::PeerClosed, _))));
        drop((hb, got));
    }
    kassert!(counts() == before, "{:?} != {before:?}", counts());
    Ok(())
});

crate::ktest!(object_channel_close_drops_queued_handles, || {
    let before = counts();
    {
        let (a, b) = Channel::new_pair();
        let ha = Handle::new(a.clone(), Rights::WRITE);
        let hb = Handle::new(b.clone(), Rights::READ);
        // b's own handle travels in a message queued on b: closing b's last
        // other handle must still free everything.
        let carried = Handle::new(Event::new(), Rights::TRANSFER);
        let _ = a.write(Message { bytes: vec![0; 64], handles: vec![carried] });
        drop(hb);
        drop(ha);
    }
    kassert!(counts() == before, "{:?} != {before:?}", counts());
    Ok(())
});

crate::ktest!(object_port_user_and_signal_packets, || {
    let before = counts();
    {
        let port = Port::new();
        let hp = Handle::new(port.clone(), Rights::READ | Rights::WRITE);
        port.queue_user(7, 3, [0xaa; 32]).or_fail()?;
        let event = Event::new();
        let he = Handle::new(event.clone(), Rights::READ | Rights::WRITE);
        let sink: Arc<dyn PacketSink> = port.clone();
        event.base().signals.add_async(sink.clone(), 42, Signals::USER_0, false, he.id()).or_fail()?;
        kassert!(port.len() == 1);
        event.base().signals.update(Signals::NONE, Signals::USER_0);
        kassert!(port.len() == 2);
        // One-shot: no second packet.
        event.base().signals.update(Signals::USER_0, Signals::NONE);
        event.base().signals.update(Signals::NONE, Signals::USER_0);
        kassert!(port.len() == 2);
        let first = port.try_dequeue().ok_or("no packet")?;
        kassert!(first.key == 7 && first.kind == 0 && first.status == 3 && first.payload == [0xaa; 32]);
        let second = port.try_dequeue().ok_or("no packet")?;
        kassert!(second.key == 42 && second.kind == 1);
        kassert!(second.payload[0..4] == Signals::USER_0.bits().to_le_bytes());
        kassert!(port.try_dequeue().is_none());
        // A repeating wait adds no second packet while one is queued.
        event.base().signals.update(Signals::USER_0, Signals::NONE);
        event.base().signals.add_async(sink.clone(), 9, Signals::USER_1, true, he.id()).or_fail()?;
        event.base().signals.update(Signals::NONE, Signals::USER_1);
        event.base().signals.update(Signals::USER_1, Signals::NONE);
        event.base().signals.update(Signals::NONE, Signals::USER_1);
        kassert!(port.len() == 1);
        kassert!(event.base().signals.cancel_async(&sink, he.id(), 9));
        kassert!(port.is_empty());
        kassert!(!event.base().signals.cancel_async(&sink, he.id(), 9));
        drop((hp, he));
    }
    kassert!(counts() == before, "{:?} != {before:?}", counts());
    Ok(())
});

fn wait_item(handle: &Handle, watched: Signals) -> super::wait::WaitItem {
    super::wait::WaitItem { object: handle.object().clone(), handle_id: handle.id(), watched }
}

crate::ktest!(object_wait_already_signaled_past_deadline, || {
    let event = Event::new();
    let h = Handle::new(event.clone(), Rights::READ);
    event.base().signals.update(Signals::NONE, Signals::USER_2);
    let outcome = super::wait::wait_many(&[wait_item(&h, Signals::USER_2)], 0).or_fail()?;
    kassert!(outcome.status == Ok(()));
    kassert!(outcome.observed[0].contains(Signals::USER_2 | Signals::LAST_HANDLE));
    let outcome = super::wait::wait_many(&[wait_item(&h, Signals::USER_3)], 0).or_fail()?;
    kassert!(outcome.status == Err(Status::TimedOut));
    Ok(())
});

crate::ktest!(object_wait_woken_by_other_thread, || {
    let event = Event::new();
    let h = Handle::new(event.clone(), Rights::READ);
    let signaler = event.clone();
    let thread = crate::sched::spawn_kernel_thread("signaler", 16, move || {
        let _ = crate::sched::sleep_until(crate::time::now_ns() + 2_000_000);
        signaler.base().signals.update(Signals::NONE, Signals::USER_1);
    })
    .or_fail()?;
    let deadline = crate::time::now_ns() + 5_000_000_000;
    let outcome = super::wait::wait_many(&[wait_item(&h, Signals::USER_0 | Signals::USER_1)], deadline).or_fail()?;
    kassert!(outcome.status == Ok(()), "{:?}", outcome.status);
    kassert!(outcome.observed[0].contains(Signals::USER_1));
    thread.join(u64::MAX).or_fail()?;
    Ok(())
});

crate::ktest!(object_wait_times_out, || {
    let event = Event::new();
    let h = Handle::new(event, Rights::READ);
    let start = crate::time::now_ns();
    let outcome = super::wait::wait_many(&[wait_item(&h, Signals::USER_0)], start + 3_000_000).or_fail()?;
    kassert!(outcome.status == Err(Status::TimedOut));
    kassert!(crate::time::now_ns() >= start + 3_000_000);
    Ok(())
});

crate::ktest!(object_wait_canceled_by_close, || {
    let table = Arc::new(HandleTable::new(77));
    let event = Event::new();
    let value = table.add(Handle::new(event.clone(), Rights::READ)).or_fail()?;
    let (object, _) = table.get(value, &ANY).or_fail()?;
    let handle_id = table.with(value, |h| h.id()).or_fail()?;
    let closer = table.clone();
    let thread = crate::sched::spawn_kernel_thread("closer", 16, move || {
        let _ = crate::sched::sleep_until(crate::time::now_ns() + 2_000_000);
        drop(closer.remove(value));
    })
    .or_fail()?;
    let item = super::wait::WaitItem { object, handle_id, watched: Signals::USER_0 };
    let outcome = super::wait::wait_many(&[item], crate::time::now_ns() + 5_000_000_000).or_fail()?;
    kassert!(outcome.status == Err(Status::Canceled), "{:?}", outcome.status);
    kassert!(outcome.observed[0].contains(Signals::HANDLE_CLOSED));
    thread.join(u64::MAX).or_fail()?;
    Ok(())
});

crate::ktest!(object_port_many_waiters_each_packet_wakes_one, || {
    const WAITERS: usize = 8;
    const PACKETS: usize = 400;
    let before = counts();
    {
        let port = Port::new();
        let hp = Handle::new(port.clone(), Rights::READ | Rights::WRITE);
        let received = Arc::new(crate::sync::IrqSpinlock::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..WAITERS {
            let (port, received) = (port.clone(), received.clone());
            threads.push(
                crate::sched::spawn_kernel_thread("port-waiter", 16, move || loop {
                    match port.wait(crate::time::now_ns() + 5_000_000_000) {
                        Ok(packet) if packet.key == u64::MAX => break,
                        Ok(packet) => received.lock().push((i, packet.key)),
                        Err(_) => break,
                    }
                })
                .or_fail()?,
            );
        }
        for key in 0..PACKETS as u64 {
            port.queue_user(key, 0, [0; 32]).or_fail()?;
        }
        for _ in 0..WAITERS {
            port.queue_user(u64::MAX, 0, [0; 32]).or_fail()?;
        }
        for thread in threads {
            thread.join(u64::MAX).or_fail()?;
        }
        let mut keys: Vec<u64> = received.lock().iter().map(|&(_, k)| k).collect();
        kassert!(keys.len() == PACKETS, "{} packets received", keys.len());
        keys.sort_unstable();
        kassert!(keys.iter().enumerate().all(|(i, &k)| k == i as u64), "a packet was lost or duplicated");
        // Each waiter saw its own packets in queue order.
        for i in 0..WAITERS {
            let mine: Vec<u64> = received.lock().iter().filter(|&&(w, _)| w == i).map(|&(_, k)| k).collect();
            kassert!(mine.windows(2).all(|w| w[0] < w[1]), "waiter {i} saw packets out of order");
        }
        drop(hp);
    }
    kassert!(counts() == before, "{:?} != {before:?}", counts());
    Ok(())
});
