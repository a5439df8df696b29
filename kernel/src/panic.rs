//! The panic path: print what happened and where, with a symbolized
//! backtrace, stop every other CPU, and either end the emulator with a
//! failure code (tests, `panic=exit`) or halt.

use crate::arch::x86::trap::{exception_name, read_cr2, TrapFrame};
use crate::arch::x86::{cpu, percpu, qemu};
use crate::log::write_unlocked;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// Size of the `.ksyms` section the image builder fills with the symbol table.
const KSYMS_SIZE: usize = 768 * 1024;

#[used]
#[link_section = ".ksyms"]
static KSYMS_SPACE: [u8; KSYMS_SIZE] = [0; KSYMS_SIZE];

extern "C" {
    static __ksyms_start: u8;
    static __ksyms_end: u8;
}

fn symbol_table() -> Option<kcore::ksyms::SymbolTable<'static>> {
    // SAFETY: the linker symbols bound the `.ksyms` section, which is
    // read-only data for the kernel's lifetime; reading through them (not
    // through `KSYMS_SPACE`) keeps the compiler from assuming it is zero.
    let bytes = unsafe {
        let start = core::ptr::addr_of!(__ksyms_start);
        let end = core::ptr::addr_of!(__ksyms_end);
        core::slice::from_raw_parts(start, end as usize - start as usize)
    };
    kcore::ksyms::SymbolTable::parse(bytes)
}

/// Set by the first CPU to panic; other CPUs that see it in their NMI stop.
static PANICKING: AtomicBool = AtomicBool::new(false);
/// Which CPU is panicking (to catch a panic inside the panic path).
static PANIC_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
/// Whether a panic ends QEMU through the debug-exit device.
static EXIT_ON_PANIC: AtomicBool = AtomicBool::new(false);
/// Sends a stop NMI to every other CPU (installed once SMP is up).
static STOP_OTHERS: AtomicUsize = AtomicUsize::new(0);

pub fn set_exit_on_panic(exit: bool) {
    EXIT_ON_PANIC.store(exit, Ordering::Relaxed);
}

pub fn set_stop_others(stop: fn()) {
    STOP_OTHERS.store(stop as usize, Ordering::Release);
}

/// Whether some CPU has panicked (for the NMI handler).
pub fn panicking() -> bool {
    PANICKING.load(Ordering::Acquire)
}

/// Enters the panic path. Returns only to the first caller; a second panic
/// (any CPU) halts right away.
fn begin() {
    let me = percpu::cpu_index();
    if PANICKING.swap(true, Ordering::AcqRel) {
        if PANIC_CPU.load(Ordering::Acquire) == me {
            write_unlocked(format_args!("\nKERNEL PANIC (nested) on cpu{me}: giving up\n"));
            finish();
        }
        cpu::halt_forever();
    }
    PANIC_CPU.store(me, Ordering::Release);
    let stop = STOP_OTHERS.load(Ordering::Acquire);
    if stop != 0 {
        // SAFETY: only `set_stop_others` stores non-zero values, and it
        // stores `fn()` pointers.
        let stop: fn() = unsafe { core::mem::transmute::<usize, fn()>(stop) };
        stop();
    }
}

fn finish() -> ! {
    if EXIT_ON_PANIC.load(Ordering::Relaxed) {
        qemu::exit(qemu::ExitCode::Failure);
    }
    cpu::halt_forever()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    begin();
    let me = percpu::cpu_index();
    write_unlocked(format_args!("\nKERNEL PANIC on cpu{me}: {}\n", info.message()));
    if let Some(location) = info.location() {
        write_unlocked(format_args!("  at {}:{}:{}\n", location.file(), location.line(), location.column()));
    }
    let rbp: u64;
    // SAFETY: reading RBP has no side effects.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    backtrace(None, rbp);
    finish()
}

/// An exception the kernel cannot handle: print the full diagnostic, then panic.
pub fn fatal_trap(frame: &TrapFrame) -> ! {
    begin();
    let me = percpu::cpu_index();
    let v = frame.vector;
    write_unlocked(format_args!(
        "\nKERNEL PANIC on cpu{me}: unhandled exception {v} ({}) in {} mode\n",
        exception_name(v),
        if frame.is_user_mode() { "user" } else { "kernel" }
    ));
    write_unlocked(format_args!(
        "  error code {:#x}  rip {:#018x}  cs {:#x}  rflags {:#x}\n",
        frame.error_code, frame.rip, frame.cs, frame.rflags
    ));
    if v == 14 {
        let e = frame.error_code;
        write_unlocked(format_args!(
            "  cr2 {:#018x} ({} {} {}{})\n",
            read_cr2(),
            if e & 1 != 0 { "protection violation," } else { "not present," },
            if e & 2 != 0 { "write," } else { "read," },
            if e & 4 != 0 { "user" } else { "kernel" },
            if e & 16 != 0 { ", instruction fetch" } else { "" },
        ));
    }
    let f = frame;
    write_unlocked(format_args!("  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n", f.rax, f.rbx, f.rcx, f.rdx));
    write_unlocked(format_args!("  rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}\n", f.rsi, f.rdi, f.rbp, f.rsp));
    write_unlocked(format_args!("  r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}\n", f.r8, f.r9, f.r10, f.r11));
    write_unlocked(format_args!("  r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}\n", f.r12, f.r13, f.r14, f.r15));
    if !frame.is_user_mode() {
        backtrace(Some(frame.rip), frame.rbp);
    }
    finish()
}

fn print_frame(index: usize, addr: u64, symbols: Option<&kcore::ksyms::SymbolTable<'static>>) {
    match symbols.and_then(|s| s.lookup(addr)) {
        Some((name, offset)) => write_unlocked(format_args!("  #{index:<2} {addr:#018x} {name}+{offset:#x}\n")),
        None => write_unlocked(format_args!("  #{index:<2} {addr:#018x} ?\n")),
    }
}

/// Walks the frame-pointer chain (the kernel is built with frame pointers),
/// trusting a frame only if it lies on one of this CPU's known stacks.
fn backtrace(first_pc: Option<u64>, mut rbp: u64) {
    let symbols = symbol_table();
    write_unlocked(format_args!("backtrace:{}\n", if symbols.is_none() { " (no symbol table)" } else { "" }));
    let mut index = 0;
    if let Some(pc) = first_pc {
        print_frame(index, pc, symbols.as_ref());
        index += 1;
    }
    let me = percpu::try_current();
    while index < 32 && rbp != 0 && rbp.is_multiple_of(8) {
        let trusted = me.is_some_and(|p| p.on_stack(rbp, 16));
        if !trusted {
            break;
        }
        // SAFETY: `rbp` is aligned and both words lie inside a stack this
        // CPU owns, which is mapped.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        // Return addresses point after the call; show the call itself.
        print_frame(index, ret - 1, symbols.as_ref());
        index += 1;
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}
