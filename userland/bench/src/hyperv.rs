//! The Hyper-V server rows: a root client (the `+hyperv` grant) talking
//! to `bin/hyperv-server` (started before us as `+service=hyperv`).
//!
//! | row | one op |
//! |---|---|
//! | `hyperv_null_hypercall` | `HvGetPartitionId` (no input, 8-byte output) as a raw memory-convention call: one request to the server and its reply |
//! | `hyperv_intercept_rt` | the root resumes the VP (`HvSetVpRegisters`: RIP past the `OUT`, InterceptSuspend = 0); the guest's next `OUT 0x80` is intercepted; the root wakes (`wait_synic`), reads the message from SIM slot 0 and empties the slot |
//!
//! The intercept guest is one child partition with one VP looping on `OUT
//! 0x80, AL` under an I/O intercept of port 0x80. End-of-message is
//! requested only when the message says MessagePending (TLFS: otherwise
//! the emptied slot takes the next message directly); with one VP that is
//! suspended until resumed it never does, and the row says how many it sent.
//! Child GPA layout: PML4 0x1000, PDPT 0x2000, PD 0x3000 (one 2 MiB page at
//! 0), code at 0x4000.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hv::abi::*;
use hv::client::Root;
use mx::hypervisor::Guest;
use mx::{Resource, Vmo};

use crate::harness::{timed, Config};

/// The rows, in the order they run.
pub const ROWS: &[&str] = &["hyperv_null_hypercall", "hyperv_intercept_rt"];

const PML4: u64 = 0x1000;
const CODE: u64 = 0x4000;
const STACK_TOP: u64 = 0x5000;
/// GPA pages 0-4: page tables, code (the stack page is never touched).
const GUEST_PAGES: usize = 5;
/// Pool of the child: initialization 16, the VP 4, the one 2 MiB block of mappings 1.
const CHILD_POOL: usize = 21;
/// Pool of the root itself: the child partition's 1.
const ROOT_POOL: usize = 1;
const PORT: u16 = 0x80;
/// How long one intercept may take to arrive before the row fails.
const MESSAGE_TIMEOUT_NS: u64 = 10_000_000_000;

/// The guest: `OUT 0x80, AL` forever (64-bit code at CODE).
const GUEST_CODE: &[u8] = &[
    0xE6, 0x80, // out 0x80, al
    0xEB, 0xFC, // jmp back to the out
];

fn hv_err<T>(what: &str, r: Result<T, HvStatus>) -> Result<T, String> {
    r.map_err(|s| format!("{what}:{s:?}"))
}

fn rep_err<T>(what: &str, r: Result<T, hv::client::RepError>) -> Result<T, String> {
    r.map_err(|e| format!("{what}:{:?}_after_{}", e.status, e.completed))
}

/// Runs the Hyper-V server rows. `hyp` (a HYPERVISOR resource, if we have
/// one) only tells whether guests can run here: without SVM the intercept
/// row says `error=no_svm`, which is not a failure of this program.
pub fn run(cfg: &mut Config, hyp: Option<Resource>) {
    if !ROWS.iter().any(|r| cfg.selected(r)) {
        return;
    }
    let root = match Root::connect() {
        Ok(root) => root,
        Err(e) => return ROWS.iter().for_each(|r| cfg.error(r, &format!("hyperv_connect:{e:?}_(grant_+hyperv)"))),
    };
    null_hypercall_row(cfg, &root);
    let name = "hyperv_intercept_rt";
    if !cfg.selected(name) {
        return;
    }
    let no_svm = hyp.is_some_and(|hyp| {
        let probe = Vmo::create(4096).and_then(|vmo| Guest::create(&hyp, &vmo));
        matches!(probe, Err(mx::Status::NotSupported))
    });
    if no_svm {
        mxrt::println!("BENCH {name} error=no_svm");
        return;
    }
    if let Err(e) = intercept_row(cfg, &root, name) {
        cfg.error(name, &e);
    }
}

/// The cheapest hypercall a root makes through the server.
fn null_hypercall_row(cfg: &mut Config, root: &Root) {
    let name = "hyperv_null_hypercall";
    if !cfg.selected(name) {
        return;
    }
    let Some(out) = root.alloc_pages(1) else { return cfg.error(name, "out_of_root_memory") };
    let control = Control::simple(call::GET_PARTITION_ID).raw();
    let me = root.partition_id();
    cfg.run(name, "call=HvGetPartitionId convention=memory", u64::MAX, |n| {
        timed(n, || {
            let result = HvResult::from_raw(root.hypercall(control, 0, out as u64));
            if !result.status.is_success() {
                return Err(format!("HvGetPartitionId:{:?}", result.status));
            }
            let mut id = [0u8; 8];
            root.read_memory(out, &mut id);
            match u64::from_le_bytes(id) {
                id if id == me => Ok(()),
                id => Err(format!("HvGetPartitionId_gave_{id}_not_{me}")),
            }
        })
    });
    root.free_pages(out, 1);
}

/// Root pages: their address and page numbers.
fn pages(root: &Root, n: usize) -> Result<(usize, Vec<u64>), String> {
    let addr = root.alloc_pages(n).ok_or_else(|| String::from("out_of_root_memory"))?;
    Ok((addr, (0..n as u64).map(|i| Root::page_number(addr) + i).collect()))
}

/// A child partition running [`GUEST_CODE`] on VP 0, and the root pages
/// it uses; [`Child::tear_down`] finalizes it, withdraws its pool and
/// deletes it.
struct Child<'a> {
    root: &'a Root,
    id: u64,
    root_pool: (usize, Vec<u64>),
    pool: (usize, Vec<u64>),
    memory: (usize, Vec<u64>),
}

impl<'a> Child<'a> {
    fn create(root: &'a Root) -> Result<Child<'a>, String> {
        let me = root.partition_id();
        let root_pool = pages(root, ROOT_POOL)?;
        rep_err("deposit_into_root", root.deposit_memory(me, &root_pool.1))?;
        let id = hv_err("HvCreatePartition", root.create_partition(0, ProximityDomainInfo::ANY))?;
        let pool = pages(root, CHILD_POOL)?;
        let memory = pages(root, GUEST_PAGES)?;
        let child = Child { root, id, root_pool, pool, memory };
        match child.start() {
            Ok(()) => Ok(child),
            Err(e) => {
                // Best effort; closing the connection frees whatever is left.
                let _ = child.tear_down();
                Err(e)
            }
        }
    }

    /// Pool, initialization, memory, VP 0, the intercept; then VP 0 runs.
    fn start(&self) -> Result<(), String> {
        let (root, id) = (self.root, self.id);
        rep_err("deposit_into_child", root.deposit_memory(id, &self.pool.1))?;
        hv_err("HvInitializePartition", root.initialize_partition(id))?;
        let base = self.memory.0;
        let put = |gpa: u64, bytes: &[u8]| root.write_memory(base + gpa as usize, bytes);
        put(PML4, &0x2003u64.to_le_bytes());
        put(0x2000, &0x3003u64.to_le_bytes());
        put(0x3000, &0x83u64.to_le_bytes());
        put(CODE, GUEST_CODE);
        rep_err("HvMapGpaPages", root.map_gpa_pages(id, 0, map_flags::ALL, &self.memory.1))?;
        hv_err("HvCreateVp", root.create_vp(id, ProximityDomainInfo::ANY, 0, 0))?;
        let d = InterceptDescriptor { intercept_type: intercept::X64_IO_PORT, parameter: u64::from(PORT) };
        hv_err("HvInstallIntercept", root.install_intercept(id, intercept::ACCESS_WRITE, d))?;
        let start = [(reg::RIP, u128::from(CODE)), (reg::RSP, u128::from(STACK_TOP)), (reg::CR3, u128::from(PML4))];
        rep_err("HvSetVpRegisters", root.set_vp_registers(id, 0, &start))?;
        hv_err("start_the_VP", root.set_vp_register(id, 0, reg::EXPLICIT_SUSPEND, 0))
    }

    /// Finalize (stops the VP), withdraw every pool page, delete; then the
    /// root's own deposit comes back too.
    fn tear_down(self) -> Result<(), String> {
        let root = self.root;
        let finalized = hv_err("HvFinalizePartition", root.finalize_partition(self.id));
        // A message of the last intercept may still sit in the slot.
        root.clear_message(0);
        let mut back = [0u64; CHILD_POOL];
        let withdrawn = rep_err("HvWithdrawMemory", root.withdraw_memory(self.id, ProximityDomainInfo::ANY, &mut back));
        let deleted = hv_err("HvDeletePartition", root.delete_partition(self.id));
        let mut back = [0u64; ROOT_POOL];
        let me = root.partition_id();
        let root_back = rep_err("withdraw_from_root", root.withdraw_memory(me, ProximityDomainInfo::ANY, &mut back));
        for (addr, list) in [&self.pool, &self.memory, &self.root_pool] {
            root.free_pages(*addr, list.len());
        }
        finalized?;
        withdrawn?;
        deleted?;
        root_back.map(drop)
    }
}

/// Waits for the next intercept message in SIM slot 0 and empties the
/// slot (end-of-message only when another message is pending); it must
/// be VP 0's `OUT` at CODE. Returns whether end-of-message was sent.
fn take_intercept(root: &Root) -> Result<(InterceptHeader, bool), String> {
    let deadline = mx::deadline_after(MESSAGE_TIMEOUT_NS);
    let m = loop {
        let m = root.message(0);
        if m.header.message_type != message_type::NONE {
            break m;
        }
        hv_err("wait_synic", root.wait_synic(deadline))?;
    };
    root.clear_message(0);
    let pending = m.header.message_flags & MessageHeader::MESSAGE_PENDING != 0;
    if pending {
        hv_err("end_of_message", root.end_of_message(0))?;
    }
    match IoPortIntercept::read(&m.payload) {
        Some(io)
            if m.header.message_type == message_type::X64_IO_PORT_INTERCEPT
                && io.port_number == PORT
                && io.header.vp_index == 0
                && io.header.rip == CODE
                && io.header.instruction_length == 2 =>
        {
            Ok((io.header, pending))
        }
        _ => Err(unexpected(&m)),
    }
}

#[cold]
fn unexpected(m: &HvMessage) -> String {
    let io = IoPortIntercept::read(&m.payload);
    format!("unexpected_message_type_{:#x}:{io:?}", m.header.message_type)
}

/// Guest OUT → intercept message → root resumes the VP.
fn intercept_row(cfg: &mut Config, root: &Root, name: &str) -> Result<(), String> {
    let child = Child::create(root)?;
    let id = child.id;
    let mut eoms = 0u64;
    let mut ops = 0u64;
    let first = take_intercept(root);
    let measured = first.map(|(mut last, pending)| {
        eoms += u64::from(pending);
        // The extra fields are printed before we know the EOM count, so
        // it is reported after the row (and checked in the tests).
        cfg.run(name, "exit=out resume=HvSetVpRegisters(RIP,InterceptSuspend) eom=if_pending", u64::MAX, |n| {
            ops += n;
            timed(n, || {
                let rip = last.rip + u64::from(last.instruction_length);
                let resume = [(reg::RIP, u128::from(rip)), (reg::INTERCEPT_SUSPEND, 0)];
                rep_err("resume", root.set_vp_registers(id, 0, &resume))?;
                let (header, pending) = take_intercept(root)?;
                eoms += u64::from(pending);
                last = header;
                Ok(())
            })
        });
    });
    let torn_down = child.tear_down();
    measured?;
    torn_down?;
    mxrt::println!("bench: {name}: {ops} round trips, {eoms} end-of-message requests");
    Ok(())
}
