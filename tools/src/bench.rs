//! `mtool bench`: our benchmarks next to their Linux/KVM analogues.
//!
//! The runner boots our kernel with `init.rc=etc/bench.rc` (bin/hyperv-server as a service, then
//! userland/bench, also its root client) at `-smp 1`, and at `-smp 4` for the rows that scale
//! with CPUs, and linux-ref's `run.sh tcg` (Debian's Linux
//! in the same QEMU configuration, `/work/shared/bench/linux-ref`) in the same window,
//! interleaved: ours, Linux, ours, Linux. Both print `BENCH <name> key=value ...` lines; this
//! module parses them ([`parse_line`]), takes the median over boots ([`Samples::median`]),
//! pairs each row with its analogue ([`ANALOGUES`]) and renders the table and the JSON.
//! A reference that cannot be built or booted is reported in its column.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One `BENCH` line: a measurement or an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// `ns_per_op`, `tsc_per_op`, `iters` and the other fields.
    Measured {
        name: String,
        ns: f64,
        tsc: f64,
        iters: u64,
        fields: Vec<(String, String)>,
    },
    Error {
        name: String,
        reason: String,
    },
}

/// Parses a `BENCH ...` line (anything before `BENCH ` is ignored, e.g. a serial-log prefix).
pub fn parse_line(line: &str) -> Option<Line> {
    let at = line.find("BENCH ")?;
    let mut words = line[at + 6..].split_whitespace();
    let name = words.next()?.to_string();
    let fields: Vec<(String, String)> =
        words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    if let Some(reason) = get("error") {
        return Some(Line::Error { name, reason: reason.to_string() });
    }
    let ns = get("ns_per_op")?.parse().ok()?;
    let tsc = get("tsc_per_op")?.parse().ok()?;
    let iters = get("iters").and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(Line::Measured { name, ns, tsc, iters, fields })
}

/// All `BENCH` lines of a log, with `suffix` appended to each name (e.g. `@smp4`).
pub fn parse_log(log: &str, suffix: &str) -> Vec<Line> {
    log.lines()
        .filter_map(parse_line)
        .map(|l| match l {
            Line::Measured { name, ns, tsc, iters, fields } => {
                Line::Measured { name: name + suffix, ns, tsc, iters, fields }
            }
            Line::Error { name, reason } => Line::Error { name: name + suffix, reason },
        })
        .collect()
}

/// The measurements of one side (ours or Linux) over several boots.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// Per benchmark: (ns/op, tsc/op) of each boot, in boot order.
    pub values: BTreeMap<String, Vec<(f64, f64)>>,
    /// Per benchmark: the errors seen.
    pub errors: BTreeMap<String, Vec<String>>,
    /// Names in the order first seen.
    pub order: Vec<String>,
    /// Why a run gave nothing (a failed boot, a failed build), in order.
    pub problems: Vec<String>,
}

/// A median over boots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Median {
    pub ns: f64,
    pub tsc: f64,
    pub boots: usize,
    pub ns_min: f64,
    pub ns_max: f64,
}

impl Samples {
    pub fn add(&mut self, lines: &[Line]) {
        for line in lines {
            let name = match line {
                Line::Measured { name, ns, tsc, .. } => {
                    self.values.entry(name.clone()).or_default().push((*ns, *tsc));
                    name
                }
                Line::Error { name, reason } => {
                    let errors = self.errors.entry(name.clone()).or_default();
                    if !errors.contains(reason) {
                        errors.push(reason.clone());
                    }
                    name
                }
            };
            if !self.order.contains(name) {
                self.order.push(name.clone());
            }
        }
    }

    /// The median over boots of `name` (ns and TSC each their own median).
    pub fn median(&self, name: &str) -> Option<Median> {
        let values = self.values.get(name).filter(|v| !v.is_empty())?;
        let mut ns: Vec<f64> = values.iter().map(|v| v.0).collect();
        let mut tsc: Vec<f64> = values.iter().map(|v| v.1).collect();
        Some(Median {
            ns: median(&mut ns),
            tsc: median(&mut tsc),
            boots: values.len(),
            ns_min: ns[0],
            ns_max: ns[ns.len() - 1],
        })
    }

    /// What to print when there is no median: the errors, else "not measured".
    pub fn why_not(&self, name: &str) -> String {
        match self.errors.get(name) {
            Some(e) => e.join(", ").replace('_', " "),
            None => "not measured".into(),
        }
    }
}

/// Median of `v` (sorted in place); the mean of the middle two for an even count.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Our row → the Linux/KVM benchmark that does the same job (names as lbench prints them;
/// `@smp4` rows are paired with Linux booted at `-smp 4`).
pub const ANALOGUES: &[(&str, &str)] = &[
    ("null_syscall", "null_syscall"),
    ("eventpair_pingpong", "eventfd_pingpong"),
    ("event_pingpong", "eventfd_pingpong"),
    ("port_pingpong", "eventfd_pingpong"),
    ("eventpair_pingpong_thread", "eventfd_pingpong"),
    ("channel_rt_1b", "pipe_pingpong"),
    ("channel_rt_1b@smp4", "pipe_pingpong@smp4"),
    ("trap_io_sync", "kvm_io_exit"),
    ("trap_mem_sync", "kvm_mmio_exit"),
    ("trap_io_async", "kvm_ioeventfd"),
    ("guest_cpuid_exit", "kvm_cpuid_exit"),
    // guest_hlt_wakeup (HLT wake-up latency) has no Linux/KVM analogue.
    // The Hyper-V server rows: an I/O intercept handled by the root is the job KVM's userspace
    // VMM does for an I/O exit (KVM_RUN returns, the VMM re-enters). A root's null hypercall
    // (a request to the server and its reply) has none: KVM's VMM makes ioctls, and linux-ref
    // measures no null ioctl.
    ("hyperv_intercept_rt", "kvm_io_exit"),
];

/// What a row's op is, for the table.
pub fn describe(name: &str) -> &'static str {
    match name.split('@').next().unwrap_or(name) {
        "null_syscall" => "cheapest call: mx_handle_close(INVALID) via vDSO",
        "handle_valid" => "object_get_info(HANDLE_VALID): one handle lookup",
        "handle_dup_close" => "handle duplicate + close",
        "event_signal_wait" => "event signal + wait_one, one thread",
        "port_queue_wait" => "port queue + wait, one thread",
        "eventpair_pingpong" => "eventpair ping-pong across processes",
        "event_pingpong" => "event ping-pong across processes",
        "port_pingpong" => "port ping-pong across processes",
        "eventpair_pingpong_thread" => "eventpair ping-pong between threads",
        "channel_rt_1b" => "channel round trip, 1 byte, across processes",
        "channel_rt_4k" => "channel round trip, 4 KiB, across processes",
        "channel_rt_1b_1h" => "channel round trip, 1 byte + 1 handle",
        "process_create_exit" => "process create + start + exit (ELF from bootfs)",
        "thread_create_join" => "thread create + start + join",
        "vmo_write_read_4k" => "VMO write + read, 4 KiB",
        "page_fault" => "first-touch page fault",
        "handle_lookup_1" | "handle_lookup_1000" | "handle_lookup_100000" => "handle lookup, N handles in table",
        n if n.starts_with("port_wakeup_") => "port wake-up, N waiters",
        "trap_io_sync" => "sync IO trap (hypervisor)",
        "trap_mem_sync" => "sync MEM trap (hypervisor)",
        "trap_io_async" => "async IO trap (hypervisor)",
        "guest_cpuid_exit" => "hypervisor-handled exit (CPUID)",
        "guest_hlt_wakeup" => "HLTed guest woken by vcpu_interrupt (hypervisor)",
        "hyperv_null_hypercall" => "HvGetPartitionId from a root client (Hyper-V server)",
        "hyperv_intercept_rt" => "guest OUT -> intercept message -> root resumes VP (Hyper-V server)",
        _ => "",
    }
}

/// Scaling targets: (largest case, smallest case); the largest may cost at most 1.5x.
pub const SCALING: &[(&str, &str)] = &[
    ("handle_lookup_100000", "handle_lookup_1"),
    ("port_wakeup_64", "port_wakeup_1"),
    ("channel_rt_1b@smp4", "channel_rt_1b"),
];
/// Rows whose analogue does less work than they do, each with the Linux
/// benchmark that does the same work, shown under the table as context (not
/// a target): lbench's eventfd ping-pong runs between two threads of one
/// process, our rows between two processes, so ours also switch address
/// spaces; pipe_pingpong is Linux's own process-to-process round trip.
pub const SAME_WORK: &[(&str, &str)] =
    &[("eventpair_pingpong", "pipe_pingpong"), ("event_pingpong", "pipe_pingpong"), ("port_pingpong", "pipe_pingpong")];

/// The most the largest case of a scaling row may cost relative to the smallest.
pub const SCALING_LIMIT: f64 = 1.5;

/// Everything the report needs.
#[derive(Debug, Default)]
pub struct Report {
    pub ours: Samples,
    pub linux: Samples,
    /// Why the Linux column is empty, if it is.
    pub linux_unavailable: Option<String>,
    /// `key: value` lines describing the conditions (date, host load, QEMU, ...).
    pub conditions: Vec<(String, String)>,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub ours: Result<Median, String>,
    pub analogue: Option<String>,
    pub linux: Option<Result<Median, String>>,
}

impl Row {
    /// Ours / Linux in ns, when both were measured.
    pub fn ratio(&self) -> Option<f64> {
        match (&self.ours, &self.linux) {
            (Ok(o), Some(Ok(l))) if l.ns > 0.0 => Some(o.ns / l.ns),
            _ => None,
        }
    }
}

impl Report {
    pub fn rows(&self) -> Vec<Row> {
        self.ours
            .order
            .iter()
            .map(|name| {
                let ours = self.ours.median(name).ok_or_else(|| self.ours.why_not(name));
                let analogue = ANALOGUES.iter().find(|(o, _)| o == name).map(|(_, l)| l.to_string());
                let linux = analogue.as_ref().map(|l| match &self.linux_unavailable {
                    Some(why) => Err(why.clone()),
                    None => self.linux.median(l).ok_or_else(|| self.linux.why_not(l)),
                });
                Row { name: name.clone(), ours, analogue, linux }
            })
            .collect()
    }

    /// (largest, smallest, ratio) of each scaling pair both of whose ends were measured.
    pub fn scaling(&self) -> Vec<(String, String, Option<f64>)> {
        SCALING
            .iter()
            .map(|(big, small)| {
                let r = match (self.ours.median(big), self.ours.median(small)) {
                    (Some(b), Some(s)) if s.ns > 0.0 => Some(b.ns / s.ns),
                    _ => None,
                };
                (big.to_string(), small.to_string(), r)
            })
            .collect()
    }

    /// (ours, Linux's, ratio) of each [`SAME_WORK`] pair.
    pub fn same_work(&self) -> Vec<(String, String, Option<f64>)> {
        SAME_WORK
            .iter()
            .map(|(ours, linux)| {
                let r = match (self.ours.median(ours), self.linux.median(linux)) {
                    (Some(o), Some(l)) if l.ns > 0.0 && self.linux_unavailable.is_none() => Some(o.ns / l.ns),
                    _ => None,
                };
                (ours.to_string(), linux.to_string(), r)
            })
            .collect()
    }

    /// The table for humans.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.conditions {
            let _ = writeln!(out, "{k}: {v}");
        }
        out.push('\n');
        let header = [
            "operation",
            "ours ns/op",
            "ours TSC/op",
            "Linux/KVM analogue",
            "Linux ns/op",
            "Linux TSC/op",
            "ratio",
            "target <= 1.0",
        ];
        let mut cells: Vec<[String; 8]> = Vec::new();
        for row in self.rows() {
            let (ons, otsc) = match &row.ours {
                Ok(m) => (fmt_num(m.ns), fmt_num(m.tsc)),
                Err(why) => (why.clone(), String::new()),
            };
            let (lname, lns, ltsc) = match (&row.analogue, &row.linux) {
                (Some(a), Some(Ok(m))) => (a.clone(), fmt_num(m.ns), fmt_num(m.tsc)),
                (Some(a), Some(Err(why))) => (a.clone(), why.clone(), String::new()),
                _ => ("(none)".into(), String::new(), String::new()),
            };
            let (ratio, verdict) = match row.ratio() {
                Some(r) => (format!("{r:.2}"), if r <= 1.0 { "met" } else { "MISSED" }.to_string()),
                None => (String::new(), String::new()),
            };
            cells.push([row.name.clone(), ons, otsc, lname, lns, ltsc, ratio, verdict]);
        }
        let mut widths = header.map(str::len);
        for c in &cells {
            for (w, cell) in widths.iter_mut().zip(c) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut String, cols: &[&str]| {
            let mut s = String::new();
            for (i, (cell, w)) in cols.iter().zip(widths).enumerate() {
                let numeric = matches!(i, 1 | 2 | 4 | 5 | 6);
                if numeric && (cell.parse::<f64>().is_ok() || cell.contains(',')) {
                    let _ = write!(s, "| {cell:>w$} ");
                } else {
                    let _ = write!(s, "| {cell:<w$} ");
                }
            }
            let _ = writeln!(out, "{}|", s);
        };
        line(&mut out, &header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &rule.iter().map(String::as_str).collect::<Vec<_>>());
        for c in &cells {
            line(&mut out, &c.iter().map(String::as_str).collect::<Vec<_>>());
        }
        out.push('\n');
        for (big, small, r) in self.scaling() {
            let _ = match r {
                Some(r) => writeln!(
                    out,
                    "scaling {big} / {small}: {r:.2} (target <= {SCALING_LIMIT}: {})",
                    if r <= SCALING_LIMIT { "met" } else { "MISSED" }
                ),
                None => writeln!(out, "scaling {big} / {small}: not measured"),
            };
        }
        for (ours, linux, r) in self.same_work() {
            if let Some(r) = r {
                let _ = writeln!(out, "between processes, {ours} / {linux}: {r:.2} (context, not a target)");
            }
        }
        out
    }

    /// The same as JSON.
    pub fn json(&self) -> String {
        let mut out = String::from("{\n  \"conditions\": {");
        let conds: Vec<String> =
            self.conditions.iter().map(|(k, v)| format!("{}: {}", json_str(k), json_str(v))).collect();
        out.push_str(&conds.join(", "));
        out.push_str("},\n  \"linux_unavailable\": ");
        out.push_str(&self.linux_unavailable.as_deref().map_or("null".into(), json_str));
        out.push_str(",\n  \"rows\": [\n");
        let rows: Vec<String> = self
            .rows()
            .iter()
            .map(|row| {
                let mut o =
                    format!("    {{\"name\": {}, \"what\": {}, ", json_str(&row.name), json_str(describe(&row.name)));
                o.push_str(&format!("\"ours\": {}, ", median_json(&row.ours)));
                o.push_str(&format!(
                    "\"analogue\": {}, \"linux\": {}, \"ratio\": {}",
                    row.analogue.as_deref().map_or("null".into(), json_str),
                    row.linux.as_ref().map_or("null".into(), median_json),
                    row.ratio().map_or("null".into(), |r| format!("{r:.4}")),
                ));
                o.push('}');
                o
            })
            .collect();
        out.push_str(&rows.join(",\n"));
        out.push_str("\n  ],\n  \"scaling\": [\n");
        let scaling: Vec<String> = self
            .scaling()
            .iter()
            .map(|(big, small, r)| {
                format!(
                    "    {{\"largest\": {}, \"smallest\": {}, \"ratio\": {}, \"limit\": {SCALING_LIMIT}}}",
                    json_str(big),
                    json_str(small),
                    r.map_or("null".into(), |r| format!("{r:.4}"))
                )
            })
            .collect();
        out.push_str(&scaling.join(",\n"));
        out.push_str("\n  ],\n  \"between_processes\": [\n");
        let same: Vec<String> = self
            .same_work()
            .iter()
            .map(|(ours, linux, r)| {
                format!(
                    "    {{\"ours\": {}, \"linux\": {}, \"ratio\": {}}}",
                    json_str(ours),
                    json_str(linux),
                    r.map_or("null".into(), |r| format!("{r:.4}"))
                )
            })
            .collect();
        out.push_str(&same.join(",\n"));
        out.push_str("\n  ],\n  \"samples\": {\"ours\": ");
        out.push_str(&samples_json(&self.ours));
        out.push_str(", \"linux\": ");
        out.push_str(&samples_json(&self.linux));
        out.push_str("}\n}\n");
        out
    }
}

fn median_json(m: &Result<Median, String>) -> String {
    match m {
        Ok(m) => format!(
            "{{\"ns_per_op\": {:.1}, \"tsc_per_op\": {:.1}, \"boots\": {}, \"ns_min\": {:.1}, \"ns_max\": {:.1}}}",
            m.ns, m.tsc, m.boots, m.ns_min, m.ns_max
        ),
        Err(why) => format!("{{\"error\": {}}}", json_str(why)),
    }
}

fn samples_json(s: &Samples) -> String {
    let items: Vec<String> = s
        .values
        .iter()
        .map(|(name, v)| {
            let ns: Vec<String> = v.iter().map(|(ns, _)| format!("{ns:.1}")).collect();
            format!("{}: [{}]", json_str(name), ns.join(", "))
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A number with thousands separators and one decimal below 100.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x < 100.0 {
        return format!("{x:.1}");
    }
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ours_and_lbench_lines() {
        let ours = "[    0.47] cpu0 INFO  log: BENCH null_syscall iters=4 ns_per_op=377.5 tsc_per_op=981.5 reps=3 ns_min=310.0 ns_max=6782.5 call=x";
        match parse_line(ours) {
            Some(Line::Measured { name, ns, tsc, iters, .. }) => {
                assert_eq!((name.as_str(), ns, tsc, iters), ("null_syscall", 377.5, 981.5, 4));
            }
            other => panic!("{other:?}"),
        }
        let err = "BENCH kvm_io_exit error=open:/dev/kvm: No such file";
        assert_eq!(parse_line(err), Some(Line::Error { name: "kvm_io_exit".into(), reason: "open:/dev/kvm:".into() }));
        assert_eq!(parse_line("BENCH_BEGIN target_ms=100"), None);
        assert_eq!(parse_line("LBENCH_END"), None);
    }

    #[test]
    fn medians_pair_rows_with_analogues() {
        let mut report = Report::default();
        for ns in [300.0, 100.0, 200.0] {
            report.ours.add(&parse_log(&format!("BENCH null_syscall iters=1 ns_per_op={ns} tsc_per_op={ns}"), ""));
        }
        report.ours.add(&parse_log("BENCH trap_io_sync error=not_implemented_yet", ""));
        report.ours.add(&parse_log("BENCH channel_rt_1b iters=1 ns_per_op=50 tsc_per_op=1", "@smp4"));
        report.linux.add(&parse_log("BENCH null_syscall iters=1 ns_per_op=400 tsc_per_op=1", ""));
        report.linux.add(&parse_log("BENCH kvm_io_exit iters=1 ns_per_op=10 tsc_per_op=1", ""));
        let rows = report.rows();
        assert_eq!(rows[0].ours.as_ref().map(|m| m.ns), Ok(200.0));
        assert_eq!(rows[0].ratio(), Some(0.5));
        assert_eq!(rows[1].ours.as_ref().map_err(String::as_str), Err("not implemented yet"));
        assert!(rows[1].linux.as_ref().is_some_and(Result::is_ok));
        assert_eq!(rows[2].name, "channel_rt_1b@smp4");
        assert_eq!(rows[2].linux.as_ref().map(|r| r.is_err()), Some(true));
        assert!(report.table().contains("MISSED") || report.table().contains("met"));
        assert!(report.json().contains("\"ratio\": 0.5000"));
        let mut hv = Report::default();
        for (row, analogue) in [
            ("trap_io_sync", Some("kvm_io_exit")),
            ("trap_mem_sync", Some("kvm_mmio_exit")),
            ("trap_io_async", Some("kvm_ioeventfd")),
            ("guest_cpuid_exit", Some("kvm_cpuid_exit")),
            ("guest_hlt_wakeup", None),
            ("hyperv_null_hypercall", None),
            ("hyperv_intercept_rt", Some("kvm_io_exit")),
        ] {
            hv.ours.add(&parse_log(&format!("BENCH {row} iters=4 ns_per_op=10 tsc_per_op=20"), ""));
            let rows = hv.rows();
            let r = rows.iter().find(|r| r.name == row).expect("row");
            assert_eq!(r.analogue.as_deref(), analogue, "{row}");
            assert!(!describe(row).is_empty(), "{row}");
        }
        report.linux_unavailable = Some("build failed".into());
        assert!(report.table().contains("build failed"));
    }

    #[test]
    fn cross_process_rows_get_linux_process_context() {
        let mut report = Report::default();
        report.ours.add(&parse_log("BENCH eventpair_pingpong iters=1 ns_per_op=30 tsc_per_op=1", ""));
        report.linux.add(&parse_log("BENCH eventfd_pingpong iters=1 ns_per_op=15 tsc_per_op=1", ""));
        report.linux.add(&parse_log("BENCH pipe_pingpong iters=1 ns_per_op=60 tsc_per_op=1", ""));
        let rows = report.rows();
        assert_eq!(rows[0].ratio(), Some(2.0), "the target stays against the issue's analogue");
        let same = report.same_work();
        assert_eq!(same[0], ("eventpair_pingpong".into(), "pipe_pingpong".into(), Some(0.5)));
        assert_eq!(same[1].2, None, "event_pingpong was not measured");
        assert!(report.table().contains("between processes, eventpair_pingpong / pipe_pingpong: 0.50"));
        assert!(report
            .json()
            .contains("\"ours\": \"eventpair_pingpong\", \"linux\": \"pipe_pingpong\", \"ratio\": 0.5000"));
        report.linux_unavailable = Some("no reference".into());
        assert_eq!(report.same_work()[0].2, None);
    }

    #[test]
    fn even_medians_average_the_middle() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(12.34), "12.3");
    }
}

/// How `mtool bench` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Our kernel image and boot filesystem (with etc/bench.rc).
    pub kernel: std::path::PathBuf,
    pub bootfs: std::path::PathBuf,
    /// Boots of each kind (ours and Linux, at each CPU count), interleaved.
    pub rounds: usize,
    /// linux-ref's directory (build.sh, run.sh); `None`: no reference.
    pub linux_ref: Option<std::path::PathBuf>,
    /// Where results.json and the logs go (build/bench).
    pub out_dir: std::path::PathBuf,
    /// Target ms per repetition, for both sides.
    pub target_ms: u64,
    /// Memory of every guest (`-m`).
    pub mem: String,
    /// The CPU counts to boot; rows measured above 1 CPU get an `@smpN` suffix.
    pub smp_rows: Vec<(u32, String, String)>,
}

impl Options {
    /// Defaults: 3 rounds, 100 ms, 1G, `-smp 1` for all rows and `-smp 4` for the channel
    /// round trip (Linux: pipe_pingpong).
    pub fn new(kernel: std::path::PathBuf, bootfs: std::path::PathBuf, out_dir: std::path::PathBuf) -> Options {
        Options {
            kernel,
            bootfs,
            rounds: 3,
            linux_ref: None,
            out_dir,
            target_ms: 100,
            mem: "1G".into(),
            smp_rows: vec![(1, String::new(), String::new()), (4, "channel_rt_1b".into(), "pipe_pingpong".into())],
        }
    }
}

/// Runs everything [`Options`] says and returns the report (also written as
/// `results.json` and `results.txt` in `out_dir`).
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    use anyhow::Context;
    use std::process::Command;
    std::fs::create_dir_all(&opts.out_dir).with_context(|| format!("creating {}", opts.out_dir.display()))?;
    let mut report = Report::default();
    let sh = |cmd: &str| {
        Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let qemus_before = count_qemus();
    report.conditions.push(("date".into(), sh("date -u +%FT%TZ")));
    report
        .conditions
        .push(("host".into(), sh("echo $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)")));
    report.conditions.push(("qemu".into(), sh("qemu-system-x86_64 --version | head -n1")));
    report
        .conditions
        .push(("guest".into(), format!("-machine q35 -accel tcg -cpu EPYC,+svm,+npt -m {} (both kernels)", opts.mem)));
    report.conditions.push((
        "method".into(),
        format!(
            "{} rounds of interleaved boots (ours, Linux) per CPU count; each value is the median over boots of \
             per-boot medians of 5 reps of ~{} ms",
            opts.rounds, opts.target_ms
        ),
    ));
    report.conditions.push(("load before".into(), format!("{} ({} other QEMU running)", loadavg(), qemus_before)));

    // The reference: build it once (a few minutes the first time).
    let linux_build = opts.out_dir.join("..").join("linux-ref");
    let linux = match &opts.linux_ref {
        None => Err("no linux-ref directory (set LINUX_REF)".to_string()),
        Some(dir) if !dir.join("run.sh").is_file() => Err(format!("linux-ref not found at {}", dir.display())),
        Some(dir) => {
            let build = linux_build.join("build");
            if build.join("vmlinuz").is_file() && build.join("initramfs.cpio.gz").is_file() {
                Ok(dir.clone())
            } else {
                eprintln!("bench: building the Linux reference (linux-ref/build.sh; minutes the first time)");
                std::fs::create_dir_all(&linux_build)?;
                let log = linux_build.join("build.log");
                let status = Command::new(dir.join("build.sh"))
                    .env("BUILD", &build)
                    .stdout(std::fs::File::create(&log)?)
                    .stderr(std::fs::File::create(linux_build.join("build.err"))?)
                    .status();
                match status {
                    Ok(s) if s.success() => Ok(dir.clone()),
                    Ok(s) => {
                        Err(format!("linux-ref build failed ({s}), see {}", linux_build.join("build.err").display()))
                    }
                    Err(e) => Err(format!("linux-ref build could not start: {e}")),
                }
            }
        }
    };
    if let Err(why) = &linux {
        eprintln!("bench: Linux reference unavailable: {why}");
        report.linux_unavailable = Some(why.clone());
    }
    let mut linux_boots_ok = 0;
    for round in 1..=opts.rounds {
        for (smp, ours_only, linux_only) in &opts.smp_rows {
            let suffix = if *smp == 1 { String::new() } else { format!("@smp{smp}") };
            // Ours.
            let name = format!("bench-smp{smp}-r{round}");
            let mut cmdline = format!("init.rc=etc/bench.rc bench.target_ms={}", opts.target_ms);
            if !ours_only.is_empty() {
                cmdline.push_str(&format!(" bench.only={ours_only}"));
            }
            eprintln!("bench: round {round}/{}: ours, -smp {smp}", opts.rounds);
            let outcome = crate::qemu::Run::new(&opts.kernel)
                .name(name.clone())
                .boot_path(crate::qemu::BootPath::Pvh)
                .smp(*smp)
                .mem(opts.mem.clone())
                .module(Some(opts.bootfs.clone()))
                .cmdline(cmdline)
                .timeout(std::time::Duration::from_secs(900))
                .run()?;
            report.ours.add(&parse_log(&outcome.log, &suffix));
            if !outcome.log.contains("BENCH_END") {
                report.ours.problems.push(format!(
                    "{name}: {} before BENCH_END (serial log {})",
                    outcome.kind,
                    outcome.log_path.display()
                ));
            }
            // Linux, right after.
            let Ok(dir) = &linux else { continue };
            eprintln!("bench: round {round}/{}: Linux, -smp {smp}", opts.rounds);
            let out = Command::new(dir.join("run.sh"))
                .arg("tcg")
                .env("BUILD", linux_build.join("build"))
                .env("LOGDIR", linux_build.join("logs"))
                .env("TAG", format!("smp{smp}-r{round}"))
                .env("SMP", smp.to_string())
                .env("MEM", &opts.mem)
                .env("LBENCH_TARGET_MS", opts.target_ms.to_string())
                .env("LBENCH_REPS", "5")
                .env("LBENCH_ONLY", linux_only)
                .output()
                .context("running linux-ref/run.sh")?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let lines = parse_log(&stdout, &suffix);
            if out.status.success() && !lines.is_empty() {
                linux_boots_ok += 1;
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                report.linux.problems.push(format!(
                    "Linux -smp {smp} round {round}: {} ({})",
                    out.status,
                    err.lines().last().unwrap_or("")
                ));
            }
            report.linux.add(&lines);
        }
    }
    if linux.is_ok() && linux_boots_ok == 0 {
        report.linux_unavailable = Some(format!(
            "Linux reference did not boot: {}",
            report.linux.problems.first().cloned().unwrap_or_default()
        ));
    }
    report.conditions.push(("load after".into(), format!("{} ({} other QEMU running)", loadavg(), count_qemus())));
    for p in report.ours.problems.iter().chain(&report.linux.problems) {
        report.conditions.push(("problem".into(), p.clone()));
    }
    std::fs::write(opts.out_dir.join("results.json"), report.json())?;
    std::fs::write(opts.out_dir.join("results.txt"), report.table())?;
    Ok(report)
}

/// /proc/loadavg's first three fields.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// QEMU processes running on the host now.
fn count_qemus() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(Result::ok)
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim().starts_with("qemu-system")))
        .count()
}
