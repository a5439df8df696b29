//! Host tests of the manager over a model platform: the common checks,
//! every call's statuses, states, pools, intercepts and the SynIC.

use std::collections::BTreeMap;
use std::vec::Vec;

use hv::abi::*;

use crate::manager::{Caller, Manager, Space, PAGE};
use crate::platform::{GuestExit, Platform, Trap, VcpuRegs};

#[derive(Default)]
struct Model {
    guests: u64,
    maps: BTreeMap<(u64, u64), u64>,
    traps: Vec<(u64, Trap, u64, u64)>,
    mem: BTreeMap<(u64, u64), Vec<u8>>,
    synic: BTreeMap<u64, Vec<u8>>,
    notified: BTreeMap<u64, u32>,
    interrupts: Vec<(u64, u32)>,
    resumed: Vec<(u64, VcpuRegs)>,
    destroyed: Vec<u64>,
}

impl Model {
    fn page(&mut self, root: u64, offset: u64) -> &mut Vec<u8> {
        self.mem.entry((root, offset / PAGE)).or_insert_with(|| vec![0; PAGE as usize])
    }
}

const ROOT_SIZE: u64 = hv::proto::HV_ROOT_MEMORY_SIZE;

impl Platform for Model {
    type Guest = u64;
    type Vp = u64;

    fn guest_create(&mut self) -> Result<u64, HvStatus> {
        self.guests += 1;
        Ok(self.guests)
    }
    fn guest_trap(&mut self, g: &u64, kind: Trap, addr: u64, len: u64) -> Result<(), HvStatus> {
        self.traps.push((*g, kind, addr, len));
        Ok(())
    }
    fn guest_map(&mut self, g: &u64, _root: u64, gpa: u64, index: u64) -> Result<(), HvStatus> {
        self.maps.insert((*g, gpa), index);
        Ok(())
    }
    fn guest_unmap(&mut self, g: &u64, gpa: u64) {
        self.maps.remove(&(*g, gpa));
    }
    fn vp_create(&mut self, _g: &u64, key: u64) -> Result<(u64, VcpuRegs), HvStatus> {
        let mut regs = VcpuRegs { cr0: 0x8000_0011, efer: 0x500, rflags: 2, ..Default::default() };
        regs.cs.attributes = 0xa09b;
        Ok((key, regs))
    }
    fn vp_resume(&mut self, vp: &u64, regs: &VcpuRegs) {
        self.resumed.push((*vp, *regs));
    }
    fn vp_interrupt(&mut self, vp: &u64, vector: u32) {
        self.interrupts.push((*vp, vector));
    }
    fn vp_destroy(&mut self, vp: u64) {
        self.destroyed.push(vp);
    }
    fn mem_read(&self, root: u64, offset: u64, out: &mut [u8]) -> bool {
        if offset + out.len() as u64 > ROOT_SIZE {
            return false;
        }
        for (i, b) in out.iter_mut().enumerate() {
            let at = offset + i as u64;
            *b = self.mem.get(&(root, at / PAGE)).map_or(0, |p| p[(at % PAGE) as usize]);
        }
        true
    }
    fn mem_write(&mut self, root: u64, offset: u64, bytes: &[u8]) -> bool {
        if offset + bytes.len() as u64 > ROOT_SIZE {
            return false;
        }
        for (i, b) in bytes.iter().enumerate() {
            let at = offset + i as u64;
            self.page(root, at)[(at % PAGE) as usize] = *b;
        }
        true
    }
    fn mem_set_bit(&mut self, root: u64, offset: u64, bit: u8) -> Option<bool> {
        if offset >= ROOT_SIZE {
            return None;
        }
        let b = &mut self.page(root, offset)[(offset % PAGE) as usize];
        let was = *b & (1 << bit) != 0;
        *b |= 1 << bit;
        Some(was)
    }
    fn synic_read(&self, root: u64, offset: usize, out: &mut [u8]) -> bool {
        let Some(s) = self.synic.get(&root) else { return false };
        match s.get(offset..offset + out.len()) {
            Some(src) => {
                out.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
    fn synic_write(&mut self, root: u64, offset: usize, bytes: &[u8]) -> bool {
        let s = self.synic.entry(root).or_insert_with(|| vec![0; 8192]);
        match s.get_mut(offset..offset + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
    fn synic_set_bit(&mut self, root: u64, offset: usize, bit: u8) -> Option<bool> {
        let s = self.synic.entry(root).or_insert_with(|| vec![0; 8192]);
        let b = s.get_mut(offset)?;
        let was = *b & (1 << bit) != 0;
        *b |= 1 << bit;
        Some(was)
    }
    fn notify(&mut self, root: u64) {
        *self.notified.entry(root).or_insert(0) += 1;
    }
}

/// A root client at virtual address BASE, with input at page 0 of its
/// memory and output at page 1; pool pages from page 16 on.
const BASE: u64 = 0x4000_0000;
const IN: u64 = BASE;
const OUT: u64 = BASE + PAGE;

struct Env {
    m: Manager<Model>,
    root: u64,
    next_page: u64,
}

impl Env {
    fn new() -> Env {
        let mut m = Manager::new(Model::default());
        let root = m.create_root().expect("root");
        m.platform.synic.insert(root, vec![0; 8192]);
        Env { m, root, next_page: 16 }
    }

    fn caller(&self) -> Caller {
        Caller { partition: self.root, vp: None, space: Space::Root { base: BASE } }
    }

    fn raw(&mut self, control: u64, input: &[u8], out_len: usize) -> (HvResult, Vec<u8>) {
        let root = self.root;
        self.m.platform.mem_write(root, 0, &vec![0; PAGE as usize]);
        self.m.platform.mem_write(root, 0, input);
        self.m.platform.mem_write(root, PAGE, &vec![0xee; PAGE as usize]);
        let r = self.m.hypercall(self.caller(), control, IN, OUT);
        let mut out = vec![0; out_len];
        self.m.platform.mem_read(root, PAGE, &mut out);
        (r, out)
    }

    fn call(&mut self, code: u16, input: &[u8]) -> HvStatus {
        self.raw(Control::simple(code).raw(), input, 0).0.status
    }

    fn call_out(&mut self, code: u16, input: &[u8]) -> (HvStatus, u64) {
        let (r, out) = self.raw(Control::simple(code).raw(), input, 8);
        (r.status, u64::from_le_bytes(out[..8].try_into().expect("8 bytes")))
    }

    fn rep(&mut self, code: u16, header: &[u8], elems: &[u8], count: u16) -> HvResult {
        let mut input = header.to_vec();
        input.extend_from_slice(elems);
        self.raw(Control::rep(code, count, 0).raw(), &input, 0).0
    }

    /// `n` fresh pages of root memory (page numbers).
    fn pages(&mut self, n: u64) -> Vec<u64> {
        let first = self.next_page;
        self.next_page += n;
        (first..first + n).map(|i| BASE / PAGE + i).collect()
    }

    fn deposit(&mut self, id: u64, n: u64) -> HvResult {
        let pages = self.pages(n);
        let elems: Vec<u8> = pages.iter().flat_map(|p| p.to_le_bytes()).collect();
        self.rep(call::DEPOSIT_MEMORY, &id.to_le_bytes(), &elems, n as u16)
    }

    fn create(&mut self) -> Result<u64, HvStatus> {
        let input = CreatePartitionIn::default().to_bytes();
        match self.call_out(call::CREATE_PARTITION, &input) {
            (HvStatus::SUCCESS, id) => Ok(id),
            (s, _) => Err(s),
        }
    }

    /// A child with `pages` deposited, initialized.
    fn active_child(&mut self, extra: u64) -> u64 {
        let root = self.root;
        if self.balance(root).0 == 0 {
            assert_eq!(self.deposit(root, 4).status, HvStatus::SUCCESS);
        }
        let id = self.create().expect("create");
        assert_eq!(self.deposit(id, 16 + extra).status, HvStatus::SUCCESS);
        assert_eq!(self.call(call::INITIALIZE_PARTITION, &id.to_le_bytes()), HvStatus::SUCCESS);
        id
    }

    fn balance(&mut self, id: u64) -> (u64, u64) {
        let input = GetMemoryBalanceIn { partition_id: id, ..Default::default() }.to_bytes();
        let (r, out) = self.raw(Control::simple(call::GET_MEMORY_BALANCE).raw(), &input, 16);
        assert_eq!(r.status, HvStatus::SUCCESS);
        let b = GetMemoryBalanceOut::read(&out).expect("balance");
        (b.pages_available, b.pages_in_use)
    }

    fn create_vp(&mut self, id: u64, vp: u32) -> HvStatus {
        let input = CreateVpIn { partition_id: id, vp_index: vp, ..Default::default() }.to_bytes();
        self.call(call::CREATE_VP, &input)
    }

    fn map(&mut self, id: u64, gpa: u64, flags: u32, sources: &[u64]) -> HvResult {
        let header = MapGpaPagesIn { target_partition_id: id, target_gpa_base: gpa, map_flags: flags, padding: 0 };
        let elems: Vec<u8> = sources.iter().flat_map(|p| p.to_le_bytes()).collect();
        self.rep(call::MAP_GPA_PAGES, &header.to_bytes(), &elems, sources.len() as u16)
    }

    fn set_regs(&mut self, id: u64, vp: u32, regs: &[(u32, u128)]) -> HvResult {
        let header = VpRegistersIn { partition_id: id, vp_index: vp, padding: 0 }.to_bytes();
        let elems: Vec<u8> = regs
            .iter()
            .flat_map(|&(name, value)| RegisterAssoc { name, reserved: [0; 12], value }.to_bytes())
            .collect();
        self.rep(call::SET_VP_REGISTERS, &header, &elems, regs.len() as u16)
    }

    fn get_reg(&mut self, id: u64, vp: u32, name: u32) -> (HvStatus, u128) {
        let mut input = VpRegistersIn { partition_id: id, vp_index: vp, padding: 0 }.to_bytes().to_vec();
        input.extend_from_slice(&name.to_le_bytes());
        let (r, out) = self.raw(Control::rep(call::GET_VP_REGISTERS, 1, 0).raw(), &input, 16);
        (r.status, u128::from_le_bytes(out[..16].try_into().expect("16")))
    }

    fn root_message(&self, sint: usize) -> HvMessage {
        let s = &self.m.platform.synic[&self.root];
        HvMessage::read(&s[sint * 256..sint * 256 + 256]).expect("message")
    }

    fn vp_key(&self, id: u64, vp: u32) -> u64 {
        self.m.partition(id).expect("partition").vps[&vp].key
    }
}

#[test]
fn common_checks() {
    let mut e = Env::new();
    let id_in = 5u64.to_le_bytes();
    assert_eq!(e.raw(0x0001, &[], 0).0.status, HvStatus::INVALID_HYPERCALL_CODE);
    assert_eq!(e.raw(0xffff, &[], 0).0.status, HvStatus::INVALID_HYPERCALL_CODE);
    for bit in [17, 26, 27, 31, 44, 47, 60, 63] {
        let control = Control::simple(call::GET_PARTITION_ID).raw() | (1 << bit);
        assert_eq!(e.raw(control, &[], 8).0.status, HvStatus::INVALID_HYPERCALL_INPUT, "bit {bit}");
    }
    // Fast on a call that is not fast-capable.
    assert_eq!(e.raw(Control::fast(call::CREATE_PARTITION).raw(), &[], 0).0.status, HvStatus::INVALID_HYPERCALL_INPUT);
    // Rep fields on a simple call; rep count 0 or start >= count on a rep call.
    let bad = [
        Control::rep(call::INITIALIZE_PARTITION, 1, 0),
        Control::rep(call::INITIALIZE_PARTITION, 0, 1),
        Control::rep(call::DEPOSIT_MEMORY, 0, 0),
        Control::rep(call::DEPOSIT_MEMORY, 3, 3),
        Control::rep(call::DEPOSIT_MEMORY, 3, 4),
    ];
    for c in bad {
        assert_eq!(e.raw(c.raw(), &id_in, 0).0.status, HvStatus::INVALID_HYPERCALL_INPUT, "{c:?}");
    }
    // Misaligned, straddling, outside the root memory.
    let caller = e.caller();
    let c = Control::simple(call::INITIALIZE_PARTITION).raw();
    assert_eq!(e.m.hypercall(caller, c, IN + 4, OUT).status, HvStatus::INVALID_ALIGNMENT);
    assert_eq!(e.m.hypercall(caller, c, IN + PAGE - 4, OUT).status, HvStatus::INVALID_ALIGNMENT);
    assert_eq!(e.m.hypercall(caller, c, BASE - PAGE, OUT).status, HvStatus::INVALID_ALIGNMENT);
    assert_eq!(e.m.hypercall(caller, c, BASE + ROOT_SIZE, OUT).status, HvStatus::INVALID_ALIGNMENT);
    let c = Control::simple(call::GET_PARTITION_ID).raw();
    assert_eq!(e.m.hypercall(caller, c, 0, OUT + PAGE - 4).status, HvStatus::INVALID_ALIGNMENT);
    // No input: its address is ignored.
    assert_eq!(e.m.hypercall(caller, c, 3, OUT).status, HvStatus::SUCCESS);
    // A rep list that does not fit its page.
    let c = Control::rep(call::DEPOSIT_MEMORY, 600, 0).raw();
    assert_eq!(e.m.hypercall(caller, c, IN, OUT).status, HvStatus::INVALID_ALIGNMENT);
}

#[test]
fn create_needs_the_callers_pool_and_ids_are_never_reused() {
    let mut e = Env::new();
    assert_eq!(e.create(), Err(HvStatus::INSUFFICIENT_MEMORY));
    let r = e.deposit(e.root, 2);
    assert_eq!((r.status, r.reps_completed), (HvStatus::SUCCESS, 2));
    let a = e.create().expect("a");
    let b = e.create().expect("b");
    assert_eq!(e.create(), Err(HvStatus::INSUFFICIENT_MEMORY));
    assert!(b > a && a > e.root);
    assert_eq!(e.balance(e.root), (0, 2));
    assert_eq!(e.call(call::DELETE_PARTITION, &b.to_le_bytes()), HvStatus::SUCCESS);
    assert_eq!(e.balance(e.root), (1, 1));
    let c = e.create().expect("c");
    assert!(c > b);
    // Flags and proximity.
    let input = CreatePartitionIn { flags: 1, ..Default::default() }.to_bytes();
    assert_eq!(e.call(call::CREATE_PARTITION, &input), HvStatus::INVALID_PARAMETER);
    let prox = ProximityDomainInfo { id: 0, flags: 4 };
    let input = CreatePartitionIn { flags: 0, proximity_domain_info: prox }.to_bytes();
    assert_eq!(e.call(call::CREATE_PARTITION, &input), HvStatus::INVALID_PARAMETER);
}

#[test]
fn state_machine() {
    let mut e = Env::new();
    e.deposit(e.root, 4);
    let id = e.create().expect("create");
    let idb = id.to_le_bytes();
    // Uninitialized: no finalize, no VP, no property.
    assert_eq!(e.call(call::FINALIZE_PARTITION, &idb), HvStatus::INVALID_PARTITION_STATE);
    assert_eq!(e.create_vp(id, 0), HvStatus::INVALID_PARTITION_STATE);
    let prop = GetPartitionPropertyIn { partition_id: id, property_code: property::PRIVILEGE_FLAGS, padding: 0 };
    assert_eq!(e.call_out(call::GET_PARTITION_PROPERTY, &prop.to_bytes()).0, HvStatus::INVALID_PARTITION_STATE);
    // Initialize needs 16 pages in the child's pool.
    assert_eq!(e.deposit(id, 15).status, HvStatus::SUCCESS);
    assert_eq!(e.call(call::INITIALIZE_PARTITION, &idb), HvStatus::INSUFFICIENT_MEMORY);
    assert_eq!(e.deposit(id, 1).status, HvStatus::SUCCESS);
    assert_eq!(e.call(call::INITIALIZE_PARTITION, &idb), HvStatus::SUCCESS);
    assert_eq!(e.call(call::INITIALIZE_PARTITION, &idb), HvStatus::INVALID_PARTITION_STATE);
    assert_eq!(e.call_out(call::GET_PARTITION_PROPERTY, &prop.to_bytes()), (HvStatus::SUCCESS, 0x5ff));
    assert_eq!(e.call(call::DELETE_PARTITION, &idb), HvStatus::INVALID_PARTITION_STATE);
    // Not the parent / unknown ids.
    let rootb = e.root.to_le_bytes();
    assert_eq!(e.call(call::FINALIZE_PARTITION, &rootb), HvStatus::ACCESS_DENIED);
    assert_eq!(e.call(call::FINALIZE_PARTITION, &999u64.to_le_bytes()), HvStatus::INVALID_PARTITION_ID);
    assert_eq!(e.call(call::FINALIZE_PARTITION, &0u64.to_le_bytes()), HvStatus::INVALID_PARTITION_ID);
    assert_eq!(e.create_vp(id, 0), HvStatus::INSUFFICIENT_MEMORY);
    assert_eq!(e.deposit(id, 4).status, HvStatus::SUCCESS);
    assert_eq!(e.create_vp(id, 0), HvStatus::SUCCESS);
    assert_eq!(e.balance(id), (0, 20));
    assert_eq!(e.call(call::FINALIZE_PARTITION, &idb), HvStatus::SUCCESS);
    assert_eq!(e.m.platform.destroyed.len(), 1);
    assert_eq!(e.call(call::FINALIZE_PARTITION, &idb), HvStatus::INVALID_PARTITION_STATE);
    assert_eq!(e.balance(id), (20, 0));
    // Delete needs the pool drained.
    assert_eq!(e.call(call::DELETE_PARTITION, &idb), HvStatus::OPERATION_DENIED);
    let header = WithdrawMemoryIn { partition_id: id, ..Default::default() }.to_bytes();
    let (r, out) = e.raw(Control::rep(call::WITHDRAW_MEMORY, 24, 0).raw(), &header, 192);
    assert_eq!((r.status, r.reps_completed), (HvStatus::NO_RESOURCES, 20));
    let first = u64::from_le_bytes(out[..8].try_into().expect("8"));
    assert!((BASE / PAGE..BASE / PAGE + 4096).contains(&first));
    let (r, _) = e.raw(Control::rep(call::WITHDRAW_MEMORY, 1, 0).raw(), &header, 8);
    assert_eq!((r.status, r.reps_completed), (HvStatus::NO_RESOURCES, 0));
    assert_eq!(e.call(call::DELETE_PARTITION, &idb), HvStatus::SUCCESS);
    assert_eq!(e.call(call::DELETE_PARTITION, &idb), HvStatus::INVALID_PARTITION_ID);
}

#[test]
fn deposit_rules_and_rep_progress() {
    let mut e = Env::new();
    let root = e.root;
    let pages = e.pages(3);
    let mut elems: Vec<u8> = pages.iter().flat_map(|p| p.to_le_bytes()).collect();
    elems.extend_from_slice(&pages[0].to_le_bytes()); // again: already deposited
    let r = e.rep(call::DEPOSIT_MEMORY, &root.to_le_bytes(), &elems, 4);
    assert_eq!((r.status, r.reps_completed), (HvStatus::OPERATION_DENIED, 3));
    // Outside the root memory.
    let outside = (BASE / PAGE - 1).to_le_bytes();
    let r = e.rep(call::DEPOSIT_MEMORY, &root.to_le_bytes(), &outside, 1);
    assert_eq!((r.status, r.reps_completed), (HvStatus::OPERATION_DENIED, 0));
    // A rep start index: elements before it are skipped, completed counts from 0.
    let more = e.pages(4);
    let elems: Vec<u8> = more.iter().flat_map(|p| p.to_le_bytes()).collect();
    let mut input = root.to_le_bytes().to_vec();
    input.extend_from_slice(&elems);
    let (r, _) = e.raw(Control::rep(call::DEPOSIT_MEMORY, 4, 2).raw(), &input, 0);
    assert_eq!((r.status, r.reps_completed), (HvStatus::SUCCESS, 4));
    assert_eq!(e.balance(root), (5, 0));
}

#[test]
fn depth_privileges_and_enumeration() {
    let mut e = Env::new();
    let a = e.active_child(8);
    let b = e.active_child(8);
    let next = |e: &mut Env, prev: u64| {
        let input = GetNextChildPartitionIn { parent_id: PARTITION_ID_SELF, previous_child_id: prev }.to_bytes();
        e.call_out(call::GET_NEXT_CHILD_PARTITION, &input)
    };
    assert_eq!(next(&mut e, 0), (HvStatus::SUCCESS, a));
    assert_eq!(next(&mut e, a), (HvStatus::SUCCESS, b));
    assert_eq!(next(&mut e, b), (HvStatus::SUCCESS, 0));
    assert_eq!(next(&mut e, 12345).0, HvStatus::INVALID_PARTITION_ID);
    // A child calls: default privileges have no CreatePartitions or AccessPartitionId.
    let child = Caller { partition: a, vp: Some(0), space: Space::Guest };
    let r = e.m.hypercall(child, Control::fast(call::DELETE_PARTITION).raw(), b, 0);
    assert_eq!(r.status, HvStatus::ACCESS_DENIED);
    // Grant CreatePartitions: the child is at the maximum depth.
    let set = SetPartitionPropertyIn {
        partition_id: a,
        property_code: property::PRIVILEGE_FLAGS,
        padding: 0,
        property_value: privilege::CHILD_DEFAULT | privilege::CREATE_PARTITIONS,
    };
    assert_eq!(e.call(call::SET_PARTITION_PROPERTY, &set.to_bytes()), HvStatus::SUCCESS);
    // The child maps one page to pass its input.
    assert_eq!(e.create_vp(a, 0), HvStatus::SUCCESS);
    let page = e.pages(1)[0];
    assert_eq!(e.map(a, 0x10, map_flags::ALL, &[page]).status, HvStatus::SUCCESS);
    let r = e.m.hypercall(child, Control::simple(call::CREATE_PARTITION).raw(), 0x10000, 0x10100);
    assert_eq!(r.status, HvStatus::PARTITION_TOO_DEEP);
    // Root privileges cannot change; values beyond TLFS' bits are out of range.
    let set_root = SetPartitionPropertyIn { partition_id: e.root, ..set };
    assert_eq!(e.call(call::SET_PARTITION_PROPERTY, &set_root.to_bytes()), HvStatus::PROPERTY_VALUE_OUT_OF_RANGE);
    let unknown = SetPartitionPropertyIn { property_code: 0x1234, ..set };
    assert_eq!(e.call(call::SET_PARTITION_PROPERTY, &unknown.to_bytes()), HvStatus::UNKNOWN_PROPERTY);
}

#[test]
fn gpa_mapping_costs_and_rules() {
    let mut e = Env::new();
    let id = e.active_child(2);
    let pages = e.pages(4);
    assert_eq!(e.map(id, 0, map_flags::ALL, &pages[..2]).status, HvStatus::SUCCESS);
    assert_eq!(e.balance(id), (1, 17));
    // Same 2 MiB block: free; a new block: one page.
    assert_eq!(e.map(id, 511, map_flags::READABLE, &pages[2..3]).status, HvStatus::SUCCESS);
    assert_eq!(e.balance(id), (1, 17));
    assert_eq!(e.map(id, 512, map_flags::READABLE, &pages[3..4]).status, HvStatus::SUCCESS);
    assert_eq!(e.balance(id), (0, 18));
    let r = e.map(id, 1024, map_flags::READABLE, &pages[..1]);
    assert_eq!((r.status, r.reps_completed), (HvStatus::INSUFFICIENT_MEMORY, 0));
    // Flags, the GPA space, deposited and outside pages.
    assert_eq!(e.map(id, 0, 8, &pages[..1]).status, HvStatus::INVALID_PARAMETER);
    assert_eq!(e.map(id, 0, map_flags::WRITABLE, &pages[..1]).status, HvStatus::INVALID_PARAMETER);
    assert_eq!(e.map(id, 1 << 36, map_flags::ALL, &pages[..1]).status, HvStatus::INVALID_PARAMETER);
    let deposited = BASE / PAGE + 16;
    assert_eq!(e.map(id, 1, map_flags::ALL, &[deposited]).status, HvStatus::OPERATION_DENIED);
    assert_eq!(e.map(id, 1, map_flags::ALL, &[1]).status, HvStatus::OPERATION_DENIED);
    // A mapped page cannot be deposited.
    let r = e.rep(call::DEPOSIT_MEMORY, &id.to_le_bytes(), &pages[0].to_le_bytes(), 1);
    assert_eq!(r.status, HvStatus::OPERATION_DENIED);
    assert_eq!(e.m.platform.maps.len(), 4);
    // Unmapping the block's last page refunds it; unmapped pages are fine.
    let unmap = UnmapGpaPagesIn { target_partition_id: id, target_gpa_base: 512 }.to_bytes();
    let r = e.rep(call::UNMAP_GPA_PAGES, &unmap, &[], 3);
    assert_eq!((r.status, r.reps_completed), (HvStatus::SUCCESS, 3));
    assert_eq!(e.balance(id), (1, 17));
    // The root on itself: identity only.
    let root = e.root;
    assert_eq!(e.map(root, pages[0], map_flags::ALL, &pages[..1]).status, HvStatus::SUCCESS);
    assert_eq!(e.map(root, pages[0] + 1, map_flags::ALL, &pages[..1]).status, HvStatus::ACCESS_DENIED);
}

#[test]
fn vp_registers_and_suspend() {
    let mut e = Env::new();
    let id = e.active_child(8);
    assert_eq!(e.create_vp(id, 0), HvStatus::SUCCESS);
    assert_eq!(e.create_vp(id, 0), HvStatus::INVALID_VP_INDEX);
    assert_eq!(e.create_vp(id, 8), HvStatus::INVALID_VP_INDEX);
    let input = CreateVpIn { partition_id: id, vp_index: 1, flags: 1, ..Default::default() }.to_bytes();
    assert_eq!(e.call(call::CREATE_VP, &input), HvStatus::INVALID_PARAMETER);
    assert_eq!(e.get_reg(id, 0, reg::EXPLICIT_SUSPEND), (HvStatus::SUCCESS, 1));
    assert_eq!(e.get_reg(id, 0, reg::INTERCEPT_SUSPEND), (HvStatus::SUCCESS, 0));
    assert_eq!(e.get_reg(id, 0, 0x9999).0, HvStatus::INVALID_PARAMETER);
    assert_eq!(e.get_reg(id, 3, reg::RIP).0, HvStatus::INVALID_VP_INDEX);
    let r = e.set_regs(id, 0, &[(reg::RIP, 0x1000), (reg::RAX, 7), (reg::CS, 0), (reg::RBX, 1)]);
    assert_eq!((r.status, r.reps_completed), (HvStatus::INVALID_PARAMETER, 2));
    assert_eq!(e.set_regs(id, 0, &[(reg::RFLAGS, 0)]).status, HvStatus::INVALID_PARAMETER);
    assert_eq!(e.set_regs(id, 0, &[(reg::INTERCEPT_SUSPEND, 1)]).status, HvStatus::INVALID_PARAMETER);
    assert_eq!(e.get_reg(id, 0, reg::RIP), (HvStatus::SUCCESS, 0x1000));
    assert!(e.m.platform.resumed.is_empty());
    assert_eq!(e.set_regs(id, 0, &[(reg::EXPLICIT_SUSPEND, 0)]).status, HvStatus::SUCCESS);
    assert_eq!(e.m.platform.resumed.len(), 1);
    assert_eq!(e.m.platform.resumed[0].1.rip, 0x1000);
    assert_eq!(e.m.platform.resumed[0].1.gprs[0], 7);
    // Running: only the suspend registers.
    assert_eq!(e.get_reg(id, 0, reg::RIP).0, HvStatus::INVALID_VP_STATE);
    assert_eq!(e.set_regs(id, 0, &[(reg::RAX, 1)]).status, HvStatus::INVALID_VP_STATE);
    assert_eq!(e.set_regs(id, 0, &[(reg::EXPLICIT_SUSPEND, 1)]).status, HvStatus::SUCCESS);
    // It stops at its next exit.
    let key = e.vp_key(id, 0);
    let regs = e.m.platform.resumed[0].1;
    e.m.vp_exit(key, regs, GuestExit::Cpuid { leaf: 0, subleaf: 0 });
    assert_eq!(e.m.platform.resumed.len(), 1);
    assert_eq!(e.get_reg(id, 0, reg::RAX).0, HvStatus::SUCCESS);
    let del = DeleteVpIn { partition_id: id, vp_index: 0, padding: 0 }.to_bytes();
    assert_eq!(e.call(call::DELETE_VP, &del), HvStatus::SUCCESS);
    assert_eq!(e.call(call::DELETE_VP, &del), HvStatus::INVALID_VP_INDEX);
}

#[test]
fn io_intercept_round_trip() {
    let mut e = Env::new();
    let id = e.active_child(8);
    // Guest code at GPA 0x2000: `mov al, 0x42; out 0x80, al` = B0 42 E6 80.
    let page = e.pages(1)[0];
    assert_eq!(e.map(id, 2, map_flags::ALL, &[page]).status, HvStatus::SUCCESS);
    let root = e.root;
    let offset = page * PAGE - BASE;
    e.m.platform.mem_write(root, offset, &[0xB0, 0x42, 0xE6, 0x80]);
    let install = InstallInterceptIn {
        partition_id: id,
        access_type: intercept::ACCESS_WRITE,
        intercept_type: intercept::X64_IO_PORT,
        intercept_parameter: 0x80,
    };
    assert_eq!(e.call(call::INSTALL_INTERCEPT, &install.to_bytes()), HvStatus::SUCCESS);
    let bad = InstallInterceptIn { access_type: intercept::ACCESS_EXECUTE, ..install };
    assert_eq!(e.call(call::INSTALL_INTERCEPT, &bad.to_bytes()), HvStatus::INVALID_PARAMETER);
    let bad = InstallInterceptIn { intercept_parameter: 0x10000, ..install };
    assert_eq!(e.call(call::INSTALL_INTERCEPT, &bad.to_bytes()), HvStatus::INVALID_PARAMETER);
    assert_eq!(e.create_vp(id, 0), HvStatus::SUCCESS);
    assert_eq!(e.set_regs(id, 0, &[(reg::RIP, 0x2000), (reg::EXPLICIT_SUSPEND, 0)]).status, HvStatus::SUCCESS);
    let mut regs = e.m.platform.resumed[0].1;
    regs.cr0 = 0x11; // no paging: code bytes at RIP are guest-physical
    regs.rip = 0x2004;
    regs.gprs[0] = 0x42;
    let key = e.vp_key(id, 0);
    e.m.vp_exit(key, regs, GuestExit::Io { port: 0x80, size: 1, input: false, data: 0x42 });
    let msg = e.root_message(0);
    assert_eq!(msg.header.message_type, message_type::X64_IO_PORT_INTERCEPT);
    assert_eq!(msg.header.origination_id, id);
    let io = IoPortIntercept::read(&msg.payload).expect("io");
    assert_eq!((io.port_number, io.rax, io.header.rip, io.header.instruction_length), (0x80, 0x42, 0x2002, 2));
    assert_eq!(io.header.intercept_access_type, intercept::ACCESS_TYPE_WRITE);
    assert_eq!(e.m.platform.notified[&root], 1);
    assert_eq!(e.get_reg(id, 0, reg::INTERCEPT_SUSPEND), (HvStatus::SUCCESS, 1));
    assert_eq!(e.m.platform.resumed.len(), 1);
    let r = e.set_regs(id, 0, &[(reg::RIP, 0x2004), (reg::INTERCEPT_SUSPEND, 0)]);
    assert_eq!(r.status, HvStatus::SUCCESS);
    assert_eq!(e.m.platform.resumed.len(), 2);
    assert_eq!(e.m.platform.resumed[1].1.rip, 0x2004);
    // Access NONE removes it: the next OUT is dropped.
    let none = InstallInterceptIn { access_type: 0, ..install };
    assert_eq!(e.call(call::INSTALL_INTERCEPT, &none.to_bytes()), HvStatus::SUCCESS);
    e.m.vp_exit(key, regs, GuestExit::Io { port: 0x80, size: 1, input: false, data: 0x42 });
    assert_eq!(e.m.platform.resumed.len(), 3);
    assert_eq!(e.m.platform.traps.iter().filter(|t| t.1 == Trap::Io).count(), 1);
}

#[test]
fn cpuid_intercept_costs_a_page() {
    let mut e = Env::new();
    let id = e.active_child(0);
    let install = InstallInterceptIn {
        partition_id: id,
        access_type: intercept::ACCESS_EXECUTE,
        intercept_type: intercept::X64_CPUID,
        intercept_parameter: 0x4000_0000,
    };
    assert_eq!(e.call(call::INSTALL_INTERCEPT, &install.to_bytes()), HvStatus::INSUFFICIENT_MEMORY);
    e.deposit(id, 1);
    assert_eq!(e.call(call::INSTALL_INTERCEPT, &install.to_bytes()), HvStatus::SUCCESS);
    assert_eq!(e.balance(id), (0, 17));
    let msr =
        InstallInterceptIn { access_type: 3, intercept_type: intercept::X64_MSR, intercept_parameter: 0, ..install };
    assert_eq!(e.call(call::INSTALL_INTERCEPT, &msr.to_bytes()), HvStatus::SUCCESS);
    let bad = InstallInterceptIn { intercept_type: 7, ..install };
    assert_eq!(e.call(call::INSTALL_INTERCEPT, &bad.to_bytes()), HvStatus::INVALID_PARAMETER);
}

#[test]
fn guest_msrs_cpuid_and_hypercalls() {
    let mut e = Env::new();
    let id = e.active_child(8);
    let page = e.pages(1)[0];
    assert_eq!(e.map(id, 5, map_flags::ALL, &[page]).status, HvStatus::SUCCESS);
    assert_eq!(e.create_vp(id, 0), HvStatus::SUCCESS);
    assert_eq!(e.set_regs(id, 0, &[(reg::EXPLICIT_SUSPEND, 0)]).status, HvStatus::SUCCESS);
    let key = e.vp_key(id, 0);
    let regs = e.m.platform.resumed[0].1;
    let last = |e: &Env| e.m.platform.resumed.last().expect("resumed").1;
    // The hypercall page needs a guest OS id first.
    e.m.vp_exit(key, regs, GuestExit::Msr { msr: msr::HYPERCALL, write: true, value: 0x5001, inst_len: 2 });
    assert_eq!(e.m.partition(id).expect("p").hypercall_msr & 1, 0);
    e.m.vp_exit(key, regs, GuestExit::Msr { msr: msr::GUEST_OS_ID, write: true, value: 1 << 48, inst_len: 2 });
    e.m.vp_exit(key, regs, GuestExit::Msr { msr: msr::HYPERCALL, write: true, value: 0x5001, inst_len: 2 });
    let mut code = [0u8; 4];
    e.m.platform.mem_read(e.root, page * PAGE - BASE, &mut code);
    assert_eq!(code, HYPERCALL_PAGE_CODE);
    e.m.vp_exit(key, regs, GuestExit::Msr { msr: msr::HYPERCALL, write: false, value: 0, inst_len: 2 });
    assert_eq!(last(&e).gprs[0], 0x5001);
    // An unknown MSR without an MSR intercept: #GP at the instruction.
    let mut at = regs;
    at.rip = 0x100;
    e.m.vp_exit(key, at, GuestExit::Msr { msr: 0xc001_0000, write: false, value: 0, inst_len: 2 });
    assert_eq!(last(&e).rip, 0xfe);
    assert_eq!(e.m.platform.interrupts.last(), Some(&(key, 13)));
    // CPUID leaves.
    e.m.vp_exit(key, regs, GuestExit::Cpuid { leaf: cpuid::VENDOR, subleaf: 0 });
    let r = last(&e);
    assert_eq!(
        (r.gprs[0], r.gprs[3], r.gprs[1], r.gprs[2]),
        (0x4000_0005, u64::from(cpuid::VENDOR_EBX), u64::from(cpuid::VENDOR_ECX), u64::from(cpuid::VENDOR_EDX))
    );
    e.m.vp_exit(key, regs, GuestExit::Cpuid { leaf: cpuid::FEATURES, subleaf: 0 });
    assert_eq!(last(&e).gprs[0], 0x5ff);
    // A fast hypercall: HvGetPartitionId is not fast (INVALID_HYPERCALL_INPUT in RAX).
    let mut hc = regs;
    hc.gprs[1] = Control::fast(call::GET_PARTITION_ID).raw();
    e.m.vp_exit(key, hc, GuestExit::Vmcall { inst_len: 3 });
    assert_eq!(last(&e).gprs[0], u64::from(HvStatus::INVALID_HYPERCALL_INPUT.0));
    // From CPL 3: #UD.
    hc.cpl = 3;
    hc.rip = 0x203;
    e.m.vp_exit(key, hc, GuestExit::Vmcall { inst_len: 3 });
    assert_eq!(last(&e).rip, 0x200);
    assert_eq!(e.m.platform.interrupts.last(), Some(&(key, 6)));
}

#[test]
fn ports_messages_and_buffers() {
    let mut e = Env::new();
    let id = e.active_child(8);
    let root = e.root;
    // The root's port, the child's connection.
    let port = CreatePortIn {
        port_partition_id: root,
        port_id: 7,
        padding: 0,
        connection_partition_id: id,
        port_info: PortInfo::message(1, 0),
    };
    let header = WithdrawMemoryIn { partition_id: root, ..Default::default() }.to_bytes();
    let (r, _) = e.raw(Control::rep(call::WITHDRAW_MEMORY, 3, 0).raw(), &header, 24);
    assert_eq!((r.status, r.reps_completed), (HvStatus::SUCCESS, 3));
    assert_eq!(e.call(call::CREATE_PORT, &port.to_bytes()), HvStatus::INSUFFICIENT_MEMORY);
    e.deposit(root, 2);
    assert_eq!(e.call(call::CREATE_PORT, &port.to_bytes()), HvStatus::SUCCESS);
    assert_eq!(e.call(call::CREATE_PORT, &port.to_bytes()), HvStatus::INVALID_PORT_ID);
    let bad = CreatePortIn { port_id: 1 << 24, ..port };
    assert_eq!(e.call(call::CREATE_PORT, &bad.to_bytes()), HvStatus::INVALID_PORT_ID);
    let bad = CreatePortIn { port_id: 8, port_info: PortInfo::message(0, 0), ..port };
    assert_eq!(e.call(call::CREATE_PORT, &bad.to_bytes()), HvStatus::INVALID_PARAMETER);
    let bad = CreatePortIn { port_id: 8, port_info: PortInfo::event(1, 0, 2040, 9), ..port };
    assert_eq!(e.call(call::CREATE_PORT, &bad.to_bytes()), HvStatus::INVALID_PARAMETER);
    let bad = CreatePortIn { port_id: 8, port_info: PortInfo::message(1, 3), ..port };
    assert_eq!(e.call(call::CREATE_PORT, &bad.to_bytes()), HvStatus::INVALID_VP_INDEX);
    let bad = CreatePortIn { port_id: 8, connection_partition_id: root, ..port };
    assert_eq!(e.call(call::CREATE_PORT, &bad.to_bytes()), HvStatus::INVALID_PARTITION_ID);
    let connect = ConnectPortIn {
        connection_partition_id: id,
        connection_id: 3,
        padding: 0,
        port_partition_id: root,
        port_id: 7,
        padding2: 0,
        connection_info: ConnectionInfo::new(port_type::MESSAGE),
    };
    assert_eq!(e.call(call::CONNECT_PORT, &connect.to_bytes()), HvStatus::SUCCESS);
    let again = ConnectPortIn { connection_id: 4, ..connect };
    assert_eq!(e.call(call::CONNECT_PORT, &again.to_bytes()), HvStatus::INVALID_PORT_ID);
    // The child posts (it needs PostMessages).
    let child = Caller { partition: id, vp: Some(0), space: Space::Guest };
    let page = e.pages(1)[0];
    assert_eq!(e.map(id, 0x20, map_flags::ALL, &[page]).status, HvStatus::SUCCESS);
    let post = PostMessageIn { connection_id: 3, padding: 0, message_type: 0x55, payload_size: 4 }.to_bytes();
    let offset = page * PAGE - BASE;
    e.m.platform.mem_write(root, offset, &post);
    e.m.platform.mem_write(root, offset + 16, b"ping");
    let c = Control::simple(call::POST_MESSAGE).raw();
    assert_eq!(e.m.hypercall(child, c, 0x20000, 0).status, HvStatus::ACCESS_DENIED);
    let set = SetPartitionPropertyIn {
        partition_id: id,
        property_code: property::PRIVILEGE_FLAGS,
        padding: 0,
        property_value: privilege::CHILD_DEFAULT | privilege::POST_MESSAGES,
    };
    assert_eq!(e.call(call::SET_PARTITION_PROPERTY, &set.to_bytes()), HvStatus::SUCCESS);
    for i in 0..17 {
        assert_eq!(e.m.hypercall(child, c, 0x20000, 0).status, HvStatus::SUCCESS, "post {i}");
    }
    assert_eq!(e.m.hypercall(child, c, 0x20000, 0).status, HvStatus::INSUFFICIENT_BUFFERS);
    let msg = e.root_message(1);
    assert_eq!((msg.header.message_type, msg.header.payload_size, msg.header.origination_id), (0x55, 4, 7));
    assert_eq!(&msg.payload[..4], b"ping");
    assert_eq!(msg.header.message_flags & 1, 1);
    let prop = GetPortPropertyIn { partition_id: root, port_id: 7, padding: 0, property_code: 0, padding2: 0 };
    assert_eq!(e.call_out(call::GET_PORT_PROPERTY, &prop.to_bytes()), (HvStatus::SUCCESS, 16));
    // The root empties the slot and asks for the next.
    e.m.platform.synic_write(root, 256, &[0; 4]);
    assert_eq!(e.m.root_end_of_message(root, 1), HvStatus::SUCCESS);
    assert_eq!(e.root_message(1).header.message_type, 0x55);
    assert_eq!(e.call_out(call::GET_PORT_PROPERTY, &prop.to_bytes()), (HvStatus::SUCCESS, 15));
    assert_eq!(e.m.hypercall(child, c, 0x20000, 0).status, HvStatus::SUCCESS);
    // Bad type and size.
    e.m.platform.mem_write(root, offset + 8, &0x8000_0001u32.to_le_bytes());
    assert_eq!(e.m.hypercall(child, c, 0x20000, 0).status, HvStatus::INVALID_PARAMETER);
    e.m.platform.mem_write(root, offset + 8, &0x55u32.to_le_bytes());
    e.m.platform.mem_write(root, offset + 12, &241u32.to_le_bytes());
    assert_eq!(e.m.hypercall(child, c, 0x20000, 0).status, HvStatus::INVALID_PARAMETER);
    // The port goes: the connection is useless.
    e.m.platform.mem_write(root, offset + 12, &4u32.to_le_bytes());
    let del = DeletePortIn { port_partition_id: root, port_id: 7, reserved: 0 }.to_bytes();
    assert_eq!(e.call(call::DELETE_PORT, &del), HvStatus::SUCCESS);
    assert_eq!(e.m.hypercall(child, c, 0x20000, 0).status, HvStatus::INVALID_PORT_ID);
    let c = Control::fast(call::SIGNAL_EVENT).raw();
    let sig = SignalEventIn { connection_id: 99, flag_number: 0, reserved: 0 }.to_bytes();
    let set2 = SetPartitionPropertyIn { property_value: privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS, ..set };
    assert_eq!(e.call(call::SET_PARTITION_PROPERTY, &set2.to_bytes()), HvStatus::SUCCESS);
    assert_eq!(e.m.hypercall(child, c, u64::from_le_bytes(sig), 0).status, HvStatus::INVALID_CONNECTION_ID);
}

#[test]
fn signal_event_both_ways() {
    let mut e = Env::new();
    let id = e.active_child(8);
    let root = e.root;
    e.deposit(root, 4);
    assert_eq!(e.create_vp(id, 0), HvStatus::SUCCESS);
    // Child -> root: event port on the root, SINT 2, flags 100..110.
    let port = CreatePortIn {
        port_partition_id: root,
        port_id: 1,
        padding: 0,
        connection_partition_id: id,
        port_info: PortInfo::event(2, 0, 100, 10),
    };
    assert_eq!(e.call(call::CREATE_PORT, &port.to_bytes()), HvStatus::SUCCESS);
    let connect = ConnectPortIn {
        connection_partition_id: id,
        connection_id: 1,
        padding: 0,
        port_partition_id: root,
        port_id: 1,
        padding2: 0,
        connection_info: ConnectionInfo::new(port_type::EVENT),
    };
    assert_eq!(e.call(call::CONNECT_PORT, &connect.to_bytes()), HvStatus::SUCCESS);
    let set = SetPartitionPropertyIn {
        partition_id: id,
        property_code: property::PRIVILEGE_FLAGS,
        padding: 0,
        property_value: privilege::CHILD_DEFAULT | privilege::SIGNAL_EVENTS,
    };
    assert_eq!(e.call(call::SET_PARTITION_PROPERTY, &set.to_bytes()), HvStatus::SUCCESS);
    let child = Caller { partition: id, vp: Some(0), space: Space::Guest };
    let c = Control::fast(call::SIGNAL_EVENT).raw();
    let sig =
        |flag: u16| u64::from_le_bytes(SignalEventIn { connection_id: 1, flag_number: flag, reserved: 0 }.to_bytes());
    assert_eq!(e.m.hypercall(child, c, sig(3), 0).status, HvStatus::SUCCESS);
    assert_eq!(e.m.platform.notified[&root], 1);
    assert_eq!(e.m.platform.synic[&root][4096 + 2 * 256 + 103 / 8], 1 << (103 % 8));
    // Already set: no new notification.
    assert_eq!(e.m.hypercall(child, c, sig(3), 0).status, HvStatus::SUCCESS);
    assert_eq!(e.m.platform.notified[&root], 1);
    assert_eq!(e.m.hypercall(child, c, sig(10), 0).status, HvStatus::INVALID_PARAMETER);
    // Root -> child: the child's SynIC is not ready.
    let port = CreatePortIn {
        port_partition_id: id,
        port_id: 2,
        padding: 0,
        connection_partition_id: root,
        port_info: PortInfo::event(3, 0, 0, 1),
    };
    assert_eq!(e.call(call::CREATE_PORT, &port.to_bytes()), HvStatus::SUCCESS);
    let connect = ConnectPortIn {
        connection_partition_id: root,
        connection_id: 9,
        padding: 0,
        port_partition_id: id,
        port_id: 2,
        padding2: 0,
        connection_info: ConnectionInfo::new(port_type::EVENT),
    };
    assert_eq!(e.call(call::CONNECT_PORT, &connect.to_bytes()), HvStatus::SUCCESS);
    let sig9 = SignalEventIn { connection_id: 9, flag_number: 0, reserved: 0 }.to_bytes();
    assert_eq!(e.call(call::SIGNAL_EVENT, &sig9), HvStatus::INVALID_SYNIC_STATE);
    // Enable the child's SynIC: SIEF at GPA page 0x30, SINT3 vector 0x50 unmasked.
    let page = e.pages(1)[0];
    assert_eq!(e.map(id, 0x30, map_flags::ALL, &[page]).status, HvStatus::SUCCESS);
    assert_eq!(e.set_regs(id, 0, &[(reg::EXPLICIT_SUSPEND, 0)]).status, HvStatus::SUCCESS);
    let key = e.vp_key(id, 0);
    let regs = e.m.platform.resumed[0].1;
    let wr = |e: &mut Env, m: u32, v: u64| {
        e.m.vp_exit(key, regs, GuestExit::Msr { msr: m, write: true, value: v, inst_len: 2 })
    };
    wr(&mut e, msr::SCONTROL, 1);
    wr(&mut e, msr::SIEFP, 0x30001);
    assert_eq!(e.call(call::SIGNAL_EVENT, &sig9), HvStatus::INVALID_SYNIC_STATE);
    wr(&mut e, msr::SINT0 + 3, 0x50);
    assert_eq!(e.call(call::SIGNAL_EVENT, &sig9), HvStatus::SUCCESS);
    assert_eq!(e.m.platform.interrupts.last(), Some(&(key, 0x50)));
    let mut b = [0u8; 1];
    e.m.platform.mem_read(root, page * PAGE - BASE + 3 * 256, &mut b);
    assert_eq!(b[0], 1);
    // A SINT vector below 16 is #GP.
    wr(&mut e, msr::SINT0 + 4, 0x5);
    assert_eq!(e.m.platform.interrupts.last(), Some(&(key, 13)));
}

#[test]
fn removing_a_root_frees_everything() {
    let mut e = Env::new();
    let id = e.active_child(8);
    assert_eq!(e.create_vp(id, 0), HvStatus::SUCCESS);
    let page = e.pages(1)[0];
    assert_eq!(e.map(id, 0, map_flags::ALL, &[page]).status, HvStatus::SUCCESS);
    let root = e.root;
    e.m.remove_root(root);
    assert!(e.m.partition(root).is_none() && e.m.partition(id).is_none());
    assert_eq!(e.m.platform.destroyed.len(), 1);
    assert!(e.m.platform.maps.is_empty());
    assert!(e.m.vp_keys.is_empty());
}

/// Hostile input: random input values, blocks, ids and guest exits must
/// never panic the manager, and every status is one of TLFS' codes.
#[test]
fn random_calls_never_panic() {
    let mut e = Env::new();
    let id = e.active_child(64);
    assert_eq!(e.create_vp(id, 0), HvStatus::SUCCESS);
    let page = e.pages(1)[0];
    assert_eq!(e.map(id, 0, map_flags::ALL, &[page]).status, HvStatus::SUCCESS);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let ids = [0, 1, e.root, id, id + 1, u64::MAX, 12345];
    for round in 0..8_000u32 {
        let code = match next() % 4 {
            0 => (next() % 0x70) as u16,
            _ => 0x40 + (next() % 0x1e) as u16,
        };
        let mut control = u64::from(code);
        if next() % 4 == 0 {
            control |= Control::FAST;
        }
        if next() % 3 == 0 {
            control |= (next() % 40) << 32 | (next() % 8) << 48;
        }
        if next() % 16 == 0 {
            control |= next() & Control::RESERVED;
        }
        let mut input = vec![0u8; 512];
        for chunk in input.chunks_mut(8) {
            let v = match next() % 4 {
                0 => ids[(next() % ids.len() as u64) as usize],
                1 => next() % 64,
                2 => BASE / PAGE + 16 + next() % 64,
                _ => next(),
            };
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        let r = if round % 3 == 0 {
            let child = Caller { partition: id, vp: Some(0), space: Space::Guest };
            e.m.platform.mem_write(e.root, page * PAGE - BASE, &input);
            let (a, b) = if next() % 2 == 0 { (next() % 0x2000, next() % 0x2000) } else { (next(), next()) };
            e.m.hypercall(child, control, a & !7, b & !7)
        } else {
            e.raw(control, &input, 0).0
        };
        assert!(r.status.name().is_some(), "status {:?} for {control:#x}", r.status);
        if round % 7 == 0 {
            let key = next() % 4;
            let regs = VcpuRegs { rip: next(), cr0: next() % 2, cpl: (next() % 4) as u8, ..Default::default() };
            let exit = match next() % 6 {
                0 => GuestExit::Io { port: next() as u16, size: (next() % 5) as u8, input: next() % 2 == 0, data: 0 },
                1 => GuestExit::Msr {
                    msr: 0x4000_0000 + (next() % 0xa0) as u32,
                    write: next() % 2 == 0,
                    value: next(),
                    inst_len: 2,
                },
                2 => GuestExit::Cpuid { leaf: next() as u32, subleaf: 0 },
                3 => GuestExit::Exception { vector: (next() % 32) as u8, error_code: None, cr2: 0 },
                4 => GuestExit::Vmcall { inst_len: 3 },
                _ => GuestExit::Failed(-1),
            };
            e.m.vp_exit(key, regs, exit);
        }
    }
    e.m.remove_root(e.root);
    assert!(e.m.vp_keys.is_empty());
}
