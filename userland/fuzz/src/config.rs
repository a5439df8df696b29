//! The fuzzer's parameters, from `key=value` arguments and environment
//! strings (init passes the kernel command line's words as environment).

use alloc::string::String;
use alloc::vec::Vec;

pub struct Config {
    /// Launched by the parent to fuzz (`role=worker`).
    pub worker: bool,
    /// The guest fuzzer (`mode=guest`) instead of the syscall fuzzer.
    pub guest: bool,
    /// The Hyper-V fuzzer (`mode=hyperv`): `iters` steps of a root client.
    pub hyperv: bool,
    /// Guest fuzzer: runs (`runs=N`, default 1000) and resumes per run
    /// (`steps=N`, default 64); `first=R` is the first run.
    pub guest_runs: u64,
    pub steps: u64,
    pub seed: u64,
    /// Total calls (parent).
    pub iters: u64,
    /// Calls per round, over all workers.
    pub round_calls: u64,
    pub workers: u64,
    pub threads: u64,
    pub first_round: u64,
    pub rounds: u64,
    pub trace: bool,
    /// NO_MEMORY is accepted from every call (fault injection is on).
    pub nomem: bool,
    /// Worker: its round and index, and how many calls it makes.
    pub round: u64,
    pub index: u64,
    pub calls: u64,
    /// Worker: the parent's handle values and koids (isolation checks).
    pub foreign: Vec<(u32, u64)>,
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Config {
    pub fn load() -> Config {
        let mut words: Vec<String> = mxrt::environ();
        words.extend(mxrt::args());
        let mut cfg = Config {
            worker: false,
            guest: false,
            hyperv: false,
            guest_runs: 1000,
            steps: 64,
            seed: 1,
            iters: 100_000,
            round_calls: 4000,
            workers: 2,
            threads: 3,
            first_round: 0,
            rounds: u64::MAX,
            trace: false,
            nomem: false,
            round: 0,
            index: 0,
            calls: 0,
            foreign: Vec::new(),
        };
        for word in &words {
            let (key, value) = word.split_once('=').unwrap_or((word.as_str(), ""));
            let key = key.strip_prefix("fuzz.").unwrap_or(key);
            let n = number(value);
            match (key, n) {
                ("role", _) => cfg.worker = value == "worker",
                ("mode", _) => {
                    cfg.guest = value == "guest";
                    cfg.hyperv = value == "hyperv";
                }
                ("runs", Some(n)) => cfg.guest_runs = n,
                ("steps", Some(n)) => cfg.steps = n.clamp(1, 100_000),
                ("seed", Some(n)) => cfg.seed = n,
                ("iters", Some(n)) => cfg.iters = n,
                ("wround", Some(n)) => cfg.round = n,
                ("round", Some(n)) => cfg.round_calls = n.max(1),
                ("workers", Some(n)) => cfg.workers = n.clamp(1, 8),
                ("threads", Some(n)) => cfg.threads = n.clamp(1, 8),
                ("first", Some(n)) => cfg.first_round = n,
                ("rounds", Some(n)) => cfg.rounds = n,
                ("trace", Some(n)) => cfg.trace = n != 0,
                ("nomem", Some(n)) => cfg.nomem = n != 0,
                ("fault_inject", Some(n)) => cfg.nomem |= n != 0,
                ("index", Some(n)) => cfg.index = n,
                ("calls", Some(n)) => cfg.calls = n,
                ("foreign", _) => {
                    cfg.foreign = value
                        .split(',')
                        .filter_map(|pair| {
                            let (v, k) = pair.split_once(':')?;
                            Some((u32::from_str_radix(v, 16).ok()?, u64::from_str_radix(k, 16).ok()?))
                        })
                        .collect();
                }
                _ => {}
            }
        }
        cfg
    }
}
