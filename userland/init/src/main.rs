//! init: the first process.
//!
//! The kernel starts it with a bootstrap message carrying the boot filesystem
//! (`PA_VMO_BOOTFS`), the vDSO (`PA_VMO_VDSO`), the root resource
//! (`PA_RESOURCE`), its own process, thread and root VMAR, and optionally
//! the root job (`PA_JOB_DEFAULT`); see userland/README.md. It reads the
//! manifest `etc/init.rc` from bootfs (or the path in an `init.rc=PATH`
//! environment string): one program per line, `#` comments, words after the
//! path are its arguments. Each program is started and waited for in turn:
//!
//! ```text
//! init: bin/hello exited with 0
//! ```
//!
//! Words of a line that start with `+` are not arguments but grants, handles
//! init passes on: `+resource` (the root resource, `PA_RESOURCE`), `+job`
//! (the root job), `+vdso` and `+bootfs` (duplicates of those VMOs), for
//! test programs that create processes or read the kernel's counts.
//!
//! Around every program init reads the kernel's counts
//! (`MX_INFO_KERNEL_COUNTS`): live objects, handles, VMOs, committed pages,
//! processes and threads must be back where they were once it has exited,
//! else init reports `init: LEAK after <prog>: ...` and counts it a failure.
//!
//! Every program gets init's environment strings (the kernel command line's
//! words) as its own.
//!
//! init exits with the last nonzero exit code (or a failure to start: -1;
//! a leak: 1), else 0.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use mx::bootfs::Bootfs;
use mx::launch::{launch, Image, Launch};
use mx::{Handle, Status, Vmo};
use mx_abi::object::InfoKernelCounts;
use mx_abi::{PA_FDIO_LOGGER, PA_JOB_DEFAULT, PA_RESOURCE, PA_VMO_BOOTFS, PA_VMO_VDSO};

mxrt::entry!(main);

/// The default manifest.
const INIT_RC: &str = "etc/init.rc";

fn main() -> i32 {
    match run() {
        Ok(code) => code,
        Err((what, status)) => {
            mxrt::println!("init: {what}: {status}");
            1
        }
    }
}

fn run() -> Result<i32, (&'static str, Status)> {
    let bootfs = mxrt::take_handle(PA_VMO_BOOTFS, 0).ok_or(("no boot filesystem (PA_VMO_BOOTFS)", Status::NotFound))?;
    let bootfs = Bootfs::open(Vmo::from_handle(bootfs)).map_err(|s| ("reading the boot filesystem", s))?;
    let vdso = mxrt::take_handle(PA_VMO_VDSO, 0).ok_or(("no vDSO (PA_VMO_VDSO)", Status::NotFound))?;
    let vdso = Vmo::from_handle(vdso);
    let job = mxrt::take_handle(PA_JOB_DEFAULT, 0).unwrap_or(Handle::INVALID);

    let rc_path = mxrt::environ().iter().find_map(|e| e.strip_prefix("init.rc=").map(String::from));
    let rc_path = rc_path.as_deref().unwrap_or(INIT_RC);
    let rc = bootfs.read(rc_path).map_err(|s| ("reading the manifest", s))?;
    let rc = core::str::from_utf8(&rc).map_err(|_| ("the manifest is not UTF-8", Status::IoDataIntegrity))?;
    mxrt::println!("init: running {rc_path} from a bootfs of {} files", bootfs.directory().entries().count());

    let resource = mxrt::take_handle(PA_RESOURCE, 0);
    let me = mxrt::take_handle(mx_abi::PA_PROC_SELF, 0).unwrap_or(Handle::INVALID);
    let mut last_failure = 0;
    for line in rc.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (grants, words): (Vec<&str>, Vec<&str>) = line.split_whitespace().partition(|w| w.starts_with('+'));
        let Some(&path) = words.first() else { continue };
        let before = resource.as_ref().and_then(|r| counts(r, &me).ok());
        let ctx = Grants { resource: resource.as_ref(), job: &job, vdso: &vdso, bootfs: &bootfs };
        // Under kernel fault injection a launch may fail for want of
        // memory: try again (a few times) before counting it a failure.
        let mut attempt = 0;
        let started = loop {
            attempt += 1;
            match start(&bootfs, &vdso, &job, &words, &grants, &ctx) {
                Err(Status::NoMemory) if attempt < 50 => continue,
                other => break other,
            }
        };
        if attempt > 1 {
            mxrt::println!("init: {path}: started after {attempt} attempts (NO_MEMORY)");
        }
        let code = match started {
            Ok(code) => code,
            Err(status) => {
                mxrt::println!("init: {path}: {status}");
                -1
            }
        };
        mxrt::println!("init: {path} exited with {code}");
        if code != 0 {
            last_failure = code;
        }
        if let (Some(resource), Some(before)) = (resource.as_ref(), before) {
            if let Err(leak) = settle(resource, &me, &before) {
                mxrt::println!("init: LEAK after {path}: {leak}");
                last_failure = 1;
            } else {
                mxrt::println!("init: {path}: kernel counts back to baseline");
            }
        }
    }
    Ok(last_failure)
}

/// What init may pass on to a program that asks (`+name` words).
struct Grants<'a> {
    resource: Option<&'a Handle>,
    job: &'a Handle,
    vdso: &'a Vmo,
    bootfs: &'a Bootfs,
}

/// The kernel's counts, with init's own memory taken out of the committed
/// pages (init's heap may grow while it waits; that is not the program's).
fn counts(resource: &Handle, me: &Handle) -> Result<InfoKernelCounts, Status> {
    let mut counts: InfoKernelCounts = resource.info_raw(mx_abi::object::INFO_KERNEL_COUNTS)?;
    let stats: mx_abi::object::InfoTaskStats = me.info(mx_abi::object::InfoTopic::TaskStats)?;
    counts.committed_pages -= (stats.mem_private_bytes + stats.mem_shared_bytes) / 4096;
    Ok(counts)
}

/// Waits (up to a second: the kernel frees exited threads' stacks in the
/// background) for the counts that must not leak to return to `before`.
fn settle(resource: &Handle, me: &Handle, before: &InfoKernelCounts) -> Result<(), String> {
    let key = |c: &InfoKernelCounts| (c.objects, c.handles, c.vmos, c.committed_pages, c.processes, c.threads);
    let deadline = mx::deadline_after(1_000_000_000);
    loop {
        let now = counts(resource, me).map_err(|s| alloc::format!("cannot read the counts: {s}"))?;
        if key(&now) == key(before) {
            return Ok(());
        }
        if mx::time_monotonic() >= deadline {
            return Err(alloc::format!(
                "objects {} -> {}, handles {} -> {}, vmos {} -> {}, committed pages {} -> {}, processes {} -> {}, threads {} -> {}",
                before.objects, now.objects, before.handles, now.handles, before.vmos, now.vmos,
                before.committed_pages, now.committed_pages, before.processes, now.processes, before.threads, now.threads
            ));
        }
        let _ = mx::nanosleep(mx::deadline_after(10_000_000));
    }
}

/// Starts `words[0]` from bootfs with `words` as its arguments; returns its exit code.
fn start(
    bootfs: &Bootfs,
    vdso: &Vmo,
    job: &Handle,
    words: &[&str],
    grants: &[&str],
    ctx: &Grants,
) -> Result<i32, Status> {
    let path = words.first().copied().ok_or(Status::InvalidArgs)?;
    let entry = bootfs.find(path)?;
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut handles = Vec::new();
    if let Some(log) = mxrt::log::duplicate() {
        handles.push((PA_FDIO_LOGGER, 0, log));
    }
    for grant in grants {
        let same = mx::Rights::SAME_RIGHTS;
        let (ty, handle) = match *grant {
            "+resource" => (PA_RESOURCE, ctx.resource.ok_or(Status::NotFound)?.duplicate(same)?),
            "+job" => (PA_JOB_DEFAULT, ctx.job.duplicate(same)?),
            "+vdso" => (PA_VMO_VDSO, ctx.vdso.duplicate(same)?.into_handle()),
            "+bootfs" => (PA_VMO_BOOTFS, ctx.bootfs.vmo().duplicate(same)?.into_handle()),
            other => {
                mxrt::println!("init: unknown grant {other}");
                return Err(Status::InvalidArgs);
            }
        };
        handles.push((ty, 0, handle));
    }
    // Programs inherit init's environment: the kernel command line's words
    // (e.g. `fuzz.seed=N` for bin/fuzz).
    let environ = mxrt::environ();
    let environ: Vec<&str> = environ.iter().map(String::as_str).collect();
    let process = launch(Launch {
        name,
        job,
        image: Image { vmo: bootfs.vmo(), offset: entry.offset, size: entry.size },
        vdso,
        args: words,
        environ: &environ,
        handles,
    })?;
    process.wait_exit()
}
