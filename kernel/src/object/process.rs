//! Processes: a handle table, an address space, and threads.
//!
//! A process starts INITIAL, becomes RUNNING at `process_start`, DYING when
//! it exits or is killed (every thread is told to die), and DEAD when its
//! last thread is gone: then `MX_PROCESS_TERMINATED` is asserted, its
//! handles are closed and its address space is emptied.

#![forbid(unsafe_code)]

use super::thread::ThreadObject;
use super::{HandleTable, KernelObject, ObjectBase};
use crate::sync::IrqSpinlock;
use crate::vm;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use mx_abi::{ObjType, Signals, Status};

/// `MX_MAX_NAME_LEN` including the NUL.
pub const NAME_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    Initial,
    Running,
    Dying,
    Dead,
}

struct Inner {
    state: ProcessState,
    threads: Vec<Arc<ThreadObject>>,
    return_code: i32,
}

pub struct Process {
    base: ObjectBase,
    pub handles: HandleTable,
    pub aspace: Arc<vm::AddressSpace>,
    name: IrqSpinlock<([u8; NAME_LEN], usize)>,
    inner: IrqSpinlock<Inner>,
    vdso_base: AtomicU64,
    /// The koid of the job it was created in (`related_koid`; 0 for init).
    job_koid: AtomicU64,
}

/// Copies a name, cut to `NAME_LEN - 1` bytes.
pub fn name_buf(name: &[u8]) -> ([u8; NAME_LEN], usize) {
    let len = name.len().min(NAME_LEN - 1);
    let mut buf = [0; NAME_LEN];
    buf[..len].copy_from_slice(&name[..len]);
    (buf, len)
}

impl Process {
    /// A new process and its root VMAR.
    pub fn create(name: &[u8]) -> Result<(Arc<Process>, vm::Vmar), Status> {
        let aspace = vm::AddressSpace::new()?;
        let root = aspace.root_vmar();
        let secret = crate::arch::x86::cpu::rdtsc() as u32 ^ 0x5bd1_e995;
        let process = Arc::new(Process {
            base: ObjectBase::new(ObjType::Process, Signals::NONE),
            handles: HandleTable::new(secret),
            aspace,
            name: IrqSpinlock::new(name_buf(name)),
            inner: IrqSpinlock::new(Inner { state: ProcessState::Initial, threads: Vec::new(), return_code: 0 }),
            vdso_base: AtomicU64::new(0),
            job_koid: AtomicU64::new(0),
        });
        Ok((process, root))
    }

    /// Records the job the process was created in.
    pub fn set_job_koid(&self, koid: u64) {
        self.job_koid.store(koid, Ordering::Relaxed);
    }

    pub fn name(&self) -> ([u8; NAME_LEN], usize) {
        *self.name.lock()
    }

    pub fn set_name(&self, name: &[u8]) {
        *self.name.lock() = name_buf(name);
    }

    pub fn state(&self) -> ProcessState {
        self.inner.lock().state
    }

    pub fn return_code(&self) -> i32 {
        self.inner.lock().return_code
    }

    /// Where the vDSO's code is mapped (0 if it is not): recorded when the
    /// mapping is made, wherever it was made from (the kernel maps init's;
    /// loaders map their children's).
    pub fn vdso_base(&self) -> u64 {
        let base = self.vdso_base.load(Ordering::Relaxed);
        if base != 0 {
            return base;
        }
        // The vDSO mapping can never move once made, so the first answer holds.
        let base = self.aspace.vdso_code_range().map_or(0, |(start, _)| start);
        self.vdso_base.store(base, Ordering::Relaxed);
        base
    }

    /// Records a new thread (BAD_STATE once the process is dying or dead).
    pub fn add_thread(&self, thread: Arc<ThreadObject>) -> Result<(), Status> {
        let mut inner = self.inner.lock();
        if matches!(inner.state, ProcessState::Dying | ProcessState::Dead) {
            return Err(Status::BadState);
        }
        inner.threads.try_reserve(1).map_err(|_| Status::NoMemory)?;
        inner.threads.push(thread);
        Ok(())
    }

    /// `process_start` moves INITIAL to RUNNING (BAD_STATE otherwise).
    pub fn mark_started(&self) -> Result<(), Status> {
        let mut inner = self.inner.lock();
        if inner.state != ProcessState::Initial {
            return Err(Status::BadState);
        }
        inner.state = ProcessState::Running;
        Ok(())
    }

    pub fn thread_koids(&self) -> Vec<u64> {
        self.inner.lock().threads.iter().map(|t| t.koid()).collect()
    }

    /// `process_exit(code)` or `task_kill` (code -1): records the code
    /// unless an exit is already under way, and kills every thread. The
    /// process dies when its last thread has gone.
    pub fn exit(self: &Arc<Self>, code: i32) {
        let threads = {
            let mut inner = self.inner.lock();
            match inner.state {
                ProcessState::Dying | ProcessState::Dead => return,
                ProcessState::Initial | ProcessState::Running => {}
            }
            inner.state = ProcessState::Dying;
            inner.return_code = code;
            inner.threads.clone()
        };
        if threads.is_empty() {
            self.finish();
            return;
        }
        for thread in threads {
            thread.kill();
        }
    }

    /// A thread of this process has died.
    pub fn thread_exited(self: &Arc<Self>, thread: &ThreadObject) {
        let last = {
            let mut inner = self.inner.lock();
            inner.threads.retain(|t| !core::ptr::eq(&**t, thread));
            let last = inner.threads.is_empty() && inner.state != ProcessState::Initial;
            // Decided under the same lock as the count: a thread started in
            // between must not find its process already marked dying.
            if last && inner.state == ProcessState::Running {
                // The last thread exited on its own: the process exits with 0.
                inner.state = ProcessState::Dying;
            }
            last
        };
        if last {
            self.finish();
        }
    }

    /// DYING with no threads left: DEAD, TERMINATED, resources released.
    fn finish(self: &Arc<Self>) {
        {
            let mut inner = self.inner.lock();
            if inner.state == ProcessState::Dead {
                return;
            }
            inner.state = ProcessState::Dead;
        }
        self.handles.clear();
        match self.aspace.destroy() {
            // BAD_STATE: the process destroyed its root VMAR itself
            // (`mx_vmar_destroy` on its own root): nothing is left to tear down.
            Ok(()) | Err(Status::BadState) => {}
            Err(status) => ::log::warn!("process {}: address space teardown failed: {status:?}", self.koid()),
        }
        self.aspace.retire();
        self.base.signals.update(Signals::NONE, Signals::PROCESS_TERMINATED);
    }
}

impl KernelObject for Process {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Process
    }
    fn related_koid(&self) -> u64 {
        self.job_koid.load(Ordering::Relaxed)
    }
    fn on_zero_handles(&self) {
        // A process nobody can reach and that never started cannot run:
        // release what it holds (its table may hold handles to itself, and
        // its never-started threads reference it back).
        let threads = {
            let mut inner = self.inner.lock();
            if inner.state != ProcessState::Initial {
                return;
            }
            inner.state = ProcessState::Dead;
            core::mem::take(&mut inner.threads)
        };
        for thread in threads {
            thread.kill();
        }
        self.handles.clear();
        let _ = self.aspace.destroy();
        self.aspace.retire();
    }
}
