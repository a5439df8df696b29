//! VMO and VMAR objects: handle-reachable wrappers around `vm::Vmo` and
//! `vm::Vmar`, which implement the contract's semantics.

#![forbid(unsafe_code)]

use super::{KernelObject, ObjectBase};
use crate::vm;
use alloc::sync::Arc;
use mx_abi::{ObjType, Signals};

pub struct VmoObject {
    base: ObjectBase,
    pub vmo: Arc<vm::Vmo>,
}

impl VmoObject {
    pub fn new(vmo: Arc<vm::Vmo>) -> Arc<VmoObject> {
        Arc::new(VmoObject { base: ObjectBase::new(ObjType::Vmo, Signals::NONE), vmo })
    }
}

impl KernelObject for VmoObject {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Vmo
    }
}

pub struct VmarObject {
    base: ObjectBase,
    pub vmar: vm::Vmar,
}

impl VmarObject {
    pub fn new(vmar: vm::Vmar) -> Arc<VmarObject> {
        Arc::new(VmarObject { base: ObjectBase::new(ObjType::Vmar, Signals::NONE), vmar })
    }
}

impl KernelObject for VmarObject {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Vmar
    }
    fn is_waitable(&self) -> bool {
        false
    }
}
