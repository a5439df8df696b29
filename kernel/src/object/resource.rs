//! Resources: capabilities to privileged kernel services. The root resource
//! reaches init through its bootstrap message; others are carved from it.

#![forbid(unsafe_code)]

use super::{KernelObject, ObjectBase};
use alloc::sync::Arc;
use mx_abi::{ObjType, Signals, Status};

/// `MX_RSRC_KIND_ROOT`: may create any kind.
pub const KIND_ROOT: u32 = 0x0000;

pub struct Resource {
    base: ObjectBase,
    kind: u32,
    low: u64,
    high: u64,
}

impl Resource {
    pub fn new_root() -> Arc<Resource> {
        Arc::new(Resource {
            base: ObjectBase::new(ObjType::Resource, Signals::NONE),
            kind: KIND_ROOT,
            low: 0,
            high: u64::MAX,
        })
    }

    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// The inclusive range `[low, high]`.
    pub fn range(&self) -> (u64, u64) {
        (self.low, self.high)
    }

    /// `resource_create` from this parent: a root parent may create any kind
    /// and range; another only its own kind (ACCESS_DENIED) within its own
    /// inclusive range (OUT_OF_RANGE). `high < low` is checked by the caller
    /// first (INVALID_ARGS).
    pub fn create_child(&self, kind: u32, low: u64, high: u64) -> Result<Arc<Resource>, Status> {
        if self.kind != KIND_ROOT {
            if kind != self.kind {
                return Err(Status::AccessDenied);
            }
            if low < self.low || high > self.high {
                return Err(Status::OutOfRange);
            }
        }
        Ok(Arc::new(Resource { base: ObjectBase::new(ObjType::Resource, Signals::NONE), kind, low, high }))
    }
}

impl KernelObject for Resource {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Resource
    }
}
