//! `mx_rights_t` (`types.h`) and the default rights of each object type
//! (`rights.h`), contract §1.3.

use crate::meta::{ConstStyle, Fmt};
use crate::object::ObjType;

c_flags! {
    /// The rights a handle carries (`mx_rights_t`).
    pub struct Rights: u32, ConstStyle::Define { fmt: Fmt::Shift, cast: Some("mx_rights_t") };
    {
        /// No rights.
        const NONE = 0 => "MX_RIGHT_NONE";
        /// May be duplicated.
        const DUPLICATE = 1 << 0 => "MX_RIGHT_DUPLICATE";
        /// May be sent over a channel.
        const TRANSFER = 1 << 1 => "MX_RIGHT_TRANSFER";
        /// May be read from (and waited on).
        const READ = 1 << 2 => "MX_RIGHT_READ";
        /// May be written to.
        const WRITE = 1 << 3 => "MX_RIGHT_WRITE";
        /// May be executed (mapped executable, VCPU resumed).
        const EXECUTE = 1 << 4 => "MX_RIGHT_EXECUTE";
        /// A VMO that may be mapped.
        const MAP = 1 << 5 => "MX_RIGHT_MAP";
        /// Properties may be read.
        const GET_PROPERTY = 1 << 6 => "MX_RIGHT_GET_PROPERTY";
        /// Properties may be set.
        const SET_PROPERTY = 1 << 7 => "MX_RIGHT_SET_PROPERTY";
        /// Children may be listed.
        const ENUMERATE = 1 << 8 => "MX_RIGHT_ENUMERATE";
        /// The task may be killed.
        const DESTROY = 1 << 9 => "MX_RIGHT_DESTROY";
        /// A job's policy may be set.
        const SET_POLICY = 1 << 10 => "MX_RIGHT_SET_POLICY";
        /// A job's policy may be read.
        const GET_POLICY = 1 << 11 => "MX_RIGHT_GET_POLICY";
        /// User signals may be set on the object.
        const SIGNAL = 1 << 12 => "MX_RIGHT_SIGNAL";
        /// User signals may be set on the object's peer.
        const SIGNAL_PEER = 1 << 13 => "MX_RIGHT_SIGNAL_PEER";
        /// In `handle_duplicate`/`replace`: keep the source's rights.
        const SAME_RIGHTS = 1 << 31 => "MX_RIGHT_SAME_RIGHTS";
    }
}

c_combos! {
    /// Rights a newly created object's handle gets (`rights.h`).
    impl Rights { pub const C_DEFAULTS: ConstGroup = ConstStyle::Define { fmt: Fmt::Shift, cast: None }; }
    {
        /// Each channel end; note there is no DUPLICATE.
        const DEFAULT_CHANNEL = TRANSFER | READ | WRITE | SIGNAL | SIGNAL_PEER => "MX_DEFAULT_CHANNEL_RIGHTS";
        /// An event.
        const DEFAULT_EVENT = DUPLICATE | TRANSFER | READ | WRITE | SIGNAL => "MX_DEFAULT_EVENT_RIGHTS";
        /// Each eventpair end.
        const DEFAULT_EVENT_PAIR = DUPLICATE | TRANSFER | READ | WRITE | SIGNAL | SIGNAL_PEER => "MX_DEFAULT_EVENT_PAIR_RIGHTS";
        /// Each FIFO end.
        const DEFAULT_FIFO = TRANSFER | DUPLICATE | READ | WRITE | SIGNAL | SIGNAL_PEER => "MX_DEFAULT_FIFO_RIGHTS";
        /// A guest.
        const DEFAULT_GUEST = DUPLICATE | TRANSFER | WRITE => "MX_DEFAULT_GUEST_RIGHTS";
        /// An interrupt.
        const DEFAULT_INTERRUPT = TRANSFER | READ | WRITE => "MX_DEFAULT_INTERRUPT_RIGHTS";
        /// A legacy I/O mapping.
        const DEFAULT_IO_MAPPING = READ => "MX_DEFAULT_IO_MAPPING_RIGHTS";
        /// A job.
        const DEFAULT_JOB = TRANSFER | DUPLICATE | READ | WRITE | ENUMERATE | DESTROY | GET_PROPERTY
            | SET_PROPERTY | SET_POLICY | GET_POLICY | SIGNAL => "MX_DEFAULT_JOB_RIGHTS";
        /// A debuglog; READ is added when created with `MX_LOG_FLAG_READABLE`.
        const DEFAULT_LOG = TRANSFER | WRITE | DUPLICATE | SIGNAL => "MX_DEFAULT_LOG_RIGHTS";
        /// A PCI device.
        const DEFAULT_PCI_DEVICE = READ | WRITE | DUPLICATE | TRANSFER => "MX_DEFAULT_PCI_DEVICE_RIGHTS";
        /// A PCI interrupt.
        const DEFAULT_PCI_INTERRUPT = READ | WRITE | TRANSFER => "MX_DEFAULT_PCI_INTERRUPT_RIGHTS";
        /// A port.
        const DEFAULT_PORT = DUPLICATE | TRANSFER | READ | WRITE => "MX_DEFAULT_PORT_RIGHTS";
        /// A process.
        const DEFAULT_PROCESS = READ | WRITE | DUPLICATE | TRANSFER | ENUMERATE | DESTROY | GET_PROPERTY
            | SET_PROPERTY | SIGNAL => "MX_DEFAULT_PROCESS_RIGHTS";
        /// A resource.
        const DEFAULT_RESOURCE = READ | WRITE | DUPLICATE | TRANSFER | SIGNAL => "MX_DEFAULT_RESOURCE_RIGHTS";
        /// Each socket end.
        const DEFAULT_SOCKET = TRANSFER | DUPLICATE | READ | WRITE | SIGNAL | SIGNAL_PEER => "MX_DEFAULT_SOCKET_RIGHTS";
        /// A thread.
        const DEFAULT_THREAD = READ | WRITE | DUPLICATE | TRANSFER | DESTROY | GET_PROPERTY | SET_PROPERTY
            | SIGNAL => "MX_DEFAULT_THREAD_RIGHTS";
        /// A timer (Magenta's spelling: `TIMERS`).
        const DEFAULT_TIMER = DUPLICATE | TRANSFER | READ | WRITE | SIGNAL => "MX_DEFAULT_TIMERS_RIGHTS";
        /// A VCPU.
        const DEFAULT_VCPU = DUPLICATE | TRANSFER | READ | WRITE | EXECUTE | SIGNAL => "MX_DEFAULT_VCPU_RIGHTS";
        /// A VMAR, before READ/WRITE/EXECUTE are added for each `CAN_MAP_*`
        /// flag it has (see [`Rights::for_vmar`]).
        const DEFAULT_VMAR = DUPLICATE | TRANSFER => "MX_DEFAULT_VMAR_RIGHTS";
        /// A VMO.
        const DEFAULT_VMO = DUPLICATE | TRANSFER | READ | WRITE | EXECUTE | MAP | GET_PROPERTY
            | SET_PROPERTY | SIGNAL => "MX_DEFAULT_VMO_RIGHTS";
    }
}

impl Rights {
    /// The rights a new object of type `ty` starts with. `None` for types
    /// whose rights depend on how they are made (VMAR: [`Rights::for_vmar`];
    /// log: [`Rights::DEFAULT_LOG`] plus READ when readable) or that have no
    /// creation path (`None`).
    pub const fn default_for(ty: ObjType) -> Option<Rights> {
        Some(match ty {
            ObjType::Process => Self::DEFAULT_PROCESS,
            ObjType::Thread => Self::DEFAULT_THREAD,
            ObjType::Vmo => Self::DEFAULT_VMO,
            ObjType::Channel => Self::DEFAULT_CHANNEL,
            ObjType::Event => Self::DEFAULT_EVENT,
            ObjType::Port => Self::DEFAULT_PORT,
            ObjType::Interrupt => Self::DEFAULT_INTERRUPT,
            ObjType::PciDevice => Self::DEFAULT_PCI_DEVICE,
            ObjType::Socket => Self::DEFAULT_SOCKET,
            ObjType::Resource => Self::DEFAULT_RESOURCE,
            ObjType::EventPair => Self::DEFAULT_EVENT_PAIR,
            ObjType::Job => Self::DEFAULT_JOB,
            ObjType::Fifo => Self::DEFAULT_FIFO,
            ObjType::Guest => Self::DEFAULT_GUEST,
            ObjType::Vcpu => Self::DEFAULT_VCPU,
            ObjType::Timer => Self::DEFAULT_TIMER,
            ObjType::None | ObjType::Log | ObjType::Vmar => return None,
        })
    }

    /// A VMAR's rights: DUPLICATE|TRANSFER plus READ, WRITE and EXECUTE for
    /// each of `can_map_read`, `can_map_write`, `can_map_execute`.
    pub const fn for_vmar(can_map_read: bool, can_map_write: bool, can_map_execute: bool) -> Rights {
        let mut bits = Self::DEFAULT_VMAR.bits();
        if can_map_read {
            bits |= Self::READ.bits();
        }
        if can_map_write {
            bits |= Self::WRITE.bits();
        }
        if can_map_execute {
            bits |= Self::EXECUTE.bits();
        }
        Self::from_bits_retain(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values contract §1.3 lists.
    #[test]
    fn defaults_match_contract() {
        let expect: &[(Rights, u32)] = &[
            (Rights::DEFAULT_CHANNEL, 0x300e),
            (Rights::DEFAULT_EVENT, 0x100f),
            (Rights::DEFAULT_EVENT_PAIR, 0x300f),
            (Rights::DEFAULT_FIFO, 0x300f),
            (Rights::DEFAULT_SOCKET, 0x300f),
            (Rights::DEFAULT_PORT, 0x000f),
            (Rights::DEFAULT_TIMER, 0x100f),
            (Rights::DEFAULT_VMO, 0x10ff),
            (Rights::DEFAULT_VMAR, 0x0003),
            (Rights::DEFAULT_PROCESS, 0x13cf),
            (Rights::DEFAULT_THREAD, 0x12cf),
            (Rights::DEFAULT_JOB, 0x1fcf),
            (Rights::DEFAULT_RESOURCE, 0x100f),
            (Rights::DEFAULT_LOG, 0x100b),
            (Rights::DEFAULT_GUEST, 0x000b),
            (Rights::DEFAULT_VCPU, 0x101f),
            (Rights::DEFAULT_INTERRUPT, 0x000e),
            (Rights::DEFAULT_PCI_DEVICE, 0x000f),
            (Rights::DEFAULT_PCI_INTERRUPT, 0x000e),
            (Rights::DEFAULT_IO_MAPPING, 0x0004),
        ];
        for &(r, v) in expect {
            assert_eq!(r.bits(), v, "{r:?}");
        }
        assert_eq!(Rights::for_vmar(true, true, true).bits(), 0x1f);
        assert_eq!(Rights::default_for(ObjType::Guest), Some(Rights::DEFAULT_GUEST));
    }
}
