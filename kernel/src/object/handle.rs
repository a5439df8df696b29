//! Handles and per-process handle tables.

#![forbid(unsafe_code)]

use super::{downcast, KernelObject};
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use kcore::handle::{HandleError, HandleTable as Slots};
use mx_abi::meta::HandleSpec;
use mx_abi::{Rights, Signals, Status};

/// Live handles in the whole system, for accounting.
static LIVE_HANDLES: AtomicU64 = AtomicU64::new(0);
/// Identifies a handle for as long as it lives (waits and async waits made
/// through it are cancelled when it closes).
static NEXT_HANDLE_ID: AtomicU64 = AtomicU64::new(1);

pub fn live_handles() -> u64 {
    LIVE_HANDLES.load(Ordering::Relaxed)
}

/// A reference to an object with rights. Dropping it closes it: waits made
/// through it end with CANCELED, and when it was the object's last handle
/// the object is told (`on_zero_handles`).
pub struct Handle {
    object: Arc<dyn KernelObject>,
    rights: Rights,
    id: u64,
}

impl Handle {
    pub fn new(object: Arc<dyn KernelObject>, rights: Rights) -> Handle {
        object.base().handle_count.fetch_add(1, Ordering::AcqRel);
        LIVE_HANDLES.fetch_add(1, Ordering::Relaxed);
        update_last_handle(&*object);
        Handle { object, rights, id: NEXT_HANDLE_ID.fetch_add(1, Ordering::Relaxed) }
    }

    pub fn object(&self) -> &Arc<dyn KernelObject> {
        &self.object
    }

    pub fn rights(&self) -> Rights {
        self.rights
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn has_rights(&self, rights: Rights) -> bool {
        self.rights.contains(rights)
    }

    /// A new handle to the same object with `rights`, which must be
    /// `SAME_RIGHTS` or a subset of this handle's (else INVALID_ARGS).
    pub fn derive(&self, rights: Rights) -> Result<Handle, Status> {
        let rights = if rights == Rights::SAME_RIGHTS {
            self.rights
        } else if self.rights.contains(rights) {
            rights
        } else {
            return Err(Status::InvalidArgs);
        };
        Ok(Handle::new(self.object.clone(), rights))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        LIVE_HANDLES.fetch_sub(1, Ordering::Relaxed);
        let base = self.object.base();
        base.signals.cancel_handle(self.id);
        let count = base.handle_count.fetch_sub(1, Ordering::AcqRel) - 1;
        update_last_handle(&*self.object);
        if count == 0 {
            self.object.on_zero_handles();
        }
    }
}

/// `MX_SIGNAL_LAST_HANDLE` is asserted exactly while one handle remains.
/// The count is read again under the signal lock: with a duplicate and a
/// close racing, the update that runs last sees the final count, whatever
/// order the two counts changed in.
fn update_last_handle(object: &dyn KernelObject) {
    if !object.is_waitable() {
        return;
    }
    let base = object.base();
    base.signals.update_with(|old| {
        if base.handle_count.load(Ordering::Acquire) == 1 {
            old | Signals::LAST_HANDLE
        } else {
            old - Signals::LAST_HANDLE
        }
    });
}

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Handle({:?} koid {}, rights {:#x})", self.object.obj_type(), self.object.koid(), self.rights.bits())
    }
}

/// A process's handles. Values are Magenta's masked odd numbers with a
/// per-slot generation (`kcore::handle`).
pub struct HandleTable {
    slots: IrqSpinlock<Slots<Handle>>,
}

fn bad(_: HandleError) -> Status {
    Status::BadHandle
}

impl HandleTable {
    pub fn new(secret: u32) -> Self {
        HandleTable { slots: IrqSpinlock::new(Slots::new(secret)) }
    }

    /// Installs `handle` and returns its value (NO_MEMORY if the table is full).
    pub fn add(&self, handle: Handle) -> Result<u32, Status> {
        let inserted = self.slots.lock().try_insert(handle);
        // A refused handle is dropped only now, with the table unlocked: its
        // drop may run the object's last-handle work (taking other locks,
        // even a cross-CPU call).
        inserted.map_err(|(_, refused)| {
            drop(refused);
            Status::NoMemory
        })
    }

    /// Looks `value` up and checks it as `spec` says: BAD_HANDLE, then
    /// ACCESS_DENIED (a right missing), then WRONG_TYPE.
    pub fn get(&self, value: u32, spec: &HandleSpec) -> Result<(Arc<dyn KernelObject>, Rights), Status> {
        let slots = self.slots.lock();
        let handle = slots.get(value).map_err(bad)?;
        check(handle, spec)?;
        Ok((handle.object.clone(), handle.rights))
    }

    /// As [`Self::get`], for exactly one object type `T`.
    pub fn get_as<T: KernelObject>(&self, value: u32, rights: Rights) -> Result<(Arc<T>, Rights), Status> {
        let (object, granted) = {
            let slots = self.slots.lock();
            let handle = slots.get(value).map_err(bad)?;
            if !handle.rights.contains(rights) {
                return Err(Status::AccessDenied);
            }
            (handle.object.clone(), handle.rights)
        };
        downcast::<T>(object).map(|o| (o, granted)).ok_or(Status::WrongType)
    }

    /// Runs `f` on the handle named by `value`.
    pub fn with<R>(&self, value: u32, f: impl FnOnce(&Handle) -> R) -> Result<R, Status> {
        let slots = self.slots.lock();
        slots.get(value).map(f).map_err(bad)
    }

    /// Removes and returns the handle (closing it is dropping it, which the
    /// caller should do after releasing any locks).
    pub fn remove(&self, value: u32) -> Result<Handle, Status> {
        self.slots.lock().remove(value).map_err(bad)
    }

    /// Checks several handles as [`Self::remove_many`] would (each must exist
    /// and pass `check`, in array order, then all must be distinct) without
    /// removing any.
    pub fn check_many(&self, values: &[u32], check: impl Fn(&Handle) -> Result<(), Status>) -> Result<(), Status> {
        let slots = self.slots.lock();
        for &value in values {
            check(slots.get(value).map_err(bad)?)?;
        }
        if values.iter().enumerate().any(|(i, v)| values[..i].contains(v)) {
            return Err(Status::InvalidArgs);
        }
        Ok(())
    }

    /// Removes several handles all-or-nothing: each must exist and pass
    /// `check` (in array order), then all must be distinct (INVALID_ARGS);
    /// on any failure nothing is removed.
    pub fn remove_many(
        &self,
        values: &[u32],
        check: impl Fn(&Handle) -> Result<(), Status>,
    ) -> Result<Vec<Handle>, Status> {
        let mut handles = Vec::new();
        handles.try_reserve_exact(values.len()).map_err(|_| Status::NoMemory)?;
        let mut slots = self.slots.lock();
        for &value in values {
            check(slots.get(value).map_err(bad)?)?;
        }
        // Duplicates are checked only once every handle passed (contract order).
        if values.iter().enumerate().any(|(i, v)| values[..i].contains(v)) {
            return Err(Status::InvalidArgs);
        }
        for &value in values {
            handles.push(slots.remove(value).map_err(bad)?);
        }
        Ok(handles)
    }

    /// Installs several handles all-or-nothing, returning their values.
    pub fn add_many(&self, handles: Vec<Handle>) -> Result<Vec<u32>, Status> {
        let mut values = Vec::new();
        values.try_reserve_exact(handles.len()).map_err(|_| Status::NoMemory)?;
        let mut slots = self.slots.lock();
        slots.reserve(handles.len()).map_err(|_| Status::NoMemory)?;
        for handle in handles {
            values.push(slots.insert(handle).map_err(|_| Status::NoMemory)?);
        }
        Ok(values)
    }

    /// Closes every handle (process teardown). The handles are dropped after
    /// the table's lock is released.
    pub fn clear(&self) {
        let handles: Vec<Handle> = self.slots.lock().drain().collect();
        drop(handles);
    }
}

fn check(handle: &Handle, spec: &HandleSpec) -> Result<(), Status> {
    if !handle.rights.contains(spec.rights) {
        return Err(Status::AccessDenied);
    }
    if !spec.types.is_empty() && !spec.types.contains(&handle.object.obj_type()) {
        return Err(Status::WrongType);
    }
    Ok(())
}
