//! The typed Rust client of a root partition.
//!
//! ```text
//! let root = Root::connect()?;                         // PA_HND(PA_USER0, 0x4856) from init
//! let id = root.create_partition(0, ProximityDomainInfo::ANY)?;
//! let pages = root.alloc_pages(17).ok_or(..)?;         // root memory, page-aligned address
//! root.deposit_memory(id, &(0..17).map(|i| Root::page_number(pages) + i).collect::<Vec<_>>())?;
//! root.initialize_partition(id)?;
//! ```
//!
//! Each typed method issues the hypercall of the same name in the memory
//! convention, through two scratch pages of root memory the client keeps
//! for itself; simple calls return `Result<T, HvStatus>`, rep calls
//! `Result<T, RepError>` with the elements completed. [`Root::hypercall`]
//! is the raw form (input value, input and output root addresses; the
//! result value back), for tests of the common checks. A root's "GPA" page
//! numbers are its virtual addresses / 4096 (decision 11); only pages of
//! the root memory mapping exist for the server.
//!
//! The SynIC: [`Root::wait_synic`] waits for the server's notification,
//! [`Root::message`] reads a SIM slot, [`Root::clear_message`] empties it
//! and [`Root::end_of_message`] asks for the next queued one;
//! [`Root::event_flags`] / [`Root::test_and_clear_event_flag`] read the
//! SIEF area of a SINT.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use mx::{Channel, Event, Handle, Signals, Status, Vmar, Vmo};
use mx_abi::{ChannelCallArgs, VmFlags, HANDLE_INVALID};
use spin::Mutex;

use crate::abi::*;
use crate::proto::{self, Hello, Reply, Request};

/// A rep call that stopped early: the status and the elements completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepError {
    pub status: HvStatus,
    pub completed: u32,
}

/// Why [`Root::connect`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// No client channel (`PA_HND(PA_USER0, 0x4856)`: the program lacks `+hyperv`).
    NoChannel,
    /// A kernel call failed.
    Status(Status),
    /// The server's first message was not a valid Hello.
    BadHello,
}

impl From<Status> for ConnectError {
    fn from(s: Status) -> Self {
        ConnectError::Status(s)
    }
}

const PAGE: usize = 4096;
/// How long one request may wait for its reply.
const CALL_TIMEOUT_NS: u64 = 30_000_000_000;

/// Pages of root memory: a first-fit allocator over a bitmap.
struct PageMap {
    used: Vec<u64>,
    pages: usize,
}

impl PageMap {
    fn new(pages: usize) -> PageMap {
        PageMap { used: alloc::vec![0; pages.div_ceil(64)], pages }
    }
    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize, on: bool) {
        if on {
            self.used[i / 64] |= 1 << (i % 64);
        } else {
            self.used[i / 64] &= !(1 << (i % 64));
        }
    }
    fn alloc(&mut self, n: usize) -> Option<usize> {
        if n == 0 || n > self.pages {
            return None;
        }
        let mut run = 0;
        for i in 0..self.pages {
            run = if self.is_used(i) { 0 } else { run + 1 };
            if run == n {
                let first = i + 1 - n;
                (first..=i).for_each(|p| self.set(p, true));
                return Some(first);
            }
        }
        None
    }
    fn free(&mut self, first: usize, n: usize) {
        for p in first..first.saturating_add(n).min(self.pages) {
            self.set(p, false);
        }
    }
}

/// A connection to the personality server: one root partition.
pub struct Root {
    channel: Channel,
    vmar: Vmar,
    event: Event,
    partition_id: u64,
    memory: usize,
    memory_size: usize,
    synic: usize,
    /// Two pages of root memory for the typed calls' input and output.
    scratch: Mutex<usize>,
    pages: Mutex<PageMap>,
    txid: AtomicU32,
}

impl core::fmt::Debug for Root {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Root").field("partition_id", &self.partition_id).field("memory", &self.memory).finish()
    }
}

impl Root {
    /// Connects through the client channel init passed
    /// (`PA_HND(PA_USER0, 0x4856)`), mapping into the root VMAR.
    pub fn connect() -> Result<Root, ConnectError> {
        let channel = mxrt::take_handle(mx_abi::PA_USER0, proto::HV_CLIENT_ARG).ok_or(ConnectError::NoChannel)?;
        let vmar = mxrt::vmar_root().ok_or(ConnectError::Status(Status::BadHandle))?;
        Root::connect_with(Channel::from_handle(channel), vmar)
    }

    /// Connects through `channel` (a fresh client channel), mapping the
    /// root memory and the SynIC pages into `vmar`.
    pub fn connect_with(channel: Channel, vmar: Vmar) -> Result<Root, ConnectError> {
        let mut bytes = [0u8; 64];
        let mut handles = [HANDLE_INVALID; 4];
        let deadline = mx::deadline_after(CALL_TIMEOUT_NS);
        let (nb, nh) = loop {
            match channel.read_raw(&mut bytes, &mut handles) {
                Err(Status::ShouldWait) => {
                    channel.handle().wait_one(Signals::CHANNEL_READABLE | Signals::CHANNEL_PEER_CLOSED, deadline)?;
                }
                other => break other?,
            }
        };
        let owned: Vec<Handle> = handles[..nh].iter().map(|&h| Handle::from_raw(h)).collect();
        let hello = Hello::decode(&bytes[..nb]).ok_or(ConnectError::BadHello)?;
        if hello.magic != proto::HELLO_MAGIC || hello.version != proto::VERSION || owned.len() != proto::HELLO_HANDLES {
            return Err(ConnectError::BadHello);
        }
        let memory_size = usize::try_from(hello.memory_size).map_err(|_| ConnectError::BadHello)?;
        let mut owned = owned.into_iter();
        let (Some(memory_vmo), Some(synic_vmo), Some(event)) = (owned.next(), owned.next(), owned.next()) else {
            return Err(ConnectError::BadHello);
        };
        let rw = VmFlags::PERM_READ | VmFlags::PERM_WRITE;
        let memory = vmar.map(0, &Vmo::from_handle(memory_vmo), 0, memory_size, rw)?;
        let synic = match vmar.map(0, &Vmo::from_handle(synic_vmo), 0, proto::HV_SYNIC_SIZE as usize, rw) {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: nothing uses the mapping made just above.
                let _ = unsafe { vmar.unmap(memory, memory_size) };
                return Err(e.into());
            }
        };
        let mut pages = PageMap::new(memory_size / PAGE);
        let scratch_first = pages.alloc(2).ok_or(ConnectError::BadHello)?;
        Ok(Root {
            channel,
            vmar,
            event: Event::from_handle(event),
            partition_id: hello.root_partition_id,
            memory,
            memory_size,
            synic,
            scratch: Mutex::new(memory + scratch_first * PAGE),
            pages: Mutex::new(pages),
            txid: AtomicU32::new(1),
        })
    }

    /// This root's partition id (from the Hello).
    pub fn partition_id(&self) -> u64 {
        self.partition_id
    }

    /// Where the root memory is mapped, and its size.
    pub fn memory(&self) -> (usize, usize) {
        (self.memory, self.memory_size)
    }

    /// The page number the server knows `addr` by (decision 11).
    pub const fn page_number(addr: usize) -> u64 {
        (addr / PAGE) as u64
    }

    /// `n` contiguous zeroed-or-reused pages of root memory (page-aligned
    /// address); `None` when out.
    pub fn alloc_pages(&self, n: usize) -> Option<usize> {
        self.pages.lock().alloc(n).map(|first| self.memory + first * PAGE)
    }

    /// Gives back pages from [`Root::alloc_pages`].
    pub fn free_pages(&self, addr: usize, n: usize) {
        if addr >= self.memory && addr < self.memory + self.memory_size {
            self.pages.lock().free((addr - self.memory) / PAGE, n);
        }
    }

    /// The notification event (`MX_USER_SIGNAL_0` when a slot filled or a
    /// clear flag was set).
    pub fn notification(&self) -> &Event {
        &self.event
    }

    /// Sends one request; the raw result value.
    pub fn request(&self, op: u32, control: u64, input: u64, output: u64) -> Result<u64, Status> {
        let txid = self.txid.fetch_add(1, Ordering::Relaxed) | 0x8000_0000;
        let req = Request { txid, op, control, input, output, memory_base: self.memory as u64, reserved: 0 };
        let wr = req.encode();
        let mut rd = [0u8; Reply::SIZE];
        let args = ChannelCallArgs {
            wr_bytes: wr.as_ptr() as u64,
            wr_handles: 0,
            rd_bytes: rd.as_mut_ptr() as u64,
            rd_handles: 0,
            wr_num_bytes: Request::SIZE as u32,
            wr_num_handles: 0,
            rd_num_bytes: Reply::SIZE as u32,
            rd_num_handles: 0,
        };
        let (mut nb, mut nh, mut read_status) = (0u32, 0u32, 0i32);
        let deadline = mx::deadline_after(CALL_TIMEOUT_NS);
        // SAFETY: `args` points at `wr` (48 bytes) and `rd` (16 bytes), both
        // alive for the call; the counts are valid out-pointers.
        let raw = unsafe {
            mx::sys::mx_channel_call(self.channel.raw(), 0, deadline, &args, &mut nb, &mut nh, &mut read_status)
        };
        if raw == Status::CallFailed as i32 {
            mx::ok(read_status)?;
        }
        mx::ok(raw)?;
        let reply = Reply::decode(&rd[..nb as usize]).ok_or(Status::IoDataIntegrity)?;
        Ok(reply.result)
    }

    /// The raw hypercall: input value, root addresses of the input and
    /// output blocks (for a fast call, the two input qwords); the result
    /// value. A broken connection gives `HV_STATUS_OPERATION_FAILED`.
    pub fn hypercall(&self, control: u64, input: u64, output: u64) -> u64 {
        self.request(proto::OP_HYPERCALL, control, input, output)
            .unwrap_or(HvResult::new(HvStatus::OPERATION_FAILED, 0).raw())
    }

    /// A fast (register) call with two input qwords.
    pub fn fast_hypercall(&self, code: u16, in0: u64, in1: u64) -> HvResult {
        HvResult::from_raw(self.hypercall(Control::fast(code).raw(), in0, in1))
    }

    /// Runs a memory-convention call: `fill` writes the input page, `read`
    /// reads the output page; returns the result.
    fn call<T>(&self, control: Control, fill: impl FnOnce(&mut [u8]), read: impl FnOnce(&[u8]) -> T) -> (HvResult, T) {
        let scratch = self.scratch.lock();
        let input = *scratch;
        let output = input + PAGE;
        // SAFETY: the two scratch pages belong to this client (allocated at
        // connect, never handed out) and the lock serialises their use; the
        // server writes the output page only during the call.
        let (inp, outp) = unsafe {
            (
                core::slice::from_raw_parts_mut(input as *mut u8, PAGE),
                core::slice::from_raw_parts_mut(output as *mut u8, PAGE),
            )
        };
        inp.fill(0);
        fill(inp);
        let result = HvResult::from_raw(self.hypercall(control.raw(), input as u64, output as u64));
        let value = read(outp);
        (result, value)
    }

    fn simple<T>(&self, code: u16, fill: impl FnOnce(&mut [u8]), read: impl FnOnce(&[u8]) -> T) -> Result<T, HvStatus> {
        let (r, v) = self.call(Control::simple(code), fill, read);
        r.status.result().map(|()| v)
    }

    // ------------------------------------------------------------ partitions

    pub fn create_partition(&self, flags: u64, proximity: ProximityDomainInfo) -> Result<u64, HvStatus> {
        let input = CreatePartitionIn { flags, proximity_domain_info: proximity };
        self.simple(call::CREATE_PARTITION, |b| input.write(b), u64::get)
    }

    pub fn initialize_partition(&self, id: u64) -> Result<(), HvStatus> {
        self.simple(call::INITIALIZE_PARTITION, |b| PartitionIdIn { partition_id: id }.write(b), |_| ())
    }

    pub fn finalize_partition(&self, id: u64) -> Result<(), HvStatus> {
        self.simple(call::FINALIZE_PARTITION, |b| PartitionIdIn { partition_id: id }.write(b), |_| ())
    }

    pub fn delete_partition(&self, id: u64) -> Result<(), HvStatus> {
        self.simple(call::DELETE_PARTITION, |b| PartitionIdIn { partition_id: id }.write(b), |_| ())
    }

    pub fn get_partition_property(&self, id: u64, code: u32) -> Result<u64, HvStatus> {
        let input = GetPartitionPropertyIn { partition_id: id, property_code: code, padding: 0 };
        self.simple(call::GET_PARTITION_PROPERTY, |b| input.write(b), u64::get)
    }

    pub fn set_partition_property(&self, id: u64, code: u32, value: u64) -> Result<(), HvStatus> {
        let input = SetPartitionPropertyIn { partition_id: id, property_code: code, padding: 0, property_value: value };
        self.simple(call::SET_PARTITION_PROPERTY, |b| input.write(b), |_| ())
    }

    pub fn get_partition_id(&self) -> Result<u64, HvStatus> {
        self.simple(call::GET_PARTITION_ID, |_| (), u64::get)
    }

    pub fn get_next_child_partition(&self, parent: u64, previous: u64) -> Result<u64, HvStatus> {
        let input = GetNextChildPartitionIn { parent_id: parent, previous_child_id: previous };
        self.simple(call::GET_NEXT_CHILD_PARTITION, |b| input.write(b), u64::get)
    }

    // ------------------------------------------------------------ memory

    /// Rep calls whose list does not fit one page are split; `completed`
    /// counts over the whole list.
    fn rep_batches(
        &self,
        code: u16,
        total: usize,
        per_page: usize,
        mut fill: impl FnMut(&mut [u8], usize, usize),
        mut read: impl FnMut(&[u8], usize, usize),
    ) -> Result<(), RepError> {
        let mut done = 0usize;
        while done < total {
            let n = (total - done).min(per_page).min(0xfff);
            let (r, ()) = self.call(Control::rep(code, n as u16, 0), |b| fill(b, done, n), |o| read(o, done, n));
            let completed = usize::from(r.reps_completed).min(n);
            if !r.status.is_success() {
                return Err(RepError { status: r.status, completed: (done + completed) as u32 });
            }
            done += n;
        }
        Ok(())
    }

    pub fn deposit_memory(&self, id: u64, pages: &[u64]) -> Result<(), RepError> {
        let per_page = (PAGE - DepositMemoryIn::SIZE) / 8;
        self.rep_batches(
            call::DEPOSIT_MEMORY,
            pages.len(),
            per_page,
            |b, from, n| {
                DepositMemoryIn { partition_id: id }.write(b);
                for (i, p) in pages[from..from + n].iter().enumerate() {
                    p.put(&mut b[DepositMemoryIn::SIZE + 8 * i..]);
                }
            },
            |_, _, _| (),
        )
    }

    /// Withdraws up to `out.len()` pages; their numbers land in `out`.
    /// `Ok(n)` when all were withdrawn; on `NO_RESOURCES` the error's
    /// `completed` says how many of `out` are valid.
    pub fn withdraw_memory(&self, id: u64, proximity: ProximityDomainInfo, out: &mut [u64]) -> Result<usize, RepError> {
        let per_page = PAGE / 8;
        let total = out.len();
        let mut done = 0usize;
        while done < total {
            let n = (total - done).min(per_page).min(0xfff);
            let (r, pages) = self.call(
                Control::rep(call::WITHDRAW_MEMORY, n as u16, 0),
                |b| WithdrawMemoryIn { partition_id: id, proximity_domain_info: proximity }.write(b),
                |o| (0..n).map(|i| u64::get(&o[8 * i..])).collect::<Vec<u64>>(),
            );
            let completed = usize::from(r.reps_completed).min(n);
            out[done..done + completed].copy_from_slice(&pages[..completed]);
            if !r.status.is_success() {
                return Err(RepError { status: r.status, completed: (done + completed) as u32 });
            }
            done += n;
        }
        Ok(total)
    }

    /// (pages available, pages in use).
    pub fn get_memory_balance(&self, id: u64, proximity: ProximityDomainInfo) -> Result<(u64, u64), HvStatus> {
        let input = GetMemoryBalanceIn { partition_id: id, proximity_domain_info: proximity };
        self.simple(
            call::GET_MEMORY_BALANCE,
            |b| input.write(b),
            |o| GetMemoryBalanceOut::read(o).map(|b| (b.pages_available, b.pages_in_use)).unwrap_or_default(),
        )
    }

    /// Maps root pages `source` at consecutive target pages from `gpa_base`
    /// (a page number).
    pub fn map_gpa_pages(&self, target: u64, gpa_base: u64, flags: u32, source: &[u64]) -> Result<(), RepError> {
        let per_page = (PAGE - MapGpaPagesIn::SIZE) / 8;
        self.rep_batches(
            call::MAP_GPA_PAGES,
            source.len(),
            per_page,
            |b, from, n| {
                let base = gpa_base.wrapping_add(from as u64);
                MapGpaPagesIn { target_partition_id: target, target_gpa_base: base, map_flags: flags, padding: 0 }
                    .write(b);
                for (i, p) in source[from..from + n].iter().enumerate() {
                    p.put(&mut b[MapGpaPagesIn::SIZE + 8 * i..]);
                }
            },
            |_, _, _| (),
        )
    }

    pub fn unmap_gpa_pages(&self, target: u64, gpa_base: u64, count: u32) -> Result<(), RepError> {
        self.rep_batches(
            call::UNMAP_GPA_PAGES,
            count as usize,
            0xfff,
            |b, from, _| {
                let base = gpa_base.wrapping_add(from as u64);
                UnmapGpaPagesIn { target_partition_id: target, target_gpa_base: base }.write(b);
            },
            |_, _, _| (),
        )
    }

    // ------------------------------------------------------------ intercepts and VPs

    pub fn install_intercept(&self, id: u64, access: u32, descriptor: InterceptDescriptor) -> Result<(), HvStatus> {
        let input = InstallInterceptIn {
            partition_id: id,
            access_type: access,
            intercept_type: descriptor.intercept_type,
            intercept_parameter: descriptor.parameter,
        };
        self.simple(call::INSTALL_INTERCEPT, |b| input.write(b), |_| ())
    }

    pub fn create_vp(&self, id: u64, proximity: ProximityDomainInfo, vp: u32, flags: u64) -> Result<(), HvStatus> {
        let input = CreateVpIn { partition_id: id, vp_index: vp, padding: 0, proximity_domain_info: proximity, flags };
        self.simple(call::CREATE_VP, |b| input.write(b), |_| ())
    }

    pub fn delete_vp(&self, id: u64, vp: u32) -> Result<(), HvStatus> {
        self.simple(call::DELETE_VP, |b| DeleteVpIn { partition_id: id, vp_index: vp, padding: 0 }.write(b), |_| ())
    }

    /// Reads `names.len()` registers into `values`.
    pub fn get_vp_registers(&self, id: u64, vp: u32, names: &[u32], values: &mut [u128]) -> Result<(), RepError> {
        let n = names.len().min(values.len());
        let per_page = ((PAGE - VpRegistersIn::SIZE) / 4).min(PAGE / 16);
        let mut out = Vec::new();
        let r = self.rep_batches(
            call::GET_VP_REGISTERS,
            n,
            per_page,
            |b, from, k| {
                VpRegistersIn { partition_id: id, vp_index: vp, padding: 0 }.write(b);
                for (i, name) in names[from..from + k].iter().enumerate() {
                    name.put(&mut b[VpRegistersIn::SIZE + 4 * i..]);
                }
            },
            |o, _, k| out.extend((0..k).map(|i| u128::get(&o[16 * i..]))),
        );
        let valid = match r {
            Ok(()) => n,
            Err(e) => e.completed as usize,
        };
        for (v, got) in values.iter_mut().zip(out.iter()).take(valid) {
            *v = *got;
        }
        r
    }

    pub fn get_vp_register(&self, id: u64, vp: u32, name: u32) -> Result<u128, HvStatus> {
        let mut v = [0u128];
        self.get_vp_registers(id, vp, &[name], &mut v).map_err(|e| e.status)?;
        Ok(v[0])
    }

    /// Writes (name, value) pairs.
    pub fn set_vp_registers(&self, id: u64, vp: u32, regs: &[(u32, u128)]) -> Result<(), RepError> {
        let per_page = (PAGE - VpRegistersIn::SIZE) / RegisterAssoc::SIZE;
        self.rep_batches(
            call::SET_VP_REGISTERS,
            regs.len(),
            per_page,
            |b, from, k| {
                VpRegistersIn { partition_id: id, vp_index: vp, padding: 0 }.write(b);
                for (i, &(name, value)) in regs[from..from + k].iter().enumerate() {
                    RegisterAssoc { name, reserved: [0; 12], value }
                        .write(&mut b[VpRegistersIn::SIZE + RegisterAssoc::SIZE * i..]);
                }
            },
            |_, _, _| (),
        )
    }

    pub fn set_vp_register(&self, id: u64, vp: u32, name: u32, value: u128) -> Result<(), HvStatus> {
        self.set_vp_registers(id, vp, &[(name, value)]).map_err(|e| e.status)
    }

    // ------------------------------------------------------------ ports

    pub fn create_port(
        &self,
        port_partition: u64,
        port_id: u32,
        connection_partition: u64,
        info: &PortInfo,
    ) -> Result<(), HvStatus> {
        let input = CreatePortIn {
            port_partition_id: port_partition,
            port_id,
            padding: 0,
            connection_partition_id: connection_partition,
            port_info: *info,
        };
        self.simple(call::CREATE_PORT, |b| input.write(b), |_| ())
    }

    pub fn delete_port(&self, port_partition: u64, port_id: u32) -> Result<(), HvStatus> {
        let input = DeletePortIn { port_partition_id: port_partition, port_id, reserved: 0 };
        self.simple(call::DELETE_PORT, |b| input.write(b), |_| ())
    }

    pub fn connect_port(
        &self,
        connection_partition: u64,
        connection_id: u32,
        port_partition: u64,
        port_id: u32,
        info: &ConnectionInfo,
    ) -> Result<(), HvStatus> {
        let input = ConnectPortIn {
            connection_partition_id: connection_partition,
            connection_id,
            padding: 0,
            port_partition_id: port_partition,
            port_id,
            padding2: 0,
            connection_info: *info,
        };
        self.simple(call::CONNECT_PORT, |b| input.write(b), |_| ())
    }

    pub fn disconnect_port(&self, connection_partition: u64, connection_id: u32) -> Result<(), HvStatus> {
        let input = DisconnectPortIn { connection_partition_id: connection_partition, connection_id, padding: 0 };
        self.simple(call::DISCONNECT_PORT, |b| input.write(b), |_| ())
    }

    pub fn get_port_property(&self, id: u64, port_id: u32, code: u32) -> Result<u64, HvStatus> {
        let input = GetPortPropertyIn { partition_id: id, port_id, padding: 0, property_code: code, padding2: 0 };
        self.simple(call::GET_PORT_PROPERTY, |b| input.write(b), u64::get)
    }

    /// Posts `payload` (at most 240 bytes are sent; `payload_size` says how
    /// many count) as a message of `message_type`.
    pub fn post_message(
        &self,
        connection_id: u32,
        message_type: u32,
        payload_size: u32,
        payload: &[u8],
    ) -> Result<(), HvStatus> {
        let n = payload.len().min(MESSAGE_PAYLOAD_SIZE);
        let input = PostMessageIn { connection_id, padding: 0, message_type, payload_size };
        self.simple(
            call::POST_MESSAGE,
            |b| {
                input.write(b);
                b[PostMessageIn::SIZE..PostMessageIn::SIZE + n].copy_from_slice(&payload[..n]);
            },
            |_| (),
        )
    }

    pub fn signal_event(&self, connection_id: u32, flag_number: u16) -> Result<(), HvStatus> {
        let input = SignalEventIn { connection_id, flag_number, reserved: 0 };
        self.simple(call::SIGNAL_EVENT, |b| input.write(b), |_| ())
    }

    // ------------------------------------------------------------ SynIC

    /// Waits until the server notifies (a message slot filled or a clear
    /// event flag was set) or `deadline` passes (`HV_STATUS_TIME_OUT`);
    /// clears the notification before returning.
    pub fn wait_synic(&self, deadline: u64) -> Result<(), HvStatus> {
        let signal = Signals::from_bits_retain(proto::NOTIFY_SIGNAL);
        match self.event.handle().wait_one(signal, deadline) {
            Ok(_) => {
                let _ = self.event.handle().signal(signal, Signals::empty());
                Ok(())
            }
            Err(Status::TimedOut) => Err(HvStatus::TIME_OUT),
            Err(_) => Err(HvStatus::OPERATION_FAILED),
        }
    }

    fn synic_byte(&self, offset: usize) -> &AtomicU8 {
        // SAFETY: `offset` < 8192 (callers mask it) and the SynIC mapping is
        // two pages, alive as long as `self`; bytes are read atomically since
        // the server writes them concurrently.
        unsafe { &*((self.synic + offset) as *const AtomicU8) }
    }

    fn synic_read(&self, offset: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.synic_byte(offset + i).load(Ordering::Acquire);
        }
    }

    /// The SIM slot of `sint` (0-15) as it is now.
    pub fn message(&self, sint: u32) -> HvMessage {
        let mut b = [0u8; 256];
        self.synic_read((sint as usize % 16) * 256, &mut b);
        HvMessage::read(&b).unwrap_or_default()
    }

    /// Empties the slot of `sint` (MessageType = 0).
    pub fn clear_message(&self, sint: u32) {
        let at = (sint as usize % 16) * 256;
        for i in 0..4 {
            self.synic_byte(at + i).store(0, Ordering::Release);
        }
    }

    /// `HvRootEndOfMessage`: the slot of `sint` was emptied; the server
    /// delivers the next queued message, if any.
    pub fn end_of_message(&self, sint: u32) -> Result<(), HvStatus> {
        let r =
            self.request(proto::OP_END_OF_MESSAGE, u64::from(sint), 0, 0).map_err(|_| HvStatus::OPERATION_FAILED)?;
        HvResult::from_raw(r).status.result()
    }

    /// The 256-byte event-flag area of `sint` (2048 flags, flag n = bit n%8 of byte n/8).
    pub fn event_flags(&self, sint: u32) -> [u8; 256] {
        let mut b = [0u8; 256];
        self.synic_read(proto::HV_SIEF_OFFSET + (sint as usize % 16) * 256, &mut b);
        b
    }

    /// Clears flag `flag` of `sint`'s area; whether it was set.
    pub fn test_and_clear_event_flag(&self, sint: u32, flag: u32) -> bool {
        let flag = flag % EVENT_FLAGS_COUNT;
        let byte = self.synic_byte(proto::HV_SIEF_OFFSET + (sint as usize % 16) * 256 + (flag / 8) as usize);
        let bit = 1u8 << (flag % 8);
        byte.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Reads root memory at `addr` (must lie in the root memory mapping).
    pub fn read_memory(&self, addr: usize, out: &mut [u8]) -> bool {
        if addr < self.memory || addr.saturating_add(out.len()) > self.memory + self.memory_size {
            return false;
        }
        // SAFETY: the range lies inside the root memory mapping, alive with `self`.
        out.copy_from_slice(unsafe { core::slice::from_raw_parts(addr as *const u8, out.len()) });
        true
    }

    /// Writes root memory at `addr` (must lie in the root memory mapping).
    pub fn write_memory(&self, addr: usize, bytes: &[u8]) -> bool {
        if addr < self.memory || addr.saturating_add(bytes.len()) > self.memory + self.memory_size {
            return false;
        }
        // SAFETY: the range lies inside the root memory mapping, alive with `self`.
        unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, bytes.len()) }.copy_from_slice(bytes);
        true
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // SAFETY: the mappings were made by `connect_with` and nothing of
        // this client uses them once it is dropped (borrows end with it).
        unsafe {
            let _ = self.vmar.unmap(self.memory, self.memory_size);
            let _ = self.vmar.unmap(self.synic, proto::HV_SYNIC_SIZE as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PageMap;

    #[test]
    fn page_map_first_fit() {
        let mut m = PageMap::new(130);
        assert_eq!(m.alloc(2), Some(0));
        assert_eq!(m.alloc(64), Some(2));
        assert_eq!(m.alloc(64), Some(66));
        assert_eq!(m.alloc(1), None);
        m.free(2, 64);
        assert_eq!(m.alloc(3), Some(2));
        assert_eq!(m.alloc(0), None);
        assert_eq!(m.alloc(1000), None);
    }
}
