//! Resource kinds (`syscalls/resource.h`), contract §1.7 and §5.29.

use crate::meta::{ConstStyle, Fmt};

c_enum! {
    /// Resource kinds (`mx_resource_create`, `mx_info_resource_t.kind`). The
    /// kernel does not validate `kind` on creation, so read it with `TryFrom`
    /// only where a known kind is required.
    pub enum ResourceKind: u32, ConstStyle::Define { fmt: Fmt::HexU, cast: None };
    {
        /// The root resource: may create any kind and range.
        Root = 0x0000 => "MX_RSRC_KIND_ROOT",
        /// Physical memory ranges.
        Mmio = 0x1000 => "MX_RSRC_KIND_MMIO",
        /// I/O port ranges.
        Ioport = 0x1001 => "MX_RSRC_KIND_IOPORT",
        /// Interrupt vectors.
        Irq = 0x1002 => "MX_RSRC_KIND_IRQ",
        /// The right to create guests.
        Hypervisor = 0x2000 => "MX_RSRC_KIND_HYPERVISOR",
    }
}
