//! User threads: the object a thread handle names, and its kernel thread.

#![forbid(unsafe_code)]

use super::process::{name_buf, Process, NAME_LEN};
use super::{KernelObject, ObjectBase};
use crate::sched;
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use mx_abi::{ObjType, Signals, Status};

/// `MX_THREAD_STATE_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ThreadState {
    New = 0,
    Running = 1,
    Blocked = 3,
    Dying = 4,
    Dead = 5,
}

struct Inner {
    state: ThreadState,
    kthread: Option<Arc<sched::Thread>>,
}

pub struct ThreadObject {
    base: ObjectBase,
    pub process: Arc<Process>,
    name: ([u8; NAME_LEN], usize),
    inner: IrqSpinlock<Inner>,
}

/// Where a started thread begins in user mode.
#[derive(Clone, Copy, Debug)]
pub struct UserEntry {
    pub rip: u64,
    pub rsp: u64,
    pub arg1: u64,
    pub arg2: u64,
}

impl ThreadObject {
    /// A new thread of `process`, not yet started (BAD_STATE if the process
    /// is dying).
    pub fn create(process: &Arc<Process>, name: &[u8]) -> Result<Arc<ThreadObject>, Status> {
        let thread = Arc::new(ThreadObject {
            base: ObjectBase::new(ObjType::Thread, Signals::NONE),
            process: process.clone(),
            name: name_buf(name),
            inner: IrqSpinlock::new(Inner { state: ThreadState::New, kthread: None }),
        });
        process.add_thread(thread.clone())?;
        Ok(thread)
    }

    pub fn name(&self) -> &[u8] {
        &self.name.0[..self.name.1]
    }

    pub fn state(&self) -> ThreadState {
        let inner = self.inner.lock();
        match (inner.state, &inner.kthread) {
            (ThreadState::Running, Some(k)) if k.state() == sched::ThreadState::Blocked => ThreadState::Blocked,
            (state, _) => state,
        }
    }

    /// Time the thread has run, in ns.
    pub fn runtime_ns(&self) -> u64 {
        self.inner.lock().kthread.as_ref().map_or(0, |k| k.runtime_ns())
    }

    /// Starts the thread in user mode at `entry` (BAD_STATE unless new).
    pub fn start(self: &Arc<Self>, entry: UserEntry) -> Result<(), Status> {
        let mut inner = self.inner.lock();
        if inner.state != ThreadState::New {
            return Err(Status::BadState);
        }
        let name = core::str::from_utf8(self.name()).unwrap_or("user");
        let options = sched::ThreadOptions {
            fpu: true,
            address_space: Some(self.process.aspace.clone()),
            ..sched::ThreadOptions::new(name)
        };
        let me = self.clone();
        let kthread = sched::Thread::create(&options, move || crate::syscall::run_user_thread(me, entry))?;
        kthread.set_owner(self.clone());
        inner.kthread = Some(kthread.clone());
        inner.state = ThreadState::Running;
        drop(inner);
        if let Err(status) = kthread.start() {
            // The kernel thread never ran: drop it, or it and this object
            // (its closure holds `me`) keep each other alive for good.
            let mut inner = self.inner.lock();
            inner.kthread = None;
            if inner.state == ThreadState::Running {
                inner.state = ThreadState::New;
            } else {
                // A kill arrived in between and found a kernel thread that
                // will never run to carry it out: die here instead.
                inner.state = ThreadState::Dead;
                drop(inner);
                self.finish();
            }
            return Err(status);
        }
        Ok(())
    }

    /// Asks the thread to die; a thread that never started dies at once.
    pub fn kill(self: &Arc<Self>) {
        let mut inner = self.inner.lock();
        match inner.state {
            ThreadState::New => {
                inner.state = ThreadState::Dead;
                drop(inner);
                self.finish();
            }
            ThreadState::Running | ThreadState::Blocked => {
                inner.state = ThreadState::Dying;
                let kthread = inner.kthread.clone();
                drop(inner);
                if let Some(kthread) = kthread {
                    kthread.kill();
                }
            }
            ThreadState::Dying | ThreadState::Dead => {}
        }
    }

    /// The running thread is leaving for good (from its own kernel stack).
    pub fn exited(self: &Arc<Self>) {
        {
            let mut inner = self.inner.lock();
            if inner.state == ThreadState::Dead {
                return;
            }
            inner.state = ThreadState::Dead;
            inner.kthread = None;
        }
        self.finish();
    }

    fn finish(&self) {
        self.base.signals.update(Signals::NONE, Signals::THREAD_TERMINATED);
        self.process.thread_exited(self);
    }
}

impl KernelObject for ThreadObject {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Thread
    }
    fn related_koid(&self) -> u64 {
        self.process.koid()
    }
    fn on_zero_handles(&self) {
        // A thread that was never started and that nobody can name any more
        // can never run: it dies (as if killed) and leaves its process, so
        // it does not linger in MX_INFO_PROCESS_THREADS nor keep the
        // process (which references it) alive.
        let mut inner = self.inner.lock();
        if inner.state == ThreadState::New {
            inner.state = ThreadState::Dead;
            drop(inner);
            self.finish();
        }
    }
}
