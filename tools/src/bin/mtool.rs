//! `mtool`: magnetar's image builder and QEMU runner. Run `mtool help` for usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tools::qemu::{Accel, BootPath, Run};
use tools::{kernel, limine};

const USAGE: &str = "\
usage: mtool <command> [options]

commands:
  image   fill the .ksyms symbol table of the linked kernel
            --kernel FILE   linked kernel (default target/x86_64-unknown-none/release/kernel)
            --out FILE      patched image (default build/kernel.elf)
  iso     build a hybrid BIOS+UEFI Limine ISO (needs LIMINE_DIR or a distro Limine)
            --kernel FILE   kernel image (default build/kernel.elf)
            --module FILE   boot module, loaded as /boot/bootfs
            --cmdline STR   kernel command line
            --out FILE      ISO (default build/magnetar.iso)
  bootfs  write a boot filesystem image (format: tools/src/bootfs.rs)
            --out FILE      image (default build/bootfs.img)
            FILE=NAME ...   host file and its name in the image, e.g. build/init.rc=etc/init.rc
  vdso-layout  write the vDSO layout the kernel includes (contract: sysroot/vdso/README.md)
            --vdso FILE     the vDSO (default build/vdso.so)
            --out FILE      Rust source (default build/vdso-layout.rs)
  run     boot the kernel in QEMU and report how the run ended
            --boot PATH     auto | pvh | limine-bios | limine-uefi (default auto: Limine BIOS
                            when a Limine install is found, else PVH)
            --kernel FILE   kernel image (default build/kernel.elf)
            --module FILE   boot module (-initrd under PVH)
            --cmdline STR   kernel command line, e.g. test=boot, fault=pf, poweroff
            --smp N         CPUs (default 1)
            --mem SIZE      memory (default 1G)
            --timeout SECS  hard timeout (default 120)
            --log FILE      serial log (default build/runs/<boot path>/serial.log)
            --accel A       tcg (default) | kvm (only for runs that need no SVM)
            --interactive   serial on the terminal, no timeout; quit with Ctrl-A X
  bench   boot userland/bench (etc/bench.rc) at -smp 1 and 4, interleaved with linux-ref's
          run.sh tcg (Linux/KVM in the same QEMU configuration); print the table and write
          build/bench/results.json (and results.txt)
            --kernel FILE   kernel image (default build/kernel.elf)
            --module FILE   boot filesystem with bin/bench (default build/bootfs.img)
            --rounds N      boots of each kind (default 3)
            --target-ms N   ms per repetition, both sides (default 100)
            --linux-ref DIR linux-ref's scripts (default $LINUX_REF, else
                            ../shared/bench/linux-ref beside the checkout); --no-linux skips it
            --out DIR       results directory (default build/bench)

exit status: 0 for a pass, a clean power-off or an interactive quit; 1 otherwise.";

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mtool: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let mut args = Args::new(std::env::args().skip(1).collect());
    let command = args.positional().unwrap_or_else(|| "help".into());
    match command.as_str() {
        "image" => image(args),
        "iso" => iso(args),
        "run" => run(args),
        "bootfs" => bootfs(args),
        "vdso-layout" => vdso_layout(args),
        "bench" => bench(args),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

fn image(mut args: Args) -> Result<ExitCode> {
    let input = args.path("--kernel")?.unwrap_or_else(kernel::linked_path);
    let output = args.path("--out")?.unwrap_or_else(kernel::image_path);
    args.finish()?;
    let stats = tools::ksyms::patch_file(&input, &output)?;
    println!("ksyms: {} functions, {} of {} bytes -> {}", stats.symbols, stats.used, stats.capacity, output.display());
    Ok(ExitCode::SUCCESS)
}

fn iso(mut args: Args) -> Result<ExitCode> {
    let kernel = args.path("--kernel")?.unwrap_or_else(kernel::image_path);
    let module = args.path("--module")?;
    let cmdline = args.value("--cmdline")?.unwrap_or_default();
    let output = args.path("--out")?.unwrap_or_else(|| tools::build_dir().join("magnetar.iso"));
    args.finish()?;
    let dir = limine::find()?.ok_or_else(|| {
        anyhow!("{}: the ISO needs a Limine binary release (LIMINE_DIR=/path/to/limine make iso)", limine::MISSING_HINT)
    })?;
    let spec = limine::IsoSpec { kernel: &kernel, module: module.as_deref(), cmdline: &cmdline, output: &output };
    for note in limine::build_iso(&dir, &spec)? {
        println!("iso: {note}");
    }
    println!("iso: {} (Limine from {})", output.display(), dir.display());
    Ok(ExitCode::SUCCESS)
}

fn bootfs(mut args: Args) -> Result<ExitCode> {
    let out = args.path("--out")?.unwrap_or_else(|| tools::build_dir().join("bootfs.img"));
    let specs = args.rest();
    if specs.is_empty() {
        bail!("bootfs needs at least one FILE=NAME");
    }
    let size = tools::bootfs::write_image(&specs, &out)?;
    println!("bootfs: {} files, {size} bytes -> {}", specs.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

fn vdso_layout(mut args: Args) -> Result<ExitCode> {
    let so = args.path("--vdso")?.unwrap_or_else(tools::vdso::so_path);
    let out = args.path("--out")?.unwrap_or_else(tools::vdso::layout_path);
    args.finish()?;
    let layout = tools::vdso::write_layout(&so, &out)?;
    println!(
        "vdso-layout: code {:#x} bytes, constants at {:#x}, {} return addresses -> {}",
        layout.code_size,
        layout.constants_offset,
        layout.labels.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run(mut args: Args) -> Result<ExitCode> {
    let boot = args.value("--boot")?.unwrap_or_else(|| "auto".into());
    let kernel = args.path("--kernel")?.unwrap_or_else(kernel::image_path);
    let module = args.path("--module")?;
    let cmdline = args.value("--cmdline")?.unwrap_or_default();
    let smp = args.parsed("--smp")?.unwrap_or(1);
    let mem = args.value("--mem")?.unwrap_or_else(|| "1G".into());
    let timeout = args.parsed("--timeout")?.unwrap_or(tools::qemu::DEFAULT_TIMEOUT.as_secs());
    let log = args.path("--log")?;
    let accel: Accel = args.parsed("--accel")?.unwrap_or(Accel::Tcg);
    let interactive = args.flag("--interactive");
    args.finish()?;

    let (boot, limine_dir) = match boot.as_str() {
        "auto" => match limine::find()? {
            Some(dir) => (BootPath::LimineBios, Some(dir)),
            None => {
                println!("run: {}: falling back to QEMU's PVH boot", limine::MISSING_HINT);
                (BootPath::Pvh, None)
            }
        },
        other => (other.parse()?, None),
    };
    let mut run = Run::new(kernel)
        .name(boot.to_string())
        .boot_path(boot)
        .smp(smp)
        .mem(mem)
        .cmdline(cmdline.clone())
        .module(module)
        .timeout(Duration::from_secs(timeout))
        .accel(accel)
        .interactive(interactive);
    if let Some(log) = log {
        run = run.log(log);
    }
    if let Some(dir) = limine_dir {
        run = run.limine_dir(dir);
    }
    let limits =
        if interactive { "interactive: quit with Ctrl-A X".to_string() } else { format!("timeout {timeout}s") };
    println!("run: boot {boot}, {smp} CPU(s), cmdline {cmdline:?}, {limits}");
    let outcome = run.run()?;
    print!("{}", outcome.report());
    if !outcome.kind.is_success() {
        return Ok(ExitCode::FAILURE);
    }
    // With userspace, the machine powers off when init exits; init's exit
    // code (the last failing program's) becomes ours, so `make run
    // PROGRAM=x` exits with x's code.
    Ok(match tools::qemu::init_exit_code(&outcome.log) {
        Some(code) => ExitCode::from(code as u8),
        None => ExitCode::SUCCESS,
    })
}

fn bench(mut args: Args) -> Result<ExitCode> {
    let kernel = args.path("--kernel")?.unwrap_or_else(kernel::image_path);
    let bootfs = args.path("--module")?.unwrap_or_else(|| tools::build_dir().join("bootfs.img"));
    let out = args.path("--out")?.unwrap_or_else(|| tools::build_dir().join("bench"));
    let mut opts = tools::bench::Options::new(kernel, bootfs, out);
    opts.rounds = args.parsed("--rounds")?.unwrap_or(opts.rounds).max(1);
    opts.target_ms = args.parsed("--target-ms")?.unwrap_or(opts.target_ms).max(1);
    let no_linux = args.flag("--no-linux");
    let linux_ref = args
        .path("--linux-ref")?
        .or_else(|| std::env::var_os("LINUX_REF").map(PathBuf::from))
        .unwrap_or_else(|| tools::workspace_root().join("../shared/bench/linux-ref"));
    args.finish()?;
    opts.linux_ref = (!no_linux).then_some(linux_ref);
    let report = tools::bench::run(&opts)?;
    print!("{}", report.table());
    println!("bench: wrote {}", opts.out_dir.join("results.json").display());
    Ok(ExitCode::SUCCESS)
}

/// A minimal option parser: `--name value`, `--name=value` and `--flag`.
struct Args {
    rest: Vec<String>,
}

impl Args {
    fn new(rest: Vec<String>) -> Self {
        Args { rest }
    }

    /// The leading non-option argument (the command), if any.
    fn positional(&mut self) -> Option<String> {
        if self.rest.first()?.starts_with('-') {
            return None;
        }
        Some(self.rest.remove(0))
    }

    fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| a != name);
        self.rest.len() != before
    }

    fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        let Some(i) = self.rest.iter().position(|a| a == name || a.starts_with(&prefix)) else {
            return Ok(None);
        };
        let arg = self.rest.remove(i);
        if let Some(value) = arg.strip_prefix(&prefix) {
            return Ok(Some(value.to_string()));
        }
        if i >= self.rest.len() {
            bail!("{name} needs a value");
        }
        Ok(Some(self.rest.remove(i)))
    }

    fn path(&mut self, name: &str) -> Result<Option<PathBuf>> {
        Ok(self.value(name)?.map(PathBuf::from))
    }

    fn parsed<T>(&mut self, name: &str) -> Result<Option<T>>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.value(name)?
            .map(|v| v.parse::<T>().map_err(|e| anyhow!("{e}")).with_context(|| format!("{name} {v}")))
            .transpose()
    }

    /// The remaining arguments (after every option was taken); options left over are an error.
    fn rest(self) -> Vec<String> {
        self.rest
    }

    fn finish(self) -> Result<()> {
        if !self.rest.is_empty() {
            bail!("unexpected arguments: {} (see `mtool help`)", self.rest.join(" "));
        }
        Ok(())
    }
}
