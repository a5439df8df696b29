//! Handles and the typed objects behind them.
//!
//! A [`Handle`] owns one handle value and closes it when dropped. Each object
//! type wraps a `Handle` and offers the calls that take it, with results as
//! `Result<T, Status>`. The raw calls are in [`crate::sys`].

use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr;

use mx_abi::wire::Wire;
use mx_abi::{
    mx_handle_t, InfoProcess, InfoTopic, InfoVmar, ProcArgs, Rights, Signals, Status, VmFlags, HANDLE_INVALID,
    TIME_INFINITE,
};

use crate::{ok, sys, Result};

/// An owned handle; closed on drop. [`Handle::INVALID`] owns nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct Handle(mx_handle_t);

impl Handle {
    /// No handle (`MX_HANDLE_INVALID`).
    pub const INVALID: Handle = Handle(HANDLE_INVALID);

    /// Takes ownership of the raw handle value `raw` (e.g. one received in a
    /// message). Closing a value the process does not own only fails with
    /// `BAD_HANDLE`; no memory is at stake.
    pub const fn from_raw(raw: mx_handle_t) -> Handle {
        Handle(raw)
    }

    /// The raw value, still owned by `self`.
    pub const fn raw(&self) -> mx_handle_t {
        self.0
    }

    /// Gives up ownership: the caller must close or transfer the value.
    pub fn into_raw(self) -> mx_handle_t {
        let raw = self.0;
        core::mem::forget(self);
        raw
    }

    /// Whether this is not [`Handle::INVALID`].
    pub const fn is_valid(&self) -> bool {
        self.0 != HANDLE_INVALID
    }

    /// `mx_handle_duplicate`: a second handle with `rights` (or `Rights::SAME_RIGHTS`).
    pub fn duplicate(&self, rights: Rights) -> Result<Handle> {
        let mut out = HANDLE_INVALID;
        // SAFETY: `out` is a valid out-pointer.
        ok(unsafe { sys::mx_handle_duplicate(self.0, rights.bits(), &mut out) })?;
        Ok(Handle(out))
    }

    /// `mx_handle_replace`: consumes this handle (even on failure).
    pub fn replace(self, rights: Rights) -> Result<Handle> {
        let mut out = HANDLE_INVALID;
        // SAFETY: `out` is a valid out-pointer; the old value is consumed.
        ok(unsafe { sys::mx_handle_replace(self.into_raw(), rights.bits(), &mut out) })?;
        Ok(Handle(out))
    }

    /// `mx_object_wait_one`: waits for any of `signals`; returns the signals
    /// observed. `deadline` is absolute (`u64::MAX` for none).
    pub fn wait_one(&self, signals: Signals, deadline: u64) -> Result<Signals> {
        let mut observed = 0;
        // SAFETY: `observed` is a valid out-pointer.
        let raw = unsafe { sys::mx_object_wait_one(self.0, signals.bits(), deadline, &mut observed) };
        ok(raw)?;
        Ok(Signals::from_bits_retain(observed))
    }

    /// `mx_object_signal`: clears then sets user signals.
    pub fn signal(&self, clear: Signals, set: Signals) -> Result {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_object_signal(self.0, clear.bits(), set.bits()) }).map(drop)
    }

    /// `mx_object_signal_peer`.
    pub fn signal_peer(&self, clear: Signals, set: Signals) -> Result {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_object_signal_peer(self.0, clear.bits(), set.bits()) }).map(drop)
    }

    /// `mx_object_get_info` for a topic with one record of type `T`.
    pub fn info<T: Wire>(&self, topic: InfoTopic) -> Result<T> {
        self.info_raw(topic as u32)
    }

    /// `mx_object_get_info` for a topic by number (magnetar's own topics
    /// such as `MX_INFO_KERNEL_COUNTS` are not in Magenta's enumeration).
    pub fn info_raw<T: Wire>(&self, topic: u32) -> Result<T> {
        let mut buf = [0u8; 128];
        let size = T::SIZE.min(buf.len());
        let (mut actual, mut avail) = (0usize, 0usize);
        // SAFETY: `buf` is valid for `size` bytes; the counts are valid out-pointers.
        let raw =
            unsafe { sys::mx_object_get_info(self.0, topic, buf.as_mut_ptr().cast(), size, &mut actual, &mut avail) };
        ok(raw)?;
        T::read(&buf[..size]).ok_or(Status::BufferTooSmall)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.is_valid() {
            // SAFETY: no pointers. A failure means the value was not ours; nothing to do.
            let _ = unsafe { sys::mx_handle_close(self.0) };
        }
    }
}

macro_rules! object {
    ($($(#[doc = $doc:literal])* $name:ident;)*) => {$(
        $(#[doc = $doc])*
        #[derive(Debug, PartialEq, Eq)]
        pub struct $name(Handle);

        impl $name {
            /// Treats `handle` as this type of object (the kernel checks types).
            pub const fn from_handle(handle: Handle) -> Self {
                $name(handle)
            }
            /// The handle.
            pub const fn handle(&self) -> &Handle {
                &self.0
            }
            /// The handle, owned.
            pub fn into_handle(self) -> Handle {
                self.0
            }
            /// The raw handle value, still owned by `self`.
            pub const fn raw(&self) -> mx_handle_t {
                self.0.raw()
            }
            /// A duplicate with `rights`.
            pub fn duplicate(&self, rights: Rights) -> Result<Self> {
                self.0.duplicate(rights).map($name)
            }
        }

        impl From<$name> for Handle {
            fn from(o: $name) -> Handle {
                o.0
            }
        }
    )*};
}

object! {
    /// A channel end.
    Channel;
    /// An event.
    Event;
    /// One end of an event pair.
    EventPair;
    /// A port.
    Port;
    /// A virtual memory object.
    Vmo;
    /// A virtual memory address region.
    Vmar;
    /// A process.
    Process;
    /// A thread.
    Thread;
    /// A job.
    Job;
    /// A timer.
    Timer;
    /// A debug log.
    Log;
    /// A resource.
    Resource;
}

/// `Rights::SAME_RIGHTS`: keep the source's rights when duplicating.
pub const SAME_RIGHTS: Rights = Rights::SAME_RIGHTS;

fn pair(raw: i32, a: mx_handle_t, b: mx_handle_t) -> Result<(Handle, Handle)> {
    ok(raw)?;
    Ok((Handle(a), Handle(b)))
}

impl Channel {
    /// `mx_channel_create`.
    pub fn create() -> Result<(Channel, Channel)> {
        let (mut a, mut b) = (HANDLE_INVALID, HANDLE_INVALID);
        // SAFETY: valid out-pointers.
        let (a, b) = pair(unsafe { sys::mx_channel_create(0, &mut a, &mut b) }, a, b)?;
        Ok((Channel(a), Channel(b)))
    }

    /// `mx_channel_write`. On success the handles in `handles` move to the
    /// channel and the vector is emptied; on failure they stay in it.
    pub fn write(&self, bytes: &[u8], handles: &mut Vec<Handle>) -> Result {
        let raw: Vec<mx_handle_t> = handles.iter().map(Handle::raw).collect();
        let nb = u32::try_from(bytes.len()).map_err(|_| Status::OutOfRange)?;
        let nh = u32::try_from(raw.len()).map_err(|_| Status::OutOfRange)?;
        // SAFETY: both buffers are valid for their lengths.
        ok(unsafe { sys::mx_channel_write(self.raw(), 0, bytes.as_ptr().cast(), nb, raw.as_ptr(), nh) })?;
        handles.drain(..).for_each(|h| {
            h.into_raw();
        });
        Ok(())
    }

    /// `mx_channel_read` into caller buffers: returns (bytes, handles) read.
    /// The handle values received are owned by the caller (wrap them in
    /// [`Handle::from_raw`]). `BUFFER_TOO_SMALL` leaves the message queued.
    pub fn read_raw(&self, bytes: &mut [u8], handles: &mut [mx_handle_t]) -> Result<(usize, usize)> {
        let (mut nb, mut nh) = (0u32, 0u32);
        let cap_b = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let cap_h = u32::try_from(handles.len()).unwrap_or(u32::MAX);
        // SAFETY: both buffers are valid for the capacities given; the counts are out-pointers.
        let raw = unsafe {
            sys::mx_channel_read(
                self.raw(),
                0,
                bytes.as_mut_ptr().cast(),
                handles.as_mut_ptr(),
                cap_b,
                cap_h,
                &mut nb,
                &mut nh,
            )
        };
        ok(raw)?;
        Ok((nb as usize, nh as usize))
    }

    /// Reads one whole message, waiting for it if none is queued.
    pub fn read(&self) -> Result<(Vec<u8>, Vec<Handle>)> {
        loop {
            let (mut nb, mut nh) = (0u32, 0u32);
            // SAFETY: null buffers with capacity 0; the counts are out-pointers.
            let raw = unsafe {
                sys::mx_channel_read(self.raw(), 0, ptr::null_mut(), ptr::null_mut(), 0, 0, &mut nb, &mut nh)
            };
            match ok(raw) {
                Err(Status::ShouldWait) => {
                    self.0.wait_one(Signals::CHANNEL_READABLE | Signals::CHANNEL_PEER_CLOSED, TIME_INFINITE)?;
                    continue;
                }
                Ok(_) | Err(Status::BufferTooSmall) => {}
                Err(e) => return Err(e),
            }
            let mut bytes = alloc::vec![0u8; nb as usize];
            let mut raw_handles = alloc::vec![HANDLE_INVALID; nh as usize];
            match self.read_raw(&mut bytes, &mut raw_handles) {
                Ok((b, h)) => {
                    bytes.truncate(b);
                    return Ok((bytes, raw_handles[..h].iter().map(|&r| Handle(r)).collect()));
                }
                // Another reader took it, or it changed: try again.
                Err(Status::BufferTooSmall) | Err(Status::ShouldWait) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Event {
    /// `mx_event_create`.
    pub fn create() -> Result<Event> {
        let mut h = HANDLE_INVALID;
        // SAFETY: valid out-pointer.
        ok(unsafe { sys::mx_event_create(0, &mut h) })?;
        Ok(Event(Handle(h)))
    }
}

impl EventPair {
    /// `mx_eventpair_create`.
    pub fn create() -> Result<(EventPair, EventPair)> {
        let (mut a, mut b) = (HANDLE_INVALID, HANDLE_INVALID);
        // SAFETY: valid out-pointers.
        let (a, b) = pair(unsafe { sys::mx_eventpair_create(0, &mut a, &mut b) }, a, b)?;
        Ok((EventPair(a), EventPair(b)))
    }
}

impl Port {
    /// `mx_port_create`.
    pub fn create() -> Result<Port> {
        let mut h = HANDLE_INVALID;
        // SAFETY: valid out-pointer.
        ok(unsafe { sys::mx_port_create(0, &mut h) })?;
        Ok(Port(Handle(h)))
    }

    /// `mx_port_queue` of a user packet.
    pub fn queue(&self, packet: &mx_abi::PortPacket) -> Result {
        let bytes = packet.to_bytes();
        // SAFETY: `bytes` holds the 48-byte packet the kernel reads.
        ok(unsafe { sys::mx_port_queue(self.raw(), bytes.as_ptr().cast(), 0) }).map(drop)
    }

    /// `mx_port_wait` until `deadline`.
    pub fn wait(&self, deadline: u64) -> Result<mx_abi::PortPacket> {
        let mut bytes = [0u8; 48];
        // SAFETY: `bytes` has room for one 48-byte packet.
        ok(unsafe { sys::mx_port_wait(self.raw(), deadline, bytes.as_mut_ptr().cast(), 0) })?;
        Ok(mx_abi::PortPacket::from_bytes(&bytes))
    }

    /// `mx_object_wait_async`: a packet with `key` when `object` asserts any of `signals`.
    pub fn wait_async(&self, object: &Handle, key: u64, signals: Signals, repeating: bool) -> Result {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_object_wait_async(object.raw(), self.raw(), key, signals.bits(), u32::from(repeating)) })
            .map(drop)
    }
}

impl Timer {
    /// `mx_timer_create` on the monotonic clock.
    pub fn create() -> Result<Timer> {
        let mut h = HANDLE_INVALID;
        // SAFETY: valid out-pointer.
        ok(unsafe { sys::mx_timer_create(0, mx_abi::Clock::Monotonic as u32, &mut h) })?;
        Ok(Timer(Handle(h)))
    }

    /// `mx_timer_set`.
    pub fn set(&self, deadline: u64, slack: u64) -> Result {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_timer_set(self.raw(), deadline, slack) }).map(drop)
    }

    /// `mx_timer_cancel`.
    pub fn cancel(&self) -> Result {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_timer_cancel(self.raw()) }).map(drop)
    }
}

impl Vmo {
    /// `mx_vmo_create`.
    pub fn create(size: u64) -> Result<Vmo> {
        let mut h = HANDLE_INVALID;
        // SAFETY: valid out-pointer.
        ok(unsafe { sys::mx_vmo_create(size, 0, &mut h) })?;
        Ok(Vmo(Handle(h)))
    }

    /// `mx_vmo_read` at `offset`: the bytes read.
    pub fn read(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut actual = 0;
        // SAFETY: `buf` is valid for its length; `actual` is an out-pointer.
        ok(unsafe { sys::mx_vmo_read(self.raw(), buf.as_mut_ptr().cast(), offset, buf.len(), &mut actual) })?;
        Ok(actual)
    }

    /// Reads exactly `buf.len()` bytes at `offset` (`OUT_OF_RANGE` if the VMO ends first).
    pub fn read_exact(&self, buf: &mut [u8], offset: u64) -> Result {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(Status::OutOfRange);
            }
            done += n;
        }
        Ok(())
    }

    /// `mx_vmo_write` at `offset`: the bytes written.
    pub fn write(&self, buf: &[u8], offset: u64) -> Result<usize> {
        let mut actual = 0;
        // SAFETY: `buf` is valid for its length; `actual` is an out-pointer.
        ok(unsafe { sys::mx_vmo_write(self.raw(), buf.as_ptr().cast(), offset, buf.len(), &mut actual) })?;
        Ok(actual)
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_all(&self, buf: &[u8], offset: u64) -> Result {
        let mut done = 0;
        while done < buf.len() {
            let n = self.write(&buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(Status::OutOfRange);
            }
            done += n;
        }
        Ok(())
    }

    /// `mx_vmo_get_size`.
    pub fn size(&self) -> Result<u64> {
        let mut size = 0;
        // SAFETY: valid out-pointer.
        ok(unsafe { sys::mx_vmo_get_size(self.raw(), &mut size) })?;
        Ok(size)
    }

    /// `mx_vmo_set_size`.
    pub fn set_size(&self, size: u64) -> Result {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_vmo_set_size(self.raw(), size) }).map(drop)
    }
}

impl Vmar {
    /// `mx_vmar_map`: maps `len` bytes of `vmo` from `vmo_offset`; returns the
    /// address. `offset` is relative to this VMAR and needs `SPECIFIC`.
    pub fn map(&self, offset: usize, vmo: &Vmo, vmo_offset: u64, len: usize, flags: VmFlags) -> Result<usize> {
        let mut addr = 0;
        // SAFETY: `addr` is a valid out-pointer.
        let raw = unsafe { sys::mx_vmar_map(self.raw(), offset, vmo.raw(), vmo_offset, len, flags.bits(), &mut addr) };
        ok(raw)?;
        Ok(addr)
    }

    /// `mx_vmar_unmap`.
    ///
    /// # Safety
    ///
    /// Nothing in this process may use the memory in `[addr, addr + len)`
    /// afterwards (it would fault, or see whatever is mapped there next).
    pub unsafe fn unmap(&self, addr: usize, len: usize) -> Result {
        // SAFETY: no pointers the kernel dereferences; the caller vouches for the range.
        ok(unsafe { sys::mx_vmar_unmap(self.raw(), addr, len) }).map(drop)
    }

    /// `mx_vmar_protect`.
    ///
    /// # Safety
    ///
    /// Removing permissions from memory the program still uses faults it.
    pub unsafe fn protect(&self, addr: usize, len: usize, flags: VmFlags) -> Result {
        // SAFETY: the caller vouches for the range.
        ok(unsafe { sys::mx_vmar_protect(self.raw(), addr, len, flags.bits()) }).map(drop)
    }

    /// `mx_vmar_allocate`: a child region; returns it and its address.
    pub fn allocate(&self, offset: usize, size: usize, flags: VmFlags) -> Result<(Vmar, usize)> {
        let (mut h, mut addr) = (HANDLE_INVALID, 0usize);
        // SAFETY: valid out-pointers.
        ok(unsafe { sys::mx_vmar_allocate(self.raw(), offset, size, flags.bits(), &mut h, &mut addr) })?;
        Ok((Vmar(Handle(h)), addr))
    }

    /// `mx_vmar_destroy`.
    ///
    /// # Safety
    ///
    /// Every mapping inside goes away: nothing may use that memory afterwards.
    pub unsafe fn destroy(&self) -> Result {
        // SAFETY: the caller vouches for the region.
        ok(unsafe { sys::mx_vmar_destroy(self.raw()) }).map(drop)
    }

    /// `MX_INFO_VMAR`: (base, len).
    pub fn range(&self) -> Result<(usize, usize)> {
        let info: InfoVmar = self.0.info(InfoTopic::Vmar)?;
        Ok((info.base as usize, info.len as usize))
    }
}

impl Process {
    /// `mx_process_create` in `job`: the process and its root VMAR.
    pub fn create(job: &Handle, name: &str) -> Result<(Process, Vmar)> {
        let (mut p, mut v) = (HANDLE_INVALID, HANDLE_INVALID);
        let len = name.len().min(mx_abi::MAX_NAME_LEN) as u32;
        // SAFETY: `name` is valid for `len` bytes; valid out-pointers.
        let raw = unsafe { sys::mx_process_create(job.raw(), name.as_ptr().cast(), len, 0, &mut p, &mut v) };
        let (p, v) = pair(raw, p, v)?;
        Ok((Process(p), Vmar(v)))
    }

    /// `mx_process_start`: `arg1` moves into the process (its new value goes
    /// in `rdi`); `arg2` goes in `rsi`. On failure the kernel gives `arg1` back
    /// and it is closed.
    pub fn start(&self, thread: &Thread, entry: usize, stack: usize, arg1: Handle, arg2: usize) -> Result {
        let raw = arg1.into_raw();
        // SAFETY: no pointers.
        let status = unsafe { sys::mx_process_start(self.raw(), thread.raw(), entry, stack, raw, arg2) };
        if status != 0 {
            drop(Handle(raw));
        }
        ok(status).map(drop)
    }

    /// `MX_INFO_PROCESS`.
    pub fn info(&self) -> Result<InfoProcess> {
        self.0.info(InfoTopic::Process)
    }

    /// Waits until the process has terminated; returns its return code.
    pub fn wait_exit(&self) -> Result<i32> {
        self.0.wait_one(Signals::PROCESS_TERMINATED, TIME_INFINITE)?;
        Ok(self.info()?.return_code)
    }

    /// `mx_task_kill`.
    pub fn kill(&self) -> Result {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_task_kill(self.raw()) }).map(drop)
    }
}

impl Thread {
    /// `mx_thread_create` in `process`.
    pub fn create(process: &Process, name: &str) -> Result<Thread> {
        let mut h = HANDLE_INVALID;
        let len = name.len().min(mx_abi::MAX_NAME_LEN) as u32;
        // SAFETY: `name` is valid for `len` bytes; valid out-pointer.
        ok(unsafe { sys::mx_thread_create(process.raw(), name.as_ptr().cast(), len, 0, &mut h) })?;
        Ok(Thread(Handle(h)))
    }

    /// `mx_thread_start`.
    pub fn start(&self, entry: usize, stack: usize, arg1: usize, arg2: usize) -> Result {
        // SAFETY: no pointers.
        ok(unsafe { sys::mx_thread_start(self.raw(), entry, stack, arg1, arg2) }).map(drop)
    }
}

impl Log {
    /// `mx_debuglog_create` with the root resource.
    pub fn create(resource: &Resource, options: u32) -> Result<Log> {
        let mut h = HANDLE_INVALID;
        // SAFETY: valid out-pointer.
        ok(unsafe { sys::mx_debuglog_create(resource.raw(), options, &mut h) })?;
        Ok(Log(Handle(h)))
    }

    /// Legacy `mx_log_create` (no resource needed).
    pub fn create_legacy(options: u32) -> Result<Log> {
        let mut h = HANDLE_INVALID;
        // SAFETY: valid out-pointer.
        ok(unsafe { sys::mx_log_create(options, &mut h) })?;
        Ok(Log(Handle(h)))
    }

    /// `mx_debuglog_write` of one record (at most 224 bytes: `OUT_OF_RANGE` beyond).
    pub fn write(&self, bytes: &[u8]) -> Result {
        // SAFETY: `bytes` is valid for its length.
        ok(unsafe { sys::mx_debuglog_write(self.raw(), 0, bytes.as_ptr().cast::<c_void>(), bytes.len()) }).map(drop)
    }
}

impl Resource {
    /// `mx_resource_create` below this resource.
    pub fn create_child(&self, kind: u32, low: u64, high: u64) -> Result<Resource> {
        let mut h = HANDLE_INVALID;
        // SAFETY: valid out-pointer.
        ok(unsafe { sys::mx_resource_create(self.raw(), kind, low, high, &mut h) })?;
        Ok(Resource(Handle(h)))
    }
}

/// The size of the bootstrap header, for buffers.
pub const PROCARGS_HEADER: usize = core::mem::size_of::<ProcArgs>();
