//! The bootstrap message, read once before `main`: its handles (taken by the
//! program with [`take_handle`]) and its argument and environment strings.
//!
//! The runtime keeps for itself the root VMAR (`PA_VMAR_ROOT`, for the heap;
//! [`vmar_root`] gives out duplicates) and a log handle (`PA_FDIO_LOGGER`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use mx::processargs::Message;
use mx::{Channel, Handle, Log, Resource, Signals, Status, Vmar};
use mx_abi::{pa_hnd, HANDLE_INVALID, PA_FDIO_LOGGER, PA_RESOURCE, PA_VMAR_ROOT};

use crate::Lock;

/// Largest bootstrap message read (bytes, handles).
const MAX_BYTES: usize = 16 * 1024;
const MAX_HANDLES: usize = 64;

struct Raw {
    bytes: [u8; MAX_BYTES],
    handles: [u32; MAX_HANDLES],
}

/// The message as received, before the heap exists.
static RAW: Lock<Raw> = Lock::new(Raw { bytes: [0; MAX_BYTES], handles: [0; MAX_HANDLES] });

struct Boot {
    /// (handle-info word, handle not yet taken).
    handles: Vec<(u32, Option<Handle>)>,
    args: Vec<String>,
    environ: Vec<String>,
    vmar_root: Option<Vmar>,
}

static BOOT: Lock<Option<Boot>> = Lock::new(None);

/// Reads one message from `channel`, waiting for it if needed.
fn receive(channel: &Channel, raw: &mut Raw) -> Result<(usize, usize), Status> {
    loop {
        match channel.read_raw(&mut raw.bytes, &mut raw.handles) {
            Err(Status::ShouldWait) => {
                channel.handle().wait_one(Signals::CHANNEL_READABLE | Signals::CHANNEL_PEER_CLOSED, u64::MAX)?;
            }
            other => return other,
        }
    }
}

/// Reads the bootstrap message, starts the heap and the log. Failures leave
/// the program without the missing parts; `main` still runs.
pub(crate) fn init(bootstrap: Handle) {
    let channel = Channel::from_handle(bootstrap);
    let boot = RAW.with(true, |raw| {
        let (nb, nh) = if channel.handle().is_valid() { receive(&channel, raw).unwrap_or((0, 0)) } else { (0, 0) };
        let mut handles: Vec<(u32, Option<Handle>)> = Vec::new();
        let msg = Message::parse(&raw.bytes[..nb], nh).ok();
        // The heap first: everything below allocates.
        let vmar_root = msg
            .and_then(|m| m.find_handle(pa_hnd(PA_VMAR_ROOT, 0)))
            .map(|i| Vmar::from_handle(Handle::from_raw(core::mem::replace(&mut raw.handles[i], HANDLE_INVALID))));
        if let Some(vmar) = &vmar_root {
            crate::heap::init(vmar.raw());
        }
        for (i, &h) in raw.handles[..nh].iter().enumerate() {
            let info = msg.and_then(|m| m.handle_info(i)).unwrap_or(0);
            if h != HANDLE_INVALID {
                handles.push((info, Some(Handle::from_raw(h))));
            }
        }
        let args = msg.map(|m| m.args().map(ToString::to_string).collect()).unwrap_or_default();
        let environ = msg.map(|m| m.environ().map(ToString::to_string).collect()).unwrap_or_default();
        Boot { handles, args, environ, vmar_root }
    });
    let Some(mut boot) = boot else { return };
    crate::log::init(pick_log(&mut boot));
    BOOT.with(true, |b| *b = Some(boot));
}

/// The log: the one passed as `PA_FDIO_LOGGER`, else a debuglog made with
/// the root resource, else a legacy log; `None` falls back to `mx_debug_write`.
fn pick_log(boot: &mut Boot) -> Option<Log> {
    let passed = boot.handles.iter_mut().find(|(info, h)| info & 0xff == PA_FDIO_LOGGER && h.is_some());
    if let Some((_, h)) = passed {
        return h.take().map(Log::from_handle);
    }
    let resource = boot.handles.iter().find(|(info, _)| *info == pa_hnd(PA_RESOURCE, 0));
    if let Some((_, Some(h))) = resource {
        let resource = core::mem::ManuallyDrop::new(Resource::from_handle(Handle::from_raw(h.raw())));
        if let Ok(log) = Log::create(&resource, 0) {
            return Some(log);
        }
    }
    Log::create_legacy(0).ok()
}

/// Takes the bootstrap handle `PA_HND(ty, arg)`; `None` if it was not sent
/// or was taken already.
pub fn take_handle(ty: u32, arg: u32) -> Option<Handle> {
    let info = pa_hnd(ty, arg);
    BOOT.with(true, |b| b.as_mut()?.handles.iter_mut().find(|(i, h)| *i == info && h.is_some())?.1.take()).flatten()
}

/// The argument strings of the bootstrap message.
pub fn args() -> Vec<String> {
    BOOT.with(true, |b| b.as_ref().map(|b| b.args.clone())).flatten().unwrap_or_default()
}

/// The environment strings of the bootstrap message.
pub fn environ() -> Vec<String> {
    BOOT.with(true, |b| b.as_ref().map(|b| b.environ.clone())).flatten().unwrap_or_default()
}

/// A duplicate of the root VMAR handle (the runtime keeps the original).
pub fn vmar_root() -> Option<Vmar> {
    BOOT.with(true, |b| b.as_ref()?.vmar_root.as_ref()?.duplicate(mx::SAME_RIGHTS).ok()).flatten()
}
