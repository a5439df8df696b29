//! The Hyper-V fuzzer (`fuzz.mode=hyperv`, `etc/hyperv-fuzz.rc`): a root
//! partition of the personality server (`+hyperv`) issuing random
//! hypercalls, and children whose guests issue random hypercalls of their
//! own.
//!
//! Steps, `fuzz.iters` of them from `fuzz.seed`, in batches of 100:
//!
//! - raw hypercalls (most steps): a call code (known, unknown, any), the
//!   fast bit, rep counts and starts, now and then a reserved bit; for
//!   memory calls input and output addresses that are aligned, misaligned,
//!   straddling pages or the end of root memory, or outside it; input
//!   bytes random but seeded with valid-looking values (our partition and
//!   child ids, VP indices, port and connection ids, root page numbers);
//!   for fast calls the two input qwords drawn the same way; also
//!   requests of unknown ops and end-of-message for random SINTs;
//! - sequences that build children: deposit, create, initialize, map a
//!   guest, create VPs and start them; the guest's code issues random
//!   VMMCALLs (RCX, RDX, R8 random: call codes, GPAs mapped or not,
//!   misaligned, straddling) and random RDMSR/WRMSR/CPUID of the Hyper-V
//!   MSRs and leaves, each result stored in its memory; ports and
//!   connections on them; and teardown (finalize, withdraw, delete, VP
//!   deletion) while the VPs run;
//! - draining the root's SINT0 (intercept and unrecoverable-exception
//!   messages) with end-of-message, and resuming intercept-suspended VPs.
//!
//! Every result, the root's and the guests', must carry a status
//! `hv::abi` defines, no bit outside the status and reps-completed fields,
//! and at most the rep count of reps. After every batch the server must
//! answer a ping (`HvGetPartitionId` gives our id). At the end the client
//! disconnects; init's count check after the program shows whether the
//! server freed everything.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hv::abi::{self, call, reg, Control, HvResult, HvStatus, PortInfo, ProximityDomainInfo};
use hv::client::Root;
use hv::proto;

use crate::config::Config;
use crate::rng::Rng;

const PAGE: u64 = 4096;
const BATCH: u64 = 100;
/// Children alive at once, and VPs per child.
const MAX_CHILDREN: usize = 3;
const MAX_VPS: u32 = 2;

/// The child guest's layout (GPA): page tables at 0 (the VP starts with
/// CR3 = 0), GDT and IDT pseudo-descriptors, the hypercall page, one
/// result qword per code slot, the IDT and its handlers, the stack, the
/// input and output pages of slow calls, the code in 64-byte slots.
const GDTR: u64 = 0x3000;
const IDTR: u64 = 0x3100;
const HYPERCALL_PAGE: u64 = 0x4000;
const RESULTS: u64 = 0x5000;
const IDT: u64 = 0x6000;
const HANDLERS: u64 = 0x7000;
const STACK_TOP: u64 = 0x9000;
const INPUT: u64 = 0xa000;
const OUTPUT: u64 = 0xb000;
const CODE: u64 = 0x10000;
const SLOT: u64 = 64;
const SLOTS: u64 = 96;
const GUEST_PAGES: u64 = (CODE + SLOTS * SLOT).div_ceil(PAGE);
/// What a result qword holds before the guest got there.
const NOT_RUN: u64 = u64::MAX;

/// Call codes TLFS 2.0A defines (and two it reserves: 0x53, 0x54).
const CODES: [u16; 32] = [
    call::CREATE_PARTITION,
    call::INITIALIZE_PARTITION,
    call::FINALIZE_PARTITION,
    call::DELETE_PARTITION,
    call::GET_PARTITION_PROPERTY,
    call::SET_PARTITION_PROPERTY,
    call::GET_PARTITION_ID,
    call::GET_NEXT_CHILD_PARTITION,
    call::DEPOSIT_MEMORY,
    call::WITHDRAW_MEMORY,
    call::GET_MEMORY_BALANCE,
    call::MAP_GPA_PAGES,
    call::UNMAP_GPA_PAGES,
    call::INSTALL_INTERCEPT,
    call::CREATE_VP,
    call::DELETE_VP,
    call::GET_VP_REGISTERS,
    call::SET_VP_REGISTERS,
    call::TRANSLATE_VIRTUAL_ADDRESS,
    call::ASSERT_VIRTUAL_INTERRUPT,
    call::CLEAR_VIRTUAL_INTERRUPT,
    call::CREATE_PORT,
    call::DELETE_PORT,
    call::CONNECT_PORT,
    call::GET_PORT_PROPERTY,
    call::DISCONNECT_PORT,
    call::POST_MESSAGE,
    call::SIGNAL_EVENT,
    0x53,
    0x54,
    0x0001,
    0x005e,
];

struct Child {
    id: u64,
    vps: u32,
    /// Root address of the guest's GPA 0 (`GUEST_PAGES` pages), and the
    /// control value of each code slot's VMMCALL (0: not a call).
    memory: usize,
    controls: Vec<u64>,
    /// Pages deposited into its pool.
    deposited: Vec<u64>,
}

#[derive(Default)]
struct Tally {
    calls: u64,
    guest_results: u64,
    messages: u64,
    children: u64,
    deleted: u64,
    vps: u64,
    statuses: Vec<(u16, u64)>,
}

impl Tally {
    fn status(&mut self, s: HvStatus) {
        match self.statuses.iter_mut().find(|(k, _)| *k == s.0) {
            Some((_, n)) => *n += 1,
            None => self.statuses.push((s.0, 1)),
        }
    }
}

struct Fuzzer {
    root: Root,
    rng: Rng,
    children: Vec<Child>,
    /// Ids seen: partitions we created (also deleted ones), ports and
    /// connections we tried.
    partition_ids: Vec<u64>,
    port_ids: Vec<u32>,
    /// Three contiguous scratch pages for raw calls' input and output.
    scratch: usize,
    tally: Tally,
}

pub fn run(cfg: &Config) -> i32 {
    let root = match Root::connect() {
        Ok(r) => r,
        Err(e) => {
            mxrt::println!("hyperv-fuzz: FAIL cannot connect to the server (grant +hyperv): {e:?}");
            return 1;
        }
    };
    let Some(scratch) = root.alloc_pages(3) else {
        mxrt::println!("hyperv-fuzz: FAIL no root memory for scratch pages");
        return 1;
    };
    mxrt::println!("hyperv-fuzz: seed={} iters={} root partition {}", cfg.seed, cfg.iters, root.partition_id());
    let start = mx::time_monotonic();
    let mut f = Fuzzer {
        rng: Rng::new(Rng::mix(&[cfg.seed, 0x6876_6675_7a7a])),
        partition_ids: Vec::from([root.partition_id()]),
        root,
        children: Vec::new(),
        port_ids: Vec::from([1, 2, 0x00ff_ffff]),
        scratch,
        tally: Tally::default(),
    };
    let batches = cfg.iters.div_ceil(BATCH);
    for batch in 0..batches {
        if cfg.trace {
            mxrt::println!("hyperv-fuzz: batch {batch}");
        }
        let result = (0..BATCH).try_for_each(|_| f.step()).and_then(|()| f.after_batch());
        if let Err(why) = result {
            mxrt::println!("hyperv-fuzz: FAIL seed={} batch={batch}: {why}", cfg.seed);
            return 1;
        }
    }
    let children = core::mem::take(&mut f.children);
    if let Err(why) = children.iter().try_for_each(|child| f.check_guest(child, true)) {
        mxrt::println!("hyperv-fuzz: FAIL seed={}: {why}", cfg.seed);
        return 1;
    }
    let t = &f.tally;
    let mut statuses: Vec<String> =
        t.statuses.iter().map(|&(s, n)| format!("{}={n}", HvStatus(s).name().unwrap_or("?"))).collect();
    statuses.sort_unstable();
    let ms = (mx::time_monotonic() - start) / 1_000_000;
    mxrt::println!(
        "hyperv-fuzz: root calls={} guest results={} messages={} children={} deleted={} vps={}",
        t.calls,
        t.guest_results,
        t.messages,
        t.children,
        t.deleted,
        t.vps
    );
    for chunk in statuses.chunks(5) {
        mxrt::println!("hyperv-fuzz: statuses: {}", chunk.join(" "));
    }
    // Disconnect: the server must free every child, VP and mapping.
    drop(f);
    mxrt::println!(
        "hyperv-fuzz: PASS {} steps in {}.{:03} s, seed {}, the server answered every batch",
        batches * BATCH,
        ms / 1000,
        ms % 1000,
        cfg.seed
    );
    0
}

/// A result value: a status `hv::abi` names, nothing outside the status
/// and reps-completed fields, at most `rep_count` reps.
fn check_result(raw: u64, control: u64, who: &str) -> Result<HvResult, String> {
    let result = HvResult::from_raw(raw);
    let rep_count = Control::from_raw(control).rep_count;
    if result.status.name().is_none() || raw & !0x0000_0fff_0000_ffff != 0 || result.reps_completed > rep_count {
        return Err(format!("{who}: control {control:#x} gave result {raw:#x} (reps allowed: {rep_count})"));
    }
    Ok(result)
}

impl Fuzzer {
    fn step(&mut self) -> Result<(), String> {
        match self.rng.below(100) {
            0..=69 => self.raw_call(),
            70..=74 => self.odd_request(),
            75..=79 => self.build_child(),
            80..=82 => self.ports(),
            83..=85 => self.intercept(),
            86..=89 => self.teardown(),
            _ => self.drain(),
        }
    }

    /// A value for an id-like field.
    fn interesting(&mut self) -> u64 {
        let rng = &mut self.rng;
        match rng.below(12) {
            0 | 1 => rng.pick(&self.partition_ids),
            2 => abi::PARTITION_ID_SELF,
            3 => rng.pick(&[0u64, 1, 2, 7, 8, u64::from(abi::VP_INDEX_ANY), u64::from(abi::VP_INDEX_SELF)]),
            4 => u64::from(rng.pick(&self.port_ids)),
            5 => Root::page_number(self.scratch) + rng.below(3),
            6 => {
                let (base, size) = self.root.memory();
                Root::page_number(base) + rng.below(size as u64 / PAGE + 2)
            }
            7 => rng.pick(&[0x4000_0000u64, 0x4000_0001, 0x4000_0090, 0x1_0000, 0x2_0000, 0x6_0000]),
            8 => u64::from(rng.next() as u32),
            9 => rng.below(32),
            _ => rng.next(),
        }
    }

    /// A root address for a memory call's input or output block.
    fn address(&mut self) -> u64 {
        let (base, size) = self.root.memory();
        let scratch = self.scratch as u64;
        let rng = &mut self.rng;
        match rng.below(10) {
            0..=4 => scratch + rng.below(3) * PAGE,
            5 => scratch + rng.below(3 * PAGE / 8) * 8,
            6 => scratch + PAGE - 8 * rng.below(3),
            7 => (base + size) as u64 - rng.below(2) * PAGE - 8 * rng.below(2),
            8 => rng.pick(&[0, 8, base as u64 - PAGE, (base + size) as u64, 1 << 47]),
            _ => rng.next(),
        }
    }

    fn raw_call(&mut self) -> Result<(), String> {
        let rng = &mut self.rng;
        let code = match rng.below(10) {
            0..=6 => rng.pick(&CODES),
            7 => rng.below(0x40) as u16,
            8 => 0x5e + rng.below(0x40) as u16,
            _ => rng.next() as u16,
        };
        let fast = rng.chance(25);
        let (count, start) = match rng.below(10) {
            0..=4 => (0, 0),
            5..=7 => (1 + rng.below(8), rng.below(2)),
            8 => (rng.below(0x1000), rng.below(0x1000)),
            _ => (0, 1 + rng.below(3)),
        };
        let mut control = Control { code, fast, rep_count: count as u16, rep_start: start as u16 }.raw();
        if rng.chance(4) {
            let bit = rng.pick(&[17u64, 20, 27, 31, 44, 47, 60, 63]);
            control |= 1 << bit;
        }
        let (input, output) = if fast {
            (self.interesting(), self.interesting())
        } else {
            self.fill_scratch();
            (self.address(), self.address())
        };
        let raw = self.root.hypercall(control, input, output);
        let result = check_result(raw, control, &format!("root call (input {input:#x}, output {output:#x})"))?;
        self.tally.calls += 1;
        self.tally.status(result.status);
        // The server answers a broken connection nowhere: a dead server
        // shows as OPERATION_FAILED here, and the ping fails.
        Ok(())
    }

    /// The scratch pages: random qwords, many of them id-like.
    fn fill_scratch(&mut self) {
        let mut bytes = Vec::with_capacity(3 * PAGE as usize);
        for _ in 0..3 * PAGE / 8 {
            let q = if self.rng.chance(50) { self.interesting() } else { self.rng.next() };
            bytes.extend_from_slice(&q.to_le_bytes());
        }
        self.root.write_memory(self.scratch, &bytes);
    }

    /// Unknown ops, and end-of-message for any SINT.
    fn odd_request(&mut self) -> Result<(), String> {
        let (op, control) = if self.rng.chance(50) {
            (proto::OP_END_OF_MESSAGE, self.rng.below(20))
        } else {
            let any = self.rng.next() as u32;
            (self.rng.pick(&[0u32, 3, 0xffff_ffff, any]), self.rng.next())
        };
        let raw = self
            .root
            .request(op, control, self.rng.next(), self.rng.next())
            .map_err(|s| format!("request op {op}: the server did not answer: {s:?}"))?;
        let result = check_result(raw, 0, &format!("request op {op} control {control:#x}"))?;
        if op != proto::OP_END_OF_MESSAGE && result.status != HvStatus::INVALID_HYPERCALL_CODE {
            return Err(format!("request of unknown op {op} gave {:?}", result.status));
        }
        self.tally.status(result.status);
        Ok(())
    }

    /// A typed call's status must be one `hv::abi` names.
    fn typed<T>(&mut self, what: &str, r: Result<T, HvStatus>) -> Result<Option<T>, String> {
        self.tally.calls += 1;
        match r {
            Ok(v) => {
                self.tally.status(HvStatus::SUCCESS);
                Ok(Some(v))
            }
            Err(s) if s.name().is_some() => {
                self.tally.status(s);
                Ok(None)
            }
            Err(s) => Err(format!("{what} gave {s:?}")),
        }
    }

    fn deposit(&mut self, id: u64, n: usize) -> Result<Vec<u64>, String> {
        let Some(addr) = self.root.alloc_pages(n) else { return Ok(Vec::new()) };
        let pages: Vec<u64> = (0..n as u64).map(|i| Root::page_number(addr) + i).collect();
        match self.root.deposit_memory(id, &pages) {
            Ok(()) => Ok(pages),
            Err(e) => {
                self.typed::<()>("deposit", Err(e.status))?;
                let done = (e.completed as usize).min(n);
                self.root.free_pages(addr + done * PAGE as usize, n - done);
                Ok(pages[..done].to_vec())
            }
        }
    }

    /// Creates, initializes and starts a child whose guest issues random
    /// hypercalls and MSR/CPUID accesses; any step may fail (with a named
    /// status), leaving the child as far as it got.
    fn build_child(&mut self) -> Result<(), String> {
        if self.children.len() >= MAX_CHILDREN {
            return self.teardown();
        }
        let me = self.root.partition_id();
        self.deposit(me, 1)?;
        let created = self.root.create_partition(0, ProximityDomainInfo::ANY);
        let Some(id) = self.typed("create partition", created)? else {
            return Ok(());
        };
        self.partition_ids.push(id);
        self.tally.children += 1;
        let vps = 1 + self.rng.below(u64::from(MAX_VPS)) as u32;
        let deposited = self.deposit(id, 16 + 4 * vps as usize + 2)?;
        let Some(memory) = self.root.alloc_pages(GUEST_PAGES as usize) else {
            self.children.push(Child { id, vps: 0, memory: 0, controls: Vec::new(), deposited });
            return Ok(());
        };
        let controls = self.guest_image(memory);
        self.children.push(Child { id, vps: 0, memory, controls, deposited });
        let init = self.root.initialize_partition(id);
        self.typed("initialize", init)?;
        let pages: Vec<u64> = (0..GUEST_PAGES).map(|i| Root::page_number(memory) + i).collect();
        let mapped = self.root.map_gpa_pages(id, 0, abi::map_flags::ALL, &pages).map_err(|e| e.status);
        self.typed("map guest", mapped)?;
        for vp in 0..vps {
            let created = self.root.create_vp(id, ProximityDomainInfo::ANY, vp, 0);
            if self.typed("create vp", created)?.is_none() {
                continue;
            }
            self.tally.vps += 1;
            if let Some(c) = self.children.last_mut() {
                c.vps = vp + 1;
            }
            let loops = self.rng.pick(&[1u64, 2, 20, 1000]);
            let regs = [
                (reg::RIP, u128::from(CODE)),
                (reg::RSP, u128::from(STACK_TOP - u64::from(vp) * 0x800)),
                (reg::R15, u128::from(loops)),
            ];
            let set = self.root.set_vp_registers(id, vp, &regs).map_err(|e| e.status);
            self.typed("set registers", set)?;
            let start = self.root.set_vp_register(id, vp, reg::EXPLICIT_SUSPEND, 0);
            self.typed("start vp", start)?;
        }
        Ok(())
    }

    /// Writes the guest's memory at root address `memory`; the control
    /// value of each slot's VMMCALL.
    fn guest_image(&mut self, memory: usize) -> Vec<u64> {
        let words = |w: &[u64]| -> Vec<u8> { w.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let at = |gpa: u64| memory + gpa as usize;
        let mut image: Vec<(u64, Vec<u8>)> = alloc::vec![
            (0, words(&[0x1003])),
            (0x1000, words(&[0x2003])),
            (0x2000, words(&(0..512u64).map(|i| (i << 21) | 0x83).collect::<Vec<_>>())),
            // GDTR at 0x3000 (limit, base 0x3010), then null, code64, data.
            (GDTR, words(&[0x17 | (GDTR + 0x10) << 16, 0, 0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff])),
            (IDTR, words(&[0x1ff | IDT << 16, 0])),
            (RESULTS, words(&[NOT_RUN; (PAGE / 8) as usize])),
        ];
        // Exceptions go on at the next slot.
        let mut idt = Vec::new();
        let mut handlers = Vec::new();
        for vector in 0..32u64 {
            let handler = HANDLERS + vector * 32;
            let low = (handler & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((handler >> 16) & 0xffff) << 48;
            idt.extend_from_slice(&words(&[low, handler >> 32]));
            let start = handlers.len();
            if crate::guestmodel::has_error_code(vector as u8) {
                handlers.extend_from_slice(&[0x48, 0x83, 0xc4, 0x08]); // add rsp, 8
            }
            handlers.extend_from_slice(&[0x48, 0x83, 0x24, 0x24, 0xc0]); // and qword [rsp], -64
            handlers.extend_from_slice(&[0x48, 0x83, 0x04, 0x24, 0x40]); // add qword [rsp], 64
            handlers.extend_from_slice(&[0x48, 0xcf]); // iretq
            handlers.resize(start + 32, 0x90);
        }
        image.push((IDT, idt));
        image.push((HANDLERS, handlers));
        let mut input = Vec::new();
        for _ in 0..2 * PAGE / 8 {
            let q = if self.rng.chance(50) { self.interesting() } else { self.rng.next() };
            input.extend_from_slice(&q.to_le_bytes());
        }
        image.push((INPUT, input));
        let (code, controls) = self.guest_code();
        image.push((CODE, code));
        for (gpa, bytes) in &image {
            self.root.write_memory(at(*gpa), bytes);
        }
        controls
    }

    /// The code slots: a prologue (LGDT, LIDT, and mostly the hypercall
    /// page enabled), then VMMCALLs, MSR and CPUID accesses; R15 times
    /// over, then HLT.
    fn guest_code(&mut self) -> (Vec<u8>, Vec<u64>) {
        let mut c: Vec<u8> = Vec::new();
        let mut controls = Vec::new();
        let imm32 = |c: &mut Vec<u8>, v: u32| c.extend_from_slice(&v.to_le_bytes());
        let imm64 = |c: &mut Vec<u8>, v: u64| c.extend_from_slice(&v.to_le_bytes());
        // lgdt [GDTR]; lidt [IDTR]
        c.extend_from_slice(&[0x0f, 0x01, 0x14, 0x25]);
        imm32(&mut c, GDTR as u32);
        c.extend_from_slice(&[0x0f, 0x01, 0x1c, 0x25]);
        imm32(&mut c, IDTR as u32);
        if self.rng.chance(85) {
            // GUEST_OS_ID, then HYPERCALL = page | enable.
            for (msr, value) in
                [(abi::msr::GUEST_OS_ID, 0x8100_0000_0000_0001u64), (abi::msr::HYPERCALL, HYPERCALL_PAGE | 1)]
            {
                c.push(0xb9);
                imm32(&mut c, msr);
                c.push(0xb8);
                imm32(&mut c, value as u32);
                c.push(0xba);
                imm32(&mut c, (value >> 32) as u32);
                c.extend_from_slice(&[0x0f, 0x30]);
            }
        }
        let body = 1 + (c.len() as u64).div_ceil(SLOT);
        controls.resize(body as usize, 0);
        c.resize((body * SLOT) as usize, 0x90);
        let n = 8 + self.rng.below(SLOTS - body - 2);
        for slot in body..body + n {
            match self.rng.below(10) {
                0..=5 => {
                    let control = self.guest_control();
                    let fast = control & Control::FAST != 0;
                    let (rdx, r8) = if fast {
                        (self.interesting(), self.interesting())
                    } else {
                        (self.guest_gpa(INPUT), self.guest_gpa(OUTPUT))
                    };
                    c.extend_from_slice(&[0x48, 0xb9]); // mov rcx, imm64
                    imm64(&mut c, control);
                    c.extend_from_slice(&[0x48, 0xba]); // mov rdx, imm64
                    imm64(&mut c, rdx);
                    c.extend_from_slice(&[0x49, 0xb8]); // mov r8, imm64
                    imm64(&mut c, r8);
                    c.extend_from_slice(&[0x0f, 0x01, 0xd9]); // vmmcall
                    c.extend_from_slice(&[0x48, 0x89, 0x04, 0x25]); // mov [RESULTS + 8 * slot], rax
                    imm32(&mut c, (RESULTS + 8 * slot) as u32);
                    controls.push(control);
                }
                6..=8 => {
                    let msr = match self.rng.below(4) {
                        0 => abi::msr::GUEST_OS_ID + self.rng.below(3) as u32,
                        1 => abi::msr::SCONTROL + self.rng.below(5) as u32,
                        2 => abi::msr::SINT0 + self.rng.below(16) as u32,
                        _ => 0x4000_0000 + self.rng.below(0x100) as u32,
                    };
                    c.push(0xb9);
                    imm32(&mut c, msr);
                    c.push(0xb8);
                    imm32(&mut c, self.rng.next() as u32);
                    c.push(0xba);
                    imm32(&mut c, if self.rng.chance(70) { 0 } else { self.rng.next() as u32 });
                    c.extend_from_slice(if self.rng.chance(50) { &[0x0f, 0x30] } else { &[0x0f, 0x32] });
                    controls.push(0);
                }
                _ => {
                    c.push(0xb8);
                    imm32(&mut c, 0x4000_0000 + self.rng.below(0x10) as u32);
                    c.push(0xb9);
                    imm32(&mut c, self.rng.below(4) as u32);
                    c.extend_from_slice(&[0x0f, 0xa2]);
                    controls.push(0);
                }
            }
            c.resize(((slot + 1) * SLOT) as usize, 0x90);
        }
        // dec r15; jnz body; cli; hlt; jmp back to the hlt
        let back = CODE + body * SLOT;
        c.extend_from_slice(&[0x49, 0xff, 0xcf, 0x0f, 0x85]);
        let next = CODE + c.len() as u64 + 4;
        imm32(&mut c, back.wrapping_sub(next) as u32);
        c.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]);
        (c, controls)
    }

    fn guest_control(&mut self) -> u64 {
        let rng = &mut self.rng;
        let code = if rng.chance(85) { rng.pick(&CODES) } else { rng.next() as u16 };
        let mut control = Control { code, fast: rng.chance(40), rep_count: 0, rep_start: 0 };
        if rng.chance(25) {
            control.rep_count = 1 + rng.below(4) as u16;
            control.rep_start = rng.below(2) as u16;
        }
        let mut raw = control.raw();
        if rng.chance(4) {
            raw |= 1 << rng.pick(&[17u64, 30, 45, 61]);
        }
        raw
    }

    /// A guest-physical address for a slow call's block: the page, inside
    /// it, straddling its end, unmapped, or anything.
    fn guest_gpa(&mut self, page: u64) -> u64 {
        let rng = &mut self.rng;
        match rng.below(8) {
            0..=3 => page,
            4 => page + 8 * rng.below(PAGE / 8),
            5 => page + PAGE - 8,
            6 => rng.pick(&[GUEST_PAGES * PAGE, 1 << 30, 1 << 36, 1 << 47]),
            _ => rng.next(),
        }
    }

    /// Ports and connections on our children or ourselves, with ids from
    /// a small set so later calls find them.
    fn ports(&mut self) -> Result<(), String> {
        let owner = self.pick_partition();
        let port_id = self.rng.pick(&self.port_ids);
        let new_id = 1 + self.rng.below(6) as u32;
        if !self.port_ids.contains(&new_id) {
            self.port_ids.push(new_id);
        }
        match self.rng.below(5) {
            0 | 1 => {
                let info = if self.rng.chance(50) {
                    PortInfo::message(self.rng.below(17) as u32, self.rng.below(3) as u32)
                } else {
                    let mut p = PortInfo::message(self.rng.below(17) as u32, 0);
                    p.port_type = abi::port_type::EVENT;
                    p.base_flag_number = self.rng.below(2100) as u16;
                    p.flag_count = self.rng.below(64) as u16;
                    p
                };
                let other = self.pick_partition();
                let r = self.root.create_port(owner, new_id, other, &info);
                self.typed("create port", r)?;
            }
            2 => {
                let info = abi::ConnectionInfo {
                    port_type: 1 + self.rng.below(2) as u32,
                    padding: 0,
                    reserved: if self.rng.chance(90) { 0 } else { 1 },
                };
                let other = self.pick_partition();
                let r = self.root.connect_port(owner, new_id, other, port_id, &info);
                self.typed("connect port", r)?;
            }
            3 => {
                let payload = [self.rng.next() as u8; 32];
                let r = self.root.post_message(port_id, 1 + self.rng.below(3) as u32, 32, &payload);
                self.typed("post message", r)?;
                let r = self.root.signal_event(port_id, self.rng.below(8) as u16);
                self.typed("signal event", r)?;
            }
            _ => {
                let r = self.root.delete_port(owner, port_id);
                self.typed("delete port", r)?;
                let r = self.root.disconnect_port(owner, port_id);
                self.typed("disconnect port", r)?;
            }
        }
        Ok(())
    }

    /// An intercept on a child: I/O ports, MSRs, CPUID leaves and
    /// exceptions its guest uses (or not), any access mask.
    fn intercept(&mut self) -> Result<(), String> {
        let id = self.pick_partition();
        let rng = &mut self.rng;
        let (kind, parameter) = match rng.below(5) {
            0 => (abi::intercept::X64_IO_PORT, rng.pick(&[0x80u64, 0x81, 0xe9, 0x1_0000])),
            1 => (abi::intercept::X64_MSR, rng.pick(&[0u64, 0, 1])),
            2 => (abi::intercept::X64_CPUID, 0x4000_0000 + rng.below(0x10)),
            3 => (abi::intercept::X64_EXCEPTION, rng.pick(&[3u64, 6, 13, 14, 32])),
            _ => (rng.below(8) as u32, rng.next()),
        };
        let access = if rng.chance(90) { rng.below(8) as u32 } else { rng.next() as u32 };
        let r = self.root.install_intercept(id, access, abi::InterceptDescriptor { intercept_type: kind, parameter });
        self.typed("install intercept", r).map(drop)
    }

    fn pick_partition(&mut self) -> u64 {
        if !self.children.is_empty() && self.rng.chance(70) {
            let i = self.rng.below(self.children.len() as u64) as usize;
            self.children[i].id
        } else {
            self.root.partition_id()
        }
    }

    /// Deletes a VP or finalizes, drains and deletes a child (its VPs may
    /// be running).
    fn teardown(&mut self) -> Result<(), String> {
        if self.children.is_empty() {
            return Ok(());
        }
        let i = self.rng.below(self.children.len() as u64) as usize;
        let (id, vps) = (self.children[i].id, self.children[i].vps);
        if vps > 0 && self.rng.chance(30) {
            let r = self.root.delete_vp(id, self.rng.below(u64::from(vps)) as u32);
            self.typed("delete vp", r)?;
            return Ok(());
        }
        let r = self.root.finalize_partition(id);
        self.typed("finalize", r)?;
        let mut out = [0u64; 64];
        loop {
            match self.root.withdraw_memory(id, ProximityDomainInfo::ANY, &mut out) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.typed::<()>("withdraw", Err(e.status))?;
                    break;
                }
            }
        }
        let r = self.root.delete_partition(id);
        if self.typed("delete", r)?.is_some() {
            self.tally.deleted += 1;
            let child = self.children.swap_remove(i);
            self.check_guest(&child, true)?;
            // The pool was empty (delete needs it): its pages came back,
            // and the guest's were unmapped.
            for &page in &child.deposited {
                self.root.free_pages((page * PAGE) as usize, 1);
            }
            if child.memory != 0 {
                self.root.free_pages(child.memory, GUEST_PAGES as usize);
            }
        }
        Ok(())
    }

    /// The results the guest stored: each a result value as the root's.
    fn check_guest(&mut self, child: &Child, count: bool) -> Result<(), String> {
        if child.memory == 0 {
            return Ok(());
        }
        let mut bytes = [0u8; PAGE as usize];
        self.root.read_memory(child.memory + RESULTS as usize, &mut bytes);
        for (slot, &control) in child.controls.iter().enumerate() {
            let raw = u64::from_le_bytes(bytes[slot * 8..slot * 8 + 8].try_into().unwrap_or([0; 8]));
            if control == 0 || raw == NOT_RUN {
                continue;
            }
            let result = check_result(raw, control, &format!("partition {} guest call in slot {slot}", child.id))?;
            if count {
                self.tally.guest_results += 1;
                self.tally.status(result.status);
            }
        }
        Ok(())
    }

    /// Empties the root's SINT0 slot (intercepts, unrecoverable
    /// exceptions), and now and then lets an intercept-suspended VP go on.
    fn drain(&mut self) -> Result<(), String> {
        for _ in 0..4 {
            let m = self.root.message(0);
            if m.header.message_type == 0 {
                break;
            }
            self.tally.messages += 1;
            self.root.clear_message(0);
            let r = self.root.end_of_message(0);
            self.typed("end of message", r)?;
        }
        if !self.children.is_empty() && self.rng.chance(30) {
            let i = self.rng.below(self.children.len() as u64) as usize;
            let (id, vps) = (self.children[i].id, self.children[i].vps.max(1));
            let vp = self.rng.below(u64::from(vps)) as u32;
            let r = self.root.set_vp_register(id, vp, reg::INTERCEPT_SUSPEND, 0);
            self.typed("resume vp", r)?;
        }
        Ok(())
    }

    /// Drains messages, checks the guests' results so far, and pings.
    fn after_batch(&mut self) -> Result<(), String> {
        self.drain()?;
        let children = core::mem::take(&mut self.children);
        let checked = children.iter().try_for_each(|child| self.check_guest(child, false));
        self.children = children;
        checked?;
        match self.root.get_partition_id() {
            Ok(id) if id == self.root.partition_id() => Ok(()),
            other => Err(format!("ping (HvGetPartitionId) gave {other:?}")),
        }
    }
}
