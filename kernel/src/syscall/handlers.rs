//! One method per syscall, in the contract's check order.

#![forbid(unsafe_code)]

use super::Ctx;
use crate::arch::x86::usercopy;
use crate::object::channel::{CallError, Channel, Message, ReadError, MAX_MSG_BYTES, MAX_MSG_HANDLES};
use crate::object::event::{Event, EventPair};
use crate::object::job::Job;
use crate::object::log::Log;
use crate::object::port::Port;
use crate::object::process::Process;
use crate::object::resource::{Resource, KIND_ROOT};
use crate::object::signals::PacketSink;
use crate::object::thread::{ThreadObject, UserEntry};
use crate::object::timer::Timer;
use crate::object::vmo::{VmarObject, VmoObject};
use crate::object::wait::{wait_many, WaitItem};
use crate::object::{Handle, KernelObject};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, Ordering};
use mx_abi::dispatch::SyscallHandler;
use mx_abi::log::{LogRecord, LOG_DATA_MAX, LOG_FLAG_READABLE, LOG_RECORD_MAX};
use mx_abi::object::{InfoHandleBasic, InfoProcess, InfoResource, InfoThread, InfoThreadStats, InfoVmar};
use mx_abi::types::{ChannelCallArgs, WaitItem as UserWaitItem};
use mx_abi::wire::Wire;
use mx_abi::HandleArg;
use mx_abi::*;

/// UTC minus monotonic, set by `clock_adjust`.
static UTC_OFFSET: AtomicI64 = AtomicI64::new(0);

/// `mx_wait_async` options: 0 is ONCE, anything else REPEATING.
const WAIT_ASYNC_ONCE: u32 = 0;
/// Most items `object_wait_many` takes.
const MAX_WAIT_ITEMS: u32 = 1024;
/// Longest name of a process or thread.
const NAME_MAX: usize = 32;
/// Rights of a new process handle and of its root VMAR handle.
const PROCESS_RIGHTS: Rights = Rights::from_bits_retain(0x13cf);
const ROOT_VMAR_RIGHTS: Rights = Rights::from_bits_retain(0x1f);
const THREAD_RIGHTS: Rights = Rights::from_bits_retain(0x12cf);
const VMO_RIGHTS: Rights = Rights::from_bits_retain(0x10ff);
const TIMER_RIGHTS: Rights = Rights::from_bits_retain(0x100f);
const LOG_RIGHTS: Rights = Rights::from_bits_retain(0x100b);
const LOG_READ_RIGHTS: Rights = Rights::from_bits_retain(0x100f);

fn status_of(result: Result<(), Status>) -> i32 {
    Status::raw_of(result.map(|()| 0))
}

/// What a handle sent in a message must be (§5.10 step 6): not the
/// endpoint written (NOT_SUPPORTED), and transferable (ACCESS_DENIED).
fn message_handle_check(endpoint: u64, handle: &Handle) -> Result<(), Status> {
    if handle.object().koid() == endpoint {
        return Err(Status::NotSupported);
    }
    if !handle.has_rights(Rights::TRANSFER) {
        return Err(Status::AccessDenied);
    }
    Ok(())
}

fn read_name(ptr: UserIn<u8>, len: u32) -> Result<Vec<u8>, Status> {
    if ptr.is_null() {
        return Err(Status::InvalidArgs);
    }
    let mut name = usercopy::read_user_string(ptr, len as usize, NAME_MAX)?;
    // A name that fills all 32 bytes keeps room for its NUL.
    name.truncate(NAME_MAX - 1);
    Ok(name)
}

impl Ctx {
    fn copy_out_info<T: Wire + Copy>(
        &self,
        record: &T,
        buffer: UserOut<u8>,
        buffer_size: usize,
        actual: Option<UserOut<usize>>,
        avail: Option<UserOut<usize>>,
    ) -> MxResult {
        let mut bytes = [0u8; 64];
        let bytes = &mut bytes[..T::SIZE];
        record.write(bytes).ok_or(Status::Internal)?;
        let fits = buffer_size >= bytes.len();
        if fits {
            usercopy::copy_to_user(buffer.addr(), bytes)?;
        }
        if let Some(actual) = actual {
            usercopy::write(actual, &usize::from(fits))?;
        }
        if let Some(avail) = avail {
            usercopy::write(avail, &1usize)?;
        }
        if fits {
            Ok(())
        } else {
            Err(Status::BufferTooSmall)
        }
    }

    fn copy_out_koids(
        &self,
        koids: &[u64],
        buffer: UserOut<u8>,
        buffer_size: usize,
        actual: Option<UserOut<usize>>,
        avail: Option<UserOut<usize>>,
    ) -> MxResult {
        let count = koids.len().min(buffer_size / 8);
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(count * 8).map_err(|_| Status::NoMemory)?;
        for koid in &koids[..count] {
            bytes.extend_from_slice(&koid.to_le_bytes());
        }
        usercopy::copy_to_user(buffer.addr(), &bytes)?;
        if let Some(actual) = actual {
            usercopy::write(actual, &count)?;
        }
        if let Some(avail) = avail {
            usercopy::write(avail, &koids.len())?;
        }
        Ok(())
    }

    /// Reads the handles a message carries out of the caller's table, all
    /// or nothing, in the contract's order (§5.10 step 6, then step 7).
    fn take_message_handles(&self, channel: &Arc<Channel>, values: &[u32]) -> Result<Vec<Handle>, Status> {
        let me = channel.koid();
        self.process().handles.remove_many(values, |handle| message_handle_check(me, handle))
    }

    /// Puts a failed write's handles back (their values change).
    fn restore_handles(&self, handles: Vec<Handle>) {
        for handle in handles {
            let _ = self.process().handles.add(handle);
        }
    }

    /// Reads and checks what a write sends (§5.10 steps 3 to 7): the bytes,
    /// and the handle values, each checked but left in the caller's table
    /// until the write can no longer fail ([`Channel::write_with`]), so a
    /// failed write leaves every handle with the caller under its value.
    fn message_parts(
        &self,
        channel: &Arc<Channel>,
        bytes: UserIn<u8>,
        num_bytes: u32,
        handles: UserIn<mx_handle_t>,
        num_handles: u32,
    ) -> Result<(Vec<u8>, Vec<u32>), Status> {
        if num_bytes as usize > MAX_MSG_BYTES || num_handles as usize > MAX_MSG_HANDLES {
            return Err(Status::OutOfRange);
        }
        let data = usercopy::read_bytes(bytes, num_bytes as usize, MAX_MSG_BYTES)?;
        let values = if num_handles == 0 { Vec::new() } else { usercopy::read_slice(handles, num_handles as usize)? };
        let me = channel.koid();
        self.process().handles.check_many(&values, |handle| message_handle_check(me, handle))?;
        Ok((data, values))
    }

    /// Delivers a read message: bytes first, then the handles join the
    /// caller's table and their values are written.
    fn deliver_message(&self, message: Message, bytes: UserOut<u8>, handles: HandleOut) -> MxResult {
        usercopy::copy_to_user(bytes.addr(), &message.bytes)?;
        if message.handles.is_empty() {
            return Ok(());
        }
        let values = self.process().handles.add_many(message.handles)?;
        if let Err(status) = usercopy::write_slice(handles, &values) {
            for value in values {
                drop(self.process().handles.remove(value));
            }
            return Err(status);
        }
        Ok(())
    }

    fn log_write(&self, handle: HandleArg, options: u32, buffer: UserIn<u8>, len: usize) -> MxResult {
        if len > LOG_DATA_MAX {
            return Err(Status::OutOfRange);
        }
        if options & !0xffff != 0 {
            return Err(Status::InvalidArgs);
        }
        let (log, _) = self.typed::<Log>(handle)?;
        let data = usercopy::read_bytes(buffer, len, LOG_DATA_MAX)?;
        log.write(options, &data, self.process().koid(), self.thread().koid())
    }

    fn log_read(&self, handle: HandleArg, options: u32, buffer: UserOut<u8>) -> MxResult<u32> {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let (log, _) = self.typed::<Log>(handle)?;
        let (flags, timestamp, pid, tid, data) = log.read()?;
        let header = LogRecord { reserved: 0, datalen: data.len() as u16, flags, timestamp, pid, tid, data: [] };
        let mut record = Vec::new();
        record.try_reserve_exact(LOG_RECORD_MAX).map_err(|_| Status::NoMemory)?;
        record.extend_from_slice(header.to_bytes().as_ref());
        record.extend_from_slice(&data);
        usercopy::copy_to_user(buffer.addr(), &record)?;
        Ok(record.len() as u32)
    }
}

impl SyscallHandler for Ctx {
    fn time_get(&mut self, clock_id: u32) -> mx_time_t {
        let now = crate::time::now_ns();
        match clock_id {
            0 => now,
            1 => now.wrapping_add_signed(UTC_OFFSET.load(Ordering::Relaxed)),
            2 => crate::sched::with_current(|t| t.runtime_ns()),
            _ => 0,
        }
    }

    fn nanosleep(&mut self, deadline: mx_time_t) -> MxResult {
        if deadline == 0 {
            crate::sched::yield_now();
            return Ok(());
        }
        match crate::sched::sleep_until(deadline) {
            Ok(()) => Ok(()),
            Err(_) => Err(Status::InternalIntrRetry),
        }
    }

    fn clock_adjust(&mut self, handle: HandleArg, clock_id: u32, offset: i64) -> MxResult {
        let (resource, _) = self.typed::<Resource>(handle)?;
        if resource.kind() != KIND_ROOT {
            return Err(Status::AccessDenied);
        }
        match clock_id {
            1 => {
                UTC_OFFSET.store(offset, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(Status::InvalidArgs),
        }
    }

    fn handle_close(&mut self, handle: Option<HandleArg>) -> MxResult {
        let Some(handle) = handle else { return Ok(()) };
        let closed = self.process().handles.remove(handle.raw)?;
        drop(closed);
        Ok(())
    }

    fn handle_duplicate(&mut self, handle: HandleArg, rights: Rights, out: HandleOut) -> MxResult {
        let duplicate = self.process().handles.with(handle.raw, |h| {
            if !h.has_rights(handle.spec.rights) {
                return Err(Status::AccessDenied);
            }
            h.derive(rights)
        })??;
        self.give(duplicate, out)
    }

    fn handle_replace(&mut self, handle: HandleArg, rights: Rights, out: HandleOut) -> MxResult {
        // The source is consumed even when the call fails (decision 8).
        let source = self.process().handles.remove(handle.raw)?;
        let result = source.derive(rights).and_then(|replacement| self.give(replacement, out));
        if result.is_err() {
            let _ = usercopy::write(out, &0u32);
        }
        drop(source);
        result
    }

    fn object_wait_one(
        &mut self,
        handle: HandleArg,
        waitfor: Signals,
        deadline: mx_time_t,
        observed: Option<UserOut<mx_signals_t>>,
    ) -> MxResult {
        let (object, handle_id) = self.process().handles.with(handle.raw, |h| {
            if !h.has_rights(handle.spec.rights) {
                return Err(Status::AccessDenied);
            }
            Ok((h.object().clone(), h.id()))
        })??;
        if !object.is_waitable() {
            return Err(Status::NotSupported);
        }
        let outcome = wait_many(&[WaitItem { object, handle_id, watched: waitfor }], deadline)?;
        if let (Some(observed), Some(signals)) = (observed, outcome.observed.first()) {
            usercopy::write(observed, &signals.bits())?;
        }
        outcome.status
    }

    fn object_wait_many(&mut self, items: UserInOut<UserWaitItem>, count: u32, deadline: mx_time_t) -> MxResult {
        if count == 0 {
            return match crate::sched::sleep_until(deadline) {
                Ok(()) => Err(Status::TimedOut),
                Err(_) => Err(Status::InternalIntrRetry),
            };
        }
        if items.is_null() || count > MAX_WAIT_ITEMS {
            return Err(Status::InvalidArgs);
        }
        let user_items: Vec<UserWaitItem> = usercopy::read_slice(UserIn::new(items.addr()), count as usize)?;
        let mut waits = Vec::new();
        waits.try_reserve_exact(user_items.len()).map_err(|_| Status::NoMemory)?;
        for item in &user_items {
            let (object, handle_id) = self.process().handles.with(item.handle, |h| {
                if !h.has_rights(Rights::READ) {
                    return Err(Status::AccessDenied);
                }
                Ok((h.object().clone(), h.id()))
            })??;
            if !object.is_waitable() {
                return Err(Status::NotSupported);
            }
            waits.push(WaitItem { object, handle_id, watched: Signals::from_bits_retain(item.waitfor) });
        }
        let outcome = wait_many(&waits, deadline)?;
        let written: Vec<UserWaitItem> = user_items
            .iter()
            .zip(&outcome.observed)
            .map(|(item, signals)| UserWaitItem { pending: signals.bits(), ..*item })
            .collect();
        usercopy::write_slice(UserOut::new(items.addr()), &written)?;
        outcome.status
    }

    fn object_wait_async(
        &mut self,
        handle: HandleArg,
        port_handle: HandleArg,
        key: u64,
        signals: Signals,
        options: u32,
    ) -> MxResult {
        let (port, _) = self.typed::<Port>(port_handle)?;
        let (object, handle_id) = self.process().handles.with(handle.raw, |h| {
            if !h.has_rights(handle.spec.rights) {
                return Err(Status::AccessDenied);
            }
            Ok((h.object().clone(), h.id()))
        })??;
        if !object.is_waitable() {
            return Err(Status::NotSupported);
        }
        let sink: Arc<dyn PacketSink> = port;
        // Any non-zero option is REPEATING, as in the 2017 code (contract §5.7).
        object.base().signals.add_async(sink, key, signals, options != WAIT_ASYNC_ONCE, handle_id)
    }

    fn object_signal(&mut self, handle: HandleArg, clear_mask: u32, set_mask: u32) -> MxResult {
        let (object, _) = self.object(handle)?;
        if !object.is_waitable() {
            return Err(Status::NotSupported);
        }
        let allowed = object.user_signal_mask();
        let (clear, set) = (Signals::from_bits_retain(clear_mask), Signals::from_bits_retain(set_mask));
        if !allowed.contains(clear | set) {
            return Err(Status::InvalidArgs);
        }
        object.base().signals.update(clear, set);
        Ok(())
    }

    fn object_signal_peer(&mut self, handle: HandleArg, clear_mask: u32, set_mask: u32) -> MxResult {
        let (object, _) = self.object(handle)?;
        if !object.is_waitable() {
            return Err(Status::NotSupported);
        }
        let Some(peer) = object.peer() else { return Err(Status::NotSupported) };
        let allowed = object.user_signal_mask();
        let (clear, set) = (Signals::from_bits_retain(clear_mask), Signals::from_bits_retain(set_mask));
        if !allowed.contains(clear | set) {
            return Err(Status::InvalidArgs);
        }
        let peer = peer.ok_or(Status::PeerClosed)?;
        peer.base().signals.update(clear, set);
        Ok(())
    }

    fn object_get_property(&mut self, handle: HandleArg, property: u32, value: UserOut<u8>, size: usize) -> MxResult {
        let (object, _) = self.object(handle)?;
        match property {
            3 => {
                if size < NAME_MAX {
                    return Err(Status::BufferTooSmall);
                }
                let name = if let Some(process) = crate::object::downcast::<Process>(object.clone()) {
                    let (buf, _) = process.name();
                    buf
                } else if let Some(thread) = crate::object::downcast::<ThreadObject>(object) {
                    crate::object::process::name_buf(thread.name()).0
                } else {
                    return Err(Status::WrongType);
                };
                usercopy::copy_to_user(value.addr(), &name)
            }
            6 => {
                let process = crate::object::downcast::<Process>(object).ok_or(Status::WrongType)?;
                if size < 8 {
                    return Err(Status::BufferTooSmall);
                }
                usercopy::copy_to_user(value.addr(), &process.vdso_base().to_le_bytes())
            }
            _ => Err(Status::InvalidArgs),
        }
    }

    fn object_set_property(&mut self, handle: HandleArg, property: u32, value: UserIn<u8>, size: usize) -> MxResult {
        let (object, _) = self.object(handle)?;
        match property {
            3 => {
                let name = usercopy::read_user_string(value, size, NAME_MAX)?;
                let process = crate::object::downcast::<Process>(object).ok_or(Status::WrongType)?;
                process.set_name(&name);
                Ok(())
            }
            _ => Err(Status::InvalidArgs),
        }
    }

    fn object_get_info(
        &mut self,
        handle: HandleArg,
        topic: u32,
        buffer: UserOut<u8>,
        buffer_size: usize,
        actual_count: Option<UserOut<usize>>,
        avail_count: Option<UserOut<usize>>,
    ) -> MxResult {
        let lookup = |rights: Rights| {
            self.process().handles.with(handle.raw, |h| {
                if !h.has_rights(rights) {
                    return Err(Status::AccessDenied);
                }
                Ok((h.object().clone(), h.rights()))
            })?
        };
        match topic {
            1 => lookup(Rights::NONE).map(|_| ()),
            2 => {
                let (object, rights) = lookup(Rights::NONE)?;
                let record = InfoHandleBasic {
                    koid: object.koid(),
                    rights: rights.bits(),
                    obj_type: object.obj_type() as u32,
                    related_koid: object.related_koid(),
                    props: u32::from(object.is_waitable()),
                };
                self.copy_out_info(&record, buffer, buffer_size, actual_count, avail_count)
            }
            3 => {
                let (object, _) = lookup(Rights::READ)?;
                let process = crate::object::downcast::<Process>(object).ok_or(Status::WrongType)?;
                let state = process.state();
                use crate::object::process::ProcessState as S;
                let record = InfoProcess {
                    return_code: process.return_code(),
                    started: u8::from(state != S::Initial),
                    exited: u8::from(state == S::Dead),
                    debugger_attached: 0,
                };
                self.copy_out_info(&record, buffer, buffer_size, actual_count, avail_count)
            }
            4 => {
                let (object, _) = lookup(Rights::ENUMERATE)?;
                let process = crate::object::downcast::<Process>(object).ok_or(Status::WrongType)?;
                self.copy_out_koids(&process.thread_koids(), buffer, buffer_size, actual_count, avail_count)
            }
            12 => {
                let (object, _) = lookup(Rights::READ)?;
                let process = crate::object::downcast::<Process>(object).ok_or(Status::WrongType)?;
                if process.state() != crate::object::process::ProcessState::Running {
                    return Err(Status::BadState);
                }
                let (mapped, private, shared, scaled) = process.aspace.memory_stats()?;
                let record = mx_abi::object::InfoTaskStats {
                    mem_mapped_bytes: mapped,
                    mem_private_bytes: private,
                    mem_shared_bytes: shared,
                    mem_scaled_shared_bytes: scaled,
                };
                self.copy_out_info(&record, buffer, buffer_size, actual_count, avail_count)
            }
            7 => {
                let (object, _) = lookup(Rights::NONE)?;
                let vmar = crate::object::downcast::<VmarObject>(object).ok_or(Status::WrongType)?;
                let record = InfoVmar { base: vmar.vmar.base(), len: vmar.vmar.size() };
                self.copy_out_info(&record, buffer, buffer_size, actual_count, avail_count)
            }
            10 => {
                let (object, _) = lookup(Rights::READ)?;
                let thread = crate::object::downcast::<ThreadObject>(object).ok_or(Status::WrongType)?;
                let record = InfoThread { state: thread.state() as u32, wait_exception_port_type: 0 };
                self.copy_out_info(&record, buffer, buffer_size, actual_count, avail_count)
            }
            15 => {
                let (object, _) = lookup(Rights::READ)?;
                let thread = crate::object::downcast::<ThreadObject>(object).ok_or(Status::WrongType)?;
                let record = InfoThreadStats { total_runtime: thread.runtime_ns() };
                self.copy_out_info(&record, buffer, buffer_size, actual_count, avail_count)
            }
            18 => {
                let (object, _) = lookup(Rights::NONE)?;
                let resource = crate::object::downcast::<Resource>(object).ok_or(Status::WrongType)?;
                let (low, high) = resource.range();
                let record = InfoResource { kind: resource.kind(), low, high };
                self.copy_out_info(&record, buffer, buffer_size, actual_count, avail_count)
            }
            mx_abi::object::INFO_KERNEL_COUNTS => {
                let (object, _) = lookup(Rights::NONE)?;
                let resource = crate::object::downcast::<Resource>(object).ok_or(Status::WrongType)?;
                if resource.kind() != KIND_ROOT {
                    return Err(Status::AccessDenied);
                }
                let record = crate::object::kernel_counts();
                self.copy_out_info(&record, buffer, buffer_size, actual_count, avail_count)
            }
            _ => Err(Status::NotSupported),
        }
    }

    fn channel_create(&mut self, options: u32, out0: HandleOut, out1: HandleOut) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let (a, b) = Channel::new_pair();
        self.give_pair((Handle::new(a, Rights::DEFAULT_CHANNEL), out0), (Handle::new(b, Rights::DEFAULT_CHANNEL), out1))
    }

    fn channel_read(
        &mut self,
        handle: HandleArg,
        options: u32,
        bytes: UserOut<u8>,
        handles: HandleOut,
        num_bytes: u32,
        num_handles: u32,
        actual_bytes: Option<UserOut<u32>>,
        actual_handles: Option<UserOut<u32>>,
    ) -> MxResult {
        let (channel, _) = self.typed::<Channel>(handle)?;
        if options & !CHANNEL_READ_MAY_DISCARD != 0 {
            return Err(Status::NotSupported);
        }
        let may_discard = options & CHANNEL_READ_MAY_DISCARD != 0;
        let message = match channel.read(num_bytes as usize, num_handles as usize, may_discard) {
            Ok(message) => message,
            Err(ReadError::Status(status)) => return Err(status),
            Err(ReadError::TooSmall { bytes, handles }) => {
                if let Some(actual) = actual_bytes {
                    usercopy::write(actual, &(bytes as u32))?;
                }
                if let Some(actual) = actual_handles {
                    usercopy::write(actual, &(handles as u32))?;
                }
                return Err(Status::BufferTooSmall);
            }
        };
        if let Some(actual) = actual_bytes {
            usercopy::write(actual, &(message.bytes.len() as u32))?;
        }
        if let Some(actual) = actual_handles {
            usercopy::write(actual, &(message.handles.len() as u32))?;
        }
        self.deliver_message(message, bytes, handles)
    }

    fn channel_write(
        &mut self,
        handle: HandleArg,
        options: u32,
        bytes: UserIn<u8>,
        num_bytes: u32,
        handles: UserIn<mx_handle_t>,
        num_handles: u32,
    ) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let (channel, _) = self.typed::<Channel>(handle)?;
        let (data, values) = self.message_parts(&channel, bytes, num_bytes, handles, num_handles)?;
        channel.write_with(|| Ok(Message { bytes: data, handles: self.take_message_handles(&channel, &values)? }))
    }

    fn channel_call_noretry(
        &mut self,
        handle: HandleArg,
        options: u32,
        deadline: mx_time_t,
        args: UserIn<ChannelCallArgs>,
        actual_bytes: UserOut<u32>,
        actual_handles: UserOut<u32>,
        read_status: Option<UserOut<mx_status_t>>,
    ) -> MxResult {
        let args = usercopy::read(args)?;
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let (channel, _) = self.typed::<Channel>(handle)?;
        let (data, values) = self.message_parts(
            &channel,
            UserIn::new(args.wr_bytes as usize),
            args.wr_num_bytes,
            UserIn::new(args.wr_handles as usize),
            args.wr_num_handles,
        )?;
        let fail = |status: Status| -> MxResult {
            if let Some(read_status) = read_status {
                usercopy::write(read_status, &(status as i32))?;
            }
            Err(Status::CallFailed)
        };
        let reply = match channel.call(data, || self.take_message_handles(&channel, &values), deadline) {
            Ok(reply) => reply,
            Err(CallError::Write(status)) => return Err(status),
            Err(CallError::Wait(Status::TimedOut)) => return Err(Status::TimedOut),
            Err(CallError::Wait(status)) => return fail(status),
        };
        if reply.bytes.len() > args.rd_num_bytes as usize || reply.handles.len() > args.rd_num_handles as usize {
            let _ = usercopy::write(actual_bytes, &(reply.bytes.len() as u32));
            let _ = usercopy::write(actual_handles, &(reply.handles.len() as u32));
            return fail(Status::BufferTooSmall);
        }
        let sizes = (reply.bytes.len() as u32, reply.handles.len() as u32);
        let delivered = usercopy::write(actual_bytes, &sizes.0)
            .and_then(|()| usercopy::write(actual_handles, &sizes.1))
            .and_then(|()| {
                self.deliver_message(
                    reply,
                    UserOut::new(args.rd_bytes as usize),
                    UserOut::new(args.rd_handles as usize),
                )
            });
        match delivered {
            Ok(()) => Ok(()),
            Err(status) => fail(status),
        }
    }

    fn channel_call_finish(
        &mut self,
        _deadline: mx_time_t,
        _args: UserIn<ChannelCallArgs>,
        _actual_bytes: UserOut<u32>,
        _actual_handles: UserOut<u32>,
        _read_status: Option<UserOut<mx_status_t>>,
    ) -> MxResult {
        // Calls are never left half done (an interrupted call is abandoned
        // and its reply queued normally), so there is nothing to finish.
        Err(Status::BadState)
    }

    fn thread_exit(&mut self) -> ! {
        self.release();
        super::exit_current_thread()
    }

    fn thread_create(
        &mut self,
        process: HandleArg,
        name: UserIn<u8>,
        name_len: u32,
        options: u32,
        out: HandleOut,
    ) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let name = read_name(name, name_len)?;
        let (process, _) = self.typed::<Process>(process)?;
        let thread = ThreadObject::create(&process, &name)?;
        self.give(Handle::new(thread, THREAD_RIGHTS), out)
    }

    fn thread_start(
        &mut self,
        handle: HandleArg,
        thread_entry: usize,
        stack: usize,
        arg1: usize,
        arg2: usize,
    ) -> MxResult {
        let (thread, _) = self.typed::<ThreadObject>(handle)?;
        if thread.process.state() != crate::object::process::ProcessState::Running {
            return Err(Status::BadState);
        }
        thread.start(UserEntry { rip: thread_entry as u64, rsp: stack as u64, arg1: arg1 as u64, arg2: arg2 as u64 })
    }

    fn process_exit(&mut self, retcode: i32) -> ! {
        self.process().exit(retcode);
        self.release();
        super::exit_current_thread()
    }

    fn process_create(
        &mut self,
        job: HandleArg,
        name: UserIn<u8>,
        name_len: u32,
        options: u32,
        proc_handle: HandleOut,
        vmar_handle: HandleOut,
    ) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let name = read_name(name, name_len)?;
        let (job, _) = self.typed::<Job>(job)?;
        let (process, root) = Process::create(&name)?;
        process.set_job_koid(job.koid());
        self.give_pair(
            (Handle::new(process, PROCESS_RIGHTS), proc_handle),
            (Handle::new(VmarObject::new(root), ROOT_VMAR_RIGHTS), vmar_handle),
        )
    }

    fn process_start(
        &mut self,
        process_handle: HandleArg,
        thread_handle: HandleArg,
        entry: usize,
        stack: usize,
        arg_handle: HandleArg,
        arg2: usize,
    ) -> MxResult {
        let (process, _) = self.typed::<Process>(process_handle)?;
        let (thread, _) = self.typed::<ThreadObject>(thread_handle)?;
        if !Arc::ptr_eq(&thread.process, &process) {
            return Err(Status::AccessDenied);
        }
        let transferable = |h: &Handle| if h.has_rights(Rights::TRANSFER) { Ok(()) } else { Err(Status::AccessDenied) };
        // Step 4, then the state check (5), with the handle still in place:
        // on BAD_STATE the caller keeps it under its value.
        self.process().handles.with(arg_handle.raw, transferable)??;
        let fresh = thread.state() == crate::object::thread::ThreadState::New;
        if !fresh || process.state() != crate::object::process::ProcessState::Initial {
            return Err(Status::BadState);
        }
        let mut arg = self.process().handles.remove_many(&[arg_handle.raw], transferable)?;
        if process.mark_started().is_err() {
            // Lost a race with another start: give the handle back.
            self.restore_handles(arg);
            return Err(Status::BadState);
        }
        let moved = arg.pop().ok_or(Status::BadHandle)?;
        // Past `mark_started` the process cannot go back to its initial
        // state: if it cannot get its first thread running (NO_MEMORY), it
        // is killed, or it would live on with no thread (found by fault
        // injection: `make fuzz`).
        let started = process.handles.add(moved).and_then(|value| {
            thread.start(UserEntry { rip: entry as u64, rsp: stack as u64, arg1: u64::from(value), arg2: arg2 as u64 })
        });
        if started.is_err() {
            process.exit(-1);
        }
        started
    }

    fn task_kill(&mut self, task_handle: HandleArg) -> MxResult {
        let (object, _) = self.object(task_handle)?;
        if let Some(process) = crate::object::downcast::<Process>(object.clone()) {
            process.exit(-1);
            return Ok(());
        }
        if let Some(thread) = crate::object::downcast::<ThreadObject>(object) {
            thread.kill();
            return Ok(());
        }
        Err(Status::WrongType)
    }

    fn event_create(&mut self, options: u32, out: HandleOut) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        self.give(Handle::new(Event::new(), Rights::DEFAULT_EVENT), out)
    }

    fn eventpair_create(&mut self, options: u32, out0: HandleOut, out1: HandleOut) -> MxResult {
        if options != 0 {
            return Err(Status::NotSupported);
        }
        let (a, b) = EventPair::new_pair();
        self.give_pair(
            (Handle::new(a, Rights::DEFAULT_EVENT_PAIR), out0),
            (Handle::new(b, Rights::DEFAULT_EVENT_PAIR), out1),
        )
    }

    fn port_create(&mut self, options: u32, out: HandleOut) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        self.give(Handle::new(Port::new(), Rights::DEFAULT_PORT), out)
    }

    fn port_queue(&mut self, handle: HandleArg, packet: UserIn<u8>, size: usize) -> MxResult {
        if size != 0 {
            return Err(Status::InvalidArgs);
        }
        let (port, _) = self.typed::<Port>(handle)?;
        let packet = usercopy::read(UserIn::<PortPacket>::new(packet.addr()))?;
        port.queue_user(packet.key, packet.status, packet.payload.to_bytes())
    }

    fn port_wait(&mut self, handle: HandleArg, deadline: mx_time_t, packet: UserOut<u8>, size: usize) -> MxResult {
        if size != 0 {
            return Err(Status::InvalidArgs);
        }
        let (port, _) = self.typed::<Port>(handle)?;
        let got = port.wait(deadline)?;
        let payload = PacketUser::from_bytes(&got.payload);
        let out = PortPacket { key: got.key, packet_type: got.kind & 0x0fff_ffff, status: got.status, payload };
        usercopy::write(UserOut::<PortPacket>::new(packet.addr()), &out)
    }

    fn port_cancel(&mut self, handle: HandleArg, source: HandleArg, key: u64) -> MxResult {
        let (port, _) = self.typed::<Port>(handle)?;
        let (object, handle_id) = self.process().handles.with(source.raw, |h| {
            if !h.has_rights(source.spec.rights) {
                return Err(Status::AccessDenied);
            }
            Ok((h.object().clone(), h.id()))
        })??;
        if !object.is_waitable() {
            return Err(Status::NotSupported);
        }
        let sink: Arc<dyn PacketSink> = port;
        if object.base().signals.cancel_async(&sink, handle_id, key) {
            Ok(())
        } else {
            Err(Status::NotFound)
        }
    }

    fn timer_create(&mut self, options: u32, clock_id: u32, out: HandleOut) -> MxResult {
        if clock_id != 0 {
            return Err(Status::InvalidArgs);
        }
        if options > 2 {
            return Err(Status::InvalidArgs);
        }
        self.give(Handle::new(Timer::new()?, TIMER_RIGHTS), out)
    }

    fn timer_set(&mut self, handle: HandleArg, deadline: mx_time_t, _slack: mx_duration_t) -> MxResult {
        let (timer, _) = self.typed::<Timer>(handle)?;
        timer.set(deadline)
    }

    fn timer_cancel(&mut self, handle: HandleArg) -> MxResult {
        let (timer, _) = self.typed::<Timer>(handle)?;
        timer.cancel();
        Ok(())
    }

    fn vmo_create(&mut self, size: u64, options: u32, out: HandleOut) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let vmo = crate::vm::Vmo::create(size)?;
        self.give(Handle::new(VmoObject::new(vmo), VMO_RIGHTS), out)
    }

    fn vmo_read(
        &mut self,
        handle: HandleArg,
        data: UserOut<u8>,
        offset: u64,
        len: usize,
        actual: UserOut<usize>,
    ) -> MxResult {
        let (vmo, _) = self.typed::<VmoObject>(handle)?;
        // Step 2: every page of the whole buffer, before the range checks.
        usercopy::probe_writable(data.addr(), len)?;
        let available = vmo.vmo.size().checked_sub(offset).ok_or(Status::OutOfRange)?;
        offset.checked_add(len as u64).ok_or(Status::OutOfRange)?;
        let len = len.min(usize::try_from(available).unwrap_or(usize::MAX));
        let mut buffer = bounce_buffer(len)?;
        let mut moved = 0;
        while moved < len {
            let n = (len - moved).min(buffer.len());
            let got = vmo.vmo.read(offset + moved as u64, &mut buffer[..n])?;
            usercopy::copy_to_user(data.addr() + moved, &buffer[..got])?;
            moved += got;
            if got < n {
                break;
            }
        }
        usercopy::write(actual, &moved)
    }

    fn vmo_write(
        &mut self,
        handle: HandleArg,
        data: UserIn<u8>,
        offset: u64,
        len: usize,
        actual: UserOut<usize>,
    ) -> MxResult {
        let (vmo, _) = self.typed::<VmoObject>(handle)?;
        // Step 2: every page of the whole buffer, before the range checks.
        usercopy::probe_readable(data.addr(), len)?;
        let available = vmo.vmo.size().checked_sub(offset).ok_or(Status::OutOfRange)?;
        offset.checked_add(len as u64).ok_or(Status::OutOfRange)?;
        let len = len.min(usize::try_from(available).unwrap_or(usize::MAX));
        let mut buffer = bounce_buffer(len)?;
        let mut moved = 0;
        while moved < len {
            let n = (len - moved).min(buffer.len());
            usercopy::copy_from_user(&mut buffer[..n], data.addr() + moved)?;
            let put = vmo.vmo.write(offset + moved as u64, &buffer[..n])?;
            moved += put;
            if put < n {
                break;
            }
        }
        usercopy::write(actual, &moved)
    }

    fn vmo_get_size(&mut self, handle: HandleArg, size: UserOut<u64>) -> MxResult {
        let (vmo, _) = self.typed::<VmoObject>(handle)?;
        usercopy::write(size, &vmo.vmo.size())
    }

    fn vmo_set_size(&mut self, handle: HandleArg, size: u64) -> MxResult {
        let (vmo, _) = self.typed::<VmoObject>(handle)?;
        vmo.vmo.set_size(size)
    }

    fn vmo_op_range(
        &mut self,
        handle: HandleArg,
        op: u32,
        offset: u64,
        size: u64,
        buffer: UserInOut<u8>,
        buffer_size: usize,
    ) -> MxResult {
        let (vmo, rights) = self.typed::<VmoObject>(handle)?;
        let needed = match op {
            1 | 2 => Rights::WRITE,
            5 => Rights::READ,
            _ => Rights::NONE,
        };
        if !rights.contains(needed) {
            return Err(Status::AccessDenied);
        }
        if op == 5 && buffer.is_null() {
            return Err(Status::InvalidArgs);
        }
        let addresses = vmo.vmo.op_range(op, offset, size, buffer_size)?;
        if op == 5 {
            let bytes: Vec<u8> = addresses.iter().flat_map(|a| a.to_le_bytes()).collect();
            usercopy::copy_to_user(buffer.addr(), &bytes)?;
        }
        Ok(())
    }

    fn vmar_allocate(
        &mut self,
        parent_vmar_handle: HandleArg,
        offset: usize,
        size: usize,
        map_flags: u32,
        child_vmar: HandleOut,
        child_addr: UserOut<usize>,
    ) -> MxResult {
        // The rights the CAN_MAP flags need are part of the lookup: checked
        // before the type (§4).
        let flags = VmFlags::from_bits_retain(map_flags);
        let wanted = [
            (VmFlags::CAN_MAP_READ, Rights::READ),
            (VmFlags::CAN_MAP_WRITE, Rights::WRITE),
            (VmFlags::CAN_MAP_EXECUTE, Rights::EXECUTE),
        ];
        let needed =
            wanted.iter().filter(|&&(flag, _)| flags.contains(flag)).fold(Rights::NONE, |r, &(_, right)| r | right);
        let (parent, _) = self.process().handles.get_as::<VmarObject>(parent_vmar_handle.raw, needed)?;
        let (child, base) = parent.vmar.allocate(offset as u64, size as u64, map_flags)?;
        let child_rights = Rights::from_bits_retain(kcore::vmar::child_vmar_rights(map_flags));
        let child = VmarObject::new(child);
        let undo = child.clone();
        let result = usercopy::write(child_addr, &(base as usize))
            .and_then(|()| self.give(Handle::new(child, child_rights), child_vmar));
        if result.is_err() {
            let _ = undo.vmar.destroy();
        }
        result
    }

    fn vmar_destroy(&mut self, vmar_handle: HandleArg) -> MxResult {
        let (vmar, _) = self.typed::<VmarObject>(vmar_handle)?;
        vmar.vmar.destroy()
    }

    fn vmar_map(
        &mut self,
        vmar_handle: HandleArg,
        vmar_offset: usize,
        vmo_handle: HandleArg,
        vmo_offset: u64,
        len: usize,
        map_flags: u32,
        mapped_addr: UserOut<usize>,
    ) -> MxResult {
        let (vmar, vmar_rights) = self.typed::<VmarObject>(vmar_handle)?;
        let (vmo, vmo_rights) = self.process().handles.get_as::<VmoObject>(vmo_handle.raw, Rights::NONE)?;
        if !vmo_rights.contains(Rights::MAP) {
            return Err(Status::AccessDenied);
        }
        let addr =
            vmar.vmar.map(vmar_offset as u64, &vmo.vmo, vmo_offset, len as u64, map_flags, vmar_rights, vmo_rights)?;
        if let Err(status) = usercopy::write(mapped_addr, &(addr as usize)) {
            let _ = vmar.vmar.unmap(addr, len as u64);
            return Err(status);
        }
        Ok(())
    }

    fn vmar_unmap(&mut self, vmar_handle: HandleArg, addr: usize, len: usize) -> MxResult {
        let (vmar, _) = self.typed::<VmarObject>(vmar_handle)?;
        vmar.vmar.unmap(addr as u64, len as u64)
    }

    fn vmar_protect(&mut self, vmar_handle: HandleArg, addr: usize, len: usize, prot_flags: u32) -> MxResult {
        // The rights the PERM flags need are part of the lookup: checked
        // before the type (§4).
        let flags = VmFlags::from_bits_retain(prot_flags);
        let wanted = [
            (VmFlags::PERM_READ, Rights::READ),
            (VmFlags::PERM_WRITE, Rights::WRITE),
            (VmFlags::PERM_EXECUTE, Rights::EXECUTE),
        ];
        let needed =
            wanted.iter().filter(|&&(flag, _)| flags.contains(flag)).fold(Rights::NONE, |r, &(_, right)| r | right);
        let (vmar, _) = self.process().handles.get_as::<VmarObject>(vmar_handle.raw, needed)?;
        vmar.vmar.protect(addr as u64, len as u64, prot_flags)
    }

    fn log_create(&mut self, options: u32, out: HandleOut) -> MxResult {
        let log = Log::new(options)?;
        let rights = if log.is_readable() { LOG_READ_RIGHTS } else { LOG_RIGHTS };
        self.give(Handle::new(log, rights), out)
    }

    fn log_write(&mut self, handle: HandleArg, len: u32, buffer: UserIn<u8>, options: u32) -> MxResult {
        Ctx::log_write(self, handle, options, buffer, len as usize)
    }

    fn log_read(&mut self, handle: HandleArg, _len: u32, buffer: UserOut<u8>, options: u32) -> MxResult<u32> {
        Ctx::log_read(self, handle, options, buffer)
    }

    fn debuglog_create(&mut self, resource: HandleArg, options: u32, out: HandleOut) -> MxResult {
        let (resource, _) = self.typed::<Resource>(resource)?;
        if resource.kind() != KIND_ROOT {
            return Err(Status::AccessDenied);
        }
        let log = Log::new(options)?;
        let rights = if options & LOG_FLAG_READABLE != 0 { LOG_READ_RIGHTS } else { LOG_RIGHTS };
        self.give(Handle::new(log, rights), out)
    }

    fn debuglog_write(&mut self, handle: HandleArg, options: u32, buffer: UserIn<u8>, len: usize) -> MxResult {
        Ctx::log_write(self, handle, options, buffer, len)
    }

    fn debuglog_read(&mut self, handle: HandleArg, options: u32, buffer: UserOut<u8>, _len: usize) -> MxResult<u32> {
        Ctx::log_read(self, handle, options, buffer)
    }

    fn debug_write(&mut self, buffer: UserIn<u8>, length: u32) -> MxResult<u32> {
        let len = (length as usize).min(256);
        let bytes = usercopy::read_bytes(buffer, len, 256)?;
        crate::log::write_unlocked(format_args!("{}", core::str::from_utf8(&bytes).unwrap_or("<binary>")));
        Ok(len as u32)
    }

    fn resource_create(
        &mut self,
        parent_handle: HandleArg,
        kind: u32,
        low: u64,
        high: u64,
        resource_out: HandleOut,
    ) -> MxResult {
        if high < low {
            return Err(Status::InvalidArgs);
        }
        let (parent, _) = self.typed::<Resource>(parent_handle)?;
        let child = parent.create_child(kind, low, high)?;
        self.give(Handle::new(child, Rights::DEFAULT_RESOURCE), resource_out)
    }

    fn guest_create(&mut self, resource: HandleArg, options: u32, physmem_vmo: HandleArg, out: HandleOut) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let (resource, _) = self.typed::<Resource>(resource)?;
        if resource.kind() != KIND_ROOT && resource.kind() != ResourceKind::Hypervisor as u32 {
            return Err(Status::AccessDenied);
        }
        let (vmo, _) = self.typed::<VmoObject>(physmem_vmo)?;
        let guest = crate::hypervisor::Guest::create(vmo.vmo.clone())?;
        self.give(Handle::new(guest, Rights::DEFAULT_GUEST), out)
    }

    fn guest_set_trap(
        &mut self,
        guest: HandleArg,
        kind: u32,
        addr: mx_vaddr_t,
        len: usize,
        port: Option<HandleArg>,
        key: u64,
    ) -> MxResult {
        let (guest, _) = self.typed::<crate::hypervisor::Guest>(guest)?;
        let port = match port {
            Some(port) => Some(self.typed::<Port>(port)?.0),
            None => None,
        };
        // With a port, every access the trap covers is delivered through it
        // from the trap's packet pool; see `hypervisor`.
        guest.set_trap(kind, addr as u64, len as u64, port, key)
    }

    fn guest_map(
        &mut self,
        guest: HandleArg,
        options: u32,
        gpa: mx_vaddr_t,
        vmo: HandleArg,
        vmo_offset: u64,
        len: usize,
    ) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let (guest, _) = self.typed::<crate::hypervisor::Guest>(guest)?;
        let (vmo, _) = self.typed::<VmoObject>(vmo)?;
        guest.map(gpa as u64, vmo.vmo.clone(), vmo_offset, len as u64)
    }

    fn guest_unmap(&mut self, guest: HandleArg, gpa: mx_vaddr_t, len: usize) -> MxResult {
        let (guest, _) = self.typed::<crate::hypervisor::Guest>(guest)?;
        guest.unmap(gpa as u64, len as u64)
    }

    fn vcpu_create(
        &mut self,
        guest: HandleArg,
        options: u32,
        args: UserIn<VcpuCreateArgs>,
        out: HandleOut,
    ) -> MxResult {
        if options != 0 {
            return Err(Status::InvalidArgs);
        }
        let (guest, _) = self.typed::<crate::hypervisor::Guest>(guest)?;
        let args = usercopy::read(args).map_err(|_| Status::InvalidArgs)?;
        let (apic, _) = self.process().handles.get_as::<VmoObject>(args.apic_vmo, Rights::READ | Rights::WRITE)?;
        let vcpu = crate::hypervisor::Vcpu::create(&guest, args.ip, args.cr3, apic.vmo.clone())?;
        self.give(Handle::new(vcpu, Rights::DEFAULT_VCPU), out)
    }

    fn vcpu_resume(&mut self, vcpu: HandleArg, packet: UserOut<PortPacket>) -> MxResult {
        let (vcpu, _) = self.typed::<crate::hypervisor::Vcpu>(vcpu)?;
        // A bad `packet` pointer fails before the guest runs: an exit it
        // could not report would be lost.
        usercopy::write(packet, &PortPacket::default()).map_err(|_| Status::InvalidArgs)?;
        let result = vcpu.resume()?;
        usercopy::write(packet, &result).map_err(|_| Status::InvalidArgs)
    }

    fn vcpu_interrupt(&mut self, vcpu: HandleArg, vector: u32) -> MxResult {
        let (vcpu, _) = self.typed::<crate::hypervisor::Vcpu>(vcpu)?;
        vcpu.interrupt(vector)
    }

    fn vcpu_read_state(&mut self, vcpu: HandleArg, kind: u32, buffer: UserOut<u8>, len: u32) -> MxResult {
        let (vcpu, _) = self.typed::<crate::hypervisor::Vcpu>(vcpu)?;
        if len as usize > VcpuState::SIZE {
            return Err(Status::InvalidArgs);
        }
        vcpu.check_thread()?;
        if kind == VcpuStateKind::State as u32 && len as usize == VcpuState::SIZE {
            let state = vcpu.read_state()?;
            usercopy::write(UserOut::<VcpuState>::new(buffer.addr()), &state).map_err(|_| Status::InvalidArgs)
        } else if kind == VcpuStateKind::System as u32 && len as usize == VcpuSystem::SIZE {
            let system = vcpu.read_system()?;
            usercopy::write(UserOut::<VcpuSystem>::new(buffer.addr()), &system).map_err(|_| Status::InvalidArgs)
        } else {
            Err(Status::InvalidArgs)
        }
    }

    fn vcpu_write_state(&mut self, vcpu: HandleArg, kind: u32, buffer: UserIn<u8>, len: u32) -> MxResult {
        let (vcpu, _) = self.typed::<crate::hypervisor::Vcpu>(vcpu)?;
        if len as usize > VcpuState::SIZE {
            return Err(Status::InvalidArgs);
        }
        let bytes = usercopy::read_bytes(buffer, len as usize, VcpuState::SIZE).map_err(|_| Status::InvalidArgs)?;
        vcpu.check_thread()?;
        if kind == VcpuStateKind::State as u32 && bytes.len() == VcpuState::SIZE {
            let state = VcpuState::read(&bytes).ok_or(Status::InvalidArgs)?;
            vcpu.write_state(&state)
        } else if kind == VcpuStateKind::Io as u32 && bytes.len() == VcpuIo::SIZE {
            let io = VcpuIo::read(&bytes).ok_or(Status::InvalidArgs)?;
            vcpu.write_io(&io)
        } else if kind == VcpuStateKind::System as u32 && bytes.len() == VcpuSystem::SIZE {
            let system = VcpuSystem::read(&bytes).ok_or(Status::InvalidArgs)?;
            vcpu.write_system(&system)
        } else {
            Err(Status::InvalidArgs)
        }
    }
}

#[allow(dead_code)]
fn unused(_: i32) -> i32 {
    status_of(Ok(()))
}

/// The kernel buffer `vmo_read`/`vmo_write` copy through: at most 64 KiB,
/// whatever the request's size (a request of a GiB must not need a GiB of
/// kernel heap). `NO_MEMORY` if even that cannot be had.
fn bounce_buffer(len: usize) -> Result<Vec<u8>, Status> {
    const MAX: usize = 64 * 1024;
    let size = len.min(MAX);
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(size).map_err(|_| Status::NoMemory)?;
    buffer.resize(size, 0);
    Ok(buffer)
}
