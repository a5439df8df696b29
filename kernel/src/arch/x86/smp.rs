//! Bringing up the other CPUs, and the table of online CPUs.
//!
//! Every CPU the MADT lists starts through the same path, whichever loader
//! ran: the boot CPU copies a real-mode trampoline into the low page the
//! loader left free (`BootInfo::trampoline_page`) and sends the CPU INIT,
//! then up to two start-up IPIs. The trampoline climbs from real mode
//! through protected mode into long mode on a page table of its own (its
//! root must be below 4 GiB, because CR3 is loaded from 32-bit code) that
//! identity-maps the trampoline and shares the kernel half, then calls
//! [`ap_entry`] on a fresh kernel stack. There the CPU switches to the
//! kernel's page tables and runs the same per-CPU setup as the boot CPU.
//!
//! CPUs start one at a time, so they share one parameter block in the
//! trampoline page. A CPU claims the block by swapping its argument with 0;
//! if the boot CPU gives up on a CPU it swaps the argument back out, so a
//! CPU that wakes up late finds 0 and halts instead of sharing a stack.

use super::apic::{self, IpiKind, IpiTarget};
use super::percpu::{self, PerCpu};
use super::{cpu, gdt, timer, trap};
use crate::acpi::{self, Platform};
use crate::mm::{self, frame, kstack::KernelStack, paging, PAGE_SIZE};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::PhysAddr;

/// The most CPUs the kernel brings up.
pub const MAX_CPUS: usize = 256;

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static ONLINE: AtomicU32 = AtomicU32::new(0);

/// Records that a CPU is fully set up (APIC and timer ready): from now on
/// it receives IPIs and interrupts.
pub fn register_online(percpu: &'static PerCpu) {
    if let Some(slot) = CPUS.get(percpu.index as usize) {
        slot.store(percpu as *const PerCpu as *mut PerCpu, Ordering::Release);
        ONLINE.fetch_add(1, Ordering::AcqRel);
    }
}

/// The per-CPU block of online CPU `index`.
pub fn cpu(index: u32) -> Option<&'static PerCpu> {
    let ptr = CPUS.get(index as usize)?.load(Ordering::Acquire);
    // SAFETY: only `register_online` stores non-null values, and it stores
    // 'static per-CPU blocks.
    unsafe { ptr.as_ref() }
}

/// Every online CPU.
pub fn online_cpus() -> impl Iterator<Item = &'static PerCpu> {
    (0..MAX_CPUS as u32).filter_map(cpu)
}

/// How many CPUs are online.
pub fn online_count() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

// The trampoline. It is copied to a page-aligned physical address below
// 1 MiB and entered in real mode with CS = page >> 4, IP = 0. All addresses
// are computed from that base (kept in EBX) so the code runs at any page.
core::arch::global_asm!(
    r#"
    .section .text.ap_trampoline, "ax"
    .globl ap_trampoline_start
    .globl ap_trampoline_end
    .globl ap_tramp_cr3
    .globl ap_tramp_efer
    .globl ap_tramp_stack
    .globl ap_tramp_entry
    .globl ap_tramp_arg

    .code16
ap_trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    xorl %ebx, %ebx
    movw %ax, %bx
    shll $4, %ebx
    # Patch the GDT base and both far-jump targets with linear addresses.
    leal (ap_tramp_gdt - ap_trampoline_start)(%ebx), %eax
    movl %eax, (ap_tramp_gdtr - ap_trampoline_start + 2)
    leal (ap_tramp_protected - ap_trampoline_start)(%ebx), %eax
    movl %eax, (ap_tramp_far32 - ap_trampoline_start)
    leal (ap_tramp_long - ap_trampoline_start)(%ebx), %eax
    movl %eax, (ap_tramp_far64 - ap_trampoline_start)
    lgdtl (ap_tramp_gdtr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl *(ap_tramp_far32 - ap_trampoline_start)

    .code32
ap_tramp_protected:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl (ap_tramp_cr3 - ap_trampoline_start)(%ebx), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl (ap_tramp_efer - ap_trampoline_start)(%ebx), %eax
    wrmsr
    # PG | WP | NE | ET | MP | PE, and caching back on (INIT sets CD and NW).
    movl $0x80010033, %eax
    movl %eax, %cr0
    ljmpl *(ap_tramp_far64 - ap_trampoline_start)(%ebx)

    .code64
ap_tramp_long:
    xorl %eax, %eax
    xchgq %rax, ap_tramp_arg(%rip)
    testq %rax, %rax
    jz 2f
    movq %rax, %rdi
    movq ap_tramp_stack(%rip), %rsp
    xorl %ebp, %ebp
    callq *ap_tramp_entry(%rip)
2:  cli
    hlt
    jmp 2b

    .balign 8
ap_tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff    # 0x08: 32-bit code
    .quad 0x00cf92000000ffff    # 0x10: data
    .quad 0x00af9a000000ffff    # 0x18: 64-bit code
ap_tramp_gdtr:
    .word 4 * 8 - 1
    .long 0
    .balign 8
ap_tramp_far32:
    .long 0
    .word 0x08
    .balign 8
ap_tramp_far64:
    .long 0
    .word 0x18
    .balign 8
ap_tramp_cr3:
    .quad 0
ap_tramp_efer:
    .quad 0
ap_tramp_stack:
    .quad 0
ap_tramp_entry:
    .quad 0
ap_tramp_arg:
    .quad 0
ap_trampoline_end:
    .code64
    "#,
    options(att_syntax)
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_tramp_cr3: u8;
    static ap_tramp_efer: u8;
    static ap_tramp_stack: u8;
    static ap_tramp_entry: u8;
    static ap_tramp_arg: u8;
}

/// What the boot CPU hands each starting CPU (through the trampoline's
/// argument). Leaked: a CPU may read it however late it starts.
struct ApStart {
    percpu: *mut PerCpu,
    stack: (u64, u64),
    online: AtomicBool,
}

/// The trampoline installed in its low page, and its page table.
struct Trampoline {
    page: u64,
    /// Write-back, writable mapping of the page.
    virt: u64,
    /// The trampoline's PML4 (below 4 GiB), PDPT and PD.
    tables: [u64; 3],
}

impl Trampoline {
    /// The 8-byte parameter slot at `symbol` in the installed copy.
    fn slot(&self, symbol: *const u8) -> &AtomicU64 {
        let offset = symbol as u64 - &raw const ap_trampoline_start as u64;
        // SAFETY: `symbol` is one of the 8-byte-aligned slots inside the
        // trampoline, which is copied to the start of the page mapped at
        // `virt`; the page is used only for the trampoline.
        unsafe { &*((self.virt + offset) as *const AtomicU64) }
    }

    fn install(page: u64) -> Option<Trampoline> {
        let (start, end) = (&raw const ap_trampoline_start, &raw const ap_trampoline_end);
        let len = end as usize - start as usize;
        if len > PAGE_SIZE as usize || !page.is_multiple_of(PAGE_SIZE) || page >= 0x10_0000 {
            log::error!("smp: trampoline ({len} bytes) does not fit page {page:#x}");
            return None;
        }
        // The page sits in the low megabyte, outside the direct map: give
        // it the same write-back mapping RAM has there.
        let virt = mm::PHYS_MAP_BASE + page;
        if let Err(e) = paging::map_kernel_page_with(virt, page, &mut paging::BuddySource) {
            log::error!("smp: cannot map the trampoline page {page:#x}: {e:?}");
            return None;
        }
        // SAFETY: the trampoline page is reserved for this use by the boot
        // code and mapped writable at `virt`; the source is the kernel text.
        unsafe { core::ptr::copy_nonoverlapping(start, virt as *mut u8, len) };
        let tables = build_tables()?;
        let trampoline = Trampoline { page, virt, tables };
        let efer = (1 << 8) | if cpu::features().nx { 1 << 11 } else { 0 }; // LME, NXE
        trampoline.slot(&raw const ap_tramp_cr3).store(tables[0], Ordering::Relaxed);
        trampoline.slot(&raw const ap_tramp_efer).store(efer, Ordering::Relaxed);
        trampoline.slot(&raw const ap_tramp_entry).store(ap_entry as *const () as u64, Ordering::Relaxed);
        Some(trampoline)
    }

    /// Hands `start` and its stack to the next CPU that enters the trampoline.
    fn offer(&self, start: *mut ApStart, stack_top: u64) {
        self.slot(&raw const ap_tramp_stack).store(stack_top, Ordering::Relaxed);
        self.slot(&raw const ap_tramp_arg).store(start as u64, Ordering::Release);
    }

    /// Whether a CPU has taken the offered parameters.
    fn claimed(&self) -> bool {
        self.slot(&raw const ap_tramp_arg).load(Ordering::Acquire) == 0
    }

    /// Withdraws the offer; true if no CPU had taken it.
    fn withdraw(&self) -> bool {
        self.slot(&raw const ap_tramp_arg).swap(0, Ordering::AcqRel) != 0
    }

    fn free_tables(&self) {
        for table in self.tables {
            frame::free_frame(table);
        }
    }
}

/// Builds the trampoline's page table: the first 2 MiB identity-mapped
/// (holding the trampoline page) plus the kernel half of the kernel's PML4.
fn build_tables() -> Option<[u64; 3]> {
    // 32-bit code loads the root into CR3.
    let pml4 = frame::alloc_zeroed_frame_below(1 << 32);
    let pdpt = frame::alloc_zeroed_frame();
    let pd = frame::alloc_zeroed_frame();
    let (Some(pml4), Some(pdpt), Some(pd)) = (pml4, pdpt, pd) else {
        log::error!("smp: no memory (below 4 GiB) for the trampoline's page table");
        for frame in [pml4, pdpt, pd].into_iter().flatten() {
            frame::free_frame(frame);
        }
        return None;
    };
    // The three frames are fresh and not yet reachable by any CPU.
    paging::table(pd)[0].set_addr(PhysAddr::new(0), F::PRESENT | F::WRITABLE | F::HUGE_PAGE);
    paging::table(pdpt)[0].set_addr(PhysAddr::new(pd), F::PRESENT | F::WRITABLE);
    paging::table(pml4)[0].set_addr(PhysAddr::new(pdpt), F::PRESENT | F::WRITABLE);
    paging::share_kernel_half(pml4);
    Some([pml4, pdpt, pd])
}

/// How starting one CPU ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Started {
    Online,
    /// Never entered the trampoline; its resources were freed.
    NoResponse,
    /// Entered the trampoline but did not finish setting up in time.
    Stuck,
    NoMemory,
}

const INIT_DELAY_NS: u64 = 10_000_000;
const SIPI_DELAY_NS: u64 = 1_000_000;
const CLAIM_TIMEOUT_NS: u64 = 1_000_000_000;
const ONLINE_TIMEOUT_NS: u64 = 5_000_000_000;

fn wait_until(timeout_ns: u64, done: impl Fn() -> bool) -> bool {
    let give_up = crate::time::now_ns() + timeout_ns;
    loop {
        if done() {
            return true;
        }
        if crate::time::now_ns() >= give_up {
            return false;
        }
        core::hint::spin_loop();
    }
}

fn start_cpu(trampoline: &Trampoline, apic_id: u32, index: u32) -> Started {
    let Some(stack) = KernelStack::new() else { return Started::NoMemory };
    let percpu = Box::new(PerCpu::new(index));
    percpu.apic_id.store(apic_id, Ordering::Relaxed);
    let percpu = Box::into_raw(percpu);
    let start = Box::into_raw(Box::new(ApStart {
        percpu,
        stack: (stack.bottom(), stack.top()),
        online: AtomicBool::new(false),
    }));
    trampoline.offer(start, stack.top());

    let target = IpiTarget::Apic(apic_id);
    apic::send_ipi(target, IpiKind::Init);
    timer::delay_ns(INIT_DELAY_NS);
    let vector_page = (trampoline.page / PAGE_SIZE) as u8;
    for _ in 0..2 {
        apic::send_ipi(target, IpiKind::Startup(vector_page));
        if wait_until(SIPI_DELAY_NS, || trampoline.claimed()) {
            break;
        }
    }
    if !wait_until(CLAIM_TIMEOUT_NS, || trampoline.claimed()) && trampoline.withdraw() {
        // SAFETY: the offer was withdrawn before any CPU took it, so these
        // allocations are still ours alone.
        unsafe {
            drop(Box::from_raw(start));
            drop(Box::from_raw(percpu));
        }
        return Started::NoResponse;
    }
    // The CPU runs on the stack now; it is never freed.
    let _ = stack.leak();
    // SAFETY: `start` is leaked (never freed once claimed).
    let start = unsafe { &*start };
    if wait_until(ONLINE_TIMEOUT_NS, || start.online.load(Ordering::Acquire)) {
        Started::Online
    } else {
        Started::Stuck
    }
}

/// Starts every enabled CPU in the MADT besides this one and logs the
/// result. (Online-capable CPUs are not present yet; hot-add would start them.)
pub fn start_other_cpus(platform: &Platform) {
    let boot_apic_id = apic::id();
    let others: Vec<u32> =
        platform.cpus.iter().filter(|c| c.enabled).map(|c| c.apic_id).filter(|&id| id != boot_apic_id).collect();
    let expected = others.len() + 1;
    let mut stuck = false;
    if !others.is_empty() {
        let trampoline = match crate::boot_info().trampoline_page {
            Some(page) => Trampoline::install(page),
            None => {
                log::error!("smp: the loader left no page below 1 MiB for the trampoline");
                None
            }
        };
        if let Some(trampoline) = trampoline {
            let mut next_index = 1;
            for apic_id in others {
                if next_index as usize >= MAX_CPUS {
                    log::warn!("smp: more than {MAX_CPUS} CPUs; ignoring the rest");
                    break;
                }
                match start_cpu(&trampoline, apic_id, next_index) {
                    Started::Online => next_index += 1,
                    Started::NoResponse => log::error!("smp: CPU with APIC id {apic_id} did not respond to INIT/SIPI"),
                    Started::NoMemory => log::error!("smp: no memory to start the CPU with APIC id {apic_id}"),
                    Started::Stuck => {
                        log::error!("smp: CPU with APIC id {apic_id} started but did not come online");
                        // Its index and the trampoline's tables stay taken.
                        next_index += 1;
                        stuck = true;
                    }
                }
            }
            if !stuck {
                trampoline.free_tables();
            }
        }
    }
    let online = online_count();
    let last = online_cpus().map(|p| p.index).max().unwrap_or(0);
    let range = if last == 0 { "cpu0".into() } else { alloc::format!("cpu0..cpu{last}") };
    if online as usize == expected {
        log::info!("smp: all CPUs online: {online} ({range})");
    } else {
        log::error!("smp: {} of {expected} CPUs failed to start", expected - online as usize);
        log::info!("smp: all CPUs online: {online} of {expected} ({range})");
    }
}

/// Where a started CPU arrives from the trampoline, on its own kernel
/// stack and the trampoline's page table, with interrupts off.
extern "C" fn ap_entry(start: u64) -> ! {
    // SAFETY: the trampoline passes the `ApStart` the boot CPU offered; it
    // is never freed once claimed.
    let start = unsafe { &*(start as *const ApStart) };
    // SAFETY: the block was allocated for this CPU, and nothing else holds
    // a reference to it.
    let percpu = percpu::install(unsafe { &mut *start.percpu });
    // Own exception stacks, GDT and IDT first: until then an NMI would
    // find no usable handler.
    crate::install_cpu_stacks(percpu);
    gdt::load(percpu);
    trap::load_idt();
    super::syscall::init_this_cpu();
    // SAFETY: the kernel's tables map everything this CPU touches from now
    // on (kernel image, this stack, the heap); the trampoline's identity
    // map is no longer needed.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) paging::kernel_pml4(), options(nostack, preserves_flags)) };
    cpu::enable_features();
    percpu.add_stack(start.stack.0, start.stack.1);
    let Some(platform) = acpi::platform() else { panic!("smp: CPU started before ACPI was parsed") };
    apic::init_this_cpu(platform);
    timer::init_this_cpu();
    timer::boot_self_test();
    register_online(percpu);
    log::debug!("smp: online, APIC id {}", percpu.apic_id.load(Ordering::Relaxed));
    start.online.store(true, Ordering::Release);
    // Idle until the scheduler starts (it sends a reschedule IPI then).
    // Interrupts are off while checking, so a wake-up between the check and
    // `hlt` is not lost (`sti` takes effect only after the `hlt`).
    loop {
        x86_64::instructions::interrupts::disable();
        super::ipi::join_boot_self_test();
        if crate::sched::is_ready() {
            break;
        }
        x86_64::instructions::interrupts::enable_and_hlt();
    }
    crate::sched::enter_secondary()
}
