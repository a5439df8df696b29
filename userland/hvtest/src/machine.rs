//! Guests for the cases: resources, a 2 MiB guest with identity page
//! tables and a snippet at CODE, helper threads, and exit expectations.
//!
//! Guest-physical layout: GDT at 0 (null, 0x08 code64, 0x10 data; the VCPU
//! starts with GDTR base 0), PML4 0x1000, PDPT 0x2000, PD 0x3000 (2 MiB
//! pages over the first GiB), IDT 0x4000 (snippets fill their gates), IDTR
//! image at 0x5000, stack below 0x9000, code at 0x10000. MMIO tests use the
//! page at 0x10000000 (above RAM, inside the identity map).

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use mx::hypervisor::{Exit, Guest, Vcpu};
use mx::{Handle, Resource, Status, Thread, Vmo};
use mx_abi::types::mx_handle_t;

use crate::harness::Failure;

pub const RAM: u64 = 2 << 20;
pub const CODE: u64 = 0x10000;
pub const PML4: u64 = 0x1000;
pub const STACK_TOP: u64 = 0x9000;
pub const MMIO: u64 = 0x1000_0000;

/// A handle value that is certainly not in this process's table.
pub const NOT_A_HANDLE: mx_handle_t = 0x7ffe_0002;
/// An address in the kernel half.
pub const KERNEL_ADDR: usize = 0xffff_ffff_8020_0000;
/// A user address with nothing mapped.
pub const UNMAPPED_ADDR: usize = 0x1000;

static ROOT: AtomicU32 = AtomicU32::new(0);
static HYP: AtomicU32 = AtomicU32::new(0);
static PROCESS_SELF: AtomicU32 = AtomicU32::new(0);
static SUPPORTED: AtomicU32 = AtomicU32::new(0); // 0 unknown, 1 yes, 2 no

/// Takes the root resource and our process handle; makes the HYPERVISOR resource.
pub fn take_grants() {
    if let Some(root) = mxrt::take_handle(mx_abi::PA_RESOURCE, 0) {
        let root = Resource::from_handle(root);
        if let Ok(hyp) = mx::hypervisor::hypervisor_resource(&root) {
            HYP.store(hyp.into_handle().into_raw(), Ordering::Release);
        }
        ROOT.store(root.into_handle().into_raw(), Ordering::Release);
    }
    if let Some(p) = mxrt::take_handle(mx_abi::PA_PROC_SELF, 0) {
        PROCESS_SELF.store(p.into_raw(), Ordering::Release);
    }
}

/// The root resource's raw value (0 if init gave none).
pub fn root() -> mx_handle_t {
    ROOT.load(Ordering::Acquire)
}

/// The HYPERVISOR resource's raw value.
pub fn hyp() -> mx_handle_t {
    HYP.load(Ordering::Acquire)
}

/// A borrowed handle value.
pub fn borrowed<T>(raw: mx_handle_t, wrap: fn(Handle) -> T) -> core::mem::ManuallyDrop<T> {
    core::mem::ManuallyDrop::new(wrap(Handle::from_raw(raw)))
}

/// A raw handle owned (closed on drop).
pub fn own(raw: mx_handle_t) -> Handle {
    Handle::from_raw(raw)
}

/// Skips the case unless the machine can run guests.
pub fn need_hv() -> Result<(), Failure> {
    if hyp() == 0 {
        return Err(Failure::Fail(String::from("no HYPERVISOR resource (grant +resource)")));
    }
    match SUPPORTED.load(Ordering::Acquire) {
        1 => return Ok(()),
        2 => return Err(skip_no_hv()),
        _ => {}
    }
    let vmo = Vmo::create(RAM).map_err(|s| alloc::format!("vmo: {s:?}"))?;
    let supported = match Guest::create(&borrowed(hyp(), Resource::from_handle), &vmo) {
        Ok(_) => true,
        Err(Status::NotSupported) => false,
        Err(s) => return Err(Failure::Fail(alloc::format!("guest_create: {s:?}"))),
    };
    SUPPORTED.store(if supported { 1 } else { 2 }, Ordering::Release);
    if supported {
        Ok(())
    } else {
        Err(skip_no_hv())
    }
}

fn skip_no_hv() -> Failure {
    Failure::Skip(String::from("no hardware virtualization (guest_create is NOT_SUPPORTED)"))
}

fn st(what: &'static str) -> impl Fn(Status) -> Failure {
    move |s| Failure::Fail(alloc::format!("{what}: {s:?}"))
}

/// Guest RAM with the GDT, identity page tables, the IDTR image and `code`.
pub fn memory(code: &[u8]) -> Result<Vmo, Failure> {
    let vmo = Vmo::create(RAM).map_err(st("vmo"))?;
    let words = |at: u64, words: &[u64]| -> Result<(), Failure> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        vmo.write_all(&bytes, at).map_err(st("vmo write"))
    };
    words(0, &[0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff])?;
    words(PML4, &[0x2003])?;
    words(0x2000, &[0x3003])?;
    let pd: Vec<u64> = (0..512u64).map(|i| (i << 21) | 0x83).collect();
    words(0x3000, &pd)?;
    // IDTR image: limit 0xfff, base 0x4000 (snippets `lidt 0x5000`).
    let mut idtr = [0u8; 10];
    idtr[..2].copy_from_slice(&0xfffu16.to_le_bytes());
    idtr[2..].copy_from_slice(&0x4000u64.to_le_bytes());
    vmo.write_all(&idtr, 0x5000).map_err(st("idtr"))?;
    vmo.write_all(code, CODE).map_err(st("code"))?;
    Ok(vmo)
}

/// A guest running a snippet.
pub struct Machine {
    pub ram: Vmo,
    pub guest: Guest,
    pub apic: Vmo,
}

/// A guest whose RAM holds `code` at CODE (skips without SVM).
pub fn machine(code: &[u8]) -> Result<Machine, Failure> {
    need_hv()?;
    let ram = memory(code)?;
    let guest = Guest::create(&borrowed(hyp(), Resource::from_handle), &ram).map_err(st("guest_create"))?;
    let apic = Vmo::create(4096).map_err(st("apic vmo"))?;
    Ok(Machine { ram, guest, apic })
}

impl Machine {
    /// A VCPU at CODE (bound to the calling thread) with RSP = STACK_TOP.
    pub fn vcpu(&self) -> Result<Vcpu, Failure> {
        let vcpu = Vcpu::create(&self.guest, CODE, PML4, &self.apic).map_err(st("vcpu_create"))?;
        let mut state = vcpu.read_state().map_err(st("read_state"))?;
        state.rsp = STACK_TOP;
        vcpu.write_state(&state).map_err(st("write_state"))?;
        Ok(vcpu)
    }
}

/// The next exit (failing the case on an error).
pub fn next(vcpu: &Vcpu) -> Result<Exit, Failure> {
    vcpu.resume().map_err(|e| Failure::Fail(alloc::format!("vcpu_resume: {e}")))
}

/// Resumes and expects an OUT of `size` bytes of `data` to `port` (key 0).
pub fn expect_out(vcpu: &Vcpu, port: u16, size: u8, data: u32) -> Result<(), Failure> {
    match next(vcpu)? {
        Exit::Io { key: 0, port: p, size: s, input: false, data: d } if p == port && s == size && d == data => Ok(()),
        other => {
            Err(Failure::Fail(alloc::format!("expected OUT {port:#x} size {size} data {data:#x}, got {other:x?}")))
        }
    }
}

/// Resumes and expects a 4-byte OUT to 0x81 (the snippets' report port): its data.
pub fn report(vcpu: &Vcpu) -> Result<u32, Failure> {
    match next(vcpu)? {
        Exit::Io { port: 0x81, input: false, data, .. } => Ok(data),
        other => Err(Failure::Fail(alloc::format!("expected a report on port 0x81, got {other:x?}"))),
    }
}

/// A deadline `ns` from now.
pub fn after(ns: u64) -> u64 {
    mx::deadline_after(ns)
}

/// Sleeps `ns`.
pub fn sleep(ns: u64) {
    let _ = mx::nanosleep(after(ns));
}

/// The kernel's live objects and handles, once they stop changing: threads
/// of an earlier case may still be on their way out (the reaper frees them
/// after `join` returns), and a count taken mid-way would not come back.
pub fn counts() -> Result<(u64, u64), Failure> {
    let mut last = read_counts()?;
    for _ in 0..200 {
        sleep(2_000_000);
        let now = read_counts()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// [`counts`] plus committed pages and live VMOs, once they stop changing.
pub fn counts_and_pages() -> Result<[u64; 4], Failure> {
    let read = || -> Result<[u64; 4], Failure> {
        let c = read_kernel_counts()?;
        Ok([c.objects, c.handles, c.committed_pages, c.vmos])
    };
    let mut last = read()?;
    for _ in 0..200 {
        sleep(2_000_000);
        let now = read()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

fn read_counts() -> Result<(u64, u64), Failure> {
    let c = read_kernel_counts()?;
    Ok((c.objects, c.handles))
}

/// The kernel's counts without hvtest's own memory: our heap may grow
/// during a case, and that is not the kernel's leak.
fn read_kernel_counts() -> Result<mx_abi::object::InfoKernelCounts, Failure> {
    // Borrowed: the raw values stay ours, so the handles must not close.
    let root = core::mem::ManuallyDrop::new(Handle::from_raw(root()));
    let me = core::mem::ManuallyDrop::new(Handle::from_raw(PROCESS_SELF.load(Ordering::Acquire)));
    mx::counts::read(&root, &[&me]).map_err(|s| Failure::Fail(alloc::format!("MX_INFO_KERNEL_COUNTS: {s:?}")))
}

/// `MX_INFO_HANDLE_BASIC` rights and type of a raw handle.
pub fn rights_and_type(raw: mx_handle_t) -> Result<(u32, u32), Failure> {
    let mut buf = [0u8; 32];
    let (mut actual, mut avail) = (0usize, 0usize);
    let status = unsafe {
        mx::sys::mx_object_get_info(
            raw,
            mx_abi::InfoTopic::HandleBasic as u32,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut actual,
            &mut avail,
        )
    };
    if status != 0 {
        return Err(Failure::Fail(alloc::format!("HANDLE_BASIC: {:?}", Status::try_from(status))));
    }
    let b = mx_abi::object::InfoHandleBasic::from_bytes(&buf);
    Ok((b.rights, b.obj_type))
}

/// A duplicate with exactly `rights`.
pub fn with_rights(raw: mx_handle_t, rights: u32) -> Result<Handle, Failure> {
    let mut out = 0;
    let status = unsafe { mx::sys::mx_handle_duplicate(raw, rights, &mut out) };
    if status != 0 {
        return Err(Failure::Fail(alloc::format!("duplicate with {rights:#x}: {:?}", Status::try_from(status))));
    }
    Ok(Handle::from_raw(out))
}

// ------------------------------------------------------------ threads

/// A helper thread ([`mxrt::thread`]); dropping it joins it (killing it
/// after a second).
pub struct Spawned<'a>(mxrt::thread::Spawned<'a>);

/// Runs `f(data)` on a new thread of this process.
pub fn spawn<'a, T: Sync>(f: fn(&T), data: &'a T) -> Result<Spawned<'a>, Failure> {
    // Borrowed: hvtest keeps its process handle for the whole run.
    let me = core::mem::ManuallyDrop::new(Handle::from_raw(PROCESS_SELF.load(Ordering::Acquire)));
    mxrt::thread::spawn(&me, "hvtest-helper", f, data).map(Spawned).map_err(|(what, s)| st(what)(s))
}

impl Spawned<'_> {
    /// The thread.
    pub fn thread(&self) -> &Thread {
        self.0.thread()
    }

    /// Waits up to `timeout_ns` for the thread to end by itself.
    pub fn join_within(mut self, timeout_ns: u64) -> Result<(), Failure> {
        if self.0.finish(timeout_ns) {
            Ok(())
        } else {
            Err(Failure::Fail(alloc::format!(
                "helper thread did not end within {} ms (killed)",
                timeout_ns / 1_000_000
            )))
        }
    }

    /// Waits up to 5 s.
    pub fn join(self) -> Result<(), Failure> {
        self.join_within(5_000_000_000)
    }

    /// Kills the thread (dropping it then waits for it).
    pub fn kill(&self) -> Result<(), Failure> {
        self.0.kill().map_err(st("mx_task_kill"))
    }
}

/// Waits (up to 2 s) until a helper is blocked in the kernel.
pub fn wait_blocked(spawned: &Spawned<'_>) -> Result<(), Failure> {
    let deadline = after(2_000_000_000);
    loop {
        let info: mx_abi::object::InfoThread =
            spawned.thread().handle().info(mx_abi::object::InfoTopic::Thread).map_err(st("MX_INFO_THREAD"))?;
        if info.state == mx_abi::object::ThreadState::Blocked as u32 {
            return Ok(());
        }
        if mx::time_monotonic() > deadline {
            return Err(Failure::Fail(String::from("helper thread never blocked")));
        }
        sleep(200_000);
    }
}

/// A flag for threads.
pub struct Flag(pub AtomicBool);

impl Flag {
    pub const fn new() -> Flag {
        Flag(AtomicBool::new(false))
    }
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
