//! Channels: two ends, each with a queue of messages (bytes and handles)
//! written by the other end.

#![forbid(unsafe_code)]

use super::{Handle, KernelObject, ObjectBase};
use crate::sched::{WaitQueue, WakeReason};
use crate::sync::IrqSpinlock;
use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use mx_abi::{ObjType, Signals, Status};

/// Largest message, in bytes and handles (`MX_CHANNEL_MAX_MSG_*`).
pub const MAX_MSG_BYTES: usize = 65536;
pub const MAX_MSG_HANDLES: usize = 64;

pub struct Message {
    pub bytes: Vec<u8>,
    pub handles: Vec<Handle>,
}

impl Message {
    /// The transaction id: the first four bytes, or 0 for a shorter message.
    pub fn txid(&self) -> u32 {
        match self.bytes.get(..4) {
            Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            None => 0,
        }
    }
}

/// A thread in `channel_call` on this end, waiting for the reply whose
/// txid matches: the reply goes straight to it, never into the queue.
struct Caller {
    txid: u32,
    reply: IrqSpinlock<CallState>,
    queue: WaitQueue,
}

enum CallState {
    Waiting,
    Replied(Message),
    PeerClosed,
}

struct Inner {
    peer: Weak<Channel>,
    /// Messages written by the peer, oldest first.
    queue: VecDeque<Message>,
    /// Set once this end's last handle closed: nothing more is queued here.
    closed: bool,
    callers: Vec<Arc<Caller>>,
}

/// One end of a channel.
pub struct Channel {
    base: ObjectBase,
    inner: IrqSpinlock<Inner>,
    peer_koid: u64,
    /// This end, for the ends whose handles its queue takes in.
    me: Weak<Channel>,
    /// The end in whose queue this end's handle sits, if it sits in one (a
    /// channel end has exactly one handle: channel rights lack DUPLICATE).
    /// Changed and read only under [`TRANSIT`].
    holder: IrqSpinlock<Weak<Channel>>,
}

/// Serializes every change of [`Channel::holder`] with the walks that look
/// for cycles, so a walk sees one consistent picture. Taken only for
/// messages that carry channel handles; lock order: an end's `inner`, then
/// this, then `holder` locks one at a time.
static TRANSIT: IrqSpinlock<()> = IrqSpinlock::new(());

/// Longest chain of ends-in-queues a cycle search follows; a longer chain
/// is taken as reachable (never closed wrongly; such a cycle would leak).
const CYCLE_SEARCH_LIMIT: usize = 4096;

/// Ends found unreachable while a message was queued, closed once the
/// queue's lock is released.
type Unreachable = [Option<Arc<Channel>>; MAX_MSG_HANDLES];

/// The channel ends among `message`'s handles.
fn ends_in(message: &Message) -> impl Iterator<Item = Arc<Channel>> + '_ {
    message
        .handles
        .iter()
        .filter(|h| h.object().obj_type() == ObjType::Channel)
        .filter_map(|h| super::downcast::<Channel>(h.object().clone()))
}

/// Why a read failed; sizes are those of the message that did not fit.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    Status(Status),
    TooSmall { bytes: usize, handles: usize },
}

impl Channel {
    pub fn new_pair() -> (Arc<Channel>, Arc<Channel>) {
        let a_base = ObjectBase::new(ObjType::Channel, Signals::CHANNEL_WRITABLE);
        let b_base = ObjectBase::new(ObjType::Channel, Signals::CHANNEL_WRITABLE);
        let (a_koid, b_koid) = (a_base.koid(), b_base.koid());
        let end = |base, peer_koid| {
            Arc::new_cyclic(|me| Channel {
                base,
                inner: IrqSpinlock::new(Inner {
                    peer: Weak::new(),
                    queue: VecDeque::new(),
                    closed: false,
                    callers: Vec::new(),
                }),
                peer_koid,
                me: me.clone(),
                holder: IrqSpinlock::new(Weak::new()),
            })
        };
        let a = end(a_base, b_koid);
        let b = end(b_base, a_koid);
        a.inner.lock().peer = Arc::downgrade(&b);
        b.inner.lock().peer = Arc::downgrade(&a);
        (a, b)
    }

    fn peer_channel(&self) -> Option<Arc<Channel>> {
        self.inner.lock().peer.upgrade()
    }

    /// Queues `message` on the other end. On failure the message (and its
    /// handles) comes back to the caller.
    pub fn write(&self, message: Message) -> Result<(), (Status, Message)> {
        let mut slot = Some(message);
        match self.write_with(|| slot.take().ok_or(Status::Internal)) {
            Ok(()) => Ok(()),
            Err(status) => Err((status, slot.unwrap_or(Message { bytes: Vec::new(), handles: Vec::new() }))),
        }
    }

    /// Queues the message `build` makes on the other end. `build` runs only
    /// once the write can no longer fail (the peer is open and there is room,
    /// checked under the peer's lock), so a write refused for PEER_CLOSED or
    /// NO_MEMORY never takes the caller's handles out of its table; an error
    /// from `build` itself is returned as is.
    pub fn write_with(&self, build: impl FnOnce() -> Result<Message, Status>) -> Result<(), Status> {
        let Some(peer) = self.peer_channel() else { return Err(Status::PeerClosed) };
        let mut inner = peer.inner.lock();
        if inner.closed {
            return Err(Status::PeerClosed);
        }
        if inner.queue.try_reserve(1).is_err() {
            return Err(Status::NoMemory);
        }
        let message = build()?;
        let txid = message.txid();
        if let Some(i) = inner.callers.iter().position(|c| c.txid == txid) {
            let caller = inner.callers.swap_remove(i);
            // Stored before the lock goes: a caller that times out meanwhile
            // finds the reply once `forget_caller` (this lock) lets it by,
            // instead of the reply arriving after it gave up and being lost.
            *caller.reply.lock() = CallState::Replied(message);
            drop(inner);
            caller.queue.wake_all(0);
            return Ok(());
        }
        let unreachable = peer.take_in(&message);
        inner.queue.push_back(message);
        let first = inner.queue.len() == 1;
        drop(inner);
        if first {
            peer.base.signals.update(Signals::NONE, Signals::CHANNEL_READABLE);
        }
        close_all(unreachable);
        Ok(())
    }

    /// `message`, about to join this end's queue (its lock held), carries
    /// these channel ends' handles: they now sit here. Returns the ends
    /// whose handle closed a cycle of queues (the end's handle in this
    /// queue, this end's in another's, ..., back to the end): no one can
    /// ever read any of them again, and the handles would keep them, and
    /// everything their queues hold, alive forever.
    fn take_in(&self, message: &Message) -> Unreachable {
        let mut unreachable: Unreachable = [const { None }; MAX_MSG_HANDLES];
        if !message.handles.iter().any(|h| h.object().obj_type() == ObjType::Channel) {
            return unreachable;
        }
        let _transit = TRANSIT.lock();
        for end in ends_in(message) {
            *end.holder.lock() = self.me.clone();
        }
        let mut found = 0;
        for end in ends_in(message) {
            if self.reaches(&end) {
                unreachable[found] = Some(end);
                found += 1;
            }
        }
        unreachable
    }

    /// Whether following "whose queue holds this end's handle" from this
    /// end arrives at `end` ([`TRANSIT`] held). A handle in a process's
    /// table or in the middle of a syscall ends the chain: reachable.
    fn reaches(&self, end: &Arc<Channel>) -> bool {
        if core::ptr::eq(self, Arc::as_ptr(end)) {
            return true;
        }
        let mut at = self.holder.lock().upgrade();
        for _ in 0..CYCLE_SEARCH_LIMIT {
            let Some(cur) = at else { return false };
            if Arc::ptr_eq(&cur, end) {
                return true;
            }
            at = cur.holder.lock().upgrade();
        }
        false
    }

    /// Takes the oldest message off the queue (its lock held): the channel
    /// ends it carries no longer sit here.
    fn pop(&self, inner: &mut Inner) -> Option<Message> {
        let message = inner.queue.pop_front()?;
        if message.handles.iter().any(|h| h.object().obj_type() == ObjType::Channel) {
            let _transit = TRANSIT.lock();
            for end in ends_in(&message) {
                *end.holder.lock() = Weak::new();
            }
        }
        Some(message)
    }

    /// Takes the oldest message if it fits in `max_bytes` and `max_handles`.
    /// A message that does not fit stays queued unless `may_discard`.
    pub fn read(&self, max_bytes: usize, max_handles: usize, may_discard: bool) -> Result<Message, ReadError> {
        let mut inner = self.inner.lock();
        let Some(front) = inner.queue.front() else {
            let status = if inner.peer.strong_count() == 0 || self.peer_closed() {
                Status::PeerClosed
            } else {
                Status::ShouldWait
            };
            return Err(ReadError::Status(status));
        };
        let (bytes, handles) = (front.bytes.len(), front.handles.len());
        if bytes > max_bytes || handles > max_handles {
            if may_discard {
                let dropped = self.pop(&mut inner);
                let empty = inner.queue.is_empty();
                drop(inner);
                drop(dropped);
                if empty {
                    self.base.signals.update(Signals::CHANNEL_READABLE, Signals::NONE);
                }
            }
            return Err(ReadError::TooSmall { bytes, handles });
        }
        let message = self.pop(&mut inner);
        let empty = inner.queue.is_empty();
        drop(inner);
        if empty {
            self.base.signals.update(Signals::CHANNEL_READABLE, Signals::NONE);
        }
        message.ok_or(ReadError::Status(Status::ShouldWait))
    }

    /// `channel_call`: writes `bytes` with the handles `take_handles` gives
    /// (as [`Self::write_with`]: only once the write cannot fail) and waits
    /// until `deadline` for the reply carrying the same txid. Afterwards
    /// TIMED_OUT, PEER_CLOSED, or INTERNAL_INTR_RETRY when the thread is
    /// interrupted.
    pub fn call(
        &self,
        bytes: Vec<u8>,
        take_handles: impl FnOnce() -> Result<Vec<Handle>, Status>,
        deadline: u64,
    ) -> Result<Message, CallError> {
        // The handles join the request only once the write cannot fail.
        let request = Message { bytes, handles: Vec::new() };
        let caller = Arc::new(Caller {
            txid: request.txid(),
            reply: IrqSpinlock::new(CallState::Waiting),
            queue: WaitQueue::new(),
        });
        {
            let mut inner = self.inner.lock();
            if inner.callers.try_reserve(1).is_err() {
                return Err(CallError::Write(Status::NoMemory));
            }
            inner.callers.push(caller.clone());
        }
        let bytes = request.bytes;
        if let Err(status) = self.write_with(|| Ok(Message { bytes, handles: take_handles()? })) {
            self.forget_caller(&caller);
            return Err(CallError::Write(status));
        }
        loop {
            let state = caller.reply.lock();
            if !matches!(*state, CallState::Waiting) {
                break;
            }
            match caller.queue.block(state, deadline) {
                WakeReason::Woken(_) => {}
                WakeReason::TimedOut => {
                    self.forget_caller(&caller);
                    break;
                }
                WakeReason::Interrupted => {
                    self.forget_caller(&caller);
                    let state = core::mem::replace(&mut *caller.reply.lock(), CallState::Waiting);
                    if let CallState::Replied(reply) = state {
                        // A reply that raced the interruption is queued normally.
                        let _ = self.enqueue_local(reply);
                    }
                    return Err(CallError::Wait(Status::InternalIntrRetry));
                }
            }
        }
        let state = core::mem::replace(&mut *caller.reply.lock(), CallState::Waiting);
        match state {
            CallState::Replied(reply) => Ok(reply),
            CallState::PeerClosed => Err(CallError::Wait(Status::PeerClosed)),
            CallState::Waiting => Err(CallError::Wait(Status::TimedOut)),
        }
    }

    fn forget_caller(&self, caller: &Arc<Caller>) {
        self.inner.lock().callers.retain(|c| !Arc::ptr_eq(c, caller));
    }

    /// Puts a message on this end's own queue (a late call reply).
    fn enqueue_local(&self, message: Message) -> Result<(), Status> {
        let mut inner = self.inner.lock();
        inner.queue.try_reserve(1).map_err(|_| Status::NoMemory)?;
        let unreachable = self.take_in(&message);
        inner.queue.push_back(message);
        drop(inner);
        self.base.signals.update(Signals::NONE, Signals::CHANNEL_READABLE);
        close_all(unreachable);
        Ok(())
    }

    fn peer_closed(&self) -> bool {
        self.base.signals.get().contains(Signals::CHANNEL_PEER_CLOSED)
    }
}

impl KernelObject for Channel {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Channel
    }
    fn peer(&self) -> Option<Option<Arc<dyn KernelObject>>> {
        Some(self.peer_channel().map(|p| p as Arc<dyn KernelObject>))
    }
    fn related_koid(&self) -> u64 {
        self.peer_koid
    }
    fn on_zero_handles(&self) {
        self.shut();
    }
}

/// Closes ends found unreachable (no lock held): dropping their queues
/// drops the handles of the rest of their cycle, which closes in turn.
fn close_all(unreachable: Unreachable) {
    for end in unreachable.into_iter().flatten() {
        end.shut();
    }
}

impl Channel {
    /// This end is gone (its handle closed, or it cannot be reached):
    /// unread messages die with it (their handles close after the lock is
    /// released); the peer sees PEER_CLOSED and can no longer write. Running
    /// it again does nothing.
    fn shut(&self) {
        let (queue, peer) = {
            let mut inner = self.inner.lock();
            inner.closed = true;
            (core::mem::take(&mut inner.queue), core::mem::take(&mut inner.peer))
        };
        drop(queue);
        if let Some(peer) = peer.upgrade() {
            let callers = {
                let mut inner = peer.inner.lock();
                inner.peer = Weak::new();
                core::mem::take(&mut inner.callers)
            };
            peer.base.signals.update(Signals::CHANNEL_WRITABLE, Signals::CHANNEL_PEER_CLOSED);
            for caller in callers {
                *caller.reply.lock() = CallState::PeerClosed;
                caller.queue.wake_all(0);
            }
        }
    }
}

/// How `channel_call` failed.
pub enum CallError {
    /// The write failed; the caller's handles were not taken.
    Write(Status),
    /// The wait for the reply failed.
    Wait(Status),
}
