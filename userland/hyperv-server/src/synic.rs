//! The SynIC (TLFS 2.0A §14): message slots and queues, event flags,
//! ports and connections.
//!
//! A root's SIM and SIEF pages are its SynIC VMO (always enabled, one VP:
//! index 0); the client is told through its notification event. A child
//! VP's pages are the guest pages its SIMP/SIEFP MSRs name, and a SINT is
//! raised with a VCPU interrupt of the SINT's vector.

use hv::abi::*;
use hv::proto::HV_SIEF_OFFSET;

use crate::manager::{cost, Call, Caller, Connection, Manager, Port, Queued, State};
use crate::platform::Platform;

/// Where a message slot or flag area is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// A root's SynIC VMO at this offset.
    Root(u64, usize),
    /// Root memory (a child's page) at this offset.
    Memory(u64, u64),
}

impl<P: Platform> Manager<P> {
    fn slot_place(&self, id: u64, vp: u32, sint: u8) -> Option<Place> {
        let p = self.parts.get(&id)?;
        if p.is_root() {
            return Some(Place::Root(id, usize::from(sint) * 256));
        }
        let s = &p.vps.get(&vp)?.synic;
        if s.scontrol & msr::ENABLE == 0 || s.simp & msr::ENABLE == 0 {
            return None;
        }
        let (root, page) = self.guest_page(id, s.simp >> 12)?;
        Some(Place::Memory(root, page + u64::from(sint) * 256))
    }

    fn flags_place(&self, id: u64, vp: u32, sint: u8) -> Option<Place> {
        let p = self.parts.get(&id)?;
        if p.is_root() {
            return Some(Place::Root(id, HV_SIEF_OFFSET + usize::from(sint) * 256));
        }
        let s = &p.vps.get(&vp)?.synic;
        if s.scontrol & msr::ENABLE == 0 || s.siefp & msr::ENABLE == 0 {
            return None;
        }
        let (root, page) = self.guest_page(id, s.siefp >> 12)?;
        Some(Place::Memory(root, page + u64::from(sint) * 256))
    }

    fn place_read(&self, place: Place, out: &mut [u8]) -> bool {
        match place {
            Place::Root(root, at) => self.platform.synic_read(root, at, out),
            Place::Memory(root, at) => self.platform.mem_read(root, at, out),
        }
    }

    fn place_write(&mut self, place: Place, bytes: &[u8]) -> bool {
        match place {
            Place::Root(root, at) => self.platform.synic_write(root, at, bytes),
            Place::Memory(root, at) => self.platform.mem_write(root, at, bytes),
        }
    }

    fn slot_free(&self, place: Place) -> bool {
        let mut t = [0u8; 4];
        self.place_read(place, &mut t) && u32::from_le_bytes(t) == message_type::NONE
    }

    /// Raises SINT `sint` of the VP (roots: the notification).
    fn raise_sint(&mut self, id: u64, vp: u32, sint: u8) {
        let Some(p) = self.parts.get(&id) else { return };
        if p.is_root() {
            self.platform.notify(id);
            return;
        }
        let Some(v) = p.vps.get(&vp) else { return };
        let sintx = v.synic.sints[usize::from(sint & 15)];
        if sintx & msr::SINT_MASKED == 0 {
            self.raise(id, vp, (sintx & msr::SINT_VECTOR_MASK) as u32);
        }
    }

    fn queue(&mut self, id: u64, vp: u32, sint: u8) -> Option<&mut alloc::collections::VecDeque<Queued>> {
        let p = self.parts.get_mut(&id)?;
        if p.is_root() {
            return p.root_queues.get_mut(usize::from(sint));
        }
        p.vps.get_mut(&vp)?.synic.queues.get_mut(usize::from(sint))
    }

    /// Puts `q` in the slot of SINT `sint` of the VP if it is empty, else
    /// queues it (marking the slot's MessagePending).
    pub(crate) fn send(&mut self, id: u64, vp: u32, sint: u8, q: Queued) {
        let place = self.slot_place(id, vp, sint);
        if let Some(place) = place.filter(|&p| self.slot_free(p)) {
            if self.place_write(place, &q.message.to_bytes()) {
                self.raise_sint(id, vp, sint);
                return;
            }
        }
        if let Some((pp, port)) = q.port {
            if let Some(port) = self.parts.get_mut(&pp).and_then(|p| p.ports.get_mut(&port)) {
                port.queued += 1;
            }
        }
        if let Some(queue) = self.queue(id, vp, sint) {
            queue.push_back(q);
        }
        if let Some(place) = place {
            self.mark_pending(place);
        }
    }

    fn mark_pending(&mut self, place: Place) {
        let mut flags = [0u8; 1];
        let at = |p: Place| match p {
            Place::Root(r, o) => Place::Root(r, o + 5),
            Place::Memory(r, o) => Place::Memory(r, o + 5),
        };
        if self.place_read(at(place), &mut flags) {
            flags[0] |= MessageHeader::MESSAGE_PENDING;
            self.place_write(at(place), &flags);
        }
    }

    /// Delivers the next queued message of each SINT whose slot is empty.
    fn redeliver(&mut self, id: u64, vp: u32, sint: u8) {
        let Some(place) = self.slot_place(id, vp, sint) else { return };
        if !self.slot_free(place) {
            return;
        }
        let Some(next) = self.queue(id, vp, sint).and_then(|q| q.pop_front()) else { return };
        let more = self.queue(id, vp, sint).is_some_and(|q| !q.is_empty());
        if let Some((pp, port)) = next.port {
            if let Some(port) = self.parts.get_mut(&pp).and_then(|p| p.ports.get_mut(&port)) {
                port.queued = port.queued.saturating_sub(1);
            }
        }
        let mut message = next.message;
        if more {
            message.header.message_flags |= MessageHeader::MESSAGE_PENDING;
        }
        if self.place_write(place, &message.to_bytes()) {
            self.raise_sint(id, vp, sint);
        }
    }

    /// A root emptied the slot of `sint` (`OP_END_OF_MESSAGE`).
    pub fn root_end_of_message(&mut self, root: u64, sint: u64) -> HvStatus {
        let Ok(sint) = u8::try_from(sint) else { return HvStatus::INVALID_PARAMETER };
        if sint >= 16 || !self.parts.contains_key(&root) {
            return HvStatus::INVALID_PARAMETER;
        }
        self.redeliver(root, 0, sint);
        HvStatus::SUCCESS
    }

    /// A child VP wrote EOM (or changed its SynIC): retry every SINT.
    pub(crate) fn vp_end_of_message(&mut self, id: u64, vp: u32) {
        for sint in 0..16 {
            self.redeliver(id, vp, sint);
        }
    }

    /// Drops the messages a port still has queued (they hold its buffers).
    pub(crate) fn drop_port_messages(&mut self, id: u64, port: u32) {
        let this = Some((id, port));
        for p in self.parts.values_mut() {
            for q in p.root_queues.iter_mut() {
                q.retain(|m| m.port != this);
            }
            for vp in p.vps.values_mut() {
                for q in vp.synic.queues.iter_mut() {
                    q.retain(|m| m.port != this);
                }
            }
        }
    }

    // ------------------------------------------------------------ ports

    /// Port calls: the parent, or the partition itself with `privilege`.
    fn port_access(&self, caller: &Caller, id: u64, privilege: u64) -> Result<u64, HvStatus> {
        let id = self.target(caller, id)?;
        let own = id == caller.partition && self.privileges(id) & privilege != 0;
        if !self.is_parent(caller.partition, id) && !own {
            return Err(HvStatus::ACCESS_DENIED);
        }
        Ok(id)
    }

    pub(crate) fn create_port(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = CreatePortIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let pp = self.port_access(&call.caller, input.port_partition_id, privilege::CREATE_PORT)?;
        let cp = self.target(&call.caller, input.connection_partition_id)?;
        if cp == pp {
            return Err(HvStatus::INVALID_PARTITION_ID);
        }
        self.check_state(pp, &[State::Active])?;
        self.check_state(cp, &[State::Active])?;
        let port_id = input.port_id;
        if port_id & !PORT_ID_MASK != 0 || self.part(pp)?.ports.contains_key(&port_id) {
            return Err(HvStatus::INVALID_PORT_ID);
        }
        let info = input.port_info;
        if !(1..16).contains(&info.target_sint) {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        match info.port_type {
            port_type::MESSAGE if info.base_flag_number == 0 && info.flag_count == 0 && info.reserved == 0 => {}
            port_type::EVENT
                if info.reserved == 0
                    && info.flag_count >= 1
                    && u32::from(info.base_flag_number) + u32::from(info.flag_count) <= EVENT_FLAGS_COUNT => {}
            _ => return Err(HvStatus::INVALID_PARAMETER),
        }
        let p = self.part(pp)?;
        let vp_ok = info.target_vp == VP_INDEX_ANY
            || if p.is_root() { info.target_vp == 0 } else { p.vps.contains_key(&info.target_vp) };
        if !vp_ok {
            return Err(HvStatus::INVALID_VP_INDEX);
        }
        let p = self.part_mut(pp)?;
        p.pool.charge(cost::PORT)?;
        p.ports.insert(port_id, Port { info, connection_partition: cp, queued: 0, posted: 0 });
        Ok(())
    }

    pub(crate) fn delete_port(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = DeletePortIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let pp = self.port_access(&call.caller, input.port_partition_id, privilege::CREATE_PORT)?;
        self.check_state(pp, &[State::Active])?;
        let p = self.part_mut(pp)?;
        if p.ports.remove(&input.port_id).is_none() {
            return Err(HvStatus::INVALID_PORT_ID);
        }
        p.pool.refund(cost::PORT);
        self.drop_port_messages(pp, input.port_id);
        Ok(())
    }

    /// Whether a connection of `cp` still uses port `port_id` of `pp`.
    fn port_connected(&self, pp: u64, port_id: u32, cp: u64) -> bool {
        self.parts
            .get(&cp)
            .is_some_and(|c| c.connections.values().any(|k| k.port_partition == pp && k.port_id == port_id))
    }

    pub(crate) fn connect_port(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = ConnectPortIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let cp = self.port_access(&call.caller, input.connection_partition_id, privilege::CONNECT_PORT)?;
        let pp = self.target(&call.caller, input.port_partition_id)?;
        self.check_state(cp, &[State::Active])?;
        self.check_state(pp, &[State::Active])?;
        let conn_id = input.connection_id;
        if conn_id & !PORT_ID_MASK != 0 || self.part(cp)?.connections.contains_key(&conn_id) {
            return Err(HvStatus::INVALID_CONNECTION_ID);
        }
        if input.port_id & !PORT_ID_MASK != 0 {
            return Err(HvStatus::INVALID_PORT_ID);
        }
        let port = *self.part(pp)?.ports.get(&input.port_id).ok_or(HvStatus::INVALID_PORT_ID)?;
        if port.connection_partition != cp {
            return Err(HvStatus::INVALID_PARTITION_ID);
        }
        if self.port_connected(pp, input.port_id, cp) {
            return Err(HvStatus::INVALID_PORT_ID);
        }
        let info = input.connection_info;
        if info.port_type != port.info.port_type || info.reserved != 0 {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let c = self.part_mut(cp)?;
        c.pool.charge(cost::CONNECTION)?;
        c.connections.insert(conn_id, Connection { port_partition: pp, port_id: input.port_id });
        Ok(())
    }

    pub(crate) fn disconnect_port(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = DisconnectPortIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let cp = self.port_access(&call.caller, input.connection_partition_id, privilege::CONNECT_PORT)?;
        self.check_state(cp, &[State::Active])?;
        let c = self.part_mut(cp)?;
        if c.connections.remove(&input.connection_id).is_none() {
            return Err(HvStatus::INVALID_CONNECTION_ID);
        }
        c.pool.refund(cost::CONNECTION);
        Ok(())
    }

    pub(crate) fn get_port_property(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = GetPortPropertyIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let pp = self.port_access(&call.caller, input.partition_id, privilege::CREATE_PORT)?;
        let port = self.part(pp)?.ports.get(&input.port_id).ok_or(HvStatus::INVALID_PORT_ID)?;
        let value = match input.property_code {
            port_property::POST_COUNT => u64::from(port.queued),
            port_property::PREFERRED_TARGET_VP => u64::from(port.info.target_vp),
            _ => return Err(HvStatus::UNKNOWN_PROPERTY),
        };
        call.output[..8].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    /// The live port behind connection `conn_id` of `caller`, of `ty`.
    fn connection_port(&self, caller: u64, conn_id: u32, ty: u32) -> Result<(u64, u32, Port), HvStatus> {
        let c = self.part(caller)?.connections.get(&conn_id).ok_or(HvStatus::INVALID_CONNECTION_ID)?;
        let pp = self.parts.get(&c.port_partition).ok_or(HvStatus::INVALID_PORT_ID)?;
        let port = pp.ports.get(&c.port_id).ok_or(HvStatus::INVALID_PORT_ID)?;
        if pp.state != State::Active || port.info.port_type != ty || port.connection_partition != caller {
            return Err(HvStatus::INVALID_PORT_ID);
        }
        Ok((c.port_partition, c.port_id, *port))
    }

    /// The VP a port delivers to: its target, or for HV_ANY_VP the first
    /// whose SynIC is ready (`ready` says for what).
    fn port_vp(&self, pp: u64, target: u32, ready: impl Fn(u32) -> bool) -> Result<u32, HvStatus> {
        let p = self.part(pp)?;
        if p.is_root() {
            return if target == 0 || target == VP_INDEX_ANY { Ok(0) } else { Err(HvStatus::INVALID_VP_INDEX) };
        }
        if target != VP_INDEX_ANY {
            return if p.vps.contains_key(&target) { Ok(target) } else { Err(HvStatus::INVALID_VP_INDEX) };
        }
        if p.vps.is_empty() {
            return Err(HvStatus::INVALID_VP_INDEX);
        }
        p.vps.keys().copied().find(|&v| ready(v)).ok_or(HvStatus::INVALID_SYNIC_STATE)
    }

    pub(crate) fn post_message(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = PostMessageIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let me = call.caller.partition;
        if self.privileges(me) & privilege::POST_MESSAGES == 0 {
            return Err(HvStatus::ACCESS_DENIED);
        }
        let (pp, port_id, port) = self.connection_port(me, input.connection_id, port_type::MESSAGE)?;
        let ty = input.message_type;
        if ty == message_type::NONE || ty & message_type::HYPERVISOR_ONLY != 0 {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let size = usize::try_from(input.payload_size).unwrap_or(usize::MAX);
        if size > MESSAGE_PAYLOAD_SIZE {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let sint = port.info.target_sint as u8;
        let vp = self.port_vp(pp, port.info.target_vp, |v| self.slot_place(pp, v, sint).is_some())?;
        let place = self.slot_place(pp, vp, sint).ok_or(HvStatus::INVALID_SYNIC_STATE)?;
        if !self.slot_free(place) && port.queued as usize >= PORT_MESSAGE_BUFFERS {
            return Err(HvStatus::INSUFFICIENT_BUFFERS);
        }
        let mut message = HvMessage::default();
        message.header.message_type = ty;
        message.header.payload_size = size as u8;
        message.header.origination_id = u64::from(port_id);
        let body = call.input.get(PostMessageIn::SIZE..PostMessageIn::SIZE + size).unwrap_or(&[]);
        message.payload[..body.len()].copy_from_slice(body);
        if let Some(p) = self.parts.get_mut(&pp).and_then(|p| p.ports.get_mut(&port_id)) {
            p.posted += 1;
        }
        self.send(pp, vp, sint, Queued { message, port: Some((pp, port_id)) });
        Ok(())
    }

    pub(crate) fn signal_event(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = SignalEventIn::read(call.input).ok_or(HvStatus::INVALID_ALIGNMENT)?;
        let me = call.caller.partition;
        if self.privileges(me) & privilege::SIGNAL_EVENTS == 0 {
            return Err(HvStatus::ACCESS_DENIED);
        }
        let (pp, _, port) = self.connection_port(me, input.connection_id, port_type::EVENT)?;
        if input.flag_number >= port.info.flag_count || input.reserved != 0 {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let sint = port.info.target_sint as u8;
        let ready = |v: u32| {
            self.flags_place(pp, v, sint).is_some()
                && self
                    .parts
                    .get(&pp)
                    .and_then(|p| p.vps.get(&v))
                    .is_none_or(|vp| vp.synic.sints[usize::from(sint)] & msr::SINT_MASKED == 0)
        };
        let vp = self.port_vp(pp, port.info.target_vp, ready)?;
        if !ready(vp) {
            return Err(HvStatus::INVALID_SYNIC_STATE);
        }
        let place = self.flags_place(pp, vp, sint).ok_or(HvStatus::INVALID_SYNIC_STATE)?;
        let flag = u32::from(port.info.base_flag_number) + u32::from(input.flag_number);
        let (byte, bit) = ((flag / 8) as u64, (flag % 8) as u8);
        let was_set = match place {
            Place::Root(root, at) => self.platform.synic_set_bit(root, at + byte as usize, bit),
            Place::Memory(root, at) => self.platform.mem_set_bit(root, at + byte, bit),
        };
        match was_set {
            Some(false) => self.raise_sint(pp, vp, sint),
            Some(true) => {}
            None => return Err(HvStatus::INVALID_SYNIC_STATE),
        }
        Ok(())
    }
}
