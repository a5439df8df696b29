//! The suite's context: the root partition (our client connection), scratch
//! pages for hypercall inputs and outputs, a page allocator over the root
//! memory, and one helper per hypercall that lays its input out byte by byte
//! (through `hv::abi`'s layouts) and issues it through the raw
//! `Root::hypercall`, so every case controls the exact bytes and sees the
//! exact result value.

use alloc::vec::Vec;

use hv::abi::{self, call, Control, HvResult, HvStatus, ProximityDomainInfo};
use hv::client::Root;

use crate::mem;

pub const PAGE: u64 = 4096;

/// Anything a status can be taken from (for `expect_status!`).
pub trait HasStatus {
    fn hv_status(&self) -> HvStatus;
}

impl HasStatus for HvStatus {
    fn hv_status(&self) -> HvStatus {
        *self
    }
}

impl HasStatus for HvResult {
    fn hv_status(&self) -> HvStatus {
        self.status
    }
}

impl<T> HasStatus for (HvResult, T) {
    fn hv_status(&self) -> HvStatus {
        self.0.status
    }
}

pub fn status_of<S: HasStatus>(s: S) -> HvStatus {
    s.hv_status()
}

/// The suite's state.
pub struct Ctx {
    pub root: Root,
    /// Our partition id (from the server's Hello).
    pub root_id: u64,
    /// Four contiguous scratch pages: input at `scratch`, output at `scratch + 2 pages`.
    pub scratch: u64,
}

impl Ctx {
    pub fn new(root: Root) -> Result<Ctx, &'static str> {
        let root_id = root.partition_id();
        let scratch = root.alloc_pages(4).ok_or("no root memory for the scratch pages")?;
        Ok(Ctx { root, root_id, scratch: scratch as u64 })
    }

    /// The input scratch page (the next page is scratch too).
    pub fn input_page(&self) -> u64 {
        self.scratch
    }

    /// The output scratch page (the next page is scratch too).
    pub fn output_page(&self) -> u64 {
        self.scratch + 2 * PAGE
    }

    /// Called between cases: nothing of a case outlives it but recycled pages.
    pub fn after_case(&self) {}

    // ------------------------------------------------------------ pages

    /// `n` root pages (page numbers), each zeroed.
    pub fn pages(&self, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.root.alloc_pages(1) {
                Some(addr) => out.push(addr as u64 / PAGE),
                None => break,
            }
        }
        for &p in &out {
            mem::fill(p * PAGE, PAGE as usize, 0);
        }
        out
    }

    /// `n` contiguous root pages: the address of the first.
    pub fn contiguous(&self, n: usize) -> Option<u64> {
        let addr = self.root.alloc_pages(n)? as u64;
        mem::fill(addr, n * PAGE as usize, 0);
        Some(addr)
    }

    /// Gives pages back for reuse (they must be in no pool and unmapped).
    pub fn recycle(&self, pages: &[u64]) {
        for &p in pages {
            self.root.free_pages((p * PAGE) as usize, 1);
        }
    }

    /// A page number just past the root memory (never ours).
    pub fn outside_page(&self) -> u64 {
        let (base, size) = self.root.memory();
        (base + size) as u64 / PAGE
    }

    // ------------------------------------------------------------ raw calls

    /// The raw hypercall: result value decoded.
    pub fn raw(&self, control: u64, input: u64, output: u64) -> HvResult {
        HvResult::from_raw(self.root.hypercall(control, input, output))
    }

    /// A call with `input` at the start of the input page; the output page
    /// is filled with 0xA5 first. Returns the result and `out_len` output bytes.
    pub fn call(&self, control: u64, input: &[u8], out_len: usize) -> (HvResult, Vec<u8>) {
        mem::write(self.input_page(), input);
        mem::fill(self.output_page(), PAGE as usize, 0xa5);
        let r = self.raw(control, self.input_page(), self.output_page());
        (r, mem::read(self.output_page(), out_len))
    }

    /// A simple call: input bytes, one qword of output.
    pub fn simple(&self, code: u16, input: &[u8]) -> (HvResult, u64) {
        let (r, out) = self.call(Control::simple(code).raw(), input, 8);
        (r, mem::qword(&out, 0))
    }

    /// A rep call over `elems` (each `elem_size` bytes in `elems`) from `start`.
    pub fn rep(
        &self,
        code: u16,
        header: &[u8],
        elems: &[u8],
        count: u16,
        start: u16,
        out_len: usize,
    ) -> (HvResult, Vec<u8>) {
        let mut input = Vec::from(header);
        input.extend_from_slice(elems);
        self.call(Control::rep(code, count, start).raw(), &input, out_len)
    }

    /// A fast call: RDX, R8 = `a`, `b`.
    pub fn fast(&self, code: u16, a: u64, b: u64) -> HvResult {
        self.raw(Control::fast(code).raw(), a, b)
    }

    // ------------------------------------------------------------ partitions

    pub fn create_partition_with(&self, flags: u64, prox: ProximityDomainInfo) -> (HvResult, u64) {
        let input = abi::CreatePartitionIn { flags, proximity_domain_info: prox }.to_bytes();
        self.simple(call::CREATE_PARTITION, &input)
    }

    pub fn create_partition(&self) -> (HvResult, u64) {
        self.create_partition_with(0, ProximityDomainInfo::ANY)
    }

    fn id_call(&self, code: u16, id: u64) -> HvResult {
        self.simple(code, &abi::PartitionIdIn { partition_id: id }.to_bytes()).0
    }

    pub fn initialize(&self, id: u64) -> HvResult {
        self.id_call(call::INITIALIZE_PARTITION, id)
    }

    pub fn finalize(&self, id: u64) -> HvResult {
        self.id_call(call::FINALIZE_PARTITION, id)
    }

    pub fn delete(&self, id: u64) -> HvResult {
        self.id_call(call::DELETE_PARTITION, id)
    }

    pub fn get_property(&self, id: u64, code: u32) -> (HvResult, u64) {
        let input = abi::GetPartitionPropertyIn { partition_id: id, property_code: code, padding: 0 }.to_bytes();
        self.simple(call::GET_PARTITION_PROPERTY, &input)
    }

    pub fn set_property(&self, id: u64, code: u32, value: u64) -> HvResult {
        let input =
            abi::SetPartitionPropertyIn { partition_id: id, property_code: code, padding: 0, property_value: value };
        self.simple(call::SET_PARTITION_PROPERTY, &input.to_bytes()).0
    }

    pub fn privileges(&self, id: u64) -> (HvResult, u64) {
        self.get_property(id, abi::property::PRIVILEGE_FLAGS)
    }

    pub fn set_privileges(&self, id: u64, mask: u64) -> HvResult {
        self.set_property(id, abi::property::PRIVILEGE_FLAGS, mask)
    }

    pub fn partition_id(&self) -> (HvResult, u64) {
        self.simple(call::GET_PARTITION_ID, &[])
    }

    pub fn next_child(&self, parent: u64, previous: u64) -> (HvResult, u64) {
        let input = abi::GetNextChildPartitionIn { parent_id: parent, previous_child_id: previous }.to_bytes();
        self.simple(call::GET_NEXT_CHILD_PARTITION, &input)
    }

    // ------------------------------------------------------------ pools

    pub fn deposit(&self, id: u64, pages: &[u64]) -> HvResult {
        let header = abi::DepositMemoryIn { partition_id: id }.to_bytes();
        self.rep(call::DEPOSIT_MEMORY, &header, &mem::qwords(pages), pages.len() as u16, 0, 0).0
    }

    /// Deposits `n` fresh pages; returns them.
    pub fn deposit_new(&self, id: u64, n: usize) -> Result<Vec<u64>, HvResult> {
        let pages = self.pages(n);
        let mut done = 0;
        for chunk in pages.chunks(256) {
            let r = self.deposit(id, chunk);
            if r.status != HvStatus::SUCCESS {
                self.recycle(&pages[done + r.reps_completed as usize..]);
                return Err(r);
            }
            done += chunk.len();
        }
        Ok(pages)
    }

    pub fn withdraw_with(&self, id: u64, count: u16, prox: ProximityDomainInfo) -> (HvResult, Vec<u64>) {
        let header = abi::WithdrawMemoryIn { partition_id: id, proximity_domain_info: prox }.to_bytes();
        let (r, out) = self.rep(call::WITHDRAW_MEMORY, &header, &[], count, 0, 8 * count as usize);
        let n = (r.reps_completed as usize).min(count as usize);
        (r, (0..n).map(|i| mem::qword(&out, 8 * i)).collect())
    }

    pub fn withdraw(&self, id: u64, count: u16) -> (HvResult, Vec<u64>) {
        self.withdraw_with(id, count, ProximityDomainInfo::ANY)
    }

    /// Withdraws every available page of `id` and recycles them; the count.
    pub fn drain(&self, id: u64) -> usize {
        let mut total = 0;
        loop {
            let (r, pages) = self.withdraw(id, 256);
            total += pages.len();
            self.recycle(&pages);
            if r.status != HvStatus::SUCCESS || pages.is_empty() {
                return total;
            }
        }
    }

    pub fn balance_with(&self, id: u64, prox: ProximityDomainInfo) -> (HvResult, (u64, u64)) {
        let input = abi::GetMemoryBalanceIn { partition_id: id, proximity_domain_info: prox }.to_bytes();
        let (r, out) = self.call(Control::simple(call::GET_MEMORY_BALANCE).raw(), &input, 16);
        (r, (mem::qword(&out, 0), mem::qword(&out, 8)))
    }

    /// (available, in use) of `id`'s pool.
    pub fn balance(&self, id: u64) -> (HvResult, (u64, u64)) {
        self.balance_with(id, ProximityDomainInfo::ANY)
    }

    /// Makes our own pool hold at least `n` available pages.
    pub fn root_pool_at_least(&self, n: u64) -> Result<(), HvResult> {
        let (r, (available, _)) = self.balance(self.root_id);
        if r.status != HvStatus::SUCCESS {
            return Err(r);
        }
        if available < n {
            self.deposit_new(self.root_id, (n - available) as usize)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ GPA

    pub fn map(&self, id: u64, gpa_page: u64, flags: u32, pages: &[u64]) -> HvResult {
        let header =
            abi::MapGpaPagesIn { target_partition_id: id, target_gpa_base: gpa_page, map_flags: flags, padding: 0 };
        self.rep(call::MAP_GPA_PAGES, &header.to_bytes(), &mem::qwords(pages), pages.len() as u16, 0, 0).0
    }

    pub fn unmap(&self, id: u64, gpa_page: u64, count: u16) -> HvResult {
        let header = abi::UnmapGpaPagesIn { target_partition_id: id, target_gpa_base: gpa_page }.to_bytes();
        self.rep(call::UNMAP_GPA_PAGES, &header, &[], count, 0, 0).0
    }

    // ------------------------------------------------------------ VPs

    pub fn create_vp_with(&self, id: u64, vp: u32, prox: ProximityDomainInfo, flags: u64) -> HvResult {
        let input = abi::CreateVpIn { partition_id: id, vp_index: vp, padding: 0, proximity_domain_info: prox, flags };
        self.simple(call::CREATE_VP, &input.to_bytes()).0
    }

    pub fn create_vp(&self, id: u64, vp: u32) -> HvResult {
        self.create_vp_with(id, vp, ProximityDomainInfo::ANY, 0)
    }

    pub fn delete_vp(&self, id: u64, vp: u32) -> HvResult {
        let input = abi::DeleteVpIn { partition_id: id, vp_index: vp, padding: 0 }.to_bytes();
        self.simple(call::DELETE_VP, &input).0
    }

    pub fn get_regs(&self, id: u64, vp: u32, names: &[u32]) -> (HvResult, Vec<u128>) {
        let header = abi::VpRegistersIn { partition_id: id, vp_index: vp, padding: 0 }.to_bytes();
        let elems: Vec<u8> = names.iter().flat_map(|n| n.to_le_bytes()).collect();
        let (r, out) = self.rep(call::GET_VP_REGISTERS, &header, &elems, names.len() as u16, 0, 16 * names.len());
        let values = (0..names.len())
            .map(|i| u128::from_le_bytes(out[16 * i..16 * i + 16].try_into().unwrap_or([0; 16])))
            .collect();
        (r, values)
    }

    /// One register (the status and its value).
    pub fn get_reg(&self, id: u64, vp: u32, name: u32) -> (HvResult, u128) {
        let (r, v) = self.get_regs(id, vp, &[name]);
        (r, v.first().copied().unwrap_or(0))
    }

    pub fn set_regs(&self, id: u64, vp: u32, regs: &[(u32, u128)]) -> HvResult {
        let header = abi::VpRegistersIn { partition_id: id, vp_index: vp, padding: 0 }.to_bytes();
        let elems: Vec<u8> = regs
            .iter()
            .flat_map(|&(name, value)| abi::RegisterAssoc { name, reserved: [0; 12], value }.to_bytes())
            .collect();
        self.rep(call::SET_VP_REGISTERS, &header, &elems, regs.len() as u16, 0, 0).0
    }

    // ------------------------------------------------------------ intercepts

    pub fn intercept(&self, id: u64, access: u32, ty: u32, parameter: u64) -> HvResult {
        let input = abi::InstallInterceptIn {
            partition_id: id,
            access_type: access,
            intercept_type: ty,
            intercept_parameter: parameter,
        };
        self.simple(call::INSTALL_INTERCEPT, &input.to_bytes()).0
    }

    // ------------------------------------------------------------ ports

    pub fn create_port(
        &self,
        port_partition: u64,
        port: u32,
        connection_partition: u64,
        info: abi::PortInfo,
    ) -> HvResult {
        let input = abi::CreatePortIn {
            port_partition_id: port_partition,
            port_id: port,
            padding: 0,
            connection_partition_id: connection_partition,
            port_info: info,
        };
        self.simple(call::CREATE_PORT, &input.to_bytes()).0
    }

    pub fn delete_port(&self, port_partition: u64, port: u32) -> HvResult {
        let input = abi::DeletePortIn { port_partition_id: port_partition, port_id: port, reserved: 0 }.to_bytes();
        self.simple(call::DELETE_PORT, &input).0
    }

    pub fn connect(
        &self,
        connection_partition: u64,
        connection: u32,
        port_partition: u64,
        port: u32,
        ty: u32,
    ) -> HvResult {
        let input = abi::ConnectPortIn {
            connection_partition_id: connection_partition,
            connection_id: connection,
            padding: 0,
            port_partition_id: port_partition,
            port_id: port,
            padding2: 0,
            connection_info: abi::ConnectionInfo::new(ty),
        };
        self.simple(call::CONNECT_PORT, &input.to_bytes()).0
    }

    pub fn disconnect(&self, connection_partition: u64, connection: u32) -> HvResult {
        let input = abi::DisconnectPortIn {
            connection_partition_id: connection_partition,
            connection_id: connection,
            padding: 0,
        };
        self.simple(call::DISCONNECT_PORT, &input.to_bytes()).0
    }

    pub fn port_property(&self, partition: u64, port: u32, code: u32) -> (HvResult, u64) {
        let input = abi::GetPortPropertyIn {
            partition_id: partition,
            port_id: port,
            padding: 0,
            property_code: code,
            padding2: 0,
        };
        self.simple(call::GET_PORT_PROPERTY, &input.to_bytes())
    }

    /// HvPostMessage with `payload` (at most 240 bytes are copied) and a declared size.
    pub fn post(&self, connection: u32, message_type: u32, payload_size: u32, payload: &[u8]) -> HvResult {
        let mut input = [0u8; abi::POST_MESSAGE_IN_SIZE];
        abi::PostMessageIn { connection_id: connection, padding: 0, message_type, payload_size }.write(&mut input);
        let n = payload.len().min(abi::MESSAGE_PAYLOAD_SIZE);
        input[16..16 + n].copy_from_slice(&payload[..n]);
        self.simple(call::POST_MESSAGE, &input).0
    }

    /// HvSignalEvent, memory convention.
    pub fn signal(&self, connection: u32, flag: u16) -> HvResult {
        let input = abi::SignalEventIn { connection_id: connection, flag_number: flag, reserved: 0 }.to_bytes();
        self.simple(call::SIGNAL_EVENT, &input).0
    }

    /// HvSignalEvent, register convention.
    pub fn signal_fast(&self, connection: u32, flag: u16) -> HvResult {
        self.fast(call::SIGNAL_EVENT, connection as u64 | (flag as u64) << 32, 0)
    }
}

/// How long the root waits for a message or an event flag.
pub const SYNIC_TIMEOUT_NS: u64 = 10_000_000_000;

impl Ctx {
    /// Waits until the SIM slot of `sint` holds a message; returns it (the slot stays full).
    pub fn wait_message(&self, sint: u32) -> Result<abi::HvMessage, alloc::string::String> {
        let deadline = mx::deadline_after(SYNIC_TIMEOUT_NS);
        loop {
            let m = self.root.message(sint);
            if m.header.message_type != abi::message_type::NONE {
                return Ok(m);
            }
            if mx::time_monotonic() > deadline {
                return Err(alloc::format!("no message in the root's SINT{sint} slot"));
            }
            let _ = self.root.wait_synic(mx::deadline_after(10_000_000));
        }
    }

    /// Empties the slot of `sint` and asks for the next message.
    pub fn consume_message(&self, sint: u32) -> HvStatus {
        self.root.clear_message(sint);
        match self.root.end_of_message(sint) {
            Ok(()) => HvStatus::SUCCESS,
            Err(s) => s,
        }
    }

    /// Whether the server signalled the notification event since the last
    /// look (and clears it).
    pub fn notified(&self) -> bool {
        self.root.wait_synic(0).is_ok()
    }

    /// Waits until flag `flag` of `sint`'s area is set (it stays set).
    pub fn wait_flag(&self, sint: u32, flag: u32) -> Result<(), alloc::string::String> {
        let deadline = mx::deadline_after(SYNIC_TIMEOUT_NS);
        loop {
            if flag_set(&self.root.event_flags(sint), flag) {
                return Ok(());
            }
            if mx::time_monotonic() > deadline {
                return Err(alloc::format!("flag {flag} of the root's SINT{sint} area never set"));
            }
            let _ = mx::nanosleep(mx::deadline_after(1_000_000));
        }
    }
}

/// Whether flag `n` is set in a 256-byte event-flag area.
pub fn flag_set(area: &[u8], n: u32) -> bool {
    area.get(n as usize / 8).is_some_and(|b| b & (1 << (n % 8)) != 0)
}

/// The flags set in a 256-byte area.
pub fn flags_set(area: &[u8]) -> Vec<u32> {
    (0..(area.len() as u32 * 8)).filter(|&n| flag_set(area, n)).collect()
}
