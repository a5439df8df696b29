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
//! init exits with the last nonzero exit code (or a failure to start: -1),
//! else 0.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use mx::bootfs::Bootfs;
use mx::launch::{launch, Image, Launch};
use mx::{Handle, Status, Vmo};
use mx_abi::{PA_FDIO_LOGGER, PA_JOB_DEFAULT, PA_VMO_BOOTFS, PA_VMO_VDSO};

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

    let mut last_failure = 0;
    for line in rc.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let code = match start(&bootfs, &vdso, &job, &words) {
            Ok(code) => code,
            Err(status) => {
                mxrt::println!("init: {}: {status}", words[0]);
                -1
            }
        };
        mxrt::println!("init: {} exited with {code}", words[0]);
        if code != 0 {
            last_failure = code;
        }
    }
    Ok(last_failure)
}

/// Starts `words[0]` from bootfs with `words` as its arguments; returns its exit code.
fn start(bootfs: &Bootfs, vdso: &Vmo, job: &Handle, words: &[&str]) -> Result<i32, Status> {
    let path = words.first().copied().ok_or(Status::InvalidArgs)?;
    let entry = bootfs.find(path)?;
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut handles = Vec::new();
    if let Some(log) = mxrt::log::duplicate() {
        handles.push((PA_FDIO_LOGGER, 0, log));
    }
    let process = launch(Launch {
        name,
        job,
        image: Image { vmo: bootfs.vmo(), offset: entry.offset, size: entry.size },
        vdso,
        args: words,
        environ: &[],
        handles,
    })?;
    process.wait_exit()
}
