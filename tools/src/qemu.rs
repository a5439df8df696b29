//! Boot the kernel in QEMU and classify how the run ended.
//!
//! The kernel ends a run through the `isa-debug-exit` device: it writes 0x31 for success (QEMU
//! exits 99) and 0x30 for failure (QEMU exits 97). Those codes cannot be mistaken for QEMU's
//! own: 0 is a shutdown (ACPI power-off, or a triple fault/reboot under `-no-reboot`) and 1 is a
//! QEMU error. A run that does not end within its timeout is a hang and is killed.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::limine;

/// QEMU exit status when the kernel reports success (0x31 written to the debug-exit port).
pub const EXIT_SUCCESS: i32 = 99;
/// QEMU exit status when the kernel reports failure (0x30, e.g. after a panic).
pub const EXIT_FAILURE: i32 = 97;
/// Serial line printed by the kernel just before an ACPI power-off.
pub const POWEROFF_MARKER: &str = "acpi: powering off";
/// Serial marker of a completed boot.
pub const BOOT_MARKER: &str = "all CPUs online";
/// Serial marker that starts a panic report.
pub const PANIC_MARKER: &str = "KERNEL PANIC";
/// Default hard timeout for one boot.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How the kernel is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootPath {
    /// QEMU's direct boot through the kernel's Xen PVH note (`-kernel`, `-initrd`, `-append`).
    Pvh,
    /// Limine from the ISO under SeaBIOS.
    LimineBios,
    /// Limine from the ISO under OVMF (UEFI).
    LimineUefi,
}

impl BootPath {
    /// Whether this path needs a Limine install.
    pub fn needs_limine(self) -> bool {
        self != BootPath::Pvh
    }
}

impl FromStr for BootPath {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pvh" => Ok(BootPath::Pvh),
            "limine-bios" => Ok(BootPath::LimineBios),
            "limine-uefi" => Ok(BootPath::LimineUefi),
            other => {
                bail!("unknown boot path {other:?} (expected pvh, limine-bios or limine-uefi)")
            }
        }
    }
}

impl fmt::Display for BootPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BootPath::Pvh => "pvh",
            BootPath::LimineBios => "limine-bios",
            BootPath::LimineUefi => "limine-uefi",
        })
    }
}

/// QEMU accelerator. TCG is the default (and the only one with nested SVM here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    /// Hardware virtualisation; only for runs that need no SVM in the guest.
    Kvm,
}

impl FromStr for Accel {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tcg" => Ok(Accel::Tcg),
            "kvm" => Ok(Accel::Kvm),
            other => bail!("unknown accelerator {other:?} (expected tcg or kvm)"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// The kernel reported success through the debug-exit device.
    Pass,
    /// The kernel reported failure through the debug-exit device (a kernel panic).
    KernelPanic,
    /// QEMU shut down after the kernel's ACPI power-off marker.
    PowerOff,
    /// QEMU shut down without the power-off marker: under `-no-reboot` a triple fault or reboot.
    TripleFaultOrReboot,
    /// Interactive run ended by the user (or a reboot; interactively they look the same).
    Quit,
    /// No exit within the timeout; QEMU was killed.
    Hang,
    /// QEMU itself failed (exit code, or `None` if it died from a signal).
    QemuError(Option<i32>),
}

impl OutcomeKind {
    /// Classify a finished run from QEMU's exit code and the serial log.
    pub fn classify(code: Option<i32>, timed_out: bool, interactive: bool, log: &str) -> Self {
        if timed_out {
            return OutcomeKind::Hang;
        }
        match code {
            Some(EXIT_SUCCESS) => OutcomeKind::Pass,
            Some(EXIT_FAILURE) => OutcomeKind::KernelPanic,
            Some(0) if log.contains(POWEROFF_MARKER) => OutcomeKind::PowerOff,
            Some(0) if interactive => OutcomeKind::Quit,
            Some(0) => OutcomeKind::TripleFaultOrReboot,
            other => OutcomeKind::QemuError(other),
        }
    }

    /// Whether `mtool run` should exit successfully for this outcome.
    pub fn is_success(self) -> bool {
        matches!(self, OutcomeKind::Pass | OutcomeKind::PowerOff | OutcomeKind::Quit)
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutcomeKind::Pass => f.write_str("pass (kernel reported success)"),
            OutcomeKind::KernelPanic => f.write_str("fail: kernel panic (kernel reported failure)"),
            OutcomeKind::PowerOff => f.write_str("clean power-off"),
            OutcomeKind::TripleFaultOrReboot => {
                f.write_str("fail: triple fault or reboot (QEMU exited 0 without a power-off)")
            }
            OutcomeKind::Quit => f.write_str("QEMU quit"),
            OutcomeKind::Hang => f.write_str("fail: hang (timeout, QEMU killed)"),
            OutcomeKind::QemuError(Some(code)) => write!(f, "QEMU error (exit status {code})"),
            OutcomeKind::QemuError(None) => f.write_str("QEMU error (killed by a signal)"),
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// The whole serial log.
    pub log: String,
    /// Where the serial log was written.
    pub log_path: PathBuf,
    /// QEMU's own stdout and stderr (empty for interactive runs).
    pub qemu_output: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// The last `n` lines of the serial log.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A report for humans: the outcome, and on failure the [details](Self::details).
    pub fn report(&self) -> String {
        let mut out = format!(
            "outcome: {} after {:.1}s (serial log: {})\n",
            self.kind,
            self.elapsed.as_secs_f64(),
            self.log_path.display()
        );
        if !self.kind.is_success() {
            out.push_str(&self.details());
        }
        out
    }

    /// The last 40 lines of the serial log, and QEMU's own output if it printed any.
    pub fn details(&self) -> String {
        let mut out = format!("--- last 40 lines of the serial log ---\n{}\n", self.tail(40));
        if !self.qemu_output.trim().is_empty() {
            out.push_str("--- QEMU output ---\n");
            out.push_str(self.qemu_output.trim_end());
            out.push('\n');
        }
        out
    }

    /// Lines of the serial log containing `needle`.
    pub fn lines_with<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.log.lines().filter(move |l| l.contains(needle))
    }
}

/// A QEMU run, configured builder-style.
///
/// ```no_run
/// # use tools::qemu::{Run, BootPath};
/// # use std::time::Duration;
/// let outcome = Run::new("build/kernel.elf")
///     .boot_path(BootPath::Pvh)
///     .smp(4)
///     .cmdline("test=boot")
///     .timeout(Duration::from_secs(60))
///     .run()?;
/// # anyhow::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct Run {
    kernel: PathBuf,
    boot: BootPath,
    smp: u32,
    mem: String,
    cmdline: String,
    module: Option<PathBuf>,
    timeout: Duration,
    log: Option<PathBuf>,
    name: Option<String>,
    interactive: bool,
    accel: Accel,
    limine_dir: Option<PathBuf>,
}

impl Run {
    /// A run of the (ksyms-patched) kernel ELF at `kernel`: PVH, 1 CPU, 1 GiB, TCG, 120 s.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Run {
            kernel: kernel.into(),
            boot: BootPath::Pvh,
            smp: 1,
            mem: "1G".into(),
            cmdline: String::new(),
            module: None,
            timeout: DEFAULT_TIMEOUT,
            log: None,
            name: None,
            interactive: false,
            accel: Accel::Tcg,
            limine_dir: None,
        }
    }

    pub fn boot_path(mut self, boot: BootPath) -> Self {
        self.boot = boot;
        self
    }
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }
    /// Guest memory in QEMU's `-m` syntax (e.g. `1G`, `512M`).
    pub fn mem(mut self, mem: impl Into<String>) -> Self {
        self.mem = mem.into();
        self
    }
    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = cmdline.into();
        self
    }
    /// A boot module: `-initrd` under PVH, `/boot/bootfs` on the ISO.
    pub fn module(mut self, module: Option<PathBuf>) -> Self {
        self.module = module;
        self
    }
    /// Hard timeout for the whole run (ignored when interactive).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Serial log file (default: `build/runs/<name>/serial.log`).
    pub fn log(mut self, log: impl Into<PathBuf>) -> Self {
        self.log = Some(log.into());
        self
    }
    /// Name of the run's scratch directory under `build/runs/`; give parallel runs distinct names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Serial and QEMU monitor on the terminal (quit with Ctrl-A X), no timeout.
    pub fn interactive(mut self, interactive: bool) -> Self {
        self.interactive = interactive;
        self
    }
    pub fn accel(mut self, accel: Accel) -> Self {
        self.accel = accel;
        self
    }
    /// Limine directory for the ISO (default: [`limine::find`]).
    pub fn limine_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.limine_dir = Some(dir.into());
        self
    }

    /// Prepare the boot media, run QEMU and classify the outcome.
    ///
    /// `Err` means the run could not be set up or QEMU could not be started; everything that
    /// happens once QEMU runs is an [`Outcome`].
    pub fn run(&self) -> Result<Outcome> {
        if !self.kernel.is_file() {
            bail!("kernel image {} not found (run `make build`)", self.kernel.display());
        }
        let dir = self.scratch_dir()?;
        let log_path = self.log.clone().unwrap_or_else(|| dir.join("serial.log"));
        if let Some(parent) = log_path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        // A stale log must not be read as this run's.
        fs::write(&log_path, b"").with_context(|| format!("creating {}", log_path.display()))?;

        let media = self.boot_media(&dir)?;
        let args = self.args(&media, &log_path);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(&args);

        let start = Instant::now();
        let (code, timed_out, qemu_output) = if self.interactive {
            let status = cmd.status().context(QEMU_MISSING)?;
            (status.code(), false, String::new())
        } else {
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let child = cmd.spawn().context(QEMU_MISSING)?;
            wait_with_timeout(child, self.timeout)?
        };
        let elapsed = start.elapsed();
        let log = fs::read(&log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .with_context(|| format!("reading serial log {}", log_path.display()))?;
        let kind = OutcomeKind::classify(code, timed_out, self.interactive, &log);
        Ok(Outcome { kind, log, log_path, qemu_output, elapsed })
    }

    fn scratch_dir(&self) -> Result<PathBuf> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = self.name.clone().unwrap_or_else(|| {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            format!("{}-{}-{n}", self.boot, std::process::id())
        });
        let dir = crate::build_dir().join("runs").join(name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    fn boot_media(&self, dir: &Path) -> Result<Media> {
        if !self.boot.needs_limine() {
            return Ok(Media::Pvh);
        }
        let limine_dir = match &self.limine_dir {
            Some(d) => d.clone(),
            None => limine::find()?.ok_or_else(|| anyhow!("{}", limine::MISSING_HINT))?,
        };
        let iso = dir.join("magnetar.iso");
        let spec = limine::IsoSpec {
            kernel: &self.kernel,
            module: self.module.as_deref(),
            cmdline: &self.cmdline,
            output: &iso,
        };
        limine::build_iso(&limine_dir, &spec).context("building the boot ISO")?;
        if self.boot == BootPath::LimineBios {
            return Ok(Media::Iso { iso, ovmf: None });
        }
        let (code, vars) = find_ovmf()?;
        let vars_copy = dir.join("OVMF_VARS.fd");
        fs::copy(&vars, &vars_copy)
            .with_context(|| format!("copying {} to {}", vars.display(), vars_copy.display()))?;
        Ok(Media::Iso { iso, ovmf: Some((code, vars_copy)) })
    }

    fn args(&self, media: &Media, log: &Path) -> Vec<OsString> {
        let mut a = Args::default();
        a.push(["-machine", "q35", "-m", &self.mem, "-smp", &self.smp.to_string()]);
        match self.accel {
            Accel::Tcg => a.push(["-accel", "tcg", "-cpu", "EPYC,+svm,+npt"]),
            Accel::Kvm => a.push(["-accel", "kvm", "-cpu", "host"]),
        }
        a.push(["-no-reboot", "-display", "none"]);
        a.push(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        if self.interactive {
            // Serial and monitor multiplexed on the terminal (Ctrl-A X quits, Ctrl-A C is the
            // monitor), with a copy of the serial output in the log.
            a.push(["-chardev"]);
            a.push_joined("stdio,id=con,mux=on,logfile=", log, "");
            a.push(["-serial", "chardev:con", "-mon", "chardev=con"]);
        } else {
            a.push(["-monitor", "none", "-serial"]);
            a.push_joined("file:", log, "");
        }
        match media {
            Media::Pvh => {
                a.push(["-kernel"]);
                a.push_joined("", &self.kernel, "");
                if !self.cmdline.is_empty() {
                    a.push(["-append", &self.cmdline]);
                }
                if let Some(module) = &self.module {
                    a.push(["-initrd"]);
                    a.push_joined("", module, "");
                }
            }
            Media::Iso { iso, ovmf } => {
                if let Some((code, vars)) = ovmf {
                    a.push(["-drive"]);
                    a.push_joined("if=pflash,format=raw,unit=0,file=", code, ",readonly=on");
                    a.push(["-drive"]);
                    a.push_joined("if=pflash,format=raw,unit=1,file=", vars, "");
                }
                a.push(["-cdrom"]);
                a.push_joined("", iso, "");
                a.push(["-boot", "d"]);
            }
        }
        a.0
    }
}

/// QEMU's argument list; paths stay `OsString`s.
#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<const N: usize>(&mut self, items: [&str; N]) {
        self.0.extend(items.map(OsString::from));
    }

    /// One argument: `prefix`, the path, `suffix`.
    fn push_joined(&mut self, prefix: &str, path: &Path, suffix: &str) {
        let mut arg = OsString::from(prefix);
        arg.push(path);
        arg.push(suffix);
        self.0.push(arg);
    }
}

const QEMU_MISSING: &str =
    "starting qemu-system-x86_64 (install it: apt-get install -y qemu-system-x86, or run `make setup`)";

enum Media {
    Pvh,
    Iso { iso: PathBuf, ovmf: Option<(PathBuf, PathBuf)> },
}

/// Wait for QEMU, killing it after `timeout`. Returns (exit code, timed out, QEMU's output).
fn wait_with_timeout(mut child: Child, timeout: Duration) -> Result<(Option<i32>, bool, String)> {
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            // A read error only loses QEMU's diagnostics, not the outcome.
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    })
    .collect();

    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            break (status, false);
        }
        if Instant::now() >= deadline {
            child.kill().context("killing QEMU after the timeout")?;
            break (child.wait().context("waiting for killed QEMU")?, true);
        }
        thread::sleep(Duration::from_millis(50));
    };
    let output: String = readers.into_iter().filter_map(|r| r.join().ok()).collect();
    // TCG cannot emulate every feature of `-cpu EPYC` and says so on each start: noise.
    let output = output
        .lines()
        .filter(|l| !l.contains("TCG doesn't support requested feature"))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok((status.code(), timed_out, output))
}

/// Directories searched for OVMF firmware.
pub const OVMF_DIRS: [&str; 2] = ["/usr/share/OVMF", "/usr/share/ovmf"];

/// Find OVMF firmware code and a matching variable store template (no Secure Boot variants).
pub fn find_ovmf() -> Result<(PathBuf, PathBuf)> {
    const PAIRS: [(&str, &str); 2] = [("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"), ("OVMF_CODE.fd", "OVMF_VARS.fd")];
    OVMF_DIRS
        .iter()
        .flat_map(|dir| PAIRS.iter().map(move |(c, v)| (Path::new(dir).join(c), Path::new(dir).join(v))))
        .find(|(code, vars)| code.is_file() && vars.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no OVMF firmware (OVMF_CODE*.fd + OVMF_VARS*.fd) under {}: apt-get install -y ovmf",
                OVMF_DIRS.join(" or ")
            )
        })
}

/// The exit code init reported before the power-off (`userboot: init
/// exited with N`), if it did.
pub fn init_exit_code(log: &str) -> Option<i32> {
    log.lines().rev().find_map(|line| line.split("userboot: init exited with ").nth(1)?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_exit_codes() {
        use OutcomeKind::*;
        assert_eq!(OutcomeKind::classify(Some(99), false, false, ""), Pass);
        assert_eq!(OutcomeKind::classify(Some(97), false, false, "KERNEL PANIC"), KernelPanic);
        assert_eq!(OutcomeKind::classify(Some(0), false, false, "[    1.0] cpu0 INFO  acpi: powering off\n"), PowerOff);
        assert_eq!(OutcomeKind::classify(Some(0), false, false, "booting\n"), TripleFaultOrReboot);
        assert_eq!(OutcomeKind::classify(Some(0), false, true, "booting\n"), Quit);
        assert_eq!(init_exit_code("x\n[ 1.0] cpu0 INFO  userboot: init exited with 7\n"), Some(7));
        assert_eq!(init_exit_code("[ 1.0] cpu0 INFO  userboot: init exited with -1\n"), Some(-1));
        assert_eq!(init_exit_code("no init here\n"), None);
        assert_eq!(OutcomeKind::classify(Some(1), false, false, ""), QemuError(Some(1)));
        assert_eq!(OutcomeKind::classify(None, false, false, ""), QemuError(None));
        // A kill after the timeout is a hang, whatever the status says.
        assert_eq!(OutcomeKind::classify(None, true, false, ""), Hang);
    }

    #[test]
    fn success_outcomes() {
        assert!(OutcomeKind::Pass.is_success());
        assert!(OutcomeKind::PowerOff.is_success());
        assert!(!OutcomeKind::KernelPanic.is_success());
        assert!(!OutcomeKind::TripleFaultOrReboot.is_success());
        assert!(!OutcomeKind::Hang.is_success());
    }

    #[test]
    fn pvh_command_line() {
        let run = Run::new("k.elf").smp(4).cmdline("test=boot").module(Some("fs.img".into()));
        let args: Vec<String> =
            run.args(&Media::Pvh, Path::new("s.log")).into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        for want in [
            "-machine q35",
            "-smp 4",
            "-m 1G",
            "-cpu EPYC,+svm,+npt",
            "-no-reboot",
            "-display none",
            "-device isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-serial file:s.log",
            "-kernel k.elf",
            "-append test=boot",
            "-initrd fs.img",
        ] {
            assert!(joined.contains(want), "missing {want:?} in {joined}");
        }
        // The command line is one argument even with spaces.
        let run = Run::new("k").cmdline("a=1 b=2");
        let args = run.args(&Media::Pvh, Path::new("l"));
        assert!(args.contains(&OsString::from("a=1 b=2")));
    }

    #[test]
    fn uefi_command_line() {
        let media = Media::Iso { iso: "m.iso".into(), ovmf: Some(("CODE.fd".into(), "VARS.fd".into())) };
        let args = Run::new("k").boot_path(BootPath::LimineUefi).args(&media, Path::new("l"));
        let joined = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
        assert!(joined.contains("-drive if=pflash,format=raw,unit=0,file=CODE.fd,readonly=on"));
        assert!(joined.contains("-drive if=pflash,format=raw,unit=1,file=VARS.fd "));
        assert!(joined.contains("-cdrom m.iso"));
        assert!(!joined.contains("-kernel"));
    }

    #[test]
    fn parses_boot_paths() {
        for p in [BootPath::Pvh, BootPath::LimineBios, BootPath::LimineUefi] {
            assert_eq!(p.to_string().parse::<BootPath>().ok(), Some(p));
        }
        assert!("grub".parse::<BootPath>().is_err());
    }
}
