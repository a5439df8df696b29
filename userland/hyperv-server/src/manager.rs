//! The partition manager: every partition of every root, their pools,
//! VPs, ports and connections, and the hypercall entry with the common
//! checks of TLFS 2.0A §4 (reference §1).
//!
//! Everything runs on the server's main thread: client requests, VP exits
//! (their threads only run the VCPU and report), so the manager needs no
//! lock. Partition ids come from one counter starting at 1 and are never
//! reused.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use hv::abi::*;
use hv::proto::HV_ROOT_MEMORY_SIZE;

use crate::platform::{Platform, VcpuRegs};

/// The deepest a partition may be: roots are depth 1, their children 2.
pub const MAX_DEPTH: u8 = 2;
/// VPs a child partition may have (indices 0..MAX_VPS).
pub const MAX_VPS: u32 = 8;
/// Guest-physical pages of a child (the kernel's `MX_GUEST_PHYS_SIZE`, 2^48 bytes).
pub const CHILD_GPA_PAGES: u64 = 1 << 36;
/// Pages of root memory.
pub const ROOT_PAGES: u64 = HV_ROOT_MEMORY_SIZE / PAGE;
/// Partitions the server keeps at once (an implementation limit: NO_RESOURCES).
pub const MAX_PARTITIONS: usize = 1024;
pub(crate) const PAGE: u64 = 4096;

/// Pool costs (pages), as the README's table.
pub mod cost {
    pub const PARTITION: u64 = 1;
    pub const INITIALIZE: u64 = 16;
    pub const VP: u64 = 4;
    pub const GPA_BLOCK: u64 = 1;
    pub const PORT: u64 = 1;
    pub const CONNECTION: u64 = 1;
    pub const CPUID_INTERCEPT: u64 = 1;
}
/// Pages of GPA space one mapping charge covers (2 MiB).
pub const GPA_BLOCK_PAGES: u64 = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Uninitialized,
    Active,
    Finalized,
}

/// A partition's memory pool: deposited pages (root memory page indices)
/// and how many of them objects use.
#[derive(Debug, Default)]
pub struct Pool {
    pub pages: BTreeSet<u64>,
    pub in_use: u64,
}

impl Pool {
    pub fn available(&self) -> u64 {
        self.pages.len() as u64 - self.in_use.min(self.pages.len() as u64)
    }

    pub(crate) fn charge(&mut self, pages: u64) -> Result<(), HvStatus> {
        if self.available() < pages {
            return Err(HvStatus::INSUFFICIENT_MEMORY);
        }
        self.in_use += pages;
        Ok(())
    }

    pub(crate) fn refund(&mut self, pages: u64) {
        self.in_use = self.in_use.saturating_sub(pages);
    }
}

/// A queued SynIC message; `port` names the port whose buffer it holds.
#[derive(Clone, Copy, Debug)]
pub struct Queued {
    pub message: HvMessage,
    pub port: Option<(u64, u32)>,
}

/// A VP's SynIC registers and message queues.
#[derive(Debug)]
pub struct VpSynic {
    pub scontrol: u64,
    pub siefp: u64,
    pub simp: u64,
    pub sints: [u64; 16],
    pub queues: [VecDeque<Queued>; 16],
}

impl Default for VpSynic {
    fn default() -> Self {
        VpSynic { scontrol: 0, siefp: 0, simp: 0, sints: [hv::abi::msr::SINT_RESET; 16], queues: Default::default() }
    }
}

/// Why a stopped VP is waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Nothing to finish: run on when no suspend bit is set.
    None,
    /// An intercepted `IN`: if the root clears InterceptSuspend without
    /// moving RIP the instruction runs again (and intercepts again).
    Intercept,
}

pub struct Vp<P: Platform> {
    pub index: u32,
    pub explicit_suspend: bool,
    pub intercept_suspend: bool,
    /// Stopped: its thread waits and `regs` are the VP's registers.
    pub stopped: bool,
    pub regs: VcpuRegs,
    pub synic: VpSynic,
    pub handle: Option<P::Vp>,
    /// The thread's key (exits come back with it).
    pub key: u64,
}

/// A port: the receiving end.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    pub info: PortInfo,
    pub connection_partition: u64,
    /// Messages holding one of its 16 buffers (queued, not yet in a slot).
    pub queued: u32,
    /// Messages posted through it.
    pub posted: u64,
}

/// A connection: the sending end.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    pub port_partition: u64,
    pub port_id: u32,
}

/// The intercepts installed on a child.
#[derive(Debug, Default)]
pub struct Intercepts {
    pub io: BTreeMap<u16, u32>,
    pub msr: u32,
    pub cpuid: BTreeSet<u32>,
    pub exception: BTreeMap<u8, u32>,
    /// Kernel traps already set (they stay after removal).
    pub io_trapped: BTreeSet<u16>,
    pub exception_trapped: BTreeSet<u8>,
}

/// A GPA mapping of a child: root memory page index and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpaMapping {
    pub index: u64,
    pub flags: u32,
}

pub struct Partition<P: Platform> {
    pub id: u64,
    pub parent: Option<u64>,
    /// The root partition (client) this one belongs to (itself for a root).
    pub root: u64,
    pub depth: u8,
    pub state: State,
    pub privileges: u64,
    /// Children in creation order.
    pub children: Vec<u64>,
    pub pool: Pool,
    pub ports: BTreeMap<u32, Port>,
    pub connections: BTreeMap<u32, Connection>,
    // Children only.
    pub guest: Option<P::Guest>,
    pub gpa: BTreeMap<u64, GpaMapping>,
    pub gpa_blocks: BTreeMap<u64, u32>,
    /// Boxed: B-tree nodes stay small heap blocks.
    pub vps: BTreeMap<u32, Box<Vp<P>>>,
    pub intercepts: Intercepts,
    pub guest_os_id: u64,
    pub hypercall_msr: u64,
    // Roots only.
    pub root_queues: [VecDeque<Queued>; 16],
    /// Root memory pages (indices) in some pool of this root's partitions.
    pub deposited: BTreeMap<u64, u64>,
    /// Root memory pages (indices) mapped into children: how many times.
    pub mapped: BTreeMap<u64, u32>,
}

impl<P: Platform> Partition<P> {
    /// A partition with no parent yet, active, with every privilege.
    pub(crate) fn new_root_like(id: u64, root: u64, depth: u8) -> Self {
        Partition::new(id, None, root, depth, privilege::ALL, State::Active)
    }

    fn new(id: u64, parent: Option<u64>, root: u64, depth: u8, privileges: u64, state: State) -> Self {
        Partition {
            id,
            parent,
            root,
            depth,
            state,
            privileges,
            children: Vec::new(),
            pool: Pool::default(),
            ports: BTreeMap::new(),
            connections: BTreeMap::new(),
            guest: None,
            gpa: BTreeMap::new(),
            gpa_blocks: BTreeMap::new(),
            vps: BTreeMap::new(),
            intercepts: Intercepts::default(),
            guest_os_id: 0,
            hypercall_msr: 0,
            root_queues: Default::default(),
            deposited: BTreeMap::new(),
            mapped: BTreeMap::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }

    pub fn has(&self, privilege: u64) -> bool {
        self.privileges & privilege != 0
    }
}

/// Where a caller's hypercall addresses live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// A root: addresses are its virtual addresses; its memory starts at `base`.
    Root { base: u64 },
    /// A guest: addresses are guest-physical.
    Guest,
}

/// Who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub partition: u64,
    /// The calling VP of a guest.
    pub vp: Option<u32>,
    pub space: Space,
}

/// What one hypercall did.
pub(crate) struct Outcome {
    pub status: HvStatus,
    /// Rep elements completed from the start index.
    pub done: u16,
}

impl From<HvStatus> for Outcome {
    fn from(status: HvStatus) -> Self {
        Outcome { status, done: 0 }
    }
}

impl From<Result<(), HvStatus>> for Outcome {
    fn from(r: Result<(), HvStatus>) -> Self {
        Outcome { status: r.err().unwrap_or(HvStatus::SUCCESS), done: 0 }
    }
}

/// The decoded input of one call.
pub(crate) struct Call<'a> {
    pub caller: Caller,
    pub control: Control,
    pub input: &'a [u8],
    pub output: &'a mut [u8],
}

impl Call<'_> {
    /// Rep elements to process: start..count.
    pub fn reps(&self) -> core::ops::Range<usize> {
        usize::from(self.control.rep_start)..usize::from(self.control.rep_count)
    }
}

pub struct Manager<P: Platform> {
    pub platform: P,
    next_id: u64,
    /// Boxed: B-tree nodes stay small heap blocks (no mapping of their own
    /// that could outlive a client).
    pub(crate) parts: BTreeMap<u64, Box<Partition<P>>>,
    next_vp_key: u64,
    /// VP key -> (partition, VP index).
    pub(crate) vp_keys: BTreeMap<u64, (u64, u32)>,
}

impl<P: Platform> Manager<P> {
    pub fn new(platform: P) -> Self {
        Manager { platform, next_id: 1, parts: BTreeMap::new(), next_vp_key: 1, vp_keys: BTreeMap::new() }
    }

    pub(crate) fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn new_vp_key(&mut self) -> u64 {
        let key = self.next_vp_key;
        self.next_vp_key += 1;
        key
    }

    /// A new root partition (a client connected): active, every privilege.
    pub fn create_root(&mut self) -> Result<u64, HvStatus> {
        if self.parts.len() >= MAX_PARTITIONS {
            return Err(HvStatus::NO_RESOURCES);
        }
        let id = self.new_id();
        self.parts.insert(id, Box::new(Partition::new(id, None, id, 1, privilege::ALL, State::Active)));
        Ok(id)
    }

    /// The client of root `root` went away: everything it created goes.
    pub fn remove_root(&mut self, root: u64) {
        let Some(p) = self.parts.get(&root) else { return };
        let children = p.children.clone();
        for child in children {
            self.teardown(child);
            self.parts.remove(&child);
        }
        self.teardown(root);
        self.parts.remove(&root);
    }

    pub fn partition(&self, id: u64) -> Option<&Partition<P>> {
        self.parts.get(&id).map(|p| &**p)
    }

    pub(crate) fn part(&self, id: u64) -> Result<&Partition<P>, HvStatus> {
        self.parts.get(&id).map(|p| &**p).ok_or(HvStatus::INVALID_PARTITION_ID)
    }

    pub(crate) fn part_mut(&mut self, id: u64) -> Result<&mut Partition<P>, HvStatus> {
        self.parts.get_mut(&id).map(|p| &mut **p).ok_or(HvStatus::INVALID_PARTITION_ID)
    }

    /// The partition an id argument names: SELF is the caller; INVALID and
    /// unknown ids are INVALID_PARTITION_ID.
    pub(crate) fn target(&self, caller: &Caller, id: u64) -> Result<u64, HvStatus> {
        let id = if id == PARTITION_ID_SELF { caller.partition } else { id };
        if id == PARTITION_ID_INVALID || !self.parts.contains_key(&id) {
            return Err(HvStatus::INVALID_PARTITION_ID);
        }
        Ok(id)
    }

    pub(crate) fn is_parent(&self, caller: u64, target: u64) -> bool {
        self.parts.get(&target).is_some_and(|p| p.parent == Some(caller))
    }

    pub(crate) fn privileges(&self, id: u64) -> u64 {
        self.parts.get(&id).map_or(0, |p| p.privileges)
    }

    /// Frees everything a partition holds except its pool and its place in
    /// the hierarchy (finalize, and the end of a client).
    pub(crate) fn teardown(&mut self, id: u64) {
        let Some(p) = self.parts.get_mut(&id) else { return };
        let vps: Vec<Box<Vp<P>>> = core::mem::take(&mut p.vps).into_values().collect();
        let mappings: Vec<(u64, GpaMapping)> = core::mem::take(&mut p.gpa).into_iter().collect();
        p.gpa_blocks.clear();
        p.intercepts = Intercepts::default();
        let ports: Vec<u32> = p.ports.keys().copied().collect();
        p.connections.clear();
        p.guest_os_id = 0;
        p.hypercall_msr = 0;
        p.root_queues = Default::default();
        let guest = p.guest.take();
        let root = p.root;
        for vp in vps {
            self.vp_keys.remove(&vp.key);
            if let Some(h) = vp.handle {
                self.platform.vp_destroy(h);
            }
        }
        for (gpa, m) in &mappings {
            if let Some(g) = guest.as_ref() {
                self.platform.guest_unmap(g, *gpa);
            }
            self.unmark_mapped(root, m.index);
        }
        for port in ports {
            self.drop_port_messages(id, port);
        }
        if let Some(p) = self.parts.get_mut(&id) {
            p.ports.clear();
        }
        drop(guest);
    }

    pub(crate) fn unmark_mapped(&mut self, root: u64, index: u64) {
        if let Some(r) = self.parts.get_mut(&root) {
            if let Some(n) = r.mapped.get_mut(&index) {
                *n -= 1;
                if *n == 0 {
                    r.mapped.remove(&index);
                }
            }
        }
    }

    // ------------------------------------------------------------ addresses

    /// Where `len` bytes at `addr` of the caller's space are: (root, offset
    /// into its memory). Misaligned, straddling a page, or outside the space
    /// is INVALID_ALIGNMENT.
    pub(crate) fn resolve(&self, caller: &Caller, addr: u64, len: usize) -> Result<(u64, u64), HvStatus> {
        if !addr.is_multiple_of(8) || (addr % PAGE) + len as u64 > PAGE {
            return Err(HvStatus::INVALID_ALIGNMENT);
        }
        let p = self.part(caller.partition).map_err(|_| HvStatus::INVALID_ALIGNMENT)?;
        match caller.space {
            Space::Root { base } => {
                let offset = root_offset(base, addr).ok_or(HvStatus::INVALID_ALIGNMENT)?;
                Ok((p.root, offset))
            }
            Space::Guest => {
                let m = p.gpa.get(&(addr / PAGE)).ok_or(HvStatus::INVALID_ALIGNMENT)?;
                Ok((p.root, m.index * PAGE + addr % PAGE))
            }
        }
    }

    /// Guest page `gpa_page` of child `id`: (root, offset of the page).
    pub(crate) fn guest_page(&self, id: u64, gpa_page: u64) -> Option<(u64, u64)> {
        let p = self.parts.get(&id)?;
        let m = p.gpa.get(&gpa_page)?;
        Some((p.root, m.index * PAGE))
    }

    /// Reads guest-physical memory of child `id` (may cross pages).
    pub(crate) fn guest_read(&self, id: u64, gpa: u64, out: &mut [u8]) -> bool {
        let mut done = 0;
        while done < out.len() {
            let at = gpa.wrapping_add(done as u64);
            let n = ((PAGE - at % PAGE) as usize).min(out.len() - done);
            let Some((root, page)) = self.guest_page(id, at / PAGE) else { return false };
            if !self.platform.mem_read(root, page + at % PAGE, &mut out[done..done + n]) {
                return false;
            }
            done += n;
        }
        true
    }

    /// Writes guest-physical memory of child `id` (within one page).
    pub(crate) fn guest_write(&mut self, id: u64, gpa: u64, bytes: &[u8]) -> bool {
        if (gpa % PAGE) as usize + bytes.len() > PAGE as usize {
            return false;
        }
        let Some((root, page)) = self.guest_page(id, gpa / PAGE) else { return false };
        self.platform.mem_write(root, page + gpa % PAGE, bytes)
    }

    // ------------------------------------------------------------ the hypercall entry

    /// Runs one hypercall for `caller`: `control` is the input value;
    /// `input`/`output` the block addresses (memory convention) or the two
    /// input qwords (fast). Returns the result value.
    pub fn hypercall(&mut self, caller: Caller, control: u64, input: u64, output: u64) -> HvResult {
        let c = Control::from_raw(control);
        let Some(shape) = CallShape::of(c.code) else {
            return HvResult::new(HvStatus::INVALID_HYPERCALL_CODE, 0);
        };
        let bad_input = HvResult::new(HvStatus::INVALID_HYPERCALL_INPUT, 0);
        if Control::has_reserved_bits(control) || (c.fast && !shape.fast) {
            return bad_input;
        }
        if shape.rep {
            if c.rep_count == 0 || c.rep_start >= c.rep_count {
                return bad_input;
            }
        } else if c.rep_count != 0 || c.rep_start != 0 {
            return bad_input;
        }

        let mut in_buf = [0u8; PAGE as usize];
        let in_len = shape.input_len(c.rep_count);
        if c.fast {
            in_buf[..8].copy_from_slice(&input.to_le_bytes());
            in_buf[8..16].copy_from_slice(&output.to_le_bytes());
        } else if in_len > 0 {
            let (root, offset) = match self.resolve(&caller, input, in_len) {
                Ok(r) => r,
                Err(s) => return HvResult::new(s, 0),
            };
            // `resolve` keeps `in_len` within a page; `get` keeps that from
            // being the only thing between a table edit and a panic.
            let Some(into) = in_buf.get_mut(..in_len) else { return HvResult::new(HvStatus::INVALID_ALIGNMENT, 0) };
            if !self.platform.mem_read(root, offset, into) {
                return HvResult::new(HvStatus::INVALID_ALIGNMENT, 0);
            }
        }
        let out_len = shape.output_len(c.rep_count);
        let out_at = if !c.fast && out_len > 0 {
            match self.resolve(&caller, output, out_len) {
                Ok(r) => Some(r),
                Err(s) => return HvResult::new(s, 0),
            }
        } else {
            None
        };
        let mut out_buf = [0u8; PAGE as usize];
        let in_len = if c.fast { 16 } else { in_len };
        let (Some(input), Some(output)) = (in_buf.get(..in_len), out_buf.get_mut(..out_len)) else {
            return HvResult::new(HvStatus::INVALID_ALIGNMENT, 0);
        };
        let outcome = self.dispatch(Call { caller, control: c, input, output });
        if let Some((root, offset)) = out_at {
            self.platform.mem_write(root, offset, output);
        }
        let reps = if shape.rep { c.rep_start + outcome.done } else { 0 };
        HvResult::new(outcome.status, reps)
    }

    fn dispatch(&mut self, call: Call<'_>) -> Outcome {
        match call.control.code {
            call::CREATE_PARTITION => self.create_partition(call).into(),
            call::INITIALIZE_PARTITION => self.initialize_partition(call).into(),
            call::FINALIZE_PARTITION => self.finalize_partition(call).into(),
            call::DELETE_PARTITION => self.delete_partition(call).into(),
            call::GET_PARTITION_PROPERTY => self.get_partition_property(call).into(),
            call::SET_PARTITION_PROPERTY => self.set_partition_property(call).into(),
            call::GET_PARTITION_ID => self.get_partition_id(call).into(),
            call::GET_NEXT_CHILD_PARTITION => self.get_next_child_partition(call).into(),
            call::DEPOSIT_MEMORY => self.deposit_memory(call),
            call::WITHDRAW_MEMORY => self.withdraw_memory(call),
            call::GET_MEMORY_BALANCE => self.get_memory_balance(call).into(),
            call::MAP_GPA_PAGES => self.map_gpa_pages(call),
            call::UNMAP_GPA_PAGES => self.unmap_gpa_pages(call),
            call::INSTALL_INTERCEPT => self.install_intercept(call).into(),
            call::CREATE_VP => self.create_vp(call).into(),
            call::DELETE_VP => self.delete_vp(call).into(),
            call::GET_VP_REGISTERS => self.get_vp_registers(call),
            call::SET_VP_REGISTERS => self.set_vp_registers(call),
            call::CREATE_PORT => self.create_port(call).into(),
            call::DELETE_PORT => self.delete_port(call).into(),
            call::CONNECT_PORT => self.connect_port(call).into(),
            call::GET_PORT_PROPERTY => self.get_port_property(call).into(),
            call::DISCONNECT_PORT => self.disconnect_port(call).into(),
            call::POST_MESSAGE => self.post_message(call).into(),
            call::SIGNAL_EVENT => self.signal_event(call).into(),
            _ => HvStatus::INVALID_HYPERCALL_CODE.into(),
        }
    }
}

/// The offset into a root's memory of its virtual address `addr`, given the
/// memory's base (decision 11).
pub(crate) fn root_offset(base: u64, addr: u64) -> Option<u64> {
    if !base.is_multiple_of(PAGE) {
        return None;
    }
    let offset = addr.checked_sub(base)?;
    (offset < HV_ROOT_MEMORY_SIZE).then_some(offset)
}

/// The root memory page index of a root's page number.
pub(crate) fn root_page_index(base: u64, page: u64) -> Option<u64> {
    let addr = page.checked_mul(PAGE)?;
    root_offset(base, addr).map(|o| o / PAGE)
}

/// A root's page number of a root memory page index.
pub(crate) fn root_page_number(base: u64, index: u64) -> u64 {
    base / PAGE + index
}
