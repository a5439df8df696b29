//! The server on magnetar: init's connector, one root partition per client
//! channel, VP threads, and the [`Platform`] the manager runs on.
//!
//! One thread (this one) waits on a port for everything: new clients on the
//! connector, requests and closures of client channels, and packets the VP
//! threads queue when their VCPU stops. Only it touches the manager. A VP
//! thread runs its VCPU (`vcpu_resume` binds a VCPU to its thread), and at
//! every exit stores the exit and the registers in its [`VpShared`], queues
//! a packet and waits until the main thread lets it run on. VP threads never
//! allocate or take a lock, so killing one (to delete its VP) is safe.
//!
//! On a one-CPU system a request that lets a VP run has its reply held
//! until the main thread next wakes up (at most [`HOLD_NS`] later) and sent
//! after that wake's packet is served. Usually that packet is the VP's
//! next exit, so the root finds an intercept's message in its SIM slot
//! when its call returns: one switch back to the root instead of two (the
//! reply, then the notification), with no switch to the server in between.
//! With more CPUs the VP runs beside the root and holding would only put
//! the root's wake-up behind the exit (measured slower at -smp 2).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use hv::abi::{HvStatus, SegmentRegister};
use hv::proto::{self, Hello, Reply, Request};
use hyperv::manager::{Caller, Space};
use hyperv::platform::{GuestExit, Platform, Trap, VcpuRegs};
use hyperv::Manager;
use mx::hypervisor::{Guest, Vcpu};
use mx::{Channel, Event, Handle, Port, Resource, Signals, Status, Thread, Vmar, Vmo};
use mx_abi::{
    PortPacket, VcpuCreateArgs, VcpuState, VcpuSystem, VmFlags, HANDLE_INVALID, PA_RESOURCE, PA_USER0, TIME_INFINITE,
    VCPU_FLAGS_APPLY,
};

mxrt::entry!(main);

/// Port keys: the connector, clients (`CLIENT | root id`), VP packets (`VP | key`).
const KEY_CONNECTOR: u64 = 1;
const KEY_CLIENT: u64 = 1 << 62;
const KEY_VP: u64 = 2 << 62;
const KEY_MASK: u64 = 3 << 62;

const VP_STACK_SIZE: usize = 64 * 1024;
/// How long a reply to a request that let a VP run may wait for the VP's
/// next exit (see the module comment).
const HOLD_NS: u64 = 100_000;
/// Bytes of small heap blocks allocated and freed at start, so the heap's
/// chunks (VMOs) exist before the first client and init's leak check does
/// not count them as the client's.
const HEAP_PREWARM: usize = 1536 * 1024;

fn main() -> i32 {
    let Some(connector) = mxrt::take_handle(PA_USER0, proto::HV_CONNECTOR_ARG) else {
        mxrt::println!("hyperv-server: no connector (start it with +service=hyperv)");
        return 1;
    };
    let resource = mxrt::take_handle(PA_RESOURCE, 0).map(Resource::from_handle);
    let hv_resource = resource.as_ref().and_then(|r| mx::hypervisor::hypervisor_resource(r).ok());
    prewarm_heap();
    let (Ok(port), Some(vmar)) = (Port::create(), mxrt::vmar_root()) else {
        mxrt::println!("hyperv-server: cannot create its port");
        return 1;
    };
    let platform =
        Real { vmar, port, resource: hv_resource, roots: BTreeMap::new(), vps: BTreeMap::new(), resumed: false };
    let mut server = Server {
        manager: Manager::new(platform),
        connector: Some(Channel::from_handle(connector)),
        clients: BTreeMap::new(),
        held: None,
        wakes: 0,
        // SAFETY: no arguments; a constant of the system.
        hold_replies: unsafe { mx::sys::mx_system_get_num_cpus() } == 1,
    };
    server.run()
}

fn prewarm_heap() {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut size = 16;
    while size <= 4096 {
        let n = HEAP_PREWARM / 9 / size;
        for _ in 0..n {
            blocks.push(Vec::with_capacity(size));
        }
        size *= 2;
    }
    drop(blocks);
}

struct Server {
    manager: Manager<Real>,
    connector: Option<Channel>,
    clients: BTreeMap<u64, Channel>,
    /// The reply held back (see the module comment).
    held: Option<Held>,
    /// Port waits that returned: a held reply is due at the first wake
    /// after the one that held it.
    wakes: u64,
    /// Whether replies that let a VP run are held (one CPU).
    hold_replies: bool,
}

/// A reply to a request that let a VP run, not sent yet.
struct Held {
    root: u64,
    reply: Reply,
    /// The wake it was held in.
    wake: u64,
    deadline: u64,
}

impl Server {
    fn port(&self) -> &Port {
        &self.manager.platform.port
    }

    fn run(&mut self) -> i32 {
        if let Some(c) = self.connector.as_ref() {
            let signals = Signals::CHANNEL_READABLE | Signals::CHANNEL_PEER_CLOSED;
            if self.port().wait_async(c.handle(), KEY_CONNECTOR, signals, false).is_err() {
                return 1;
            }
        }
        // Ready: init goes on to the next program.
        if let Some(c) = self.connector.as_ref() {
            let _ = c.handle().signal_peer(Signals::empty(), Signals::USER_0);
        }
        mxrt::println!("hyperv-server: ready");
        loop {
            if self.connector.is_none() && self.clients.is_empty() {
                return 0;
            }
            let deadline = self.held.as_ref().map_or(TIME_INFINITE, |h| h.deadline);
            let packet = match self.port().wait(deadline) {
                Ok(p) => Some(p),
                Err(Status::TimedOut) => None,
                Err(s) => {
                    mxrt::println!("hyperv-server: port_wait: {s}");
                    return 1;
                }
            };
            self.wakes += 1;
            match packet.map(|p| p.key) {
                Some(key) if key & KEY_MASK == KEY_CLIENT => self.client_ready(key & !KEY_MASK),
                Some(key) if key & KEY_MASK == KEY_VP => self.vp_stopped(key & !KEY_MASK),
                Some(KEY_CONNECTOR) => self.connector_ready(),
                _ => {}
            }
            if self.held.as_ref().is_some_and(|h| h.wake != self.wakes) {
                self.send_held();
            }
        }
    }

    /// Sends `reply` to `root`'s client, or holds it when the request let a
    /// VP run. An earlier held reply goes first, so replies keep their order.
    fn reply(&mut self, root: u64, reply: Reply, hold: bool) {
        self.send_held();
        if hold && self.hold_replies {
            let deadline = mx::deadline_after(HOLD_NS);
            self.held = Some(Held { root, reply, wake: self.wakes, deadline });
        } else if let Some(channel) = self.clients.get(&root) {
            let _ = channel.write(&reply.encode(), &mut Vec::new());
        }
    }

    fn send_held(&mut self) {
        let Some(held) = self.held.take() else { return };
        if let Some(channel) = self.clients.get(&held.root) {
            let _ = channel.write(&held.reply.encode(), &mut Vec::new());
        }
    }

    /// New client channels (one handle per message), or init is done.
    fn connector_ready(&mut self) {
        let mut fresh = Vec::new();
        let mut broken = false;
        if let Some(connector) = self.connector.as_ref() {
            loop {
                let mut bytes = [0u8; 64];
                let mut handles = [HANDLE_INVALID; 4];
                match connector.read_raw(&mut bytes, &mut handles) {
                    Ok((_, n)) => {
                        let mut owned: Vec<Handle> = handles[..n].iter().map(|&h| Handle::from_raw(h)).collect();
                        if n == 1 {
                            fresh.extend(owned.pop());
                        }
                    }
                    Err(Status::ShouldWait) => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
        }
        for h in fresh {
            self.connect(Channel::from_handle(h));
        }
        let Some(connector) = self.connector.as_ref() else { return };
        let signals = Signals::CHANNEL_READABLE | Signals::CHANNEL_PEER_CLOSED;
        let closed = broken || connector.handle().wait_one(Signals::CHANNEL_PEER_CLOSED, 0).is_ok();
        if closed || self.port().wait_async(connector.handle(), KEY_CONNECTOR, signals, false).is_err() {
            self.connector = None;
        }
    }

    /// A new client: its root partition, memory, SynIC pages, Hello.
    fn connect(&mut self, channel: Channel) {
        let Ok(root) = self.manager.create_root() else { return };
        let session = match Session::new(&self.manager.platform.vmar) {
            Ok(s) => s,
            Err(s) => {
                mxrt::println!("hyperv-server: client setup: {s}");
                self.manager.remove_root(root);
                return;
            }
        };
        let hello = Hello {
            magic: proto::HELLO_MAGIC,
            version: proto::VERSION,
            root_partition_id: root,
            memory_size: proto::HV_ROOT_MEMORY_SIZE,
            reserved: 0,
        };
        let same = mx::SAME_RIGHTS;
        let handles = (|| -> Result<Vec<Handle>, Status> {
            Ok(alloc::vec![
                session.memory.duplicate(same)?.into_handle(),
                session.synic.duplicate(same)?.into_handle(),
                session.event.duplicate(same)?.into_handle(),
            ])
        })();
        let signals = Signals::CHANNEL_READABLE | Signals::CHANNEL_PEER_CLOSED;
        let ok = handles.and_then(|mut h| channel.write(&hello.encode(), &mut h)).is_ok()
            && self.port().wait_async(channel.handle(), KEY_CLIENT | root, signals, false).is_ok();
        self.manager.platform.roots.insert(root, session);
        if ok {
            self.clients.insert(root, channel);
        } else {
            self.disconnect(root);
        }
    }

    fn disconnect(&mut self, root: u64) {
        if self.held.as_ref().is_some_and(|h| h.root == root) {
            self.held = None;
        }
        self.clients.remove(&root);
        self.manager.remove_root(root);
        if let Some(session) = self.manager.platform.roots.remove(&root) {
            session.unmap(&self.manager.platform.vmar);
        }
    }

    /// One message per wake: the one-shot wait is armed again at once and
    /// fires right away while more are queued (or the peer has closed).
    fn client_ready(&mut self, root: u64) {
        let Some(channel) = self.clients.get(&root) else { return };
        let mut bytes = [0u8; 128];
        let mut handles = [HANDLE_INVALID; 4];
        match channel.read_raw(&mut bytes, &mut handles) {
            Ok((n, nh)) => {
                // Requests carry no handles: any sent are closed.
                handles[..nh].iter().for_each(|&h| drop(Handle::from_raw(h)));
                self.manager.platform.resumed = false;
                if let Some(reply) = self.serve(root, &bytes[..n]) {
                    let hold = core::mem::take(&mut self.manager.platform.resumed);
                    self.reply(root, reply, hold);
                }
            }
            Err(Status::ShouldWait) => {}
            Err(Status::BufferTooSmall) => {
                // Too large to be a request: take it off the queue and drop it.
                let mut big = alloc::vec![0u8; 65536];
                let mut hs = [HANDLE_INVALID; 64];
                if let Ok((_, nh)) = channel.read_raw(&mut big, &mut hs) {
                    hs[..nh].iter().for_each(|&h| drop(Handle::from_raw(h)));
                }
            }
            // Peer closed and nothing left to read, or a broken channel.
            Err(_) => return self.disconnect(root),
        }
        let Some(channel) = self.clients.get(&root) else { return };
        let signals = Signals::CHANNEL_READABLE | Signals::CHANNEL_PEER_CLOSED;
        if self.port().wait_async(channel.handle(), KEY_CLIENT | root, signals, false).is_err() {
            self.disconnect(root);
        }
    }

    /// One request: the reply, or `None` to drop it (no txid).
    fn serve(&mut self, root: u64, bytes: &[u8]) -> Option<Reply> {
        let Some(req) = Request::decode(bytes) else {
            let txid = bytes.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
            return Some(Reply::new(txid, HvStatus::INVALID_PARAMETER, 0));
        };
        let result = match req.op {
            proto::OP_HYPERCALL => {
                let caller = Caller { partition: root, vp: None, space: Space::Root { base: req.memory_base } };
                self.manager.hypercall(caller, req.control, req.input, req.output)
            }
            proto::OP_END_OF_MESSAGE => hv::abi::HvResult::new(self.manager.root_end_of_message(root, req.control), 0),
            _ => hv::abi::HvResult::new(HvStatus::INVALID_HYPERCALL_CODE, 0),
        };
        Some(Reply { txid: req.txid, reserved: 0, result: result.raw() })
    }

    fn vp_stopped(&mut self, key: u64) {
        let Some(vp) = self.manager.platform.vps.get(&key).cloned() else { return };
        if vp.phase.load(Ordering::Acquire) != PHASE_STOPPED {
            return;
        }
        // SAFETY: in PHASE_STOPPED the VP thread does not touch `regs` or
        // `exit` until the main thread moves the phase on.
        let (regs, exit) = unsafe { (*vp.regs.get(), *vp.exit.get()) };
        if let GuestExit::Failed(status) = exit {
            mxrt::println!("hyperv-server: a VP stopped: vcpu_resume {status} at RIP {:#x}", regs.rip);
        }
        self.manager.vp_exit(key, regs, exit);
    }
}

/// A client's memory: the root memory and SynIC VMOs (mapped here too) and
/// its notification event.
struct Session {
    memory: Vmo,
    memory_addr: usize,
    synic: Vmo,
    synic_addr: usize,
    event: Event,
}

impl Session {
    fn new(vmar: &Vmar) -> Result<Session, Status> {
        let rw = VmFlags::PERM_READ | VmFlags::PERM_WRITE;
        let memory = Vmo::create(proto::HV_ROOT_MEMORY_SIZE)?;
        let synic = Vmo::create(proto::HV_SYNIC_SIZE)?;
        let event = Event::create()?;
        let memory_addr = vmar.map(0, &memory, 0, proto::HV_ROOT_MEMORY_SIZE as usize, rw)?;
        let synic_addr = match vmar.map(0, &synic, 0, proto::HV_SYNIC_SIZE as usize, rw) {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: the mapping was just made and nothing uses it.
                let _ = unsafe { vmar.unmap(memory_addr, proto::HV_ROOT_MEMORY_SIZE as usize) };
                return Err(e);
            }
        };
        Ok(Session { memory, memory_addr, synic, synic_addr, event })
    }

    fn unmap(self, vmar: &Vmar) {
        // SAFETY: the session is gone from the platform: nothing reads these
        // mappings any more.
        unsafe {
            let _ = vmar.unmap(self.memory_addr, proto::HV_ROOT_MEMORY_SIZE as usize);
            let _ = vmar.unmap(self.synic_addr, proto::HV_SYNIC_SIZE as usize);
        }
    }

    /// The byte at `offset` of a mapping of `size` bytes at `base`.
    fn byte(base: usize, size: u64, offset: u64) -> Option<&'static AtomicU8> {
        if offset >= size {
            return None;
        }
        // SAFETY: the offset is inside the mapping, which stays until the
        // session is removed (on the main thread, which is the only user).
        // Bytes are accessed atomically: the client writes them concurrently.
        Some(unsafe { &*((base + offset as usize) as *const AtomicU8) })
    }

    fn read(base: usize, size: u64, offset: u64, out: &mut [u8]) -> bool {
        if offset.checked_add(out.len() as u64).is_none_or(|end| end > size) {
            return false;
        }
        for (i, b) in out.iter_mut().enumerate() {
            match Session::byte(base, size, offset + i as u64) {
                Some(a) => *b = a.load(Ordering::Relaxed),
                None => return false,
            }
        }
        core::sync::atomic::fence(Ordering::Acquire);
        true
    }

    fn write(base: usize, size: u64, offset: u64, bytes: &[u8]) -> bool {
        if offset.checked_add(bytes.len() as u64).is_none_or(|end| end > size) {
            return false;
        }
        core::sync::atomic::fence(Ordering::Release);
        for (i, b) in bytes.iter().enumerate() {
            match Session::byte(base, size, offset + i as u64) {
                Some(a) => a.store(*b, Ordering::Relaxed),
                None => return false,
            }
        }
        true
    }

    fn set_bit(base: usize, size: u64, offset: u64, bit: u8) -> Option<bool> {
        let mask = 1u8 << (bit & 7);
        Session::byte(base, size, offset).map(|a| a.fetch_or(mask, Ordering::AcqRel) & mask != 0)
    }
}

// ------------------------------------------------------------------ VP threads

const PHASE_STARTING: u32 = 0;
/// The VP thread waits; the main thread owns `regs` and `exit`.
const PHASE_STOPPED: u32 = 1;
/// The main thread let it run on with `regs`.
const PHASE_GO: u32 = 2;
const PHASE_RUNNING: u32 = 3;
/// The VCPU could not be created (`exit` says why).
const PHASE_FAILED: u32 = 4;

/// What a VP thread and the main thread share.
pub struct VpShared {
    key: u64,
    guest: u32,
    port: u32,
    vcpu: AtomicU32,
    phase: AtomicU32,
    /// USER_SIGNAL_0: the phase moved to GO.
    wake: Event,
    apic: Vmo,
    regs: UnsafeCell<VcpuRegs>,
    exit: UnsafeCell<GuestExit>,
    thread: UnsafeCell<Option<(Thread, usize)>>,
}

// SAFETY: `regs` and `exit` are handed over through `phase` (Release/Acquire):
// each side touches them only in the phases it owns; `thread` only by the
// main thread.
unsafe impl Sync for VpShared {}
// SAFETY: as above; the handles inside are plain values.
unsafe impl Send for VpShared {}

const WAKE: Signals = Signals::USER_0;

extern "C" fn vp_thread(shared: usize, _: usize) -> ! {
    // SAFETY: the platform keeps the Arc alive until this thread has ended
    // (vp_destroy waits for it before dropping its reference).
    let vp = unsafe { &*(shared as *const VpShared) };
    vp_run(vp);
    // SAFETY: no pointers.
    unsafe { mx::sys::mx_thread_exit() }
}

fn vp_run(vp: &VpShared) {
    let args = VcpuCreateArgs { ip: 0, cr3: 0, apic_vmo: vp.apic.raw() };
    let guest = core::mem::ManuallyDrop::new(Guest::from_handle(Handle::from_raw(vp.guest)));
    let vcpu = match Vcpu::create_with(&guest, &args) {
        Ok(v) => core::mem::ManuallyDrop::new(v),
        Err(s) => {
            // SAFETY: before PHASE_FAILED only this thread touches `exit`.
            unsafe { *vp.exit.get() = GuestExit::Failed(s as i32) };
            vp.phase.store(PHASE_FAILED, Ordering::Release);
            return;
        }
    };
    vp.vcpu.store(vcpu.raw(), Ordering::Release);
    let mut exit = GuestExit::Created;
    loop {
        let read = read_regs(&vcpu).ok();
        let regs = read.unwrap_or_default();
        // SAFETY: this thread owns `regs` and `exit` until it publishes STOPPED.
        unsafe {
            *vp.regs.get() = regs;
            *vp.exit.get() = exit;
        }
        let first = matches!(exit, GuestExit::Created);
        vp.phase.store(PHASE_STOPPED, Ordering::Release);
        if !first {
            let packet = PortPacket { key: KEY_VP | vp.key, ..Default::default() };
            let bytes = packet.to_bytes();
            // SAFETY: `bytes` is one 48-byte packet.
            let _ = unsafe { mx::sys::mx_port_queue(vp.port, bytes.as_ptr().cast(), 0) };
        }
        while vp.phase.load(Ordering::Acquire) != PHASE_GO {
            let _ = vp.wake.handle().wait_one(WAKE, TIME_INFINITE);
            let _ = vp.wake.handle().signal(WAKE, Signals::empty());
        }
        // SAFETY: in GO the main thread has handed `regs` back.
        let regs = unsafe { *vp.regs.get() };
        write_regs(&vcpu, &regs, read.as_ref());
        vp.phase.store(PHASE_RUNNING, Ordering::Release);
        exit = match vcpu.resume_packet() {
            Ok(packet) => decode_exit(&packet),
            Err(s) => GuestExit::Failed(s as i32),
        };
    }
}

fn read_regs(vcpu: &Vcpu) -> Result<VcpuRegs, Status> {
    let s = vcpu.read_state()?;
    let y = vcpu.read_system()?;
    let gprs =
        [s.rax, s.rcx, s.rdx, s.rbx, s.rsp, s.rbp, s.rsi, s.rdi, s.r8, s.r9, s.r10, s.r11, s.r12, s.r13, s.r14, s.r15];
    Ok(VcpuRegs {
        gprs,
        rip: y.rip,
        rflags: y.rflags,
        cr0: y.cr0,
        cr2: y.cr2,
        cr3: y.cr3,
        cr4: y.cr4,
        efer: y.efer,
        cs: SegmentRegister { base: y.cs_base, limit: y.cs_limit, selector: y.cs_selector, attributes: y.cs_attrib },
        cpl: y.cpl,
        interrupt_shadow: y.interrupt_shadow,
    })
}

/// Writes the registers that differ from `current` (what the VCPU holds,
/// if it could be read): an exit the root only resumes costs no write.
fn write_regs(vcpu: &Vcpu, r: &VcpuRegs, current: Option<&VcpuRegs>) {
    let (gprs_same, system_same) = match current {
        Some(c) => (c.gprs == r.gprs, c.rip == r.rip && c.rflags == r.rflags && c.cr3 == r.cr3),
        None => (false, false),
    };
    if !gprs_same {
        write_gprs(vcpu, &r.gprs);
    }
    if !system_same {
        let system =
            VcpuSystem { rip: r.rip, rflags: r.rflags | VCPU_FLAGS_APPLY as u64, cr3: r.cr3, ..Default::default() };
        let _ = vcpu.write_system(&system);
    }
}

fn write_gprs(vcpu: &Vcpu, g: &[u64; 16]) {
    let state = VcpuState {
        rax: g[0],
        rcx: g[1],
        rdx: g[2],
        rbx: g[3],
        rsp: g[4],
        rbp: g[5],
        rsi: g[6],
        rdi: g[7],
        r8: g[8],
        r9: g[9],
        r10: g[10],
        r11: g[11],
        r12: g[12],
        r13: g[13],
        r14: g[14],
        r15: g[15],
        flags: 0,
    };
    let _ = vcpu.write_state(&state);
}

/// `MX_PKT_TYPE_GUEST_EXCEPTION` (the kernel's hv branch).
const PKT_TYPE_GUEST_EXCEPTION: u32 = 0x08;

fn decode_exit(packet: &PortPacket) -> GuestExit {
    use mx_abi::Payload;
    let bytes = packet.to_bytes();
    let p = &bytes[16..];
    if packet.packet_type == PKT_TYPE_GUEST_EXCEPTION {
        let error_code = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        let cr2 = u64::from_le_bytes([p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]]);
        return GuestExit::Exception { vector: p[0], error_code: (p[1] != 0).then_some(error_code), cr2 };
    }
    match packet.payload() {
        Ok(Payload::GuestIo(io)) => {
            GuestExit::Io { port: io.port, size: io.access_size, input: io.input != 0, data: io.data }
        }
        Ok(Payload::GuestMsr(m)) => {
            GuestExit::Msr { msr: m.msr, write: m.write != 0, value: m.value, inst_len: m.inst_len }
        }
        Ok(Payload::GuestCpuid(c)) => GuestExit::Cpuid { leaf: c.leaf, subleaf: c.subleaf },
        Ok(Payload::GuestVmcall(v)) => GuestExit::Vmcall { inst_len: v.inst_len },
        _ => GuestExit::Failed(Status::NotSupported as i32),
    }
}

// ------------------------------------------------------------------ the platform

pub struct Real {
    vmar: Vmar,
    port: Port,
    resource: Option<Resource>,
    roots: BTreeMap<u64, Session>,
    vps: BTreeMap<u64, Arc<VpShared>>,
    /// A VP was let run (set by `vp_resume`; the server clears it).
    resumed: bool,
}

fn no_resources(_: Status) -> HvStatus {
    HvStatus::NO_RESOURCES
}

impl Real {
    fn spawn(&self, shared: &Arc<VpShared>) -> Result<(Thread, usize), Status> {
        let stack_vmo = Vmo::create(VP_STACK_SIZE as u64)?;
        let stack = self.vmar.map(0, &stack_vmo, 0, VP_STACK_SIZE, VmFlags::PERM_READ | VmFlags::PERM_WRITE)?;
        let name = b"hyperv-vp";
        let mut raw = HANDLE_INVALID;
        // SAFETY: `name` is valid for its length; `raw` is an out-pointer.
        let status =
            unsafe { mx::sys::mx_thread_create(process_self(), name.as_ptr().cast(), name.len() as u32, 0, &mut raw) };
        if status != 0 {
            // SAFETY: the stack was just mapped and is unused.
            let _ = unsafe { self.vmar.unmap(stack, VP_STACK_SIZE) };
            return Err(Status::try_from(status).unwrap_or(Status::Internal));
        }
        let thread = Thread::from_handle(Handle::from_raw(raw));
        let top = stack + VP_STACK_SIZE - 8;
        let entry = vp_thread as extern "C" fn(usize, usize) -> ! as usize;
        if let Err(s) = thread.start(entry, top, Arc::as_ptr(shared) as usize, 0) {
            // SAFETY: the thread never started; the stack is unused.
            let _ = unsafe { self.vmar.unmap(stack, VP_STACK_SIZE) };
            return Err(s);
        }
        Ok((thread, stack))
    }
}

/// This process's handle (for `mx_thread_create`).
fn process_self() -> u32 {
    use core::sync::atomic::AtomicU32 as A;
    static SELF: A = A::new(HANDLE_INVALID);
    let h = SELF.load(Ordering::Relaxed);
    if h != HANDLE_INVALID {
        return h;
    }
    let taken = mxrt::take_handle(mx_abi::PA_PROC_SELF, 0).map_or(HANDLE_INVALID, Handle::into_raw);
    SELF.store(taken, Ordering::Relaxed);
    taken
}

impl Platform for Real {
    type Guest = Guest;
    type Vp = Arc<VpShared>;

    fn guest_create(&mut self) -> Result<Guest, HvStatus> {
        let resource = self.resource.as_ref().ok_or(HvStatus::NO_RESOURCES)?;
        let physmem = Vmo::create(0).map_err(no_resources)?;
        Guest::create(resource, &physmem).map_err(no_resources)
    }

    fn guest_trap(&mut self, guest: &Guest, kind: Trap, addr: u64, len: u64) -> Result<(), HvStatus> {
        let kind = match kind {
            Trap::Io => 1,
            Trap::Msr => 2,
            Trap::Cpuid => 3,
            Trap::Exception => 4,
            Trap::Vmcall => 5,
        };
        // SAFETY: no pointers.
        let status =
            unsafe { mx::sys::mx_guest_set_trap(guest.raw(), kind, addr as usize, len as usize, HANDLE_INVALID, 0) };
        mx::ok(status).map(drop).map_err(no_resources)
    }

    fn guest_map(&mut self, guest: &Guest, root: u64, gpa_page: u64, index: u64) -> Result<(), HvStatus> {
        // HvMapGpaPages lists INSUFFICIENT_MEMORY, not NO_RESOURCES, for a
        // mapping that cannot be made (the kernel's NO_MEMORY).
        let session = self.roots.get(&root).ok_or(HvStatus::INSUFFICIENT_MEMORY)?;
        guest.map(gpa_page * 4096, &session.memory, index * 4096, 4096).map_err(|_| HvStatus::INSUFFICIENT_MEMORY)
    }

    fn guest_unmap(&mut self, guest: &Guest, gpa_page: u64) {
        let _ = guest.unmap(gpa_page * 4096, 4096);
    }

    fn vp_create(&mut self, guest: &Guest, key: u64) -> Result<(Arc<VpShared>, VcpuRegs), HvStatus> {
        let shared = Arc::new(VpShared {
            key,
            guest: guest.raw(),
            port: self.port.raw(),
            vcpu: AtomicU32::new(HANDLE_INVALID),
            phase: AtomicU32::new(PHASE_STARTING),
            wake: Event::create().map_err(no_resources)?,
            apic: Vmo::create(4096).map_err(no_resources)?,
            regs: UnsafeCell::new(VcpuRegs::default()),
            exit: UnsafeCell::new(GuestExit::Created),
            thread: UnsafeCell::new(None),
        });
        let (thread, stack) = self.spawn(&shared).map_err(|s| {
            mxrt::println!("hyperv-server: cannot start a VP thread: {s}");
            HvStatus::NO_RESOURCES
        })?;
        // SAFETY: only the main thread touches `thread`.
        unsafe { *shared.thread.get() = Some((thread, stack)) };
        let deadline = mx::deadline_after(5_000_000_000);
        loop {
            match shared.phase.load(Ordering::Acquire) {
                PHASE_STOPPED => break,
                PHASE_FAILED => {
                    // SAFETY: FAILED: the VP thread no longer touches `exit`.
                    if let GuestExit::Failed(status) = unsafe { *shared.exit.get() } {
                        mxrt::println!("hyperv-server: vcpu_create: {status}");
                    }
                    self.vp_destroy(shared);
                    return Err(HvStatus::NO_RESOURCES);
                }
                _ if mx::time_monotonic() > deadline => {
                    self.vp_destroy(shared);
                    return Err(HvStatus::NO_RESOURCES);
                }
                _ => {
                    let _ = mx::nanosleep(mx::deadline_after(50_000));
                }
            }
        }
        // SAFETY: STOPPED: the main thread owns `regs`.
        let regs = unsafe { *shared.regs.get() };
        self.vps.insert(key, shared.clone());
        Ok((shared, regs))
    }

    fn vp_resume(&mut self, vp: &Arc<VpShared>, regs: &VcpuRegs) {
        if vp.phase.load(Ordering::Acquire) != PHASE_STOPPED {
            return;
        }
        // SAFETY: STOPPED: the main thread owns `regs` until it publishes GO.
        unsafe { *vp.regs.get() = *regs };
        vp.phase.store(PHASE_GO, Ordering::Release);
        let _ = vp.wake.handle().signal(Signals::empty(), WAKE);
        self.resumed = true;
    }

    fn vp_interrupt(&mut self, vp: &Arc<VpShared>, vector: u32) {
        let vcpu = vp.vcpu.load(Ordering::Acquire);
        if vcpu != HANDLE_INVALID {
            // SAFETY: no pointers.
            let _ = unsafe { mx::sys::mx_vcpu_interrupt(vcpu, vector) };
        }
    }

    fn vp_destroy(&mut self, vp: Arc<VpShared>) {
        self.vps.remove(&vp.key);
        // SAFETY: only the main thread touches `thread`.
        if let Some((thread, stack)) = unsafe { (*vp.thread.get()).take() } {
            // SAFETY: no pointers. The VP thread holds no lock and owns no
            // allocation, so it may die anywhere.
            let _ = unsafe { mx::sys::mx_task_kill(thread.raw()) };
            let _ = thread.handle().wait_one(Signals::THREAD_TERMINATED, mx::deadline_after(2_000_000_000));
            // SAFETY: the thread has ended; nothing uses its stack.
            let _ = unsafe { self.vmar.unmap(stack, VP_STACK_SIZE) };
        }
        let vcpu = vp.vcpu.swap(HANDLE_INVALID, Ordering::AcqRel);
        if vcpu != HANDLE_INVALID {
            drop(Handle::from_raw(vcpu));
        }
        drop(vp);
    }

    fn mem_read(&self, root: u64, offset: u64, out: &mut [u8]) -> bool {
        let Some(s) = self.roots.get(&root) else { return false };
        Session::read(s.memory_addr, proto::HV_ROOT_MEMORY_SIZE, offset, out)
    }

    fn mem_write(&mut self, root: u64, offset: u64, bytes: &[u8]) -> bool {
        let Some(s) = self.roots.get(&root) else { return false };
        Session::write(s.memory_addr, proto::HV_ROOT_MEMORY_SIZE, offset, bytes)
    }

    fn mem_set_bit(&mut self, root: u64, offset: u64, bit: u8) -> Option<bool> {
        let s = self.roots.get(&root)?;
        Session::set_bit(s.memory_addr, proto::HV_ROOT_MEMORY_SIZE, offset, bit)
    }

    fn synic_read(&self, root: u64, offset: usize, out: &mut [u8]) -> bool {
        let Some(s) = self.roots.get(&root) else { return false };
        Session::read(s.synic_addr, proto::HV_SYNIC_SIZE, offset as u64, out)
    }

    fn synic_write(&mut self, root: u64, offset: usize, bytes: &[u8]) -> bool {
        let Some(s) = self.roots.get(&root) else { return false };
        Session::write(s.synic_addr, proto::HV_SYNIC_SIZE, offset as u64, bytes)
    }

    fn synic_set_bit(&mut self, root: u64, offset: usize, bit: u8) -> Option<bool> {
        let s = self.roots.get(&root)?;
        Session::set_bit(s.synic_addr, proto::HV_SYNIC_SIZE, offset as u64, bit)
    }

    fn notify(&mut self, root: u64) {
        if let Some(s) = self.roots.get(&root) {
            let _ = s.event.handle().signal(Signals::empty(), Signals::from_bits_retain(proto::NOTIFY_SIGNAL));
        }
    }
}
