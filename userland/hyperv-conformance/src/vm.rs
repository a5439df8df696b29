//! Children the cases build and tear down: [`Child`] (a partition of ours,
//! finalized, drained and deleted on drop) and [`Vm`] (an active child with
//! the script guest of [`crate::script`] mapped at GPA 0 and VP 0 ready to
//! start).

use alloc::format;
use alloc::vec::Vec;
use core::cell::RefCell;

use hv::abi::{self, HvResult, HvStatus};

use crate::ctx::{Ctx, PAGE};
use crate::harness::Failure;
use crate::mem;
use crate::script::{self, Op};

/// What `InitializePartition` draws from the child's pool (README, pools).
pub const INIT_PAGES: usize = 16;
/// What a VP draws.
pub const VP_PAGES: usize = 4;
/// A non-zero guest OS id (open-source encoding, Linux-like).
pub const GUEST_OS_ID: u64 = 0x8100_0000_0000_0001;
/// How long a guest may take to reach a point (TCG is slow, and the machine shared).
pub const GUEST_TIMEOUT_NS: u64 = 10_000_000_000;

/// Fails with the unexpected status of a setup step.
pub fn setup(what: &str, r: HvResult) -> Result<(), Failure> {
    if r.status == HvStatus::SUCCESS {
        Ok(())
    } else {
        Err(format!("setup: {what}: {:?} (reps {})", r.status, r.reps_completed))
    }
}

/// A partition of ours, torn down on drop.
pub struct Child<'a> {
    pub ctx: &'a Ctx,
    pub id: u64,
    /// Root pages mapped into it (recycled once it is deleted).
    mapped: RefCell<Vec<u64>>,
}

impl<'a> Child<'a> {
    /// A new, uninitialized child (our pool is topped up for its page).
    pub fn new(ctx: &'a Ctx) -> Result<Child<'a>, Failure> {
        ctx.root_pool_at_least(1).map_err(|r| format!("setup: root deposit: {r:?}"))?;
        let (r, id) = ctx.create_partition();
        setup("create partition", r)?;
        Ok(Child { ctx, id, mapped: RefCell::new(Vec::new()) })
    }

    /// A new active child whose pool keeps `extra` pages available.
    pub fn active(ctx: &'a Ctx, extra: usize) -> Result<Child<'a>, Failure> {
        let child = Child::new(ctx)?;
        child.deposit(INIT_PAGES + extra)?;
        setup("initialize", ctx.initialize(child.id))?;
        Ok(child)
    }

    /// Deposits `n` fresh pages.
    pub fn deposit(&self, n: usize) -> Result<Vec<u64>, Failure> {
        self.ctx.deposit_new(self.id, n).map_err(|r| format!("setup: deposit {n}: {r:?}"))
    }

    /// Maps `n` fresh root pages at `gpa_page` RWX; returns them.
    pub fn map_new(&self, gpa_page: u64, n: usize) -> Result<Vec<u64>, Failure> {
        let pages = self.ctx.pages(n);
        let r = self.ctx.map(self.id, gpa_page, abi::map_flags::ALL, &pages);
        self.mapped.borrow_mut().extend_from_slice(&pages[..r.reps_completed.min(n as u16) as usize]);
        if r.status != HvStatus::SUCCESS {
            self.ctx.recycle(&pages[r.reps_completed.min(n as u16) as usize..]);
        }
        setup("map", r)?;
        Ok(pages)
    }

    /// Records root pages the case mapped into this child itself.
    pub fn note_mapped(&self, pages: &[u64]) {
        self.mapped.borrow_mut().extend_from_slice(pages);
    }

    /// (available, in use) of its pool.
    pub fn balance(&self) -> Result<(u64, u64), Failure> {
        let (r, b) = self.ctx.balance(self.id);
        setup("balance", r)?;
        Ok(b)
    }
}

impl Drop for Child<'_> {
    fn drop(&mut self) {
        let _ = self.ctx.finalize(self.id);
        self.ctx.drain(self.id);
        if self.ctx.delete(self.id).status == HvStatus::SUCCESS {
            self.ctx.recycle(&self.mapped.borrow());
        }
    }
}

/// An active child running (once started) the script guest on VP 0.
pub struct Vm<'a> {
    pub child: Child<'a>,
    /// Our address of guest-physical 0.
    pub base: u64,
}

impl<'a> Vm<'a> {
    /// The guest's memory mapped, VP 0 created (suspended) with RIP and
    /// RSP set; `extra` pages stay available in the child's pool.
    pub fn new(ctx: &'a Ctx, extra: usize) -> Result<Vm<'a>, Failure> {
        let child = Child::active(ctx, 1 + VP_PAGES + extra)?;
        let base = ctx.contiguous(script::PAGES as usize).ok_or("setup: out of root memory")?;
        for (gpa, words) in script::page_tables() {
            mem::write(base + gpa, &mem::qwords(&words));
        }
        mem::write(base + script::CODE, script::code());
        let pages: Vec<u64> = (0..script::PAGES).map(|i| base / PAGE + i).collect();
        let r = ctx.map(child.id, 0, abi::map_flags::ALL, &pages);
        child.note_mapped(&pages[..r.reps_completed.min(pages.len() as u16) as usize]);
        setup("map guest memory", r)?;
        setup("create VP 0", ctx.create_vp(child.id, 0))?;
        let regs = [(abi::reg::RIP, script::CODE as u128), (abi::reg::RSP, script::STACK_TOP as u128)];
        setup("set RIP, RSP", ctx.set_regs(child.id, 0, &regs))?;
        Ok(Vm { child, base })
    }

    pub fn id(&self) -> u64 {
        self.child.id
    }

    /// Our address of guest-physical `gpa`.
    pub fn addr(&self, gpa: u64) -> u64 {
        self.base + gpa
    }

    /// Writes the script the guest will run.
    pub fn script(&self, ops: &[Op]) {
        assert!(ops.len() <= script::MAX_OPS, "a script of at most MAX_OPS ops");
        for (i, op) in ops.iter().enumerate() {
            mem::write(self.addr(script::OPS + i as u64 * script::OP_SIZE), &mem::qwords(&op.words()));
        }
        mem::write_u64(self.addr(script::MAILBOX), 0);
        mem::write_u64(self.addr(script::MAILBOX + 8), ops.len() as u64);
        mem::write_u64(self.addr(script::MAILBOX + 0x10), 0);
    }

    /// Clears ExplicitSuspend of VP 0.
    pub fn start(&self) -> Result<(), Failure> {
        setup("clear ExplicitSuspend", self.child.ctx.set_regs(self.id(), 0, &[(abi::reg::EXPLICIT_SUSPEND, 0)]))
    }

    /// Ops the guest has completed.
    pub fn progress(&self) -> u64 {
        mem::read_u64(self.addr(script::MAILBOX + 0x10))
    }

    pub fn done(&self) -> bool {
        mem::read_u64(self.addr(script::MAILBOX)) == script::DONE
    }

    /// Waits until the script ended.
    pub fn wait_done(&self) -> Result<(), Failure> {
        let deadline = mx::deadline_after(GUEST_TIMEOUT_NS);
        while !self.done() {
            if mx::time_monotonic() > deadline {
                return Err(format!("the guest did not finish its script (at op {})", self.progress()));
            }
            let _ = mx::nanosleep(mx::deadline_after(1_000_000));
        }
        Ok(())
    }

    /// Waits until the guest completed `n` ops.
    pub fn wait_progress(&self, n: u64) -> Result<(), Failure> {
        let deadline = mx::deadline_after(GUEST_TIMEOUT_NS);
        while self.progress() < n {
            if mx::time_monotonic() > deadline {
                return Err(format!("the guest did not complete {n} ops (at {})", self.progress()));
            }
            let _ = mx::nanosleep(mx::deadline_after(1_000_000));
        }
        Ok(())
    }

    /// Writes the script, starts the VP and waits for the end.
    pub fn run(&self, ops: &[Op]) -> Result<(), Failure> {
        self.script(ops);
        self.start()?;
        self.wait_done()
    }

    /// Result word `k` (0..4) of op `i`.
    pub fn result(&self, i: usize, k: usize) -> u64 {
        mem::read_u64(self.addr(script::OPS + i as u64 * script::OP_SIZE + 32 + 8 * k as u64))
    }

    /// Writes `bytes` at guest-physical `gpa`.
    pub fn write(&self, gpa: u64, bytes: &[u8]) {
        mem::write(self.addr(gpa), bytes);
    }

    pub fn read(&self, gpa: u64, len: usize) -> Vec<u8> {
        mem::read(self.addr(gpa), len)
    }
}

/// The ops that enable guest hypercalls: GUEST_OS_ID, then the hypercall page.
pub fn enable_hypercalls() -> [Op; 2] {
    [
        Op::Wrmsr { msr: abi::msr::GUEST_OS_ID, value: GUEST_OS_ID },
        Op::Wrmsr { msr: abi::msr::HYPERCALL, value: script::HYPERCALL_PAGE | abi::msr::HYPERCALL_ENABLE },
    ]
}

/// A slow guest hypercall of a simple call with input at INPUT, output at OUTPUT.
pub fn guest_call(code: u16) -> Op {
    Op::Hypercall { control: abi::Control::simple(code).raw(), input: script::INPUT, output: script::OUTPUT }
}
