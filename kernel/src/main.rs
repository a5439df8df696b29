//! magnetar: a Zircon-style (Magenta-era) capability microkernel for x86-64.
//!
//! Boot order, on the boot CPU: a loader front end (`boot::limine` or
//! `boot::pvh`) fills a `BootInfo` and calls [`kernel_main`], which sets up
//! this CPU (per-CPU block, log, control registers, GDT/TSS, IDT), builds the
//! kernel's page tables and moves onto a guarded kernel stack, then continues
//! in [`kernel_main_on_kernel_stack`]: frame allocator and heap, ACPI,
//! interrupt controllers, timers, and the other CPUs.

#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod arch;
mod boot;
mod hypervisor;
#[macro_use]
mod ktest;
mod log;
mod mm;
mod object;
mod panic;
mod sched;
mod sync;
mod syscall;
mod time;
mod userboot;
mod vm;

use arch::x86::{cpu, gdt, percpu, qemu, trap};
use boot::BootInfo;
use kcore::cmdline::Cmdline;
use kcore::memmap::RegionKind;

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// The boot information, once `kernel_main` has stored it.
pub fn boot_info() -> &'static BootInfo {
    match BOOT_INFO.get() {
        Some(info) => info,
        None => panic!("boot info used before kernel_main"),
    }
}

/// The kernel command line.
pub fn cmdline() -> Cmdline<'static> {
    Cmdline::new(boot_info().cmdline())
}

/// Reports a failure that happens before the console exists, then stops.
pub fn early_fatal(message: &str) -> ! {
    arch::x86::serial::init();
    arch::x86::serial::write_bytes(b"early boot failure: ");
    arch::x86::serial::write_bytes(message.as_bytes());
    arch::x86::serial::write_bytes(b"\n");
    qemu::exit(qemu::ExitCode::Failure);
    cpu::halt_forever()
}

/// One emergency stack shared by the boot CPU's NMI, #DF and #MC until it
/// gets guarded per-vector stacks.
#[repr(C, align(16))]
struct EarlyIstStack([u8; 16 * 1024]);
static mut EARLY_IST_STACK: EarlyIstStack = EarlyIstStack([0; 16 * 1024]);

/// Common entry from both loaders, on the loader's stack and page tables.
pub fn kernel_main(info: BootInfo) -> ! {
    time::mark_boot();
    let percpu = percpu::install_boot_cpu();
    let info = BOOT_INFO.call_once(|| info);
    let cmdline = cmdline();
    log::init(log::level_from_cmdline(cmdline.get("loglevel")));
    panic::set_exit_on_panic(cmdline.has("test") || cmdline.has("fault") || cmdline.get("panic") == Some("exit"));
    ::log::info!(
        "boot: via {}, kernel at phys {:#x}, cmdline \"{}\"",
        match info.loader {
            boot::Loader::Limine => "limine",
            boot::Loader::Pvh => "pvh",
        },
        info.kernel_phys_base,
        info.cmdline()
    );
    cpu::enable_features();
    log_cpu_features();
    // The early IST stack is used by nothing else, and only until
    // `install_cpu_stacks` replaces it.
    let early_ist = core::ptr::addr_of!(EARLY_IST_STACK) as u64 + 16 * 1024;
    for slot in [gdt::IST_DOUBLE_FAULT, gdt::IST_NMI, gdt::IST_MACHINE_CHECK] {
        // SAFETY: no exception is being handled yet.
        unsafe { gdt::set_ist(percpu, slot, early_ist) };
    }
    gdt::load(percpu);
    trap::load_idt();
    arch::x86::syscall::init_this_cpu();
    trap::set_user_hooks(trap::UserHooks { returning: syscall::return_to_user, fatal: syscall::fatal_user_exception });
    log_memory_map(info);

    // Build the kernel's own page tables and continue on a guarded stack.
    mm::set_phys_offset(info.loader_phys_offset);
    let mut early = mm::frame::EarlyAllocator::new(&info.memory_map);
    let pml4 = mm::paging::build_kernel_tables(info, &mut early);
    let Some(stack) = mm::kstack::KernelStack::new_with(&mut early) else { panic!("mm: no boot stack") };
    let (low, high) = stack.leak();
    percpu.add_stack(low, high);
    *EARLY_FRAMES.lock() = Some(early);
    // SAFETY: the new tables map the kernel image at its link address and
    // the new stack; nothing on the loader's stack is used after the switch
    // (the boot info was copied into a static above).
    unsafe { mm::paging::activate(pml4, high, kernel_main_on_kernel_stack, 0) }
}

/// Hands the early allocator across the stack switch.
static EARLY_FRAMES: spin::Mutex<Option<mm::frame::EarlyAllocator>> = spin::Mutex::new(None);

extern "C" fn kernel_main_on_kernel_stack(_: u64) -> ! {
    let info = boot_info();
    mm::set_phys_offset(mm::PHYS_MAP_BASE);
    let Some(early) = EARLY_FRAMES.lock().take() else { panic!("mm: early allocator lost") };
    mm::frame::init(&info.memory_map, early);
    // The loader's memory (its page tables, stack, and boot-info pages) is
    // no longer used: everything needed was copied.
    for region in info.memory_map.regions().iter().filter(|r| r.kind == RegionKind::BootloaderReclaimable) {
        mm::frame::add_free_range(region.start, region.end);
    }
    install_cpu_stacks(percpu::current());

    let ram = info.memory_map.regions().iter().filter(|r| r.kind.is_ram()).map(|r| r.len()).sum::<u64>();
    let (_, free) = mm::totals();
    ::log::info!("mm: memory total {} MiB, free {} MiB", ram >> 20, free >> 20);

    // Platform bring-up: firmware tables, interrupt controllers, the clock
    // and this CPU's timer, then the other CPUs.
    let platform = acpi::init();
    if platform.has_legacy_pics {
        arch::x86::pic::disable();
    }
    arch::x86::apic::init_boot_cpu(platform);
    arch::x86::ioapic::init(platform);
    arch::x86::timer::calibrate(platform);
    arch::x86::timer::init_this_cpu();
    arch::x86::ipi::init();
    arch::x86::timer::boot_self_test();
    arch::x86::ioapic::boot_self_test();
    arch::x86::smp::start_other_cpus(platform);
    arch::x86::ipi::boot_self_test();

    // From here every CPU runs threads; this context becomes the boot
    // CPU's idle thread and the boot actions run in a kernel thread.
    sched::start(run_boot_actions)
}

/// Gives this CPU guarded stacks for NMI, #DF and #MC.
pub fn install_cpu_stacks(percpu: &'static percpu::PerCpu) {
    for slot in [gdt::IST_DOUBLE_FAULT, gdt::IST_NMI, gdt::IST_MACHINE_CHECK] {
        let Some(stack) = mm::kstack::KernelStack::new() else { panic!("mm: no memory for IST stacks") };
        let (low, high) = stack.leak();
        percpu.add_stack(low, high);
        // SAFETY: the stack is fresh and dedicated to this slot; the slot's
        // old stack is not in use (we are not handling such an exception).
        unsafe { gdt::set_ist(percpu, slot, high) };
    }
}

fn log_cpu_features() {
    let f = cpu::features();
    let flags = [
        (f.nx, "nx"),
        (f.smep, "smep"),
        (f.smap, "smap"),
        (f.xsave, "xsave"),
        (f.avx, "avx"),
        (f.pdpe1gb, "pdpe1gb"),
        (f.x2apic, "x2apic"),
        (f.tsc_deadline, "tsc-deadline"),
        (f.invariant_tsc, "invariant-tsc"),
        (f.svm, "svm"),
        (f.npt, "npt"),
        (f.hypervisor, "hypervisor"),
    ];
    // Runs before the heap exists: format straight from the table.
    struct Present<'a>(&'a [(bool, &'a str)]);
    impl core::fmt::Display for Present<'_> {
        fn fmt(&self, out: &mut core::fmt::Formatter) -> core::fmt::Result {
            self.0.iter().filter(|(present, _)| *present).try_for_each(|(_, name)| write!(out, " {name}"))
        }
    }
    ::log::info!("cpu: {} features:{}", if f.vendor_amd { "AMD" } else { "non-AMD" }, Present(&flags));
}

fn log_memory_map(info: &BootInfo) {
    for region in info.memory_map.regions() {
        ::log::debug!("mm: {:#014x}..{:#014x} {:?}", region.start, region.end, region.kind);
    }
    for module in info.modules() {
        ::log::info!("boot: module {} at {:#x}, {} bytes", module.name(), module.phys, module.len);
    }
}

/// What the command line asks for once the system is up (in the "boot"
/// kernel thread).
fn run_boot_actions() {
    let cmdline = cmdline();
    if let Some(kind) = cmdline.get("fault") {
        ::log::info!("test: raising fault {kind}");
        raise_fault(kind);
    }
    if cmdline.has("poweroff") {
        acpi::power_off();
    }
    if cmdline.has("reboot") {
        acpi::reset();
    }
    ::log::debug!("mm: heap in use {} bytes", mm::heap::in_use());
    if cmdline.get("test") == Some("ktest") {
        ktest::run_and_exit(cmdline.get("ktest").unwrap_or(""));
    }
    if cmdline.get("test") == Some("boot") {
        ::log::info!("test: boot test passed");
        qemu::exit(qemu::ExitCode::Success);
    }
    if !boot_info().modules().is_empty() {
        userboot::run_init_and_power_off();
    }
    ::log::info!("kernel: idle (no boot filesystem, so no init)");
}

/// Deliberately faults, to test the diagnostic path (`fault=` on the command line).
/// Never inlined: the boot tests look for it by name in the backtrace.
#[inline(never)]
fn raise_fault(kind: &str) {
    match kind {
        // SAFETY: faulting is the point; the exception handler panics.
        "pf" => unsafe {
            core::ptr::read_volatile(0x4000_dead_0000 as *const u64);
        },
        // SAFETY: as above (a non-canonical address).
        "gp" => unsafe {
            core::ptr::read_volatile(0x8000_0000_0000_0000 as *const u64);
        },
        // SAFETY: as above.
        "ud" => unsafe { core::arch::asm!("ud2") },
        // SAFETY: as above.
        "de" => unsafe { core::arch::asm!("xor edx, edx", "xor eax, eax", "div eax", out("eax") _, out("edx") _) },
        "df" => {
            // A page fault whose handler cannot run: point RSP at unmapped
            // memory so delivering #PF faults again.
            // SAFETY: as above; the #DF handler runs on its own IST stack.
            unsafe { core::arch::asm!("mov rsp, 0x1000", "push rax", options(noreturn)) }
        }
        "panic" => panic!("test panic requested on the command line"),
        other => ::log::warn!("test: unknown fault kind {other}"),
    }
}
