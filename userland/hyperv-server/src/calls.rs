//! Partition, pool and GPA hypercalls (TLFS 2.0A §5.6, §7.3, §8.3), each
//! with the statuses of its error table (reference §3.1) checked in the
//! order: partition id, access, state, parameters, memory.

use hv::abi::*;

use crate::manager::{
    cost, root_page_index, root_page_number, Call, Caller, GpaMapping, Manager, Outcome, Partition, Space, State,
    CHILD_GPA_PAGES, GPA_BLOCK_PAGES, MAX_DEPTH, MAX_PARTITIONS, PAGE,
};
use crate::platform::{Platform, Trap};

fn read<T>(r: Option<T>) -> Result<T, HvStatus> {
    r.ok_or(HvStatus::INVALID_ALIGNMENT)
}

/// Element `i` of a list of u64 after a `header`-byte header.
fn elem_u64(input: &[u8], header: usize, i: usize) -> Option<u64> {
    let at = header + 8 * i;
    input.get(at..at + 8).map(u64::get)
}

fn root_base(caller: &Caller) -> Option<u64> {
    match caller.space {
        Space::Root { base } => Some(base),
        Space::Guest => None,
    }
}

impl<P: Platform> Manager<P> {
    /// The target of a call only the parent may make, checked for state.
    fn child_of(&self, caller: &Caller, id: u64, states: &[State]) -> Result<u64, HvStatus> {
        let id = self.target(caller, id)?;
        if !self.is_parent(caller.partition, id) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        self.check_state(id, states)?;
        Ok(id)
    }

    pub(crate) fn check_state(&self, id: u64, states: &[State]) -> Result<(), HvStatus> {
        if states.contains(&self.part(id)?.state) {
            Ok(())
        } else {
            Err(HvStatus::INVALID_PARTITION_STATE)
        }
    }

    pub(crate) fn create_partition(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = read(CreatePartitionIn::read(call.input))?;
        let caller = self.part(call.caller.partition)?;
        if !caller.has(privilege::CREATE_PARTITIONS) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        // TLFS 2.0A defines no creation flag.
        if input.flags != 0 || !input.proximity_domain_info.is_acceptable() {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        if caller.depth >= MAX_DEPTH {
            return Err(HvStatus::PARTITION_TOO_DEEP);
        }
        if self.parts.len() >= MAX_PARTITIONS {
            return Err(HvStatus::NO_RESOURCES);
        }
        let (parent, root, depth) = (caller.id, caller.root, caller.depth + 1);
        self.part_mut(parent)?.pool.charge(cost::PARTITION)?;
        let id = self.new_id();
        let child = Partition::<P>::new_child(id, parent, root, depth);
        self.parts.insert(id, alloc::boxed::Box::new(child));
        self.part_mut(parent)?.children.push(id);
        call.output[..8].copy_from_slice(&id.to_le_bytes());
        Ok(())
    }

    pub(crate) fn initialize_partition(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = read(PartitionIdIn::read(call.input))?;
        let id = self.child_of(&call.caller, input.partition_id, &[State::Uninitialized])?;
        self.part_mut(id)?.pool.charge(cost::INITIALIZE)?;
        let guest = match self.new_guest() {
            Ok(g) => g,
            Err(s) => {
                self.part_mut(id)?.pool.refund(cost::INITIALIZE);
                return Err(s);
            }
        };
        let p = self.part_mut(id)?;
        p.guest = Some(guest);
        p.state = State::Active;
        Ok(())
    }

    /// A kernel guest with the traps every child has: all MSRs, all CPUID
    /// leaves, VMCALL.
    fn new_guest(&mut self) -> Result<P::Guest, HvStatus> {
        let guest = self.platform.guest_create()?;
        self.platform.guest_trap(&guest, Trap::Msr, 0, 1 << 32)?;
        self.platform.guest_trap(&guest, Trap::Cpuid, 0, 1 << 32)?;
        self.platform.guest_trap(&guest, Trap::Vmcall, 0, 1)?;
        Ok(guest)
    }

    pub(crate) fn finalize_partition(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = read(PartitionIdIn::read(call.input))?;
        let id = self.child_of(&call.caller, input.partition_id, &[State::Active])?;
        if !self.part(id)?.children.is_empty() {
            return Err(HvStatus::OPERATION_DENIED);
        }
        self.teardown(id);
        let p = self.part_mut(id)?;
        // Every object's pages, the initialization's included, go back.
        p.pool.in_use = 0;
        p.state = State::Finalized;
        Ok(())
    }

    pub(crate) fn delete_partition(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = read(PartitionIdIn::read(call.input))?;
        let id = self.child_of(&call.caller, input.partition_id, &[State::Uninitialized, State::Finalized])?;
        if !self.part(id)?.pool.pages.is_empty() {
            return Err(HvStatus::OPERATION_DENIED);
        }
        self.teardown(id);
        if let Some(p) = self.parts.remove(&id) {
            if let Some(parent) = p.parent.and_then(|pp| self.parts.get_mut(&pp)) {
                parent.children.retain(|&c| c != id);
                parent.pool.refund(cost::PARTITION);
            }
        }
        Ok(())
    }

    /// Get/SetPartitionProperty: the parent, or a root on itself.
    fn property_target(&self, caller: &Caller, id: u64) -> Result<u64, HvStatus> {
        let id = self.target(caller, id)?;
        let root_self = id == caller.partition && self.part(id)?.is_root();
        if !self.is_parent(caller.partition, id) && !root_self {
            return Err(HvStatus::ACCESS_DENIED);
        }
        self.check_state(id, &[State::Active])?;
        Ok(id)
    }

    pub(crate) fn get_partition_property(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = read(GetPartitionPropertyIn::read(call.input))?;
        let id = self.property_target(&call.caller, input.partition_id)?;
        let value = match input.property_code {
            property::PRIVILEGE_FLAGS => self.part(id)?.privileges,
            property::PROCESSOR_VENDOR => property::VENDOR_AMD,
            _ => return Err(HvStatus::UNKNOWN_PROPERTY),
        };
        call.output[..8].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    pub(crate) fn set_partition_property(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = read(SetPartitionPropertyIn::read(call.input))?;
        let id = self.property_target(&call.caller, input.partition_id)?;
        match input.property_code {
            property::PRIVILEGE_FLAGS => {
                // A root's own privileges are fixed; a child gets at most what
                // TLFS 2.0A defines.
                if self.part(id)?.is_root() || input.property_value & !privilege::ALL != 0 {
                    return Err(HvStatus::PROPERTY_VALUE_OUT_OF_RANGE);
                }
                self.part_mut(id)?.privileges = input.property_value;
                Ok(())
            }
            property::PROCESSOR_VENDOR => Err(HvStatus::PROPERTY_VALUE_OUT_OF_RANGE),
            _ => Err(HvStatus::UNKNOWN_PROPERTY),
        }
    }

    pub(crate) fn get_partition_id(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let caller = self.part(call.caller.partition)?;
        if !caller.has(privilege::ACCESS_PARTITION_ID) {
            return Err(HvStatus::ACCESS_DENIED);
        }
        call.output[..8].copy_from_slice(&caller.id.to_le_bytes());
        Ok(())
    }

    pub(crate) fn get_next_child_partition(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = read(GetNextChildPartitionIn::read(call.input))?;
        let parent = self.target(&call.caller, input.parent_id)?;
        if parent != call.caller.partition {
            return Err(HvStatus::ACCESS_DENIED);
        }
        let children = &self.part(parent)?.children;
        let next = if input.previous_child_id == PARTITION_ID_INVALID {
            children.first().copied().unwrap_or(PARTITION_ID_INVALID)
        } else {
            let at = children.iter().position(|&c| c == input.previous_child_id);
            let at = at.ok_or(HvStatus::INVALID_PARTITION_ID)?;
            children.get(at + 1).copied().unwrap_or(PARTITION_ID_INVALID)
        };
        call.output[..8].copy_from_slice(&next.to_le_bytes());
        Ok(())
    }

    // ------------------------------------------------------------ pools

    /// Deposit/Withdraw/Balance: the parent with AccessMemoryPool, or a root
    /// on itself.
    fn pool_target(&self, caller: &Caller, id: u64) -> Result<u64, HvStatus> {
        let id = self.target(caller, id)?;
        let c = self.part(caller.partition)?;
        let parent = self.is_parent(caller.partition, id) && c.has(privilege::ACCESS_MEMORY_POOL);
        let root_self = id == caller.partition && c.is_root();
        if !parent && !root_self {
            return Err(HvStatus::ACCESS_DENIED);
        }
        Ok(id)
    }

    pub(crate) fn deposit_memory(&mut self, call: Call<'_>) -> Outcome {
        let header = DepositMemoryIn::SIZE;
        let Some(input) = DepositMemoryIn::read(call.input) else { return HvStatus::INVALID_ALIGNMENT.into() };
        let id = match self.pool_target(&call.caller, input.partition_id) {
            Ok(id) => id,
            Err(s) => return s.into(),
        };
        if let Err(s) = self.check_state(id, &[State::Uninitialized, State::Active]) {
            return s.into();
        }
        let root = call.caller.partition;
        let base = root_base(&call.caller);
        let mut done = 0u16;
        for i in call.reps() {
            let page = elem_u64(call.input, header, i).unwrap_or(u64::MAX);
            let index = base.and_then(|b| root_page_index(b, page));
            let Some(index) = index else { return Outcome { status: HvStatus::OPERATION_DENIED, done } };
            let Some(r) = self.parts.get_mut(&root) else { return HvStatus::INVALID_PARTITION_ID.into() };
            if r.deposited.contains_key(&index) || r.mapped.contains_key(&index) {
                return Outcome { status: HvStatus::OPERATION_DENIED, done };
            }
            r.deposited.insert(index, id);
            if let Some(t) = self.parts.get_mut(&id) {
                t.pool.pages.insert(index);
            }
            done += 1;
        }
        Outcome { status: HvStatus::SUCCESS, done }
    }

    pub(crate) fn withdraw_memory(&mut self, call: Call<'_>) -> Outcome {
        let Some(input) = WithdrawMemoryIn::read(call.input) else { return HvStatus::INVALID_ALIGNMENT.into() };
        let id = match self.pool_target(&call.caller, input.partition_id) {
            Ok(id) => id,
            Err(s) => return s.into(),
        };
        if !input.proximity_domain_info.is_acceptable() {
            return HvStatus::INVALID_PARAMETER.into();
        }
        let root = call.caller.partition;
        let base = root_base(&call.caller).unwrap_or(0);
        let mut done = 0u16;
        for i in call.reps() {
            let Some(t) = self.parts.get_mut(&id) else { return HvStatus::INVALID_PARTITION_ID.into() };
            if t.pool.available() == 0 {
                return Outcome { status: HvStatus::NO_RESOURCES, done };
            }
            let Some(index) = t.pool.pages.pop_last() else {
                return Outcome { status: HvStatus::NO_RESOURCES, done };
            };
            if let Some(r) = self.parts.get_mut(&root) {
                r.deposited.remove(&index);
            }
            // Withdrawn pages are zeroed.
            let zero = [0u8; PAGE as usize];
            self.platform.mem_write(root, index * PAGE, &zero);
            let number = root_page_number(base, index);
            if let Some(slot) = call.output.get_mut(8 * i..8 * i + 8) {
                slot.copy_from_slice(&number.to_le_bytes());
            }
            done += 1;
        }
        Outcome { status: HvStatus::SUCCESS, done }
    }

    pub(crate) fn get_memory_balance(&mut self, call: Call<'_>) -> Result<(), HvStatus> {
        let input = read(GetMemoryBalanceIn::read(call.input))?;
        // Reading a balance is "parent or self" with AccessMemoryPool (TLFS
        // 2.0A App. B), unlike deposits and withdrawals into oneself, which
        // only a root may make.
        let id = match self.pool_target(&call.caller, input.partition_id) {
            Ok(id) => id,
            Err(HvStatus::ACCESS_DENIED)
                if self.target(&call.caller, input.partition_id) == Ok(call.caller.partition)
                    && self.part(call.caller.partition)?.has(privilege::ACCESS_MEMORY_POOL) =>
            {
                call.caller.partition
            }
            Err(s) => return Err(s),
        };
        if !input.proximity_domain_info.is_acceptable() {
            return Err(HvStatus::INVALID_PARAMETER);
        }
        let pool = &self.part(id)?.pool;
        let out = GetMemoryBalanceOut { pages_available: pool.available(), pages_in_use: pool.in_use };
        out.write(call.output);
        Ok(())
    }

    // ------------------------------------------------------------ GPA mappings

    pub(crate) fn map_gpa_pages(&mut self, call: Call<'_>) -> Outcome {
        let header = MapGpaPagesIn::SIZE;
        let Some(input) = MapGpaPagesIn::read(call.input) else { return HvStatus::INVALID_ALIGNMENT.into() };
        let id = match self.target(&call.caller, input.target_partition_id) {
            Ok(id) => id,
            Err(s) => return s.into(),
        };
        let base = root_base(&call.caller);
        if id == call.caller.partition && self.parts.get(&id).is_some_and(|p| p.is_root()) {
            return self.root_self_map(&call, input, base);
        }
        if !self.is_parent(call.caller.partition, id) {
            return HvStatus::ACCESS_DENIED.into();
        }
        if let Err(s) = self.check_state(id, &[State::Active]) {
            return s.into();
        }
        if !map_flags::valid(input.map_flags) {
            return HvStatus::INVALID_PARAMETER.into();
        }
        let root = call.caller.partition;
        let mut done = 0u16;
        for i in call.reps() {
            let gpa = input.target_gpa_base.wrapping_add(i as u64);
            if input.target_gpa_base.checked_add(i as u64).is_none() || gpa >= CHILD_GPA_PAGES {
                return Outcome { status: HvStatus::INVALID_PARAMETER, done };
            }
            let source = elem_u64(call.input, header, i).unwrap_or(u64::MAX);
            let Some(index) = base.and_then(|b| root_page_index(b, source)) else {
                return Outcome { status: HvStatus::OPERATION_DENIED, done };
            };
            if let Err(s) = self.map_one(root, id, gpa, index, input.map_flags) {
                return Outcome { status: s, done };
            }
            done += 1;
        }
        Outcome { status: HvStatus::SUCCESS, done }
    }

    /// A root "mapping" into itself: only the identity of pages it has is
    /// accepted (and changes nothing).
    fn root_self_map(&mut self, call: &Call<'_>, input: MapGpaPagesIn, base: Option<u64>) -> Outcome {
        if !map_flags::valid(input.map_flags) {
            return HvStatus::INVALID_PARAMETER.into();
        }
        let mut done = 0u16;
        for i in call.reps() {
            let source = elem_u64(call.input, MapGpaPagesIn::SIZE, i).unwrap_or(u64::MAX);
            let identity = input.target_gpa_base.checked_add(i as u64) == Some(source);
            let inside = base.and_then(|b| root_page_index(b, source)).is_some();
            if !identity || !inside {
                return Outcome { status: HvStatus::ACCESS_DENIED, done };
            }
            done += 1;
        }
        Outcome { status: HvStatus::SUCCESS, done }
    }

    fn map_one(&mut self, root: u64, id: u64, gpa: u64, index: u64, flags: u32) -> Result<(), HvStatus> {
        let r = self.part(root)?;
        if r.deposited.contains_key(&index) {
            return Err(HvStatus::OPERATION_DENIED);
        }
        let t = self.part(id)?;
        let block = gpa / GPA_BLOCK_PAGES;
        let new_block = !t.gpa_blocks.contains_key(&block);
        let old = t.gpa.get(&gpa).copied();
        if new_block {
            self.part_mut(id)?.pool.charge(cost::GPA_BLOCK)?;
        }
        let t = self.part_mut(id)?;
        let guest = t.guest.take();
        let result = match guest.as_ref() {
            Some(g) => {
                if old.is_some() {
                    self.platform.guest_unmap(g, gpa);
                }
                self.platform.guest_map(g, root, gpa, index)
            }
            None => Err(HvStatus::INVALID_PARTITION_STATE),
        };
        let t = self.part_mut(id)?;
        t.guest = guest;
        if let Some(old) = old {
            t.gpa.remove(&gpa);
            self.unmark_mapped(root, old.index);
            if result.is_err() {
                self.release_block(id, block);
            }
        }
        if let Err(s) = result {
            if new_block {
                self.part_mut(id)?.pool.refund(cost::GPA_BLOCK);
            }
            return Err(s);
        }
        let t = self.part_mut(id)?;
        t.gpa.insert(gpa, GpaMapping { index, flags });
        if old.is_none() {
            *t.gpa_blocks.entry(block).or_insert(0) += 1;
        }
        *self.part_mut(root)?.mapped.entry(index).or_insert(0) += 1;
        Ok(())
    }

    /// One mapped page of `block` went away: the block's charge goes back
    /// with its last page.
    fn release_block(&mut self, id: u64, block: u64) {
        let Some(t) = self.parts.get_mut(&id) else { return };
        if let Some(n) = t.gpa_blocks.get_mut(&block) {
            *n -= 1;
            if *n == 0 {
                t.gpa_blocks.remove(&block);
                t.pool.refund(cost::GPA_BLOCK);
            }
        }
    }

    pub(crate) fn unmap_gpa_pages(&mut self, call: Call<'_>) -> Outcome {
        let Some(input) = UnmapGpaPagesIn::read(call.input) else { return HvStatus::INVALID_ALIGNMENT.into() };
        let id = match self.target(&call.caller, input.target_partition_id) {
            Ok(id) => id,
            Err(s) => return s.into(),
        };
        if !self.is_parent(call.caller.partition, id) {
            return HvStatus::ACCESS_DENIED.into();
        }
        if let Err(s) = self.check_state(id, &[State::Active]) {
            return s.into();
        }
        let mut done = 0u16;
        for i in call.reps() {
            let gpa = input.target_gpa_base.wrapping_add(i as u64);
            if input.target_gpa_base.checked_add(i as u64).is_none() || gpa >= CHILD_GPA_PAGES {
                return Outcome { status: HvStatus::INVALID_PARAMETER, done };
            }
            self.unmap_one(id, gpa);
            done += 1;
        }
        Outcome { status: HvStatus::SUCCESS, done }
    }

    fn unmap_one(&mut self, id: u64, gpa: u64) {
        let Some(t) = self.parts.get_mut(&id) else { return };
        let Some(old) = t.gpa.remove(&gpa) else { return };
        let root = t.root;
        if let Some(g) = t.guest.take() {
            self.platform.guest_unmap(&g, gpa);
            if let Some(t) = self.parts.get_mut(&id) {
                t.guest = Some(g);
            }
        }
        self.unmark_mapped(root, old.index);
        self.release_block(id, gpa / GPA_BLOCK_PAGES);
    }
}

impl<P: Platform> Partition<P> {
    pub(crate) fn new_child(id: u64, parent: u64, root: u64, depth: u8) -> Self {
        let mut p = Partition::new_root_like(id, root, depth);
        p.parent = Some(parent);
        p.privileges = privilege::CHILD_DEFAULT;
        p.state = State::Uninitialized;
        p
    }
}
