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
//! Services: a line with `+service=NAME` starts its program in the
//! background instead of waiting for it, with a **connector channel** as
//! `PA_HND(PA_USER0, 0)`; init goes on once the service has raised
//! `MX_USER_SIGNAL_0` on init's end of it (ready) or closed it (10 s at most). A later line with the grant `+NAME` gets a fresh
//! client channel: init creates a channel pair, sends one end to the service
//! over the connector (a message of no bytes and that one handle) and passes
//! the other as `PA_HND(PA_USER0, ARG)`, where ARG is 0x4856 for `hyperv`
//! and 1 for any other service. At the end of the manifest init closes the
//! connectors (a service's cue to finish once its clients are gone) and
//! waits for each service (10 s, then kills it); their exit codes count
//! like any program's, and the kernel counts must be back where they were
//! before the first service started.
//!
//! Around every program init reads the kernel's counts
//! (`MX_INFO_KERNEL_COUNTS`): live objects, handles, VMOs, committed pages,
//! processes and threads must be back where they were once it has exited,
//! else init reports `init: LEAK after <prog>: ...` and counts it a failure.
//! The memory of running services is taken out of the committed pages like
//! init's own (a service's heap may grow while it serves); a service must
//! free every object of a client once the client's channel closes.
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
use mx::{Channel, Handle, Process, Signals, Status, Vmo};
use mx_abi::object::InfoKernelCounts;
use mx_abi::{PA_FDIO_LOGGER, PA_JOB_DEFAULT, PA_RESOURCE, PA_USER0, PA_VMO_BOOTFS, PA_VMO_VDSO};

mxrt::entry!(main);

/// The default manifest.
const INIT_RC: &str = "etc/init.rc";

/// How long init waits for a service to end once its connector is closed.
const SERVICE_EXIT_TIMEOUT_NS: u64 = 10_000_000_000;

/// A program started with `+service=NAME`.
struct Service {
    name: String,
    path: String,
    process: Process,
    /// init's end of the connector; closing it tells the service to finish.
    connector: Option<Channel>,
}

/// The handle-info `arg` of a client channel of service `name`.
fn client_arg(name: &str) -> u32 {
    match name {
        "hyperv" => 0x4856,
        _ => 1,
    }
}

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
    let mut services: Vec<Service> = Vec::new();
    let mut before_services: Option<InfoKernelCounts> = None;
    let mut last_failure = 0;
    for line in rc.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (grants, words): (Vec<&str>, Vec<&str>) = line.split_whitespace().partition(|w| w.starts_with('+'));
        let Some(&path) = words.first() else { continue };
        let service = grants.iter().find_map(|g| g.strip_prefix("+service="));
        // Settled: what the kernel still frees from the last program is not
        // part of this one's baseline.
        let before =
            resource.as_ref().and_then(|r| mx::counts::read_settled(r, &ours(&me, &services), 1_000_000_000).ok());
        let ctx = Grants { resource: resource.as_ref(), job: &job, vdso: &vdso, bootfs: &bootfs, services: &services };
        if let Some(name) = service {
            if before_services.is_none() {
                before_services = before;
            }
            match start_service(&bootfs, &vdso, &job, &words, &grants, &ctx) {
                Ok((process, connector)) => {
                    // Wait until it is ready (or gone), so the counts around
                    // the next program do not see its start.
                    let ready = Signals::USER_0 | Signals::CHANNEL_PEER_CLOSED;
                    let deadline = mx::deadline_after(SERVICE_EXIT_TIMEOUT_NS);
                    if connector.handle().wait_one(ready, deadline).map_or(true, |s| !s.contains(Signals::USER_0)) {
                        mxrt::println!("init: service {name} did not signal that it is ready");
                    }
                    mxrt::println!("init: {path} started as service {name}");
                    services.push(Service {
                        name: String::from(name),
                        path: String::from(path),
                        process,
                        connector: Some(connector),
                    });
                }
                Err(status) => {
                    mxrt::println!("init: {path}: {status}");
                    mxrt::println!("init: {path} exited with -1");
                    last_failure = -1;
                }
            }
            continue;
        }
        // Under kernel fault injection a launch may fail for want of
        // memory: try again (a few times) before counting it a failure.
        let mut attempt = 0;
        let started = loop {
            attempt += 1;
            match start(&bootfs, &vdso, &job, &words, &grants, &ctx).and_then(|p| p.wait_exit()) {
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
            if let Err(leak) = settle(resource, &me, &services, &before) {
                mxrt::println!("init: LEAK after {path}: {leak}");
                last_failure = 1;
            } else {
                mxrt::println!("init: {path}: kernel counts back to baseline");
            }
        }
    }
    if let Some(code) = stop_services(&mut services) {
        last_failure = code;
    }
    services.clear();
    if let (Some(resource), Some(before)) = (resource.as_ref(), before_services) {
        if let Err(leak) = settle(resource, &me, &services, &before) {
            mxrt::println!("init: LEAK after the services: {leak}");
            last_failure = 1;
        } else {
            mxrt::println!("init: services: kernel counts back to baseline");
        }
    }
    Ok(last_failure)
}

/// Closes every connector, then waits for each service to exit; the last
/// nonzero exit code, if any.
fn stop_services(services: &mut [Service]) -> Option<i32> {
    for s in services.iter_mut() {
        s.connector = None;
    }
    let mut failure = None;
    for s in services.iter() {
        let deadline = mx::deadline_after(SERVICE_EXIT_TIMEOUT_NS);
        let code = match s.process.handle().wait_one(Signals::PROCESS_TERMINATED, deadline) {
            Ok(_) => s.process.info().map(|i| i.return_code).unwrap_or(-1),
            Err(status) => {
                mxrt::println!("init: service {} did not exit ({status}): killed", s.name);
                let _ = s.process.kill();
                let _ = s.process.handle().wait_one(Signals::PROCESS_TERMINATED, mx::deadline_after(1_000_000_000));
                -1
            }
        };
        mxrt::println!("init: {} exited with {code}", s.path);
        if code != 0 {
            failure = Some(code);
        }
    }
    failure
}

/// What init may pass on to a program that asks (`+name` words).
struct Grants<'a> {
    resource: Option<&'a Handle>,
    job: &'a Handle,
    vdso: &'a Vmo,
    bootfs: &'a Bootfs,
    services: &'a [Service],
}

/// Waits (up to a second: the kernel frees exited threads' stacks in the
/// background) for the counts that must not leak to return to `before`.
fn settle(resource: &Handle, me: &Handle, services: &[Service], before: &InfoKernelCounts) -> Result<(), String> {
    mx::counts::settle(resource, &ours(me, services), before, 1_000_000_000)
}

/// Init and its services: the processes whose memory is not a program's
/// (their heaps may grow while a program runs), left out of the committed
/// pages the leak check compares.
fn ours<'a>(me: &'a Handle, services: &'a [Service]) -> Vec<&'a Handle> {
    core::iter::once(me).chain(services.iter().map(|s| s.process.handle())).collect()
}

/// Starts `words[0]` from bootfs as a service: the program's grants plus a
/// connector channel; returns the process and init's end of the connector.
fn start_service(
    bootfs: &Bootfs,
    vdso: &Vmo,
    job: &Handle,
    words: &[&str],
    grants: &[&str],
    ctx: &Grants,
) -> Result<(Process, Channel), Status> {
    let (ours, theirs) = Channel::create()?;
    let process = start_with(bootfs, vdso, job, words, grants, ctx, Some(theirs.into_handle()))?;
    Ok((process, ours))
}

/// Starts `words[0]` from bootfs with `words` as its arguments.
fn start(
    bootfs: &Bootfs,
    vdso: &Vmo,
    job: &Handle,
    words: &[&str],
    grants: &[&str],
    ctx: &Grants,
) -> Result<Process, Status> {
    start_with(bootfs, vdso, job, words, grants, ctx, None)
}

/// A fresh client channel of the service `name`: one end goes to the
/// service over its connector, the other is returned.
fn connect_to(services: &[Service], name: &str) -> Result<Handle, Status> {
    let service = services.iter().find(|s| s.name == name).ok_or(Status::NotFound)?;
    let connector = service.connector.as_ref().ok_or(Status::NotFound)?;
    let (client, server) = Channel::create()?;
    let mut handles = alloc::vec![server.into_handle()];
    connector.write(&[], &mut handles)?;
    Ok(client.into_handle())
}

fn start_with(
    bootfs: &Bootfs,
    vdso: &Vmo,
    job: &Handle,
    words: &[&str],
    grants: &[&str],
    ctx: &Grants,
    connector: Option<Handle>,
) -> Result<Process, Status> {
    let path = words.first().copied().ok_or(Status::InvalidArgs)?;
    let entry = bootfs.find(path)?;
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut handles = Vec::new();
    if let Some(log) = mxrt::log::duplicate() {
        handles.push((PA_FDIO_LOGGER, 0, log));
    }
    if let Some(connector) = connector {
        handles.push((PA_USER0, 0, connector));
    }
    for grant in grants {
        let same = mx::Rights::SAME_RIGHTS;
        let (ty, arg, handle) = match *grant {
            "+resource" => (PA_RESOURCE, 0, ctx.resource.ok_or(Status::NotFound)?.duplicate(same)?),
            "+job" => (PA_JOB_DEFAULT, 0, ctx.job.duplicate(same)?),
            "+vdso" => (PA_VMO_VDSO, 0, ctx.vdso.duplicate(same)?.into_handle()),
            "+bootfs" => (PA_VMO_BOOTFS, 0, ctx.bootfs.vmo().duplicate(same)?.into_handle()),
            service if service.starts_with("+service=") => continue,
            other => {
                let name = &other[1..];
                if !ctx.services.iter().any(|s| s.name == name) {
                    mxrt::println!("init: unknown grant {other}");
                    return Err(Status::InvalidArgs);
                }
                (PA_USER0, client_arg(name), connect_to(ctx.services, name)?)
            }
        };
        handles.push((ty, arg, handle));
    }
    // Programs inherit init's environment: the kernel command line's words
    // (e.g. `fuzz.seed=N` for bin/fuzz).
    let environ = mxrt::environ();
    let environ: Vec<&str> = environ.iter().map(String::as_str).collect();
    launch(Launch {
        name,
        job,
        image: Image { vmo: bootfs.vmo(), offset: entry.offset, size: entry.size },
        vdso,
        args: words,
        environ: &environ,
        handles,
    })
}
