//! Timing: calibrate an op count to the target time per repetition, repeat,
//! print the median as one `BENCH` line (the format of linux-ref's lbench).

use alloc::string::String;
use alloc::vec::Vec;
use core::arch::x86_64::_rdtsc;

/// How the benchmarks run (from the program's arguments).
pub struct Config {
    /// `quick`: a handful of ops, no calibration (proves the program works).
    pub quick: bool,
    /// TSC ticks one repetition should take.
    pub target_tsc: u64,
    /// Repetitions per benchmark (the median is reported).
    pub reps: usize,
    /// `only=a,b`: run only these benchmarks (exact names, or a prefix ending in `*`).
    pub only: Vec<String>,
    /// `mx_ticks_per_second`: TSC ticks per second.
    pub tps: u64,
    /// Benchmarks that failed.
    pub failures: u32,
}

/// Ops per repetition in quick mode.
const QUICK_OPS: u64 = 4;

impl Config {
    /// Whether the benchmark `name` is selected.
    pub fn selected(&self, name: &str) -> bool {
        self.only.is_empty()
            || self.only.iter().any(|o| match o.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => o == name,
            })
    }

    fn ns(&self, tsc: f64) -> f64 {
        tsc * 1e9 / self.tps as f64
    }

    /// Runs one benchmark. `op(n)` performs `n` ops and returns the TSC
    /// ticks they took (it times only the ops; setup stays outside).
    /// `extra` is appended to the line (`key=value ...`); `max_ops` caps a
    /// repetition's op count (e.g. for ops that use up memory).
    pub fn run(&mut self, name: &str, extra: &str, max_ops: u64, mut op: impl FnMut(u64) -> Result<u64, String>) {
        if !self.selected(name) {
            return;
        }
        match self.measure(&mut op, max_ops) {
            Ok((n, tsc)) => {
                let ns: Vec<f64> = tsc.iter().map(|&t| self.ns(t)).collect();
                let (lo, hi) = (ns[0], ns[ns.len() - 1]);
                let mid = tsc[tsc.len() / 2];
                let sep = if extra.is_empty() { "" } else { " " };
                mxrt::println!(
                    "BENCH {name} iters={n} ns_per_op={:.1} tsc_per_op={mid:.1} reps={} ns_min={lo:.1} ns_max={hi:.1}{sep}{extra}",
                    self.ns(mid),
                    tsc.len()
                );
            }
            Err(e) => self.error(name, &e),
        }
    }

    /// Prints `BENCH name error=reason` (spaces in the reason become `_`).
    pub fn error(&mut self, name: &str, reason: &str) {
        if !self.selected(name) {
            return;
        }
        self.failures += 1;
        let reason: String = reason.chars().map(|c| if c.is_whitespace() { '_' } else { c }).collect();
        mxrt::println!("BENCH {name} error={reason}");
    }

    /// The op count per repetition and each repetition's ticks per op, sorted.
    fn measure(
        &self,
        op: &mut impl FnMut(u64) -> Result<u64, String>,
        max_ops: u64,
    ) -> Result<(u64, Vec<f64>), String> {
        let max_ops = max_ops.max(1);
        let n = if self.quick {
            QUICK_OPS.min(max_ops)
        } else {
            // Grow n until one run takes at least 5 % of the target.
            let mut n = 1u64;
            let ticks = loop {
                let t = op(n)?;
                if t >= self.target_tsc / 20 || n >= max_ops {
                    break t;
                }
                n = if t < self.target_tsc / 200 { n * 8 } else { n * 2 }.min(max_ops);
            };
            let scaled = (n as u128 * self.target_tsc as u128 / u128::from(ticks.max(1))) as u64;
            scaled.clamp(1, max_ops)
        };
        let mut per_op = Vec::with_capacity(self.reps);
        for _ in 0..self.reps {
            per_op.push(op(n)? as f64 / n as f64);
        }
        per_op.sort_by(f64::total_cmp);
        Ok((n, per_op))
    }
}

/// The TSC.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; user mode may execute it (CR4.TSD is clear).
    unsafe { _rdtsc() }
}

/// Runs `body` `n` times and returns the ticks it took; the first error stops it.
#[inline(always)]
pub fn timed(n: u64, mut body: impl FnMut() -> Result<(), String>) -> Result<u64, String> {
    let start = rdtsc();
    for _ in 0..n {
        body()?;
    }
    Ok(rdtsc() - start)
}

/// Turns a raw status into `Err("what: STATUS")` unless it is OK (or positive).
#[inline(always)]
pub fn check(raw: i32, what: &str) -> Result<(), String> {
    if raw >= 0 {
        Ok(())
    } else {
        Err(fail(raw, what))
    }
}

#[cold]
fn fail(raw: i32, what: &str) -> String {
    match mx::Status::try_from(raw) {
        Ok(status) => alloc::format!("{what}:{status:?}"),
        Err(_) => alloc::format!("{what}:{raw}"),
    }
}
