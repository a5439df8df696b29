//! The hypervisor rows: tiny 64-bit guests (as userland/hvtest builds
//! them) looping on one kind of exit.
//!
//! | row | guest loop | one op |
//! |---|---|---|
//! | `trap_io_sync` | `out %al, $0x80` (trap without a port) | one exit + `vcpu_resume` |
//! | `trap_mem_sync` | a store to the trapped page at 0x10000000 | one exit + `vcpu_resume` |
//! | `trap_io_async` | `out %al, $0x80` (trap with a port), on a worker thread | one packet taken by `port_wait` |
//! | `guest_cpuid_exit` | CPUID (handled by the kernel), an OUT every [`CPUIDS_PER_EXIT`] | one CPUID |
//! | `guest_hlt_wakeup` | HLT; the vector 0x40 handler OUTs to 0x81 | `vcpu_interrupt` on another thread → `vcpu_resume` returns |
//!
//! Guest-physical layout: GDT at 0, PML4 0x1000, PDPT 0x2000, PD 0x3000
//! (2 MiB pages over the first GiB), IDT 0x4000, IDTR image 0x5000, the
//! async loop's stop flag at 0x6000, stack below 0x9000, code at 0x10000.

use alloc::string::String;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use mx::hypervisor::{Guest, Vcpu};
use mx::sys::*;
use mx::{Handle, Port, Resource, Signals, Status, Vmo};
use mx_abi::{Payload, PortPacket, TrapKind};

use crate::harness::{check, rdtsc, Config};
use crate::task::{Grants, Worker};

/// The rows, in the order they run.
pub const ROWS: &[&str] = &["trap_io_sync", "trap_mem_sync", "trap_io_async", "guest_cpuid_exit", "guest_hlt_wakeup"];
/// CPUIDs the `guest_cpuid_exit` guest runs between two exits to us.
pub const CPUIDS_PER_EXIT: u64 = 1000;

const RAM: u64 = 2 << 20;
const PML4: u64 = 0x1000;
const STOP_FLAG: u64 = 0x6000;
const STACK_TOP: u64 = 0x9000;
const CODE: u64 = 0x10000;
const MMIO: u64 = 0x1000_0000;
const INFINITE: u64 = u64::MAX;

core::arch::global_asm!(
    r#"
    .pushsection .rodata.bench_guests, "a"
    # OUTs to 0x80 forever.
    .globl bench_hv_out, bench_hv_out_end
bench_hv_out:
2:      out     %al, $0x80
        jmp     2b
bench_hv_out_end:

    # Stores to the trapped page forever.
    .globl bench_hv_store, bench_hv_store_end
bench_hv_store:
        mov     $0x10000000, %edi
2:      movl    %eax, (%rdi)
        jmp     2b
bench_hv_store_end:

    # OUTs to 0x80 until the byte at 0x6000 is set, then one OUT to 0x81.
    .globl bench_hv_async, bench_hv_async_end
bench_hv_async:
2:      out     %al, $0x80
        cmpb    $0, 0x6000
        je      2b
        out     %al, $0x81
3:      jmp     3b
bench_hv_async_end:

    # 1000 CPUIDs, then an OUT to 0x80, forever.
    .globl bench_hv_cpuid, bench_hv_cpuid_end
bench_hv_cpuid:
2:      mov     $1000, %r12d
3:      xor     %eax, %eax
        xor     %ecx, %ecx
        cpuid
        dec     %r12d
        jnz     3b
        out     %al, $0x80
        jmp     2b
bench_hv_cpuid_end:

    # A gate for vector 0x40, interrupts on, OUT to 0x80 (ready), then HLT
    # forever; the handler OUTs to 0x81.
    .globl bench_hv_hlt, bench_hv_hlt_end
bench_hv_hlt:
        lea     4f(%rip), %rax
        mov     $(0x4000 + 0x40 * 16), %rdi
        mov     %ax, (%rdi)
        movw    $8, 2(%rdi)
        movw    $0x8e00, 4(%rdi)
        shr     $16, %rax
        mov     %ax, 6(%rdi)
        shr     $16, %rax
        mov     %eax, 8(%rdi)
        movl    $0, 12(%rdi)
        lidt    0x5000
        sti
        out     %al, $0x80
2:      hlt
        jmp     2b
4:      out     %al, $0x81
        iretq
bench_hv_hlt_end:
    .popsection
"#,
    options(att_syntax)
);

macro_rules! snippets {
    ($($name:ident => $start:ident, $end:ident;)*) => {
        extern "C" {
            $(static $start: u8; static $end: u8;)*
        }
        $(
            /// The snippet's bytes.
            fn $name() -> &'static [u8] {
                // SAFETY: both labels are in one section of this binary, in order.
                unsafe {
                    let start = core::ptr::addr_of!($start);
                    let end = core::ptr::addr_of!($end);
                    core::slice::from_raw_parts(start, end as usize - start as usize)
                }
            }
        )*
    };
}

snippets! {
    out_loop => bench_hv_out, bench_hv_out_end;
    store_loop => bench_hv_store, bench_hv_store_end;
    async_loop => bench_hv_async, bench_hv_async_end;
    cpuid_loop => bench_hv_cpuid, bench_hv_cpuid_end;
    hlt_loop => bench_hv_hlt, bench_hv_hlt_end;
}

fn st(what: &'static str) -> impl Fn(Status) -> String {
    move |s| alloc::format!("{what}:{s:?}")
}

/// A guest running one snippet.
struct Machine {
    ram: Vmo,
    guest: Guest,
    apic: Vmo,
}

impl Machine {
    fn new(hyp: &Resource, code: &[u8]) -> Result<Machine, String> {
        let ram = Vmo::create(RAM).map_err(st("vmo_create"))?;
        let words = |at: u64, words: &[u64]| -> Result<(), String> {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            ram.write_all(&bytes, at).map_err(st("vmo_write"))
        };
        words(0, &[0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff])?;
        words(PML4, &[0x2003])?;
        words(0x2000, &[0x3003])?;
        let pd: Vec<u64> = (0..512u64).map(|i| (i << 21) | 0x83).collect();
        words(0x3000, &pd)?;
        // IDTR image: limit 0xfff, base 0x4000; the stop flag, clear.
        words(0x5000, &[0x4000 << 16 | 0xfff, 0])?;
        words(STOP_FLAG, &[0])?;
        ram.write_all(code, CODE).map_err(st("vmo_write"))?;
        let guest = Guest::create(hyp, &ram).map_err(st("guest_create"))?;
        let apic = Vmo::create(4096).map_err(st("apic_vmo"))?;
        Ok(Machine { ram, guest, apic })
    }

    /// A VCPU at CODE bound to the calling thread, RSP = STACK_TOP.
    fn vcpu(&self) -> Result<Vcpu, String> {
        vcpu_of(&self.guest, &self.apic)
    }
}

fn vcpu_of(guest: &Guest, apic: &Vmo) -> Result<Vcpu, String> {
    let vcpu = Vcpu::create(guest, CODE, PML4, apic).map_err(st("vcpu_create"))?;
    let mut state = vcpu.read_state().map_err(st("read_state"))?;
    state.rsp = STACK_TOP;
    vcpu.write_state(&state).map_err(st("write_state"))?;
    Ok(vcpu)
}

/// The next exit must be an IO exit to `port`.
#[inline(always)]
fn expect_io(vcpu: &Vcpu, port: u16) -> Result<(), String> {
    let packet = vcpu.resume_packet().map_err(st("vcpu_resume"))?;
    match packet.payload() {
        Ok(Payload::GuestIo(io)) if io.port == port => Ok(()),
        other => Err(unexpected(port, &packet, other)),
    }
}

#[cold]
fn unexpected(port: u16, packet: &PortPacket, payload: Result<Payload, u32>) -> String {
    alloc::format!("expected_OUT_{port:#x}_got_key_{}:{payload:?}", packet.key)
}

/// The HYPERVISOR resource made from the root resource (`+resource`).
pub fn take_resource() -> Result<Resource, String> {
    let root =
        mxrt::take_handle(mx_abi::PA_RESOURCE, 0).ok_or_else(|| String::from("no root resource (grant +resource)"))?;
    let root = Resource::from_handle(root);
    mx::hypervisor::hypervisor_resource(&root).map_err(st("hypervisor_resource"))
}

/// Runs the hypervisor rows.
pub fn run(cfg: &mut Config, hyp: Result<Resource, String>, grants: Result<&Grants, &String>) {
    if !ROWS.iter().any(|r| cfg.selected(r)) {
        return;
    }
    let hyp = match hyp {
        Ok(h) => h,
        Err(e) => return ROWS.iter().for_each(|r| cfg.error(r, &e)),
    };
    // Without SVM guest_create says NOT_SUPPORTED: the rows say so, which
    // is not a failure of this program.
    let probe = Vmo::create(4096).map_err(st("vmo_create"));
    match probe.and_then(|vmo| Guest::create(&hyp, &vmo).map_err(st("guest_create"))) {
        Ok(_) => {}
        Err(e) if e == "guest_create:NotSupported" => {
            for name in ROWS.iter().filter(|r| cfg.selected(r)) {
                mxrt::println!("BENCH {name} error=no_svm");
            }
            return;
        }
        Err(e) => return ROWS.iter().for_each(|r| cfg.error(r, &e)),
    }
    sync_row(cfg, &hyp, "trap_io_sync", TrapKind::Io);
    sync_row(cfg, &hyp, "trap_mem_sync", TrapKind::Mem);
    match grants {
        Ok(g) => async_row(cfg, &hyp, g),
        Err(e) => cfg.error("trap_io_async", e),
    }
    cpuid_row(cfg, &hyp);
    match grants {
        Ok(g) => hlt_row(cfg, &hyp, g),
        Err(e) => cfg.error("guest_hlt_wakeup", e),
    }
}

/// One exit on a trap without a port, and the resume.
fn sync_row(cfg: &mut Config, hyp: &Resource, name: &str, kind: TrapKind) {
    if !cfg.selected(name) {
        return;
    }
    let r = (|| -> Result<(), String> {
        let (code, addr, len, extra) = match kind {
            TrapKind::Mem => (store_loop(), MMIO, 0x1000, "exit=mem_store trap=sync"),
            _ => (out_loop(), 0x80, 1, "exit=out trap=sync"),
        };
        let m = Machine::new(hyp, code)?;
        m.guest.set_trap(kind, addr, len, None, 0).map_err(st("set_trap"))?;
        let vcpu = m.vcpu()?;
        let is_mem = matches!(kind, TrapKind::Mem);
        cfg.run(name, extra, u64::MAX, |n| {
            let start = rdtsc();
            for _ in 0..n {
                let packet = vcpu.resume_packet().map_err(st("vcpu_resume"))?;
                match packet.payload() {
                    Ok(Payload::GuestMem(mem)) if is_mem && mem.addr == MMIO => {}
                    Ok(Payload::GuestIo(io)) if !is_mem && io.port == 0x80 => {}
                    other => return Err(unexpected(addr as u16, &packet, other)),
                }
            }
            Ok(rdtsc() - start)
        });
        Ok(())
    })();
    if let Err(e) = r {
        cfg.error(name, &e);
    }
}

/// What the async VCPU thread reports: 0 when its guest stopped as asked.
static ASYNC_RESULT: AtomicI32 = AtomicI32::new(1);

/// A worker entry: a VCPU of the guest `guest` (raw handle, borrowed) with
/// virtual APIC `apic`, resumed until the guest OUTs to 0x81.
extern "C" fn async_vcpu_entry(guest: usize, apic: usize) -> ! {
    let guest = ManuallyDrop::new(Guest::from_handle(Handle::from_raw(guest as u32)));
    let apic = ManuallyDrop::new(Vmo::from_handle(Handle::from_raw(apic as u32)));
    let result = (|| -> Result<(), i32> {
        let vcpu = vcpu_of(&guest, &apic).map_err(|_| -1)?;
        let packet = vcpu.resume_packet().map_err(|s| s as i32)?;
        match packet.payload() {
            Ok(Payload::GuestIo(io)) if io.port == 0x81 => Ok(()),
            // The trap's OUTs go to the port, not here.
            _ => Err(-2),
        }
    })();
    ASYNC_RESULT.store(result.err().unwrap_or(0), Ordering::SeqCst);
    // SAFETY: no pointers; never returns.
    unsafe { mx_thread_exit() }
}

/// Packets of an IO trap with a port, taken by this thread while a worker
/// runs the VCPU (which pauses when the trap's 256-packet pool is empty).
fn async_row(cfg: &mut Config, hyp: &Resource, g: &Grants) {
    let name = "trap_io_async";
    if !cfg.selected(name) {
        return;
    }
    let r = (|| -> Result<(), String> {
        let m = Machine::new(hyp, async_loop())?;
        let port = Port::create().map_err(st("port_create"))?;
        const KEY: u64 = 0xa5;
        m.guest.set_trap(TrapKind::Io, 0x80, 1, Some(&port), KEY).map_err(st("set_trap"))?;
        ASYNC_RESULT.store(1, Ordering::SeqCst);
        let worker = Worker::spawn(g.process_self(), async_vcpu_entry, m.guest.raw() as usize, m.apic.raw() as usize)?;
        let p = port.raw();
        cfg.run(name, "exit=out trap=async consumer=port_wait", u64::MAX, |n| {
            let mut packet = [0u64; 6];
            let deadline = mx::deadline_after(60_000_000_000);
            let start = rdtsc();
            for _ in 0..n {
                // SAFETY: `packet` has room for one packet.
                let raw = unsafe { mx_port_wait(p, deadline, packet.as_mut_ptr().cast(), 0) };
                check(raw, "port_wait")?;
                if packet[0] != KEY {
                    return Err(alloc::format!("packet_key_{:#x}", packet[0]));
                }
            }
            Ok(rdtsc() - start)
        });
        // Stop the guest: it reads the flag after each OUT; keep taking
        // packets so a paused VCPU gets to see it.
        m.ram.write_all(&[1], STOP_FLAG).map_err(st("vmo_write"))?;
        let deadline = mx::deadline_after(10_000_000_000);
        while !worker.ended() && mx::time_monotonic() < deadline {
            let _ = port.wait(mx::deadline_after(1_000_000));
        }
        worker.join()?;
        while port.wait(0).is_ok() {}
        match ASYNC_RESULT.load(Ordering::SeqCst) {
            0 => Ok(()),
            e => Err(alloc::format!("vcpu_thread:{e}")),
        }
    })();
    if let Err(e) = r {
        cfg.error(name, &e);
    }
}

/// CPUIDs the kernel handles; one op is one CPUID, the exit to us every
/// [`CPUIDS_PER_EXIT`] included.
fn cpuid_row(cfg: &mut Config, hyp: &Resource) {
    let name = "guest_cpuid_exit";
    if !cfg.selected(name) {
        return;
    }
    let r = (|| -> Result<(), String> {
        let m = Machine::new(hyp, cpuid_loop())?;
        let vcpu = m.vcpu()?;
        let extra = alloc::format!("exit=cpuid handled=kernel cpuids_per_exit={CPUIDS_PER_EXIT}");
        cfg.run(name, &extra, u64::MAX, |n| {
            let exits = n.div_ceil(CPUIDS_PER_EXIT);
            let start = rdtsc();
            for _ in 0..exits {
                expect_io(&vcpu, 0x80)?;
            }
            let ticks = rdtsc() - start;
            // Ticks for exactly n CPUIDs.
            Ok((u128::from(ticks) * u128::from(n) / u128::from(exits * CPUIDS_PER_EXIT)) as u64)
        });
        Ok(())
    })();
    if let Err(e) = r {
        cfg.error(name, &e);
    }
}

/// When the waker called `vcpu_interrupt` (TSC).
static WAKE_TSC: AtomicU64 = AtomicU64::new(0);
/// The waker's last failed status (0 if none).
static WAKE_STATUS: AtomicI32 = AtomicI32::new(0);
const GO: u32 = Signals::USER_0.bits();
const QUIT: u32 = Signals::USER_7.bits();
/// How long the waker lets the guest sit in HLT before interrupting it.
const HALTED_NS: u64 = 1_000_000;

/// A worker entry: on each GO signal of `event`, waits [`HALTED_NS`], notes
/// the TSC and interrupts `vcpu` with vector 0x40; ends on QUIT.
extern "C" fn waker_entry(vcpu: usize, event: usize) -> ! {
    let (vcpu, event) = (vcpu as u32, event as u32);
    loop {
        let mut seen = 0;
        // SAFETY: valid out-pointer.
        if unsafe { mx_object_wait_one(event, GO | QUIT, INFINITE, &mut seen) } < 0 || seen & QUIT != 0 {
            break;
        }
        // SAFETY: no pointers.
        unsafe { mx_object_signal(event, GO, 0) };
        let _ = mx::nanosleep(mx::deadline_after(HALTED_NS));
        WAKE_TSC.store(rdtsc(), Ordering::SeqCst);
        // SAFETY: no pointers.
        let s = unsafe { mx_vcpu_interrupt(vcpu, 0x40) };
        if s < 0 {
            WAKE_STATUS.store(s, Ordering::SeqCst);
        }
    }
    // SAFETY: no pointers; never returns.
    unsafe { mx_thread_exit() }
}

/// A HLTed guest woken by `vcpu_interrupt` from another thread: from the
/// call to our `vcpu_resume` returning with the handler's OUT.
fn hlt_row(cfg: &mut Config, hyp: &Resource, g: &Grants) {
    let name = "guest_hlt_wakeup";
    if !cfg.selected(name) {
        return;
    }
    let r = (|| -> Result<(), String> {
        let m = Machine::new(hyp, hlt_loop())?;
        let vcpu = m.vcpu()?;
        expect_io(&vcpu, 0x80)?; // ready, interrupts on
        let event = mx::Event::create().map_err(st("event_create"))?;
        let ev = event.raw();
        WAKE_STATUS.store(0, Ordering::SeqCst);
        let worker = Worker::spawn(g.process_self(), waker_entry, vcpu.raw() as usize, ev as usize)?;
        let extra = alloc::format!("from=vcpu_interrupt_other_thread to=vcpu_resume_return halted_ns={HALTED_NS}");
        cfg.run(name, &extra, 1000, |n| {
            let mut ticks = 0;
            for _ in 0..n {
                // SAFETY: no pointers.
                check(unsafe { mx_object_signal(ev, 0, GO) }, "signal")?;
                let r = expect_io(&vcpu, 0x81);
                let end = rdtsc();
                match WAKE_STATUS.load(Ordering::SeqCst) {
                    0 => r?,
                    s => return Err(alloc::format!("vcpu_interrupt:{s}")),
                }
                ticks += end.saturating_sub(WAKE_TSC.load(Ordering::SeqCst));
            }
            Ok(ticks)
        });
        // SAFETY: no pointers.
        check(unsafe { mx_object_signal(ev, 0, QUIT) }, "signal")?;
        worker.join()
    })();
    if let Err(e) = r {
        cfg.error(name, &e);
    }
}
