//! Jobs: the groups processes are created in. Only the root job exists
//! for now (handed to init); it records nothing beyond its rights.

#![forbid(unsafe_code)]

use super::{KernelObject, ObjectBase};
use alloc::sync::Arc;
use mx_abi::{ObjType, Signals};

pub struct Job {
    base: ObjectBase,
}

impl Job {
    pub fn new() -> Arc<Job> {
        Arc::new(Job { base: ObjectBase::new(ObjType::Job, Signals::NONE) })
    }
}

impl KernelObject for Job {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Job
    }
}
