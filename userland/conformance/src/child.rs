//! Child processes: the suite launches its own binary (`bin/conformance`
//! from bootfs) with one argument `role=NAME` that selects what the child
//! does instead of running the cases ([`run_role`]):
//!
//! | role | what the child does |
//! |---|---|
//! | `exit:N` | exits with code N |
//! | `thread-exit` | its only thread calls `mx_thread_exit` (the process then ends with 0) |
//! | `block` | waits forever on an event nobody signals (blocked in a wait) |
//! | `spin` | spins forever in user mode |
//! | `echo` | reads one message from its `PA_USER0` channel and answers, for each handle received, its value, rights and koid (16 bytes each); then exits 0 |
//! | `probe:V` | exits 0 if handle value V (hex) is BAD_HANDLE in the child, else 1 |
//! | `fault:KIND` | dies of a user fault: `ud2`, `div0`, `jump-kernel`, `jump-noncanonical`, `write-ro`, `exec-nx`, `stack-unmapped`, `hlt`, `read-null` |
//!
//! Handles a child was given and did not take stay open in it until it
//! dies. The launching side is [`spawn`] and [`wait_exit`].

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mx::launch::Image;
use mx::{Handle, Process, Signals, Status, Vmo};
use mx_abi::{PA_FDIO_LOGGER, PA_JOB_DEFAULT, PA_USER0, PA_VMO_BOOTFS, PA_VMO_VDSO};

static JOB: AtomicU32 = AtomicU32::new(0);
static VDSO: AtomicU32 = AtomicU32::new(0);
static BOOTFS: AtomicU32 = AtomicU32::new(0);
/// (offset, size) of `bin/conformance` in the bootfs VMO.
static IMAGE: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Takes the grants init passes (`+job +vdso +bootfs`) and finds our own
/// image; without them the cases that need children fail.
pub fn take_grants() {
    let take = |ty, slot: &AtomicU32| {
        if let Some(h) = mxrt::take_handle(ty, 0) {
            slot.store(h.into_raw(), Ordering::Release);
        }
    };
    take(PA_JOB_DEFAULT, &JOB);
    take(PA_VMO_VDSO, &VDSO);
    take(PA_VMO_BOOTFS, &BOOTFS);
    let bootfs = BOOTFS.load(Ordering::Acquire);
    if bootfs != 0 {
        if let Ok(dup) = borrowed(bootfs).duplicate(mx::SAME_RIGHTS) {
            if let Ok(fs) = mx::bootfs::Bootfs::open(Vmo::from_handle(dup)) {
                if let Ok(entry) = fs.find("bin/conformance") {
                    IMAGE[0].store(entry.offset, Ordering::Release);
                    IMAGE[1].store(entry.size, Ordering::Release);
                }
            }
        }
    }
}

/// The job handle value init passed (0 if none).
pub fn job() -> mx_abi::types::mx_handle_t {
    JOB.load(Ordering::Acquire)
}

/// The vDSO VMO handle value init passed (0 if none).
pub fn vdso() -> mx_abi::types::mx_handle_t {
    VDSO.load(Ordering::Acquire)
}

/// A borrowed handle value wrapped without ownership.
fn borrowed(raw: u32) -> core::mem::ManuallyDrop<Handle> {
    core::mem::ManuallyDrop::new(Handle::from_raw(raw))
}

/// A launched child: its process, root VMAR and first thread.
pub struct Child {
    pub process: Process,
    pub vmar: mx::Vmar,
    pub thread: mx::Thread,
}

/// Launches `bin/conformance role=ROLE` with `handles` added to its
/// bootstrap message (and our log, so its panics are visible), as
/// `mx::launch` does, keeping its root VMAR and first thread.
pub fn spawn_child(role: &str, handles: Vec<(u32, u32, Handle)>) -> Result<Child, String> {
    let (job, vdso, bootfs) =
        (JOB.load(Ordering::Acquire), VDSO.load(Ordering::Acquire), BOOTFS.load(Ordering::Acquire));
    if job == 0 || vdso == 0 || bootfs == 0 || IMAGE[1].load(Ordering::Acquire) == 0 {
        return Err(String::from("no +job/+vdso/+bootfs grants: cannot launch children"));
    }
    let err = |what: &str, s: Status| alloc::format!("launching role={role}: {what}: {s:?}");
    let job = borrowed(job);
    let vdso = core::mem::ManuallyDrop::new(Vmo::from_handle(Handle::from_raw(vdso)));
    let bootfs = core::mem::ManuallyDrop::new(Vmo::from_handle(Handle::from_raw(bootfs)));
    let image =
        Image { vmo: &bootfs, offset: IMAGE[0].load(Ordering::Acquire), size: IMAGE[1].load(Ordering::Acquire) };
    let (process, vmar) = Process::create(&job, "conformance-child").map_err(|s| err("process_create", s))?;
    let plan = mx::launch::load_elf(&vmar, &image).map_err(|s| err("load", s))?;
    let vdso_base = mx::launch::map_vdso(&vmar, &vdso).map_err(|s| err("vdso", s))?;
    let sp = mx::launch::map_stack(&vmar, 64 * 1024).map_err(|s| err("stack", s))?;
    let thread = mx::Thread::create(&process, "child-main").map_err(|s| err("thread_create", s))?;
    let same = mx::SAME_RIGHTS;
    let mut msg = mx::processargs::Builder::new();
    msg.handle(mx_abi::PA_PROC_SELF, 0, process.duplicate(same).map_err(|s| err("dup", s))?.into_handle());
    msg.handle(mx_abi::PA_THREAD_SELF, 0, thread.duplicate(same).map_err(|s| err("dup", s))?.into_handle());
    msg.handle(mx_abi::PA_VMAR_ROOT, 0, vmar.duplicate(same).map_err(|s| err("dup", s))?.into_handle());
    if let Some(log) = mxrt::log::duplicate() {
        msg.handle(PA_FDIO_LOGGER, 0, log);
    }
    for (ty, arg, h) in handles {
        msg.handle(ty, arg, h);
    }
    let arg = alloc::format!("role={role}");
    msg.arg("bin/conformance");
    msg.arg(&arg);
    let (bytes, mut hs) = msg.build();
    let (ours, theirs) = mx::Channel::create().map_err(|s| err("channel", s))?;
    ours.write(&bytes, &mut hs).map_err(|s| err("bootstrap", s))?;
    process.start(&thread, plan.entry as usize, sp, theirs.into_handle(), vdso_base).map_err(|s| err("start", s))?;
    Ok(Child { process, vmar, thread })
}

/// As [`spawn_child`], keeping only the process.
pub fn spawn(role: &str, handles: Vec<(u32, u32, Handle)>) -> Result<Process, String> {
    spawn_child(role, handles).map(|c| c.process)
}

/// Waits (at most 10 s, then kills it) for `process` to terminate; its
/// return code.
pub fn wait_exit(process: &Process) -> Result<i32, String> {
    match process.handle().wait_one(Signals::PROCESS_TERMINATED, mx::deadline_after(10_000_000_000)) {
        Ok(_) => process.info().map(|i| i.return_code).map_err(|s| alloc::format!("MX_INFO_PROCESS: {s:?}")),
        Err(status) => {
            let _ = process.kill();
            let _ = process.handle().wait_one(Signals::PROCESS_TERMINATED, mx::deadline_after(10_000_000_000));
            Err(alloc::format!("child did not terminate in 10 s ({status:?}); killed"))
        }
    }
}

/// Spawns a child in `role` and returns its exit code.
pub fn run(role: &str) -> Result<i32, String> {
    let process = spawn(role, Vec::new())?;
    wait_exit(&process)
}

/// A child with one end of a new channel as `PA_USER0`; returns the
/// process and our end.
pub fn spawn_with_channel(role: &str) -> Result<(Process, mx::Channel), String> {
    let (ours, theirs) = mx::Channel::create().map_err(|s| alloc::format!("channel_create: {s:?}"))?;
    let process = spawn(role, alloc::vec![(PA_USER0, 0, theirs.into_handle())])?;
    Ok((process, ours))
}

/// Runs the child role named by a `role=` argument, if there is one.
pub fn run_role() -> Option<i32> {
    let role = mxrt::args().iter().find_map(|a| a.strip_prefix("role=").map(String::from))?;
    Some(role_main(&role))
}

fn role_main(role: &str) -> i32 {
    if let Some(code) = role.strip_prefix("exit:") {
        return code.parse().unwrap_or(-2);
    }
    if let Some(value) = role.strip_prefix("probe:") {
        let Ok(value) = u32::from_str_radix(value, 16) else { return 2 };
        let mut info = [0u8; 32];
        // SAFETY: `info` is valid for 32 bytes.
        let status = unsafe {
            mx::sys::mx_object_get_info(
                value,
                2,
                info.as_mut_ptr().cast(),
                32,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            )
        };
        return i32::from(status != Status::BadHandle as i32);
    }
    if let Some(kind) = role.strip_prefix("fault:") {
        fault(kind);
        return 3;
    }
    match role {
        "thread-exit" => {
            // SAFETY: no pointers; never returns.
            unsafe { mx::sys::mx_thread_exit() }
        }
        "block" => {
            // With a PA_USER0 channel: say "ready" first (the runtime is up).
            if let Some(channel) = mxrt::take_handle(PA_USER0, 0) {
                let channel = mx::Channel::from_handle(channel);
                let _ = channel.write(b"ready", &mut Vec::new());
                core::mem::forget(channel);
            }
            let Ok(event) = mx::Event::create() else { return 4 };
            let _ = event.handle().wait_one(Signals::USER_0, u64::MAX);
            5
        }
        "spin" => loop {
            core::hint::spin_loop();
        },
        "echo" => echo(),
        "vdso-unmap" | "vdso-protect" => vdso_self(role),
        _ => {
            mxrt::println!("conformance child: unknown role {role}");
            6
        }
    }
}

/// Tries to unmap or re-protect this process's own vDSO code: exits with
/// the status (ACCESS_DENIED expected; the process survives to say so).
fn vdso_self(role: &str) -> i32 {
    let Some(me) = mxrt::take_handle(mx_abi::PA_PROC_SELF, 0) else { return 11 };
    let Some(vmar) = mxrt::vmar_root() else { return 12 };
    let mut base = 0u64;
    // SAFETY: `base` is valid for 8 bytes.
    let s = unsafe { mx::sys::mx_object_get_property(me.raw(), 6, (&raw mut base).cast(), 8) };
    if s != 0 || base == 0 {
        return 13;
    }
    // SAFETY: the kernel must refuse both; if it did not, we die.
    unsafe {
        if role == "vdso-unmap" {
            // The whole region the loader made for it: code and constants.
            let head = core::slice::from_raw_parts(base as usize as *const u8, 4096);
            let Ok(code) = mx::vdso::first_segment_len(head) else { return 14 };
            mx::sys::mx_vmar_unmap(vmar.raw(), base as usize, code.next_multiple_of(4096) + 4096)
        } else {
            mx::sys::mx_vmar_protect(vmar.raw(), base as usize, 4096, 1)
        }
    }
}

fn echo() -> i32 {
    let Some(channel) = mxrt::take_handle(PA_USER0, 0) else { return 7 };
    let channel = mx::Channel::from_handle(channel);
    let Ok((_, handles)) = channel.read() else { return 8 };
    let mut reply = Vec::new();
    for h in &handles {
        let basic: mx_abi::object::InfoHandleBasic = match h.info(mx_abi::object::InfoTopic::HandleBasic) {
            Ok(b) => b,
            Err(_) => return 9,
        };
        reply.extend_from_slice(&h.raw().to_le_bytes());
        reply.extend_from_slice(&basic.rights.to_le_bytes());
        reply.extend_from_slice(&basic.koid.to_le_bytes());
    }
    if channel.write(&reply, &mut Vec::new()).is_err() {
        return 10;
    }
    // Keep the handles until the parent has looked (it closes its end).
    let _ = channel.handle().wait_one(Signals::CHANNEL_PEER_CLOSED, u64::MAX);
    0
}

/// Dies of the user fault `kind`; returns only for an unknown kind.
fn fault(kind: &str) {
    match kind {
        // SAFETY (all arms): the point is to fault; the kernel kills us.
        "ud2" => unsafe { core::arch::asm!("ud2") },
        "div0" => unsafe {
            core::arch::asm!("div {0}", in(reg) 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _);
        },
        "jump-kernel" => unsafe { core::arch::asm!("jmp {0}", in(reg) crate::util::KERNEL_ADDR) },
        "jump-noncanonical" => unsafe { core::arch::asm!("jmp {0}", in(reg) 0x8000_0000_0000_0000u64) },
        "read-null" => unsafe {
            core::ptr::read_volatile(core::ptr::null::<u64>().wrapping_add(8));
        },
        "hlt" => unsafe { core::arch::asm!("hlt") },
        "write-ro" | "exec-nx" => {
            let Some(vmar) = mxrt::vmar_root() else { return };
            let Ok(vmo) = Vmo::create(4096) else { return };
            let Ok(addr) = vmar.map(0, &vmo, 0, 4096, mx_abi::VmFlags::PERM_READ) else { return };
            if kind == "write-ro" {
                unsafe { core::ptr::write_volatile(addr as *mut u64, 1) };
            } else {
                unsafe { core::arch::asm!("call {0}", in(reg) addr) };
            }
        }
        "shrunk-page" | "protect-ro" => {
            let Some(vmar) = mxrt::vmar_root() else { return };
            let Ok(vmo) = Vmo::create(8192) else { return };
            let rw = mx_abi::VmFlags::PERM_READ | mx_abi::VmFlags::PERM_WRITE;
            let Ok(addr) = vmar.map(0, &vmo, 0, 8192, rw) else { return };
            unsafe { core::ptr::write_volatile((addr + 4096) as *mut u64, 1) };
            if kind == "shrunk-page" {
                if vmo.set_size(4096).is_err() {
                    return;
                }
                unsafe { core::ptr::read_volatile((addr + 4096) as *const u64) };
            } else {
                if unsafe { vmar.protect(addr, 8192, mx_abi::VmFlags::PERM_READ) }.is_err() {
                    return;
                }
                unsafe { core::ptr::write_volatile((addr + 4096) as *mut u64, 2) };
            }
        }
        "int3" => unsafe { core::arch::asm!("int3") },
        "int80" => unsafe { core::arch::asm!("int 0x80") },
        "sysenter" => unsafe { core::arch::asm!("sysenter") },
        "stack-unmapped" => {
            let Some(vmar) = mxrt::vmar_root() else { return };
            let sp: usize;
            unsafe { core::arch::asm!("mov {0}, rsp", out(reg) sp) };
            // The vDSO's `ret` after the unmap pops from the unmapped page.
            unsafe {
                mx::sys::mx_vmar_unmap(vmar.raw(), (sp & !0xfff) - 4096, 8192);
            }
        }
        _ => mxrt::println!("conformance child: unknown fault {kind}"),
    }
}
